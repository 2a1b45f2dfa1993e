//! ACL binding filters, as DescribeAcls and DeleteAcls carry them (Kafka's
//! `AclBindingFilter`: a `ResourcePatternFilter` and an `AccessControlEntryFilter`).

use super::{AclBinding, Operation, PatternType, Permission, ResourceType, WILDCARD};

/// How a filter matches pattern types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternFilter {
    /// Bindings of any pattern type whose name is the filter's name.
    Any,
    /// Bindings that would apply to a resource of the filter's name: the literal name,
    /// the wildcard, and prefixes of it.
    Match,
    /// Bindings of this pattern type whose name is the filter's name.
    Exactly(PatternType),
}

/// Which bindings to describe or delete; `None` fields match anything (Kafka's ANY or a
/// null string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclFilter {
    /// Resource type.
    pub resource_type: Option<ResourceType>,
    /// Resource name (what it is compared with depends on `pattern`).
    pub resource_name: Option<String>,
    /// Pattern types.
    pub pattern: PatternFilter,
    /// Principal, compared as a string (`User:*` matches only `User:*` bindings).
    pub principal: Option<String>,
    /// Host, compared as a string.
    pub host: Option<String>,
    /// Operation (ALL matches only ALL bindings).
    pub operation: Option<Operation>,
    /// Permission.
    pub permission: Option<Permission>,
}

/// Kafka's code for ANY in each of the filter's enums.
const ANY: i8 = 1;
/// PatternType MATCH.
const MATCH: i8 = 2;

impl AclFilter {
    /// A filter from its wire fields; unknown codes are refused (INVALID_REQUEST), as
    /// Kafka refuses a filter with UNKNOWN elements.
    #[allow(clippy::too_many_arguments)] // The seven fields of a filter, as the wire has them.
    pub fn from_wire(
        resource_type: i8,
        resource_name: Option<&str>,
        pattern_type: i8,
        principal: Option<&str>,
        host: Option<&str>,
        operation: i8,
        permission: i8,
    ) -> Result<AclFilter, String> {
        let resource_type = match resource_type {
            ANY => None,
            code => Some(
                ResourceType::from_code(code)
                    .ok_or_else(|| format!("Unknown resource type filter {code}"))?,
            ),
        };
        let pattern = match pattern_type {
            ANY => PatternFilter::Any,
            MATCH => PatternFilter::Match,
            code => PatternFilter::Exactly(
                PatternType::from_code(code)
                    .ok_or_else(|| format!("Unknown pattern type filter {code}"))?,
            ),
        };
        let operation = match operation {
            ANY => None,
            code => Some(
                Operation::from_code(code)
                    .ok_or_else(|| format!("Unknown operation filter {code}"))?,
            ),
        };
        let permission = match permission {
            ANY => None,
            code => Some(
                Permission::from_code(code)
                    .ok_or_else(|| format!("Unknown permission type filter {code}"))?,
            ),
        };
        Ok(AclFilter {
            resource_type,
            resource_name: resource_name.map(str::to_string),
            pattern,
            principal: principal.map(str::to_string),
            host: host.map(str::to_string),
            operation,
            permission,
        })
    }

    /// The filter matching every binding.
    pub fn any() -> AclFilter {
        AclFilter {
            resource_type: None,
            resource_name: None,
            pattern: PatternFilter::Any,
            principal: None,
            host: None,
            operation: None,
            permission: None,
        }
    }

    /// Whether `b` passes the filter (Kafka's `AclBindingFilter.matches`).
    pub fn matches(&self, b: &AclBinding) -> bool {
        self.matches_pattern(b) && self.matches_entry(b)
    }

    fn matches_pattern(&self, b: &AclBinding) -> bool {
        if self.resource_type.is_some_and(|t| t != b.resource_type) {
            return false;
        }
        if let PatternFilter::Exactly(p) = self.pattern
            && p != b.pattern_type
        {
            return false;
        }
        let Some(name) = &self.resource_name else {
            return true;
        };
        match self.pattern {
            PatternFilter::Any | PatternFilter::Exactly(_) => *name == b.resource_name,
            PatternFilter::Match => match b.pattern_type {
                PatternType::Literal => *name == b.resource_name || b.resource_name == WILDCARD,
                PatternType::Prefixed => name.starts_with(&b.resource_name),
            },
        }
    }

    fn matches_entry(&self, b: &AclBinding) -> bool {
        self.principal.as_ref().is_none_or(|p| *p == b.principal)
            && self.host.as_ref().is_none_or(|h| *h == b.host)
            && self.operation.is_none_or(|o| o == b.operation)
            && self.permission.is_none_or(|p| p == b.permission)
    }
}

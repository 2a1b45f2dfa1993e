//! The bindings indexed by resource, and the decision of one request over them.
//!
//! Per resource type: literal bindings by name (the wildcard `*` among them) and prefixed
//! bindings by prefix, with the set of prefix lengths present, so finding every binding
//! that applies to a name costs one lookup per distinct prefix length plus two, whatever
//! the number of bindings.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use crate::metadata_store::AclRecord;
use crate::security::Principal;

use super::{AclBinding, Operation, PatternType, Permission, ResourceType, WILDCARD};

/// Who a binding applies to.
#[derive(Debug, Clone)]
enum Who {
    /// `User:*`: everyone.
    Everyone,
    /// One principal.
    One(Principal),
}

/// The client addresses a binding applies to.
#[derive(Debug, Clone)]
enum Host {
    /// `*`.
    Any,
    /// One address.
    Ip(IpAddr),
    /// A host written as something other than an address (matches the client address
    /// printed the same way; Kafka compares strings).
    Name(String),
}

impl Host {
    /// Whether the host matches a client address: `*`, or the same address (an IPv4
    /// client reached over an IPv6 socket matches its IPv4 form).
    fn matches(&self, client: IpAddr) -> bool {
        match self {
            Host::Any => true,
            Host::Ip(ip) => ip.to_canonical() == client.to_canonical(),
            Host::Name(name) => *name == client.to_string(),
        }
    }
}

/// A binding as the index keeps it for decisions.
#[derive(Debug, Clone)]
struct Entry {
    who: Who,
    host: Host,
    operation: Operation,
    permission: Permission,
}

impl Entry {
    fn new(b: &AclBinding) -> Result<Entry, String> {
        let principal = Principal::parse(&b.principal)?;
        let who = if principal.principal_type == "User" && principal.name == "*" {
            Who::Everyone
        } else {
            Who::One(principal)
        };
        let host = if b.host == "*" {
            Host::Any
        } else if let Ok(ip) = b.host.parse::<IpAddr>() {
            Host::Ip(ip)
        } else {
            Host::Name(b.host.clone())
        };
        Ok(Entry {
            who,
            host,
            operation: b.operation,
            permission: b.permission,
        })
    }

    /// What this binding says about `operation` by `principal` from `client`, if anything.
    fn result(
        &self,
        principal: &Principal,
        client: IpAddr,
        operation: Operation,
    ) -> Option<Permission> {
        if let Who::One(p) = &self.who
            && p != principal
        {
            return None;
        }
        if !self.host.matches(client) {
            return None;
        }
        let applies = match self.permission {
            Permission::Allow => self.operation.allows(operation),
            // A DENY denies its own operation (or everything for ALL), nothing it implies.
            Permission::Deny => self.operation == Operation::All || self.operation == operation,
        };
        applies.then_some(self.permission)
    }
}

#[derive(Debug, Default)]
struct TypeIndex {
    literal: HashMap<String, Vec<Entry>>,
    prefixed: HashMap<String, Vec<Entry>>,
    /// Byte lengths of the prefixes in `prefixed`.
    prefix_lengths: BTreeSet<usize>,
}

impl TypeIndex {
    /// Every entry whose pattern matches `name`.
    fn matching<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        let literal = self.literal.get(name).into_iter().flatten();
        let wildcard = (name != WILDCARD)
            .then(|| self.literal.get(WILDCARD))
            .flatten()
            .into_iter()
            .flatten();
        let prefixed = self
            .prefix_lengths
            .iter()
            .take_while(move |len| **len <= name.len())
            .filter(move |len| name.is_char_boundary(**len))
            .filter_map(move |len| self.prefixed.get(&name[..*len]))
            .flatten();
        literal.chain(wildcard).chain(prefixed)
    }
}

/// The in-memory ACLs.
#[derive(Debug, Default)]
pub(super) struct Index {
    by_type: HashMap<ResourceType, TypeIndex>,
    /// Every binding, sorted and without duplicates.
    bindings: Vec<AclBinding>,
}

/// The outcome of one authorization, and the rule that decided it (for the audit line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Authorization is off.
    Disabled,
    /// The principal is a super user.
    SuperUser,
    /// An ALLOW binding matched and no DENY did.
    AllowedByAcl,
    /// No binding names the resource and `allow_everyone_if_no_acl_found` is on.
    AllowedNoAcl,
    /// A DENY binding matched.
    DeniedByAcl,
    /// No binding names the resource.
    DeniedNoAcl,
    /// Bindings name the resource but none allows this.
    DeniedNoMatch,
}

impl Decision {
    /// Whether the operation may go ahead.
    pub fn allowed(self) -> bool {
        matches!(
            self,
            Decision::Disabled
                | Decision::SuperUser
                | Decision::AllowedByAcl
                | Decision::AllowedNoAcl
        )
    }

    /// The rule, as the audit line names it.
    pub fn rule(self) -> &'static str {
        match self {
            Decision::Disabled => "AuthorizationDisabled",
            Decision::SuperUser => "SuperUser",
            Decision::AllowedByAcl => "MatchingAllowAcl",
            Decision::AllowedNoAcl => "NoAclAllowEveryone",
            Decision::DeniedByAcl => "MatchingDenyAcl",
            Decision::DeniedNoAcl => "NoAclDefaultDeny",
            Decision::DeniedNoMatch => "DefaultDeny",
        }
    }
}

impl Index {
    /// The index of stored records; an unparseable record is an error.
    pub(super) fn build(records: &[AclRecord]) -> Result<Index, String> {
        let mut bindings = records
            .iter()
            .map(|r| AclBinding::from_record(r).map_err(|e| format!("stored ACL {r:?}: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        bindings.sort();
        bindings.dedup();
        let mut by_type: HashMap<ResourceType, TypeIndex> = HashMap::new();
        for b in &bindings {
            let entry = Entry::new(b).map_err(|e| format!("stored ACL {b:?}: {e}"))?;
            let t = by_type.entry(b.resource_type).or_default();
            match b.pattern_type {
                PatternType::Literal => t
                    .literal
                    .entry(b.resource_name.clone())
                    .or_default()
                    .push(entry),
                PatternType::Prefixed => {
                    t.prefix_lengths.insert(b.resource_name.len());
                    t.prefixed
                        .entry(b.resource_name.clone())
                        .or_default()
                        .push(entry);
                }
            }
        }
        Ok(Index { by_type, bindings })
    }

    pub(super) fn bindings(&self) -> &[AclBinding] {
        &self.bindings
    }

    /// The decision for a principal that is not a super user.
    pub(super) fn decide(
        &self,
        principal: &Principal,
        client: IpAddr,
        operation: Operation,
        resource: ResourceType,
        name: &str,
        allow_if_no_acl: bool,
    ) -> Decision {
        let mut any_binding = false;
        let mut allowed = false;
        if let Some(t) = self.by_type.get(&resource) {
            for entry in t.matching(name) {
                any_binding = true;
                match entry.result(principal, client, operation) {
                    Some(Permission::Deny) => return Decision::DeniedByAcl,
                    Some(Permission::Allow) => allowed = true,
                    None => {}
                }
            }
        }
        match (allowed, any_binding) {
            (true, _) => Decision::AllowedByAcl,
            (false, false) if allow_if_no_acl => Decision::AllowedNoAcl,
            (false, false) => Decision::DeniedNoAcl,
            (false, true) => Decision::DeniedNoMatch,
        }
    }

    /// Kafka's `authorizeByResourceType` over the bindings (after its hard-coded-name
    /// check): a wildcard DENY denies; a wildcard ALLOW allows; otherwise an ALLOW binding
    /// that no DENY literal of the same name and no DENY prefix of its name covers allows.
    /// Only the operation itself and ALL count (nothing implied).
    pub(super) fn allows_some(
        &self,
        principal: &Principal,
        client: IpAddr,
        operation: Operation,
        resource: ResourceType,
    ) -> bool {
        let mut deny_literal: BTreeSet<&str> = BTreeSet::new();
        let mut deny_prefix: BTreeSet<&str> = BTreeSet::new();
        let mut allow: Vec<(&str, PatternType)> = Vec::new();
        for b in self.bindings.iter().filter(|b| b.resource_type == resource) {
            let Ok(entry) = Entry::new(b) else { continue };
            let applies = matches!(&entry.who, Who::Everyone)
                || matches!(&entry.who, Who::One(p) if p == principal);
            if !applies
                || !entry.host.matches(client)
                || !(b.operation == operation || b.operation == Operation::All)
            {
                continue;
            }
            let name = b.resource_name.as_str();
            match (b.permission, b.pattern_type) {
                (Permission::Deny, PatternType::Literal) if name == WILDCARD => return false,
                (Permission::Deny, PatternType::Literal) => {
                    deny_literal.insert(name);
                }
                (Permission::Deny, PatternType::Prefixed) => {
                    deny_prefix.insert(name);
                }
                (Permission::Allow, pattern) => allow.push((name, pattern)),
            }
        }
        if allow
            .iter()
            .any(|(name, p)| *p == PatternType::Literal && *name == WILDCARD)
        {
            return true;
        }
        allow.iter().any(|(name, pattern)| {
            if *pattern == PatternType::Literal && deny_literal.contains(name) {
                return false;
            }
            !name
                .char_indices()
                .map(|(i, c)| &name[..i + c.len_utf8()])
                .any(|prefix| deny_prefix.contains(prefix))
        })
    }
}

//! Authorization with Kafka's ACLs, decided as Kafka's `StandardAuthorizer` decides.
//!
//! An ACL binding ([`AclBinding`]) is a resource pattern (type, name, LITERAL or PREFIXED;
//! the literal name `*` matches every resource of the type) and an entry (principal, or
//! `User:*` for every principal; host, or `*`; operation; ALLOW or DENY). A request for an
//! operation on a resource is decided in this order:
//!
//! 1. authorization off (`authorizer_class_name` empty): allowed;
//! 2. the principal is one of `super_users`: allowed;
//! 3. a DENY binding of the resource matches (principal, host, the operation itself or
//!    ALL): denied, whatever allows it;
//! 4. an ALLOW binding matches (the operation, ALL, or an operation implying it: READ,
//!    WRITE, DELETE and ALTER imply DESCRIBE, ALTER_CONFIGS implies DESCRIBE_CONFIGS):
//!    allowed;
//! 5. no binding at all names the resource (for any principal): allowed only with
//!    `allow_everyone_if_no_acl_found`;
//! 6. otherwise denied.
//!
//! The bindings are kept in the metadata store (`SecurityMetadata::acls`, changed through
//! [`Authorizer::change`], which persists and then swaps the in-memory index) and indexed
//! in memory by resource ([`index`]). A denial a client asked for is logged on the
//! `floe::audit` target, rate limited ([`audit`]).

use std::sync::{Mutex, PoisonError, RwLock};

use kafka_protocol::messages::ApiKey;

use crate::config::Config;
use crate::metadata_store::AclRecord;
use crate::topics::{TopicError, Topics};

use super::{Principal, Session};

mod audit;
mod filter;
mod index;

pub use filter::{AclFilter, PatternFilter};
pub use index::Decision;

#[cfg(test)]
mod matrix_tests;
#[cfg(test)]
mod tests;

/// Kafka's ACL operations (`AclOperation`, with their protocol codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    /// Every operation.
    All,
    /// Consume, commit offsets, join groups.
    Read,
    /// Produce.
    Write,
    /// Create topics.
    Create,
    /// Delete topics, records, groups.
    Delete,
    /// Change partitions, ACLs.
    Alter,
    /// See that a resource exists.
    Describe,
    /// Broker-to-broker actions.
    ClusterAction,
    /// Read configs.
    DescribeConfigs,
    /// Change configs.
    AlterConfigs,
    /// Idempotent produce.
    IdempotentWrite,
    /// Create delegation tokens.
    CreateTokens,
    /// Describe delegation tokens.
    DescribeTokens,
}

/// Every operation with its protocol code and Kafka's name.
const OPERATIONS: [(Operation, i8, &str); 13] = [
    (Operation::All, 2, "ALL"),
    (Operation::Read, 3, "READ"),
    (Operation::Write, 4, "WRITE"),
    (Operation::Create, 5, "CREATE"),
    (Operation::Delete, 6, "DELETE"),
    (Operation::Alter, 7, "ALTER"),
    (Operation::Describe, 8, "DESCRIBE"),
    (Operation::ClusterAction, 9, "CLUSTER_ACTION"),
    (Operation::DescribeConfigs, 10, "DESCRIBE_CONFIGS"),
    (Operation::AlterConfigs, 11, "ALTER_CONFIGS"),
    (Operation::IdempotentWrite, 12, "IDEMPOTENT_WRITE"),
    (Operation::CreateTokens, 13, "CREATE_TOKENS"),
    (Operation::DescribeTokens, 14, "DESCRIBE_TOKENS"),
];

impl Operation {
    /// The protocol code (`AclOperation.code()`).
    pub fn code(self) -> i8 {
        OPERATIONS
            .iter()
            .find(|(o, _, _)| *o == self)
            .map_or(0, |(_, c, _)| *c)
    }

    /// The operation with protocol code `code` (not ANY or UNKNOWN).
    pub fn from_code(code: i8) -> Option<Operation> {
        OPERATIONS
            .iter()
            .find(|(_, c, _)| *c == code)
            .map(|(o, _, _)| *o)
    }

    /// Kafka's name (`READ`, `IDEMPOTENT_WRITE`, ...).
    pub fn name(self) -> &'static str {
        OPERATIONS
            .iter()
            .find(|(o, _, _)| *o == self)
            .map_or("UNKNOWN", |(_, _, n)| n)
    }

    /// Parses Kafka's name, in any case.
    pub fn parse(s: &str) -> Option<Operation> {
        OPERATIONS
            .iter()
            .find(|(_, _, n)| n.eq_ignore_ascii_case(s))
            .map(|(o, _, _)| *o)
    }

    /// Whether an ALLOW binding for `self` allows `requested`: the same operation, ALL, or
    /// one that implies it (Kafka's rule; DENY bindings imply nothing).
    fn allows(self, requested: Operation) -> bool {
        use Operation::*;
        match (self, requested) {
            (All, _) => true,
            (Read | Write | Delete | Alter, Describe) => true,
            (AlterConfigs, DescribeConfigs) => true,
            (granted, requested) => granted == requested,
        }
    }
}

/// Kafka's ACL resource types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceType {
    /// A topic.
    Topic,
    /// A consumer group.
    Group,
    /// The cluster (name `kafka-cluster`).
    Cluster,
    /// A transactional id.
    TransactionalId,
    /// A delegation token.
    DelegationToken,
    /// A user (for delegation tokens).
    User,
}

/// Every resource type with its protocol code, Kafka's enum name and its name in log lines.
const RESOURCE_TYPES: [(ResourceType, i8, &str, &str); 6] = [
    (ResourceType::Topic, 2, "TOPIC", "Topic"),
    (ResourceType::Group, 3, "GROUP", "Group"),
    (ResourceType::Cluster, 4, "CLUSTER", "Cluster"),
    (
        ResourceType::TransactionalId,
        5,
        "TRANSACTIONAL_ID",
        "TransactionalId",
    ),
    (
        ResourceType::DelegationToken,
        6,
        "DELEGATION_TOKEN",
        "DelegationToken",
    ),
    (ResourceType::User, 7, "USER", "User"),
];

impl ResourceType {
    fn entry(self) -> (ResourceType, i8, &'static str, &'static str) {
        RESOURCE_TYPES
            .iter()
            .copied()
            .find(|(t, _, _, _)| *t == self)
            .unwrap_or((self, 0, "UNKNOWN", "Unknown"))
    }

    /// The protocol code (`ResourceType.code()`).
    pub fn code(self) -> i8 {
        self.entry().1
    }

    /// The resource type with protocol code `code` (not ANY or UNKNOWN).
    pub fn from_code(code: i8) -> Option<ResourceType> {
        RESOURCE_TYPES
            .iter()
            .find(|(_, c, _, _)| *c == code)
            .map(|(t, _, _, _)| *t)
    }

    /// Kafka's enum name (`TOPIC`, `TRANSACTIONAL_ID`, ...).
    pub fn name(self) -> &'static str {
        self.entry().2
    }

    /// Parses Kafka's enum name, in any case.
    pub fn parse(s: &str) -> Option<ResourceType> {
        RESOURCE_TYPES
            .iter()
            .find(|(_, _, n, _)| n.eq_ignore_ascii_case(s))
            .map(|(t, _, _, _)| *t)
    }

    /// The operations that mean something for this type (Kafka's
    /// `AclEntry.supportedOperations`), which "authorized operations" bit fields report.
    pub fn operations(self) -> &'static [Operation] {
        use Operation::*;
        match self {
            ResourceType::Topic => &[
                Read,
                Write,
                Create,
                Describe,
                Delete,
                Alter,
                DescribeConfigs,
                AlterConfigs,
            ],
            ResourceType::Group => &[Read, Describe, Delete, DescribeConfigs, AlterConfigs],
            ResourceType::Cluster => &[
                Create,
                ClusterAction,
                DescribeConfigs,
                AlterConfigs,
                IdempotentWrite,
                Alter,
                Describe,
            ],
            ResourceType::TransactionalId => &[Describe, Write],
            ResourceType::DelegationToken => &[Describe],
            ResourceType::User => &[CreateTokens, DescribeTokens],
        }
    }
}

/// How a binding's resource name is matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PatternType {
    /// The resource with exactly this name (`*`: every resource of the type).
    Literal,
    /// Every resource whose name starts with this one.
    Prefixed,
}

impl PatternType {
    /// The protocol code (`PatternType.code()`).
    pub fn code(self) -> i8 {
        match self {
            PatternType::Literal => 3,
            PatternType::Prefixed => 4,
        }
    }

    /// The pattern type with protocol code `code` (not ANY, MATCH or UNKNOWN).
    pub fn from_code(code: i8) -> Option<PatternType> {
        match code {
            3 => Some(PatternType::Literal),
            4 => Some(PatternType::Prefixed),
            _ => None,
        }
    }

    /// Kafka's name.
    pub fn name(self) -> &'static str {
        match self {
            PatternType::Literal => "LITERAL",
            PatternType::Prefixed => "PREFIXED",
        }
    }

    /// Parses Kafka's name, in any case.
    pub fn parse(s: &str) -> Option<PatternType> {
        [PatternType::Literal, PatternType::Prefixed]
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s))
    }
}

/// Whether a binding allows or denies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    /// Denies, whatever allows.
    Deny,
    /// Allows, unless something denies.
    Allow,
}

impl Permission {
    /// The protocol code (`AclPermissionType.code()`).
    pub fn code(self) -> i8 {
        match self {
            Permission::Deny => 2,
            Permission::Allow => 3,
        }
    }

    /// The permission with protocol code `code` (not ANY or UNKNOWN).
    pub fn from_code(code: i8) -> Option<Permission> {
        match code {
            2 => Some(Permission::Deny),
            3 => Some(Permission::Allow),
            _ => None,
        }
    }

    /// Kafka's name.
    pub fn name(self) -> &'static str {
        match self {
            Permission::Deny => "DENY",
            Permission::Allow => "ALLOW",
        }
    }

    /// Parses Kafka's name, in any case.
    pub fn parse(s: &str) -> Option<Permission> {
        [Permission::Deny, Permission::Allow]
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s))
    }
}

/// The name of the cluster resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";

/// The literal resource name that matches every resource of its type.
pub const WILDCARD: &str = "*";

/// One ACL binding, typed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AclBinding {
    /// Type of the resources it applies to.
    pub resource_type: ResourceType,
    /// Resource name, prefix, or `*`.
    pub resource_name: String,
    /// How `resource_name` matches.
    pub pattern_type: PatternType,
    /// `Type:name`; `User:*` is every principal.
    pub principal: String,
    /// Client address, or `*` for any.
    pub host: String,
    /// The operation.
    pub operation: Operation,
    /// ALLOW or DENY.
    pub permission: Permission,
}

impl AclBinding {
    /// A binding as the ACL APIs accept one (Kafka's `validateNewAcl` and CreateAcls
    /// checks): the reason it is refused otherwise, for an INVALID_REQUEST answer.
    #[allow(clippy::too_many_arguments)] // The seven fields of a creation, as the wire has them.
    pub fn from_wire(
        resource_type: i8,
        resource_name: &str,
        pattern_type: i8,
        principal: &str,
        host: &str,
        operation: i8,
        permission: i8,
    ) -> Result<AclBinding, String> {
        let resource_type = ResourceType::from_code(resource_type)
            .ok_or_else(|| format!("Invalid resourceType {resource_type}"))?;
        let pattern_type = PatternType::from_code(pattern_type)
            .ok_or_else(|| format!("Invalid patternType {pattern_type}"))?;
        let operation = Operation::from_code(operation)
            .ok_or_else(|| format!("Invalid operation {operation}"))?;
        let permission = Permission::from_code(permission)
            .ok_or_else(|| format!("Invalid permissionType {permission}"))?;
        let binding = AclBinding {
            resource_type,
            resource_name: resource_name.to_string(),
            pattern_type,
            principal: principal.to_string(),
            host: host.to_string(),
            operation,
            permission,
        };
        binding.validate()?;
        Ok(binding)
    }

    fn validate(&self) -> Result<(), String> {
        if self.resource_name.is_empty() {
            return Err("Resource name should not be empty".into());
        }
        if self.resource_type == ResourceType::Cluster && self.resource_name != CLUSTER_NAME {
            return Err(format!(
                "The only valid name for the CLUSTER resource is {CLUSTER_NAME}"
            ));
        }
        Principal::parse(&self.principal).map_err(|_| {
            format!(
                "Could not parse principal from `{}` (no colon is present separating the \
                 principal type from the principal name)",
                self.principal
            )
        })?;
        if self.host.is_empty() {
            return Err("Host should not be empty (`*` is any host)".into());
        }
        Ok(())
    }

    /// The binding a stored record holds (names in any case).
    pub fn from_record(r: &AclRecord) -> Result<AclBinding, String> {
        let bad = |what: &str, v: &str| format!("unknown {what} '{v}'");
        let binding = AclBinding {
            resource_type: ResourceType::parse(&r.resource_type)
                .ok_or_else(|| bad("resource type", &r.resource_type))?,
            resource_name: r.resource_name.clone(),
            pattern_type: PatternType::parse(&r.pattern_type)
                .ok_or_else(|| bad("pattern type", &r.pattern_type))?,
            principal: r.principal.clone(),
            host: r.host.clone(),
            operation: Operation::parse(&r.operation)
                .ok_or_else(|| bad("operation", &r.operation))?,
            permission: Permission::parse(&r.permission_type)
                .ok_or_else(|| bad("permission type", &r.permission_type))?,
        };
        binding.validate()?;
        Ok(binding)
    }

    /// The record that stores it, with Kafka's names.
    pub fn to_record(&self) -> AclRecord {
        AclRecord {
            resource_type: self.resource_type.name().into(),
            resource_name: self.resource_name.clone(),
            pattern_type: self.pattern_type.name().into(),
            principal: self.principal.clone(),
            host: self.host.clone(),
            operation: self.operation.name().into(),
            permission_type: self.permission.name().into(),
        }
    }
}

/// Whether a denial is logged: requests for a resource a client named are (Kafka's
/// `logIfDenied`); filters over resources it did not name, and "authorized operations"
/// probes, are not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audit {
    /// Log a denial.
    Log,
    /// Do not.
    Quiet,
}

/// Decides what a principal may do.
pub struct Authorizer {
    enabled: bool,
    super_users: Vec<Principal>,
    allow_if_no_acl: bool,
    index: RwLock<index::Index>,
    /// Serializes changes, so the index swapped in last is the last one persisted.
    changes: Mutex<()>,
}

impl Authorizer {
    /// The authorizer `config` asks for, over the stored ACLs. A stored record that does
    /// not parse refuses the start: skipping it could drop a DENY.
    pub fn new(config: &Config, acls: &[AclRecord]) -> Result<Authorizer, String> {
        let super_users = config
            .super_users
            .split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| Principal::parse(p).map_err(|e| format!("super_users: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Authorizer {
            enabled: !config.authorizer_class_name.is_empty(),
            super_users,
            allow_if_no_acl: config.allow_everyone_if_no_acl_found,
            index: RwLock::new(index::Index::build(acls)?),
            changes: Mutex::new(()),
        })
    }

    /// Whether requests are authorized at all.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Whether `session` may do `operation` on the resource; a denial is logged (audit).
    pub fn authorize(
        &self,
        session: &Session,
        operation: Operation,
        resource: ResourceType,
        name: &str,
    ) -> bool {
        self.check(session, None, operation, resource, name, Audit::Log)
    }

    /// [`Authorizer::authorize`] for a request of `api`, which the audit line names; with
    /// [`Audit::Quiet`] a denial is not logged.
    pub fn check(
        &self,
        session: &Session,
        api: Option<ApiKey>,
        operation: Operation,
        resource: ResourceType,
        name: &str,
        audit: Audit,
    ) -> bool {
        if !self.enabled {
            return true;
        }
        let decision = self.decide(session, operation, resource, name);
        if !decision.allowed() && audit == Audit::Log {
            audit::denied(session, api, operation, resource, name, decision);
        }
        decision.allowed()
    }

    /// The decision for `session`, `operation` and the resource, and the rule that made it;
    /// nothing is logged.
    pub fn decide(
        &self,
        session: &Session,
        operation: Operation,
        resource: ResourceType,
        name: &str,
    ) -> Decision {
        if !self.enabled {
            return Decision::Disabled;
        }
        if self.super_users.contains(&session.principal) {
            return Decision::SuperUser;
        }
        let index = self.index.read().unwrap_or_else(PoisonError::into_inner);
        index.decide(
            &session.principal,
            session.client_address,
            operation,
            resource,
            name,
            self.allow_if_no_acl,
        )
    }

    /// Whether `session` may do `operation` on some resource of the type (Kafka's
    /// `authorizeByResourceType`: an ALLOW binding, literal or prefixed, that no DENY
    /// binding covers), as InitProducerId asks for WRITE on any topic. Not logged.
    pub fn authorize_any(
        &self,
        session: &Session,
        operation: Operation,
        resource: ResourceType,
    ) -> bool {
        if !self.enabled {
            return true;
        }
        // A hard-coded name first, as Kafka does: super users, and the no-ACL default.
        if self
            .decide(session, operation, resource, "hardcode")
            .allowed()
        {
            return true;
        }
        let index = self.index.read().unwrap_or_else(PoisonError::into_inner);
        index.allows_some(
            &session.principal,
            session.client_address,
            operation,
            resource,
        )
    }

    /// Kafka's "authorized operations" bit field of `session` on a resource: bit `code`
    /// set for each operation of the type ([`ResourceType::operations`]) it may do; every
    /// one when authorization is off.
    pub fn authorized_operations(
        &self,
        session: &Session,
        resource: ResourceType,
        name: &str,
    ) -> i32 {
        resource
            .operations()
            .iter()
            .filter(|op| self.decide(session, **op, resource, name).allowed())
            .fold(0, |bits, op| bits | (1i32 << op.code()))
    }

    /// Every binding, in a stable order.
    pub fn bindings(&self) -> Vec<AclBinding> {
        self.index
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .bindings()
            .to_vec()
    }

    /// Replaces the bindings with `acls` (records as stored); on an error nothing changes.
    pub fn reload(&self, acls: &[AclRecord]) -> Result<(), String> {
        let next = index::Index::build(acls)?;
        *self.index.write().unwrap_or_else(PoisonError::into_inner) = next;
        Ok(())
    }

    /// Changes the stored ACLs with `change`, persists them (with fsyncs: call from a
    /// blocking thread), and then decides with them; returns what `change` returned. A
    /// failed save changes nothing. Only records made by [`AclBinding::to_record`] may be
    /// added.
    pub fn change<R>(
        &self,
        topics: &Topics,
        change: impl FnOnce(&mut Vec<AclRecord>) -> R,
    ) -> Result<R, TopicError> {
        let _serial = self.changes.lock().unwrap_or_else(PoisonError::into_inner);
        let out = topics.update_security(|s| change(&mut s.acls))?;
        if let Err(e) = self.reload(&topics.security().acls) {
            // Records are validated before they are stored; this is a bug, and the broker
            // would refuse to start on these records.
            tracing::error!("the stored ACLs do not parse, the previous ones stay in force: {e}");
        }
        Ok(out)
    }
}

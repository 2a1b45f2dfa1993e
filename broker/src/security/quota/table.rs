//! The configured quotas, arranged for the lookup every request makes: which quota applies
//! to a (user, client id), found in Kafka's order of precedence, and which sensor counts
//! the client against it.
//!
//! Kafka keeps one table per quota key (a user with only a `consumer_byte_rate` has no
//! producer quota of its own, so a client-id `producer_byte_rate` still applies to it).
//! The most specific configured entity wins, in this order:
//!
//! 1. `/config/users/<user>/clients/<client-id>`
//! 2. `/config/users/<user>/clients/<default>`
//! 3. `/config/users/<user>`
//! 4. `/config/users/<default>/clients/<client-id>`
//! 5. `/config/users/<default>/clients/<default>`
//! 6. `/config/users/<default>`
//! 7. `/config/clients/<client-id>`
//! 8. `/config/clients/<default>`
//!
//! The level decides what is shared: at levels 1, 2, 4 and 5 each (user, client id) has its
//! own rate; at 3 and 6 all the clients of a user share one; at 7 and 8 all the users of a
//! client id share one. The user is the principal's name, `ANONYMOUS` for connections that
//! did not authenticate, which Kafka's default-user quotas apply to like any other user.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::metadata_store::ClientQuotaRecord;

use super::entity::{
    self, CLIENT_ID, CONNECTION_CREATION_RATE, CONSUMER_BYTE_RATE, IP, PRODUCER_BYTE_RATE,
    REQUEST_PERCENTAGE, USER,
};

/// What a client's rate is counted under, by the level its quota was found at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Each (user, client id) separately (levels 1, 2, 4, 5).
    UserAndClientId,
    /// All clients of the user together (levels 3, 6).
    User,
    /// All users of the client id together (levels 7, 8).
    ClientId,
}

/// The key of a rate sensor: the user, the client id, or both.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SensorKey {
    user: Option<Box<str>>,
    client_id: Option<Box<str>>,
}

impl SensorKey {
    /// The sensor of (`user`, `client_id`) at `scope`.
    pub fn new(scope: Scope, user: &str, client_id: &str) -> SensorKey {
        let (user, client_id) = match scope {
            Scope::UserAndClientId => (Some(user), Some(client_id)),
            Scope::User => (Some(user), None),
            Scope::ClientId => (None, Some(client_id)),
        };
        SensorKey {
            user: user.map(Box::from),
            client_id: client_id.map(Box::from),
        }
    }
}

/// Quotas of one user (or of the default user) at its three levels.
#[derive(Debug, Default, Clone)]
struct UserLevels {
    /// `/config/users/<user>/clients/<client-id>`
    by_client_id: HashMap<String, f64>,
    /// `/config/users/<user>/clients/<default>`
    default_client_id: Option<f64>,
    /// `/config/users/<user>`
    alone: Option<f64>,
}

impl UserLevels {
    fn find(&self, client_id: &str) -> Option<(Scope, f64)> {
        if let Some(&q) = self.by_client_id.get(client_id) {
            return Some((Scope::UserAndClientId, q));
        }
        if let Some(q) = self.default_client_id {
            return Some((Scope::UserAndClientId, q));
        }
        self.alone.map(|q| (Scope::User, q))
    }

    fn is_empty(&self) -> bool {
        self.by_client_id.is_empty() && self.default_client_id.is_none() && self.alone.is_none()
    }
}

/// The quotas of one key (`producer_byte_rate`, ...) over user and client-id entities.
#[derive(Debug, Default, Clone)]
pub struct ClientQuotaTable {
    users: HashMap<String, UserLevels>,
    default_user: UserLevels,
    /// `/config/clients/<client-id>`
    client_ids: HashMap<String, f64>,
    /// `/config/clients/<default>`
    default_client_id: Option<f64>,
}

impl ClientQuotaTable {
    /// Sets the quota of an entity: `user`/`client_id` are `None` when the entity has no
    /// such part, `Some(None)` for the default entity.
    pub fn set(&mut self, user: Option<Option<&str>>, client_id: Option<Option<&str>>, q: f64) {
        let levels = match user {
            None => None,
            Some(None) => Some(&mut self.default_user),
            Some(Some(u)) => Some(self.users.entry(u.to_string()).or_default()),
        };
        match (levels, client_id) {
            (Some(l), Some(Some(c))) => {
                l.by_client_id.insert(c.to_string(), q);
            }
            (Some(l), Some(None)) => l.default_client_id = Some(q),
            (Some(l), None) => l.alone = Some(q),
            (None, Some(Some(c))) => {
                self.client_ids.insert(c.to_string(), q);
            }
            (None, Some(None)) => self.default_client_id = Some(q),
            (None, None) => {}
        }
    }

    /// Whether no quota is configured.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
            && self.default_user.is_empty()
            && self.client_ids.is_empty()
            && self.default_client_id.is_none()
    }

    /// The quota that applies to (`user`, `client_id`) and the scope its rate is counted
    /// at; `None`: unlimited.
    pub fn resolve(&self, user: &str, client_id: &str) -> Option<(Scope, f64)> {
        if let Some(found) = self.users.get(user).and_then(|l| l.find(client_id)) {
            return Some(found);
        }
        if let Some(found) = self.default_user.find(client_id) {
            return Some(found);
        }
        if let Some(&q) = self.client_ids.get(client_id) {
            return Some((Scope::ClientId, q));
        }
        self.default_client_id.map(|q| (Scope::ClientId, q))
    }
}

/// Connection creation rate quotas by address.
#[derive(Debug, Default, Clone)]
pub struct IpQuotaTable {
    by_ip: HashMap<IpAddr, f64>,
    default: Option<f64>,
}

impl IpQuotaTable {
    /// The quota of `ip` (canonical form), its own or the default.
    pub fn resolve(&self, ip: IpAddr) -> Option<f64> {
        self.by_ip.get(&ip).copied().or(self.default)
    }

    /// Whether no quota is configured.
    pub fn is_empty(&self) -> bool {
        self.by_ip.is_empty() && self.default.is_none()
    }
}

/// Every quota table, built from the stored records.
#[derive(Debug, Default, Clone)]
pub struct Tables {
    /// `producer_byte_rate`.
    pub produce: ClientQuotaTable,
    /// `consumer_byte_rate`.
    pub fetch: ClientQuotaTable,
    /// `request_percentage`.
    pub request: ClientQuotaTable,
    /// `connection_creation_rate`.
    pub connections: IpQuotaTable,
}

impl Tables {
    /// The tables of `records`. A record AlterClientQuotas would not have written (an
    /// edited store) is skipped with a warning rather than refusing to start.
    pub fn build(records: &[ClientQuotaRecord]) -> Tables {
        let mut tables = Tables::default();
        for record in records {
            if let Err(e) = entity::check_entity(&record.entity) {
                tracing::warn!(
                    entity = %entity::display(&record.entity),
                    "ignoring a stored client quota: {e}"
                );
                continue;
            }
            for (key, &value) in &record.quotas {
                if let Err(e) = entity::check_quota(&record.entity, key, value) {
                    tracing::warn!(
                        entity = %entity::display(&record.entity),
                        "ignoring a stored client quota: {e}"
                    );
                    continue;
                }
                tables.set(&record.entity, key, value);
            }
        }
        tables
    }

    fn set(&mut self, entity: &entity::Entity, key: &str, value: f64) {
        let part = |t: &str| entity.get(t).map(|n| n.as_deref());
        if let Some(ip) = part(IP) {
            if key == CONNECTION_CREATION_RATE {
                match ip {
                    None => self.connections.default = Some(value),
                    Some(name) => {
                        if let Some(ip) = entity::parse_ip(name) {
                            self.connections.by_ip.insert(ip, value);
                        }
                    }
                }
            }
            return;
        }
        let table = match key {
            PRODUCER_BYTE_RATE => &mut self.produce,
            CONSUMER_BYTE_RATE => &mut self.fetch,
            REQUEST_PERCENTAGE => &mut self.request,
            // controller_mutation_rate: stored and described, not enforced.
            _ => return,
        };
        table.set(part(USER), part(CLIENT_ID), value);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn record(entity: &[(&str, Option<&str>)], key: &str, value: f64) -> ClientQuotaRecord {
        ClientQuotaRecord {
            entity: entity
                .iter()
                .map(|(t, n)| (t.to_string(), n.map(str::to_string)))
                .collect(),
            quotas: BTreeMap::from([(key.to_string(), value)]),
        }
    }

    /// The eight levels for (alice, app), each with its own value: level n has 1000 * n.
    fn eight_levels() -> Vec<ClientQuotaRecord> {
        let levels: [&[(&str, Option<&str>)]; 8] = [
            &[(USER, Some("alice")), (CLIENT_ID, Some("app"))],
            &[(USER, Some("alice")), (CLIENT_ID, None)],
            &[(USER, Some("alice"))],
            &[(USER, None), (CLIENT_ID, Some("app"))],
            &[(USER, None), (CLIENT_ID, None)],
            &[(USER, None)],
            &[(CLIENT_ID, Some("app"))],
            &[(CLIENT_ID, None)],
        ];
        levels
            .iter()
            .enumerate()
            .map(|(i, e)| record(e, PRODUCER_BYTE_RATE, 1000.0 * (i + 1) as f64))
            .collect()
    }

    #[test]
    fn precedence_follows_kafkas_eight_levels() {
        let scopes = [
            Scope::UserAndClientId,
            Scope::UserAndClientId,
            Scope::User,
            Scope::UserAndClientId,
            Scope::UserAndClientId,
            Scope::User,
            Scope::ClientId,
            Scope::ClientId,
        ];
        let mut records = eight_levels();
        for (level, scope) in scopes.into_iter().enumerate() {
            let tables = Tables::build(&records);
            assert_eq!(
                tables.produce.resolve("alice", "app"),
                Some((scope, 1000.0 * (level + 1) as f64)),
                "with levels {}..=8 configured",
                level + 1
            );
            records.remove(0);
        }
        assert_eq!(
            Tables::build(&records).produce.resolve("alice", "app"),
            None
        );
    }

    #[test]
    fn other_users_and_client_ids_fall_to_the_defaults() {
        let tables = Tables::build(&eight_levels());
        // bob has no quotas of his own: <default> user with client-id app (level 4).
        assert_eq!(
            tables.produce.resolve("bob", "app"),
            Some((Scope::UserAndClientId, 4000.0))
        );
        // alice with another client id: her <default> client id (level 2).
        assert_eq!(
            tables.produce.resolve("alice", "other"),
            Some((Scope::UserAndClientId, 2000.0))
        );
        // Neither: <default> user, <default> client id (level 5).
        assert_eq!(
            tables.produce.resolve("bob", "other"),
            Some((Scope::UserAndClientId, 5000.0))
        );
    }

    #[test]
    fn anonymous_is_a_user_that_default_user_quotas_apply_to() {
        let records = vec![
            record(&[(USER, None)], PRODUCER_BYTE_RATE, 10.0),
            record(&[(CLIENT_ID, Some("app"))], PRODUCER_BYTE_RATE, 99.0),
        ];
        let tables = Tables::build(&records);
        assert_eq!(
            tables.produce.resolve("ANONYMOUS", "app"),
            Some((Scope::User, 10.0))
        );
    }

    #[test]
    fn each_quota_key_has_its_own_precedence() {
        let records = vec![
            record(&[(USER, Some("alice"))], CONSUMER_BYTE_RATE, 10.0),
            record(&[(CLIENT_ID, Some("app"))], PRODUCER_BYTE_RATE, 20.0),
        ];
        let tables = Tables::build(&records);
        assert_eq!(
            tables.fetch.resolve("alice", "app"),
            Some((Scope::User, 10.0))
        );
        assert_eq!(
            tables.produce.resolve("alice", "app"),
            Some((Scope::ClientId, 20.0))
        );
        assert!(tables.request.is_empty());
    }

    #[test]
    fn ip_quotas_resolve_to_the_address_or_the_default() {
        let records = vec![
            record(&[(IP, Some("10.0.0.1"))], CONNECTION_CREATION_RATE, 100.0),
            record(&[(IP, None)], CONNECTION_CREATION_RATE, 5.0),
        ];
        let tables = Tables::build(&records);
        assert_eq!(
            tables.connections.resolve("10.0.0.1".parse().unwrap()),
            Some(100.0)
        );
        assert_eq!(
            tables.connections.resolve("10.0.0.2".parse().unwrap()),
            Some(5.0)
        );
    }

    #[test]
    fn invalid_stored_records_are_skipped() {
        let records = vec![
            record(&[(IP, Some("nonsense"))], CONNECTION_CREATION_RATE, 1.0),
            record(&[(USER, Some("a"))], PRODUCER_BYTE_RATE, -1.0),
            record(&[(USER, Some("a"))], "bogus", 1.0),
            record(&[("group", Some("g"))], PRODUCER_BYTE_RATE, 1.0),
        ];
        let tables = Tables::build(&records);
        assert!(tables.produce.is_empty() && tables.connections.is_empty());
    }
}

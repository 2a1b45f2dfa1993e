//! Quota entities and quota keys with Kafka's names, and Kafka's checks of them
//! (`ClientQuotaControlManager`): what AlterClientQuotas accepts and what the quota tables
//! are built from.
//!
//! An entity maps entity types (`user`, `client-id`, `ip`) to a name, or to `None` for the
//! type's default entity (`<default>`). Kafka allows a user, a client id, or both
//! (`/config/users/<user>/clients/<client-id>`), each named or default; or an IP address
//! alone, named or default. User and client-id entities take `producer_byte_rate` and
//! `consumer_byte_rate` (bytes per second, integers), `request_percentage` (percent of one
//! request-handling thread) and `controller_mutation_rate` (stored and described; Floe has
//! no controller mutation throttling); IP entities take `connection_creation_rate`
//! (connections per second, an integer). Every value must be greater than zero.

use std::collections::BTreeMap;
use std::net::IpAddr;

/// The user entity type.
pub const USER: &str = "user";
/// The client-id entity type.
pub const CLIENT_ID: &str = "client-id";
/// The IP entity type.
pub const IP: &str = "ip";

/// Bytes per second a client may produce.
pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
/// Bytes per second a client may fetch.
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
/// Percent of one request-handling thread a client may keep busy.
pub const REQUEST_PERCENTAGE: &str = "request_percentage";
/// Partition mutations per second (Kafka's controller quota; stored, not enforced).
pub const CONTROLLER_MUTATION_RATE: &str = "controller_mutation_rate";
/// New connections per second from one address.
pub const CONNECTION_CREATION_RATE: &str = "connection_creation_rate";

/// An entity: type to name, `None` for the default entity (the metadata store's form).
pub type Entity = BTreeMap<String, Option<String>>;

/// How Kafka's config definition types a key's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueType {
    Int,
    Long,
    Double,
}

/// The keys user and client-id entities take.
const CLIENT_KEYS: [(&str, ValueType); 4] = [
    (PRODUCER_BYTE_RATE, ValueType::Long),
    (CONSUMER_BYTE_RATE, ValueType::Long),
    (REQUEST_PERCENTAGE, ValueType::Double),
    (CONTROLLER_MUTATION_RATE, ValueType::Double),
];

/// The keys IP entities take.
const IP_KEYS: [(&str, ValueType); 1] = [(CONNECTION_CREATION_RATE, ValueType::Int)];

/// Builds an entity from its (type, name) parts as a request carries them, refusing what
/// Kafka refuses; the message is the INVALID_REQUEST error message.
pub fn parse_entity<'a>(
    parts: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> Result<Entity, String> {
    let mut entity = Entity::new();
    for (entity_type, name) in parts {
        if entity.contains_key(entity_type) {
            return Err(format!(
                "Invalid client quota entity, duplicate entity entry {entity_type}"
            ));
        }
        if ![USER, CLIENT_ID, IP].contains(&entity_type) {
            return Err(format!("Unhandled client quota entity type: {entity_type}"));
        }
        if name == Some("") {
            return Err(format!("Empty {entity_type} not supported"));
        }
        entity.insert(entity_type.to_string(), name.map(str::to_string));
    }
    check_entity(&entity)?;
    Ok(entity)
}

/// Checks the combination of entity types and the IP entity's name.
pub fn check_entity(entity: &Entity) -> Result<(), String> {
    if entity.is_empty() {
        return Err("Invalid empty client quota entity".into());
    }
    if let Some(ip) = entity.get(IP) {
        if entity.len() > 1 {
            return Err("Invalid quota entity combination, IP entity should not be \
                        combined with User or ClientId"
                .into());
        }
        if let Some(name) = ip
            && parse_ip(name).is_none()
        {
            return Err(format!("{name} is not a valid IP address"));
        }
    } else if entity.keys().any(|t| t != USER && t != CLIENT_ID) {
        // Only reachable for entities that did not come through `parse_entity`.
        return Err("Unhandled client quota entity type".into());
    }
    Ok(())
}

/// Checks one quota value for an entity that passed [`check_entity`].
pub fn check_quota(entity: &Entity, key: &str, value: f64) -> Result<(), String> {
    let keys: &[(&str, ValueType)] = if entity.contains_key(IP) {
        &IP_KEYS
    } else {
        &CLIENT_KEYS
    };
    let Some(&(_, value_type)) = keys.iter().find(|(k, _)| *k == key) else {
        return Err(format!("Invalid configuration key {key}"));
    };
    // Kafka lets NaN and infinities through for its DOUBLE keys; they cannot be stored
    // (the metadata store is JSON) and mean nothing as a rate.
    if !value.is_finite() {
        return Err(format!("Quota {key} must be a finite number"));
    }
    if value <= 0.0 {
        return Err(format!("Quota {key} must be greater than 0"));
    }
    let integral = |max: f64, type_name: &str| {
        if value > max {
            Err(format!(
                "Proposed value for {key} is too large for {type_name}."
            ))
        } else if (value % 1.0).abs() > 1e-6 {
            Err(format!("{key} cannot be a fractional value."))
        } else {
            Ok(())
        }
    };
    match value_type {
        ValueType::Double => Ok(()),
        ValueType::Int => integral(f64::from(i32::MAX), "an INT"),
        ValueType::Long => integral(i64::MAX as f64, "a LONG"),
    }
}

/// An IP entity's name as an address (literal addresses only: no name lookups), with
/// IPv4-mapped IPv6 addresses taken as the IPv4 address they map.
pub fn parse_ip(name: &str) -> Option<IpAddr> {
    name.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// The entity for messages and logs: `user=alice, client-id=<default>`.
pub fn display(entity: &Entity) -> String {
    entity
        .iter()
        .map(|(t, n)| format!("{t}={}", n.as_deref().unwrap_or("<default>")))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entity's (type, name) parts as a request carries them.
    type Parts<'a> = &'a [(&'a str, Option<&'a str>)];

    fn entity(parts: Parts<'_>) -> Result<Entity, String> {
        parse_entity(parts.iter().copied())
    }

    #[test]
    fn kafkas_entity_combinations_are_accepted() {
        for parts in [
            vec![(USER, Some("alice"))],
            vec![(USER, None)],
            vec![(CLIENT_ID, Some("app"))],
            vec![(CLIENT_ID, None)],
            vec![(USER, Some("alice")), (CLIENT_ID, Some("app"))],
            vec![(USER, None), (CLIENT_ID, None)],
            vec![(IP, Some("10.0.0.1"))],
            vec![(IP, Some("::1"))],
            vec![(IP, None)],
        ] {
            assert!(entity(&parts).is_ok(), "{parts:?}");
        }
    }

    #[test]
    fn other_entities_are_refused_with_kafkas_messages() {
        let cases: [(Parts<'_>, &str); 7] = [
            (&[], "Invalid empty client quota entity"),
            (
                &[(USER, Some("a")), (USER, Some("b"))],
                "Invalid client quota entity, duplicate entity entry user",
            ),
            (
                &[("group", Some("g"))],
                "Unhandled client quota entity type: group",
            ),
            (&[(CLIENT_ID, Some(""))], "Empty client-id not supported"),
            (
                &[(IP, Some("10.0.0.1")), (USER, Some("a"))],
                "Invalid quota entity combination, IP entity should not be combined with \
                 User or ClientId",
            ),
            (
                &[(IP, Some("broker.example"))],
                "broker.example is not a valid IP address",
            ),
            (
                &[(IP, Some("300.1.1.1"))],
                "300.1.1.1 is not a valid IP address",
            ),
        ];
        for (parts, message) in cases {
            assert_eq!(entity(parts).unwrap_err(), message, "{parts:?}");
        }
    }

    #[test]
    fn quota_values_are_checked_by_key_type() {
        let user = entity(&[(USER, Some("alice"))]).unwrap();
        let ip = entity(&[(IP, None)]).unwrap();
        assert!(check_quota(&user, PRODUCER_BYTE_RATE, 1024.0).is_ok());
        assert!(check_quota(&user, REQUEST_PERCENTAGE, 12.5).is_ok());
        assert!(check_quota(&user, CONTROLLER_MUTATION_RATE, 0.5).is_ok());
        assert!(check_quota(&ip, CONNECTION_CREATION_RATE, 10.0).is_ok());
        let refused = [
            (&user, "bogus", 1.0, "Invalid configuration key bogus"),
            (
                &user,
                CONNECTION_CREATION_RATE,
                1.0,
                "Invalid configuration key connection_creation_rate",
            ),
            (
                &ip,
                PRODUCER_BYTE_RATE,
                1.0,
                "Invalid configuration key producer_byte_rate",
            ),
            (
                &user,
                PRODUCER_BYTE_RATE,
                0.0,
                "Quota producer_byte_rate must be greater than 0",
            ),
            (
                &user,
                REQUEST_PERCENTAGE,
                -5.0,
                "Quota request_percentage must be greater than 0",
            ),
            (
                &user,
                PRODUCER_BYTE_RATE,
                10.5,
                "producer_byte_rate cannot be a fractional value.",
            ),
            (
                &ip,
                CONNECTION_CREATION_RATE,
                3e9,
                "Proposed value for connection_creation_rate is too large for an INT.",
            ),
            (
                &user,
                CONSUMER_BYTE_RATE,
                1e30,
                "Proposed value for consumer_byte_rate is too large for a LONG.",
            ),
            (
                &user,
                REQUEST_PERCENTAGE,
                f64::NAN,
                "Quota request_percentage must be a finite number",
            ),
            (
                &user,
                REQUEST_PERCENTAGE,
                f64::INFINITY,
                "Quota request_percentage must be a finite number",
            ),
        ];
        for (entity, key, value, message) in refused {
            assert_eq!(check_quota(entity, key, value).unwrap_err(), message);
        }
    }

    #[test]
    fn ip_names_are_canonical_addresses() {
        assert_eq!(parse_ip("::ffff:10.0.0.1"), parse_ip("10.0.0.1"));
        assert_eq!(parse_ip("::1"), Some("::1".parse().unwrap()));
        assert_eq!(parse_ip("localhost"), None);
    }
}

//! Broker-side schema validation (Confluent's `confluent.value.schema.validation` and
//! `confluent.key.schema.validation` topic configs): a record's key or value must be in the
//! registry's wire format, with a schema id the registry knows, registered under the subject
//! the topic's subject name strategy gives. The broker refuses a produce batch holding any
//! record that is not, with INVALID_RECORD and each failing record's index and reason.
//!
//! Null keys and values pass (a tombstone has no schema). The payload itself is not decoded:
//! as with Confluent's validation, the check is that the record names a schema registered for
//! the topic, which is what consumers and tables depend on.

use crate::registry::Registry;
use crate::schema::Parsed;
use crate::wire;

/// How the subject of a record is named (`confluent.*.subject.name.strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubjectStrategy {
    /// `<topic>-key` / `<topic>-value` (the default).
    #[default]
    Topic,
    /// The schema's record name (Avro full name, Protobuf message full name, JSON Schema
    /// `title`).
    Record,
    /// `<topic>-<record name>`.
    TopicRecord,
}

/// The class names Confluent's configs take, in order: topic, record, topic-record.
pub const STRATEGY_NAMES: [&str; 3] = [
    "io.confluent.kafka.serializers.subject.TopicNameStrategy",
    "io.confluent.kafka.serializers.subject.RecordNameStrategy",
    "io.confluent.kafka.serializers.subject.TopicRecordNameStrategy",
];

impl SubjectStrategy {
    /// Parses a strategy's class name (or its short name: `TopicNameStrategy`, ...).
    pub fn parse(name: &str) -> Option<SubjectStrategy> {
        let short = name.rsplit('.').next().unwrap_or(name);
        match short {
            "TopicNameStrategy" => Some(SubjectStrategy::Topic),
            "RecordNameStrategy" => Some(SubjectStrategy::Record),
            "TopicRecordNameStrategy" => Some(SubjectStrategy::TopicRecord),
            _ => None,
        }
    }
}

/// Checks one record key or value of `topic`; the error is the per-record message the
/// producer sees.
pub fn check(
    registry: &Registry,
    topic: &str,
    is_key: bool,
    strategy: SubjectStrategy,
    bytes: Option<&[u8]>,
) -> Result<(), String> {
    let what = if is_key { "key" } else { "value" };
    let Some(bytes) = bytes else {
        return Ok(());
    };
    let (id, payload) = wire::split(bytes)
        .map_err(|e| format!("{what} is not in the schema registry's wire format: {e}"))?;
    let parsed = registry.parsed(id).map_err(|_| {
        format!("{what} names schema id {id}, which the schema registry does not know")
    })?;
    let subject = match strategy {
        SubjectStrategy::Topic => format!("{topic}-{what}"),
        SubjectStrategy::Record => record_name(&parsed, payload)?,
        SubjectStrategy::TopicRecord => format!("{topic}-{}", record_name(&parsed, payload)?),
    };
    let registered = registry
        .id_versions(id, false)
        .map(|uses| uses.iter().any(|(s, _)| *s == subject))
        .unwrap_or(false);
    if !registered {
        return Err(format!(
            "{what} names schema id {id}, which is not registered under subject {subject}"
        ));
    }
    Ok(())
}

/// The record name of a schema (what the record-name strategies use).
fn record_name(parsed: &Parsed, payload: &[u8]) -> Result<String, String> {
    match parsed {
        Parsed::Avro(avro) => match avro.schema() {
            apache_avro::Schema::Record(r) => Ok(r.name.fullname(None)),
            apache_avro::Schema::Enum(e) => Ok(e.name.fullname(None)),
            apache_avro::Schema::Fixed(f) => Ok(f.name.fullname(None)),
            _ => Err(
                "the record-name strategies need a named Avro schema (record, enum or fixed)"
                    .into(),
            ),
        },
        Parsed::Json(json) => json
            .value()
            .get("title")
            .and_then(|t| t.as_str())
            .map(str::to_string)
            .ok_or_else(|| "the record-name strategies need a JSON Schema with a title".into()),
        Parsed::Protobuf(proto) => {
            let (indexes, _) = wire::split_indexes(payload).map_err(|e| e.to_string())?;
            proto
                .message_by_indexes(&indexes)
                .map(|m| m.full_name().to_string())
                .ok_or_else(|| format!("no message at indexes {indexes:?} in the Protobuf schema"))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::registry::memory::MemoryLog;
    use crate::registry::{NewSchema, Settings};

    #[tokio::test]
    async fn records_must_name_a_schema_of_their_subject() {
        let log = Arc::new(MemoryLog::default());
        let r = log.reopen(Settings::default());
        let order = r#"{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"id","type":"long"}]}"#;
        let id = r
            .register(
                "orders-value",
                NewSchema {
                    schema: order.into(),
                    ..NewSchema::default()
                },
            )
            .await
            .unwrap()
            .schema
            .id;
        let other = r
            .register(
                "payments-value",
                NewSchema {
                    schema: "\"string\"".into(),
                    ..NewSchema::default()
                },
            )
            .await
            .unwrap()
            .schema
            .id;
        let good = [wire::header(id, None), vec![2]].concat();
        let t = SubjectStrategy::Topic;
        assert_eq!(check(&r, "orders", false, t, Some(&good)), Ok(()));
        assert_eq!(check(&r, "orders", false, t, None), Ok(()));
        let wrong_subject = [wire::header(other, None), vec![2]].concat();
        let e = check(&r, "orders", false, t, Some(&wrong_subject)).unwrap_err();
        assert!(e.contains("orders-value"), "{e}");
        let unknown = [wire::header(99, None), vec![2]].concat();
        assert!(
            check(&r, "orders", false, t, Some(&unknown))
                .unwrap_err()
                .contains("99")
        );
        assert!(
            check(&r, "orders", false, t, Some(b"{\"id\":1}"))
                .unwrap_err()
                .contains("wire format")
        );
        // As a key, the subject is orders-key: not registered.
        assert!(check(&r, "orders", true, t, Some(&good)).is_err());
        // Record-name strategies.
        r.register(
            "shop.Order",
            NewSchema {
                schema: order.into(),
                ..NewSchema::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(
            check(&r, "orders", false, SubjectStrategy::Record, Some(&good)),
            Ok(())
        );
        assert!(
            check(
                &r,
                "orders",
                false,
                SubjectStrategy::TopicRecord,
                Some(&good)
            )
            .is_err()
        );
        assert!(
            check(
                &r,
                "x",
                false,
                SubjectStrategy::Record,
                Some(&wrong_subject)
            )
            .is_err()
        );
    }

    #[test]
    fn strategies_parse_by_class_or_short_name() {
        for (name, want) in STRATEGY_NAMES.iter().zip([
            SubjectStrategy::Topic,
            SubjectStrategy::Record,
            SubjectStrategy::TopicRecord,
        ]) {
            assert_eq!(SubjectStrategy::parse(name), Some(want));
        }
        assert_eq!(
            SubjectStrategy::parse("TopicNameStrategy"),
            Some(SubjectStrategy::Topic)
        );
        assert_eq!(SubjectStrategy::parse("Nope"), None);
    }
}

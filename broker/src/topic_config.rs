//! Topic-level configs with Kafka's names: which exist, their defaults (from the broker
//! config), how values are validated, and how they become a storage [`LogConfig`].

use std::collections::BTreeMap;

use floe_storage::LogConfig;

use crate::config::Config;

/// Kafka's config types as reported by DescribeConfigs v3+ (`ConfigType` in the protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    /// BOOLEAN.
    Boolean = 1,
    /// STRING.
    String = 2,
    /// INT.
    Int = 3,
    /// SHORT.
    Short = 4,
    /// LONG.
    Long = 5,
    /// DOUBLE.
    Double = 6,
    /// LIST.
    List = 7,
}

/// One known topic config.
pub struct TopicConfigDef {
    /// Kafka's name.
    pub name: &'static str,
    /// Its type.
    pub kind: ConfigType,
    /// One-line documentation.
    pub doc: &'static str,
    /// Allowed values for enumerations (empty: any value of the type).
    pub allowed: &'static [&'static str],
    /// Smallest allowed numeric value.
    pub min: i64,
}

const fn def(
    name: &'static str,
    kind: ConfigType,
    min: i64,
    allowed: &'static [&'static str],
    doc: &'static str,
) -> TopicConfigDef {
    TopicConfigDef {
        name,
        kind,
        doc,
        allowed,
        min,
    }
}

/// Every topic config Floe accepts, in the order DescribeConfigs lists them.
pub const TOPIC_CONFIGS: &[TopicConfigDef] = {
    use ConfigType::*;
    &[
        def(
            "cleanup.policy",
            List,
            0,
            &["delete", "compact"],
            "Retention policy: delete old segments, or compact by key.",
        ),
        def(
            "compression.type",
            String,
            0,
            &["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"],
            "Final compression of the topic's batches; 'producer' keeps what the producer sent.",
        ),
        // Broker-side schema validation (the schema registry; docs/schema-registry.md).
        def(
            "confluent.key.schema.validation",
            Boolean,
            0,
            &[],
            "Refuse records whose key does not name a schema of its subject in the schema registry.",
        ),
        def(
            "confluent.key.subject.name.strategy",
            String,
            0,
            &floe_registry::validation::STRATEGY_NAMES,
            "How the subject of a key is named for schema validation.",
        ),
        def(
            "confluent.value.schema.validation",
            Boolean,
            0,
            &[],
            "Refuse records whose value does not name a schema of its subject in the schema registry.",
        ),
        def(
            "confluent.value.subject.name.strategy",
            String,
            0,
            &floe_registry::validation::STRATEGY_NAMES,
            "How the subject of a value is named for schema validation.",
        ),
        def(
            "delete.retention.ms",
            Long,
            0,
            &[],
            "How long tombstones are kept for compacted topics.",
        ),
        def(
            "file.delete.delay.ms",
            Long,
            0,
            &[],
            "Delay before a deleted segment file is removed.",
        ),
        def(
            "flush.messages",
            Long,
            1,
            &[],
            "Force an fsync after this many messages.",
        ),
        def(
            "flush.ms",
            Long,
            0,
            &[],
            "Force an fsync after this many milliseconds.",
        ),
        def(
            "index.interval.bytes",
            Int,
            0,
            &[],
            "Bytes of log between offset-index entries.",
        ),
        def(
            "local.retention.bytes",
            Long,
            -2,
            &[],
            "Largest local size of a tiered partition before uploaded segments are deleted locally; -2 is retention.bytes, -1 unlimited.",
        ),
        def(
            "local.retention.ms",
            Long,
            -2,
            &[],
            "How long uploaded segments of a tiered partition stay on local disk; -2 is retention.ms, -1 forever.",
        ),
        def(
            "max.compaction.lag.ms",
            Long,
            1,
            &[],
            "Longest a message stays ineligible for compaction.",
        ),
        def(
            "max.message.bytes",
            Int,
            0,
            &[],
            "Largest record batch the topic accepts (compressed size).",
        ),
        def(
            "message.downconversion.enable",
            Boolean,
            0,
            &[],
            "Accepted and ignored, as Kafka 3.x does: Floe serves record batch format v2 only (Produce v3+, Fetch v4+), so there is nothing to down-convert.",
        ),
        def(
            "message.format.version",
            String,
            0,
            &[],
            "Accepted and ignored, as Kafka 3.x does: batches are always stored in format v2.",
        ),
        def(
            "message.timestamp.type",
            String,
            0,
            &["CreateTime", "LogAppendTime"],
            "Whether record timestamps are the producer's or the broker's.",
        ),
        def(
            "min.cleanable.dirty.ratio",
            Double,
            0,
            &[],
            "Dirty ratio above which the log is compacted.",
        ),
        def(
            "min.compaction.lag.ms",
            Long,
            0,
            &[],
            "Shortest a message stays uncompacted.",
        ),
        def(
            "min.insync.replicas",
            Int,
            1,
            &[],
            "Replicas that must acknowledge an acks=all write.",
        ),
        def("preallocate", Boolean, 0, &[], "Preallocate segment files."),
        def(
            "remote.storage.enable",
            Boolean,
            0,
            &[],
            "Tier closed segments to the remote object store (cleanup.policy=delete only).",
        ),
        def(
            "retention.bytes",
            Long,
            -1,
            &[],
            "Largest size of a partition before old segments are deleted; -1 is unlimited.",
        ),
        def(
            "retention.ms",
            Long,
            -1,
            &[],
            "Longest a segment is kept; -1 is unlimited.",
        ),
        def(
            "segment.bytes",
            Int,
            14,
            &[],
            "Size at which the active segment is rolled.",
        ),
        def(
            "segment.index.bytes",
            Int,
            4,
            &[],
            "Largest size of a segment's offset index.",
        ),
        def(
            "segment.jitter.ms",
            Long,
            0,
            &[],
            "Random jitter subtracted from segment.ms.",
        ),
        def(
            "segment.ms",
            Long,
            1,
            &[],
            "Age at which the active segment is rolled.",
        ),
        def(
            "storage.recovery",
            String,
            0,
            &["refuse", "truncate"],
            "Damage found at start-up before the log's tail: refuse (the partition stays offline) or truncate (cut the log there).",
        ),
        // Tableflow (validated by floe_tableflow::validate, documented in docs/tableflow.md).
        def(
            "table.commit.interval.ms",
            Long,
            10,
            &[],
            "Longest time materialized rows wait for an Iceberg commit.",
        ),
        def(
            "table.enable",
            Boolean,
            0,
            &[],
            "Materialize this topic as an Apache Iceberg table.",
        ),
        def(
            "table.json.schema",
            String,
            0,
            &[],
            "Iceberg schema JSON of json-mode values.",
        ),
        def(
            "table.maintenance.compaction.enable",
            Boolean,
            0,
            &[],
            "Rewrite small data files of a table partition into files of the target size.",
        ),
        def(
            "table.maintenance.compaction.min.files",
            Long,
            2,
            &[],
            "Small files a table partition must have before it is compacted.",
        ),
        def(
            "table.maintenance.compaction.small.file.bytes",
            Long,
            1,
            &[],
            "Data files smaller than this are compaction candidates.",
        ),
        def(
            "table.maintenance.compaction.target.file.bytes",
            Long,
            1048576,
            &[],
            "Size of the data files compaction writes.",
        ),
        def(
            "table.maintenance.enable",
            Boolean,
            0,
            &[],
            "Run snapshot expiry, orphan-file cleanup and small-file compaction on the table.",
        ),
        def(
            "table.maintenance.interval.ms",
            Long,
            1000,
            &[],
            "Time between two maintenance rounds of the table.",
        ),
        def(
            "table.maintenance.metadata.previous.versions.max",
            Long,
            1,
            &[],
            "Previous metadata files kept (Iceberg write.metadata.previous-versions-max).",
        ),
        def(
            "table.maintenance.orphan.age.ms",
            Long,
            1000,
            &[],
            "Files no snapshot references are deleted once older than this.",
        ),
        def(
            "table.maintenance.snapshot.max.age.ms",
            Long,
            1,
            &[],
            "Snapshots older than this are expired (Iceberg history.expire.max-snapshot-age-ms).",
        ),
        def(
            "table.maintenance.snapshot.min.keep",
            Long,
            1,
            &[],
            "Snapshots always kept (Iceberg history.expire.min-snapshots-to-keep).",
        ),
        def(
            "table.mode",
            String,
            0,
            &["key_value", "json", "schema"],
            "key_value: key and value as binary; json: columns from table.json.schema; schema: typed columns from the schema registry.",
        ),
        def(
            "table.name",
            String,
            0,
            &[],
            "Iceberg table name (default: the topic name).",
        ),
        def(
            "table.namespace",
            String,
            0,
            &[],
            "Iceberg namespace (default: the broker's tableflow_namespace).",
        ),
        def(
            "table.partition.by",
            String,
            0,
            &[],
            "Table partitioning: none, hour(col), day(col), month(col), year(col), identity(col).",
        ),
        def(
            "table.retention.hold.ms",
            Long,
            0,
            &[],
            "How long retention waits for records the table has not materialized (0: never).",
        ),
        def(
            "table.schema.subject",
            String,
            0,
            &[],
            "Schema-mode subject whose latest version creates the table (default: <topic>-value).",
        ),
        def(
            "table.schema.wire.format",
            Boolean,
            0,
            &[],
            "Schema-mode values start with the registry's wire-format header; false: bare payloads decoded with the latest version of table.schema.subject.",
        ),
        def(
            "unclean.leader.election.enable",
            Boolean,
            0,
            &[],
            "Allow out-of-sync replicas to become leader.",
        ),
    ]
};

/// Looks up a topic config by name.
pub fn find(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Checks one `name = value` override; the error text goes to the client.
pub fn validate(name: &str, value: &str) -> Result<(), String> {
    let Some(d) = find(name) else {
        return Err(format!("Unknown topic config name: {name}"));
    };
    if floe_tableflow::is_table_config(name) {
        return floe_tableflow::validate(name, value).map_err(|e| {
            format!(
                "Invalid value {value} for configuration {name}: {}",
                e.reason
            )
        });
    }
    let invalid = |why: &str| {
        Err(format!(
            "Invalid value {value} for configuration {name}: {why}"
        ))
    };
    if name == "message.format.version" && !is_message_format_version(value) {
        return invalid("Not a Kafka version such as 2.8 or 3.0-IV1");
    }
    match d.kind {
        ConfigType::Boolean => {
            if !matches!(value.to_ascii_lowercase().as_str(), "true" | "false") {
                return invalid("Expected value to be either true or false");
            }
        }
        ConfigType::Int | ConfigType::Long | ConfigType::Short => {
            let Ok(v) = value.trim().parse::<i64>() else {
                return invalid("Not a number of the right type");
            };
            if d.kind == ConfigType::Int && i32::try_from(v).is_err() {
                return invalid("Not a number of type INT");
            }
            if v < d.min {
                return invalid(&format!("Value must be at least {}", d.min));
            }
        }
        ConfigType::Double => {
            if value.trim().parse::<f64>().is_err() {
                return invalid("Not a number of type DOUBLE");
            }
        }
        ConfigType::String | ConfigType::List => {
            if !d.allowed.is_empty() {
                let items: Vec<&str> = if d.kind == ConfigType::List {
                    value.split(',').map(str::trim).collect()
                } else {
                    vec![value]
                };
                if items.iter().any(|i| !d.allowed.contains(i)) {
                    return invalid(&format!("String must be one of: {}", d.allowed.join(", ")));
                }
            }
        }
    }
    Ok(())
}

/// Checks the `table.*` configs of a topic together (a json mode needs a schema, a
/// partition column must exist); single values are checked by [`validate`].
pub fn validate_table_configs(
    topic: &str,
    configs: &BTreeMap<String, String>,
) -> Result<(), String> {
    if configs
        .get("remote.storage.enable")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        && configs
            .get("cleanup.policy")
            .is_some_and(|p| p.split(',').any(|p| p.trim() == "compact"))
    {
        return Err(format!(
            "Invalid configuration for topic {topic}: remote.storage.enable=true needs cleanup.policy=delete; compacted topics cannot be tiered"
        ));
    }
    floe_tableflow::validate_topic_configs(topic, configs).map_err(|e| e.to_string())
}

/// A Kafka release version as `message.format.version` takes it: `0.10.2`, `2.8`,
/// `3.0-IV1`.
fn is_message_format_version(value: &str) -> bool {
    let (version, iv) = match value.split_once("-IV") {
        Some((v, iv)) => (v, Some(iv)),
        None => (value, None),
    };
    let parts: Vec<&str> = version.split('.').collect();
    (2..=3).contains(&parts.len())
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && iv.is_none_or(|iv| !iv.is_empty() && iv.bytes().all(|b| b.is_ascii_digit()))
}

/// The broker-wide default of a topic config, as Kafka derives it from broker settings.
pub fn default_value(name: &str, config: &Config) -> String {
    match name {
        "cleanup.policy" => "delete".into(),
        "compression.type" => "producer".into(),
        "confluent.key.schema.validation" | "confluent.value.schema.validation" => "false".into(),
        "confluent.key.subject.name.strategy" | "confluent.value.subject.name.strategy" => {
            floe_registry::validation::STRATEGY_NAMES[0].into()
        }
        "delete.retention.ms" => config.log_cleaner_delete_retention_ms.to_string(),
        "file.delete.delay.ms" => config.log_segment_delete_delay_ms.to_string(),
        "flush.messages" | "flush.ms" => i64::MAX.to_string(),
        "max.compaction.lag.ms" => config.log_cleaner_max_compaction_lag_ms.to_string(),
        "index.interval.bytes" => config.log_index_interval_bytes.to_string(),
        "max.message.bytes" => config.message_max_bytes.to_string(),
        "message.timestamp.type" => "CreateTime".into(),
        "message.format.version" => "3.0-IV1".into(),
        "message.downconversion.enable" => "true".into(),
        "min.cleanable.dirty.ratio" => config.log_cleaner_min_cleanable_ratio.to_string(),
        "min.compaction.lag.ms" => config.log_cleaner_min_compaction_lag_ms.to_string(),
        "segment.jitter.ms" => "0".into(),
        "min.insync.replicas" => "1".into(),
        "preallocate" | "unclean.leader.election.enable" => "false".into(),
        "remote.storage.enable" => config.remote_storage_enable.to_string(),
        "local.retention.ms" => config.log_local_retention_ms.to_string(),
        "local.retention.bytes" => config.log_local_retention_bytes.to_string(),
        "retention.bytes" => config.log_retention_bytes.to_string(),
        "retention.ms" => config.log_retention_ms().to_string(),
        "segment.bytes" => config.log_segment_bytes.to_string(),
        "segment.index.bytes" => "10485760".into(),
        "segment.ms" => config.log_roll_ms.to_string(),
        "storage.recovery" => config.storage.recovery.as_str().into(),
        "table.commit.interval.ms" => "5000".into(),
        "table.enable" => "false".into(),
        "table.mode" => "key_value".into(),
        "table.partition.by" => "none".into(),
        name if name.starts_with("table.") => match config.tableflow_table_defaults.get(name) {
            Some(v) => v.clone(),
            None => floe_tableflow::TABLE_CONFIGS
                .iter()
                .find(|d| d.name == name)
                .map(|d| d.default.to_string())
                .unwrap_or_default(),
        },
        _ => String::new(),
    }
}

/// The effective value of a config for a topic with `overrides`.
pub fn effective(name: &str, overrides: &BTreeMap<String, String>, config: &Config) -> String {
    overrides
        .get(name)
        .cloned()
        .unwrap_or_else(|| default_value(name, config))
}

/// The storage settings of a topic's partitions.
pub fn log_config(overrides: &BTreeMap<String, String>, config: &Config) -> LogConfig {
    let num = |name: &str| {
        effective(name, overrides, config)
            .trim()
            .parse::<i64>()
            .ok()
    };
    let mut log = LogConfig::default();
    if let Some(v) = num("segment.bytes") {
        log.segment_bytes = v.max(14) as u64;
    }
    if let Some(v) = num("segment.ms") {
        log.segment_ms = v.max(1) as u64;
    }
    if let Some(v) = num("index.interval.bytes") {
        log.index_interval_bytes = v.clamp(0, i32::MAX as i64) as u32;
    }
    if let Some(v) = num("segment.index.bytes") {
        log.segment_index_bytes = v.clamp(8, i32::MAX as i64) as u32;
    }
    if let Some(v) = num("max.message.bytes") {
        log.max_message_bytes = v.clamp(0, i32::MAX as i64) as u32;
    }
    // Kafka's default for both is Long.MAX_VALUE: never; storage says that with u64::MAX.
    let never_at_max = |v: i64| {
        if v == i64::MAX {
            u64::MAX
        } else {
            v.max(0) as u64
        }
    };
    if let Some(v) = num("flush.messages") {
        log.flush_messages = never_at_max(v.max(1));
    }
    if let Some(v) = num("flush.ms") {
        log.flush_ms = never_at_max(v);
    }
    // -1 (any negative) is unlimited.
    if let Some(v) = num("retention.ms") {
        log.retention_ms = u64::try_from(v).ok();
    }
    if let Some(v) = num("retention.bytes") {
        log.retention_bytes = u64::try_from(v).ok();
    }
    if let Some(v) = num("file.delete.delay.ms") {
        log.file_delete_delay_ms = v.max(0) as u64;
    }
    if let Some(policy) =
        floe_storage::CleanupPolicy::parse(&effective("cleanup.policy", overrides, config))
    {
        log.cleanup_policy = policy;
    }
    if let Ok(ratio) = effective("min.cleanable.dirty.ratio", overrides, config)
        .trim()
        .parse::<f64>()
    {
        log.min_cleanable_dirty_ratio = ratio.clamp(0.0, 1.0);
    }
    if let Some(v) = num("min.compaction.lag.ms") {
        log.min_compaction_lag_ms = v.max(0) as u64;
    }
    if let Some(v) = num("max.compaction.lag.ms") {
        log.max_compaction_lag_ms = never_at_max(v.max(1));
    }
    if let Some(v) = num("delete.retention.ms") {
        log.delete_retention_ms = never_at_max(v);
    }
    if let Some(mode) =
        crate::config::RecoveryMode::parse(&effective("storage.recovery", overrides, config))
    {
        log.recovery = mode.policy();
    }
    // Tiered storage: only for delete-only topics (a compacted one under a broker default
    // of true stays local).
    log.remote_storage_enable = effective("remote.storage.enable", overrides, config)
        .eq_ignore_ascii_case("true")
        && log.cleanup_policy.delete
        && !log.cleanup_policy.compact;
    // -2: the whole-log setting; -1 (any other negative): unlimited.
    log.local_retention_ms = match num("local.retention.ms") {
        Some(-2) | None => log.retention_ms,
        Some(v) => u64::try_from(v).ok(),
    };
    log.local_retention_bytes = match num("local.retention.bytes") {
        Some(-2) | None => log.retention_bytes,
        Some(v) => u64::try_from(v).ok(),
    };
    log.local_hard_limit_bytes = u64::try_from(config.log_local_hard_limit_bytes).ok();
    log
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_matches_kafka_rules() {
        assert!(validate("retention.ms", "1000").is_ok());
        assert!(validate("retention.ms", "-1").is_ok());
        assert!(validate("retention.ms", "-2").is_err());
        assert!(validate("retention.ms", "soon").is_err());
        assert!(validate("cleanup.policy", "compact,delete").is_ok());
        assert!(validate("cleanup.policy", "shred").is_err());
        assert!(validate("segment.bytes", "99999999999").is_err());
        assert!(
            validate("no.such.config", "1")
                .unwrap_err()
                .contains("Unknown")
        );
        assert!(validate("preallocate", "yes").is_err());
        // Kafka 3.x accepts (and ignores) the old message format settings.
        assert!(validate("message.format.version", "2.8").is_ok());
        assert!(validate("message.format.version", "3.0-IV1").is_ok());
        assert!(validate("message.format.version", "0.10.2").is_ok());
        assert!(validate("message.format.version", "latest").is_err());
        assert!(validate("message.downconversion.enable", "false").is_ok());
    }

    #[test]
    fn overrides_reach_the_log_config() {
        let config = Config::default();
        let overrides = [("segment.bytes".to_string(), "4096".to_string())].into();
        assert_eq!(log_config(&overrides, &config).segment_bytes, 4096);
        let defaults = log_config(&BTreeMap::new(), &config);
        assert_eq!(
            (defaults.flush_messages, defaults.flush_ms),
            (u64::MAX, u64::MAX)
        );
        let overrides = [
            ("flush.messages".to_string(), "1".to_string()),
            ("flush.ms".to_string(), "250".to_string()),
        ]
        .into();
        let flushing = log_config(&overrides, &config);
        assert_eq!((flushing.flush_messages, flushing.flush_ms), (1, 250));
        assert_eq!(
            log_config(&BTreeMap::new(), &config).max_message_bytes,
            config.message_max_bytes
        );
        let truncating = [("storage.recovery".to_string(), "truncate".to_string())].into();
        assert_eq!(
            log_config(&truncating, &config).recovery,
            floe_storage::RecoveryPolicy::TruncateCorruption
        );
        assert_eq!(
            defaults.recovery,
            floe_storage::RecoveryPolicy::TolerateTailCorruption
        );
        assert!(validate("storage.recovery", "ignore").is_err());
        let mut broker_truncates = Config::default();
        broker_truncates.storage.recovery = crate::config::RecoveryMode::Truncate;
        assert_eq!(
            log_config(&BTreeMap::new(), &broker_truncates).recovery,
            floe_storage::RecoveryPolicy::TruncateCorruption
        );
        for d in TOPIC_CONFIGS {
            assert!(
                validate(d.name, &default_value(d.name, &config)).is_ok(),
                "default of {} must be valid",
                d.name
            );
        }
    }

    #[test]
    fn tiering_configs_resolve_and_refuse_compaction() {
        let config = Config::default();
        let tiered: BTreeMap<String, String> = [
            ("remote.storage.enable", "true"),
            ("retention.bytes", "1000000"),
            ("local.retention.ms", "60000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let log = log_config(&tiered, &config);
        assert!(log.remote_storage_enable);
        assert_eq!(log.local_retention_ms, Some(60_000));
        // -2 (the default): the whole-log setting.
        assert_eq!(log.local_retention_bytes, Some(1_000_000));
        assert_eq!(log.local_hard_limit_bytes, Some(10 << 30));
        assert!(validate("local.retention.bytes", "-2").is_ok());
        assert!(validate("local.retention.bytes", "-3").is_err());
        assert!(validate_table_configs("t", &tiered).is_ok());
        let mut compacted = tiered.clone();
        compacted.insert("cleanup.policy".into(), "compact".into());
        assert!(
            validate_table_configs("t", &compacted)
                .unwrap_err()
                .contains("cleanup.policy=delete")
        );
        // A broker default of true leaves compacted topics local.
        let broker_default = Config {
            remote_storage_enable: true,
            ..Config::default()
        };
        let only_compact: BTreeMap<String, String> =
            [("cleanup.policy".to_string(), "compact".to_string())].into();
        assert!(!log_config(&only_compact, &broker_default).remote_storage_enable);
        assert!(log_config(&BTreeMap::new(), &broker_default).remote_storage_enable);
    }
}

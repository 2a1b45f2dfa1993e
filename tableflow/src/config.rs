//! Settings: the per-topic `table.*` configs (Kafka-style names, validated here so the
//! broker can delegate) and the broker-level [`TableflowSettings`] (catalog, warehouse,
//! object store).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use iceberg::spec::StructType;

use crate::schema;

/// `table.enable`: materialize the topic as an Iceberg table.
pub const TABLE_ENABLE: &str = "table.enable";
/// `table.mode`: `key_value` or `json`.
pub const TABLE_MODE: &str = "table.mode";
/// `table.json.schema`: the value schema of `json` mode, as Iceberg schema JSON.
pub const TABLE_JSON_SCHEMA: &str = "table.json.schema";
/// `table.schema.subject`: the registry subject of schema-mode values.
pub const TABLE_SCHEMA_SUBJECT: &str = "table.schema.subject";
/// `table.schema.wire.format`: schema-mode values carry the wire-format header.
pub const TABLE_SCHEMA_WIRE_FORMAT: &str = "table.schema.wire.format";
/// `table.partition.by`: `none`, `hour(col)`, `day(col)`, `identity(col)`, ...
pub const TABLE_PARTITION_BY: &str = "table.partition.by";
/// `table.commit.interval.ms`: longest time rows wait before an Iceberg commit.
pub const TABLE_COMMIT_INTERVAL_MS: &str = "table.commit.interval.ms";
/// `table.namespace`: Iceberg namespace (default: the broker's `tableflow_namespace`).
pub const TABLE_NAMESPACE: &str = "table.namespace";
/// `table.name`: Iceberg table name (default: the topic name).
pub const TABLE_NAME: &str = "table.name";

/// Default of `table.commit.interval.ms`.
pub const DEFAULT_COMMIT_INTERVAL_MS: u64 = 5000;

/// `table.maintenance.enable`: run snapshot expiry, orphan-file cleanup and small-file
/// compaction on the table in the background.
pub const TABLE_MAINTENANCE_ENABLE: &str = "table.maintenance.enable";
/// `table.maintenance.interval.ms`: time between two maintenance rounds of a table.
pub const TABLE_MAINTENANCE_INTERVAL_MS: &str = "table.maintenance.interval.ms";
/// `table.maintenance.snapshot.max.age.ms`: written to the table as Iceberg's
/// `history.expire.max-snapshot-age-ms`.
pub const TABLE_MAINTENANCE_SNAPSHOT_MAX_AGE_MS: &str = "table.maintenance.snapshot.max.age.ms";
/// `table.maintenance.snapshot.min.keep`: written to the table as Iceberg's
/// `history.expire.min-snapshots-to-keep`.
pub const TABLE_MAINTENANCE_SNAPSHOT_MIN_KEEP: &str = "table.maintenance.snapshot.min.keep";
/// `table.maintenance.metadata.previous.versions.max`: written to the table as Iceberg's
/// `write.metadata.previous-versions-max` (with `write.metadata.delete-after-commit.enabled`).
pub const TABLE_MAINTENANCE_METADATA_VERSIONS_MAX: &str =
    "table.maintenance.metadata.previous.versions.max";
/// `table.maintenance.orphan.age.ms`: files no snapshot references are deleted once older.
pub const TABLE_MAINTENANCE_ORPHAN_AGE_MS: &str = "table.maintenance.orphan.age.ms";
/// `table.maintenance.compaction.enable`: rewrite small data files into large ones.
pub const TABLE_MAINTENANCE_COMPACTION_ENABLE: &str = "table.maintenance.compaction.enable";
/// `table.maintenance.compaction.small.file.bytes`: data files below this size are
/// compaction candidates.
pub const TABLE_MAINTENANCE_COMPACTION_SMALL_FILE_BYTES: &str =
    "table.maintenance.compaction.small.file.bytes";
/// `table.maintenance.compaction.min.files`: a table partition is compacted once it has this
/// many small files.
pub const TABLE_MAINTENANCE_COMPACTION_MIN_FILES: &str = "table.maintenance.compaction.min.files";
/// `table.maintenance.compaction.target.file.bytes`: size of the files compaction writes.
pub const TABLE_MAINTENANCE_COMPACTION_TARGET_FILE_BYTES: &str =
    "table.maintenance.compaction.target.file.bytes";
/// `table.retention.hold.ms`: how long the topic's retention waits for records the table has
/// not materialized yet before it deletes them anyway (0: never waits).
pub const TABLE_RETENTION_HOLD_MS: &str = "table.retention.hold.ms";

/// One `table.*` topic config, for DescribeConfigs.
#[derive(Debug, Clone, Copy)]
pub struct TableConfigDef {
    /// Kafka-style name.
    pub name: &'static str,
    /// Default as DescribeConfigs shows it (empty: derived from the topic or broker).
    pub default: &'static str,
    /// Kafka config type: "boolean", "string" or "long".
    pub kind: &'static str,
    /// One-line documentation.
    pub doc: &'static str,
}

/// Every `table.*` config, in the order DescribeConfigs lists them.
pub const TABLE_CONFIGS: &[TableConfigDef] = &[
    TableConfigDef {
        name: TABLE_ENABLE,
        default: "false",
        kind: "boolean",
        doc: "Materialize this topic as an Apache Iceberg table.",
    },
    TableConfigDef {
        name: TABLE_MODE,
        default: "key_value",
        kind: "string",
        doc: "key_value: key and value as binary; json: columns from table.json.schema; schema: typed columns from the schema registry (Avro, Protobuf, JSON Schema).",
    },
    TableConfigDef {
        name: TABLE_SCHEMA_SUBJECT,
        default: "",
        kind: "string",
        doc: "Schema-mode subject whose latest version creates the table (default: <topic>-value).",
    },
    TableConfigDef {
        name: TABLE_SCHEMA_WIRE_FORMAT,
        default: "true",
        kind: "boolean",
        doc: "Schema-mode values start with the registry's wire-format header (magic byte, schema id); false: bare payloads decoded with the latest version of table.schema.subject.",
    },
    TableConfigDef {
        name: TABLE_JSON_SCHEMA,
        default: "",
        kind: "string",
        doc: "Iceberg schema JSON ({\"type\":\"struct\",\"fields\":[...]}) of json-mode values.",
    },
    TableConfigDef {
        name: TABLE_PARTITION_BY,
        default: "none",
        kind: "string",
        doc: "Table partitioning: none, hour(col), day(col), month(col), year(col), identity(col).",
    },
    TableConfigDef {
        name: TABLE_COMMIT_INTERVAL_MS,
        default: "5000",
        kind: "long",
        doc: "Longest time materialized rows wait for an Iceberg commit.",
    },
    TableConfigDef {
        name: TABLE_NAMESPACE,
        default: "",
        kind: "string",
        doc: "Iceberg namespace of the table (default: the broker's tableflow_namespace).",
    },
    TableConfigDef {
        name: TABLE_NAME,
        default: "",
        kind: "string",
        doc: "Iceberg table name (default: the topic name).",
    },
    TableConfigDef {
        name: TABLE_MAINTENANCE_ENABLE,
        default: "true",
        kind: "boolean",
        doc: "Run snapshot expiry, orphan-file cleanup and small-file compaction on the table.",
    },
    TableConfigDef {
        name: TABLE_MAINTENANCE_INTERVAL_MS,
        default: "60000",
        kind: "long",
        doc: "Time between two maintenance rounds of the table.",
    },
    TableConfigDef {
        name: TABLE_MAINTENANCE_SNAPSHOT_MAX_AGE_MS,
        default: "3600000",
        kind: "long",
        doc: "Snapshots older than this are expired (Iceberg history.expire.max-snapshot-age-ms).",
    },
    TableConfigDef {
        name: TABLE_MAINTENANCE_SNAPSHOT_MIN_KEEP,
        default: "10",
        kind: "long",
        doc: "Snapshots always kept, however old (Iceberg history.expire.min-snapshots-to-keep).",
    },
    TableConfigDef {
        name: TABLE_MAINTENANCE_METADATA_VERSIONS_MAX,
        default: "20",
        kind: "long",
        doc: "Previous metadata files kept; older ones are deleted (Iceberg write.metadata.previous-versions-max).",
    },
    TableConfigDef {
        name: TABLE_MAINTENANCE_ORPHAN_AGE_MS,
        default: "3600000",
        kind: "long",
        doc: "Files no snapshot references are deleted once older than this.",
    },
    TableConfigDef {
        name: TABLE_MAINTENANCE_COMPACTION_ENABLE,
        default: "true",
        kind: "boolean",
        doc: "Rewrite small data files of a table partition into files of the target size.",
    },
    TableConfigDef {
        name: TABLE_MAINTENANCE_COMPACTION_SMALL_FILE_BYTES,
        default: "16777216",
        kind: "long",
        doc: "Data files smaller than this are compaction candidates.",
    },
    TableConfigDef {
        name: TABLE_MAINTENANCE_COMPACTION_MIN_FILES,
        default: "8",
        kind: "long",
        doc: "Small files a table partition must have before it is compacted.",
    },
    TableConfigDef {
        name: TABLE_MAINTENANCE_COMPACTION_TARGET_FILE_BYTES,
        default: "134217728",
        kind: "long",
        doc: "Size of the data files compaction writes.",
    },
    TableConfigDef {
        name: TABLE_RETENTION_HOLD_MS,
        default: "3600000",
        kind: "long",
        doc: "How long retention waits for records the table has not materialized (0: never).",
    },
];

/// Whether `name` is a tableflow topic config.
pub fn is_table_config(name: &str) -> bool {
    TABLE_CONFIGS.iter().any(|d| d.name == name)
}

/// How record values become columns.
#[derive(Debug, Clone, PartialEq)]
pub enum TableMode {
    /// `key` and `value` as binary columns.
    KeyValue,
    /// Columns from a declared Iceberg schema; values are JSON objects.
    Json(StructType),
    /// Typed columns from the schema registry: values in Confluent's wire format, decoded
    /// by their schema id; the table is created from the latest version of `subject` and
    /// evolves as new versions arrive.
    Schema {
        /// The subject (`table.schema.subject`, default `<topic>-value`).
        subject: String,
        /// Values carry the wire-format header (`table.schema.wire.format`); without it
        /// they are decoded with the subject's latest version.
        wire_format: bool,
    },
}

/// A topic's table settings, parsed from its configs.
#[derive(Debug, Clone, PartialEq)]
pub struct TableConfig {
    /// Value mapping.
    pub mode: TableMode,
    /// `table.partition.by` as written (`none` for unpartitioned).
    pub partition_by: String,
    /// Commit interval.
    pub commit_interval_ms: u64,
    /// Iceberg namespace.
    pub namespace: String,
    /// Iceberg table name.
    pub name: String,
    /// Background maintenance of the table.
    pub maintenance: MaintenanceConfig,
    /// `table.retention.hold.ms`.
    pub retention_hold_ms: u64,
}

/// A table's maintenance settings (`table.maintenance.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenanceConfig {
    /// Run maintenance at all.
    pub enabled: bool,
    /// Time between rounds.
    pub interval_ms: u64,
    /// Iceberg `history.expire.max-snapshot-age-ms`.
    pub snapshot_max_age_ms: u64,
    /// Iceberg `history.expire.min-snapshots-to-keep`.
    pub snapshot_min_keep: u64,
    /// Iceberg `write.metadata.previous-versions-max`.
    pub metadata_versions_max: u64,
    /// Safety age of orphan-file cleanup.
    pub orphan_age_ms: u64,
    /// Run small-file compaction.
    pub compaction_enabled: bool,
    /// Files below this size are compaction candidates.
    pub small_file_bytes: u64,
    /// Candidates a table partition needs before it is compacted.
    pub min_files: u64,
    /// Size of the files compaction writes.
    pub target_file_bytes: u64,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        let def = default_of;
        MaintenanceConfig {
            enabled: true,
            interval_ms: def(TABLE_MAINTENANCE_INTERVAL_MS),
            snapshot_max_age_ms: def(TABLE_MAINTENANCE_SNAPSHOT_MAX_AGE_MS),
            snapshot_min_keep: def(TABLE_MAINTENANCE_SNAPSHOT_MIN_KEEP),
            metadata_versions_max: def(TABLE_MAINTENANCE_METADATA_VERSIONS_MAX),
            orphan_age_ms: def(TABLE_MAINTENANCE_ORPHAN_AGE_MS),
            compaction_enabled: true,
            small_file_bytes: def(TABLE_MAINTENANCE_COMPACTION_SMALL_FILE_BYTES),
            min_files: def(TABLE_MAINTENANCE_COMPACTION_MIN_FILES),
            target_file_bytes: def(TABLE_MAINTENANCE_COMPACTION_TARGET_FILE_BYTES),
        }
    }
}

impl MaintenanceConfig {
    /// The Iceberg table properties these settings stand for.
    pub fn table_properties(&self) -> Vec<(String, String)> {
        vec![
            (
                "history.expire.max-snapshot-age-ms".to_string(),
                self.snapshot_max_age_ms.to_string(),
            ),
            (
                "history.expire.min-snapshots-to-keep".to_string(),
                self.snapshot_min_keep.to_string(),
            ),
            (
                "write.metadata.previous-versions-max".to_string(),
                self.metadata_versions_max.to_string(),
            ),
            (
                "write.metadata.delete-after-commit.enabled".to_string(),
                "true".to_string(),
            ),
        ]
    }
}

/// A `table.*` config value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value for {key}: {reason}")]
pub struct InvalidTableConfig {
    /// The config.
    pub key: String,
    /// Why.
    pub reason: String,
}

fn invalid(key: &str, reason: impl Into<String>) -> InvalidTableConfig {
    InvalidTableConfig {
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// Checks one `table.*` config on its own (the broker calls this for every `table.*` key of
/// CreateTopics and Alter/IncrementalAlterConfigs). Cross-config checks (a partition column
/// that must exist in the JSON schema) are done by [`validate_topic_configs`].
pub fn validate(key: &str, value: &str) -> Result<(), InvalidTableConfig> {
    match key {
        // Empty means "not set": the default (topic name, broker namespace, no schema).
        TABLE_JSON_SCHEMA | TABLE_NAMESPACE | TABLE_NAME | TABLE_SCHEMA_SUBJECT
            if value.is_empty() =>
        {
            Ok(())
        }
        TABLE_SCHEMA_SUBJECT => {
            if value.chars().any(char::is_control) {
                Err(invalid(key, "must not contain control characters"))
            } else {
                Ok(())
            }
        }
        TABLE_ENABLE | TABLE_SCHEMA_WIRE_FORMAT => match value {
            "true" | "false" => Ok(()),
            _ => Err(invalid(key, "must be true or false")),
        },
        TABLE_MODE => match value {
            "key_value" | "json" | "schema" => Ok(()),
            _ => Err(invalid(key, "must be key_value, json or schema")),
        },
        TABLE_JSON_SCHEMA => parse_json_schema(value).map(|_| ()),
        TABLE_PARTITION_BY => schema::parse_partition_by(value)
            .map(|_| ())
            .map_err(|reason| invalid(key, reason)),
        TABLE_COMMIT_INTERVAL_MS => match value.parse::<u64>() {
            Ok(v) if (10..=86_400_000).contains(&v) => Ok(()),
            _ => Err(invalid(
                key,
                "must be a number of milliseconds in [10, 86400000]",
            )),
        },
        TABLE_MAINTENANCE_ENABLE | TABLE_MAINTENANCE_COMPACTION_ENABLE => match value {
            "true" | "false" => Ok(()),
            _ => Err(invalid(key, "must be true or false")),
        },
        TABLE_MAINTENANCE_INTERVAL_MS => bounded(key, value, 1_000, 7 * 86_400_000),
        TABLE_MAINTENANCE_SNAPSHOT_MAX_AGE_MS => bounded(key, value, 1, i64::MAX as u64),
        TABLE_MAINTENANCE_SNAPSHOT_MIN_KEEP => bounded(key, value, 1, 100_000),
        TABLE_MAINTENANCE_METADATA_VERSIONS_MAX => bounded(key, value, 1, 100_000),
        // Floe's own uncommitted files are protected whatever their age (see
        // `maintenance::InFlight`); the age guards against writers outside this process.
        TABLE_MAINTENANCE_ORPHAN_AGE_MS => bounded(key, value, 1_000, i64::MAX as u64),
        TABLE_MAINTENANCE_COMPACTION_SMALL_FILE_BYTES => bounded(key, value, 1, 1 << 40),
        TABLE_MAINTENANCE_COMPACTION_MIN_FILES => bounded(key, value, 2, 100_000),
        TABLE_MAINTENANCE_COMPACTION_TARGET_FILE_BYTES => bounded(key, value, 1 << 20, 1 << 40),
        TABLE_RETENTION_HOLD_MS => bounded(key, value, 0, i64::MAX as u64),
        TABLE_NAMESPACE | TABLE_NAME => {
            if value.is_empty()
                || !value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                Err(invalid(key, "must be non-empty and use only [A-Za-z0-9_-]"))
            } else {
                Ok(())
            }
        }
        _ => Err(invalid(key, "unknown table config")),
    }
}

/// The numeric default of a `table.*` config, as [`TABLE_CONFIGS`] lists it.
fn default_of(name: &str) -> u64 {
    TABLE_CONFIGS
        .iter()
        .find(|d| d.name == name)
        .and_then(|d| d.default.parse().ok())
        .unwrap_or(0)
}

fn bounded(key: &str, value: &str, min: u64, max: u64) -> Result<(), InvalidTableConfig> {
    match value.parse::<u64>() {
        Ok(v) if (min..=max).contains(&v) => Ok(()),
        _ => Err(invalid(
            key,
            format!("must be a whole number in [{min}, {max}]"),
        )),
    }
}

/// Checks the `table.*` configs of a topic together: every single value, and that the
/// table they describe can be built (mode, schema, partition column).
pub fn validate_topic_configs(
    topic: &str,
    configs: &BTreeMap<String, String>,
) -> Result<(), InvalidTableConfig> {
    for (k, v) in configs {
        if is_table_config(k) {
            validate(k, v)?;
        }
    }
    if let Some(cfg) = TableConfig::from_topic(topic, configs, "default")?
        // A schema-mode table's columns are known once its subject has a schema: its
        // partition column is checked when the table is created.
        && !matches!(cfg.mode, TableMode::Schema { .. })
    {
        schema::TableLayout::new(&cfg).map_err(|e| invalid(TABLE_PARTITION_BY, e))?;
    }
    Ok(())
}

fn parse_json_schema(value: &str) -> Result<StructType, InvalidTableConfig> {
    let st: StructType = serde_json::from_str(value).map_err(|e| {
        invalid(
            TABLE_JSON_SCHEMA,
            format!("not an Iceberg struct schema ({{\"type\":\"struct\",\"fields\":[...]}}): {e}"),
        )
    })?;
    if st.fields().is_empty() {
        return Err(invalid(TABLE_JSON_SCHEMA, "the schema has no fields"));
    }
    for f in st.fields() {
        if schema::KAFKA_COLUMNS.contains(&f.name.as_str()) {
            return Err(invalid(
                TABLE_JSON_SCHEMA,
                format!(
                    "field '{}' collides with a Kafka column ({})",
                    f.name,
                    schema::KAFKA_COLUMNS.join(", ")
                ),
            ));
        }
    }
    Ok(st)
}

impl TableConfig {
    /// The table settings of a topic, or `None` when `table.enable` is not `true`.
    pub fn from_topic(
        topic: &str,
        configs: &BTreeMap<String, String>,
        default_namespace: &str,
    ) -> Result<Option<TableConfig>, InvalidTableConfig> {
        let configs: BTreeMap<String, String> = configs
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if configs.get(TABLE_ENABLE).map(String::as_str) != Some("true") {
            return Ok(None);
        }
        let mode = match configs.get(TABLE_MODE).map(String::as_str) {
            None | Some("key_value") => TableMode::KeyValue,
            Some("json") => {
                let text = configs.get(TABLE_JSON_SCHEMA).ok_or_else(|| {
                    invalid(TABLE_JSON_SCHEMA, "required when table.mode is json")
                })?;
                TableMode::Json(parse_json_schema(text)?)
            }
            Some("schema") => TableMode::Schema {
                subject: configs
                    .get(TABLE_SCHEMA_SUBJECT)
                    .cloned()
                    .unwrap_or_else(|| format!("{topic}-value")),
                wire_format: configs
                    .get(TABLE_SCHEMA_WIRE_FORMAT)
                    .is_none_or(|v| v != "false"),
            },
            Some(_) => return Err(invalid(TABLE_MODE, "must be key_value, json or schema")),
        };
        let commit_interval_ms = match configs.get(TABLE_COMMIT_INTERVAL_MS) {
            Some(v) => {
                validate(TABLE_COMMIT_INTERVAL_MS, v)?;
                v.parse().unwrap_or(DEFAULT_COMMIT_INTERVAL_MS)
            }
            None => DEFAULT_COMMIT_INTERVAL_MS,
        };
        let partition_by = configs
            .get(TABLE_PARTITION_BY)
            .cloned()
            .unwrap_or_else(|| "none".to_string());
        schema::parse_partition_by(&partition_by)
            .map_err(|reason| invalid(TABLE_PARTITION_BY, reason))?;
        // Topic names may hold '.', which Iceberg reads as a namespace separator.
        let name = configs
            .get(TABLE_NAME)
            .cloned()
            .unwrap_or_else(|| topic.replace('.', "_"));
        let namespace = configs
            .get(TABLE_NAMESPACE)
            .cloned()
            .unwrap_or_else(|| default_namespace.to_string());
        let num = |key: &str, into: &mut u64| -> Result<(), InvalidTableConfig> {
            if let Some(v) = configs.get(key) {
                validate(key, v)?;
                *into = v.parse().map_err(|_| invalid(key, "not a number"))?;
            }
            Ok(())
        };
        let mut m = MaintenanceConfig::default();
        num(TABLE_MAINTENANCE_INTERVAL_MS, &mut m.interval_ms)?;
        num(
            TABLE_MAINTENANCE_SNAPSHOT_MAX_AGE_MS,
            &mut m.snapshot_max_age_ms,
        )?;
        num(
            TABLE_MAINTENANCE_SNAPSHOT_MIN_KEEP,
            &mut m.snapshot_min_keep,
        )?;
        num(
            TABLE_MAINTENANCE_METADATA_VERSIONS_MAX,
            &mut m.metadata_versions_max,
        )?;
        num(TABLE_MAINTENANCE_ORPHAN_AGE_MS, &mut m.orphan_age_ms)?;
        num(
            TABLE_MAINTENANCE_COMPACTION_SMALL_FILE_BYTES,
            &mut m.small_file_bytes,
        )?;
        num(TABLE_MAINTENANCE_COMPACTION_MIN_FILES, &mut m.min_files)?;
        num(
            TABLE_MAINTENANCE_COMPACTION_TARGET_FILE_BYTES,
            &mut m.target_file_bytes,
        )?;
        let mut retention_hold_ms = default_of(TABLE_RETENTION_HOLD_MS);
        num(TABLE_RETENTION_HOLD_MS, &mut retention_hold_ms)?;
        let flag = |key: &str| -> Result<Option<bool>, InvalidTableConfig> {
            match configs.get(key) {
                Some(v) => {
                    validate(key, v)?;
                    Ok(Some(v == "true"))
                }
                None => Ok(None),
            }
        };
        if let Some(v) = flag(TABLE_MAINTENANCE_ENABLE)? {
            m.enabled = v;
        }
        if let Some(v) = flag(TABLE_MAINTENANCE_COMPACTION_ENABLE)? {
            m.compaction_enabled = v;
        }
        Ok(Some(TableConfig {
            mode,
            partition_by,
            commit_interval_ms,
            namespace,
            name,
            maintenance: m,
            retention_hold_ms,
        }))
    }
}

/// Broker-level tableflow settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TableflowSettings {
    /// Run tableflow at all.
    pub enabled: bool,
    /// Iceberg catalog name (the SQL catalog's `catalog_name` column).
    pub catalog_name: String,
    /// sqlx URI of the SQL catalog database.
    pub catalog_uri: String,
    /// Warehouse root (`file:///...` or `s3://bucket/prefix`).
    pub warehouse: String,
    /// Namespace of tables that do not set `table.namespace`.
    pub namespace: String,
    /// Size at which a data file is closed and a new one started.
    pub target_file_size_bytes: usize,
    /// Extra FileIO properties (`s3.endpoint`, `s3.access-key-id`, ...).
    pub storage_props: HashMap<String, String>,
    /// Broker-wide defaults of `table.*` topic configs; a topic's own setting wins.
    pub table_defaults: BTreeMap<String, String>,
}

impl TableflowSettings {
    /// The embedded defaults: SQL catalog `floe` in SQLite at `<data-dir>/iceberg/catalog.db`,
    /// warehouse `<data-dir>/iceberg/warehouse`, namespace `default`.
    pub fn embedded(data_dir: &Path) -> TableflowSettings {
        let abs = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
        let iceberg = abs.join("iceberg");
        TableflowSettings {
            enabled: true,
            catalog_name: "floe".to_string(),
            catalog_uri: format!("sqlite://{}?mode=rwc", iceberg.join("catalog.db").display()),
            warehouse: format!("file://{}", iceberg.join("warehouse").display()),
            namespace: "default".to_string(),
            target_file_size_bytes: 128 * 1024 * 1024,
            storage_props: HashMap::new(),
            table_defaults: BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfgs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn single_values() {
        let cases: &[(&str, &str, bool)] = &[
            (TABLE_ENABLE, "true", true),
            (TABLE_ENABLE, "yes", false),
            (TABLE_MODE, "json", true),
            (TABLE_MODE, "avro", false),
            (TABLE_MODE, "schema", true),
            (TABLE_SCHEMA_SUBJECT, "orders-value", true),
            (TABLE_SCHEMA_SUBJECT, "a\nb", false),
            (TABLE_PARTITION_BY, "none", true),
            (TABLE_PARTITION_BY, "hour(timestamp)", true),
            (TABLE_PARTITION_BY, "day(timestamp)", true),
            (TABLE_PARTITION_BY, "identity(region)", true),
            (TABLE_PARTITION_BY, "bucket(x)", false),
            (TABLE_PARTITION_BY, "hour(", false),
            (TABLE_COMMIT_INTERVAL_MS, "1000", true),
            (TABLE_COMMIT_INTERVAL_MS, "-1", false),
            (TABLE_NAME, "orders_v2", true),
            (TABLE_NAME, "a.b", false),
            (
                TABLE_JSON_SCHEMA,
                "{\"type\":\"struct\",\"fields\":[{\"id\":1,\"name\":\"a\",\"type\":\"long\",\"required\":true}]}",
                true,
            ),
            (
                TABLE_JSON_SCHEMA,
                "{\"type\":\"struct\",\"fields\":[{\"id\":1,\"name\":\"offset\",\"type\":\"long\",\"required\":true}]}",
                false,
            ),
            (TABLE_JSON_SCHEMA, "[1]", false),
            ("table.other", "x", false),
        ];
        for (k, v, ok) in cases {
            assert_eq!(validate(k, v).is_ok(), *ok, "{k}={v}");
        }
    }

    #[test]
    fn topic_configs_together() {
        assert!(validate_topic_configs("t", &cfgs(&[(TABLE_ENABLE, "true")])).is_ok());
        assert!(
            validate_topic_configs("t", &cfgs(&[(TABLE_ENABLE, "true"), (TABLE_MODE, "json")]))
                .is_err()
        );
        let schema = "{\"type\":\"struct\",\"fields\":[{\"id\":1,\"name\":\"region\",\"type\":\"string\",\"required\":false}]}";
        let good = cfgs(&[
            (TABLE_ENABLE, "true"),
            (TABLE_MODE, "json"),
            (TABLE_JSON_SCHEMA, schema),
            (TABLE_PARTITION_BY, "identity(region)"),
        ]);
        assert!(validate_topic_configs("t", &good).is_ok());
        let mut bad = good.clone();
        bad.insert(TABLE_PARTITION_BY.into(), "identity(nope)".into());
        assert!(validate_topic_configs("t", &bad).is_err());
        let cfg = TableConfig::from_topic("a.b", &good, "default")
            .unwrap()
            .unwrap();
        assert_eq!(cfg.name, "a_b");
        assert_eq!(cfg.commit_interval_ms, DEFAULT_COMMIT_INTERVAL_MS);
        assert!(
            TableConfig::from_topic("t", &cfgs(&[]), "default")
                .unwrap()
                .is_none()
        );
    }
}

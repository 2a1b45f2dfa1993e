//! Broker configuration: defaults, overridden by a TOML file, then by `FLOE_*` environment
//! variables, then by command-line flags. Every key, its default and its meaning is listed
//! in `docs/configuration.md`.
//!
//! Keys use snake_case (`auto_create_topics_enable`); Kafka's dotted names are accepted as
//! aliases (`auto.create.topics.enable`). An environment variable is the key upper-cased
//! with a `FLOE_` prefix (`FLOE_AUTO_CREATE_TOPICS_ENABLE=false`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use keys::{insert_key, value_for};

/// Where the broker's settings come from, and what went wrong reading them.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid TOML.
    #[error("config file {path} is not valid TOML")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: toml::de::Error,
    },
    /// A value has the wrong type, or a key is unknown.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The broker's settings. See `docs/configuration.md`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// This broker's id (Kafka `node.id`).
    #[serde(alias = "node.id", alias = "broker.id")]
    pub node_id: i32,
    /// Address the Kafka listener binds to.
    pub listen: String,
    /// `host:port` given to clients in Metadata; defaults to the bound listener address.
    /// (For named listeners, `advertised_listeners`.)
    pub advertised_listener: Option<String>,
    /// Directory holding the log, metadata and (later) tables.
    #[serde(alias = "log.dirs")]
    pub data_dir: PathBuf,
    /// Largest request accepted, checked before any buffer is allocated.
    #[serde(alias = "socket.request.max.bytes")]
    pub socket_request_max_bytes: usize,
    /// Bytes of requests being received, across all connections, beyond which connections
    /// stop reading until memory is given back (Kafka's `queued.max.request.bytes`); -1 for
    /// unbounded. See `request_budget.rs`.
    #[serde(alias = "queued.max.request.bytes")]
    pub queued_max_request_bytes: i64,
    /// A connection with no response pending that has read and written nothing for this
    /// long is closed (Kafka's `connections.max.idle.ms`); -1 for never.
    #[serde(alias = "connections.max.idle.ms")]
    pub connections_max_idle_ms: i64,
    /// Most connections served at once; more are closed when accepted (Kafka's
    /// `max.connections`).
    #[serde(alias = "max.connections")]
    pub max_connections: i32,
    /// Most connections served at once from one client address (Kafka's
    /// `max.connections.per.ip`).
    #[serde(alias = "max.connections.per.ip")]
    pub max_connections_per_ip: i32,
    /// Create a topic when a client asks for its metadata (or fetches it) and it is missing.
    #[serde(alias = "auto.create.topics.enable")]
    pub auto_create_topics_enable: bool,
    /// Partitions of an auto-created topic, and of CreateTopics asking for the default.
    #[serde(alias = "num.partitions")]
    pub num_partitions: i32,
    /// Most partitions one topic may have (CreateTopics, CreatePartitions, auto-creation).
    pub max_partitions_per_topic: i32,
    /// Most partitions this broker hosts, all topics together (internal topics included).
    pub max_partitions: i32,
    /// Default `segment.bytes` for topics that do not set it.
    #[serde(alias = "log.segment.bytes")]
    pub log_segment_bytes: u64,
    /// Default `segment.ms` (Kafka's `log.roll.ms`).
    #[serde(alias = "log.roll.ms")]
    pub log_roll_ms: u64,
    /// Default `max.message.bytes` (Kafka's `message.max.bytes`): largest record batch.
    #[serde(alias = "message.max.bytes")]
    pub message_max_bytes: u32,
    /// Default `index.interval.bytes`.
    #[serde(alias = "log.index.interval.bytes")]
    pub log_index_interval_bytes: u32,
    /// Default `retention.ms` (Kafka's `log.retention.ms`), -1 for unlimited. Unset: from
    /// `log_retention_minutes`, else `log_retention_hours`, as Kafka derives it.
    #[serde(alias = "log.retention.ms")]
    pub log_retention_ms: Option<i64>,
    /// Kafka's `log.retention.minutes` (used when `log_retention_ms` is unset).
    #[serde(alias = "log.retention.minutes")]
    pub log_retention_minutes: Option<i64>,
    /// Kafka's `log.retention.hours` (used when neither of the above is set).
    #[serde(alias = "log.retention.hours")]
    pub log_retention_hours: i64,
    /// Time between two retention passes (Kafka's `log.retention.check.interval.ms`).
    #[serde(alias = "log.retention.check.interval.ms")]
    pub log_retention_check_interval_ms: u64,
    /// Default `file.delete.delay.ms` (Kafka's `log.segment.delete.delay.ms`).
    #[serde(alias = "log.segment.delete.delay.ms")]
    pub log_segment_delete_delay_ms: i64,
    /// Run the log cleaner (compaction of `cleanup.policy=compact` topics).
    #[serde(alias = "log.cleaner.enable")]
    pub log_cleaner_enable: bool,
    /// Memory for the cleaner's offset map (Kafka's `log.cleaner.dedupe.buffer.size`).
    #[serde(alias = "log.cleaner.dedupe.buffer.size")]
    pub log_cleaner_dedupe_buffer_size: u64,
    /// Cap on the cleaner's reads and writes together (Kafka's
    /// `log.cleaner.io.max.bytes.per.second`).
    #[serde(alias = "log.cleaner.io.max.bytes.per.second")]
    pub log_cleaner_io_max_bytes_per_second: f64,
    /// Sleep of the cleaner when no log needs cleaning (Kafka's `log.cleaner.backoff.ms`).
    #[serde(alias = "log.cleaner.backoff.ms")]
    pub log_cleaner_backoff_ms: u64,
    /// Default `min.cleanable.dirty.ratio` (Kafka's `log.cleaner.min.cleanable.ratio`).
    #[serde(alias = "log.cleaner.min.cleanable.ratio")]
    pub log_cleaner_min_cleanable_ratio: f64,
    /// Default `min.compaction.lag.ms` (Kafka's `log.cleaner.min.compaction.lag.ms`).
    #[serde(alias = "log.cleaner.min.compaction.lag.ms")]
    pub log_cleaner_min_compaction_lag_ms: i64,
    /// Default `max.compaction.lag.ms` (Kafka's `log.cleaner.max.compaction.lag.ms`).
    #[serde(alias = "log.cleaner.max.compaction.lag.ms")]
    pub log_cleaner_max_compaction_lag_ms: i64,
    /// Default `delete.retention.ms` (Kafka's `log.cleaner.delete.retention.ms`).
    #[serde(alias = "log.cleaner.delete.retention.ms")]
    pub log_cleaner_delete_retention_ms: i64,
    /// Default `retention.bytes` (Kafka's `log.retention.bytes`), -1 for unlimited.
    #[serde(alias = "log.retention.bytes")]
    pub log_retention_bytes: i64,
    /// Longest `max_wait_ms` a Fetch may ask for is capped at this many milliseconds.
    pub fetch_max_wait_cap_ms: u64,
    /// Most incremental fetch sessions kept (Kafka's `max.incremental.fetch.session.cache.slots`).
    #[serde(alias = "max.incremental.fetch.session.cache.slots")]
    pub fetch_session_cache_slots: usize,
    /// How long a group joined while empty waits for more members before its first
    /// rebalance completes (Kafka's `group.initial.rebalance.delay.ms`).
    #[serde(alias = "group.initial.rebalance.delay.ms")]
    pub group_initial_rebalance_delay_ms: u64,
    /// Smallest session timeout a group member may ask for.
    #[serde(alias = "group.min.session.timeout.ms")]
    pub group_min_session_timeout_ms: i32,
    /// Largest session timeout a group member may ask for.
    #[serde(alias = "group.max.session.timeout.ms")]
    pub group_max_session_timeout_ms: i32,
    /// How often KIP-848 consumer group members heartbeat.
    #[serde(alias = "group.consumer.heartbeat.interval.ms")]
    pub group_consumer_heartbeat_interval_ms: i32,
    /// A KIP-848 consumer group member that has not heartbeated for this long is removed.
    #[serde(alias = "group.consumer.session.timeout.ms")]
    pub group_consumer_session_timeout_ms: i32,
    /// Most members of one KIP-848 consumer group.
    #[serde(alias = "group.consumer.max.size")]
    pub group_consumer_max_size: i32,
    /// Server-side assignors of KIP-848 consumer groups, comma-separated (`uniform`,
    /// `range`); the first is the default.
    #[serde(alias = "group.consumer.assignors")]
    pub group_consumer_assignors: String,
    /// Partitions of `__consumer_offsets` when it is created (fixed afterwards).
    #[serde(alias = "offsets.topic.num.partitions")]
    pub offsets_topic_num_partitions: i32,
    /// `segment.bytes` of `__consumer_offsets` when it is created.
    #[serde(alias = "offsets.topic.segment.bytes")]
    pub offsets_topic_segment_bytes: u64,
    /// Committed offsets of a group without members are kept this long.
    #[serde(alias = "offsets.retention.minutes")]
    pub offsets_retention_minutes: i64,
    /// How often expired offsets are removed.
    #[serde(alias = "offsets.retention.check.interval.ms")]
    pub offsets_retention_check_interval_ms: u64,
    /// Largest metadata string of a committed offset.
    #[serde(alias = "offset.metadata.max.bytes")]
    pub offset_metadata_max_bytes: usize,
    /// Largest `transaction.timeout.ms` a transactional producer may ask for.
    #[serde(alias = "transaction.max.timeout.ms")]
    pub transaction_max_timeout_ms: i32,
    /// Partitions of `__transaction_state` when it is created (fixed afterwards).
    #[serde(alias = "transaction.state.log.num.partitions")]
    pub transaction_state_log_num_partitions: i32,
    /// `segment.bytes` of `__transaction_state` when it is created.
    #[serde(alias = "transaction.state.log.segment.bytes")]
    pub transaction_state_log_segment_bytes: u64,
    /// How often transactions open past their timeout are looked for (and aborted).
    #[serde(alias = "transaction.abort.timed.out.transaction.cleanup.interval.ms")]
    pub transaction_abort_timed_out_transaction_cleanup_interval_ms: u64,
    /// A transactional id without transactions for this long is forgotten.
    #[serde(alias = "transactional.id.expiration.ms")]
    pub transactional_id_expiration_ms: i64,
    /// Run tableflow (topics with `table.enable=true` materialized as Iceberg tables).
    pub tableflow_enable: bool,
    /// Iceberg SQL catalog name (pyiceberg's `SqlCatalog` name must match).
    pub tableflow_catalog_name: String,
    /// sqlx URI of the catalog database; default `sqlite://<data_dir>/iceberg/catalog.db`.
    pub tableflow_catalog_uri: Option<String>,
    /// Warehouse root; default `file://<data_dir>/iceberg/warehouse`, or `s3://bucket/prefix`.
    pub tableflow_warehouse: Option<String>,
    /// Namespace of tables that do not set `table.namespace`.
    pub tableflow_namespace: String,
    /// Data files roll over at this size.
    pub tableflow_target_file_size_bytes: usize,
    /// S3 endpoint of an `s3://` warehouse (e.g. a local S3 server).
    pub tableflow_s3_endpoint: Option<String>,
    /// S3 region.
    pub tableflow_s3_region: Option<String>,
    /// S3 access key id.
    pub tableflow_s3_access_key_id: Option<String>,
    /// S3 secret access key.
    pub tableflow_s3_secret_access_key: Option<String>,
    /// Serve the Iceberg REST catalog (read-only) under `/iceberg` on the HTTP listener.
    pub tableflow_rest_catalog_enable: bool,
    /// Hand the warehouse's S3 access keys (`tableflow_s3_access_key_id`, ...) to REST
    /// catalog clients with every loaded table. Off: clients bring their own.
    pub tableflow_rest_catalog_vend_credentials: bool,
    /// Broker-wide defaults of `table.*` topic configs (e.g. `"table.maintenance.interval.ms"
    /// = "300000"`), as a TOML table; a topic's own setting wins.
    pub tableflow_table_defaults: BTreeMap<String, String>,
    /// Serve the schema registry's REST API at the root of the HTTP listener.
    pub schema_registry_enable: bool,
    /// Compatibility level of subjects without their own while no global level is set
    /// through the API (`PUT /config`).
    pub schema_registry_compatibility: String,
    /// Default of the topic config `remote.storage.enable`: tier closed segments of new
    /// (delete-policy) topics to the remote store.
    #[serde(alias = "remote.storage.enable")]
    pub remote_storage_enable: bool,
    /// The remote store of tiered storage: `file:///dir` (default
    /// `file://<data_dir>/remote-store`), `s3://bucket/prefix`, `gs://bucket/prefix`,
    /// `az://container/prefix`.
    pub remote_storage_url: Option<String>,
    /// S3 endpoint (a local S3 server, MinIO, ...); AWS when unset.
    pub remote_storage_endpoint: Option<String>,
    /// S3 region.
    pub remote_storage_region: Option<String>,
    /// Path-style S3 requests (`endpoint/bucket/key`), as most self-hosted S3 servers need.
    pub remote_storage_path_style: bool,
    /// S3 access key id (else `AWS_ACCESS_KEY_ID`).
    pub remote_storage_access_key_id: Option<String>,
    /// S3 secret access key (else `AWS_SECRET_ACCESS_KEY`).
    pub remote_storage_secret_access_key: Option<String>,
    /// Further `object_store` options (GCS `google_service_account`, Azure
    /// `azure_storage_account_key`, ...), as a TOML table.
    pub remote_storage_options: BTreeMap<String, String>,
    /// Timeout of one object-store request.
    pub remote_storage_request_timeout_ms: u64,
    /// Default `local.retention.ms` (Kafka's `log.local.retention.ms`); -2: `retention.ms`.
    #[serde(alias = "log.local.retention.ms")]
    pub log_local_retention_ms: i64,
    /// Default `local.retention.bytes` (Kafka's `log.local.retention.bytes`); -2:
    /// `retention.bytes`.
    #[serde(alias = "log.local.retention.bytes")]
    pub log_local_retention_bytes: i64,
    /// Appends to a tiered partition are refused while more than this many of its bytes are
    /// not yet uploaded (an unreachable store must not fill the disk); -1: no limit.
    pub log_local_hard_limit_bytes: i64,
    /// Time between two upload passes (Kafka's `remote.log.manager.task.interval.ms`).
    #[serde(alias = "remote.log.manager.task.interval.ms")]
    pub remote_log_manager_task_interval_ms: u64,
    /// Partitions uploading at once.
    pub remote_log_manager_upload_concurrency: usize,
    /// Upload bandwidth over all partitions (Kafka's
    /// `remote.log.manager.copy.max.bytes.per.second`); -1: unlimited.
    #[serde(alias = "remote.log.manager.copy.max.bytes.per.second")]
    pub remote_log_manager_copy_max_bytes_per_second: i64,
    /// Bytes of downloaded remote segments kept on local disk for reads.
    pub remote_log_reader_cache_bytes: u64,
    /// Address of the HTTP admin listener (`/metrics`, `/health`, `/ready`); empty: none.
    pub http_listen: String,
    /// Record metrics (served at `/metrics`). Off, every metric call is a no-op.
    pub metrics_enable: bool,
    /// Log lines as `text` (human-readable) or `json` (one object per line).
    pub log_format: String,
    /// On SIGTERM, how long connections may take to answer the requests they have read
    /// before the logs are closed anyway.
    pub shutdown_timeout_ms: u64,
    /// Named listeners, Kafka's form: `NAME://host:port` separated by commas, e.g.
    /// `PLAINTEXT://127.0.0.1:9092,SASL_SSL://0.0.0.0:9093`. Empty: one PLAINTEXT listener
    /// named `PLAINTEXT` on `listen`. See `docs/security.md`.
    pub listeners: String,
    /// What each listener gives clients in Metadata, `NAME://host:port` separated by commas;
    /// listeners not named advertise their bound address. A bare `host:port` is the same as
    /// `advertised_listener`.
    #[serde(alias = "advertised.listeners")]
    pub advertised_listeners: String,
    /// Security protocol of each listener name, `NAME:PROTOCOL` separated by commas. The
    /// four protocol names map to themselves without being listed.
    #[serde(alias = "listener.security.protocol.map")]
    pub listener_security_protocol_map: String,
    /// PEM file with the server's certificate chain (and its private key unless
    /// `ssl_key_location` is set): Kafka's `ssl.keystore.location` with `ssl.keystore.type=PEM`.
    #[serde(alias = "ssl.keystore.location")]
    pub ssl_keystore_location: Option<PathBuf>,
    /// PEM file with the server's private key, when it is not in `ssl_keystore_location`.
    pub ssl_key_location: Option<PathBuf>,
    /// PEM file of the certificate authorities client certificates must chain to (mTLS).
    #[serde(alias = "ssl.truststore.location")]
    pub ssl_truststore_location: Option<PathBuf>,
    /// Client certificates on SSL listeners: `none`, `requested` or `required`.
    #[serde(alias = "ssl.client.auth")]
    pub ssl_client_auth: String,
    /// How a client certificate's subject becomes a principal name (Kafka's rules:
    /// `RULE:pattern/replacement/[LU]` separated by commas, and `DEFAULT`).
    #[serde(alias = "ssl.principal.mapping.rules")]
    pub ssl_principal_mapping_rules: String,
    /// TLS versions served, comma-separated: `TLSv1.2`, `TLSv1.3`.
    #[serde(alias = "ssl.enabled.protocols")]
    pub ssl_enabled_protocols: String,
    /// How often the certificate, key and truststore files are checked for changes (new
    /// connections use the new ones); 0: never.
    pub ssl_reload_interval_ms: u64,
    /// SASL mechanisms offered on SASL listeners, comma-separated: `PLAIN`,
    /// `SCRAM-SHA-256`, `SCRAM-SHA-512`, `OAUTHBEARER`.
    #[serde(alias = "sasl.enabled.mechanisms")]
    pub sasl_enabled_mechanisms: String,
    /// SASL/PLAIN users and their passwords, as a TOML table.
    pub sasl_plain_users: BTreeMap<String, String>,
    /// A file of SASL/PLAIN users, one `user:password` per line (read at start).
    pub sasl_plain_users_file: Option<PathBuf>,
    /// Largest SASL token accepted before authentication (Kafka's
    /// `sasl.server.max.receive.size`).
    #[serde(alias = "sasl.server.max.receive.size")]
    pub sasl_server_max_receive_size: usize,
    /// A SASL session lasts this long; the client must re-authenticate (KIP-368) before it
    /// ends or its connection is closed. 0: sessions never end.
    #[serde(alias = "connections.max.reauth.ms")]
    pub connections_max_reauth_ms: i64,
    /// A failed SASL authentication is answered (and its connection closed) after this
    /// delay, which slows password guessing (Kafka's
    /// `connection.failed.authentication.delay.ms`).
    #[serde(alias = "connection.failed.authentication.delay.ms")]
    pub connection_failed_authentication_delay_ms: u64,
    /// JSON Web Key Set that OAUTHBEARER tokens are checked against: a `file://` URL or a
    /// path.
    #[serde(alias = "sasl.oauthbearer.jwks.endpoint.url")]
    pub sasl_oauthbearer_jwks_endpoint_url: Option<String>,
    /// Audiences an OAUTHBEARER token must name one of (comma-separated); empty: any.
    #[serde(alias = "sasl.oauthbearer.expected.audience")]
    pub sasl_oauthbearer_expected_audience: String,
    /// Issuer an OAUTHBEARER token must have; empty: any.
    #[serde(alias = "sasl.oauthbearer.expected.issuer")]
    pub sasl_oauthbearer_expected_issuer: String,
    /// Claim of an OAUTHBEARER token that names the principal.
    #[serde(alias = "sasl.oauthbearer.sub.claim.name")]
    pub sasl_oauthbearer_sub_claim_name: String,
    /// Clock difference tolerated when checking a token's times.
    #[serde(alias = "sasl.oauthbearer.clock.skew.seconds")]
    pub sasl_oauthbearer_clock_skew_seconds: i64,
    /// Turns on authorization with ACLs: any of Kafka's authorizer class names, or `acl`.
    /// Empty: every request is allowed.
    #[serde(alias = "authorizer.class.name")]
    pub authorizer_class_name: String,
    /// Principals allowed everything, `User:alice;User:bob`.
    #[serde(alias = "super.users")]
    pub super_users: String,
    /// Allow an operation on a resource that no ACL matches.
    #[serde(alias = "allow.everyone.if.no.acl.found")]
    pub allow_everyone_if_no_acl_found: bool,
    /// Samples of the quota rate windows (Kafka's `quota.window.num`).
    #[serde(alias = "quota.window.num")]
    pub quota_window_num: u32,
    /// Length of one quota sample window (Kafka's `quota.window.size.seconds`).
    #[serde(alias = "quota.window.size.seconds")]
    pub quota_window_size_seconds: u32,
    /// Storage engine settings: the `[storage]` table (`storage.io`, env `FLOE_STORAGE_IO`).
    pub storage: StorageConfig,
}

/// The `[storage]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// File I/O backend: `auto` (io_uring where available, else std, with a log line),
    /// `uring` (fail to start without it) or `std`.
    #[serde(deserialize_with = "io_mode")]
    pub io: floe_storage::IoMode,
    /// What recovery does with damage that is not a torn tail: `refuse` (the partition stays
    /// offline, the rest of the broker serves) or `truncate` (cut the log at the damage).
    /// Topics override it with their `storage.recovery` config.
    #[serde(deserialize_with = "recovery_mode")]
    pub recovery: RecoveryMode,
    /// Average read rate of the scrubber that re-checks the CRCs of closed segments; 0 turns
    /// it off.
    pub scrub_bytes_per_second: u64,
    /// Time from the start of one scrubber pass over every closed segment to the next.
    pub scrub_interval_ms: u64,
    /// Injected storage faults (builds with the `faults` feature only; see
    /// `docs/fault-injection.md`): rules like `sync_eio@victim-0;slow_sync_ms=2000@slow-0`.
    pub faults: String,
}

impl Default for StorageConfig {
    fn default() -> Self {
        let scrub = floe_storage::ScrubConfig::default();
        StorageConfig {
            io: floe_storage::IoMode::default(),
            recovery: RecoveryMode::default(),
            scrub_bytes_per_second: scrub.bytes_per_second,
            scrub_interval_ms: u64::try_from(scrub.interval.as_millis()).unwrap_or(u64::MAX),
            faults: String::new(),
        }
    }
}

impl StorageConfig {
    /// The scrubber's settings.
    pub fn scrub(&self) -> floe_storage::ScrubConfig {
        floe_storage::ScrubConfig {
            bytes_per_second: self.scrub_bytes_per_second,
            interval: std::time::Duration::from_millis(self.scrub_interval_ms),
        }
    }
}

/// `storage.recovery`: Kafka has no such setting; the names say what happens to the data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RecoveryMode {
    /// Damage before the tail keeps the partition offline.
    #[default]
    Refuse,
    /// Damage is cut off like a torn tail (records after it are lost).
    Truncate,
}

impl RecoveryMode {
    /// Parses `refuse` or `truncate`.
    pub fn parse(s: &str) -> Option<RecoveryMode> {
        match s {
            "refuse" => Some(RecoveryMode::Refuse),
            "truncate" => Some(RecoveryMode::Truncate),
            _ => None,
        }
    }

    /// The config value.
    pub fn as_str(self) -> &'static str {
        match self {
            RecoveryMode::Refuse => "refuse",
            RecoveryMode::Truncate => "truncate",
        }
    }

    /// Storage's policy.
    pub fn policy(self) -> floe_storage::RecoveryPolicy {
        match self {
            RecoveryMode::Refuse => floe_storage::RecoveryPolicy::TolerateTailCorruption,
            RecoveryMode::Truncate => floe_storage::RecoveryPolicy::TruncateCorruption,
        }
    }
}

fn recovery_mode<'de, D: serde::Deserializer<'de>>(d: D) -> Result<RecoveryMode, D::Error> {
    let s = String::deserialize(d)?;
    RecoveryMode::parse(&s).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "storage.recovery must be refuse or truncate, not {s:?}"
        ))
    })
}

fn io_mode<'de, D: serde::Deserializer<'de>>(d: D) -> Result<floe_storage::IoMode, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(serde::de::Error::custom)
}

/// Default `queued_max_request_bytes`: Kafka's default (-1, unbounded) lets stalled
/// requests take all memory; 512 MiB holds five maximum-size requests at once.
pub const DEFAULT_QUEUED_MAX_REQUEST_BYTES: i64 = 512 * 1024 * 1024;
/// Smallest `queued_max_request_bytes`: the receive buffer a connection uses freely.
const MIN_QUEUED_MAX_REQUEST_BYTES: i64 = crate::request_budget::FREE_BYTES as i64;
/// Largest `queued_max_request_bytes` (1 TiB; larger means unbounded, say -1).
const MAX_QUEUED_MAX_REQUEST_BYTES: i64 = 1 << 40;

impl Config {
    /// The default `retention.ms` as Kafka derives it: `log.retention.ms`, else
    /// `log.retention.minutes`, else `log.retention.hours`; -1 (or any negative) unlimited.
    pub fn log_retention_ms(&self) -> i64 {
        let ms = self
            .log_retention_ms
            .or_else(|| self.log_retention_minutes.map(|m| m.saturating_mul(60_000)))
            .unwrap_or_else(|| self.log_retention_hours.saturating_mul(3_600_000));
        if ms < 0 { -1 } else { ms }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node_id: 1,
            listen: "127.0.0.1:9092".into(),
            http_listen: "127.0.0.1:9644".into(),
            metrics_enable: true,
            log_format: "text".into(),
            shutdown_timeout_ms: 20_000,
            advertised_listener: None,
            data_dir: PathBuf::from("floe-data"),
            socket_request_max_bytes: floe_protocol::frame::DEFAULT_MAX_REQUEST_SIZE,
            queued_max_request_bytes: DEFAULT_QUEUED_MAX_REQUEST_BYTES,
            connections_max_idle_ms: 600_000,
            max_connections: 10_000,
            max_connections_per_ip: i32::MAX,
            auto_create_topics_enable: true,
            num_partitions: 1,
            max_partitions_per_topic: 1000,
            max_partitions: 10_000,
            log_segment_bytes: 1024 * 1024 * 1024,
            log_roll_ms: 7 * 24 * 3600 * 1000,
            message_max_bytes: 1_048_588,
            log_index_interval_bytes: 4096,
            log_retention_ms: None,
            log_retention_minutes: None,
            log_retention_hours: 168,
            log_retention_check_interval_ms: 300_000,
            log_segment_delete_delay_ms: 60_000,
            log_cleaner_enable: true,
            log_cleaner_dedupe_buffer_size: 128 * 1024 * 1024,
            log_cleaner_io_max_bytes_per_second: f64::MAX,
            log_cleaner_backoff_ms: 15_000,
            log_cleaner_min_cleanable_ratio: 0.5,
            log_cleaner_min_compaction_lag_ms: 0,
            log_cleaner_max_compaction_lag_ms: i64::MAX,
            log_cleaner_delete_retention_ms: 86_400_000,
            log_retention_bytes: -1,
            fetch_max_wait_cap_ms: 30_000,
            fetch_session_cache_slots: 1000,
            group_initial_rebalance_delay_ms: 3000,
            group_min_session_timeout_ms: 6000,
            group_max_session_timeout_ms: 1_800_000,
            group_consumer_heartbeat_interval_ms: 5000,
            group_consumer_session_timeout_ms: 45_000,
            group_consumer_max_size: i32::MAX,
            group_consumer_assignors: "uniform,range".into(),
            offsets_topic_num_partitions: 10,
            offsets_topic_segment_bytes: 100 * 1024 * 1024,
            offsets_retention_minutes: 7 * 24 * 60,
            offsets_retention_check_interval_ms: 600_000,
            offset_metadata_max_bytes: 4096,
            transaction_max_timeout_ms: 900_000,
            transaction_state_log_num_partitions: 50,
            transaction_state_log_segment_bytes: 100 * 1024 * 1024,
            transaction_abort_timed_out_transaction_cleanup_interval_ms: 10_000,
            transactional_id_expiration_ms: 604_800_000,
            tableflow_enable: true,
            tableflow_catalog_name: "floe".into(),
            tableflow_catalog_uri: None,
            tableflow_warehouse: None,
            tableflow_namespace: "default".into(),
            tableflow_target_file_size_bytes: 128 * 1024 * 1024,
            tableflow_s3_endpoint: None,
            tableflow_s3_region: None,
            tableflow_s3_access_key_id: None,
            tableflow_s3_secret_access_key: None,
            tableflow_rest_catalog_enable: true,
            tableflow_rest_catalog_vend_credentials: false,
            tableflow_table_defaults: BTreeMap::new(),
            schema_registry_enable: true,
            schema_registry_compatibility: "BACKWARD".into(),
            remote_storage_enable: false,
            remote_storage_url: None,
            remote_storage_endpoint: None,
            remote_storage_region: None,
            remote_storage_path_style: false,
            remote_storage_access_key_id: None,
            remote_storage_secret_access_key: None,
            remote_storage_options: BTreeMap::new(),
            remote_storage_request_timeout_ms: 60_000,
            log_local_retention_ms: -2,
            log_local_retention_bytes: -2,
            log_local_hard_limit_bytes: 10 * 1024 * 1024 * 1024,
            remote_log_manager_task_interval_ms: 30_000,
            remote_log_manager_upload_concurrency: 4,
            remote_log_manager_copy_max_bytes_per_second: -1,
            remote_log_reader_cache_bytes: 1024 * 1024 * 1024,
            listeners: String::new(),
            advertised_listeners: String::new(),
            listener_security_protocol_map: String::new(),
            ssl_keystore_location: None,
            ssl_key_location: None,
            ssl_truststore_location: None,
            ssl_client_auth: "none".into(),
            ssl_principal_mapping_rules: "DEFAULT".into(),
            ssl_enabled_protocols: "TLSv1.2,TLSv1.3".into(),
            ssl_reload_interval_ms: 30_000,
            sasl_enabled_mechanisms: "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512".into(),
            sasl_plain_users: BTreeMap::new(),
            sasl_plain_users_file: None,
            sasl_server_max_receive_size: 524_288,
            connections_max_reauth_ms: 0,
            connection_failed_authentication_delay_ms: 100,
            sasl_oauthbearer_jwks_endpoint_url: None,
            sasl_oauthbearer_expected_audience: String::new(),
            sasl_oauthbearer_expected_issuer: String::new(),
            sasl_oauthbearer_sub_claim_name: "sub".into(),
            sasl_oauthbearer_clock_skew_seconds: 30,
            authorizer_class_name: String::new(),
            super_users: String::new(),
            allow_everyone_if_no_acl_found: false,
            quota_window_num: 11,
            quota_window_size_seconds: 1,
            storage: StorageConfig::default(),
        }
    }
}

impl Config {
    /// Builds the configuration from (lowest to highest precedence) the defaults, the TOML
    /// file if given, `FLOE_*` variables from `env`, and `overrides` (`key`, `value`) pairs
    /// from the command line, whose values are TOML literals or bare strings.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                text.parse::<toml::Table>()
                    .map_err(|source| ConfigError::Parse {
                        path: path.to_path_buf(),
                        source,
                    })?
            }
            None => toml::Table::new(),
        };
        for (name, value) in env {
            if let Some(key) = name.strip_prefix("FLOE_") {
                // Variables that are not config keys (FLOE_BIN, FLOE_PYTHON, ...) belong to
                // scripts and tests; only known keys are taken.
                let key = key.to_ascii_lowercase();
                if Config::is_key(&key) {
                    let v = value_for(&key, &value);
                    insert_key(&mut table, key, v);
                }
            }
        }
        for (key, value) in overrides {
            let key = key.replace(['.', '-'], "_");
            let v = value_for(&key, value);
            insert_key(&mut table, key, v);
        }
        let mut config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.message().to_string()))?;
        // Everything derived from the data directory (the embedded remote store's file://
        // URL, the catalog's sqlite URI) needs an absolute path; `./floe-data` is the default.
        config.data_dir = std::path::absolute(&config.data_dir).map_err(|e| {
            ConfigError::Invalid(format!("data_dir {}: {e}", config.data_dir.display()))
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Tiered storage's settings: the embedded default (a directory under the data
    /// directory), overridden by the `remote_storage_*` and `remote_log_*` keys.
    pub fn remote_storage(&self) -> floe_storage::remote::RemoteConfig {
        let mut remote = floe_storage::remote::RemoteConfig::local(&self.data_dir);
        if let Some(url) = &self.remote_storage_url {
            remote.url = url.clone();
        }
        remote.endpoint = self.remote_storage_endpoint.clone();
        remote.region = self.remote_storage_region.clone();
        remote.path_style = self.remote_storage_path_style;
        remote.access_key = self.remote_storage_access_key_id.clone();
        remote.secret_key = self.remote_storage_secret_access_key.clone();
        remote.options = self
            .remote_storage_options
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        remote.task_interval =
            std::time::Duration::from_millis(self.remote_log_manager_task_interval_ms.max(10));
        remote.upload_concurrency = self.remote_log_manager_upload_concurrency.max(1);
        remote.copy_max_bytes_per_second =
            u64::try_from(self.remote_log_manager_copy_max_bytes_per_second)
                .ok()
                .filter(|&r| r > 0 && r < i64::MAX as u64);
        remote.cache_bytes = self.remote_log_reader_cache_bytes;
        remote.request_timeout =
            std::time::Duration::from_millis(self.remote_storage_request_timeout_ms.max(100));
        remote
    }

    /// The request budget in bytes, `None` when unbounded.
    pub fn request_budget_bytes(&self) -> Option<usize> {
        usize::try_from(self.queued_max_request_bytes).ok()
    }

    /// How long a connection may stay idle, `None` for ever.
    pub fn max_idle(&self) -> Option<std::time::Duration> {
        u64::try_from(self.connections_max_idle_ms)
            .ok()
            .map(std::time::Duration::from_millis)
    }

    /// The connection limits (`max_connections`, `max_connections_per_ip`).
    pub fn connection_limits(&self) -> crate::connection_limits::ConnectionLimits {
        let count = |v: i32| usize::try_from(v).unwrap_or(0);
        crate::connection_limits::ConnectionLimits::new(
            count(self.max_connections),
            count(self.max_connections_per_ip),
        )
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |msg: String| Err(ConfigError::Invalid(msg));
        if let Err(msg) = self.validate_tableflow() {
            return bad(msg);
        }
        if floe_registry::compat::Compatibility::parse(&self.schema_registry_compatibility)
            .is_none()
        {
            return bad(format!(
                "schema_registry_compatibility must be one of NONE, BACKWARD, BACKWARD_TRANSITIVE, \
                 FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE, not {:?}",
                self.schema_registry_compatibility
            ));
        }
        if self.num_partitions < 1 {
            return bad(format!(
                "num_partitions must be at least 1, not {}",
                self.num_partitions
            ));
        }
        if self.offsets_topic_num_partitions < 1 {
            return bad(format!(
                "offsets_topic_num_partitions must be at least 1, not {}",
                self.offsets_topic_num_partitions
            ));
        }
        if self.group_min_session_timeout_ms > self.group_max_session_timeout_ms {
            return bad(format!(
                "group_min_session_timeout_ms ({}) must not exceed group_max_session_timeout_ms ({})",
                self.group_min_session_timeout_ms, self.group_max_session_timeout_ms
            ));
        }
        if self.group_consumer_heartbeat_interval_ms < 1
            || self.group_consumer_heartbeat_interval_ms >= self.group_consumer_session_timeout_ms
        {
            return bad(format!(
                "group_consumer_heartbeat_interval_ms ({}) must be positive and below group_consumer_session_timeout_ms ({})",
                self.group_consumer_heartbeat_interval_ms, self.group_consumer_session_timeout_ms
            ));
        }
        if self.group_consumer_max_size < 1 {
            return bad(format!(
                "group_consumer_max_size must be at least 1, not {}",
                self.group_consumer_max_size
            ));
        }
        let assignors: Vec<&str> = self
            .group_consumer_assignors
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .collect();
        if assignors.is_empty()
            || assignors
                .iter()
                .any(|a| crate::group::consumer::assignor::Assignor::from_name(a).is_none())
        {
            return bad(format!(
                "group_consumer_assignors must list assignors among uniform, range, not {:?}",
                self.group_consumer_assignors
            ));
        }
        for (key, value) in [
            ("log_local_retention_ms", self.log_local_retention_ms),
            ("log_local_retention_bytes", self.log_local_retention_bytes),
        ] {
            if value < -2 {
                return bad(format!(
                    "{key} must be -2 (the retention setting), -1 (unlimited) or a size/time, not {value}"
                ));
            }
        }
        if self.tableflow_rest_catalog_vend_credentials
            && (self.tableflow_s3_access_key_id.is_none()
                || self.tableflow_s3_secret_access_key.is_none())
        {
            return bad(
                "tableflow_rest_catalog_vend_credentials needs the keys it hands out: set \
                 tableflow_s3_access_key_id and tableflow_s3_secret_access_key"
                    .to_string(),
            );
        }
        if let Some(url) = &self.remote_storage_url
            && url::Url::parse(url).is_err()
        {
            return bad(format!(
                "remote_storage_url is not a URL: {url:?} (file:///dir, s3://bucket/prefix, gs://..., az://...)"
            ));
        }
        let retention = [
            ("log_retention_ms", self.log_retention_ms),
            ("log_retention_minutes", self.log_retention_minutes),
            ("log_retention_hours", Some(self.log_retention_hours)),
            ("log_retention_bytes", Some(self.log_retention_bytes)),
        ];
        for (key, value) in retention {
            if value.is_some_and(|v| v < -1) {
                return bad(format!(
                    "{key} must be -1 (unlimited) or more, not {value:?}"
                ));
            }
        }
        if self.log_cleaner_dedupe_buffer_size < 1024 * 1024 {
            return bad(format!(
                "log_cleaner_dedupe_buffer_size must be at least 1048576, not {}",
                self.log_cleaner_dedupe_buffer_size
            ));
        }
        if self.log_cleaner_io_max_bytes_per_second.is_nan()
            || self.log_cleaner_io_max_bytes_per_second <= 0.0
        {
            return bad("log_cleaner_io_max_bytes_per_second must be positive".to_string());
        }
        if !(0.0..=1.0).contains(&self.log_cleaner_min_cleanable_ratio) {
            return bad(format!(
                "log_cleaner_min_cleanable_ratio must be between 0 and 1, not {}",
                self.log_cleaner_min_cleanable_ratio
            ));
        }
        if self.transaction_max_timeout_ms < 1
            || self.transaction_state_log_num_partitions < 1
            || self.transaction_abort_timed_out_transaction_cleanup_interval_ms < 1
            || self.transactional_id_expiration_ms < 1
            || self.transaction_state_log_segment_bytes < 1024
        {
            return bad(format!(
                "transaction settings must be positive (transaction_state_log_segment_bytes at least 1024): max timeout {}, partitions {}, cleanup interval {}, id expiration {}, segment bytes {}",
                self.transaction_max_timeout_ms,
                self.transaction_state_log_num_partitions,
                self.transaction_abort_timed_out_transaction_cleanup_interval_ms,
                self.transactional_id_expiration_ms,
                self.transaction_state_log_segment_bytes
            ));
        }
        if self.offsets_topic_segment_bytes < 1024 {
            return bad(format!(
                "offsets_topic_segment_bytes must be at least 1024, not {}",
                self.offsets_topic_segment_bytes
            ));
        }
        if self.log_retention_check_interval_ms < 1 {
            return bad("log_retention_check_interval_ms must be at least 1".to_string());
        }
        if self.log_segment_delete_delay_ms < 0 {
            return bad(format!(
                "log_segment_delete_delay_ms must not be negative, not {}",
                self.log_segment_delete_delay_ms
            ));
        }
        if self.node_id < 0 {
            return bad(format!(
                "node_id must not be negative, not {}",
                self.node_id
            ));
        }
        if self.socket_request_max_bytes < 1024 || self.socket_request_max_bytes > i32::MAX as usize
        {
            return bad(format!(
                "socket_request_max_bytes must be between 1024 and {}, not {}",
                i32::MAX,
                self.socket_request_max_bytes
            ));
        }
        if !self.storage.faults.trim().is_empty() {
            #[cfg(feature = "faults")]
            floe_storage::io::faults::Faults::from_spec(&self.storage.faults, None)
                .map_err(|e| ConfigError::Invalid(format!("storage.faults: {e}")))?;
            #[cfg(not(feature = "faults"))]
            return bad(
                "storage.faults needs a floe built with the `faults` cargo feature".to_string(),
            );
        }
        if self.max_partitions_per_topic < 1 || self.max_partitions < 1 {
            return bad(format!(
                "max_partitions_per_topic and max_partitions must be at least 1, not {} and {}",
                self.max_partitions_per_topic, self.max_partitions
            ));
        }
        if self.queued_max_request_bytes != -1
            && !(MIN_QUEUED_MAX_REQUEST_BYTES..=MAX_QUEUED_MAX_REQUEST_BYTES)
                .contains(&self.queued_max_request_bytes)
        {
            return bad(format!(
                "queued_max_request_bytes must be -1 (unbounded) or between {} and {}, not {}",
                MIN_QUEUED_MAX_REQUEST_BYTES,
                MAX_QUEUED_MAX_REQUEST_BYTES,
                self.queued_max_request_bytes
            ));
        }
        if self.connections_max_idle_ms != -1 && self.connections_max_idle_ms < 1 {
            return bad(format!(
                "connections_max_idle_ms must be -1 (never) or positive, not {}",
                self.connections_max_idle_ms
            ));
        }
        for (key, value) in [
            ("max_connections", self.max_connections),
            ("max_connections_per_ip", self.max_connections_per_ip),
        ] {
            if value < 1 {
                return bad(format!("{key} must be at least 1, not {value}"));
            }
        }
        if self.log_segment_bytes < 14 || self.log_segment_bytes > i32::MAX as u64 {
            return bad(format!(
                "log_segment_bytes must be between 14 and {}, not {}",
                i32::MAX,
                self.log_segment_bytes
            ));
        }
        if let Some(adv) = &self.advertised_listener {
            parse_host_port(adv).map_err(ConfigError::Invalid)?;
        }
        if !self.http_listen.is_empty() {
            parse_host_port(&self.http_listen)
                .map_err(|e| ConfigError::Invalid(format!("http_listen: {e}")))?;
        }
        self.validate_security().map_err(ConfigError::Invalid)?;
        if !matches!(self.log_format.as_str(), "text" | "json") {
            return bad(format!(
                "log_format must be text or json, not '{}'",
                self.log_format
            ));
        }
        Ok(())
    }
}

/// Splits `host:port` (the host may be a bracketed IPv6 address).
pub fn parse_host_port(s: &str) -> Result<(String, u16), String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("'{s}' is not host:port"))?;
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("'{s}' has an invalid port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("'{s}' has an empty host"));
    }
    Ok((host.to_string(), port))
}

mod keys;
mod security;
mod tableflow;

#[cfg(test)]
mod tests;

//! This broker's settings under Kafka's broker config names, as DescribeConfigs reports
//! them for a BROKER resource: what Kafka's tools, UIs and AdminClients list for a broker.
//!
//! Every value is what Floe does (a single node: replication factors and ISR sizes are 1;
//! record batches are stored as produced: `compression.type=producer`), not a Kafka default
//! copied blindly. All are read-only (Floe's broker settings change with a restart, not with
//! AlterConfigs). A setting equal to Floe's built-in default is reported as DEFAULT_CONFIG,
//! anything else as STATIC_BROKER_CONFIG (set in the file, the environment or a flag).

use crate::config::Config;
use crate::state::Endpoint;
use crate::topic_config::ConfigType;

/// One broker config.
pub struct BrokerConfig {
    /// Kafka's name.
    pub name: &'static str,
    /// Its value.
    pub value: String,
    /// Its type.
    pub kind: ConfigType,
    /// The value is Floe's built-in default.
    pub is_default: bool,
    /// One-line documentation.
    pub doc: &'static str,
}

/// Every broker config of this broker, by name.
pub fn broker_configs(config: &Config, endpoint: &Endpoint) -> Vec<BrokerConfig> {
    let defaults = values(&Config::default(), None);
    values(config, Some(endpoint))
        .into_iter()
        .map(|(name, value, kind, doc)| BrokerConfig {
            is_default: defaults
                .iter()
                .any(|(n, v, _, _)| *n == name && *v == value),
            name,
            value,
            kind,
            doc,
        })
        .collect()
}

type Entry = (&'static str, String, ConfigType, &'static str);

fn values(c: &Config, endpoint: Option<&Endpoint>) -> Vec<Entry> {
    use ConfigType::*;
    let s = |v: &dyn ToString| v.to_string();
    let listener = format!("PLAINTEXT://{}", c.listen);
    let advertised = match endpoint {
        Some(e) => format!("PLAINTEXT://{}:{}", e.host, e.port),
        None => listener.clone(),
    };
    let retention_ms = c.log_retention_ms();
    vec![
        ("node.id", s(&c.node_id), Int, "This broker's id."),
        (
            "broker.id",
            s(&c.node_id),
            Int,
            "This broker's id (the older name).",
        ),
        (
            "process.roles",
            "broker,controller".into(),
            List,
            "A single node is broker and controller.",
        ),
        ("listeners", listener, List, "The Kafka listener."),
        (
            "advertised.listeners",
            advertised,
            List,
            "The address given to clients in Metadata.",
        ),
        (
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT".into(),
            String,
            "Security protocol of each listener.",
        ),
        (
            "inter.broker.listener.name",
            "PLAINTEXT".into(),
            String,
            "Listener between brokers (none on a single node).",
        ),
        (
            "log.dirs",
            c.data_dir.display().to_string(),
            String,
            "The data directory.",
        ),
        (
            "log.dir",
            c.data_dir.display().to_string(),
            String,
            "The data directory.",
        ),
        (
            "auto.create.topics.enable",
            s(&c.auto_create_topics_enable),
            Boolean,
            "Create a topic on first use.",
        ),
        (
            "delete.topic.enable",
            "true".into(),
            Boolean,
            "DeleteTopics is served.",
        ),
        (
            "num.partitions",
            s(&c.num_partitions),
            Int,
            "Partitions of an auto-created topic.",
        ),
        (
            "default.replication.factor",
            "1".into(),
            Int,
            "Replicas of a new topic (a single node).",
        ),
        (
            "min.insync.replicas",
            "1".into(),
            Int,
            "In-sync replicas an acks=all write needs.",
        ),
        (
            "unclean.leader.election.enable",
            "false".into(),
            Boolean,
            "No out-of-sync replica ever leads.",
        ),
        (
            "auto.leader.rebalance.enable",
            "false".into(),
            Boolean,
            "No leadership to rebalance on a single node.",
        ),
        (
            "compression.type",
            "producer".into(),
            String,
            "Batches are stored as the producer compressed them.",
        ),
        (
            "message.max.bytes",
            s(&c.message_max_bytes),
            Int,
            "Largest record batch (default max.message.bytes).",
        ),
        (
            "socket.request.max.bytes",
            s(&c.socket_request_max_bytes),
            Int,
            "Largest request.",
        ),
        (
            "queued.max.request.bytes",
            s(&c.queued_max_request_bytes),
            Long,
            "Bytes of requests being received, all connections.",
        ),
        (
            "connections.max.idle.ms",
            s(&c.connections_max_idle_ms),
            Long,
            "Idle connections are closed after this.",
        ),
        (
            "max.connections",
            s(&c.max_connections),
            Int,
            "Most connections at once.",
        ),
        (
            "max.connections.per.ip",
            s(&c.max_connections_per_ip),
            Int,
            "Most connections at once from one address.",
        ),
        (
            "log.segment.bytes",
            s(&c.log_segment_bytes),
            Int,
            "Default segment.bytes.",
        ),
        (
            "log.roll.ms",
            s(&c.log_roll_ms),
            Long,
            "Default segment.ms.",
        ),
        (
            "log.roll.hours",
            s(&(c.log_roll_ms / 3_600_000)),
            Int,
            "Default segment.ms, in hours.",
        ),
        (
            "log.roll.jitter.ms",
            "0".into(),
            Long,
            "Default segment.jitter.ms.",
        ),
        (
            "log.index.interval.bytes",
            s(&c.log_index_interval_bytes),
            Int,
            "Default index.interval.bytes.",
        ),
        (
            "log.index.size.max.bytes",
            "10485760".into(),
            Int,
            "Default segment.index.bytes.",
        ),
        (
            "log.retention.ms",
            s(&retention_ms),
            Long,
            "Default retention.ms.",
        ),
        (
            "log.retention.minutes",
            c.log_retention_minutes
                .map_or_else(|| s(&(retention_ms / 60_000)), |m| s(&m)),
            Int,
            "Default retention.ms, in minutes.",
        ),
        (
            "log.retention.hours",
            s(&c.log_retention_hours),
            Int,
            "Default retention.ms, in hours.",
        ),
        (
            "log.retention.bytes",
            s(&c.log_retention_bytes),
            Long,
            "Default retention.bytes.",
        ),
        (
            "log.retention.check.interval.ms",
            s(&c.log_retention_check_interval_ms),
            Long,
            "Time between retention passes.",
        ),
        (
            "log.segment.delete.delay.ms",
            s(&c.log_segment_delete_delay_ms),
            Long,
            "Default file.delete.delay.ms.",
        ),
        (
            "log.cleanup.policy",
            "delete".into(),
            List,
            "Default cleanup.policy.",
        ),
        (
            "log.message.timestamp.type",
            "CreateTime".into(),
            String,
            "Default message.timestamp.type.",
        ),
        (
            "log.message.format.version",
            "3.0-IV1".into(),
            String,
            "Accepted and ignored, as Kafka 3.x does: batches are always format v2.",
        ),
        (
            "log.preallocate",
            "false".into(),
            Boolean,
            "Default preallocate.",
        ),
        (
            "log.flush.interval.messages",
            s(&i64::MAX),
            Long,
            "Default flush.messages.",
        ),
        (
            "log.flush.interval.ms",
            s(&i64::MAX),
            Long,
            "Default flush.ms.",
        ),
        (
            "log.cleaner.enable",
            s(&c.log_cleaner_enable),
            Boolean,
            "Run the log cleaner.",
        ),
        (
            "log.cleaner.threads",
            "1".into(),
            Int,
            "Log cleaner threads.",
        ),
        (
            "log.cleaner.dedupe.buffer.size",
            s(&c.log_cleaner_dedupe_buffer_size),
            Long,
            "Memory of the cleaner's offset map.",
        ),
        (
            "log.cleaner.io.max.bytes.per.second",
            s(&c.log_cleaner_io_max_bytes_per_second),
            Double,
            "Cap on the cleaner's I/O.",
        ),
        (
            "log.cleaner.backoff.ms",
            s(&c.log_cleaner_backoff_ms),
            Long,
            "Cleaner sleep when nothing is dirty.",
        ),
        (
            "log.cleaner.min.cleanable.ratio",
            s(&c.log_cleaner_min_cleanable_ratio),
            Double,
            "Default min.cleanable.dirty.ratio.",
        ),
        (
            "log.cleaner.min.compaction.lag.ms",
            s(&c.log_cleaner_min_compaction_lag_ms),
            Long,
            "Default min.compaction.lag.ms.",
        ),
        (
            "log.cleaner.max.compaction.lag.ms",
            s(&c.log_cleaner_max_compaction_lag_ms),
            Long,
            "Default max.compaction.lag.ms.",
        ),
        (
            "log.cleaner.delete.retention.ms",
            s(&c.log_cleaner_delete_retention_ms),
            Long,
            "Default delete.retention.ms.",
        ),
        (
            "offsets.topic.replication.factor",
            "1".into(),
            Short,
            "Replicas of __consumer_offsets.",
        ),
        (
            "offsets.topic.num.partitions",
            s(&c.offsets_topic_num_partitions),
            Int,
            "Partitions of __consumer_offsets.",
        ),
        (
            "offsets.topic.segment.bytes",
            s(&c.offsets_topic_segment_bytes),
            Int,
            "Segment size of __consumer_offsets.",
        ),
        (
            "offsets.retention.minutes",
            s(&c.offsets_retention_minutes),
            Int,
            "How long committed offsets of empty groups are kept.",
        ),
        (
            "offsets.retention.check.interval.ms",
            s(&c.offsets_retention_check_interval_ms),
            Long,
            "Time between offset expiry passes.",
        ),
        (
            "offset.metadata.max.bytes",
            s(&c.offset_metadata_max_bytes),
            Int,
            "Largest metadata of a committed offset.",
        ),
        (
            "group.initial.rebalance.delay.ms",
            s(&c.group_initial_rebalance_delay_ms),
            Int,
            "Wait for more members before the first rebalance.",
        ),
        (
            "group.min.session.timeout.ms",
            s(&c.group_min_session_timeout_ms),
            Int,
            "Shortest session timeout of a classic group member.",
        ),
        (
            "group.max.session.timeout.ms",
            s(&c.group_max_session_timeout_ms),
            Int,
            "Longest session timeout of a classic group member.",
        ),
        (
            "group.consumer.heartbeat.interval.ms",
            s(&c.group_consumer_heartbeat_interval_ms),
            Int,
            "Heartbeat interval of KIP-848 groups.",
        ),
        (
            "group.consumer.session.timeout.ms",
            s(&c.group_consumer_session_timeout_ms),
            Int,
            "Session timeout of KIP-848 groups.",
        ),
        (
            "group.consumer.max.size",
            s(&c.group_consumer_max_size),
            Int,
            "Most members of a KIP-848 group.",
        ),
        (
            "group.consumer.assignors",
            c.group_consumer_assignors.clone(),
            List,
            "Server-side assignors of KIP-848 groups.",
        ),
        (
            "group.coordinator.rebalance.protocols",
            "classic,consumer".into(),
            List,
            "Group protocols served.",
        ),
        (
            "transaction.state.log.replication.factor",
            "1".into(),
            Short,
            "Replicas of __transaction_state.",
        ),
        (
            "transaction.state.log.min.isr",
            "1".into(),
            Int,
            "In-sync replicas of __transaction_state.",
        ),
        (
            "transaction.state.log.num.partitions",
            s(&c.transaction_state_log_num_partitions),
            Int,
            "Partitions of __transaction_state.",
        ),
        (
            "transaction.state.log.segment.bytes",
            s(&c.transaction_state_log_segment_bytes),
            Int,
            "Segment size of __transaction_state.",
        ),
        (
            "transaction.max.timeout.ms",
            s(&c.transaction_max_timeout_ms),
            Int,
            "Longest transaction.timeout.ms a producer may ask for.",
        ),
        (
            "transaction.abort.timed.out.transaction.cleanup.interval.ms",
            s(&c.transaction_abort_timed_out_transaction_cleanup_interval_ms),
            Int,
            "Time between checks for timed-out transactions.",
        ),
        (
            "transactional.id.expiration.ms",
            s(&c.transactional_id_expiration_ms),
            Int,
            "How long an unused transactional id is kept.",
        ),
        (
            "remote.log.storage.system.enable",
            "true".into(),
            Boolean,
            "Tiered storage is available (per topic: remote.storage.enable).",
        ),
        (
            "log.local.retention.ms",
            s(&c.log_local_retention_ms),
            Long,
            "Default local.retention.ms.",
        ),
        (
            "log.local.retention.bytes",
            s(&c.log_local_retention_bytes),
            Long,
            "Default local.retention.bytes.",
        ),
        (
            "remote.log.manager.task.interval.ms",
            s(&c.remote_log_manager_task_interval_ms),
            Long,
            "Time between upload passes.",
        ),
        (
            "remote.log.manager.copy.max.bytes.per.second",
            s(&c.remote_log_manager_copy_max_bytes_per_second),
            Long,
            "Upload bandwidth cap.",
        ),
    ]
}

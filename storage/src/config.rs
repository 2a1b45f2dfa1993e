//! Per-partition log settings, named after Kafka's topic configs.

/// What recovery does with damage that is not a torn tail (raft-engine calls these recovery
/// modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecoveryPolicy {
    /// Cut a torn tail (what a crash leaves: damage with nothing valid after it, above the
    /// last known-synced offset); refuse to open the partition on any other damage, with an
    /// error naming the file and byte position.
    #[default]
    TolerateTailCorruption,
    /// Treat any damage like a torn tail: truncate the log at the first bad batch (dropping
    /// everything after it, valid or not) and open. For an operator who prefers availability
    /// over the records after the damage.
    TruncateCorruption,
}

/// Kafka's `cleanup.policy`: what happens to old segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupPolicy {
    /// `delete`: segments past `retention.ms` or beyond `retention.bytes` are deleted.
    pub delete: bool,
    /// `compact`: the cleaner keeps only the latest record of each key.
    pub compact: bool,
}

impl Default for CleanupPolicy {
    fn default() -> Self {
        CleanupPolicy {
            delete: true,
            compact: false,
        }
    }
}

impl CleanupPolicy {
    /// Parses Kafka's comma-separated list (`delete`, `compact`, `compact,delete`).
    pub fn parse(value: &str) -> Option<CleanupPolicy> {
        let mut policy = CleanupPolicy {
            delete: false,
            compact: false,
        };
        for part in value.split(',').map(str::trim) {
            match part {
                "delete" => policy.delete = true,
                "compact" => policy.compact = true,
                _ => return None,
            }
        }
        (policy.delete || policy.compact).then_some(policy)
    }
}

/// Settings of one partition log. Field names follow Kafka's topic configs
/// (`segment.bytes`, `segment.ms`, `index.interval.bytes`, `segment.index.bytes`,
/// `max.message.bytes`, `flush.messages`, `flush.ms`, `retention.ms`, `retention.bytes`,
/// `cleanup.policy`, `file.delete.delay.ms`).
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// Roll the active segment when appending would make it larger than this.
    pub segment_bytes: u64,
    /// Roll the active segment when its first batch is older than this.
    pub segment_ms: u64,
    /// Bytes of batches between two offset-index (and time-index) entries.
    pub index_interval_bytes: u32,
    /// Roll when an index file would grow past this size.
    pub segment_index_bytes: u32,
    /// Largest batch (compressed size, whole batch) an append accepts.
    pub max_message_bytes: u32,
    /// Kafka `flush.messages`: the log syncs itself once this many records are unsynced,
    /// whatever the producer's acks. `u64::MAX` (the default, like Kafka's) never.
    pub flush_messages: u64,
    /// Kafka `flush.ms`: the log syncs itself once its oldest unsynced record is this old
    /// (checked by the log manager's flusher thread). `u64::MAX` (the default) never.
    pub flush_ms: u64,
    /// What recovery does with damage that is not a torn tail.
    pub recovery: RecoveryPolicy,
    /// Kafka `retention.ms`: closed segments whose largest timestamp is older than this are
    /// deleted (with `cleanup.policy` delete). `None` (Kafka's -1): kept by age forever.
    pub retention_ms: Option<u64>,
    /// Kafka `retention.bytes`: the oldest segments are deleted while the log without them
    /// is still at least this large. `None` (Kafka's -1, the default): no size limit.
    pub retention_bytes: Option<u64>,
    /// Kafka `cleanup.policy`.
    pub cleanup_policy: CleanupPolicy,
    /// Kafka `file.delete.delay.ms`: how long the files of a deleted segment stay on disk
    /// (renamed `*.deleted`) before they are removed.
    pub file_delete_delay_ms: u64,
    /// Kafka `min.cleanable.dirty.ratio`: a compacted log is cleaned once its dirty part is
    /// at least this share of its closed segments.
    pub min_cleanable_dirty_ratio: f64,
    /// Kafka `min.compaction.lag.ms`: records younger than this are not cleaned.
    pub min_compaction_lag_ms: u64,
    /// Kafka `max.compaction.lag.ms`: a log whose oldest dirty record is older than this is
    /// cleaned whatever its dirty ratio. `u64::MAX`: never forced.
    pub max_compaction_lag_ms: u64,
    /// Kafka `delete.retention.ms`: a tombstone older than this is removed by the cleaner.
    pub delete_retention_ms: u64,
    /// Kafka `remote.storage.enable`: closed segments are uploaded to the remote store and
    /// served from it once the local copy is gone (only with `cleanup.policy=delete`).
    pub remote_storage_enable: bool,
    /// Kafka `local.retention.ms` (resolved: `retention.ms` when the topic says -2): how long
    /// an uploaded segment stays on local disk. `None`: as long as the log keeps it.
    pub local_retention_ms: Option<u64>,
    /// Kafka `local.retention.bytes` (resolved like `local_retention_ms`): uploaded segments
    /// are deleted locally while the local log without them is still this large.
    pub local_retention_bytes: Option<u64>,
    /// `log.local.hard.limit.bytes`: appends to a tiered log are refused while more than this
    /// many bytes of it are not yet uploaded (an unreachable store must not fill the disk).
    pub local_hard_limit_bytes: Option<u64>,
    /// The topic's id, part of the remote key prefix (a topic deleted and created again
    /// under the same name never sees the old one's objects).
    pub topic_id: Option<String>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            index_interval_bytes: 4096,
            segment_index_bytes: 10 * 1024 * 1024,
            max_message_bytes: 1_048_588,
            flush_messages: u64::MAX,
            flush_ms: u64::MAX,
            recovery: RecoveryPolicy::default(),
            retention_ms: Some(7 * 24 * 60 * 60 * 1000),
            retention_bytes: None,
            cleanup_policy: CleanupPolicy::default(),
            file_delete_delay_ms: 60_000,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: u64::MAX,
            delete_retention_ms: 24 * 60 * 60 * 1000,
            remote_storage_enable: false,
            local_retention_ms: None,
            local_retention_bytes: None,
            local_hard_limit_bytes: None,
            topic_id: None,
        }
    }
}

impl LogConfig {
    /// The same settings for the topic with this id (part of its remote key prefix).
    pub fn with_topic_id(mut self, id: impl std::fmt::Display) -> LogConfig {
        self.topic_id = Some(id.to_string());
        self
    }
}

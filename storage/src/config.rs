//! Per-partition log settings, named after Kafka's topic configs.

/// Settings of one partition log. Field names follow Kafka's topic configs
/// (`segment.bytes`, `segment.ms`, `index.interval.bytes`, `segment.index.bytes`,
/// `max.message.bytes`).
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            index_interval_bytes: 4096,
            segment_index_bytes: 10 * 1024 * 1024,
            max_message_bytes: 1_048_588,
        }
    }
}

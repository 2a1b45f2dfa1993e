//! Floe's storage engine: per-partition segmented logs laid out on disk exactly like Kafka's
//! (`<topic>-<partition>/{base_offset:020}.log|.index|.timeindex`), with crash recovery,
//! idempotent-producer state and group-committed durability.
//!
//! Architecture invariants: storage knows nothing of Kafka requests or error codes; its API
//! is in its own types (the broker maps them). It depends on `floe-protocol` only for the
//! record-batch view. All file I/O goes through [`io`].
//!
//! Entry points: [`LogManager`] (the data directory) hands out [`PartitionLog`]s. The on-disk
//! format and recovery rules are described in `docs/on-disk-format.md`.

mod background;
pub mod cleaner;
pub mod config;
#[cfg(test)]
mod crash_tests;
pub mod error;
mod index_file;
pub mod io;
pub mod log_manager;
mod offset_index;
pub mod partition_log;
pub mod producer_state;
mod recovery;
pub mod recovery_point;
pub mod remote;
pub mod retention;
pub mod scrubber;
pub mod segment;
#[cfg(test)]
mod test_util;
mod time_index;
pub mod topic_partition;
mod txn_index;

pub use cleaner::CleanerConfig;
pub use config::{CleanupPolicy, LogConfig, RecoveryPolicy};
pub use error::{Corruption, IoOp, StorageError};
pub use io::FileRegion;
pub use io::{Io, IoKind, IoMode};
pub use log_manager::LogManager;
pub use partition_log::group_commit::sync_logs;
pub use partition_log::retention::DeleteRecordsError;
pub use partition_log::{
    AppendError, AppendInfo, Isolation, PartitionLog, ReadError, ReadResult, RegionRead,
};
pub use producer_state::{AbortedTxn, BatchMetadata, ProducerEntry};
pub use retention::RetentionConfig;
pub use scrubber::ScrubConfig;
pub use topic_partition::TopicPartition;

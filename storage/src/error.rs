//! Errors of the storage crate. Storage speaks in its own terms (files, offsets, corruption);
//! the broker maps these to Kafka error codes in one place.

use std::io;
use std::path::PathBuf;

use floe_protocol::record_batch::BatchError;

/// The file operation that failed, for error messages and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoOp {
    /// Opening or creating a file.
    Open,
    /// Creating a directory.
    CreateDir,
    /// Listing a directory.
    ListDir,
    /// Reading.
    Read,
    /// Writing.
    Write,
    /// `fdatasync`/`fsync` of a file or directory.
    Sync,
    /// Setting a file's length.
    Truncate,
    /// Renaming.
    Rename,
    /// Removing a file or directory.
    Remove,
    /// Querying a file's metadata.
    Metadata,
    /// Taking the data-directory lock.
    Lock,
}

impl std::fmt::Display for IoOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IoOp::Open => "open",
            IoOp::CreateDir => "create directory",
            IoOp::ListDir => "list directory",
            IoOp::Read => "read",
            IoOp::Write => "write",
            IoOp::Sync => "sync",
            IoOp::Truncate => "truncate",
            IoOp::Rename => "rename",
            IoOp::Remove => "remove",
            IoOp::Metadata => "stat",
            IoOp::Lock => "lock",
        })
    }
}

/// What kind of damage was found on disk.
#[derive(Debug, thiserror::Error)]
pub enum Corruption {
    /// A record batch in a `.log` file is invalid.
    #[error("invalid record batch")]
    Batch(#[from] BatchError),
    /// A producer snapshot failed its checksum or does not parse.
    #[error("invalid producer snapshot: {0}")]
    Snapshot(&'static str),
    /// An index entry points outside its segment or out of order.
    #[error("inconsistent index entry: {0}")]
    Index(&'static str),
}

/// Failure of a storage operation.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A file-system call failed.
    #[error("failed to {op} {path}")]
    Io {
        /// What was attempted.
        op: IoOp,
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Another process (another broker) holds the data directory's lock.
    #[error("data directory {path} is locked by another process")]
    DirLocked {
        /// The lock file.
        path: PathBuf,
    },
    /// Damage found in a file that recovery cannot absorb as a torn tail.
    #[error("corruption in {path} at byte {position}")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte position of the damage.
        position: u64,
        /// What is wrong.
        #[source]
        kind: Corruption,
    },
    /// An earlier write or sync of this log failed; the log refuses further work because its
    /// durable state is unknown (a later successful fsync would not prove the earlier data
    /// reached the disk).
    #[error("log {path} is offline after an I/O failure")]
    LogFailed {
        /// The partition directory.
        path: PathBuf,
    },
    /// An append's write failed (a full disk: ENOSPC, EDQUOT) before anything became part
    /// of the log: the bytes that may have reached the file lie beyond the segment's end
    /// (cut off, or overwritten by the next append), so the log stays usable and the next
    /// append tries again.
    #[error("append to {path} was refused by the file system; nothing was appended")]
    WriteRefused {
        /// The segment file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The log was taken offline because its data is damaged (found by the scrubber).
    #[error("log {path} is offline: {reason}")]
    Offline {
        /// The partition directory.
        path: PathBuf,
        /// What was found.
        reason: String,
    },
    /// The log was deleted or shut down.
    #[error("log {path} is closed")]
    Closed {
        /// The partition directory.
        path: PathBuf,
    },
    /// An object-store request of tiered storage failed (the store is unreachable, refused
    /// the request, or returned something that fails its check).
    #[error("remote storage: {op} {key}: {reason}")]
    Remote {
        /// What was attempted (`put`, `get`, `verify`, `list`, `delete`, `manifest`).
        op: &'static str,
        /// The object key (or prefix).
        key: String,
        /// What went wrong.
        reason: String,
    },
    /// A tiered partition holds more bytes not yet uploaded than
    /// `log.local.hard.limit.bytes`: appends are refused until uploads catch up, so an
    /// unreachable object store never fills the disk.
    #[error(
        "log {path} has {bytes} bytes not yet uploaded to the remote store, above the hard limit of {limit}; appends resume when uploads catch up"
    )]
    UploadBacklog {
        /// The partition directory.
        path: PathBuf,
        /// Bytes of local segments not yet in the remote store.
        bytes: u64,
        /// The configured limit.
        limit: u64,
    },
    /// A directory name that is not `<topic>-<partition>`.
    #[error("invalid partition directory name {name:?}")]
    InvalidPartitionDir {
        /// The offending name.
        name: String,
    },
}

impl StorageError {
    pub(crate) fn remote(
        op: &'static str,
        key: impl std::fmt::Display,
        reason: impl std::fmt::Display,
    ) -> Self {
        StorageError::Remote {
            op,
            key: key.to_string(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn io(op: IoOp, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StorageError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

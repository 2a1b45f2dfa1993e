//! Tableflow's error type.

use std::path::PathBuf;

/// What went wrong materializing a topic.
#[derive(Debug, thiserror::Error)]
pub enum TableflowError {
    /// An Iceberg operation (catalog, file IO, writer, commit) failed.
    #[error("failed to {what}")]
    Iceberg {
        /// What was being done.
        what: String,
        /// The iceberg crate's error (boxed: it is large and errors are rare).
        #[source]
        source: Box<iceberg::Error>,
    },
    /// Records could not be turned into Arrow rows.
    #[error("failed to build rows for {table}")]
    Arrow {
        /// Table.
        table: String,
        /// Arrow's error.
        #[source]
        source: arrow_schema::ArrowError,
    },
    /// The table exists with a schema other than the topic's configs describe.
    #[error("table {table} exists with a different schema than the topic's table configs")]
    SchemaMismatch {
        /// Table.
        table: String,
    },
    /// The offsets in a snapshot summary cannot be read.
    #[error("unreadable floe.next-offsets in the snapshot summary of {table}: {reason}")]
    Summary {
        /// Table.
        table: String,
        /// Why.
        reason: String,
    },
    /// The log could not be read.
    #[error("failed to read {topic}-{partition}")]
    Read {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Storage's error.
        #[source]
        source: floe_storage::ReadError,
    },
    /// A batch in the log could not be decoded.
    #[error("undecodable record batch at {topic}-{partition} offset {offset}: {reason}")]
    Decode {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Offset of the batch.
        offset: i64,
        /// Why.
        reason: String,
    },
    /// A local directory could not be created.
    #[error("cannot create {path}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A broken internal expectation.
    #[error("internal error: {0}")]
    Internal(String),
}

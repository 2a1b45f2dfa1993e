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
    /// The log could not be made durable up to what a commit would record.
    #[error("failed to sync {topic}-{partition} before a table commit")]
    Sync {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Storage's error.
        #[source]
        source: floe_storage::StorageError,
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
    /// The catalog answered a commit as done, but the table does not hold its snapshot.
    #[error("commit to {table} was not applied by the catalog")]
    CommitNotApplied {
        /// The table.
        table: String,
    },
    /// The table's offsets are past the end of its log: the log lost records the table
    /// holds, or the topic was deleted and created again under the table's name.
    #[error(
        "table {table} is ahead of {topic}-{partition}: it holds records up to offset {table_next}, the log ends at {log_end}"
    )]
    TableAheadOfLog {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The table.
        table: String,
        /// The next offset the table records.
        table_next: i64,
        /// The log's end offset.
        log_end: i64,
    },
    /// A broken internal expectation.
    #[error("internal error: {0}")]
    Internal(String),
    /// Listing or deleting a table's files in its warehouse failed.
    #[error("failed to {what} {path}")]
    Warehouse {
        /// What was being done.
        what: String,
        /// The file or directory.
        path: String,
        /// The object store's error (boxed: it is large and errors are rare).
        #[source]
        source: Box<object_store::Error>,
    },
    /// A maintenance run stopped before deleting anything more: it could not be sure that
    /// what it would delete is unreferenced.
    #[error("maintenance of {table} stopped: {reason}")]
    MaintenanceAborted {
        /// The table.
        table: String,
        /// Why.
        reason: String,
    },
}

/// Maps an `iceberg` crate error to [`TableflowError::Iceberg`] saying what was being done:
/// `.map_err(iceberg_error(format!("load {table}")))`.
pub(crate) fn iceberg_error(
    what: impl Into<String>,
) -> impl FnOnce(iceberg::Error) -> TableflowError {
    let what = what.into();
    move |source| TableflowError::Iceberg {
        what,
        source: Box::new(source),
    }
}

//! HELP text and units of the metrics the storage and tableflow crates record through the
//! `metrics` facade, and zero values for the unlabelled ones, so that a scrape lists them
//! before the first event (an idle broker still shows `floe_remote_upload_errors_total 0`).

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

/// Describes every facade metric to the installed recorder.
pub fn describe_all() {
    describe_histogram!(
        "floe_log_fsync_seconds",
        Unit::Seconds,
        "Duration of one batch of fdatasyncs of partition logs (one group commit)."
    );
    describe_histogram!(
        "floe_group_commit_partitions",
        Unit::Count,
        "Partitions made durable by one group commit."
    );
    describe_gauge!(
        "floe_partition_offline",
        "1 while a partition cannot be served (its log failed to open, a write failed, or the scrubber found damage)."
    );
    describe_counter!(
        "floe_remote_upload_bytes_total",
        Unit::Bytes,
        "Bytes of segments uploaded to the remote store."
    );
    describe_counter!(
        "floe_remote_upload_segments_total",
        "Segments uploaded to the remote store."
    );
    describe_counter!(
        "floe_remote_upload_errors_total",
        "Upload passes that failed (the store unreachable or refusing)."
    );
    describe_histogram!(
        "floe_remote_upload_seconds",
        Unit::Seconds,
        "Duration of one segment's upload, verification included."
    );
    describe_counter!(
        "floe_remote_deleted_segments_total",
        "Remote segments deleted by retention."
    );
    describe_counter!(
        "floe_remote_fetch_bytes_total",
        Unit::Bytes,
        "Bytes of remote segments downloaded into the read cache."
    );
    describe_counter!(
        "floe_remote_fetch_errors_total",
        "Downloads of remote segments that failed."
    );
    describe_histogram!(
        "floe_remote_fetch_seconds",
        Unit::Seconds,
        "Duration of one remote segment's download."
    );
    describe_gauge!(
        "floe_remote_cache_bytes",
        Unit::Bytes,
        "Bytes of downloaded remote segments in the local read cache."
    );
    describe_gauge!(
        "floe_remote_store_up",
        "1 while the remote store answers, 0 while uploads fail."
    );
    describe_gauge!(
        "floe_remote_upload_lag_bytes",
        Unit::Bytes,
        "Bytes of a tiered partition not yet uploaded."
    );
    describe_gauge!(
        "floe_remote_log_bytes",
        Unit::Bytes,
        "Bytes of a tiered partition in the remote store."
    );
    describe_counter!(
        "floe_tableflow_commit_failures_total",
        "Iceberg commits of a table that failed (retried)."
    );
    describe_gauge!(
        "floe_tableflow_stopped",
        "1 while a table's materialization is stopped by an error it cannot retry past."
    );
    describe_counter!(
        "floe_tableflow_undecodable_batches_total",
        "Record batches of a topic that did not decode; they went to the dead-letter table whole."
    );
    describe_counter!(
        "floe_tableflow_records_skipped_total",
        "Records deleted by retention before they were materialized."
    );
    describe_gauge!(
        "floe_tableflow_failing",
        "1 while a table's writer fails and retries (catalog or warehouse unreachable)."
    );
    describe_counter!(
        "floe_tableflow_compactions_total",
        "Compaction commits of a table (small files rewritten or manifests merged)."
    );
    describe_counter!(
        "floe_tableflow_compaction_files_rewritten_total",
        "Small data files a table's compaction replaced."
    );
    describe_gauge!(
        "floe_tableflow_data_files",
        "Live data files of a table after its last maintenance round."
    );
    describe_gauge!(
        "floe_tableflow_manifests",
        "Manifests of a table's current snapshot after its last maintenance round."
    );
    describe_counter!(
        "floe_tableflow_snapshots_expired_total",
        "Snapshots of a table removed by snapshot expiry."
    );
    describe_gauge!(
        "floe_tableflow_snapshots",
        "Snapshots in a table's metadata."
    );
    describe_counter!(
        "floe_tableflow_orphan_files_deleted_total",
        "Files of a table that no live snapshot referenced, deleted by orphan-file cleanup."
    );
    describe_counter!(
        "floe_tableflow_maintenance_failures_total",
        "Maintenance rounds of a table that failed (the next round retries)."
    );
    describe_histogram!(
        "floe_tableflow_maintenance_seconds",
        Unit::Seconds,
        "Time one maintenance round of a table took."
    );
    for name in [
        "floe_remote_upload_bytes_total",
        "floe_remote_upload_segments_total",
        "floe_remote_upload_errors_total",
        "floe_remote_deleted_segments_total",
        "floe_remote_fetch_bytes_total",
        "floe_remote_fetch_errors_total",
    ] {
        metrics::counter!(name).increment(0);
    }
    for name in [
        "floe_log_fsync_seconds",
        "floe_group_commit_partitions",
        "floe_remote_upload_seconds",
        "floe_remote_fetch_seconds",
    ] {
        // Registered: rendered with zero counts until the first observation.
        let _ = metrics::histogram!(name);
    }
    metrics::gauge!("floe_remote_cache_bytes").increment(0.0);
}

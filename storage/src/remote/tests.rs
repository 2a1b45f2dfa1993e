//! Tiered storage over the embedded store (a local directory): upload, local retention,
//! reads from the remote part, rebuilding a lost partition, remote retention. The same
//! paths against real S3 servers (moto, s3s-fs) are tested end to end in `tests/`.

use std::path::Path;
use std::time::{Duration, Instant};

use super::RemoteConfig;
use crate::config::LogConfig;
use crate::test_util::{batch, decode, open_manager, wait_durable};
use crate::topic_partition::TopicPartition;
use crate::{LogManager, PartitionLog};

fn remote_config(root: &Path) -> RemoteConfig {
    RemoteConfig {
        url: format!("file://{}", root.join("bucket").display()),
        task_interval: Duration::from_millis(20),
        cache_bytes: 4096,
        ..RemoteConfig::local(root)
    }
}

fn tiered() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        remote_storage_enable: true,
        local_retention_bytes: Some(2048),
        retention_ms: None,
        topic_id: Some("t-id".into()),
        ..LogConfig::default()
    }
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Appends `n` batches of 5 records (timestamps 1000 + 10 * batch), durably.
fn fill(log: &std::sync::Arc<PartitionLog>, n: usize) {
    for i in 0..n {
        log.append_now(batch(&format!("b{i}"), 5, 1000 + 10 * i as i64), 0)
            .unwrap();
    }
    // Nothing asks the sync thread for the tail after the last roll: sync it here.
    log.sync().unwrap();
    wait_durable(log, log.log_end_offset());
}

fn objects(root: &Path) -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if entry.path().is_dir() {
                walk(&entry.path(), out);
            } else {
                out.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(&root.join("bucket"), &mut out);
    out.sort();
    out
}

fn open_tiered(data: &Path, root: &Path) -> LogManager {
    let manager = open_manager(data);
    manager.start_remote(remote_config(root)).unwrap();
    manager
}

fn uploads_then_serves_the_history_from_the_remote_part() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let tp = TopicPartition::new("tiered", 0);
    let end;
    {
        let manager = open_tiered(&data, root.path());
        let log = manager.open_partition(&tp, tiered()).unwrap();
        fill(&log, 60);
        end = log.log_end_offset();
        let remote = log.remote().expect("attached at open");
        // Every closed segment is uploaded; the active one never is.
        let active_base = log.closed_segments().len();
        wait_until("uploads", || {
            remote.manifest().segments.len() == active_base && active_base > 3
        });
        let before = log.size_bytes();
        log.enforce_retention(crate::partition_log::wall_clock_ms())
            .unwrap();
        assert!(log.size_bytes() < before, "local retention deleted nothing");
        assert!(log.size_bytes() <= 2048 + 1024, "{}", log.size_bytes());
        assert_eq!(log.log_start_offset(), 0, "tiered history stays readable");
        assert!(log.local_start_offset() > 0);
        // Every offset reads back, in order, across the remote and local parts.
        let mut offset = 0;
        while offset < end {
            let read = log.read(offset, 1).unwrap();
            let records = decode(&read.records);
            assert_eq!(records[0].0, offset, "read at {offset}");
            let batch = offset / 5;
            assert_eq!(records[0].1, format!("b{batch}-0"));
            offset = records.last().unwrap().0 + 1;
        }
        // ListOffsets by timestamp lands in the remote part.
        assert_eq!(
            log.offset_for_timestamp(1000 + 10 * 3).unwrap(),
            Some((15, 1030))
        );
        assert_eq!(log.max_timestamp_offset().unwrap().map(|f| f.1), Some(1590));
        manager.shutdown().unwrap();
    }
    // A broker that lost its disk: the partition is rebuilt from the manifest.
    std::fs::remove_dir_all(data.join(tp.dir_name())).unwrap();
    let manager = open_tiered(&data, root.path());
    let log = manager.open_partition(&tp, tiered()).unwrap();
    let remote_end = log.remote().unwrap().uploaded_end().unwrap();
    assert_eq!(log.log_start_offset(), 0);
    assert_eq!(log.log_end_offset(), remote_end);
    assert!(
        remote_end <= end && remote_end > 0,
        "remote end {remote_end}, log end {end}"
    );
    assert_eq!(
        decode(&log.read(0, 1).unwrap().records)[0],
        (0, "b0-0".into())
    );
    assert_eq!(
        decode(&log.read(remote_end - 1, 1).unwrap().records)
            .last()
            .unwrap()
            .0,
        remote_end - 1
    );
    // New appends continue after the remote end.
    let info = log.append_now(batch("new", 1, 5000), 0).unwrap();
    assert_eq!(info.base_offset, remote_end);
}

fn the_log_start_expires_remote_segments() {
    let root = tempfile::tempdir().unwrap();
    let manager = open_tiered(&root.path().join("data"), root.path());
    let tp = TopicPartition::new("expiring", 0);
    let log = manager.open_partition(&tp, tiered()).unwrap();
    fill(&log, 40);
    let remote = log.remote().unwrap();
    wait_until("uploads", || remote.manifest().segments.len() >= 4);
    log.enforce_retention(crate::partition_log::wall_clock_ms())
        .unwrap();
    let first_objects = objects(root.path());
    assert!(
        first_objects
            .iter()
            .any(|o| o.starts_with("00000000000000000000-"))
    );
    // retention.ms over the whole log: every record is from 1970, so all closed segments
    // expire, the remote ones included.
    log.set_config(LogConfig {
        retention_ms: Some(1000),
        ..tiered()
    });
    log.enforce_retention(crate::partition_log::wall_clock_ms())
        .unwrap();
    let start = log.log_start_offset();
    assert!(start > 0);
    wait_until("remote expiry", || {
        remote
            .manifest()
            .segments
            .iter()
            .all(|s| s.next_offset > start)
    });
    wait_until("objects deleted", || {
        !objects(root.path())
            .iter()
            .any(|o| o.starts_with("00000000000000000000-"))
    });
    assert_eq!(remote.manifest().log_start_offset, start);
    assert!(matches!(
        log.read(0, 1),
        Err(crate::ReadError::OffsetOutOfRange { .. })
    ));
    // Deleting the partition deletes its remote part.
    manager.delete_partition(&tp).unwrap();
    wait_until("remote part deleted", || objects(root.path()).is_empty());
}

/// An S3 store nothing listens for: nothing can be attached or uploaded.
fn unreachable(root: &Path) -> RemoteConfig {
    RemoteConfig {
        url: "s3://bucket/prefix".into(),
        endpoint: Some("http://127.0.0.1:9".into()),
        access_key: Some("k".into()),
        secret_key: Some("s".into()),
        region: Some("us-east-1".into()),
        path_style: true,
        request_timeout: Duration::from_millis(500),
        ..remote_config(root)
    }
}

fn nothing_is_deleted_locally_before_it_is_uploaded() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let manager = open_manager(&data);
    manager.start_remote(unreachable(root.path())).unwrap();
    let tp = TopicPartition::new("stuck", 0);
    // A new partition cannot start over an unknown remote part.
    assert!(manager.open_partition(&tp, tiered()).is_err());
    drop(manager);
    // An existing one opens, keeps every segment, and refuses appends past the hard limit.
    let manager = open_manager(&data);
    let log = manager.open_partition(&tp, tiered()).unwrap();
    fill(&log, 80);
    drop(manager);
    let manager = open_manager(&data);
    manager.start_remote(unreachable(root.path())).unwrap();
    let log = manager
        .open_partition(
            &tp,
            LogConfig {
                local_hard_limit_bytes: Some(4096),
                ..tiered()
            },
        )
        .unwrap();
    assert!(log.remote().is_none());
    let before = log.size_bytes();
    log.enforce_retention(crate::partition_log::wall_clock_ms())
        .unwrap();
    assert_eq!(log.size_bytes(), before);
    assert_eq!(log.log_start_offset(), 0);
    assert!(before > 4096);
    assert!(matches!(
        log.append_now(batch("more", 1, 0), 0),
        Err(crate::AppendError::Storage(
            crate::StorageError::UploadBacklog { .. }
        ))
    ));
}

/// Aborted transactions in uploaded segments are recorded in the manifest, so a partition
/// rebuilt from it still tells read_committed readers what to skip.
fn aborted_transactions_survive_a_rebuild_from_the_manifest() {
    use floe_protocol::control::ControlType;
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let tp = TopicPartition::new("tiered-txn", 0);
    let aborted;
    {
        let manager = open_tiered(&data, root.path());
        let log = manager.open_partition(&tp, tiered()).unwrap();
        for i in 0..30i32 {
            log.append_now(
                crate::test_util::transactional(&format!("t{i}"), 9, 0, i * 3, 3),
                0,
            )
            .unwrap();
            let control = if i % 3 == 0 {
                ControlType::Abort
            } else {
                ControlType::Commit
            };
            log.append_marker(9, 0, 0, control, 0).unwrap();
        }
        log.sync().unwrap();
        wait_durable(&log, log.log_end_offset());
        let remote = log.remote().expect("attached at open");
        let closed = log.closed_segments().len();
        wait_until("uploads", || remote.manifest().segments.len() == closed);
        let uploaded_end = remote.uploaded_end().unwrap();
        // Those whose markers were uploaded (a transaction ending after the remote end is
        // lost with the local tail).
        aborted = log
            .aborted_transactions(0, uploaded_end)
            .into_iter()
            .filter(|t| t.last_offset < uploaded_end)
            .collect::<Vec<_>>();
        assert!(aborted.len() >= 3, "{aborted:?}");
        assert!(
            remote
                .manifest()
                .segments
                .iter()
                .any(|s| !s.aborted.is_empty())
        );
        manager.shutdown().unwrap();
    }
    std::fs::remove_dir_all(data.join(tp.dir_name())).unwrap();
    let manager = open_tiered(&data, root.path());
    let log = manager.open_partition(&tp, tiered()).unwrap();
    let remote_end = log.remote().unwrap().uploaded_end().unwrap();
    assert_eq!(log.aborted_transactions(0, remote_end), aborted);
}

crate::test_util::on_both_backends!(
    aborted_transactions_survive_a_rebuild_from_the_manifest,
    uploads_then_serves_the_history_from_the_remote_part,
    the_log_start_expires_remote_segments,
    nothing_is_deleted_locally_before_it_is_uploaded,
);

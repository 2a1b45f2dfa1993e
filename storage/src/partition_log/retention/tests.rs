//! Retention and DeleteRecords scenarios, each run on both I/O backends: segments deleted by
//! age, by size and below a moved log start; a quiet log rolled by `segment.ms`; readers of
//! deleted segments; the start surviving clean and unclean restarts; crashes between the
//! steps of a deletion.

use std::path::Path;

use super::DELETED_SUFFIX;
use crate::LogManager;
use crate::partition_log::tests::{open, read_all, segment_bases, small, tp};
use crate::partition_log::*;
use crate::segment::{INDEX_SUFFIX, LOG_SUFFIX, segment_file};
use crate::test_util::{backend, batch, open_manager};

/// A day in ms: "now" for the scenarios is this far after the records' timestamps.
const DAY: i64 = 24 * 3600 * 1000;

fn deleted_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(DELETED_SUFFIX))
        .collect()
}

/// Appends `n` batches of 3 records with timestamp `ts`.
fn fill(log: &Arc<PartitionLog>, n: usize, ts: i64) {
    for i in 0..n {
        log.append_now(batch(&format!("r{i}"), 3, ts), ts).unwrap();
    }
}

fn time_retention_deletes_old_segments_and_moves_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_ms: Some(DAY as u64),
        ..small()
    };
    let (_manager, log) = open(dir.path(), config);
    // Old records, then new ones: only whole segments of old records go.
    fill(&log, 30, 1_000);
    let old_end = log.log_end_offset();
    fill(&log, 30, 10 * DAY);
    let bases_before = segment_bases(log.dir());
    let deleted = log.enforce_retention(10 * DAY + 1).unwrap();
    assert!(deleted.segments > 0);
    let start = log.log_start_offset();
    assert!(
        start > 0 && start <= old_end,
        "start {start}, old end {old_end}"
    );
    let bases = segment_bases(log.dir());
    assert_eq!(bases[0], start);
    assert_eq!(bases_before.len() - bases.len(), deleted.segments);
    assert_eq!(deleted_files(log.dir()).len(), 3 * deleted.segments);
    assert!(matches!(
        log.read(0, 1 << 20),
        Err(ReadError::OffsetOutOfRange { log_start, .. }) if log_start == start
    ));
    let records = read_all(&log, start);
    assert_eq!(records.first().unwrap().0, start);
    assert_eq!(records.last().unwrap().0, log.log_end_offset() - 1);

    // A day later everything is past retention: the active segment rolls and goes too.
    let end = log.log_end_offset();
    log.enforce_retention(12 * DAY).unwrap();
    assert_eq!(log.log_start_offset(), end);
    assert_eq!(segment_bases(log.dir()), vec![end]);
    assert!(log.read(end, 100).unwrap().records.is_empty());
    // Appends continue at the end.
    assert_eq!(
        log.append_now(batch("next", 1, 12 * DAY), 12 * DAY)
            .unwrap()
            .base_offset,
        end
    );
}

fn size_retention_keeps_at_least_retention_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_ms: None,
        retention_bytes: Some(4096),
        ..small()
    };
    let (_manager, log) = open(dir.path(), config);
    fill(&log, 100, 1_000);
    let before = log.size_bytes();
    let deleted = log.enforce_retention(1_000).unwrap();
    let after = log.size_bytes();
    assert!(deleted.segments > 0);
    assert_eq!(before - after, deleted.bytes);
    assert!(after >= 4096, "kept {after} bytes");
    let first = log.lock().segments.values().next().unwrap().size;
    assert!(
        after - first < 4096,
        "kept {after} bytes, first segment {first}"
    );
    // Nothing more to do until the log grows.
    assert_eq!(log.enforce_retention(1_000).unwrap().segments, 0);
}

fn policy_compact_and_unlimited_retention_keep_everything() {
    for config in [
        LogConfig {
            retention_ms: Some(1),
            retention_bytes: Some(1),
            cleanup_policy: crate::config::CleanupPolicy {
                delete: false,
                compact: true,
            },
            ..small()
        },
        LogConfig {
            retention_ms: None,
            retention_bytes: None,
            ..small()
        },
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (_manager, log) = open(dir.path(), config);
        fill(&log, 50, 1_000);
        assert_eq!(log.enforce_retention(100 * DAY).unwrap().segments, 0);
        assert_eq!(log.log_start_offset(), 0);
    }
}

/// `segment.ms` rolls a quiet log's active segment during a retention pass.
fn quiet_active_segment_rolls_by_segment_ms() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_ms: None,
        segment_ms: 60_000,
        ..LogConfig::default()
    };
    let (_manager, log) = open(dir.path(), config);
    log.append_now(batch("a", 2, 1_000), 1_000).unwrap();
    log.enforce_retention(30_000).unwrap();
    assert_eq!(segment_bases(log.dir()), vec![0]);
    log.enforce_retention(61_000).unwrap();
    assert_eq!(segment_bases(log.dir()), vec![0, 2]);
    // The new active segment is empty: nothing to roll.
    log.enforce_retention(200_000).unwrap();
    assert_eq!(segment_bases(log.dir()), vec![0, 2]);
}

/// A reader that took a segment before it was deleted keeps reading it, even when the
/// handle cache had closed the file (it is reopened before the rename).
fn readers_of_a_deleted_segment_keep_reading() {
    let dir = tempfile::tempdir().unwrap();
    let manager = LogManager::open_with(dir.path(), backend().with_cold_handle_limit(0)).unwrap();
    let config = LogConfig {
        retention_ms: None,
        ..small()
    };
    let log = manager.open_partition(&tp(), config).unwrap();
    fill(&log, 30, 1_000);
    let readers = log.closed_segments();
    let region = log
        .read_region_now(0, 1 << 20, Isolation::Uncommitted)
        .unwrap()
        .region
        .unwrap();
    let expected = log.read(0, 1 << 20).unwrap().records;
    let end = log.log_end_offset();
    log.delete_records(end).unwrap();
    assert_eq!(segment_bases(log.dir()).len(), 1);
    assert_eq!(bytes::Bytes::from(region.read().unwrap()), expected);
    for reader in readers {
        let first = reader.find_batch(reader.base_offset).unwrap().unwrap();
        assert!(!reader.read_from(&first, 1 << 20).unwrap().is_empty());
    }
}

fn delete_records_moves_the_start_inside_a_segment() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_ms: None,
        ..small()
    };
    let (manager, log) = open(dir.path(), config.clone());
    fill(&log, 30, 1_000);
    let end = log.log_end_offset();
    let bases = segment_bases(log.dir());
    let target = bases[3] + 1;
    assert!(matches!(
        manager.delete_records(&log, end + 1),
        Err(crate::DeleteRecordsError::OffsetOutOfRange { .. })
    ));
    assert!(manager.delete_records(&log, -2).is_err());
    assert_eq!(manager.delete_records(&log, target).unwrap(), target);
    assert_eq!(segment_bases(log.dir())[0], bases[3]);
    assert!(matches!(
        log.read(target - 1, 100),
        Err(ReadError::OffsetOutOfRange { .. })
    ));
    assert_eq!(read_all(&log, target).first().unwrap().0, target);
    // Lower targets change nothing.
    assert_eq!(manager.delete_records(&log, 2).unwrap(), target);
    // A retention pass does not undo it either.
    log.enforce_retention(1_000).unwrap();
    assert_eq!(log.log_start_offset(), target);

    // The start survives a clean and an unclean restart (the checkpoint was written before
    // DeleteRecords returned).
    drop(log);
    manager.shutdown().unwrap();
    drop(manager);
    let manager = open_manager(dir.path());
    let log = manager.open_partition(&tp(), config.clone()).unwrap();
    assert_eq!(log.log_start_offset(), target);
    assert_eq!(manager.delete_records(&log, -1).unwrap(), end);
    drop(log);
    drop(manager); // no shutdown: as after kill -9
    let manager = open_manager(dir.path());
    let log = manager.open_partition(&tp(), config).unwrap();
    assert_eq!(log.log_start_offset(), end);
    assert!(
        deleted_files(log.dir()).is_empty(),
        "recovery removes *.deleted files"
    );
}

/// A crash in the middle of a deletion leaves a log that opens: one segment with only its
/// `.log` renamed, one with nothing renamed yet.
fn crash_between_deletion_steps_leaves_a_log_that_opens() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_ms: None,
        ..small()
    };
    let (manager, log) = open(dir.path(), config.clone());
    fill(&log, 30, 1_000);
    log.sync().unwrap();
    let end = log.log_end_offset();
    let bases = segment_bases(log.dir());
    let part = log.dir().to_owned();
    drop(log);
    drop(manager);
    // The first segment's `.log` was renamed, its indexes not yet.
    let first_log = segment_file(&part, bases[0], LOG_SUFFIX);
    let mut renamed = first_log.clone().into_os_string();
    renamed.push(DELETED_SUFFIX);
    std::fs::rename(&first_log, &renamed).unwrap();
    let manager = open_manager(dir.path());
    let log = manager.open_partition(&tp(), config).unwrap();
    assert_eq!(log.log_start_offset(), bases[1]);
    assert_eq!(log.log_end_offset(), end);
    assert!(!segment_file(&part, bases[0], INDEX_SUFFIX).exists());
    assert!(deleted_files(&part).is_empty());
    assert_eq!(read_all(&log, bases[1]).len() as i64, end - bases[1]);
}

crate::test_util::on_both_backends!(
    time_retention_deletes_old_segments_and_moves_the_start,
    size_retention_keeps_at_least_retention_bytes,
    policy_compact_and_unlimited_retention_keep_everything,
    quiet_active_segment_rolls_by_segment_ms,
    readers_of_a_deleted_segment_keep_reading,
    delete_records_moves_the_start_inside_a_segment,
    crash_between_deletion_steps_leaves_a_log_that_opens,
);

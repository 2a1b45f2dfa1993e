//! Retention and DeleteRecords scenarios, each run on both I/O backends: segments deleted by
//! age, by size and below a moved log start; a quiet log rolled by `segment.ms`; readers of
//! deleted segments; the start surviving clean and unclean restarts; crashes between the
//! steps of a deletion; retention holds (kept until their time bound, within their byte
//! bound, never against DeleteRecords, on a tiered log only for the whole log).

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

/// A log in `dir` with small segments and no time retention, holding 30 batches.
fn filled_without_time_retention(dir: &Path) -> (LogManager, Arc<PartitionLog>) {
    let config = LogConfig {
        retention_ms: None,
        ..small()
    };
    let (manager, log) = open(dir, config);
    fill(&log, 30, 1_000);
    (manager, log)
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
    let (region, expected) = region_from_start(&log);
    let end = log.log_end_offset();
    log.delete_records(end).unwrap();
    assert_eq!(segment_bases(log.dir()).len(), 1);
    assert_eq!(bytes::Bytes::from(region.read().unwrap()), expected);
    for reader in readers {
        let first = reader.find_batch(reader.base_offset).unwrap().unwrap();
        assert!(!reader.read_from(&first, 1 << 20).unwrap().is_empty());
    }
}

/// A region of the log's first MiB, as a fetch sends it, and the records it holds.
fn region_from_start(log: &PartitionLog) -> (crate::io::FileRegion, bytes::Bytes) {
    let region = log
        .read_region_now(0, 1 << 20, Isolation::Uncommitted)
        .unwrap()
        .region
        .unwrap();
    (region, log.read(0, 1 << 20).unwrap().records)
}

/// Files of deleted segments are removed once due, but not while something still holds
/// them open: a region a fetch is sending keeps its segment's files until it is dropped (a
/// file removed gradually would shrink under it).
fn due_files_wait_for_their_readers() {
    let dir = tempfile::tempdir().unwrap();
    let (_manager, log) = filled_without_time_retention(dir.path());
    // Synced: files waiting for an fsync are held by the log until it is done.
    log.sync().unwrap();
    let (region, expected) = region_from_start(&log);
    let (_, deleted) = log.delete_records(log.log_end_offset()).unwrap();
    let in_use: Vec<String> = deleted
        .files
        .iter()
        .filter(|f| f.in_use())
        .map(|f| f.path().display().to_string())
        .collect();
    assert_eq!(in_use.len(), 1, "only the region's .log: {in_use:?}");
    assert!(in_use[0].ends_with(&format!("{LOG_SUFFIX}{DELETED_SUFFIX}")));
    let pending = crate::retention::PendingRemovals::default();
    let stop = crate::background::Stop::default();
    pending.schedule(deleted, std::time::Duration::ZERO);
    let next = pending.remove_due(&stop);
    assert_eq!(deleted_files(log.dir()).len(), 1, "the held file waits");
    assert!(next.is_some());
    assert_eq!(bytes::Bytes::from(region.read().unwrap()), expected);
    drop(region);
    std::thread::sleep(
        next.unwrap()
            .saturating_duration_since(std::time::Instant::now()),
    );
    assert!(pending.remove_due(&stop).is_none());
    assert!(deleted_files(log.dir()).is_empty());
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

/// An hour in ms: the hold bound of the hold scenarios.
const HOUR: i64 = 3600 * 1000;

/// Time retention with a hold: what the holder has materialized goes, the segment holding
/// its next offset and everything after stays until the hold's bound has passed since the
/// records expired; moving the hold releases more; dropping it releases everything.
fn a_hold_keeps_what_its_holder_still_needs_until_its_bound() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_ms: Some(DAY as u64),
        ..small()
    };
    let (_manager, log) = open(dir.path(), config);
    fill(&log, 100, 1_000);
    let bases = segment_bases(log.dir());
    assert!(bases.len() > 8, "{bases:?}");
    let end = log.log_end_offset();
    let expired_at = 1_000 + DAY;
    let hold = log.hold_retention(bases[3] + 1, HOUR as u64);
    let deleted = log.enforce_retention(expired_at + 1).unwrap();
    assert_eq!(deleted.segments, 3);
    assert_eq!(log.log_start_offset(), bases[3]);
    assert_eq!(
        read_all(&log, bases[3] + 1).len() as i64,
        end - bases[3] - 1
    );
    // Still within the bound: nothing more goes.
    let deleted = log.enforce_retention(expired_at + HOUR - 1).unwrap();
    assert_eq!(deleted.segments, 0);
    // The holder moved on.
    hold.set_offset(bases[6]);
    log.enforce_retention(expired_at + HOUR - 1).unwrap();
    assert_eq!(log.log_start_offset(), bases[6]);
    // A released hold keeps nothing: everything expired goes, the active segment too.
    drop(hold);
    log.enforce_retention(expired_at + HOUR - 1).unwrap();
    assert_eq!(log.log_start_offset(), end);
    assert_eq!(segment_bases(log.dir()), vec![end]);
}

/// Past its bound a hold gives way: the records it still wanted are deleted like any others.
fn a_hold_gives_way_after_its_bound() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_ms: Some(DAY as u64),
        ..small()
    };
    let (_manager, log) = open(dir.path(), config);
    fill(&log, 30, 1_000);
    let end = log.log_end_offset();
    let _hold = log.hold_retention(0, HOUR as u64);
    assert_eq!(log.enforce_retention(1_000 + DAY + 1).unwrap().segments, 0);
    assert_eq!(log.log_start_offset(), 0);
    log.enforce_retention(1_000 + DAY + HOUR).unwrap();
    assert_eq!(log.log_start_offset(), end);
    // Newer records are held again, each for its own bound.
    fill(&log, 30, 2 * DAY);
    assert_eq!(log.enforce_retention(3 * DAY + 1).unwrap().segments, 0);
    assert_eq!(log.log_start_offset(), end);
}

/// Size retention with a hold: the bound counts from the pass that first condemned a
/// segment, and what the hold keeps never exceeds `log.local.hard.limit.bytes`.
fn a_hold_under_size_retention_stays_within_the_byte_bound() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_ms: None,
        retention_bytes: Some(2048),
        local_hard_limit_bytes: None,
        ..small()
    };
    let (_manager, log) = open(dir.path(), config.clone());
    fill(&log, 100, 1_000);
    let total = log.size_bytes();
    let _hold = log.hold_retention(0, HOUR as u64);
    assert_eq!(log.enforce_retention(10_000).unwrap().segments, 0);
    assert_eq!(log.size_bytes(), total);
    // The byte bound: the oldest kept segments go until the hold keeps at most 3000 bytes
    // beyond what retention.bytes keeps.
    log.set_config(LogConfig {
        local_hard_limit_bytes: Some(3000),
        ..config.clone()
    });
    assert!(log.enforce_retention(10_000).unwrap().segments > 0);
    let size = log.size_bytes();
    assert!(
        (3000..=2048 + 1024 + 3000).contains(&size),
        "kept {size} of {total} bytes"
    );
    // An hour after the first pass condemned them, the rest goes too.
    assert_eq!(
        log.enforce_retention(10_000 + HOUR - 1).unwrap().segments,
        0
    );
    assert!(log.enforce_retention(10_000 + HOUR).unwrap().segments > 0);
    let size = log.size_bytes();
    let first = log.lock().segments.values().next().unwrap().size;
    assert!(size >= 2048 && size - first < 2048, "kept {size} bytes");
}

/// DeleteRecords is an admin's decision: a hold does not keep what it deletes.
fn a_hold_never_holds_back_delete_records() {
    let dir = tempfile::tempdir().unwrap();
    let (manager, log) = filled_without_time_retention(dir.path());
    let _hold = log.hold_retention(0, HOUR as u64);
    let bases = segment_bases(log.dir());
    let target = bases[2] + 1;
    assert_eq!(manager.delete_records(&log, target).unwrap(), target);
    assert_eq!(segment_bases(log.dir())[0], bases[2]);
    log.enforce_retention(1_000).unwrap();
    assert_eq!(log.log_start_offset(), target);
}

/// On a tiered log a hold keeps the log start (the records stay readable from the remote
/// part) but not the local copies that local retention deletes once uploaded.
fn a_hold_on_a_tiered_log_keeps_the_log_start_not_the_local_copies() {
    let root = tempfile::tempdir().unwrap();
    let manager = open_manager(&root.path().join("data"));
    manager
        .start_remote(crate::remote::RemoteConfig {
            url: format!("file://{}", root.path().join("bucket").display()),
            task_interval: std::time::Duration::from_millis(20),
            cache_bytes: 4096,
            ..crate::remote::RemoteConfig::local(root.path())
        })
        .unwrap();
    let config = LogConfig {
        segment_bytes: 1024,
        remote_storage_enable: true,
        retention_ms: Some(5_000),
        local_retention_ms: Some(5_000),
        topic_id: Some("t-id".into()),
        ..LogConfig::default()
    };
    let log = manager.open_partition(&tp(), config).unwrap();
    let now = crate::partition_log::wall_clock_ms();
    let ts = now - 10_000;
    for i in 0..40 {
        log.append_now(batch(&format!("b{i}"), 5, ts), ts).unwrap();
    }
    log.sync().unwrap();
    let end = log.log_end_offset();
    let remote = log.remote().expect("attached at open");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while remote.manifest().segments.len() < 4 {
        assert!(std::time::Instant::now() < deadline, "nothing uploaded");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let hold = log.hold_retention(0, HOUR as u64);
    log.enforce_retention(now).unwrap();
    assert_eq!(log.log_start_offset(), 0, "the hold keeps the whole log");
    assert!(
        log.local_start_offset() > 0,
        "local retention still applies"
    );
    assert_eq!(read_all(&log, 0).len() as i64, end);
    drop(hold);
    log.enforce_retention(now).unwrap();
    assert!(log.log_start_offset() > 0);
}

crate::test_util::on_both_backends!(
    a_hold_keeps_what_its_holder_still_needs_until_its_bound,
    a_hold_gives_way_after_its_bound,
    a_hold_under_size_retention_stays_within_the_byte_bound,
    a_hold_never_holds_back_delete_records,
    a_hold_on_a_tiered_log_keeps_the_log_start_not_the_local_copies,
    time_retention_deletes_old_segments_and_moves_the_start,
    size_retention_keeps_at_least_retention_bytes,
    policy_compact_and_unlimited_retention_keep_everything,
    quiet_active_segment_rolls_by_segment_ms,
    readers_of_a_deleted_segment_keep_reading,
    due_files_wait_for_their_readers,
    delete_records_moves_the_start_inside_a_segment,
    crash_between_deletion_steps_leaves_a_log_that_opens,
);

/// A removal step cuts the chunk off the file's end until what is left fits in one, then
/// removes the file; a file already gone counts as removed.
#[test]
fn shrink_or_remove_cuts_chunks_then_removes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("0{LOG_SUFFIX}{DELETED_SUFFIX}"));
    std::fs::write(&path, vec![7u8; 10 << 20]).unwrap();
    let mut sizes = Vec::new();
    while !io::shrink_or_remove(&path, 4 << 20).unwrap() {
        sizes.push(std::fs::metadata(&path).unwrap().len());
    }
    assert_eq!(sizes, vec![6 << 20, 2 << 20]);
    assert!(!path.exists());
    assert!(io::shrink_or_remove(&path, 4 << 20).unwrap());
}

//! Scenarios of `PartitionLog`, each run on both I/O backends.

use super::*;
use crate::LogManager;
use crate::segment::{INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX, parse_segment_file};
use crate::test_util::open_manager;
use crate::test_util::{batch, batch_with, decode, idempotent, offsets};
use kafka_protocol::records::Compression;

pub(super) fn tp() -> TopicPartition {
    TopicPartition::new("orders-eu", 3)
}

pub(super) fn small() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 100,
        ..LogConfig::default()
    }
}

pub(super) fn open(dir: &Path, config: LogConfig) -> (LogManager, Arc<PartitionLog>) {
    let manager = open_manager(dir);
    let log = manager.open_partition(&tp(), config).unwrap();
    (manager, log)
}

/// Every record from `from` to the log end, following reads like a consumer.
pub(super) fn read_all(log: &PartitionLog, from: i64) -> Vec<(i64, String)> {
    let mut out: Vec<(i64, String)> = Vec::new();
    let mut offset = from;
    while offset < log.log_end_offset() {
        let r = log.read(offset, 1 << 20).unwrap();
        let records = decode(&r.records);
        assert!(!records.is_empty(), "empty read at {offset}");
        out.extend(records.into_iter().filter(|(o, _)| *o >= offset));
        offset = out.last().unwrap().0 + 1;
    }
    out
}

pub(super) fn segment_bases(dir: &Path) -> Vec<i64> {
    let mut bases: Vec<i64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| parse_segment_file(e.unwrap().file_name().to_str().unwrap(), LOG_SUFFIX))
        .collect();
    bases.sort();
    bases
}

/// Appends `n` batches of 3 records tagged `b<i>`; returns the records' expected values.
pub(super) fn append_batches(log: &Arc<PartitionLog>, n: usize, now_ms: i64) -> Vec<(i64, String)> {
    let mut expected = Vec::new();
    for i in 0..n {
        let info = log
            .append_now(batch(&format!("b{i}"), 3, 1_000 + i as i64), now_ms)
            .unwrap();
        assert!(!info.duplicate);
        assert_eq!(info.last_offset - info.base_offset, 2);
        for r in 0..3 {
            expected.push((info.base_offset + r, format!("b{i}-{r}")));
        }
    }
    expected
}

/// `read_region` names exactly the batches `read` returns, for every offset and limit: the
/// region is found through the offset index and batch headers, never cut inside a batch.
fn read_region_matches_read() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 150,
        ..LogConfig::default()
    };
    let (_manager, log) = open(dir.path(), config);
    // Batches of 1 to 7 records, so batch sizes and index entries vary.
    for i in 0..80 {
        log.append_now(batch(&format!("m{i}"), 1 + i % 7, i as i64), 0)
            .unwrap();
    }
    let end = log.log_end_offset();
    for offset in (0..=end).step_by(3) {
        for max in [1, 60, 200, 333, 1000, 2500, 1 << 20] {
            let bytes = log.read(offset, max).unwrap();
            let region = log
                .read_region_now(offset, max, Isolation::Uncommitted)
                .unwrap();
            assert_eq!(region.high_watermark, bytes.high_watermark);
            let got = region.region.map(|r| r.read().unwrap()).unwrap_or_default();
            assert_eq!(got, bytes.records.to_vec(), "offset {offset}, max {max}");
        }
    }
    assert!(matches!(
        log.read_region_now(end + 1, 100, Isolation::Uncommitted),
        Err(ReadError::OffsetOutOfRange { .. })
    ));
}

fn append_and_read_across_segment_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let (_manager, log) = open(dir.path(), small());
    let expected = append_batches(&log, 60, 0);
    assert_eq!(log.log_end_offset(), 180);
    assert_eq!(log.high_watermark(), 180);
    assert_eq!(
        expected.iter().map(|e| e.0).collect::<Vec<_>>(),
        (0..180).collect::<Vec<_>>()
    );
    let part_dir = dir.path().join("orders-eu-3");
    let bases = segment_bases(&part_dir);
    assert!(bases.len() > 4, "expected several segments, got {bases:?}");
    assert_eq!(read_all(&log, 0), expected);
    // Reading from the middle of a batch returns that whole batch first.
    let r = log.read(100, 1).unwrap();
    assert_eq!(offsets(&r.records), vec![99, 100, 101]);
    // One read never crosses a segment boundary.
    let r = log.read(0, 1 << 20).unwrap();
    assert_eq!(*offsets(&r.records).last().unwrap(), bases[1] - 1);
    // Each segment is at most segment_bytes long.
    for base in bases {
        let len = std::fs::metadata(part_dir.join(format!("{base:020}.log")))
            .unwrap()
            .len();
        assert!(len <= 1024);
    }
}

fn read_respects_max_bytes_but_returns_at_least_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let (_manager, log) = open(dir.path(), LogConfig::default());
    append_batches(&log, 5, 0);
    let one = log.read(0, 0).unwrap().records;
    assert_eq!(offsets(&one), vec![0, 1, 2]);
    let size = one.len();
    assert_eq!(offsets(&log.read(0, size).unwrap().records).len(), 3);
    assert_eq!(
        offsets(&log.read(0, 2 * size - 1).unwrap().records).len(),
        3
    );
    assert_eq!(offsets(&log.read(0, 2 * size).unwrap().records).len(), 6);
    assert_eq!(log.read(3, 3 * size).unwrap().records.len(), 3 * size);
    let at_end = log.read(15, 100).unwrap();
    assert!(at_end.records.is_empty());
    assert_eq!(at_end.high_watermark, 15);
    assert!(matches!(
        log.read(16, 100),
        Err(ReadError::OffsetOutOfRange {
            requested: 16,
            log_start: 0,
            log_end: 15
        })
    ));
    assert!(matches!(
        log.read(-1, 100),
        Err(ReadError::OffsetOutOfRange { .. })
    ));
}

fn offsets_continue_after_clean_and_unclean_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected;
    {
        let (manager, log) = open(dir.path(), small());
        expected = append_batches(&log, 20, 0);
        manager.shutdown().unwrap();
        assert!(matches!(
            log.append_now(batch("late", 1, 0), 0),
            Err(AppendError::Storage(StorageError::Closed { .. }))
        ));
    }
    {
        let (_manager, log) = open(dir.path(), small());
        assert_eq!(log.log_end_offset(), 60);
        let info = log.append_now(batch("after-clean", 2, 0), 0).unwrap();
        assert_eq!(info.base_offset, 60);
        expected.push((60, "after-clean-0".into()));
        expected.push((61, "after-clean-1".into()));
        // Dropped without shutdown: like kill -9.
    }
    {
        let (_manager, log) = open(dir.path(), small());
        assert_eq!(log.log_end_offset(), 62);
        assert_eq!(read_all(&log, 0), expected);
        assert_eq!(log.append_now(batch("x", 1, 0), 0).unwrap().base_offset, 62);
    }
}

fn torn_tail_is_cut_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let part_dir = dir.path().join("orders-eu-3");
    let expected = {
        let (_manager, log) = open(dir.path(), small());
        append_batches(&log, 20, 0)
    };
    let last = *segment_bases(&part_dir).last().unwrap();
    let path = part_dir.join(format!("{last:020}.log"));
    let len = std::fs::metadata(&path).unwrap().len();
    // Cut the last batch in half and add garbage after it.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.truncate(len as usize - 20);
    bytes.extend_from_slice(&[0xab; 100]);
    std::fs::write(&path, &bytes).unwrap();

    let (_manager, log) = open(dir.path(), small());
    assert_eq!(log.log_end_offset(), 57);
    let cut_len = std::fs::metadata(&path).unwrap().len();
    assert!(cut_len < len);
    assert_eq!(read_all(&log, 0), expected[..57].to_vec());
    let info = log.append_now(batch("new", 1, 0), 0).unwrap();
    assert_eq!(info.base_offset, 57);
    assert_eq!(read_all(&log, 57), vec![(57, "new-0".to_owned())]);
}

fn corrupt_last_batch_is_cut_at_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let part_dir = dir.path().join("orders-eu-3");
    {
        let (_manager, log) = open(dir.path(), LogConfig::default());
        append_batches(&log, 4, 0);
    }
    let path = part_dir.join(format!("{:020}.log", 0));
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 5;
    bytes[last] ^= 0xff; // inside the last batch's records: CRC mismatch
    std::fs::write(&path, &bytes).unwrap();
    let (_manager, log) = open(dir.path(), LogConfig::default());
    assert_eq!(log.log_end_offset(), 9);
    assert_eq!(
        std::fs::metadata(&path).unwrap().len() as usize,
        bytes.len() / 4 * 3
    );
}

/// The first segment file of the test partition in `dir`.
fn first_segment(dir: &Path) -> std::path::PathBuf {
    dir.join("orders-eu-3").join(format!("{:020}.log", 0))
}

/// Flips a byte inside the last batch's records of `path` (a CRC mismatch).
fn damage_last_batch(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let last = bytes.len() - 5;
    bytes[last] ^= 0xff;
    std::fs::write(path, &bytes).unwrap();
}

/// With the recovery point checkpointed after the sync, damage to the only batch of the
/// active segment is damage to acknowledged data: refused, not cut as a torn tail.
fn damage_below_the_recovery_point_is_refused_not_cut() {
    let dir = tempfile::tempdir().unwrap();
    let path = first_segment(dir.path());
    {
        let (manager, log) = open(dir.path(), LogConfig::default());
        append_batches(&log, 1, 0);
        log.sync().unwrap();
        manager.checkpoint_recovery_points().unwrap();
        // Dropped without shutdown: a crash.
    }
    damage_last_batch(&path);
    let manager = open_manager(dir.path());
    assert!(matches!(
        manager.open_partition(&tp(), LogConfig::default()),
        Err(StorageError::Corrupt { .. })
    ));
    drop(manager);
    // The operator's choice: truncate (the acknowledged batch is lost, with an error log).
    let (_manager, log) = open(
        dir.path(),
        LogConfig {
            recovery: crate::RecoveryPolicy::TruncateCorruption,
            ..LogConfig::default()
        },
    );
    assert_eq!(log.log_end_offset(), 0);
}

/// Above the recovery point a damaged last batch is still a torn tail, cut as before.
fn torn_tail_above_the_recovery_point_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let path = first_segment(dir.path());
    {
        let (manager, log) = open(dir.path(), LogConfig::default());
        append_batches(&log, 2, 0);
        log.sync().unwrap();
        manager.checkpoint_recovery_points().unwrap();
        append_batches(&log, 1, 0);
    }
    damage_last_batch(&path);
    let (_manager, log) = open(dir.path(), LogConfig::default());
    assert_eq!(log.log_end_offset(), 6);
}

/// A partition deleted and created again does not inherit the old recovery point: a torn
/// tail of the new one is cut, not refused.
fn recreated_partition_does_not_inherit_the_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let path = first_segment(dir.path());
    {
        let (manager, log) = open(dir.path(), LogConfig::default());
        append_batches(&log, 5, 0);
        log.sync().unwrap();
        manager.checkpoint_recovery_points().unwrap();
        drop(log);
        manager.delete_partition(&tp()).unwrap();
        let log = manager.open_partition(&tp(), LogConfig::default()).unwrap();
        append_batches(&log, 2, 0);
    }
    damage_last_batch(&path);
    let (_manager, log) = open(dir.path(), LogConfig::default());
    assert_eq!(log.log_end_offset(), 3);
}

fn missing_and_garbage_indexes_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let part_dir = dir.path().join("orders-eu-3");
    {
        let (manager, log) = open(dir.path(), small());
        append_batches(&log, 40, 0);
        manager.shutdown().unwrap();
    }
    let bases = segment_bases(&part_dir);
    assert!(bases.len() >= 4);
    let file = |base: i64, suffix: &str| part_dir.join(format!("{base:020}{suffix}"));
    let good_index = std::fs::read(file(bases[0], INDEX_SUFFIX)).unwrap();
    assert!(!good_index.is_empty() && good_index.len() % 8 == 0);
    std::fs::remove_file(file(bases[0], INDEX_SUFFIX)).unwrap();
    std::fs::write(file(bases[1], TIME_INDEX_SUFFIX), [1u8; 7]).unwrap();
    // Aligned but pointing past the end of the log.
    let mut bad = Vec::new();
    bad.extend_from_slice(&1u32.to_be_bytes());
    bad.extend_from_slice(&1_000_000u32.to_be_bytes());
    std::fs::write(file(bases[2], INDEX_SUFFIX), &bad).unwrap();
    // Out of order entries in the active segment's index.
    let last = *bases.last().unwrap();
    let mut bad = Vec::new();
    for (o, p) in [(5u32, 200u32), (2, 100)] {
        bad.extend_from_slice(&o.to_be_bytes());
        bad.extend_from_slice(&p.to_be_bytes());
    }
    std::fs::write(file(last, INDEX_SUFFIX), &bad).unwrap();

    let (_manager, log) = open(dir.path(), small());
    assert_eq!(log.log_end_offset(), 120);
    assert_eq!(
        std::fs::read(file(bases[0], INDEX_SUFFIX)).unwrap(),
        good_index
    );
    for base in &bases {
        assert_eq!(
            std::fs::metadata(file(*base, INDEX_SUFFIX)).unwrap().len() % 8,
            0
        );
        assert_eq!(
            std::fs::metadata(file(*base, TIME_INDEX_SUFFIX))
                .unwrap()
                .len()
                % 12,
            0
        );
    }
    for offset in 0..120 {
        let r = log.read(offset, 1).unwrap();
        assert!(offsets(&r.records).contains(&offset), "offset {offset}");
    }
    assert_eq!(log.offset_for_timestamp(1_020).unwrap(), Some((60, 1_020)));
}

fn stale_index_entry_falls_back_to_a_scan() {
    let dir = tempfile::tempdir().unwrap();
    let (_manager, log) = open(
        dir.path(),
        LogConfig {
            index_interval_bytes: 1,
            ..LogConfig::default()
        },
    );
    append_batches(&log, 10, 0);
    // Overwrite the index in place behind the log's back: entry 3 now points at byte 0.
    let index = dir
        .path()
        .join("orders-eu-3")
        .join(format!("{:020}.index", 0));
    let mut bytes = std::fs::read(&index).unwrap();
    bytes[3 * 8 + 4..3 * 8 + 8].copy_from_slice(&0u32.to_be_bytes());
    std::fs::write(&index, bytes).unwrap();
    for offset in 0..30 {
        assert!(offsets(&log.read(offset, 1).unwrap().records).contains(&offset));
    }
}

fn segment_ms_rolls_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_ms: 1_000,
        ..LogConfig::default()
    };
    let (_manager, log) = open(dir.path(), config);
    log.append_now(batch("a", 1, 0), 10_000).unwrap();
    log.append_now(batch("b", 1, 0), 10_999).unwrap();
    log.append_now(batch("c", 1, 0), 11_000).unwrap();
    assert_eq!(segment_bases(&dir.path().join("orders-eu-3")), vec![0, 2]);
}

fn record_too_large_and_garbage_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        max_message_bytes: 100,
        ..LogConfig::default()
    };
    let (_manager, log) = open(dir.path(), config);
    assert!(matches!(
        log.append_now(batch("big", 10, 0), 0),
        Err(AppendError::RecordTooLarge { max: 100, .. })
    ));
    assert!(matches!(
        log.append_now(BytesMut::from(&[1u8, 2, 3][..]), 0),
        Err(AppendError::InvalidRecords(_))
    ));
    assert!(matches!(
        log.append_now(BytesMut::new(), 0),
        Err(AppendError::InvalidRecords(BatchError::Empty))
    ));
    assert_eq!(log.log_end_offset(), 0);
}

fn idempotent_duplicates_and_sequence_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (_manager, log) = open(dir.path(), LogConfig::default());
    let first = log.append_now(idempotent(5, 0, 0, 3), 0).unwrap();
    assert_eq!((first.base_offset, first.last_offset), (0, 2));
    log.append_now(batch("plain", 2, 0), 0).unwrap();
    let second = log.append_now(idempotent(5, 0, 3, 2), 0).unwrap();
    assert_eq!((second.base_offset, second.last_offset), (5, 6));

    let dup = log.append_now(idempotent(5, 0, 0, 3), 0).unwrap();
    assert!(dup.duplicate);
    assert_eq!((dup.base_offset, dup.last_offset), (0, 2));
    assert_eq!(log.log_end_offset(), 7);
    assert_eq!(read_all(&log, 0).len(), 7);

    assert!(matches!(
        log.append_now(idempotent(5, 0, 9, 1), 0),
        Err(AppendError::Producer(ProducerError::OutOfOrderSequence {
            producer_id: 5,
            expected_seq: 5,
            found_seq: 9,
            ..
        }))
    ));
    assert!(matches!(
        log.append_now(idempotent(6, 0, 4, 1), 0),
        Err(AppendError::Producer(ProducerError::OutOfOrderSequence {
            expected_seq: 0,
            ..
        }))
    ));
    log.append_now(idempotent(5, 1, 0, 1), 0).unwrap();
    assert!(matches!(
        log.append_now(idempotent(5, 0, 5, 1), 0),
        Err(AppendError::Producer(ProducerError::InvalidProducerEpoch {
            current_epoch: 1,
            found_epoch: 0,
            ..
        }))
    ));
    assert_eq!(log.log_end_offset(), 8);
    let entry = log.producer_state(5).unwrap();
    assert_eq!(entry.epoch, 1);
    assert_eq!(entry.last_seq(), Some(0));
    assert!(log.producer_state(6).is_none());

    // Two batches of one producer in one append are checked in order.
    let mut two = idempotent(7, 0, 0, 2);
    two.extend_from_slice(&idempotent(7, 0, 2, 2));
    let info = log.append_now(two, 0).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (8, 11));
    let mut gap = idempotent(8, 0, 0, 2);
    gap.extend_from_slice(&idempotent(8, 0, 3, 2));
    assert!(log.append_now(gap, 0).is_err());
    assert_eq!(log.log_end_offset(), 12);
    assert!(log.producer_state(8).is_none());
}

fn check_duplicate_after_reopen(config: LogConfig, clean: bool, drop_snapshots: bool) {
    let dir = tempfile::tempdir().unwrap();
    {
        let (manager, log) = open(dir.path(), config.clone());
        for i in 0..30 {
            log.append_now(idempotent(42, 3, i * 2, 2), 0).unwrap();
        }
        if clean {
            manager.shutdown().unwrap();
        }
    }
    if drop_snapshots {
        for entry in std::fs::read_dir(dir.path().join("orders-eu-3")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "snapshot") {
                std::fs::remove_file(path).unwrap();
            }
        }
    }
    let (_manager, log) = open(dir.path(), config);
    assert_eq!(log.log_end_offset(), 60);
    let dup = log.append_now(idempotent(42, 3, 58, 2), 0).unwrap();
    assert!(
        dup.duplicate,
        "clean={clean} drop_snapshots={drop_snapshots}"
    );
    assert_eq!((dup.base_offset, dup.last_offset), (58, 59));
    let dup = log.append_now(idempotent(42, 3, 50, 2), 0).unwrap();
    assert!(dup.duplicate);
    assert_eq!(dup.base_offset, 50);
    assert!(matches!(
        log.append_now(idempotent(42, 3, 61, 1), 0),
        Err(AppendError::Producer(ProducerError::OutOfOrderSequence {
            expected_seq: 60,
            ..
        }))
    ));
    assert_eq!(
        log.append_now(idempotent(42, 3, 60, 1), 0)
            .unwrap()
            .base_offset,
        60
    );
    assert_eq!(log.log_end_offset(), 61);
}

fn duplicates_detected_after_clean_reopen() {
    check_duplicate_after_reopen(LogConfig::default(), true, false);
    check_duplicate_after_reopen(small(), true, false);
}

fn duplicates_detected_after_kill_without_any_snapshot() {
    check_duplicate_after_reopen(LogConfig::default(), false, false);
    check_duplicate_after_reopen(small(), false, true);
}

fn duplicates_detected_after_kill_with_roll_snapshots() {
    check_duplicate_after_reopen(small(), false, false);
}

fn offset_for_timestamp_and_max_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let (_manager, log) = open(dir.path(), small());
    assert_eq!(log.offset_for_timestamp(0).unwrap(), None);
    assert_eq!(log.max_timestamp_offset().unwrap(), None);
    // Batches with increasing timestamps across several segments...
    for i in 0..30 {
        log.append_now(batch(&format!("t{i}"), 2, 100 * i), 0)
            .unwrap();
    }
    // ...then a compressed batch whose records are out of order.
    let info = log
        .append_now(
            batch_with("z", &[5_000, 7_000, 6_000], None, Compression::Zstd),
            0,
        )
        .unwrap();
    assert_eq!(info.base_offset, 60);
    for i in 0..30 {
        assert_eq!(
            log.offset_for_timestamp(100 * i).unwrap(),
            Some((2 * i, 100 * i))
        );
        assert_eq!(
            log.offset_for_timestamp(100 * i - 50).unwrap(),
            Some((2 * i, 100 * i))
        );
    }
    assert_eq!(log.offset_for_timestamp(6_500).unwrap(), Some((61, 7_000)));
    assert_eq!(log.offset_for_timestamp(5_500).unwrap(), Some((61, 7_000)));
    assert_eq!(log.offset_for_timestamp(7_001).unwrap(), None);
    assert_eq!(log.max_timestamp_offset().unwrap(), Some((61, 7_000)));
    log.append_now(batch("later", 1, 10), 0).unwrap();
    assert_eq!(log.max_timestamp_offset().unwrap(), Some((61, 7_000)));
}

fn timestamps_survive_clean_and_unclean_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (manager, log) = open(dir.path(), small());
        for i in 0..20 {
            log.append_now(batch("a", 1, 1_000 + 10 * i), 0).unwrap();
        }
        manager.shutdown().unwrap();
    }
    {
        let (_manager, log) = open(dir.path(), small());
        assert_eq!(log.offset_for_timestamp(1_005).unwrap(), Some((1, 1_010)));
        assert_eq!(log.max_timestamp_offset().unwrap(), Some((19, 1_190)));
        for i in 0..10 {
            log.append_now(batch("b", 1, 2_000 + 10 * i), 0).unwrap();
        }
        // Dropped without shutdown.
    }
    let (_manager, log) = open(dir.path(), small());
    assert_eq!(log.offset_for_timestamp(1_005).unwrap(), Some((1, 1_010)));
    assert_eq!(log.offset_for_timestamp(2_015).unwrap(), Some((22, 2_020)));
    assert_eq!(log.max_timestamp_offset().unwrap(), Some((29, 2_090)));
}

fn failed_fdatasync_takes_the_log_offline() {
    let dir = tempfile::tempdir().unwrap();
    let (io, faults) = crate::test_util::backend().with_faults();
    let manager = LogManager::open_with(dir.path(), io).unwrap();
    let log = manager.open_partition(&tp(), LogConfig::default()).unwrap();
    log.append_now(batch("a", 1, 0), 0).unwrap();
    log.sync().unwrap();
    log.append_now(batch("b", 1, 0), 0).unwrap();
    faults.fail_syncs();
    assert!(matches!(
        log.sync(),
        Err(StorageError::Io {
            op: crate::IoOp::Sync,
            ..
        })
    ));
    assert_eq!(log.durable_offset(), 1);
    // Never again claims durability, and refuses appends.
    assert!(matches!(log.sync(), Err(StorageError::LogFailed { .. })));
    assert!(matches!(
        log.append_now(batch("c", 1, 0), 0),
        Err(AppendError::Storage(StorageError::LogFailed { .. }))
    ));
    assert_eq!(log.log_end_offset(), 2);
}

fn full_disk_refuses_appends_without_taking_the_log_offline() {
    let dir = tempfile::tempdir().unwrap();
    let (io, faults) = crate::test_util::backend().with_faults();
    let config = LogConfig {
        segment_bytes: 400,
        ..LogConfig::default()
    };
    let manager = LogManager::open_with(dir.path(), io.clone()).unwrap();
    let log = manager.open_partition(&tp(), config.clone()).unwrap();
    for i in 0..3 {
        log.append_now(batch(&format!("a{i}"), 2, 0), 0).unwrap();
    }
    log.sync().unwrap();
    faults.set_disk_full(true);
    for _ in 0..5 {
        assert!(matches!(
            log.append_now(batch("refused", 2, 0), 0),
            Err(AppendError::Storage(StorageError::WriteRefused { .. }))
        ));
    }
    assert_eq!(log.log_end_offset(), 6);
    // Reads and syncs keep working while full.
    assert_eq!(decode(&log.read(0, 1 << 20).unwrap().records).len(), 6);
    log.sync().unwrap();
    // Space is back: the same log takes appends again, right after the last good one,
    // across segment rolls.
    faults.set_disk_full(false);
    for i in 0..6 {
        let info = log.append_now(batch(&format!("b{i}"), 2, 0), 0).unwrap();
        assert_eq!(info.base_offset, 6 + 2 * i);
    }
    log.sync().unwrap();
    drop(log);
    drop(manager);
    // Nothing of the refused writes is in the log after a restart.
    let manager = LogManager::open_with(dir.path(), io).unwrap();
    let log = manager.open_partition(&tp(), config).unwrap();
    let mut values = Vec::new();
    let mut offset = 0;
    while offset < log.log_end_offset() {
        let records = decode(&log.read(offset, 1 << 20).unwrap().records);
        offset = records.last().map_or(offset + 1, |r| r.0 + 1);
        values.extend(records.into_iter().map(|(_, v)| v));
    }
    assert_eq!(values.len(), 18);
    assert!(
        values.iter().all(|v| !v.starts_with("refused")),
        "{values:?}"
    );
}

/// Closed segments' files are cold: beyond the backend's handle limit their handles are
/// closed, and reads, timestamp lookups and a reopen still find everything.
fn closed_segments_keep_a_bounded_number_of_handles_open() {
    let dir = tempfile::tempdir().unwrap();
    let io = crate::test_util::backend().with_cold_handle_limit(6);
    let config = LogConfig {
        segment_bytes: 400,
        index_interval_bytes: 100,
        ..LogConfig::default()
    };
    let expected = {
        let manager = LogManager::open_with(dir.path(), io.clone()).unwrap();
        let log = manager.open_partition(&tp(), config.clone()).unwrap();
        let expected = append_batches(&log, 120, 0);
        log.sync().unwrap();
        assert!(log.closed_segments().len() > 30, "expected many segments");
        assert!(
            io.cold_handles_open() <= 6,
            "{} open",
            io.cold_handles_open()
        );
        assert_eq!(read_all(&log, 0), expected);
        // Reading every segment reopened their files, up to the limit and no further.
        assert_eq!(io.cold_handles_open(), 6);
        assert_eq!(log.offset_for_timestamp(1_050).unwrap(), Some((150, 1_050)));
        manager.shutdown().unwrap();
        expected
    };
    // After a clean and after an unclean reopen.
    for clean in [true, false] {
        let manager = LogManager::open_with(dir.path(), io.clone()).unwrap();
        let log = manager.open_partition(&tp(), config.clone()).unwrap();
        assert!(
            io.cold_handles_open() <= 6,
            "{} open",
            io.cold_handles_open()
        );
        assert_eq!(read_all(&log, 0), expected);
        if clean {
            manager.shutdown().unwrap();
        }
    }
}

crate::test_util::on_both_backends!(
    append_and_read_across_segment_rolls,
    read_region_matches_read,
    read_respects_max_bytes_but_returns_at_least_one_batch,
    offsets_continue_after_clean_and_unclean_reopen,
    torn_tail_is_cut_and_appends_continue,
    corrupt_last_batch_is_cut_at_its_start,
    damage_below_the_recovery_point_is_refused_not_cut,
    torn_tail_above_the_recovery_point_is_cut,
    recreated_partition_does_not_inherit_the_recovery_point,
    missing_and_garbage_indexes_are_rebuilt,
    stale_index_entry_falls_back_to_a_scan,
    segment_ms_rolls_by_age,
    record_too_large_and_garbage_are_refused,
    idempotent_duplicates_and_sequence_errors,
    duplicates_detected_after_clean_reopen,
    duplicates_detected_after_kill_without_any_snapshot,
    duplicates_detected_after_kill_with_roll_snapshots,
    offset_for_timestamp_and_max_timestamp,
    timestamps_survive_clean_and_unclean_reopen,
    failed_fdatasync_takes_the_log_offline,
    full_disk_refuses_appends_without_taking_the_log_offline,
    closed_segments_keep_a_bounded_number_of_handles_open,
);

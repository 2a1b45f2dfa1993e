//! Recovery scenarios by byte surgery on segment files (on both I/O backends), and property
//! tests: random damage to a segment, and random appends, restarts and torn tails against a model.

use super::*;
use crate::test_util::open_manager;
use crate::test_util::{batch, decode, offsets};
use crate::{PartitionLog, TopicPartition};
use proptest::prelude::*;
use std::sync::Arc;

fn tp() -> TopicPartition {
    TopicPartition::new("r", 0)
}

fn small() -> LogConfig {
    LogConfig {
        segment_bytes: 600,
        index_interval_bytes: 150,
        ..LogConfig::default()
    }
}

fn files(dir: &Path, suffix: &str) -> Vec<i64> {
    let mut v: Vec<i64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| parse_segment_file(e.unwrap().file_name().to_str().unwrap(), suffix))
        .collect();
    v.sort();
    v
}

fn read_values(log: &PartitionLog) -> Vec<(i64, String)> {
    let mut out: Vec<(i64, String)> = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let records = decode(&log.read(offset, usize::MAX).unwrap().records);
        out.extend(records.into_iter().filter(|(o, _)| *o >= offset));
        offset = out.last().map_or(offset + 1, |l| l.0 + 1);
    }
    out
}

/// Offsets and byte ranges of the batches in a `.log` image.
fn batch_spans(bytes: &[u8]) -> Vec<(i64, std::ops::Range<usize>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Ok(h) = BatchHeader::parse(&bytes[at..]) {
        if at + h.total_size() > bytes.len() {
            break;
        }
        out.push((h.base_offset, at..at + h.total_size()));
        at += h.total_size();
    }
    out
}

/// Writes 40 two-record batches over several segments and crashes (no clean shutdown).
/// Returns the segment bases.
fn crashed_multi_segment_log(dir: &Path, config: LogConfig) -> Vec<i64> {
    let manager = open_manager(dir);
    let log = manager.open_partition(&tp(), config).unwrap();
    for i in 0..40 {
        log.append_now(batch(&format!("b{i}"), 2, i), 0).unwrap();
    }
    let bases = files(&dir.join("r-0"), LOG_SUFFIX);
    assert!(bases.len() >= 5, "{bases:?}");
    bases
}

/// Opens the partition with `recovery`; the manager is dropped (the log keeps working).
fn open_with_policy(
    dir: &Path,
    recovery: RecoveryPolicy,
) -> Result<Arc<PartitionLog>, StorageError> {
    let manager = open_manager(dir);
    manager.open_partition(
        &tp(),
        LogConfig {
            recovery,
            ..small()
        },
    )
}

/// A crash after a roll whose sync never completed: the rolled segment has a torn tail
/// and the newer segments must go.
fn torn_batch_in_unsynced_rolled_segment_drops_later_segments() {
    let dir = tempfile::tempdir().unwrap();
    let part = dir.path().join("r-0");
    let bases = crashed_multi_segment_log(dir.path(), small());
    for snapshot in files(&part, producer_state::SNAPSHOT_SUFFIX) {
        if snapshot > bases[1] {
            std::fs::remove_file(producer_state::snapshot_path(&part, snapshot)).unwrap();
        }
    }
    // Tear the last batch of segment bases[1].
    let path = segment_file(&part, bases[1], LOG_SUFFIX);
    let mut bytes = std::fs::read(&path).unwrap();
    let spans = batch_spans(&bytes);
    let (last_base, last) = spans.last().unwrap().clone();
    bytes.truncate(last.start + 10);
    std::fs::write(&path, &bytes).unwrap();

    let manager = open_manager(dir.path());
    let log = manager.open_partition(&tp(), small()).unwrap();
    assert_eq!(log.log_end_offset(), last_base);
    assert_eq!(files(&part, LOG_SUFFIX), bases[..2].to_vec());
    assert_eq!(files(&part, INDEX_SUFFIX), bases[..2].to_vec());
    assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, last.start);
    assert_eq!(read_values(&log).len() as i64, last_base);
    assert_eq!(
        log.append_now(batch("next", 1, 0), 0).unwrap().base_offset,
        last_base
    );
}

/// A bad batch with valid batches after it is not what a crash leaves: the partition
/// refuses to open, naming the file and position; with the truncate policy it opens cut
/// there. Checked after a crash and after a clean shutdown, in the active segment and in
/// an older one.
fn corrupt_batch_in_the_middle_refuses_to_open_unless_truncating() {
    for clean in [false, true] {
        for in_active in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let part = dir.path().join("r-0");
            {
                let manager = open_manager(dir.path());
                let log = manager.open_partition(&tp(), small()).unwrap();
                for i in 0..40 {
                    log.append_now(batch(&format!("b{i}"), 2, i), 0).unwrap();
                }
                if clean {
                    manager.shutdown().unwrap();
                }
            }
            let bases = files(&part, LOG_SUFFIX);
            let base = if in_active {
                *bases.last().unwrap()
            } else {
                bases[1]
            };
            let path = segment_file(&part, base, LOG_SUFFIX);
            let mut bytes = std::fs::read(&path).unwrap();
            let spans = batch_spans(&bytes);
            assert!(spans.len() >= 2, "segment {base} too short: {spans:?}");
            let (bad_offset, bad) = spans[spans.len() - 2].clone();
            // Synced segments are trusted: they are read again only when their index must
            // be rebuilt, which is when damage there can be found.
            if clean || !in_active {
                std::fs::remove_file(segment_file(&part, base, INDEX_SUFFIX)).unwrap();
            }
            if !in_active {
                // Damage the length field, so even a framing-only scan sees it.
                bytes[bad.start + 8..bad.start + 12].copy_from_slice(&i32::MAX.to_be_bytes());
            } else {
                bytes[bad.end - 3] ^= 0x55; // in the records: CRC mismatch
            }
            std::fs::write(&path, &bytes).unwrap();

            let err =
                open_with_policy(dir.path(), RecoveryPolicy::TolerateTailCorruption).unwrap_err();
            let what = format!("clean={clean} in_active={in_active}: {err:?}");
            assert!(
                matches!(&err, StorageError::Corrupt { path: p, position, .. }
                    if *p == path && *position == bad.start as u64),
                "{what}"
            );
            let message = err.to_string();
            assert!(message.contains(&path.display().to_string()), "{message}");
            assert!(message.contains(&bad.start.to_string()), "{message}");
            // Refusing changed nothing on disk.
            assert_eq!(std::fs::read(&path).unwrap(), bytes, "{what}");

            let log = open_with_policy(dir.path(), RecoveryPolicy::TruncateCorruption).unwrap();
            assert_eq!(log.log_end_offset(), bad_offset, "{what}");
            assert_eq!(std::fs::metadata(&path).unwrap().len(), bad.start as u64);
            assert_eq!(*files(&part, LOG_SUFFIX).last().unwrap(), base, "{what}");
            let values = read_values(&log);
            assert_eq!(values.len() as i64, bad_offset);
            assert_eq!(
                values.last().unwrap().1,
                format!("b{}-1", bad_offset / 2 - 1)
            );
        }
    }
}

/// Garbage after the last valid batch (a torn write whose size reached the disk before
/// its data, or a partial header) is a torn tail, cut after a crash and after a clean
/// shutdown alike.
fn garbage_after_the_last_valid_batch_is_cut() {
    for clean in [false, true] {
        for garbage in [
            vec![0u8; 500],
            vec![0xab; 30],
            b"not a batch at all".repeat(20),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let part = dir.path().join("r-0");
            {
                let manager = open_manager(dir.path());
                let log = manager.open_partition(&tp(), LogConfig::default()).unwrap();
                for i in 0..10 {
                    log.append_now(batch(&format!("b{i}"), 2, i), 0).unwrap();
                }
                if clean {
                    manager.shutdown().unwrap();
                }
            }
            let path = segment_file(&part, 0, LOG_SUFFIX);
            let mut bytes = std::fs::read(&path).unwrap();
            let len = bytes.len();
            bytes.extend_from_slice(&garbage);
            std::fs::write(&path, &bytes).unwrap();
            let log = open_with_policy(dir.path(), RecoveryPolicy::TolerateTailCorruption).unwrap();
            assert_eq!(log.log_end_offset(), 20, "clean={clean}");
            assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, len);
            assert_eq!(read_values(&log).len(), 20);
        }
    }
}

/// Index files cut mid-entry, emptied, or missing are rebuilt, after a crash and after a
/// clean shutdown, and lookups by offset and by timestamp still find every record.
fn truncated_or_missing_indexes_are_rebuilt() {
    #[derive(Debug, Clone, Copy)]
    enum Surgery {
        CutMidEntry,
        Empty,
        Missing,
    }
    for clean in [false, true] {
        for surgery in [Surgery::CutMidEntry, Surgery::Empty, Surgery::Missing] {
            for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
                let dir = tempfile::tempdir().unwrap();
                let part = dir.path().join("r-0");
                {
                    let manager = open_manager(dir.path());
                    let log = manager.open_partition(&tp(), small()).unwrap();
                    for i in 0..40 {
                        log.append_now(batch(&format!("b{i}"), 2, 1_000 + 10 * i), 0)
                            .unwrap();
                    }
                    if clean {
                        manager.shutdown().unwrap();
                    }
                }
                let bases = files(&part, LOG_SUFFIX);
                // An older segment and the active one.
                for base in [bases[1], *bases.last().unwrap()] {
                    let path = segment_file(&part, base, suffix);
                    let len = std::fs::metadata(&path).unwrap().len();
                    match surgery {
                        Surgery::CutMidEntry if len > 3 => {
                            std::fs::OpenOptions::new()
                                .write(true)
                                .open(&path)
                                .unwrap()
                                .set_len(len - 3)
                                .unwrap();
                        }
                        Surgery::CutMidEntry => std::fs::write(&path, [7u8; 3]).unwrap(),
                        Surgery::Empty => std::fs::write(&path, []).unwrap(),
                        Surgery::Missing => std::fs::remove_file(&path).unwrap(),
                    }
                }
                let what = format!("clean={clean} {surgery:?} {suffix}");
                let log = open_with_policy(dir.path(), RecoveryPolicy::TolerateTailCorruption)
                    .unwrap_or_else(|e| panic!("{what}: {e:?}"));
                assert_eq!(log.log_end_offset(), 80, "{what}");
                for base in &bases {
                    for (suffix, entry) in [(INDEX_SUFFIX, 8), (TIME_INDEX_SUFFIX, 12)] {
                        let len = std::fs::metadata(segment_file(&part, *base, suffix))
                            .unwrap()
                            .len();
                        assert_eq!(len % entry, 0, "{what}: {base}{suffix}");
                    }
                }
                for offset in 0..80 {
                    let r = log.read(offset, 1).unwrap();
                    assert!(
                        offsets(&r.records).contains(&offset),
                        "{what}: offset {offset}"
                    );
                }
                for i in 0..40 {
                    assert_eq!(
                        log.offset_for_timestamp(1_000 + 10 * i - 5).unwrap(),
                        Some((2 * i, 1_000 + 10 * i)),
                        "{what}: timestamp of batch {i}"
                    );
                }
            }
        }
    }
}

fn damage_in_a_trusted_segment_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let part = dir.path().join("r-0");
    {
        let manager = open_manager(dir.path());
        let log = manager.open_partition(&tp(), small()).unwrap();
        for i in 0..20 {
            log.append_now(batch(&format!("b{i}"), 2, i), 0).unwrap();
        }
        manager.shutdown().unwrap();
    }
    // The index must be rebuilt, and the scan finds an impossible batch length.
    std::fs::remove_file(segment_file(&part, 0, INDEX_SUFFIX)).unwrap();
    let path = segment_file(&part, 0, LOG_SUFFIX);
    let mut bytes = std::fs::read(&path).unwrap();
    let first = BatchHeader::parse(&bytes).unwrap().total_size();
    bytes[first + 8..first + 12].copy_from_slice(&i32::MAX.to_be_bytes());
    std::fs::write(&path, &bytes).unwrap();

    let manager = open_manager(dir.path());
    let err = manager.open_partition(&tp(), small()).unwrap_err();
    assert!(
        matches!(&err, StorageError::Corrupt { position, kind: Corruption::Batch(_), .. } if *position == first as u64),
        "{err:?}"
    );
    assert!(manager.get(&tp()).is_none());
}

fn leftovers_are_removed_and_empty_dir_gets_a_segment() {
    let dir = tempfile::tempdir().unwrap();
    let part = dir.path().join("r-0");
    std::fs::create_dir_all(&part).unwrap();
    std::fs::write(part.join("00000000000000000100.snapshot.tmp"), b"x").unwrap();
    std::fs::write(segment_file(&part, 500, INDEX_SUFFIX), [0u8; 8]).unwrap();
    std::fs::write(
        segment_file(&part, 500, producer_state::SNAPSHOT_SUFFIX),
        b"x",
    )
    .unwrap();
    let manager = open_manager(dir.path());
    let log = manager.open_partition(&tp(), small()).unwrap();
    assert_eq!(log.log_end_offset(), 0);
    let mut names: Vec<String> = std::fs::read_dir(&part)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "00000000000000000000.index",
            "00000000000000000000.log",
            "00000000000000000000.timeindex"
        ]
    );
}

#[derive(Debug, Clone)]
enum Op {
    Append { batches: usize, records: usize },
    Reopen { clean: bool },
    TearTail { bytes: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1usize..4, 1usize..6).prop_map(|(batches, records)| Op::Append { batches, records }),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
        1 => (1usize..80).prop_map(|bytes| Op::TearTail { bytes }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Random damage to a crashed, single-segment log: recovery never panics; with the
    /// default policy the log either opens and reads back exactly a prefix of what was
    /// written, or refuses with `Corrupt` naming the segment and a batch boundary at or
    /// before the last damaged byte; with the truncate policy it always opens to a prefix.
    #[test]
    fn damaged_segment_recovers_to_a_prefix_or_refuses(
        damage in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in proptest::option::of(any::<usize>()),
    ) {
        for kind in crate::test_util::all_backends() {
            let mut outcome = Ok(());
            crate::test_util::with_backend(kind, || outcome = damaged_segment_case(&damage, cut));
            outcome?;
        }
    }
}

fn damaged_segment_case(damage: &[(usize, u8)], cut: Option<usize>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let part = dir.path().join("r-0");
    let written = {
        let manager = open_manager(dir.path());
        let log = manager.open_partition(&tp(), LogConfig::default()).unwrap();
        for i in 0..8 {
            log.append_now(batch(&format!("b{i}"), 3, i), 0).unwrap();
        }
        read_values(&log)
    };
    let path = segment_file(&part, 0, LOG_SUFFIX);
    let original = std::fs::read(&path).unwrap();
    let boundaries: Vec<usize> = batch_spans(&original)
        .iter()
        .map(|(_, r)| r.start)
        .collect();
    let mut bytes = original.clone();
    for &(at, value) in damage {
        let len = bytes.len();
        bytes[at % len] = value;
    }
    if let Some(cut) = cut {
        let len = bytes.len();
        bytes.truncate(cut % len);
    }
    // Refusal points at a batch holding damage, so at or before the last damaged byte
    // (damage to `partitionLeaderEpoch`, outside the CRC, is not detected at all).
    let last_damage = bytes
        .iter()
        .zip(&original)
        .rposition(|(a, b)| a != b)
        .unwrap_or(bytes.len());
    std::fs::write(&path, &bytes).unwrap();

    match open_with_policy(dir.path(), RecoveryPolicy::TolerateTailCorruption) {
        Ok(log) => {
            let end = log.log_end_offset();
            prop_assert!(end <= 24 && end % 3 == 0);
            prop_assert_eq!(read_values(&log), written[..end as usize].to_vec());
        }
        Err(StorageError::Corrupt {
            path: p, position, ..
        }) => {
            prop_assert_eq!(&p, &path);
            prop_assert!(
                boundaries.contains(&(position as usize)),
                "position {}",
                position
            );
            prop_assert!(position as usize <= last_damage);
            prop_assert_eq!(std::fs::read(&path).unwrap(), bytes.clone());
        }
        Err(other) => prop_assert!(false, "unexpected error {:?}", other),
    }
    let log = open_with_policy(dir.path(), RecoveryPolicy::TruncateCorruption).unwrap();
    let end = log.log_end_offset();
    prop_assert!(end <= 24 && end % 3 == 0);
    prop_assert_eq!(read_values(&log), written[..end as usize].to_vec());
    prop_assert_eq!(
        log.append_now(batch("new", 1, 0), 0).unwrap().base_offset,
        end
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Whatever sequence of appends, clean and unclean restarts and torn tails (on
    /// unsynced data), the log reads back exactly the model: acknowledged-and-synced
    /// records survive, torn ones vanish, and offsets stay dense.
    #[test]
    fn log_matches_model(ops in proptest::collection::vec(op(), 1..25)) {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("r-0");
        let mut manager = Some(open_manager(dir.path()));
        let mut log: Arc<PartitionLog> = manager.as_ref().unwrap().open_partition(&tp(), small()).unwrap();
        // (offset, value) of every record, and sizes of unsynced batches at the tail.
        let mut model: Vec<(i64, String)> = Vec::new();
        let mut unsynced: Vec<(usize, usize)> = Vec::new(); // (bytes, records)
        let mut n = 0;
        for op in ops {
            match op {
                Op::Append { batches, records } => {
                    for _ in 0..batches {
                        let b = batch(&format!("v{n}"), records, n);
                        let size = b.len();
                        let info = log.append_now(b, 0).unwrap();
                        prop_assert_eq!(info.base_offset, model.len() as i64);
                        for r in 0..records {
                            model.push((info.base_offset + r as i64, format!("v{n}-{r}")));
                        }
                        unsynced.push((size, records));
                        n += 1;
                    }
                    if n % 3 == 0 {
                        log.sync().unwrap();
                        unsynced.clear();
                    }
                }
                Op::Reopen { clean } => {
                    if clean {
                        manager.as_ref().unwrap().shutdown().unwrap();
                    }
                    unsynced.clear(); // page cache survives a process crash
                    drop(log);
                    drop(manager.take());
                    manager = Some(open_manager(dir.path()));
                    log = manager.as_ref().unwrap().open_partition(&tp(), small()).unwrap();
                }
                Op::TearTail { bytes } => {
                    // Only the last unsynced batch can be torn, and only if it is in the
                    // active segment; simulate the crash and restart.
                    let Some(&(size, records)) = unsynced.last() else { continue };
                    let last = *files(&part, LOG_SUFFIX).last().unwrap();
                    let path = segment_file(&part, last, LOG_SUFFIX);
                    let len = std::fs::metadata(&path).unwrap().len() as usize;
                    if len < size { continue; }
                    drop(log);
                    drop(manager.take());
                    let cut = bytes.min(size);
                    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                    f.set_len((len - cut) as u64).unwrap();
                    model.truncate(model.len() - records);
                    unsynced.clear();
                    manager = Some(open_manager(dir.path()));
                    log = manager.as_ref().unwrap().open_partition(&tp(), small()).unwrap();
                }
            }
            prop_assert_eq!(log.log_end_offset(), model.len() as i64);
        }
        prop_assert_eq!(read_values(&log), model);
    }
}

crate::test_util::on_both_backends!(
    torn_batch_in_unsynced_rolled_segment_drops_later_segments,
    corrupt_batch_in_the_middle_refuses_to_open_unless_truncating,
    garbage_after_the_last_valid_batch_is_cut,
    truncated_or_missing_indexes_are_rebuilt,
    damage_in_a_trusted_segment_refuses_to_open,
    leftovers_are_removed_and_empty_dir_gets_a_segment,
);

//! Opening a partition directory: establishing which bytes of each segment are valid,
//! rebuilding indexes, and rebuilding producer state.
//!
//! Rules:
//! - Leftover `*.tmp` files (interrupted atomic writes) and index files without a `.log` are
//!   removed. A directory without segments gets an empty segment at offset 0.
//! - After an unclean shutdown (no clean-shutdown marker), every segment that may hold data at
//!   or after the recovery point is validated batch by batch (framing, magic, CRC32C, record
//!   count, offsets increasing). The recovery point is the newest producer snapshot: snapshots
//!   are written only after everything below them was synced (segment roll, clean shutdown);
//!   without a snapshot all segments are validated. The first invalid or incomplete batch and
//!   everything after it is a torn tail: the `.log` is truncated there (with a warning naming
//!   the file and position), later segments are deleted, and the segment's indexes are rebuilt.
//! - After a clean shutdown, segments are trusted, except that the batches after the last
//!   offset-index entry of the last segment are validated (they set the log end offset).
//! - Index files that are missing, not a whole number of entries, out of order, or pointing
//!   past the end of their `.log` are rebuilt from the `.log`. Damage found in a trusted
//!   segment while rebuilding is reported as [`StorageError::Corrupt`] and the partition does
//!   not open.
//! - Producer state: the newest readable snapshot at or below the recovered log end, plus a
//!   replay of the batch headers after it.

use std::collections::BTreeMap;
use std::path::Path;

use floe_protocol::record_batch::{self, BatchHeader, HEADER_SIZE};

use crate::config::LogConfig;
use crate::error::{Corruption, StorageError};
use crate::io;
use crate::producer_state::{self, ProducerStateManager};
use crate::segment::{
    INDEX_SUFFIX, LOG_SUFFIX, LocatedBatch, NO_TIMESTAMP, Segment, TIME_INDEX_SUFFIX,
    parse_segment_file, read_batch_header, segment_file,
};
use crate::{offset_index, time_index};

/// The state of a partition directory after recovery.
#[derive(Debug)]
pub(crate) struct RecoveredLog {
    pub(crate) segments: BTreeMap<i64, Segment>,
    pub(crate) producers: ProducerStateManager,
}

/// Recovers the partition directory `dir` (which must exist). `clean` says whether the last
/// shutdown was clean.
pub(crate) fn recover(
    dir: &Path,
    config: &LogConfig,
    clean: bool,
) -> Result<RecoveredLog, StorageError> {
    let entries = io::list_dir(dir)?;
    let mut bases = Vec::new();
    for entry in entries.iter().filter(|e| !e.is_dir) {
        if entry.name.ends_with(io::TMP_SUFFIX) {
            tracing::warn!(file = %entry.path.display(), "removing leftover temporary file");
            io::remove_file(&entry.path)?;
        } else if let Some(base) = parse_segment_file(&entry.name, LOG_SUFFIX) {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    for entry in entries.iter().filter(|e| !e.is_dir) {
        let base = parse_segment_file(&entry.name, INDEX_SUFFIX)
            .or_else(|| parse_segment_file(&entry.name, TIME_INDEX_SUFFIX));
        if base.is_some_and(|b| bases.binary_search(&b).is_err()) {
            tracing::warn!(file = %entry.path.display(), "removing index file without a segment");
            io::remove_file(&entry.path)?;
        }
    }

    if bases.is_empty() {
        for offset in producer_state::list_snapshots(dir)? {
            io::remove_file(&producer_state::snapshot_path(dir, offset))?;
        }
        let segment = Segment::create(dir, 0)?;
        io::sync_dir(dir)?;
        return Ok(RecoveredLog {
            segments: BTreeMap::from([(0, segment)]),
            producers: ProducerStateManager::default(),
        });
    }

    let recovery_point = if clean {
        None
    } else {
        Some(
            producer_state::list_snapshots(dir)?
                .last()
                .copied()
                .unwrap_or(i64::MIN),
        )
    };
    let mut segments = BTreeMap::new();
    for (i, &base) in bases.iter().enumerate() {
        let next_base = bases.get(i + 1).copied();
        let (mut segment, shape) = Segment::open_files(dir, base)?;
        let validate = recovery_point.is_some_and(|rp| next_base.is_none_or(|nb| nb > rp));
        let truncated = if validate {
            rebuild(&mut segment, config, 0, Mode::Recover)?
        } else {
            load(&mut segment, config, shape, next_base)?
        };
        if next_base.is_some() && !truncated {
            // An inactive segment's last time-index entry holds its largest timestamp.
            segment.seal_time_index()?;
        }
        segments.insert(base, segment);
        if truncated {
            for &later in &bases[i + 1..] {
                tracing::warn!(
                    file = %segment_file(dir, later, LOG_SUFFIX).display(),
                    "removing segment after a torn tail"
                );
                for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
                    io::remove_file(&segment_file(dir, later, suffix))?;
                }
            }
            io::sync_dir(dir)?;
            break;
        }
    }

    let producers = rebuild_producer_state(dir, &segments)?;
    Ok(RecoveredLog {
        segments,
        producers,
    })
}

/// How a scan treats a bad batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Validate every batch fully; a bad one starts a torn tail that is truncated.
    Recover,
    /// Framing only; a bad batch is corruption of trusted data.
    Trusted,
}

/// Opens a segment that is not being recovered: checks its indexes (rebuilding them if
/// needed) and, for the last segment, validates the batches after the last index entry.
/// Returns whether the segment was truncated.
fn load(
    segment: &mut Segment,
    config: &LogConfig,
    shape: crate::segment::IndexShape,
    next_base: Option<i64>,
) -> Result<bool, StorageError> {
    let path = segment.log.path().to_owned();
    let problem = if !shape.existed {
        Some("index files missing")
    } else if !shape.aligned {
        Some("index file size is not a whole number of entries")
    } else {
        let offsets = segment.offset_index.read_all()?;
        let times = segment.time_index.read_all()?;
        let max_relative = next_base.map(|nb| (nb - segment.base_offset).max(0) as u64);
        offset_index::check_entries(&offsets, segment.size)
            .and_then(|()| time_index::check_entries(&times, max_relative))
            .err()
    };
    if let Some(problem) = problem {
        tracing::warn!(file = %path.display(), problem, "rebuilding segment indexes");
        let mode = if next_base.is_none() {
            Mode::Recover
        } else {
            Mode::Trusted
        };
        return rebuild(segment, config, 0, mode);
    }

    if let Some(last) = segment.time_index.last() {
        segment.max_timestamp = last.timestamp;
        segment.offset_of_max_timestamp = segment.base_offset + i64::from(last.relative_offset);
    }
    match next_base {
        Some(next_base) => {
            segment.next_offset = next_base;
            Ok(false)
        }
        None => {
            // The last segment: find its end by validating what follows the last index entry.
            let start = segment.offset_index.last().map(|e| u64::from(e.position));
            if let Some(entry) = segment.offset_index.last() {
                // The last index entry must describe the batch it points at; otherwise the
                // index is stale and the scan cannot start there.
                let at = read_batch_header(&segment.log, u64::from(entry.position), segment.size);
                let expected = segment.base_offset + i64::from(entry.relative_offset);
                if !matches!(at, Ok(Some(b)) if b.header.last_offset() == expected) {
                    tracing::warn!(file = %path.display(), "last index entry does not match the log; rebuilding segment indexes");
                    return rebuild(segment, config, 0, Mode::Recover);
                }
            }
            let truncated = scan(
                segment,
                config,
                start.unwrap_or(0),
                start.is_some(),
                Mode::Recover,
            )?;
            if truncated {
                // Index entries may point into what was cut (the truncation point can only be
                // at or after the last offset-index entry, but the time index is not bound
                // by it); rebuild both.
                rebuild(segment, config, 0, Mode::Recover)?;
                return Ok(true);
            }
            set_roll_base(segment)?;
            Ok(false)
        }
    }
}

/// Clears the segment's indexes and rebuilds them (and its end offset and largest timestamp)
/// by scanning the `.log` from `start`.
fn rebuild(
    segment: &mut Segment,
    config: &LogConfig,
    start: u64,
    mode: Mode,
) -> Result<bool, StorageError> {
    segment.offset_index.clear()?;
    segment.time_index.clear()?;
    segment.next_offset = segment.base_offset;
    segment.max_timestamp = NO_TIMESTAMP;
    segment.offset_of_max_timestamp = segment.base_offset;
    segment.bytes_since_index = 0;
    let truncated = scan(segment, config, start, false, mode)?;
    set_roll_base(segment)?;
    Ok(truncated)
}

fn set_roll_base(segment: &mut Segment) -> Result<(), StorageError> {
    segment.roll_base_ms = read_batch_header(&segment.log, 0, segment.size)
        .ok()
        .flatten()
        .map(|b| b.header.max_timestamp)
        .filter(|&ts| ts >= 0);
    Ok(())
}

/// Scans batches from `position` to the end of the `.log`, indexing them. If
/// `first_is_indexed`, the batch at `position` already has its index entry. Returns whether
/// the segment was truncated (only in [`Mode::Recover`]).
fn scan(
    segment: &mut Segment,
    config: &LogConfig,
    mut position: u64,
    first_is_indexed: bool,
    mode: Mode,
) -> Result<bool, StorageError> {
    let mut first = true;
    loop {
        // Where a scan starts at an indexed batch, that batch's base offset is not known in
        // advance (the index holds its last offset, checked by the caller).
        let expected = (!(first && first_is_indexed)).then_some(segment.next_offset);
        let batch = match next_batch(segment, position, mode, expected)? {
            Step::End => return Ok(false),
            Step::Batch(batch) => batch,
            Step::Invalid(kind) => {
                if mode == Mode::Trusted {
                    return Err(StorageError::Corrupt {
                        path: segment.log.path().to_owned(),
                        position,
                        kind,
                    });
                }
                tracing::warn!(
                    file = %segment.log.path().display(),
                    position,
                    discarded_bytes = segment.size - position,
                    reason = %kind,
                    "truncating torn tail of segment"
                );
                segment.log.set_len(position)?;
                segment.size = position;
                return Ok(true);
            }
        };
        if first && first_is_indexed {
            segment.bytes_since_index = 0;
            if batch.header.max_timestamp > segment.max_timestamp {
                segment.max_timestamp = batch.header.max_timestamp;
                segment.offset_of_max_timestamp = batch.header.last_offset();
            }
            segment.bytes_since_index = batch.header.total_size() as u64;
            segment.next_offset = batch.header.next_offset();
        } else {
            segment.index_batch(&batch, config)?;
        }
        first = false;
        position = batch.end();
    }
}

enum Step {
    End,
    Batch(LocatedBatch),
    Invalid(Corruption),
}

/// Reads and checks the batch at `position`.
fn next_batch(
    segment: &Segment,
    position: u64,
    mode: Mode,
    expected_offset: Option<i64>,
) -> Result<Step, StorageError> {
    let size = segment.size;
    if position >= size {
        return Ok(Step::End);
    }
    let invalid = |e: record_batch::BatchError| Ok(Step::Invalid(Corruption::Batch(e)));
    if size - position < HEADER_SIZE as u64 {
        return invalid(record_batch::BatchError::Truncated {
            position: 0,
            needed: HEADER_SIZE,
            available: (size - position) as usize,
        });
    }
    let mut buf = [0u8; HEADER_SIZE];
    segment.log.read_exact_at(position, &mut buf)?;
    let header = match BatchHeader::parse(&buf) {
        Ok(h) => h,
        Err(e) => return invalid(e),
    };
    let batch = LocatedBatch { header, position };
    if batch.end() > size {
        return invalid(record_batch::BatchError::Truncated {
            position: 0,
            needed: header.total_size(),
            available: (size - position) as usize,
        });
    }
    // Batches are appended at the log end, so offsets in a segment are dense; `baseOffset`
    // is outside the CRC, so this is the only check that catches its damage. Trusted
    // segments only need increasing offsets (compaction will leave gaps in closed segments).
    let out_of_place = match (mode, expected_offset) {
        (_, None) => false,
        (Mode::Recover, Some(expected)) => header.base_offset != expected,
        (Mode::Trusted, Some(expected)) => header.base_offset < expected,
    };
    if out_of_place
        || header.last_offset() < header.base_offset
        || header.last_offset().saturating_sub(segment.base_offset) > i64::from(i32::MAX)
    {
        return Ok(Step::Invalid(Corruption::Index(
            "batch offsets do not follow the previous batch",
        )));
    }
    if mode == Mode::Recover {
        let bytes = segment.log.read_vec(position, header.total_size())?;
        if let Err(e) = record_batch::validate_batch(&bytes) {
            return invalid(e);
        }
    }
    Ok(Step::Batch(batch))
}

/// Loads the newest usable snapshot and replays the batches after it.
fn rebuild_producer_state(
    dir: &Path,
    segments: &BTreeMap<i64, Segment>,
) -> Result<ProducerStateManager, StorageError> {
    let log_end = segments.values().next_back().map_or(0, |s| s.next_offset);
    let (from, mut producers) = producer_state::load_latest_snapshot(dir, log_end)?
        .unwrap_or((i64::MIN, ProducerStateManager::default()));
    let bases: Vec<i64> = segments.keys().copied().collect();
    for (i, segment) in segments.values().enumerate() {
        if bases.get(i + 1).is_some_and(|&next| next <= from) {
            continue;
        }
        let reader = segment.reader();
        let mut next = reader.find_batch(from)?;
        while let Some(batch) = next {
            if batch.header.base_offset >= from {
                producers.replay(&batch.header);
            }
            next = read_batch_header(&reader.log, batch.end(), reader.size)?;
        }
    }
    Ok(producers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{batch, decode};
    use crate::{LogManager, PartitionLog, TopicPartition};
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

    /// A crash after a roll whose sync never completed: the rolled segment has a torn batch
    /// and the newer segments must go.
    #[test]
    fn torn_batch_in_unsynced_rolled_segment_drops_later_segments() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("r-0");
        {
            let manager = LogManager::open(dir.path()).unwrap();
            let log = manager.open_partition(&tp(), small()).unwrap();
            for i in 0..40 {
                log.append(batch(&format!("b{i}"), 2, i), 0).unwrap();
            }
        }
        let bases = files(&part, LOG_SUFFIX);
        assert!(bases.len() >= 5, "{bases:?}");
        for snapshot in files(&part, producer_state::SNAPSHOT_SUFFIX) {
            if snapshot > bases[1] {
                std::fs::remove_file(producer_state::snapshot_path(&part, snapshot)).unwrap();
            }
        }
        // Corrupt the second batch of segment bases[1].
        let path = segment_file(&part, bases[1], LOG_SUFFIX);
        let mut bytes = std::fs::read(&path).unwrap();
        let first = BatchHeader::parse(&bytes).unwrap();
        let second_start = first.total_size();
        bytes[second_start + HEADER_SIZE + 2] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();

        let manager = LogManager::open(dir.path()).unwrap();
        let log = manager.open_partition(&tp(), small()).unwrap();
        assert_eq!(log.log_end_offset(), first.next_offset());
        assert_eq!(files(&part, LOG_SUFFIX), bases[..2].to_vec());
        assert_eq!(files(&part, INDEX_SUFFIX), bases[..2].to_vec());
        assert_eq!(
            std::fs::metadata(&path).unwrap().len() as usize,
            second_start
        );
        let values = read_values(&log);
        assert_eq!(values.len() as i64, first.next_offset());
        assert_eq!(
            log.append(batch("next", 1, 0), 0).unwrap().base_offset,
            first.next_offset()
        );
    }

    #[test]
    fn damage_in_a_trusted_segment_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("r-0");
        {
            let manager = LogManager::open(dir.path()).unwrap();
            let log = manager.open_partition(&tp(), small()).unwrap();
            for i in 0..20 {
                log.append(batch(&format!("b{i}"), 2, i), 0).unwrap();
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

        let manager = LogManager::open(dir.path()).unwrap();
        let err = manager.open_partition(&tp(), small()).unwrap_err();
        assert!(
            matches!(&err, StorageError::Corrupt { position, kind: Corruption::Batch(_), .. } if *position == first as u64),
            "{err:?}"
        );
        assert!(manager.get(&tp()).is_none());
    }

    #[test]
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
        let manager = LogManager::open(dir.path()).unwrap();
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

        /// Random damage to a crashed, single-segment log: recovery never panics, the log
        /// opens, and it reads back exactly a prefix of what was written.
        #[test]
        fn damaged_segment_recovers_to_a_prefix(
            damage in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
            cut in proptest::option::of(any::<usize>()),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let part = dir.path().join("r-0");
            let written = {
                let manager = LogManager::open(dir.path()).unwrap();
                let log = manager.open_partition(&tp(), LogConfig::default()).unwrap();
                for i in 0..8 {
                    log.append(batch(&format!("b{i}"), 3, i), 0).unwrap();
                }
                read_values(&log)
            };
            let path = segment_file(&part, 0, LOG_SUFFIX);
            let mut bytes = std::fs::read(&path).unwrap();
            for (at, value) in damage {
                let len = bytes.len();
                bytes[at % len] = value;
            }
            if let Some(cut) = cut {
                let len = bytes.len();
                bytes.truncate(cut % len);
            }
            std::fs::write(&path, &bytes).unwrap();

            let manager = LogManager::open(dir.path()).unwrap();
            let log = manager.open_partition(&tp(), LogConfig::default()).unwrap();
            let end = log.log_end_offset();
            prop_assert!(end <= 24 && end % 3 == 0);
            prop_assert_eq!(read_values(&log), written[..end as usize].to_vec());
            prop_assert_eq!(log.append(batch("new", 1, 0), 0).unwrap().base_offset, end);
        }
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
            let mut manager = Some(LogManager::open(dir.path()).unwrap());
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
                            let info = log.append(b, 0).unwrap();
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
                        manager = Some(LogManager::open(dir.path()).unwrap());
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
                        manager = Some(LogManager::open(dir.path()).unwrap());
                        log = manager.as_ref().unwrap().open_partition(&tp(), small()).unwrap();
                    }
                }
                prop_assert_eq!(log.log_end_offset(), model.len() as i64);
            }
            prop_assert_eq!(read_values(&log), model);
        }
    }
}

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
//!   without a snapshot all segments are validated.
//! - After a clean shutdown, segments are trusted (everything was synced), except that the
//!   batches after the last offset-index entry of the last segment are validated (they set the
//!   log end offset).
//! - The first invalid or incomplete batch is a **torn tail** (what a crash leaves) when it
//!   holds offsets at or above the last known-synced offset (the recovery point: the newer of
//!   the newest producer snapshot and the partition's recovery-point checkpoint) and no valid
//!   batch follows it in its segment. A torn tail is cut:
//!   the `.log` is truncated there (a warning names the file and position), later segments
//!   are deleted, and the segment's indexes are rebuilt. Any other damage is **interior**: with
//!   [`RecoveryPolicy::TolerateTailCorruption`] (the default) the partition refuses to open
//!   with [`StorageError::Corrupt`] naming the file and byte position; with
//!   [`RecoveryPolicy::TruncateCorruption`] it is cut like a torn tail, with an error log.
//! - Index files that are missing, not a whole number of entries, out of order, or pointing
//!   past the end of their `.log` are rebuilt from the `.log`. Damage found in a trusted
//!   segment while rebuilding is interior.
//! - Producer state: the newest readable snapshot at or below the recovered log end, plus a
//!   replay of the batch headers after it.

use std::collections::BTreeMap;
use std::path::Path;

use floe_protocol::record_batch::{self, BatchHeader, HEADER_SIZE};

use crate::config::{LogConfig, RecoveryPolicy};
use crate::error::{Corruption, StorageError};
use crate::io;
use crate::producer_state::{self, AbortedTxn, ProducerStateManager};
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
    /// The offset the producer state was replayed from (its snapshot's).
    pub(crate) replayed_from: i64,
    /// Transactions the replay found aborted (at or above `replayed_from`).
    pub(crate) replayed_aborts: Vec<AbortedTxn>,
}

/// Recovers the partition directory `dir` (which must exist). `clean` says whether the last
/// shutdown was clean; `durable_hint` is the partition's point from the recovery-point
/// checkpoint ([`crate::recovery_point`]): everything below it was synced.
pub(crate) fn recover(
    io: &io::Io,
    dir: &Path,
    config: &LogConfig,
    clean: bool,
    durable_hint: Option<i64>,
) -> Result<RecoveredLog, StorageError> {
    crate::partition_log::compaction::finish_interrupted_cleaning(dir)?;
    let entries = io::list_dir(dir)?;
    let mut bases = Vec::new();
    for entry in entries.iter().filter(|e| !e.is_dir) {
        if entry.name.ends_with(io::TMP_SUFFIX) {
            tracing::warn!(file = %entry.path.display(), "removing leftover temporary file");
            io::remove_file(&entry.path)?;
        } else if entry
            .name
            .ends_with(crate::partition_log::retention::DELETED_SUFFIX)
        {
            // A deleted segment's file whose `file.delete.delay.ms` had not passed.
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
        let segment = Segment::create(io, dir, 0)?;
        io::sync_dir(dir)?;
        // Nothing is left for an aborted-transaction index to name.
        io::remove_file(&dir.join(crate::txn_index::FILE_NAME))?;
        return Ok(RecoveredLog {
            segments: BTreeMap::from([(0, segment)]),
            producers: ProducerStateManager::default(),
            replayed_from: i64::MIN,
            replayed_aborts: Vec::new(),
        });
    }

    let recovery_point = if clean {
        None
    } else {
        let snapshot = producer_state::list_snapshots(dir)?
            .last()
            .copied()
            .unwrap_or(i64::MIN);
        Some(snapshot.max(durable_hint.unwrap_or(i64::MIN)))
    };
    let scan = Scan {
        config,
        // Offsets below the recovery point were synced before the crash: damage there is never
        // a torn tail. After a clean shutdown everything was synced, but where the data ended is
        // not recorded, so only the "nothing valid follows" rule applies (damage to the very
        // last batch of a cleanly closed log is cut like a torn tail, with a warning).
        durable_below: recovery_point.unwrap_or(i64::MIN),
    };
    let mut segments = BTreeMap::new();
    for (i, &base) in bases.iter().enumerate() {
        let next_base = bases.get(i + 1).copied();
        let (mut segment, shape) = Segment::open_files(io, dir, base)?;
        let validate = recovery_point.is_some_and(|rp| next_base.is_none_or(|nb| nb > rp));
        let truncated = if validate {
            rebuild(&mut segment, &scan, 0, Mode::Recover)?
        } else {
            load(&mut segment, &scan, shape, next_base)?
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
                    "removing segment after a truncated one"
                );
                for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
                    io::remove_file(&segment_file(dir, later, suffix))?;
                }
            }
            io::sync_dir(dir)?;
            break;
        }
    }

    let (replayed_from, producers, replayed_aborts) = rebuild_producer_state(dir, &segments)?;
    Ok(RecoveredLog {
        segments,
        producers,
        replayed_from,
        replayed_aborts,
    })
}

/// What a recovery scan needs to judge damage.
struct Scan<'a> {
    config: &'a LogConfig,
    /// Offsets below this are known synced.
    durable_below: i64,
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
    scan_ctx: &Scan<'_>,
    shape: crate::segment::IndexShape,
    next_base: Option<i64>,
) -> Result<bool, StorageError> {
    let path = segment.log.path().to_owned();
    let problem = if !shape.existed {
        Some("index files missing")
    } else if !shape.aligned {
        Some("index file size is not a whole number of entries")
    } else if next_base.is_some() && segment.size > 0 && segment.time_index.last().is_none() {
        // An inactive segment's time index ends with its largest timestamp (sealed on roll).
        Some("time index of an inactive segment is empty")
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
        return rebuild(segment, scan_ctx, 0, mode);
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
                    return rebuild(segment, scan_ctx, 0, Mode::Recover);
                }
            }
            let truncated = scan(
                segment,
                scan_ctx,
                start.unwrap_or(0),
                start.is_some(),
                Mode::Recover,
            )?;
            if truncated {
                // Index entries may point into what was cut (the truncation point can only be
                // at or after the last offset-index entry, but the time index is not bound
                // by it); rebuild both.
                rebuild(segment, scan_ctx, 0, Mode::Recover)?;
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
    scan_ctx: &Scan<'_>,
    start: u64,
    mode: Mode,
) -> Result<bool, StorageError> {
    segment.offset_index.clear()?;
    segment.time_index.clear()?;
    segment.next_offset = segment.base_offset;
    segment.max_timestamp = NO_TIMESTAMP;
    segment.offset_of_max_timestamp = segment.base_offset;
    segment.bytes_since_index = 0;
    let truncated = match scan(segment, scan_ctx, start, false, mode) {
        Ok(truncated) => truncated,
        Err(e) => {
            // The half-rebuilt indexes look consistent but stop at the damage; remove them so
            // the next open rebuilds again and finds the damage again, rather than trusting
            // them (and the bytes after them).
            let dir = segment.log.path().parent().unwrap_or(Path::new("."));
            for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
                io::remove_file(&segment_file(dir, segment.base_offset, suffix))?;
            }
            return Err(e);
        }
    };
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
    scan_ctx: &Scan<'_>,
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
                let torn = mode == Mode::Recover
                    && segment.next_offset >= scan_ctx.durable_below
                    && !valid_batch_follows(segment, position)?;
                let path = segment.log.path().to_owned();
                if torn {
                    tracing::warn!(
                        file = %path.display(),
                        position,
                        discarded_bytes = segment.size - position,
                        reason = %kind,
                        "truncating torn tail of segment"
                    );
                } else if scan_ctx.config.recovery == RecoveryPolicy::TruncateCorruption {
                    tracing::error!(
                        file = %path.display(),
                        position,
                        discarded_bytes = segment.size - position,
                        reason = %kind,
                        "corrupt record batch before the end of the log; truncating there \
                         (recovery policy: truncate), records after it are lost"
                    );
                } else {
                    tracing::error!(
                        file = %path.display(),
                        position,
                        reason = %kind,
                        "corrupt record batch before the end of the log (not a torn tail); \
                         refusing to open the partition. Restore the file, or set the recovery \
                         policy to truncate (the broker's or topic's storage.recovery) to \
                         discard everything from this position"
                    );
                    return Err(StorageError::Corrupt {
                        path,
                        position,
                        kind,
                    });
                }
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
            segment.index_batch(&batch, scan_ctx.config)?;
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

/// How far past damage [`valid_batch_follows`] searches when the damaged batch's own length
/// cannot be trusted.
const RESYNC_WINDOW: u64 = 8 << 20;

/// Whether a complete, CRC-valid batch follows the invalid batch at `position` in the same
/// segment: then the damage is not a torn tail (a crash only loses what was written last).
/// Tries the damaged batch's own length first, then searches the next [`RESYNC_WINDOW`] bytes
/// for any position that holds a valid batch.
fn valid_batch_follows(segment: &Segment, position: u64) -> Result<bool, StorageError> {
    let size = segment.size;
    let window = (size - position).min(RESYNC_WINDOW) as usize;
    if window <= HEADER_SIZE {
        return Ok(false);
    }
    let buf = segment.log.read_vec(position, window)?;
    let valid_at = |at: usize| -> bool {
        let Some(rest) = buf.get(at..) else {
            return false;
        };
        let Ok(header) = BatchHeader::parse(rest) else {
            return false;
        };
        rest.len() >= header.total_size()
            && record_batch::validate_batch(&rest[..header.total_size()]).is_ok()
    };
    if let Ok(header) = BatchHeader::parse(&buf)
        && header.total_size() > 0
        && valid_at(header.total_size())
    {
        return Ok(true);
    }
    // The magic byte sits at offset 16 of a batch; only positions where it reads 2 are tried.
    Ok((1..buf.len().saturating_sub(HEADER_SIZE))
        .any(|at| buf[at + 16] == floe_protocol::record_batch::MAGIC_V2 as u8 && valid_at(at)))
}

/// Loads the newest usable snapshot and replays the batches after it: the snapshot's
/// offset, the state, and the transactions aborted in the replayed part.
fn rebuild_producer_state(
    dir: &Path,
    segments: &BTreeMap<i64, Segment>,
) -> Result<(i64, ProducerStateManager, Vec<AbortedTxn>), StorageError> {
    let log_end = segments.values().next_back().map_or(0, |s| s.next_offset);
    let (from, mut producers) = producer_state::load_latest_snapshot(dir, log_end)?
        .unwrap_or((i64::MIN, ProducerStateManager::default()));
    let mut aborted = Vec::new();
    let bases: Vec<i64> = segments.keys().copied().collect();
    for (i, segment) in segments.values().enumerate() {
        if bases.get(i + 1).is_some_and(|&next| next <= from) {
            continue;
        }
        let reader = segment.reader();
        let mut next = reader.find_batch(from)?;
        while let Some(batch) = next {
            if batch.header.base_offset >= from {
                let control = if batch.header.is_control() {
                    // A marker is one small record: read it whole for its type.
                    let bytes = reader
                        .log
                        .read_vec(batch.position, batch.header.total_size())?;
                    floe_protocol::control::control_type(&bytes).map_err(|e| {
                        StorageError::Corrupt {
                            path: segment_file(dir, segment.base_offset, LOG_SUFFIX),
                            position: batch.position,
                            kind: Corruption::Batch(e),
                        }
                    })?
                } else {
                    None
                };
                aborted.extend(producers.replay(&batch.header, control));
            }
            next = read_batch_header(&reader.log, batch.end(), reader.size)?;
        }
    }
    Ok((from, producers, aborted))
}

#[cfg(test)]
mod tests;

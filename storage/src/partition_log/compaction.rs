//! Log compaction (`cleanup.policy=compact`): keeping the latest record of every key, as
//! Kafka's log cleaner does. Driven by the cleaner thread ([`crate::cleaner`]).
//!
//! **What is cleaned.** The log splits at the *first dirty offset* (`cleaned_to`, kept in
//! the data directory's `cleaner-offset-checkpoint`): below it everything was cleaned once,
//! above it is the dirty part. The dirty part ends at the first *uncleanable* offset: the
//! active segment's base, the newest producer snapshot (so producer state is never rebuilt
//! from a cleaned segment), the durable offset, the last stable offset (an open
//! transaction's records are never mapped: it may still abort), and the first segment
//! holding a record newer than `min.compaction.lag.ms`. A log is due when its dirty bytes are at least
//! `min.cleanable.dirty.ratio` of its closed bytes, or its oldest dirty record is older than
//! `max.compaction.lag.ms`.
//!
//! **How.** One pass reads the dirty segments and records the latest offset of every key in
//! an offset map (key hash -> offset; bounded by the cleaner's buffer, and if the map fills,
//! the pass stops at the last whole segment it mapped). Then every closed segment from the
//! log start to the end of the mapped part is rewritten, oldest first, keeping a record
//! unless a later record of its key is in the map, and dropping a tombstone (null value)
//! whose timestamp is older than `delete.retention.ms`. A clean part holding tombstones is
//! cleaned again (without a dirty part) when the first of them expires, and once after every
//! restart (when that time is not known). Kept records keep their offsets
//! ([`floe_protocol::record_filter`]); compressed batches are recompressed with their codec;
//! records without a key are kept (Kafka drops them; Floe never loses data it cannot judge).
//! Transactions: records of aborted transactions never enter the map and are removed (as
//! Kafka's cleaner does). A commit marker goes once no record of its transaction is left
//! and it is older than `delete.retention.ms` (so a consumer that read the records before
//! they were cleaned still finds it). An abort marker goes, as in Kafka, once a pass finds
//! no record of its transaction left (the pass that removes the records keeps it, so it
//! outlives them by at least one pass) and it is older than `delete.retention.ms`; its
//! aborted-transaction index entry is removed durably first (read_committed consumers skip
//! an aborted producer's records until its abort marker: an entry without its marker
//! would hide that producer's later records, a marker without its entry hides nothing).
//! Segments are not merged: a cleaned segment replaces exactly one old segment, and one left
//! empty is deleted (the first segment is kept empty, so the log start does not move).
//!
//! **Swap, crash-safely.** The new segment is written as `<base>.log.cleaned` (with
//! `.index.cleaned` and `.timeindex.cleaned`) and fdatasync'ed; renaming
//! `<base>.log.cleaned` to `<base>.log.swap` (indexes first) and fsyncing the directory is
//! the commit point. Then the old files are renamed `*.deleted` (descriptors pinned, so
//! readers of the old segment keep reading it), the swap files take the final names, the
//! directory is fsync'ed, and the segment list points at the new segment. Recovery removes
//! `*.cleaned` files (the clean never happened) and finishes any `*.swap` (removes the old
//! segment's files and renames the swap into place), so a kill -9 at any point leaves
//! either the old or the new segment, never a mix.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use floe_protocol::record_filter::{self, Filtered};

use super::PartitionLog;
use super::retention::{DELETED_SUFFIX, Deleted};
use crate::config::LogConfig;
use crate::error::StorageError;
use crate::io;
use crate::offset_index::OffsetIndex;
use crate::producer_state;
use crate::producer_state::AbortedTxn;
use crate::segment::{
    INDEX_SUFFIX, LOG_SUFFIX, LocatedBatch, NO_TIMESTAMP, Segment, SegmentReader,
    TIME_INDEX_SUFFIX, read_batch_header, segment_file,
};
use crate::time_index::TimeIndex;

/// Suffix of a cleaned segment's files while they are written.
pub const CLEANED_SUFFIX: &str = ".cleaned";
/// Suffix of a cleaned segment's files between the commit point and their final names.
pub const SWAP_SUFFIX: &str = ".swap";

/// Bytes per entry of the offset map, as accounted against the cleaner's buffer (a 128-bit
/// key hash, an offset, and the hash table's own overhead).
pub const MAP_ENTRY_BYTES: usize = 40;

/// Where a log's dirty part is, and how dirty it is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cleanable {
    /// First dirty offset.
    pub first_dirty: i64,
    /// First offset that may not be cleaned now.
    pub uncleanable: i64,
    /// Bytes of closed segments below `first_dirty`.
    pub clean_bytes: u64,
    /// Bytes of the segments in `[first_dirty, uncleanable)`.
    pub dirty_bytes: u64,
    /// `dirty_bytes / (clean_bytes + dirty_bytes)`.
    pub ratio: f64,
    /// The oldest dirty record is older than `max.compaction.lag.ms`.
    pub overdue: bool,
    /// A tombstone in the clean part may be past `delete.retention.ms` (or, after a
    /// restart, nobody knows yet).
    pub tombstones_due: bool,
}

impl Cleanable {
    /// Whether the log should be cleaned now under `config`.
    pub fn due(&self, config: &LogConfig) -> bool {
        (self.dirty_bytes > 0 && (self.ratio >= config.min_cleanable_dirty_ratio || self.overdue))
            || self.tombstones_due
    }
}

/// What one clean did.
#[derive(Debug, Default)]
pub struct CleanStats {
    /// Bytes of segments read (offset map and rewrite).
    pub bytes_read: u64,
    /// Bytes of cleaned segments written.
    pub bytes_written: u64,
    /// Records removed.
    pub records_removed: u64,
    /// Segments rewritten or deleted.
    pub segments_cleaned: usize,
    /// Old files, renamed `*.deleted`, to remove after `file.delete.delay.ms`.
    pub deleted: Deleted,
}

/// Latest offset of every key hash seen, bounded in entries.
struct OffsetMap {
    map: HashMap<u128, i64>,
    capacity: usize,
}

impl OffsetMap {
    /// Records `offset` for `key`; false if the map is full and the key is new.
    fn put(&mut self, key: &[u8], offset: i64) -> bool {
        let hash = key_hash(key);
        if self.map.len() >= self.capacity && !self.map.contains_key(&hash) {
            return false;
        }
        self.map.insert(hash, offset);
        true
    }

    fn latest(&self, key: &[u8]) -> Option<i64> {
        self.map.get(&key_hash(key)).copied()
    }
}

/// A 128-bit hash of a key (two independent 64-bit SipHashes), so that two keys colliding,
/// which would drop the older key's latest record, is as unlikely as with Kafka's MD5.
fn key_hash(key: &[u8]) -> u128 {
    let mut a = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut a);
    let mut b = std::collections::hash_map::DefaultHasher::new();
    0x5eed_u32.hash(&mut b);
    key.hash(&mut b);
    (u128::from(a.finish()) << 64) | u128::from(b.finish())
}

/// Sleeps to keep the cleaner's I/O under a rate (Kafka's
/// `log.cleaner.io.max.bytes.per.second`).
pub trait Throttle {
    /// Accounts for `bytes` of I/O, sleeping as needed.
    fn account(&self, bytes: u64);
}

/// Batches of a segment, one at a time (bounded memory: one batch).
fn batches(
    segment: &SegmentReader,
) -> impl Iterator<Item = Result<(LocatedBatch, Vec<u8>), StorageError>> + '_ {
    let mut position = 0u64;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let next = read_batch_header(&segment.log, position, segment.size).and_then(|found| {
            let Some(batch) = found else { return Ok(None) };
            let bytes = segment
                .log
                .read_vec(batch.position, batch.header.total_size())?;
            Ok(Some((batch, bytes)))
        });
        match next {
            Ok(Some((batch, bytes))) => {
                position = batch.end();
                Some(Ok((batch, bytes)))
            }
            Ok(None) => {
                done = true;
                None
            }
            Err(e) => {
                done = true;
                Some(Err(e))
            }
        }
    })
}

/// What a clean pass knows of transactions while it rewrites the log from its start: per
/// producer, whether a batch of its current transaction was read since its last marker,
/// and whether a record of it was kept.
struct Transactions {
    /// Producer id -> (a batch was read, a record was kept).
    retained: HashMap<i64, (bool, bool)>,
    /// Markers stamped before this are past `delete.retention.ms`.
    expired_before_ms: i64,
    delete_retention_ms: i64,
    /// When the next marker kept only for its age expires (a clean is due then).
    next_due_ms: i64,
}

impl Transactions {
    /// A data batch of a transaction was rewritten; `kept` whether any record stayed.
    fn data(&mut self, producer_id: i64, kept: bool) {
        let entry = self.retained.entry(producer_id).or_insert((false, false));
        entry.0 = true;
        entry.1 |= kept;
    }

    /// The type of a marker that can go: a commit marker with no record of its transaction
    /// kept, an abort marker with no batch of its transaction read in this pass; either past
    /// `delete.retention.ms`. `None` keeps it.
    fn removable_marker(
        &mut self,
        header: &floe_protocol::record_batch::BatchHeader,
        bytes: &[u8],
    ) -> Option<floe_protocol::control::ControlType> {
        use floe_protocol::control::{ControlType, control_type};
        let (read, kept) = self
            .retained
            .remove(&header.producer_id)
            .unwrap_or((false, false));
        let control = control_type(bytes).ok().flatten()?;
        let ended_empty = match control {
            ControlType::Commit => !kept,
            ControlType::Abort => !read,
        };
        if ended_empty && header.max_timestamp < self.expired_before_ms {
            return Some(control);
        }
        // Kept only for its age, or an abort whose records this pass removed: a clean is due
        // once it is old enough.
        if ended_empty || (read && !kept) {
            self.next_due_ms = self.next_due_ms.min(
                header
                    .max_timestamp
                    .saturating_add(self.delete_retention_ms)
                    .saturating_add(1),
            );
        }
        None
    }
}

/// Whether a data batch belongs to one of the aborted transactions.
fn in_aborted(header: &floe_protocol::record_batch::BatchHeader, aborted: &[AbortedTxn]) -> bool {
    aborted.iter().any(|t| t.contains(header))
}

fn corrupt(path: &Path, e: floe_protocol::record_batch::BatchError) -> StorageError {
    StorageError::Corrupt {
        path: path.to_owned(),
        position: 0,
        kind: crate::error::Corruption::Batch(e),
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

impl PartitionLog {
    /// The first dirty offset: everything below was cleaned once.
    pub fn cleaned_to(&self) -> i64 {
        self.cleaned_to
            .load(Ordering::Acquire)
            .max(self.log_start_offset())
    }

    /// Where the dirty part of the log is at wall-clock `now_ms` (see the module docs).
    pub fn cleanable(&self, now_ms: i64) -> Result<Cleanable, StorageError> {
        let config = self.config();
        let newest_snapshot = producer_state::list_snapshots(&self.dir)?
            .last()
            .copied()
            .unwrap_or(i64::MIN);
        let durable = self.durable_offset();
        let last_stable = self.last_stable_offset();
        let first_dirty = self.cleaned_to();
        let min_lag = i64::try_from(config.min_compaction_lag_ms).unwrap_or(i64::MAX);
        let max_lag = i64::try_from(config.max_compaction_lag_ms).unwrap_or(i64::MAX);
        let inner = self.lock();
        let n = inner.segments.len();
        let mut out = Cleanable {
            first_dirty,
            uncleanable: first_dirty,
            clean_bytes: 0,
            dirty_bytes: 0,
            ratio: 0.0,
            overdue: false,
            tombstones_due: false,
        };
        let mut uncleanable_found = false;
        for (i, (segment, next)) in inner
            .segments
            .values()
            .zip(inner.segments.keys().skip(1))
            .enumerate()
        {
            debug_assert!(i + 1 < n);
            if *next <= first_dirty {
                out.clean_bytes += segment.size;
                continue;
            }
            let too_new = segment.max_timestamp != NO_TIMESTAMP
                && now_ms.saturating_sub(segment.max_timestamp) < min_lag;
            if uncleanable_found
                || *next > newest_snapshot
                || *next > durable
                || *next > last_stable
                || too_new
            {
                uncleanable_found = true;
                continue;
            }
            out.dirty_bytes += segment.size;
            out.uncleanable = *next;
            if segment.max_timestamp != NO_TIMESTAMP
                && now_ms.saturating_sub(segment.max_timestamp) > max_lag
            {
                out.overdue = true;
            }
        }
        let total = out.clean_bytes + out.dirty_bytes;
        if total > 0 {
            out.ratio = out.dirty_bytes as f64 / total as f64;
        }
        out.tombstones_due =
            out.clean_bytes > 0 && now_ms >= self.tombstones_due_at.load(Ordering::Acquire);
        Ok(out)
    }

    /// Cleans the log once (see the module docs): maps the dirty part with at most
    /// `map_entries` keys, rewrites the closed segments up to where the map reached, and
    /// moves the first dirty offset there. Blocks (reads, writes, fsyncs): for the cleaner
    /// thread.
    pub fn clean(
        &self,
        map_entries: usize,
        throttle: &dyn Throttle,
        now_ms: i64,
    ) -> Result<CleanStats, StorageError> {
        let _maintenance = self.maintenance.lock().unwrap_or_else(|p| p.into_inner());
        let config = self.config();
        let cleanable = self.cleanable(now_ms)?;
        let mut stats = CleanStats::default();
        if cleanable.dirty_bytes == 0 && !cleanable.tombstones_due {
            return Ok(stats);
        }
        let closed = self.closed_segments();
        // 1. The offset map over the dirty part, whole segments only.
        let mut map = OffsetMap {
            map: HashMap::new(),
            capacity: map_entries.max(1),
        };
        let mut mapped_to = cleanable.first_dirty;
        'segments: for (i, segment) in closed.iter().enumerate() {
            let next = closed
                .get(i + 1)
                .map_or(cleanable.uncleanable, |s| s.base_offset);
            if next <= cleanable.first_dirty {
                continue;
            }
            if next > cleanable.uncleanable {
                break;
            }
            let mut snapshot = map.map.clone();
            let aborted = self.aborted_transactions(segment.base_offset, next);
            for item in batches(segment) {
                let (batch, bytes) = item?;
                throttle.account(bytes.len() as u64);
                stats.bytes_read += bytes.len() as u64;
                if batch.header.is_control() || in_aborted(&batch.header, &aborted) {
                    continue;
                }
                let mut full = false;
                record_filter::for_each_record(&bytes, |r| {
                    if let Some(key) = r.key
                        && !map.put(key, r.offset)
                    {
                        full = true;
                    }
                })
                .map_err(|e| corrupt(segment.log.path(), e))?;
                if full {
                    std::mem::swap(&mut map.map, &mut snapshot);
                    break 'segments;
                }
            }
            drop(snapshot);
            mapped_to = next;
        }
        if mapped_to <= cleanable.first_dirty && cleanable.dirty_bytes > 0 {
            tracing::warn!(
                dir = %self.dir.display(),
                entries = map_entries,
                "log cleaner: the offset map cannot hold the keys of one dirty segment; raise log_cleaner_dedupe_buffer_size"
            );
            return Ok(stats);
        }
        // 2. Rewrite every closed segment below `mapped_to`, oldest first (so a tombstone is
        // never removed before the older records it deletes).
        let delete_retention = i64::try_from(config.delete_retention_ms).unwrap_or(i64::MAX);
        // When the kept tombstones expire: the next clean of the clean part is due then.
        let mut tombstones_expire = i64::MAX;
        let mut txns = Transactions {
            retained: HashMap::new(),
            expired_before_ms: now_ms.saturating_sub(delete_retention),
            delete_retention_ms: delete_retention,
            next_due_ms: i64::MAX,
        };
        for (i, segment) in closed.iter().enumerate() {
            let next = closed.get(i + 1).map_or(mapped_to, |s| s.base_offset);
            if next > mapped_to {
                break;
            }
            let keep = |r: record_filter::RecordRef<'_>| match r.key {
                None => true,
                Some(key) => {
                    if map.latest(key).is_some_and(|latest| latest > r.offset) {
                        return false;
                    }
                    if !r.null_value {
                        return true;
                    }
                    let expires = r.timestamp.saturating_add(delete_retention);
                    if now_ms > expires {
                        return false;
                    }
                    tombstones_expire = tombstones_expire.min(expires.saturating_add(1));
                    true
                }
            };
            let aborted = self.aborted_transactions(segment.base_offset, next);
            self.clean_segment(
                segment,
                i == 0,
                &config,
                (keep, &aborted, &mut txns),
                throttle,
                &mut stats,
            )?;
        }
        let tombstones_expire = tombstones_expire.min(txns.next_due_ms);
        self.cleaned_to.fetch_max(mapped_to, Ordering::AcqRel);
        self.tombstones_due_at
            .store(tombstones_expire, Ordering::Release);
        tracing::info!(
            dir = %self.dir.display(),
            cleaned_to = mapped_to,
            read = stats.bytes_read,
            written = stats.bytes_written,
            removed = stats.records_removed,
            segments = stats.segments_cleaned,
            "log cleaned"
        );
        Ok(stats)
    }

    /// Rewrites one closed segment with the records `keep` accepts and swaps it in (or
    /// deletes it when nothing is kept, unless it is the first).
    fn clean_segment(
        &self,
        old: &SegmentReader,
        first: bool,
        config: &LogConfig,
        (mut keep, aborted, txns): (
            impl FnMut(record_filter::RecordRef<'_>) -> bool,
            &[AbortedTxn],
            &mut Transactions,
        ),
        throttle: &dyn Throttle,
        stats: &mut CleanStats,
    ) -> Result<(), StorageError> {
        let base = old.base_offset;
        let log_path = segment_file(&self.dir, base, LOG_SUFFIX);
        let index_path = segment_file(&self.dir, base, INDEX_SUFFIX);
        let time_path = segment_file(&self.dir, base, TIME_INDEX_SUFFIX);
        let mut new = Segment {
            base_offset: base,
            log: Arc::new(io::File::create(
                &self.io,
                &with_suffix(&log_path, CLEANED_SUFFIX),
            )?),
            size: 0,
            next_offset: base,
            offset_index: OffsetIndex::open(&self.io, &with_suffix(&index_path, CLEANED_SUFFIX))?.0,
            time_index: TimeIndex::open(&self.io, &with_suffix(&time_path, CLEANED_SUFFIX))?.0,
            bytes_since_index: 0,
            max_timestamp: NO_TIMESTAMP,
            offset_of_max_timestamp: base,
            roll_base_ms: None,
        };
        new.log.set_len(0)?;
        new.offset_index.clear()?;
        new.time_index.clear()?;
        let mut changed = false;
        let mut removed = 0u64;
        // Abort markers this rewrite leaves out: their index entries go first.
        let mut aborts_removed = Vec::new();
        for item in batches(old) {
            let (batch, bytes) = item?;
            throttle.account(bytes.len() as u64);
            stats.bytes_read += bytes.len() as u64;
            let mut total = 0u64;
            let mut kept = 0u64;
            let filtered = if batch.header.is_control() {
                match txns.removable_marker(&batch.header, &bytes) {
                    Some(control) => {
                        total = 1;
                        if control == floe_protocol::control::ControlType::Abort {
                            aborts_removed.push(batch.header.base_offset);
                        }
                        Filtered::Empty
                    }
                    None => Filtered::Unchanged,
                }
            } else if in_aborted(&batch.header, aborted) {
                total = u64::try_from(batch.header.records_count).unwrap_or(0);
                Filtered::Empty
            } else {
                record_filter::filter_batch(&bytes, |r| {
                    total += 1;
                    let k = keep(r);
                    kept += u64::from(k);
                    k
                })
                .map_err(|e| corrupt(old.log.path(), e))?
            };
            if batch.header.is_transactional() && !batch.header.is_control() {
                txns.data(
                    batch.header.producer_id,
                    !matches!(filtered, Filtered::Empty),
                );
            }
            let out = match filtered {
                Filtered::Unchanged => bytes,
                Filtered::Empty => {
                    changed = true;
                    removed += total;
                    continue;
                }
                Filtered::Rewritten(b) => {
                    changed = true;
                    removed += total - kept;
                    b.to_vec()
                }
            };
            let header = floe_protocol::record_batch::BatchHeader::parse(&out)
                .map_err(|e| corrupt(old.log.path(), e))?;
            let position = new.size;
            new.log.write_at(position, &out)?;
            throttle.account(out.len() as u64);
            stats.bytes_written += out.len() as u64;
            new.appended(
                position,
                out.len(),
                &[(header, 0..out.len())],
                config,
                batch.header.max_timestamp,
            )?;
        }
        if !changed {
            for path in [&log_path, &index_path, &time_path] {
                io::remove_file(&with_suffix(path, CLEANED_SUFFIX))?;
            }
            return Ok(());
        }
        stats.records_removed += removed;
        stats.segments_cleaned += 1;
        // Before the markers can disappear (commit point or deletion below).
        self.remove_aborted(&aborts_removed)?;
        if new.size == 0 && !first {
            for path in [&log_path, &index_path, &time_path] {
                io::remove_file(&with_suffix(path, CLEANED_SUFFIX))?;
            }
            return self.delete_cleaned_away(base, stats);
        }
        // Durable before the commit point.
        new.seal_time_index()?;
        self.io.sync_all(&[
            &*new.log,
            &**new.offset_index.file(),
            &**new.time_index.file(),
        ])?;
        // Commit point: the `.log.swap` (indexes renamed first).
        for path in [&index_path, &time_path, &log_path] {
            io::rename(
                &with_suffix(path, CLEANED_SUFFIX),
                &with_suffix(path, SWAP_SUFFIX),
            )?;
        }
        io::sync_dir(&self.dir)?;
        self.swap_in(base, new, stats)
    }

    /// After the commit point: the old segment's files go to `*.deleted`, the swap files take
    /// their names, and the segment list points at the new segment.
    fn swap_in(&self, base: i64, new: Segment, stats: &mut CleanStats) -> Result<(), StorageError> {
        let found = {
            let inner = self.lock();
            inner.segments.get(&base).map(|old| {
                let next = inner.segments.range(base + 1..).next().map(|(&b, _)| b);
                (old.all_files(), next)
            })
        };
        let Some((old_files, next)) = found else {
            // Gone meanwhile (the maintenance lock rules that out): drop the swap, so that
            // recovery never installs it.
            for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
                let swap = with_suffix(&segment_file(&self.dir, base, suffix), SWAP_SUFFIX);
                if io::exists(&swap) {
                    io::remove_file(&swap)?;
                }
            }
            return Ok(());
        };
        for file in &old_files {
            let to = with_suffix(file.path(), DELETED_SUFFIX);
            stats.deleted.files.push(file.rename_pinned(&to)?);
        }
        for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX, LOG_SUFFIX] {
            let path = segment_file(&self.dir, base, suffix);
            io::rename(&with_suffix(&path, SWAP_SUFFIX), &path)?;
        }
        io::sync_dir(&self.dir)?;
        // Reopen under the final names (the written handles name the `.cleaned` paths).
        let (mut reopened, _) = Segment::open_files(&self.io, &self.dir, base)?;
        reopened.size = new.size;
        // It ends where the old one did, even if its last records were removed.
        reopened.next_offset = next.unwrap_or(new.next_offset);
        reopened.max_timestamp = new.max_timestamp;
        reopened.offset_of_max_timestamp = new.offset_of_max_timestamp;
        for file in reopened.all_files() {
            file.make_cold();
        }
        drop(new);
        let mut inner = self.lock();
        inner.segments.insert(base, reopened);
        Ok(())
    }

    /// Deletes a closed segment the clean left empty (never the first: the log start stays).
    fn delete_cleaned_away(&self, base: i64, stats: &mut CleanStats) -> Result<(), StorageError> {
        let doomed = {
            let mut inner = self.lock();
            if inner.segments.keys().next() == Some(&base)
                || inner.segments.keys().next_back() == Some(&base)
            {
                return Ok(());
            }
            inner.segments.remove(&base)
        };
        let Some(segment) = doomed else { return Ok(()) };
        for file in segment.all_files() {
            let to = with_suffix(file.path(), DELETED_SUFFIX);
            stats.deleted.files.push(file.rename_pinned(&to)?);
        }
        io::sync_dir(&self.dir)?;
        Ok(())
    }
}

/// Finishes or undoes cleaning left by a crash in a partition directory, before recovery
/// opens its segments: `*.cleaned` files are removed (the commit point was not reached);
/// each `<base>.log.swap` replaces the old segment's files (removed) with the swap files
/// (renamed into place; a missing index swap is rebuilt by recovery).
pub(crate) fn finish_interrupted_cleaning(dir: &Path) -> Result<(), StorageError> {
    let entries = io::list_dir(dir)?;
    let mut swapped = false;
    for entry in entries.iter().filter(|e| !e.is_dir) {
        if entry.name.ends_with(CLEANED_SUFFIX) {
            io::remove_file(&entry.path)?;
        }
    }
    for entry in entries.iter().filter(|e| !e.is_dir) {
        let Some(log_name) = entry.name.strip_suffix(SWAP_SUFFIX) else {
            continue;
        };
        let Some(base) = crate::segment::parse_segment_file(log_name, LOG_SUFFIX) else {
            continue;
        };
        tracing::warn!(dir = %dir.display(), base, "finishing a segment swap interrupted by a crash");
        for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            let path = segment_file(dir, base, suffix);
            if io::exists(&path) {
                io::remove_file(&path)?;
            }
        }
        for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX, LOG_SUFFIX] {
            let path = segment_file(dir, base, suffix);
            let swap = with_suffix(&path, SWAP_SUFFIX);
            if io::exists(&swap) {
                io::rename(&swap, &path)?;
            }
        }
        swapped = true;
    }
    // Index swaps without their `.log.swap`: the commit point was not reached.
    for entry in io::list_dir(dir)?.iter().filter(|e| !e.is_dir) {
        if entry.name.ends_with(SWAP_SUFFIX) {
            io::remove_file(&entry.path)?;
        }
    }
    if swapped {
        io::sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;

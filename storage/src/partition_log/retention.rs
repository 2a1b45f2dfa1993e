//! The head of a log: retention (`retention.ms`, `retention.bytes`), DeleteRecords (the log
//! start offset moved by an admin), and the segment deletion both end in.
//!
//! Which segments go, as Kafka decides it: the longest prefix of segments that any rule
//! condemns, where a segment is condemned
//! - by the log start offset when the next segment starts at or below it;
//! - by `retention.ms` (policy `delete`) when its largest record timestamp (the file's
//!   modification time if it has none) is more than `retention.ms` old;
//! - by `retention.bytes` (policy `delete`) while the log without it is still at least
//!   `retention.bytes` large.
//!
//! Retention holds ([`hold`]: tableflow's claim on records its table has not materialized)
//! delay the deletion of condemned segments that hold records a hold still needs, for a
//! bounded time and within a byte bound; they never hold back DeleteRecords.
//!
//! The active segment is condemned only by time (a quiet topic's last segment expires too):
//! the log rolls first, so the log always keeps an active segment, empty at the log end.
//! Independently, an active segment older than `segment.ms` is rolled by the retention pass
//! even if nothing is appended, so that time retention makes progress on a quiet topic.
//!
//! Deleting segments: under the partition lock they leave the segment map and the log start
//! offset moves to the first remaining base (or stays higher after DeleteRecords); readers
//! that took a segment before keep reading it. Then each file is renamed `<name>.deleted`
//! with its descriptor pinned open ([`io::File::rename_pinned`]), so a fetch in flight never
//! finds a file missing, and the directory is fsync'ed. The log manager removes the
//! `.deleted` files after `file.delete.delay.ms`; recovery removes any it finds (a crash
//! between the steps leaves a log that opens: a segment whose `.log` was renamed is gone, an
//! index left without its `.log` is removed, and an unrenamed segment is simply deleted again
//! by the next pass).

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use self::hold::{Candidate, ForcedBy, Released};
use super::{Inner, PartitionLog};
use crate::config::LogConfig;
use crate::error::StorageError;
use crate::io;
use crate::segment::Segment;

mod hold;
pub(crate) use hold::Holds;
pub use hold::RetentionHold;

/// Suffix of the files of a deleted segment, until they are removed.
pub const DELETED_SUFFIX: &str = ".deleted";

/// Why DeleteRecords was refused.
#[derive(Debug, thiserror::Error)]
pub enum DeleteRecordsError {
    /// The offset is above the high watermark (or negative and not -1).
    #[error("offset {requested} is out of range: the high watermark is {high_watermark}")]
    OffsetOutOfRange {
        /// The requested offset.
        requested: i64,
        /// The high watermark.
        high_watermark: i64,
    },
    /// The log could not be changed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// What a retention pass or DeleteRecords removed from a log.
#[derive(Debug, Default)]
pub struct Deleted {
    /// Segments removed.
    pub segments: usize,
    /// Bytes of their `.log` files.
    pub bytes: u64,
    /// The renamed files, to remove after `file.delete.delay.ms`.
    pub files: Vec<io::DoomedFile>,
}

impl PartitionLog {
    /// Holds back retention from `offset` on (the first offset the caller still needs): a
    /// segment the retention rules condemn that holds such records stays until
    /// `max_hold_ms` after it was condemned, and while what the holds keep on local disk
    /// stays within `log.local.hard.limit.bytes` (see [`hold`]). Move the claim with
    /// [`RetentionHold::set_offset`]; dropping it releases it. Kept in memory only.
    pub fn hold_retention(&self, offset: i64, max_hold_ms: u64) -> RetentionHold {
        self.retention_holds.take(offset, max_hold_ms)
    }

    /// One retention pass at wall-clock `now_ms`: rolls an active segment older than
    /// `segment.ms`, then deletes the segments the log start offset, `retention.ms` and
    /// `retention.bytes` condemn (see the module docs). Blocks (renames, directory fsync):
    /// for the log manager's retention thread.
    pub fn enforce_retention(&self, now_ms: i64) -> Result<Deleted, StorageError> {
        let _maintenance = self.maintenance.lock().unwrap_or_else(|p| p.into_inner());
        let config = self.config();
        if config.remote_storage_enable {
            return self.enforce_tiered_retention(&config, now_ms);
        }
        let doomed = {
            let mut inner = self.lock_idle_writer();
            if inner.closed || inner.offline.is_some() || self.is_failed() {
                return Ok(Deleted::default());
            }
            let count = self.condemned(&inner, &config, now_ms)?;
            let everything = count == inner.segments.len();
            inner = self.roll_for_retention(inner, &config, now_ms, everything)?;
            let count = count.min(inner.segments.len().saturating_sub(1));
            self.detach_head(&mut inner, count, true)
        };
        self.delete_files(doomed)
    }

    /// Retention of a tiered log. `retention.ms` and `retention.bytes` apply to the whole
    /// log, remote part included: what they condemn moves the log start offset (the uploader
    /// then deletes the remote segments below it). Local segments go when they are below
    /// the log start, or when they are uploaded and `local.retention.ms` /
    /// `local.retention.bytes` condemn them; a segment not yet uploaded stays (the hard
    /// limit bounds how many do). Until the remote part is attached nothing is deleted.
    fn enforce_tiered_retention(
        &self,
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<Deleted, StorageError> {
        let Some(remote) = self.remote() else {
            return Ok(Deleted::default());
        };
        let doomed = {
            let mut inner = self.lock_idle_writer();
            if inner.closed || inner.offline.is_some() || self.is_failed() {
                return Ok(Deleted::default());
            }
            inner = self.roll_for_retention(inner, config, now_ms, false)?;
            let uploaded_end = remote.uploaded_end().unwrap_or(i64::MIN);
            let local_start = inner.segments.keys().next().copied().unwrap_or(0);
            let log_start = self.log_start.load(Ordering::Acquire);
            // (base, bytes, newest timestamp) of every segment of the whole log but the
            // active one, oldest first.
            let mut spans: Vec<(i64, u64, i64)> = remote
                .segments_below(local_start)
                .iter()
                .filter(|s| s.next_offset > log_start)
                .map(|s| (s.base_offset, s.size, s.max_timestamp))
                .collect();
            let remote_spans = spans.len();
            let closed = inner.segments.len().saturating_sub(1);
            for segment in inner.segments.values().take(closed) {
                spans.push((segment.base_offset, segment.size, segment.newest_ms()?));
            }
            let active_size = inner.active().map_or(0, |a| a.size);
            let active_base = inner.active().map_or(0, |a| a.base_offset);
            let expired = expired_prefix(
                &spans,
                active_size,
                config.retention_ms,
                config.retention_bytes,
                now_ms,
            );
            // The holds decide when condemned spans go; only local spans take disk.
            let retention_ms = config
                .retention_ms
                .map(|r| i64::try_from(r).unwrap_or(i64::MAX));
            let candidates: Vec<Candidate> = spans
                .iter()
                .enumerate()
                .take(expired.count())
                .map(|(i, &(base, bytes, newest))| Candidate {
                    base,
                    next_offset: spans.get(i + 1).map_or(active_base, |s| s.0),
                    local_bytes: if i >= remote_spans { bytes } else { 0 },
                    expired_at_ms: retention_ms
                        .filter(|_| i < expired.by_time)
                        .map(|r| newest.saturating_add(r)),
                })
                .collect();
            let whole = self.release_held(&candidates, now_ms, config.local_hard_limit_bytes);
            if whole > 0 {
                let new_start = spans.get(whole).map_or(active_base, |s| s.0);
                self.log_start.fetch_max(new_start, Ordering::AcqRel);
                self.prune_txn_index();
            }
            let log_start = self.log_start.load(Ordering::Acquire);
            let closed_segments = || inner.segments.values().take(closed);
            let by_start = closed_segments()
                .take_while(|s| s.next_offset <= log_start)
                .count();
            let uploaded = closed_segments()
                .take_while(|s| s.next_offset <= uploaded_end)
                .count();
            // The local closed segments' spans, of which the uploaded prefix.
            let uploaded = &spans[remote_spans..remote_spans + uploaded];
            let local_total: u64 = inner.segments.values().map(|s| s.size).sum();
            let not_uploaded_bytes = local_total - uploaded.iter().map(|s| s.1).sum::<u64>();
            let by_local = expired_prefix(
                uploaded,
                not_uploaded_bytes,
                config.local_retention_ms,
                config.local_retention_bytes,
                now_ms,
            )
            .count();
            self.detach_head(&mut inner, by_start.max(by_local), false)
        };
        self.delete_files(doomed)
    }

    /// Kafka's DeleteRecords: moves the log start offset up to `offset` (-1: the high
    /// watermark), so nothing below it is served again, and deletes the segments entirely
    /// below it. Returns the new log start offset (the low watermark). An offset at or below
    /// the current log start changes nothing. The caller makes the new start durable (the
    /// log manager's log-start checkpoint) before answering. Blocks.
    pub fn delete_records(&self, offset: i64) -> Result<(i64, Deleted), DeleteRecordsError> {
        let _maintenance = self.maintenance.lock().unwrap_or_else(|p| p.into_inner());
        let doomed = {
            let mut inner = self.lock_idle_writer();
            self.check_usable(&inner)?;
            let high_watermark = self.log_end.load(Ordering::Acquire);
            let target = if offset == -1 { high_watermark } else { offset };
            if target < 0 || target > high_watermark {
                return Err(DeleteRecordsError::OffsetOutOfRange {
                    requested: offset,
                    high_watermark,
                });
            }
            let start = self.log_start.load(Ordering::Acquire);
            if target <= start {
                return Ok((start, Deleted::default()));
            }
            self.log_start.store(target, Ordering::Release);
            self.prune_txn_index();
            let count = inner
                .segments
                .keys()
                .skip(1)
                .take_while(|&&base| base <= target)
                .count();
            // Everything below the new start is gone, tiered or not (the uploader deletes
            // the remote segments below it).
            self.detach_head(&mut inner, count, true)
        };
        let deleted = self.delete_files(doomed)?;
        Ok((self.log_start_offset(), deleted))
    }

    /// Rolls the active segment when `segment.ms` says it is too old (so time retention
    /// progresses on a quiet partition) or when `everything` is condemned (the log keeps an
    /// empty active segment at its end); the rolled segment is synced before returning.
    fn roll_for_retention<'a>(
        &'a self,
        mut inner: std::sync::MutexGuard<'a, Inner>,
        config: &LogConfig,
        now_ms: i64,
        everything: bool,
    ) -> Result<std::sync::MutexGuard<'a, Inner>, StorageError> {
        let too_old = inner.active().is_some_and(|a| {
            a.size > 0
                && a.roll_base_ms.is_some_and(|t| {
                    now_ms.saturating_sub(t) >= i64::try_from(config.segment_ms).unwrap_or(i64::MAX)
                })
        });
        if !too_old && !everything {
            return Ok(inner);
        }
        let base = self.log_end.load(Ordering::Acquire);
        let created = Segment::create(&self.io, &self.dir, base);
        self.install_roll(&mut inner, created)?;
        drop(inner);
        // The rolled segment's sync and producer snapshot (see `group_commit`).
        self.sync()?;
        Ok(self.lock_idle_writer())
    }

    /// The partition lock, once no append is in flight off its thread (a roll or a segment
    /// map change must not overtake one).
    fn lock_idle_writer(&self) -> std::sync::MutexGuard<'_, Inner> {
        let mut inner = self.lock();
        while inner.writer_busy {
            inner = self
                .writer_idle_cv
                .wait(inner)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        inner
    }

    /// How many segments from the head go (may include the active one): what the rules
    /// condemn, less what retention holds keep.
    fn condemned(
        &self,
        inner: &Inner,
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<usize, StorageError> {
        let segments: Vec<&Segment> = inner.segments.values().collect();
        let n = segments.len();
        let start = self.log_start.load(Ordering::Acquire);
        let by_start = segments
            .iter()
            .skip(1)
            .take_while(|s| s.base_offset <= start)
            .count();
        if !config.cleanup_policy.delete {
            self.release_held(&[], now_ms, None);
            return Ok(by_start);
        }
        // The newest record time of each segment `retention.ms` condemns.
        let mut expired_newest = Vec::new();
        let retention_ms = config
            .retention_ms
            .map(|r| i64::try_from(r).unwrap_or(i64::MAX));
        if let Some(retention_ms) = retention_ms {
            for segment in &segments {
                if segment.size == 0 {
                    break;
                }
                let newest = segment.newest_ms()?;
                if now_ms.saturating_sub(newest) <= retention_ms {
                    break;
                }
                expired_newest.push(newest);
            }
        }
        let by_time = expired_newest.len();
        let mut by_size = 0;
        if let Some(retention_bytes) = config.retention_bytes {
            let total: u64 = segments.iter().map(|s| s.size).sum();
            let mut excess = total.saturating_sub(retention_bytes);
            for segment in segments.iter().take(n.saturating_sub(1)) {
                if segment.size > excess {
                    break;
                }
                excess -= segment.size;
                by_size += 1;
            }
        }
        let by_rules = by_time.max(by_size);
        // Below the log start nothing is held; the holds decide about the rest.
        let candidates: Vec<Candidate> = segments
            .iter()
            .enumerate()
            .take(by_rules)
            .skip(by_start)
            .map(|(i, s)| Candidate {
                base: s.base_offset,
                next_offset: s.next_offset,
                local_bytes: s.size,
                expired_at_ms: expired_newest
                    .get(i)
                    .zip(retention_ms)
                    .map(|(newest, r)| newest.saturating_add(r)),
            })
            .collect();
        let released = self.release_held(&candidates, now_ms, config.local_hard_limit_bytes);
        Ok(by_start + released)
    }

    /// How many of `candidates` (condemned segments, oldest first) the retention holds let
    /// go, keeping at most `max_kept_bytes` on local disk; logs what they keep and what
    /// they had to give up.
    fn release_held(
        &self,
        candidates: &[Candidate],
        now_ms: i64,
        max_kept_bytes: Option<u64>,
    ) -> usize {
        let released: Released = self
            .retention_holds
            .release(candidates, now_ms, max_kept_bytes);
        if let Some(forced) = released.forced {
            let reason = match forced.by {
                ForcedBy::HoldExpired => "the hold's time bound passed",
                ForcedBy::ByteBound => {
                    "keeping them would exceed the bound on bytes held (log.local.hard.limit.bytes)"
                }
            };
            tracing::warn!(
                partition = %self.tp,
                from = forced.from,
                to = forced.to,
                reason,
                "retention deletes records a retention hold still needs (a table has not materialized them)"
            );
        }
        if released.kept > 0 {
            tracing::debug!(
                partition = %self.tp,
                segments = released.kept,
                bytes = released.kept_bytes,
                "retention held back for records a table has not materialized"
            );
        }
        released.count
    }

    /// Takes the first `count` segments out of the log (never the active one) and, with
    /// `advance_start`, moves the log start offset past them (a tiered log's start is
    /// where its remote part begins). Their files are still in place.
    fn detach_head(&self, inner: &mut Inner, count: usize, advance_start: bool) -> Vec<Segment> {
        let count = count.min(inner.segments.len().saturating_sub(1));
        let bases: Vec<i64> = inner.segments.keys().take(count).copied().collect();
        let doomed: Vec<Segment> = bases
            .iter()
            .filter_map(|base| inner.segments.remove(base))
            .collect();
        if advance_start && let Some(&first) = inner.segments.keys().next() {
            self.log_start.fetch_max(first, Ordering::AcqRel);
            self.prune_txn_index();
        }
        doomed
    }

    /// Renames the files of detached segments `*.deleted` and fsyncs the directory.
    fn delete_files(&self, doomed: Vec<Segment>) -> Result<Deleted, StorageError> {
        let mut deleted = Deleted::default();
        if doomed.is_empty() {
            return Ok(deleted);
        }
        for segment in &doomed {
            // The `.log` first: once it is renamed the segment is gone for recovery, which
            // removes indexes left without their `.log`.
            for file in segment.all_files() {
                let mut to = file.path().as_os_str().to_owned();
                to.push(DELETED_SUFFIX);
                let to = PathBuf::from(to);
                deleted.files.push(file.rename_pinned(&to)?);
            }
            deleted.segments += 1;
            deleted.bytes += segment.size;
            tracing::info!(
                dir = %self.dir.display(),
                base = segment.base_offset,
                bytes = segment.size,
                log_start = self.log_start_offset(),
                "deleted segment"
            );
        }
        io::sync_dir(&self.dir)?;
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests;

/// How many spans from the head `retention_ms` and `retention_bytes` condemn.
#[derive(Debug, Clone, Copy)]
struct Expired {
    by_time: usize,
    by_size: usize,
}

impl Expired {
    fn count(&self) -> usize {
        self.by_time.max(self.by_size)
    }
}

/// How many spans from the head `retention_ms` / `retention_bytes` condemn. Spans are
/// `(base, bytes, newest timestamp)`; `tail_bytes` are bytes after them that always stay.
fn expired_prefix(
    spans: &[(i64, u64, i64)],
    tail_bytes: u64,
    retention_ms: Option<u64>,
    retention_bytes: Option<u64>,
    now_ms: i64,
) -> Expired {
    let mut by_time = 0;
    if let Some(retention_ms) = retention_ms {
        let retention_ms = i64::try_from(retention_ms).unwrap_or(i64::MAX);
        by_time = spans
            .iter()
            .take_while(|(_, bytes, newest)| {
                *bytes > 0 && now_ms.saturating_sub(*newest) > retention_ms
            })
            .count();
    }
    let mut by_size = 0;
    if let Some(retention_bytes) = retention_bytes {
        let total: u64 = spans.iter().map(|s| s.1).sum::<u64>() + tail_bytes;
        let mut excess = total.saturating_sub(retention_bytes);
        for (_, bytes, _) in spans {
            if *bytes > excess {
                break;
            }
            excess -= bytes;
            by_size += 1;
        }
    }
    Expired { by_time, by_size }
}

//! The tiered side of a partition log ([`crate::remote`]): its attached remote part, what
//! the uploader takes from it, and reads below the first local segment.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use super::{Inner, Isolation, PartitionLog, ReadError, RegionRead};
use crate::error::StorageError;
use crate::io;
use crate::producer_state;
use crate::remote::RemoteLog;
use crate::segment::{INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX};

/// A closed, durable segment of a tiered log to upload ([`PartitionLog::upload_candidate`]).
#[derive(Debug)]
pub(crate) struct UploadCandidate {
    pub(crate) base_offset: i64,
    pub(crate) next_offset: i64,
    pub(crate) size: u64,
    pub(crate) max_timestamp: i64,
    pub(crate) offset_of_max_timestamp: i64,
    /// `.log`, `.index`, `.timeindex`: the open file and the bytes to upload.
    pub(crate) files: Vec<(&'static str, Arc<io::File>, u64)>,
    /// The producer snapshot at `next_offset`, if it is on disk.
    pub(crate) snapshot: Option<PathBuf>,
    /// The transactions whose abort markers are in the segment.
    pub(crate) aborted: Vec<producer_state::AbortedTxn>,
}

impl PartitionLog {
    /// The remote part of a tiered log, once attached.
    pub fn remote(&self) -> Option<Arc<RemoteLog>> {
        self.remote
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Attaches the remote part and settles the log start against it: raised to what the
    /// remote and local parts hold, or lowered to the remote start when the log start was
    /// only the first local segment's base (no checkpoint said otherwise).
    pub(crate) fn attach_remote(&self, remote: Arc<RemoteLog>) {
        let inner = self.lock();
        let local_start = inner.segments.keys().next().copied().unwrap_or(0);
        let manifest = remote.manifest();
        let floor = match (manifest.segments.first(), manifest.end()) {
            (Some(first), Some(end)) if end >= local_start => {
                manifest.log_start_offset.max(first.base_offset)
            }
            _ => local_start,
        };
        let current = self.log_start.load(Ordering::Acquire);
        if current < floor || (current == local_start && floor < current) {
            self.log_start.store(floor, Ordering::Release);
        }
        *self.remote.write().unwrap_or_else(PoisonError::into_inner) = Some(remote);
        drop(inner);
        tracing::debug!(partition = %self.tp, log_start = self.log_start_offset(), "attached remote log");
    }

    /// The oldest closed segment entirely durable whose base is at or above `after` (the
    /// end of what is uploaded), for the uploader.
    pub(crate) fn upload_candidate(&self, after: i64) -> Option<UploadCandidate> {
        let durable = self.durable_offset();
        let inner = self.lock();
        if inner.closed || inner.offline.is_some() {
            return None;
        }
        let closed = inner.segments.len().saturating_sub(1);
        let segment = inner
            .segments
            .values()
            .take(closed)
            .find(|s| s.base_offset >= after && s.size > 0)?;
        if segment.next_offset > durable {
            return None;
        }
        let snapshot = producer_state::snapshot_path(&self.dir, segment.next_offset);
        let aborted = self
            .txn_index
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .markers_in(segment.base_offset, segment.next_offset);
        Some(UploadCandidate {
            aborted,
            base_offset: segment.base_offset,
            next_offset: segment.next_offset,
            size: segment.size,
            max_timestamp: segment.max_timestamp,
            offset_of_max_timestamp: segment.offset_of_max_timestamp,
            files: vec![
                (LOG_SUFFIX, Arc::clone(&segment.log), segment.size),
                (
                    INDEX_SUFFIX,
                    Arc::clone(segment.offset_index.file()),
                    segment.offset_index.size_bytes(),
                ),
                (
                    TIME_INDEX_SUFFIX,
                    Arc::clone(segment.time_index.file()),
                    segment.time_index.size_bytes(),
                ),
            ],
            snapshot: io::exists(&snapshot).then_some(snapshot),
        })
    }

    /// Bytes of local segments not yet uploaded (all of them while the remote part is not
    /// attached).
    pub fn unuploaded_bytes(&self) -> u64 {
        let end = self
            .remote()
            .and_then(|r| r.uploaded_end())
            .unwrap_or(i64::MIN);
        Self::unuploaded(&self.lock(), end)
    }

    /// Bytes of the segments at or above `uploaded_end` (segments never straddle it: an
    /// uploaded segment ends where the next one starts). On the produce path of tiered
    /// logs, so a range lookup over the not-uploaded segments only.
    pub(super) fn unuploaded(inner: &Inner, uploaded_end: i64) -> u64 {
        inner
            .segments
            .range(uploaded_end..)
            .map(|(_, s)| s.size)
            .sum()
    }

    /// First offset held on local disk (below it, a tiered log reads from the remote part).
    pub fn local_start_offset(&self) -> i64 {
        let first = self.lock().segments.keys().next().copied();
        first.unwrap_or_else(|| self.log_end_offset())
    }

    /// The remote part, if `offset` is in it (at or above the log start, below the first
    /// local segment).
    pub(super) fn remote_for(&self, offset: i64) -> Option<Arc<RemoteLog>> {
        let remote = self.remote()?;
        let local_start = self.lock().segments.keys().next().copied()?;
        (offset < local_start && offset >= self.log_start.load(Ordering::Acquire)).then_some(remote)
    }

    pub(super) async fn read_region_remote(
        self: &Arc<Self>,
        remote: Arc<RemoteLog>,
        fetch_offset: i64,
        max_bytes: usize,
        isolation: Isolation,
    ) -> Result<RegionRead, ReadError> {
        let mut offset = fetch_offset;
        loop {
            let (log_start, log_end) = (self.log_start_offset(), self.log_end_offset());
            if fetch_offset < log_start || fetch_offset > log_end {
                return Err(ReadError::OffsetOutOfRange {
                    requested: fetch_offset,
                    log_start,
                    log_end,
                });
            }
            let last_stable_offset = self.last_stable_offset();
            let upper = match isolation {
                Isolation::Uncommitted => log_end,
                Isolation::Committed => last_stable_offset,
            };
            if offset >= upper {
                return Ok(RegionRead {
                    region: None,
                    next_offset: None,
                    high_watermark: log_end,
                    last_stable_offset,
                    log_start_offset: log_start,
                });
            }
            let Some((mut reader, next)) = remote.reader_at(offset).await? else {
                break;
            };
            let region = io::offload(move || -> Result<_, StorageError> {
                if upper < log_end {
                    reader.cap_at(upper)?;
                }
                match reader.find_batch(offset)? {
                    Some(batch) => {
                        let (region, next_offset) = reader.region_from(&batch, max_bytes)?;
                        let region = if region.is_cached() {
                            region
                        } else {
                            region.load()?
                        };
                        Ok(Some((region, next_offset)))
                    }
                    None => Ok(None),
                }
            })
            .await?;
            if let Some((region, next_offset)) = region {
                return Ok(RegionRead {
                    region: Some(region),
                    next_offset: Some(next_offset),
                    high_watermark: log_end,
                    last_stable_offset,
                    log_start_offset: log_start,
                });
            }
            offset = next;
            if self.remote_for(offset).is_none() {
                break;
            }
        }
        self.read_region_local(offset, max_bytes, isolation).await
    }
}

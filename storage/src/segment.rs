//! One segment of a partition log: `{base_offset:020}.log` (record batches exactly as
//! appended, base offsets assigned), `.index` and `.timeindex`.
//!
//! Durability protocol: batches are written to the page cache at the end of the `.log`; the
//! segment's `size` only moves past a batch once all of it is written, and readers never look
//! past `size`, so they never see a partial batch. The `.log` is fdatasync'ed by
//! `PartitionLog::sync` (group commit) and completely, with both indexes, when the segment is
//! rolled. Index files are derived data: recovery rebuilds them from the `.log`.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use floe_protocol::record_batch::{self, BatchHeader, HEADER_SIZE};

use crate::config::LogConfig;
use crate::error::{Corruption, IoOp, StorageError};
use crate::index_file::IndexEntry;
use crate::io;
use crate::offset_index::{OffsetEntry, OffsetIndex, OffsetIndexReader};
use crate::time_index::{TimeIndex, TimeIndexReader};

/// Suffix of segment data files.
pub const LOG_SUFFIX: &str = ".log";
/// Suffix of offset index files.
pub const INDEX_SUFFIX: &str = ".index";
/// Suffix of time index files.
pub const TIME_INDEX_SUFFIX: &str = ".timeindex";

/// `<dir>/<base_offset:020><suffix>`, Kafka's segment file naming.
pub fn segment_file(dir: &Path, base_offset: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}{suffix}"))
}

/// Parses `<20 digits><suffix>` back into the base offset.
pub fn parse_segment_file(name: &str, suffix: &str) -> Option<i64> {
    let digits = name.strip_suffix(suffix)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// No timestamp seen yet.
pub(crate) const NO_TIMESTAMP: i64 = -1;

#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) base_offset: i64,
    pub(crate) log: Arc<io::File>,
    /// Bytes of complete batches in the `.log`.
    pub(crate) size: u64,
    /// Offset after the last batch (`base_offset` when empty).
    pub(crate) next_offset: i64,
    pub(crate) offset_index: OffsetIndex,
    pub(crate) time_index: TimeIndex,
    /// Bytes appended since the last index entry.
    pub(crate) bytes_since_index: u64,
    /// Largest batch `maxTimestamp` in the segment and the last offset of the first batch
    /// that carries it.
    pub(crate) max_timestamp: i64,
    pub(crate) offset_of_max_timestamp: i64,
    /// Time the segment's age is measured from for `segment.ms`: the wall clock of its first
    /// append, or after a restart the `maxTimestamp` of its first batch.
    pub(crate) roll_base_ms: Option<i64>,
}

/// A batch found in a segment file: its header and where it is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LocatedBatch {
    pub(crate) header: BatchHeader,
    pub(crate) position: u64,
}

impl LocatedBatch {
    pub(crate) fn end(&self) -> u64 {
        self.position + self.header.total_size() as u64
    }
}

impl Segment {
    /// Creates an empty segment, replacing any files of the same name.
    pub(crate) fn create(
        io: &io::Io,
        dir: &Path,
        base_offset: i64,
    ) -> Result<Segment, StorageError> {
        let log = io::File::create(io, &segment_file(dir, base_offset, LOG_SUFFIX))?;
        log.set_len(0)?;
        let (mut offset_index, _) =
            OffsetIndex::open(io, &segment_file(dir, base_offset, INDEX_SUFFIX))?;
        offset_index.clear()?;
        let (mut time_index, _) =
            TimeIndex::open(io, &segment_file(dir, base_offset, TIME_INDEX_SUFFIX))?;
        time_index.clear()?;
        Ok(Segment {
            base_offset,
            log: Arc::new(log),
            size: 0,
            next_offset: base_offset,
            offset_index,
            time_index,
            bytes_since_index: 0,
            max_timestamp: NO_TIMESTAMP,
            offset_of_max_timestamp: base_offset,
            roll_base_ms: None,
        })
    }

    /// Opens the files of an existing segment without reading the `.log`; the caller (recovery)
    /// establishes `size`, `next_offset` and the timestamp fields.
    pub(crate) fn open_files(
        io: &io::Io,
        dir: &Path,
        base_offset: i64,
    ) -> Result<(Segment, IndexShape), StorageError> {
        let log = io::File::open(io, &segment_file(dir, base_offset, LOG_SUFFIX))?;
        let size = log.size()?;
        let index_path = segment_file(dir, base_offset, INDEX_SUFFIX);
        let time_path = segment_file(dir, base_offset, TIME_INDEX_SUFFIX);
        let indexes_existed = io::exists(&index_path) && io::exists(&time_path);
        let (offset_index, offset_aligned) = OffsetIndex::open(io, &index_path)?;
        let (time_index, time_aligned) = TimeIndex::open(io, &time_path)?;
        let segment = Segment {
            base_offset,
            log: Arc::new(log),
            size,
            next_offset: base_offset,
            offset_index,
            time_index,
            bytes_since_index: 0,
            max_timestamp: NO_TIMESTAMP,
            offset_of_max_timestamp: base_offset,
            roll_base_ms: None,
        };
        Ok((
            segment,
            IndexShape {
                existed: indexes_existed,
                aligned: offset_aligned && time_aligned,
            },
        ))
    }

    /// Whether appending `len` more bytes ending at offset `last_offset` needs a new segment.
    pub(crate) fn should_roll(
        &self,
        config: &LogConfig,
        len: usize,
        last_offset: i64,
        now_ms: i64,
    ) -> bool {
        if self.size == 0 {
            return false;
        }
        // Positions in the offset index are u32 and Kafka caps segments at i32::MAX bytes.
        let max_size = config.segment_bytes.min(i32::MAX as u64);
        let too_big = self.size + len as u64 > max_size;
        let too_old = self.roll_base_ms.is_some_and(|t| {
            now_ms.saturating_sub(t) >= i64::try_from(config.segment_ms).unwrap_or(i64::MAX)
        });
        let index_full = self.offset_index.size_bytes() + OffsetEntry::SIZE as u64
            > u64::from(config.segment_index_bytes)
            || self.time_index.size_bytes() + crate::time_index::TimeEntry::SIZE as u64
                > u64::from(config.segment_index_bytes);
        let offset_overflow = last_offset.saturating_sub(self.base_offset) > i64::from(i32::MAX);
        too_big || too_old || index_full || offset_overflow
    }

    /// Writes already offset-assigned batches at the end of the `.log` and indexes them.
    /// `batches` are the headers (with assigned offsets) and ranges within `bytes`. The
    /// buffer itself is handed to the I/O backend (no copy).
    pub(crate) fn append(
        &mut self,
        bytes: Bytes,
        batches: &[(BatchHeader, Range<usize>)],
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let len = bytes.len();
        let start = self.size;
        match self.log.write_owned_at(start, bytes) {
            Ok(()) => self.appended(start, len, batches, config, now_ms),
            Err(e) => Err(self.refused(e)),
        }
    }

    /// Accounts for `len` bytes of batches written at `start`, the end of the `.log`:
    /// indexes them and moves the end.
    pub(crate) fn appended(
        &mut self,
        start: u64,
        len: usize,
        batches: &[(BatchHeader, Range<usize>)],
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        for (header, range) in batches {
            self.index_batch(
                &LocatedBatch {
                    header: *header,
                    position: start + range.start as u64,
                },
                config,
            )?;
        }
        if self.roll_base_ms.is_none() {
            self.roll_base_ms = Some(now_ms);
        }
        self.size = start + len as u64;
        Ok(())
    }

    /// The error for a failed write at the end of the `.log`: a full disk refuses the write
    /// ([`StorageError::WriteRefused`], what reached the file is cut); anything else as is.
    pub(crate) fn refused(&self, e: StorageError) -> StorageError {
        match e {
            StorageError::Io {
                op: IoOp::Write,
                path,
                source,
            } if is_out_of_space(&source) => {
                // Cut what part of the write reached the file; if even that fails, the
                // bytes beyond `size` are overwritten by the next append or cut as a
                // torn tail by recovery, and never served (readers stop at `size`).
                if let Err(cut) = self.log.set_len(self.size) {
                    tracing::debug!(%cut, "cannot cut a refused write");
                }
                StorageError::WriteRefused { path, source }
            }
            other => other,
        }
    }

    /// Accounts for one batch at the end of the segment (appended or found by a scan): index
    /// entries every `index_interval_bytes`, largest timestamp, next offset.
    pub(crate) fn index_batch(
        &mut self,
        batch: &LocatedBatch,
        config: &LogConfig,
    ) -> Result<(), StorageError> {
        let h = &batch.header;
        if h.max_timestamp > self.max_timestamp {
            self.max_timestamp = h.max_timestamp;
            self.offset_of_max_timestamp = h.last_offset();
        }
        if self.bytes_since_index > u64::from(config.index_interval_bytes) {
            let relative_offset =
                u32::try_from(h.last_offset().saturating_sub(self.base_offset)).ok();
            let position = u32::try_from(batch.position).ok();
            if let (Some(relative_offset), Some(position)) = (relative_offset, position) {
                self.offset_index.append(OffsetEntry {
                    relative_offset,
                    position,
                })?;
                self.time_index.maybe_append(
                    self.base_offset,
                    self.max_timestamp,
                    self.offset_of_max_timestamp,
                )?;
            }
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += h.total_size() as u64;
        self.next_offset = h.next_offset();
        Ok(())
    }

    /// Called when the segment stops being the active one (roll or close): records the
    /// largest timestamp as the final time-index entry, as Kafka does.
    pub(crate) fn seal_time_index(&mut self) -> Result<(), StorageError> {
        if self.max_timestamp != NO_TIMESTAMP {
            self.time_index.maybe_append(
                self.base_offset,
                self.max_timestamp,
                self.offset_of_max_timestamp,
            )?;
        }
        Ok(())
    }

    /// Its newest record timestamp, or its file's modification time if it has none (what
    /// time retention measures).
    pub(crate) fn newest_ms(&self) -> Result<i64, StorageError> {
        match self.max_timestamp {
            NO_TIMESTAMP => self.log.modified_ms(),
            ts => Ok(ts),
        }
    }

    /// Files to fdatasync to make the whole segment durable.
    pub(crate) fn all_files(&self) -> [Arc<io::File>; 3] {
        [
            Arc::clone(&self.log),
            Arc::clone(self.offset_index.file()),
            Arc::clone(self.time_index.file()),
        ]
    }

    /// A snapshot for reading without the partition lock.
    pub(crate) fn reader(&self) -> SegmentReader {
        SegmentReader {
            base_offset: self.base_offset,
            log: Arc::clone(&self.log),
            size: self.size,
            offset_index: self.offset_index.reader(),
            time_index: self.time_index.reader(),
            max_timestamp: self.max_timestamp,
            offset_of_max_timestamp: self.offset_of_max_timestamp,
            next_offset: self.next_offset,
        }
    }
}

/// What recovery found about a segment's index files when opening it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IndexShape {
    /// Both index files existed.
    pub(crate) existed: bool,
    /// Both were a whole number of entries long.
    pub(crate) aligned: bool,
}

/// Reads the batch header at `position` of a `.log` whose valid part is `size` bytes.
/// `Ok(None)` at `size`; an error if the header or the batch it announces does not fit.
pub(crate) fn read_batch_header(
    log: &io::File,
    position: u64,
    size: u64,
) -> Result<Option<LocatedBatch>, StorageError> {
    if position >= size {
        return Ok(None);
    }
    let corrupt = |kind| StorageError::Corrupt {
        path: log.path().to_owned(),
        position,
        kind,
    };
    if size - position < HEADER_SIZE as u64 {
        return Err(corrupt(Corruption::Batch(
            record_batch::BatchError::Truncated {
                position: 0,
                needed: HEADER_SIZE,
                available: (size - position) as usize,
            },
        )));
    }
    let mut buf = [0u8; HEADER_SIZE];
    log.read_exact_at(position, &mut buf)?;
    let header = BatchHeader::parse(&buf).map_err(|e| corrupt(e.into()))?;
    let batch = LocatedBatch { header, position };
    if batch.end() > size {
        return Err(corrupt(Corruption::Batch(
            record_batch::BatchError::Truncated {
                position: 0,
                needed: header.total_size(),
                available: (size - position) as usize,
            },
        )));
    }
    Ok(Some(batch))
}

/// A consistent, lock-free view of a segment: everything below `size` is complete batches.
#[derive(Debug, Clone)]
pub(crate) struct SegmentReader {
    pub(crate) base_offset: i64,
    pub(crate) log: Arc<io::File>,
    pub(crate) size: u64,
    pub(crate) offset_index: OffsetIndexReader,
    pub(crate) time_index: TimeIndexReader,
    pub(crate) max_timestamp: i64,
    pub(crate) offset_of_max_timestamp: i64,
    /// Offset after the last batch within `size`.
    pub(crate) next_offset: i64,
}

impl SegmentReader {
    /// Ends the reader before the batch holding `upper`: a read_committed read stops at the
    /// last stable offset (a batch boundary).
    pub(crate) fn cap_at(&mut self, upper: i64) -> Result<(), StorageError> {
        if let Some(batch) = self.find_batch(upper)?
            && batch.position < self.size
        {
            self.size = batch.position;
            self.next_offset = batch.header.base_offset;
        }
        Ok(())
    }

    /// The first batch whose last offset is `>= target`, found through the offset index and
    /// a forward scan of batch headers.
    pub(crate) fn find_batch(&self, target: i64) -> Result<Option<LocatedBatch>, StorageError> {
        let start = self.offset_index.lookup(self.base_offset, target)?;
        let position = start.map_or(0, |(_, p)| p);
        if let Some((indexed_offset, p)) = start {
            // The index says the batch at `p` ends at `indexed_offset`. If the bytes disagree,
            // the index is stale (it is rebuilt on the next recovery); scan from the start.
            let first = read_batch_header(&self.log, p, self.size);
            if !matches!(&first, Ok(Some(b)) if b.header.last_offset() == indexed_offset) {
                tracing::warn!(
                    file = %self.log.path().display(),
                    position = p,
                    "offset index entry does not match the log; scanning the segment"
                );
                return self.scan_from(0, target);
            }
        }
        self.scan_from(position, target)
    }

    fn scan_from(
        &self,
        mut position: u64,
        target: i64,
    ) -> Result<Option<LocatedBatch>, StorageError> {
        while let Some(batch) = read_batch_header(&self.log, position, self.size)? {
            if batch.header.last_offset() >= target {
                return Ok(Some(batch));
            }
            position = batch.end();
        }
        Ok(None)
    }

    /// Whole batches from `first` on, at most `max_bytes` of them but always `first` itself.
    ///
    /// One read into one buffer, which becomes the result without a copy: the span
    /// `max(first batch, max_bytes)` (bounded by the segment's size) is read at once, the batch
    /// headers are walked in memory, and the buffer is cut after the last whole batch.
    pub(crate) fn read_from(
        &self,
        first: &LocatedBatch,
        max_bytes: usize,
    ) -> Result<Bytes, StorageError> {
        let start = first.position;
        let first_len = first.header.total_size() as u64;
        let span = (max_bytes as u64).max(first_len).min(self.size - start);
        let mut bytes = Bytes::from(self.log.read_vec(start, span as usize)?);
        let mut end = first_len;
        while let Some(rest) = bytes.get(end as usize..) {
            let Ok(header) = BatchHeader::parse(rest) else {
                break; // a partial header at the end of the span
            };
            let next_end = end + header.total_size() as u64;
            if header.total_size() < HEADER_SIZE || next_end > span {
                break;
            }
            end = next_end;
        }
        bytes.truncate(end as usize);
        Ok(bytes)
    }

    /// Whole batches from `first` on, at most `max_bytes` of them but always `first` itself,
    /// as a range of the `.log` (the same batches [`SegmentReader::read_from`] returns), found
    /// without reading the records: the offset index gives a batch boundary at or before the
    /// limit and batch headers are walked from there. Also returns the offset after the
    /// range's last batch.
    pub(crate) fn region_from(
        &self,
        first: &LocatedBatch,
        max_bytes: usize,
    ) -> Result<(io::FileRegion, i64), StorageError> {
        let start = first.position;
        let first_end = start + first.header.total_size() as u64;
        let limit = start
            .saturating_add(max_bytes as u64)
            .max(first_end)
            .min(self.size);
        // The segment ends at a batch boundary (appends write whole batches).
        let (end, next_offset) = if limit == self.size {
            (self.size, self.next_offset)
        } else {
            // An index entry names a batch start (and that batch's last offset): trusted
            // only if the bytes agree, as in `find_batch`.
            let indexed = self
                .offset_index
                .floor(|e| u64::from(e.position) <= limit)?
                .filter(|e| u64::from(e.position) > first_end);
            let mut end = first_end;
            let mut next_offset = first.header.last_offset() + 1;
            if let Some(entry) = indexed {
                let position = u64::from(entry.position);
                let last = self.base_offset + i64::from(entry.relative_offset);
                if let Ok(Some(b)) = read_batch_header(&self.log, position, self.size)
                    && b.header.last_offset() == last
                {
                    end = position;
                    next_offset = b.header.base_offset;
                }
            }
            while let Some(batch) = read_batch_header(&self.log, end, self.size)? {
                if batch.end() > limit {
                    break;
                }
                end = batch.end();
                next_offset = batch.header.last_offset() + 1;
            }
            (end, next_offset)
        };
        Ok((self.log.region(start, (end - start) as usize)?, next_offset))
    }

    /// The whole bytes of one batch.
    pub(crate) fn batch_bytes(&self, batch: &LocatedBatch) -> Result<Vec<u8>, StorageError> {
        self.log.read_vec(batch.position, batch.header.total_size())
    }

    /// The first record with timestamp `>= target` in this segment, as `(offset, timestamp)`.
    pub(crate) fn offset_for_timestamp(
        &self,
        target: i64,
    ) -> Result<Option<(i64, i64)>, StorageError> {
        let from = self.time_index.lookup(self.base_offset, target)?;
        let mut next = self.find_batch(from.unwrap_or(self.base_offset))?;
        while let Some(batch) = next {
            if batch.header.max_timestamp >= target {
                let bytes = self.batch_bytes(&batch)?;
                let found =
                    record_batch::first_record_at_or_after(&bytes, target).map_err(|e| {
                        StorageError::Corrupt {
                            path: self.log.path().to_owned(),
                            position: batch.position,
                            kind: e.into(),
                        }
                    })?;
                if found.is_some() {
                    return Ok(found);
                }
            }
            next = read_batch_header(&self.log, batch.end(), self.size)?;
        }
        Ok(None)
    }

    /// The record carrying this segment's largest timestamp, as `(offset, timestamp)`.
    pub(crate) fn max_timestamp_record(&self) -> Result<Option<(i64, i64)>, StorageError> {
        let Some(batch) = self.find_batch(self.offset_of_max_timestamp)? else {
            return Ok(None);
        };
        let bytes = self.batch_bytes(&batch)?;
        record_batch::max_timestamp_record(&bytes).map_err(|e| StorageError::Corrupt {
            path: self.log.path().to_owned(),
            position: batch.position,
            kind: e.into(),
        })
    }
}

/// A write refused for lack of space (the file system is full, or a quota is reached):
/// nothing about the file's durable state is in doubt, unlike an I/O error.
fn is_out_of_space(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull || e.kind() == std::io::ErrorKind::QuotaExceeded
}

//! A read-only view of Kafka record batches (magic 2) as they travel on the produce path and
//! sit in segment files, plus the two in-place rewrites the broker needs (base offset and
//! partition leader epoch, both outside the CRC).
//!
//! Batch layout (all big endian), 61 header bytes followed by the records:
//!
//! | offset | field                 | type |
//! |-------:|-----------------------|------|
//! | 0      | baseOffset            | i64  |
//! | 8      | batchLength           | i32 (bytes after this field) |
//! | 12     | partitionLeaderEpoch  | i32  |
//! | 16     | magic                 | i8   |
//! | 17     | crc (CRC32C of 21..)  | u32  |
//! | 21     | attributes            | i16  |
//! | 23     | lastOffsetDelta       | i32  |
//! | 27     | baseTimestamp         | i64  |
//! | 35     | maxTimestamp          | i64  |
//! | 43     | producerId            | i64  |
//! | 51     | producerEpoch         | i16  |
//! | 53     | baseSequence          | i32  |
//! | 57     | recordsCount          | i32  |
//! | 61     | records               |      |
//!
//! Nothing here panics on any input: every length read from the bytes is checked against the
//! buffer before it is used, and nothing is preallocated from a length read off the wire.

use std::borrow::Cow;
use std::ops::Range;

use crate::compression::{self, DecompressError};

/// Size of a magic-2 batch header, up to and including `recordsCount`.
pub const HEADER_SIZE: usize = 61;
/// Bytes in front of the `batchLength` count: `baseOffset` and `batchLength` itself.
pub const LOG_OVERHEAD: usize = 12;
/// The only record format Floe accepts.
pub const MAGIC_V2: i8 = 2;
/// Smallest legal `batchLength`: a header with no records.
pub const MIN_BATCH_LENGTH: i32 = (HEADER_SIZE - LOG_OVERHEAD) as i32;
/// `producerId` of batches from non-idempotent producers.
pub const NO_PRODUCER_ID: i64 = -1;
/// `baseSequence` of batches without sequence numbers.
pub const NO_SEQUENCE: i32 = -1;

/// Where the CRC-covered part of a batch starts (the attributes field).
const CRC_START: usize = 21;
const MAGIC_OFFSET: usize = 16;
const PARTITION_LEADER_EPOCH_OFFSET: usize = 12;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 1 << 3;
const TRANSACTIONAL_BIT: i16 = 1 << 4;
const CONTROL_BIT: i16 = 1 << 5;

/// Why a buffer is not a valid sequence of magic-2 record batches.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The buffer ends before the bytes a header or length field announces.
    #[error("record batch truncated at byte {position}: need {needed} bytes, {available} left")]
    Truncated {
        /// Position in the buffer where the incomplete piece starts.
        position: usize,
        /// Bytes the piece needs.
        needed: usize,
        /// Bytes actually left in the buffer from `position`.
        available: usize,
    },
    /// `batchLength` is smaller than a batch header.
    #[error("record batch at byte {position} has invalid length {length}")]
    BadLength {
        /// Position of the batch in the buffer.
        position: usize,
        /// The announced `batchLength`.
        length: i32,
    },
    /// The buffer holds no batch at all.
    #[error("no record batch in the buffer")]
    Empty,
    /// Magic byte other than 2 (legacy message sets are not supported).
    #[error("unsupported record batch magic {0}")]
    UnsupportedMagic(i8),
    /// The stored CRC does not match the CRC32C of the batch contents.
    #[error("record batch CRC mismatch: stored {expected:#010x}, computed {actual:#010x}")]
    CrcMismatch {
        /// CRC stored in the batch header.
        expected: u32,
        /// CRC computed over the batch.
        actual: u32,
    },
    /// `recordsCount` is not positive or disagrees with `lastOffsetDelta`.
    #[error("record batch has {records_count} records but lastOffsetDelta {last_offset_delta}")]
    BadRecordCount {
        /// The announced record count.
        records_count: i32,
        /// The announced last offset delta.
        last_offset_delta: i32,
    },
    /// Compression codec bits 5, 6 or 7.
    #[error("unknown compression codec {0}")]
    UnknownCompression(u8),
    /// The records of an uncompressed batch do not parse as exactly `recordsCount` records.
    #[error("malformed record {index} in batch: {reason}")]
    MalformedRecord {
        /// Zero-based index of the record in the batch.
        index: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A compressed batch could not be decompressed, or would decompress past the limit of
    /// [`compression::decompressed_limit`].
    #[error("failed to decompress {codec:?} record batch")]
    Decompress {
        /// Codec of the batch.
        codec: Compression,
        /// Error reported by the decompressor.
        #[source]
        source: DecompressError,
    },
}

/// Compression codec of a batch (attribute bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Uncompressed records.
    None,
    /// gzip.
    Gzip,
    /// Snappy (xerial framing or raw).
    Snappy,
    /// LZ4 frame format.
    Lz4,
    /// Zstandard.
    Zstd,
}

impl Compression {
    fn from_bits(bits: u8) -> Result<Self, BatchError> {
        Ok(match bits {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            other => return Err(BatchError::UnknownCompression(other)),
        })
    }
}

/// The fixed 61-byte header of a magic-2 batch, decoded field by field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Bytes of the batch after the `batchLength` field.
    pub batch_length: i32,
    /// Leader epoch of the partition leader that appended the batch.
    pub partition_leader_epoch: i32,
    /// Record format version (2).
    pub magic: i8,
    /// CRC32C of the bytes from `attributes` to the end of the batch.
    pub crc: u32,
    /// Compression, timestamp type, transactional and control flags.
    pub attributes: i16,
    /// `last offset - base offset`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record (base for the record timestamp deltas).
    pub base_timestamp: i64,
    /// Largest record timestamp in the batch.
    pub max_timestamp: i64,
    /// Idempotent producer id, or -1.
    pub producer_id: i64,
    /// Idempotent producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence number of the first record, or -1.
    pub base_sequence: i32,
    /// Number of records in the batch.
    pub records_count: i32,
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

impl BatchHeader {
    /// Decodes the header at the front of `buf`. Needs at least [`HEADER_SIZE`] bytes and a
    /// `batchLength` of at least [`MIN_BATCH_LENGTH`]; checks nothing else (see
    /// [`validate_batch`] for the full produce-path check).
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        let Some(h) = buf.get(..HEADER_SIZE) else {
            return Err(BatchError::Truncated {
                position: 0,
                needed: HEADER_SIZE,
                available: buf.len(),
            });
        };
        let header = BatchHeader {
            base_offset: be_i64(h, 0),
            batch_length: be_i32(h, 8),
            partition_leader_epoch: be_i32(h, 12),
            magic: h[MAGIC_OFFSET] as i8,
            crc: be_i32(h, 17) as u32,
            attributes: be_i16(h, 21),
            last_offset_delta: be_i32(h, 23),
            base_timestamp: be_i64(h, 27),
            max_timestamp: be_i64(h, 35),
            producer_id: be_i64(h, 43),
            producer_epoch: be_i16(h, 51),
            base_sequence: be_i32(h, 53),
            records_count: be_i32(h, 57),
        };
        if header.batch_length < MIN_BATCH_LENGTH {
            return Err(BatchError::BadLength {
                position: 0,
                length: header.batch_length,
            });
        }
        Ok(header)
    }

    /// Offset of the last record (`baseOffset + lastOffsetDelta`).
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .wrapping_add(i64::from(self.last_offset_delta))
    }

    /// Offset right after the batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().wrapping_add(1)
    }

    /// Size of the whole batch in bytes, `batchLength + 12`. [`BatchHeader::parse`] guarantees
    /// `batchLength` is positive.
    pub fn total_size(&self) -> usize {
        self.batch_length.max(0) as usize + LOG_OVERHEAD
    }

    /// Compression codec, or [`BatchError::UnknownCompression`] for codec bits 5-7.
    pub fn compression(&self) -> Result<Compression, BatchError> {
        Compression::from_bits((self.attributes & COMPRESSION_MASK) as u8)
    }

    /// Whether record timestamps are log-append times (attribute bit 3); then every record's
    /// timestamp is the batch's `maxTimestamp`.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_BIT != 0
    }

    /// Whether the batch belongs to a transaction (attribute bit 4).
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    /// Whether the batch is a control batch, i.e. a transaction marker (attribute bit 5).
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    /// Whether the batch comes from an idempotent or transactional producer.
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }

    /// Sequence number of the last record. Sequences wrap from `i32::MAX` to 0, as in Kafka;
    /// a batch without sequences (`baseSequence == -1`) has last sequence -1.
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence == NO_SEQUENCE {
            return NO_SEQUENCE;
        }
        increment_sequence(self.base_sequence, self.last_offset_delta.max(0))
    }
}

/// `sequence + increment`, wrapping past `i32::MAX` to 0 the way Kafka's producers do.
pub fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    if sequence > i32::MAX - increment {
        increment - (i32::MAX - sequence) - 1
    } else {
        sequence + increment
    }
}

/// Iterator over the batches of a buffer, checking only the framing: each item is a parsed
/// header and the byte range of the whole batch. After the first error it yields nothing more.
/// A buffer that ends in the middle of a batch yields [`BatchError::Truncated`] for that batch.
#[derive(Debug, Clone)]
pub struct BatchIter<'a> {
    buf: &'a [u8],
    position: usize,
    failed: bool,
}

impl<'a> BatchIter<'a> {
    /// Position of the next batch in the buffer (after iteration: the end of the last whole
    /// batch returned, which is where a torn tail starts).
    pub fn position(&self) -> usize {
        self.position
    }
}

impl Iterator for BatchIter<'_> {
    type Item = Result<(BatchHeader, Range<usize>), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.position >= self.buf.len() {
            return None;
        }
        let start = self.position;
        let rest = &self.buf[start..];
        let result = match BatchHeader::parse(rest) {
            Ok(header) if header.total_size() <= rest.len() => {
                let range = start..start + header.total_size();
                self.position = range.end;
                Ok((header, range))
            }
            Ok(header) => Err(BatchError::Truncated {
                position: start,
                needed: header.total_size(),
                available: rest.len(),
            }),
            Err(e) => Err(with_position(e, start)),
        };
        if result.is_err() {
            self.failed = true;
        }
        Some(result)
    }
}

/// Iterates over the concatenated batches in `buf` (a produce request's `records`, or the
/// contents of a segment file), checking framing only.
pub fn iter_batches(buf: &[u8]) -> BatchIter<'_> {
    BatchIter {
        buf,
        position: 0,
        failed: false,
    }
}

/// Adds the batch's position in a larger buffer to an error found while looking at it alone.
fn with_position(error: BatchError, base: usize) -> BatchError {
    match error {
        BatchError::Truncated {
            position,
            needed,
            available,
        } => BatchError::Truncated {
            position: position + base,
            needed,
            available,
        },
        BatchError::BadLength { position, length } => BatchError::BadLength {
            position: position + base,
            length,
        },
        other => other,
    }
}

/// The produce-path check of a partition's `records` bytes: one or more concatenated batches,
/// each with consistent lengths, magic 2, a matching CRC32C, `recordsCount >= 1` and equal to
/// `lastOffsetDelta + 1`, a known codec, and exactly `recordsCount` well-formed records
/// filling the batch (compressed batches are decompressed, bounded, to count them). Returns
/// the headers in order.
pub fn validate_batches(buf: &[u8]) -> Result<Vec<BatchHeader>, BatchError> {
    if buf.is_empty() {
        return Err(BatchError::Empty);
    }
    let mut headers = Vec::new();
    for item in iter_batches(buf) {
        let (_, range) = item?;
        headers
            .push(validate_batch(&buf[range.clone()]).map_err(|e| with_position(e, range.start))?);
    }
    Ok(headers)
}

/// Checks one whole batch (`batch` must be exactly the batch's bytes, as yielded by
/// [`iter_batches`]). See [`validate_batches`] for what is checked.
pub fn validate_batch(batch: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(batch)?;
    check_crc(batch, &header)?;
    if header.records_count < 1
        || header.last_offset_delta < 0
        || i64::from(header.records_count) != i64::from(header.last_offset_delta) + 1
    {
        return Err(BatchError::BadRecordCount {
            records_count: header.records_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    // Compressed batches are decompressed (bounded) and counted too, as Kafka's log
    // validator does: a batch whose recordsCount disagrees with its content would otherwise
    // be acknowledged, and everything reading it later (fetching clients, tableflow) would
    // trust a count that is not true.
    let records = decompressed_records(batch, &header)?;
    let mut count = 0usize;
    for record in RecordIter::new(&records) {
        let record = record?;
        if i64::from(record.offset_delta) != count as i64 {
            return Err(BatchError::MalformedRecord {
                index: count,
                reason: "offset delta out of order",
            });
        }
        count += 1;
        if count > header.records_count as usize {
            break;
        }
    }
    if count != header.records_count as usize {
        return Err(BatchError::MalformedRecord {
            index: count,
            reason: "record count differs from recordsCount",
        });
    }
    Ok(header)
}

/// Checks only what protects a stored batch against damage: magic 2 and the CRC32C of its
/// contents (`batch` must be exactly the batch's bytes). Cheaper than [`validate_batch`],
/// which also decompresses; used by the storage scrubber on data at rest.
pub fn check_crc(batch: &[u8], header: &BatchHeader) -> Result<(), BatchError> {
    if header.total_size() != batch.len() {
        return Err(BatchError::Truncated {
            position: 0,
            needed: header.total_size(),
            available: batch.len(),
        });
    }
    if header.magic != MAGIC_V2 {
        return Err(BatchError::UnsupportedMagic(header.magic));
    }
    let actual = crc32c::crc32c(&batch[CRC_START..]);
    if actual != header.crc {
        return Err(BatchError::CrcMismatch {
            expected: header.crc,
            actual,
        });
    }
    Ok(())
}

fn put_at(batch: &mut [u8], at: usize, bytes: &[u8]) -> Result<(), BatchError> {
    match batch.get_mut(at..at + bytes.len()) {
        Some(dst) => {
            dst.copy_from_slice(bytes);
            Ok(())
        }
        None => Err(BatchError::Truncated {
            position: 0,
            needed: at + bytes.len(),
            available: batch.len(),
        }),
    }
}

/// Rewrites `baseOffset` of the batch at the front of `batch`. The field is outside the CRC,
/// so the batch stays valid. Fails only if `batch` is shorter than 8 bytes.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) -> Result<(), BatchError> {
    put_at(batch, 0, &base_offset.to_be_bytes())
}

/// Rewrites `partitionLeaderEpoch` of the batch at the front of `batch` (outside the CRC).
/// Fails only if `batch` is shorter than 16 bytes.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) -> Result<(), BatchError> {
    put_at(batch, PARTITION_LEADER_EPOCH_OFFSET, &epoch.to_be_bytes())
}

/// The fields of one record that offset and timestamp searches need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordInfo {
    /// Record attributes (unused by Kafka today).
    pub attributes: i8,
    /// Timestamp minus the batch's `baseTimestamp`.
    pub timestamp_delta: i64,
    /// Offset minus the batch's `baseOffset`.
    pub offset_delta: i32,
    /// The key is not null (compacted topics refuse records without one).
    pub has_key: bool,
    /// The value is null (a tombstone on a compacted topic).
    pub null_value: bool,
}

/// Walks the records of an uncompressed record section, parsing each one completely (key,
/// value and headers), and stops with an error at the first malformed one.
struct RecordIter<'a> {
    buf: &'a [u8],
    index: usize,
    failed: bool,
}

impl<'a> RecordIter<'a> {
    fn new(buf: &'a [u8]) -> Self {
        RecordIter {
            buf,
            index: 0,
            failed: false,
        }
    }
}

impl Iterator for RecordIter<'_> {
    type Item = Result<RecordInfo, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.buf.is_empty() {
            return None;
        }
        let index = self.index;
        let fail = |reason| BatchError::MalformedRecord { index, reason };
        let result = (|| {
            let mut cursor = Cursor { buf: self.buf };
            let length = cursor.varint().ok_or(fail("bad record length"))?;
            let length = usize::try_from(length).map_err(|_| fail("negative record length"))?;
            let body = cursor
                .take(length)
                .ok_or(fail("record overruns the batch"))?;
            let rest = cursor.buf;
            let info = parse_record_body(body).ok_or(fail("malformed record body"))?;
            Ok((info, rest))
        })();
        self.index += 1;
        match result {
            Ok((info, rest)) => {
                self.buf = rest;
                Some(Ok(info))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Parses a record body (everything after its length) and requires it to be consumed exactly.
fn parse_record_body(body: &[u8]) -> Option<RecordInfo> {
    let mut c = Cursor { buf: body };
    let attributes = c.take(1)?[0] as i8;
    let timestamp_delta = c.varlong()?;
    let offset_delta = c.varint()?;
    let has_key = c.nullable_bytes()?;
    let null_value = !c.nullable_bytes()?;
    let headers = c.varint()?;
    if headers < 0 {
        return None;
    }
    for _ in 0..headers {
        let key_len = usize::try_from(c.varint()?).ok()?;
        c.take(key_len)?;
        c.nullable_bytes()?;
    }
    if !c.buf.is_empty() {
        return None;
    }
    Some(RecordInfo {
        attributes,
        timestamp_delta,
        offset_delta,
        has_key,
        null_value,
    })
}

pub(crate) struct Cursor<'a> {
    pub(crate) buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.buf.len() {
            return None;
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Some(head)
    }

    /// Unsigned LEB128 of at most `max_bytes` bytes.
    fn unsigned(&mut self, max_bytes: usize) -> Option<u64> {
        let mut value = 0u64;
        for i in 0..max_bytes {
            let byte = *self.buf.first()?;
            self.buf = &self.buf[1..];
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    /// Zigzag varint (Kafka `varint`, at most 5 bytes).
    pub(crate) fn varint(&mut self) -> Option<i32> {
        let raw = u32::try_from(self.unsigned(5)?).ok()?;
        Some(((raw >> 1) as i32) ^ -((raw & 1) as i32))
    }

    /// Zigzag varlong (Kafka `varlong`, at most 10 bytes).
    pub(crate) fn varlong(&mut self) -> Option<i64> {
        let raw = self.unsigned(10)?;
        Some(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    /// A varint length (-1 for null) followed by that many bytes: `Some(None)` for null.
    fn nullable_slice(&mut self) -> Option<Option<&'a [u8]>> {
        let len = self.varint()?;
        if len == -1 {
            return Some(None);
        }
        self.take(usize::try_from(len).ok()?).map(Some)
    }

    /// A varint length (-1 for null) followed by that many bytes; whether it was not null.
    fn nullable_bytes(&mut self) -> Option<bool> {
        let len = self.varint()?;
        if len == -1 {
            return Some(false);
        }
        self.take(usize::try_from(len).ok()?).map(|_| true)
    }
}

/// Hands the key and value (`None` for null) of every record of one batch to `f`, with
/// the record's index in the batch, decompressing if needed (bounded, as
/// [`decompressed_records`]). Stops at the first malformed record with its error; headers
/// are skipped unread (the produce path has validated the batch as a whole already).
pub fn for_each_key_value(
    batch: &[u8],
    mut f: impl FnMut(usize, Option<&[u8]>, Option<&[u8]>),
) -> Result<(), BatchError> {
    let header = BatchHeader::parse(batch)?;
    let records = decompressed_records(batch, &header)?;
    let mut cursor = Cursor { buf: &records };
    let mut index = 0;
    while !cursor.buf.is_empty() {
        let fail = |reason| BatchError::MalformedRecord { index, reason };
        let length = cursor.varint().ok_or(fail("bad record length"))?;
        let length = usize::try_from(length).map_err(|_| fail("negative record length"))?;
        let body = cursor
            .take(length)
            .ok_or(fail("record overruns the batch"))?;
        let (key, value) = record_key_value(body).ok_or(fail("malformed record body"))?;
        f(index, key, value);
        index += 1;
    }
    Ok(())
}

/// A record's key and value (`None` for null).
type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// Key and value of a record body (everything after its length).
fn record_key_value(body: &[u8]) -> Option<KeyValue<'_>> {
    let mut c = Cursor { buf: body };
    c.take(1)?;
    c.varlong()?;
    c.varint()?;
    let key = c.nullable_slice()?;
    let value = c.nullable_slice()?;
    Some((key, value))
}

/// Indexes (within the batch) of the records whose key is null, decompressing if needed
/// (bounded); Kafka refuses such records on compacted topics.
pub fn keyless_records(batch: &[u8]) -> Result<Vec<usize>, BatchError> {
    let header = BatchHeader::parse(batch)?;
    let records = decompressed_records(batch, &header)?;
    let mut keyless = Vec::new();
    for (index, record) in RecordIter::new(&records).enumerate() {
        if !record?.has_key {
            keyless.push(index);
        }
    }
    Ok(keyless)
}

/// Offset and timestamp of every record in one batch, decompressing if needed. For
/// log-append-time batches every record carries the batch's `maxTimestamp`, as in Kafka.
///
/// Decompression is bounded ([`decompressed_records`]); records are then walked by this
/// module's own parser rather than `RecordBatchDecoder`, which trusts `recordsCount`.
pub fn record_timestamps(batch: &[u8]) -> Result<Vec<(i64, i64)>, BatchError> {
    let header = BatchHeader::parse(batch)?;
    let records = decompressed_records(batch, &header)?;
    let mut out = Vec::new();
    for record in RecordIter::new(&records) {
        let record = record?;
        let offset = header
            .base_offset
            .wrapping_add(i64::from(record.offset_delta));
        let timestamp = if header.is_log_append_time() {
            header.max_timestamp
        } else {
            header.base_timestamp.wrapping_add(record.timestamp_delta)
        };
        out.push((offset, timestamp));
    }
    Ok(out)
}

/// The records section of one whole batch (`header` parsed from it), decompressed if the
/// batch is compressed; the output is bounded by [`compression::decompressed_limit`] of the
/// compressed size, so a decompression bomb is an error, not an allocation.
pub fn decompressed_records<'a>(
    batch: &'a [u8],
    header: &BatchHeader,
) -> Result<Cow<'a, [u8]>, BatchError> {
    let end = header.total_size();
    let Some(records) = batch.get(HEADER_SIZE..end) else {
        return Err(BatchError::Truncated {
            position: 0,
            needed: end,
            available: batch.len(),
        });
    };
    let codec = header.compression()?;
    if codec == Compression::None {
        return Ok(Cow::Borrowed(records));
    }
    compression::decompress(
        codec,
        records,
        compression::decompressed_limit(records.len()),
    )
    .map(Cow::Owned)
    .map_err(|source| BatchError::Decompress { codec, source })
}

/// The first record of `batch` whose timestamp is `>= target`, as `(offset, timestamp)`
/// (Kafka ListOffsets semantics within one batch).
pub fn first_record_at_or_after(
    batch: &[u8],
    target: i64,
) -> Result<Option<(i64, i64)>, BatchError> {
    Ok(record_timestamps(batch)?
        .into_iter()
        .find(|&(_, ts)| ts >= target))
}

/// The first record of `batch` carrying the batch's largest timestamp, as `(offset,
/// timestamp)`.
pub fn max_timestamp_record(batch: &[u8]) -> Result<Option<(i64, i64)>, BatchError> {
    let records = record_timestamps(batch)?;
    let Some(max) = records.iter().map(|&(_, ts)| ts).max() else {
        return Ok(None);
    };
    Ok(records.into_iter().find(|&(_, ts)| ts == max))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::indexmap::IndexMap;
    use kafka_protocol::records::{
        Compression as Codec, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    use proptest::prelude::*;

    const CODECS: [Codec; 5] = [
        Codec::None,
        Codec::Gzip,
        Codec::Snappy,
        Codec::Lz4,
        Codec::Zstd,
    ];

    fn record(offset: i64, timestamp: i64) -> Record {
        let mut headers = IndexMap::new();
        headers.insert("h".to_owned().into(), Some(Bytes::from_static(b"v")));
        Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: 7,
            producer_epoch: 1,
            timestamp_type: TimestampType::Creation,
            offset,
            sequence: offset as i32,
            timestamp,
            key: Some(Bytes::from(format!("key-{offset}"))),
            value: Some(Bytes::from(vec![b'x'; 100])),
            headers,
        }
    }

    /// One batch of `timestamps.len()` records with the given timestamps.
    fn batch(codec: Codec, timestamps: &[i64]) -> BytesMut {
        let records: Vec<Record> = timestamps
            .iter()
            .enumerate()
            .map(|(i, &ts)| record(i as i64, ts))
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression: codec,
            },
        )
        .unwrap();
        buf
    }

    #[test]
    fn keys_and_values_are_handed_over_for_every_codec() {
        for codec in CODECS {
            let mut records: Vec<Record> = (0..3).map(|i| record(i, 10)).collect();
            records[1].key = None;
            records[2].value = None;
            let mut buf = BytesMut::new();
            RecordBatchEncoder::encode(
                &mut buf,
                &records,
                &RecordEncodeOptions {
                    version: 2,
                    compression: codec,
                },
            )
            .unwrap();
            let mut seen = Vec::new();
            for_each_key_value(&buf, |i, k, v| {
                seen.push((i, k.map(<[u8]>::to_vec), v.map(<[u8]>::len)))
            })
            .unwrap();
            assert_eq!(
                seen,
                [
                    (0, Some(b"key-0".to_vec()), Some(100)),
                    (1, None, Some(100)),
                    (2, Some(b"key-2".to_vec()), None)
                ],
                "{codec:?}"
            );
        }
        // A truncated batch is an error, not a panic.
        let buf = batch(Codec::None, &[1, 2]);
        assert!(for_each_key_value(&buf[..buf.len() - 3], |_, _, _| {}).is_err());
    }

    #[test]
    fn valid_batches_of_every_codec_pass() {
        for codec in CODECS {
            let buf = batch(codec, &[10, 20, 30]);
            let headers = validate_batches(&buf).unwrap();
            assert_eq!(headers.len(), 1, "{codec:?}");
            let h = headers[0];
            assert_eq!(h.records_count, 3);
            assert_eq!(h.last_offset_delta, 2);
            assert_eq!(h.total_size(), buf.len());
            assert_eq!(h.compression().unwrap() as u8, codec as u8);
            assert_eq!(h.producer_id, 7);
            assert!(h.has_producer_id());
            assert_eq!(h.last_sequence(), 2);
            assert_eq!(h.max_timestamp, 30);
        }
    }

    #[test]
    fn concatenated_batches_are_all_returned() {
        let mut buf = batch(Codec::None, &[1, 2]);
        buf.extend_from_slice(&batch(Codec::Zstd, &[3]));
        buf.extend_from_slice(&batch(Codec::Gzip, &[4, 5, 6]));
        let headers = validate_batches(&buf).unwrap();
        let counts: Vec<i32> = headers.iter().map(|h| h.records_count).collect();
        assert_eq!(counts, vec![2, 1, 3]);
        let ranges: Vec<_> = iter_batches(&buf).map(|r| r.unwrap().1).collect();
        assert_eq!(ranges.len(), 3);
        assert_eq!(ranges[0].start, 0);
        assert_eq!(ranges[2].end, buf.len());
    }

    #[test]
    fn flipped_byte_is_a_crc_mismatch() {
        for codec in CODECS {
            let clean = batch(codec, &[1, 2, 3]);
            for position in [CRC_START, 30, HEADER_SIZE, clean.len() - 1] {
                let mut buf = clean.clone();
                buf[position] ^= 0x01;
                assert!(
                    matches!(validate_batches(&buf), Err(BatchError::CrcMismatch { .. })),
                    "{codec:?} at {position}"
                );
            }
        }
    }

    #[test]
    fn truncation_is_an_error() {
        let buf = batch(Codec::None, &[1, 2, 3]);
        for len in 0..buf.len() {
            assert!(validate_batches(&buf[..len]).is_err(), "length {len}");
        }
        let mut two = buf.clone();
        two.extend_from_slice(&buf[..buf.len() - 1]);
        assert!(matches!(
            validate_batches(&two),
            Err(BatchError::Truncated { position, .. }) if position == buf.len()
        ));
    }

    /// Rewrites a header field and recomputes the CRC, so only the field itself is wrong.
    fn with_field(mut buf: BytesMut, at: usize, bytes: &[u8]) -> BytesMut {
        buf[at..at + bytes.len()].copy_from_slice(bytes);
        let crc = crc32c::crc32c(&buf[CRC_START..]);
        buf[17..21].copy_from_slice(&crc.to_be_bytes());
        buf
    }

    #[test]
    fn compressed_batch_claiming_more_records_than_it_holds_is_refused() {
        // recordsCount and lastOffsetDelta agree with each other but not with the content:
        // one gzip record claiming five, and one claiming 2^31 - 1.
        for codec in CODECS {
            for claim in [5i32, i32::MAX] {
                let buf = batch(codec, &[7]);
                let buf = with_field(buf, 23, &(claim - 1).to_be_bytes());
                let buf = with_field(buf, 57, &claim.to_be_bytes());
                assert!(
                    matches!(
                        validate_batches(&buf),
                        Err(BatchError::MalformedRecord {
                            index: 1,
                            reason: "record count differs from recordsCount"
                        })
                    ),
                    "{codec:?} claiming {claim}: {:?}",
                    validate_batches(&buf)
                );
            }
            // Fewer claimed than held is refused as well.
            let buf = batch(codec, &[1, 2, 3]);
            let buf = with_field(buf, 23, &1i32.to_be_bytes());
            let buf = with_field(buf, 57, &2i32.to_be_bytes());
            assert!(validate_batches(&buf).is_err(), "{codec:?} claiming fewer");
        }
    }

    #[test]
    fn decompression_bomb_is_refused_without_expanding_it() {
        // One record whose 100 MiB value of zeros gzips to ~100 KiB: more than 16x the
        // compressed size and more than 64 MiB.
        let zeros = Some(Bytes::from(vec![0u8; 100 << 20]));
        let buf =
            crate::test_kit::encode(&[crate::test_kit::record(0, 1, None, zeros)], Codec::Gzip);
        assert!(buf.len() < 1 << 20);
        assert!(matches!(
            validate_batches(&buf),
            Err(BatchError::Decompress {
                source: DecompressError::TooLarge { .. },
                ..
            })
        ));
    }

    #[test]
    fn header_field_errors_are_typed() {
        let buf = batch(Codec::None, &[1, 2, 3]);
        let mut magic = buf.clone();
        magic[MAGIC_OFFSET] = 1;
        assert!(matches!(
            validate_batches(&magic),
            Err(BatchError::UnsupportedMagic(1))
        ));
        let count = with_field(buf.clone(), 57, &4i32.to_be_bytes());
        assert!(matches!(
            validate_batches(&count),
            Err(BatchError::BadRecordCount {
                records_count: 4,
                ..
            })
        ));
        let zero = with_field(buf.clone(), 57, &0i32.to_be_bytes());
        assert!(matches!(
            validate_batches(&zero),
            Err(BatchError::BadRecordCount { .. })
        ));
        let codec = with_field(buf.clone(), 21, &5i16.to_be_bytes());
        assert!(matches!(
            validate_batches(&codec),
            Err(BatchError::UnknownCompression(5))
        ));
        let mut short = buf.clone();
        short[8..12].copy_from_slice(&48i32.to_be_bytes());
        assert!(matches!(
            validate_batches(&short),
            Err(BatchError::BadLength { length: 48, .. })
        ));
        // Claims fewer records than are in the bytes: counts agree with each other, but the
        // records do not fill the batch exactly.
        let fewer = with_field(
            with_field(buf.clone(), 57, &2i32.to_be_bytes()),
            23,
            &1i32.to_be_bytes(),
        );
        assert!(matches!(
            validate_batches(&fewer),
            Err(BatchError::MalformedRecord { .. })
        ));
        assert!(matches!(validate_batches(&[]), Err(BatchError::Empty)));
    }

    #[test]
    fn rewrites_stay_valid() {
        let mut buf = batch(Codec::Lz4, &[1, 2]);
        set_base_offset(&mut buf, 1234).unwrap();
        set_partition_leader_epoch(&mut buf, 9).unwrap();
        let h = validate_batches(&buf).unwrap()[0];
        assert_eq!(h.base_offset, 1234);
        assert_eq!(h.last_offset(), 1235);
        assert_eq!(h.partition_leader_epoch, 9);
        assert!(set_base_offset(&mut [0u8; 7], 1).is_err());
        assert!(set_partition_leader_epoch(&mut [0u8; 15], 1).is_err());
    }

    #[test]
    fn sequences_wrap_like_kafka() {
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(increment_sequence(5, 3), 8);
        let mut h = BatchHeader::parse(&batch(Codec::None, &[1, 2, 3])).unwrap();
        h.base_sequence = i32::MAX - 1;
        assert_eq!(h.last_sequence(), 0);
        h.base_sequence = NO_SEQUENCE;
        assert_eq!(h.last_sequence(), NO_SEQUENCE);
    }

    #[test]
    fn timestamp_search_in_every_codec() {
        for codec in CODECS {
            let mut buf = batch(codec, &[100, 300, 200, 300, 50]);
            set_base_offset(&mut buf, 1000).unwrap();
            assert_eq!(
                first_record_at_or_after(&buf, 150).unwrap(),
                Some((1001, 300)),
                "{codec:?}"
            );
            assert_eq!(
                first_record_at_or_after(&buf, 0).unwrap(),
                Some((1000, 100))
            );
            assert_eq!(first_record_at_or_after(&buf, 301).unwrap(), None);
            assert_eq!(max_timestamp_record(&buf).unwrap(), Some((1001, 300)));
        }
    }

    #[test]
    fn log_append_time_uses_max_timestamp() {
        let buf = batch(Codec::None, &[100, 200]);
        let mut buf = with_field(buf, 21, &TIMESTAMP_TYPE_BIT.to_be_bytes());
        buf[35..43].copy_from_slice(&500i64.to_be_bytes());
        assert_eq!(first_record_at_or_after(&buf, 150).unwrap(), Some((0, 500)));
        assert_eq!(max_timestamp_record(&buf).unwrap(), Some((0, 500)));
    }

    #[test]
    fn corrupt_compressed_records_are_an_error_not_a_panic() {
        for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            let mut buf = batch(codec, &[1, 2, 3]);
            let len = buf.len();
            for b in &mut buf[HEADER_SIZE..len] {
                *b = 0xff;
            }
            assert!(record_timestamps(&buf).is_err(), "{codec:?}");
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = validate_batches(&bytes);
            let _ = record_timestamps(&bytes);
            for item in iter_batches(&bytes) {
                let _ = item;
            }
        }

        #[test]
        fn mutated_batches_never_panic(
            codec_index in 0usize..5,
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
            cut in any::<usize>(),
        ) {
            let mut buf = batch(CODECS[codec_index], &[5, 6, 7]);
            for (at, value) in edits {
                let len = buf.len();
                buf[at % len] = value;
            }
            let len = buf.len();
            let buf = &buf[..cut % (len + 1)];
            let _ = validate_batches(buf);
            let _ = record_timestamps(buf);
            let _ = first_record_at_or_after(buf, 6);
        }

        #[test]
        fn header_fields_round_trip(base in any::<i64>(), epoch in any::<i32>()) {
            let mut buf = batch(Codec::None, &[1]);
            set_base_offset(&mut buf, base).unwrap();
            set_partition_leader_epoch(&mut buf, epoch).unwrap();
            let h = validate_batches(&buf).unwrap()[0];
            prop_assert_eq!(h.base_offset, base);
            prop_assert_eq!(h.partition_leader_epoch, epoch);
        }
    }
}

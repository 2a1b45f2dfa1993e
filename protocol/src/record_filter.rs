//! Rewriting a stored record batch without some of its records, as Kafka's log cleaner does
//! for compacted topics.
//!
//! The kept records' bytes are copied unchanged: each record encodes its offset and
//! timestamp as deltas from the batch's `baseOffset` and `baseTimestamp`, which the rewritten
//! batch keeps, so every kept record keeps its original offset (gaps appear where records
//! were removed). As in Kafka, the batch keeps its `lastOffsetDelta` (so its last offset and
//! the producer's sequence range stay what they were), its producer fields and its codec;
//! `recordsCount`, `maxTimestamp` (create time), the length and the CRC are recomputed.

use crate::record_batch::{
    BatchError, BatchHeader, Compression, Cursor, HEADER_SIZE, decompressed_records,
};
use bytes::{BufMut, BytesMut};
use kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};

/// One record as the filter sees it.
#[derive(Debug, Clone, Copy)]
pub struct RecordRef<'a> {
    /// Its offset.
    pub offset: i64,
    /// Its timestamp (create time, or the batch's for log-append time).
    pub timestamp: i64,
    /// Its key, if not null.
    pub key: Option<&'a [u8]>,
    /// Its value is null (a tombstone).
    pub null_value: bool,
}

/// What filtering a batch produced.
#[derive(Debug)]
pub enum Filtered {
    /// Every record was kept: the batch stays as it is.
    Unchanged,
    /// No record was kept.
    Empty,
    /// The batch rewritten with the kept records.
    Rewritten(BytesMut),
}

/// Calls `f` for every record of `batch` (decompressing, bounded), in order.
pub fn for_each_record(
    batch: &[u8],
    mut f: impl FnMut(RecordRef<'_>),
) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(batch)?;
    let records = decompressed_records(batch, &header)?;
    walk(&header, &records, |record, _| f(record))?;
    Ok(header)
}

/// Rewrites `batch` keeping the records `keep` accepts (see the module docs).
pub fn filter_batch(
    batch: &[u8],
    mut keep: impl FnMut(RecordRef<'_>) -> bool,
) -> Result<Filtered, BatchError> {
    let header = BatchHeader::parse(batch)?;
    if header.is_control() {
        // Control batches (transaction markers) are not the cleaner's to thin out.
        return Ok(Filtered::Unchanged);
    }
    let records = decompressed_records(batch, &header)?;
    let mut kept = BytesMut::with_capacity(records.len());
    let mut kept_count = 0i32;
    let mut total = 0i32;
    let mut max_timestamp = i64::MIN;
    walk(&header, &records, |record, raw| {
        total += 1;
        if keep(record) {
            kept.extend_from_slice(raw);
            kept_count += 1;
            max_timestamp = max_timestamp.max(record.timestamp);
        }
    })?;
    if kept_count == total {
        return Ok(Filtered::Unchanged);
    }
    if kept_count == 0 {
        return Ok(Filtered::Empty);
    }
    let codec = header.compression()?;
    // Compressing an in-memory buffer does not fail in practice; if it does, the batch is
    // reported as one the cleaner cannot rewrite (and left as it is).
    let body = compress(codec, &kept).map_err(|_| BatchError::MalformedRecord {
        index: 0,
        reason: "recompressing the kept records failed",
    })?;
    let mut out = BytesMut::with_capacity(HEADER_SIZE + body.len());
    out.extend_from_slice(&batch[..HEADER_SIZE]);
    out.extend_from_slice(&body);
    let batch_length = i32::try_from(out.len() - 12).map_err(|_| BatchError::MalformedRecord {
        index: 0,
        reason: "rewritten batch too large",
    })?;
    out[8..12].copy_from_slice(&batch_length.to_be_bytes());
    if !header.is_log_append_time() {
        out[35..43].copy_from_slice(&max_timestamp.to_be_bytes());
    }
    out[57..61].copy_from_slice(&kept_count.to_be_bytes());
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(Filtered::Rewritten(out))
}

fn compress(codec: Compression, data: &[u8]) -> anyhow::Result<BytesMut> {
    let mut out = BytesMut::new();
    let fill = |b: &mut BytesMut| -> anyhow::Result<()> {
        b.put_slice(data);
        Ok(())
    };
    match codec {
        Compression::None => out.put_slice(data),
        Compression::Gzip => Gzip::compress(&mut out, fill)?,
        Compression::Snappy => Snappy::compress(&mut out, fill)?,
        Compression::Lz4 => Lz4::compress(&mut out, fill)?,
        Compression::Zstd => Zstd::compress(&mut out, fill)?,
    }
    Ok(out)
}

/// Walks the records of a decompressed record section: each record and its raw bytes
/// (length prefix included).
fn walk(
    header: &BatchHeader,
    records: &[u8],
    mut f: impl FnMut(RecordRef<'_>, &[u8]),
) -> Result<(), BatchError> {
    let mut rest = records;
    let mut index = 0usize;
    while !rest.is_empty() {
        let fail = |reason| BatchError::MalformedRecord { index, reason };
        let mut c = Cursor { buf: rest };
        let length = c.varint().ok_or(fail("bad record length"))?;
        let length = usize::try_from(length).map_err(|_| fail("negative record length"))?;
        let body = c.take(length).ok_or(fail("record overruns the batch"))?;
        let raw_len = rest.len() - c.buf.len();
        let raw = &rest[..raw_len];
        rest = c.buf;
        let mut b = Cursor { buf: body };
        b.take(1).ok_or(fail("malformed record body"))?; // attributes
        let timestamp_delta = b.varlong().ok_or(fail("malformed record body"))?;
        let offset_delta = b.varint().ok_or(fail("malformed record body"))?;
        let key_len = b.varint().ok_or(fail("malformed record body"))?;
        let key = if key_len < 0 {
            None
        } else {
            Some(
                b.take(usize::try_from(key_len).map_err(|_| fail("bad key length"))?)
                    .ok_or(fail("key overruns the record"))?,
            )
        };
        let null_value = b.varint().ok_or(fail("malformed record body"))? < 0;
        let timestamp = if header.is_log_append_time() {
            header.max_timestamp
        } else {
            header.base_timestamp.saturating_add(timestamp_delta)
        };
        f(
            RecordRef {
                offset: header.base_offset + i64::from(offset_delta),
                timestamp,
                key,
                null_value,
            },
            raw,
        );
        index += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record_batch::{set_base_offset, validate_batch};
    use bytes::Bytes;
    use kafka_protocol::records::{
        Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    fn encoder_codec(codec: Compression) -> kafka_protocol::records::Compression {
        match codec {
            Compression::None => kafka_protocol::records::Compression::None,
            Compression::Gzip => kafka_protocol::records::Compression::Gzip,
            Compression::Snappy => kafka_protocol::records::Compression::Snappy,
            Compression::Lz4 => kafka_protocol::records::Compression::Lz4,
            Compression::Zstd => kafka_protocol::records::Compression::Zstd,
        }
    }

    fn batch(codec: Compression) -> BytesMut {
        let records: Vec<Record> = (0..10i64)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: 7,
                producer_epoch: 1,
                timestamp_type: TimestampType::Creation,
                offset: i,
                sequence: i as i32,
                timestamp: 1_000 + i,
                key: (i != 3).then(|| Bytes::from(format!("k{}", i % 4))),
                value: (i != 5).then(|| Bytes::from(format!("v{i}"))),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression: encoder_codec(codec),
            },
        )
        .unwrap();
        set_base_offset(&mut buf, 100).unwrap();
        buf
    }

    #[test]
    fn kept_records_keep_offsets_keys_and_values_in_every_codec() {
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let original = batch(codec);
            let Filtered::Rewritten(rewritten) =
                filter_batch(&original, |r| r.offset % 2 == 0 && r.offset != 108).unwrap()
            else {
                panic!("{codec:?}: nothing removed");
            };
            let header = BatchHeader::parse(&rewritten).unwrap();
            crate::record_batch::check_crc(&rewritten, &header).unwrap();
            assert_eq!(header.base_offset, 100);
            assert_eq!(header.last_offset(), 109, "last offset kept, as Kafka");
            assert_eq!(header.records_count, 4);
            assert_eq!(header.max_timestamp, 1_006);
            assert_eq!(header.compression().unwrap(), codec);
            assert_eq!(header.producer_id, 7);
            let mut seen = Vec::new();
            for_each_record(&rewritten, |r| {
                seen.push((r.offset, r.key.map(<[u8]>::to_vec), r.null_value));
            })
            .unwrap();
            assert_eq!(
                seen,
                vec![
                    (100, Some(b"k0".to_vec()), false),
                    (102, Some(b"k2".to_vec()), false),
                    (104, Some(b"k0".to_vec()), false),
                    (106, Some(b"k2".to_vec()), false),
                ]
            );
            // What clients decode: the same records at their original offsets.
            let mut bytes = rewritten.clone().freeze();
            let decoded = RecordBatchDecoder::decode_all(&mut bytes).unwrap();
            let offsets: Vec<i64> = decoded
                .iter()
                .flat_map(|s| s.records.iter().map(|r| r.offset))
                .collect();
            assert_eq!(offsets, vec![100, 102, 104, 106]);
            // Produce-time validation wants dense offsets; a cleaned batch is not one.
            assert!(validate_batch(&rewritten).is_err());
        }
    }

    #[test]
    fn all_kept_is_unchanged_and_none_kept_is_empty() {
        let original = batch(Compression::Zstd);
        assert!(matches!(
            filter_batch(&original, |_| true).unwrap(),
            Filtered::Unchanged
        ));
        assert!(matches!(
            filter_batch(&original, |_| false).unwrap(),
            Filtered::Empty
        ));
        let mut tombstones = 0;
        let mut keyless = 0;
        for_each_record(&original, |r| {
            tombstones += usize::from(r.null_value);
            keyless += usize::from(r.key.is_none());
        })
        .unwrap();
        assert_eq!((tombstones, keyless), (1, 1));
    }
}

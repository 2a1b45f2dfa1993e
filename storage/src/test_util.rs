//! Helpers for storage tests: record batches built with `kafka-protocol`'s encoder.

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// Idempotent producer fields of a test batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Producer {
    pub(crate) id: i64,
    pub(crate) epoch: i16,
    pub(crate) first_seq: i32,
}

/// A batch of records with the given timestamps; values are `"<tag>-<i>"`.
pub(crate) fn batch_with(
    tag: &str,
    timestamps: &[i64],
    producer: Option<Producer>,
    compression: Compression,
) -> BytesMut {
    let records: Vec<Record> = timestamps
        .iter()
        .enumerate()
        .map(|(i, &timestamp)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: producer.map_or(-1, |p| p.id),
            producer_epoch: producer.map_or(-1, |p| p.epoch),
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder starts a new batch whenever `offset - sequence` changes, so
            // non-idempotent records count up from -1 to get one batch with base sequence -1.
            sequence: producer.map_or(i as i32 - 1, |p| p.first_seq + i as i32),
            timestamp,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(format!("{tag}-{i}"))),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .unwrap();
    buf
}

/// An uncompressed batch of `n` records, all with timestamp `ts`.
pub(crate) fn batch(tag: &str, n: usize, ts: i64) -> BytesMut {
    batch_with(tag, &vec![ts; n], None, Compression::None)
}

/// An idempotent batch of `n` records.
pub(crate) fn idempotent(id: i64, epoch: i16, first_seq: i32, n: usize) -> BytesMut {
    batch_with(
        &format!("p{id}-s{first_seq}"),
        &vec![1_000; n],
        Some(Producer {
            id,
            epoch,
            first_seq,
        }),
        Compression::None,
    )
}

/// Decodes fetched bytes into `(offset, value)` pairs.
pub(crate) fn decode(bytes: &Bytes) -> Vec<(i64, String)> {
    let mut buf = bytes.clone();
    RecordBatchDecoder::decode_all(&mut buf)
        .unwrap()
        .into_iter()
        .flat_map(|set| set.records)
        .map(|r| {
            let value = r.value.map(|v| String::from_utf8(v.to_vec()).unwrap());
            (r.offset, value.unwrap_or_default())
        })
        .collect()
}

/// Offsets of every record in `bytes`.
pub(crate) fn offsets(bytes: &Bytes) -> Vec<i64> {
    decode(bytes).into_iter().map(|(o, _)| o).collect()
}

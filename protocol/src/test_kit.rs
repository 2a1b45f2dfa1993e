//! Record batches for tests and benches (never used by the broker): one place that builds
//! magic-2 batches with `kafka-protocol`'s encoder, so every crate's tests make batches the
//! same way.

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// A record at `offset` (relative to its batch) of a non-idempotent producer, with no
/// headers. The encoder keeps records in one batch while `offset - sequence` is constant,
/// so the sequence follows the offset from -1 (base sequence -1: no producer).
pub fn record(offset: i64, timestamp: i64, key: Option<Bytes>, value: Option<Bytes>) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset,
        sequence: offset as i32 - 1,
        timestamp,
        key,
        value,
        headers: IndexMap::new(),
    }
}

/// `records` encoded as magic-2 batches (one, for records made by [`record`]).
///
/// # Panics
/// If the encoder refuses the records (test input only).
pub fn encode(records: &[Record], compression: Compression) -> BytesMut {
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    if let Err(e) = RecordBatchEncoder::encode(&mut buf, records, &options) {
        panic!("test records do not encode: {e}");
    }
    buf
}

/// One batch of `n` records with keys `<key_prefix><first + i>` and values
/// `<value_prefix><first + i>`, timestamps `1_700_000_000_000 + first + i`.
pub fn numbered_batch(
    first: i64,
    n: usize,
    key_prefix: &str,
    value_prefix: &str,
    compression: Compression,
) -> BytesMut {
    numbered_batch_at(
        first,
        n,
        key_prefix,
        value_prefix,
        compression,
        1_700_000_000_000,
    )
}

/// [`numbered_batch`] with timestamps `base_timestamp + first + i` (a broker with retention
/// deletes records whose timestamps are older than `retention.ms`).
pub fn numbered_batch_at(
    first: i64,
    n: usize,
    key_prefix: &str,
    value_prefix: &str,
    compression: Compression,
    base_timestamp: i64,
) -> BytesMut {
    let records: Vec<Record> = (0..n as i64)
        .map(|i| {
            record(
                i,
                base_timestamp + first + i,
                Some(Bytes::from(format!("{key_prefix}{}", first + i))),
                Some(Bytes::from(format!("{value_prefix}{}", first + i))),
            )
        })
        .collect();
    encode(&records, compression)
}

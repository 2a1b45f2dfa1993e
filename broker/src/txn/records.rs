//! The records the transaction coordinator keeps in `__transaction_state`, in Kafka's own
//! formats (so the topic compacts the way Kafka's does: the latest value per transactional
//! id wins, a null value deletes it).
//!
//! - Key version 0: `transactional_id: string`.
//! - Value version 0: `producer_id: int64, producer_epoch: int16, timeout_ms: int32,
//!   state: int8, partitions: [topic: string, partition_ids: [int32]] (nullable),
//!   last_update_timestamp_ms: int64, start_timestamp_ms: int64`.
//!
//! Kafka's non-flexible encoding (int16-length strings, int32-count arrays, big-endian).
//! Decoding never panics on truncated or malformed input.

use bytes::{BufMut, Bytes, BytesMut};

use super::state::{TxnMetadata, TxnState};
use crate::group::records::{Reader, RecordError, put_str};

/// The key of a transactional id's record.
pub fn encode_key(transactional_id: &str) -> Bytes {
    let mut b = BytesMut::with_capacity(4 + transactional_id.len());
    b.put_i16(0);
    put_str(&mut b, transactional_id);
    b.freeze()
}

/// Decodes a key: the transactional id.
pub fn decode_key(buf: &[u8]) -> Result<String, RecordError> {
    let mut r = Reader { buf, pos: 0 };
    match r.i16()? {
        0 => r.string(),
        version => Err(RecordError::Version {
            what: "transaction log key",
            version,
        }),
    }
}

/// The value of a transaction's record (version 0).
pub fn encode_value(m: &TxnMetadata) -> Bytes {
    let mut b = BytesMut::with_capacity(64);
    b.put_i16(0);
    b.put_i64(m.producer_id);
    b.put_i16(m.producer_epoch);
    b.put_i32(m.timeout_ms);
    b.put_i8(m.state.code());
    let topics = m.topics();
    b.put_i32(topics.len() as i32);
    for (topic, partitions) in topics {
        put_str(&mut b, &topic);
        b.put_i32(partitions.len() as i32);
        for p in partitions {
            b.put_i32(p);
        }
    }
    b.put_i64(m.last_update_ms);
    b.put_i64(m.start_ms);
    b.freeze()
}

/// Decodes a value of `transactional_id`.
pub fn decode_value(transactional_id: &str, buf: &[u8]) -> Result<TxnMetadata, RecordError> {
    let mut r = Reader { buf, pos: 0 };
    let version = r.i16()?;
    if version != 0 {
        return Err(RecordError::Version {
            what: "transaction log value",
            version,
        });
    }
    let producer_id = r.i64()?;
    let producer_epoch = r.i16()?;
    let timeout_ms = r.i32()?;
    let at = r.pos;
    let code = r.take(1)?[0] as i8;
    let state = TxnState::from_code(code).ok_or(RecordError::BadLength {
        at,
        len: i64::from(code),
    })?;
    let mut partitions = std::collections::BTreeSet::new();
    let count = r.i32()?;
    for _ in 0..count.max(0) {
        let topic = r.string()?;
        let at = r.pos;
        let n = r.i32()?;
        // Each id takes 4 bytes: a count the rest cannot hold is corrupt, not a reason to
        // loop or allocate.
        if n < 0 || (n as usize).saturating_mul(4) > buf.len() - r.pos {
            return Err(RecordError::BadLength {
                at,
                len: i64::from(n),
            });
        }
        for _ in 0..n {
            partitions.insert((topic.clone(), r.i32()?));
        }
    }
    let last_update_ms = r.i64()?;
    let start_ms = r.i64()?;
    Ok(TxnMetadata {
        transactional_id: transactional_id.to_string(),
        producer_id,
        producer_epoch,
        timeout_ms,
        state,
        partitions,
        last_update_ms,
        start_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TxnMetadata {
        TxnMetadata {
            transactional_id: "app-1".into(),
            producer_id: 4000,
            producer_epoch: 3,
            timeout_ms: 60_000,
            state: TxnState::PrepareCommit,
            partitions: [
                ("orders".to_string(), 0),
                ("orders".to_string(), 2),
                ("x".to_string(), 1),
            ]
            .into_iter()
            .collect(),
            last_update_ms: 1_700_000_000_500,
            start_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn records_round_trip_in_kafka_layout() {
        let key = encode_key("app-1");
        assert_eq!(&key[..], &[0, 0, 0, 5, b'a', b'p', b'p', b'-', b'1']);
        assert_eq!(decode_key(&key).unwrap(), "app-1");
        let m = sample();
        let value = encode_value(&m);
        // version, producer id, epoch, timeout, state
        assert_eq!(&value[..2], &[0, 0]);
        assert_eq!(&value[2..10], &4000i64.to_be_bytes());
        assert_eq!(value[16], 2);
        assert_eq!(decode_value("app-1", &value).unwrap(), m);
    }

    #[test]
    fn truncated_or_bad_values_are_errors() {
        let value = encode_value(&sample());
        for len in 0..value.len() {
            assert!(decode_value("a", &value[..len]).is_err(), "prefix {len}");
        }
        let mut bad = value.to_vec();
        bad[16] = 42;
        assert!(decode_value("a", &bad).is_err());
        let mut huge = encode_value(&TxnMetadata {
            partitions: Default::default(),
            ..sample()
        })
        .to_vec();
        // One topic with an absurd partition count.
        huge.splice(17..21, 1i32.to_be_bytes());
        huge.splice(21..21, [0, 1, b't', 0x7f, 0xff, 0xff, 0xff]);
        assert!(decode_value("a", &huge).is_err());
    }
}

//! The records the transaction coordinator keeps in `__transaction_state`, in Kafka's own
//! formats (so the topic compacts the way Kafka's does: the latest value per transactional
//! id wins, a null value deletes it).
//!
//! - Key version 0: `transactional_id: string`.
//! - Value version 0: `producer_id: int64, producer_epoch: int16, timeout_ms: int32,
//!   state: int8, partitions: [topic: string, partition_ids: [int32]] (nullable),
//!   last_update_timestamp_ms: int64, start_timestamp_ms: int64`, in Kafka's non-flexible
//!   encoding (int16-length strings, int32-count arrays, big-endian).
//! - Value version 1 (Kafka 4's, written once a producer used transactions V2 or the id
//!   moved to a new producer id): the same fields in the flexible encoding (compact
//!   strings and arrays, unsigned-varint lengths, tagged fields after each structure),
//!   plus the tagged fields `previous_producer_id: int64` (tag 0), `next_producer_id:
//!   int64` (tag 1) and `client_transaction_version: int16` (tag 2), each written only when
//!   it differs from its default (-1, -1, 0).
//!
//! Decoding never panics on truncated or malformed input; unknown tagged fields are skipped.

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

fn put_uvarint(b: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        b.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    b.put_u8(v as u8);
}

fn uvarint(r: &mut Reader<'_>) -> Result<u64, RecordError> {
    let at = r.pos;
    let mut v = 0u64;
    for shift in (0..35).step_by(7) {
        let byte = r.take(1)?[0];
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(RecordError::BadLength { at, len: -1 })
}

/// A compact length (stored +1; 0 is null), checked against what is left times `unit`.
fn compact_len(r: &mut Reader<'_>, unit: usize) -> Result<Option<usize>, RecordError> {
    let at = r.pos;
    let n = uvarint(r)?;
    if n == 0 {
        return Ok(None);
    }
    let n = (n - 1) as usize;
    if n.saturating_mul(unit) > r.buf.len() - r.pos {
        return Err(RecordError::BadLength { at, len: n as i64 });
    }
    Ok(Some(n))
}

fn compact_string(r: &mut Reader<'_>) -> Result<String, RecordError> {
    let at = r.pos;
    let n = compact_len(r, 1)?.ok_or(RecordError::BadLength { at, len: -1 })?;
    String::from_utf8(r.take(n)?.to_vec()).map_err(|_| RecordError::BadLength { at, len: n as i64 })
}

fn put_compact_str(b: &mut BytesMut, s: &str) {
    put_uvarint(b, s.len() as u64 + 1);
    b.put_slice(s.as_bytes());
}

/// Skips a structure's tagged fields, handing the known ones to `known(tag, data)`.
fn tagged_fields(
    r: &mut Reader<'_>,
    mut known: impl FnMut(u64, &[u8]) -> Result<(), RecordError>,
) -> Result<(), RecordError> {
    let count = uvarint(r)?;
    for _ in 0..count {
        let tag = uvarint(r)?;
        let len = compact_len_raw(r)?;
        let data = r.take(len)?;
        known(tag, data)?;
    }
    Ok(())
}

/// A tagged field's size (stored as is).
fn compact_len_raw(r: &mut Reader<'_>) -> Result<usize, RecordError> {
    let at = r.pos;
    let n = uvarint(r)? as usize;
    if n > r.buf.len() - r.pos {
        return Err(RecordError::BadLength { at, len: n as i64 });
    }
    Ok(n)
}

/// Whether `m` needs value version 1 (its tagged fields differ from their defaults).
fn needs_v1(m: &TxnMetadata) -> bool {
    m.client_version >= 2 || m.previous_producer_id >= 0 || m.next_producer_id >= 0
}

/// The value of a transaction's record: version 0, or 1 when `m` has transactions V2
/// fields.
pub fn encode_value(m: &TxnMetadata) -> Bytes {
    let mut b = BytesMut::with_capacity(64);
    let v1 = needs_v1(m);
    b.put_i16(i16::from(v1));
    b.put_i64(m.producer_id);
    b.put_i16(m.producer_epoch);
    b.put_i32(m.timeout_ms);
    b.put_i8(m.state.code());
    let topics = m.topics();
    if v1 {
        put_uvarint(&mut b, topics.len() as u64 + 1);
    } else {
        b.put_i32(topics.len() as i32);
    }
    for (topic, partitions) in topics {
        if v1 {
            put_compact_str(&mut b, &topic);
            put_uvarint(&mut b, partitions.len() as u64 + 1);
        } else {
            put_str(&mut b, &topic);
            b.put_i32(partitions.len() as i32);
        }
        for p in partitions {
            b.put_i32(p);
        }
        if v1 {
            put_uvarint(&mut b, 0);
        }
    }
    b.put_i64(m.last_update_ms);
    b.put_i64(m.start_ms);
    if v1 {
        let mut tags: Vec<(u64, Vec<u8>)> = Vec::new();
        if m.previous_producer_id != -1 {
            tags.push((0, m.previous_producer_id.to_be_bytes().to_vec()));
        }
        if m.next_producer_id != -1 {
            tags.push((1, m.next_producer_id.to_be_bytes().to_vec()));
        }
        if m.client_version != 0 {
            tags.push((2, m.client_version.to_be_bytes().to_vec()));
        }
        put_uvarint(&mut b, tags.len() as u64);
        for (tag, data) in tags {
            put_uvarint(&mut b, tag);
            put_uvarint(&mut b, data.len() as u64);
            b.put_slice(&data);
        }
    }
    b.freeze()
}

/// Decodes a value (version 0 or 1) of `transactional_id`.
pub fn decode_value(transactional_id: &str, buf: &[u8]) -> Result<TxnMetadata, RecordError> {
    let mut r = Reader { buf, pos: 0 };
    let version = r.i16()?;
    if !(0..=1).contains(&version) {
        return Err(RecordError::Version {
            what: "transaction log value",
            version,
        });
    }
    let v1 = version == 1;
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
    // Each topic takes at least 2 bytes (v1) or 6 (v0).
    let count = if v1 {
        compact_len(&mut r, 2)?.unwrap_or(0)
    } else {
        usize::try_from(r.i32()?).unwrap_or(0)
    };
    for _ in 0..count {
        let topic = if v1 {
            compact_string(&mut r)?
        } else {
            r.string()?
        };
        let at = r.pos;
        // Each id takes 4 bytes: a count the rest cannot hold is corrupt, not a reason to
        // loop or allocate.
        let n = if v1 {
            compact_len(&mut r, 4)?.unwrap_or(0)
        } else {
            let n = r.i32()?;
            if n < 0 || (n as usize).saturating_mul(4) > buf.len() - r.pos {
                return Err(RecordError::BadLength {
                    at,
                    len: i64::from(n),
                });
            }
            n as usize
        };
        for _ in 0..n {
            partitions.insert((topic.clone(), r.i32()?));
        }
        if v1 {
            tagged_fields(&mut r, |_, _| Ok(()))?;
        }
    }
    let last_update_ms = r.i64()?;
    let start_ms = r.i64()?;
    let mut m = TxnMetadata {
        partitions,
        state,
        last_update_ms,
        start_ms,
        ..TxnMetadata::new(transactional_id, producer_id, producer_epoch, timeout_ms, 0)
    };
    if v1 {
        tagged_fields(&mut r, |tag, data| {
            let bad = || RecordError::BadLength {
                at: 0,
                len: data.len() as i64,
            };
            match tag {
                0 => {
                    m.previous_producer_id = i64::from_be_bytes(data.try_into().map_err(|_| bad())?)
                }
                1 => m.next_producer_id = i64::from_be_bytes(data.try_into().map_err(|_| bad())?),
                2 => m.client_version = i16::from_be_bytes(data.try_into().map_err(|_| bad())?),
                _ => {}
            }
            Ok(())
        })?;
    }
    Ok(m)
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
            previous_producer_id: -1,
            next_producer_id: -1,
            client_version: 0,
        }
    }

    #[test]
    fn transactions_v2_fields_use_value_version_1() {
        let m = TxnMetadata {
            next_producer_id: 9000,
            client_version: 2,
            ..sample()
        };
        let value = encode_value(&m);
        assert_eq!(&value[..2], &[0, 1]);
        assert_eq!(decode_value("app-1", &value).unwrap(), m);
        // After a move to a new id: the previous one is kept, the next one cleared.
        let moved = TxnMetadata {
            producer_id: 9000,
            producer_epoch: 0,
            previous_producer_id: 4000,
            client_version: 2,
            partitions: Default::default(),
            ..sample()
        };
        assert_eq!(decode_value("app-1", &encode_value(&moved)).unwrap(), moved);
        // Every prefix is an error, never a panic.
        for len in 0..value.len() {
            assert!(decode_value("a", &value[..len]).is_err(), "prefix {len}");
        }
        // An unknown tagged field is skipped.
        let mut extra = value.to_vec();
        let tags_at = extra.len() - (1 + 2 * (1 + 1) + 8 + 2);
        assert_eq!(extra[tags_at], 2);
        extra[tags_at] = 3;
        extra.extend_from_slice(&[7, 1, 0xaa]);
        assert_eq!(decode_value("app-1", &extra).unwrap(), m);
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

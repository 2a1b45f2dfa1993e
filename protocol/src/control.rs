//! Control batches: the transaction markers (commit and abort) a transaction coordinator
//! writes to every partition of a transaction.
//!
//! A control batch has the control attribute (bit 5) and the transactional attribute (bit 4),
//! the producer id and epoch of the transaction, no sequence (-1), and one record whose key is
//! `version: int16 (0), type: int16 (0 abort, 1 commit)` and whose value is
//! `version: int16 (0), coordinator_epoch: int32`. Clients never deliver such a record to the
//! application; they use it to end the producer's transaction while reading.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::record_batch::{BatchError, BatchHeader, Cursor, decompressed_records};

/// What a control record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlType {
    /// The transaction was aborted: its records are skipped by read_committed consumers.
    Abort,
    /// The transaction committed.
    Commit,
}

impl ControlType {
    /// The key's `type` field.
    pub fn code(self) -> i16 {
        match self {
            ControlType::Abort => 0,
            ControlType::Commit => 1,
        }
    }
}

/// The control type of a control batch (`batch` holds the whole batch). `Ok(None)` for a
/// control record of a type this version does not know (Kafka ignores those too) or a batch
/// that is not a control batch.
pub fn control_type(batch: &[u8]) -> Result<Option<ControlType>, BatchError> {
    let header = BatchHeader::parse(batch)?;
    if !header.is_control() {
        return Ok(None);
    }
    let records = decompressed_records(batch, &header)?;
    let malformed = |reason| BatchError::MalformedRecord { index: 0, reason };
    let mut c = Cursor { buf: &records };
    let length = c.varint().ok_or(malformed("bad record length"))?;
    let body = usize::try_from(length)
        .ok()
        .and_then(|len| c.take(len))
        .ok_or(malformed("record overruns the batch"))?;
    let mut c = Cursor { buf: body };
    c.take(1).ok_or(malformed("no attributes"))?;
    c.varlong().ok_or(malformed("bad timestamp delta"))?;
    c.varint().ok_or(malformed("bad offset delta"))?;
    let key_len = c.varint().ok_or(malformed("bad key length"))?;
    let key = usize::try_from(key_len)
        .ok()
        .and_then(|len| c.take(len))
        .ok_or(malformed("control record without a key"))?;
    if key.len() < 4 {
        return Err(malformed("control record key shorter than 4 bytes"));
    }
    Ok(match i16::from_be_bytes([key[2], key[3]]) {
        0 => Some(ControlType::Abort),
        1 => Some(ControlType::Commit),
        _ => None,
    })
}

/// Encodes a transaction marker for `producer_id`/`producer_epoch` (base offset 0; the log
/// assigns the real one).
pub fn encode_marker(
    producer_id: i64,
    producer_epoch: i16,
    coordinator_epoch: i32,
    control: ControlType,
    timestamp_ms: i64,
) -> Result<BytesMut, BatchError> {
    let mut key = BytesMut::with_capacity(4);
    key.put_i16(0);
    key.put_i16(control.code());
    let mut value = BytesMut::with_capacity(6);
    value.put_i16(0);
    value.put_i32(coordinator_epoch);
    let record = Record {
        transactional: true,
        control: true,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id,
        producer_epoch,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: timestamp_ms,
        key: Some(Bytes::from(key)),
        value: Some(Bytes::from(value)),
        headers: Default::default(),
    };
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        [&record],
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|_| BatchError::MalformedRecord {
        index: 0,
        reason: "cannot encode the marker",
    })?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record_batch::validate_batch;

    #[test]
    fn markers_round_trip() {
        for control in [ControlType::Abort, ControlType::Commit] {
            let batch = encode_marker(42, 3, 7, control, 1000).unwrap();
            let header = validate_batch(&batch).unwrap();
            assert!(header.is_control() && header.is_transactional());
            assert_eq!((header.producer_id, header.producer_epoch), (42, 3));
            assert_eq!(header.base_sequence, -1);
            assert_eq!(header.records_count, 1);
            assert_eq!(control_type(&batch).unwrap(), Some(control));
        }
    }

    #[test]
    fn a_data_batch_has_no_control_type() {
        let batch = crate::test_kit::numbered_batch(0, 2, "k", "v", Compression::None);
        assert_eq!(control_type(&batch).unwrap(), None);
    }

    #[test]
    fn a_truncated_control_record_is_an_error() {
        let mut batch = encode_marker(1, 0, 0, ControlType::Commit, 0).unwrap();
        let len = batch.len();
        // A batch cut short inside its record.
        batch.truncate(len - 9);
        assert!(control_type(&batch).is_err());
    }
}

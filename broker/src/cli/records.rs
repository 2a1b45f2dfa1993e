//! Record batches for `produce` and `consume`: batches are built with `kafka-protocol`'s
//! encoder, and fetched batches are framed by `floe_protocol::record_batch`, decompressed
//! through `floe_protocol::compression` (bounded: fetched bytes are untrusted input) and
//! decoded by `kafka-protocol`'s decoder. Control batches (transaction markers) are never
//! delivered; under read_committed, batches of aborted transactions are skipped as Kafka's
//! consumer skips them.

use std::collections::HashSet;

use anyhow::{Context, anyhow};
use bytes::{Bytes, BytesMut};
use floe_protocol::compression::{decompress, decompressed_limit};
use floe_protocol::control::{ControlType, control_type};
use floe_protocol::record_batch::{self, BatchError, iter_batches};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// A record to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutRecord {
    /// Key (`None`: null).
    pub key: Option<Bytes>,
    /// Value (`None`: null, a tombstone).
    pub value: Option<Bytes>,
    /// Headers in order (a repeated key keeps its last value: `kafka-protocol` keeps
    /// headers in a map).
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Create time in milliseconds.
    pub timestamp: i64,
}

impl OutRecord {
    /// Bytes the record adds to a batch, roughly (for sizing batches).
    pub fn size(&self) -> usize {
        let h: usize = self
            .headers
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, Bytes::len) + 4)
            .sum();
        self.key.as_ref().map_or(0, Bytes::len) + self.value.as_ref().map_or(0, Bytes::len) + h + 16
    }
}

/// One magic-2 batch of `records` (offsets from 0; the broker assigns the real ones) from no
/// producer id, compressed with `compression`.
pub fn encode_batch(records: &[OutRecord], compression: Compression) -> anyhow::Result<Bytes> {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let offset = i64::try_from(i).unwrap_or(i64::MAX);
            Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset,
                // The encoder keeps records in one batch while offset - sequence stays the
                // same; the batch's base sequence is then -1 (no producer).
                sequence: i32::try_from(offset - 1).unwrap_or(i32::MAX),
                timestamp: r.timestamp,
                key: r.key.clone(),
                value: r.value.clone(),
                headers: r
                    .headers
                    .iter()
                    .map(|(k, v)| (StrBytes::from_string(k.clone()), v.clone()))
                    .collect::<IndexMap<_, _>>(),
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).context("encoding a record batch")?;
    Ok(buf.freeze())
}

/// A fetched record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InRecord {
    /// Offset.
    pub offset: i64,
    /// Timestamp in milliseconds.
    pub timestamp: i64,
    /// The timestamp is the broker's append time.
    pub log_append_time: bool,
    /// Key.
    pub key: Option<Bytes>,
    /// Value.
    pub value: Option<Bytes>,
    /// Headers in order.
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// What one partition's fetched `records` held.
#[derive(Debug, Default)]
pub struct Fetched {
    /// Records at or after the fetch offset, control records and aborted ones left out.
    pub records: Vec<InRecord>,
    /// The offset to fetch next (past every whole batch seen, control batches included).
    pub next_offset: i64,
}

/// The read_committed filter of one partition: aborted transactions the Fetch response
/// listed (producer id, first offset), and the producers whose aborted transaction is open at
/// the current position.
#[derive(Debug, Default)]
pub struct AbortFilter {
    pending: Vec<(i64, i64)>,
    aborting: HashSet<i64>,
}

impl AbortFilter {
    /// A filter for the aborted transactions of one Fetch response partition.
    pub fn new(mut aborted: Vec<(i64, i64)>) -> AbortFilter {
        aborted.sort_by_key(|&(_, first)| std::cmp::Reverse(first));
        AbortFilter {
            pending: aborted,
            aborting: HashSet::new(),
        }
    }

    /// Whether the batch (producer id, last offset, transactional) is aborted data; a
    /// batch's aborted transactions start counting once the batch reaches their first offset.
    fn skips(&mut self, producer_id: i64, last_offset: i64, transactional: bool) -> bool {
        while let Some(&(pid, first)) = self.pending.last() {
            if first > last_offset {
                break;
            }
            self.aborting.insert(pid);
            self.pending.pop();
        }
        transactional && self.aborting.contains(&producer_id)
    }

    fn ended(&mut self, producer_id: i64) {
        self.aborting.remove(&producer_id);
    }
}

/// Decodes a partition's fetched `data` from `fetch_offset`. A batch cut off at the end
/// (the response's size limit) is left for the next fetch; `filter` is `Some` under
/// read_committed.
pub fn decode_fetched(
    data: &Bytes,
    fetch_offset: i64,
    mut filter: Option<&mut AbortFilter>,
) -> anyhow::Result<Fetched> {
    let mut out = Fetched {
        records: Vec::new(),
        next_offset: fetch_offset,
    };
    for item in iter_batches(data) {
        let (header, range) = match item {
            Ok(batch) => batch,
            Err(BatchError::Truncated { .. }) => break,
            Err(e) => {
                return Err(anyhow!(
                    "malformed record batch at offset {}: {e}",
                    out.next_offset
                ));
            }
        };
        let batch = data.slice(range);
        let next = header.next_offset();
        let aborted = match filter.as_deref_mut() {
            Some(f) => f.skips(
                header.producer_id,
                header.last_offset(),
                header.is_transactional(),
            ),
            None => false,
        };
        if header.is_control() {
            if control_type(&batch)? == Some(ControlType::Abort)
                && let Some(f) = filter.as_deref_mut()
            {
                f.ended(header.producer_id);
            }
        } else if !aborted && next > fetch_offset {
            for r in decode_batch(batch)? {
                if r.offset >= fetch_offset {
                    out.records.push(r);
                }
            }
        }
        out.next_offset = out.next_offset.max(next);
    }
    Ok(out)
}

/// Decodes one whole batch, decompressing within `floe_protocol`'s bound.
fn decode_batch(mut batch: Bytes) -> anyhow::Result<Vec<InRecord>> {
    let decompress_bounded = |records: &mut Bytes, codec: Compression| -> anyhow::Result<Bytes> {
        let codec = match codec {
            Compression::None => return Ok(records.clone()),
            Compression::Gzip => record_batch::Compression::Gzip,
            Compression::Snappy => record_batch::Compression::Snappy,
            Compression::Lz4 => record_batch::Compression::Lz4,
            Compression::Zstd => record_batch::Compression::Zstd,
        };
        let out = decompress(codec, &records[..], decompressed_limit(records.len()))?;
        Ok(Bytes::from(out))
    };
    let set =
        RecordBatchDecoder::decode_with_custom_compression(&mut batch, Some(decompress_bounded))
            .context("decoding a record batch")?;
    Ok(set
        .records
        .into_iter()
        .filter(|r| !r.control)
        .map(|r| InRecord {
            offset: r.offset,
            timestamp: r.timestamp,
            log_append_time: r.timestamp_type == TimestampType::LogAppend,
            key: r.key,
            value: r.value,
            headers: r
                .headers
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use floe_protocol::control::encode_marker;

    fn rec(i: usize) -> OutRecord {
        OutRecord {
            key: Some(Bytes::from(format!("k{i}"))),
            value: (i % 3 != 2).then(|| Bytes::from(format!("v{i}"))),
            headers: vec![
                ("h".into(), Some(Bytes::from(format!("{i}")))),
                ("n".into(), None),
            ],
            timestamp: 1_700_000_000_000 + i as i64,
        }
    }

    fn at(batch: Bytes, base: i64) -> Bytes {
        let mut b = BytesMut::from(&batch[..]);
        record_batch::set_base_offset(&mut b, base).expect("rewrite");
        b.freeze()
    }

    #[test]
    fn every_codec_round_trips_keys_values_and_headers() {
        let records: Vec<OutRecord> = (0..20).map(rec).collect();
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let batch = at(encode_batch(&records, codec).expect("encode"), 100);
            let fetched = decode_fetched(&batch, 105, None).expect("decode");
            assert_eq!(fetched.next_offset, 120, "{codec:?}");
            assert_eq!(fetched.records.len(), 15, "{codec:?}");
            for (r, want) in fetched.records.iter().zip(&records[5..]) {
                assert_eq!(r.key, want.key);
                assert_eq!(r.value, want.value);
                assert_eq!(r.headers, want.headers);
                assert_eq!(r.timestamp, want.timestamp);
            }
        }
    }

    #[test]
    fn a_cut_off_batch_waits_for_the_next_fetch() {
        let first = at(
            encode_batch(&[rec(0)], Compression::None).expect("encode"),
            0,
        );
        let second = at(
            encode_batch(&[rec(1)], Compression::None).expect("encode"),
            1,
        );
        let mut data = BytesMut::from(&first[..]);
        data.extend_from_slice(&second[..second.len() - 3]);
        let fetched = decode_fetched(&data.freeze(), 0, None).expect("decode");
        assert_eq!(fetched.records.len(), 1);
        assert_eq!(fetched.next_offset, 1);
    }

    #[test]
    fn a_corrupt_batch_is_an_error() {
        let batch = encode_batch(&[rec(0)], Compression::None).expect("encode");
        let mut bad = BytesMut::from(&batch[..]);
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        assert!(decode_fetched(&bad.freeze(), 0, None).is_err());
    }

    /// A transactional batch of producer 7 at `base`, then its marker.
    fn txn(base: i64, control: ControlType) -> Vec<u8> {
        let mut records: Vec<Record> = Vec::new();
        let r = rec(base as usize);
        records.push(Record {
            transactional: true,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: 7,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence: 0,
            timestamp: r.timestamp,
            key: r.key,
            value: r.value,
            headers: IndexMap::new(),
        });
        let mut data = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut data, &records, &options).expect("encode");
        record_batch::set_base_offset(&mut data, base).expect("rewrite");
        let mut marker = encode_marker(7, 0, 0, control, 0).expect("marker");
        record_batch::set_base_offset(&mut marker, base + 1).expect("rewrite");
        data.extend_from_slice(&marker);
        data.to_vec()
    }

    #[test]
    fn markers_are_never_delivered_and_aborted_data_is_skipped_when_committed_only() {
        let mut data = txn(0, ControlType::Abort);
        data.extend(txn(2, ControlType::Commit));
        let data = Bytes::from(data);

        let all = decode_fetched(&data, 0, None).expect("decode");
        assert_eq!(
            all.records.iter().map(|r| r.offset).collect::<Vec<_>>(),
            [0, 2]
        );
        assert_eq!(all.next_offset, 4);

        let mut filter = AbortFilter::new(vec![(7, 0)]);
        let committed = decode_fetched(&data, 0, Some(&mut filter)).expect("decode");
        assert_eq!(
            committed
                .records
                .iter()
                .map(|r| r.offset)
                .collect::<Vec<_>>(),
            [2]
        );
        assert_eq!(committed.next_offset, 4);
    }
}

//! How a coordinator reaches its internal topic (`__consumer_offsets` for the group
//! coordinator, `__transaction_state` for the transaction coordinator): create it on first
//! use, append a batch, make it durable, read it back on start. Behind [`InternalLog`] so
//! the state machines' tests run against memory; the broker uses [`StorageInternalLog`] over
//! the topic's partition logs.
//!
//! Replay ([`replay`]) reads every partition from its start, batch by batch, and hands each
//! record (key, value or tombstone) to the caller in log order, with the producer of a
//! transactional batch, and each transaction marker; later records win, which is also what
//! compaction keeps.

use std::sync::Arc;

use crate::topics::Topics;
use bytes::{Bytes, BytesMut};
use floe_protocol::control::{ControlType, control_type};
use floe_protocol::record_batch::iter_batches;
use floe_storage::{AppendError, PartitionLog, ReadError, StorageError};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// Why an internal topic could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// The topic could not be created.
    #[error("cannot create {topic}: {message}")]
    Create {
        /// The topic.
        topic: String,
        /// Why.
        message: String,
    },
    /// A partition of the topic is not open.
    #[error("partition {0} of the internal topic is not open")]
    MissingPartition(i32),
    /// An append failed.
    #[error("failed to append to partition {partition} of the internal topic")]
    Append {
        /// Partition.
        partition: i32,
        /// Why.
        #[source]
        source: AppendError,
    },
    /// An fdatasync failed.
    #[error("failed to sync partition {partition} of the internal topic")]
    Sync {
        /// Partition.
        partition: i32,
        /// Why.
        #[source]
        source: StorageError,
    },
    /// A read failed.
    #[error("failed to read partition {partition} of the internal topic")]
    Read {
        /// Partition.
        partition: i32,
        /// Why.
        #[source]
        source: ReadError,
    },
    /// A batch in the log does not decode.
    #[error(
        "undecodable batch in partition {partition} of the internal topic at offset {offset}: {message}"
    )]
    Corrupt {
        /// Partition.
        partition: i32,
        /// Offset of the batch.
        offset: i64,
        /// What is wrong.
        message: String,
    },
    /// Encoding a batch failed.
    #[error("cannot encode a record batch: {0}")]
    Encode(String),
    /// The blocking sync task died.
    #[error("sync task failed: {0}")]
    Task(String),
}

impl PersistError {
    /// Whether the failure is the batch being too large (INVALID_COMMIT_OFFSET_SIZE).
    pub fn is_too_large(&self) -> bool {
        matches!(
            self,
            PersistError::Append {
                source: AppendError::RecordTooLarge { .. },
                ..
            }
        )
    }
}

/// The partitions of an internal topic.
pub trait InternalLog: Send + Sync {
    /// Number of partitions.
    fn partition_count(&self) -> i32;
    /// Appends one record batch; returns its base offset.
    fn append(&self, partition: i32, batch: BytesMut, now_ms: i64) -> Result<i64, PersistError>;
    /// Appends a transaction marker ending `producer_id`'s transaction in the partition.
    fn append_marker(
        &self,
        partition: i32,
        producer_id: i64,
        producer_epoch: i16,
        control: ControlType,
        now_ms: i64,
    ) -> Result<i64, PersistError>;
    /// Whether `producer_id` has a transaction open in the partition.
    fn has_open_transaction(&self, partition: i32, producer_id: i64) -> bool;
    /// Makes everything appended to the partition durable. Blocking.
    fn sync(&self, partition: i32) -> Result<(), PersistError>;
    /// First offset of the partition.
    fn start_offset(&self, partition: i32) -> Result<i64, PersistError>;
    /// Whole batches from `offset` (empty at the end).
    fn read(&self, partition: i32, offset: i64) -> Result<Bytes, PersistError>;
}

/// An internal topic in the broker's storage.
pub struct StorageInternalLog {
    logs: Vec<Arc<PartitionLog>>,
}

impl StorageInternalLog {
    /// Over these partition logs (index = partition).
    pub fn new(logs: Vec<Arc<PartitionLog>>) -> StorageInternalLog {
        StorageInternalLog { logs }
    }

    /// The partition logs of the existing topic `name`.
    pub fn of(
        topics: &Topics,
        name: &str,
        partitions: i32,
    ) -> Result<Arc<dyn InternalLog>, PersistError> {
        let logs = (0..partitions)
            .map(|p| {
                topics
                    .partition(name, p)
                    .ok_or(PersistError::MissingPartition(p))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Arc::new(StorageInternalLog::new(logs)))
    }

    fn log(&self, partition: i32) -> Result<&Arc<PartitionLog>, PersistError> {
        usize::try_from(partition)
            .ok()
            .and_then(|p| self.logs.get(p))
            .ok_or(PersistError::MissingPartition(partition))
    }
}

const READ_CHUNK: usize = 1 << 20;

impl InternalLog for StorageInternalLog {
    fn partition_count(&self) -> i32 {
        self.logs.len() as i32
    }

    fn append(&self, partition: i32, batch: BytesMut, now_ms: i64) -> Result<i64, PersistError> {
        self.log(partition)?
            .append_now(batch, now_ms)
            .map(|info| info.base_offset)
            .map_err(|source| PersistError::Append { partition, source })
    }

    fn append_marker(
        &self,
        partition: i32,
        producer_id: i64,
        producer_epoch: i16,
        control: ControlType,
        now_ms: i64,
    ) -> Result<i64, PersistError> {
        self.log(partition)?
            .append_marker(producer_id, producer_epoch, 0, control, now_ms)
            .map(|info| info.base_offset)
            .map_err(|source| PersistError::Append { partition, source })
    }

    fn has_open_transaction(&self, partition: i32, producer_id: i64) -> bool {
        self.log(partition).is_ok_and(|log| {
            log.open_transactions()
                .iter()
                .any(|(producer, _)| *producer == producer_id)
        })
    }

    fn sync(&self, partition: i32) -> Result<(), PersistError> {
        self.log(partition)?
            .sync()
            .map_err(|source| PersistError::Sync { partition, source })
    }

    fn start_offset(&self, partition: i32) -> Result<i64, PersistError> {
        Ok(self.log(partition)?.log_start_offset())
    }

    fn read(&self, partition: i32, offset: i64) -> Result<Bytes, PersistError> {
        self.log(partition)?
            .read(offset, READ_CHUNK)
            .map(|r| r.records)
            .map_err(|source| PersistError::Read { partition, source })
    }
}

/// One batch of records (key, value or `None` for a tombstone), encoded as Kafka writes
/// them: magic 2, uncompressed, no producer id.
pub fn encode_batch(
    records: &[(Bytes, Option<Bytes>)],
    now_ms: i64,
) -> Result<BytesMut, PersistError> {
    encode_batch_as(records, None, now_ms)
}

/// [`encode_batch`] as part of the transaction of `producer` (id, epoch): a transactional
/// batch without sequence numbers, as a coordinator writes one (TxnOffsetCommit).
pub fn encode_batch_as(
    records: &[(Bytes, Option<Bytes>)],
    producer: Option<(i64, i16)>,
    now_ms: i64,
) -> Result<BytesMut, PersistError> {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: producer.is_some(),
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: producer.map_or(-1, |p| p.0),
            producer_epoch: producer.map_or(-1, |p| p.1),
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder keeps records in one batch only while offset - sequence is
            // constant; this makes the batch's base sequence -1 (no producer), as Kafka's.
            sequence: i as i32 - 1,
            timestamp: now_ms,
            key: Some(key.clone()),
            value: value.clone(),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| PersistError::Encode(e.to_string()))?;
    Ok(buf)
}

/// What [`replay`] hands over, in log order.
#[derive(Debug)]
pub enum Replayed<'a> {
    /// A record: key, value (`None` for a tombstone), and the producer id of its
    /// transaction if it was written in one (it counts only once that commits).
    Record {
        /// Key.
        key: &'a [u8],
        /// Value.
        value: Option<&'a [u8]>,
        /// The producer whose transaction wrote it.
        transaction: Option<i64>,
    },
    /// A marker ending `producer_id`'s transaction.
    Marker {
        /// The producer.
        producer_id: i64,
        /// Commit or abort.
        control: ControlType,
    },
}

/// Reads every record and marker of one partition in log order.
pub fn replay(
    log: &dyn InternalLog,
    partition: i32,
    mut apply: impl FnMut(Replayed<'_>),
) -> Result<(), PersistError> {
    let mut offset = log.start_offset(partition)?;
    loop {
        let chunk = log.read(partition, offset)?;
        if chunk.is_empty() {
            return Ok(());
        }
        let mut progressed = false;
        for item in iter_batches(&chunk) {
            let (header, range) = item.map_err(|e| PersistError::Corrupt {
                partition,
                offset,
                message: e.to_string(),
            })?;
            let next = header.next_offset();
            if next <= offset {
                continue;
            }
            if header.is_control() {
                let control = control_type(&chunk[range]).map_err(|e| PersistError::Corrupt {
                    partition,
                    offset: header.base_offset,
                    message: e.to_string(),
                })?;
                if let Some(control) = control
                    && header.base_offset >= offset
                {
                    apply(Replayed::Marker {
                        producer_id: header.producer_id,
                        control,
                    });
                }
            } else {
                let transaction = header.is_transactional().then_some(header.producer_id);
                let mut bytes = chunk.slice(range);
                let set =
                    RecordBatchDecoder::decode(&mut bytes).map_err(|e| PersistError::Corrupt {
                        partition,
                        offset: header.base_offset,
                        message: e.to_string(),
                    })?;
                for r in &set.records {
                    // Records below `offset` were applied from an earlier read.
                    if r.offset < offset {
                        continue;
                    }
                    if let Some(key) = &r.key {
                        apply(Replayed::Record {
                            key,
                            value: r.value.as_deref(),
                            transaction,
                        });
                    }
                }
            }
            offset = next;
            progressed = true;
        }
        if !progressed {
            return Ok(());
        }
    }
}

#[cfg(test)]
pub mod memory {
    //! An in-memory [`InternalLog`] for tests, with a switch to make syncs fail.

    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::*;

    /// Partitions as vectors of batches.
    #[derive(Default)]
    pub struct MemoryLog {
        parts: Mutex<Vec<Vec<(i64, Bytes)>>>,
        /// Syncs fail while set.
        pub fail_sync: AtomicBool,
        /// Completed syncs.
        pub syncs: AtomicUsize,
    }

    impl MemoryLog {
        /// `n` empty partitions.
        pub fn new(n: usize) -> MemoryLog {
            MemoryLog {
                parts: Mutex::new(vec![Vec::new(); n]),
                ..MemoryLog::default()
            }
        }
    }

    impl InternalLog for MemoryLog {
        fn partition_count(&self) -> i32 {
            self.parts.lock().unwrap().len() as i32
        }

        fn append(
            &self,
            partition: i32,
            mut batch: BytesMut,
            _now_ms: i64,
        ) -> Result<i64, PersistError> {
            let mut parts = self.parts.lock().unwrap();
            let part = &mut parts[partition as usize];
            let base = part
                .last()
                .map(|(_, b)| {
                    let h = floe_protocol::record_batch::BatchHeader::parse(b).unwrap();
                    h.next_offset()
                })
                .unwrap_or(0);
            floe_protocol::record_batch::set_base_offset(&mut batch, base).unwrap();
            part.push((base, batch.freeze()));
            Ok(base)
        }

        fn append_marker(
            &self,
            partition: i32,
            producer_id: i64,
            producer_epoch: i16,
            control: ControlType,
            now_ms: i64,
        ) -> Result<i64, PersistError> {
            let batch = floe_protocol::control::encode_marker(
                producer_id,
                producer_epoch,
                0,
                control,
                now_ms,
            )
            .map_err(|e| PersistError::Encode(e.to_string()))?;
            self.append(partition, batch, now_ms)
        }

        fn has_open_transaction(&self, partition: i32, producer_id: i64) -> bool {
            // A transactional batch of the producer after its last marker.
            let parts = self.parts.lock().unwrap();
            let mut open = false;
            for (_, b) in &parts[partition as usize] {
                let h = floe_protocol::record_batch::BatchHeader::parse(b).unwrap();
                if h.producer_id == producer_id && h.is_transactional() {
                    open = !h.is_control();
                }
            }
            open
        }

        fn sync(&self, partition: i32) -> Result<(), PersistError> {
            if self.fail_sync.load(Ordering::SeqCst) {
                return Err(PersistError::Sync {
                    partition,
                    source: StorageError::LogFailed {
                        path: "memory".into(),
                    },
                });
            }
            self.syncs.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }

        fn start_offset(&self, _partition: i32) -> Result<i64, PersistError> {
            Ok(0)
        }

        fn read(&self, partition: i32, offset: i64) -> Result<Bytes, PersistError> {
            let parts = self.parts.lock().unwrap();
            let mut out = BytesMut::new();
            for (_, b) in &parts[partition as usize] {
                let h = floe_protocol::record_batch::BatchHeader::parse(b).unwrap();
                if h.next_offset() > offset {
                    out.extend_from_slice(b);
                }
            }
            Ok(out.freeze())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_of_records_is_one_record_batch_without_producer() {
        let records: Vec<(Bytes, Option<Bytes>)> = (0..3)
            .map(|i| {
                (
                    Bytes::from(format!("k{i}")),
                    if i == 2 {
                        None
                    } else {
                        Some(Bytes::from_static(b"v"))
                    },
                )
            })
            .collect();
        let batch = encode_batch(&records, 1000).unwrap();
        let headers: Vec<_> = iter_batches(&batch).map(|b| b.unwrap().0).collect();
        assert_eq!(headers.len(), 1);
        assert_eq!(headers[0].records_count, 3);
        assert_eq!(headers[0].base_sequence, -1);
        assert_eq!(headers[0].producer_id, -1);
        floe_protocol::record_batch::validate_batches(&batch).unwrap();

        let log = memory::MemoryLog::new(1);
        log.append(0, batch.clone(), 0).unwrap();
        log.append(0, batch, 0).unwrap();
        let mut seen = Vec::new();
        replay(&log, 0, |r| {
            if let Replayed::Record { key, value, .. } = r {
                seen.push((key.to_vec(), value.is_some()));
            }
        })
        .unwrap();
        assert_eq!(seen.len(), 6);
        assert_eq!(seen[2], (b"k2".to_vec(), false));
    }
}

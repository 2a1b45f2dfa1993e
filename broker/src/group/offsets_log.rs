//! How the coordinator reaches `__consumer_offsets`: append a batch, make it durable, read
//! it back on start. Behind [`OffsetsLog`] so the state machine's tests run against memory;
//! the broker uses [`StorageOffsetsLog`] over the topic's partition logs.
//!
//! Replay ([`replay`]) reads every partition from its start, batch by batch, and hands each
//! record (key, value or tombstone) to the caller in log order; later records win, which is
//! also what compaction keeps.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use floe_protocol::record_batch::iter_batches;
use floe_storage::{AppendError, PartitionLog, ReadError, StorageError};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// Why `__consumer_offsets` could not be written or read.
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
    #[error("partition {0} of __consumer_offsets is not open")]
    MissingPartition(i32),
    /// An append failed.
    #[error("failed to append to __consumer_offsets-{partition}")]
    Append {
        /// Partition.
        partition: i32,
        /// Why.
        #[source]
        source: AppendError,
    },
    /// An fdatasync failed.
    #[error("failed to sync __consumer_offsets-{partition}")]
    Sync {
        /// Partition.
        partition: i32,
        /// Why.
        #[source]
        source: StorageError,
    },
    /// A read failed.
    #[error("failed to read __consumer_offsets-{partition}")]
    Read {
        /// Partition.
        partition: i32,
        /// Why.
        #[source]
        source: ReadError,
    },
    /// A batch in the log does not decode.
    #[error("undecodable batch in __consumer_offsets-{partition} at offset {offset}: {message}")]
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

/// The partitions of `__consumer_offsets`.
pub trait OffsetsLog: Send + Sync {
    /// Number of partitions.
    fn partition_count(&self) -> i32;
    /// Appends one record batch; returns its base offset.
    fn append(&self, partition: i32, batch: BytesMut, now_ms: i64) -> Result<i64, PersistError>;
    /// Makes everything appended to the partition durable. Blocking.
    fn sync(&self, partition: i32) -> Result<(), PersistError>;
    /// First offset of the partition.
    fn start_offset(&self, partition: i32) -> Result<i64, PersistError>;
    /// Whole batches from `offset` (empty at the end).
    fn read(&self, partition: i32, offset: i64) -> Result<Bytes, PersistError>;
}

/// `__consumer_offsets` in the broker's storage.
pub struct StorageOffsetsLog {
    logs: Vec<Arc<PartitionLog>>,
}

impl StorageOffsetsLog {
    /// Over these partition logs (index = partition).
    pub fn new(logs: Vec<Arc<PartitionLog>>) -> StorageOffsetsLog {
        StorageOffsetsLog { logs }
    }

    fn log(&self, partition: i32) -> Result<&Arc<PartitionLog>, PersistError> {
        usize::try_from(partition)
            .ok()
            .and_then(|p| self.logs.get(p))
            .ok_or(PersistError::MissingPartition(partition))
    }
}

const READ_CHUNK: usize = 1 << 20;

impl OffsetsLog for StorageOffsetsLog {
    fn partition_count(&self) -> i32 {
        self.logs.len() as i32
    }

    fn append(&self, partition: i32, batch: BytesMut, now_ms: i64) -> Result<i64, PersistError> {
        self.log(partition)?
            .append_now(batch, now_ms)
            .map(|info| info.base_offset)
            .map_err(|source| PersistError::Append { partition, source })
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
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
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

/// Reads every record of one partition in log order: `(key, value)`, value `None` for a
/// tombstone. Control batches (transaction markers) are skipped.
pub fn replay(
    log: &dyn OffsetsLog,
    partition: i32,
    mut apply: impl FnMut(&[u8], Option<&[u8]>),
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
            if !header.is_control() {
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
                        apply(key, r.value.as_deref());
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
    //! An in-memory [`OffsetsLog`] for tests, with a switch to make syncs fail.

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

    impl OffsetsLog for MemoryLog {
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
        replay(&log, 0, |k, v| seen.push((k.to_vec(), v.is_some()))).unwrap();
        assert_eq!(seen.len(), 6);
        assert_eq!(seen[2], (b"k2".to_vec(), false));
    }
}

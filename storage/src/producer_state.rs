//! Idempotent-producer state of one partition, with Kafka's semantics: per producer id the
//! current epoch and the last five batches' sequence ranges and offsets, used to reject
//! out-of-order sequences and fenced epochs and to answer duplicates with their original
//! offsets.
//!
//! Durability protocol: the state is derived from the log. Snapshots
//! (`{offset:020}.snapshot`, the state after every batch below `offset`) are written when a
//! segment is rolled (after the rolled segment is synced) and on clean shutdown (after the log
//! is synced), each with [`crate::io::Io::write_atomic`]. On open, the newest snapshot at or below
//! the recovered log end is loaded and the batch headers after it are replayed; without a
//! usable snapshot the whole log is replayed. A snapshot is therefore never ahead of durable
//! data, and losing one only costs replay time.
//!
//! Transactions: a producer's first transactional batch in the partition opens its
//! transaction there (`current_txn_first_offset`); its control batch (commit or abort marker)
//! closes it. The open transactions' first offsets bound the last stable offset; an aborted
//! transaction becomes an [`AbortedTxn`] for the partition's aborted-transaction index
//! ([`crate::txn_index`]).
//!
//! Snapshot file format (version 1): a header line
//! `floe-producer-snapshot 1 <crc32c of the body, 8 lowercase hex digits>\n` followed by a
//! JSON body `{"offset": <i64>, "producers": [<ProducerEntry>...]}` where a `ProducerEntry`
//! is `{"producer_id", "epoch", "last_timestamp", "batches": [{"first_seq", "last_seq",
//! "base_offset", "last_offset"}...], "current_txn_first_offset": <i64 or null>}` (the last
//! field may be absent: snapshots written before transactions have none).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};

use floe_protocol::control::ControlType;
use floe_protocol::record_batch::{BatchHeader, increment_sequence};
use serde::{Deserialize, Serialize};

use crate::error::{Corruption, StorageError};
use crate::io;

/// How many recent batches per producer are remembered for duplicate detection (Kafka's
/// `max.in.flight.requests.per.connection` limit for idempotence).
pub const MAX_CACHED_BATCHES: usize = 5;
/// Suffix of producer snapshot files.
pub const SNAPSHOT_SUFFIX: &str = ".snapshot";
/// How many snapshot files are kept per partition.
const SNAPSHOTS_KEPT: usize = 2;
const SNAPSHOT_MAGIC: &str = "floe-producer-snapshot 1";

/// Sequence range and offsets of one appended batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchMetadata {
    /// Sequence of the first record.
    pub first_seq: i32,
    /// Sequence of the last record.
    pub last_seq: i32,
    /// Offset assigned to the first record.
    pub base_offset: i64,
    /// Offset assigned to the last record.
    pub last_offset: i64,
}

/// What a partition knows about one producer id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerEntry {
    /// The producer id.
    pub producer_id: i64,
    /// Current epoch; batches with a lower one are fenced.
    pub epoch: i16,
    /// `maxTimestamp` of the last batch.
    pub last_timestamp: i64,
    /// The most recent batches, oldest first, at most [`MAX_CACHED_BATCHES`].
    pub batches: VecDeque<BatchMetadata>,
    /// First offset of the producer's open transaction in this partition.
    #[serde(default)]
    pub current_txn_first_offset: Option<i64>,
}

/// A transaction aborted in this partition: read_committed consumers skip the producer's
/// records from `first_offset` up to the abort marker at `last_offset`. Kafka's
/// `AbortedTxn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    /// The producer.
    pub producer_id: i64,
    /// Offset of the transaction's first record in the partition.
    pub first_offset: i64,
    /// Offset of the abort marker.
    pub last_offset: i64,
    /// The last stable offset right after the marker.
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    /// Whether a batch holds records of this transaction: a transactional data batch of the
    /// producer between the transaction's first offset and its marker.
    pub fn contains(&self, header: &BatchHeader) -> bool {
        header.is_transactional()
            && !header.is_control()
            && header.producer_id == self.producer_id
            && self.first_offset <= header.base_offset
            && header.base_offset < self.last_offset
    }
}

/// A transaction that a marker in the current append ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CompletedTxn {
    producer_id: i64,
    first_offset: i64,
    marker_offset: i64,
    control: ControlType,
}

/// Working copies of the producer entries an append touches, and the transactions its
/// markers end; the state changes only when the append succeeded
/// ([`ProducerStateManager::commit`]).
#[derive(Debug, Default)]
pub(crate) struct Pending {
    entries: HashMap<i64, ProducerEntry>,
    completed: Vec<CompletedTxn>,
}

impl Pending {
    pub(crate) fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.entries.get(&producer_id)
    }
}

impl ProducerEntry {
    fn new(producer_id: i64, epoch: i16) -> Self {
        ProducerEntry {
            producer_id,
            epoch,
            last_timestamp: -1,
            batches: VecDeque::new(),
            current_txn_first_offset: None,
        }
    }

    /// Sequence of the last appended record, if any batch is remembered.
    pub fn last_seq(&self) -> Option<i32> {
        self.batches.back().map(|b| b.last_seq)
    }

    fn find_duplicate(&self, header: &BatchHeader) -> Option<BatchMetadata> {
        if header.producer_epoch != self.epoch {
            return None;
        }
        let (first, last) = (header.base_sequence, header.last_sequence());
        self.batches
            .iter()
            .find(|b| b.first_seq == first && b.last_seq == last)
            .copied()
    }

    /// Records an appended batch (`header` carries its assigned base offset). A marker
    /// ends the producer's open transaction, which is returned with its first offset.
    fn apply(&mut self, header: &BatchHeader) -> Option<i64> {
        if header.producer_epoch != self.epoch {
            self.epoch = header.producer_epoch;
            self.batches.clear();
        }
        self.last_timestamp = header.max_timestamp;
        if header.is_control() {
            // Transaction markers carry no sequence numbers.
            return self.current_txn_first_offset.take();
        }
        if header.is_transactional() && self.current_txn_first_offset.is_none() {
            self.current_txn_first_offset = Some(header.base_offset);
        }
        if header.base_sequence == floe_protocol::record_batch::NO_SEQUENCE {
            return None;
        }
        self.batches.push_back(BatchMetadata {
            first_seq: header.base_sequence,
            last_seq: header.last_sequence(),
            base_offset: header.base_offset,
            last_offset: header.last_offset(),
        });
        while self.batches.len() > MAX_CACHED_BATCHES {
            self.batches.pop_front();
        }
        None
    }
}

/// Why a producer's batch is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProducerError {
    /// The batch's first sequence does not follow the producer's last one.
    #[error(
        "out of order sequence for producer {producer_id} epoch {epoch}: expected {expected_seq}, got {found_seq}"
    )]
    OutOfOrderSequence {
        /// Producer id.
        producer_id: i64,
        /// Producer epoch of the batch.
        epoch: i16,
        /// The sequence the partition expected.
        expected_seq: i32,
        /// The batch's first sequence.
        found_seq: i32,
    },
    /// The batch's epoch is older than the producer's current one (the producer is fenced).
    #[error("producer {producer_id} epoch {found_epoch} is fenced by epoch {current_epoch}")]
    InvalidProducerEpoch {
        /// Producer id.
        producer_id: i64,
        /// The partition's current epoch for this producer.
        current_epoch: i16,
        /// The batch's epoch.
        found_epoch: i16,
    },
}

/// Outcome of checking a batch against producer state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// The batch is new and in sequence.
    Append,
    /// The batch was appended before, with these offsets.
    Duplicate(BatchMetadata),
}

/// All producers of one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ProducerStateManager {
    producers: HashMap<i64, ProducerEntry>,
    /// Open transactions: first offset -> producer id (derived from `producers`).
    ongoing: BTreeMap<i64, i64>,
}

impl ProducerStateManager {
    fn from_entries(producers: HashMap<i64, ProducerEntry>) -> ProducerStateManager {
        let ongoing = producers
            .values()
            .filter_map(|p| p.current_txn_first_offset.map(|o| (o, p.producer_id)))
            .collect();
        ProducerStateManager { producers, ongoing }
    }

    pub(crate) fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// First offset of the oldest open transaction: the last stable offset cannot pass it.
    pub(crate) fn first_unstable_offset(&self) -> Option<i64> {
        self.ongoing.keys().next().copied()
    }

    /// Producers with an open transaction here, and the transactions' first offsets.
    pub(crate) fn open_transactions(&self) -> Vec<(i64, i64)> {
        self.ongoing.iter().map(|(&o, &p)| (p, o)).collect()
    }

    /// Every producer entry (DescribeProducers).
    pub(crate) fn entries(&self) -> impl Iterator<Item = &ProducerEntry> {
        self.producers.values()
    }

    /// Checks `header` (a batch with a producer id) against `entry`, the producer's state
    /// including earlier batches of the same append.
    pub(crate) fn check(
        header: &BatchHeader,
        entry: Option<&ProducerEntry>,
    ) -> Result<Check, ProducerError> {
        let producer_id = header.producer_id;
        let epoch = header.producer_epoch;
        let first = header.base_sequence;
        let out_of_order = |expected_seq| ProducerError::OutOfOrderSequence {
            producer_id,
            epoch,
            expected_seq,
            found_seq: first,
        };
        // A coordinator's transactional batch (TxnOffsetCommit) carries no sequence.
        let unsequenced = first == floe_protocol::record_batch::NO_SEQUENCE;
        let Some(entry) = entry else {
            if header.is_control() || first == 0 || unsequenced {
                return Ok(Check::Append);
            }
            return Err(out_of_order(0));
        };
        if let Some(duplicate) = entry.find_duplicate(header) {
            return Ok(Check::Duplicate(duplicate));
        }
        if epoch < entry.epoch {
            return Err(ProducerError::InvalidProducerEpoch {
                producer_id,
                current_epoch: entry.epoch,
                found_epoch: epoch,
            });
        }
        if header.is_control() || unsequenced {
            return Ok(Check::Append);
        }
        let expected = match entry.last_seq() {
            Some(last) if epoch == entry.epoch => increment_sequence(last, 1),
            // A new epoch, or an epoch with no batch yet, starts at sequence 0.
            _ => 0,
        };
        if first != expected {
            return Err(out_of_order(expected));
        }
        Ok(Check::Append)
    }

    /// Applies an appended batch to `pending` (working copies of entries touched by the
    /// current append), starting from the committed state. `control` is the marker's type
    /// for a control batch.
    pub(crate) fn apply_pending(
        &self,
        pending: &mut Pending,
        header: &BatchHeader,
        control: Option<ControlType>,
    ) {
        let ended = pending
            .entries
            .entry(header.producer_id)
            .or_insert_with(|| {
                self.producers
                    .get(&header.producer_id)
                    .cloned()
                    .unwrap_or_else(|| {
                        ProducerEntry::new(header.producer_id, header.producer_epoch)
                    })
            })
            .apply(header);
        if let (Some(first_offset), Some(control)) = (ended, control) {
            pending.completed.push(CompletedTxn {
                producer_id: header.producer_id,
                first_offset,
                marker_offset: header.base_offset,
                control,
            });
        }
    }

    /// Makes the working copies of a successful append the committed state; returns the
    /// transactions its markers aborted.
    pub(crate) fn commit(&mut self, pending: Pending) -> Vec<AbortedTxn> {
        for (producer_id, entry) in pending.entries {
            let before = self
                .producers
                .get(&producer_id)
                .and_then(|e| e.current_txn_first_offset);
            if before != entry.current_txn_first_offset {
                if let Some(first) = before {
                    self.ongoing.remove(&first);
                }
                if let Some(first) = entry.current_txn_first_offset {
                    self.ongoing.insert(first, producer_id);
                }
            }
            self.producers.insert(producer_id, entry);
        }
        let mut aborted = Vec::new();
        for txn in pending.completed {
            if txn.control == ControlType::Abort {
                aborted.push(AbortedTxn {
                    producer_id: txn.producer_id,
                    first_offset: txn.first_offset,
                    last_offset: txn.marker_offset,
                    last_stable_offset: self
                        .first_unstable_offset()
                        .map_or(txn.marker_offset + 1, |f| f.min(txn.marker_offset + 1)),
                });
            }
        }
        aborted
    }

    /// Applies a batch found in the log during recovery (no checks, as in Kafka); returns
    /// the transaction it aborted, if it is an abort marker.
    pub(crate) fn replay(
        &mut self,
        header: &BatchHeader,
        control: Option<ControlType>,
    ) -> Option<AbortedTxn> {
        if !header.has_producer_id() {
            return None;
        }
        let mut pending = Pending::default();
        self.apply_pending(&mut pending, header, control);
        self.commit(pending).pop()
    }
}

#[derive(Serialize, Deserialize)]
struct SnapshotBody {
    offset: i64,
    producers: Vec<ProducerEntry>,
}

/// Path of the snapshot taken at `offset`.
pub fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    crate::segment::segment_file(dir, offset, SNAPSHOT_SUFFIX)
}

/// Offsets of the snapshot files in `dir`, ascending.
pub(crate) fn list_snapshots(dir: &Path) -> Result<Vec<i64>, StorageError> {
    let mut offsets: Vec<i64> = io::list_dir(dir)?
        .iter()
        .filter_map(|e| crate::segment::parse_segment_file(&e.name, SNAPSHOT_SUFFIX))
        .collect();
    offsets.sort_unstable();
    Ok(offsets)
}

/// Writes the snapshot of `state` at `offset` durably and deletes all but the newest
/// [`SNAPSHOTS_KEPT`] snapshots.
pub(crate) fn write_snapshot(
    io: &io::Io,
    dir: &Path,
    offset: i64,
    state: &ProducerStateManager,
) -> Result<(), StorageError> {
    let mut producers: Vec<ProducerEntry> = state.producers.values().cloned().collect();
    producers.sort_by_key(|p| p.producer_id);
    let body = match serde_json::to_vec(&SnapshotBody { offset, producers }) {
        Ok(body) => body,
        Err(error) => {
            // Plain structs always serialize; should it ever fail, skipping the snapshot only
            // costs replay time on the next open.
            tracing::error!(%error, dir = %dir.display(), "cannot serialize producer snapshot; skipping it");
            return Ok(());
        }
    };
    let mut contents = format!("{SNAPSHOT_MAGIC} {:08x}\n", crc32c::crc32c(&body)).into_bytes();
    contents.extend_from_slice(&body);
    io.write_atomic(&snapshot_path(dir, offset), &contents)?;
    let offsets = list_snapshots(dir)?;
    if offsets.len() > SNAPSHOTS_KEPT {
        for old in &offsets[..offsets.len() - SNAPSHOTS_KEPT] {
            io::remove_file(&snapshot_path(dir, *old))?;
        }
    }
    Ok(())
}

fn parse_snapshot(bytes: &[u8]) -> Result<SnapshotBody, Corruption> {
    let newline = bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(Corruption::Snapshot("no header line"))?;
    let header = std::str::from_utf8(&bytes[..newline])
        .map_err(|_| Corruption::Snapshot("header is not UTF-8"))?;
    let crc = header
        .strip_prefix(SNAPSHOT_MAGIC)
        .and_then(|rest| rest.strip_prefix(' '))
        .and_then(|hex| u32::from_str_radix(hex, 16).ok())
        .ok_or(Corruption::Snapshot("bad header line"))?;
    let body = &bytes[newline + 1..];
    if crc32c::crc32c(body) != crc {
        return Err(Corruption::Snapshot("checksum mismatch"));
    }
    serde_json::from_slice(body).map_err(|_| Corruption::Snapshot("body does not parse"))
}

/// Loads the newest readable snapshot at or below `max_offset`, deleting snapshots above it
/// (they describe data that is no longer in the log) and unreadable ones (with a warning).
pub(crate) fn load_latest_snapshot(
    dir: &Path,
    max_offset: i64,
) -> Result<Option<(i64, ProducerStateManager)>, StorageError> {
    for offset in list_snapshots(dir)?.into_iter().rev() {
        let path = snapshot_path(dir, offset);
        if offset > max_offset {
            tracing::warn!(file = %path.display(), log_end = max_offset, "removing producer snapshot beyond the log end");
            io::remove_file(&path)?;
            continue;
        }
        let Some(bytes) = io::read_file(&path)? else {
            continue;
        };
        match parse_snapshot(&bytes) {
            Ok(body) if body.offset == offset => {
                let producers = body
                    .producers
                    .into_iter()
                    .map(|p| (p.producer_id, p))
                    .collect();
                return Ok(Some((
                    offset,
                    ProducerStateManager::from_entries(producers),
                )));
            }
            Ok(_) => {
                tracing::warn!(file = %path.display(), "producer snapshot offset does not match its name; removing it");
                io::remove_file(&path)?;
            }
            Err(error) => {
                tracing::warn!(file = %path.display(), %error, "unreadable producer snapshot; removing it");
                io::remove_file(&path)?;
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, epoch: i16, first_seq: i32, count: i32, base_offset: i64) -> BatchHeader {
        BatchHeader {
            base_offset,
            batch_length: 100,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: first_seq,
            records_count: count,
        }
    }

    /// Checks then applies, as an append does.
    fn append(state: &mut ProducerStateManager, h: BatchHeader) -> Result<Check, ProducerError> {
        let check = ProducerStateManager::check(&h, state.get(h.producer_id))?;
        if check == Check::Append {
            let mut pending = Pending::default();
            state.apply_pending(&mut pending, &h, None);
            state.commit(pending);
        }
        Ok(check)
    }

    #[test]
    fn sequence_rules() {
        let mut s = ProducerStateManager::default();
        // Unknown producer must start at 0.
        assert!(matches!(
            append(&mut s, header(1, 0, 5, 1, 0)),
            Err(ProducerError::OutOfOrderSequence {
                expected_seq: 0,
                ..
            })
        ));
        assert_eq!(append(&mut s, header(1, 0, 0, 3, 0)), Ok(Check::Append));
        assert_eq!(append(&mut s, header(1, 0, 3, 2, 3)), Ok(Check::Append));
        // Gap.
        assert!(matches!(
            append(&mut s, header(1, 0, 6, 1, 5)),
            Err(ProducerError::OutOfOrderSequence {
                expected_seq: 5,
                found_seq: 6,
                ..
            })
        ));
        // Duplicate of the first batch returns its offsets.
        assert_eq!(
            append(&mut s, header(1, 0, 0, 3, 99)),
            Ok(Check::Duplicate(BatchMetadata {
                first_seq: 0,
                last_seq: 2,
                base_offset: 0,
                last_offset: 2
            }))
        );
        // Same first sequence but different range is not a duplicate.
        assert!(append(&mut s, header(1, 0, 0, 2, 5)).is_err());
        // Bumped epoch must restart at 0.
        assert!(append(&mut s, header(1, 1, 5, 1, 5)).is_err());
        assert_eq!(append(&mut s, header(1, 1, 0, 1, 5)), Ok(Check::Append));
        // Old epoch is fenced.
        assert!(matches!(
            append(&mut s, header(1, 0, 5, 1, 6)),
            Err(ProducerError::InvalidProducerEpoch {
                current_epoch: 1,
                found_epoch: 0,
                ..
            })
        ));
    }

    #[test]
    fn sequences_wrap_and_only_five_batches_are_remembered() {
        let mut s = ProducerStateManager::default();
        append(&mut s, header(2, 0, 0, 1, 0)).unwrap();
        for i in 1..=6 {
            append(&mut s, header(2, 0, i, 1, i64::from(i))).unwrap();
        }
        assert_eq!(s.get(2).unwrap().batches.len(), MAX_CACHED_BATCHES);
        // Batch 1 fell out of the cache: not a duplicate any more, and out of order.
        assert!(append(&mut s, header(2, 0, 1, 1, 9)).is_err());
        assert!(matches!(
            append(&mut s, header(2, 0, 2, 1, 9)),
            Ok(Check::Duplicate(_))
        ));

        let mut s = ProducerStateManager::default();
        s.replay(&header(3, 0, i32::MAX - 1, 2, 0), None);
        assert_eq!(s.get(3).unwrap().last_seq(), Some(i32::MAX));
        assert_eq!(append(&mut s, header(3, 0, 0, 1, 2)), Ok(Check::Append));
    }

    #[test]
    fn snapshot_round_trip_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ProducerStateManager::default();
        s.replay(&header(7, 2, 0, 4, 10), None);
        write_snapshot(&io::Io::std(), dir.path(), 14, &s).unwrap();
        let (offset, loaded) = load_latest_snapshot(dir.path(), 100).unwrap().unwrap();
        assert_eq!(offset, 14);
        assert_eq!(loaded, s);

        // Newer snapshot than the log end is dropped.
        assert!(load_latest_snapshot(dir.path(), 13).unwrap().is_none());
        assert!(list_snapshots(dir.path()).unwrap().is_empty());

        // Corrupt snapshot is ignored, an older good one used.
        write_snapshot(&io::Io::std(), dir.path(), 14, &s).unwrap();
        write_snapshot(
            &io::Io::std(),
            dir.path(),
            20,
            &ProducerStateManager::default(),
        )
        .unwrap();
        let path = snapshot_path(dir.path(), 20);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let (offset, loaded) = load_latest_snapshot(dir.path(), 100).unwrap().unwrap();
        assert_eq!((offset, loaded), (14, s));

        // Only the newest snapshots are kept.
        for o in [30, 40, 50] {
            write_snapshot(
                &io::Io::std(),
                dir.path(),
                o,
                &ProducerStateManager::default(),
            )
            .unwrap();
        }
        assert_eq!(list_snapshots(dir.path()).unwrap(), vec![40, 50]);
    }
}

//! A partition's side of transactions: the last stable offset, the aborted transactions a
//! read_committed read reports, the transaction markers the coordinator writes, and the
//! persistence of the aborted-transaction index ([`crate::txn_index`]) beside the producer
//! snapshots.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use floe_protocol::control;

use super::{AppendError, AppendInfo, Isolation, PartitionLog};
use crate::error::StorageError;
use crate::producer_state::{AbortedTxn, ProducerEntry};

impl PartitionLog {
    /// The offset a read with `isolation` stops before, given the log end: the high
    /// watermark, or the last stable offset.
    pub(super) fn read_upper(&self, isolation: Isolation, log_end: i64) -> i64 {
        match isolation {
            Isolation::Uncommitted => log_end,
            Isolation::Committed => log_end.min(self.first_unstable.load(Ordering::Acquire)),
        }
    }

    /// Offset up to which read_committed consumers may read: the high watermark, or the
    /// first offset of the oldest open transaction if that is lower.
    pub fn last_stable_offset(&self) -> i64 {
        self.read_upper(Isolation::Committed, self.log_end_offset())
    }

    /// The aborted transactions with records in `[from, upper)` (a read_committed fetch's
    /// range), in marker order.
    pub fn aborted_transactions(&self, from: i64, upper: i64) -> Vec<AbortedTxn> {
        self.txn_index
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .collect(from, upper)
    }

    /// Producers with a transaction open in this partition, with each one's first offset.
    pub fn open_transactions(&self) -> Vec<(i64, i64)> {
        self.lock().producers.open_transactions()
    }

    /// Every producer this partition knows (DescribeProducers).
    pub fn producers(&self) -> Vec<ProducerEntry> {
        self.lock().producers.entries().cloned().collect()
    }

    /// Appends a transaction marker (a control batch ending `producer_id`'s transaction in
    /// this partition) on the calling thread, which may block. A marker with an epoch below
    /// the producer's current one is refused ([`ProducerError::InvalidProducerEpoch`]).
    pub fn append_marker(
        self: &Arc<Self>,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
        control: control::ControlType,
        now_ms: i64,
    ) -> Result<AppendInfo, AppendError> {
        let batch = control::encode_marker(
            producer_id,
            producer_epoch,
            coordinator_epoch,
            control,
            now_ms,
        )?;
        self.append_now(batch, now_ms)
    }

    /// Appends the aborted transactions below `below` that are not yet in the index file
    /// and syncs it (before a producer snapshot at `below` is written).
    pub(crate) fn persist_txn_index(&self, below: i64) -> Result<(), StorageError> {
        let _file = self
            .txn_index_file
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (position, bytes, below, path) = {
            let index = self
                .txn_index
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            let Some((position, bytes, below)) = index.unpersisted(below) else {
                return Ok(());
            };
            (position, bytes, below, index.path().to_path_buf())
        };
        if !bytes.is_empty() {
            crate::txn_index::append_durably(&self.io, &path, position, &bytes)?;
        }
        self.txn_index
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .persisted(position, bytes.len(), below);
        Ok(())
    }

    /// Removes the aborted transactions whose abort markers are at `markers` (the cleaner
    /// is about to remove those markers, their records being gone) from the index, and
    /// from its file durably, before the markers' segment is swapped.
    pub(crate) fn remove_aborted(&self, markers: &[i64]) -> Result<(), StorageError> {
        if markers.is_empty() {
            return Ok(());
        }
        let _file = self
            .txn_index_file
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let rewrite = self
            .txn_index
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(markers);
        if let Some((contents, persisted_below)) = rewrite {
            let path = self
                .txn_index
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .path()
                .to_path_buf();
            self.io.write_atomic(&path, &contents)?;
            self.txn_index
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .rewritten(contents.len() as u64, persisted_below);
        }
        Ok(())
    }

    /// Forgets the aborted transactions below the log start offset.
    pub(crate) fn prune_txn_index(&self) {
        let start = self.log_start.load(Ordering::Acquire);
        self.txn_index
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .prune_below(start);
    }
}

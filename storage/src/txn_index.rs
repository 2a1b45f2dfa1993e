//! The aborted-transaction index of one partition: every transaction aborted in the log,
//! so that a read_committed fetch can tell consumers which producers' records to skip in the
//! range it returns (Kafka's `.txnindex`, kept as one file per partition rather than one per
//! segment, since compaction and retention never change the offsets it names).
//!
//! File `aborted.txnindex` in the partition directory: a sequence of 34-byte entries in
//! Kafka's txnindex entry layout (all big-endian): `version: int16 (0), producer_id: int64,
//! first_offset: int64, last_offset: int64, last_stable_offset: int64`, in increasing
//! `last_offset` order (the offset of the abort marker).
//!
//! Durability protocol: the index is derived from the log. Entries are appended and
//! fdatasync'ed by the sync that writes a producer snapshot, for every abort below the
//! snapshot's offset, before the snapshot is written; on open, entries at or above the
//! snapshot the producer state starts from are dropped (the replay after that snapshot
//! finds their markers again), so a torn or missing append only costs replay. The whole
//! index is in memory (34 bytes of file, about 60 bytes of memory per aborted transaction,
//! for the aborts above the log start offset); entries below the log start are dropped from
//! memory when it moves, and from the file when it is rewritten at open.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::StorageError;
use crate::io;
use crate::producer_state::AbortedTxn;

/// Name of the index file in a partition directory.
pub const FILE_NAME: &str = "aborted.txnindex";
const ENTRY_SIZE: usize = 34;
const VERSION: i16 = 0;

/// A partition's aborted transactions, in memory, and how much of them is in the file.
#[derive(Debug)]
pub(crate) struct TxnIndex {
    path: PathBuf,
    /// By abort-marker offset.
    entries: BTreeMap<i64, AbortedTxn>,
    /// The largest `last_offset - first_offset` of any entry: bounds a lookup's scan.
    max_span: i64,
    /// Valid bytes of the file.
    persisted_len: u64,
    /// Entries with `last_offset` below this are in the file.
    persisted_below: i64,
}

fn encode(txn: &AbortedTxn, out: &mut Vec<u8>) {
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&txn.producer_id.to_be_bytes());
    out.extend_from_slice(&txn.first_offset.to_be_bytes());
    out.extend_from_slice(&txn.last_offset.to_be_bytes());
    out.extend_from_slice(&txn.last_stable_offset.to_be_bytes());
}

fn decode(entry: &[u8]) -> Option<AbortedTxn> {
    let i64_at = |at: usize| {
        entry
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map(i64::from_be_bytes)
    };
    if entry.get(..2)? != VERSION.to_be_bytes() {
        return None;
    }
    let txn = AbortedTxn {
        producer_id: i64_at(2)?,
        first_offset: i64_at(10)?,
        last_offset: i64_at(18)?,
        last_stable_offset: i64_at(26)?,
    };
    (txn.first_offset <= txn.last_offset).then_some(txn)
}

impl TxnIndex {
    /// An empty index for a new partition directory.
    pub(crate) fn empty(dir: &Path) -> TxnIndex {
        TxnIndex {
            path: dir.join(FILE_NAME),
            entries: BTreeMap::new(),
            max_span: 0,
            persisted_len: 0,
            persisted_below: i64::MIN,
        }
    }

    /// Loads the file in `dir`, keeping the entries below `replayed_from` (the offset the
    /// producer state replay starts at; it finds the later ones) and at or above
    /// `log_start`. The file is cut after the kept prefix, or rewritten if most of it lies
    /// below the log start.
    pub(crate) fn load(
        io: &io::Io,
        dir: &Path,
        replayed_from: i64,
        log_start: i64,
    ) -> Result<TxnIndex, StorageError> {
        let mut index = TxnIndex::empty(dir);
        let Some(bytes) = io::read_file(&index.path)? else {
            return Ok(index);
        };
        let mut valid = 0usize;
        let mut previous = i64::MIN;
        let mut below_start = 0usize;
        for chunk in bytes.chunks_exact(ENTRY_SIZE) {
            let Some(txn) = decode(chunk) else {
                tracing::warn!(file = %index.path.display(), position = valid, "unreadable aborted-transaction entry; the index is cut there and rebuilt from the log");
                break;
            };
            if txn.last_offset >= replayed_from || txn.last_offset <= previous {
                break;
            }
            previous = txn.last_offset;
            valid += ENTRY_SIZE;
            if txn.last_offset < log_start {
                below_start += 1;
            } else {
                index.insert(txn);
            }
        }
        index.persisted_below = replayed_from;
        if below_start > 1024 && below_start > index.entries.len() {
            let mut contents = Vec::with_capacity(index.entries.len() * ENTRY_SIZE);
            for txn in index.entries.values() {
                encode(txn, &mut contents);
            }
            io.write_atomic(&index.path, &contents)?;
            index.persisted_len = contents.len() as u64;
        } else {
            if valid < bytes.len() {
                io::File::open(io, &index.path)?.set_len(valid as u64)?;
            }
            index.persisted_len = valid as u64;
        }
        Ok(index)
    }

    /// Adds an aborted transaction (its marker is past every entry's).
    pub(crate) fn insert(&mut self, txn: AbortedTxn) {
        self.max_span = self.max_span.max(txn.last_offset - txn.first_offset);
        self.entries.insert(txn.last_offset, txn);
    }

    /// The aborted transactions a read of `[from, upper)` must report: those with records in
    /// the range (first offset below `upper`, marker at or after `from`).
    pub(crate) fn collect(&self, from: i64, upper: i64) -> Vec<AbortedTxn> {
        // No entry whose marker lies past `upper + max_span` can start below `upper`.
        let end = upper.saturating_add(self.max_span);
        self.entries
            .range(from..=end.max(from))
            .map(|(_, txn)| *txn)
            .filter(|txn| txn.first_offset < upper)
            .collect()
    }

    /// The entries whose markers lie in `[from, to)` (a segment's, for its upload).
    pub(crate) fn markers_in(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        self.entries
            .range(from..to.max(from))
            .map(|(_, t)| *t)
            .collect()
    }

    /// Forgets the entries whose markers are below the log start.
    pub(crate) fn prune_below(&mut self, log_start: i64) {
        self.entries = self.entries.split_off(&log_start);
    }

    /// Removes the entries whose markers are at `markers`. If any of them is in the file,
    /// returns the file's new contents (the remaining entries it holds) and the bound they
    /// cover, to be written whole and then recorded with [`TxnIndex::rewritten`].
    pub(crate) fn remove(&mut self, markers: &[i64]) -> Option<(Vec<u8>, i64)> {
        let mut in_file = false;
        for marker in markers {
            if self.entries.remove(marker).is_some() && *marker < self.persisted_below {
                in_file = true;
            }
        }
        if !in_file {
            return None;
        }
        let mut contents = Vec::new();
        for txn in self.entries.range(..self.persisted_below).map(|(_, t)| t) {
            encode(txn, &mut contents);
        }
        Some((contents, self.persisted_below))
    }

    /// Records that the file was rewritten whole with `len` bytes covering the entries
    /// below `below`.
    pub(crate) fn rewritten(&mut self, len: u64, below: i64) {
        self.persisted_len = len;
        self.persisted_below = below;
    }

    /// Number of entries in memory.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// What [`TxnIndex::persist`] must append to cover every entry below `below`: the
    /// position and the bytes.
    pub(crate) fn unpersisted(&self, below: i64) -> Option<(u64, Vec<u8>, i64)> {
        if below <= self.persisted_below {
            return None;
        }
        let mut bytes = Vec::new();
        for txn in self
            .entries
            .range(self.persisted_below..below)
            .map(|(_, t)| t)
        {
            encode(txn, &mut bytes);
        }
        Some((self.persisted_len, bytes, below))
    }

    /// Records that [`TxnIndex::unpersisted`]'s bytes are durable in the file.
    pub(crate) fn persisted(&mut self, position: u64, len: usize, below: i64) {
        if position == self.persisted_len && below > self.persisted_below {
            self.persisted_len += len as u64;
            self.persisted_below = below;
        }
    }

    /// The index file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// The index file of `entries` (in marker order), written whole (a partition rebuilt from
/// its remote manifest).
pub(crate) fn write_file(
    io: &io::Io,
    dir: &Path,
    entries: &[AbortedTxn],
) -> Result<(), StorageError> {
    let mut contents = Vec::with_capacity(entries.len() * ENTRY_SIZE);
    for txn in entries {
        encode(txn, &mut contents);
    }
    io.write_atomic(&dir.join(FILE_NAME), &contents)
}

/// Appends `bytes` at `position` of the index file at `path` and fdatasyncs it (creating
/// it, and syncing the directory, the first time).
pub(crate) fn append_durably(
    io: &io::Io,
    path: &Path,
    position: u64,
    bytes: &[u8],
) -> Result<(), StorageError> {
    let created = !io::exists(path);
    let file = io::File::create(io, path)?;
    if !bytes.is_empty() {
        file.write_at(position, bytes)?;
    }
    if file.size()? > position + bytes.len() as u64 {
        // A torn earlier append that was never recorded.
        file.set_len(position + bytes.len() as u64)?;
    }
    file.sync_data()?;
    if created && let Some(dir) = path.parent() {
        io::sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(producer_id: i64, first_offset: i64, last_offset: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id,
            first_offset,
            last_offset,
            last_stable_offset: last_offset + 1,
        }
    }

    #[test]
    fn collect_finds_overlapping_transactions() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = TxnIndex::empty(dir.path());
        index.insert(txn(1, 0, 10));
        index.insert(txn(2, 5, 200)); // a long one
        index.insert(txn(3, 20, 30));
        index.insert(txn(4, 150, 160));
        let ids = |v: Vec<AbortedTxn>| v.iter().map(|t| t.producer_id).collect::<Vec<_>>();
        assert_eq!(ids(index.collect(0, 100)), vec![1, 3, 2]);
        assert_eq!(ids(index.collect(11, 25)), vec![3, 2]);
        assert_eq!(ids(index.collect(161, 300)), vec![2]);
        assert_eq!(ids(index.collect(201, 300)), Vec::<i64>::new());
        index.prune_below(30);
        assert_eq!(ids(index.collect(0, 100)), vec![3, 2]);
    }

    #[test]
    fn persisted_entries_load_back_and_replayed_ones_are_cut() {
        let dir = tempfile::tempdir().unwrap();
        let io = io::Io::std();
        let mut index = TxnIndex::empty(dir.path());
        for i in 0..5 {
            index.insert(txn(i, i * 10, i * 10 + 5));
        }
        let (position, bytes, below) = index.unpersisted(30).unwrap();
        assert_eq!(bytes.len(), 3 * ENTRY_SIZE);
        append_durably(&io, index.path(), position, &bytes).unwrap();
        index.persisted(position, bytes.len(), below);
        let (position, bytes, below) = index.unpersisted(100).unwrap();
        assert_eq!(bytes.len(), 2 * ENTRY_SIZE);
        append_durably(&io, index.path(), position, &bytes).unwrap();
        index.persisted(position, bytes.len(), below);

        // Replay starts at 30: the entries from there are dropped (and cut from the file).
        let loaded = TxnIndex::load(&io, dir.path(), 30, 0).unwrap();
        assert_eq!(loaded.len(), 3);
        assert_eq!(
            std::fs::metadata(loaded.path()).unwrap().len(),
            3 * ENTRY_SIZE as u64
        );
        // A torn append leaves a partial entry: ignored and cut.
        let mut file = std::fs::read(loaded.path()).unwrap();
        file.extend_from_slice(&[0, 0, 1]);
        std::fs::write(loaded.path(), file).unwrap();
        let loaded = TxnIndex::load(&io, dir.path(), i64::MAX, 11).unwrap();
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded.persisted_len, 3 * ENTRY_SIZE as u64);
        assert_eq!(
            std::fs::metadata(loaded.path()).unwrap().len(),
            3 * ENTRY_SIZE as u64
        );
    }
}

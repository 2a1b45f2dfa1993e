//! A file of fixed-size, sorted entries, read by binary search with positional reads: the
//! common machinery of `.index` and `.timeindex`. Entries are appended straight to the file
//! (no preallocation), so the file on disk is always a whole number of entries and valid in
//! Kafka's format. Index files are a cache of what the `.log` holds: recovery rebuilds them
//! from the log when they are missing or inconsistent, so they are synced only when their
//! segment is rolled or the log is closed.

use std::marker::PhantomData;
use std::path::Path;
use std::sync::Arc;

use crate::error::StorageError;
use crate::io;

/// One fixed-size index entry.
pub(crate) trait IndexEntry: Copy + std::fmt::Debug {
    /// Encoded size in bytes.
    const SIZE: usize;
    /// Decodes from exactly `SIZE` bytes.
    fn decode(bytes: &[u8]) -> Self;
    /// Encodes into exactly `SIZE` bytes.
    fn encode(&self, out: &mut [u8]);
}

/// An index file open for appending (owned by its segment, mutated under the partition lock).
#[derive(Debug)]
pub(crate) struct IndexFile<E> {
    file: Arc<io::File>,
    count: u64,
    last: Option<E>,
}

/// A read-only view of the first `count` entries, usable without the partition lock: entries
/// below `count` were completely written before `count` was published.
#[derive(Debug, Clone)]
pub(crate) struct IndexReader<E> {
    file: Arc<io::File>,
    count: u64,
    _entry: PhantomData<E>,
}

fn read_entry<E: IndexEntry>(file: &io::File, n: u64) -> Result<E, StorageError> {
    let mut buf = [0u8; 16];
    let buf = &mut buf[..E::SIZE];
    file.read_exact_at(n * E::SIZE as u64, buf)?;
    Ok(E::decode(buf))
}

impl<E: IndexEntry> IndexFile<E> {
    /// Opens (creating if missing) an index file. Returns the index and whether the file's
    /// size was a whole number of entries; a trailing partial entry is ignored.
    pub(crate) fn open(io: &io::Io, path: &Path) -> Result<(Self, bool), StorageError> {
        let file = io::File::create(io, path)?;
        let len = file.size()?;
        let aligned = len % E::SIZE as u64 == 0;
        let count = len / E::SIZE as u64;
        let last = if count > 0 {
            Some(read_entry(&file, count - 1)?)
        } else {
            None
        };
        Ok((
            IndexFile {
                file: Arc::new(file),
                count,
                last,
            },
            aligned,
        ))
    }

    /// Number of entries.
    #[cfg(test)]
    pub(crate) fn len(&self) -> u64 {
        self.count
    }

    /// Size of the file in bytes.
    pub(crate) fn size_bytes(&self) -> u64 {
        self.count * E::SIZE as u64
    }

    /// The last entry, if any.
    pub(crate) fn last(&self) -> Option<E> {
        self.last
    }

    /// Appends one entry (to the page cache).
    pub(crate) fn append(&mut self, entry: E) -> Result<(), StorageError> {
        let mut buf = [0u8; 16];
        let buf = &mut buf[..E::SIZE];
        entry.encode(buf);
        self.file.write_at(self.count * E::SIZE as u64, buf)?;
        self.count += 1;
        self.last = Some(entry);
        Ok(())
    }

    /// Removes every entry.
    pub(crate) fn clear(&mut self) -> Result<(), StorageError> {
        self.file.set_len(0)?;
        self.count = 0;
        self.last = None;
        Ok(())
    }

    /// Reads every entry (recovery's consistency check).
    pub(crate) fn read_all(&self) -> Result<Vec<E>, StorageError> {
        let bytes = self.file.read_vec(0, self.size_bytes() as usize)?;
        Ok(bytes.chunks_exact(E::SIZE).map(E::decode).collect())
    }

    /// The file handle, for syncing.
    pub(crate) fn file(&self) -> &Arc<io::File> {
        &self.file
    }

    /// A lock-free reader of the current entries.
    pub(crate) fn reader(&self) -> IndexReader<E> {
        IndexReader {
            file: Arc::clone(&self.file),
            count: self.count,
            _entry: PhantomData,
        }
    }
}

impl<E: IndexEntry> IndexReader<E> {
    /// The last entry for which `is_at_or_below` holds, assuming it holds for a prefix of the
    /// entries (they are sorted). `None` if it holds for none.
    pub(crate) fn floor(
        &self,
        is_at_or_below: impl Fn(&E) -> bool,
    ) -> Result<Option<E>, StorageError> {
        // Invariant: entries [0, lo) satisfy the predicate, entries [hi, count) do not.
        let (mut lo, mut hi) = (0u64, self.count);
        let mut best = None;
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let entry = read_entry::<E>(&self.file, mid)?;
            if is_at_or_below(&entry) {
                best = Some(entry);
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(best)
    }
}

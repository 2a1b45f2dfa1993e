//! The `.index` file of a segment, in Kafka's format: a sparse map from offset to byte
//! position in the `.log`. Each entry is 8 bytes, big endian: the offset relative to the
//! segment's base offset (u32) and the position of a batch (u32). An entry `(o, p)` says that
//! the batch starting at byte `p` has last offset `base + o`; entries are strictly increasing
//! in both fields. One entry is added per `index.interval.bytes` of appended batches.

use crate::index_file::{IndexEntry, IndexFile, IndexReader};

/// One `.index` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    /// Offset relative to the segment's base offset.
    pub(crate) relative_offset: u32,
    /// Byte position of the batch in the `.log`.
    pub(crate) position: u32,
}

impl IndexEntry for OffsetEntry {
    const SIZE: usize = 8;

    fn decode(b: &[u8]) -> Self {
        OffsetEntry {
            relative_offset: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            position: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        }
    }

    fn encode(&self, out: &mut [u8]) {
        out[..4].copy_from_slice(&self.relative_offset.to_be_bytes());
        out[4..8].copy_from_slice(&self.position.to_be_bytes());
    }
}

pub(crate) type OffsetIndex = IndexFile<OffsetEntry>;
pub(crate) type OffsetIndexReader = IndexReader<OffsetEntry>;

impl OffsetIndexReader {
    /// Where to start scanning for `target`: the entry with the largest offset `<= target`
    /// as `(absolute offset, position)`, or `(base_offset, 0)` if there is none.
    pub(crate) fn lookup(
        &self,
        base_offset: i64,
        target: i64,
    ) -> Result<Option<(i64, u64)>, crate::StorageError> {
        let relative = target.saturating_sub(base_offset);
        if relative < 0 {
            return Ok(None);
        }
        Ok(self
            .floor(|e| i64::from(e.relative_offset) <= relative)?
            .map(|e| {
                (
                    base_offset + i64::from(e.relative_offset),
                    u64::from(e.position),
                )
            }))
    }
}

/// Checks the entries of an index against its segment: strictly increasing offsets and
/// positions, every position inside the `.log`.
pub(crate) fn check_entries(entries: &[OffsetEntry], log_size: u64) -> Result<(), &'static str> {
    for pair in entries.windows(2) {
        if pair[1].relative_offset <= pair[0].relative_offset {
            return Err("offsets not increasing");
        }
        if pair[1].position <= pair[0].position {
            return Err("positions not increasing");
        }
    }
    if entries
        .last()
        .is_some_and(|e| u64::from(e.position) >= log_size)
    {
        return Err("position past the end of the log");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// `lookup` returns the last entry at or below the target, like a linear scan would.
        #[test]
        fn lookup_matches_linear_scan(
            mut offsets in proptest::collection::btree_set(0u32..10_000, 0..200),
            targets in proptest::collection::vec(-5i64..10_100, 1..50),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let (mut index, aligned) = OffsetIndex::open(&crate::io::Io::std(), &dir.path().join("x.index")).unwrap();
            prop_assert!(aligned);
            let base = 1_000i64;
            let entries: Vec<OffsetEntry> = std::mem::take(&mut offsets)
                .into_iter()
                .map(|o| OffsetEntry { relative_offset: o, position: o * 10 })
                .collect();
            for e in &entries {
                index.append(*e).unwrap();
            }
            let reader = index.reader();
            for t in targets {
                let target = base + t;
                let expected = entries
                    .iter()
                    .rev()
                    .find(|e| i64::from(e.relative_offset) <= t)
                    .map(|e| (base + i64::from(e.relative_offset), u64::from(e.position)));
                prop_assert_eq!(reader.lookup(base, target).unwrap(), expected);
            }
            prop_assert!(check_entries(&index.read_all().unwrap(), u64::MAX).is_ok());
        }
    }

    #[test]
    fn reopen_ignores_partial_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let (mut index, _) = OffsetIndex::open(&crate::io::Io::std(), &path).unwrap();
        index
            .append(OffsetEntry {
                relative_offset: 3,
                position: 100,
            })
            .unwrap();
        drop(index);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&[1, 2, 3]);
        std::fs::write(&path, bytes).unwrap();
        let (index, aligned) = OffsetIndex::open(&crate::io::Io::std(), &path).unwrap();
        assert!(!aligned);
        assert_eq!(index.len(), 1);
        assert_eq!(index.last().map(|e| e.position), Some(100));
    }

    #[test]
    fn inconsistent_entries_are_detected() {
        let e = |o, p| OffsetEntry {
            relative_offset: o,
            position: p,
        };
        assert!(check_entries(&[e(1, 10), e(2, 20)], 100).is_ok());
        assert!(check_entries(&[e(2, 10), e(1, 20)], 100).is_err());
        assert!(check_entries(&[e(1, 20), e(2, 10)], 100).is_err());
        assert!(check_entries(&[e(1, 10), e(2, 100)], 100).is_err());
    }
}

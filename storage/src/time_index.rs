//! The `.timeindex` file of a segment, in Kafka's format: 12-byte big-endian entries of a
//! timestamp (i64) and an offset relative to the segment's base offset (u32). An entry
//! `(t, o)` says the largest timestamp among records up to offset `base + o` is `t`, and that
//! every batch before the one holding `base + o` has only smaller timestamps. Timestamps are
//! strictly increasing; an entry is written with each offset-index entry when the largest
//! timestamp has grown, and a final one when the segment is rolled or closed, so the last
//! entry of an inactive segment holds its largest timestamp.

use crate::index_file::{IndexEntry, IndexFile, IndexReader};

/// One `.timeindex` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    /// Largest timestamp so far.
    pub(crate) timestamp: i64,
    /// Offset (relative to the segment's base) of the batch that holds it.
    pub(crate) relative_offset: u32,
}

impl IndexEntry for TimeEntry {
    const SIZE: usize = 12;

    fn decode(b: &[u8]) -> Self {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&b[..8]);
        TimeEntry {
            timestamp: i64::from_be_bytes(ts),
            relative_offset: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        }
    }

    fn encode(&self, out: &mut [u8]) {
        out[..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.relative_offset.to_be_bytes());
    }
}

pub(crate) type TimeIndex = IndexFile<TimeEntry>;
pub(crate) type TimeIndexReader = IndexReader<TimeEntry>;

impl TimeIndex {
    /// Appends `(timestamp, offset)` if `timestamp` is larger than the last entry's.
    pub(crate) fn maybe_append(
        &mut self,
        base_offset: i64,
        timestamp: i64,
        offset: i64,
    ) -> Result<(), crate::StorageError> {
        if self.last().is_some_and(|e| e.timestamp >= timestamp) {
            return Ok(());
        }
        let relative_offset = u32::try_from(offset.saturating_sub(base_offset)).unwrap_or(u32::MAX);
        self.append(TimeEntry {
            timestamp,
            relative_offset,
        })
    }
}

impl TimeIndexReader {
    /// The offset to start a search for the first record with timestamp `>= target`: that of
    /// the last entry with timestamp `<= target`, or `None` to start at the segment's start.
    pub(crate) fn lookup(
        &self,
        base_offset: i64,
        target: i64,
    ) -> Result<Option<i64>, crate::StorageError> {
        Ok(self
            .floor(|e| e.timestamp <= target)?
            .map(|e| base_offset + i64::from(e.relative_offset)))
    }
}

/// Checks time-index entries: timestamps strictly increasing, offsets non-decreasing and
/// below `max_relative_offset` (exclusive), if known.
pub(crate) fn check_entries(
    entries: &[TimeEntry],
    max_relative_offset: Option<u64>,
) -> Result<(), &'static str> {
    for pair in entries.windows(2) {
        if pair[1].timestamp <= pair[0].timestamp {
            return Err("timestamps not increasing");
        }
        if pair[1].relative_offset < pair[0].relative_offset {
            return Err("offsets decreasing");
        }
    }
    if let (Some(last), Some(max)) = (entries.last(), max_relative_offset)
        && u64::from(last.relative_offset) >= max
    {
        return Err("offset past the end of the segment");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maybe_append_keeps_timestamps_increasing_and_lookup_floors() {
        let dir = tempfile::tempdir().unwrap();
        let (mut index, _) =
            TimeIndex::open(&crate::io::Io::std(), &dir.path().join("0.timeindex")).unwrap();
        index.maybe_append(100, 50, 105).unwrap();
        index.maybe_append(100, 40, 107).unwrap(); // smaller: skipped
        index.maybe_append(100, 50, 108).unwrap(); // equal: skipped
        index.maybe_append(100, 70, 110).unwrap();
        assert_eq!(index.len(), 2);
        let entries = index.read_all().unwrap();
        assert!(check_entries(&entries, Some(11)).is_ok());
        assert!(check_entries(&entries, Some(10)).is_err());
        let r = index.reader();
        assert_eq!(r.lookup(100, 10).unwrap(), None);
        assert_eq!(r.lookup(100, 50).unwrap(), Some(105));
        assert_eq!(r.lookup(100, 69).unwrap(), Some(105));
        assert_eq!(r.lookup(100, 1000).unwrap(), Some(110));
    }
}

//! The remote manifest of one partition: which uploaded segments make up its remote part.
//!
//! `<prefix>/<topic>-<topic_id>/<partition>/manifest.json`, one JSON document rewritten on
//! every change with a conditional put (create-only the first time, then only over the
//! version last read or written), so two writers can never silently overwrite each other.
//! A segment is listed only after every one of its objects was uploaded and verified; an
//! object not listed is an orphan (a crash mid-upload) and is removed when the partition is
//! next attached.

use serde::{Deserialize, Serialize};

/// Version of the manifest format this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// One uploaded file of a segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteFile {
    /// `.log`, `.index`, `.timeindex` or `.snapshot`.
    pub suffix: String,
    /// Bytes of the object.
    pub size: u64,
    /// CRC32C of the object's bytes.
    pub crc32c: u32,
}

/// One uploaded segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteSegment {
    /// Unique per upload: the objects are `<base:020>-<id><suffix>`.
    pub id: String,
    /// First offset of the segment.
    pub base_offset: i64,
    /// Offset after its last record (the next segment's base).
    pub next_offset: i64,
    /// Bytes of its `.log`.
    pub size: u64,
    /// Largest record timestamp (-1: none).
    pub max_timestamp: i64,
    /// Offset of the record that carries it.
    pub offset_of_max_timestamp: i64,
    /// Wall clock of the upload, ms.
    pub uploaded_at_ms: i64,
    /// The uploaded files (the `.snapshot` only where the producer state at `next_offset`
    /// was still on disk).
    pub files: Vec<RemoteFile>,
    /// Transactions aborted in the segment (their markers are in it), as
    /// `[producer_id, first_offset, last_offset, last_stable_offset]`: what the partition's
    /// aborted-transaction index holds for it, so a partition rebuilt from the manifest
    /// still serves read_committed consumers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aborted: Vec<[i64; 4]>,
}

impl RemoteSegment {
    /// The file with `suffix`, if it was uploaded.
    pub fn file(&self, suffix: &str) -> Option<&RemoteFile> {
        self.files.iter().find(|f| f.suffix == suffix)
    }

    /// The object name of its file with `suffix` (relative to the partition prefix).
    pub fn object_name(&self, suffix: &str) -> String {
        object_name(self.base_offset, &self.id, suffix)
    }
}

/// `<base:020>-<id><suffix>`.
pub fn object_name(base_offset: i64, id: &str, suffix: &str) -> String {
    format!("{base_offset:020}-{id}{suffix}")
}

/// The remote part of a partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT_VERSION`].
    pub version: u32,
    /// The partition's log start offset when the manifest was written (DeleteRecords and
    /// retention move it; a broker rebuilding the partition starts from it).
    pub log_start_offset: i64,
    /// Uploaded segments in offset order, not overlapping.
    pub segments: Vec<RemoteSegment>,
}

impl Default for Manifest {
    fn default() -> Self {
        Manifest {
            version: FORMAT_VERSION,
            log_start_offset: 0,
            segments: Vec::new(),
        }
    }
}

impl Manifest {
    /// Offset after the last uploaded segment (`None` when nothing is uploaded).
    pub fn end(&self) -> Option<i64> {
        self.segments.last().map(|s| s.next_offset)
    }

    /// Parses a stored manifest; refuses a newer format or segments out of order.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, String> {
        let manifest: Manifest = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if manifest.version > FORMAT_VERSION {
            return Err(format!(
                "manifest format {} is newer than this broker's {FORMAT_VERSION}",
                manifest.version
            ));
        }
        let mut prev_end = i64::MIN;
        for segment in &manifest.segments {
            if segment.base_offset < prev_end || segment.next_offset <= segment.base_offset {
                return Err(format!(
                    "segment {} [{}, {}) overlaps or is empty",
                    segment.id, segment.base_offset, segment.next_offset
                ));
            }
            prev_end = segment.next_offset;
        }
        Ok(manifest)
    }

    /// The JSON stored.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising plain data cannot fail.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Total bytes of the uploaded `.log` files.
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(base: i64, next: i64) -> RemoteSegment {
        RemoteSegment {
            id: format!("id{base}"),
            base_offset: base,
            next_offset: next,
            size: 10,
            max_timestamp: -1,
            offset_of_max_timestamp: base,
            uploaded_at_ms: 0,
            files: vec![RemoteFile {
                suffix: ".log".into(),
                size: 10,
                crc32c: 7,
            }],
            aborted: Vec::new(),
        }
    }

    #[test]
    fn round_trips_and_refuses_overlaps() {
        let manifest = Manifest {
            version: FORMAT_VERSION,
            log_start_offset: 3,
            segments: vec![segment(0, 5), segment(5, 9)],
        };
        let parsed = Manifest::parse(&manifest.to_bytes()).unwrap();
        assert_eq!(parsed, manifest);
        assert_eq!(parsed.end(), Some(9));
        assert_eq!(parsed.bytes(), 20);
        assert_eq!(
            parsed.segments[1].object_name(".log"),
            "00000000000000000005-id5.log"
        );
        let overlapping = Manifest {
            segments: vec![segment(0, 5), segment(4, 9)],
            ..manifest.clone()
        };
        assert!(Manifest::parse(&overlapping.to_bytes()).is_err());
        let newer = Manifest {
            version: FORMAT_VERSION + 1,
            ..manifest
        };
        assert!(Manifest::parse(&newer.to_bytes()).is_err());
        assert!(Manifest::parse(b"{not json").is_err());
    }
}

//! The recovery-point checkpoint: `<data_dir>/recovery-point-offset-checkpoint`, in Kafka's
//! text format (a version line `0`, a count line, then `<topic> <partition> <offset>` per
//! partition), holding for each partition an offset below which everything was fdatasync'ed
//! when the file was written.
//!
//! Recovery uses it to tell a torn tail from damage to acknowledged data: a bad batch at or
//! above the recovery point with nothing valid after it is what a crash leaves (cut); a bad
//! batch below it was synced, so it is damage (refused, or cut with an error under
//! `RecoveryPolicy::TruncateCorruption`). Without it, damage to the only batch of an active
//! segment was cut as a torn tail, silently losing acknowledged records.
//!
//! The file is replaced atomically by the log manager's flusher thread every
//! [`CHECKPOINT_INTERVAL`] when an offset moved, after a partition is deleted (so a
//! recreated partition never inherits a stale point), and at clean shutdown. An offset in it
//! may be lower than the truth (written before later syncs), never higher: each is read
//! from the log's durable offset, which only counts synced records.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::error::StorageError;
use crate::io;
use crate::topic_partition::TopicPartition;

/// File name in the data directory (Kafka's).
pub const CHECKPOINT_FILE: &str = "recovery-point-offset-checkpoint";
/// Kafka's file of log start offsets (moved by DeleteRecords; by retention too, where the
/// first segment's base says the same), same format.
pub const LOG_START_FILE: &str = "log-start-offset-checkpoint";
/// Kafka's file of the cleaner's first dirty offsets (compaction), same format.
pub const CLEANER_OFFSET_FILE: &str = "cleaner-offset-checkpoint";
/// How often the flusher thread rewrites the file when an offset moved.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(5);

/// Reads the checkpoint: partition directory name -> recovery point. A missing file is
/// empty; an unreadable or malformed one is ignored with a warning (recovery then validates
/// as without it, which is only less strict).
pub fn read(data_dir: &Path) -> BTreeMap<String, i64> {
    read_named(data_dir, CHECKPOINT_FILE)
}

/// Reads a checkpoint file of this format named `file` (the recovery points, or the log
/// start offsets of `LOG_START_FILE`).
pub fn read_named(data_dir: &Path, file: &str) -> BTreeMap<String, i64> {
    let path = data_dir.join(file);
    let bytes = match io::read_file(&path) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return BTreeMap::new(),
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot read a checkpoint; recovering without it");
            return BTreeMap::new();
        }
    };
    match parse(&String::from_utf8_lossy(&bytes)) {
        Some(points) => points,
        None => {
            tracing::warn!(file = %path.display(), "malformed checkpoint; recovering without it");
            BTreeMap::new()
        }
    }
}

fn parse(text: &str) -> Option<BTreeMap<String, i64>> {
    let mut lines = text.lines();
    if lines.next()?.trim() != "0" {
        return None;
    }
    let count: usize = lines.next()?.trim().parse().ok()?;
    let mut out = BTreeMap::new();
    for line in lines.by_ref().take(count) {
        let mut parts = line.split(' ');
        let (topic, partition, offset) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let tp = TopicPartition::new(topic, partition.parse().ok()?);
        out.insert(tp.dir_name(), offset.parse().ok()?);
    }
    (out.len() == count).then_some(out)
}

/// Replaces the checkpoint with `points` (durably).
pub fn write(data_dir: &Path, points: &BTreeMap<TopicPartition, i64>) -> Result<(), StorageError> {
    write_named(data_dir, CHECKPOINT_FILE, points)
}

/// Replaces the checkpoint file `file` with `points` (durably).
pub fn write_named(
    data_dir: &Path,
    file: &str,
    points: &BTreeMap<TopicPartition, i64>,
) -> Result<(), StorageError> {
    let mut text = format!("0\n{}\n", points.len());
    for (tp, offset) in points {
        text.push_str(&format!("{} {} {offset}\n", tp.topic, tp.partition));
    }
    io::write_atomic(&data_dir.join(file), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_malformed_files() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).is_empty());
        let points = BTreeMap::from([
            (TopicPartition::new("orders", 0), 42),
            (TopicPartition::new("my-topic.v2", 11), 7),
        ]);
        write(dir.path(), &points).unwrap();
        let back = read(dir.path());
        assert_eq!(back.get("orders-0"), Some(&42));
        assert_eq!(back.get("my-topic.v2-11"), Some(&7));
        for bad in [
            "",
            "1\n0\n",
            "0\n2\norders 0 42\n",
            "0\n1\norders zero 42\n",
            "0\n1\na 0 1 2\n",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}

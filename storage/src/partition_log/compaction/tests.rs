//! Compaction scenarios, each run on both I/O backends: the latest value of every key kept
//! at its original offset (compressed batches and not), tombstones removed after
//! `delete.retention.ms`, the first dirty offset surviving a restart, and a crash at each
//! step of a segment swap leaving either the old or the new segment.

use std::collections::BTreeMap;
use std::path::Path;

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder, TimestampType};

use super::{CLEANED_SUFFIX, SWAP_SUFFIX, Throttle};
use crate::partition_log::tests::{open, tp};
use crate::partition_log::*;
use crate::segment::{LOG_SUFFIX, segment_file};
use crate::test_util::open_manager;

struct NoThrottle;

impl Throttle for NoThrottle {
    fn account(&self, _bytes: u64) {}
}

/// A batch of `(key, value)` records (`None`: a tombstone) stamped `ts`.
fn keyed(records: &[(String, Option<String>)], ts: i64, compression: Compression) -> BytesMut {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32 - 1,
            timestamp: ts,
            key: Some(Bytes::from(key.clone())),
            value: value.clone().map(Bytes::from),
            headers: IndexMap::new(),
        })
        .collect();
    floe_protocol::test_kit::encode(&records, compression)
}

/// Every record of the log: offset -> (key, value).
fn contents(log: &PartitionLog) -> BTreeMap<i64, (String, Option<String>)> {
    let mut out = BTreeMap::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let mut bytes = log.read(offset, 1 << 20).unwrap().records;
        let mut next = offset;
        for set in RecordBatchDecoder::decode_all(&mut bytes).unwrap() {
            for r in set.records {
                next = next.max(r.offset + 1);
                if r.offset >= offset {
                    let key = String::from_utf8(r.key.unwrap().to_vec()).unwrap();
                    let value = r.value.map(|v| String::from_utf8(v.to_vec()).unwrap());
                    out.insert(r.offset, (key, value));
                }
            }
        }
        if next == offset {
            // An empty (cleaned) segment: go on at the next one.
            next = log
                .lock()
                .segments
                .range(offset + 1..)
                .next()
                .map_or(log.log_end_offset(), |(&b, _)| b);
        }
        offset = next;
    }
    out
}

/// What compaction must leave: the latest record of every key among `closed_below`, plus
/// every record at or above it; tombstones below it dropped when `drop_tombstones`.
fn expected(
    all: &BTreeMap<i64, (String, Option<String>)>,
    closed_below: i64,
    drop_tombstones: bool,
) -> BTreeMap<i64, (String, Option<String>)> {
    let mut latest: BTreeMap<&str, i64> = BTreeMap::new();
    for (&offset, (key, _)) in all.range(..closed_below) {
        latest.insert(key, offset);
    }
    all.iter()
        .filter(|&(&offset, (key, value))| {
            offset >= closed_below
                || (latest[key.as_str()] == offset && !(drop_tombstones && value.is_none()))
        })
        .map(|(o, kv)| (*o, kv.clone()))
        .collect()
}

/// 300 records over 20 keys in batches of 3 (every fourth batch zstd, some tombstones),
/// stamped `ts`, then synced so the roll snapshots exist.
fn fill(log: &Arc<PartitionLog>, ts: i64) {
    for b in 0..100 {
        let records: Vec<(String, Option<String>)> = (0..3)
            .map(|r| {
                let n = b * 3 + r;
                let value = (n % 17 != 5).then(|| format!("v{n}"));
                (format!("key{}", n % 20), value)
            })
            .collect();
        let codec = if b % 4 == 0 {
            Compression::Zstd
        } else {
            Compression::None
        };
        log.append_now(keyed(&records, ts, codec), ts).unwrap();
    }
    log.sync().unwrap();
}

fn compact_config(delete_retention_ms: u64) -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 100,
        retention_ms: None,
        cleanup_policy: crate::config::CleanupPolicy {
            delete: false,
            compact: true,
        },
        delete_retention_ms,
        ..LogConfig::default()
    }
}

fn active_base(log: &PartitionLog) -> i64 {
    *log.lock().segments.keys().next_back().unwrap()
}

fn keeps_the_latest_value_of_every_key_at_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (_manager, log) = open(dir.path(), compact_config(u64::MAX));
    fill(&log, 1_000);
    let before = contents(&log);
    let cleanable = log.cleanable(2_000).unwrap();
    assert_eq!(cleanable.first_dirty, 0);
    assert_eq!(cleanable.uncleanable, active_base(&log));
    assert!(cleanable.due(&log.config()), "{cleanable:?}");
    let size_before = log.size_bytes();
    let stats = log.clean(1 << 20, &NoThrottle, 2_000).unwrap();
    assert!(
        stats.records_removed > 0 && stats.segments_cleaned > 0,
        "{stats:?}"
    );
    assert_eq!(log.cleaned_to(), active_base(&log));
    let after = contents(&log);
    assert_eq!(after, expected(&before, active_base(&log), false));
    assert!(log.size_bytes() < size_before);
    // Nothing dirty is left: a second clean changes nothing.
    assert!(!log.cleanable(2_000).unwrap().due(&log.config()));
    assert_eq!(
        log.clean(1 << 20, &NoThrottle, 2_000)
            .unwrap()
            .segments_cleaned,
        0
    );
    assert_eq!(contents(&log), after);
}

fn tombstones_go_after_delete_retention_ms() {
    let dir = tempfile::tempdir().unwrap();
    let (_manager, log) = open(dir.path(), compact_config(10_000));
    fill(&log, 1_000);
    let before = contents(&log);
    // Within delete.retention.ms: tombstones stay as the latest of their keys.
    log.clean(1 << 20, &NoThrottle, 5_000).unwrap();
    let kept = contents(&log);
    assert_eq!(kept, expected(&before, active_base(&log), false));
    assert!(kept.values().any(|(_, v)| v.is_none()));
    // Once they expire the clean part is due again, with nothing dirty, and they go.
    assert!(!log.cleanable(5_000).unwrap().due(&log.config()));
    let later = log.cleanable(100_000).unwrap();
    assert!(later.tombstones_due && later.dirty_bytes == 0, "{later:?}");
    log.clean(1 << 20, &NoThrottle, 100_000).unwrap();
    let after = contents(&log);
    assert_eq!(after, expected(&before, active_base(&log), true));
    assert!(after.values().all(|(_, v)| v.is_some()));
}

fn first_dirty_offset_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (manager, log) = open(dir.path(), compact_config(u64::MAX));
    fill(&log, 1_000);
    log.clean(1 << 20, &NoThrottle, 2_000).unwrap();
    let cleaned_to = log.cleaned_to();
    let after = contents(&log);
    drop(log);
    manager.shutdown().unwrap();
    drop(manager);
    let manager = open_manager(dir.path());
    let log = manager
        .open_partition(&tp(), compact_config(u64::MAX))
        .unwrap();
    assert_eq!(log.cleaned_to(), cleaned_to);
    assert_eq!(contents(&log), after);
    // Nothing dirty; the clean part is checked once for expired tombstones (when they
    // expire is not kept across restarts), which rewrites nothing here.
    let cleanable = log.cleanable(2_000).unwrap();
    assert_eq!(cleanable.dirty_bytes, 0);
    assert!(cleanable.tombstones_due);
    assert_eq!(
        log.clean(1 << 20, &NoThrottle, 2_000)
            .unwrap()
            .segments_cleaned,
        0
    );
    assert!(!log.cleanable(2_000).unwrap().due(&log.config()));
    assert_eq!(contents(&log), after);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// A crash at each step of a swap: before the commit point (`.cleaned` files), right after
/// it (`.log.swap` beside the old `.log`), and halfway through the renames (old files gone
/// to `.deleted`, some swap files renamed). Each reopens to the old or the new content,
/// never a mix.
fn crash_at_every_step_of_a_swap() {
    let tmp = tempfile::tempdir().unwrap();
    let cleaned_dir = tmp.path().join("cleaned");
    let pristine = tmp.path().join("pristine");
    let (manager, log) = open(&cleaned_dir, compact_config(u64::MAX));
    fill(&log, 1_000);
    let before = contents(&log);
    let part = log.dir().to_owned();
    let first_base = *log.lock().segments.keys().next().unwrap();
    drop(log);
    drop(manager); // as after kill -9
    copy_dir(&cleaned_dir, &pristine);
    let manager = open_manager(&cleaned_dir);
    let log = manager
        .open_partition(&tp(), compact_config(u64::MAX))
        .unwrap();
    log.clean(1 << 20, &NoThrottle, 2_000).unwrap();
    let after = contents(&log);
    assert_ne!(before, after);
    let new_log = std::fs::read(segment_file(&part, first_base, LOG_SUFFIX)).unwrap();
    drop(log);
    drop(manager);

    let dir_name = part.file_name().unwrap();
    for step in ["cleaned", "committed", "half-renamed"] {
        let trial = tmp.path().join(step);
        copy_dir(&pristine, &trial);
        let seg = |suffix: &str| segment_file(&trial.join(dir_name), first_base, suffix);
        let with = |path: std::path::PathBuf, suffix: &str| {
            let mut s = path.into_os_string();
            s.push(suffix);
            std::path::PathBuf::from(s)
        };
        match step {
            "cleaned" => std::fs::write(with(seg(LOG_SUFFIX), CLEANED_SUFFIX), &new_log).unwrap(),
            "committed" => std::fs::write(with(seg(LOG_SUFFIX), SWAP_SUFFIX), &new_log).unwrap(),
            _ => {
                std::fs::write(with(seg(LOG_SUFFIX), SWAP_SUFFIX), &new_log).unwrap();
                std::fs::rename(seg(LOG_SUFFIX), with(seg(LOG_SUFFIX), ".deleted")).unwrap();
                std::fs::remove_file(seg(crate::segment::INDEX_SUFFIX)).unwrap();
            }
        }
        let manager = open_manager(&trial);
        let log = manager
            .open_partition(&tp(), compact_config(u64::MAX))
            .unwrap();
        let got = contents(&log);
        let first_end = *log.lock().segments.keys().nth(1).unwrap();
        let expect_new = step != "cleaned";
        let want: BTreeMap<_, _> = if expect_new { &after } else { &before }
            .range(..first_end)
            .map(|(o, kv)| (*o, kv.clone()))
            .collect();
        let got_first: BTreeMap<_, _> = got
            .range(..first_end)
            .map(|(o, kv)| (*o, kv.clone()))
            .collect();
        assert_eq!(got_first, want, "{step}: first segment");
        assert_eq!(
            got.range(first_end..).collect::<Vec<_>>(),
            before.range(first_end..).collect::<Vec<_>>(),
            "{step}: the other segments"
        );
        let leftovers: Vec<String> = std::fs::read_dir(trial.join(dir_name))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| {
                n.ends_with(CLEANED_SUFFIX) || n.ends_with(SWAP_SUFFIX) || n.ends_with(".deleted")
            })
            .collect();
        assert!(leftovers.is_empty(), "{step}: {leftovers:?}");
    }
}

/// A transactional batch of producer `id` setting `keys` to `value`.
fn txn_batch(id: i64, first_seq: i32, keys: &[&str], value: &str) -> BytesMut {
    let records: Vec<Record> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| Record {
            transactional: true,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: id,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: first_seq + i as i32,
            timestamp: 1_000,
            key: Some(Bytes::from(key.to_string())),
            value: Some(Bytes::from(value.to_string())),
            headers: IndexMap::new(),
        })
        .collect();
    floe_protocol::test_kit::encode(&records, Compression::None)
}

/// An aborted transaction's records never replace committed ones and are removed; markers
/// stay; an open transaction's records are not cleaned.
fn aborted_records_are_removed_and_markers_kept() {
    use floe_protocol::control::ControlType;
    let dir = tempfile::tempdir().unwrap();
    let (_manager, log) = open(dir.path(), compact_config(u64::MAX));
    let keys = ["k0", "k1", "k2"];
    log.append_now(txn_batch(5, 0, &keys, "committed"), 1_000)
        .unwrap();
    log.append_marker(5, 0, 0, ControlType::Commit, 1_000)
        .unwrap();
    log.append_now(txn_batch(6, 0, &keys, "aborted"), 1_000)
        .unwrap();
    log.append_marker(6, 0, 0, ControlType::Abort, 1_000)
        .unwrap();
    let plain = |from: usize| {
        for i in from..from + 60 {
            let records = vec![(format!("x{}", i % 7), Some(format!("plain-{i}")))];
            log.append_now(keyed(&records, 1_000, Compression::None), 1_000)
                .unwrap();
        }
    };
    plain(0);
    let open_at = log
        .append_now(txn_batch(7, 0, &["k9"], "open"), 1_000)
        .unwrap()
        .base_offset;
    plain(60);
    log.sync().unwrap();
    assert_eq!(log.last_stable_offset(), open_at);
    let cleanable = log.cleanable(2_000).unwrap();
    assert!(cleanable.uncleanable <= open_at, "{cleanable:?}");
    log.clean(1 << 20, &NoThrottle, 2_000).unwrap();
    let after = contents(&log);
    let values: Vec<&str> = after.values().filter_map(|(_, v)| v.as_deref()).collect();
    assert_eq!(values.iter().filter(|v| **v == "committed").count(), 3);
    assert!(!values.contains(&"aborted"), "{after:?}");
    assert!(values.contains(&"open"));
    // Both markers are still there (their records' keys are the 4-byte control keys).
    let markers = after
        .values()
        .filter(|(k, _)| k.len() == 4 && k.starts_with('\0'))
        .count();
    assert_eq!(markers, 2, "{after:?}");
    // The open transaction's records were not mapped: when it aborts, they go later.
    log.append_marker(7, 0, 0, ControlType::Abort, 1_000)
        .unwrap();
    assert_eq!(log.aborted_transactions(0, i64::MAX).len(), 2);
}

/// A commit marker goes once its transaction's records were all cleaned away and
/// `delete.retention.ms` passed; one whose records remain stays. An abort marker outlives
/// its records by a pass, then goes with its aborted-transaction entry, also on disk.
fn markers_go_with_their_records() {
    use floe_protocol::control::ControlType;
    let dir = tempfile::tempdir().unwrap();
    let (manager, log) = open(dir.path(), compact_config(10_000));
    log.append_now(txn_batch(5, 0, &["k0", "k1"], "old"), 1_000)
        .unwrap();
    log.append_marker(5, 0, 0, ControlType::Commit, 1_000)
        .unwrap();
    log.append_now(txn_batch(6, 0, &["k2"], "stays"), 1_000)
        .unwrap();
    log.append_marker(6, 0, 0, ControlType::Commit, 1_000)
        .unwrap();
    log.append_now(txn_batch(7, 0, &["k3"], "aborted"), 1_000)
        .unwrap();
    log.append_marker(7, 0, 0, ControlType::Abort, 1_000)
        .unwrap();
    for i in 0..120 {
        // k0 and k1 are written again outside the transaction: its records become obsolete.
        let records = vec![(format!("k{}", i % 2), Some(format!("new-{i}")))];
        log.append_now(keyed(&records, 1_000, Compression::None), 1_000)
            .unwrap();
    }
    log.sync().unwrap();
    let markers = |log: &PartitionLog| -> (usize, usize) {
        let all = contents(log);
        let commit = all.values().filter(|(k, _)| k == "\0\0\0\u{1}").count();
        let abort = all.values().filter(|(k, _)| k == "\0\0\0\0").count();
        (commit, abort)
    };
    // Within delete.retention.ms: the records go, every marker stays.
    log.clean(1 << 20, &NoThrottle, 5_000).unwrap();
    let values: Vec<String> = contents(&log)
        .values()
        .filter_map(|(_, v)| v.clone())
        .collect();
    assert!(
        !values.iter().any(|v| v == "old" || v == "aborted"),
        "{values:?}"
    );
    assert!(values.iter().any(|v| v == "stays"));
    assert_eq!(markers(&log), (2, 1));
    assert_eq!(log.aborted_transactions(0, i64::MAX).len(), 1);
    // The kept markers make a later clean due by themselves.
    let later = log.cleanable(100_000).unwrap();
    assert!(later.tombstones_due, "{later:?}");
    // Past it: the markers of the transactions without records go (the abort marker's
    // records went in the pass before), the one with a record left stays.
    log.clean(1 << 20, &NoThrottle, 100_000).unwrap();
    assert_eq!(markers(&log), (1, 0));
    assert!(log.aborted_transactions(0, i64::MAX).is_empty());
    assert!(
        contents(&log)
            .values()
            .any(|(_, v)| v.as_deref() == Some("stays"))
    );
    // The index file agrees after a restart.
    let after = contents(&log);
    drop(log);
    manager.shutdown().unwrap();
    drop(manager);
    let manager = open_manager(dir.path());
    let log = manager
        .open_partition(&tp(), compact_config(10_000))
        .unwrap();
    assert!(log.aborted_transactions(0, i64::MAX).is_empty());
    assert_eq!(contents(&log), after);
}

crate::test_util::on_both_backends!(
    markers_go_with_their_records,
    aborted_records_are_removed_and_markers_kept,
    keeps_the_latest_value_of_every_key_at_its_offset,
    tombstones_go_after_delete_retention_ms,
    first_dirty_offset_survives_restart,
    crash_at_every_step_of_a_swap,
);

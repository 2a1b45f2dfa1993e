//! Transactions in one partition: the last stable offset, read_committed reads, the
//! aborted-transaction index, and all of it across clean and unclean reopens. Each scenario
//! runs on both I/O backends.

use floe_protocol::control::ControlType;

use super::tests::{open, small, tp};
use super::*;
use crate::test_util::{decode_data, on_both_backends, open_manager, transactional};

fn committed(log: &PartitionLog, from: i64) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    let mut offset = from;
    loop {
        let r = log
            .read_isolated(offset, 1 << 20, Isolation::Committed)
            .unwrap();
        if r.records.is_empty() {
            return out;
        }
        let mut next = offset;
        for item in record_batch::iter_batches(&r.records) {
            next = item.unwrap().0.next_offset();
        }
        out.extend(decode_data(&r.records));
        offset = next;
    }
}

fn aborted_ids(log: &PartitionLog, from: i64, upper: i64) -> Vec<(i64, i64, i64)> {
    log.aborted_transactions(from, upper)
        .iter()
        .map(|t| (t.producer_id, t.first_offset, t.last_offset))
        .collect()
}

/// Producer 1's transaction at 0..3, plain records 3..5, producer 2's transaction at 6..8;
/// then producer 1 aborts (marker 9) and producer 2 commits (marker 10).
fn lso_follows_open_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let (_manager, log) = open(dir.path(), LogConfig::default());
    log.append_now(transactional("t1", 1, 0, 0, 3), 0).unwrap();
    assert_eq!(log.last_stable_offset(), 0);
    log.append_now(crate::test_util::batch("plain", 3, 1_000), 0)
        .unwrap();
    log.append_now(transactional("t2", 2, 0, 0, 3), 0).unwrap();
    assert_eq!((log.high_watermark(), log.last_stable_offset()), (9, 0));
    assert!(committed(&log, 0).is_empty());
    assert_eq!(log.read(0, 1 << 20).unwrap().last_stable_offset, 0);
    assert_eq!(log.open_transactions(), vec![(1, 0), (2, 6)]);

    log.append_marker(1, 0, 0, ControlType::Abort, 0).unwrap();
    assert_eq!(log.last_stable_offset(), 6);
    // read_committed stops before producer 2's open transaction; the aborted records are
    // returned with the index entry that tells the consumer to skip them.
    let seen: Vec<i64> = committed(&log, 0).iter().map(|r| r.0).collect();
    assert_eq!(seen, vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(aborted_ids(&log, 0, 6), vec![(1, 0, 9)]);
    assert_eq!(aborted_ids(&log, 3, 6), vec![(1, 0, 9)]);

    log.append_marker(2, 0, 0, ControlType::Commit, 0).unwrap();
    assert_eq!((log.high_watermark(), log.last_stable_offset()), (11, 11));
    assert!(log.open_transactions().is_empty());
    assert_eq!(committed(&log, 0).len(), 9);
    assert_eq!(aborted_ids(&log, 0, 11), vec![(1, 0, 9)]);
    assert_eq!(aborted_ids(&log, 10, 11), Vec::<(i64, i64, i64)>::new());

    // A marker from a fenced epoch is refused.
    log.append_now(transactional("t1b", 1, 1, 0, 1), 0).unwrap();
    assert!(matches!(
        log.append_marker(1, 0, 0, ControlType::Commit, 0),
        Err(AppendError::Producer(
            ProducerError::InvalidProducerEpoch { .. }
        ))
    ));
    log.append_marker(1, 2, 0, ControlType::Abort, 0).unwrap();
    assert_eq!(aborted_ids(&log, 0, 20), vec![(1, 0, 9), (1, 11, 12)]);
}

/// Many transactions over small segments (rolls write snapshots and index entries); the
/// state is the same after a clean reopen and after a crash.
fn transactions_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let config = small();
    let expect = |log: &PartitionLog| {
        (
            log.last_stable_offset(),
            log.open_transactions(),
            aborted_ids(log, 0, i64::MAX),
            committed(log, 0),
        )
    };
    let before = {
        let (manager, log) = open(dir.path(), config.clone());
        for i in 0..40i32 {
            let producer = i64::from(i % 3) + 1;
            let seq = i / 3 * 2;
            log.append_now(transactional(&format!("t{i}"), producer, 0, seq, 2), 0)
                .unwrap();
            let control = if i % 4 == 1 {
                ControlType::Abort
            } else {
                ControlType::Commit
            };
            // Producer 3 leaves its last transaction open.
            if !(producer == 3 && i >= 38) {
                log.append_marker(producer, 0, 0, control, 0).unwrap();
            }
        }
        let state = expect(&log);
        assert!(state.0 < log.high_watermark());
        assert_eq!(state.2.len(), 10);
        manager.shutdown().unwrap();
        state
    };
    assert!(
        dir.path()
            .join(tp().dir_name())
            .join(crate::txn_index::FILE_NAME)
            .exists()
    );
    {
        let manager = open_manager(dir.path());
        let log = manager.open_partition(&tp(), config.clone()).unwrap();
        assert_eq!(expect(&log), before);
        // Dropped without shutdown: a crash.
    }
    let manager = open_manager(dir.path());
    let log = manager.open_partition(&tp(), config.clone()).unwrap();
    assert_eq!(expect(&log), before);
    // The open transaction still completes.
    log.append_marker(3, 0, 0, ControlType::Abort, 0).unwrap();
    assert_eq!(log.last_stable_offset(), log.high_watermark());
    assert_eq!(aborted_ids(&log, 0, i64::MAX).len(), 11);
    drop(manager);
    // And a crash right after the last marker replays it.
    let manager = open_manager(dir.path());
    let log = manager.open_partition(&tp(), config).unwrap();
    assert_eq!(aborted_ids(&log, 0, i64::MAX).len(), 11);
    assert_eq!(log.last_stable_offset(), log.high_watermark());
}

on_both_backends!(lso_follows_open_transactions, transactions_survive_reopen);

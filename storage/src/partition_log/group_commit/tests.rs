//! Group-commit scenarios, each run on both I/O backends: concurrent and pipelined callers
//! sharing syncs, `flush.ms` and `flush.messages`, rolls synced off the appending thread,
//! several logs in one batch, failures reported to every waiter.

use super::sync_logs;
use crate::LogManager;
use crate::partition_log::tests::{append_batches, open, read_all, segment_bases, small, tp};
use crate::partition_log::*;
use crate::test_util::{batch, open_manager, wait_durable};

fn concurrent_appends_and_group_commit() {
    let dir = tempfile::tempdir().unwrap();
    let (_manager, log) = open(dir.path(), small());
    let mut rx = log.subscribe();
    std::thread::scope(|s| {
        for t in 0..4 {
            let log = &log;
            s.spawn(move || {
                for i in 0..25 {
                    let info = log
                        .append_now(batch(&format!("t{t}-{i}"), 2, 0), 0)
                        .unwrap();
                    log.sync().unwrap();
                    assert!(log.durable_offset() > info.last_offset);
                }
            });
        }
    });
    assert_eq!(log.log_end_offset(), 200);
    assert_eq!(log.durable_offset(), 200);
    assert!(rx.has_changed().unwrap());
    assert_eq!(*rx.borrow_and_update(), 200);
    let all = read_all(&log, 0);
    assert_eq!(all.len(), 200);
    for t in 0..4 {
        let mine: Vec<&String> = all
            .iter()
            .map(|(_, v)| v)
            .filter(|v| v.starts_with(&format!("t{t}-")))
            .collect();
        assert_eq!(mine.len(), 50);
    }
}

/// `flush.ms`: the flusher thread syncs an idle log whose oldest unsynced record is that
/// old, with no caller asking.
fn flush_ms_syncs_without_a_caller() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        flush_ms: 20,
        ..LogConfig::default()
    };
    let (_manager, log) = open(dir.path(), config);
    let now = wall_clock_ms();
    log.append_now(batch("a", 3, 0), now).unwrap();
    assert_eq!(log.durable_offset(), 0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while log.durable_offset() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "flush.ms never synced"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // Without flush.ms nothing syncs by itself.
    log.set_config(LogConfig::default());
    log.append_now(batch("b", 1, 0), now).unwrap();
    log.flush_if_due(now + 1_000_000).unwrap();
    assert_eq!(log.durable_offset(), 3);
}

/// `flush.messages`: the append that makes that many records unsynced says so
/// (`flush_due`) and has the sync thread sync the log, never syncing on its own thread.
fn flush_messages_syncs_every_n_records() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        flush_messages: 5,
        ..LogConfig::default()
    };
    let (_manager, log) = open(dir.path(), config);
    assert!(!log.append_now(batch("a", 2, 0), 0).unwrap().flush_due);
    assert!(!log.append_now(batch("b", 2, 0), 0).unwrap().flush_due);
    assert_eq!(log.durable_offset(), 0);
    assert!(log.append_now(batch("c", 1, 0), 0).unwrap().flush_due);
    wait_durable(&log, 5);
}

/// A roll never syncs on the appending thread: with every fdatasync taking 300 ms, the
/// append that rolls returns at once, and the sync thread then makes the rolled segment
/// durable and writes the producer snapshot for the new base offset.
fn roll_syncs_on_the_sync_thread_not_the_appender() {
    let dir = tempfile::tempdir().unwrap();
    let faults = crate::io::faults::Faults::from_spec("slow_sync_ms=300", None).unwrap();
    let io = crate::test_util::backend().with_fault_set(Arc::new(faults));
    let manager = LogManager::open_with(dir.path(), io).unwrap();
    let log = manager.open_partition(&tp(), small()).unwrap();
    let mut slowest = std::time::Duration::ZERO;
    let mut n = 0;
    while segment_bases(log.dir()).len() < 3 {
        let t = std::time::Instant::now();
        log.append_now(batch(&format!("r{n}"), 3, 0), 0).unwrap();
        slowest = slowest.max(t.elapsed());
        n += 1;
    }
    assert!(
        slowest < std::time::Duration::from_millis(250),
        "an append waited {slowest:?} (a sync takes 300 ms)"
    );
    let new_base = *segment_bases(log.dir()).last().unwrap();
    wait_durable(&log, new_base);
    let snapshot = crate::producer_state::snapshot_path(log.dir(), new_base);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !snapshot.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "no snapshot at {new_base}"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// `sync_logs` makes every log durable and reports a failing one without failing others.
fn sync_logs_syncs_many_logs_together() {
    let dir = tempfile::tempdir().unwrap();
    let manager = open_manager(dir.path());
    let logs: Vec<Arc<PartitionLog>> = (0..4)
        .map(|p| {
            manager
                .open_partition(&TopicPartition::new("many", p), small())
                .unwrap()
        })
        .collect();
    for (i, log) in logs.iter().enumerate() {
        append_batches(log, 10 + i, 0);
    }
    let refs: Vec<&PartitionLog> = logs.iter().map(|l| &**l).collect();
    for result in sync_logs(&refs) {
        result.unwrap();
    }
    for log in &logs {
        assert_eq!(log.durable_offset(), log.log_end_offset());
    }
    // Already durable: nothing to do; concurrent callers all return once covered.
    std::thread::scope(|s| {
        for t in 0..4 {
            let refs = &refs;
            let logs = &logs;
            s.spawn(move || {
                for i in 0..10 {
                    for log in logs {
                        log.append_now(batch(&format!("t{t}-{i}"), 1, 0), 0)
                            .unwrap();
                    }
                    let ends: Vec<i64> = refs.iter().map(|l| l.log_end_offset()).collect();
                    for result in sync_logs(refs) {
                        result.unwrap();
                    }
                    for (log, end) in refs.iter().zip(ends) {
                        assert!(log.durable_offset() >= end);
                    }
                }
            });
        }
    });

    let (io, faults) = crate::test_util::backend().with_faults();
    let dir = tempfile::tempdir().unwrap();
    let manager = LogManager::open_with(dir.path(), io).unwrap();
    let a = manager
        .open_partition(&TopicPartition::new("a", 0), small())
        .unwrap();
    let b = manager
        .open_partition(&TopicPartition::new("b", 0), small())
        .unwrap();
    a.append_now(batch("x", 1, 0), 0).unwrap();
    faults.fail_syncs();
    let results = sync_logs(&[&a, &b]);
    assert!(matches!(results[0], Err(StorageError::Io { .. })));
    assert!(results[1].is_ok(), "nothing to sync in b");
}

/// acks=all's path: sync requests made back to back while a sync is in flight wait for it
/// and then share one more sync, however many there are; none resolves before its records
/// are durable.
fn sync_async_shares_one_sync_between_pipelined_requests() {
    let dir = tempfile::tempdir().unwrap();
    let (io, faults) = crate::test_util::backend().with_faults();
    let manager = LogManager::open_with(dir.path(), io).unwrap();
    let log = manager.open_partition(&tp(), LogConfig::default()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let batches_before = faults.sync_batches();
    // Another caller's sync is in flight.
    *log.sync_in_flight() = true;
    let mut waits = Vec::new();
    for i in 0..200 {
        let info = log.append_now(batch(&format!("r{i}"), 1, 0), 0).unwrap();
        waits.push((info.last_offset, Box::pin(log.sync_async())));
    }
    let early = rt.block_on(async {
        tokio::time::timeout(std::time::Duration::from_millis(50), &mut waits[0].1).await
    });
    let durable_while_held = log.durable_offset();
    let batches_while_held = faults.sync_batches() - batches_before;
    // Released before asserting: a failed assertion must not leave the sync thread waiting.
    *log.sync_in_flight() = false;
    log.sync_done.notify_all();
    assert!(
        early.is_err(),
        "resolved while the in-flight sync had not finished"
    );
    assert_eq!(durable_while_held, 0);
    assert_eq!(batches_while_held, 0);
    rt.block_on(async {
        for (last, wait) in waits {
            wait.await.unwrap();
            assert!(log.durable_offset() > last);
        }
    });
    assert_eq!(log.durable_offset(), 200);
    assert_eq!(
        faults.sync_batches() - batches_before,
        1,
        "all 200 requests shared one sync"
    );
    // Nothing new to make durable: resolves at once, no sync.
    rt.block_on(log.sync_async()).unwrap();
    assert_eq!(faults.sync_batches() - batches_before, 1);
}

/// A failed sync fails every waiter (the log goes offline) instead of leaving it waiting.
fn sync_async_reports_a_failed_sync() {
    let dir = tempfile::tempdir().unwrap();
    let (io, faults) = crate::test_util::backend().with_faults();
    let manager = LogManager::open_with(dir.path(), io).unwrap();
    let log = manager.open_partition(&tp(), LogConfig::default()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    log.append_now(batch("a", 1, 0), 0).unwrap();
    rt.block_on(log.sync_async()).unwrap();
    log.append_now(batch("b", 1, 0), 0).unwrap();
    faults.fail_syncs();
    let waits: Vec<_> = (0..3).map(|_| log.sync_async()).collect();
    for wait in waits {
        assert!(matches!(
            rt.block_on(wait),
            Err(StorageError::LogFailed { .. })
        ));
    }
    assert_eq!(log.durable_offset(), 1);
}

/// Requests pending when the log manager is dropped are still served.
fn sync_async_is_served_across_manager_drop() {
    let dir = tempfile::tempdir().unwrap();
    let manager = crate::test_util::open_manager(dir.path());
    let log = manager.open_partition(&tp(), LogConfig::default()).unwrap();
    log.append_now(batch("a", 3, 0), 0).unwrap();
    let wait = log.sync_async();
    drop(manager);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(wait).unwrap();
    assert_eq!(log.durable_offset(), 3);
    // After the sync thread stopped, a request syncs on the caller's thread.
    log.append_now(batch("b", 2, 0), 0).unwrap();
    rt.block_on(log.sync_async()).unwrap();
    assert_eq!(log.durable_offset(), 5);
}

crate::test_util::on_both_backends!(
    sync_async_shares_one_sync_between_pipelined_requests,
    sync_async_reports_a_failed_sync,
    sync_async_is_served_across_manager_drop,
    flush_ms_syncs_without_a_caller,
    flush_messages_syncs_every_n_records,
    roll_syncs_on_the_sync_thread_not_the_appender,
    sync_logs_syncs_many_logs_together,
    concurrent_appends_and_group_commit,
);

//! Storage faults injected into the real binary through its fault seam (`storage.faults`,
//! the `faults` cargo feature the test command's build turns on; see `docs/fault-injection.md`):
//! - a failing fdatasync takes only its partition offline, at run time and at the restart
//!   that recovers it (issue 9, item 4);
//! - short writes on a full disk are refused without damage, and the partition takes writes
//!   again by itself once the "disk" has room (item 6);
//! - one partition whose fdatasync takes 2 s does not delay ApiVersions, Metadata or fetches
//!   of other partitions (issue 10, acceptance 2);
//! - a failing rename (the metadata store cannot persist) leaves no half-created topic, and a
//!   failing directory fsync takes only its partition offline;
//! - with slow syncs, an acks=1 produce that rolls a segment is answered without waiting
//!   for a sync, and one that reaches `flush.messages` only after its sync (issue 10).

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use floe_tests::Broker;
use floe_tests::raw::{self, RawConn};
use kafka_protocol::messages::api_versions_request::ApiVersionsRequest;
use kafka_protocol::messages::api_versions_response::ApiVersionsResponse;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use kafka_protocol::messages::fetch_response::FetchResponse;
use kafka_protocol::messages::{ApiKey, BrokerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

const CLIENT_ID: &str = "floe-storage-faults";
const NONE: i16 = 0;
const LEADER_NOT_AVAILABLE: i16 = 5;
const KAFKA_STORAGE_ERROR: i16 = 56;

/// Item 4 through the seam: fdatasync of `victim-0` fails. Its acks=all produce gets
/// KAFKA_STORAGE_ERROR and it goes offline; `victim-1` and `other-0` keep serving; after a
/// restart with the fault still there, recovery cannot sync it and it starts offline while
/// the broker serves the rest.
#[test]
fn failing_fdatasync_takes_only_its_partition_offline() {
    let mut broker = Broker::start_with(&["--set", "storage.faults=sync_eio@victim-0"]);
    // Suspended while the topics are created (creating a partition syncs it).
    let off = broker.data_dir.join("faults.off");
    std::fs::write(&off, b"").unwrap();
    let mut conn = RawConn::open(&broker, CLIENT_ID);
    assert_eq!(conn.create_topic("victim", 2), NONE);
    assert_eq!(conn.create_topic("other", 1), NONE);
    std::fs::remove_file(&off).unwrap();
    let b = || raw::batch(5, Compression::None);
    assert_eq!(conn.produce("victim", 0, -1, b()).0, KAFKA_STORAGE_ERROR);
    assert_eq!(conn.produce("victim", 0, 1, b()).0, KAFKA_STORAGE_ERROR);
    assert_eq!(conn.latest_offset("victim", 0).0, KAFKA_STORAGE_ERROR);
    assert_eq!(conn.partition_error("victim", 0), LEADER_NOT_AVAILABLE);
    for _ in 0..3 {
        assert_eq!(conn.produce("victim", 1, -1, b()).0, NONE);
        assert_eq!(conn.produce("other", 0, -1, b()).0, NONE);
    }
    assert_eq!(conn.latest_offset("other", 0), (NONE, 15));
    drop(conn);
    broker.kill9();
    broker.restart();
    let mut conn = RawConn::open(&broker, CLIENT_ID);
    assert_eq!(conn.partition_error("victim", 0), LEADER_NOT_AVAILABLE);
    assert_eq!(conn.latest_offset("victim", 1), (NONE, 15));
    assert_eq!(conn.produce("other", 0, -1, b()), (NONE, 15));
    assert!(
        broker.log().contains("partition is offline"),
        "{}",
        broker.log()
    );
}

/// Item 6 through the seam: every write to `filler-0` writes half its bytes and fails with
/// ENOSPC. Producers get KAFKA_STORAGE_ERROR, nothing half-written is ever served, other
/// partitions are untouched, and once the "disk" has room again (the seam's off switch)
/// the partition takes writes with no restart; a restart finds exactly the acknowledged
/// records.
#[test]
fn short_writes_on_a_full_disk_are_refused_and_writes_resume() {
    let mut broker = Broker::start_with(&["--set", "storage.faults=short_write@filler-0"]);
    let mut conn = RawConn::open(&broker, CLIENT_ID);
    assert_eq!(conn.create_topic("filler", 1), NONE);
    assert_eq!(conn.create_topic("spare", 1), NONE);
    for _ in 0..5 {
        assert_eq!(
            conn.produce("filler", 0, -1, raw::batch(50, Compression::None))
                .0,
            KAFKA_STORAGE_ERROR
        );
        assert_eq!(
            conn.produce("spare", 0, -1, raw::batch(50, Compression::None))
                .0,
            NONE
        );
    }
    assert_eq!(conn.latest_offset("filler", 0), (NONE, 0));
    std::fs::write(broker.data_dir.join("faults.off"), b"").unwrap();
    assert_eq!(
        conn.produce("filler", 0, -1, raw::batch(50, Compression::None)),
        (NONE, 0)
    );
    assert_eq!(
        conn.produce("filler", 0, -1, raw::batch(50, Compression::None)),
        (NONE, 50)
    );
    drop(conn);
    broker.kill9();
    broker.restart();
    let mut conn = RawConn::open(&broker, CLIENT_ID);
    assert_eq!(conn.latest_offset("filler", 0), (NONE, 100));
    assert_eq!(conn.latest_offset("spare", 0), (NONE, 250));
}

fn p99(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[(samples.len() * 99).div_ceil(100) - 1]
}

/// Issue 10, acceptance 2: while every fdatasync of `slow-0` takes 2 s and a producer keeps
/// acks=all requests on it in flight, ApiVersions, Metadata and fetches of another
/// partition answer at once. Their p99 is printed; the assertion is loose (50 ms, a 2 s
/// stall would exceed it by 40x) so that a loaded CI machine cannot fail it by scheduling.
#[test]
fn slow_sync_of_one_partition_does_not_delay_the_others() {
    let broker = Broker::start_with(&["--set", "storage.faults=slow_sync_ms=2000@slow-0"]);
    let mut conn = RawConn::open(&broker, CLIENT_ID);
    assert_eq!(conn.create_topic("slow", 1), NONE);
    assert_eq!(conn.create_topic("fast", 1), NONE);
    assert_eq!(
        conn.produce("fast", 0, 1, raw::batch(100, Compression::None))
            .0,
        NONE
    );
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let producer = s.spawn(|| {
            let mut conn = RawConn::open(&broker, CLIENT_ID);
            let mut acked = 0;
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                assert_eq!(
                    conn.produce("slow", 0, -1, raw::batch(1, Compression::None))
                        .0,
                    NONE
                );
                assert!(
                    started.elapsed() >= Duration::from_millis(1900),
                    "the sync was not slow"
                );
                acked += 1;
            }
            acked
        });
        // Let the first stalled sync start.
        std::thread::sleep(Duration::from_millis(200));
        let (mut versions, mut metas, mut fetches) = (Vec::new(), Vec::new(), Vec::new());
        let deadline = Instant::now() + Duration::from_secs(4);
        while Instant::now() < deadline {
            let t = Instant::now();
            let v: ApiVersionsResponse =
                conn.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
            assert_eq!(v.error_code, NONE);
            versions.push(t.elapsed());
            let t = Instant::now();
            assert!(!conn.metadata().topics.is_empty());
            metas.push(t.elapsed());
            let t = Instant::now();
            let req = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(0)
                .with_min_bytes(1)
                .with_max_bytes(1 << 20)
                .with_topics(vec![
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_static_str("fast")))
                        .with_partitions(vec![
                            FetchPartition::default()
                                .with_partition(0)
                                .with_fetch_offset(0)
                                .with_partition_max_bytes(1 << 20),
                        ]),
                ]);
            let f: FetchResponse = conn.call(ApiKey::Fetch, 12, &req);
            let p = &f.responses[0].partitions[0];
            assert_eq!(p.error_code, NONE);
            assert!(p.records.as_ref().is_some_and(|r| !r.is_empty()));
            fetches.push(t.elapsed());
        }
        stop.store(true, Ordering::Relaxed);
        let acked = producer.join().unwrap();
        assert!(acked >= 1, "no acks=all produce completed");
        let n = versions.len();
        let (v, m, f) = (p99(versions), p99(metas), p99(fetches));
        eprintln!(
            "during 2 s syncs of slow-0 ({n} rounds): p99 ApiVersions {v:?}, Metadata {m:?}, Fetch of fast-0 {f:?}"
        );
        for (what, p) in [("ApiVersions", v), ("Metadata", m), ("Fetch", f)] {
            assert!(
                p < Duration::from_millis(50),
                "{what} p99 {p:?} during the stall"
            );
        }
    });
}

/// Issue 10: a segment roll never syncs on the request path, `flush.messages` does. Every
/// fdatasync of `flushy-0` takes 200 ms; its segments are 100 bytes, so every produce
/// rolls, and `flush.messages=4`. acks=1 produces that only roll are answered at once; the
/// one that makes 4 records unsynced waits for its sync, and is then durable.
#[test]
fn rolls_do_not_wait_for_syncs_and_flush_messages_does() {
    let broker = Broker::start_with(&["--set", "storage.faults=slow_sync_ms=200@flushy-0"]);
    let mut conn = RawConn::open(&broker, CLIENT_ID);
    assert_eq!(
        conn.create_topic_with(
            "flushy",
            1,
            &[("segment.bytes", "100"), ("flush.messages", "4")]
        ),
        NONE
    );
    // Wait out syncs the creation and first appends may have started.
    std::thread::sleep(Duration::from_millis(1500));
    let mut times = Vec::new();
    for _ in 0..8 {
        let t = Instant::now();
        assert_eq!(
            conn.produce("flushy", 0, 1, raw::batch(1, Compression::None))
                .0,
            NONE
        );
        times.push(t.elapsed());
    }
    eprintln!("acks=1 produce times with 200 ms syncs: {times:?}");
    let segments = std::fs::read_dir(broker.data_dir.join("flushy-0"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "log")
        })
        .count();
    assert!(
        segments >= 8,
        "only {segments} segments: the produces did not roll"
    );
    // Records 1-3 after a flush ride on rolls only; the 4th reaches flush.messages.
    let slow: Vec<usize> = (0..times.len())
        .filter(|&i| times[i] >= Duration::from_millis(150))
        .collect();
    assert!(
        !slow.is_empty() && slow.len() <= 3,
        "expected the flush.messages produces (and only those) to wait: {times:?}"
    );
    let fast = times.len() - slow.len();
    assert!(
        fast >= 5,
        "produces that only rolled waited for syncs: {times:?}"
    );
}

/// Items 4 and 5 through the seam: every rename under `meta/` fails, so the metadata store
/// cannot persist anything. CreateTopics is answered KAFKA_STORAGE_ERROR and leaves nothing
/// behind (no topic, no partition directory, before or after a restart), while existing
/// topics keep serving.
#[test]
fn failing_metadata_rename_leaves_no_half_created_topic() {
    // The metadata exists before the fault is on (a broker cannot start without it).
    let mut broker = Broker::start();
    let mut conn = RawConn::open(&broker, CLIENT_ID);
    assert_eq!(conn.create_topic("before", 1), NONE);
    drop(conn);
    broker.stop();
    broker.restart_with(&["--set", "storage.faults=rename_eio@meta"]);
    let mut conn = RawConn::open(&broker, CLIENT_ID);
    assert_eq!(conn.create_topic("doomed", 3), KAFKA_STORAGE_ERROR);
    assert_eq!(
        conn.produce("before", 0, -1, raw::batch(3, Compression::None)),
        (NONE, 0)
    );
    let listed = |conn: &mut RawConn| -> Vec<String> {
        conn.metadata()
            .topics
            .iter()
            .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
            .collect()
    };
    assert_eq!(listed(&mut conn), vec!["before".to_string()]);
    for p in 0..3 {
        assert!(!broker.data_dir.join(format!("doomed-{p}")).exists());
    }
    drop(conn);
    broker.kill9();
    broker.restart();
    let mut conn = RawConn::open(&broker, CLIENT_ID);
    assert_eq!(listed(&mut conn), vec!["before".to_string()]);
    assert_eq!(conn.latest_offset("before", 0), (NONE, 3));
}

/// Item 4 through the seam: the partition directory of `victim-0` cannot be fsynced, which
/// a segment roll needs (the new segment's directory entry must be durable); the roll's sync
/// fails, `victim-0` goes offline and `victim-1` keeps rolling and serving.
#[test]
fn failing_directory_fsync_takes_only_its_partition_offline() {
    let broker = Broker::start_with(&[
        "--set",
        "storage.faults=dir_sync_eio@victim-0",
        "--set",
        "log_segment_bytes=4096",
    ]);
    let off = broker.data_dir.join("faults.off");
    std::fs::write(&off, b"").unwrap();
    let mut conn = RawConn::open(&broker, CLIENT_ID);
    assert_eq!(conn.create_topic("victim", 2), NONE);
    std::fs::remove_file(&off).unwrap();
    let mut failed = false;
    for _ in 0..20 {
        if conn
            .produce("victim", 0, -1, raw::batch(40, Compression::None))
            .0
            == KAFKA_STORAGE_ERROR
        {
            failed = true;
            break;
        }
    }
    assert!(failed, "no roll of victim-0 failed");
    assert_eq!(conn.partition_error("victim", 0), LEADER_NOT_AVAILABLE);
    for _ in 0..20 {
        assert_eq!(
            conn.produce("victim", 1, -1, raw::batch(40, Compression::None))
                .0,
            NONE
        );
    }
    assert_eq!(conn.latest_offset("victim", 1), (NONE, 800));
}

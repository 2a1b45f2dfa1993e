//! Bounded resources per connection against the real broker: stalled requests that
//! announce 100 MiB cost what they sent, not what they announced; a small
//! `queued.max.request.bytes` pauses reading of large requests while a normal client keeps
//! producing and consuming; `max.connections.per.ip` closes extra connections at accept;
//! `connections.max.idle.ms` closes idle and stalled connections but not active ones.
//!
//! The resident-size bound checked here is the one documented in `docs/configuration.md`
//! ("Connections and memory").

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use floe_tests::raw::RawConn;
use floe_tests::{Broker, rss_bytes_of, wait_until};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::api_versions_request::ApiVersionsRequest;
use kafka_protocol::messages::api_versions_response::ApiVersionsResponse;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const MIB: u64 = 1024 * 1024;
/// Largest resident size of the broker while 300 connections stall on 100 MiB requests
/// (documented in docs/configuration.md).
const RSS_BOUND: u64 = 200 * MIB;
/// `socket.request.max.bytes`: the largest size a prefix may announce.
const MAX_REQUEST: u32 = 100 * 1024 * 1024;
const CLIENT_ID: &str = "floe-connection-limits";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// A connection that sends a length prefix announcing `announced` bytes and then only
/// `sent` bytes of the request, and stalls.
fn stalled_request(broker: &Broker, announced: u32, sent: usize) -> TcpStream {
    let mut stream = TcpStream::connect(broker.addr()).unwrap();
    stream.write_all(&announced.to_be_bytes()).unwrap();
    stream.write_all(&vec![0x5a; sent]).unwrap();
    stream
}

/// The broker has not closed `stream`: a read finds nothing to read rather than the end.
fn assert_open(stream: &TcpStream, what: &str) {
    stream.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    match (&*stream).read(&mut byte) {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("{what}: expected an open, silent connection, got {other:?}"),
    }
    stream.set_nonblocking(false).unwrap();
}

/// Waits until the broker closes `stream` (end of stream or reset); panics after 30 s.
fn wait_closed(stream: &mut TcpStream, what: &str) {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("{what}: the broker sent {n} bytes instead of closing"),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            panic!("{what}: still open after 30 s")
        }
        Err(_) => {} // reset: closed with our bytes unread
    }
}

/// Whether a new connection gets an ApiVersions answer (false if the broker closes it).
fn served(broker: &Broker) -> bool {
    let mut conn = RawConn::open_raw(broker, CLIENT_ID);
    conn.send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    let mut len = [0u8; 4];
    conn.stream.read_exact(&mut len).is_ok()
}

/// A connection the broker serves (it answered an ApiVersions), retried for a while: the
/// harness's readiness probe is closed, but the broker may count it against the per-address
/// limit until its connection task has seen the close.
fn open_served(broker: &Broker) -> RawConn {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut conn = RawConn::open_raw(broker, CLIENT_ID);
        conn.send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
        let mut len = [0u8; 4];
        if conn.stream.read_exact(&mut len).is_ok() {
            let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
            conn.stream.read_exact(&mut body).unwrap();
            return conn;
        }
        assert!(
            Instant::now() < deadline,
            "no connection served within 10 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn api_versions(conn: &mut RawConn) {
    let resp: ApiVersionsResponse =
        conn.call_at(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert_eq!(resp.error_code, 0);
}

/// Samples the broker's resident size every 20 ms and keeps the largest.
struct RssSampler {
    stop: Arc<AtomicBool>,
    max: Arc<AtomicU64>,
    thread: JoinHandle<()>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let max = Arc::new(AtomicU64::new(rss_bytes_of(pid)));
        let thread = {
            let (stop, max) = (stop.clone(), max.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    max.fetch_max(rss_bytes_of(pid), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        RssSampler { stop, max, thread }
    }

    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap();
        self.max.load(Ordering::Relaxed)
    }
}

fn payload(i: usize, size: usize) -> Vec<u8> {
    let mut p = format!("record-{i:08}-").into_bytes();
    p.resize(size, b'a' + (i % 26) as u8);
    p
}

/// Produces `count` records of `size` bytes to partition 0 of `topic` (acks=all, the topic
/// is auto-created) and checks that every one was delivered, in order.
fn produce(
    rt: &tokio::runtime::Runtime,
    broker: &Broker,
    topic: &str,
    count: usize,
    size: usize,
    settings: &[(&str, &str)],
) {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", broker.bootstrap())
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "60000");
    for (k, v) in settings {
        config.set(*k, *v);
    }
    let producer: FutureProducer = config.create().unwrap();
    let pending: Vec<_> = (0..count)
        .map(|i| {
            let value = payload(i, size);
            let key = i.to_string();
            producer
                .send_result(
                    FutureRecord::to(topic)
                        .partition(0)
                        .key(&key)
                        .payload(&value),
                )
                .map_err(|(e, _)| e)
                .expect("enqueue")
        })
        .collect();
    rt.block_on(async {
        for (i, delivery) in pending.into_iter().enumerate() {
            let delivery = delivery
                .await
                .expect("delivery future dropped")
                .unwrap_or_else(|(e, _)| panic!("record {i} not delivered: {e}"));
            assert_eq!(delivery.offset, i as i64, "record {i}: offset");
        }
    });
}

/// Reads partition 0 of `topic` from the beginning and checks `count` records of `size`
/// bytes as `produce` wrote them.
fn consume(broker: &Broker, topic: &str, count: usize, size: usize, settings: &[(&str, &str)]) {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", broker.bootstrap())
        // librdkafka refuses assign() without a group id; the group is never joined.
        .set("group.id", format!("{topic}-unused"))
        .set("enable.auto.commit", "false");
    for (k, v) in settings {
        config.set(*k, *v);
    }
    let consumer: BaseConsumer = config.create().unwrap();
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut next = 0;
    while next < count {
        assert!(
            Instant::now() < deadline,
            "consumed {next} of {count} records in 120 s"
        );
        match consumer.poll(Duration::from_millis(500)) {
            None => {}
            Some(Err(e)) => panic!("consume error: {e}"),
            Some(Ok(msg)) => {
                assert_eq!(msg.offset(), next as i64);
                assert!(
                    msg.payload() == Some(&payload(next, size)[..]),
                    "record {next}: payload differs"
                );
                next += 1;
            }
        }
    }
}

/// The acceptance check: 300 connections each holding a 100 MiB length prefix (and a few
/// KiB of the request) keep the broker's resident size under `RSS_BOUND` while a real
/// client produces and consumes 1,000 records.
#[test]
fn stalled_100_mib_prefixes_keep_rss_bounded() {
    let broker = Broker::start();
    let rt = runtime();
    let at_start = broker.rss_bytes();
    let sampler = RssSampler::start(broker.pid());
    let stalled: Vec<TcpStream> = (0..300)
        .map(|_| stalled_request(&broker, MAX_REQUEST, 4096))
        .collect();
    // The listener accepts in order: once a later connection is answered, all 300 were
    // accepted and are being served.
    assert!(served(&broker), "a new connection is served");
    let with_stalled = broker.rss_bytes();

    produce(&rt, &broker, "busy", 1000, 200, &[]);
    consume(&broker, "busy", 1000, 200, &[]);

    for (i, s) in stalled.iter().enumerate() {
        assert_open(s, &format!("stalled connection {i}"));
    }
    let max = sampler.stop();
    eprintln!(
        "broker RSS: {} KiB at start, {} KiB with 300 stalled 100 MiB requests, \
         {} KiB at most while producing and consuming 1000 records",
        at_start / 1024,
        with_stalled / 1024,
        max / 1024
    );
    assert!(
        max < RSS_BOUND,
        "broker RSS reached {} MiB (bound {} MiB)",
        max / MIB,
        RSS_BOUND / MIB
    );
}

/// With `queued.max.request.bytes` at 1 MiB, eight connections each try to send 24 MiB of
/// a 96 MiB request. The first to need the budget takes all of it (a request larger than
/// the budget is still read); the others are paused: the broker stops reading them, so
/// their writes block once the kernel's socket buffers are full. A client whose requests
/// are small keeps producing and consuming meanwhile, and once the large requests go away
/// the budget is free again: a 1.5 MiB produce request is read and answered.
#[test]
fn small_budget_pauses_large_requests_but_not_a_normal_client() {
    const SENDERS: usize = 8;
    const ANNOUNCED: u32 = 96 * 1024 * 1024;
    const WANT_TO_SEND: u64 = 24 * MIB;
    let broker = Broker::start_with(&[
        "--set",
        "queued.max.request.bytes=1048576",
        "--set",
        "message.max.bytes=4194304",
    ]);
    let rt = runtime();
    let sampler = RssSampler::start(broker.pid());
    let senders: Vec<JoinHandle<(TcpStream, u64, bool)>> = (0..SENDERS)
        .map(|_| {
            let addr = broker.addr();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
                s.write_all(&ANNOUNCED.to_be_bytes()).unwrap();
                let chunk = vec![0x5a; 64 * 1024];
                let mut sent = 0u64;
                while sent < WANT_TO_SEND {
                    match s.write(&chunk) {
                        Ok(n) => sent += n as u64,
                        Err(e)
                            if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                        {
                            return (s, sent, true);
                        }
                        Err(e) => panic!("write failed after {sent} bytes: {e}"),
                    }
                }
                (s, sent, false)
            })
        })
        .collect();
    let senders: Vec<(TcpStream, u64, bool)> =
        senders.into_iter().map(|h| h.join().unwrap()).collect();
    let sent: Vec<u64> = senders.iter().map(|(_, sent, _)| sent / 1024).collect();
    eprintln!("KiB accepted per connection before its writes blocked: {sent:?}");
    let blocked = senders.iter().filter(|(_, _, blocked)| *blocked).count();
    assert!(
        blocked >= SENDERS - 1,
        "all large requests but the one holding the budget must be paused before 24 MiB: \
         KiB sent {sent:?}"
    );
    wait_until(
        Duration::from_secs(10),
        "the broker logs that reading paused",
        || broker.log().contains("reading paused"),
    );

    // A normal client: requests of at most 16 KiB batches, well under the 64 KiB of
    // receive buffer every connection may use without waiting for the budget.
    let small = [("batch.size", "16384")];
    produce(&rt, &broker, "normal", 300, 100, &small);
    consume(&broker, "normal", 300, 100, &[]);
    for (i, (s, _, _)) in senders.iter().enumerate() {
        assert_open(s, &format!("paused connection {i}"));
    }
    let max = sampler.stop();
    eprintln!("broker RSS at most {} KiB", max / 1024);
    assert!(max < RSS_BOUND, "broker RSS reached {} MiB", max / MIB);

    // The large requests go away: the broker reads each paused one to its end in turn and
    // gives its share back; then one produce request of 1.5 MiB, larger than the whole
    // budget, is read and answered.
    drop(senders);
    let big = [("message.max.bytes", "4000000")];
    produce(&rt, &broker, "big", 1, 3 * 512 * 1024, &big);
    consume(
        &broker,
        "big",
        1,
        3 * 512 * 1024,
        &[("fetch.message.max.bytes", "4000000")],
    );
}

/// `max.connections.per.ip = 3`: a fourth connection from 127.0.0.1 is closed at once and
/// logged; the three are still served, and once one closes a new one is accepted.
#[test]
fn max_connections_per_ip_closes_extra_connections() {
    let broker = Broker::start_with(&["--set", "max.connections.per.ip=3"]);
    let mut first = open_served(&broker);
    let mut others: Vec<RawConn> = (0..2).map(|_| open_served(&broker)).collect();
    let mut extra = RawConn::open_raw(&broker, CLIENT_ID);
    extra.assert_closed("a fourth connection from the same address");
    wait_until(
        Duration::from_secs(10),
        "the broker logs the refused connection",
        || broker.log().contains("max.connections.per.ip (3)"),
    );
    assert!(!served(&broker), "a fifth connection is refused as well");
    api_versions(&mut first);
    for conn in &mut others {
        api_versions(conn);
    }
    drop(first);
    wait_until(
        Duration::from_secs(10),
        "a new connection is served once one of the three closed",
        || served(&broker),
    );
}

/// `connections.max.idle.ms = 500`: a connection that sent one request and then nothing,
/// and one that stalled halfway through a request, are closed after about 500 ms; one that
/// sends a request every 100 ms stays open for several idle periods.
#[test]
fn idle_connections_are_closed_and_active_ones_stay() {
    let broker = Broker::start_with(&["--set", "connections.max.idle.ms=500"]);
    let start = Instant::now();
    let mut idle = RawConn::open(&broker, CLIENT_ID);
    let mut stalled = stalled_request(&broker, 10 * 1024 * 1024, 100);
    let mut active = RawConn::open(&broker, CLIENT_ID);
    let watch_idle = std::thread::spawn(move || {
        idle.assert_closed("an idle connection");
        start.elapsed()
    });
    let watch_stalled = std::thread::spawn(move || {
        wait_closed(
            &mut stalled,
            "a connection stalled halfway through a request",
        );
        start.elapsed()
    });
    // Active for four idle periods, and until both others were closed.
    while start.elapsed() < Duration::from_secs(2)
        || !watch_idle.is_finished()
        || !watch_stalled.is_finished()
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "idle connections not closed"
        );
        api_versions(&mut active);
        std::thread::sleep(Duration::from_millis(100));
    }
    let idle_closed = watch_idle.join().unwrap();
    let stalled_closed = watch_stalled.join().unwrap();
    eprintln!("idle connection closed after {idle_closed:?}, stalled one after {stalled_closed:?}");
    for closed in [idle_closed, stalled_closed] {
        assert!(
            closed >= Duration::from_millis(500),
            "closed after {closed:?}, before the idle time"
        );
    }
    api_versions(&mut active);
}

/// Warnings about connections closed for bad input are rate limited: 300 connections that
/// each send a negative length prefix get at most a few lines per second, and a later line
/// says how many were suppressed.
#[test]
fn warnings_about_bad_connections_are_rate_limited() {
    let broker = Broker::start();
    let start = Instant::now();
    let bad = |count: usize| {
        for _ in 0..count {
            let mut conn = stalled_request(&broker, 0x8000_0000, 0);
            wait_closed(&mut conn, "a connection with a negative length prefix");
        }
    };
    bad(300);
    let elapsed = start.elapsed();
    let closing = |log: &str| log.matches("closing connection").count();
    let logged = closing(&broker.log());
    // Ten per second, per window of one second started by the first line of a burst.
    let allowed = 10 * (elapsed.as_secs() as usize + 2);
    assert!(
        (1..=allowed).contains(&logged),
        "{logged} warnings for 300 bad connections in {elapsed:?} (at most {allowed})"
    );
    // Once a new window starts, the next warning comes with the count of those dropped.
    wait_until(
        Duration::from_secs(10),
        "the log reports suppressed warnings",
        || {
            bad(1);
            broker.log().contains("suppressed")
        },
    );
    let log = broker.log();
    eprintln!(
        "{logged} of 300 warnings logged in {elapsed:?}; summary: {:?}",
        log.lines().find(|l| l.contains("suppressed"))
    );
    assert!(log.contains("similar messages"), "{log}");
}

//! The load itself, on librdkafka (the `rdkafka` crate): produce throughput, consume
//! throughput and produce latency at a fixed rate. Every number counts record payload bytes
//! (the value of each record), so MB/s is directly "user data per second".

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::statistics::Statistics;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

/// Acknowledgement level of a produce run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Acks {
    #[serde(rename = "1")]
    Leader,
    #[serde(rename = "all")]
    All,
}

impl Acks {
    pub fn as_config(self) -> &'static str {
        match self {
            Acks::Leader => "1",
            Acks::All => "all",
        }
    }
}

/// Counts acknowledgements and, for latency runs, records send-to-ack times.
struct Tracker {
    start: Instant,
    acked: AtomicU64,
    failed: AtomicU64,
    /// Nanoseconds after `start` of the latest acknowledgement.
    last_ack_ns: AtomicU64,
    /// Microseconds from the scheduled send to the acknowledgement.
    latency: Option<Mutex<Histogram<u64>>>,
    /// Acknowledgements of records scheduled before this many ns after `start` (the
    /// warm-up) are not recorded.
    record_after_ns: AtomicU64,
    /// Produce requests sent to all brokers, from librdkafka's latest statistics (only when
    /// `statistics.interval.ms` is set, as latency runs do).
    produce_requests: AtomicU64,
}

impl ClientContext for Tracker {
    fn stats(&self, statistics: Statistics) {
        let sent: i64 = statistics
            .brokers
            .values()
            .filter_map(|b| b.req.get("Produce"))
            .sum();
        self.produce_requests
            .fetch_max(u64::try_from(sent).unwrap_or(0), Ordering::Relaxed);
    }
}

/// Client settings added to (or replacing) a run's own, e.g. `security.protocol=ssl` and
/// `ssl.ca.location` for a TLS listener. Empty for the plaintext runs.
pub type ClientSettings = [(String, String)];

/// A producer (linger `linger_ms`) whose deliveries `tracker` counts, connected to the
/// leaders of `topic` before it is returned, so no run times the connection set-up.
fn tracked_producer(
    bootstrap: &str,
    settings: &ClientSettings,
    topic: &str,
    acks: Acks,
    linger_ms: u32,
    latency: Option<Histogram<u64>>,
) -> Result<ThreadedProducer<Tracker>> {
    let tracker = Tracker {
        start: Instant::now(),
        acked: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        last_ack_ns: AtomicU64::new(0),
        latency: latency.map(Mutex::new),
        record_after_ns: AtomicU64::new(u64::MAX),
        produce_requests: AtomicU64::new(0),
    };
    let mut config = producer_config(bootstrap, acks, linger_ms);
    if tracker.latency.is_some() {
        config.set("statistics.interval.ms", "250");
    }
    for (key, value) in settings {
        config.set(key, value);
    }
    let producer: ThreadedProducer<Tracker> = config
        .create_with_context(tracker)
        .context("creating producer")?;
    producer
        .client()
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .context("metadata before producing")?;
    Ok(producer)
}

impl ProducerContext for Tracker {
    /// Nanoseconds after `start` at which the message was due to be sent.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, scheduled_ns: usize) {
        let now_ns = nanos_since(self.start);
        match result {
            Ok(_) => {
                self.acked.fetch_add(1, Ordering::Relaxed);
                self.last_ack_ns.fetch_max(now_ns, Ordering::Relaxed);
                if let Some(hist) = &self.latency
                    && scheduled_ns as u64 >= self.record_after_ns.load(Ordering::Relaxed)
                {
                    let us = now_ns.saturating_sub(scheduled_ns as u64) / 1_000;
                    if let Ok(mut h) = hist.lock() {
                        h.saturating_record(us.max(1));
                    }
                }
            }
            Err(_) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn nanos_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// The producer settings every run uses, for both brokers alike.
fn producer_config(bootstrap: &str, acks: Acks, linger_ms: u32) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("acks", acks.as_config())
        .set("linger.ms", linger_ms.to_string())
        .set("batch.size", "1000000")
        .set("compression.type", "none")
        .set("enable.idempotence", "false")
        // 64 MiB of queued records is ~50 ms of the fastest broker's intake: enough to keep
        // requests in flight, small enough that the final flush of a slow broker is short.
        .set("queue.buffering.max.kbytes", "65536")
        .set("queue.buffering.max.messages", "1000000")
        .set("message.timeout.ms", "60000")
        .set("socket.nagle.disable", "true");
    config
}

/// Result of a throughput run.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    pub records: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub records_per_sec: f64,
    pub mb_per_sec: f64,
    pub failed: u64,
    /// CPU seconds (user + system) the broker process used during the run.
    pub broker_cpu_seconds: Option<f64>,
    /// CPU seconds the load generator (this process, all client threads) used.
    pub client_cpu_seconds: Option<f64>,
}

impl Throughput {
    fn new(records: u64, record_size: usize, seconds: f64, failed: u64) -> Throughput {
        let bytes = records * record_size as u64;
        let seconds = seconds.max(1e-9);
        Throughput {
            records,
            bytes,
            seconds,
            records_per_sec: records as f64 / seconds,
            mb_per_sec: bytes as f64 / seconds / 1e6,
            failed,
            broker_cpu_seconds: None,
            client_cpu_seconds: None,
        }
    }
}

fn payload(record_size: usize) -> Vec<u8> {
    // Not all zeros and not trivially repeating, so a transparent compressor would not
    // flatter anyone (the runs use compression.type=none anyway).
    (0..record_size)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 3)) as u8)
        .collect()
}

/// Produces `record_size`-byte records as fast as the broker takes them, round robin over
/// `partitions`, until `max_records` were sent or `duration` passed, then waits for every
/// acknowledgement. Throughput is acknowledged bytes over the time to the last ack.
pub fn produce_throughput(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    acks: Acks,
    record_size: usize,
    duration: Duration,
    max_records: u64,
) -> Result<Throughput> {
    produce_throughput_with(
        bootstrap,
        &[],
        topic,
        partitions,
        acks,
        record_size,
        duration,
        max_records,
    )
}

/// [`produce_throughput`] with extra client settings (a TLS listener's).
#[allow(clippy::too_many_arguments)]
pub fn produce_throughput_with(
    bootstrap: &str,
    settings: &ClientSettings,
    topic: &str,
    partitions: i32,
    acks: Acks,
    record_size: usize,
    duration: Duration,
    max_records: u64,
) -> Result<Throughput> {
    let producer = tracked_producer(bootstrap, settings, topic, acks, 5, None)?;
    let value = payload(record_size);
    let start = Instant::now();
    let mut sent: u64 = 0;
    while sent < max_records && (!sent.is_multiple_of(1024) || start.elapsed() < duration) {
        let partition = (sent % partitions as u64) as i32;
        let record = BaseRecord::<(), [u8], usize>::with_opaque_to(topic, 0)
            .payload(&value)
            .partition(partition);
        send_waiting(&producer, record, topic)?;
        sent += 1;
    }
    producer
        .flush(Duration::from_secs(300))
        .context("flushing the producer")?;
    let ctx = producer.context();
    let acked = ctx.acked.load(Ordering::Relaxed);
    let failed = ctx.failed.load(Ordering::Relaxed);
    // Clock from the first send (the tracker's start is earlier, before the metadata).
    let end_ns = ctx.last_ack_ns.load(Ordering::Relaxed);
    let offset_ns = nanos_since(ctx.start) - nanos_since(start);
    let seconds = end_ns.saturating_sub(offset_ns) as f64 / 1e9;
    Ok(Throughput::new(acked, record_size, seconds, failed))
}

/// Latency percentiles of a fixed-rate run, in microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub rate_per_sec: u32,
    pub partitions: i32,
    /// Records per second the generator sent (the offered rate, if it kept up).
    pub achieved_per_sec: f64,
    /// Records per second acknowledged, over the measured part of the run (from the first
    /// scheduled send after the warm-up to the last acknowledgement).
    pub sustained_per_sec: f64,
    pub samples: u64,
    pub failed: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
    /// Produce requests the client sent over the whole run (warm-up included), from
    /// librdkafka's statistics; 0 if none arrived.
    pub produce_requests: u64,
    /// Records acknowledged over the whole run (warm-up included).
    pub records: u64,
    /// CPU seconds (user + system) the broker used over the whole run, when its pid is known.
    pub broker_cpu_seconds: Option<f64>,
    /// `broker_cpu_seconds` per produce request, in microseconds.
    pub broker_cpu_us_per_request: Option<f64>,
    /// CPU seconds the load generator used over the whole run.
    pub client_cpu_seconds: Option<f64>,
    /// The latency distribution: `(quantile, microseconds)` pairs, for plotting the CDF.
    pub cdf: Vec<(f64, u64)>,
}

/// Quantiles at which the CDF is sampled: dense in the tail, where brokers differ.
fn cdf_points(hist: &Histogram<u64>) -> Vec<(f64, u64)> {
    let mut qs: Vec<f64> = (0..=90).map(|i| f64::from(i) / 100.0).collect();
    qs.extend((1..=90).map(|i| 0.90 + f64::from(i) / 1000.0));
    qs.extend((1..=9).map(|i| 0.99 + f64::from(i) / 1000.0));
    qs.extend([0.9995, 0.9999, 1.0]);
    qs.into_iter()
        .map(|q| (q, hist.value_at_quantile(q)))
        .collect()
}

/// Sends `rate` records per second for `warmup + duration` with `linger.ms=0`, round robin
/// over `partitions`, and records, for those scheduled after the warm-up, the time from the
/// scheduled send to the acknowledgement (so a broker that falls behind is charged for the
/// queueing it causes). With `broker_pid`, also the broker's CPU per produce request.
#[allow(clippy::too_many_arguments)]
pub fn produce_latency(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    acks: Acks,
    record_size: usize,
    rate: u32,
    warmup: Duration,
    duration: Duration,
    broker_pid: Option<u32>,
) -> Result<Latency> {
    let producer = tracked_producer(
        bootstrap,
        &[],
        topic,
        acks,
        0,
        Some(Histogram::new_with_bounds(1, 120_000_000, 3)?),
    )?;
    let start = producer.context().start;
    let value = payload(record_size);
    let broker_pid = broker_pid.map(|p| p.to_string());
    let broker_cpu0 = broker_pid.as_deref().and_then(cpu_seconds);
    let client_cpu0 = cpu_seconds("self");
    // The schedule starts now; the tracker's clock (and so the opaque) is relative to `start`.
    let base_ns = nanos_since(start);
    let warmup_ns = u64::try_from(warmup.as_nanos())?;
    producer
        .context()
        .record_after_ns
        .store(base_ns + warmup_ns, Ordering::Relaxed);
    let total = (warmup + duration).as_secs_f64() * f64::from(rate);
    let total = total as u64;
    let interval_ns = 1e9 / f64::from(rate);
    for i in 0..total {
        let due_ns = base_ns + (i as f64 * interval_ns) as u64;
        let now_ns = nanos_since(start);
        if due_ns > now_ns {
            std::thread::sleep(Duration::from_nanos(due_ns - now_ns));
        }
        let partition = (i % partitions.max(1) as u64) as i32;
        let mut record =
            BaseRecord::<(), [u8], usize>::with_opaque_to(topic, usize::try_from(due_ns)?)
                .payload(&value)
                .partition(partition);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err((e, _)) => bail!("produce to {topic}: {e}"),
            }
        }
    }
    let send_seconds = (nanos_since(start) - base_ns) as f64 / 1e9;
    producer
        .flush(Duration::from_secs(300))
        .context("flushing the producer")?;
    let broker_cpu = broker_pid
        .as_deref()
        .and_then(cpu_seconds)
        .zip(broker_cpu0)
        .map(|(b, a)| b - a);
    let client_cpu = cpu_seconds("self").zip(client_cpu0).map(|(b, a)| b - a);
    // One more statistics interval, so the request count covers the whole run.
    std::thread::sleep(Duration::from_millis(600));
    let ctx = producer.context();
    let requests = ctx.produce_requests.load(Ordering::Relaxed);
    let measured_from_ns = base_ns + warmup_ns;
    let measured_seconds = ctx
        .last_ack_ns
        .load(Ordering::Relaxed)
        .saturating_sub(measured_from_ns) as f64
        / 1e9;
    let hist = ctx
        .latency
        .as_ref()
        .context("latency histogram")?
        .lock()
        .map_err(|_| anyhow::anyhow!("histogram lock poisoned"))?;
    Ok(Latency {
        rate_per_sec: rate,
        partitions,
        achieved_per_sec: total as f64 / send_seconds.max(1e-9),
        sustained_per_sec: hist.len() as f64 / measured_seconds.max(1e-9),
        samples: hist.len(),
        failed: ctx.failed.load(Ordering::Relaxed),
        p50_us: hist.value_at_quantile(0.50),
        p99_us: hist.value_at_quantile(0.99),
        p999_us: hist.value_at_quantile(0.999),
        max_us: hist.max(),
        mean_us: hist.mean(),
        produce_requests: requests,
        records: ctx.acked.load(Ordering::Relaxed),
        broker_cpu_seconds: broker_cpu,
        broker_cpu_us_per_request: broker_cpu
            .filter(|_| requests > 0)
            .map(|cpu| cpu * 1e6 / requests as f64),
        client_cpu_seconds: client_cpu,
        cdf: cdf_points(&hist),
    })
}

/// Reads every partition of `topic` from the beginning until `expected` records arrived.
pub fn consume_throughput(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    expected: u64,
    record_size: usize,
) -> Result<Throughput> {
    consume_throughput_with(bootstrap, &[], topic, partitions, expected, record_size)
}

/// [`consume_throughput`] with extra client settings (a TLS listener's).
pub fn consume_throughput_with(
    bootstrap: &str,
    settings: &ClientSettings,
    topic: &str,
    partitions: i32,
    expected: u64,
    record_size: usize,
) -> Result<Throughput> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        // librdkafka needs a group id for assign(); nothing is committed.
        .set("group.id", format!("floe-bench-{topic}"))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "4194304");
    for (key, value) in settings {
        config.set(key, value);
    }
    let consumer: BaseConsumer = config.create().context("creating consumer")?;
    consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .context("metadata before consuming")?;
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    let start = Instant::now();
    consumer.assign(&assignment)?;
    let mut records: u64 = 0;
    let mut bytes: u64 = 0;
    let mut last_progress = Instant::now();
    while records < expected {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                records += 1;
                bytes += message.payload_len() as u64;
                last_progress = Instant::now();
            }
            Some(Err(e)) => bail!("consuming {topic}: {e}"),
            None => {
                if last_progress.elapsed() > Duration::from_secs(30) {
                    bail!("consuming {topic}: stalled at {records} of {expected} records");
                }
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let mut result = Throughput::new(records, record_size, seconds, 0);
    result.bytes = bytes;
    result.mb_per_sec = bytes as f64 / seconds / 1e6;
    Ok(result)
}

/// CPU seconds (user + system) a process used so far, from `/proc/<pid>/stat` (clock ticks
/// of 1/100 s, Linux's USER_HZ on every mainstream architecture).
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; fields are counted after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// Runs `f` and records the CPU seconds it cost the broker (`broker_pid`) and this process.
pub fn with_cpu(broker_pid: u32, f: impl FnOnce() -> Result<Throughput>) -> Result<Throughput> {
    let pid = broker_pid.to_string();
    let (b0, c0) = (cpu_seconds(&pid), cpu_seconds("self"));
    let mut result = f()?;
    let (b1, c1) = (cpu_seconds(&pid), cpu_seconds("self"));
    result.broker_cpu_seconds = b0.zip(b1).map(|(a, b)| b - a);
    result.client_cpu_seconds = c0.zip(c1).map(|(a, b)| b - a);
    Ok(result)
}

/// Queues `record`, waiting while the producer's queue is full.
fn send_waiting<K: rdkafka::message::ToBytes + ?Sized>(
    producer: &ThreadedProducer<Tracker>,
    mut record: BaseRecord<'_, K, [u8], usize>,
    topic: &str,
) -> Result<()> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                std::thread::sleep(Duration::from_micros(200));
            }
            Err((e, _)) => bail!("produce to {topic}: {e}"),
        }
    }
}

/// Keyed records (`key-<n % keys>`) produced to partition 0 of `topic` at about
/// `rate_per_sec` until `stop` is set; returns how many were acknowledged. The background
/// load that keeps the log cleaner busy in the compaction scenario.
pub fn produce_keyed_until(
    bootstrap: &str,
    topic: &str,
    keys: u64,
    record_size: usize,
    rate_per_sec: u32,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<u64> {
    let producer = tracked_producer(bootstrap, &[], topic, Acks::Leader, 5, None)?;
    let value = payload(record_size);
    let start = Instant::now();
    let mut sent: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let due = Duration::from_secs_f64(sent as f64 / f64::from(rate_per_sec.max(1)));
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(wait.min(Duration::from_millis(10)));
            continue;
        }
        let key = format!("key-{}", sent % keys.max(1));
        let record = BaseRecord::<str, [u8], usize>::with_opaque_to(topic, 0)
            .key(key.as_str())
            .payload(&value)
            .partition(0);
        send_waiting(&producer, record, topic)?;
        sent += 1;
    }
    producer
        .flush(Duration::from_secs(60))
        .context("flushing the keyed producer")?;
    Ok(producer.context().acked.load(Ordering::Relaxed))
}

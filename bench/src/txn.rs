//! The transactions scenario (Floe only; the peer has no transactions): on one broker and
//! topics of `TXN_PARTITIONS` partitions,
//! - **idempotent** produce (acks=all, `enable.idempotence=true`) as fast as the broker
//!   takes it, and the same with a `transactional.id`, committing every
//!   `--txn-commit-interval-ms` (100 ms): transactional throughput as a share of idempotent
//!   (the target is at least 80 %);
//! - **end-to-end latency** to a read_committed consumer: a transactional producer at
//!   `--latency-rate` records/s committing every interval, a consumer reading with
//!   `isolation.level=read_committed`; each record carries its send time (µs since the epoch)
//!   in its first 16 bytes, and the consumer records receive time minus send time after the
//!   warm-up. A record becomes visible only when its transaction commits, so this is bounded
//!   below by half the commit interval on average.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use rdkafka::Message;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use crate::RunArgs;
use crate::broker::{self, Broker, BrokerSpec, Kind};
use crate::load::{self, Throughput};

/// Partitions of every topic of the scenario (the setting).
pub const TXN_PARTITIONS: i32 = 8;

/// End-to-end latency to a read_committed consumer.
#[derive(Debug, Clone, Serialize)]
pub struct EndToEnd {
    pub rate_per_sec: u32,
    pub commit_interval_ms: u64,
    pub samples: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

/// What the scenario measured.
#[derive(Debug, Clone, Serialize)]
pub struct TxnRun {
    pub partitions: i32,
    pub commit_interval_ms: u64,
    pub idempotent: Throughput,
    pub transactional: Throughput,
    /// Transactions committed during the transactional run.
    pub transactions: u64,
    /// `transactional.mb_per_sec / idempotent.mb_per_sec`.
    pub share: f64,
    pub end_to_end: EndToEnd,
}

fn producer_config(
    bootstrap: &str,
    transactional_id: Option<&str>,
    linger_ms: u32,
) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", linger_ms.to_string())
        .set("batch.size", "1000000")
        .set("compression.type", "none")
        // A commit waits until every queued record is acknowledged, and the producing thread
        // waits for the commit: a queue holding ~10 ms of records keeps that drain short
        // (both runs use the same settings).
        .set("queue.buffering.max.kbytes", "4096")
        .set("queue.buffering.max.messages", "1000000")
        .set("message.timeout.ms", "60000")
        .set("socket.nagle.disable", "true");
    if let Some(id) = transactional_id {
        config.set("transactional.id", id);
    }
    config
}

fn payload(record_size: usize) -> Vec<u8> {
    (0..record_size.max(16))
        .map(|i| (i.wrapping_mul(31) ^ (i >> 3)) as u8)
        .collect()
}

fn now_us() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros())
}

/// Waits until every record sent was acknowledged, polling every millisecond. The rdkafka
/// crate's `flush`, and `commit_transaction` with records in flight, wait in steps of about
/// 100 ms (measured: every commit took ~100 ms longer than the broker's EndTxn, 2 ms), which
/// would charge the client's polling to the transactions.
fn drain(producer: &BaseProducer, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while producer.in_flight_count() > 0 {
        if Instant::now() > deadline {
            bail!("records not acknowledged within {timeout:?}");
        }
        producer.poll(Duration::from_millis(1));
    }
    Ok(())
}

/// Produces as fast as the broker takes records for `duration` (or `max_records`), round
/// robin over the partitions; with `commit_every`, inside transactions committed that
/// often. Throughput is acknowledged (committed) bytes over the time to the last
/// acknowledgement (the last commit).
fn produce(
    bootstrap: &str,
    topic: &str,
    record_size: usize,
    duration: Duration,
    max_records: u64,
    commit_every: Option<Duration>,
) -> Result<(Throughput, u64)> {
    let transactional_id = commit_every.map(|_| format!("bench-{topic}"));
    let producer: BaseProducer = producer_config(bootstrap, transactional_id.as_deref(), 5)
        .create()
        .context("creating producer")?;
    producer
        .client()
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .context("metadata before producing")?;
    let timeout = Duration::from_secs(60);
    if commit_every.is_some() {
        producer
            .init_transactions(timeout)
            .context("init_transactions")?;
        producer.begin_transaction().context("begin_transaction")?;
    }
    let value = payload(record_size);
    let start = Instant::now();
    let mut last_commit = start;
    let mut sent: u64 = 0;
    let mut transactions = 0u64;
    while sent < max_records && start.elapsed() < duration {
        let partition = (sent % TXN_PARTITIONS as u64) as i32;
        let mut record = BaseRecord::<(), [u8]>::to(topic)
            .payload(&value)
            .partition(partition);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    back,
                )) => {
                    record = back;
                    producer.poll(Duration::from_millis(1));
                }
                Err((e, _)) => bail!("produce to {topic}: {e}"),
            }
        }
        sent += 1;
        if sent.is_multiple_of(256) {
            producer.poll(Duration::ZERO);
        }
        if let Some(every) = commit_every
            && last_commit.elapsed() >= every
        {
            drain(&producer, timeout)?;
            producer
                .commit_transaction(timeout)
                .context("commit_transaction")?;
            transactions += 1;
            producer.begin_transaction().context("begin_transaction")?;
            last_commit = Instant::now();
        }
    }
    if commit_every.is_some() {
        producer
            .commit_transaction(timeout)
            .context("commit_transaction")?;
        transactions += 1;
    } else {
        producer.flush(Duration::from_secs(300)).context("flush")?;
    }
    let seconds = start.elapsed().as_secs_f64();
    // Every record sent was acknowledged (a failed delivery fails the commit or the flush).
    let bytes = sent * record_size as u64;
    Ok((
        Throughput {
            records: sent,
            bytes,
            seconds,
            records_per_sec: sent as f64 / seconds,
            mb_per_sec: bytes as f64 / seconds / 1e6,
            failed: 0,
            broker_cpu_seconds: None,
            client_cpu_seconds: None,
        },
        transactions,
    ))
}

/// The end-to-end run: a transactional producer at `rate` records/s on one thread, a
/// read_committed consumer on this one.
fn end_to_end(
    bootstrap: &str,
    topic: &str,
    record_size: usize,
    rate: u32,
    commit_every: Duration,
    warmup: Duration,
    duration: Duration,
) -> Result<EndToEnd> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "bench-e2e")
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "100")
        .create()
        .context("creating consumer")?;
    let mut assignment = TopicPartitionList::new();
    for p in 0..TXN_PARTITIONS {
        assignment.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let done = Arc::new(AtomicBool::new(false));
    let producer_done = Arc::clone(&done);
    let bootstrap_owned = bootstrap.to_string();
    let topic_owned = topic.to_string();
    let total = ((warmup + duration).as_secs_f64() * f64::from(rate)) as u64;
    let producer = std::thread::spawn(move || -> Result<()> {
        let result = (|| {
            let producer: BaseProducer =
                producer_config(&bootstrap_owned, Some("bench-e2e"), 0).create()?;
            let timeout = Duration::from_secs(60);
            producer.init_transactions(timeout)?;
            producer.begin_transaction()?;
            let mut value = payload(record_size);
            let start = Instant::now();
            let mut last_commit = start;
            let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
            for i in 0..total {
                let due = start + interval.mul_f64(i as f64);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                value[..16].copy_from_slice(&now_us().to_be_bytes());
                let record = BaseRecord::<(), [u8]>::to(&topic_owned)
                    .payload(&value)
                    .partition((i % TXN_PARTITIONS as u64) as i32);
                producer.send(record).map_err(|(e, _)| e)?;
                producer.poll(Duration::ZERO);
                if last_commit.elapsed() >= commit_every {
                    drain(&producer, timeout)?;
                    producer.commit_transaction(timeout)?;
                    producer.begin_transaction()?;
                    last_commit = Instant::now();
                }
            }
            producer.commit_transaction(timeout)?;
            anyhow::Ok(())
        })();
        producer_done.store(true, Ordering::Release);
        result
    });
    let mut hist = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let measure_from = now_us() + warmup.as_micros();
    let mut received = 0u64;
    let deadline = Instant::now() + warmup + duration + Duration::from_secs(120);
    while received < total && Instant::now() < deadline {
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            if done.load(Ordering::Acquire) && producer.is_finished() && received >= total {
                break;
            }
            continue;
        };
        let message = message.context("consuming")?;
        let now = now_us();
        received += 1;
        let Some(sent) = message
            .payload()
            .and_then(|p| p.get(..16))
            .and_then(|b| <[u8; 16]>::try_from(b).ok())
            .map(u128::from_be_bytes)
        else {
            continue;
        };
        if sent >= measure_from {
            hist.saturating_record(u64::try_from(now.saturating_sub(sent)).unwrap_or(u64::MAX));
        }
    }
    producer
        .join()
        .map_err(|_| anyhow::anyhow!("the producer thread panicked"))??;
    if received < total {
        bail!("read_committed consumer got {received} of {total} records");
    }
    Ok(EndToEnd {
        rate_per_sec: rate,
        commit_interval_ms: commit_every.as_millis() as u64,
        samples: hist.len(),
        p50_us: hist.value_at_quantile(0.5),
        p99_us: hist.value_at_quantile(0.99),
        p999_us: hist.value_at_quantile(0.999),
        max_us: hist.max(),
    })
}

/// Runs the scenario on a fresh Floe.
pub fn txn_phase(args: &RunArgs) -> Result<TxnRun> {
    let spec = BrokerSpec {
        kind: Kind::Floe,
        binary: std::fs::canonicalize(&args.floe)?,
        data_dir: args.work_dir.join("floe-txn").join("data"),
        port: broker::free_port()?,
        env: Vec::new(),
    };
    eprintln!(
        "[bench] floe (transactions): starting on {}",
        spec.bootstrap()
    );
    let mut broker = Broker::spawn(spec.clone())?;
    broker.wait_listening(Duration::from_secs(60))?;
    let commit_every = Duration::from_millis(args.txn_commit_interval_ms);
    let duration = Duration::from_secs_f64(args.produce_seconds);
    for topic in ["txn-idempotent", "txn-transactional", "txn-e2e"] {
        broker::create_topic(&spec, topic, TXN_PARTITIONS)?;
    }
    let pid = broker.pid();
    let mut idempotent = None;
    let idem = load::with_cpu(pid, || {
        let (t, _) = produce(
            &spec.bootstrap(),
            "txn-idempotent",
            args.record_size,
            duration,
            args.produce_max_records,
            None,
        )?;
        Ok(t)
    })?;
    idempotent.replace(idem);
    let mut transactions = 0;
    let transactional = load::with_cpu(pid, || {
        let (t, n) = produce(
            &spec.bootstrap(),
            "txn-transactional",
            args.record_size,
            duration,
            args.produce_max_records,
            Some(commit_every),
        )?;
        transactions = n;
        Ok(t)
    })?;
    let idempotent = idempotent.context("idempotent run")?;
    eprintln!(
        "[bench]   idempotent {:.0} MB/s, transactional {:.0} MB/s ({transactions} commits)",
        idempotent.mb_per_sec, transactional.mb_per_sec
    );
    let e2e = end_to_end(
        &spec.bootstrap(),
        "txn-e2e",
        args.record_size,
        args.latency_rate,
        commit_every,
        Duration::from_secs_f64(args.latency_warmup_seconds),
        Duration::from_secs_f64(args.latency_seconds),
    )?;
    eprintln!(
        "[bench]   read_committed end to end at {}/s: p50 {} us, p99 {} us",
        e2e.rate_per_sec, e2e.p50_us, e2e.p99_us
    );
    broker.stop().ok();
    drop(broker);
    std::fs::remove_dir_all(args.work_dir.join("floe-txn")).ok();
    Ok(TxnRun {
        partitions: TXN_PARTITIONS,
        commit_interval_ms: args.txn_commit_interval_ms,
        share: transactional.mb_per_sec / idempotent.mb_per_sec.max(f64::MIN_POSITIVE),
        idempotent,
        transactional,
        transactions,
        end_to_end: e2e,
    })
}

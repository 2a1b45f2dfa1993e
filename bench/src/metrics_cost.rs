//! The metrics scenario (Floe only): what recording metrics costs. The same produce and
//! consume runs on brokers with `metrics_enable = true` and `false`, alternated
//! (on, off, on, off, ...) so that drift of the machine hits both alike. While metrics are
//! on, a scraper fetches `/metrics` every `--metrics-scrape-interval-ms` (1 s: a Prometheus
//! scraping far more often than the usual 15 s), so the cost includes rendering the scrape.
//!
//! Each run: acks=all produce for `--produce-seconds` over `METRICS_PARTITIONS` partitions,
//! then one consumer reading it all back. Reported: mean MB/s and broker CPU seconds per GB
//! of each side, and the cost as the relative drop of throughput (target: under 3 %).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::RunArgs;
use crate::broker::{self, Broker, BrokerSpec, Kind};
use crate::load::{self, Acks, Throughput};

/// Partitions of the scenario's topic.
pub const METRICS_PARTITIONS: i32 = 8;

/// One broker's runs.
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    pub metrics_enable: bool,
    pub produce: Vec<Throughput>,
    pub consume: Vec<Throughput>,
    pub produce_mb_per_sec: f64,
    pub consume_mb_per_sec: f64,
    /// Broker CPU seconds per GB produced (produce runs together).
    pub produce_cpu_s_per_gb: Option<f64>,
    /// Broker CPU seconds per GB consumed.
    pub consume_cpu_s_per_gb: Option<f64>,
}

/// What the scenario measured.
#[derive(Debug, Clone, Serialize)]
pub struct MetricsRun {
    pub partitions: i32,
    pub rounds: u32,
    pub scrape_interval_ms: u64,
    pub on: Side,
    pub off: Side,
    /// `1 - on / off` of produce throughput, in percent (negative: on was faster).
    pub produce_cost_pct: f64,
    /// The same for consume throughput.
    pub consume_cost_pct: f64,
    /// Scrapes made while metrics were on, their mean duration and the size of the last.
    pub scrapes: u64,
    pub scrape_mean_ms: f64,
    pub scrape_bytes: u64,
}

/// Scrapes `/metrics` on `port` every `interval` until `stop`; returns (scrapes, total
/// time, bytes of the last).
fn scraper(
    port: u16,
    interval: Duration,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(u64, Duration, u64)> {
    std::thread::spawn(move || {
        let (mut n, mut total, mut bytes) = (0u64, Duration::ZERO, 0u64);
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            if let Ok(body) = scrape(port) {
                n += 1;
                total += started.elapsed();
                bytes = body.len() as u64;
            }
            let spent = started.elapsed();
            std::thread::sleep(interval.saturating_sub(spent));
        }
        (n, total, bytes)
    })
}

fn scrape(port: u16) -> Result<Vec<u8>> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut body = Vec::new();
    stream.read_to_end(&mut body)?;
    if !body.starts_with(b"HTTP/1.0 200") && !body.starts_with(b"HTTP/1.1 200") {
        bail!("/metrics did not answer 200");
    }
    Ok(body)
}

pub(crate) fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = values.collect();
    v.iter().sum::<f64>() / (v.len().max(1) as f64)
}

pub(crate) fn cpu_per_gb(runs: &[Throughput]) -> Option<f64> {
    let cpu: Option<f64> = runs.iter().map(|t| t.broker_cpu_seconds).sum();
    let bytes: u64 = runs.iter().map(|t| t.bytes).sum();
    cpu.map(|c| c / (bytes.max(1) as f64 / 1e9))
}

/// One round on a fresh broker: produce, then consume it all.
fn round(
    args: &RunArgs,
    enable: bool,
    index: u32,
    scrapes: &mut (u64, Duration, u64),
) -> Result<(Throughput, Throughput)> {
    let http_port = broker::free_port()?;
    let dir = args.work_dir.join(format!("floe-metrics-{index}"));
    let spec = BrokerSpec {
        kind: Kind::Floe,
        binary: std::fs::canonicalize(&args.floe)?,
        data_dir: dir.join("data"),
        port: broker::free_port()?,
        env: vec![
            ("FLOE_METRICS_ENABLE".into(), enable.to_string()),
            ("FLOE_HTTP_LISTEN".into(), format!("127.0.0.1:{http_port}")),
        ],
    };
    let mut broker = Broker::spawn(spec.clone())?;
    broker.wait_listening(Duration::from_secs(60))?;
    broker::create_topic(&spec, "metrics", METRICS_PARTITIONS)?;
    crate::settle_disk();
    let stop = Arc::new(AtomicBool::new(false));
    let scraping = enable.then(|| {
        scraper(
            http_port,
            Duration::from_millis(args.metrics_scrape_interval_ms),
            stop.clone(),
        )
    });
    let pid = broker.pid();
    let produced = load::with_cpu(pid, || {
        load::produce_throughput(
            &spec.bootstrap(),
            "metrics",
            METRICS_PARTITIONS,
            Acks::All,
            args.record_size,
            Duration::from_secs_f64(args.produce_seconds),
            args.produce_max_records,
        )
    })?;
    let consumed = load::with_cpu(pid, || {
        load::consume_throughput(
            &spec.bootstrap(),
            "metrics",
            METRICS_PARTITIONS,
            produced.records,
            args.record_size,
        )
    })?;
    stop.store(true, Ordering::Relaxed);
    if let Some(handle) = scraping {
        let (n, t, b) = handle
            .join()
            .map_err(|_| anyhow::anyhow!("the scraper thread panicked"))?;
        if n == 0 {
            bail!("no /metrics scrape succeeded");
        }
        scrapes.0 += n;
        scrapes.1 += t;
        scrapes.2 = b;
    }
    eprintln!(
        "[bench]   metrics {}: produce {:.0} MB/s, consume {:.0} MB/s",
        if enable { "on " } else { "off" },
        produced.mb_per_sec,
        consumed.mb_per_sec
    );
    broker.stop().ok();
    drop(broker);
    std::fs::remove_dir_all(&dir).ok();
    Ok((produced, consumed))
}

/// Runs the scenario: `--metrics-rounds` rounds of each side, alternated.
pub fn metrics_phase(args: &RunArgs) -> Result<MetricsRun> {
    eprintln!(
        "[bench] floe (metrics on vs off): {} rounds",
        args.metrics_rounds
    );
    // [on, off]: produce runs, consume runs.
    let mut runs: [(Vec<Throughput>, Vec<Throughput>); 2] = Default::default();
    let mut scrapes = (0u64, Duration::ZERO, 0u64);
    for r in 0..args.metrics_rounds {
        // Alternate which side goes first, so neither always runs on a warmer machine.
        let order = if r % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for (i, enable) in order.into_iter().enumerate() {
            let (p, c) = round(args, enable, r * 2 + i as u32, &mut scrapes)
                .with_context(|| format!("round {r}, metrics_enable={enable}"))?;
            let side = &mut runs[usize::from(!enable)];
            side.0.push(p);
            side.1.push(c);
        }
    }
    let [on, off] = runs;
    let side = |enable: bool, (produce, consume): (Vec<Throughput>, Vec<Throughput>)| Side {
        metrics_enable: enable,
        produce_mb_per_sec: mean(produce.iter().map(|t| t.mb_per_sec)),
        consume_mb_per_sec: mean(consume.iter().map(|t| t.mb_per_sec)),
        produce_cpu_s_per_gb: cpu_per_gb(&produce),
        consume_cpu_s_per_gb: cpu_per_gb(&consume),
        produce,
        consume,
    };
    let on = side(true, on);
    let off = side(false, off);
    let cost = |a: f64, b: f64| (1.0 - a / b.max(f64::MIN_POSITIVE)) * 100.0;
    let run = MetricsRun {
        partitions: METRICS_PARTITIONS,
        rounds: args.metrics_rounds,
        scrape_interval_ms: args.metrics_scrape_interval_ms,
        produce_cost_pct: cost(on.produce_mb_per_sec, off.produce_mb_per_sec),
        consume_cost_pct: cost(on.consume_mb_per_sec, off.consume_mb_per_sec),
        scrapes: scrapes.0,
        scrape_mean_ms: scrapes.1.as_secs_f64() * 1e3 / (scrapes.0.max(1) as f64),
        scrape_bytes: scrapes.2,
        on,
        off,
    };
    eprintln!(
        "[bench]   metrics cost: produce {:.1} %, consume {:.1} % ({} scrapes, {:.1} ms each)",
        run.produce_cost_pct, run.consume_cost_pct, run.scrapes, run.scrape_mean_ms
    );
    Ok(run)
}

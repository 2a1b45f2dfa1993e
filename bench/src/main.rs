//! `floe-bench`: Floe side by side with a peer broker (tansu 0.6.0) on this machine, in one
//! run, plus the machine's own ceilings. `scripts/bench.sh` builds what it needs and runs
//! `floe-bench run`; `docs/benchmarks.md` explains every number.

mod broker;
mod ceilings;
mod load;
mod metrics_cost;
mod report;
mod security;
mod tiered;
mod txn;
mod wire;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::broker::{Broker, BrokerSpec, Kind, Readiness};
use crate::load::{Acks, Latency, Throughput};

#[derive(Parser)]
#[command(version, about = "Floe's load generator and side-by-side benchmark")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The whole benchmark: ceilings, then Floe alone, then tansu alone; JSON + table.
    Run(Box<RunArgs>),
    /// Only the machine's ceilings (disk and loopback TCP), printed as JSON.
    Ceilings {
        /// Directory on the disk to measure (a scratch file is written and removed).
        #[arg(long, default_value = "target/bench-ceilings")]
        dir: PathBuf,
        #[arg(long, default_value_t = 2048)]
        write_mb: u64,
        #[arg(long, default_value_t = 1024)]
        fdatasync_mb: u64,
    },
    /// Produce for a while, then consume everything from the start, against a broker that is
    /// already running (the topic must exist with `--partitions` partitions, or be
    /// auto-created so). Prints both results as JSON. For investigating.
    Throughput {
        #[arg(long, default_value = "127.0.0.1:9092")]
        bootstrap: String,
        #[arg(long, default_value = "throughput")]
        topic: String,
        #[arg(long, default_value_t = 1)]
        partitions: i32,
        /// `1` or `all`.
        #[arg(long, default_value = "1")]
        acks: String,
        #[arg(long, default_value_t = 1024)]
        record_size: usize,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Skip producing; consume this many records.
        #[arg(long)]
        consume_only: Option<u64>,
        /// A librdkafka setting for producer and consumer, `key=value`, repeatable (a TLS
        /// listener: `--client-set security.protocol=ssl --client-set ssl.ca.location=ca.pem`).
        #[arg(long = "client-set", value_name = "KEY=VALUE")]
        client_settings: Vec<String>,
    },
    /// One fixed-rate latency run against a broker that is already running (the topic is
    /// auto-created or must exist with `--partitions` partitions), printed as JSON. For
    /// investigating.
    Latency {
        #[arg(long, default_value = "127.0.0.1:9092")]
        bootstrap: String,
        #[arg(long, default_value = "latency")]
        topic: String,
        #[arg(long, default_value_t = 1)]
        partitions: i32,
        /// The broker's pid, to report its CPU per request.
        #[arg(long)]
        broker_pid: Option<u32>,
        /// `1` or `all`.
        #[arg(long, default_value = "all")]
        acks: String,
        #[arg(long, default_value_t = 10_000)]
        rate: u32,
        #[arg(long, default_value_t = 1024)]
        record_size: usize,
        #[arg(long, default_value_t = 2.0)]
        warmup_seconds: f64,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
    },
}

/// Settings of one run; recorded in the report.
#[derive(clap::Args, Debug, Clone, Serialize)]
struct RunArgs {
    /// The floe binary (built with `cargo build --release`).
    #[arg(long, default_value = "target/release/floe")]
    floe: PathBuf,
    /// The peer broker's binary; without it only Floe is measured.
    #[arg(long)]
    tansu: Option<PathBuf>,
    /// Scratch space for the brokers' data directories and the ceiling files; emptied at
    /// the start and removed at the end of the run.
    #[arg(long)]
    work_dir: PathBuf,
    /// Where `<timestamp>.json` and `<timestamp>.txt` are written.
    #[arg(long, default_value = "bench/results")]
    results_dir: PathBuf,
    /// Bytes of each record's value.
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    /// Length of each produce-throughput run.
    #[arg(long, default_value_t = 10.0)]
    produce_seconds: f64,
    /// Upper bound on records per produce-throughput run.
    #[arg(long, default_value_t = 10_000_000)]
    produce_max_records: u64,
    /// Fixed rate of the small-request latency runs (single-record requests per second,
    /// `linger.ms=0`, round robin over the partitions).
    #[arg(long, default_value_t = 10_000)]
    latency_rate: u32,
    /// Measured part of each latency run.
    #[arg(long, default_value_t = 15.0)]
    latency_seconds: f64,
    /// Unrecorded start of each latency run.
    #[arg(long, default_value_t = 3.0)]
    latency_warmup_seconds: f64,
    /// Log to fill (8 partitions) before the restart measurement, in GB (1e9 bytes).
    #[arg(long, default_value_t = 2.0)]
    restart_log_gb: f64,
    /// Time cap on filling the restart log (per broker).
    #[arg(long, default_value_t = 600.0)]
    restart_fill_max_seconds: f64,
    /// Time cap on filling tansu's restart log: it is much slower to fill, and its restart
    /// is measured on whatever that time wrote.
    #[arg(long, default_value_t = 60.0)]
    peer_restart_fill_max_seconds: f64,
    /// Buffered sequential write ceiling: bytes written (MiB).
    #[arg(long, default_value_t = 2048)]
    ceiling_write_mb: u64,
    /// write + fdatasync ceiling: bytes written (MiB).
    #[arg(long, default_value_t = 1024)]
    ceiling_fdatasync_mb: u64,
    /// Records per second written to the compacted topic that keeps the log cleaner busy in
    /// the compaction scenario (0 skips the scenario).
    #[arg(long, default_value_t = 20_000)]
    cleaner_background_rate: u32,
    /// Distinct keys of that background load.
    #[arg(long, default_value_t = 10_000)]
    cleaner_background_keys: u64,
    /// Run only the compaction scenario (Floe, cleaner off and on); no peer.
    #[arg(long)]
    cleaner_only: bool,
    /// The s3s-fs binary: the object store of the tiered-storage scenario (without it the
    /// scenario is skipped).
    #[arg(long)]
    s3s_fs: Option<PathBuf>,
    /// Log filled and uploaded per round of the tiered-storage scenario, in GB.
    #[arg(long, default_value_t = 1.0)]
    tiered_fill_gb: f64,
    /// Directory the s3s-fs object store keeps its bucket in. The store stands in for one on
    /// other machines, so by default it is on tmpfs (`/dev/shm` when there is one): its writes
    /// then do not queue behind, or ahead of, the broker's fsyncs on the broker's disk.
    #[arg(long)]
    tiered_store_dir: Option<PathBuf>,
    /// The tiered-storage scenario's object store: `s3s-fs` (a server on loopback) or
    /// `local` (a directory through a file:// URL: the broker's own side of uploading,
    /// with no server sharing the machine).
    #[arg(long, default_value = "s3s-fs")]
    tiered_store: String,
    /// The tiered-storage scenario's upload quota
    /// (`remote.log.manager.copy.max.bytes.per.second`), MB/s; 0: unlimited.
    #[arg(long, default_value_t = 0.0)]
    tiered_copy_mb_per_sec: f64,
    /// Seconds the disk rests (after a `sync`) before each side of the tiered-storage
    /// scenario is measured, so both start with the same write burst budget.
    #[arg(long, default_value_t = 90.0)]
    tiered_rest_seconds: f64,
    /// Rounds of the tiered-storage scenario (each: one filled topic; the producers
    /// measured with the uploader idle and busy uploading that topic, idle first in odd
    /// rounds and busy first in even ones).
    #[arg(long, default_value_t = 2)]
    tiered_rounds: u32,
    /// Run only the tiered-storage scenario; no peer.
    #[arg(long)]
    tiered_only: bool,
    /// How often the transactions scenario's producers commit, in ms.
    #[arg(long, default_value_t = 100)]
    txn_commit_interval_ms: u64,
    /// Run only the transactions scenario (with `--tiered-only`, both); no peer.
    #[arg(long)]
    txn_only: bool,
    /// Rounds of the metrics scenario (each: one broker with metrics on, one with them off).
    /// Four: consume throughput varies by ±15 % from run to run here, more than the effect
    /// measured, so two rounds could judge noise.
    #[arg(long, default_value_t = 4)]
    metrics_rounds: u32,
    /// How often the metrics scenario scrapes `/metrics` while metrics are on, in ms.
    #[arg(long, default_value_t = 1000)]
    metrics_scrape_interval_ms: u64,
    /// Run only the metrics scenario (it combines with the other `--*-only` flags); no peer.
    #[arg(long)]
    metrics_only: bool,
    /// Rounds of the security scenario's throughput comparison (each: one broker measured
    /// over PLAINTEXT, one over SSL, the order alternating).
    #[arg(long, default_value_t = 4)]
    security_rounds: u32,
    /// The security scenario's server key: `rsa2048` (what most Kafka deployments use) or
    /// `p256` (ECDSA, a cheaper handshake).
    #[arg(long, default_value = "rsa2048", value_parser = ["rsa2048", "p256"])]
    security_key: String,
    /// Length of each connection set-up run of the security scenario, in seconds.
    #[arg(long, default_value_t = 5.0)]
    security_setup_seconds: f64,
    /// Run only the security scenario (TLS vs plaintext throughput, SCRAM connection
    /// set-ups; it combines with the other `--*-only` flags); no peer.
    #[arg(long)]
    security_only: bool,
}

/// Scenarios that only run when asked for or when no `--*-only` flag narrows the run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Cleaner,
    Tiered,
    Txn,
    Metrics,
    Security,
}

impl RunArgs {
    /// Whether the run includes `scenario`: every one without a `--*-only` flag, else those
    /// flagged.
    fn wants(&self, scenario: Scenario) -> bool {
        let flags = [
            (Scenario::Cleaner, self.cleaner_only),
            (Scenario::Tiered, self.tiered_only),
            (Scenario::Txn, self.txn_only),
            (Scenario::Metrics, self.metrics_only),
            (Scenario::Security, self.security_only),
        ];
        !flags.iter().any(|(_, on)| *on) || flags.contains(&(scenario, true))
    }

    /// Only some scenarios were asked for: the throughput and latency matrix and the peer
    /// are skipped.
    fn narrowed(&self) -> bool {
        self.cleaner_only
            || self.tiered_only
            || self.txn_only
            || self.metrics_only
            || self.security_only
    }
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Run(args) => run(*args),
        Cmd::Ceilings {
            dir,
            write_mb,
            fdatasync_mb,
        } => {
            let c = ceilings::measure(&dir, write_mb << 20, fdatasync_mb << 20)?;
            println!("{}", serde_json::to_string_pretty(&c)?);
            Ok(())
        }
        Cmd::Throughput {
            bootstrap,
            topic,
            partitions,
            acks,
            record_size,
            seconds,
            consume_only,
            client_settings,
        } => {
            let settings = client_settings
                .iter()
                .map(|kv| {
                    kv.split_once('=')
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .with_context(|| format!("--client-set {kv}: expected key=value"))
                })
                .collect::<Result<Vec<_>>>()?;
            let records = match consume_only {
                Some(n) => n,
                None => {
                    let produced = load::produce_throughput_with(
                        &bootstrap,
                        &settings,
                        &topic,
                        partitions,
                        parse_acks(&acks)?,
                        record_size,
                        Duration::from_secs_f64(seconds),
                        u64::MAX,
                    )?;
                    println!("{}", serde_json::to_string_pretty(&produced)?);
                    produced.records
                }
            };
            let consumed = load::consume_throughput_with(
                &bootstrap,
                &settings,
                &topic,
                partitions,
                records,
                record_size,
            )?;
            println!("{}", serde_json::to_string_pretty(&consumed)?);
            Ok(())
        }
        Cmd::Latency {
            bootstrap,
            topic,
            partitions,
            broker_pid,
            acks,
            rate,
            record_size,
            warmup_seconds,
            seconds,
        } => {
            let acks = parse_acks(&acks)?;
            let result = load::produce_latency(
                &bootstrap,
                &topic,
                partitions,
                acks,
                record_size,
                rate,
                Duration::from_secs_f64(warmup_seconds),
                Duration::from_secs_f64(seconds),
                broker_pid,
            )?;
            println!("{}", serde_json::to_string_pretty(&result)?);
            Ok(())
        }
    }
}

/// One produce-throughput scenario.
#[derive(Debug, Clone, Serialize)]
pub struct ProduceRun {
    pub acks: Acks,
    pub partitions: i32,
    pub topic: String,
    pub result: Throughput,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConsumeRun {
    pub partitions: i32,
    pub topic: String,
    pub result: Throughput,
}

#[derive(Debug, Clone, Serialize)]
pub struct LatencyRun {
    pub acks: Acks,
    pub partitions: i32,
    /// Floe's storage backend as configured (`auto` is the default configuration); empty
    /// for the peer.
    pub backend: String,
    pub result: Latency,
}

/// The small-request scenarios: (acks, partitions).
pub const LATENCY_SCENARIOS: [(Acks, i32); 4] = [
    (Acks::Leader, 1),
    (Acks::Leader, 8),
    (Acks::All, 1),
    (Acks::All, 8),
];

#[derive(Debug, Clone, Serialize)]
pub struct RestartRun {
    pub topic: String,
    pub partitions: i32,
    /// Bytes of the data directory when the broker was stopped.
    pub log_bytes: u64,
    pub fill: Option<Throughput>,
    /// Time SIGTERM took to stop the broker.
    pub clean_shutdown_ms: f64,
    /// Spawn to ready after the clean shutdown.
    pub after_clean_shutdown: Readiness,
    /// Spawn to ready after `kill -9`.
    pub after_kill: Option<Readiness>,
}

/// One side of the compaction scenario: a compacted topic written in the background while
/// acks=all producers are measured on other topics.
#[derive(Debug, Clone, Serialize)]
pub struct CleanerSide {
    pub cleaner_enabled: bool,
    /// Keyed records the background load had acknowledged.
    pub background_records: u64,
    /// Cleans the broker logged while the producers were measured.
    pub cleans: usize,
    pub produce: Throughput,
    pub latency: Latency,
}

/// The compaction scenario: the same load with the cleaner off and on.
#[derive(Debug, Clone, Serialize)]
pub struct CleanerRun {
    pub without: CleanerSide,
    pub with: CleanerSide,
}

/// Everything measured on one broker.
#[derive(Debug, Clone, Serialize, Default)]
pub struct BrokerReport {
    pub kind: Option<Kind>,
    pub binary: String,
    pub version: String,
    /// Spawn to first Metadata answer, on an empty data directory.
    pub startup_empty_ms: f64,
    pub rss_idle_bytes: u64,
    pub rss_after_load_bytes: u64,
    pub rss_peak_bytes: u64,
    pub produce: Vec<ProduceRun>,
    pub consume: Vec<ConsumeRun>,
    pub latency: Vec<LatencyRun>,
    pub restart: Option<RestartRun>,
    /// Producers beside a busy log cleaner, and the same without it (Floe only).
    pub cleaner: Option<CleanerRun>,
    /// Tiered storage: uploads, producers beside them, consumes from local and remote.
    pub tiered: Option<tiered::TieredRun>,
    /// Transactions: transactional vs idempotent produce, read_committed end to end.
    pub transactions: Option<txn::TxnRun>,
    /// Metrics: produce and consume with metrics on vs off.
    pub metrics: Option<metrics_cost::MetricsRun>,
    /// Security: TLS vs plaintext throughput, SCRAM connection set-ups.
    pub security: Option<security::SecurityRun>,
    /// Phases that failed; the run goes on without them.
    pub errors: Vec<String>,
}

fn run(args: RunArgs) -> Result<()> {
    let started = std::time::SystemTime::now();
    let stamp = report::timestamp(started);
    if args.work_dir.exists() {
        std::fs::remove_dir_all(&args.work_dir)
            .with_context(|| format!("emptying {}", args.work_dir.display()))?;
    }
    std::fs::create_dir_all(&args.work_dir)?;

    eprintln!("[bench] machine ceilings");
    let ceilings = ceilings::measure(
        &args.work_dir.join("ceilings"),
        args.ceiling_write_mb << 20,
        args.ceiling_fdatasync_mb << 20,
    )?;
    eprintln!("[bench] {ceilings:?}");

    let only = args.narrowed();
    let mut floe = if only {
        BrokerReport {
            kind: Some(Kind::Floe),
            binary: args.floe.display().to_string(),
            version: version_of(&args.floe),
            ..BrokerReport::default()
        }
    } else {
        bench_broker(&args, Kind::Floe, &args.floe)?
    };
    if !only && let Err(e) = bench_floe_std(&args, &mut floe) {
        eprintln!("[bench] floe (std): {e:#}");
        floe.errors.push(format!("std backend: {e:#}"));
    }
    if args.wants(Scenario::Txn) {
        match txn::txn_phase(&args) {
            Ok(run) => floe.transactions = Some(run),
            Err(e) => {
                eprintln!("[bench] floe (transactions): {e:#}");
                floe.errors.push(format!("transactions: {e:#}"));
            }
        }
    }
    if let Some(s3s_fs) = args
        .s3s_fs
        .as_ref()
        .filter(|_| args.wants(Scenario::Tiered))
    {
        match tiered::tiered_phase(&args, s3s_fs) {
            Ok(run) => floe.tiered = Some(run),
            Err(e) => {
                eprintln!("[bench] floe (tiered): {e:#}");
                floe.errors.push(format!("tiered: {e:#}"));
            }
        }
    }
    if args.wants(Scenario::Metrics) {
        match metrics_cost::metrics_phase(&args) {
            Ok(run) => floe.metrics = Some(run),
            Err(e) => {
                eprintln!("[bench] floe (metrics): {e:#}");
                floe.errors.push(format!("metrics: {e:#}"));
            }
        }
    }
    if args.wants(Scenario::Security) {
        match security::security_phase(&args) {
            Ok(run) => floe.security = Some(run),
            Err(e) => {
                eprintln!("[bench] floe (security): {e:#}");
                floe.errors.push(format!("security: {e:#}"));
            }
        }
    }
    if args.cleaner_background_rate > 0 && args.wants(Scenario::Cleaner) {
        match cleaner_phase(&args) {
            Ok(run) => floe.cleaner = Some(run),
            Err(e) => {
                eprintln!("[bench] floe (cleaner): {e:#}");
                floe.errors.push(format!("cleaner: {e:#}"));
            }
        }
    }
    // A peer that fails to start or run is reported, not fatal: Floe's numbers still stand.
    let tansu = args.tansu.as_ref().filter(|_| !only).map(|path| {
        bench_broker(&args, Kind::Tansu, path).unwrap_or_else(|e| {
            eprintln!("[bench] tansu: {e:#}");
            BrokerReport {
                kind: Some(Kind::Tansu),
                binary: path.display().to_string(),
                errors: vec![format!("{e:#}")],
                ..BrokerReport::default()
            }
        })
    });

    let report = report::Report::new(&args, stamp.clone(), ceilings, floe, tansu);
    std::fs::create_dir_all(&args.results_dir)?;
    let json_path = args.results_dir.join(format!("{stamp}.json"));
    std::fs::write(&json_path, serde_json::to_string_pretty(&report)?)?;
    let table = report.table();
    std::fs::write(args.results_dir.join(format!("{stamp}.txt")), &table)?;
    println!("{table}");
    println!("report: {}", json_path.display());
    std::fs::remove_dir_all(&args.work_dir).ok();
    Ok(())
}

fn version_of(binary: &Path) -> String {
    std::process::Command::new(binary)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Runs every phase against one broker, alone, on a fresh data directory.
fn parse_acks(acks: &str) -> Result<Acks> {
    match acks {
        "1" => Ok(Acks::Leader),
        "all" | "-1" => Ok(Acks::All),
        other => anyhow::bail!("--acks {other}: expected 1 or all"),
    }
}

/// Writes back what earlier phases left dirty in the page cache (`sync(1)`), so that each
/// phase measures its own writes and fsyncs, not the background writeback of gigabytes from
/// the phase before. Done the same way for every broker.
pub(crate) fn settle_disk() {
    match std::process::Command::new("sync").status() {
        Ok(status) if status.success() => {}
        Ok(status) => eprintln!("[bench] sync exited with {status}"),
        Err(e) => eprintln!("[bench] sync failed: {e}"),
    }
}

fn bench_broker(args: &RunArgs, kind: Kind, binary: &Path) -> Result<BrokerReport> {
    let binary = std::fs::canonicalize(binary)
        .with_context(|| format!("{} binary {}", kind.name(), binary.display()))?;
    let base = args.work_dir.join(kind.name());
    let spec = BrokerSpec {
        kind,
        binary: binary.clone(),
        data_dir: base.join("data"),
        port: broker::free_port()?,
        env: Vec::new(),
    };
    let mut out = BrokerReport {
        kind: Some(kind),
        binary: binary.display().to_string(),
        version: version_of(&binary),
        ..BrokerReport::default()
    };
    eprintln!("[bench] {}: starting on {}", kind.name(), spec.bootstrap());
    let mut broker = Broker::spawn(spec.clone())?;
    out.startup_empty_ms = broker
        .wait_listening(Duration::from_secs(60))?
        .as_secs_f64()
        * 1e3;
    // Let start-up allocations settle before reading the idle footprint.
    std::thread::sleep(Duration::from_secs(2));
    out.rss_idle_bytes = broker.rss()?.0;

    let bootstrap = spec.bootstrap();
    let size = args.record_size;
    for (acks, partitions) in [
        (Acks::Leader, 1),
        (Acks::Leader, 8),
        (Acks::All, 1),
        (Acks::All, 8),
    ] {
        let topic = format!("produce-acks{}-p{partitions}", acks.as_config());
        let mut phase = || -> Result<()> {
            settle_disk();
            broker::create_topic(&spec, &topic, partitions)?;
            eprintln!(
                "[bench] {}: produce acks={} partitions={partitions}",
                kind.name(),
                acks.as_config()
            );
            let result = load::with_cpu(broker.pid(), || {
                load::produce_throughput(
                    &bootstrap,
                    &topic,
                    partitions,
                    acks,
                    size,
                    Duration::from_secs_f64(args.produce_seconds),
                    args.produce_max_records,
                )
            })?;
            eprintln!("[bench]   {result:?}");
            let records = result.records;
            out.produce.push(ProduceRun {
                acks,
                partitions,
                topic: topic.clone(),
                result,
            });
            // Consume right away, while the data is in the page cache (the host evicts
            // pages untouched for about a minute).
            if acks == Acks::Leader {
                eprintln!("[bench] {}: consume partitions={partitions}", kind.name());
                let result = load::with_cpu(broker.pid(), || {
                    load::consume_throughput(&bootstrap, &topic, partitions, records, size)
                })?;
                eprintln!("[bench]   {result:?}");
                out.consume.push(ConsumeRun {
                    partitions,
                    topic: topic.clone(),
                    result,
                });
            }
            Ok(())
        };
        if let Err(e) = phase() {
            eprintln!("[bench] {}: {topic} failed: {e:#}", kind.name());
            out.errors.push(format!("{topic}: {e:#}"));
        }
    }

    let backend = match kind {
        Kind::Floe => "auto",
        Kind::Tansu => "",
    };
    latency_phases(args, &spec, &broker, backend, &mut out);
    let (rss, peak) = broker.rss()?;
    out.rss_after_load_bytes = rss;
    out.rss_peak_bytes = peak;

    // The restart is measured on a log of the requested size alone: a fresh data directory.
    broker.stop()?;
    std::fs::remove_dir_all(&spec.data_dir)?;
    broker.respawn()?;
    broker.wait_listening(Duration::from_secs(60))?;
    match restart_phase(args, &spec, &mut broker) {
        Ok(r) => out.restart = Some(r),
        Err(e) => {
            eprintln!("[bench] {}: restart failed: {e:#}", kind.name());
            out.errors.push(format!("restart: {e:#}"));
        }
    }
    broker.stop().ok();
    drop(broker);
    std::fs::remove_dir_all(&spec.data_dir).ok();
    Ok(out)
}

/// The small-request scenarios (fixed rate, single-record requests) against a running
/// broker; each on its own topic. Failures are recorded in `out.errors`.
fn latency_phases(
    args: &RunArgs,
    spec: &BrokerSpec,
    broker: &Broker,
    backend: &str,
    out: &mut BrokerReport,
) {
    let kind = spec.kind;
    for (acks, partitions) in LATENCY_SCENARIOS {
        let topic = format!("latency-acks{}-p{partitions}", acks.as_config());
        let phase = || -> Result<Latency> {
            settle_disk();
            broker::create_topic(spec, &topic, partitions)?;
            eprintln!(
                "[bench] {}{}: latency acks={} partitions={partitions} at {}/s",
                kind.name(),
                if backend.is_empty() {
                    String::new()
                } else {
                    format!(" ({backend})")
                },
                acks.as_config(),
                args.latency_rate
            );
            load::produce_latency(
                &spec.bootstrap(),
                &topic,
                partitions,
                acks,
                args.record_size,
                args.latency_rate,
                Duration::from_secs_f64(args.latency_warmup_seconds),
                Duration::from_secs_f64(args.latency_seconds),
                Some(broker.pid()),
            )
        };
        match phase() {
            Ok(result) => {
                eprintln!(
                    "[bench]   sustained {:.0}/s p50 {} us p99 {} us p999 {} us, {} requests, \
                     broker CPU {:?} us/request",
                    result.sustained_per_sec,
                    result.p50_us,
                    result.p99_us,
                    result.p999_us,
                    result.produce_requests,
                    result.broker_cpu_us_per_request
                );
                out.latency.push(LatencyRun {
                    acks,
                    partitions,
                    backend: backend.to_owned(),
                    result,
                });
            }
            Err(e) => {
                eprintln!("[bench] {}: {topic} failed: {e:#}", kind.name());
                out.errors.push(format!("{topic} ({backend}): {e:#}"));
            }
        }
    }
}

/// Floe on the std backend (`storage.io=std`), small-request scenarios only, on a fresh
/// data directory; its runs join `out.latency` with backend `std`.
fn bench_floe_std(args: &RunArgs, out: &mut BrokerReport) -> Result<()> {
    let binary = std::fs::canonicalize(&args.floe)?;
    let spec = BrokerSpec {
        kind: Kind::Floe,
        binary,
        data_dir: args.work_dir.join("floe-std").join("data"),
        port: broker::free_port()?,
        env: vec![("FLOE_STORAGE_IO".into(), "std".into())],
    };
    eprintln!("[bench] floe (std): starting on {}", spec.bootstrap());
    let mut broker = Broker::spawn(spec.clone())?;
    broker.wait_listening(Duration::from_secs(60))?;
    latency_phases(args, &spec, &broker, "std", out);
    broker.stop().ok();
    drop(broker);
    std::fs::remove_dir_all(&spec.data_dir).ok();
    Ok(())
}

/// The compaction scenario: a compacted topic (8 MiB segments, dirty ratio 0.1) written
/// with keyed records in the background at `cleaner_background_rate`, while acks=all
/// throughput (1 partition) and the fixed-rate small-request latency (acks=all, 1
/// partition) are measured on other topics; once with the cleaner off, once on (each on a
/// fresh broker).
fn cleaner_phase(args: &RunArgs) -> Result<CleanerRun> {
    let binary = std::fs::canonicalize(&args.floe)?;
    let mut sides = Vec::new();
    for enabled in [false, true] {
        let spec = BrokerSpec {
            kind: Kind::Floe,
            binary: binary.clone(),
            data_dir: args
                .work_dir
                .join(format!("floe-cleaner-{enabled}"))
                .join("data"),
            port: broker::free_port()?,
            env: vec![
                ("FLOE_LOG_CLEANER_ENABLE".into(), enabled.to_string()),
                ("FLOE_LOG_CLEANER_BACKOFF_MS".into(), "100".into()),
                // The cleans are counted from the cleaner's INFO lines.
                (
                    "RUST_LOG".into(),
                    "warn,floe_storage::partition_log::compaction=info".into(),
                ),
            ],
        };
        eprintln!(
            "[bench] floe (cleaner {}): starting on {}",
            if enabled { "on" } else { "off" },
            spec.bootstrap()
        );
        let mut broker = Broker::spawn(spec.clone())?;
        broker.wait_listening(Duration::from_secs(60))?;
        let background = "compacted-background";
        wire::Conn::connect(spec.addr(), Duration::from_secs(5))?.create_topic_with(
            background,
            1,
            &[
                ("cleanup.policy", "compact"),
                ("segment.bytes", "8388608"),
                ("min.cleanable.dirty.ratio", "0.1"),
            ],
        )?;
        broker::create_topic(&spec, background, 1)?;
        let stop = std::sync::atomic::AtomicBool::new(false);
        let bootstrap = spec.bootstrap();
        let side = std::thread::scope(|scope| -> Result<CleanerSide> {
            let load = scope.spawn(|| {
                load::produce_keyed_until(
                    &bootstrap,
                    background,
                    args.cleaner_background_keys,
                    args.record_size,
                    args.cleaner_background_rate,
                    &stop,
                )
            });
            let measured = (|| -> Result<(usize, Throughput, Latency)> {
                // Let segments roll and the cleaner get going.
                std::thread::sleep(Duration::from_secs(5));
                let cleans_before = broker.log_text().matches("log cleaned").count();
                broker::create_topic(&spec, "cleaner-throughput", 1)?;
                let produce = load::with_cpu(broker.pid(), || {
                    load::produce_throughput(
                        &bootstrap,
                        "cleaner-throughput",
                        1,
                        Acks::All,
                        args.record_size,
                        Duration::from_secs_f64(args.produce_seconds),
                        args.produce_max_records,
                    )
                })?;
                broker::create_topic(&spec, "cleaner-latency", 1)?;
                let latency = load::produce_latency(
                    &bootstrap,
                    "cleaner-latency",
                    1,
                    Acks::All,
                    args.record_size,
                    args.latency_rate,
                    Duration::from_secs_f64(args.latency_warmup_seconds),
                    Duration::from_secs_f64(args.latency_seconds),
                    Some(broker.pid()),
                )?;
                let cleans = broker.log_text().matches("log cleaned").count() - cleans_before;
                Ok((cleans, produce, latency))
            })();
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            let background_records = load
                .join()
                .map_err(|_| anyhow::anyhow!("background producer panicked"))??;
            let (cleans, produce, latency) = measured?;
            Ok(CleanerSide {
                cleaner_enabled: enabled,
                background_records,
                cleans,
                produce,
                latency,
            })
        })?;
        eprintln!(
            "[bench]   cleaner {}: {:.0} MB/s acks=all, p99 {} us at {}/s, {} cleans, {} background records",
            if enabled { "on" } else { "off" },
            side.produce.mb_per_sec,
            side.latency.p99_us,
            args.latency_rate,
            side.cleans,
            side.background_records
        );
        broker.stop().ok();
        drop(broker);
        std::fs::remove_dir_all(&spec.data_dir).ok();
        sides.push(side);
    }
    let with = sides.pop().context("cleaner-on side")?;
    let without = sides.pop().context("cleaner-off side")?;
    Ok(CleanerRun { without, with })
}

/// Fills a topic to `restart_log_gb`, stops the broker cleanly and measures spawn to
/// ready; then the same after `kill -9`.
fn restart_phase(args: &RunArgs, spec: &BrokerSpec, broker: &mut Broker) -> Result<RestartRun> {
    let topic = "restart";
    let partitions = 8;
    let kind = spec.kind;
    broker::create_topic(spec, topic, partitions)?;
    let records = (args.restart_log_gb * 1e9 / args.record_size as f64) as u64;
    let cap = match kind {
        Kind::Floe => args.restart_fill_max_seconds,
        Kind::Tansu => args.peer_restart_fill_max_seconds,
    };
    eprintln!(
        "[bench] {}: filling {topic} with up to {:.1} GB (cap {cap} s)",
        kind.name(),
        args.restart_log_gb
    );
    let fill_start = Instant::now();
    let fill = load::produce_throughput(
        &spec.bootstrap(),
        topic,
        partitions,
        Acks::Leader,
        args.record_size,
        Duration::from_secs_f64(cap),
        records,
    )?;
    eprintln!("[bench]   filled in {:?}: {fill:?}", fill_start.elapsed());
    let clean_shutdown = broker.stop()?;
    let log_bytes = broker::dir_size(&spec.data_dir);
    eprintln!(
        "[bench] {}: restart after clean shutdown ({:.2} GB on disk)",
        kind.name(),
        log_bytes as f64 / 1e9
    );
    // The page cache still holds much of the log; that is the usual restart situation.
    broker.respawn()?;
    let after_clean = broker.wait_ready(topic, partitions, Duration::from_secs(600))?;
    eprintln!("[bench]   {after_clean:?}");
    broker.kill()?;
    eprintln!("[bench] {}: restart after kill -9", kind.name());
    broker.respawn()?;
    let after_kill = match broker.wait_ready(topic, partitions, Duration::from_secs(600)) {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("[bench]   not ready after kill -9: {e:#}");
            None
        }
    };
    eprintln!("[bench]   {after_kill:?}");
    Ok(RestartRun {
        topic: topic.to_owned(),
        partitions,
        log_bytes,
        fill: Some(fill),
        clean_shutdown_ms: clean_shutdown.as_secs_f64() * 1e3,
        after_clean_shutdown: after_clean,
        after_kill,
    })
}

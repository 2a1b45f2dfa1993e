//! The tiered-storage scenario (Floe only: the peer has no segment tiering to compare):
//! an s3s-fs server on loopback (or, with `--tiered-store local`, a directory) as the
//! object store, one broker, which is not restarted between the measurements.
//!
//! 1. Fill `--tiered-rounds` topics (1 partition, 64 MiB segments, not tiered) with
//!    `tiered_fill_gb` between them; consume the first from local disk.
//! 2. Each round measures two sides, each after a rest of the disk
//!    (`--tiered-rest-seconds`, after a `sync`): acks=all produce throughput and the
//!    small-request latency on fresh, untiered topics, once with the uploader idle and
//!    once right after tiering is turned on for the round's filled topic
//!    (IncrementalAlterConfigs `remote.storage.enable=true`, `local.retention.bytes=1`:
//!    the uploader starts copying its whole backlog at once). The busy side then waits
//!    for every closed segment to be in the bucket (upload throughput: bytes over the time
//!    from turning tiering on) and for local retention to delete the local copies. Odd
//!    rounds measure the idle side first, even rounds the busy side.
//! 3. Consume the first filled topic from offset 0 again, now from the object store.
//!
//! Both sides are measured on the same broker with equal rests and in alternating order,
//! because this machine's disk writes in bursts (see [`rest_disk`]): a side measured
//! later, or after a restart, would otherwise read differently for reasons that have
//! nothing to do with the uploader. Broker CPU seconds are measured around each consume,
//! so CPU per GB compares the two read paths.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::RunArgs;
use crate::broker::{self, Broker, BrokerSpec, Kind};
use crate::load::{self, Acks, Latency, Throughput};

const ACCESS_KEY: &str = "floe-bench-access-key";
const SECRET_KEY: &str = "floe-bench-secret-key";
const BUCKET: &str = "floe-bench";
const SEGMENT_BYTES: u64 = 64 << 20;
/// The topic filled, uploaded and read back.
const FILLED: &str = "tiered";

/// Producers measured with the uploader idle or busy.
#[derive(Debug, Clone, Serialize)]
pub struct TieredSide {
    pub uploader_busy: bool,
    pub produce: Throughput,
    pub latency: Latency,
    /// Segments of the round's filled topic in the bucket when the measurements ended.
    pub remote_segments_at_end: usize,
}

/// One round: the same producers with the uploader idle and busy.
#[derive(Debug, Clone, Serialize)]
pub struct TieredRound {
    /// The busy side was measured first (odd rounds).
    pub busy_first: bool,
    pub idle: TieredSide,
    pub busy: TieredSide,
    /// Closed segments of the round's filled topic (what is uploaded) and their bytes.
    pub uploaded_segments: usize,
    pub uploaded_bytes: u64,
    /// From turning tiering on to the last segment in the bucket.
    pub upload_seconds: f64,
}

/// The tiered-storage scenario's results.
#[derive(Debug, Clone, Serialize)]
pub struct TieredRun {
    pub object_store: String,
    pub segment_bytes: u64,
    /// `remote.log.manager.copy.max.bytes.per.second`, MB/s (`None`: unlimited).
    pub copy_quota_mb_per_sec: Option<f64>,
    pub rounds: Vec<TieredRound>,
    /// Bytes of every round's filled topic (what is uploaded).
    pub uploaded_bytes: u64,
    pub uploaded_segments: usize,
    /// Summed over the rounds, each from turning tiering on to its last segment uploaded.
    pub upload_seconds: f64,
    pub upload_mb_per_sec: f64,
    /// Means over the rounds.
    pub idle_mb_per_sec: f64,
    pub busy_mb_per_sec: f64,
    pub idle_p99_us: f64,
    pub busy_p99_us: f64,
    /// CPU seconds of the S3 server during the uploads and during the remote consume.
    pub store_cpu_upload_seconds: Option<f64>,
    pub store_cpu_consume_seconds: Option<f64>,
    /// Every record of the first filled topic, read from local disk.
    pub consume_local: Throughput,
    /// The same records, read from the object store (the local copies deleted).
    pub consume_remote: Throughput,
}

impl TieredRun {
    /// Broker CPU seconds per GB (1e9 bytes) of a consume.
    pub fn cpu_per_gb(t: &Throughput) -> Option<f64> {
        t.broker_cpu_seconds
            .map(|cpu| cpu / (t.bytes as f64 / 1e9).max(f64::MIN_POSITIVE))
    }

    /// Segments of the filled topics in the bucket when the busy measurements ended.
    pub fn uploaded_meanwhile(&self) -> usize {
        self.rounds
            .iter()
            .map(|r| r.busy.remote_segments_at_end)
            .sum()
    }
}

/// The object store: an s3s-fs server, or (`--tiered-store local`) a plain directory,
/// which isolates the broker's own side of uploading (no server process at all).
struct BenchStore {
    /// The server; `None` for a directory.
    child: Option<Child>,
    root: PathBuf,
    port: u16,
}

impl BenchStore {
    fn start(binary: &Path, root: PathBuf) -> Result<BenchStore> {
        std::fs::create_dir_all(root.join(BUCKET))?;
        let port = broker::free_port()?;
        let log = std::fs::File::create(root.with_extension("log"))?;
        // In the SCHED_IDLE class: the server stands in for an object store on other
        // machines, so it should only use CPU the broker and the load generator leave
        // idle on this one (at nice 10 it still took about a core from them while a
        // backlog uploaded). Its CPU seconds are reported beside the broker's.
        let child = Command::new("chrt")
            .args(["--idle", "0"])
            .arg(binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(&root)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("s3s-fs did not listen within 30 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(BenchStore {
            child: Some(child),
            root,
            port,
        })
    }

    fn directory(root: PathBuf) -> Result<BenchStore> {
        std::fs::create_dir_all(root.join(BUCKET))?;
        Ok(BenchStore {
            child: None,
            root,
            port: 0,
        })
    }

    fn pid(&self) -> Option<String> {
        self.child.as_ref().map(|c| c.id().to_string())
    }

    /// `.log` objects of `topic` in the bucket and their bytes.
    fn remote_logs(&self, topic: &str) -> (usize, u64) {
        fn walk(dir: &Path, out: &mut (usize, u64)) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let Ok(meta) = entry.metadata() else { continue };
                if meta.is_dir() {
                    walk(&entry.path(), out);
                } else if entry.file_name().to_string_lossy().ends_with(".log") {
                    out.0 += 1;
                    out.1 += meta.len();
                }
            }
        }
        let mut out = (0, 0);
        let prefix = format!("{topic}-");
        for entry in std::fs::read_dir(self.root.join(BUCKET).join("bench"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                walk(&entry.path(), &mut out);
            }
        }
        out
    }
}

impl Drop for BenchStore {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn env(store: &BenchStore, copy_mb_per_sec: f64) -> Vec<(String, String)> {
    let url = match store.child {
        Some(_) => format!("s3://{BUCKET}/bench"),
        None => format!("file://{}", store.root.join(BUCKET).join("bench").display()),
    };
    let mut env: Vec<(String, String)> = [
        ("FLOE_REMOTE_STORAGE_URL", url),
        (
            "FLOE_REMOTE_STORAGE_ENDPOINT",
            format!("http://127.0.0.1:{}", store.port),
        ),
        ("FLOE_REMOTE_STORAGE_REGION", "us-east-1".into()),
        ("FLOE_REMOTE_STORAGE_PATH_STYLE", "true".into()),
        ("FLOE_REMOTE_STORAGE_ACCESS_KEY_ID", ACCESS_KEY.into()),
        ("FLOE_REMOTE_STORAGE_SECRET_ACCESS_KEY", SECRET_KEY.into()),
        ("FLOE_REMOTE_LOG_MANAGER_TASK_INTERVAL_MS", "500".into()),
        ("FLOE_LOG_RETENTION_CHECK_INTERVAL_MS", "1000".into()),
        ("FLOE_LOG_SEGMENT_BYTES", SEGMENT_BYTES.to_string()),
        ("FLOE_LOG_SEGMENT_DELETE_DELAY_MS", "0".into()),
        (
            "FLOE_REMOTE_LOG_READER_CACHE_BYTES",
            (4 * SEGMENT_BYTES).to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if copy_mb_per_sec > 0.0 {
        env.push((
            "FLOE_REMOTE_LOG_MANAGER_COPY_MAX_BYTES_PER_SECOND".into(),
            ((copy_mb_per_sec * 1e6) as u64).to_string(),
        ));
    }
    env
}

fn side(
    args: &RunArgs,
    spec: &BrokerSpec,
    broker: &Broker,
    store: &BenchStore,
    filled: &str,
    busy: bool,
) -> Result<TieredSide> {
    let name = format!("{}-{filled}", if busy { "busy" } else { "idle" });
    let (throughput_topic, latency_topic) =
        (format!("{name}-throughput"), format!("{name}-latency"));
    // The measured topics are not tiered themselves: the comparison is the same producers
    // with the uploader idle and with it busy on the filled topic's backlog.
    measured_topic(spec, &throughput_topic)?;
    let produce = load::with_cpu(broker.pid(), || {
        load::produce_throughput(
            &spec.bootstrap(),
            &throughput_topic,
            1,
            Acks::All,
            args.record_size,
            Duration::from_secs_f64(args.produce_seconds),
            args.produce_max_records,
        )
    })?;
    measured_topic(spec, &latency_topic)?;
    let latency = load::produce_latency(
        &spec.bootstrap(),
        &latency_topic,
        1,
        Acks::All,
        args.record_size,
        args.latency_rate,
        Duration::from_secs_f64(args.latency_warmup_seconds),
        Duration::from_secs_f64(args.latency_seconds),
        Some(broker.pid()),
    )?;
    let remote_segments_at_end = store.remote_logs(filled).0;
    // The measured topics are not needed any more: deleted, they leave the disk for the
    // rounds after (4 rounds of both sides' topics would fill ~25 GB).
    let mut conn = crate::wire::Conn::connect(spec.addr(), Duration::from_secs(5))?;
    conn.delete_topic(&throughput_topic)?;
    conn.delete_topic(&latency_topic)?;
    Ok(TieredSide {
        uploader_busy: busy,
        produce,
        latency,
        remote_segments_at_end,
    })
}

/// Runs `measure` right after tiering was turned on for `topic`, then waits for its
/// `to_upload` closed segments (`upload_bytes`) to be in the bucket. Returns what
/// `measure` returned and the seconds from the start to the last segment uploaded: a
/// watcher notes a backlog completed while `measure` still runs, so that the time is the
/// uploader's and not the measurement's length.
fn measure_while_uploading(
    store: &BenchStore,
    topic: &str,
    to_upload: usize,
    upload_bytes: u64,
    measure: impl FnOnce() -> Result<TieredSide>,
) -> Result<(TieredSide, f64)> {
    let started = Instant::now();
    let uploaded = || {
        let (count, bytes) = store.remote_logs(topic);
        count >= to_upload && bytes >= upload_bytes
    };
    let measuring = AtomicBool::new(true);
    let (side, done) = std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            while measuring.load(Ordering::Relaxed) {
                if uploaded() {
                    return Some(started.elapsed());
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            None
        });
        let side = measure();
        measuring.store(false, Ordering::Relaxed);
        (side, watcher.join().ok().flatten())
    });
    let side = side?;
    let deadline = Instant::now() + Duration::from_secs(1800);
    while done.is_none() && !uploaded() {
        if Instant::now() > deadline {
            let (count, _) = store.remote_logs(topic);
            bail!("{count} of {to_upload} segments of {topic} uploaded after 30 minutes");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((
        side,
        done.unwrap_or_else(|| started.elapsed()).as_secs_f64(),
    ))
}

/// Waits `--tiered-rest-seconds` before a side is measured. This machine's disk (a cloud
/// volume) writes in bursts: 1.5 GB/s with `fdatasync` after a rest, ~370 MB/s after a few
/// GB, back to ~850 MB/s after a minute idle. Without an equal rest before each side, the
/// side measured second (the busy uploader) would meet a spent burst budget and read as a
/// cost of uploading.
fn rest_disk(args: &RunArgs) {
    if args.tiered_rest_seconds > 0.0 {
        eprintln!(
            "[bench]   resting the disk {:.0} s before the next side",
            args.tiered_rest_seconds
        );
        std::thread::sleep(Duration::from_secs_f64(args.tiered_rest_seconds));
    }
}

/// Creates a measured topic, one partition, not tiered.
fn measured_topic(spec: &BrokerSpec, topic: &str) -> Result<()> {
    crate::wire::Conn::connect(spec.addr(), Duration::from_secs(5))?.create_topic_with(
        topic,
        1,
        &[("remote.storage.enable", "false")],
    )
}

/// Runs the scenario (see the module docs) with the s3s-fs binary `s3s_fs`.
pub fn tiered_phase(args: &RunArgs, s3s_fs: &Path) -> Result<TieredRun> {
    let base = args.work_dir.join("floe-tiered");
    let store_root = match &args.tiered_store_dir {
        Some(dir) => dir.clone(),
        None if Path::new("/dev/shm").is_dir() => {
            PathBuf::from(format!("/dev/shm/floe-bench-s3-{}", std::process::id()))
        }
        None => base.join("s3"),
    };
    let on_tmpfs = store_root.starts_with("/dev/shm");
    let store = if args.tiered_store == "local" {
        BenchStore::directory(store_root.clone())?
    } else {
        BenchStore::start(s3s_fs, store_root.clone())?
    };
    let binary = std::fs::canonicalize(&args.floe)?;
    let spec = BrokerSpec {
        kind: Kind::Floe,
        binary,
        data_dir: base.join("data"),
        port: broker::free_port()?,
        env: env(&store, args.tiered_copy_mb_per_sec),
    };
    eprintln!("[bench] floe (tiered): starting on {}", spec.bootstrap());
    let mut broker = Broker::spawn(spec.clone())?;
    broker.wait_listening(Duration::from_secs(60))?;
    let rounds = args.tiered_rounds.max(1);
    let filled: Vec<String> = (1..=rounds).map(|i| format!("{FILLED}-{i}")).collect();
    let fill_records = (args.tiered_fill_gb * 1e9 / args.record_size as f64) as u64;
    for topic in &filled {
        measured_topic(&spec, topic)?;
        let fill = load::produce_throughput(
            &spec.bootstrap(),
            topic,
            1,
            Acks::Leader,
            args.record_size,
            Duration::from_secs(3600),
            fill_records,
        )?;
        eprintln!(
            "[bench]   filled {topic}: {} records, {:.0} MB/s",
            fill.records, fill.mb_per_sec
        );
    }
    let consume_local = load::with_cpu(broker.pid(), || {
        load::consume_throughput(
            &spec.bootstrap(),
            &filled[0],
            1,
            fill_records,
            args.record_size,
        )
    })?;
    eprintln!(
        "[bench]   local consume {:.0} MB/s",
        consume_local.mb_per_sec
    );

    let store_pid = store.pid();
    let store_cpu = || store_pid.as_deref().and_then(load::cpu_seconds);
    let mut store_cpu_upload = Some(0.0);
    let mut results = Vec::new();
    for (index, topic) in filled.iter().enumerate() {
        // Odd rounds measure the busy side first, so that whatever the order of the two
        // sides does to them (what the disk wrote just before, how long it rested) falls
        // on each side equally often.
        let busy_first = index % 2 == 1;
        let partition_dir = spec.data_dir.join(format!("{topic}-0"));
        let closed: Vec<u64> = segment_sizes(&partition_dir);
        let to_upload = closed.len().saturating_sub(1);
        let upload_bytes: u64 = closed.iter().take(to_upload).sum();
        let measure_idle = || -> Result<TieredSide> {
            // Write back what came before, then let the disk rest (as before every side).
            crate::settle_disk();
            rest_disk(args);
            side(args, &spec, &broker, &store, topic, false)
        };
        let measure_busy = |store_cpu_upload: &mut Option<f64>| -> Result<(TieredSide, f64)> {
            crate::settle_disk();
            rest_disk(args);
            // Tiering on: the whole backlog uploads from now.
            let cpu_before = store_cpu();
            crate::wire::Conn::connect(spec.addr(), Duration::from_secs(5))?.set_topic_configs(
                topic,
                &[
                    ("remote.storage.enable", "true"),
                    ("local.retention.bytes", "1"),
                ],
            )?;
            let (busy, upload_seconds) =
                measure_while_uploading(&store, topic, to_upload, upload_bytes, || {
                    side(args, &spec, &broker, &store, topic, true)
                })?;
            *store_cpu_upload = store_cpu_upload
                .zip(cpu_before.zip(store_cpu()))
                .map(|(sum, (a, b))| sum + b - a);
            // The next side starts once local retention has deleted the local copies.
            let deadline = Instant::now() + Duration::from_secs(120);
            while segment_sizes(&partition_dir).len() > 1 {
                if Instant::now() > deadline {
                    bail!("local retention kept the uploaded segments of {topic} for 2 minutes");
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            eprintln!(
                "[bench]   {topic}: uploaded {:.0} MB/s ({} of {to_upload} segments while measured)",
                upload_bytes as f64 / upload_seconds / 1e6,
                busy.remote_segments_at_end
            );
            Ok((busy, upload_seconds))
        };
        let (idle, (busy, upload_seconds)) = if busy_first {
            let busy = measure_busy(&mut store_cpu_upload)?;
            (measure_idle()?, busy)
        } else {
            let idle = measure_idle()?;
            (idle, measure_busy(&mut store_cpu_upload)?)
        };
        eprintln!(
            "[bench]   {topic}: acks=all {:.0} MB/s idle / {:.0} uploading, p99 {} / {} us ({} first)",
            idle.produce.mb_per_sec,
            busy.produce.mb_per_sec,
            idle.latency.p99_us,
            busy.latency.p99_us,
            if busy_first { "uploading" } else { "idle" }
        );
        results.push(TieredRound {
            busy_first,
            idle,
            busy,
            uploaded_segments: to_upload,
            uploaded_bytes: upload_bytes,
            upload_seconds,
        });
    }
    let store_cpu_before_consume = store_cpu();
    let consume_remote = load::with_cpu(broker.pid(), || {
        load::consume_throughput(
            &spec.bootstrap(),
            &filled[0],
            1,
            fill_records,
            args.record_size,
        )
    })?;
    let store_cpu_consumed = store_cpu();
    eprintln!(
        "[bench]   remote consume {:.0} MB/s",
        consume_remote.mb_per_sec
    );
    let object_store = format!(
        "{} in {}{}",
        if store.child.is_some() {
            "s3s-fs 0.14.1 on loopback, bucket"
        } else {
            "a local directory (file:// URL)"
        },
        store_root.display(),
        if on_tmpfs { " (tmpfs)" } else { "" }
    );
    broker.stop().ok();
    drop(broker);
    drop(store);
    std::fs::remove_dir_all(&base).ok();
    std::fs::remove_dir_all(&store_root).ok();
    std::fs::remove_file(store_root.with_extension("log")).ok();
    let n = results.len() as f64;
    let mean = |f: &dyn Fn(&TieredRound) -> f64| results.iter().map(f).sum::<f64>() / n;
    let uploaded_bytes: u64 = results.iter().map(|r| r.uploaded_bytes).sum();
    let upload_seconds: f64 = results.iter().map(|r| r.upload_seconds).sum();
    Ok(TieredRun {
        object_store,
        segment_bytes: SEGMENT_BYTES,
        copy_quota_mb_per_sec: (args.tiered_copy_mb_per_sec > 0.0)
            .then_some(args.tiered_copy_mb_per_sec),
        uploaded_bytes,
        uploaded_segments: results.iter().map(|r| r.uploaded_segments).sum(),
        upload_seconds,
        upload_mb_per_sec: uploaded_bytes as f64 / upload_seconds.max(1e-9) / 1e6,
        idle_mb_per_sec: mean(&|r| r.idle.produce.mb_per_sec),
        busy_mb_per_sec: mean(&|r| r.busy.produce.mb_per_sec),
        idle_p99_us: mean(&|r| r.idle.latency.p99_us as f64),
        busy_p99_us: mean(&|r| r.busy.latency.p99_us as f64),
        store_cpu_upload_seconds: store_cpu_upload.filter(|_| store_pid.is_some()),
        store_cpu_consume_seconds: store_cpu_before_consume
            .zip(store_cpu_consumed)
            .map(|(a, b)| b - a),
        rounds: results,
        consume_local,
        consume_remote,
    })
}

/// Sizes of a partition directory's `.log` files, in offset order.
fn segment_sizes(dir: &Path) -> Vec<u64> {
    let mut logs: Vec<(String, u64)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let meta = e.metadata().ok()?;
            name.ends_with(".log").then_some((name, meta.len()))
        })
        .collect();
    logs.sort();
    logs.into_iter().map(|(_, size)| size).collect()
}

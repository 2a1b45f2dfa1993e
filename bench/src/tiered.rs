//! The tiered-storage scenario (Floe only: the peer has no segment tiering to compare):
//! an s3s-fs server on loopback as the object store, one broker.
//!
//! 1. Fill a topic (1 partition, 64 MiB segments) with `tiered_fill_gb` while it is not
//!    tiered, then measure acks=all produce throughput and the small-request latency on
//!    other topics with the uploader idle, and consume the filled topic from local disk.
//! 2. Restart with tiering on by default (`remote_storage_enable`) and
//!    `log_local_retention_bytes=1`: the uploader starts copying the whole backlog at once.
//!    Measure the same produce throughput and latency while it uploads.
//! 3. Wait for every closed segment to be in the bucket (upload throughput: bytes over the
//!    time from the restart) and for local retention to delete the local copies; consume
//!    the topic from offset 0 again, now from the object store.
//!
//! Broker CPU seconds are measured around each consume, so CPU per GB compares the two
//! read paths.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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
    /// Segments of the filled topic in the bucket when the measurements ended.
    pub remote_segments_at_end: usize,
}

/// The tiered-storage scenario's results.
#[derive(Debug, Clone, Serialize)]
pub struct TieredRun {
    pub object_store: String,
    pub segment_bytes: u64,
    /// Bytes of the filled topic's closed segments (what is uploaded).
    pub uploaded_bytes: u64,
    pub uploaded_segments: usize,
    /// From the restart with tiering on to the last segment recorded in the manifest.
    pub upload_seconds: f64,
    pub upload_mb_per_sec: f64,
    pub idle: TieredSide,
    pub busy: TieredSide,
    /// CPU seconds of the S3 server during the upload and during the remote consume.
    pub store_cpu_upload_seconds: Option<f64>,
    pub store_cpu_consume_seconds: Option<f64>,
    /// Every record of the filled topic, read from local disk.
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
}

struct S3sFs {
    child: Child,
    root: PathBuf,
    port: u16,
}

impl S3sFs {
    fn start(binary: &Path, root: PathBuf) -> Result<S3sFs> {
        std::fs::create_dir_all(root.join(BUCKET))?;
        let port = broker::free_port()?;
        let log = std::fs::File::create(root.with_extension("log"))?;
        // At nice 10: the server stands in for an object store on other machines, so its
        // CPU should not be taken from the broker and the load generator on this one
        // (its CPU seconds are reported beside the broker's).
        let child = Command::new("nice")
            .args(["-n", "10"])
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
        Ok(S3sFs { child, root, port })
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

impl Drop for S3sFs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn env(store: &S3sFs, tiered: bool) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("FLOE_REMOTE_STORAGE_URL", format!("s3://{BUCKET}/bench")),
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
    if tiered {
        env.push(("FLOE_REMOTE_STORAGE_ENABLE".into(), "true".into()));
        env.push(("FLOE_LOG_LOCAL_RETENTION_BYTES".into(), "1".into()));
    }
    env
}

fn side(
    args: &RunArgs,
    spec: &BrokerSpec,
    broker: &Broker,
    store: &S3sFs,
    busy: bool,
) -> Result<TieredSide> {
    let name = if busy { "busy" } else { "idle" };
    let (throughput_topic, latency_topic) =
        (format!("{name}-throughput"), format!("{name}-latency"));
    broker::create_topic(spec, &throughput_topic, 1)?;
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
    broker::create_topic(spec, &latency_topic, 1)?;
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
    Ok(TieredSide {
        uploader_busy: busy,
        produce,
        latency,
        remote_segments_at_end: store.remote_logs(FILLED).0,
    })
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
    let store = S3sFs::start(s3s_fs, store_root.clone())?;
    let binary = std::fs::canonicalize(&args.floe)?;
    let mut spec = BrokerSpec {
        kind: Kind::Floe,
        binary,
        data_dir: base.join("data"),
        port: broker::free_port()?,
        env: env(&store, false),
    };
    eprintln!("[bench] floe (tiered): starting on {}", spec.bootstrap());
    let mut broker = Broker::spawn(spec.clone())?;
    broker.wait_listening(Duration::from_secs(60))?;
    let topic = FILLED;
    broker::create_topic(&spec, topic, 1)?;
    let fill_records = (args.tiered_fill_gb * 1e9 / args.record_size as f64) as u64;
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
    // Write back the fill before measuring (as every phase does).
    crate::settle_disk();
    let idle = side(args, &spec, &broker, &store, false)?;
    let consume_local = load::with_cpu(broker.pid(), || {
        load::consume_throughput(&spec.bootstrap(), topic, 1, fill.records, args.record_size)
    })?;
    eprintln!(
        "[bench]   local consume {:.0} MB/s; idle uploader: acks=all {:.0} MB/s, p99 {} us",
        consume_local.mb_per_sec, idle.produce.mb_per_sec, idle.latency.p99_us
    );
    broker.stop()?;
    drop(broker);

    // Tiering on: the whole backlog uploads from the start.
    let partition_dir = spec.data_dir.join(format!("{topic}-0"));
    let closed: Vec<u64> = segment_sizes(&partition_dir);
    let to_upload = closed.len().saturating_sub(1);
    let upload_bytes: u64 = closed.iter().take(to_upload).sum();
    spec.env = env(&store, true);
    crate::settle_disk();
    let store_pid = store.child.id().to_string();
    let store_cpu_start = load::cpu_seconds(&store_pid);
    let mut broker = Broker::spawn(spec.clone())?;
    broker.wait_listening(Duration::from_secs(60))?;
    let restarted = Instant::now();
    let busy = side(args, &spec, &broker, &store, true)?;
    eprintln!(
        "[bench]   busy uploader: acks=all {:.0} MB/s, p99 {} us ({} of {to_upload} segments uploaded meanwhile)",
        busy.produce.mb_per_sec, busy.latency.p99_us, busy.remote_segments_at_end
    );
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let (count, bytes) = store.remote_logs(FILLED);
        if count >= to_upload && bytes >= upload_bytes {
            break;
        }
        if Instant::now() > deadline {
            bail!("{count} of {to_upload} segments uploaded after 30 minutes");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let upload_seconds = restarted.elapsed().as_secs_f64();
    let store_cpu_uploaded = load::cpu_seconds(&store_pid);
    let deadline = Instant::now() + Duration::from_secs(120);
    while segment_sizes(&partition_dir).len() > 1 {
        if Instant::now() > deadline {
            bail!("local retention kept the uploaded segments for 2 minutes");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let store_cpu_before_consume = load::cpu_seconds(&store_pid);
    let consume_remote = load::with_cpu(broker.pid(), || {
        load::consume_throughput(&spec.bootstrap(), topic, 1, fill.records, args.record_size)
    })?;
    let store_cpu_consumed = load::cpu_seconds(&store_pid);
    eprintln!(
        "[bench]   upload {:.0} MB/s; remote consume {:.0} MB/s",
        upload_bytes as f64 / upload_seconds / 1e6,
        consume_remote.mb_per_sec
    );
    broker.stop().ok();
    drop(broker);
    drop(store);
    std::fs::remove_dir_all(&base).ok();
    std::fs::remove_dir_all(&store_root).ok();
    std::fs::remove_file(store_root.with_extension("log")).ok();
    Ok(TieredRun {
        object_store: format!(
            "s3s-fs 0.14.1 on loopback, bucket in {}{}",
            store_root.display(),
            if on_tmpfs { " (tmpfs)" } else { "" }
        ),
        segment_bytes: SEGMENT_BYTES,
        uploaded_bytes: upload_bytes,
        uploaded_segments: to_upload,
        upload_seconds,
        upload_mb_per_sec: upload_bytes as f64 / upload_seconds / 1e6,
        idle,
        busy,
        store_cpu_upload_seconds: store_cpu_start.zip(store_cpu_uploaded).map(|(a, b)| b - a),
        store_cpu_consume_seconds: store_cpu_before_consume
            .zip(store_cpu_consumed)
            .map(|(a, b)| b - a),
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

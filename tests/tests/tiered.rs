//! Tiered storage end to end: a broker whose topics tier to a real S3 server (moto and
//! s3s-fs), driven by confluent-kafka (`tests/clients/python/tiered_check.py`). Each test
//! names the acceptance items it covers.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use floe_tests::s3::{S3Kind, S3Server};
use floe_tests::{Broker, client_command, clients_dir, python, run_ok_with, wait_until};

const MIB: u64 = 1 << 20;
/// Record timestamps start here (November 2023): old enough for retention.ms to expire.
const TS_BASE: i64 = 1_700_000_000_000;
const PREFIX: &str = "cluster";

fn broker_on(s3: &S3Server, extra: &[&str]) -> Broker {
    let mut args: Vec<String> = [
        format!("remote_storage_url=s3://{}/{PREFIX}", s3.bucket()),
        format!("remote_storage_endpoint={}", s3.endpoint()),
        format!("remote_storage_region={}", s3.region()),
        "remote_storage_path_style=true".into(),
        format!("remote_storage_access_key_id={}", s3.access_key()),
        format!("remote_storage_secret_access_key={}", s3.secret_key()),
        "remote_log_manager_task_interval_ms=200".into(),
        "log_retention_check_interval_ms=200".into(),
        "remote_log_reader_cache_bytes=134217728".into(),
        "log_local_hard_limit_bytes=268435456".into(),
    ]
    .into_iter()
    .flat_map(|kv| ["--set".to_string(), kv])
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    Broker::start_with(&refs)
}

fn check(broker: &Broker, command: &str, topic: &str, args: &[&str]) -> String {
    let script = clients_dir().join("python").join("tiered_check.py");
    let out = run_ok_with(
        client_command(python())
            .arg(script)
            .arg(command)
            .arg("--bootstrap")
            .arg(broker.bootstrap())
            .args(["--topic", topic])
            .args(["--ts-base", &TS_BASE.to_string()])
            .args(["--data-dir"])
            .arg(&broker.data_dir)
            .args(args),
        b"",
        Duration::from_secs(900),
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{command}: {stdout}");
    stdout
}

/// A tiered topic with `segment` byte segments and `local` bytes of local retention, kept
/// forever otherwise, whose deleted segments leave the disk at once.
fn create_tiered(broker: &Broker, topic: &str, segment: u64, local: u64) {
    check(
        broker,
        "create",
        topic,
        &[
            "--config",
            "remote.storage.enable=true",
            "--config",
            &format!("segment.bytes={segment}"),
            "--config",
            &format!("local.retention.bytes={local}"),
            "--config",
            "retention.ms=-1",
            "--config",
            "file.delete.delay.ms=0",
        ],
    );
}

/// The number after `key ` in the script's output.
fn reported(out: &str, key: &str) -> i64 {
    out.split_whitespace()
        .skip_while(|w| *w != key)
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {out}"))
}

/// Bytes of every file in a directory (a partition's local copy).
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Remote `.log` objects of a topic's partition 0.
fn remote_logs(s3: &S3Server, topic: &str) -> Vec<(String, u64)> {
    s3.list(&format!("{PREFIX}/{topic}-"))
        .into_iter()
        .filter(|(key, _)| key.ends_with(".log"))
        .collect()
}

/// Samples a directory's size in the background; the largest size seen.
struct Sampler {
    stop: Arc<AtomicBool>,
    max: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start(dir: std::path::PathBuf) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let max = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, max) = (Arc::clone(&stop), Arc::clone(&max));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    max.fetch_max(dir_bytes(&dir), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        };
        Sampler {
            stop,
            max,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.max.load(Ordering::Relaxed)
    }
}

/// Acceptance 1, 2 (ListOffsets), 3 and 5 on one S3 server: ~1 GB produced with acks=all to
/// a topic with 16 MiB segments and `local.retention.bytes` 64 MiB; the local copy stays
/// bounded while every record is read back byte for byte from offset 0; ListOffsets by
/// timestamp lands in the remote part; a broker that lost the partition directory serves
/// the tiered history from the bucket; `retention.ms` then deletes the remote segments.
fn gigabyte_round_trip(kind: S3Kind) {
    const COUNT: i64 = 1_000_000;
    const SIZE: u64 = 1000;
    const SEGMENT: u64 = 16 * MIB;
    const LOCAL: u64 = 64 * MIB;
    const HARD_LIMIT: u64 = 256 * MIB;
    let s3 = S3Server::start(kind, "floe-tiered");
    let mut broker = broker_on(&s3, &[]);
    let topic = "tiered";
    create_tiered(&broker, topic, SEGMENT, LOCAL);
    let dir = broker.data_dir.join(format!("{topic}-0"));
    let sampler = Sampler::start(dir.clone());
    let out = check(
        &broker,
        "produce",
        topic,
        &["--count", &COUNT.to_string(), "--size", &SIZE.to_string()],
    );
    assert_eq!(reported(&out, "PRODUCED"), COUNT);
    // Uploads catch up: what stays local is local.retention.bytes and the segments above it.
    wait_until(Duration::from_secs(600), "uploads to catch up", || {
        dir_bytes(&dir) <= LOCAL + 2 * SEGMENT
    });
    let max_local = sampler.finish();
    eprintln!(
        "{kind:?}: local copy peaked at {} MiB, now {} MiB; {} remote segments",
        max_local / MIB,
        dir_bytes(&dir) / MIB,
        remote_logs(&s3, topic).len()
    );
    assert!(
        max_local <= LOCAL + HARD_LIMIT + 2 * SEGMENT,
        "local copy reached {max_local} bytes"
    );
    let uploaded = remote_logs(&s3, topic);
    assert!(
        uploaded.len() as u64 >= COUNT as u64 * SIZE / SEGMENT - 5,
        "{} segments in the bucket",
        uploaded.len()
    );

    // Every record from offset 0, byte for byte (most of them from the bucket).
    let out = check(
        &broker,
        "consume",
        topic,
        &["--count", &COUNT.to_string(), "--size", &SIZE.to_string()],
    );
    assert!(out.contains(&format!("OK consume {COUNT}")), "{out}");
    // ListOffsets by timestamp in the remote part, and the watermarks.
    let out = check(
        &broker,
        "offsets",
        topic,
        &["--ts", &(TS_BASE + 1234).to_string()],
    );
    assert_eq!(reported(&out, "OFFSET"), 1234, "{out}");
    assert_eq!((reported(&out, "LOW"), reported(&out, "HIGH")), (0, COUNT));

    // Acceptance 3: the partition directory is lost; the broker rebuilds it from the
    // manifest and serves everything uploaded (the unuploaded tail went with the disk).
    broker.stop();
    std::fs::remove_dir_all(&dir).unwrap();
    broker.restart();
    let out = check(&broker, "offsets", topic, &[]);
    let (low, high) = (reported(&out, "LOW"), reported(&out, "HIGH"));
    assert_eq!(low, 0, "{out}");
    assert!(high > COUNT / 2 && high <= COUNT, "{out}");
    let sample = if kind == S3Kind::S3sFs { high } else { 50_000 };
    let out = check(
        &broker,
        "consume",
        topic,
        &["--count", &sample.to_string(), "--size", &SIZE.to_string()],
    );
    assert!(out.contains(&format!("OK consume {sample}")), "{out}");

    // Acceptance 5: retention.ms over the whole log deletes the remote segments.
    check(
        &broker,
        "alter",
        topic,
        &["--config", "retention.ms=86400000"],
    );
    wait_until(
        Duration::from_secs(120),
        "remote segments to expire",
        || remote_logs(&s3, topic).is_empty(),
    );
    let out = check(&broker, "offsets", topic, &[]);
    assert_eq!(reported(&out, "LOW"), high, "{out}");
    assert!(
        !broker.log().contains("panicked"),
        "broker log:\n{}",
        broker.log()
    );
}

#[test]
fn gigabyte_tiered_to_moto() {
    gigabyte_round_trip(S3Kind::Moto);
}

#[test]
fn gigabyte_tiered_to_s3s_fs() {
    gigabyte_round_trip(S3Kind::S3sFs);
}

/// Acceptance 4 and 2 (tableflow): the S3 server stops during uploads and producing goes
/// on with nothing lost; uploads resume when it is back; a kill -9 during uploads leaves a
/// manifest whose every object exists whole; then a table enabled after the data went
/// remote backfills every record.
#[test]
fn outage_and_kill9_lose_nothing() {
    const SEGMENT: u64 = 2 * MIB;
    const LOCAL: u64 = 4 * MIB;
    const SIZE: &str = "1000";
    let mut s3 = S3Server::start(S3Kind::S3sFs, "floe-outage");
    // Paced uploads (8 MiB/s), so the kill -9 below lands while segments are uploading.
    let mut broker = broker_on(
        &s3,
        &[
            "--set",
            "remote_log_manager_copy_max_bytes_per_second=8388608",
        ],
    );
    let topic = "outage";
    create_tiered(&broker, topic, SEGMENT, LOCAL);
    let dir = broker.data_dir.join(format!("{topic}-0"));
    let produce = |broker: &Broker, start: i64, count: i64| {
        let out = check(
            broker,
            "produce",
            topic,
            &[
                "--start",
                &start.to_string(),
                "--count",
                &count.to_string(),
                "--size",
                SIZE,
            ],
        );
        assert_eq!(reported(&out, "PRODUCED"), count, "{out}");
    };
    produce(&broker, 0, 20_000);
    wait_until(Duration::from_secs(120), "first uploads", || {
        remote_logs(&s3, topic).len() >= 5
    });

    // The store goes away: producing continues, every segment stays local.
    s3.stop();
    produce(&broker, 20_000, 40_000);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        dir_bytes(&dir) >= 40_000 * 1000,
        "local copy {} bytes while the store is down",
        dir_bytes(&dir)
    );
    wait_until(Duration::from_secs(60), "the outage to be reported", || {
        broker.log().contains("remote store unreachable")
    });
    // It comes back: uploads resume and local retention shrinks the local copy again.
    s3.restart();
    wait_until(Duration::from_secs(180), "uploads to resume", || {
        dir_bytes(&dir) <= LOCAL + 2 * SEGMENT
    });
    assert!(broker.log().contains("remote store reachable again"));

    // kill -9 while segments are being uploaded.
    let before = remote_logs(&s3, topic).len();
    produce(&broker, 60_000, 40_000);
    wait_until(Duration::from_secs(60), "uploads in flight", || {
        remote_logs(&s3, topic).len() > before + 2
    });
    broker.kill9();
    broker.restart();
    // Every segment the manifest lists exists whole in the bucket.
    let objects = s3.list(&format!("{PREFIX}/{topic}-"));
    let manifest_key = objects
        .iter()
        .map(|(k, _)| k)
        .find(|k| k.ends_with("/manifest.json"))
        .expect("a manifest")
        .clone();
    let manifest: serde_json::Value =
        serde_json::from_slice(&s3.read_object(&manifest_key).unwrap()).unwrap();
    let partition_prefix = manifest_key.trim_end_matches("manifest.json");
    let segments = manifest["segments"].as_array().unwrap();
    assert!(!segments.is_empty());
    let mut next = segments[0]["base_offset"].as_i64().unwrap();
    for segment in segments {
        assert_eq!(
            segment["base_offset"].as_i64().unwrap(),
            next,
            "gap in the manifest"
        );
        next = segment["next_offset"].as_i64().unwrap();
        for file in segment["files"].as_array().unwrap() {
            let key = format!(
                "{partition_prefix}{:020}-{}{}",
                segment["base_offset"].as_i64().unwrap(),
                segment["id"].as_str().unwrap(),
                file["suffix"].as_str().unwrap()
            );
            let bytes = s3
                .read_object(&key)
                .unwrap_or_else(|| panic!("{key} missing"));
            assert_eq!(bytes.len() as u64, file["size"].as_u64().unwrap(), "{key}");
            assert_eq!(
                u64::from(crc32c::crc32c(&bytes)),
                file["crc32c"].as_u64().unwrap(),
                "{key}"
            );
        }
    }
    // Nothing lost: all 100,000 records from offset 0.
    let out = check(
        &broker,
        "consume",
        topic,
        &["--count", "100000", "--size", SIZE],
    );
    assert!(out.contains("OK consume 100000"), "{out}");
    wait_until(
        Duration::from_secs(120),
        "uploads after the restart",
        || dir_bytes(&dir) <= LOCAL + 2 * SEGMENT,
    );
    // Orphans of the interrupted upload are gone once the partition was attached. An
    // upload still running may have put its objects and not yet recorded them: the check
    // is repeated until the uploader has caught up.
    let orphans = || -> Vec<String> {
        let listed_objects = s3.list(partition_prefix);
        let manifest: serde_json::Value =
            serde_json::from_slice(&s3.read_object(&manifest_key).unwrap()).unwrap();
        let recorded: Vec<String> = manifest["segments"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| {
                let prefix = format!(
                    "{:020}-{}",
                    s["base_offset"].as_i64().unwrap(),
                    s["id"].as_str().unwrap()
                );
                s["files"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(move |f| format!("{prefix}{}", f["suffix"].as_str().unwrap()))
                    .collect::<Vec<_>>()
            })
            .collect();
        listed_objects
            .into_iter()
            .map(|(key, _)| key)
            .filter(|key| {
                let name = key.rsplit('/').next().unwrap();
                name != "manifest.json" && !recorded.iter().any(|l| l == name)
            })
            .collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut left = orphans();
    while !left.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        left = orphans();
    }
    assert!(left.is_empty(), "orphans left in the bucket: {left:?}");

    // Acceptance 2: a table enabled now backfills from the remote part.
    let out = check(&broker, "table", topic, &["--count", "100000"]);
    assert!(out.contains("OK table 100000"), "{out}\n{}", broker.log());
}

//! Operating the broker: `/metrics` under a real client load, `/health` and `/ready` across
//! a long recovery, and a clean SIGTERM under acks=all load.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use floe_tests::{
    Broker, client_command, clients_dir, http_get, python, run_ok_with, verify_acknowledged,
    wait_until,
};

fn script(name: &str) -> PathBuf {
    clients_dir().join("python").join(name)
}

/// Acceptance: bytes and records in and out, group lag, tableflow lag, request counts and
/// every documented metric, checked by `metrics_check.py` with prometheus_client's parser.
#[test]
fn metrics_match_a_real_client_load() {
    let broker = Broker::start_with(&["--set", "remote_log_manager_task_interval_ms=200"]);
    let doc = floe_tests::workspace_root().join("docs").join("metrics.md");
    let out = run_ok_with(
        client_command(python())
            .arg(script("metrics_check.py"))
            .arg(broker.bootstrap())
            .arg(broker.http_port.to_string())
            .arg(doc),
        b"",
        Duration::from_secs(300),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    assert!(stdout.contains("OK"), "{stdout}");
}

/// `/ready` answers 503 while a large log recovers after kill -9 and 200 after; `/health`
/// answers 200 from the moment the admin listener is up, throughout.
#[test]
fn ready_waits_for_recovery_and_health_answers_throughout() {
    // Large segments: everything written stays in the active segments, which a restart after
    // kill -9 must scan (CRC of every batch) from the recovery point.
    // JSON logs, checked below.
    let mut broker = Broker::start_with(&[
        "--set",
        "log_segment_bytes=1073741824",
        "--set",
        "log_format=json",
    ]);
    run_ok_with(
        client_command(python())
            .arg(script("ops_fill.py"))
            .arg(broker.bootstrap())
            .arg("big")
            .arg("4")
            .arg("256"),
        b"",
        Duration::from_secs(300),
    );
    assert_eq!(http_get(broker.http_port, "/ready").map(|r| r.0), Some(200));
    broker.kill9();

    let port = broker.http_port;
    let done = Arc::new(AtomicBool::new(false));
    let poller = {
        let done = done.clone();
        std::thread::spawn(move || {
            // (health status, ready status) of each poll once the listener answers.
            let mut seen: Vec<(u16, u16)> = Vec::new();
            while !done.load(Ordering::Relaxed) {
                if let Some((ready, _)) = http_get(port, "/ready") {
                    let health = http_get(port, "/health").map_or(0, |r| r.0);
                    seen.push((health, ready));
                    if ready == 200 {
                        break;
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            seen
        })
    };
    let started = Instant::now();
    broker.restart();
    let seen = poller.join().unwrap();
    done.store(true, Ordering::Relaxed);
    let log = broker.log();
    assert!(
        log.contains("no clean-shutdown marker"),
        "the restart after kill -9 did not recover"
    );
    let not_ready = seen.iter().filter(|(_, r)| *r == 503).count();
    eprintln!(
        "restart took {:?}: {} polls, {not_ready} answered /ready 503 before 200",
        started.elapsed(),
        seen.len()
    );
    assert!(
        not_ready > 0,
        "never saw /ready 503 during recovery: {seen:?}"
    );
    assert_eq!(seen.last().map(|s| s.1), Some(200), "{seen:?}");
    assert!(
        seen.iter().all(|(h, _)| *h == 200),
        "/health did not answer 200 throughout: {seen:?}"
    );
    // Nothing below 503 then 200: never ready, then not ready again.
    let first_ready = seen.iter().position(|s| s.1 == 200).unwrap();
    assert!(seen[..first_ready].iter().all(|s| s.1 == 503));
    // log_format=json: every line one JSON object with a level and a message.
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
        assert!(v["level"].is_string(), "{line}");
        assert!(v["fields"]["message"].is_string(), "{line}");
    }
}

/// A running `durability_load.py produce` (idempotent, acks=all, every ack logged).
struct Load(Child);

impl Drop for Load {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// SIGTERM under acks=all load: the broker exits within its documented bound, writes the
/// clean-shutdown marker (the next start skips recovery), and every acknowledged record is
/// there after the restart.
#[test]
fn sigterm_under_load_is_clean_and_loses_nothing() {
    const TOPIC: &str = "term";
    let timeout_ms = 5000u64;
    let mut broker = Broker::start_with(&["--set", &format!("shutdown_timeout_ms={timeout_ms}")]);
    let work = tempfile::tempdir().unwrap();
    let ack_log = work.path().join("acks.log");
    let out = File::create(work.path().join("producer.out")).unwrap();
    let load = Load(
        client_command(python())
            .arg(script("durability_load.py"))
            .arg(broker.bootstrap())
            .arg(TOPIC)
            .arg("produce")
            .arg("0")
            .arg(&ack_log)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .unwrap(),
    );
    wait_until(Duration::from_secs(60), "records are acknowledged", || {
        std::fs::metadata(&ack_log).is_ok_and(|m| m.len() > 100_000)
    });
    let started = Instant::now();
    broker.stop(); // SIGTERM; asserts a successful exit
    let took = started.elapsed();
    drop(load);
    let acked = std::fs::read_to_string(&ack_log).unwrap().lines().count();
    eprintln!("SIGTERM under load: exited in {took:?}, {acked} records acknowledged");
    // docs/operations.md: connections get shutdown_timeout_ms to answer, table commits as
    // long again, then the logs are synced.
    assert!(
        took < Duration::from_millis(2 * timeout_ms + 5000),
        "shutdown took {took:?}"
    );
    let log = broker.log();
    assert!(log.contains("shutdown complete"), "{log}");
    assert!(
        broker.data_dir.join(".floe_clean_shutdown").exists(),
        "no clean-shutdown marker after SIGTERM"
    );
    broker.restart();
    let log = broker.log();
    assert!(
        log.contains("clean-shutdown marker found"),
        "the restart did not see the clean shutdown"
    );
    verify_acknowledged(&broker, TOPIC, &[ack_log]);
}

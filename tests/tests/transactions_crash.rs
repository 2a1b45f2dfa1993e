//! A broker killed (kill -9) while a transaction commits, between the markers of its
//! partitions: after the restart the coordinator finds the PrepareCommit record and writes
//! the markers still missing, so every partition has exactly one marker, read_committed
//! returns every acknowledged record, and the transactional id goes on.
//!
//! The stop between markers comes from the storage fault seam (`docs/fault-injection.md`):
//! every fdatasync of partition 1's files sleeps 20 s, so the coordinator, which writes and
//! syncs one partition's marker before the next, is held with partition 0's marker durable,
//! partition 1's written and partition 2's missing when the test kills it. The client is
//! `tests/clients/python/txn_crash.py`.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use floe_tests::{Broker, client_command, clients_dir, python, run_ok_with, wait_until};
use serde_json::Value;

const TOPIC: &str = "txn-crash";

fn crash_command(broker: &Broker, command: &str, out: &std::path::Path) -> std::process::Command {
    let mut cmd = client_command(python());
    cmd.arg(clients_dir().join("python").join("txn_crash.py"))
        .arg(command)
        .args(["--bootstrap", &broker.bootstrap()])
        .args(["--topic", TOPIC, "--transactional-id", "crash-app"])
        .arg("--out")
        .arg(out)
        .env("PYTHONUNBUFFERED", "1");
    cmd
}

#[test]
fn kill9_between_markers_completes_the_commit_once() {
    let mut broker = Broker::start_with(&[
        "--set",
        "storage.faults=slow_sync_ms=20000@txn-crash-1/",
        "--set",
        "transaction_state_log_num_partitions=3",
    ]);
    // Suspended until the producer's records are acknowledged; the client removes it just
    // before committing.
    let off = broker.data_dir.join("faults.off");
    std::fs::write(&off, b"").unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("delivered.json");
    let mut app = crash_command(&broker, "stall", &out)
        .arg("--faults-off")
        .arg(&off)
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(120), "the producer to commit", || {
        !off.exists()
    });
    // The PrepareCommit record and partition 0's marker take milliseconds; partition 1's
    // marker sync takes 20 s.
    std::thread::sleep(Duration::from_secs(3));
    broker.kill9();
    let _ = app.kill();
    let _ = app.wait();
    assert!(out.exists(), "the producer wrote no deliveries");

    std::fs::write(&off, b"").unwrap();
    broker.restart();
    let done = run_ok_with(
        &mut crash_command(&broker, "verify", &out),
        b"",
        Duration::from_secs(300),
    );
    let stdout = String::from_utf8_lossy(&done.stdout);
    let summary: Value = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("txn_crash.py verify printed no summary:\n{stdout}"));
    assert_eq!(summary["committed"], 150, "{summary}");
    for p in 0..3 {
        assert_eq!(summary["high_watermarks"][p.to_string()], 51, "{summary}");
    }
    let log = broker.log();
    assert!(
        log.contains("completed a transaction left half-ended"),
        "the restart found no half-ended transaction to complete:\n{log}"
    );
}

//! Retention and DeleteRecords against the real binary with confluent-kafka
//! (`tests/clients/python/retention_check.py`): segment files leave the disk, the low
//! watermark moves, consumers below it reset per `auto.offset.reset`, and the start survives
//! a restart; a compacted topic refuses records without a key. One broker (retention pass
//! every 200 ms) serves the independent checks.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use floe_tests::{Broker, client_command, clients_dir, python, run_ok_with, wait_until};

fn check(broker: &Broker, command: &str, topic: &str) -> String {
    let script = clients_dir().join("python").join("retention_check.py");
    let out = run_ok_with(
        client_command(python())
            .arg(script)
            .arg(command)
            .arg("--bootstrap")
            .arg(broker.bootstrap())
            .args(["--topic", topic]),
        b"",
        Duration::from_secs(180),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The number after `key ` in the script's output.
fn reported(out: &str, key: &str) -> i64 {
    out.split_whitespace()
        .skip_while(|w| *w != key)
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {out}"))
}

/// Base offsets of the `.log` files in a partition directory, and their total size.
fn segments(dir: &Path) -> (Vec<i64>, u64) {
    let mut bases = Vec::new();
    let mut bytes = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if let Some(base) = name.strip_suffix(".log") {
            bases.push(base.parse().unwrap());
            bytes += entry.metadata().unwrap().len();
        }
    }
    bases.sort();
    (bases, bytes)
}

fn deleted_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".deleted")
        })
        .count()
}

#[test]
fn retention_and_delete_records_with_confluent_kafka() {
    let mut broker = Broker::start_with(&["--set", "log_retention_check_interval_ms=200"]);

    // retention.ms: the old records' segments leave the disk (after file.delete.delay.ms).
    let out = check(&broker, "time", "ret-time");
    assert!(out.contains("OK time"), "{out}");
    assert_eq!(reported(&out, "LOW"), 100);
    let dir = broker.data_dir.join("ret-time-0");
    wait_until(Duration::from_secs(30), "deleted files removed", || {
        deleted_files(&dir) == 0
    });
    let (bases, _) = segments(&dir);
    assert!(
        bases[0] >= 100,
        "segments {bases:?} remain below the low watermark"
    );

    // retention.bytes: what stays is at least retention.bytes, and less without its oldest.
    let out = check(&broker, "size", "ret-size");
    assert!(out.contains("OK size"), "{out}");
    let dir = broker.data_dir.join("ret-size-0");
    wait_until(Duration::from_secs(30), "deleted files removed", || {
        deleted_files(&dir) == 0
    });
    let (bases, bytes) = segments(&dir);
    assert!(bytes >= 4096, "{bytes} bytes left of retention.bytes 4096");
    assert!(bases.len() > 1 && bases[0] > 0, "segments {bases:?}");

    // A keyless record to a compacted topic: INVALID_RECORD for that record only.
    let out = check(&broker, "keyless", "compacted-keys");
    assert!(out.contains("OK keyless"), "{out}");

    // DeleteRecords: the start moves, and survives a clean and an unclean restart.
    let out = check(&broker, "delete", "ret-delete");
    assert!(out.contains("OK delete"), "{out}");
    broker.stop();
    broker.restart();
    let out = check(&broker, "low", "ret-delete");
    assert_eq!(
        (reported(&out, "LOW"), reported(&out, "HIGH")),
        (100, 100),
        "{out}"
    );
    broker.kill9();
    broker.restart();
    let out = check(&broker, "low", "ret-delete");
    assert_eq!(
        (reported(&out, "LOW"), reported(&out, "HIGH")),
        (100, 100),
        "{out}"
    );
    let out = check(&broker, "low", "ret-time");
    assert!(reported(&out, "LOW") >= 100, "{out}");
}

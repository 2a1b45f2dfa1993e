//! Log compaction against the real binary: confluent-kafka and kcat read exactly the latest
//! record of every key at its original offset after the cleaner ran (uncompressed and zstd
//! batches), tombstones disappear after `delete.retention.ms`, and a kill -9 while a clean is
//! stopped inside its swap (the fault seam fails a rename before or after the commit point)
//! ends in the same final state after restart. The checks are in
//! `tests/clients/python/compaction_check.py`.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::Duration;

use floe_tests::{Broker, client_command, clients_dir, python, run_ok_with, wait_until};

/// Cleaner and retention passes every 200 ms.
const FAST: [&str; 4] = [
    "--set",
    "log_cleaner_backoff_ms=200",
    "--set",
    "log_retention_check_interval_ms=200",
];

fn script(broker: &Broker, args: &[&str]) -> String {
    let out = run_ok_with(
        client_command(python())
            .arg(clients_dir().join("python").join("compaction_check.py"))
            .arg(args[0])
            .arg("--bootstrap")
            .arg(broker.bootstrap())
            .args(&args[1..]),
        b"",
        Duration::from_secs(300),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn cleaner_keeps_the_latest_record_of_every_key() {
    let broker = Broker::start_with(&FAST);
    // Uncompressed; tombstones within delete.retention.ms stay.
    let out = script(&broker, &["produce", "--topic", "plain"]);
    assert!(out.contains("PRODUCED 100000"), "{out}");
    let out = script(
        &broker,
        &["check", "--topic", "plain", "--tombstones", "kept"],
    );
    assert!(out.contains("COMPACTED 1000 records"), "{out}");
    // kcat (an older librdkafka) reads the same: 1,000 records, each key once.
    let out = run_ok_with(
        Command::new("kcat")
            .args([
                "-C",
                "-b",
                &broker.bootstrap(),
                "-t",
                "plain",
                "-o",
                "beginning",
                "-e",
            ])
            .args(["-f", "%o %k\n"]),
        b"",
        Duration::from_secs(60),
    );
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), 1000, "kcat read {} records", lines.len());
    let keys: std::collections::BTreeSet<&str> =
        lines.iter().map(|l| l.split(' ').nth(1).unwrap()).collect();
    assert_eq!(keys.len(), 1000);
    for line in &lines {
        let (offset, key) = line.split_once(' ').unwrap();
        let (offset, key): (i64, i64) = (offset.parse().unwrap(), key[4..].parse().unwrap());
        assert_eq!(offset % 1000, key, "{line}: not the key's last offset");
        assert!(offset >= 99_000, "{line}: not the key's last offset");
    }

    // zstd batches; tombstones older than delete.retention.ms (3 s) disappear.
    let out = script(
        &broker,
        &[
            "produce",
            "--topic",
            "zstd",
            "--compression",
            "zstd",
            "--delete-retention-ms",
            "3000",
        ],
    );
    assert!(out.contains("PRODUCED 100000"), "{out}");
    let out = script(
        &broker,
        &["check", "--topic", "zstd", "--tombstones", "gone"],
    );
    assert!(out.contains("COMPACTED 980 records"), "{out}");
}

/// A clean stopped by a failing rename (before, then after its commit point), the broker
/// killed, restarted without the fault: the same final state as an undisturbed clean.
#[test]
fn kill9_inside_a_swap_ends_in_the_same_state() {
    for (step, rule) in [
        ("before the commit point", "rename_eio@.log.cleaned"),
        ("after the commit point", "rename_eio@.log.swap"),
    ] {
        let faulty = ["--set", &format!("storage.faults={rule}")];
        let args: Vec<&str> = FAST.iter().copied().chain(faulty).collect();
        let mut broker = Broker::start_with(&args);
        let out = script(
            &broker,
            &[
                "produce", "--topic", "swap", "--count", "20000", "--keys", "200",
            ],
        );
        assert!(out.contains("PRODUCED 20000"), "{step}: {out}");
        wait_until(
            Duration::from_secs(60),
            "the cleaner to hit the fault",
            || broker.log().contains("log cleaning failed"),
        );
        broker.kill9();
        broker.restart_with(&FAST);
        let out = script(
            &broker,
            &[
                "check",
                "--topic",
                "swap",
                "--count",
                "20000",
                "--keys",
                "200",
                "--tombstones",
                "kept",
            ],
        );
        assert!(out.contains("COMPACTED 200 records"), "{step}: {out}");
    }
}

fn offsets_dir_bytes(broker: &Broker) -> u64 {
    // The cleaner swaps and deletes segment files while this walks the directory: a file
    // gone between the listing and its metadata counts as nothing, not as a failure.
    std::fs::read_dir(broker.data_dir.join("__consumer_offsets-0"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .map(|e| e.metadata().map_or(0, |m| m.len()))
        .sum()
}

fn offsets(broker: &Broker, command: &str) -> String {
    let out = run_ok_with(
        client_command(python())
            .arg(clients_dir().join("python").join("offsets_commits.py"))
            .arg(command)
            .arg("--bootstrap")
            .arg(broker.bootstrap())
            .args(["--topic", "committed", "--group", "committer"]),
        b"",
        Duration::from_secs(600),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// 200,000 commits of one group: `__consumer_offsets` (64 KiB segments here) is compacted
/// like any compacted topic, so what stays on disk, and what a restart replays, is bounded
/// by the live offsets, not by the commits ever made.
#[test]
fn consumer_offsets_stay_small_under_many_commits() {
    let args: Vec<&str> = FAST
        .iter()
        .copied()
        .chain([
            "--set",
            "offsets_topic_segment_bytes=65536",
            "--set",
            "offsets_topic_num_partitions=1",
        ])
        .collect();
    let mut broker = Broker::start_with(&args);
    let out = offsets(&broker, "commit");
    assert!(out.contains("COMMITTED 200000"), "{out}");
    // About 20 MB of commit records were written; the cleaner keeps the last of them.
    wait_until(
        Duration::from_secs(120),
        "__consumer_offsets compacted",
        || offsets_dir_bytes(&broker) < 256 * 1024,
    );
    let on_disk = offsets_dir_bytes(&broker);
    broker.stop();
    let started = std::time::Instant::now();
    broker.restart();
    let restart = started.elapsed();
    let out = offsets(&broker, "committed");
    assert!(out.contains("OFFSET 200000"), "{out}");
    println!(
        "__consumer_offsets after 200,000 commits: {on_disk} bytes on disk; restart to listening {restart:?}"
    );
    eprintln!(
        "__consumer_offsets after 200,000 commits: {on_disk} bytes on disk; restart to listening {restart:?}"
    );
}

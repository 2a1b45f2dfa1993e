//! Tableflow while the S3 server holding the warehouse is down (issue 16, "catalog outage",
//! acceptance 3): the broker keeps serving producers, the table writer retries with a
//! bounded backoff and reports itself failing, and once the server is back the table
//! catches up with every acknowledged record exactly once (pyiceberg and DuckDB read it).
//! Meanwhile the topic's retention waits for the records the table still needs, for at
//! most `table.retention.hold.ms`; what it deletes after that is counted on `/metrics`.
//!
//! The server is s3s-fs: stopped and started again it serves the same objects, as S3 does
//! after an outage. (moto keeps its objects in memory: a restarted moto has lost the table's
//! files, which no outage of a real store does.)
//!
//! The checks live in `tests/clients/python/tableflow_outage_check.py`.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use floe_tests::s3::{S3Kind, S3Server};
use floe_tests::{Broker, client_command, clients_dir, http_get, python, run_ok_with, wait_until};

/// How long the warehouse is down under load.
const OUTAGE: Duration = Duration::from_secs(20);

/// A `tableflow_outage_check.py` command for `topic` on `broker`.
fn script(broker: &Broker, command: &str, topic: &str) -> Command {
    let mut cmd = client_command(python());
    cmd.arg(
        clients_dir()
            .join("python")
            .join("tableflow_outage_check.py"),
    )
    .arg(command)
    .args(["--bootstrap", &broker.bootstrap(), "--topic", topic]);
    cmd
}

/// Runs `cmd` to completion; its stdout (printed too).
fn run(cmd: &mut Command) -> String {
    let out = run_ok_with(cmd, b"", Duration::from_secs(300));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{stdout}");
    stdout
}

/// The `verify` command: the table of `topic` holds every record of `acks` once (less a
/// gap retention deleted, if given).
fn verify(broker: &Broker, s3: &S3Server, topic: &str, acks: &Path, gap: Option<&str>) -> String {
    let mut cmd = script(broker, "verify", topic);
    cmd.arg("--ack-log")
        .arg(acks)
        .arg("--data-dir")
        .arg(&broker.data_dir)
        .args(["--s3-endpoint", &s3.endpoint()])
        .args(["--s3-key", s3.access_key(), "--s3-secret", s3.secret_key()])
        .args(["--timeout", "180"]);
    if let Some(gap) = gap {
        cmd.args(["--gap", gap]);
    }
    run(&mut cmd)
}

/// A broker whose warehouse is the bucket of `s3`.
fn broker_on(s3: &S3Server, extra: &[&str]) -> Broker {
    let settings = [
        "tableflow_warehouse=s3://warehouse/floe".to_string(),
        format!("tableflow_s3_endpoint={}", s3.endpoint()),
        format!("tableflow_s3_region={}", s3.region()),
        format!("tableflow_s3_access_key_id={}", s3.access_key()),
        format!("tableflow_s3_secret_access_key={}", s3.secret_key()),
    ];
    let mut flags: Vec<&str> = Vec::new();
    for s in &settings {
        flags.extend(["--set", s.as_str()]);
    }
    flags.extend(extra);
    Broker::start_with(&flags)
}

/// The value of metric `name` whose labels include `labels`, in a `/metrics` scrape.
fn metric(broker: &Broker, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let (status, body) = http_get(broker.http_port, "/metrics")?;
    assert_eq!(status, 200, "{body}");
    body.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let matches = (rest.starts_with('{') || rest.starts_with(' '))
            && labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
        matches.then(|| rest.rsplit(' ').next()?.parse().ok())?
    })
}

/// Lines of the broker log containing `what`.
fn log_lines(broker: &Broker, what: &str) -> usize {
    broker.log().lines().filter(|l| l.contains(what)).count()
}

/// Acceptance 3: the warehouse's S3 server is stopped for 20 s while a producer writes
/// with acks=all, then started again: every acknowledged record is in the table exactly
/// once. Meanwhile the writer reports itself failing and retries with a bounded backoff
/// (a few attempts, not a tight loop), and nothing is counted as skipped.
#[test]
fn warehouse_outage_under_load_loses_and_doubles_nothing() {
    let mut s3 = S3Server::start(S3Kind::S3sFs, "warehouse");
    let broker = broker_on(&s3, &[]);
    let topic = "outage";
    let table = [("table", "default.outage")];
    run(script(&broker, "create", topic).args([
        "--partitions",
        "3",
        "--config",
        "table.enable=true",
        "--config",
        "table.mode=key_value",
        "--config",
        "table.commit.interval.ms=500",
    ]));
    let tmp = tempfile::tempdir().unwrap();
    let acks = tmp.path().join("acks");
    let stop = tmp.path().join("stop");
    let mut producer = script(&broker, "produce", topic)
        .arg("--ack-log")
        .arg(&acks)
        .arg("--stop-file")
        .arg(&stop)
        .args(["--rate", "2000"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();

    // The table has committed a few times under load (metadata files 00000 at creation,
    // then one per commit): then the warehouse goes away, most likely while the writer
    // has rows in an open file, possibly in the middle of a commit.
    wait_until(Duration::from_secs(60), "the table's third commit", || {
        s3.list("floe/default/outage/metadata/")
            .iter()
            .any(|(key, _)| key.contains("/00003-") && key.ends_with(".metadata.json"))
    });
    let failures_before =
        log_lines(&broker, "tableflow worker failed") + log_lines(&broker, "table commit failed");
    s3.stop();
    let down = Instant::now();
    wait_until(OUTAGE, "the table reports failing", || {
        metric(&broker, "floe_tableflow_failing", &table) == Some(1.0)
    });
    std::thread::sleep(OUTAGE.saturating_sub(down.elapsed()));
    s3.restart();
    // Records produced with the warehouse back, then the producer stops.
    std::thread::sleep(Duration::from_secs(3));
    std::fs::write(&stop, b"").unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = producer.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the producer did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut produced = String::new();
    std::io::Read::read_to_string(&mut producer.stdout.take().unwrap(), &mut produced).unwrap();
    eprintln!("{produced}");
    assert!(status.success(), "producer failed: {produced}");

    let out = verify(&broker, &s3, topic, &acks, None);
    assert!(out.contains("OK: exactly once"), "{out}");
    let acked = std::fs::read_to_string(&acks).unwrap().lines().count();
    assert!(acked > 20_000, "only {acked} records acknowledged");
    assert!(out.contains(&format!("OK: exactly once {acked}")), "{out}");

    // The failures were seen and retried with backoff: a few attempts over the outage.
    let attempts = log_lines(&broker, "tableflow worker failed")
        + log_lines(&broker, "table commit failed")
        - failures_before;
    assert!(
        (1..=30).contains(&attempts),
        "{attempts} failed attempts logged during a {OUTAGE:?} outage"
    );
    assert!(metric(&broker, "floe_tableflow_commit_failures_total", &table).unwrap_or(0.0) >= 1.0);
    wait_until(
        Duration::from_secs(30),
        "the table is healthy again",
        || metric(&broker, "floe_tableflow_failing", &table) == Some(0.0),
    );
    assert_eq!(
        metric(
            &broker,
            "floe_tableflow_records_skipped_total",
            &[("topic", topic)]
        ),
        None,
        "records were skipped"
    );
}

/// Retention and the hold: a topic with `retention.ms=3000` and `table.retention.hold.ms`
/// of 10 s. While the warehouse is down, retention deletes what the table has but keeps
/// what it still needs, until 10 s past the records' expiry; then it deletes them too and
/// the table, once the warehouse is back, holds everything else exactly once and counts the
/// deleted records in `floe_tableflow_records_skipped_total`.
#[test]
fn retention_waits_for_the_table_until_the_hold_ends() {
    let mut s3 = S3Server::start(S3Kind::S3sFs, "warehouse");
    let broker = broker_on(&s3, &["--set", "log_retention_check_interval_ms=200"]);
    let topic = "held";
    let partition = [("topic", topic), ("partition", "0")];
    run(script(&broker, "create", topic).args([
        "--config",
        "table.enable=true",
        "--config",
        "table.mode=key_value",
        "--config",
        "table.commit.interval.ms=200",
        "--config",
        "table.retention.hold.ms=10000",
        "--config",
        "retention.ms=3000",
        "--config",
        "segment.bytes=4096",
    ]));
    let tmp = tempfile::tempdir().unwrap();
    let acks = tmp.path().join("acks");
    let produce = |first: i64, count: i64| {
        run(script(&broker, "produce", topic)
            .arg("--ack-log")
            .arg(&acks)
            .args(["--first-id", &first.to_string()])
            .args(["--count", &count.to_string()]))
    };
    let log_start = || metric(&broker, "floe_log_start_offset", &partition).unwrap_or(-1.0) as i64;

    // 1000 records in the table; then the warehouse goes away and 1000 more arrive.
    produce(0, 1000);
    assert!(verify(&broker, &s3, topic, &acks, None).contains("OK: exactly once 1000"));
    s3.stop();
    let produced_from = Instant::now();
    produce(1000, 1000);
    let produced = produced_from.elapsed();

    // Retention deletes what the table has, and keeps offset 1000 on, which it lacks.
    wait_until(
        Duration::from_secs(20),
        "retention deletes materialized records",
        || log_start() > 0,
    );
    // Without the hold the new records would go 3 s after they were written; with it,
    // not before 3 s + 10 s. Watch until 11 s after the first was written.
    let watch_until = Duration::from_secs(11);
    assert!(
        produced + Duration::from_secs(4) < watch_until,
        "producing took {produced:?}: too slow to see the hold at work"
    );
    while produced_from.elapsed() < watch_until {
        let start = log_start();
        assert!(
            (1..=1000).contains(&start),
            "log start {start} at {:?}: retention did not wait for the table",
            produced_from.elapsed()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Past the bound they go, all of them (the hold never holds the topic hostage).
    wait_until(
        Duration::from_secs(30),
        "retention deletes past the hold",
        || log_start() == 2000,
    );
    assert!(
        log_lines(
            &broker,
            "retention deletes records a retention hold still needs"
        ) > 0,
        "the forced deletion was not logged"
    );

    // The warehouse is back: the table catches up with what is left, and counts the rest.
    s3.restart();
    produce(2000, 500);
    let out = verify(&broker, &s3, topic, &acks, Some("0:1000:1000"));
    assert!(out.contains("OK: exactly once 1500"), "{out}");
    wait_until(
        Duration::from_secs(30),
        "the deleted records are counted",
        || metric(&broker, "floe_tableflow_records_skipped_total", &partition) == Some(1000.0),
    );
    assert!(
        log_lines(&broker, "deleted before they were materialized") > 0,
        "the skipped records were not logged"
    );
}

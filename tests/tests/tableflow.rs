//! Tableflow end to end: topics produced with confluent-kafka-python and read back as
//! Iceberg tables by pyiceberg (SQL catalog over the broker's SQLite file), DuckDB
//! (`iceberg_scan`, pip-bundled extension) and polars. The checks themselves live in
//! `tests/clients/python/tableflow_check.py`; each test names the acceptance item.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use floe_tests::s3::{S3Kind, S3Server};
use floe_tests::{Broker, client_command, clients_dir, python, run_ok_with};

fn check(
    broker: &Broker,
    command: &str,
    topic: &str,
    count: usize,
    env: &[(&str, &str)],
) -> String {
    let script = clients_dir().join("python").join("tableflow_check.py");
    let mut cmd = client_command(python());
    cmd.arg(script)
        .arg(command)
        .arg("--bootstrap")
        .arg(broker.bootstrap())
        .arg("--data-dir")
        .arg(&broker.data_dir)
        .args(["--topic", topic, "--count"])
        .arg(count.to_string());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = run_ok_with(&mut cmd, b"", Duration::from_secs(600));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{stdout}");
    stdout
}

/// Acceptance 1: 100,000 JSON records through 4 partitions; pyiceberg, DuckDB and polars
/// each read exactly 100,000 rows equal to what was produced.
#[test]
fn json_hundred_thousand_rows_read_by_three_engines() {
    let broker = Broker::start();
    let out = check(&broker, "json", "orders", 100_000, &[]);
    assert!(out.contains("OK: json 100000"), "{out}\n{}", broker.log());
}

/// Acceptance 2: arbitrary binary keys, values (null included) and headers round-trip.
#[test]
fn key_value_mode_round_trips_binary() {
    let broker = Broker::start();
    let out = check(&broker, "keyvalue", "blobs", 3000, &[]);
    assert!(
        out.contains("OK: key_value 3000"),
        "{out}\n{}",
        broker.log()
    );
}

/// Acceptance 3: kill -9 while the table is being materialized; after a restart every
/// record is in the table exactly once.
#[test]
fn kill_during_materialization_keeps_rows_exactly_once() {
    let mut broker = Broker::start();
    let out = check(&broker, "produce", "crashy", 150_000, &[]);
    broker.kill9();
    eprintln!("killed after: {out}");
    broker.restart();
    let out = check(&broker, "verify", "crashy", 150_000, &[]);
    assert!(
        out.contains("OK: exactly once 150000"),
        "{out}\n{}",
        broker.log()
    );
}

/// The retention issue: a compacted topic (cleaned before its table exists) backfills a
/// table with exactly the records left in its log, then keeps materializing.
#[test]
fn compacted_topic_backfills_what_the_cleaner_left() {
    let broker = Broker::start_with(&[
        "--set",
        "log_cleaner_backoff_ms=200",
        "--set",
        "log_retention_check_interval_ms=200",
    ]);
    let out = check(&broker, "compacted", "squashed", 2000, &[]);
    assert!(
        out.contains("OK: compacted topic table 110"),
        "{out}\n{}",
        broker.log()
    );
}

/// Acceptance 4: tables enabled on a topic with data backfill it from the log start, the
/// identity(region) table has one data file directory per region, and the invalid records
/// are in the `_dlq` table with their errors.
#[test]
fn backfill_partitioned_and_dead_letters() {
    let broker = Broker::start();
    let out = check(&broker, "backfill", "events", 3000, &[]);
    assert!(
        out.contains("OK: backfill 2940 dlq 60"),
        "{out}\n{}",
        broker.log()
    );
}

/// Acceptance 5: the same scenarios with the warehouse in a bucket of a local S3 server.
#[test]
fn s3_warehouse_on_local_s3_server() {
    let s3 = S3Server::start(S3Kind::Moto, "warehouse");
    let endpoint = s3.endpoint();
    let args = [
        "tableflow_warehouse=s3://warehouse/floe".to_string(),
        format!("tableflow_s3_endpoint={endpoint}"),
        format!("tableflow_s3_region={}", s3.region()),
        format!("tableflow_s3_access_key_id={}", s3.access_key()),
        format!("tableflow_s3_secret_access_key={}", s3.secret_key()),
    ];
    let mut flags = Vec::new();
    for a in &args {
        flags.push("--set");
        flags.push(a.as_str());
    }
    let mut broker = Broker::start_with(&flags);
    let env = [("FLOE_TEST_S3_ENDPOINT", endpoint.as_str())];
    let out = check(&broker, "json", "s3orders", 20_000, &env);
    assert!(out.contains("OK: json 20000"), "{out}\n{}", broker.log());
    let out = check(&broker, "backfill", "s3events", 1000, &env);
    assert!(
        out.contains("OK: backfill 980 dlq 20"),
        "{out}\n{}",
        broker.log()
    );
    let out = check(&broker, "produce", "s3crashy", 50_000, &env);
    broker.kill9();
    eprintln!("killed after: {out}");
    broker.restart();
    let out = check(&broker, "verify", "s3crashy", 50_000, &env);
    assert!(
        out.contains("OK: exactly once 50000"),
        "{out}\n{}",
        broker.log()
    );
    assert!(
        !Path::new(&broker.data_dir)
            .join("iceberg/warehouse/default")
            .exists()
    );
}

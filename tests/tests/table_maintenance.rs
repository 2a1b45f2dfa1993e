//! Table maintenance end to end (issue 16): snapshot expiry, small-file compaction,
//! bounded metadata and orphan-file cleanup on a table committed many times, and kill -9
//! at points inside maintenance. The table is read back with pyiceberg and DuckDB; the
//! checks live in `tests/clients/python/maintenance_check.py`.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Child;
use std::time::Duration;

use floe_tests::{Broker, client_command, clients_dir, python, run_ok_with};

fn script(broker: &Broker, command: &str, topic: &str, args: &[&str]) -> std::process::Command {
    let mut cmd = client_command(python());
    cmd.arg(clients_dir().join("python").join("maintenance_check.py"))
        .arg(command)
        .arg("--bootstrap")
        .arg(broker.bootstrap())
        .arg("--data-dir")
        .arg(&broker.data_dir)
        .args(["--topic", topic])
        .args(args);
    cmd
}

fn check(broker: &Broker, command: &str, topic: &str, args: &[&str]) -> String {
    check_within(broker, command, topic, args, Duration::from_secs(900))
}

fn check_within(
    broker: &Broker,
    command: &str,
    topic: &str,
    args: &[&str],
    timeout: Duration,
) -> String {
    let out = run_ok_with(&mut script(broker, command, topic, args), b"", timeout);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{stdout}");
    stdout
}

fn background(broker: &Broker, command: &str, topic: &str, args: &[&str]) -> Child {
    script(broker, command, topic, args)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Acceptance 1: a table committed every 200 ms for 2,000 commits (~10 minutes on a debug
/// build, which commits about 3.5 times a second here; nextest gives this test a longer
/// time limit, scripts/nextest.toml), with expiry and compaction
/// on: snapshots, the current metadata file and the files per table partition stay under
/// the bounds docs/table-maintenance.md gives for these settings in every sample (about
/// every 2 s) while pyiceberg and DuckDB read exactly the produced rows at the end; only
/// `previous-versions-max` old metadata files stay on disk.
#[test]
fn many_commits_stay_bounded_and_read_exactly_once() {
    let broker = Broker::start();
    check(&broker, "create", "churn", &["--commit-ms", "200"]);
    let out = check_within(
        &broker,
        "churn",
        "churn",
        &[
            "--commit-ms",
            "200",
            "--min-commits",
            "2000",
            "--rate",
            "1000",
            "--seconds",
            "960",
        ],
        Duration::from_secs(1100),
    );
    assert!(out.contains("OK: churn"), "{out}");
    let log = broker.log();
    assert!(log.contains("compacted table"), "no compaction logged");
}

/// Acceptance 1 (orphans) and 2: kill -9 at points inside compaction, expiry, orphan
/// cleanup and the catalog commit; after each restart the table reads exactly once and
/// maintenance goes on. Data files a crash left between Parquet write and commit are
/// deleted once older than the safety age.
#[test]
fn kill9_inside_maintenance_keeps_rows_exactly_once() {
    let mut broker = Broker::start();
    check(&broker, "create", "crash", &[]);
    // Some commits first, so every maintenance step has work.
    check(&broker, "load", "crash", &["--seconds", "8"]);
    let points = [
        "compact.after_rewrite",
        "compact.before_commit",
        "catalog.after_swap@40",
        "expire.before_commit",
        "sink.before_commit@20",
        "orphans.mid_delete",
    ];
    let state = broker.data_dir.parent().unwrap().join("orphans.json");
    let state = state.to_str().unwrap().to_string();
    for point in points {
        eprintln!("---- crash point {point}");
        broker.stop();
        broker.set_env(&[("FLOE_TABLEFLOW_CRASH_AT", point)]);
        broker.restart();
        let mut load = background(&broker, "load", "crash", &["--seconds", "60"]);
        let status = broker.wait_exit(Duration::from_secs(90));
        let _ = load.kill();
        let _ = load.wait();
        let status = status.unwrap_or_else(|| panic!("{point}: the broker did not crash"));
        assert!(!status.success(), "{point}: exited with {status}");
        assert!(
            broker.log().contains(&format!(
                "FLOE_TABLEFLOW_CRASH_AT={}",
                point.split('@').next().unwrap()
            )),
            "{point}: crashed elsewhere:\n{}",
            broker.log()
        );
        if point.starts_with("sink.before_commit") {
            // Files written, never committed: orphans, listed while nothing runs. The next
            // crash point is in their deletion.
            check(
                &broker,
                "orphans",
                "crash",
                &["--expect-some", "--state", &state],
            );
        }
        broker.set_env(&[]);
        broker.restart();
        check(&broker, "verify", "crash", &[]);
    }
    // The rest of those orphans go once older than the safety age (4 s).
    check(
        &broker,
        "orphans",
        "crash",
        &["--wait-gone", "--state", &state, "--timeout", "60"],
    );
    check(&broker, "load", "crash", &["--seconds", "6"]);
    check(&broker, "verify", "crash", &["--compacted"]);
}

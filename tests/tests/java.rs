//! The Apache Kafka Java client (kafka-clients 3.9.1) against a real `floe` broker.
//!
//! `tests/clients/java/FloeJavaCheck.java` is compiled against the jars in
//! [`floe_tests::java_libs`] into a temporary directory and run: an idempotent producer with
//! default settings, a group-less consumer (assign + seekToBeginning) that compares every
//! record, deleteRecords and describeLogDirs (whose sizes are compared here with the
//! partitions' files), and an AdminClient topic round trip.
//!
//! `tests/clients/java/FloeJavaTxnCheck.java`, compiled and run the same way: a producer
//! with default settings plus `transactional.id` (initTransactions, committed and aborted
//! transactions, sendOffsetsToTransaction) and read_committed and read_uncommitted consumers.
//!
//! The programs exit non-zero on a mismatch.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::Duration;

use floe_tests::{Broker, compile_java, run_ok_with};

/// Compiles `tests/clients/java/<class>.java` against the client jars and runs it with the
/// broker's bootstrap address; it must print "OK". Returns its standard output.
fn compile_and_run(class: &str, broker: &Broker) -> String {
    let classes = tempfile::tempdir().unwrap();
    let classpath = compile_java(class, classes.path());
    let out = run_ok_with(
        Command::new("java")
            .arg("-cp")
            .arg(&classpath)
            .arg(class)
            .arg(broker.bootstrap()),
        b"",
        Duration::from_secs(300),
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        stdout.lines().any(|l| l == "OK"),
        "{class} did not report OK:\n{stdout}"
    );
    stdout
}

#[test]
fn java_client_produces_consumes_and_administers_topics() {
    let broker = Broker::start();
    let stdout = compile_and_run("FloeJavaCheck", &broker);
    // describeLogDirs reports what the partitions' segment files hold.
    let mut reported = 0;
    for line in stdout.lines().filter_map(|l| l.strip_prefix("LOGDIR ")) {
        let (partition, size) = line.split_once(' ').unwrap();
        let size: u64 = size.parse().unwrap();
        let on_disk: u64 = std::fs::read_dir(broker.data_dir.join(partition))
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
            .map(|e| e.metadata().unwrap().len())
            .sum();
        assert_eq!(size, on_disk, "describeLogDirs size of {partition}");
        assert!(size > 0);
        reported += 1;
    }
    assert_eq!(reported, 2, "{stdout}");
}

/// Acceptance 7 (Java): a producer with default settings plus `transactional.id` commits,
/// aborts, commits, aborts and commits; a read_committed consumer reads exactly the committed
/// records at their acknowledged offsets, a read_uncommitted one every acknowledged record;
/// the end offsets are the data plus one marker per transaction and partition; the offsets
/// sent in the committed transaction are the group's, the aborted transaction's never.
#[test]
fn java_client_transactions_commit_abort_and_read_committed() {
    let broker = Broker::start();
    let stdout = compile_and_run("FloeJavaTxnCheck", &broker);
    eprintln!("{stdout}");
}

/// Issue 14's compatibility items with the Java AdminClient: describeFeatures, describeTopics
/// through DescribeTopicPartitions, electLeaders, listPartitionReassignments, the broker's
/// configs, and message.format.version accepted (see `FloeJavaAdminCompat.java`).
#[test]
fn java_admin_client_features_elections_reassignments_and_configs() {
    let broker = Broker::start();
    let stdout = compile_and_run("FloeJavaAdminCompat", &broker);
    eprintln!("{stdout}");
}

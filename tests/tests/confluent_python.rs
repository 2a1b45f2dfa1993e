//! confluent-kafka-python 2.16.1 (librdkafka 2.16) against a real broker: AdminClient
//! CreateTopics, an idempotent acks=all producer and an assign()-based consumer, checked
//! byte for byte by `tests/clients/python/confluent_roundtrip.py`.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use floe_tests::{Broker, client_command, clients_dir, python, run_ok_with};

/// Runs the round-trip script and returns its stdout; the script checks everything itself
/// and exits non-zero with the first mismatch on stderr.
fn roundtrip(broker: &Broker, topic: &str, count: usize, compression: &str) -> String {
    let script = clients_dir().join("python").join("confluent_roundtrip.py");
    let out = run_ok_with(
        client_command(python())
            .arg(script)
            .arg("--bootstrap")
            .arg(broker.bootstrap())
            .args(["--topic", topic, "--partitions", "3"])
            .arg("--count")
            .arg(count.to_string())
            .args(["--compression", compression]),
        b"",
        Duration::from_secs(480),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// 100,000 random binary messages through three partitions, uncompressed.
#[test]
fn hundred_thousand_messages_three_partitions() {
    let broker = Broker::start();
    let out = roundtrip(&broker, "py-roundtrip", 100_000, "none");
    assert!(
        out.contains("OK: 100000 messages round-tripped through 3 partitions"),
        "{out}"
    );
}

/// The same checks with librdkafka 2.16's zstd batches (kcat covers the older librdkafka).
#[test]
fn zstd_batches_three_partitions() {
    let broker = Broker::start();
    let out = roundtrip(&broker, "py-roundtrip-zstd", 20_000, "zstd");
    assert!(
        out.contains("OK: 20000 messages round-tripped through 3 partitions"),
        "{out}"
    );
}

//! Admin answers that tools (kafka-python, confluent-kafka) rely on, given as a single-node
//! Kafka broker gives them: the broker's configs, the old message format settings accepted,
//! OffsetCommit for unknown partitions refused per partition. The Java AdminClient's part
//! (features, DescribeTopicPartitions, elections, reassignments) is in `java.rs`.

use std::time::Duration;

use floe_tests::{Broker, client_command, clients_dir, python, run_ok_with};

#[test]
fn broker_configs_message_format_and_unknown_commits() {
    let broker = Broker::start();
    let out = run_ok_with(
        client_command(python())
            .arg(clients_dir().join("python").join("admin_compat.py"))
            .arg(broker.bootstrap()),
        b"",
        Duration::from_secs(120),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    assert!(stdout.lines().any(|l| l == "OK"), "{stdout}");
}

//! kafkajs 2.2.4 (a pure JavaScript client) against a real `floe` broker.
//!
//! `tests/clients/node/kafkajs_check.js` creates a topic, produces keyed messages with
//! headers (acks -1), reads them back with a consumer group as kafkajs users do (kafkajs has
//! no group-less consumer), and creates, describes and deletes a second topic. The script
//! exits non-zero on a mismatch.

use std::process::Command;
use std::time::Duration;

use floe_tests::{Broker, clients_dir, run_ok_with};

#[test]
fn kafkajs_produces_consumes_with_a_group_and_administers_topics() {
    let node_dir = clients_dir().join("node");
    assert!(
        node_dir.join("node_modules/kafkajs/package.json").is_file(),
        "kafkajs is not installed in {} (run scripts/install-test-deps.sh)",
        node_dir.display()
    );
    let broker = Broker::start();
    let out = run_ok_with(
        Command::new("node")
            .arg("kafkajs_check.js")
            .arg(broker.bootstrap())
            .current_dir(&node_dir),
        b"",
        Duration::from_secs(300),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.lines().any(|l| l == "OK"),
        "kafkajs_check.js did not report OK:\n{stdout}"
    );
}

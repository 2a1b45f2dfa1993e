//! kafkajs 2.2.4 (a pure JavaScript client) against a real `floe` broker.
//!
//! - `tests/clients/node/kafkajs_check.js` creates a topic, produces keyed messages with
//!   headers (acks -1), reads them back with a consumer group as kafkajs users do (kafkajs
//!   has no group-less consumer), and creates, describes and deletes a second topic.
//! - `tests/clients/node/kafkajs_txn_check.js` runs committed and aborted transactions of a
//!   producer with `transactionalId` (idempotent, one request in flight), one of each with
//!   `sendOffsets`, and checks what read_committed and read_uncommitted consumer groups read
//!   and which offsets the group got.
//!
//! The scripts exit non-zero on a mismatch.

use std::process::Command;
use std::time::Duration;

use floe_tests::{Broker, clients_dir, run_ok_with};

/// Runs `tests/clients/node/<script> BOOTSTRAP` against a fresh broker; it must print "OK".
fn run_script(script: &str) {
    let node_dir = clients_dir().join("node");
    assert!(
        node_dir.join("node_modules/kafkajs/package.json").is_file(),
        "kafkajs is not installed in {} (run scripts/install-test-deps.sh)",
        node_dir.display()
    );
    let broker = Broker::start();
    let out = run_ok_with(
        Command::new("node")
            .arg(script)
            .arg(broker.bootstrap())
            .current_dir(&node_dir),
        b"",
        Duration::from_secs(300),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    assert!(
        stdout.lines().any(|l| l == "OK"),
        "{script} did not report OK:\n{stdout}"
    );
}

#[test]
fn kafkajs_produces_consumes_with_a_group_and_administers_topics() {
    run_script("kafkajs_check.js");
}

/// Acceptance 7 (kafkajs): commit, abort, commit, abort, commit over two partitions; a
/// read_committed consumer group reads exactly the committed messages at their acknowledged
/// offsets, a read_uncommitted one every acknowledged message; the end offsets are the data
/// plus one marker per transaction and partition; `sendOffsets` in the committed transaction
/// is the group's committed offset, the aborted transaction's is never seen.
#[test]
fn kafkajs_transactions_commit_abort_and_send_offsets() {
    run_script("kafkajs_txn_check.js");
}

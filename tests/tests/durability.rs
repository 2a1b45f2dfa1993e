//! Durability of acknowledged records across broker restarts and `kill -9`.
//!
//! Clients: confluent-kafka (idempotent, acks=all) writes, kafka-python reads back without a
//! consumer group (assign + seek_to_beginning). The scripts live in `tests/clients/python/`:
//! - `durability_restart.py` writes phases of records to several topics and partitions and
//!   verifies topics, ListOffsets earliest/latest and every record after each restart;
//! - `durability_load.py` writes continuously, logging each acknowledged
//!   (value, partition, offset) in its delivery report, while the test kills the broker.

// Test helpers outside #[test] functions: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use floe_tests::{Broker, clients_dir, python, run_ok_with, verify_acknowledged, wait_until};
use rand::Rng;

fn script(name: &str) -> PathBuf {
    clients_dir().join("python").join(name)
}

/// Run `durability_restart.py` with `args` after the bootstrap and state file.
fn restart_script(broker: &Broker, state: &Path, args: &[&str]) {
    run_ok_with(
        Command::new(python())
            .arg(script("durability_restart.py"))
            .arg(broker.bootstrap())
            .arg(state)
            .args(args),
        b"",
        Duration::from_secs(240),
    );
}

#[test]
fn records_topics_and_offsets_survive_restart_and_kill9() {
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state.json");
    let mut broker = Broker::start();

    restart_script(&broker, &state, &["write", "p0", "200", "none"]);
    restart_script(&broker, &state, &["verify"]);

    // Clean shutdown: everything is back, and new records continue at the next offset.
    broker.stop();
    broker.restart();
    restart_script(&broker, &state, &["verify"]);
    restart_script(&broker, &state, &["write", "p1", "100", "gzip"]);
    restart_script(&broker, &state, &["verify"]);

    // kill -9: acks=all records were synced before they were acknowledged.
    broker.kill9();
    broker.restart();
    restart_script(&broker, &state, &["verify"]);
    restart_script(&broker, &state, &["write", "p2", "100", "gzip"]);
    restart_script(&broker, &state, &["verify"]);

    // Twice in a row without writes in between: recovery of a recovered log.
    broker.kill9();
    broker.restart();
    broker.stop();
    broker.restart();
    restart_script(&broker, &state, &["verify"]);
}

/// A running `durability_load.py produce`, killed when dropped.
struct LoadProducer {
    child: Child,
    output: PathBuf,
}

impl LoadProducer {
    fn spawn(
        broker: &Broker,
        topic: &str,
        iteration: u32,
        ack_log: &Path,
        output: PathBuf,
    ) -> Self {
        let out = File::create(&output).unwrap();
        let child = Command::new(python())
            .arg(script("durability_load.py"))
            .arg(broker.bootstrap())
            .arg(topic)
            .arg("produce")
            .arg(iteration.to_string())
            .arg(ack_log)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("spawn durability_load.py");
        LoadProducer { child, output }
    }

    /// Panic with the producer's output if it has exited (it runs until killed).
    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!(
                "durability_load.py exited early ({status}):\n{}",
                std::fs::read_to_string(&self.output).unwrap_or_default()
            );
        }
    }
}

impl Drop for LoadProducer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn acknowledged_records_survive_kill9_under_load() {
    const TOPIC: &str = "load";
    // FLOE_KILL9_ITERATIONS raises it for a longer soak.
    let iterations: u32 = std::env::var("FLOE_KILL9_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let work = tempfile::tempdir().unwrap();
    let mut broker = Broker::start();
    let mut rng = rand::rng();
    let mut ack_logs = Vec::new();

    for iteration in 0..iterations {
        let ack_log = work.path().join(format!("acks-{iteration}.log"));
        let output = work.path().join(format!("producer-{iteration}.out"));
        let mut producer = LoadProducer::spawn(&broker, TOPIC, iteration, &ack_log, output);
        wait_until(
            Duration::from_secs(60),
            "the load producer has a record acknowledged",
            || {
                producer.assert_running();
                std::fs::metadata(&ack_log).is_ok_and(|m| m.len() > 0)
            },
        );
        // Kill at a different moment of the load each time.
        let delay = Duration::from_millis(rng.random_range(20..1500));
        std::thread::sleep(delay);
        producer.assert_running();
        broker.kill9();
        // Stop the producer only after the broker died: everything in its ack log was
        // acknowledged by the broker that was just killed.
        drop(producer);
        let acked = std::fs::read_to_string(&ack_log).unwrap().lines().count();
        eprintln!(
            "iteration {iteration}: killed the broker after {delay:?}, {acked} records acknowledged"
        );
        ack_logs.push(ack_log);
        broker.restart();
    }

    eprintln!("{}", verify_acknowledged(&broker, TOPIC, &ack_logs));
}

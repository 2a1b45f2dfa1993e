//! Committed offsets and group administration: commits acknowledged to a member survive a
//! clean broker restart and a `kill -9`; kcat (librdkafka 2.0.2) consumes as a group and
//! resumes from its commits; AdminClient lists, describes and deletes groups and shows lag
//! (committed offsets against high watermarks).

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use floe_tests::groups::{
    Client, GroupWork, MemberOpts, committed_offsets, group_admin, high_watermarks,
};
use floe_tests::{Broker, client_command, clients_dir, python, run_ok_with, wait_until};
use serde_json::Value;

const PARTITIONS: i32 = 3;

/// Produce at least `count` numbered records into a new topic; returns every ack.
fn produce(
    work: &GroupWork,
    broker: &Broker,
    topic: &str,
    count: usize,
) -> Vec<(i32, i64, String)> {
    let mut producer = work.producer(broker, topic, PARTITIONS, 2000);
    wait_until(
        Duration::from_secs(60),
        "the producer wrote enough records",
        || {
            producer.assert_running();
            producer.acked().len() >= count
        },
    );
    producer.stop()
}

/// Per-partition map from a JSON object keyed by partition number.
fn by_partition(v: &Value) -> BTreeMap<i32, Option<i64>> {
    v.as_object()
        .unwrap()
        .iter()
        .map(|(p, o)| (p.parse().unwrap(), o.as_i64()))
        .collect()
}

/// `groups_offsets.py` (consume `count` records in `group`, commit, close): returns the
/// first offset read and the committed offset of each partition it read.
fn consume_commit(
    broker: &Broker,
    group: &str,
    topic: &str,
    count: usize,
) -> (BTreeMap<i32, Option<i64>>, BTreeMap<i32, Option<i64>>) {
    let out = run_ok_with(
        client_command(python())
            .arg(clients_dir().join("python").join("groups_offsets.py"))
            .arg(broker.bootstrap())
            .args([group, topic, &count.to_string()]),
        b"",
        Duration::from_secs(120),
    );
    parse_consume_commit(&String::from_utf8_lossy(&out.stdout))
}

fn parse_consume_commit(line: &str) -> (BTreeMap<i32, Option<i64>>, BTreeMap<i32, Option<i64>>) {
    let v: Value = serde_json::from_str(line.trim())
        .unwrap_or_else(|e| panic!("groups_offsets.py printed {line:?}: {e}"));
    (by_partition(&v["first"]), by_partition(&v["committed"]))
}

/// `after` continues exactly where `before` left: every partition read first at the
/// offset committed before (or 0 if nothing was), and `total` is the union of commits.
fn merge(
    total: &mut BTreeMap<i32, Option<i64>>,
    first: &BTreeMap<i32, Option<i64>>,
    now: &BTreeMap<i32, Option<i64>>,
) {
    for (p, f) in first {
        let expected = total.get(p).copied().flatten().unwrap_or(0);
        assert_eq!(
            *f,
            Some(expected),
            "partition {p}: first offset read after the restart"
        );
    }
    for (p, n) in now {
        total.insert(*p, *n);
    }
}

#[test]
fn committed_offsets_survive_restart_and_kill9() {
    let mut broker = Broker::start_with(&["--set", "group_initial_rebalance_delay_ms=0"]);
    let work = GroupWork::new();
    let (topic, group) = ("ledger", "ledger-readers");
    produce(&work, &broker, topic, 600);

    // Commit some records, then a clean restart.
    let mut total = BTreeMap::new();
    let (first, now) = consume_commit(&broker, group, topic, 100);
    merge(&mut total, &first, &now);
    broker.stop();
    broker.restart();
    let after_restart = committed_offsets(&broker, group, topic, PARTITIONS);
    for (p, n) in &total {
        assert_eq!(
            after_restart.get(p),
            Some(n),
            "partition {p} after a clean restart"
        );
    }

    // The group resumes from them, commits more while still a member, and the broker is
    // SIGKILLed right after the commit was acknowledged.
    let mut holder = client_command(python())
        .arg(clients_dir().join("python").join("groups_offsets.py"))
        .arg(broker.bootstrap())
        .args([group, topic, "150", "--hold"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = holder.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(90))
        .expect("groups_offsets.py --hold reports its acknowledged commit within 90 s");
    broker.kill9();
    holder.kill().unwrap();
    holder.wait().unwrap();
    let (first, now) = parse_consume_commit(&line);
    merge(&mut total, &first, &now);

    broker.restart();
    let after_kill = committed_offsets(&broker, group, topic, PARTITIONS);
    for (p, n) in &total {
        assert_eq!(after_kill.get(p), Some(n), "partition {p} after kill -9");
    }
    // And the group still resumes from there (its dead member expires first).
    let (first, now) = consume_commit(&broker, group, topic, 100);
    merge(&mut total, &first, &now);
    broker.kill9();
    broker.restart();
    let after_second_kill = committed_offsets(&broker, group, topic, PARTITIONS);
    for (p, n) in &total {
        assert_eq!(
            after_second_kill.get(p),
            Some(n),
            "partition {p} after a second kill -9"
        );
    }
}

/// Run `kcat -G` until it reaches the end of every partition; returns (partition, offset,
/// value) of what it printed.
fn kcat_group(broker: &Broker, group: &str, topic: &str) -> Vec<(i32, i64, String)> {
    let out = run_ok_with(
        client_command("kcat")
            .args(["-b", &broker.bootstrap(), "-G", group, "-e", "-q"])
            .args(["-X", "auto.offset.reset=earliest"])
            .args([
                "-X",
                "session.timeout.ms=6000",
                "-X",
                "heartbeat.interval.ms=1000",
            ])
            .args(["-f", "%p %o %s\\n", topic]),
        b"",
        Duration::from_secs(120),
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let mut it = l.splitn(3, ' ');
            (
                it.next().unwrap().parse().unwrap(),
                it.next().unwrap().parse().unwrap(),
                it.next().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn kcat_consumes_as_a_group_and_resumes_from_its_commits() {
    let broker = Broker::start_with(&["--set", "group_initial_rebalance_delay_ms=0"]);
    let work = GroupWork::new();
    let (topic, group) = ("kcat-events", "kcat-readers");
    let acks = produce(&work, &broker, topic, 300);
    let mut read = kcat_group(&broker, group, topic);
    read.sort();
    let mut expected = acks.clone();
    expected.sort();
    assert_eq!(read, expected, "kcat -G reads every record once");
    let hw = high_watermarks(&acks, PARTITIONS);
    let want: BTreeMap<i32, Option<i64>> = hw.iter().map(|(p, h)| (*p, Some(*h))).collect();
    assert_eq!(
        committed_offsets(&broker, group, topic, PARTITIONS),
        want,
        "kcat committed what it read"
    );

    // A second run reads nothing new... and after more records, only those.
    let mut producer = work.producer(&broker, topic, PARTITIONS, 2000);
    wait_until(Duration::from_secs(60), "more records were written", || {
        producer.assert_running();
        producer.acked().len() >= acks.len() + 100
    });
    let all = producer.stop();
    let mut read = kcat_group(&broker, group, topic);
    read.sort();
    let mut new: Vec<_> = all.iter().filter(|r| !acks.contains(r)).cloned().collect();
    new.sort();
    assert_eq!(read, new, "kcat -G resumes from its committed offsets");
}

#[test]
fn admin_lists_describes_and_deletes_groups_and_shows_lag() {
    let broker = Broker::start_with(&["--set", "group_initial_rebalance_delay_ms=0"]);
    let work = GroupWork::new();
    let topic = "inventory";
    let acks = produce(&work, &broker, topic, 300);
    let hw = high_watermarks(&acks, PARTITIONS);
    let bootstrap = broker.bootstrap();

    // A lagging group: it committed 100 records and left.
    let (_, committed_by_lagging) = consume_commit(&broker, "lagging", topic, 100);
    let lag: Value = serde_json::from_str(&group_admin(&[
        "lag",
        &bootstrap,
        "lagging",
        topic,
        &PARTITIONS.to_string(),
    ]))
    .unwrap();
    let mut total_lag = 0;
    for p in 0..PARTITIONS {
        let entry = &lag[p.to_string()];
        let c = committed_by_lagging.get(&p).copied().flatten();
        assert_eq!(
            entry["committed"].as_i64(),
            c,
            "partition {p} committed: {lag}"
        );
        assert_eq!(
            entry["high"].as_i64(),
            Some(hw[&p]),
            "partition {p} high watermark: {lag}"
        );
        assert_eq!(
            entry["lag"].as_i64(),
            Some(hw[&p] - c.unwrap_or(0)),
            "partition {p} lag: {lag}"
        );
        total_lag += entry["lag"].as_i64().unwrap();
    }
    assert_eq!(total_lag as usize, acks.len() - 100, "total lag: {lag}");

    // A live group with one member.
    let mut member = work.member(
        Client::Confluent,
        "live",
        &broker,
        "live",
        topic,
        &MemberOpts::default(),
    );
    wait_until(
        Duration::from_secs(60),
        "the live member owns every partition",
        || {
            member.assert_running();
            member.owned().len() == PARTITIONS as usize
        },
    );
    let listed: Value = serde_json::from_str(&group_admin(&["list", &bootstrap])).unwrap();
    let state_of = |listed: &Value, g: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["group"] == g)
            .map(|e| {
                (
                    e["state"].as_str().unwrap().to_string(),
                    e["type"].as_str().unwrap().to_string(),
                )
            })
    };
    assert_eq!(
        state_of(&listed, "lagging"),
        Some(("EMPTY".into(), "CLASSIC".into())),
        "{listed}"
    );
    assert_eq!(
        state_of(&listed, "live"),
        Some(("STABLE".into(), "CLASSIC".into())),
        "{listed}"
    );

    let described: Value =
        serde_json::from_str(&group_admin(&["describe", &bootstrap, "live"])).unwrap();
    assert_eq!(described["state"], "STABLE", "{described}");
    assert_eq!(described["type"], "CLASSIC", "{described}");
    assert_eq!(
        described["protocol"], "range",
        "librdkafka's first default assignor: {described}"
    );
    let members = described["members"].as_array().unwrap();
    assert_eq!(members.len(), 1, "{described}");
    assert_eq!(
        members[0]["assignment"],
        serde_json::json!([0, 1, 2]),
        "{described}"
    );

    // Deleting a group with members is refused; an empty one goes with its offsets.
    let refused: Value =
        serde_json::from_str(&group_admin(&["delete", &bootstrap, "live"])).unwrap();
    assert_eq!(refused["error"], "NON_EMPTY_GROUP", "{refused}");
    let deleted: Value =
        serde_json::from_str(&group_admin(&["delete", &bootstrap, "lagging"])).unwrap();
    assert_eq!(deleted["error"], Value::Null, "{deleted}");
    let listed: Value = serde_json::from_str(&group_admin(&["list", &bootstrap])).unwrap();
    assert_eq!(
        state_of(&listed, "lagging"),
        None,
        "deleted group still listed: {listed}"
    );
    let none: BTreeMap<i32, Option<i64>> = (0..PARTITIONS).map(|p| (p, None)).collect();
    assert_eq!(
        committed_offsets(&broker, "lagging", topic, PARTITIONS),
        none,
        "offsets of the deleted group"
    );

    member.stop();
    let described: Value =
        serde_json::from_str(&group_admin(&["describe", &bootstrap, "live"])).unwrap();
    assert_eq!(described["state"], "EMPTY", "{described}");
    assert_eq!(described["members"], serde_json::json!([]), "{described}");
}

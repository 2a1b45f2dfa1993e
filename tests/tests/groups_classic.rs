//! Classic-protocol consumer groups with every client: three members share a 6-partition
//! topic (two partitions each), one leaves gracefully, one is SIGKILLed and its partitions
//! move after the session timeout, while a producer keeps writing numbered records. Members
//! commit synchronously after processing; at the end every record was processed exactly
//! once, except records a killed member processed but had not committed, which its
//! successor reads once more, and a fresh consumer sees the high watermarks committed.
//!
//! The members are separate processes (`floe_tests::groups`), so a kill is a real crash.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use floe_tests::groups::{
    Client, Event, GroupWork, Member, MemberOpts, check_exactly_once, committed_offsets,
    high_watermarks,
};
use floe_tests::{Broker, wait_until};

const PARTITIONS: i32 = 6;
const SESSION_TIMEOUT_MS: u32 = 6000;
/// Records a second: enough that every poll brings work, little enough for two cores.
const RATE: u32 = 300;

/// Wait until the members own disjoint sets of the sizes in `sizes` that cover every
/// partition.
fn wait_balanced(members: &mut [&mut Member], sizes: &[usize], what: &str) {
    wait_until(Duration::from_secs(90), what, || {
        let mut union = BTreeSet::new();
        let mut total = 0;
        for (m, &size) in members.iter_mut().zip(sizes) {
            m.assert_running();
            let owned = m.owned();
            if owned.len() != size {
                return false;
            }
            total += owned.len();
            union.extend(owned);
        }
        total == PARTITIONS as usize && union.len() == PARTITIONS as usize
    });
}

/// Highest acknowledged commit per partition across `members`.
fn max_commits(members: &[&Member]) -> BTreeMap<i32, i64> {
    let mut out = BTreeMap::new();
    for m in members {
        for (p, n) in m.commits() {
            let e = out.entry(p).or_insert(n);
            *e = (*e).max(n);
        }
    }
    out
}

/// Wait until the running `members` have committed, in every partition, past `before`
/// (where every member had committed earlier): the current owners consume and commit
/// every partition.
fn wait_all_partitions_advance(
    before: &BTreeMap<i32, i64>,
    members: &mut [&mut Member],
    what: &str,
) {
    wait_until(Duration::from_secs(60), what, || {
        for m in members.iter_mut() {
            m.assert_running();
        }
        let shared: Vec<&Member> = members.iter().map(|m| &**m).collect();
        let now = max_commits(&shared);
        (0..PARTITIONS)
            .all(|p| now.get(&p).copied().unwrap_or(0) > before.get(&p).copied().unwrap_or(0))
    });
}

/// The scenario of this file with members of `clients` (a leaves, b is killed, c stays).
fn join_leave_kill(clients: [Client; 3], assignor: Option<&'static str>) {
    let broker = Broker::start_with(&["--set", "group_initial_rebalance_delay_ms=500"]);
    let work = GroupWork::new();
    let (topic, group) = ("orders", "order-processors");
    let mut producer = work.producer(&broker, topic, PARTITIONS, RATE);
    let opts = MemberOpts {
        assignor,
        session_timeout_ms: SESSION_TIMEOUT_MS,
        heartbeat_ms: 1000,
        process_ms: 100,
        ..MemberOpts::default()
    };
    let mut a = work.member(clients[0], "a", &broker, group, topic, &opts);
    let mut b = work.member(clients[1], "b", &broker, group, topic, &opts);
    let mut c = work.member(clients[2], "c", &broker, group, topic, &opts);

    // Three members: two partitions each, and every partition is consumed.
    wait_balanced(
        &mut [&mut a, &mut b, &mut c],
        &[2, 2, 2],
        "each of three members owns two partitions",
    );
    let before = max_commits(&[&a, &b, &c]);
    wait_all_partitions_advance(
        &before,
        &mut [&mut a, &mut b, &mut c],
        "three members commit in every partition",
    );

    // a leaves (close(): LeaveGroup); b and c take over its partitions.
    let a_owned = a.owned();
    a.stop();
    wait_balanced(
        &mut [&mut b, &mut c],
        &[3, 3],
        "b and c own three partitions each after a left",
    );
    let taken_over: BTreeSet<i32> = b.owned().union(&c.owned()).copied().collect();
    assert!(a_owned.is_subset(&taken_over));
    let before = max_commits(&[&a, &b, &c]);
    wait_all_partitions_advance(
        &before,
        &mut [&mut b, &mut c],
        "b and c commit in every partition",
    );

    // b is killed: no LeaveGroup, so its partitions move only when its session expires.
    // Kill it while it is between processing records and committing them (its log ends
    // with a processed record), so its successor must read those records again.
    producer.assert_running();
    wait_until(Duration::from_secs(30), "b is processing records", || {
        b.assert_running();
        matches!(b.events().last(), Some(Event::Rec { .. }))
    });
    let killed_at = Instant::now();
    b.kill9();
    wait_balanced(
        &mut [&mut c],
        &[6],
        "c owns every partition after b's session expired",
    );
    let moved_after = killed_at.elapsed();
    // b's last heartbeat was at most one heartbeat interval before the kill.
    assert!(
        moved_after >= Duration::from_millis(u64::from(SESSION_TIMEOUT_MS) - 1500),
        "b's partitions moved {moved_after:?} after the kill, before its session timeout"
    );
    let before = max_commits(&[&a, &b, &c]);
    wait_all_partitions_advance(&before, &mut [&mut c], "c commits in every partition");

    // Stop producing, let c catch up and commit everything, then close it.
    let acks = producer.stop();
    let hw = high_watermarks(&acks, PARTITIONS);
    wait_until(
        Duration::from_secs(60),
        "c committed up to the high watermarks",
        || {
            c.assert_running();
            let commits = c.commits();
            hw.iter().all(|(p, h)| commits.get(p) == Some(h))
        },
    );
    c.stop();

    let committed = committed_offsets(&broker, group, topic, PARTITIONS);
    check_exactly_once(&acks, PARTITIONS, &[&a, &b, &c], &["b"], &committed);
}

#[test]
fn confluent_kafka_members_join_leave_and_crash() {
    join_leave_kill([Client::Confluent; 3], None);
}

#[test]
fn kafka_python_members_join_leave_and_crash() {
    join_leave_kill([Client::KafkaPython; 3], None);
}

#[test]
fn java_members_join_leave_and_crash() {
    join_leave_kill([Client::Java; 3], None);
}

#[test]
fn kafkajs_members_join_leave_and_crash() {
    join_leave_kill([Client::Kafkajs; 3], None);
}

/// confluent-kafka and kafka-python in one group: they share the "range" assignor.
#[test]
fn mixed_confluent_and_kafka_python_members_join_leave_and_crash() {
    join_leave_kill(
        [Client::KafkaPython, Client::Confluent, Client::KafkaPython],
        Some("range"),
    );
}

/// The Java client and confluent-kafka in one group, also through "range".
#[test]
fn mixed_java_and_confluent_members_join_leave_and_crash() {
    join_leave_kill(
        [Client::Confluent, Client::Java, Client::Confluent],
        Some("range"),
    );
}

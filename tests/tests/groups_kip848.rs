//! KIP-848 consumer groups (`group.protocol=consumer`: ConsumerGroupHeartbeat with a
//! server-side assignor): confluent-kafka members share a 6-partition topic, the assignment
//! is rebalanced incrementally when a member joins and when one leaves, members commit
//! after processing, and ConsumerGroupDescribe (AdminClient.describe_consumer_groups) shows
//! each member's assignment. Every record is processed exactly once.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use floe_tests::Broker;
use floe_tests::groups::{
    Client, GroupWork, Member, MemberOpts, check_exactly_once, committed_offsets, group_admin,
    high_watermarks,
};
use serde_json::Value;

const PARTITIONS: i32 = 6;

/// Wait until `cond` holds for the members; on timeout, panic with their diagnostics (a
/// broker without KIP-848 shows up here as the clients' errors).
fn wait_members(
    members: &mut [&mut Member],
    timeout: Duration,
    what: &str,
    cond: impl Fn(&[&mut Member]) -> bool,
) {
    let deadline = Instant::now() + timeout;
    while !cond(members) {
        if Instant::now() > deadline {
            let diags: Vec<String> = members.iter().map(|m| m.diagnostics()).collect();
            panic!(
                "timed out after {timeout:?} waiting until {what}\n\n{}",
                diags.join("\n\n")
            );
        }
        for m in members.iter_mut() {
            m.assert_running();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The members own disjoint sets of these sizes covering every partition.
fn balanced(members: &[&mut Member], sizes: &[usize]) -> bool {
    let owned: Vec<BTreeSet<i32>> = members.iter().map(|m| m.owned()).collect();
    let union: BTreeSet<i32> = owned.iter().flatten().copied().collect();
    owned.iter().map(BTreeSet::len).eq(sizes.iter().copied())
        && union.len() == PARTITIONS as usize
        && owned.iter().map(BTreeSet::len).sum::<usize>() == PARTITIONS as usize
}

#[test]
fn confluent_kafka_consumer_protocol_members_share_rebalance_and_commit() {
    let broker = Broker::start();
    let work = GroupWork::new();
    let (topic, group) = ("telemetry", "telemetry-kip848");
    let mut producer = work.producer(&broker, topic, PARTITIONS, 200);
    let opts = MemberOpts {
        protocol: "consumer",
        process_ms: 50,
        ..MemberOpts::default()
    };
    let mut a = work.member(Client::Confluent, "a", &broker, group, topic, &opts);
    let mut b = work.member(Client::Confluent, "b", &broker, group, topic, &opts);
    wait_members(
        &mut [&mut a, &mut b],
        Duration::from_secs(30),
        "two consumer-protocol members own three partitions each",
        |m| balanced(m, &[3, 3]),
    );

    // A third member joins: two partitions each.
    let mut c = work.member(Client::Confluent, "c", &broker, group, topic, &opts);
    wait_members(
        &mut [&mut a, &mut b, &mut c],
        Duration::from_secs(60),
        "three members own two partitions each",
        |m| balanced(m, &[2, 2, 2]),
    );
    wait_members(
        &mut [&mut a, &mut b, &mut c],
        Duration::from_secs(60),
        "every member commits",
        |m| m.iter().all(|m| m.commits().len() >= 2),
    );

    // ConsumerGroupDescribe shows the assignment the members report.
    let described: Value =
        serde_json::from_str(&group_admin(&["describe", &broker.bootstrap(), group])).unwrap();
    assert_eq!(described["type"], "CONSUMER", "{described}");
    assert_eq!(described["state"], "STABLE", "{described}");
    let mut described_sets: Vec<Vec<i64>> = described["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["assignment"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_i64().unwrap())
                .collect()
        })
        .collect();
    described_sets.sort();
    let mut reported: Vec<Vec<i64>> = [&a, &b, &c]
        .iter()
        .map(|m| m.owned().into_iter().map(i64::from).collect())
        .collect();
    reported.sort();
    assert_eq!(described_sets, reported, "{described}");

    // b leaves: a and c take over its partitions.
    b.stop();
    wait_members(
        &mut [&mut a, &mut c],
        Duration::from_secs(60),
        "a and c own three partitions each after b left",
        |m| balanced(m, &[3, 3]),
    );

    let acks = producer.stop();
    let hw = high_watermarks(&acks, PARTITIONS);
    wait_members(
        &mut [&mut a, &mut c],
        Duration::from_secs(60),
        "a and c committed up to the high watermarks",
        |m| {
            let mut all = BTreeMap::new();
            for member in m {
                for (p, n) in member.commits() {
                    let e = all.entry(p).or_insert(n);
                    *e = (*e).max(n);
                }
            }
            hw.iter().all(|(p, h)| all.get(p) == Some(h))
        },
    );
    a.stop();
    c.stop();
    let committed = committed_offsets(&broker, group, topic, PARTITIONS);
    check_exactly_once(&acks, PARTITIONS, &[&a, &b, &c], &[], &committed);
}

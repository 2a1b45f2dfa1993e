//! Static membership (`group.instance.id`, KIP-345): a member SIGKILLed and restarted
//! within its session timeout gets its partitions back without a rebalance; the other
//! member never sees its assignment change (counted through its assign/revoke callbacks),
//! not even after the dead incarnation's session timeout has passed, and across all of it
//! every record is processed once (except what the killed incarnation had not committed).

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use floe_tests::groups::{
    Client, Event, GroupWork, Member, MemberOpts, check_exactly_once, committed_offsets,
    high_watermarks,
};
use floe_tests::{Broker, wait_until};

const PARTITIONS: i32 = 4;
const SESSION_TIMEOUT_MS: u32 = 10_000;

/// Commits `member` made, per partition, since its log had `since` events.
fn commits_since(member: &Member, since: usize) -> BTreeMap<i32, i64> {
    let mut out = BTreeMap::new();
    for e in member.events().into_iter().skip(since) {
        if let Event::Commit { partition, next } = e {
            out.insert(partition, next);
        }
    }
    out
}

fn static_member_restart(client: Client) {
    let broker = Broker::start_with(&["--set", "group_initial_rebalance_delay_ms=500"]);
    let work = GroupWork::new();
    let (topic, group) = ("shipments", "shipment-trackers");
    let mut producer = work.producer(&broker, topic, PARTITIONS, 200);
    let static_opts = MemberOpts {
        instance_id: Some("tracker-1".into()),
        session_timeout_ms: SESSION_TIMEOUT_MS,
        process_ms: 50,
        ..MemberOpts::default()
    };
    let other_opts = MemberOpts {
        session_timeout_ms: SESSION_TIMEOUT_MS,
        process_ms: 50,
        ..MemberOpts::default()
    };
    let mut first = work.member(client, "static-1", &broker, group, topic, &static_opts);
    let mut other = work.member(client, "other", &broker, group, topic, &other_opts);
    wait_until(
        Duration::from_secs(60),
        "two members own two partitions each and commit them",
        || {
            first.assert_running();
            other.assert_running();
            // Whoever joins first owns (and may commit) all four partitions for a while, so
            // count commits of the partitions owned now, not commits ever made.
            [&first, &other].iter().all(|m| {
                let (owned, commits) = (m.owned(), m.commits());
                owned.len() == 2 && owned.iter().all(|p| commits.contains_key(p))
            })
        },
    );
    let static_partitions = first.owned();
    let other_changes = other.assignment_changes();

    // Crash the static member and start a new incarnation with the same instance id (a
    // different log name, so its re-reads count as another member's).
    let killed_at = Instant::now();
    first.kill9();
    let mut second = work.member(client, "static-2", &broker, group, topic, &static_opts);
    wait_until(
        Duration::from_secs(30),
        "the new incarnation owns partitions",
        || {
            second.assert_running();
            !second.owned().is_empty()
        },
    );
    assert_eq!(
        second.owned(),
        static_partitions,
        "the restarted static member gets its partitions back"
    );
    assert!(
        killed_at.elapsed() < Duration::from_millis(u64::from(SESSION_TIMEOUT_MS)),
        "the restart took longer than the session timeout ({:?}); the test proves nothing",
        killed_at.elapsed()
    );

    // Past the dead incarnation's session timeout, both members are still consuming and the
    // other member's assignment never changed.
    let other_mark = other.events().len();
    wait_until(
        Duration::from_secs(60),
        "both members commit in their partitions after the old session timeout",
        || {
            second.assert_running();
            other.assert_running();
            killed_at.elapsed() > Duration::from_millis(u64::from(SESSION_TIMEOUT_MS) + 3000)
                && commits_since(&second, 0).len() == 2
                && commits_since(&other, other_mark).len() == 2
        },
    );
    assert_eq!(
        other.assignment_changes(),
        other_changes,
        "the other member saw a rebalance:\n{}",
        other.diagnostics()
    );
    assert_eq!(
        second.assignment_changes(),
        1,
        "the new incarnation was assigned once:\n{}",
        second.diagnostics()
    );

    let acks = producer.stop();
    let hw = high_watermarks(&acks, PARTITIONS);
    // Generous: on a loaded CI machine the members caught up and committed everything, just
    // after a 60 s wait had given up (the commits in their logs matched every high watermark).
    wait_until(Duration::from_secs(180), "everything is committed", || {
        second.assert_running();
        other.assert_running();
        // Each partition's newest commit, whoever made it: `other` may also hold an older
        // commit of a partition it owned before the static member first joined.
        let mut all = second.commits();
        for (p, o) in other.commits() {
            let e = all.entry(p).or_insert(o);
            *e = (*e).max(o);
        }
        hw.iter().all(|(p, h)| all.get(p) == Some(h))
    });
    other.stop();
    second.stop();
    let committed = committed_offsets(&broker, group, topic, PARTITIONS);
    check_exactly_once(
        &acks,
        PARTITIONS,
        &[&first, &second, &other],
        &["static-1"],
        &committed,
    );
}

#[test]
fn confluent_kafka_static_member_restarts_without_a_rebalance() {
    static_member_restart(Client::Confluent);
}

#[test]
fn java_static_member_restarts_without_a_rebalance() {
    static_member_restart(Client::Java);
}

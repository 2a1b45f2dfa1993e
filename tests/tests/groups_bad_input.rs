//! Group requests a client should never send, over raw frames (`kafka-protocol` crate):
//! heartbeats and commits for unknown members, stale generations, commits without a
//! membership into an active group, and requests from a static member's fenced old member
//! id. Each gets the Kafka error code clients act on, and none of them disturbs the group's
//! real members: a confluent-kafka member keeps its assignment (no rebalance) and keeps
//! committing, no bogus offset is ever stored, and a static member's new incarnation keeps
//! working after its fenced predecessor's requests.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use floe_tests::groups::{GroupWork, MemberOpts, high_watermarks};
use floe_tests::raw::RawConn;
use floe_tests::{Broker, wait_until};
use kafka_protocol::messages::describe_groups_request::DescribeGroupsRequest;
use kafka_protocol::messages::describe_groups_response::DescribeGroupsResponse;
use kafka_protocol::messages::heartbeat_request::HeartbeatRequest;
use kafka_protocol::messages::heartbeat_response::HeartbeatResponse;
use kafka_protocol::messages::join_group_request::{JoinGroupRequest, JoinGroupRequestProtocol};
use kafka_protocol::messages::join_group_response::JoinGroupResponse;
use kafka_protocol::messages::leave_group_request::{LeaveGroupRequest, MemberIdentity};
use kafka_protocol::messages::leave_group_response::LeaveGroupResponse;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequest, OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_commit_response::OffsetCommitResponse;
use kafka_protocol::messages::offset_fetch_request::{OffsetFetchRequest, OffsetFetchRequestTopic};
use kafka_protocol::messages::offset_fetch_response::OffsetFetchResponse;
use kafka_protocol::messages::sync_group_request::{SyncGroupRequest, SyncGroupRequestAssignment};
use kafka_protocol::messages::sync_group_response::SyncGroupResponse;
use kafka_protocol::messages::{ApiKey, GroupId, TopicName};
use kafka_protocol::protocol::StrBytes;

// Kafka error codes (Kafka's `Errors` class).
const NONE: i16 = 0;
const ILLEGAL_GENERATION: i16 = 22;
const UNKNOWN_MEMBER_ID: i16 = 25;
const FENCED_INSTANCE_ID: i16 = 82;

/// Highest version of each API this file builds requests for (the newest `kafka-protocol`
/// 0.18 knows, except OffsetFetch, kept below v8's multi-group layout).
const JOIN_GROUP_MAX: i16 = 9;
const SYNC_GROUP_MAX: i16 = 5;
const HEARTBEAT_MAX: i16 = 4;
const LEAVE_GROUP_MAX: i16 = 5;
const OFFSET_COMMIT_MAX: i16 = 9;
const OFFSET_FETCH_MAX: i16 = 7;
const DESCRIBE_GROUPS_MAX: i16 = 5;

/// The offset every bogus commit carries: far past anything produced, so it is
/// recognisable if it is ever stored.
const BOGUS_OFFSET: i64 = 999_999;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

/// Client id in the request headers of this file's connections.
const CLIENT_ID: &str = "floe-groups-bad-input";

/// Heartbeat; returns its error code.
fn heartbeat(
    conn: &mut RawConn,
    group: &str,
    member: &str,
    generation: i32,
    instance: Option<&str>,
) -> i16 {
    let req = HeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
        .with_generation_id(generation)
        .with_group_instance_id(instance.map(s));
    let resp: HeartbeatResponse = conn.call(ApiKey::Heartbeat, HEARTBEAT_MAX, &req);
    resp.error_code
}

/// Commit `offset` for partition 0 of `topic`; returns the partition's error code.
fn commit(
    conn: &mut RawConn,
    group: &str,
    member: &str,
    generation: i32,
    instance: Option<&str>,
    topic: &str,
    offset: i64,
) -> i16 {
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
        .with_generation_id_or_member_epoch(generation)
        .with_group_instance_id(instance.map(s))
        .with_retention_time_ms(-1)
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(vec![
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(-1)
                        .with_committed_metadata(Some(s(""))),
                ]),
        ]);
    let resp: OffsetCommitResponse = conn.call(ApiKey::OffsetCommit, OFFSET_COMMIT_MAX, &req);
    assert_eq!(resp.topics.len(), 1, "OffsetCommit answers the one topic");
    assert_eq!(resp.topics[0].partitions.len(), 1, "and its one partition");
    resp.topics[0].partitions[0].error_code
}

/// Committed offsets of `group` for `partitions` of `topic` (-1: none).
fn fetch(conn: &mut RawConn, group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(Some(vec![
            OffsetFetchRequestTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partition_indexes((0..partitions).collect()),
        ]));
    let resp: OffsetFetchResponse = conn.call(ApiKey::OffsetFetch, OFFSET_FETCH_MAX, &req);
    assert_eq!(resp.error_code, NONE, "OffsetFetch({group})");
    resp.topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| {
            assert_eq!(
                p.error_code, NONE,
                "OffsetFetch({group}) partition {}",
                p.partition_index
            );
            (p.partition_index, p.committed_offset)
        })
        .collect()
}

/// JoinGroup with one opaque "range" protocol.
fn join(
    conn: &mut RawConn,
    group: &str,
    member: &str,
    instance: Option<&str>,
) -> JoinGroupResponse {
    let req = JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(30_000)
        .with_rebalance_timeout_ms(30_000)
        .with_member_id(s(member))
        .with_group_instance_id(instance.map(s))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(Bytes::from_static(b"opaque-subscription")),
        ]);
    conn.call(ApiKey::JoinGroup, JOIN_GROUP_MAX, &req)
}

/// SyncGroup with `assignments` (empty unless the leader).
fn sync(
    conn: &mut RawConn,
    group: &str,
    member: &str,
    generation: i32,
    instance: Option<&str>,
    assignments: Vec<SyncGroupRequestAssignment>,
) -> SyncGroupResponse {
    let req = SyncGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
        .with_generation_id(generation)
        .with_group_instance_id(instance.map(s))
        .with_protocol_type(Some(s("consumer")))
        .with_protocol_name(Some(s("range")))
        .with_assignments(assignments);
    conn.call(ApiKey::SyncGroup, SYNC_GROUP_MAX, &req)
}

/// A real confluent-kafka member keeps its assignment and its commits while raw requests
/// for unknown members, stale generations and commits without membership are refused.
#[test]
fn unknown_members_and_stale_generations_are_refused_without_disturbing_the_group() {
    const PARTITIONS: i32 = 3;
    let broker = Broker::start_with(&["--set", "group_initial_rebalance_delay_ms=0"]);
    let work = GroupWork::new();
    let (topic, group) = ("payments", "payment-processors");
    let mut producer = work.producer(&broker, topic, PARTITIONS, 200);
    let opts = MemberOpts {
        process_ms: 20,
        ..MemberOpts::default()
    };
    let mut real = work.member(
        floe_tests::groups::Client::Confluent,
        "real",
        &broker,
        group,
        topic,
        &opts,
    );
    wait_until(
        Duration::from_secs(60),
        "the real member owns every partition and committed",
        || {
            real.assert_running();
            real.owned().len() == PARTITIONS as usize && real.commits().len() == PARTITIONS as usize
        },
    );
    let changes = real.assignment_changes();

    let mut conn = RawConn::open(&broker, CLIENT_ID);
    let version = conn.version(ApiKey::DescribeGroups, DESCRIBE_GROUPS_MAX);
    let described: DescribeGroupsResponse = conn.call_at(
        ApiKey::DescribeGroups,
        version,
        &DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]),
    );
    let g = &described.groups[0];
    assert_eq!(
        (g.error_code, g.group_state.as_str()),
        (NONE, "Stable"),
        "DescribeGroups v{version}"
    );
    assert_eq!(g.members.len(), 1, "one member: {g:?}");
    let real_id = g.members[0].member_id.to_string();
    // DescribeGroups does not tell the generation; the real member's is small and >= 1,
    // so 0 is stale and 1_000_000 is from the future.
    let (stale, future) = (0, 1_000_000);

    // Heartbeats.
    assert_eq!(
        heartbeat(&mut conn, group, "no-such-member", 1, None),
        UNKNOWN_MEMBER_ID,
        "Heartbeat of an unknown member"
    );
    assert_eq!(
        heartbeat(&mut conn, group, &real_id, stale, None),
        ILLEGAL_GENERATION,
        "Heartbeat with a stale generation"
    );
    assert_eq!(
        heartbeat(&mut conn, group, &real_id, future, None),
        ILLEGAL_GENERATION,
        "Heartbeat with a future generation"
    );
    assert_eq!(
        heartbeat(
            &mut conn,
            group,
            "no-such-member",
            1,
            Some("no-such-instance")
        ),
        UNKNOWN_MEMBER_ID,
        "Heartbeat of an unknown static instance"
    );

    // Commits.
    assert_eq!(
        commit(
            &mut conn,
            group,
            "no-such-member",
            1,
            None,
            topic,
            BOGUS_OFFSET
        ),
        UNKNOWN_MEMBER_ID,
        "OffsetCommit of an unknown member"
    );
    assert_eq!(
        commit(&mut conn, group, &real_id, stale, None, topic, BOGUS_OFFSET),
        ILLEGAL_GENERATION,
        "OffsetCommit of the real member id with a stale generation"
    );
    assert_eq!(
        commit(&mut conn, group, "", -1, None, topic, BOGUS_OFFSET),
        UNKNOWN_MEMBER_ID,
        "a simple (generation -1) OffsetCommit into a group with members"
    );
    assert_eq!(
        commit(
            &mut conn,
            group,
            "no-such-member",
            1,
            Some("no-such-instance"),
            topic,
            BOGUS_OFFSET
        ),
        UNKNOWN_MEMBER_ID,
        "OffsetCommit of an unknown static instance"
    );

    // LeaveGroup for a member that is not there answers per member, and removes nobody.
    let version = conn.version(ApiKey::LeaveGroup, LEAVE_GROUP_MAX);
    let left: LeaveGroupResponse = conn.call_at(
        ApiKey::LeaveGroup,
        version,
        &LeaveGroupRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_members(vec![
                MemberIdentity::default().with_member_id(s("no-such-member")),
            ]),
    );
    assert_eq!(
        left.error_code, NONE,
        "LeaveGroup v{version} top-level error"
    );
    assert_eq!(
        left.members
            .iter()
            .map(|m| m.error_code)
            .collect::<Vec<_>>(),
        vec![UNKNOWN_MEMBER_ID],
        "LeaveGroup v{version} per-member error"
    );

    // The real member was not disturbed: no rebalance, and it keeps committing.
    let before = real.commits();
    wait_until(
        Duration::from_secs(30),
        "the real member commits in every partition again",
        || {
            real.assert_running();
            let now = real.commits();
            (0..PARTITIONS).all(|p| now.get(&p) > before.get(&p))
        },
    );
    let acks = producer.stop();
    let hw = high_watermarks(&acks, PARTITIONS);
    wait_until(
        Duration::from_secs(60),
        "the real member committed up to the high watermarks",
        || {
            real.assert_running();
            let commits = real.commits();
            hw.iter().all(|(p, h)| commits.get(p) == Some(h))
        },
    );
    assert_eq!(
        real.assignment_changes(),
        changes,
        "the real member saw a rebalance:\n{}",
        real.diagnostics()
    );
    let events = real.events();
    let failed: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, floe_tests::groups::Event::CommitFail(_)))
        .collect();
    assert!(
        failed.is_empty(),
        "the real member's commits failed: {failed:?}"
    );
    let committed = fetch(&mut conn, group, topic, PARTITIONS);
    let expected: BTreeMap<i32, i64> = hw.clone();
    assert_eq!(
        committed, expected,
        "committed offsets are the real member's, not the bogus {BOGUS_OFFSET}"
    );
    real.stop();
}

/// A static member replaced by a new incarnation (same `group.instance.id`, new member id)
/// is fenced: its heartbeats, commits and joins get FENCED_INSTANCE_ID, and the new
/// incarnation keeps heartbeating and committing.
#[test]
fn a_replaced_static_member_is_fenced_and_its_successor_keeps_working() {
    let broker = Broker::start_with(&["--set", "group_initial_rebalance_delay_ms=0"]);
    let (group, topic, instance) = ("fencing", "fenced-topic", Some("instance-1"));
    let mut old = RawConn::open(&broker, CLIENT_ID);
    let mut new = RawConn::open(&broker, CLIENT_ID);
    // Commits go to a topic that exists (others answer UNKNOWN_TOPIC_OR_PARTITION).
    assert_eq!(old.create_topic(topic, 1), NONE, "CreateTopics");

    // The first incarnation joins (a static member gets its id at once), leads, syncs.
    let joined = join(&mut old, group, "", instance);
    assert_eq!(
        joined.error_code, NONE,
        "JoinGroup of a static member: {joined:?}"
    );
    let old_id = joined.member_id.to_string();
    let generation = joined.generation_id;
    assert_eq!(joined.leader.as_str(), old_id, "the only member leads");
    let synced = sync(
        &mut old,
        group,
        &old_id,
        generation,
        instance,
        vec![
            SyncGroupRequestAssignment::default()
                .with_member_id(s(&old_id))
                .with_assignment(Bytes::from_static(b"assignment-1")),
        ],
    );
    assert_eq!(synced.error_code, NONE, "SyncGroup of the leader");
    assert_eq!(synced.assignment.as_ref(), b"assignment-1");
    assert_eq!(
        heartbeat(&mut old, group, &old_id, generation, instance),
        NONE,
        "Heartbeat before fencing"
    );
    assert_eq!(
        commit(&mut old, group, &old_id, generation, instance, topic, 5),
        NONE,
        "OffsetCommit before fencing"
    );

    // The second incarnation rejoins with the same instance id and no member id: it
    // replaces the first without a rebalance and gets the same assignment.
    let rejoined = join(&mut new, group, "", instance);
    assert_eq!(
        rejoined.error_code, NONE,
        "JoinGroup of the new incarnation: {rejoined:?}"
    );
    let new_id = rejoined.member_id.to_string();
    assert_ne!(new_id, old_id, "the new incarnation has a new member id");
    let generation = rejoined.generation_id;
    let synced = sync(&mut new, group, &new_id, generation, instance, Vec::new());
    assert_eq!(synced.error_code, NONE, "SyncGroup of the new incarnation");
    assert_eq!(
        synced.assignment.as_ref(),
        b"assignment-1",
        "the static member keeps its assignment"
    );

    // The old incarnation is fenced everywhere.
    assert_eq!(
        heartbeat(&mut old, group, &old_id, generation, instance),
        FENCED_INSTANCE_ID,
        "Heartbeat of the fenced member"
    );
    assert_eq!(
        commit(
            &mut old,
            group,
            &old_id,
            generation,
            instance,
            topic,
            BOGUS_OFFSET
        ),
        FENCED_INSTANCE_ID,
        "OffsetCommit of the fenced member"
    );
    let rejoin_old = join(&mut old, group, &old_id, instance);
    assert_eq!(
        rejoin_old.error_code, FENCED_INSTANCE_ID,
        "JoinGroup of the fenced member id: {rejoin_old:?}"
    );
    let sync_old = sync(&mut old, group, &old_id, generation, instance, Vec::new());
    assert_eq!(
        sync_old.error_code, FENCED_INSTANCE_ID,
        "SyncGroup of the fenced member id"
    );

    // The new incarnation is untouched by all of that.
    assert_eq!(
        heartbeat(&mut new, group, &new_id, generation, instance),
        NONE,
        "Heartbeat of the new incarnation"
    );
    assert_eq!(
        commit(&mut new, group, &new_id, generation, instance, topic, 7),
        NONE,
        "OffsetCommit of the new incarnation"
    );
    assert_eq!(
        fetch(&mut new, group, topic, 1),
        BTreeMap::from([(0, 7)]),
        "only the new incarnation's commit is stored"
    );
    assert_eq!(
        heartbeat(&mut old, group, &old_id, generation, instance),
        FENCED_INSTANCE_ID,
        "still fenced"
    );
    assert_eq!(
        heartbeat(&mut new, group, &new_id, generation, instance),
        NONE,
        "still a member"
    );
}

//! Group requests a client should never send, over raw frames (`kafka-protocol` crate):
//! heartbeats and commits for unknown members, stale generations, commits without a
//! membership into an active group, and requests from a static member's fenced old member
//! id. Each gets the Kafka error code clients act on, and none of them disturbs the group's
//! real members: a confluent-kafka member keeps its assignment (no rebalance) and keeps
//! committing, no bogus offset is ever stored, and a static member's new incarnation keeps
//! working after its fenced predecessor's requests.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use floe_tests::groups::{GroupWork, MemberOpts, high_watermarks};
use floe_tests::{Broker, wait_until};
use kafka_protocol::messages::api_versions_request::ApiVersionsRequest;
use kafka_protocol::messages::api_versions_response::ApiVersionsResponse;
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
use kafka_protocol::messages::{ApiKey, GroupId, RequestHeader, ResponseHeader, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};

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

/// One client connection speaking raw frames.
struct Conn {
    stream: TcpStream,
    correlation_id: i32,
    versions: HashMap<i16, (i16, i16)>,
}

impl Conn {
    fn open(broker: &Broker) -> Conn {
        let stream = TcpStream::connect(broker.addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        let mut conn = Conn {
            stream,
            correlation_id: 0,
            versions: HashMap::new(),
        };
        let resp: ApiVersionsResponse =
            conn.call_at(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
        assert_eq!(resp.error_code, NONE, "ApiVersions");
        conn.versions = resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        conn
    }

    /// The broker's newest version of `key`, capped at `ours`.
    fn version(&self, key: ApiKey, ours: i16) -> i16 {
        let &(min, max) = self
            .versions
            .get(&(key as i16))
            .unwrap_or_else(|| panic!("broker does not advertise {key:?}"));
        let v = max.min(ours);
        assert!(
            v >= min,
            "broker wants {key:?} v{min}..v{max}, we speak up to v{ours}"
        );
        v
    }

    fn call_at<Req, Resp>(&mut self, key: ApiKey, version: i16, req: &Req) -> Resp
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable + HeaderVersion,
    {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(s("floe-groups-bad-input")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, Req::header_version(version))
            .unwrap();
        req.encode(&mut body, version).unwrap();
        let mut frame = (body.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        self.stream.write_all(&frame).unwrap();

        let mut len = [0u8; 4];
        self.stream
            .read_exact(&mut len)
            .unwrap_or_else(|e| panic!("reading the {key:?} v{version} response: {e}"));
        let mut buf = vec![0u8; u32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut buf).unwrap();
        let mut buf = Bytes::from(buf);
        let header = ResponseHeader::decode(&mut buf, Resp::header_version(version)).unwrap();
        assert_eq!(header.correlation_id, self.correlation_id, "correlation id");
        Resp::decode(&mut buf, version)
            .unwrap_or_else(|e| panic!("decoding the {key:?} v{version} response: {e}"))
    }

    fn call<Req, Resp>(&mut self, key: ApiKey, ours: i16, req: &Req) -> Resp
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable + HeaderVersion,
    {
        let version = self.version(key, ours);
        self.call_at(key, version, req)
    }

    fn heartbeat(
        &mut self,
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
        let resp: HeartbeatResponse = self.call(ApiKey::Heartbeat, HEARTBEAT_MAX, &req);
        resp.error_code
    }

    /// Commit `offset` for partition 0 of `topic`; returns the partition's error code.
    fn commit(
        &mut self,
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
        let resp: OffsetCommitResponse = self.call(ApiKey::OffsetCommit, OFFSET_COMMIT_MAX, &req);
        assert_eq!(resp.topics.len(), 1, "OffsetCommit answers the one topic");
        assert_eq!(resp.topics[0].partitions.len(), 1, "and its one partition");
        resp.topics[0].partitions[0].error_code
    }

    /// Committed offsets of `group` for `partitions` of `topic` (-1: none).
    fn fetch(&mut self, group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
        let req = OffsetFetchRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_topics(Some(vec![
                OffsetFetchRequestTopic::default()
                    .with_name(TopicName(s(topic)))
                    .with_partition_indexes((0..partitions).collect()),
            ]));
        let resp: OffsetFetchResponse = self.call(ApiKey::OffsetFetch, OFFSET_FETCH_MAX, &req);
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

    fn join(&mut self, group: &str, member: &str, instance: Option<&str>) -> JoinGroupResponse {
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
        self.call(ApiKey::JoinGroup, JOIN_GROUP_MAX, &req)
    }

    fn sync(
        &mut self,
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
        self.call(ApiKey::SyncGroup, SYNC_GROUP_MAX, &req)
    }
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

    let mut conn = Conn::open(&broker);
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
        conn.heartbeat(group, "no-such-member", 1, None),
        UNKNOWN_MEMBER_ID,
        "Heartbeat of an unknown member"
    );
    assert_eq!(
        conn.heartbeat(group, &real_id, stale, None),
        ILLEGAL_GENERATION,
        "Heartbeat with a stale generation"
    );
    assert_eq!(
        conn.heartbeat(group, &real_id, future, None),
        ILLEGAL_GENERATION,
        "Heartbeat with a future generation"
    );
    assert_eq!(
        conn.heartbeat(group, "no-such-member", 1, Some("no-such-instance")),
        UNKNOWN_MEMBER_ID,
        "Heartbeat of an unknown static instance"
    );

    // Commits.
    assert_eq!(
        conn.commit(group, "no-such-member", 1, None, topic, BOGUS_OFFSET),
        UNKNOWN_MEMBER_ID,
        "OffsetCommit of an unknown member"
    );
    assert_eq!(
        conn.commit(group, &real_id, stale, None, topic, BOGUS_OFFSET),
        ILLEGAL_GENERATION,
        "OffsetCommit of the real member id with a stale generation"
    );
    assert_eq!(
        conn.commit(group, "", -1, None, topic, BOGUS_OFFSET),
        UNKNOWN_MEMBER_ID,
        "a simple (generation -1) OffsetCommit into a group with members"
    );
    assert_eq!(
        conn.commit(
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
    let committed = conn.fetch(group, topic, PARTITIONS);
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
    let mut old = Conn::open(&broker);
    let mut new = Conn::open(&broker);

    // The first incarnation joins (a static member gets its id at once), leads, syncs.
    let joined = old.join(group, "", instance);
    assert_eq!(
        joined.error_code, NONE,
        "JoinGroup of a static member: {joined:?}"
    );
    let old_id = joined.member_id.to_string();
    let generation = joined.generation_id;
    assert_eq!(joined.leader.as_str(), old_id, "the only member leads");
    let synced = old.sync(
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
        old.heartbeat(group, &old_id, generation, instance),
        NONE,
        "Heartbeat before fencing"
    );
    assert_eq!(
        old.commit(group, &old_id, generation, instance, topic, 5),
        NONE,
        "OffsetCommit before fencing"
    );

    // The second incarnation rejoins with the same instance id and no member id: it
    // replaces the first without a rebalance and gets the same assignment.
    let rejoined = new.join(group, "", instance);
    assert_eq!(
        rejoined.error_code, NONE,
        "JoinGroup of the new incarnation: {rejoined:?}"
    );
    let new_id = rejoined.member_id.to_string();
    assert_ne!(new_id, old_id, "the new incarnation has a new member id");
    let generation = rejoined.generation_id;
    let synced = new.sync(group, &new_id, generation, instance, Vec::new());
    assert_eq!(synced.error_code, NONE, "SyncGroup of the new incarnation");
    assert_eq!(
        synced.assignment.as_ref(),
        b"assignment-1",
        "the static member keeps its assignment"
    );

    // The old incarnation is fenced everywhere.
    assert_eq!(
        old.heartbeat(group, &old_id, generation, instance),
        FENCED_INSTANCE_ID,
        "Heartbeat of the fenced member"
    );
    assert_eq!(
        old.commit(group, &old_id, generation, instance, topic, BOGUS_OFFSET),
        FENCED_INSTANCE_ID,
        "OffsetCommit of the fenced member"
    );
    let rejoin_old = old.join(group, &old_id, instance);
    assert_eq!(
        rejoin_old.error_code, FENCED_INSTANCE_ID,
        "JoinGroup of the fenced member id: {rejoin_old:?}"
    );
    let sync_old = old.sync(group, &old_id, generation, instance, Vec::new());
    assert_eq!(
        sync_old.error_code, FENCED_INSTANCE_ID,
        "SyncGroup of the fenced member id"
    );

    // The new incarnation is untouched by all of that.
    assert_eq!(
        new.heartbeat(group, &new_id, generation, instance),
        NONE,
        "Heartbeat of the new incarnation"
    );
    assert_eq!(
        new.commit(group, &new_id, generation, instance, topic, 7),
        NONE,
        "OffsetCommit of the new incarnation"
    );
    assert_eq!(
        new.fetch(group, topic, 1),
        BTreeMap::from([(0, 7)]),
        "only the new incarnation's commit is stored"
    );
    assert_eq!(
        old.heartbeat(group, &old_id, generation, instance),
        FENCED_INSTANCE_ID,
        "still fenced"
    );
    assert_eq!(
        new.heartbeat(group, &new_id, generation, instance),
        NONE,
        "still a member"
    );
}

//! Request fuzzing: a corpus of valid frames for every (API, version) the handler table
//! serves, the decode body (what the connection does before a handler runs), and a whole
//! broker over a temporary data directory that mutated frames are dispatched to.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use floe_protocol::fuzz::sample_batch;
use floe_protocol::request::{RequestFrame, parse_request};
use floe_protocol::response::encode_response_chunks;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{StrBytes, encode_request_header_into_buffer};
use kafka_protocol::records::Compression;
use uuid::Uuid;

use crate::config::Config;
use crate::handlers::{self, Reply, RequestContext, SUPPORTED_APIS, supported};
use crate::metadata_store::FileMetadataStore;
use crate::state::{Broker, Endpoint};
use crate::topics::{NewTopic, Topics};

/// The topic the corpus's requests name; [`FuzzBroker`] creates it.
pub const TOPIC: &str = "fuzz";
/// The group the corpus's group requests name.
pub const GROUP: &str = "fuzz-group";

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// Requests of `key` to start mutating from: the default (empty) request, and one with a
/// member in each list, so that mutations reach the decoders of the nested structs too.
/// A seed that its version cannot carry fails to encode and is left out by
/// [`request_corpus`].
fn seeds(key: ApiKey, topic_id: Uuid) -> Vec<RequestKind> {
    let topic = || TopicName(s(TOPIC));
    let group = || GroupId(s(GROUP));
    let txn_id = || TransactionalId(s("fuzz-txn"));
    let records = Bytes::from(sample_batch(Compression::None, 2, false));
    let populated: Vec<RequestKind> = match key {
        ApiKey::Produce => {
            let mut p = produce_request::PartitionProduceData::default();
            p.records = Some(records);
            let mut by_name = produce_request::TopicProduceData::default();
            by_name.name = topic();
            by_name.partition_data = vec![p];
            let mut by_id = by_name.clone();
            by_id.name = TopicName(s(""));
            by_id.topic_id = topic_id;
            [by_name, by_id]
                .into_iter()
                .flat_map(|t| {
                    [1i16, -1].map(|acks| {
                        let mut r = ProduceRequest::default();
                        r.acks = acks;
                        r.timeout_ms = 1000;
                        r.topic_data = vec![t.clone()];
                        RequestKind::Produce(r)
                    })
                })
                .collect()
        }
        ApiKey::Fetch => {
            let mut p = fetch_request::FetchPartition::default();
            p.partition_max_bytes = 1 << 20;
            let mut by_name = fetch_request::FetchTopic::default();
            by_name.topic = topic();
            by_name.partitions = vec![p];
            let mut by_id = by_name.clone();
            by_id.topic = TopicName(s(""));
            by_id.topic_id = topic_id;
            [by_name, by_id]
                .into_iter()
                .map(|t| {
                    let mut r = FetchRequest::default();
                    r.max_wait_ms = 0;
                    r.max_bytes = 1 << 20;
                    r.topics = vec![t];
                    RequestKind::Fetch(r)
                })
                .collect()
        }
        ApiKey::ListOffsets => {
            let mut p = list_offsets_request::ListOffsetsPartition::default();
            p.timestamp = 1_700_000_000_001;
            let mut t = list_offsets_request::ListOffsetsTopic::default();
            t.name = topic();
            t.partitions = vec![p];
            let mut r = ListOffsetsRequest::default();
            r.topics = vec![t];
            vec![RequestKind::ListOffsets(r)]
        }
        ApiKey::Metadata => {
            let mut t = metadata_request::MetadataRequestTopic::default();
            t.name = Some(topic());
            let mut r = MetadataRequest::default();
            r.topics = Some(vec![t]);
            vec![RequestKind::Metadata(r)]
        }
        ApiKey::CreateTopics => {
            let mut c = create_topics_request::CreatableTopicConfig::default();
            c.name = s("retention.ms");
            c.value = Some(s("60000"));
            let mut t = create_topics_request::CreatableTopic::default();
            t.name = TopicName(s("fuzz-new"));
            t.num_partitions = 2;
            t.replication_factor = 1;
            t.configs = vec![c];
            let mut r = CreateTopicsRequest::default();
            r.topics = vec![t];
            r.timeout_ms = 1000;
            vec![RequestKind::CreateTopics(r)]
        }
        ApiKey::DeleteTopics => {
            let mut by_names = DeleteTopicsRequest::default();
            by_names.topic_names = vec![TopicName(s("fuzz-new"))];
            let mut st = delete_topics_request::DeleteTopicState::default();
            st.name = Some(TopicName(s("fuzz-new")));
            let mut by_state = DeleteTopicsRequest::default();
            by_state.topics = vec![st];
            vec![
                RequestKind::DeleteTopics(by_names),
                RequestKind::DeleteTopics(by_state),
            ]
        }
        ApiKey::DeleteRecords => {
            let mut partition = delete_records_request::DeleteRecordsPartition::default();
            partition.partition_index = 0;
            partition.offset = 1;
            let mut t = delete_records_request::DeleteRecordsTopic::default();
            t.name = topic();
            t.partitions = vec![partition];
            let mut r = DeleteRecordsRequest::default();
            r.topics = vec![t];
            r.timeout_ms = 1000;
            vec![RequestKind::DeleteRecords(r)]
        }
        ApiKey::InitProducerId => {
            let mut r = InitProducerIdRequest::default();
            r.transaction_timeout_ms = 60_000;
            r.producer_id = ProducerId(-1);
            r.producer_epoch = -1;
            vec![RequestKind::InitProducerId(r)]
        }
        ApiKey::OffsetForLeaderEpoch => {
            let mut p = offset_for_leader_epoch_request::OffsetForLeaderPartition::default();
            p.leader_epoch = 0;
            let mut t = offset_for_leader_epoch_request::OffsetForLeaderTopic::default();
            t.topic = topic();
            t.partitions = vec![p];
            let mut r = OffsetForLeaderEpochRequest::default();
            r.topics = vec![t];
            vec![RequestKind::OffsetForLeaderEpoch(r)]
        }
        ApiKey::DescribeConfigs => {
            let mut res = describe_configs_request::DescribeConfigsResource::default();
            res.resource_type = 2;
            res.resource_name = s(TOPIC);
            res.configuration_keys = Some(vec![s("retention.ms")]);
            let mut r = DescribeConfigsRequest::default();
            r.resources = vec![res];
            vec![RequestKind::DescribeConfigs(r)]
        }
        ApiKey::CreatePartitions => {
            let mut t = create_partitions_request::CreatePartitionsTopic::default();
            t.name = topic();
            t.count = 2;
            let mut r = CreatePartitionsRequest::default();
            r.topics = vec![t];
            r.validate_only = true;
            vec![RequestKind::CreatePartitions(r)]
        }
        ApiKey::AlterConfigs => {
            let mut c = alter_configs_request::AlterableConfig::default();
            c.name = s("retention.ms");
            c.value = Some(s("120000"));
            let mut res = alter_configs_request::AlterConfigsResource::default();
            res.resource_type = 2;
            res.resource_name = s(TOPIC);
            res.configs = vec![c];
            let mut r = AlterConfigsRequest::default();
            r.resources = vec![res];
            vec![RequestKind::AlterConfigs(r)]
        }
        ApiKey::IncrementalAlterConfigs => {
            let mut c = incremental_alter_configs_request::AlterableConfig::default();
            c.name = s("retention.ms");
            c.value = Some(s("120000"));
            let mut res = incremental_alter_configs_request::AlterConfigsResource::default();
            res.resource_type = 2;
            res.resource_name = s(TOPIC);
            res.configs = vec![c];
            let mut r = IncrementalAlterConfigsRequest::default();
            r.resources = vec![res];
            vec![RequestKind::IncrementalAlterConfigs(r)]
        }
        ApiKey::FindCoordinator => {
            let mut one = FindCoordinatorRequest::default();
            one.key = s(GROUP);
            let mut many = FindCoordinatorRequest::default();
            many.coordinator_keys = vec![s(GROUP)];
            vec![
                RequestKind::FindCoordinator(one),
                RequestKind::FindCoordinator(many),
            ]
        }
        ApiKey::JoinGroup => {
            let mut p = join_group_request::JoinGroupRequestProtocol::default();
            p.name = s("range");
            p.metadata = Bytes::from_static(&[0, 1, 0, 0, 0, 1, 0, 4, b'f', b'u', b'z', b'z']);
            let mut r = JoinGroupRequest::default();
            r.group_id = group();
            r.session_timeout_ms = 10_000;
            r.rebalance_timeout_ms = 10_000;
            r.protocol_type = s("consumer");
            r.protocols = vec![p];
            let mut static_member = r.clone();
            static_member.group_instance_id = Some(s("instance-1"));
            vec![
                RequestKind::JoinGroup(r),
                RequestKind::JoinGroup(static_member),
            ]
        }
        ApiKey::SyncGroup => {
            let mut a = sync_group_request::SyncGroupRequestAssignment::default();
            a.member_id = s("member-1");
            a.assignment = Bytes::from_static(b"\0\x01assignment");
            let mut r = SyncGroupRequest::default();
            r.group_id = group();
            r.generation_id = 1;
            r.member_id = s("member-1");
            r.assignments = vec![a];
            vec![RequestKind::SyncGroup(r)]
        }
        ApiKey::Heartbeat => {
            let mut r = HeartbeatRequest::default();
            r.group_id = group();
            r.generation_id = 1;
            r.member_id = s("member-1");
            vec![RequestKind::Heartbeat(r)]
        }
        ApiKey::LeaveGroup => {
            let mut one = LeaveGroupRequest::default();
            one.group_id = group();
            one.member_id = s("member-1");
            let mut m = leave_group_request::MemberIdentity::default();
            m.member_id = s("member-1");
            m.group_instance_id = Some(s("instance-1"));
            let mut many = LeaveGroupRequest::default();
            many.group_id = group();
            many.members = vec![m];
            vec![RequestKind::LeaveGroup(one), RequestKind::LeaveGroup(many)]
        }
        ApiKey::OffsetCommit => {
            let mut p = offset_commit_request::OffsetCommitRequestPartition::default();
            p.committed_offset = 1;
            p.committed_metadata = Some(s("m"));
            let mut t = offset_commit_request::OffsetCommitRequestTopic::default();
            t.name = topic();
            t.partitions = vec![p];
            let mut r = OffsetCommitRequest::default();
            r.group_id = group();
            r.generation_id_or_member_epoch = -1;
            r.topics = vec![t];
            vec![RequestKind::OffsetCommit(r)]
        }
        ApiKey::OffsetFetch => {
            let mut t = offset_fetch_request::OffsetFetchRequestTopic::default();
            t.name = topic();
            t.partition_indexes = vec![0];
            let mut one = OffsetFetchRequest::default();
            one.group_id = group();
            one.topics = Some(vec![t]);
            let mut ts = offset_fetch_request::OffsetFetchRequestTopics::default();
            ts.name = topic();
            ts.partition_indexes = vec![0];
            let mut g = offset_fetch_request::OffsetFetchRequestGroup::default();
            g.group_id = group();
            g.topics = Some(vec![ts]);
            let mut many = OffsetFetchRequest::default();
            many.groups = vec![g];
            vec![
                RequestKind::OffsetFetch(one),
                RequestKind::OffsetFetch(many),
            ]
        }
        ApiKey::OffsetDelete => {
            let mut p = offset_delete_request::OffsetDeleteRequestPartition::default();
            p.partition_index = 0;
            let mut t = offset_delete_request::OffsetDeleteRequestTopic::default();
            t.name = topic();
            t.partitions = vec![p];
            let mut r = OffsetDeleteRequest::default();
            r.group_id = group();
            r.topics = vec![t];
            vec![RequestKind::OffsetDelete(r)]
        }
        ApiKey::DescribeGroups => {
            let mut r = DescribeGroupsRequest::default();
            r.groups = vec![group()];
            vec![RequestKind::DescribeGroups(r)]
        }
        ApiKey::ListGroups => {
            let mut r = ListGroupsRequest::default();
            r.states_filter = vec![s("Stable")];
            vec![RequestKind::ListGroups(r)]
        }
        ApiKey::DeleteGroups => {
            let mut r = DeleteGroupsRequest::default();
            r.groups_names = vec![group()];
            vec![RequestKind::DeleteGroups(r)]
        }
        ApiKey::ConsumerGroupHeartbeat => {
            let mut r = ConsumerGroupHeartbeatRequest::default();
            r.group_id = GroupId(s("fuzz-consumer-group"));
            r.member_id = s(&Uuid::from_u128(7).to_string());
            r.member_epoch = 0;
            r.rebalance_timeout_ms = 10_000;
            r.subscribed_topic_names = Some(vec![topic()]);
            r.topic_partitions = Some(vec![]);
            vec![RequestKind::ConsumerGroupHeartbeat(r)]
        }
        ApiKey::ConsumerGroupDescribe => {
            let mut r = ConsumerGroupDescribeRequest::default();
            r.group_ids = vec![GroupId(s("fuzz-consumer-group"))];
            vec![RequestKind::ConsumerGroupDescribe(r)]
        }
        ApiKey::AddPartitionsToTxn => {
            let t = add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                .with_name(topic())
                .with_partitions(vec![0, 1]);
            let v3 = AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(txn_id())
                .with_v3_and_below_producer_id(ProducerId(1000))
                .with_v3_and_below_producer_epoch(0)
                .with_v3_and_below_topics(vec![t.clone()]);
            let v4 = AddPartitionsToTxnRequest::default().with_transactions(vec![
                add_partitions_to_txn_request::AddPartitionsToTxnTransaction::default()
                    .with_transactional_id(txn_id())
                    .with_producer_id(ProducerId(1000))
                    .with_verify_only(true)
                    .with_topics(vec![t]),
            ]);
            vec![
                RequestKind::AddPartitionsToTxn(v3),
                RequestKind::AddPartitionsToTxn(v4),
            ]
        }
        ApiKey::AddOffsetsToTxn => vec![RequestKind::AddOffsetsToTxn(
            AddOffsetsToTxnRequest::default()
                .with_transactional_id(txn_id())
                .with_producer_id(ProducerId(1000))
                .with_group_id(group()),
        )],
        ApiKey::EndTxn => vec![RequestKind::EndTxn(
            EndTxnRequest::default()
                .with_transactional_id(txn_id())
                .with_producer_id(ProducerId(1000))
                .with_committed(true),
        )],
        ApiKey::TxnOffsetCommit => {
            let p = txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(5);
            let t = txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                .with_name(topic())
                .with_partitions(vec![p]);
            vec![RequestKind::TxnOffsetCommit(
                TxnOffsetCommitRequest::default()
                    .with_transactional_id(txn_id())
                    .with_group_id(group())
                    .with_producer_id(ProducerId(1000))
                    .with_topics(vec![t]),
            )]
        }
        ApiKey::DescribeProducers => vec![RequestKind::DescribeProducers(
            DescribeProducersRequest::default().with_topics(vec![
                describe_producers_request::TopicRequest::default()
                    .with_name(topic())
                    .with_partition_indexes(vec![0]),
            ]),
        )],
        ApiKey::DescribeTransactions => vec![RequestKind::DescribeTransactions(
            DescribeTransactionsRequest::default().with_transactional_ids(vec![txn_id()]),
        )],
        ApiKey::ListTransactions => vec![RequestKind::ListTransactions(
            ListTransactionsRequest::default()
                .with_state_filters(vec![s("Ongoing")])
                .with_producer_id_filters(vec![ProducerId(1000)]),
        )],
        ApiKey::ElectLeaders => vec![RequestKind::ElectLeaders(
            ElectLeadersRequest::default().with_topic_partitions(Some(vec![
                elect_leaders_request::TopicPartitions::default()
                    .with_topic(topic())
                    .with_partitions(vec![0, 7]),
            ])),
        )],
        ApiKey::ListPartitionReassignments => vec![RequestKind::ListPartitionReassignments(
            ListPartitionReassignmentsRequest::default().with_topics(Some(vec![
                list_partition_reassignments_request::ListPartitionReassignmentsTopics::default()
                    .with_name(topic())
                    .with_partition_indexes(vec![0]),
            ])),
        )],
        ApiKey::DescribeTopicPartitions => vec![RequestKind::DescribeTopicPartitions(
            DescribeTopicPartitionsRequest::default()
                .with_topics(vec![
                    describe_topic_partitions_request::TopicRequest::default().with_name(topic()),
                ])
                .with_response_partition_limit(1)
                .with_cursor(Some(
                    describe_topic_partitions_request::Cursor::default()
                        .with_topic_name(topic())
                        .with_partition_index(0),
                )),
        )],
        ApiKey::DescribeAcls => vec![RequestKind::DescribeAcls(
            DescribeAclsRequest::default()
                .with_resource_type_filter(2)
                .with_resource_name_filter(Some(s(TOPIC)))
                .with_pattern_type_filter(2)
                .with_principal_filter(Some(s("User:fuzz")))
                .with_operation(1)
                .with_permission_type(1),
        )],
        ApiKey::CreateAcls => vec![RequestKind::CreateAcls(
            CreateAclsRequest::default().with_creations(vec![
                create_acls_request::AclCreation::default()
                    .with_resource_type(2)
                    .with_resource_name(s(TOPIC))
                    .with_resource_pattern_type(3)
                    .with_principal(s("User:fuzz"))
                    .with_host(s("*"))
                    .with_operation(3)
                    .with_permission_type(3),
            ]),
        )],
        ApiKey::DeleteAcls => vec![RequestKind::DeleteAcls(
            DeleteAclsRequest::default().with_filters(vec![
                delete_acls_request::DeleteAclsFilter::default()
                    .with_resource_type_filter(1)
                    .with_pattern_type_filter(1)
                    .with_principal_filter(Some(s("User:fuzz")))
                    .with_operation(1)
                    .with_permission_type(1),
            ]),
        )],
        _ => Vec::new(),
    };
    default_request(key).into_iter().chain(populated).collect()
}

/// The default request of `key`, for the APIs the broker serves.
fn default_request(key: ApiKey) -> Option<RequestKind> {
    Some(match key {
        ApiKey::Produce => RequestKind::Produce(Default::default()),
        ApiKey::Fetch => RequestKind::Fetch(Default::default()),
        ApiKey::ListOffsets => RequestKind::ListOffsets(Default::default()),
        ApiKey::Metadata => RequestKind::Metadata(Default::default()),
        ApiKey::ApiVersions => RequestKind::ApiVersions(Default::default()),
        ApiKey::CreateTopics => RequestKind::CreateTopics(Default::default()),
        ApiKey::DeleteTopics => RequestKind::DeleteTopics(Default::default()),
        ApiKey::DeleteRecords => RequestKind::DeleteRecords(Default::default()),
        ApiKey::InitProducerId => RequestKind::InitProducerId(Default::default()),
        ApiKey::OffsetForLeaderEpoch => RequestKind::OffsetForLeaderEpoch(Default::default()),
        ApiKey::DescribeConfigs => RequestKind::DescribeConfigs(Default::default()),
        ApiKey::CreatePartitions => RequestKind::CreatePartitions(Default::default()),
        ApiKey::AlterConfigs => RequestKind::AlterConfigs(Default::default()),
        ApiKey::IncrementalAlterConfigs => RequestKind::IncrementalAlterConfigs(Default::default()),
        ApiKey::DescribeCluster => RequestKind::DescribeCluster(Default::default()),
        ApiKey::DescribeLogDirs => {
            RequestKind::DescribeLogDirs(DescribeLogDirsRequest::default().with_topics(Some(vec![
                describe_log_dirs_request::DescribableLogDirTopic::default()
                    .with_topic(TopicName(StrBytes::from_static_str("fuzz")))
                    .with_partitions(vec![0]),
            ])))
        }
        ApiKey::FindCoordinator => RequestKind::FindCoordinator(Default::default()),
        ApiKey::JoinGroup => RequestKind::JoinGroup(Default::default()),
        ApiKey::SyncGroup => RequestKind::SyncGroup(Default::default()),
        ApiKey::Heartbeat => RequestKind::Heartbeat(Default::default()),
        ApiKey::LeaveGroup => RequestKind::LeaveGroup(Default::default()),
        ApiKey::OffsetCommit => RequestKind::OffsetCommit(Default::default()),
        ApiKey::OffsetFetch => RequestKind::OffsetFetch(Default::default()),
        ApiKey::OffsetDelete => RequestKind::OffsetDelete(Default::default()),
        ApiKey::DescribeGroups => RequestKind::DescribeGroups(Default::default()),
        ApiKey::ListGroups => RequestKind::ListGroups(Default::default()),
        ApiKey::DeleteGroups => RequestKind::DeleteGroups(Default::default()),
        ApiKey::ConsumerGroupHeartbeat => RequestKind::ConsumerGroupHeartbeat(Default::default()),
        ApiKey::ConsumerGroupDescribe => RequestKind::ConsumerGroupDescribe(Default::default()),
        ApiKey::AddPartitionsToTxn => RequestKind::AddPartitionsToTxn(Default::default()),
        ApiKey::AddOffsetsToTxn => RequestKind::AddOffsetsToTxn(Default::default()),
        ApiKey::EndTxn => RequestKind::EndTxn(Default::default()),
        ApiKey::TxnOffsetCommit => RequestKind::TxnOffsetCommit(Default::default()),
        ApiKey::DescribeProducers => RequestKind::DescribeProducers(Default::default()),
        ApiKey::DescribeTransactions => RequestKind::DescribeTransactions(Default::default()),
        ApiKey::ListTransactions => RequestKind::ListTransactions(Default::default()),
        ApiKey::ElectLeaders => RequestKind::ElectLeaders(Default::default()),
        ApiKey::ListPartitionReassignments => {
            RequestKind::ListPartitionReassignments(Default::default())
        }
        ApiKey::DescribeTopicPartitions => RequestKind::DescribeTopicPartitions(Default::default()),
        ApiKey::SaslHandshake => RequestKind::SaslHandshake(Default::default()),
        ApiKey::SaslAuthenticate => RequestKind::SaslAuthenticate(Default::default()),
        ApiKey::DescribeUserScramCredentials => {
            RequestKind::DescribeUserScramCredentials(Default::default())
        }
        ApiKey::AlterUserScramCredentials => {
            RequestKind::AlterUserScramCredentials(Default::default())
        }
        ApiKey::DescribeClientQuotas => RequestKind::DescribeClientQuotas(Default::default()),
        ApiKey::AlterClientQuotas => RequestKind::AlterClientQuotas(Default::default()),
        ApiKey::DescribeAcls => RequestKind::DescribeAcls(Default::default()),
        ApiKey::CreateAcls => RequestKind::CreateAcls(Default::default()),
        ApiKey::DeleteAcls => RequestKind::DeleteAcls(Default::default()),
        _ => return None,
    })
}

/// Encodes one request frame (without the length prefix).
pub fn encode_request(key: ApiKey, version: i16, body: &RequestKind) -> Option<Vec<u8>> {
    let mut buf = BytesMut::new();
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(s("fuzz")));
    encode_request_header_into_buffer(&mut buf, &header).ok()?;
    body.encode(&mut buf, version).ok()?;
    Some(buf.to_vec())
}

/// Valid frames for every (API, version) in the handler table: each API's seeds at every
/// version that can carry them. `topic_id` goes where a version names topics by id.
pub fn request_corpus(topic_id: Uuid) -> Vec<Vec<u8>> {
    let mut corpus = Vec::new();
    for api in SUPPORTED_APIS {
        let seeds = seeds(api.key, topic_id);
        for version in api.min..=api.max {
            corpus.extend(
                seeds
                    .iter()
                    .filter_map(|body| encode_request(api.key, version, body)),
            );
        }
    }
    corpus
}

/// A mutation of a request frame: the generic edits of [`floe_protocol::fuzz::mutate`],
/// and sometimes the API version moved to another served version of the same API, so a
/// body is decoded at a version it was not encoded for.
pub fn mutate_request(rng: &mut floe_protocol::fuzz::Rng, input: &[u8], donor: &[u8]) -> Vec<u8> {
    // Two edits at most: a body decoder stops at the first bad field, so a third rarely
    // adds anything but an earlier rejection.
    let mut out = floe_protocol::fuzz::mutate_up_to(rng, input, donor, 2);
    if out.len() >= 4 && rng.chance(1, 8) {
        let key = i16::from_be_bytes([out[0], out[1]]);
        if let Some(api) = ApiKey::try_from(key).ok().and_then(supported) {
            let span = (api.max - api.min + 1) as usize;
            let version = api.min + rng.below(span) as i16;
            out[2..4].copy_from_slice(&version.to_be_bytes());
        }
    }
    out
}

/// Whether the broker decodes the body of `frame`: only served (API, version) pairs reach a
/// decoder; anything else closes the connection.
fn served(frame: &RequestFrame) -> bool {
    supported(frame.api_key).is_some_and(|a| (a.min..=a.max).contains(&frame.api_version()))
}

/// Body of the `request_decode` target: header parsing and, for a served (API, version),
/// body decoding, exactly as a connection does before the handler runs. Must not panic or
/// allocate by a length read off the wire, whatever the bytes.
pub fn request_decode(data: &[u8]) {
    floe_protocol::fuzz::request_frame(data);
    if let Ok(frame) = parse_request(Bytes::copy_from_slice(data))
        && served(&frame)
    {
        let _ = frame.decode_body();
    }
}

/// A broker over a data directory, for dispatching fuzzed requests to the real handlers.
pub struct FuzzBroker {
    /// The broker state handlers see.
    pub broker: Arc<Broker>,
    /// Id of [`TOPIC`].
    pub topic_id: Uuid,
}

impl FuzzBroker {
    /// Opens a broker on `data_dir` with [`TOPIC`] (one partition) created. Waits are cut
    /// short (no initial rebalance delay, fetch waits capped at 10 ms) so that cases stay
    /// fast. Must be called inside a tokio runtime.
    pub fn open(data_dir: &Path) -> anyhow::Result<FuzzBroker> {
        let config = Arc::new(Config {
            data_dir: data_dir.to_path_buf(),
            group_initial_rebalance_delay_ms: 0,
            fetch_max_wait_cap_ms: 10,
            ..Config::default()
        });
        let logs = Arc::new(floe_storage::LogManager::open(data_dir)?);
        let store = Box::new(FileMetadataStore::new(data_dir));
        let topics = Topics::open(config.clone(), store, logs)?;
        let created = topics.create(NewTopic {
            name: TOPIC.to_string(),
            partitions: Some(1),
            replication_factor: None,
            configs: BTreeMap::new(),
        })?;
        let endpoint = Endpoint {
            node_id: config.node_id,
            host: "127.0.0.1".to_string(),
            port: 9092,
        };
        Ok(FuzzBroker {
            broker: Arc::new(Broker::new(
                config.clone(),
                endpoint,
                topics,
                crate::security::Security::new(&config, &Default::default())
                    .map_err(anyhow::Error::msg)?,
            )),
            topic_id: created.record.topic_id,
        })
    }

    /// Body of the dispatch fuzz: parses `data` as a connection does, routes it through
    /// [`handlers::dispatch`] to the real handler, waits briefly for a deferred reply, and
    /// encodes the response at the request's version. Nothing may panic, and a response
    /// the broker produced must encode (a failure would close the client's connection).
    ///
    /// Requests that would create more than a handful of partitions are not dispatched:
    /// creating thousands of partition directories is slow, not wrong.
    pub async fn dispatch(&self, data: &[u8]) -> Dispatched {
        let Ok(frame) = parse_request(Bytes::copy_from_slice(data)) else {
            return Dispatched::Closed;
        };
        if !served(&frame) {
            return Dispatched::Closed;
        }
        if too_costly(&frame) {
            return Dispatched::Skipped;
        }
        let ctx = RequestContext {
            broker: self.broker.clone(),
            peer: SocketAddr::from(([127, 0, 0, 1], 40_000)),
            header: frame.header.clone(),
            session: Arc::new(crate::security::Session::anonymous(
                std::net::Ipv4Addr::LOCALHOST.into(),
            )),
        };
        let out = match handlers::dispatch(&ctx, &frame).await {
            Ok(Some(out)) => out,
            Ok(None) => return Dispatched::NoResponse,
            Err(_) => return Dispatched::Closed,
        };
        let body = match out.reply {
            Reply::Now(body) => *body,
            Reply::Later(fut) => match tokio::time::timeout(Duration::from_millis(50), fut).await {
                Ok(body) => body,
                Err(_) => return Dispatched::StillWaiting,
            },
            // Only the connection's SASL v0 exchange makes these, never a handler.
            Reply::Raw(_) => return Dispatched::NoResponse,
            Reply::Fetch(fut) => match tokio::time::timeout(Duration::from_millis(50), fut).await {
                Ok(reply) => match reply.materialize() {
                    Ok(fetch) => kafka_protocol::messages::ResponseKind::Fetch(fetch),
                    Err(e) => panic!("fetched file ranges cannot be read: {e}"),
                },
                Err(_) => return Dispatched::StillWaiting,
            },
        };
        if let Err(e) =
            encode_response_chunks(out.api_key, out.api_version, out.correlation_id, &body)
        {
            panic!("the response to a served request does not encode: {e}");
        }
        Dispatched::Answered
    }
}

/// What became of a dispatched frame (so tests can tell that cases reach the handlers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dispatched {
    /// Unparseable, not served, or refused by its handler: the connection closes.
    Closed,
    /// Not dispatched (see [`FuzzBroker::dispatch`]).
    Skipped,
    /// Handled without a response (acks=0).
    NoResponse,
    /// Answered, and the answer encodes.
    Answered,
    /// The answer waits longer than the fuzz run does (a JoinGroup in a rebalance).
    StillWaiting,
}

/// Requests whose cost grows with a number in them: partitions to create.
fn too_costly(frame: &RequestFrame) -> bool {
    const MAX_PARTITIONS: i64 = 8;
    match frame.decode_body() {
        Ok(RequestKind::CreateTopics(r)) => {
            r.topics.len() > 2
                || r.topics.iter().any(|t| {
                    i64::from(t.num_partitions) > MAX_PARTITIONS
                        || t.assignments.len() as i64 > MAX_PARTITIONS
                })
        }
        Ok(RequestKind::CreatePartitions(r)) => {
            r.topics.len() > 2 || r.topics.iter().any(|t| i64::from(t.count) > MAX_PARTITIONS)
        }
        _ => false,
    }
}

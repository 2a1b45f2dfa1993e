//! The requests the ACL matrix sends, one builder per API.

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

pub(super) fn records() -> Bytes {
    Bytes::from(floe_protocol::fuzz::sample_batch(
        Compression::None,
        2,
        false,
    ))
}

pub(super) fn produce(topic: &str) -> RequestKind {
    let mut p = produce_request::PartitionProduceData::default();
    p.records = Some(records());
    let mut t = produce_request::TopicProduceData::default();
    t.name = TopicName(s(topic));
    t.partition_data = vec![p];
    RequestKind::Produce(
        ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(1000)
            .with_topic_data(vec![t]),
    )
}

pub(super) fn fetch(topic: &str, id: uuid::Uuid) -> RequestKind {
    let p = fetch_request::FetchPartition::default().with_partition_max_bytes(1 << 20);
    let t = fetch_request::FetchTopic::default()
        .with_topic(TopicName(s(topic)))
        .with_topic_id(id)
        .with_partitions(vec![p]);
    RequestKind::Fetch(
        FetchRequest::default()
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_topics(vec![t]),
    )
}

pub(super) fn list_offsets(topic: &str) -> RequestKind {
    let p = list_offsets_request::ListOffsetsPartition::default().with_timestamp(-1);
    let t = list_offsets_request::ListOffsetsTopic::default()
        .with_name(TopicName(s(topic)))
        .with_partitions(vec![p]);
    RequestKind::ListOffsets(ListOffsetsRequest::default().with_topics(vec![t]))
}

pub(super) fn leader_epoch(topic: &str) -> RequestKind {
    let p = offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
        .with_current_leader_epoch(-1);
    let t = offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
        .with_topic(TopicName(s(topic)))
        .with_partitions(vec![p]);
    RequestKind::OffsetForLeaderEpoch(OffsetForLeaderEpochRequest::default().with_topics(vec![t]))
}

pub(super) fn metadata(topics: Option<&[&str]>) -> RequestKind {
    RequestKind::Metadata(
        MetadataRequest::default()
            .with_allow_auto_topic_creation(true)
            .with_include_topic_authorized_operations(true)
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|t| {
                        metadata_request::MetadataRequestTopic::default()
                            .with_name(Some(TopicName(s(t))))
                    })
                    .collect()
            })),
    )
}

pub(super) fn create_topics(name: &str) -> RequestKind {
    let t = create_topics_request::CreatableTopic::default()
        .with_name(TopicName(s(name)))
        .with_num_partitions(1)
        .with_replication_factor(1);
    RequestKind::CreateTopics(
        CreateTopicsRequest::default()
            .with_topics(vec![t])
            .with_timeout_ms(1000),
    )
}

pub(super) fn delete_topics(name: &str) -> RequestKind {
    RequestKind::DeleteTopics(DeleteTopicsRequest::default().with_topics(vec![
        delete_topics_request::DeleteTopicState::default().with_name(Some(TopicName(s(name)))),
    ]))
}

pub(super) fn create_partitions(name: &str) -> RequestKind {
    let t = create_partitions_request::CreatePartitionsTopic::default()
        .with_name(TopicName(s(name)))
        .with_count(2);
    RequestKind::CreatePartitions(
        CreatePartitionsRequest::default()
            .with_topics(vec![t])
            .with_timeout_ms(1000),
    )
}

pub(super) fn delete_records(name: &str) -> RequestKind {
    let p = delete_records_request::DeleteRecordsPartition::default().with_offset(0);
    let t = delete_records_request::DeleteRecordsTopic::default()
        .with_name(TopicName(s(name)))
        .with_partitions(vec![p]);
    RequestKind::DeleteRecords(
        DeleteRecordsRequest::default()
            .with_topics(vec![t])
            .with_timeout_ms(1000),
    )
}

pub(super) fn describe_configs(resource_type: i8, name: &str) -> RequestKind {
    let r = describe_configs_request::DescribeConfigsResource::default()
        .with_resource_type(resource_type)
        .with_resource_name(s(name));
    RequestKind::DescribeConfigs(DescribeConfigsRequest::default().with_resources(vec![r]))
}

pub(super) fn incremental_alter_configs(name: &str) -> RequestKind {
    let c = incremental_alter_configs_request::AlterableConfig::default()
        .with_name(s("retention.ms"))
        .with_config_operation(0)
        .with_value(Some(s("60000")));
    let r = incremental_alter_configs_request::AlterConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(s(name))
        .with_configs(vec![c]);
    RequestKind::IncrementalAlterConfigs(
        IncrementalAlterConfigsRequest::default().with_resources(vec![r]),
    )
}

pub(super) fn alter_configs(name: &str) -> RequestKind {
    let r = alter_configs_request::AlterConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(s(name));
    RequestKind::AlterConfigs(AlterConfigsRequest::default().with_resources(vec![r]))
}

pub(super) fn find_coordinator(key_type: i8, key: &str) -> RequestKind {
    RequestKind::FindCoordinator(
        FindCoordinatorRequest::default()
            .with_key_type(key_type)
            .with_coordinator_keys(vec![s(key)]),
    )
}

pub(super) fn join_group(group: &str) -> RequestKind {
    RequestKind::JoinGroup(
        JoinGroupRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(10_000)
            .with_protocol_type(s("consumer")),
    )
}

pub(super) fn heartbeat(group: &str) -> RequestKind {
    RequestKind::Heartbeat(
        HeartbeatRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_member_id(s("m")),
    )
}

pub(super) fn sync_group(group: &str) -> RequestKind {
    RequestKind::SyncGroup(
        SyncGroupRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_member_id(s("m")),
    )
}

pub(super) fn leave_group(group: &str) -> RequestKind {
    RequestKind::LeaveGroup(
        LeaveGroupRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_members(vec![
                leave_group_request::MemberIdentity::default().with_member_id(s("m")),
            ]),
    )
}

pub(super) fn offset_commit(group: &str, topic: &str) -> RequestKind {
    let p = offset_commit_request::OffsetCommitRequestPartition::default()
        .with_partition_index(0)
        .with_committed_offset(1);
    let t = offset_commit_request::OffsetCommitRequestTopic::default()
        .with_name(TopicName(s(topic)))
        .with_partitions(vec![p]);
    RequestKind::OffsetCommit(
        OffsetCommitRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![t]),
    )
}

pub(super) fn offset_fetch(group: &str, topic: Option<&str>) -> RequestKind {
    let g = offset_fetch_request::OffsetFetchRequestGroup::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(topic.map(|t| {
            vec![
                offset_fetch_request::OffsetFetchRequestTopics::default()
                    .with_name(TopicName(s(t)))
                    .with_partition_indexes(vec![0]),
            ]
        }));
    RequestKind::OffsetFetch(OffsetFetchRequest::default().with_groups(vec![g]))
}

pub(super) fn offset_delete(group: &str, topic: &str) -> RequestKind {
    let t = offset_delete_request::OffsetDeleteRequestTopic::default()
        .with_name(TopicName(s(topic)))
        .with_partitions(vec![
            offset_delete_request::OffsetDeleteRequestPartition::default().with_partition_index(0),
        ]);
    RequestKind::OffsetDelete(
        OffsetDeleteRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_topics(vec![t]),
    )
}

pub(super) fn describe_groups(group: &str) -> RequestKind {
    RequestKind::DescribeGroups(
        DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(s(group))])
            .with_include_authorized_operations(true),
    )
}

pub(super) fn delete_groups(group: &str) -> RequestKind {
    RequestKind::DeleteGroups(
        DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(group))]),
    )
}

pub(super) fn consumer_heartbeat(group: &str, topic: &str) -> RequestKind {
    RequestKind::ConsumerGroupHeartbeat(
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_member_id(s("m0000000000000000000000"))
            .with_member_epoch(0)
            .with_rebalance_timeout_ms(10_000)
            .with_subscribed_topic_names(Some(vec![TopicName(s(topic))]))
            .with_topic_partitions(Some(vec![])),
    )
}

pub(super) fn consumer_describe(group: &str) -> RequestKind {
    RequestKind::ConsumerGroupDescribe(
        ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(s(group))]),
    )
}

pub(super) fn init_producer_id(txn: Option<&str>) -> RequestKind {
    RequestKind::InitProducerId(
        InitProducerIdRequest::default()
            .with_transactional_id(txn.map(|t| TransactionalId(s(t))))
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    )
}

pub(super) fn add_partitions(txn: &str, topic: &str) -> RequestKind {
    let t = add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
        .with_name(TopicName(s(topic)))
        .with_partitions(vec![0]);
    RequestKind::AddPartitionsToTxn(
        AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(s(txn)))
            .with_v3_and_below_producer_id(ProducerId(1))
            .with_v3_and_below_producer_epoch(0)
            .with_v3_and_below_topics(vec![t]),
    )
}

pub(super) fn add_offsets(txn: &str, group: &str) -> RequestKind {
    RequestKind::AddOffsetsToTxn(
        AddOffsetsToTxnRequest::default()
            .with_transactional_id(TransactionalId(s(txn)))
            .with_producer_id(ProducerId(1))
            .with_group_id(GroupId(s(group))),
    )
}

pub(super) fn end_txn(txn: &str) -> RequestKind {
    RequestKind::EndTxn(
        EndTxnRequest::default()
            .with_transactional_id(TransactionalId(s(txn)))
            .with_producer_id(ProducerId(1)),
    )
}

pub(super) fn txn_offset_commit(txn: &str, group: &str, topic: &str) -> RequestKind {
    let p = txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
        .with_partition_index(0)
        .with_committed_offset(1);
    let t = txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
        .with_name(TopicName(s(topic)))
        .with_partitions(vec![p]);
    RequestKind::TxnOffsetCommit(
        TxnOffsetCommitRequest::default()
            .with_transactional_id(TransactionalId(s(txn)))
            .with_group_id(GroupId(s(group)))
            .with_producer_id(ProducerId(1))
            .with_generation_id(-1)
            .with_topics(vec![t]),
    )
}

pub(super) fn describe_transactions(txn: &str) -> RequestKind {
    RequestKind::DescribeTransactions(
        DescribeTransactionsRequest::default()
            .with_transactional_ids(vec![TransactionalId(s(txn))]),
    )
}

pub(super) fn describe_producers(topic: &str) -> RequestKind {
    RequestKind::DescribeProducers(DescribeProducersRequest::default().with_topics(vec![
        describe_producers_request::TopicRequest::default()
            .with_name(TopicName(s(topic)))
            .with_partition_indexes(vec![0]),
    ]))
}

pub(super) fn describe_topic_partitions(topics: &[&str]) -> RequestKind {
    RequestKind::DescribeTopicPartitions(
        DescribeTopicPartitionsRequest::default()
            .with_topics(
                topics
                    .iter()
                    .map(|t| {
                        describe_topic_partitions_request::TopicRequest::default()
                            .with_name(TopicName(s(t)))
                    })
                    .collect(),
            )
            .with_response_partition_limit(100),
    )
}

pub(super) fn elect_leaders(topic: &str) -> RequestKind {
    RequestKind::ElectLeaders(
        ElectLeadersRequest::default().with_topic_partitions(Some(vec![
            elect_leaders_request::TopicPartitions::default()
                .with_topic(TopicName(s(topic)))
                .with_partitions(vec![0]),
        ])),
    )
}

/// An ACL written as in [`ACLS`] as a creation.
pub(super) fn creation(acl: &str) -> create_acls_request::AclCreation {
    let b = crate::security::acl::AclBinding::from_record(&acl_record(acl)).unwrap();
    create_acls_request::AclCreation::default()
        .with_resource_type(b.resource_type.code())
        .with_resource_name(s(&b.resource_name))
        .with_resource_pattern_type(b.pattern_type.code())
        .with_principal(s(&b.principal))
        .with_host(s(&b.host))
        .with_operation(b.operation.code())
        .with_permission_type(b.permission.code())
}

pub(super) fn acl_record(s: &str) -> crate::metadata_store::AclRecord {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let mut r = parts[4].splitn(3, ':');
    crate::metadata_store::AclRecord {
        resource_type: r.next().unwrap().into(),
        pattern_type: r.next().unwrap().into(),
        resource_name: r.next().unwrap().into(),
        principal: parts[1].into(),
        host: parts[2].into(),
        operation: parts[3].into(),
        permission_type: parts[0].into(),
    }
}

pub(super) fn create_acls(acls: &[&str]) -> RequestKind {
    RequestKind::CreateAcls(
        CreateAclsRequest::default().with_creations(acls.iter().map(|a| creation(a)).collect()),
    )
}

/// DescribeAcls or DeleteAcls filter fields: every binding of `principal`.
pub(super) fn describe_acls(principal: Option<&str>) -> RequestKind {
    RequestKind::DescribeAcls(
        DescribeAclsRequest::default()
            .with_resource_type_filter(1)
            .with_resource_name_filter(None)
            .with_pattern_type_filter(1)
            .with_principal_filter(principal.map(s))
            .with_host_filter(None)
            .with_operation(1)
            .with_permission_type(1),
    )
}

pub(super) fn delete_acls(acl: &str) -> RequestKind {
    let c = creation(acl);
    RequestKind::DeleteAcls(DeleteAclsRequest::default().with_filters(vec![
        delete_acls_request::DeleteAclsFilter::default()
            .with_resource_type_filter(c.resource_type)
            .with_resource_name_filter(Some(c.resource_name))
            .with_pattern_type_filter(c.resource_pattern_type)
            .with_principal_filter(Some(c.principal))
            .with_host_filter(Some(c.host))
            .with_operation(c.operation)
            .with_permission_type(c.permission_type),
    ]))
}

//! DescribeTopicPartitions (KIP-966): topics and their partitions in pages of at most
//! `response_partition_limit` partitions (capped at 2,000, Kafka's
//! `max.request.partition.size.limit`), resumed from a cursor. Topics are listed by name;
//! an empty request lists every topic. The partition entries are Metadata's (a single
//! node leads every partition with itself as the only replica).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, ResponseKind,
    TopicName,
};

use super::{Handled, RequestContext, str_bytes};
use crate::security::acl::{Operation, ResourceType};
use crate::topics::is_internal;

/// Kafka's `max.request.partition.size.limit`.
const MAX_PARTITIONS: i32 = 2000;

/// Handles DescribeTopicPartitions.
pub async fn handle(ctx: &RequestContext, req: DescribeTopicPartitionsRequest) -> Handled {
    ResponseKind::DescribeTopicPartitions(describe(ctx, req)).into()
}

fn describe(
    ctx: &RequestContext,
    req: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let topics = &ctx.broker.topics;
    let node = BrokerId(ctx.broker.endpoint.node_id);
    let mut names: Vec<String> = if req.topics.is_empty() {
        topics.list().into_iter().map(|t| t.name).collect()
    } else {
        req.topics.iter().map(|t| t.name.0.to_string()).collect()
    };
    names.sort();
    names.dedup();
    let (mut from_topic, mut from_partition) = match &req.cursor {
        Some(c) => (Some(c.topic_name.0.to_string()), c.partition_index.max(0)),
        None => (None, 0),
    };
    if let Some(cursor) = &from_topic
        && !names.contains(cursor)
    {
        // Kafka refuses a cursor outside the topics asked for.
        return DescribeTopicPartitionsResponse::default().with_topics(vec![
            DescribeTopicPartitionsResponseTopic::default()
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_name(Some(TopicName(str_bytes(cursor)))),
        ]);
    }
    // Topics the client may not DESCRIBE are left out; when it named them, each answers
    // TOPIC_AUTHORIZATION_FAILED (at the end, without its id), existence not looked at.
    let all_topics = req.topics.is_empty();
    let mut denied = Vec::new();
    names.retain(|name| {
        let allowed = ctx.authorize(Operation::Describe, ResourceType::Topic, name);
        if !allowed && !all_topics && from_topic.as_ref().is_none_or(|c| name >= c) {
            denied.push(
                DescribeTopicPartitionsResponseTopic::default()
                    .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                    .with_name(Some(TopicName(str_bytes(name)))),
            );
        }
        allowed
    });
    if from_topic.as_ref().is_some_and(|c| !names.contains(c)) {
        // The cursor's topic is no longer describable: resume at the next one's start.
        from_partition = 0;
    }
    let mut budget = if req.response_partition_limit > 0 {
        req.response_partition_limit.min(MAX_PARTITIONS)
    } else {
        MAX_PARTITIONS
    };
    let mut out = Vec::new();
    let mut next_cursor = None;
    for name in names {
        if let Some(cursor) = &from_topic {
            if name < *cursor {
                continue;
            }
            from_topic = None;
        } else {
            from_partition = 0;
        }
        if budget == 0 {
            next_cursor = Some(
                Cursor::default()
                    .with_topic_name(TopicName(str_bytes(&name)))
                    .with_partition_index(0),
            );
            break;
        }
        let Some(topic) = topics.get(&name) else {
            out.push(
                DescribeTopicPartitionsResponseTopic::default()
                    .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                    .with_name(Some(TopicName(str_bytes(&name))))
                    .with_topic_authorized_operations(
                        ctx.authorized_operations(ResourceType::Topic, &name),
                    ),
            );
            continue;
        };
        let count = topic.record.partitions;
        let last = count.min(from_partition.saturating_add(budget));
        let partitions = (from_partition..last)
            .map(|p| {
                let l = super::metadata::leadership(topics, &name, p, node);
                DescribeTopicPartitionsResponsePartition::default()
                    .with_partition_index(p)
                    .with_leader_epoch(0)
                    .with_replica_nodes(vec![node])
                    .with_eligible_leader_replicas(Some(vec![]))
                    .with_last_known_elr(Some(vec![]))
                    .with_error_code(l.error_code)
                    .with_leader_id(l.leader)
                    .with_isr_nodes(l.isr)
                    .with_offline_replicas(l.offline)
            })
            .collect::<Vec<_>>();
        budget -= i32::try_from(partitions.len()).unwrap_or(budget);
        out.push(
            DescribeTopicPartitionsResponseTopic::default()
                .with_name(Some(TopicName(str_bytes(&name))))
                .with_topic_id(topic.record.topic_id)
                .with_is_internal(is_internal(&name))
                .with_partitions(partitions)
                .with_topic_authorized_operations(
                    ctx.authorized_operations(ResourceType::Topic, &name),
                ),
        );
        if last < count {
            next_cursor = Some(
                Cursor::default()
                    .with_topic_name(TopicName(str_bytes(&name)))
                    .with_partition_index(last),
            );
            break;
        }
    }
    out.extend(denied);
    DescribeTopicPartitionsResponse::default()
        .with_topics(out)
        .with_next_cursor(next_cursor)
}

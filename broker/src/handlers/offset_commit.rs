//! OffsetCommit: stores a group's committed offsets (member and generation checked for
//! group members; generation -1 without a member id is a "simple" commit, allowed while the
//! group has no members). Answered once the offsets are durable in `__consumer_offsets`.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, ResponseKind, TopicName,
};

use super::{Handled, Reply, RequestContext, str_bytes};
use crate::group::classic::Pending;
use crate::group::coordinator::{CommitArgs, CommitPartition, PartitionResults, merge_results};
use crate::security::acl::{Operation, ResourceType};

/// Handles OffsetCommit.
pub async fn handle(ctx: &RequestContext, req: OffsetCommitRequest) -> Handled {
    let groups = &ctx.broker.groups;
    let mut args = CommitArgs {
        group_id: req.group_id.0.to_string(),
        generation: req.generation_id_or_member_epoch,
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.map(|s| s.to_string()),
        retention_ms: req.retention_time_ms,
        api_version: ctx.version(),
        topics: req
            .topics
            .into_iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .into_iter()
                    .map(|p| CommitPartition {
                        partition: p.partition_index,
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: p.committed_metadata.map(|m| m.to_string()),
                    })
                    .collect();
                (t.name.0.to_string(), partitions)
            })
            .collect(),
    };
    if !ctx.authorize(Operation::Read, ResourceType::Group, &args.group_id) {
        let all = unreadable(&mut args);
        let resp = OffsetCommitResponse::default()
            .with_topics(failed_topics(all, ResponseError::GroupAuthorizationFailed));
        return ResponseKind::OffsetCommit(resp).into();
    }
    let denied = take_unreadable(ctx, &mut args);
    let respond = move |results: PartitionResults| {
        let mut resp = response(results);
        resp.topics.extend(failed_topics(
            denied,
            ResponseError::TopicAuthorizationFailed,
        ));
        ResponseKind::OffsetCommit(resp)
    };
    if let Err(e) = groups.ensure_ready(&ctx.broker.topics) {
        return respond(args.fail_all(e)).into();
    }
    let unknown = args.take_unknown(|t, p| partition_exists(ctx, t, p));
    if args.topics.is_empty() {
        return respond(unknown).into();
    }
    match groups.commit_offsets(args) {
        Pending::Now(results) => respond(merge_results(results, unknown)).into(),
        Pending::Wait(rx) => Handled::Reply(Reply::Later(Box::pin(async move {
            let results = rx.await.unwrap_or_default();
            respond(merge_results(results, unknown))
        }))),
    }
}

/// Takes the topics the client may not READ out of the commit (Kafka checks them before
/// their existence): their partitions, to answer TOPIC_AUTHORIZATION_FAILED.
pub(crate) fn take_unreadable(
    ctx: &RequestContext,
    args: &mut CommitArgs,
) -> Vec<(String, Vec<i32>)> {
    if !ctx.authorizing() {
        return Vec::new();
    }
    let (allowed, denied): (Vec<_>, Vec<_>) = std::mem::take(&mut args.topics)
        .into_iter()
        .partition(|(t, _)| ctx.authorize(Operation::Read, ResourceType::Topic, t));
    args.topics = allowed;
    partitions_of(denied)
}

/// Every partition of the commit, taken out of it.
pub(crate) fn unreadable(args: &mut CommitArgs) -> Vec<(String, Vec<i32>)> {
    partitions_of(std::mem::take(&mut args.topics))
}

fn partitions_of(topics: Vec<(String, Vec<CommitPartition>)>) -> Vec<(String, Vec<i32>)> {
    topics
        .into_iter()
        .map(|(t, ps)| (t, ps.iter().map(|p| p.partition).collect()))
        .collect()
}

fn failed_topics(
    topics: Vec<(String, Vec<i32>)>,
    code: ResponseError,
) -> Vec<OffsetCommitResponseTopic> {
    topics
        .into_iter()
        .map(|(t, ps)| {
            OffsetCommitResponseTopic::default()
                .with_name(TopicName(str_bytes(&t)))
                .with_partitions(
                    ps.into_iter()
                        .map(|p| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(p)
                                .with_error_code(code.code())
                        })
                        .collect(),
                )
        })
        .collect()
}

/// Whether a partition exists (Kafka checks the metadata before the group).
pub(crate) fn partition_exists(ctx: &RequestContext, topic: &str, partition: i32) -> bool {
    ctx.broker
        .topics
        .get(topic)
        .is_some_and(|t| (0..t.record.partitions).contains(&partition))
}

fn response(results: PartitionResults) -> OffsetCommitResponse {
    OffsetCommitResponse::default().with_topics(
        results
            .into_iter()
            .map(|(topic, partitions)| {
                OffsetCommitResponseTopic::default()
                    .with_name(TopicName(str_bytes(&topic)))
                    .with_partitions(
                        partitions
                            .into_iter()
                            .map(|(p, r)| {
                                OffsetCommitResponsePartition::default()
                                    .with_partition_index(p)
                                    .with_error_code(r.err().map(|e| e.code().code()).unwrap_or(0))
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}

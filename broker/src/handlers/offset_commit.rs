//! OffsetCommit: stores a group's committed offsets (member and generation checked for
//! group members; generation -1 without a member id is a "simple" commit, allowed while the
//! group has no members). Answered once the offsets are durable in `__consumer_offsets`.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, ResponseKind, TopicName,
};

use super::{Handled, Reply, RequestContext, str_bytes};
use crate::group::classic::Pending;
use crate::group::coordinator::{CommitArgs, CommitPartition, PartitionResults, merge_results};

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
    if let Err(e) = groups.ensure_ready(&ctx.broker.topics) {
        return ResponseKind::OffsetCommit(response(args.fail_all(e))).into();
    }
    let unknown = args.take_unknown(|t, p| partition_exists(ctx, t, p));
    if args.topics.is_empty() {
        return ResponseKind::OffsetCommit(response(unknown)).into();
    }
    match groups.commit_offsets(args) {
        Pending::Now(results) => {
            ResponseKind::OffsetCommit(response(merge_results(results, unknown))).into()
        }
        Pending::Wait(rx) => Handled::Reply(Reply::Later(Box::pin(async move {
            let results = rx.await.unwrap_or_default();
            ResponseKind::OffsetCommit(response(merge_results(results, unknown)))
        }))),
    }
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

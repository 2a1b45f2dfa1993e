//! TxnOffsetCommit: a group's offsets committed inside a producer's transaction. They are
//! written to `__consumer_offsets` at once (answered once durable) and count from the
//! transaction's commit marker on; an abort drops them.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    ResponseKind, TopicName, TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};

use super::{Handled, Reply, RequestContext, str_bytes};
use crate::group::classic::Pending;
use crate::group::coordinator::{CommitArgs, CommitPartition, PartitionResults, merge_results};
use crate::group::{GroupError, OFFSETS_TOPIC};
use crate::security::acl::{Operation, ResourceType};

/// Handles TxnOffsetCommit.
pub async fn handle(ctx: &RequestContext, req: TxnOffsetCommitRequest) -> Handled {
    let broker = &ctx.broker;
    let producer = (req.producer_id.0, req.producer_epoch);
    let transactional_id = req.transactional_id.0.to_string();
    let mut args = CommitArgs {
        group_id: req.group_id.0.to_string(),
        generation: req.generation_id,
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.map(|s| s.to_string()),
        retention_ms: -1,
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
    // WRITE on the transactional id, then READ on the group, then READ on each topic.
    let denied_whole = if !ctx.authorize(
        Operation::Write,
        ResourceType::TransactionalId,
        &transactional_id,
    ) {
        Some(ResponseError::TransactionalIdAuthorizationFailed)
    } else if !ctx.authorize(Operation::Read, ResourceType::Group, &args.group_id) {
        Some(ResponseError::GroupAuthorizationFailed)
    } else {
        None
    };
    if let Some(code) = denied_whole {
        let all = super::offset_commit::unreadable(&mut args);
        let resp = TxnOffsetCommitResponse::default().with_topics(failed_topics(all, code));
        return ResponseKind::TxnOffsetCommit(resp).into();
    }
    let denied = super::offset_commit::take_unreadable(ctx, &mut args);
    let respond = move |results: PartitionResults, all: Option<i16>| {
        let mut resp = response(results, all);
        resp.topics.extend(failed_topics(
            denied,
            ResponseError::TopicAuthorizationFailed,
        ));
        ResponseKind::TxnOffsetCommit(resp)
    };
    if let Err(e) = broker.groups.ensure_ready(&broker.topics) {
        return respond(args.fail_all(e), None).into();
    }
    // The group's partition must be in the producer's transaction (AddOffsetsToTxn first);
    // from v5 on (transactions V2) it joins the transaction here.
    let Some(partition) = broker.groups.offsets_partition(&args.group_id) else {
        return respond(args.fail_all(GroupError::CoordinatorNotAvailable), None).into();
    };
    let partition = (OFFSETS_TOPIC.to_string(), partition);
    let checked = if ctx.version() >= 5 {
        crate::txn::TransactionCoordinator::join(
            broker,
            &transactional_id,
            producer.0,
            producer.1,
            partition,
        )
        .await
    } else {
        broker
            .txns
            .verify(&transactional_id, producer.0, producer.1, &partition)
    };
    if let Err(e) = checked {
        let results: PartitionResults = args
            .topics
            .iter()
            .map(|(t, ps)| {
                (
                    t.clone(),
                    ps.iter().map(|p| (p.partition, Ok(()))).collect(),
                )
            })
            .collect();
        return respond(results, Some(e.code().code())).into();
    }
    let unknown = args.take_unknown(|t, p| super::offset_commit::partition_exists(ctx, t, p));
    if args.topics.is_empty() {
        return respond(unknown, None).into();
    }
    match broker.groups.commit_txn_offsets(args, producer) {
        Pending::Now(results) => respond(merge_results(results, unknown), None).into(),
        Pending::Wait(rx) => Handled::Reply(Reply::Later(Box::pin(async move {
            let results = rx.await.unwrap_or_default();
            respond(merge_results(results, unknown), None)
        }))),
    }
}

fn failed_topics(
    topics: Vec<(String, Vec<i32>)>,
    code: ResponseError,
) -> Vec<TxnOffsetCommitResponseTopic> {
    topics
        .into_iter()
        .map(|(t, ps)| {
            TxnOffsetCommitResponseTopic::default()
                .with_name(TopicName(str_bytes(&t)))
                .with_partitions(
                    ps.into_iter()
                        .map(|p| {
                            TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(p)
                                .with_error_code(code.code())
                        })
                        .collect(),
                )
        })
        .collect()
}

/// The response; `all` overrides every partition's code.
fn response(results: PartitionResults, all: Option<i16>) -> TxnOffsetCommitResponse {
    TxnOffsetCommitResponse::default().with_topics(
        results
            .into_iter()
            .map(|(topic, partitions)| {
                TxnOffsetCommitResponseTopic::default()
                    .with_name(TopicName(str_bytes(&topic)))
                    .with_partitions(
                        partitions
                            .into_iter()
                            .map(|(p, r)| {
                                TxnOffsetCommitResponsePartition::default()
                                    .with_partition_index(p)
                                    .with_error_code(
                                        all.unwrap_or_else(|| {
                                            r.err().map_or(0, |e| e.code().code())
                                        }),
                                    )
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}

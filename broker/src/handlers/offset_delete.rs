//! OffsetDelete: removes committed offsets of a group, except for topics its members still
//! subscribe to (GROUP_SUBSCRIBED_TO_TOPIC).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{
    OffsetDeleteRequest, OffsetDeleteResponse, ResponseKind, TopicName,
};

use super::{Handled, Reply, RequestContext, str_bytes};
use crate::group::GroupError;
use crate::group::classic::Pending;
use crate::group::coordinator::PartitionResults;
use crate::security::acl::{Operation, ResourceType};

/// Handles OffsetDelete.
pub async fn handle(ctx: &RequestContext, req: OffsetDeleteRequest) -> Handled {
    let groups = &ctx.broker.groups;
    if !ctx.authorize(Operation::Delete, ResourceType::Group, &req.group_id.0) {
        let code = ResponseError::GroupAuthorizationFailed.code();
        return ResponseKind::OffsetDelete(OffsetDeleteResponse::default().with_error_code(code))
            .into();
    }
    if let Err(e) = groups.ensure_ready(&ctx.broker.topics) {
        return ResponseKind::OffsetDelete(response(Err(e))).into();
    }
    // READ on each topic (before its existence is looked at).
    let (topics, denied): (Vec<(String, Vec<i32>)>, Vec<_>) = req
        .topics
        .into_iter()
        .map(|t| {
            (
                t.name.0.to_string(),
                t.partitions
                    .into_iter()
                    .map(|p| p.partition_index)
                    .collect(),
            )
        })
        .partition(|(t, _)| ctx.authorize(Operation::Read, ResourceType::Topic, t));
    let respond = move |out: Result<PartitionResults, GroupError>| {
        let mut resp = response(out);
        if resp.error_code == 0 {
            resp.topics.extend(denied.into_iter().map(|(t, ps)| {
                OffsetDeleteResponseTopic::default()
                    .with_name(TopicName(str_bytes(&t)))
                    .with_partitions(
                        ps.into_iter()
                            .map(|p| {
                                OffsetDeleteResponsePartition::default()
                                    .with_partition_index(p)
                                    .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                            })
                            .collect(),
                    )
            }));
        }
        ResponseKind::OffsetDelete(resp)
    };
    match groups.delete_offsets(&req.group_id.0, topics) {
        Pending::Now(out) => respond(out).into(),
        Pending::Wait(rx) => Handled::Reply(Reply::Later(Box::pin(async move {
            let out = rx.await.unwrap_or(Err(GroupError::CoordinatorNotAvailable));
            respond(out)
        }))),
    }
}

fn response(out: Result<PartitionResults, GroupError>) -> OffsetDeleteResponse {
    match out {
        Err(e) => OffsetDeleteResponse::default().with_error_code(e.code().code()),
        Ok(results) => OffsetDeleteResponse::default().with_topics(
            results
                .into_iter()
                .map(|(t, ps)| {
                    OffsetDeleteResponseTopic::default()
                        .with_name(TopicName(str_bytes(&t)))
                        .with_partitions(
                            ps.into_iter()
                                .map(|(p, r)| {
                                    OffsetDeleteResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_error_code(
                                            r.err().map(|e| e.code().code()).unwrap_or(0),
                                        )
                                })
                                .collect(),
                        )
                })
                .collect(),
        ),
    }
}

//! OffsetForLeaderEpoch: the end offset of a leader epoch, which consumers use to detect
//! log truncation. A single node never changes leader, so epoch 0 spans the whole log.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, ResponseKind,
};

use super::{Handled, RequestContext};
use crate::security::acl::{CLUSTER_NAME, Operation, ResourceType};

/// Handles OffsetForLeaderEpoch.
pub async fn handle(ctx: &RequestContext, req: OffsetForLeaderEpochRequest) -> Handled {
    // Brokers (CLUSTER_ACTION) may ask about any topic; clients need DESCRIBE on each.
    let cluster_action = ctx.authorizing()
        && ctx.authorize_quietly(
            Operation::ClusterAction,
            ResourceType::Cluster,
            CLUSTER_NAME,
        );
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.topic.0.to_string();
            let allowed =
                cluster_action || ctx.authorize(Operation::Describe, ResourceType::Topic, &name);
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let resp = EpochEndOffset::default().with_partition(p.partition);
                    if !allowed {
                        return resp
                            .with_error_code(ResponseError::TopicAuthorizationFailed.code());
                    }
                    let log = match ctx.broker.topics.lookup(&name, p.partition) {
                        Ok(log) => log,
                        Err(e) => {
                            return resp.with_error_code(crate::errors::unavailable(&e).code());
                        }
                    };
                    if p.current_leader_epoch > 0 {
                        return resp.with_error_code(ResponseError::UnknownLeaderEpoch.code());
                    }
                    if p.leader_epoch == 0 {
                        resp.with_leader_epoch(0)
                            .with_end_offset(log.log_end_offset())
                    } else {
                        // An epoch this log never had: undefined, as Kafka answers.
                        resp.with_leader_epoch(-1).with_end_offset(-1)
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    ResponseKind::OffsetForLeaderEpoch(OffsetForLeaderEpochResponse::default().with_topics(topics))
        .into()
}

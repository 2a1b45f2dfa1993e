//! DescribeProducers: the producers a partition knows (id, epoch, last sequence and
//! timestamp) and the first offset of each one's open transaction.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{
    DescribeProducersRequest, DescribeProducersResponse, ProducerId, ResponseKind,
};

use super::{Handled, RequestContext};
use crate::security::acl::{Operation, ResourceType};

/// Handles DescribeProducers.
pub async fn handle(ctx: &RequestContext, req: DescribeProducersRequest) -> Handled {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let allowed = ctx.authorize(Operation::Read, ResourceType::Topic, &t.name.0);
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&p| {
                    let resp = PartitionResponse::default().with_partition_index(p);
                    if !allowed {
                        return resp
                            .with_error_code(ResponseError::TopicAuthorizationFailed.code());
                    }
                    match ctx.broker.topics.lookup(&t.name.0, p) {
                        Ok(log) => {
                            let open = log.open_transactions();
                            let mut producers = log.producers();
                            producers.sort_by_key(|e| e.producer_id);
                            resp.with_active_producers(
                                producers
                                    .into_iter()
                                    .map(|e| {
                                        let start = open
                                            .iter()
                                            .find(|(id, _)| *id == e.producer_id)
                                            .map_or(-1, |(_, first)| *first);
                                        ProducerState::default()
                                            .with_producer_id(ProducerId(e.producer_id))
                                            .with_producer_epoch(i32::from(e.epoch))
                                            .with_last_sequence(e.last_seq().unwrap_or(-1))
                                            .with_last_timestamp(e.last_timestamp)
                                            .with_coordinator_epoch(0)
                                            .with_current_txn_start_offset(start)
                                    })
                                    .collect(),
                            )
                        }
                        Err(e) => resp.with_error_code(crate::errors::unavailable(&e).code()),
                    }
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    ResponseKind::DescribeProducers(DescribeProducersResponse::default().with_topics(topics)).into()
}

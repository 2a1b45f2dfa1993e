//! DescribeTransactions: state, timeout, start, producer and partitions of transactional
//! ids.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, ResponseKind, TopicName,
};

use super::{Handled, RequestContext, str_bytes};
use crate::security::acl::{Operation, ResourceType};

/// Handles DescribeTransactions.
pub async fn handle(ctx: &RequestContext, req: DescribeTransactionsRequest) -> Handled {
    let states = req
        .transactional_ids
        .into_iter()
        .map(|id| {
            let state = TransactionState::default().with_transactional_id(id.clone());
            if !ctx.authorize(Operation::Describe, ResourceType::TransactionalId, &id.0) {
                return state
                    .with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code())
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1)
                    .with_transaction_start_time_ms(-1);
            }
            match ctx.broker.txns.describe(&id.0) {
                Ok(m) => state
                    .with_transaction_state(str_bytes(m.state.name()))
                    .with_transaction_timeout_ms(m.timeout_ms)
                    .with_transaction_start_time_ms(m.start_ms)
                    .with_producer_id(ProducerId(m.producer_id))
                    .with_producer_epoch(m.producer_epoch)
                    .with_topics(
                        m.topics()
                            .into_iter()
                            // Only the topics the client may describe.
                            .filter(|(t, _)| {
                                ctx.authorize(Operation::Describe, ResourceType::Topic, t)
                            })
                            .map(|(t, ps)| {
                                TopicData::default()
                                    .with_topic(TopicName(str_bytes(&t)))
                                    .with_partitions(ps)
                            })
                            .collect(),
                    ),
                Err(e) => state
                    .with_error_code(e.code().code())
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1)
                    .with_transaction_start_time_ms(-1),
            }
        })
        .collect();
    ResponseKind::DescribeTransactions(
        DescribeTransactionsResponse::default().with_transaction_states(states),
    )
    .into()
}

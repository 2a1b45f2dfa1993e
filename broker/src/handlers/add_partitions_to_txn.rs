//! AddPartitionsToTxn: adds partitions to a producer's open transaction (starting one).
//! v0-v3 carry one transaction; v4+ (KIP-890) carry several, each possibly `verify_only`
//! (only checks the partitions are already in the transaction). If a partition does not
//! exist, nothing is added and the others answer OPERATION_NOT_ATTEMPTED.

use std::collections::HashMap;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ResponseKind, TopicName, TransactionalId,
};

use super::{Handled, RequestContext, str_bytes};
use crate::security::acl::{Operation, ResourceType};
use crate::topics::is_internal;

/// Handles AddPartitionsToTxn.
pub async fn handle(ctx: &RequestContext, req: AddPartitionsToTxnRequest) -> Handled {
    super::on_blocking_pool(ctx, move |ctx| handle_blocking(ctx, req)).await
}

fn handle_blocking(ctx: &RequestContext, req: AddPartitionsToTxnRequest) -> Handled {
    if ctx.version() <= 3 {
        // From clients: WRITE on the transactional id, then on each topic (in `add`).
        if !ctx.authorize(
            Operation::Write,
            ResourceType::TransactionalId,
            &req.v3_and_below_transactional_id.0,
        ) {
            let topics = req
                .v3_and_below_topics
                .iter()
                .map(|t| {
                    AddPartitionsToTxnTopicResult::default()
                        .with_name(t.name.clone())
                        .with_results_by_partition(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    AddPartitionsToTxnPartitionResult::default()
                                        .with_partition_index(*p)
                                        .with_partition_error_code(
                                            ResponseError::TransactionalIdAuthorizationFailed
                                                .code(),
                                        )
                                })
                                .collect(),
                        )
                })
                .collect();
            return ResponseKind::AddPartitionsToTxn(
                AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(topics),
            )
            .into();
        }
        let topics = add(
            ctx,
            &req.v3_and_below_transactional_id,
            req.v3_and_below_producer_id.0,
            req.v3_and_below_producer_epoch,
            false,
            &req.v3_and_below_topics,
        );
        return ResponseKind::AddPartitionsToTxn(
            AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(topics),
        )
        .into();
    }
    // v4+ come from brokers (KIP-890): CLUSTER_ACTION.
    if !ctx.authorize_cluster(Operation::ClusterAction) {
        return ResponseKind::AddPartitionsToTxn(
            AddPartitionsToTxnResponse::default()
                .with_error_code(ResponseError::ClusterAuthorizationFailed.code()),
        )
        .into();
    }
    let results = req
        .transactions
        .iter()
        .map(|t| {
            AddPartitionsToTxnResult::default()
                .with_transactional_id(t.transactional_id.clone())
                .with_topic_results(add(
                    ctx,
                    &t.transactional_id,
                    t.producer_id.0,
                    t.producer_epoch,
                    t.verify_only,
                    &t.topics,
                ))
        })
        .collect();
    ResponseKind::AddPartitionsToTxn(
        AddPartitionsToTxnResponse::default().with_results_by_transaction(results),
    )
    .into()
}

/// One transaction's partitions: a result per partition.
fn add(
    ctx: &RequestContext,
    transactional_id: &TransactionalId,
    producer_id: i64,
    epoch: i16,
    verify_only: bool,
    topics: &[AddPartitionsToTxnTopic],
) -> Vec<AddPartitionsToTxnTopicResult> {
    let broker = &ctx.broker;
    let id = transactional_id.0.to_string();
    let partitions: Vec<(String, i32)> = topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), *p)))
        .collect();
    // Clients' requests (v0-3) need WRITE on each topic; internal topics never pass
    // (Kafka leaves them out of the authorized set).
    let check_topics = ctx.authorizing() && ctx.version() <= 3;
    let mut decided: HashMap<&str, bool> = HashMap::new();
    let denied: Vec<bool> = partitions
        .iter()
        .map(|(t, _)| {
            check_topics
                && *decided.entry(t.as_str()).or_insert_with(|| {
                    is_internal(t) || !ctx.authorize(Operation::Write, ResourceType::Topic, t)
                })
        })
        .collect();
    let unknown =
        |(t, p): &(String, i32)| is_internal(t) || broker.topics.partition(t, *p).is_none();
    let codes: Vec<ResponseError> = if denied.iter().any(|d| *d) || partitions.iter().any(unknown) {
        partitions
            .iter()
            .zip(&denied)
            .map(|(tp, denied)| {
                if *denied {
                    ResponseError::TopicAuthorizationFailed
                } else if unknown(tp) {
                    ResponseError::UnknownTopicOrPartition
                } else {
                    ResponseError::OperationNotAttempted
                }
            })
            .collect()
    } else if verify_only {
        partitions
            .iter()
            .map(|tp| match broker.txns.verify(&id, producer_id, epoch, tp) {
                Ok(()) => ResponseError::Unknown(0),
                Err(e) => e.code(),
            })
            .collect()
    } else {
        let code = match broker
            .txns
            .add_partitions(broker, &id, producer_id, epoch, &partitions, 0)
        {
            Ok(()) => ResponseError::Unknown(0),
            Err(e) => e.code(),
        };
        vec![code; partitions.len()]
    };
    let mut out: Vec<AddPartitionsToTxnTopicResult> = Vec::new();
    for ((topic, p), code) in partitions.into_iter().zip(codes) {
        let result = AddPartitionsToTxnPartitionResult::default()
            .with_partition_index(p)
            .with_partition_error_code(code.code());
        match out.last_mut() {
            Some(last) if last.name.0.as_str() == topic => last.results_by_partition.push(result),
            _ => out.push(
                AddPartitionsToTxnTopicResult::default()
                    .with_name(TopicName(str_bytes(&topic)))
                    .with_results_by_partition(vec![result]),
            ),
        }
    }
    out
}

//! CreatePartitions: grow a topic's partition count (never shrink), `validate_only`.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse, ResponseKind};

use super::{Handled, RequestContext, str_bytes};
use crate::errors::topic_error;
use crate::security::acl::{Operation, ResourceType};
use crate::topics::TopicError;

/// Handles CreatePartitions.
pub async fn handle(ctx: &RequestContext, req: CreatePartitionsRequest) -> Handled {
    // Changes topics: partition directories and files, metadata-store writes with fsyncs.
    super::on_blocking_pool(ctx, move |ctx| handle_blocking(ctx, req)).await
}

fn handle_blocking(ctx: &RequestContext, req: CreatePartitionsRequest) -> Handled {
    let node = ctx.broker.endpoint.node_id;
    let results = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            if !ctx.authorize(Operation::Alter, ResourceType::Topic, &name) {
                return CreatePartitionsTopicResult::default()
                    .with_name(t.name)
                    .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                    .with_error_message(None);
            }
            let outcome = match &t.assignments {
                Some(a)
                    if a.iter().any(|r| {
                        r.broker_ids.iter().any(|b| b.0 != node) || r.broker_ids.len() != 1
                    }) =>
                {
                    Err(TopicError::InvalidReplicaAssignment(format!(
                        "Replica assignments must be [{node}] on this single-node cluster"
                    )))
                }
                _ => ctx
                    .broker
                    .topics
                    .create_partitions(&name, t.count, req.validate_only),
            };
            let result = CreatePartitionsTopicResult::default().with_name(t.name);
            match outcome {
                Ok(()) => result,
                Err(e) => result
                    .with_error_code(topic_error(&e).code())
                    .with_error_message(Some(str_bytes(&e.to_string()))),
            }
        })
        .collect();
    ResponseKind::CreatePartitions(CreatePartitionsResponse::default().with_results(results)).into()
}

//! DeleteTopics, by name (all versions) or by topic id (v6+).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    DeleteTopicsRequest, DeleteTopicsResponse, ResponseKind, TopicName,
};
use uuid::Uuid;

use super::{Handled, RequestContext, str_bytes};
use crate::errors::topic_error;
use crate::security::acl::{CLUSTER_NAME, Operation, ResourceType};

/// Handles DeleteTopics.
pub async fn handle(ctx: &RequestContext, req: DeleteTopicsRequest) -> Handled {
    // Changes topics: partition directories and files, metadata-store writes with fsyncs.
    super::on_blocking_pool(ctx, move |ctx| handle_blocking(ctx, req)).await
}

fn handle_blocking(ctx: &RequestContext, req: DeleteTopicsRequest) -> Handled {
    let topics = &ctx.broker.topics;
    // v0-5 list names; v6 lists (name or id) pairs.
    let wanted: Vec<(Option<String>, Uuid)> = if ctx.version() >= 6 {
        req.topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        req.topic_names
            .iter()
            .map(|n| (Some(n.0.to_string()), Uuid::nil()))
            .collect()
    };
    // DELETE on the cluster covers every topic (asked quietly, as Kafka's controller does);
    // else a topic named by name needs DESCRIBE (or it is not looked up) and DELETE, and
    // one named by id DELETE (its name is answered only with DESCRIBE).
    let cluster_delete = ctx.authorizing()
        && ctx.authorize_quietly(Operation::Delete, ResourceType::Cluster, CLUSTER_NAME);
    let may =
        |op: Operation, name: &str| cluster_delete || ctx.authorize(op, ResourceType::Topic, name);
    let denied = |name: Option<&str>, id: Uuid| {
        DeletableTopicResult::default()
            .with_name(name.map(|n| TopicName(str_bytes(n))))
            .with_topic_id(id)
            .with_error_code(ResponseError::TopicAuthorizationFailed.code())
    };
    let responses = wanted
        .into_iter()
        .map(|(name, id)| {
            let by_id = name.is_none();
            let name = match name {
                Some(n) => Some(n),
                None => topics.name_by_id(&id),
            };
            let result = DeletableTopicResult::default()
                .with_name(name.as_ref().map(|n| TopicName(str_bytes(n))))
                .with_topic_id(id);
            let Some(name) = name else {
                return result.with_error_code(ResponseError::UnknownTopicId.code());
            };
            if by_id && !may(Operation::Delete, &name) {
                let shown = may(Operation::Describe, &name).then_some(name.as_str());
                return denied(shown, id);
            }
            if !by_id {
                if !may(Operation::Describe, &name) {
                    return denied(Some(&name), id);
                }
                if topics.get(&name).is_some() && !may(Operation::Delete, &name) {
                    return denied(Some(&name), id);
                }
            }
            match topics.delete(&name) {
                Ok(deleted_id) => result.with_topic_id(deleted_id),
                Err(e) => result
                    .with_error_code(topic_error(&e).code())
                    .with_error_message(Some(str_bytes(&e.to_string()))),
            }
        })
        .collect();
    ResponseKind::DeleteTopics(DeleteTopicsResponse::default().with_responses(responses)).into()
}

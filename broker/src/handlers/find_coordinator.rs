//! FindCoordinator: this broker coordinates every consumer group and every transactional
//! id. v4+ batches keys in `coordinator_keys`. Asking for a coordinator creates
//! `__consumer_offsets` or `__transaction_state` if needed, as in Kafka.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, ResponseKind,
};
use kafka_protocol::protocol::StrBytes;

use super::{Handled, RequestContext, str_bytes};
use crate::security::acl::{Operation, ResourceType};

const GROUP: i8 = 0;
const TRANSACTION: i8 = 1;

/// Handles FindCoordinator (on the blocking pool: the first request creates an internal
/// topic, which writes partition directories and the metadata store).
pub async fn handle(ctx: &RequestContext, req: FindCoordinatorRequest) -> Handled {
    super::on_blocking_pool(ctx, move |ctx| handle_blocking(ctx, req)).await
}

fn handle_blocking(ctx: &RequestContext, req: FindCoordinatorRequest) -> Handled {
    let broker = &ctx.broker;
    // DESCRIBE on the group or transactional id first; the coordinator is made ready (its
    // topic created) only for a key the client may see.
    let denied = |key: &str| match req.key_type {
        GROUP if !ctx.authorize(Operation::Describe, ResourceType::Group, key) => {
            Some(ResponseError::GroupAuthorizationFailed)
        }
        TRANSACTION if !ctx.authorize(Operation::Describe, ResourceType::TransactionalId, key) => {
            Some(ResponseError::TransactionalIdAuthorizationFailed)
        }
        _ => None,
    };
    let mut readiness: Option<Option<ResponseError>> = None;
    let mut ready = || {
        *readiness.get_or_insert_with(|| match req.key_type {
            GROUP => broker
                .groups
                .ensure_ready(&broker.topics)
                .err()
                .map(|e| e.code()),
            TRANSACTION => broker
                .txns
                .ensure_ready(&broker.topics)
                .err()
                .map(|e| e.code()),
            _ => Some(ResponseError::InvalidRequest),
        })
    };
    let endpoint = ctx.endpoint();
    let mut answer = |key: &str| match denied(key).or_else(&mut ready) {
        None => (
            0,
            None,
            endpoint.node_id,
            str_bytes(&endpoint.host),
            endpoint.port,
        ),
        Some(e) => (
            e.code(),
            Some(str_bytes(&format!("{e:?}"))),
            -1,
            StrBytes::default(),
            -1,
        ),
    };
    let response = if ctx.version() >= 4 {
        let coordinators = req
            .coordinator_keys
            .iter()
            .map(|key| {
                let (code, message, node, host, port) = answer(key);
                Coordinator::default()
                    .with_key(key.clone())
                    .with_node_id(BrokerId(node))
                    .with_host(host)
                    .with_port(port)
                    .with_error_code(code)
                    .with_error_message(message)
            })
            .collect();
        FindCoordinatorResponse::default().with_coordinators(coordinators)
    } else {
        let (code, message, node, host, port) = answer(&req.key);
        FindCoordinatorResponse::default()
            .with_error_code(code)
            .with_error_message(message)
            .with_node_id(BrokerId(node))
            .with_host(host)
            .with_port(port)
    };
    ResponseKind::FindCoordinator(response).into()
}

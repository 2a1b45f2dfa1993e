//! InitProducerId for idempotent producers: a fresh producer id with epoch 0. A producer
//! that asks to bump its epoch (KIP-360, after an unknown-sequence error) gets epoch + 1 on
//! the same id, or a new id once the epoch would overflow. With a transactional id the
//! transaction coordinator answers: the id's producer id with its epoch bumped, which fences
//! any earlier producer with the same transactional id and aborts a transaction it left
//! open.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProducerId, ResponseKind,
};

use super::{Handled, RequestContext};
use crate::errors::topic_error;
use crate::security::acl::{CLUSTER_NAME, Operation, ResourceType};

/// Handles InitProducerId.
pub async fn handle(ctx: &RequestContext, req: InitProducerIdRequest) -> Handled {
    if let Some(code) = denied(ctx, &req) {
        return ResponseKind::InitProducerId(
            InitProducerIdResponse::default()
                .with_error_code(code.code())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        )
        .into();
    }
    // A new block of producer ids is reserved in the metadata store (an fsync'ed write).
    super::on_blocking_pool(ctx, move |ctx| handle_blocking(ctx, req)).await
}

/// A transactional producer needs WRITE on its transactional id; an idempotent one
/// IDEMPOTENT_WRITE on the cluster or WRITE on some topic (KIP-679), else
/// CLUSTER_AUTHORIZATION_FAILED.
fn denied(ctx: &RequestContext, req: &InitProducerIdRequest) -> Option<ResponseError> {
    if let Some(id) = &req.transactional_id {
        return (!ctx.authorize(Operation::Write, ResourceType::TransactionalId, id))
            .then_some(ResponseError::TransactionalIdAuthorizationFailed);
    }
    let authorizer = &ctx.broker.security.authorizer;
    let allowed = ctx.authorize_quietly(
        Operation::IdempotentWrite,
        ResourceType::Cluster,
        CLUSTER_NAME,
    ) || authorizer.authorize_any(&ctx.session, Operation::Write, ResourceType::Topic)
        // Denied either way: asked again so that the denial is audited.
        || ctx.authorize_cluster(Operation::IdempotentWrite);
    (!allowed).then_some(ResponseError::ClusterAuthorizationFailed)
}

fn handle_blocking(ctx: &RequestContext, req: InitProducerIdRequest) -> Handled {
    let resp = InitProducerIdResponse::default();
    if let Some(transactional_id) = &req.transactional_id {
        let expected = (req.producer_id.0 >= 0 && req.producer_epoch >= 0)
            .then_some((req.producer_id.0, req.producer_epoch));
        let broker = &ctx.broker;
        let resp = match broker.txns.init_producer_id(
            broker,
            transactional_id,
            req.transaction_timeout_ms,
            expected,
        ) {
            Ok((id, epoch)) => resp
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(epoch),
            Err(e) => resp
                .with_error_code(e.code().code())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        };
        return ResponseKind::InitProducerId(resp).into();
    }
    if req.producer_id.0 >= 0 && req.producer_epoch >= 0 && req.producer_epoch < i16::MAX - 1 {
        return ResponseKind::InitProducerId(
            resp.with_producer_id(req.producer_id)
                .with_producer_epoch(req.producer_epoch + 1),
        )
        .into();
    }
    let resp = match ctx.broker.producer_ids.allocate(&ctx.broker.topics) {
        Ok(id) => resp.with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(e) => {
            tracing::error!("cannot allocate a producer id: {e}");
            resp.with_error_code(topic_error(&e).code())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
        }
    };
    ResponseKind::InitProducerId(resp).into()
}

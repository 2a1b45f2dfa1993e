//! EndTxn: commits or aborts the producer's transaction; answered once its markers are
//! durable in every partition of the transaction.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId, ResponseKind};

use super::{Handled, RequestContext};
use crate::security::acl::{Operation, ResourceType};

/// Handles EndTxn.
pub async fn handle(ctx: &RequestContext, req: EndTxnRequest) -> Handled {
    if !ctx.authorize(
        Operation::Write,
        ResourceType::TransactionalId,
        &req.transactional_id.0,
    ) {
        return ResponseKind::EndTxn(
            EndTxnResponse::default()
                .with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        )
        .into();
    }
    super::on_blocking_pool(ctx, move |ctx| handle_blocking(ctx, req)).await
}

fn handle_blocking(ctx: &RequestContext, req: EndTxnRequest) -> Handled {
    let broker = &ctx.broker;
    // v5+ is transactions V2 (KIP-890 part 2): the end bumps the epoch and the answer
    // carries the producer id and epoch the producer goes on with.
    let result = broker.txns.end_txn(
        broker,
        &req.transactional_id.0,
        req.producer_id.0,
        req.producer_epoch,
        req.committed,
        ctx.version() >= 5,
    );
    let (code, (id, epoch)) = match result {
        Ok(next) => (0, next),
        Err(e) => (e.code().code(), (-1, -1)),
    };
    ResponseKind::EndTxn(
        EndTxnResponse::default()
            .with_error_code(code)
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch),
    )
    .into()
}

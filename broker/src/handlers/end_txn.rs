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
    let result = broker.txns.end_txn(
        broker,
        &req.transactional_id.0,
        req.producer_id.0,
        req.producer_epoch,
        req.committed,
    );
    let code = result.err().map_or(0, |e| e.code().code());
    ResponseKind::EndTxn(
        EndTxnResponse::default()
            .with_error_code(code)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    )
    .into()
}

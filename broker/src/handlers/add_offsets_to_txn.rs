//! AddOffsetsToTxn: adds the group's `__consumer_offsets` partition to the producer's
//! transaction, so TxnOffsetCommit can commit the group's offsets inside it.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, ResponseKind};

use super::{Handled, RequestContext};
use crate::group::OFFSETS_TOPIC;
use crate::security::acl::{Operation, ResourceType};
use crate::txn::state::TxnError;

/// Handles AddOffsetsToTxn.
pub async fn handle(ctx: &RequestContext, req: AddOffsetsToTxnRequest) -> Handled {
    let denied = if !ctx.authorize(
        Operation::Write,
        ResourceType::TransactionalId,
        &req.transactional_id.0,
    ) {
        Some(ResponseError::TransactionalIdAuthorizationFailed)
    } else if !ctx.authorize(Operation::Read, ResourceType::Group, &req.group_id.0) {
        Some(ResponseError::GroupAuthorizationFailed)
    } else {
        None
    };
    if let Some(code) = denied {
        return ResponseKind::AddOffsetsToTxn(
            AddOffsetsToTxnResponse::default().with_error_code(code.code()),
        )
        .into();
    }
    super::on_blocking_pool(ctx, move |ctx| handle_blocking(ctx, req)).await
}

fn handle_blocking(ctx: &RequestContext, req: AddOffsetsToTxnRequest) -> Handled {
    let broker = &ctx.broker;
    let group_id = req.group_id.0.to_string();
    let result = broker
        .groups
        .ensure_ready(&broker.topics)
        .map_err(|_| TxnError::CoordinatorNotAvailable)
        .and_then(|()| {
            broker
                .groups
                .offsets_partition(&group_id)
                .ok_or(TxnError::CoordinatorNotAvailable)
        })
        .and_then(|partition| {
            broker.txns.add_partitions(
                broker,
                &req.transactional_id.0,
                req.producer_id.0,
                req.producer_epoch,
                &[(OFFSETS_TOPIC.to_string(), partition)],
                0,
            )
        });
    let code = result.err().map_or(0, |e| e.code().code());
    ResponseKind::AddOffsetsToTxn(AddOffsetsToTxnResponse::default().with_error_code(code)).into()
}

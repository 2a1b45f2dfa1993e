//! ListTransactions: transactional ids, filtered by state names, producer ids and (v1)
//! how long their transaction has been open.

use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, ResponseKind, TransactionalId,
};

use super::{Handled, RequestContext, now_ms, str_bytes};
use crate::security::acl::{Operation, ResourceType};
use crate::txn::state::{TxnMetadata, TxnState};

const STATES: [TxnState; 7] = [
    TxnState::Empty,
    TxnState::Ongoing,
    TxnState::PrepareCommit,
    TxnState::PrepareAbort,
    TxnState::CompleteCommit,
    TxnState::CompleteAbort,
    TxnState::PrepareEpochFence,
];

/// Handles ListTransactions.
pub async fn handle(ctx: &RequestContext, req: ListTransactionsRequest) -> Handled {
    let resp = ListTransactionsResponse::default();
    let all = match ctx.broker.txns.list() {
        Ok(all) => all,
        Err(e) => {
            return ResponseKind::ListTransactions(resp.with_error_code(e.code().code())).into();
        }
    };
    let unknown: Vec<_> = req
        .state_filters
        .iter()
        .filter(|f| !STATES.iter().any(|s| s.name() == f.as_str()))
        .cloned()
        .collect();
    let now = now_ms();
    let keep = |m: &TxnMetadata| {
        (req.state_filters.is_empty()
            || req
                .state_filters
                .iter()
                .any(|f| f.as_str() == m.state.name()))
            && (req.producer_id_filters.is_empty()
                || req.producer_id_filters.contains(&ProducerId(m.producer_id)))
            && (req.duration_filter < 0
                || (m.start_ms >= 0 && now - m.start_ms >= req.duration_filter))
    };
    let states = all
        .iter()
        .filter(|m| keep(m))
        // Only the transactional ids the client may describe.
        .filter(|m| {
            ctx.authorize(
                Operation::Describe,
                ResourceType::TransactionalId,
                &m.transactional_id,
            )
        })
        .map(|m| {
            TransactionState::default()
                .with_transactional_id(TransactionalId(str_bytes(&m.transactional_id)))
                .with_producer_id(ProducerId(m.producer_id))
                .with_transaction_state(str_bytes(m.state.name()))
        })
        .collect();
    ResponseKind::ListTransactions(
        resp.with_unknown_state_filters(unknown)
            .with_transaction_states(states),
    )
    .into()
}

//! Heartbeat: keeps a member's session alive, and tells it to rejoin during a rebalance
//! (REBALANCE_IN_PROGRESS).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse, ResponseKind};

use super::{Handled, RequestContext};
use crate::security::acl::{Operation, ResourceType};

/// Handles Heartbeat.
pub async fn handle(ctx: &RequestContext, req: HeartbeatRequest) -> Handled {
    let groups = &ctx.broker.groups;
    if !ctx.authorize(Operation::Read, ResourceType::Group, &req.group_id.0) {
        let code = ResponseError::GroupAuthorizationFailed.code();
        return ResponseKind::Heartbeat(HeartbeatResponse::default().with_error_code(code)).into();
    }
    let result = groups.available().and_then(|()| {
        groups.heartbeat(
            &req.group_id.0,
            &req.member_id,
            req.group_instance_id.as_deref(),
            req.generation_id,
        )
    });
    let code = result.err().map(|e| e.code().code()).unwrap_or(0);
    ResponseKind::Heartbeat(HeartbeatResponse::default().with_error_code(code)).into()
}

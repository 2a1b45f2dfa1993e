//! LeaveGroup: members leave (v3+: several at once, static members by instance id), which
//! starts a rebalance for the rest.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse, ResponseKind};

use super::{Handled, RequestContext, str_bytes};
use crate::security::acl::{Operation, ResourceType};

/// Handles LeaveGroup.
pub async fn handle(ctx: &RequestContext, req: LeaveGroupRequest) -> Handled {
    let groups = &ctx.broker.groups;
    if !ctx.authorize(Operation::Read, ResourceType::Group, &req.group_id.0) {
        let code = ResponseError::GroupAuthorizationFailed.code();
        return ResponseKind::LeaveGroup(LeaveGroupResponse::default().with_error_code(code))
            .into();
    }
    let batched = ctx.version() >= 3;
    let members: Vec<(String, Option<String>)> = if batched {
        req.members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|s| s.to_string()),
                )
            })
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    let result = groups
        .ensure_ready(&ctx.broker.topics)
        .and_then(|()| groups.leave(&req.group_id.0, &members));
    let response = match result {
        Err(e) => LeaveGroupResponse::default().with_error_code(e.code().code()),
        Ok(results) if batched => LeaveGroupResponse::default().with_members(
            members
                .into_iter()
                .zip(results)
                .map(|((id, instance), r)| {
                    MemberResponse::default()
                        .with_member_id(str_bytes(&id))
                        .with_group_instance_id(instance.as_deref().map(str_bytes))
                        .with_error_code(r.err().map(|e| e.code().code()).unwrap_or(0))
                })
                .collect(),
        ),
        Ok(results) => {
            let code = results
                .into_iter()
                .find_map(|r| r.err())
                .map(|e| e.code().code())
                .unwrap_or(0);
            LeaveGroupResponse::default().with_error_code(code)
        }
    };
    ResponseKind::LeaveGroup(response).into()
}

//! SyncGroup: the leader hands in the assignment; every member gets its share once the
//! group record is durable. Followers wait for the leader.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{ResponseKind, SyncGroupRequest, SyncGroupResponse};

use super::{Handled, Reply, RequestContext, str_bytes};
use crate::group::GroupError;
use crate::group::classic::{Pending, SyncArgs};
use crate::group::member::SyncOutcome;
use crate::security::acl::{Operation, ResourceType};

/// Handles SyncGroup.
pub async fn handle(ctx: &RequestContext, req: SyncGroupRequest) -> Handled {
    let version = ctx.version();
    if !ctx.authorize(Operation::Read, ResourceType::Group, &req.group_id.0) {
        return ResponseKind::SyncGroup(
            SyncGroupResponse::default()
                .with_error_code(ResponseError::GroupAuthorizationFailed.code()),
        )
        .into();
    }
    let groups = &ctx.broker.groups;
    if let Err(e) = groups.ensure_ready(&ctx.broker.topics) {
        return ResponseKind::SyncGroup(response(version, Err(e))).into();
    }
    let args = SyncArgs {
        generation: req.generation_id,
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.map(|s| s.to_string()),
        protocol_type: req.protocol_type.map(|s| s.to_string()),
        protocol_name: req.protocol_name.map(|s| s.to_string()),
        assignments: req
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    match groups.sync(&req.group_id.0, args) {
        Pending::Now(out) => ResponseKind::SyncGroup(response(version, out)).into(),
        Pending::Wait(rx) => Handled::Reply(Reply::Later(Box::pin(async move {
            let out = rx.await.unwrap_or(Err(GroupError::RebalanceInProgress));
            ResponseKind::SyncGroup(response(version, out))
        }))),
    }
}

fn response(version: i16, out: SyncOutcome) -> SyncGroupResponse {
    match out {
        Ok(r) => {
            let mut resp = SyncGroupResponse::default().with_assignment(r.assignment);
            if version >= 5 {
                resp = resp
                    .with_protocol_type(r.protocol_type.as_deref().map(str_bytes))
                    .with_protocol_name(r.protocol_name.as_deref().map(str_bytes));
            }
            resp
        }
        Err(e) => SyncGroupResponse::default().with_error_code(e.code().code()),
    }
}

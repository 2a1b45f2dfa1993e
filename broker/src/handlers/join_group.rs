//! JoinGroup: joins (or rejoins) a classic group; the answer waits until the join phase of
//! the rebalance completes. See `crate::group::classic` for the state machine.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse, ResponseKind};

use super::{Handled, Reply, RequestContext, str_bytes};
use crate::group::GroupError;
use crate::group::classic::{JoinArgs, Pending};
use crate::group::member::JoinOutcome;
use crate::security::acl::{Operation, ResourceType};

/// Handles JoinGroup.
pub async fn handle(ctx: &RequestContext, req: JoinGroupRequest) -> Handled {
    let version = ctx.version();
    let member_id = req.member_id.to_string();
    if !ctx.authorize(Operation::Read, ResourceType::Group, &req.group_id.0) {
        return ResponseKind::JoinGroup(
            JoinGroupResponse::default()
                .with_error_code(ResponseError::GroupAuthorizationFailed.code())
                .with_generation_id(-1)
                .with_protocol_name(if version >= 7 {
                    None
                } else {
                    Some(str_bytes(""))
                })
                .with_leader(str_bytes(""))
                .with_member_id(str_bytes("")),
        )
        .into();
    }
    let groups = &ctx.broker.groups;
    if let Err(e) = groups.ensure_ready(&ctx.broker.topics) {
        return ResponseKind::JoinGroup(response(version, &member_id, Err(e))).into();
    }
    let args = JoinArgs {
        member_id: member_id.clone(),
        instance_id: req.group_instance_id.map(|s| s.to_string()),
        client_id: client_id(ctx),
        client_host: format!("/{}", ctx.peer.ip()),
        session_timeout_ms: req.session_timeout_ms,
        // v0 has no rebalance timeout; Kafka uses the session timeout.
        rebalance_timeout_ms: if version == 0 {
            req.session_timeout_ms
        } else {
            req.rebalance_timeout_ms
        },
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: version >= 4,
    };
    match groups.join(&req.group_id.0, args) {
        Pending::Now(out) => ResponseKind::JoinGroup(response(version, &member_id, out)).into(),
        Pending::Wait(rx) => Handled::Reply(Reply::Later(Box::pin(async move {
            // The sender goes away only if the member was dropped without an answer.
            let out = rx.await.unwrap_or(Err(GroupError::UnknownMemberId));
            ResponseKind::JoinGroup(response(version, &member_id, out))
        }))),
    }
}

/// The client id of the request ("" if none).
pub fn client_id(ctx: &RequestContext) -> String {
    ctx.header
        .client_id
        .as_ref()
        .map(|s| s.to_string())
        .unwrap_or_default()
}

fn response(version: i16, request_member_id: &str, out: JoinOutcome) -> JoinGroupResponse {
    // ProtocolName is nullable only from v7.
    let name = |n: Option<String>| match n {
        Some(n) => Some(str_bytes(&n)),
        None if version >= 7 => None,
        None => Some(str_bytes("")),
    };
    match out {
        Ok(r) => JoinGroupResponse::default()
            .with_generation_id(r.generation)
            .with_protocol_type(r.protocol_type.as_deref().map(str_bytes))
            .with_protocol_name(name(r.protocol_name))
            .with_leader(str_bytes(&r.leader))
            .with_skip_assignment(r.skip_assignment && version >= 9)
            .with_member_id(str_bytes(&r.member_id))
            .with_members(
                r.members
                    .into_iter()
                    .map(|m| {
                        JoinGroupResponseMember::default()
                            .with_member_id(str_bytes(&m.member_id))
                            .with_group_instance_id(m.group_instance_id.as_deref().map(str_bytes))
                            .with_metadata(m.metadata)
                    })
                    .collect(),
            ),
        Err(e) => {
            let member_id = match &e {
                GroupError::MemberIdRequired(id) => id.as_str(),
                _ => request_member_id,
            };
            JoinGroupResponse::default()
                .with_error_code(e.code().code())
                .with_generation_id(-1)
                .with_protocol_name(name(None))
                .with_leader(str_bytes(""))
                .with_member_id(str_bytes(member_id))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::member::{JoinResponse, JoinedMember};
    use kafka_protocol::protocol::Encodable;

    #[test]
    fn responses_encode_at_every_served_version() {
        let ok = JoinResponse {
            member_id: "m".into(),
            generation: 1,
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            leader: "m".into(),
            skip_assignment: true,
            members: vec![JoinedMember {
                member_id: "m".into(),
                group_instance_id: Some("i".into()),
                metadata: bytes::Bytes::from_static(b"x"),
            }],
        };
        for v in 0..=9 {
            let mut buf = bytes::BytesMut::new();
            response(v, "", Ok(ok.clone())).encode(&mut buf, v).unwrap();
            let mut buf = bytes::BytesMut::new();
            let r = response(v, "", Err(GroupError::MemberIdRequired("new".into())));
            assert_eq!(r.member_id.as_str(), "new");
            r.encode(&mut buf, v).unwrap();
        }
    }
}

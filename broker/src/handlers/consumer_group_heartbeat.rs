//! ConsumerGroupHeartbeat (KIP-848): a member of a consumer group joins (epoch 0),
//! heartbeats with what it owns, learns its assignment and epoch, and leaves (-1, or -2 for
//! a static member leaving for a while). The broker assigns with its server-side assignors;
//! see `group::consumer`.

use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, ResponseKind,
};

use super::join_group::client_id;
use kafka_protocol::ResponseError;

use super::{Handled, Reply, RequestContext, str_bytes};
use crate::group::GroupError;
use crate::group::classic::Pending;
use crate::group::consumer::assignor;
use crate::group::consumer::{self, HeartbeatArgs, HeartbeatReply};
use crate::security::acl::{Operation, ResourceType};
use crate::topics::is_internal;

/// Handles ConsumerGroupHeartbeat.
pub async fn handle(ctx: &RequestContext, req: ConsumerGroupHeartbeatRequest) -> Handled {
    let interval = ctx.broker.config.group_consumer_heartbeat_interval_ms;
    // READ on the group, and DESCRIBE on every subscribed topic named (Kafka 4).
    let denied = if !ctx.authorize(Operation::Read, ResourceType::Group, &req.group_id.0) {
        Some((
            ResponseError::GroupAuthorizationFailed,
            "Group authorization failed.",
        ))
    } else if req.subscribed_topic_names.as_ref().is_some_and(|names| {
        !names
            .iter()
            .all(|t| ctx.authorize(Operation::Describe, ResourceType::Topic, &t.0))
    }) {
        Some((
            ResponseError::TopicAuthorizationFailed,
            "The group subscribes to topics the client is not authorized to describe.",
        ))
    } else {
        None
    };
    if let Some((code, message)) = denied {
        return ResponseKind::ConsumerGroupHeartbeat(
            ConsumerGroupHeartbeatResponse::default()
                .with_error_code(code.code())
                .with_error_message(Some(str_bytes(message))),
        )
        .into();
    }
    let owned = req.topic_partitions.map(|tps| {
        let mut a = assignor::Assignment::new();
        for tp in tps {
            a.entry(tp.topic_id).or_default().extend(tp.partitions);
        }
        a.retain(|_, ps| !ps.is_empty());
        a
    });
    let args = HeartbeatArgs {
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.map(|s| s.to_string()),
        rack_id: req.rack_id.map(|s| s.to_string()),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        subscribed_topic_names: req
            .subscribed_topic_names
            .map(|ts| ts.into_iter().map(|t| t.0.to_string()).collect()),
        server_assignor: req.server_assignor.map(|s| s.to_string()),
        owned,
        client_id: client_id(ctx),
        client_host: format!("/{}", ctx.peer.ip()),
    };
    let group_id = req.group_id.0.to_string();
    let regex = req.subscribed_topic_regex.as_deref().map(|s| s.to_string());
    if let Err(e) = consumer::validate(&group_id, &args, regex.as_deref(), ctx.version()) {
        tracing::debug!(group = %group_id, member = %args.member_id, "invalid ConsumerGroupHeartbeat: {e}");
        return ResponseKind::ConsumerGroupHeartbeat(response(Err(e), interval)).into();
    }
    let groups = &ctx.broker.groups;
    if let Err(e) = groups.ensure_ready(&ctx.broker.topics) {
        return ResponseKind::ConsumerGroupHeartbeat(response(Err(e), interval)).into();
    }
    let topics = &ctx.broker.topics;
    let lookup = |name: &str| {
        if is_internal(name) {
            return None;
        }
        topics
            .get(name)
            .map(|t| (t.record.topic_id, t.record.partitions))
    };
    match groups.consumer_heartbeat(&group_id, args, &lookup) {
        Pending::Now(out) => ResponseKind::ConsumerGroupHeartbeat(response(out, interval)).into(),
        Pending::Wait(rx) => Handled::Reply(Reply::Later(Box::pin(async move {
            let out = rx.await.unwrap_or(Err(GroupError::CoordinatorNotAvailable));
            ResponseKind::ConsumerGroupHeartbeat(response(out, interval))
        }))),
    }
}

fn response(
    out: Result<HeartbeatReply, GroupError>,
    interval_ms: i32,
) -> ConsumerGroupHeartbeatResponse {
    if let Err(e) = &out {
        tracing::debug!("ConsumerGroupHeartbeat refused: {e}");
    }
    match out {
        Ok(r) => ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(str_bytes(&r.member_id)))
            .with_member_epoch(r.member_epoch)
            .with_heartbeat_interval_ms(interval_ms)
            .with_assignment(r.assignment.map(|a| {
                Assignment::default().with_topic_partitions(
                    a.into_iter()
                        .map(|(t, ps)| {
                            TopicPartitions::default()
                                .with_topic_id(t)
                                .with_partitions(ps.into_iter().collect())
                        })
                        .collect(),
                )
            })),
        Err(e) => {
            let message = match &e {
                GroupError::InvalidRequest(m) => m.clone(),
                e => e.to_string(),
            };
            ConsumerGroupHeartbeatResponse::default()
                .with_error_code(e.code().code())
                .with_error_message(Some(str_bytes(&message)))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn errors_carry_code_and_message() {
        let r = response(Err(GroupError::FencedMemberEpoch), 5000);
        assert_eq!(r.error_code, 110);
        assert!(r.member_id.is_none());
        let r = response(
            Err(GroupError::InvalidRequest("MemberEpoch is invalid.".into())),
            1,
        );
        assert_eq!(r.error_code, 42);
        assert_eq!(r.error_message.as_deref(), Some("MemberEpoch is invalid."));
    }

    #[test]
    fn assignment_is_sent_only_when_given() {
        let reply = HeartbeatReply {
            member_id: "m".into(),
            member_epoch: 3,
            assignment: None,
        };
        let r = response(Ok(reply.clone()), 5000);
        assert_eq!((r.member_epoch, r.heartbeat_interval_ms), (3, 5000));
        assert!(r.assignment.is_none());
        let t = uuid::Uuid::from_u128(1);
        let reply = HeartbeatReply {
            assignment: Some(BTreeMap::from([(t, [0, 2].into())])),
            ..reply
        };
        let a = response(Ok(reply), 5000).assignment.unwrap_or_default();
        assert_eq!(a.topic_partitions.len(), 1);
        assert_eq!(a.topic_partitions[0].partitions, vec![0, 2]);
    }
}

//! ConsumerGroupDescribe (KIP-848): a consumer group's state, epochs, assignor and members
//! with their current and target assignments. Classic and unknown groups are
//! GROUP_ID_NOT_FOUND, as in Kafka (clients then fall back to DescribeGroups).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, GroupId, ResponseKind, TopicName,
};

use super::{Handled, RequestContext, str_bytes};
use crate::group::GroupError;
use crate::handlers::metadata::AUTHORIZED_OPERATIONS_OMITTED;
use crate::security::acl::{Operation, ResourceType};

/// Handles ConsumerGroupDescribe. A group the client may not DESCRIBE answers
/// GROUP_AUTHORIZATION_FAILED; one whose members are assigned topics the client may not
/// DESCRIBE answers TOPIC_AUTHORIZATION_FAILED without its members (Kafka 4).
pub async fn handle(ctx: &RequestContext, req: ConsumerGroupDescribeRequest) -> Handled {
    let ids: Vec<String> = req.group_ids.iter().map(|g| g.0.to_string()).collect();
    let (allowed, wanted) = ctx.authorize_each(Operation::Describe, ResourceType::Group, &ids);
    let mut described = ctx.broker.groups.consumer_describe(&wanted).into_iter();
    let groups = ids
        .iter()
        .zip(allowed)
        .map(|(id, allowed)| {
            let group = DescribedGroup::default().with_group_id(GroupId(str_bytes(id)));
            let error = |code: ResponseError, message: &str| {
                DescribedGroup::default()
                    .with_group_id(GroupId(str_bytes(id)))
                    .with_error_code(code.code())
                    .with_error_message(Some(str_bytes(message)))
                    .with_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
            };
            if !allowed {
                return error(
                    ResponseError::GroupAuthorizationFailed,
                    "Group authorization failed.",
                );
            }
            let Some(d) = described.next() else {
                return error(ResponseError::UnknownServerError, "group not described");
            };
            match d {
                Ok(d) => {
                    if ctx.authorizing() {
                        let mut topics: Vec<&str> = d
                            .members
                            .iter()
                            .flat_map(|m| m.assignment.iter().chain(&m.target_assignment))
                            .map(|(_, name, _)| name.as_str())
                            .collect();
                        topics.sort_unstable();
                        topics.dedup();
                        if !topics
                            .iter()
                            .all(|t| ctx.authorize(Operation::Describe, ResourceType::Topic, t))
                        {
                            return error(
                                ResponseError::TopicAuthorizationFailed,
                                "The group has described topic(s) that the client is not \
                                 authorized to describe.",
                            );
                        }
                    }
                    let operations = if req.include_authorized_operations {
                        ctx.authorized_operations(ResourceType::Group, id)
                    } else {
                        AUTHORIZED_OPERATIONS_OMITTED
                    };
                    group
                        .with_group_state(str_bytes(d.state))
                        .with_group_epoch(d.group_epoch)
                        .with_assignment_epoch(d.assignment_epoch)
                        .with_assignor_name(str_bytes(&d.assignor))
                        .with_authorized_operations(operations)
                        .with_members(
                            d.members
                                .into_iter()
                                .map(|m| {
                                    Member::default()
                                        .with_member_id(str_bytes(&m.member_id))
                                        .with_instance_id(m.instance_id.as_deref().map(str_bytes))
                                        .with_rack_id(m.rack_id.as_deref().map(str_bytes))
                                        .with_member_epoch(m.member_epoch)
                                        .with_client_id(str_bytes(&m.client_id))
                                        .with_client_host(str_bytes(&m.client_host))
                                        .with_subscribed_topic_names(
                                            m.subscribed_topic_names
                                                .iter()
                                                .map(|t| TopicName(str_bytes(t)))
                                                .collect(),
                                        )
                                        .with_assignment(assignment(m.assignment))
                                        .with_target_assignment(assignment(m.target_assignment))
                                        // 1: the member uses the consumer protocol (v1+).
                                        .with_member_type(1)
                                })
                                .collect(),
                        )
                }
                Err(e) => {
                    let message = match &e {
                        GroupError::GroupIdNotFound => {
                            format!("Group {id} is not a consumer group.")
                        }
                        e => e.to_string(),
                    };
                    group
                        .with_error_code(e.code().code())
                        .with_error_message(Some(str_bytes(&message)))
                        .with_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
                }
            }
        })
        .collect();
    ResponseKind::ConsumerGroupDescribe(
        ConsumerGroupDescribeResponse::default().with_groups(groups),
    )
    .into()
}

fn assignment(parts: Vec<(uuid::Uuid, String, Vec<i32>)>) -> Assignment {
    Assignment::default().with_topic_partitions(
        parts
            .into_iter()
            .map(|(id, name, ps)| {
                TopicPartitions::default()
                    .with_topic_id(id)
                    .with_topic_name(TopicName(str_bytes(&name)))
                    .with_partitions(ps)
            })
            .collect(),
    )
}

//! DescribeGroups: state, protocol and members of groups. An unknown group is described as
//! Dead without an error, as Kafka does up to v5; metadata and assignments are shown for
//! Stable groups only.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{
    DescribeGroupsRequest, DescribeGroupsResponse, GroupId, ResponseKind,
};

use super::{Handled, RequestContext, str_bytes};
use crate::handlers::metadata::AUTHORIZED_OPERATIONS_OMITTED;
use crate::security::acl::{Operation, ResourceType};

/// Handles DescribeGroups. A group the client may not DESCRIBE answers
/// GROUP_AUTHORIZATION_FAILED and is not looked up.
pub async fn handle(ctx: &RequestContext, req: DescribeGroupsRequest) -> Handled {
    let version = ctx.version();
    let ids: Vec<String> = req.groups.iter().map(|g| g.0.to_string()).collect();
    let (allowed, wanted) = ctx.authorize_each(Operation::Describe, ResourceType::Group, &ids);
    let mut described = ctx.broker.groups.describe(&wanted).into_iter();
    let operations = |id: &str| {
        if req.include_authorized_operations {
            ctx.authorized_operations(ResourceType::Group, id)
        } else {
            AUTHORIZED_OPERATIONS_OMITTED
        }
    };
    let groups = ids
        .iter()
        .zip(allowed)
        .map(|(id, allowed)| {
            let group = DescribedGroup::default().with_group_id(GroupId(str_bytes(id)));
            if !allowed {
                return group.with_error_code(ResponseError::GroupAuthorizationFailed.code());
            }
            let Some(d) = described.next() else {
                return group.with_error_code(ResponseError::UnknownServerError.code());
            };
            let group = group.with_authorized_operations(operations(id));
            match d {
                Err(e) => group
                    .with_error_code(e.code().code())
                    .with_group_state(str_bytes("Dead")),
                Ok(d) => group
                    .with_group_state(str_bytes(d.state))
                    .with_protocol_type(str_bytes(&d.protocol_type))
                    .with_protocol_data(str_bytes(&d.protocol))
                    .with_members(
                        d.members
                            .into_iter()
                            .map(|m| {
                                DescribedGroupMember::default()
                                    .with_member_id(str_bytes(&m.member_id))
                                    .with_group_instance_id(if version >= 4 {
                                        m.instance_id.as_deref().map(str_bytes)
                                    } else {
                                        None
                                    })
                                    .with_client_id(str_bytes(&m.client_id))
                                    .with_client_host(str_bytes(&m.client_host))
                                    .with_member_metadata(m.metadata)
                                    .with_member_assignment(m.assignment)
                            })
                            .collect(),
                    ),
            }
        })
        .collect();
    ResponseKind::DescribeGroups(DescribeGroupsResponse::default().with_groups(groups)).into()
}

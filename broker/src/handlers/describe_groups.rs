//! DescribeGroups: state, protocol and members of groups. An unknown group is described as
//! Dead without an error, as Kafka does up to v5; metadata and assignments are shown for
//! Stable groups only.

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{
    DescribeGroupsRequest, DescribeGroupsResponse, GroupId, ResponseKind,
};

use super::{Handled, RequestContext, str_bytes};
use crate::handlers::metadata::AUTHORIZED_OPERATIONS_OMITTED;

/// Group operations a client may perform (READ, DELETE, DESCRIBE as ACL operation bits);
/// without ACLs every client may perform all of them.
const GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

/// Handles DescribeGroups.
pub async fn handle(ctx: &RequestContext, req: DescribeGroupsRequest) -> Handled {
    let version = ctx.version();
    let operations = if req.include_authorized_operations {
        GROUP_OPERATIONS
    } else {
        AUTHORIZED_OPERATIONS_OMITTED
    };
    let ids: Vec<String> = req.groups.iter().map(|g| g.0.to_string()).collect();
    let described = ctx.broker.groups.describe(&ids);
    let groups = ids
        .iter()
        .zip(described)
        .map(|(id, d)| {
            let group = DescribedGroup::default()
                .with_group_id(GroupId(str_bytes(id)))
                .with_authorized_operations(operations);
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

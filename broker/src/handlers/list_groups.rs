//! ListGroups: every group, filtered by state (v4+) and type (v5+: "classic", or
//! "consumer" for KIP-848 groups).

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse, ResponseKind};

use super::{Handled, RequestContext, str_bytes};
use crate::security::acl::{CLUSTER_NAME, Operation, ResourceType};

/// Handles ListGroups.
pub async fn handle(ctx: &RequestContext, req: ListGroupsRequest) -> Handled {
    let version = ctx.version();
    let listed = match ctx.broker.groups.list() {
        Ok(l) => l,
        Err(e) => {
            return ResponseKind::ListGroups(
                ListGroupsResponse::default().with_error_code(e.code().code()),
            )
            .into();
        }
    };
    let wants = |filter: &[kafka_protocol::protocol::StrBytes], value: &str| {
        filter.is_empty() || filter.iter().any(|f| f.eq_ignore_ascii_case(value))
    };
    // DESCRIBE on the cluster lists every group; otherwise those the client may DESCRIBE
    // (both asked quietly: the client named no group).
    let all = !ctx.authorizing()
        || ctx.authorize_quietly(Operation::Describe, ResourceType::Cluster, CLUSTER_NAME);
    let groups = listed
        .into_iter()
        .filter(|g| wants(&req.states_filter, g.state) && wants(&req.types_filter, g.group_type))
        .filter(|g| {
            all || ctx.authorize_quietly(Operation::Describe, ResourceType::Group, &g.group_id)
        })
        .map(|g| {
            let mut entry = ListedGroup::default()
                .with_group_id(GroupId(str_bytes(&g.group_id)))
                .with_protocol_type(str_bytes(&g.protocol_type));
            if version >= 4 {
                entry = entry.with_group_state(str_bytes(g.state));
            }
            if version >= 5 {
                entry = entry.with_group_type(str_bytes(g.group_type));
            }
            entry
        })
        .collect();
    ResponseKind::ListGroups(ListGroupsResponse::default().with_groups(groups)).into()
}

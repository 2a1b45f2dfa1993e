//! DeleteGroups: deletes groups that have no members, with their committed offsets
//! (NON_EMPTY_GROUP otherwise). Answered once the tombstones are durable.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse, GroupId, ResponseKind};

use super::{Handled, Reply, RequestContext, str_bytes};
use crate::group::GroupError;
use crate::group::classic::Pending;
use crate::security::acl::{Operation, ResourceType};

/// Handles DeleteGroups.
pub async fn handle(ctx: &RequestContext, req: DeleteGroupsRequest) -> Handled {
    let groups = &ctx.broker.groups;
    // DELETE on each group; the denied ones are answered after the others, as Kafka does.
    let (ids, denied): (Vec<String>, Vec<String>) = req
        .groups_names
        .iter()
        .map(|g| g.0.to_string())
        .partition(|id| ctx.authorize(Operation::Delete, ResourceType::Group, id));
    let respond = move |results: Vec<(String, Result<(), GroupError>)>| {
        let mut resp = response(results);
        resp.results.extend(denied.iter().map(|id| {
            DeletableGroupResult::default()
                .with_group_id(GroupId(str_bytes(id)))
                .with_error_code(ResponseError::GroupAuthorizationFailed.code())
        }));
        ResponseKind::DeleteGroups(resp)
    };
    if ids.is_empty() {
        return respond(Vec::new()).into();
    }
    if let Err(e) = groups.ensure_ready(&ctx.broker.topics) {
        let results = ids.into_iter().map(|id| (id, Err(e.clone()))).collect();
        return respond(results).into();
    }
    match groups.delete_groups(&ids) {
        Pending::Now(results) => respond(results).into(),
        Pending::Wait(rx) => Handled::Reply(Reply::Later(Box::pin(async move {
            let results = rx.await.unwrap_or_else(|_| {
                ids.into_iter()
                    .map(|id| (id, Err(GroupError::CoordinatorNotAvailable)))
                    .collect()
            });
            respond(results)
        }))),
    }
}

fn response(results: Vec<(String, Result<(), GroupError>)>) -> DeleteGroupsResponse {
    DeleteGroupsResponse::default().with_results(
        results
            .into_iter()
            .map(|(id, r)| {
                DeletableGroupResult::default()
                    .with_group_id(GroupId(str_bytes(&id)))
                    .with_error_code(r.err().map(|e| e.code().code()).unwrap_or(0))
            })
            .collect(),
    )
}

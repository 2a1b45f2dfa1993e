//! ListPartitionReassignments: a single node never moves replicas, so no reassignment is
//! ever in progress: the answer lists none, whatever topics are asked about (Kafka, too,
//! lists only ongoing reassignments and skips topics it does not know).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, ResponseKind,
};

use super::{Handled, RequestContext, str_bytes};
use crate::security::acl::Operation;

/// Handles ListPartitionReassignments.
pub async fn handle(ctx: &RequestContext, _req: ListPartitionReassignmentsRequest) -> Handled {
    let resp = ListPartitionReassignmentsResponse::default();
    let resp = if ctx.authorize_cluster(Operation::Describe) {
        resp
    } else {
        resp.with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(str_bytes("Cluster authorization failed.")))
    };
    ResponseKind::ListPartitionReassignments(resp).into()
}

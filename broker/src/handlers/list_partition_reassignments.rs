//! ListPartitionReassignments: a single node never moves replicas, so no reassignment is
//! ever in progress: the answer lists none, whatever topics are asked about (Kafka, too,
//! lists only ongoing reassignments and skips topics it does not know).

use kafka_protocol::messages::{
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, ResponseKind,
};

use super::{Handled, RequestContext};

/// Handles ListPartitionReassignments.
pub async fn handle(_ctx: &RequestContext, _req: ListPartitionReassignmentsRequest) -> Handled {
    ResponseKind::ListPartitionReassignments(ListPartitionReassignmentsResponse::default()).into()
}

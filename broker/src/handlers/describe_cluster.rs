//! DescribeCluster: the cluster id, the controller and the brokers (this one).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, ResponseKind,
};

use super::metadata::AUTHORIZED_OPERATIONS_OMITTED;
use super::{Handled, RequestContext, str_bytes};
use crate::security::acl::{CLUSTER_NAME, Operation, ResourceType};

/// Handles DescribeCluster.
pub async fn handle(ctx: &RequestContext, req: DescribeClusterRequest) -> Handled {
    let e = ctx.endpoint();
    // v1+: endpoint type 1 = brokers, 2 = controllers; this node is both.
    if req.endpoint_type != 1 && req.endpoint_type != 2 {
        return ResponseKind::DescribeCluster(
            DescribeClusterResponse::default()
                .with_error_code(ResponseError::UnsupportedEndpointType.code())
                .with_endpoint_type(req.endpoint_type),
        )
        .into();
    }
    // Anyone may describe the cluster (Kafka checks nothing); the operations it may do on
    // it are reported when asked for, 0 without DESCRIBE.
    let operations = if !req.include_cluster_authorized_operations {
        AUTHORIZED_OPERATIONS_OMITTED
    } else if ctx.authorize_cluster(Operation::Describe) {
        ctx.authorized_operations(ResourceType::Cluster, CLUSTER_NAME)
    } else {
        0
    };
    ResponseKind::DescribeCluster(
        DescribeClusterResponse::default()
            .with_endpoint_type(req.endpoint_type)
            .with_cluster_id(str_bytes(&ctx.broker.topics.cluster_id()))
            .with_controller_id(BrokerId(e.node_id))
            .with_brokers(vec![
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(e.node_id))
                    .with_host(str_bytes(&e.host))
                    .with_port(e.port),
            ])
            .with_cluster_authorized_operations(operations),
    )
    .into()
}

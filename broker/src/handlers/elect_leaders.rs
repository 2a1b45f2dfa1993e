//! ElectLeaders, answered as a single-node Kafka cluster does: every partition is already
//! led by its preferred (and only) replica, so a named partition gets ELECTION_NOT_NEEDED
//! (UNKNOWN_TOPIC_OR_PARTITION if it does not exist), and a request for all partitions
//! (null) lists none, since Kafka lists only the partitions an election changed.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, ResponseKind};

use super::{Handled, RequestContext, str_bytes};
use crate::security::acl::Operation;

/// Kafka's election types: PREFERRED (0) and UNCLEAN (1).
const ELECTION_TYPES: std::ops::RangeInclusive<i8> = 0..=1;

/// Handles ElectLeaders.
pub async fn handle(ctx: &RequestContext, req: ElectLeadersRequest) -> Handled {
    let topics = &ctx.broker.topics;
    if !ctx.authorize_cluster(Operation::Alter) {
        // Every partition asked about carries the error too (the top-level code is v1+).
        let code = ResponseError::ClusterAuthorizationFailed.code();
        let results = req
            .topic_partitions
            .unwrap_or_default()
            .into_iter()
            .map(|t| {
                ReplicaElectionResult::default()
                    .with_topic(t.topic)
                    .with_partition_result(
                        t.partitions
                            .into_iter()
                            .map(|p| {
                                PartitionResult::default()
                                    .with_partition_id(p)
                                    .with_error_code(code)
                                    .with_error_message(None)
                            })
                            .collect(),
                    )
            })
            .collect();
        let resp = ElectLeadersResponse::default().with_replica_election_results(results);
        let resp = if ctx.version() >= 1 {
            resp.with_error_code(code)
        } else {
            resp
        };
        return ResponseKind::ElectLeaders(resp).into();
    }
    if !ELECTION_TYPES.contains(&req.election_type) {
        return ResponseKind::ElectLeaders(
            ElectLeadersResponse::default().with_error_code(ResponseError::InvalidRequest.code()),
        )
        .into();
    }
    let results = req
        .topic_partitions
        .unwrap_or_default()
        .into_iter()
        .map(|t| {
            let name = t.topic.0.to_string();
            let count = topics.get(&name).map(|info| info.record.partitions);
            let partition_result = t
                .partitions
                .into_iter()
                .map(|p| {
                    let (code, message) = match count {
                        Some(n) if (0..n).contains(&p) => (
                            ResponseError::ElectionNotNeeded,
                            "Leader election not needed for topic partition",
                        ),
                        _ => (
                            ResponseError::UnknownTopicOrPartition,
                            "The partition does not exist.",
                        ),
                    };
                    PartitionResult::default()
                        .with_partition_id(p)
                        .with_error_code(code.code())
                        .with_error_message(Some(str_bytes(message)))
                })
                .collect();
            ReplicaElectionResult::default()
                .with_topic(t.topic)
                .with_partition_result(partition_result)
        })
        .collect();
    ResponseKind::ElectLeaders(
        ElectLeadersResponse::default().with_replica_election_results(results),
    )
    .into()
}

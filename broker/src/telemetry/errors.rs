//! The error codes a response carries, top level and per resource, for
//! `floe_request_errors_total` (Kafka's `ErrorsPerSec`, counted from the same places).

use kafka_protocol::messages::ResponseKind;

/// Calls `f` with every error code in `body` (including 0 for the parts that succeeded).
pub fn for_each_error_code(body: &ResponseKind, f: &mut dyn FnMut(i16)) {
    use ResponseKind as R;
    match body {
        R::Produce(r) => r
            .responses
            .iter()
            .flat_map(|t| &t.partition_responses)
            .for_each(|p| f(p.error_code)),
        R::Fetch(r) => fetch(r, f),
        R::ListOffsets(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| f(p.error_code)),
        R::Metadata(r) => {
            f(r.error_code);
            for t in &r.topics {
                f(t.error_code);
                t.partitions.iter().for_each(|p| f(p.error_code));
            }
        }
        R::ApiVersions(r) => f(r.error_code),
        R::CreateTopics(r) => r.topics.iter().for_each(|t| f(t.error_code)),
        R::DeleteTopics(r) => r.responses.iter().for_each(|t| f(t.error_code)),
        R::DeleteRecords(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| f(p.error_code)),
        R::InitProducerId(r) => f(r.error_code),
        R::OffsetForLeaderEpoch(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| f(p.error_code)),
        R::DescribeConfigs(r) => r.results.iter().for_each(|x| f(x.error_code)),
        R::CreatePartitions(r) => r.results.iter().for_each(|x| f(x.error_code)),
        R::AlterConfigs(r) => r.responses.iter().for_each(|x| f(x.error_code)),
        R::IncrementalAlterConfigs(r) => r.responses.iter().for_each(|x| f(x.error_code)),
        R::DescribeCluster(r) => f(r.error_code),
        R::DescribeLogDirs(r) => {
            f(r.error_code);
            r.results.iter().for_each(|x| f(x.error_code));
        }
        R::FindCoordinator(r) => {
            f(r.error_code);
            r.coordinators.iter().for_each(|c| f(c.error_code));
        }
        R::JoinGroup(r) => f(r.error_code),
        R::SyncGroup(r) => f(r.error_code),
        R::Heartbeat(r) => f(r.error_code),
        R::LeaveGroup(r) => {
            f(r.error_code);
            r.members.iter().for_each(|m| f(m.error_code));
        }
        R::OffsetCommit(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| f(p.error_code)),
        R::OffsetFetch(r) => {
            f(r.error_code);
            r.topics
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| f(p.error_code));
            for g in &r.groups {
                f(g.error_code);
                g.topics
                    .iter()
                    .flat_map(|t| &t.partitions)
                    .for_each(|p| f(p.error_code));
            }
        }
        R::OffsetDelete(r) => {
            f(r.error_code);
            r.topics
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| f(p.error_code));
        }
        R::DescribeGroups(r) => r.groups.iter().for_each(|g| f(g.error_code)),
        R::ListGroups(r) => f(r.error_code),
        R::DeleteGroups(r) => r.results.iter().for_each(|g| f(g.error_code)),
        R::ConsumerGroupHeartbeat(r) => f(r.error_code),
        R::ConsumerGroupDescribe(r) => r.groups.iter().for_each(|g| f(g.error_code)),
        R::AddPartitionsToTxn(r) => {
            f(r.error_code);
            r.results_by_transaction
                .iter()
                .flat_map(|t| &t.topic_results)
                .chain(&r.results_by_topic_v3_and_below)
                .flat_map(|t| &t.results_by_partition)
                .for_each(|p| f(p.partition_error_code));
        }
        R::AddOffsetsToTxn(r) => f(r.error_code),
        R::EndTxn(r) => f(r.error_code),
        R::TxnOffsetCommit(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| f(p.error_code)),
        R::DescribeProducers(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| f(p.error_code)),
        R::DescribeTransactions(r) => r.transaction_states.iter().for_each(|t| f(t.error_code)),
        R::ListTransactions(r) => f(r.error_code),
        R::DescribeTopicPartitions(r) => r.topics.iter().for_each(|t| {
            f(t.error_code);
            t.partitions.iter().for_each(|p| f(p.error_code));
        }),
        R::ElectLeaders(r) => {
            f(r.error_code);
            r.replica_election_results
                .iter()
                .flat_map(|t| &t.partition_result)
                .for_each(|p| f(p.error_code));
        }
        R::ListPartitionReassignments(r) => f(r.error_code),
        // APIs the broker does not serve produce no responses.
        _ => {}
    }
}

/// The error codes of a Fetch response (also answered apart, see `FetchReply`).
pub fn fetch(r: &kafka_protocol::messages::FetchResponse, f: &mut dyn FnMut(i16)) {
    f(r.error_code);
    r.responses
        .iter()
        .flat_map(|t| &t.partitions)
        .for_each(|p| f(p.error_code));
}

/// Kafka's name of an error code (`UNKNOWN_TOPIC_OR_PARTITION`); `UNKNOWN_CODE_<n>` for a
/// code this build does not know.
pub fn error_name(code: i16) -> String {
    match kafka_protocol::error::ResponseError::try_from_code(code) {
        // The crate names codes it does not know `Unknown(n)`.
        Some(e) if !format!("{e:?}").starts_with("Unknown(") => screaming_snake(&format!("{e:?}")),
        _ if code == 0 => "NONE".into(),
        _ => format!("UNKNOWN_CODE_{code}"),
    }
}

/// `UnknownTopicOrPartition` → `UNKNOWN_TOPIC_OR_PARTITION`.
fn screaming_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_error_names() {
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(0), "NONE");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(9999), "UNKNOWN_CODE_9999");
    }
}

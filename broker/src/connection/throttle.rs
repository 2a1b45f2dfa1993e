//! Client quotas on a connection, as Kafka applies them (KIP-219): the request is answered
//! at once with `throttle_time_ms` set, and the connection reads nothing more for that
//! long. Produce request bytes, consumer Fetch response bytes and the time handlers take
//! are measured against the quotas of the client's user and client id
//! (`crate::security::quota`).

use kafka_protocol::messages::ResponseKind;

/// Sets `throttle_time_ms` of a response to at least `ms`, where the response's version
/// carries the field (older versions are only muted, as Kafka does).
pub fn set_throttle_time(body: &mut ResponseKind, version: i16, ms: i32) {
    macro_rules! throttle {
        ($($kind:ident >= $min:literal),* $(,)?) => {
            match body {
                $(ResponseKind::$kind(r) if version >= $min => {
                    r.throttle_time_ms = r.throttle_time_ms.max(ms);
                })*
                _ => {}
            }
        };
    }
    // The first version of each response with `throttle_time_ms` (Kafka's message specs).
    throttle!(
        Produce >= 1,
        Fetch >= 1,
        ListOffsets >= 2,
        Metadata >= 3,
        ApiVersions >= 1,
        CreateTopics >= 2,
        DeleteTopics >= 1,
        DeleteRecords >= 0,
        InitProducerId >= 0,
        OffsetForLeaderEpoch >= 2,
        DescribeConfigs >= 0,
        CreatePartitions >= 0,
        AlterConfigs >= 0,
        IncrementalAlterConfigs >= 0,
        DescribeCluster >= 0,
        DescribeLogDirs >= 0,
        FindCoordinator >= 1,
        JoinGroup >= 2,
        SyncGroup >= 1,
        Heartbeat >= 1,
        LeaveGroup >= 1,
        OffsetCommit >= 3,
        OffsetFetch >= 3,
        OffsetDelete >= 0,
        DescribeGroups >= 1,
        ListGroups >= 1,
        DeleteGroups >= 0,
        ConsumerGroupHeartbeat >= 0,
        ConsumerGroupDescribe >= 0,
        AddPartitionsToTxn >= 0,
        AddOffsetsToTxn >= 0,
        EndTxn >= 0,
        TxnOffsetCommit >= 0,
        DescribeProducers >= 0,
        DescribeTransactions >= 0,
        ListTransactions >= 0,
        ElectLeaders >= 0,
        ListPartitionReassignments >= 0,
        DescribeTopicPartitions >= 0,
        DescribeAcls >= 0,
        CreateAcls >= 0,
        DeleteAcls >= 0,
        DescribeUserScramCredentials >= 0,
        AlterUserScramCredentials >= 0,
        DescribeClientQuotas >= 0,
        AlterClientQuotas >= 0,
    );
}

/// Bytes of record data in a Fetch response (what the consumer byte rate counts).
pub fn fetch_bytes(body: &kafka_protocol::messages::FetchResponse) -> u64 {
    body.responses
        .iter()
        .flat_map(|t| &t.partitions)
        .filter_map(|p| p.records.as_ref())
        .map(|r| r.len() as u64)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{MetadataResponse, ProduceResponse};

    #[test]
    fn throttle_time_is_set_only_where_the_version_carries_it() {
        let mut produce = ResponseKind::Produce(ProduceResponse::default());
        set_throttle_time(&mut produce, 9, 250);
        let ResponseKind::Produce(p) = &produce else {
            unreachable!()
        };
        assert_eq!(p.throttle_time_ms, 250);
        let mut old = ResponseKind::Metadata(MetadataResponse::default());
        set_throttle_time(&mut old, 2, 250);
        let ResponseKind::Metadata(m) = &old else {
            unreachable!()
        };
        assert_eq!(m.throttle_time_ms, 0, "Metadata v2 has no throttle_time_ms");
        let mut new =
            ResponseKind::Metadata(MetadataResponse::default().with_throttle_time_ms(900));
        set_throttle_time(&mut new, 12, 250);
        let ResponseKind::Metadata(m) = &new else {
            unreachable!()
        };
        assert_eq!(m.throttle_time_ms, 900, "the larger throttle stays");
    }
}

//! DescribeLogDirs: the data directory with the size of every partition in it (AdminClient
//! `describeLogDirs`, `kafka-log-dirs.sh`), and its total and usable bytes (v4).
//!
//! Floe has one data directory. A partition that is offline (its log could not be opened,
//! or was taken offline since) is reported the way Kafka reports a failed log directory: as
//! an entry of its own, `<data_dir>/<topic>-<partition>`, with KAFKA_STORAGE_ERROR, so
//! tools show which partition is down; the reason is in the broker's log.

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{
    DescribeLogDirsRequest, DescribeLogDirsResponse, ResponseKind, TopicName,
};

use super::{Handled, RequestContext, str_bytes};
use crate::security::acl::Operation;

/// Handles DescribeLogDirs.
pub async fn handle(ctx: &RequestContext, req: DescribeLogDirsRequest) -> Handled {
    if !ctx.authorize_cluster(Operation::Describe) {
        // v3+ carry the error; older versions just get no directories, as from Kafka.
        return ResponseKind::DescribeLogDirs(
            DescribeLogDirsResponse::default()
                .with_error_code(ResponseError::ClusterAuthorizationFailed.code()),
        )
        .into();
    }
    let broker = &ctx.broker;
    let data_dir = broker.config.data_dir.clone();
    // `None`: every partition; otherwise the listed ones that exist.
    let wanted: Option<BTreeMap<String, Vec<i32>>> = req.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| (t.topic.0.to_string(), t.partitions))
            .collect()
    });
    let mut online: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    let mut offline: Vec<(String, i32)> = Vec::new();
    for topic in broker.topics.list() {
        let partitions: Vec<i32> = match &wanted {
            None => (0..topic.record.partitions).collect(),
            Some(w) => match w.get(&topic.name) {
                Some(ps) => ps
                    .iter()
                    .copied()
                    .filter(|p| (0..topic.record.partitions).contains(p))
                    .collect(),
                None => continue,
            },
        };
        for p in partitions {
            match broker.topics.lookup(&topic.name, p) {
                Ok(log) => online.entry(topic.name.clone()).or_default().push(
                    DescribeLogDirsPartition::default()
                        .with_partition_index(p)
                        .with_partition_size(i64::try_from(log.size_bytes()).unwrap_or(i64::MAX))
                        .with_offset_lag(0),
                ),
                Err(_) => offline.push((topic.name.clone(), p)),
            }
        }
    }
    let (total, usable) = {
        let dir = data_dir.clone();
        // statvfs may block (a hung network file system); keep it off the runtime threads.
        match tokio::task::spawn_blocking(move || rustix::fs::statvfs(&dir)).await {
            Ok(Ok(st)) => (
                i64::try_from(st.f_blocks.saturating_mul(st.f_frsize)).unwrap_or(i64::MAX),
                i64::try_from(st.f_bavail.saturating_mul(st.f_frsize)).unwrap_or(i64::MAX),
            ),
            _ => (-1, -1),
        }
    };
    let topic_entry = |name: &str, partitions| {
        DescribeLogDirsTopic::default()
            .with_name(TopicName(str_bytes(name)))
            .with_partitions(partitions)
    };
    let mut results = vec![
        DescribeLogDirsResult::default()
            .with_log_dir(str_bytes(&data_dir.display().to_string()))
            .with_topics(
                online
                    .into_iter()
                    .map(|(name, ps)| topic_entry(&name, ps))
                    .collect(),
            )
            .with_total_bytes(total)
            .with_usable_bytes(usable),
    ];
    for (name, p) in offline {
        let dir = data_dir.join(format!("{name}-{p}"));
        results.push(
            DescribeLogDirsResult::default()
                .with_error_code(ResponseError::KafkaStorageError.code())
                .with_log_dir(str_bytes(&dir.display().to_string()))
                .with_topics(vec![topic_entry(
                    &name,
                    vec![
                        DescribeLogDirsPartition::default()
                            .with_partition_index(p)
                            .with_partition_size(-1)
                            .with_offset_lag(-1),
                    ],
                )])
                .with_total_bytes(-1)
                .with_usable_bytes(-1),
        );
    }
    ResponseKind::DescribeLogDirs(DescribeLogDirsResponse::default().with_results(results)).into()
}

//! ListOffsets for the commands: the earliest, latest or first-at-a-timestamp offset of
//! partitions, each asked of its leader.

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::messages::BrokerId;
use kafka_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic,
};

use crate::cli::client::{Client, TopicMeta, topic_name};
use crate::cli::error::check;

/// ListOffsets' special timestamp for the log start offset.
pub const EARLIEST: i64 = -2;
/// ListOffsets' special timestamp for the log end offset (or LSO under read_committed).
pub const LATEST: i64 = -1;

/// The offset ListOffsets answers for `timestamp` (EARLIEST, LATEST or milliseconds) in each
/// of `partitions` of `topic`: `None` where no record is at or after the timestamp.
pub fn list_offsets(
    client: &mut Client,
    topic: &TopicMeta,
    partitions: &[i32],
    timestamp: i64,
    read_committed: bool,
) -> anyhow::Result<BTreeMap<i32, Option<i64>>> {
    client.retry(|c| {
        let mut by_leader: HashMap<i32, Vec<i32>> = HashMap::new();
        for &p in partitions {
            by_leader.entry(topic.leader(p)?).or_default().push(p);
        }
        let mut out = BTreeMap::new();
        for (leader, parts) in by_leader {
            let timeout = i32::try_from(c.request_timeout().as_millis()).unwrap_or(i32::MAX);
            let req = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_isolation_level(i8::from(read_committed))
                .with_timeout_ms(timeout)
                .with_topics(vec![
                    ListOffsetsTopic::default()
                        .with_name(topic_name(&topic.name))
                        .with_partitions(
                            parts
                                .iter()
                                .map(|&p| {
                                    ListOffsetsPartition::default()
                                        .with_partition_index(p)
                                        .with_current_leader_epoch(-1)
                                        .with_timestamp(timestamp)
                                })
                                .collect(),
                        ),
                ]);
            let resp = c.node(leader)?.call(&req)?;
            for t in resp.topics {
                for p in t.partitions {
                    check(p.error_code, None, || {
                        format!("listing offsets of {}[{}]", topic.name, p.partition_index)
                    })?;
                    out.insert(p.partition_index, (p.offset >= 0).then_some(p.offset));
                }
            }
        }
        for &p in partitions {
            if !out.contains_key(&p) {
                anyhow::bail!("ListOffsets answered nothing for {}[{p}]", topic.name);
            }
        }
        Ok(out)
    })
}

/// Like [`list_offsets`] for EARLIEST or LATEST, where every partition has an offset.
pub fn bounds(
    client: &mut Client,
    topic: &TopicMeta,
    partitions: &[i32],
    which: i64,
) -> anyhow::Result<BTreeMap<i32, i64>> {
    Ok(list_offsets(client, topic, partitions, which, false)?
        .into_iter()
        .map(|(p, o)| (p, o.unwrap_or(0)))
        .collect())
}

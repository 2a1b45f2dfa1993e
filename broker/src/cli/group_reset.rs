//! `floe group reset-offsets`: commit new offsets for a topic's partitions on behalf of an
//! empty group, as Kafka's `kafka-consumer-groups.sh --reset-offsets` does (OffsetCommit with
//! generation -1 and no member). A group with members is refused with NON_EMPTY_GROUP: its
//! consumers would overwrite the offsets.

use std::collections::BTreeMap;

use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequest, OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::protocol::StrBytes;
use serde_json::{Value, json};

use crate::cli::client::{Client, group_id, topic_name};
use crate::cli::error::{self, check};
use crate::cli::group::describe_group;
use crate::cli::offsets::{EARLIEST, LATEST, bounds, list_offsets};
use crate::cli::output::{Out, Table, or_dash};

/// NON_EMPTY_GROUP.
const NON_EMPTY_GROUP: i16 = 68;

/// Where to move the offsets.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// The log start offset.
    Earliest,
    /// The log end offset.
    Latest,
    /// The first offset at or after this time (the log end if none).
    Timestamp(i64),
    /// This offset, clamped to the log start and end.
    Offset(i64),
}

/// Plans and (unless `dry_run`) commits the reset.
pub fn run(
    client: &mut Client,
    out: &mut Out,
    group: &str,
    topic: &str,
    partitions: &[i32],
    target: Target,
    dry_run: bool,
) -> anyhow::Result<()> {
    let state = describe_group(client, group)?;
    if !state.members.is_empty() || !matches!(state.state.as_str(), "Empty" | "Dead" | "") {
        return Err(error::kafka(
            NON_EMPTY_GROUP,
            format!("resetting the offsets of group '{group}'"),
            format!(
                "the group is {} with {} member(s); offsets can only be reset while it has none",
                state.state,
                state.members.len()
            ),
        ));
    }
    let meta = client.topic(topic, false)?;
    let parts: Vec<i32> = if partitions.is_empty() {
        meta.partitions.iter().map(|p| p.index).collect()
    } else {
        for &p in partitions {
            meta.leader(p)?;
        }
        partitions.to_vec()
    };
    let new: BTreeMap<i32, i64> = match target {
        Target::Earliest => bounds(client, &meta, &parts, EARLIEST)?,
        Target::Latest => bounds(client, &meta, &parts, LATEST)?,
        Target::Timestamp(ms) => {
            let found = list_offsets(client, &meta, &parts, ms, false)?;
            let ends = bounds(client, &meta, &parts, LATEST)?;
            found
                .into_iter()
                .map(|(p, o)| (p, o.unwrap_or_else(|| ends.get(&p).copied().unwrap_or(0))))
                .collect()
        }
        Target::Offset(n) => {
            let starts = bounds(client, &meta, &parts, EARLIEST)?;
            let ends = bounds(client, &meta, &parts, LATEST)?;
            parts
                .iter()
                .map(|p| {
                    let lo = starts.get(p).copied().unwrap_or(0);
                    let hi = ends.get(p).copied().unwrap_or(lo).max(lo);
                    (*p, n.clamp(lo, hi))
                })
                .collect()
        }
    };
    if !dry_run {
        commit(client, group, topic, &new)?;
    }
    let rows: Vec<Value> = new
        .iter()
        .map(|(p, o)| {
            json!({
                "partition": p,
                "current_offset": state.offsets.get(&(topic.to_string(), *p)),
                "new_offset": o,
            })
        })
        .collect();
    let value = json!({"group": group, "topic": topic, "dry_run": dry_run, "partitions": rows});
    out.emit(&value, || {
        let mut table = Table::new(&["TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"]);
        for (p, o) in &new {
            table.row(vec![
                topic.to_string(),
                p.to_string(),
                or_dash(state.offsets.get(&(topic.to_string(), *p))),
                o.to_string(),
            ]);
        }
        let note = if dry_run {
            "Dry run: nothing committed.\n"
        } else {
            ""
        };
        format!("{}{note}", table.render())
    })
}

fn commit(
    client: &mut Client,
    group: &str,
    topic: &str,
    offsets: &BTreeMap<i32, i64>,
) -> anyhow::Result<()> {
    let req = OffsetCommitRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(StrBytes::from_static_str(""))
        .with_retention_time_ms(-1)
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(
                    offsets
                        .iter()
                        .map(|(&p, &o)| {
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(o)
                                .with_committed_leader_epoch(-1)
                                .with_committed_metadata(Some(StrBytes::from_static_str("")))
                        })
                        .collect(),
                ),
        ]);
    client.retry(|c| {
        let resp = c.coordinator(group)?.call(&req)?;
        for t in &resp.topics {
            for p in &t.partitions {
                check(p.error_code, None, || {
                    format!(
                        "committing the offset of {topic}[{}] for group '{group}'",
                        p.partition_index
                    )
                })?;
            }
        }
        Ok(())
    })
}

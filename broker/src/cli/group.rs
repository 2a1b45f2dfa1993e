//! `floe group`: list, describe (members, assignments, committed offsets, log end offsets and
//! lag), delete; reset-offsets is in `group_reset.rs`.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::anyhow;
use bytes::Bytes;
use kafka_protocol::messages::consumer_protocol_assignment::ConsumerProtocolAssignment;
use kafka_protocol::messages::delete_groups_request::DeleteGroupsRequest;
use kafka_protocol::messages::describe_groups_request::DescribeGroupsRequest;
use kafka_protocol::messages::list_groups_request::ListGroupsRequest;
use kafka_protocol::messages::offset_fetch_request::{OffsetFetchRequest, OffsetFetchRequestGroup};
use kafka_protocol::protocol::Decodable;
use serde_json::{Value, json};

use crate::cli::args::GroupCommand;
use crate::cli::client::{Client, group_id};
use crate::cli::error::{self, check};
use crate::cli::group_reset;
use crate::cli::offsets::{LATEST, bounds};
use crate::cli::output::{Out, Table, or_dash};

/// Runs one `floe group` command.
pub fn run(client: &mut Client, out: &mut Out, command: GroupCommand) -> anyhow::Result<()> {
    match command {
        GroupCommand::List => list(client, out),
        GroupCommand::Describe { groups } => describe(client, out, &groups),
        GroupCommand::Delete { groups } => delete(client, out, &groups),
        GroupCommand::ResetOffsets {
            group,
            topic,
            partitions,
            to_earliest,
            to_latest,
            to_timestamp,
            to_offset,
            dry_run,
        } => {
            let target = match (to_earliest, to_latest, to_timestamp, to_offset) {
                (true, _, _, _) => group_reset::Target::Earliest,
                (_, true, _, _) => group_reset::Target::Latest,
                (_, _, Some(ms), _) => group_reset::Target::Timestamp(ms),
                (_, _, _, Some(n)) => group_reset::Target::Offset(n),
                _ => {
                    return Err(error::usage(
                        "give one of --to-earliest, --to-latest, --to-timestamp, --to-offset",
                    ));
                }
            };
            group_reset::run(client, out, &group, &topic, &partitions, target, dry_run)
        }
    }
}

fn list(client: &mut Client, out: &mut Out) -> anyhow::Result<()> {
    let meta = client.cluster(Some(&[]), false)?;
    let mut groups: BTreeMap<String, Value> = BTreeMap::new();
    for broker in &meta.brokers {
        let resp = client
            .node(broker.node_id)?
            .call(&ListGroupsRequest::default())?;
        check(resp.error_code, None, || {
            format!("listing the groups of broker {}", broker.node_id)
        })?;
        for g in resp.groups {
            let name = g.group_id.0.to_string();
            let value = json!({
                "group": name,
                "protocol_type": g.protocol_type.to_string(),
                "state": (!g.group_state.is_empty()).then(|| g.group_state.to_string()),
                "type": (!g.group_type.is_empty()).then(|| g.group_type.to_string()),
                "coordinator": broker.node_id,
            });
            groups.insert(name, value);
        }
    }
    let value = Value::Array(groups.into_values().collect());
    out.emit(&value, || {
        let mut table = Table::new(&["GROUP", "STATE", "PROTOCOL-TYPE", "COORDINATOR"]);
        for g in value.as_array().into_iter().flatten() {
            table.row(vec![
                g["group"].as_str().unwrap_or("").to_string(),
                or_dash(g["state"].as_str()),
                g["protocol_type"].as_str().unwrap_or("").to_string(),
                g["coordinator"].to_string(),
            ]);
        }
        table.render()
    })
}

/// A member of a group.
pub struct Member {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// (topic, partitions) assigned, for the consumer protocol.
    pub assignment: Vec<(String, Vec<i32>)>,
}

/// A group as DescribeGroups and OffsetFetch show it.
pub struct GroupState {
    pub coordinator: i32,
    pub state: String,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<Member>,
    /// Committed offsets by (topic, partition).
    pub offsets: BTreeMap<(String, i32), i64>,
}

/// DescribeGroups and OffsetFetch (every topic) of `group` from its coordinator.
pub fn describe_group(client: &mut Client, group: &str) -> anyhow::Result<GroupState> {
    client.retry(|c| {
        let coordinator = c.coordinator_id(group)?;
        let conn = c.node(coordinator)?;
        let resp =
            conn.call(&DescribeGroupsRequest::default().with_groups(vec![group_id(group)]))?;
        let g = resp
            .groups
            .into_iter()
            .next()
            .ok_or_else(|| anyhow!("DescribeGroups answered nothing for '{group}'"))?;
        check(g.error_code, g.error_message.as_deref(), || {
            format!("describing group '{group}'")
        })?;
        let consumer = g.protocol_type.as_str() == "consumer";
        let members = g
            .members
            .iter()
            .map(|m| Member {
                member_id: m.member_id.to_string(),
                instance_id: m.group_instance_id.as_ref().map(ToString::to_string),
                client_id: m.client_id.to_string(),
                client_host: m.client_host.to_string(),
                assignment: if consumer {
                    assignment(&m.member_assignment)
                } else {
                    Vec::new()
                },
            })
            .collect();
        let offsets = committed_offsets(c, coordinator, group)?;
        Ok(GroupState {
            coordinator,
            state: g.group_state.to_string(),
            protocol_type: g.protocol_type.to_string(),
            protocol: g.protocol_data.to_string(),
            members,
            offsets,
        })
    })
}

/// A consumer-protocol assignment (a version, then the body); empty if it does not decode.
fn assignment(bytes: &Bytes) -> Vec<(String, Vec<i32>)> {
    if bytes.len() < 2 {
        return Vec::new();
    }
    let version = i16::from_be_bytes([bytes[0], bytes[1]]).clamp(0, 3);
    let mut body = bytes.slice(2..);
    match ConsumerProtocolAssignment::decode(&mut body, version) {
        Ok(a) => a
            .assigned_partitions
            .into_iter()
            .map(|tp| (tp.topic.0.to_string(), tp.partitions))
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn committed_offsets(
    client: &mut Client,
    coordinator: i32,
    group: &str,
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let conn = client.node(coordinator)?;
    let version = conn.version::<OffsetFetchRequest>()?;
    let context = || format!("fetching the committed offsets of group '{group}'");
    let mut offsets = BTreeMap::new();
    let mut add = |topic: String, partition: i32, offset: i64, code: i16| -> anyhow::Result<()> {
        check(code, None, context)?;
        if offset >= 0 {
            offsets.insert((topic, partition), offset);
        }
        Ok(())
    };
    if version >= 8 {
        let req = OffsetFetchRequest::default().with_groups(vec![
            OffsetFetchRequestGroup::default()
                .with_group_id(group_id(group))
                .with_topics(None),
        ]);
        let resp = conn.call_at(&req, version)?;
        for g in resp.groups {
            check(g.error_code, None, context)?;
            for t in g.topics {
                for p in t.partitions {
                    add(
                        t.name.0.to_string(),
                        p.partition_index,
                        p.committed_offset,
                        p.error_code,
                    )?;
                }
            }
        }
    } else {
        let req = OffsetFetchRequest::default()
            .with_group_id(group_id(group))
            .with_topics(None);
        let resp = conn.call_at(&req, version)?;
        check(resp.error_code, None, context)?;
        for t in resp.topics {
            for p in t.partitions {
                add(
                    t.name.0.to_string(),
                    p.partition_index,
                    p.committed_offset,
                    p.error_code,
                )?;
            }
        }
    }
    Ok(offsets)
}

fn describe(client: &mut Client, out: &mut Out, groups: &[String]) -> anyhow::Result<()> {
    let mut described = Vec::new();
    for group in groups {
        let g = describe_group(client, group)?;
        if g.state == "Dead" && g.members.is_empty() && g.offsets.is_empty() {
            return Err(error::kafka(
                69,
                format!("describing group '{group}'"),
                "the group does not exist",
            ));
        }
        // Every partition with a committed offset or an owner.
        let mut owners: BTreeMap<(String, i32), String> = BTreeMap::new();
        for m in &g.members {
            for (topic, parts) in &m.assignment {
                for &p in parts {
                    owners.insert((topic.clone(), p), m.member_id.clone());
                }
            }
        }
        let mut rows: BTreeSet<(String, i32)> = g.offsets.keys().cloned().collect();
        rows.extend(owners.keys().cloned());
        let topics: BTreeSet<String> = rows.iter().map(|(t, _)| t.clone()).collect();
        let mut ends: BTreeMap<(String, i32), i64> = BTreeMap::new();
        for topic in topics {
            let Ok(meta) = client.topic(&topic, false) else {
                continue; // deleted since: no log end offset
            };
            let parts: Vec<i32> = rows
                .iter()
                .filter(|(t, p)| {
                    *t == topic
                        && meta
                            .partitions
                            .iter()
                            .any(|m| m.index == *p && m.leader >= 0)
                })
                .map(|(_, p)| *p)
                .collect();
            for (p, end) in bounds(client, &meta, &parts, LATEST)? {
                ends.insert((topic.clone(), p), end);
            }
        }
        let mut total_lag = 0i64;
        let offsets: Vec<Value> = rows
            .iter()
            .map(|key| {
                let committed = g.offsets.get(key).copied();
                let end = ends.get(key).copied();
                let lag = committed.zip(end).map(|(c, e)| e.saturating_sub(c).max(0));
                total_lag = total_lag.saturating_add(lag.unwrap_or(0));
                json!({
                    "topic": key.0,
                    "partition": key.1,
                    "committed_offset": committed,
                    "log_end_offset": end,
                    "lag": lag,
                    "member_id": owners.get(key),
                })
            })
            .collect();
        let members: Vec<Value> = g
            .members
            .iter()
            .map(|m| {
                json!({
                    "member_id": m.member_id,
                    "instance_id": m.instance_id,
                    "client_id": m.client_id,
                    "client_host": m.client_host,
                    "assignments": m.assignment.iter().map(|(t, p)| json!({"topic": t, "partitions": p})).collect::<Vec<_>>(),
                })
            })
            .collect();
        described.push(json!({
            "group": group,
            "coordinator": g.coordinator,
            "state": g.state,
            "protocol_type": g.protocol_type,
            "protocol": g.protocol,
            "members": members,
            "offsets": offsets,
            "total_lag": total_lag,
        }));
    }
    let value = Value::Array(described);
    out.emit(&value, || describe_text(&value))
}

fn describe_text(value: &Value) -> String {
    let s = |v: &Value| match v {
        Value::Null => "-".to_string(),
        Value::String(s) if s.is_empty() => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut text = String::new();
    for (i, g) in value.as_array().into_iter().flatten().enumerate() {
        if i > 0 {
            text.push('\n');
        }
        let members = g["members"].as_array().cloned().unwrap_or_default();
        let mut summary = Table::new(&["GROUP", &s(&g["group"])]);
        summary.row(vec!["COORDINATOR".into(), s(&g["coordinator"])]);
        summary.row(vec!["STATE".into(), s(&g["state"])]);
        summary.row(vec!["PROTOCOL-TYPE".into(), s(&g["protocol_type"])]);
        summary.row(vec!["PROTOCOL".into(), s(&g["protocol"])]);
        summary.row(vec!["MEMBERS".into(), members.len().to_string()]);
        summary.row(vec!["TOTAL-LAG".into(), s(&g["total_lag"])]);
        text.push_str(&summary.render());
        let mut table = Table::new(&[
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
            "MEMBER-ID",
        ]);
        for o in g["offsets"].as_array().into_iter().flatten() {
            table.row(
                [
                    "topic",
                    "partition",
                    "committed_offset",
                    "log_end_offset",
                    "lag",
                    "member_id",
                ]
                .iter()
                .map(|k| s(&o[*k]))
                .collect(),
            );
        }
        text.push('\n');
        text.push_str(&table.render());
        if !members.is_empty() {
            let mut mt = Table::new(&[
                "MEMBER-ID",
                "INSTANCE-ID",
                "CLIENT-ID",
                "HOST",
                "ASSIGNMENT",
            ]);
            for m in &members {
                let assignment: Vec<String> = m["assignments"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|a| format!("{}:{}", s(&a["topic"]), a["partitions"]))
                    .collect();
                mt.row(vec![
                    s(&m["member_id"]),
                    s(&m["instance_id"]),
                    s(&m["client_id"]),
                    s(&m["client_host"]),
                    assignment.join(" "),
                ]);
            }
            text.push('\n');
            text.push_str(&mt.render());
        }
    }
    text
}

fn delete(client: &mut Client, out: &mut Out, groups: &[String]) -> anyhow::Result<()> {
    let mut deleted = Vec::new();
    for group in groups {
        client.retry(|c| {
            let req = DeleteGroupsRequest::default().with_groups_names(vec![group_id(group)]);
            let resp = c.coordinator(group)?.call(&req)?;
            for r in resp.results {
                check(r.error_code, None, || format!("deleting group '{group}'"))?;
            }
            Ok(())
        })?;
        deleted.push(group.clone());
    }
    let value = Value::Array(
        deleted
            .iter()
            .map(|g| json!({"group": g, "deleted": true}))
            .collect(),
    );
    out.emit(&value, || {
        let mut table = Table::new(&["GROUP", "STATUS"]);
        for g in &deleted {
            table.row(vec![g.clone(), "deleted".into()]);
        }
        table.render()
    })
}

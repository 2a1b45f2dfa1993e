//! `floe consume TOPIC`: Fetch from each partition's leader from a start offset or
//! timestamp, printing records through a template or as JSON lines, until `-n` records or,
//! with `-e`, the end of every partition (the high watermark, or the last stable offset under
//! read_committed).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use kafka_protocol::messages::BrokerId;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};

use crate::cli::args::{ConsumeArgs, StartOffset};
use crate::cli::client::{Client, TopicMeta, topic_name};
use crate::cli::consume_format::{Template, json_record};
use crate::cli::error::{self, check};
use crate::cli::offsets::{EARLIEST, LATEST, bounds, list_offsets};
use crate::cli::output::Out;
use crate::cli::records::{AbortFilter, decode_fetched};

/// How long a fetch waits at the broker for records.
const MAX_WAIT_MS: i32 = 500;
/// Consecutive fetch rounds that may fail with a leader change before giving up.
const MAX_LEADER_RETRIES: u32 = 8;

struct Position {
    offset: i64,
    at_end: bool,
}

/// Runs `floe consume`.
pub fn run(client: &mut Client, out: &mut Out, args: ConsumeArgs) -> anyhow::Result<()> {
    let template = if out.json() {
        None
    } else {
        Some(Template::parse(&args.template)?)
    };
    let mut topic = client.topic(&args.topic, false)?;
    let parts: Vec<i32> = if args.partitions.is_empty() {
        topic.partitions.iter().map(|p| p.index).collect()
    } else {
        for &p in &args.partitions {
            topic.leader(p)?;
        }
        args.partitions.clone()
    };
    let starts = start_offsets(client, &topic, &parts, &args)?;
    let mut positions: BTreeMap<i32, Position> = starts
        .into_iter()
        .map(|(p, offset)| {
            (
                p,
                Position {
                    offset,
                    at_end: false,
                },
            )
        })
        .collect();
    let mut delivered = 0u64;
    let mut leader_failures = 0u32;
    let mut line = Vec::new();
    loop {
        let mut by_leader: HashMap<i32, Vec<i32>> = HashMap::new();
        for (&p, pos) in &positions {
            if !(args.exit_at_end && pos.at_end) {
                by_leader.entry(topic.leader(p)?).or_default().push(p);
            }
        }
        let mut stale_leader = false;
        for (leader, fetch_parts) in by_leader {
            let req = fetch_request(&topic, &fetch_parts, &positions, &args);
            let resp = client.node(leader)?.call(&req)?;
            check(resp.error_code, None, || {
                format!("fetching from {}", topic.name)
            })?;
            for t in resp.responses {
                for p in t.partitions {
                    let Some(pos) = positions.get_mut(&p.partition_index) else {
                        continue;
                    };
                    let context = || format!("fetching {}[{}]", topic.name, p.partition_index);
                    if let Err(e) = check(p.error_code, None, context) {
                        if error::is_retriable(&e) && leader_failures < MAX_LEADER_RETRIES {
                            stale_leader = true;
                            continue;
                        }
                        return Err(e);
                    }
                    let mut filter = p.aborted_transactions.as_ref().map(|list| {
                        AbortFilter::new(
                            list.iter()
                                .map(|a| (a.producer_id.0, a.first_offset))
                                .collect(),
                        )
                    });
                    let data = p.records.clone().unwrap_or_default();
                    let fetched = decode_fetched(
                        &data,
                        pos.offset,
                        if args.read_committed {
                            filter.as_mut()
                        } else {
                            None
                        },
                    )?;
                    for r in &fetched.records {
                        if args.count.is_some_and(|n| delivered >= n) {
                            break;
                        }
                        match &template {
                            Some(t) => {
                                line.clear();
                                t.render(&mut line, &topic.name, p.partition_index, r);
                                out.write_bytes(&line)?;
                            }
                            None => {
                                out.json_line(&json_record(&topic.name, p.partition_index, r))?
                            }
                        }
                        delivered += 1;
                    }
                    pos.offset = fetched.next_offset;
                    let end = if args.read_committed && p.last_stable_offset >= 0 {
                        p.last_stable_offset
                    } else {
                        p.high_watermark
                    };
                    pos.at_end = pos.offset >= end;
                }
            }
            out.flush()?;
            if args.count.is_some_and(|n| delivered >= n) {
                return Ok(());
            }
        }
        if args.exit_at_end && positions.values().all(|p| p.at_end) {
            return Ok(());
        }
        if stale_leader {
            leader_failures += 1;
            std::thread::sleep(Duration::from_millis(100 * u64::from(leader_failures)));
            topic = client.topic(&args.topic, false)?;
        } else {
            leader_failures = 0;
        }
    }
}

fn start_offsets(
    client: &mut Client,
    topic: &TopicMeta,
    parts: &[i32],
    args: &ConsumeArgs,
) -> anyhow::Result<BTreeMap<i32, i64>> {
    let latest = |client: &mut Client| -> anyhow::Result<BTreeMap<i32, i64>> {
        Ok(
            list_offsets(client, topic, parts, LATEST, args.read_committed)?
                .into_iter()
                .map(|(p, o)| (p, o.unwrap_or(0)))
                .collect(),
        )
    };
    if let Some(ms) = args.timestamp {
        let found = list_offsets(client, topic, parts, ms, args.read_committed)?;
        let ends = latest(client)?;
        return Ok(found
            .into_iter()
            .map(|(p, o)| (p, o.unwrap_or_else(|| ends.get(&p).copied().unwrap_or(0))))
            .collect());
    }
    match args.offset {
        StartOffset::Start => bounds(client, topic, parts, EARLIEST),
        StartOffset::End => latest(client),
        StartOffset::At(n) => Ok(parts.iter().map(|&p| (p, n)).collect()),
    }
}

fn fetch_request(
    topic: &TopicMeta,
    parts: &[i32],
    positions: &BTreeMap<i32, Position>,
    args: &ConsumeArgs,
) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(MAX_WAIT_MS)
        .with_min_bytes(1)
        .with_max_bytes(args.fetch_max_bytes)
        .with_isolation_level(i8::from(args.read_committed))
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic_name(&topic.name))
                .with_partitions(
                    parts
                        .iter()
                        .map(|p| {
                            FetchPartition::default()
                                .with_partition(*p)
                                .with_current_leader_epoch(-1)
                                .with_fetch_offset(positions.get(p).map_or(0, |pos| pos.offset))
                                .with_log_start_offset(-1)
                                .with_partition_max_bytes(args.fetch_max_bytes)
                        })
                        .collect(),
                ),
        ])
}

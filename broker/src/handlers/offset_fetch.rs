//! OffsetFetch: a group's committed offsets (-1 where none). Null topics (v2+) means every
//! committed offset of the group; v8+ asks for several groups at once. With
//! `require_stable` (v7+), a partition whose offset a transaction that has not ended
//! committed answers UNSTABLE_OFFSET_COMMIT (the client retries).

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, ResponseKind, TopicName};

use super::{Handled, RequestContext, str_bytes};
use crate::group::GroupError;
use crate::group::coordinator::FetchedOffsets;
use crate::group::records::OffsetValue;

/// Handles OffsetFetch.
pub async fn handle(ctx: &RequestContext, req: OffsetFetchRequest) -> Handled {
    let version = ctx.version();
    let groups = &ctx.broker.groups;
    let require_stable = version >= 7 && req.require_stable;
    let unstable = |group: &str, topic: &str, p: i32| {
        require_stable && groups.has_pending_txn_offset(group, topic, p)
    };
    if version >= 8 {
        let results = req
            .groups
            .into_iter()
            .map(|g| {
                let topics = g.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name.0.to_string(), t.partition_indexes))
                        .collect()
                });
                let group = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
                // v9+: a KIP-848 member fetches with its current epoch.
                let fetched = groups
                    .validate_offset_fetch(&g.group_id.0, g.member_id.as_deref(), g.member_epoch)
                    .and_then(|()| groups.fetch_offsets(&g.group_id.0, topics));
                match fetched {
                    Ok(found) => group.with_topics(
                        found
                            .into_iter()
                            .map(|(t, ps)| {
                                OffsetFetchResponseTopics::default()
                                    .with_name(TopicName(str_bytes(&t)))
                                    .with_partitions(
                                        ps.into_iter()
                                            .map(|(p, v)| {
                                                let entry = partitions_entry(p, v);
                                                if unstable(&g.group_id.0, &t, p) {
                                                    entry
                                                        .with_committed_offset(-1)
                                                        .with_error_code(UNSTABLE)
                                                } else {
                                                    entry
                                                }
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    ),
                    Err(e) => group.with_error_code(e.code().code()),
                }
            })
            .collect();
        return ResponseKind::OffsetFetch(OffsetFetchResponse::default().with_groups(results))
            .into();
    }
    let requested: Option<Vec<(String, Vec<i32>)>> = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect()
    });
    let response = match groups.fetch_offsets(&req.group_id.0, requested.clone()) {
        Ok(found) => {
            let mut topics = single_group_topics(found, None);
            for t in &mut topics {
                for p in &mut t.partitions {
                    if unstable(&req.group_id.0, &t.name.0, p.partition_index) {
                        p.committed_offset = -1;
                        p.error_code = UNSTABLE;
                    }
                }
            }
            OffsetFetchResponse::default().with_topics(topics)
        }
        Err(e) if version >= 2 => OffsetFetchResponse::default().with_error_code(e.code().code()),
        // v1 has no top-level error: every requested partition carries it.
        Err(e) => {
            let failed = requested
                .unwrap_or_default()
                .into_iter()
                .map(|(t, ps)| (t, ps.into_iter().map(|p| (p, None)).collect()))
                .collect();
            OffsetFetchResponse::default().with_topics(single_group_topics(failed, Some(e)))
        }
    };
    ResponseKind::OffsetFetch(response).into()
}

const UNSTABLE: i16 = ResponseError::UnstableOffsetCommit.code();

fn single_group_topics(
    found: FetchedOffsets,
    error: Option<GroupError>,
) -> Vec<OffsetFetchResponseTopic> {
    let code = error.map(|e| e.code().code()).unwrap_or(0);
    found
        .into_iter()
        .map(|(t, ps)| {
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(str_bytes(&t)))
                .with_partitions(
                    ps.into_iter()
                        .map(|(p, v)| {
                            let (offset, epoch, meta) = fields(v);
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(offset)
                                .with_committed_leader_epoch(epoch)
                                .with_metadata(Some(str_bytes(&meta)))
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect()
}

fn partitions_entry(p: i32, v: Option<OffsetValue>) -> OffsetFetchResponsePartitions {
    let (offset, epoch, meta) = fields(v);
    OffsetFetchResponsePartitions::default()
        .with_partition_index(p)
        .with_committed_offset(offset)
        .with_committed_leader_epoch(epoch)
        .with_metadata(Some(str_bytes(&meta)))
}

fn fields(v: Option<OffsetValue>) -> (i64, i32, String) {
    match v {
        Some(v) => (v.offset, v.leader_epoch, v.metadata),
        None => (-1, -1, String::new()),
    }
}

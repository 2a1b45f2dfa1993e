//! OffsetFetch: a group's committed offsets (-1 where none). Null topics (v2+) means every
//! committed offset of the group; v8+ asks for several groups at once. With
//! `require_stable` (v7+), a partition whose offset a transaction that has not ended
//! committed answers UNSTABLE_OFFSET_COMMIT (the client retries).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, ResponseKind, TopicName};

use super::{Handled, RequestContext, str_bytes};
use crate::group::coordinator::FetchedOffsets;
use crate::group::records::OffsetValue;
use crate::security::acl::{Operation, ResourceType};

/// Handles OffsetFetch. Each group needs DESCRIBE; offsets of topics the client may not
/// DESCRIBE are left out of "every committed offset", and answer TOPIC_AUTHORIZATION_FAILED
/// when named.
pub async fn handle(ctx: &RequestContext, req: OffsetFetchRequest) -> Handled {
    let version = ctx.version();
    let groups = &ctx.broker.groups;
    let require_stable = version >= 7 && req.require_stable;
    let unstable = |group: &str, topic: &str, p: i32| {
        require_stable && groups.has_pending_txn_offset(group, topic, p)
    };
    let describable = |topic: &str| ctx.authorize(Operation::Describe, ResourceType::Topic, topic);
    if version >= 8 {
        let results = req
            .groups
            .into_iter()
            .map(|g| {
                let group = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
                if !ctx.authorize(Operation::Describe, ResourceType::Group, &g.group_id.0) {
                    return group.with_error_code(ResponseError::GroupAuthorizationFailed.code());
                }
                let (topics, denied) = split_requested(
                    g.topics.map(|ts| {
                        ts.into_iter()
                            .map(|t| (t.name.0.to_string(), t.partition_indexes))
                            .collect()
                    }),
                    &describable,
                );
                let fetch_all = topics.is_none();
                // v9+: a KIP-848 member fetches with its current epoch.
                let fetched = groups
                    .validate_offset_fetch(&g.group_id.0, g.member_id.as_deref(), g.member_epoch)
                    .and_then(|()| groups.fetch_offsets(&g.group_id.0, topics));
                match fetched {
                    Ok(found) => {
                        let mut topics: Vec<OffsetFetchResponseTopics> = found
                            .into_iter()
                            .filter(|(t, _)| !fetch_all || describable(t))
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
                            .collect();
                        topics.extend(denied.into_iter().map(|(t, ps)| {
                            OffsetFetchResponseTopics::default()
                                .with_name(TopicName(str_bytes(&t)))
                                .with_partitions(
                                    ps.into_iter()
                                        .map(|p| {
                                            partitions_entry(p, None).with_error_code(TOPIC_DENIED)
                                        })
                                        .collect(),
                                )
                        }));
                        group.with_topics(topics)
                    }
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
    if !ctx.authorize(Operation::Describe, ResourceType::Group, &req.group_id.0) {
        return ResponseKind::OffsetFetch(group_error(
            version,
            requested,
            ResponseError::GroupAuthorizationFailed.code(),
        ))
        .into();
    }
    let (wanted, denied) = split_requested(requested.clone(), &describable);
    let fetch_all = wanted.is_none();
    let response = match groups.fetch_offsets(&req.group_id.0, wanted) {
        Ok(found) => {
            let found = found
                .into_iter()
                .filter(|(t, _)| !fetch_all || describable(t))
                .collect();
            let mut topics = single_group_topics(found, 0);
            for t in &mut topics {
                for p in &mut t.partitions {
                    if unstable(&req.group_id.0, &t.name.0, p.partition_index) {
                        p.committed_offset = -1;
                        p.error_code = UNSTABLE;
                    }
                }
            }
            let denied = denied
                .into_iter()
                .map(|(t, ps)| (t, ps.into_iter().map(|p| (p, None)).collect()))
                .collect();
            topics.extend(single_group_topics(denied, TOPIC_DENIED));
            OffsetFetchResponse::default().with_topics(topics)
        }
        Err(e) => group_error(version, requested, e.code().code()),
    };
    ResponseKind::OffsetFetch(response).into()
}

/// A v1-7 answer that the group failed with `code`: v2+ at the top; v1 has no top-level
/// error, so every requested partition carries it.
fn group_error(
    version: i16,
    requested: Option<Vec<(String, Vec<i32>)>>,
    code: i16,
) -> OffsetFetchResponse {
    if version >= 2 {
        return OffsetFetchResponse::default().with_error_code(code);
    }
    let failed = requested
        .unwrap_or_default()
        .into_iter()
        .map(|(t, ps)| (t, ps.into_iter().map(|p| (p, None)).collect()))
        .collect();
    OffsetFetchResponse::default().with_topics(single_group_topics(failed, code))
}

/// The requested topics (`None`: all) split into those the client may describe and those
/// it may not (which are not fetched).
#[allow(clippy::type_complexity)] // Two lists of (topic, partitions), one optional.
fn split_requested(
    requested: Option<Vec<(String, Vec<i32>)>>,
    describable: &dyn Fn(&str) -> bool,
) -> (Option<Vec<(String, Vec<i32>)>>, Vec<(String, Vec<i32>)>) {
    match requested {
        None => (None, Vec::new()),
        Some(topics) => {
            let (allowed, denied) = topics.into_iter().partition(|(t, _)| describable(t));
            (Some(allowed), denied)
        }
    }
}

const TOPIC_DENIED: i16 = ResponseError::TopicAuthorizationFailed.code();
const UNSTABLE: i16 = ResponseError::UnstableOffsetCommit.code();

fn single_group_topics(found: FetchedOffsets, code: i16) -> Vec<OffsetFetchResponseTopic> {
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

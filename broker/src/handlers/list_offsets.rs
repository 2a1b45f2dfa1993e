//! ListOffsets: earliest (-2), latest (-1; the last stable offset for read_committed),
//! max timestamp (-3), earliest local (-4), or the first offset whose record timestamp is
//! at or after a given time.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::list_offsets_request::ListOffsetsPartition;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse, ResponseKind};

use super::{Handled, RequestContext};
use crate::security::acl::{Operation, ResourceType};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;

/// Handles ListOffsets.
pub async fn handle(ctx: &RequestContext, req: ListOffsetsRequest) -> Handled {
    let version = ctx.version();
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.0.to_string();
        let allowed = ctx.authorize(Operation::Describe, ResourceType::Topic, &name);
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            partitions.push(if allowed {
                partition(ctx, &name, p, version, req.isolation_level).await
            } else {
                ListOffsetsPartitionResponse::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                    .with_timestamp(-1)
                    .with_offset(-1)
            });
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    ResponseKind::ListOffsets(ListOffsetsResponse::default().with_topics(topics)).into()
}

/// One partition's answer.
async fn partition(
    ctx: &RequestContext,
    name: &str,
    p: &ListOffsetsPartition,
    version: i16,
    isolation_level: i8,
) -> ListOffsetsPartitionResponse {
    let resp = ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
    let log = match ctx.broker.topics.lookup(name, p.partition_index) {
        Ok(log) => log,
        Err(e) => {
            return resp
                .with_error_code(crate::errors::unavailable(&e).code())
                .with_timestamp(-1)
                .with_offset(-1);
        }
    };
    if p.current_leader_epoch > 0 {
        return resp
            .with_error_code(ResponseError::UnknownLeaderEpoch.code())
            .with_timestamp(-1)
            .with_offset(-1);
    }
    let found = match p.timestamp {
        LATEST if isolation_level == 1 => Ok(Some((log.last_stable_offset(), -1))),
        LATEST => Ok(Some((log.high_watermark(), -1))),
        EARLIEST => Ok(Some((log.log_start_offset(), -1))),
        // KIP-405: the first offset still on local disk (the log start on an untiered log).
        EARLIEST_LOCAL => Ok(Some((
            log.local_start_offset().max(log.log_start_offset()),
            -1,
        ))),
        // These read segment files: off the runtime's workers.
        ts if ts == MAX_TIMESTAMP || ts >= 0 => tokio::task::spawn_blocking(move || {
            if ts == MAX_TIMESTAMP {
                log.max_timestamp_offset()
            } else {
                log.offset_for_timestamp(ts)
            }
        })
        .await
        .unwrap_or_else(|e| {
            Err(floe_storage::StorageError::Io {
                op: floe_storage::IoOp::Read,
                path: std::path::PathBuf::from(name),
                source: std::io::Error::other(format!("timestamp lookup did not finish: {e}")),
            })
        }),
        _ => Ok(None),
    };
    match found {
        Ok(Some((offset, timestamp))) => {
            let resp = resp.with_offset(offset).with_timestamp(timestamp);
            // The field exists from v4 on; before that it must stay default.
            if version >= 4 {
                resp.with_leader_epoch(0)
            } else {
                resp
            }
        }
        Ok(None) => resp.with_offset(-1).with_timestamp(-1),
        Err(e) => {
            tracing::error!(topic = %name, partition = p.partition_index, "list offsets failed: {e}");
            resp.with_error_code(ResponseError::KafkaStorageError.code())
                .with_offset(-1)
                .with_timestamp(-1)
        }
    }
}

//! Fetch: read record batches from partition logs, long-polling until `min_bytes` are
//! available or `max_wait_ms` has passed, within the response's `max_bytes` and each
//! partition's `partition_max_bytes` (the first partition with data always returns at
//! least one whole batch, KIP-74), inside an incremental fetch session when the client
//! opened one (KIP-227).
//!
//! A read_committed fetch (`isolation_level` 1) returns batches below the last stable
//! offset only, with the aborted transactions of the range, so the consumer skips aborted
//! records; every response carries the high watermark and the last stable offset.
//!
//! Record batches are not read into memory: each partition's batches are a range of a
//! segment file (`PartitionLog::read_region`), put in the response as a stand-in and sent
//! from the page cache to the socket with `sendfile` by the connection's writer.

use std::time::Duration;

use bytes::Bytes;
use futures_util::future::select_all;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, FetchResponse, ProducerId, ResponseKind, TopicName,
};
use tokio::time::Instant;
use uuid::Uuid;

use floe_protocol::rope::StandIns;
use floe_storage::{AbortedTxn, FileRegion, Isolation};

use super::{FetchReply, Handled, Reply, RequestContext, str_bytes};
use crate::errors::read_error;
use crate::fetch_session::{FetchTarget, SessionKind, SessionRequest};
use crate::security::acl::{Operation, ResourceType};
use crate::state::Broker;

/// Handles Fetch.
pub async fn handle(ctx: &RequestContext, req: FetchRequest) -> Handled {
    let broker = ctx.broker.clone();
    let version = ctx.version();
    let by_id = version >= 13;
    let resolve = |name: &TopicName, id: Uuid| -> (String, Uuid) {
        if by_id {
            (broker.topics.name_by_id(&id).unwrap_or_default(), id)
        } else {
            (name.0.to_string(), Uuid::nil())
        }
    };
    let mut targets = Vec::new();
    for topic in &req.topics {
        let (name, id) = resolve(&topic.topic, topic.topic_id);
        for p in &topic.partitions {
            targets.push(FetchTarget {
                topic: name.clone(),
                topic_id: id,
                partition: p.partition,
                fetch_offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes,
            });
        }
    }
    let forgotten: Vec<(String, Uuid, i32)> = req
        .forgotten_topics_data
        .iter()
        .flat_map(|t| {
            let (name, id) = resolve(&t.topic, t.topic_id);
            t.partitions.iter().map(move |p| (name.clone(), id, *p))
        })
        .collect();
    let session = if version >= 7 {
        broker.fetch_sessions.begin(SessionRequest {
            session_id: req.session_id,
            epoch: req.session_epoch,
            targets,
            forgotten: &forgotten,
        })
    } else {
        Ok((SessionKind::Sessionless, targets))
    };
    let (kind, targets) = match session {
        Ok(s) => s,
        Err(code) => {
            return ResponseKind::Fetch(
                FetchResponse::default()
                    .with_error_code(code.code())
                    .with_session_id(0),
            )
            .into();
        }
    };
    // READ on each topic of the session (not only those this request names), decided once
    // per topic; a denied partition answers TOPIC_AUTHORIZATION_FAILED.
    let denied = if ctx.authorizing() {
        let mut decided: std::collections::HashMap<&str, bool> = std::collections::HashMap::new();
        targets
            .iter()
            .map(|t| {
                !t.topic.is_empty()
                    && !*decided.entry(t.topic.as_str()).or_insert_with(|| {
                        ctx.authorize(Operation::Read, ResourceType::Topic, &t.topic)
                    })
            })
            .collect()
    } else {
        Vec::new()
    };
    let cap = broker.config.fetch_max_wait_cap_ms;
    let max_wait = Duration::from_millis((req.max_wait_ms.max(0) as u64).min(cap));
    let params = Params {
        min_bytes: req.min_bytes.max(0) as usize,
        max_bytes: if req.max_bytes <= 0 {
            usize::MAX
        } else {
            req.max_bytes as usize
        },
        version,
        kind,
        denied,
        isolation: if version >= 4 && req.isolation_level == 1 {
            Isolation::Committed
        } else {
            Isolation::Uncommitted
        },
    };
    Handled::Reply(Reply::Fetch(Box::pin(long_poll(
        broker, targets, params, max_wait,
    ))))
}

struct Params {
    min_bytes: usize,
    max_bytes: usize,
    version: i16,
    kind: SessionKind,
    /// Per target: whether the client may not read its topic (empty: authorization off).
    denied: Vec<bool>,
    isolation: Isolation,
}

struct PartitionResult {
    error: ResponseError,
    /// Whole record batches of a segment file, if any were read.
    records: Option<FileRegion>,
    high_watermark: i64,
    last_stable_offset: i64,
    log_start_offset: i64,
    /// read_committed: the aborted transactions with records in the range read.
    aborted: Vec<AbortedTxn>,
}

impl PartitionResult {
    fn len(&self) -> usize {
        self.records.as_ref().map_or(0, FileRegion::len)
    }
}

async fn long_poll(
    broker: std::sync::Arc<Broker>,
    targets: Vec<FetchTarget>,
    params: Params,
    max_wait: Duration,
) -> FetchReply {
    let deadline = Instant::now() + max_wait;
    loop {
        // Subscribe before reading, so an append between the read and the wait wakes us.
        let mut watches: Vec<_> = targets
            .iter()
            .filter_map(|t| broker.topics.partition(&t.topic, t.partition))
            .map(|log| log.subscribe())
            .collect();
        let results = read_all(&broker, &targets, &params).await;
        let bytes: usize = results.iter().map(PartitionResult::len).sum();
        let any_error = results.iter().any(|r| r.error != ResponseError::Unknown(0));
        if params.min_bytes == 0
            || bytes >= params.min_bytes
            || any_error
            || Instant::now() >= deadline
            || watches.is_empty()
        {
            return build_response(&broker, &targets, results, &params);
        }
        let changed = select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
        if tokio::time::timeout_at(deadline, changed).await.is_err() {
            let results = read_all(&broker, &targets, &params).await;
            return build_response(&broker, &targets, results, &params);
        }
    }
}

const NO_ERROR: ResponseError = ResponseError::Unknown(0);

async fn read_all(
    broker: &Broker,
    targets: &[FetchTarget],
    params: &Params,
) -> Vec<PartitionResult> {
    let mut remaining = params.max_bytes;
    let mut first_with_data = true;
    let mut results = Vec::with_capacity(targets.len());
    for (i, t) in targets.iter().enumerate() {
        let result = 'result: {
            let error = |code: ResponseError| PartitionResult {
                error: code,
                records: None,
                high_watermark: -1,
                last_stable_offset: -1,
                log_start_offset: -1,
                aborted: Vec::new(),
            };
            if t.topic.is_empty() {
                break 'result error(ResponseError::UnknownTopicId);
            }
            if params.denied.get(i).copied().unwrap_or(false) {
                break 'result error(ResponseError::TopicAuthorizationFailed);
            }
            let log = match broker.topics.lookup(&t.topic, t.partition) {
                Ok(log) => log,
                Err(e) => break 'result error(crate::errors::unavailable(&e)),
            };
            let limit = (t.max_bytes.max(0) as usize).min(remaining);
            if limit == 0 && !first_with_data {
                break 'result PartitionResult {
                    error: NO_ERROR,
                    records: None,
                    high_watermark: log.high_watermark(),
                    last_stable_offset: log.last_stable_offset(),
                    log_start_offset: log.log_start_offset(),
                    aborted: Vec::new(),
                };
            }
            match log
                .read_region(t.fetch_offset, limit.max(1), params.isolation)
                .await
            {
                Ok(read) => {
                    let mut records = read.region.filter(|r| !r.is_empty());
                    // Only the first partition with data may exceed its limit (KIP-74);
                    // for the others an oversized first batch waits for the next fetch.
                    if !first_with_data && records.as_ref().is_some_and(|r| r.len() > limit) {
                        records = None;
                    }
                    if let Some(r) = &records {
                        first_with_data = false;
                        remaining = remaining.saturating_sub(r.len());
                        // The client reads from its fetch offset on (the first batch may
                        // start before it).
                        let offsets = read.next_offset.map_or(0, |n| n - t.fetch_offset);
                        log.traffic()
                            .fetched(r.len() as u64, u64::try_from(offsets).unwrap_or(0));
                    }
                    let aborted = match (&records, params.isolation) {
                        (Some(_), Isolation::Committed) => {
                            log.aborted_transactions(t.fetch_offset, read.last_stable_offset)
                        }
                        _ => Vec::new(),
                    };
                    PartitionResult {
                        error: NO_ERROR,
                        records,
                        high_watermark: read.high_watermark,
                        last_stable_offset: read.last_stable_offset,
                        log_start_offset: read.log_start_offset,
                        aborted,
                    }
                }
                Err(e) => {
                    let code = read_error(&e);
                    if code != ResponseError::OffsetOutOfRange {
                        tracing::error!(topic = %t.topic, partition = t.partition, "fetch read failed: {e}");
                    }
                    PartitionResult {
                        error: code,
                        records: None,
                        high_watermark: log.high_watermark(),
                        last_stable_offset: log.last_stable_offset(),
                        log_start_offset: log.log_start_offset(),
                        aborted: Vec::new(),
                    }
                }
            }
        };
        results.push(result);
    }
    results
}

fn build_response(
    broker: &Broker,
    targets: &[FetchTarget],
    results: Vec<PartitionResult>,
    params: &Params,
) -> FetchReply {
    let mut topics: Vec<FetchableTopicResponse> = Vec::new();
    let mut stand_ins = StandIns::default();
    let mut regions = Vec::new();
    for (t, r) in targets.iter().zip(results) {
        let has_news = r.len() > 0 || r.error != NO_ERROR;
        let offsets = (r.high_watermark, r.last_stable_offset, r.log_start_offset);
        if !broker
            .fetch_sessions
            .should_report(params.kind, t, offsets, has_news)
        {
            continue;
        }
        let data = PartitionData::default()
            .with_partition_index(t.partition)
            .with_error_code(if r.error == NO_ERROR { 0 } else { r.error.code() })
            .with_high_watermark(r.high_watermark)
            .with_last_stable_offset(r.last_stable_offset)
            .with_log_start_offset(r.log_start_offset)
            .with_preferred_read_replica(BrokerId(-1))
            .with_aborted_transactions((params.version >= 4).then(|| {
                r.aborted
                    .iter()
                    .map(|a| {
                        AbortedTransaction::default()
                            .with_producer_id(ProducerId(a.producer_id))
                            .with_first_offset(a.first_offset)
                    })
                    .collect()
            }))
            .with_records(Some(match r.records {
                Some(region) => match stand_ins.take(region.len()) {
                    Some(stand_in) => {
                        regions.push(region);
                        stand_in
                    }
                    // Past the stand-ins' 64 MiB: these batches are read into memory.
                    None => match region.read() {
                        Ok(bytes) => Bytes::from(bytes),
                        Err(e) => {
                            tracing::error!(topic = %t.topic, partition = t.partition, "fetch read failed: {e}");
                            Bytes::new()
                        }
                    },
                },
                None => Bytes::new(),
            }));
        let same_topic = topics.last().is_some_and(|last| {
            if params.version >= 13 {
                last.topic_id == t.topic_id
            } else {
                last.topic.0.as_str() == t.topic
            }
        });
        if !same_topic {
            let mut topic = FetchableTopicResponse::default();
            if params.version >= 13 {
                topic.topic_id = t.topic_id;
            } else {
                topic.topic = TopicName(str_bytes(&t.topic));
            }
            topics.push(topic);
        }
        if let Some(last) = topics.last_mut() {
            last.partitions.push(data);
        }
    }
    FetchReply {
        body: FetchResponse::default()
            .with_session_id(params.kind.response_id())
            .with_responses(topics),
        stand_ins: stand_ins.into_vec(),
        regions,
    }
}

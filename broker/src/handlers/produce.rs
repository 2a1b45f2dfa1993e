//! Produce: validate each partition's record batches (lengths, CRC32C, record count, size),
//! append them (offsets assigned by rewriting the base offset; duplicates of an idempotent
//! producer's batches are answered with their original offsets), and answer according to
//! `acks`: 0 no answer, 1 after the write, -1 (all) after the data is fdatasync'ed (and 1 too
//! when the append reached the topic's `flush.messages`).
//!
//! Appends happen while the request is dispatched, in connection order; only the wait for
//! the fsync is deferred: it is requested from the storage sync thread at dispatch, so
//! concurrent and pipelined acks=all requests share syncs (group commit).

use std::sync::Arc;

use bytes::BytesMut;
use floe_protocol::record_batch::{iter_batches, keyless_records, validate_batches};

use crate::log_limit::LogLimit;
use floe_storage::PartitionLog;
use futures_util::future::join_all;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, ResponseKind};

use super::{Handled, Reply, RequestContext, now_ms, str_bytes};
use crate::errors::append_error;
use crate::schema_registry::Validation;
use crate::security::acl::{Operation, ResourceType};
use crate::topics::is_internal;

/// Handles Produce.
pub async fn handle(ctx: &RequestContext, req: ProduceRequest) -> Handled {
    let acks = req.acks;
    if !matches!(acks, -1..=1) {
        tracing::warn!(peer = %ctx.peer, acks, "produce with invalid acks");
        return respond_all(req, ResponseError::InvalidRequiredAcks);
    }
    let transactional_id = req.transactional_id.as_ref().map(|id| id.0.to_string());
    // Transactional batches need WRITE on their transactional id (checked before anything
    // else, for the whole request, as Kafka does).
    if ctx.authorizing()
        && has_transactional_batches(&req)
        && !transactional_id
            .as_deref()
            .is_some_and(|id| ctx.authorize(Operation::Write, ResourceType::TransactionalId, id))
    {
        return respond_all(req, ResponseError::TransactionalIdAuthorizationFailed);
    }
    let now = now_ms();
    let mut responses = Vec::with_capacity(req.topic_data.len());
    // Where each acks=all append sits in the response, and the wait for its durability.
    let mut to_sync: Vec<(usize, usize)> = Vec::new();
    let mut waits = Vec::new();
    let mut any_error = false;
    for (ti, topic) in req.topic_data.into_iter().enumerate() {
        let name = topic.name.0.to_string();
        // Before the topic's existence is looked at, so a denied client learns nothing.
        let allowed = ctx.authorize(Operation::Write, ResourceType::Topic, &name);
        let validation = Validation::of(&ctx.broker.topics, &name);
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for (pi, data) in topic.partition_data.into_iter().enumerate() {
            let resp = PartitionProduceResponse::default().with_index(data.index);
            let log = ctx.broker.topics.lookup(&name, data.index);
            let result = match (log, data.records) {
                _ if !allowed => Err(AppendFailure::new(
                    ResponseError::TopicAuthorizationFailed,
                    None,
                )),
                (Ok(_), _) if is_internal(&name) => Err(AppendFailure::new(
                    ResponseError::InvalidTopicException,
                    Some(format!("Cannot append to internal topic {name}")),
                )),
                (Err(e), _) => Err(AppendFailure::new(
                    crate::errors::unavailable(&e),
                    offline_message(&e),
                )),
                (Ok(_), None) => Err(AppendFailure::new(
                    ResponseError::CorruptMessage,
                    Some("null records".to_string()),
                )),
                (Ok(log), Some(records)) => {
                    match check_transaction(
                        ctx,
                        transactional_id.as_deref(),
                        &name,
                        data.index,
                        &records,
                    )
                    .await
                    {
                        Err(failure) => Err(failure),
                        Ok(()) => {
                            let schemas = validation
                                .is_on()
                                .then(|| (&*ctx.broker.schemas, &validation));
                            append(&log, &name, data.index, &records, schemas, now)
                                .await
                                .map(|info| {
                                    if !info.duplicate {
                                        let count = info.last_offset - info.base_offset + 1;
                                        log.traffic().produced(
                                            records.len() as u64,
                                            u64::try_from(count).unwrap_or(0),
                                        );
                                    }
                                    (log, info)
                                })
                        }
                    }
                }
            };
            let resp = match result {
                Ok((log, info)) => {
                    // acks=all, or an append that reached `flush.messages` (not answered
                    // before the sync it triggered, whatever the acks).
                    if acks == -1 || (acks == 1 && info.flush_due) {
                        // Requested now, while later requests are still being dispatched,
                        // so pipelined requests share syncs (group commit).
                        to_sync.push((ti, pi));
                        waits.push(log.sync_async());
                    }
                    resp.with_base_offset(info.base_offset)
                        .with_log_append_time_ms(-1)
                        .with_log_start_offset(info.log_start_offset)
                }
                Err(AppendFailure {
                    code,
                    message,
                    record_errors,
                }) => {
                    any_error = true;
                    // A client (or a full disk) can make every request fail: rate limited.
                    static REJECTED: LogLimit = LogLimit::new("produce rejected", 10);
                    crate::warn_limited!(
                        REJECTED,
                        peer = %ctx.peer,
                        topic = %name,
                        partition = data.index,
                        error = ?code,
                        detail = message.as_deref().unwrap_or(""),
                        "produce rejected"
                    );
                    resp.with_error_code(code.code())
                        .with_base_offset(-1)
                        .with_log_start_offset(-1)
                        .with_error_message(message.as_deref().map(str_bytes))
                        .with_record_errors(record_errors)
                }
            };
            partitions.push(resp);
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_partition_responses(partitions),
        );
    }
    match acks {
        0 if any_error => Handled::Close("acks=0 produce failed".into()),
        0 => Handled::NoResponse,
        _ if to_sync.is_empty() => {
            ResponseKind::Produce(ProduceResponse::default().with_responses(responses)).into()
        }
        _ => Handled::Reply(Reply::Later(Box::pin(async move {
            let mut responses = responses;
            for ((ti, pi), result) in to_sync.into_iter().zip(join_all(waits).await) {
                if let Err(e) = result {
                    tracing::error!("fsync failed, produce not acknowledged: {e}");
                    fail(
                        &mut responses[ti].partition_responses[pi],
                        ResponseError::KafkaStorageError,
                    );
                }
            }
            ResponseKind::Produce(ProduceResponse::default().with_responses(responses))
        }))),
    }
}

/// Whether any partition's records hold a transactional batch (Kafka's
/// `hasTransactionalRecords`).
fn has_transactional_batches(req: &ProduceRequest) -> bool {
    req.topic_data.iter().any(|t| {
        t.partition_data.iter().any(|p| {
            p.records.as_ref().is_some_and(|records| {
                iter_batches(records)
                    .map_while(Result::ok)
                    .any(|(h, _)| h.is_transactional())
            })
        })
    })
}

fn offline_message(e: &crate::topics::Unavailable) -> Option<String> {
    match e {
        crate::topics::Unavailable::Offline(reason) => {
            Some(format!("partition is offline: {reason}"))
        }
        crate::topics::Unavailable::Unknown => None,
    }
}

fn fail(p: &mut PartitionProduceResponse, code: ResponseError) {
    p.error_code = code.code();
    p.base_offset = -1;
}

/// Transactional batches need a transactional id and a partition already added to that
/// producer's open transaction (INVALID_TXN_STATE otherwise, as Kafka's KIP-890
/// verification answers); from v12 on (transactions V2) the partition joins the
/// transaction, starting it if none is open. A transactional id comes with transactional
/// batches only. Control batches are written by the coordinator, never by clients.
async fn check_transaction(
    ctx: &RequestContext,
    transactional_id: Option<&str>,
    topic: &str,
    partition: i32,
    records: &bytes::Bytes,
) -> Result<(), AppendFailure> {
    let mut producer = None;
    for item in iter_batches(records) {
        // Framing errors are reported by the validation that follows.
        let Ok((header, _)) = item else { break };
        if header.is_control() {
            return Err(AppendFailure::new(
                ResponseError::InvalidRecord,
                Some("clients cannot write control batches".to_string()),
            ));
        }
        if header.is_transactional() {
            producer = Some((header.producer_id, header.producer_epoch));
        } else if transactional_id.is_some() {
            return Err(AppendFailure::new(
                ResponseError::InvalidRecord,
                Some("a transactional produce request holds a non-transactional batch".to_string()),
            ));
        }
    }
    let Some((producer_id, epoch)) = producer else {
        return Ok(());
    };
    let Some(transactional_id) = transactional_id else {
        return Err(AppendFailure::new(
            ResponseError::TransactionalIdNotFound,
            Some("transactional batches need a transactional id".to_string()),
        ));
    };
    let partition = (topic.to_string(), partition);
    let checked = if ctx.version() >= 12 {
        crate::txn::TransactionCoordinator::join(
            &ctx.broker,
            transactional_id,
            producer_id,
            epoch,
            partition,
        )
        .await
    } else {
        ctx.broker
            .txns
            .verify(transactional_id, producer_id, epoch, &partition)
    };
    checked.map_err(|e| {
        let code = match e {
            crate::txn::state::TxnError::ProducerFenced => ResponseError::InvalidProducerEpoch,
            e => e.code(),
        };
        AppendFailure::new(code, Some(format!("transaction check failed: {e}")))
    })
}

/// Why a partition's append was refused: the code, a message, and for record-level
/// validation (KIP-467) which records of the batch failed and why.
struct AppendFailure {
    code: ResponseError,
    message: Option<String>,
    record_errors: Vec<BatchIndexAndErrorMessage>,
}

impl AppendFailure {
    fn new(code: ResponseError, message: Option<String>) -> AppendFailure {
        AppendFailure {
            code,
            message,
            record_errors: Vec::new(),
        }
    }
}

async fn append(
    log: &Arc<PartitionLog>,
    topic: &str,
    partition: i32,
    records: &bytes::Bytes,
    schemas: Option<(&floe_registry::Registry, &Validation)>,
    now: i64,
) -> Result<floe_storage::AppendInfo, AppendFailure> {
    let config = log.config();
    let max = config.max_message_bytes as usize;
    // The size limit is on the compressed batch and is checked first, so an oversized batch
    // is never decompressed by the validation below.
    let oversized = iter_batches(records)
        .map_while(Result::ok)
        .find(|(h, _)| h.total_size() > max);
    if let Some((h, _)) = oversized {
        return Err(AppendFailure::new(
            ResponseError::MessageTooLarge,
            Some(format!(
                "record batch of {} bytes exceeds max.message.bytes {max}",
                h.total_size()
            )),
        ));
    }
    validate_batches(records)
        .map_err(|e| AppendFailure::new(ResponseError::CorruptMessage, Some(e.to_string())))?;
    if config.cleanup_policy.compact {
        refuse_keyless(records, topic, partition)?;
    }
    if let Some((registry, validation)) = schemas {
        refuse_unregistered(records, topic, partition, registry, validation)?;
    }
    log.append(BytesMut::from(&records[..]), now)
        .await
        .map_err(|e| AppendFailure::new(append_error(&e), Some(e.to_string())))
}

/// A compacted topic keeps the latest record per key, so, as Kafka does, it refuses records
/// without a key: INVALID_RECORD, with each such record's index in its batch
/// (`record_errors`, KIP-467). The whole request's records for the partition are refused.
fn refuse_keyless(
    records: &bytes::Bytes,
    topic: &str,
    partition: i32,
) -> Result<(), AppendFailure> {
    let message = format!(
        "Compacted topic cannot accept message without key in topic partition {topic}-{partition}."
    );
    let mut record_errors = Vec::new();
    for item in iter_batches(records) {
        let Ok((_, range)) = item else { continue };
        // Validated above: decoding cannot fail here, and a batch that somehow does is not
        // a keyless one.
        for index in keyless_records(&records[range]).unwrap_or_default() {
            record_errors.push(
                BatchIndexAndErrorMessage::default()
                    .with_batch_index(i32::try_from(index).unwrap_or(i32::MAX))
                    .with_batch_index_error_message(Some(str_bytes(&message))),
            );
        }
    }
    if record_errors.is_empty() {
        return Ok(());
    }
    Err(AppendFailure {
        code: ResponseError::InvalidRecord,
        message: Some(message),
        record_errors,
    })
}

/// Broker-side schema validation ([`Validation`]): a record whose key or value does not
/// name a schema registered under its subject is refused with INVALID_RECORD and its index
/// and reason (`record_errors`, KIP-467); as with keyless records, the partition's whole
/// set of records in the request is refused.
fn refuse_unregistered(
    records: &bytes::Bytes,
    topic: &str,
    partition: i32,
    registry: &floe_registry::Registry,
    validation: &Validation,
) -> Result<(), AppendFailure> {
    let mut record_errors = Vec::new();
    let mut first = None;
    for item in iter_batches(records) {
        let Ok((_, range)) = item else { continue };
        for (index, reason) in validation.failures(registry, topic, &records[range]) {
            let message = format!(
                "Record {index} of the batch for {topic}-{partition} failed schema validation: {reason}"
            );
            first.get_or_insert_with(|| message.clone());
            record_errors.push(
                BatchIndexAndErrorMessage::default()
                    .with_batch_index(i32::try_from(index).unwrap_or(i32::MAX))
                    .with_batch_index_error_message(Some(str_bytes(&message))),
            );
        }
    }
    match first {
        None => Ok(()),
        Some(message) => Err(AppendFailure {
            code: ResponseError::InvalidRecord,
            message: Some(message),
            record_errors,
        }),
    }
}

fn respond_all(req: ProduceRequest, code: ResponseError) -> Handled {
    if req.acks == 0 {
        return Handled::Close(format!("acks=0 produce failed: {code:?}"));
    }
    let responses = req
        .topic_data
        .into_iter()
        .map(|t| {
            let partitions = t
                .partition_data
                .iter()
                .map(|p| {
                    PartitionProduceResponse::default()
                        .with_index(p.index)
                        .with_error_code(code.code())
                        .with_base_offset(-1)
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(t.name)
                .with_partition_responses(partitions)
        })
        .collect();
    ResponseKind::Produce(ProduceResponse::default().with_responses(responses)).into()
}

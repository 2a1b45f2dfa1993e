//! Transactions V2 (KIP-890 part 2) against the real binary. No client installable here
//! speaks it yet (librdkafka 2.16, kafkajs 2.2.4 and the Java client 3.9.1 use V1; the
//! Java client 4.x would use it), so the producer side is driven frame by frame with the
//! `kafka-protocol` codecs, the way a V2 client does it, and the reading side is a real
//! client (librdkafka through the `rdkafka` crate, read_committed and read_uncommitted):
//! - ApiVersions finalizes `transaction.version` 2 and serves Produce v12, EndTxn v5 and
//!   TxnOffsetCommit v5;
//! - partitions join a transaction by being produced to (no AddPartitionsToTxn), the
//!   group's offsets by TxnOffsetCommit v5 (no AddOffsetsToTxn);
//! - every EndTxn bumps the epoch and answers with it; a retried EndTxn gets the same
//!   answer; the ended transaction's epoch is fenced; an abort with nothing open still
//!   bumps the epoch;
//! - read_committed readers see exactly the committed records, read_uncommitted every data
//!   record and no marker; transactional offsets count once committed;
//! - after kill -9 the coordinator's state (written as Kafka 4's value version 1) is
//!   replayed: the next EndTxn retry and InitProducerId continue from the bumped epoch.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use floe_tests::Broker;
use floe_tests::raw::RawConn;
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::api_versions_request::ApiVersionsRequest;
use kafka_protocol::messages::api_versions_response::ApiVersionsResponse;
use kafka_protocol::messages::describe_transactions_request::DescribeTransactionsRequest;
use kafka_protocol::messages::describe_transactions_response::DescribeTransactionsResponse;
use kafka_protocol::messages::end_txn_request::EndTxnRequest;
use kafka_protocol::messages::end_txn_response::EndTxnResponse;
use kafka_protocol::messages::init_producer_id_request::InitProducerIdRequest;
use kafka_protocol::messages::init_producer_id_response::InitProducerIdResponse;
use kafka_protocol::messages::offset_fetch_request::{OffsetFetchRequest, OffsetFetchRequestTopic};
use kafka_protocol::messages::offset_fetch_response::OffsetFetchResponse;
use kafka_protocol::messages::produce_request::{
    PartitionProduceData, ProduceRequest, TopicProduceData,
};
use kafka_protocol::messages::produce_response::ProduceResponse;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequest, TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::txn_offset_commit_response::TxnOffsetCommitResponse;
use kafka_protocol::messages::{ApiKey, GroupId, ProducerId, TopicName, TransactionalId};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record, TimestampType};
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer};

const TOPIC: &str = "v2-orders";
const TXN_ID: &str = "v2-app";
const GROUP: &str = "v2-group";
const INVALID_PRODUCER_EPOCH: i16 = 47;
const PRODUCER_FENCED: i16 = 90;
const INVALID_TXN_STATE: i16 = 48;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// A transactional batch of `values` by producer `(id, epoch)` from sequence `seq`.
fn txn_batch(id: i64, epoch: i16, seq: i32, values: &[String]) -> Bytes {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: true,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: id,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: seq + i as i32,
            timestamp: now,
            key: Some(Bytes::from(format!("k-{v}"))),
            value: Some(Bytes::from(v.clone())),
            headers: IndexMap::new(),
        })
        .collect();
    floe_protocol::test_kit::encode(&records, Compression::None).freeze()
}

/// Produce v12 of one transactional batch to `partition`: its error code.
fn produce(conn: &mut RawConn, partition: i32, batch: Bytes) -> i16 {
    let req = ProduceRequest::default()
        .with_transactional_id(Some(TransactionalId(s(TXN_ID))))
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(s(TOPIC)))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(batch)),
                ]),
        ]);
    let resp: ProduceResponse = conn.call_at(ApiKey::Produce, 12, &req);
    resp.responses[0].partition_responses[0].error_code
}

/// EndTxn v5: (error code, producer id, epoch).
fn end_txn(conn: &mut RawConn, id: i64, epoch: i16, commit: bool) -> (i16, i64, i16) {
    let req = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(s(TXN_ID)))
        .with_producer_id(ProducerId(id))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    let resp: EndTxnResponse = conn.call_at(ApiKey::EndTxn, 5, &req);
    (resp.error_code, resp.producer_id.0, resp.producer_epoch)
}

fn describe(conn: &mut RawConn) -> (String, i64, i16, usize) {
    let req = DescribeTransactionsRequest::default()
        .with_transactional_ids(vec![TransactionalId(s(TXN_ID))]);
    let resp: DescribeTransactionsResponse = conn.call_at(ApiKey::DescribeTransactions, 0, &req);
    let t = &resp.transaction_states[0];
    assert_eq!(t.error_code, 0, "{resp:?}");
    (
        t.transaction_state.to_string(),
        t.producer_id.0,
        t.producer_epoch,
        t.topics.iter().map(|t| t.partitions.len()).sum(),
    )
}

fn init_producer_id(conn: &mut RawConn) -> (i64, i16) {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(s(TXN_ID))))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let resp: InitProducerIdResponse = conn.call_at(ApiKey::InitProducerId, 4, &req);
    assert_eq!(resp.error_code, 0, "{resp:?}");
    (resp.producer_id.0, resp.producer_epoch)
}

/// The group's committed offset of partition 0, read with `require_stable`: Ok(offset) or
/// Err(error code) (UNSTABLE_OFFSET_COMMIT while a transaction holds one).
fn committed_offset(conn: &mut RawConn) -> Result<i64, i16> {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(GROUP)))
        .with_require_stable(true)
        .with_topics(Some(vec![
            OffsetFetchRequestTopic::default()
                .with_name(TopicName(s(TOPIC)))
                .with_partition_indexes(vec![0]),
        ]));
    let resp: OffsetFetchResponse = conn.call_at(ApiKey::OffsetFetch, 7, &req);
    let p = &resp.topics[0].partitions[0];
    if p.error_code != 0 {
        return Err(p.error_code);
    }
    Ok(p.committed_offset)
}

fn values(n: usize, what: &str) -> Vec<String> {
    (0..n).map(|i| format!("{what}-{i}")).collect()
}

/// Every data record of `TOPIC`'s two partitions as (partition, value), read by librdkafka
/// with `isolation` until both partitions reach their end.
fn read_all(broker: &Broker, isolation: &str) -> Vec<(i32, String)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", format!("reader-{isolation}"))
        .set("isolation.level", isolation)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..2 {
        tpl.add_partition_offset(TOPIC, p, rdkafka::Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let mut at_end = [false, false];
    let deadline = Instant::now() + Duration::from_secs(60);
    while at_end.iter().any(|e| !e) {
        assert!(Instant::now() < deadline, "{isolation}: read {out:?}");
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Ok(m)) => {
                at_end[m.partition() as usize] = false;
                let v = String::from_utf8(m.payload().unwrap().to_vec()).unwrap();
                out.push((m.partition(), v));
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => at_end[p as usize] = true,
            Some(Err(e)) => panic!("{isolation}: {e}"),
        }
    }
    out
}

#[test]
fn v2_transactions_join_bump_fence_and_survive_kill9() {
    let mut broker = Broker::start();
    let mut conn = RawConn::open(&broker, "v2-client");
    assert_eq!(conn.create_topic(TOPIC, 2), 0);

    // The features and versions a V2 client looks for.
    let versions: ApiVersionsResponse =
        conn.call_at(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    let feature = versions
        .finalized_features
        .iter()
        .find(|f| f.name.as_str() == "transaction.version")
        .expect("transaction.version finalized");
    assert_eq!(feature.max_version_level, 2);
    for (key, max) in [
        (ApiKey::Produce, 12),
        (ApiKey::EndTxn, 5),
        (ApiKey::TxnOffsetCommit, 5),
    ] {
        let v = versions
            .api_keys
            .iter()
            .find(|k| k.api_key == key as i16)
            .unwrap();
        assert!(v.max_version >= max, "{key:?}: {v:?}");
    }

    let (id, epoch0) = init_producer_id(&mut conn);
    assert_eq!(epoch0, 0);

    // Transaction 1: both partitions join by being produced to; commit.
    assert_eq!(
        produce(&mut conn, 0, txn_batch(id, 0, 0, &values(3, "c1-p0"))),
        0
    );
    assert_eq!(
        produce(&mut conn, 1, txn_batch(id, 0, 0, &values(2, "c1-p1"))),
        0
    );
    let (state, _, _, partitions) = describe(&mut conn);
    assert_eq!((state.as_str(), partitions), ("Ongoing", 2));
    assert_eq!(end_txn(&mut conn, id, 0, true), (0, id, 1));
    // The same EndTxn retried: the same answer, nothing written again.
    assert_eq!(end_txn(&mut conn, id, 0, true), (0, id, 1));
    // A retry of the other end is refused; the ended transaction's epoch is fenced.
    assert_eq!(end_txn(&mut conn, id, 0, false).0, INVALID_TXN_STATE);
    assert_eq!(
        produce(&mut conn, 0, txn_batch(id, 0, 3, &values(1, "late"))),
        INVALID_PRODUCER_EPOCH
    );

    // Transaction 2 at epoch 1 (sequences start again at 0): aborted.
    assert_eq!(
        produce(&mut conn, 0, txn_batch(id, 1, 0, &values(3, "a2-p0"))),
        0
    );
    assert_eq!(end_txn(&mut conn, id, 1, false), (0, id, 2));

    // Transaction 3 at epoch 2: records and the group's offset (TxnOffsetCommit v5, no
    // AddOffsetsToTxn); the offset is pending until the commit.
    assert_eq!(
        produce(&mut conn, 0, txn_batch(id, 2, 0, &values(2, "c3-p0"))),
        0
    );
    let commit = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(s(TXN_ID)))
        .with_group_id(GroupId(s(GROUP)))
        .with_producer_id(ProducerId(id))
        .with_producer_epoch(2)
        .with_generation_id(-1)
        .with_member_id(s(""))
        .with_topics(vec![
            TxnOffsetCommitRequestTopic::default()
                .with_name(TopicName(s(TOPIC)))
                .with_partitions(vec![
                    TxnOffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(42)
                        .with_committed_leader_epoch(-1),
                ]),
        ]);
    let resp: TxnOffsetCommitResponse = conn.call_at(ApiKey::TxnOffsetCommit, 5, &commit);
    assert_eq!(resp.topics[0].partitions[0].error_code, 0, "{resp:?}");
    let (state, _, _, partitions) = describe(&mut conn);
    assert_eq!(
        (state.as_str(), partitions),
        ("Ongoing", 2),
        "data and offsets partitions"
    );
    assert_eq!(
        committed_offset(&mut conn),
        Err(88),
        "UNSTABLE_OFFSET_COMMIT"
    );
    assert_eq!(end_txn(&mut conn, id, 2, true), (0, id, 3));
    assert_eq!(committed_offset(&mut conn), Ok(42));

    // An abort with nothing open (nothing produced since): the epoch still moves.
    assert_eq!(end_txn(&mut conn, id, 3, false), (0, id, 4));
    assert_eq!(end_txn(&mut conn, id, 2, false).0, PRODUCER_FENCED);

    // Readers: read_committed sees the two committed transactions, read_uncommitted
    // every data record; neither sees a marker.
    let mut committed = read_all(&broker, "read_committed");
    committed.sort();
    let mut want: Vec<(i32, String)> = values(3, "c1-p0")
        .into_iter()
        .chain(values(2, "c3-p0"))
        .map(|v| (0, v))
        .chain(values(2, "c1-p1").into_iter().map(|v| (1, v)))
        .collect();
    want.sort();
    assert_eq!(committed, want);
    let mut all = read_all(&broker, "read_uncommitted");
    all.sort();
    want.extend(values(3, "a2-p0").into_iter().map(|v| (0, v)));
    want.sort();
    assert_eq!(all, want);

    // kill -9: the coordinator replays its state; the last end's retry is recognised and
    // InitProducerId continues from the bumped epoch.
    drop(conn);
    broker.kill9();
    broker.restart();
    let mut conn = RawConn::open(&broker, "v2-client");
    assert_eq!(describe(&mut conn), ("CompleteAbort".to_string(), id, 4, 0));
    assert_eq!(end_txn(&mut conn, id, 3, false), (0, id, 4));
    assert_eq!(init_producer_id(&mut conn), (id, 5));
    assert_eq!(committed_offset(&mut conn), Ok(42));
}

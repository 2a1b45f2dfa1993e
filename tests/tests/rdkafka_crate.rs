//! The Rust `rdkafka` crate (bundled librdkafka 2.12) against a real broker: AdminClient
//! CreateTopics, a FutureProducer with keys, headers and explicit timestamps, and a
//! BaseConsumer assigned to every partition from the beginning (no group).

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use floe_tests::Broker;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, Timestamp};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

/// One record as produced, and where the broker said it landed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    partition: i32,
    offset: i64,
    key: Vec<u8>,
    payload: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
    timestamp: Timestamp,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn client_config(broker: &Broker) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", broker.bootstrap());
    config
}

fn create_topic(rt: &tokio::runtime::Runtime, broker: &Broker, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = client_config(broker).create().unwrap();
    let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(30)));
    let results = rt
        .block_on(admin.create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &opts,
        ))
        .expect("CreateTopics request");
    for result in results {
        result.unwrap_or_else(|(name, code)| panic!("creating topic {name} failed: {code}"));
    }
}

/// Deterministic records: binary keys and payloads of varied sizes, a few null payloads,
/// and headers that include a binary value, an empty value and a null value.
fn make_records(count: usize) -> Vec<Record> {
    let mut rng = StdRng::seed_from_u64(0x0f10e);
    // Millisecond timestamps a little in the past, strictly increasing.
    let base_ts = 1_700_000_000_000i64;
    (0..count)
        .map(|i| {
            let mut key = format!("key-{i}-").into_bytes();
            key.extend((0..rng.random_range(0..32)).map(|_| rng.random::<u8>()));
            let payload = if i % 100 == 7 {
                None
            } else {
                let len = if i % 50 == 0 {
                    rng.random_range(10_000..40_000)
                } else {
                    rng.random_range(0..600)
                };
                Some((0..len).map(|_| rng.random::<u8>()).collect())
            };
            let binary: Vec<u8> = (0..rng.random_range(1..16))
                .map(|_| rng.random::<u8>())
                .collect();
            Record {
                partition: -1,
                offset: -1,
                key,
                payload,
                headers: vec![
                    ("index".to_string(), Some(i.to_string().into_bytes())),
                    ("binary".to_string(), Some(binary)),
                    ("empty".to_string(), Some(Vec::new())),
                    ("null".to_string(), None),
                    // A repeated name: Kafka headers are a list, not a map.
                    ("index".to_string(), Some(b"again".to_vec())),
                ],
                timestamp: Timestamp::CreateTime(base_ts + i as i64),
            }
        })
        .collect()
}

fn owned_headers(record: &Record) -> OwnedHeaders {
    record
        .headers
        .iter()
        .fold(OwnedHeaders::new(), |headers, (name, value)| {
            headers.insert(Header {
                key: name.as_str(),
                value: value.as_deref(),
            })
        })
}

fn header_list<H: Headers>(headers: Option<&H>) -> Vec<(String, Option<Vec<u8>>)> {
    headers
        .map(|h| {
            h.iter()
                .map(|header| (header.key.to_string(), header.value.map(<[u8]>::to_vec)))
                .collect()
        })
        .unwrap_or_default()
}

/// Produces every record (all in flight at once), filling in partition and offset from the
/// delivery reports.
fn produce(
    rt: &tokio::runtime::Runtime,
    broker: &Broker,
    topic: &str,
    compression: &str,
    records: &mut [Record],
) {
    let producer: FutureProducer = client_config(broker)
        .set("acks", "all")
        .set("compression.type", compression)
        .set("linger.ms", "5")
        // Fail within the test's time rather than librdkafka's default five minutes.
        .set("message.timeout.ms", "60000")
        .create()
        .unwrap();
    let mut pending = Vec::with_capacity(records.len());
    for record in records.iter() {
        let mut future_record = FutureRecord::to(topic)
            .key(&record.key)
            .headers(owned_headers(record));
        if let Some(payload) = &record.payload {
            future_record = future_record.payload(payload);
        }
        if let Timestamp::CreateTime(ts) = record.timestamp {
            future_record = future_record.timestamp(ts);
        }
        let delivery = producer
            .send_result(future_record)
            .map_err(|(e, _)| e)
            .expect("enqueue message");
        pending.push(delivery);
    }
    rt.block_on(async {
        for (i, (record, delivery)) in records.iter_mut().zip(pending).enumerate() {
            let delivery = delivery
                .await
                .expect("delivery future dropped")
                .unwrap_or_else(|(e, _)| panic!("message {i} not delivered: {e}"));
            record.partition = delivery.partition;
            record.offset = delivery.offset;
            assert_eq!(
                delivery.timestamp, record.timestamp,
                "message {i}: delivery report timestamp"
            );
        }
    });
}

/// Reads every partition of `topic` from the beginning until each reports its end, and
/// returns what it read in arrival order.
fn consume_all(broker: &Broker, topic: &str, partitions: i32, expected: usize) -> Vec<Record> {
    let consumer: BaseConsumer = client_config(broker)
        // librdkafka refuses assign() without a group id ("Unknown group"); the group is
        // never joined nor committed to.
        .set("group.id", format!("{topic}-unused-group"))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();

    let mut got = Vec::with_capacity(expected);
    let mut at_end = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while at_end.len() < partitions as usize || got.len() < expected {
        assert!(
            Instant::now() < deadline,
            "consumed {} of {expected} messages in 120 s; partitions at end: {at_end:?}",
            got.len()
        );
        match consumer.poll(Duration::from_millis(500)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => panic!("consume error: {e}"),
            Some(Ok(msg)) => got.push(Record {
                partition: msg.partition(),
                offset: msg.offset(),
                key: msg.key().expect("every message has a key").to_vec(),
                payload: msg.payload().map(<[u8]>::to_vec),
                headers: header_list(msg.headers()),
                timestamp: msg.timestamp(),
            }),
        }
    }
    got
}

/// Per partition, in offset order.
fn by_partition(records: &[Record]) -> BTreeMap<i32, Vec<&Record>> {
    let mut map: BTreeMap<i32, Vec<&Record>> = BTreeMap::new();
    for r in records {
        map.entry(r.partition).or_default().push(r);
    }
    map
}

fn round_trip(topic: &str, partitions: i32, count: usize, compression: &str) {
    let rt = runtime();
    let broker = Broker::start();
    create_topic(&rt, &broker, topic, partitions);

    let mut records = make_records(count);
    produce(&rt, &broker, topic, compression, &mut records);

    let produced = by_partition(&records);
    assert_eq!(
        produced.len(),
        partitions as usize,
        "the key hash should spread {count} messages over every partition"
    );
    for (p, list) in &produced {
        let offsets: Vec<i64> = list.iter().map(|r| r.offset).collect();
        let want: Vec<i64> = (0..list.len() as i64).collect();
        assert_eq!(
            offsets, want,
            "partition {p}: delivery offsets of a fresh topic, in produce order"
        );
    }

    let consumed = consume_all(&broker, topic, partitions, count);
    assert_eq!(consumed.len(), count, "consumed message count");
    let consumed = by_partition(&consumed);
    for (p, want) in &produced {
        let got = consumed.get(p).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(got.len(), want.len(), "partition {p}: message count");
        for (got, want) in got.iter().zip(want) {
            assert_eq!(got, want, "partition {p} offset {}", want.offset);
        }
    }
}

/// 1,000 keyed messages with headers and timestamps through two partitions, uncompressed.
#[test]
fn keyed_messages_with_headers_round_trip() {
    round_trip("rdkafka-plain", 2, 1_000, "none");
}

/// The same with lz4 batches from librdkafka 2.12.
#[test]
fn keyed_messages_with_headers_round_trip_lz4() {
    round_trip("rdkafka-lz4", 2, 1_000, "lz4");
}

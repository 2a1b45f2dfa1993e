//! A raw Kafka client connection for tests that control every frame: requests encoded and
//! responses decoded with the `kafka-protocol` crate over a blocking `TcpStream`.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::api_versions_request::ApiVersionsRequest;
use kafka_protocol::messages::api_versions_response::ApiVersionsResponse;
use kafka_protocol::messages::create_topics_request::{
    CreatableTopic, CreatableTopicConfig, CreateTopicsRequest,
};
use kafka_protocol::messages::create_topics_response::CreateTopicsResponse;
use kafka_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic,
};
use kafka_protocol::messages::list_offsets_response::ListOffsetsResponse;
use kafka_protocol::messages::metadata_request::MetadataRequest;
use kafka_protocol::messages::metadata_response::MetadataResponse;
use kafka_protocol::messages::produce_request::{
    PartitionProduceData, ProduceRequest, TopicProduceData,
};
use kafka_protocol::messages::produce_response::ProduceResponse;
use kafka_protocol::messages::{ApiKey, BrokerId, RequestHeader, ResponseHeader, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use kafka_protocol::records::Compression;

use crate::Broker;

/// ApiVersions version `open` asks with (the newest `kafka-protocol` 0.18 knows).
const API_VERSIONS_VERSION: i16 = 3;

/// Highest versions the helpers below build requests for: Produce v13 names topics by id,
/// so stay at v12; the others are the newest `kafka-protocol` 0.18 knows.
pub const PRODUCE_MAX: i16 = 12;
const LIST_OFFSETS_MAX: i16 = 10;
const CREATE_TOPICS_MAX: i16 = 7;

fn topic(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// A valid magic-2 record batch of `n` records (keys `key-<i>`, values `value-<i>`)
/// compressed with `compression`.
pub fn batch(n: i64, compression: Compression) -> Bytes {
    // Stamped now: the broker's retention (7 days by default) deletes older records.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    floe_protocol::test_kit::numbered_batch_at(0, n as usize, "key-", "value-", compression, now)
        .freeze()
}

/// One client connection speaking raw frames. Reads time out after 30 s.
pub struct RawConn {
    pub stream: TcpStream,
    /// Correlation id of the last request sent.
    pub correlation_id: i32,
    /// api key -> (min, max) version as advertised by the broker; empty after `open_raw`.
    pub versions: HashMap<i16, (i16, i16)>,
    /// Client id in every request header (and the ApiVersions client software name).
    client_id: &'static str,
}

impl RawConn {
    /// Connect and learn the broker's API versions.
    pub fn open(broker: &Broker, client_id: &'static str) -> RawConn {
        let mut conn = RawConn::open_raw(broker, client_id);
        let resp: ApiVersionsResponse = conn.call_at(
            ApiKey::ApiVersions,
            API_VERSIONS_VERSION,
            &ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str(client_id))
                .with_client_software_version(StrBytes::from_static_str("1")),
        );
        assert_eq!(resp.error_code, 0, "ApiVersions v{API_VERSIONS_VERSION}");
        conn.versions = resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        conn
    }

    /// Connect without sending anything.
    pub fn open_raw(broker: &Broker, client_id: &'static str) -> RawConn {
        RawConn::connect(broker.addr(), client_id)
    }

    /// Connect to any Kafka listener at `addr` without sending anything.
    pub fn connect(addr: std::net::SocketAddr, client_id: &'static str) -> RawConn {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        RawConn {
            stream,
            correlation_id: 0,
            versions: HashMap::new(),
            client_id,
        }
    }

    /// The version to use for `key`: the broker's max capped at `ours`.
    pub fn version(&self, key: ApiKey, ours: i16) -> i16 {
        let &(min, max) = self
            .versions
            .get(&(key as i16))
            .unwrap_or_else(|| panic!("broker does not advertise {key:?}"));
        let v = max.min(ours);
        assert!(
            v >= min,
            "broker wants {key:?} v{min}..v{max}, we speak up to v{ours}"
        );
        v
    }

    /// Send one request at `version`; returns its correlation id.
    pub fn send<Req: Encodable + HeaderVersion>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &Req,
    ) -> i32 {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str(self.client_id)));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, Req::header_version(version))
            .unwrap();
        req.encode(&mut body, version).unwrap();
        let mut frame = (body.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        self.stream.write_all(&frame).unwrap();
        self.correlation_id
    }

    /// Read one response frame and check its correlation id; returns the body after the
    /// response header.
    pub fn recv_frame(&mut self, correlation_id: i32, header_version: i16) -> Bytes {
        let mut len = [0u8; 4];
        self.stream
            .read_exact(&mut len)
            .unwrap_or_else(|e| panic!("reading response {correlation_id}: {e}"));
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut body).unwrap();
        let mut body = Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, header_version).unwrap();
        assert_eq!(header.correlation_id, correlation_id, "correlation id");
        body
    }

    /// Send a request at `version` and decode its response.
    pub fn call_at<Req, Resp>(&mut self, key: ApiKey, version: i16, req: &Req) -> Resp
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable + HeaderVersion,
    {
        let id = self.send(key, version, req);
        let mut body = self.recv_frame(id, Resp::header_version(version));
        Resp::decode(&mut body, version)
            .unwrap_or_else(|e| panic!("decoding {key:?} v{version} response: {e}"))
    }

    /// [`RawConn::call_at`] at [`RawConn::version`]`(key, ours)`.
    pub fn call<Req, Resp>(&mut self, key: ApiKey, ours: i16, req: &Req) -> Resp
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable + HeaderVersion,
    {
        let version = self.version(key, ours);
        self.call_at(key, version, req)
    }

    /// CreateTopics of one topic (replication factor 1); returns the topic's error code.
    pub fn create_topic(&mut self, name: &str, partitions: i32) -> i16 {
        self.create_topic_with(name, partitions, &[])
    }

    /// [`RawConn::create_topic`] with topic configs.
    pub fn create_topic_with(
        &mut self,
        name: &str,
        partitions: i32,
        configs: &[(&str, &str)],
    ) -> i16 {
        let version = self.version(ApiKey::CreateTopics, CREATE_TOPICS_MAX);
        let configs = configs
            .iter()
            .map(|(k, v)| {
                CreatableTopicConfig::default()
                    .with_name(StrBytes::from_string((*k).to_owned()))
                    .with_value(Some(StrBytes::from_string((*v).to_owned())))
            })
            .collect();
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(vec![
                CreatableTopic::default()
                    .with_name(topic(name))
                    .with_num_partitions(partitions)
                    .with_replication_factor(1)
                    .with_configs(configs),
            ]);
        let resp: CreateTopicsResponse = self.call_at(ApiKey::CreateTopics, version, &req);
        assert_eq!(resp.topics.len(), 1, "CreateTopics({name}) v{version}");
        resp.topics[0].error_code
    }

    /// Produce one batch at the newest version both sides speak (up to [`PRODUCE_MAX`]);
    /// returns (error code, base offset) of the only partition response.
    pub fn produce(&mut self, name: &str, partition: i32, acks: i16, batch: Bytes) -> (i16, i64) {
        let version = self.version(ApiKey::Produce, PRODUCE_MAX);
        self.produce_at(version, name, partition, acks, batch)
    }

    /// [`RawConn::produce`] at a given Produce version.
    pub fn produce_at(
        &mut self,
        version: i16,
        name: &str,
        partition: i32,
        acks: i16,
        batch: Bytes,
    ) -> (i16, i64) {
        let req = ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(topic(name))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(partition)
                            .with_records(Some(batch)),
                    ]),
            ]);
        let resp: ProduceResponse = self.call_at(ApiKey::Produce, version, &req);
        assert_eq!(resp.responses.len(), 1, "Produce v{version}: {resp:?}");
        let parts = &resp.responses[0].partition_responses;
        assert_eq!(parts.len(), 1, "Produce v{version}: {resp:?}");
        assert_eq!(parts[0].index, partition, "Produce v{version}: {resp:?}");
        (parts[0].error_code, parts[0].base_offset)
    }

    /// ListOffsets latest (timestamp -1) of one partition: (error code, offset).
    pub fn latest_offset(&mut self, name: &str, partition: i32) -> (i16, i64) {
        let version = self.version(ApiKey::ListOffsets, LIST_OFFSETS_MAX);
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_timeout_ms(30_000)
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(topic(name))
                    .with_partitions(vec![
                        ListOffsetsPartition::default()
                            .with_partition_index(partition)
                            .with_timestamp(-1),
                    ]),
            ]);
        let resp: ListOffsetsResponse = self.call_at(ApiKey::ListOffsets, version, &req);
        let p = &resp.topics[0].partitions[0];
        (p.error_code, p.offset)
    }

    /// Metadata of every topic (v12).
    pub fn metadata(&mut self) -> MetadataResponse {
        self.call(
            ApiKey::Metadata,
            12,
            &MetadataRequest::default().with_topics(None),
        )
    }

    /// The error code Metadata gives one partition (panics if the topic is not listed).
    pub fn partition_error(&mut self, topic: &str, partition: i32) -> i16 {
        let meta = self.metadata();
        let t = meta
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
            .unwrap_or_else(|| panic!("{topic} not in Metadata"));
        t.partitions[partition as usize].error_code
    }

    /// The broker closed this connection: a read returns end of stream or a reset, not data
    /// and not a timeout.
    pub fn assert_closed(&mut self, what: &str) {
        let mut buf = [0u8; 64];
        match self.stream.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => panic!(
                "{what}: broker answered {n} bytes instead of closing: {:?}",
                &buf[..n]
            ),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("{what}: connection still open after 30 s")
            }
            Err(_) => {} // reset by peer: closed with our bytes unread
        }
    }
}

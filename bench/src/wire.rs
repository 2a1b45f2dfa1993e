//! A minimal blocking Kafka client on raw frames, for the few requests where a full client
//! would blur the measurement: the ready-to-serve probe after a restart (librdkafka backs off
//! between reconnects, which would add its back-off to the measured time), topic creation,
//! and the security scenario's connection set-ups (TLS, SASL handshake and SCRAM) and SCRAM
//! credentials.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialUpsertion;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, ApiKey,
    ApiVersionsRequest, ApiVersionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse, MetadataRequest, MetadataResponse, ProduceRequest,
    ProduceResponse, RequestHeader, ResponseHeader, SaslAuthenticateRequest,
    SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes, encode_request_header_into_buffer};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

const METADATA_VERSION: i16 = 9;
const PRODUCE_VERSION: i16 = 8;
const CREATE_TOPICS_VERSION: i16 = 5;
const DELETE_TOPICS_VERSION: i16 = 5;
const INCREMENTAL_ALTER_CONFIGS_VERSION: i16 = 1;
const API_VERSIONS_VERSION: i16 = 3;
/// v1: the SASL tokens that follow travel in SaslAuthenticate requests (KIP-152).
const SASL_HANDSHAKE_VERSION: i16 = 1;
const SASL_AUTHENTICATE_VERSION: i16 = 2;
const ALTER_USER_SCRAM_CREDENTIALS_VERSION: i16 = 0;
/// Kafka's `TOPIC_ALREADY_EXISTS`.
const TOPIC_ALREADY_EXISTS: i16 = 36;
/// Kafka's `UNKNOWN_TOPIC_OR_PARTITION`.
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

/// One connection to a broker: a TCP socket, or any other byte stream over one (TLS).
pub struct Conn<S = TcpStream> {
    stream: S,
    next_correlation_id: i32,
}

/// A TCP connection to `addr` with the client's usual socket options.
pub fn tcp(addr: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

impl Conn {
    pub fn connect(addr: SocketAddr, timeout: Duration) -> std::io::Result<Conn> {
        Ok(Conn::over(tcp(addr, timeout)?))
    }
}

impl<S: Read + Write> Conn<S> {
    /// Kafka requests over `stream`, already connected (and, for TLS, wrapped).
    pub fn over(stream: S) -> Conn<S> {
        Conn {
            stream,
            next_correlation_id: 1,
        }
    }

    fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        request: &Req,
    ) -> Result<Resp> {
        let id = self.next_correlation_id;
        self.next_correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(id)
            .with_client_id(Some(StrBytes::from_static_str("floe-bench")));
        let mut body = BytesMut::new();
        encode_request_header_into_buffer(&mut body, &header)?;
        request.encode(&mut body, version)?;
        let mut frame = Vec::with_capacity(body.len() + 4);
        frame.extend_from_slice(&u32::try_from(body.len())?.to_be_bytes());
        frame.extend_from_slice(&body);
        self.stream.write_all(&frame)?;
        self.stream.flush()?;

        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len)?;
        let mut buf = vec![0u8; u32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut buf)?;
        let mut buf = Bytes::from(buf);
        let response_header =
            ResponseHeader::decode(&mut buf, key.response_header_version(version))?;
        if response_header.correlation_id != id {
            bail!(
                "response correlation id {} != request {id}",
                response_header.correlation_id
            );
        }
        Resp::decode(&mut buf, version)
    }

    /// ApiVersions, as every client opens a connection with; fails on an error code.
    pub fn api_versions(&mut self) -> Result<ApiVersionsResponse> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("floe-bench"))
            .with_client_software_version(StrBytes::from_static_str("1"));
        let response: ApiVersionsResponse =
            self.call(ApiKey::ApiVersions, API_VERSIONS_VERSION, &request)?;
        if response.error_code != 0 {
            bail!("ApiVersions: error {}", response.error_code);
        }
        Ok(response)
    }

    /// SaslHandshake v1 choosing `mechanism`; fails unless the broker accepts it.
    pub fn sasl_handshake(&mut self, mechanism: &str) -> Result<()> {
        let request = SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_string(mechanism.to_owned()));
        let response: SaslHandshakeResponse =
            self.call(ApiKey::SaslHandshake, SASL_HANDSHAKE_VERSION, &request)?;
        if response.error_code != 0 {
            bail!(
                "SaslHandshake {mechanism}: error {} (offered {:?})",
                response.error_code,
                response.mechanisms
            );
        }
        Ok(())
    }

    /// One SASL token in a SaslAuthenticate request; the broker's token back.
    pub fn sasl_authenticate(&mut self, token: &[u8]) -> Result<Bytes> {
        let request =
            SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(token));
        let response: SaslAuthenticateResponse = self.call(
            ApiKey::SaslAuthenticate,
            SASL_AUTHENTICATE_VERSION,
            &request,
        )?;
        if response.error_code != 0 {
            bail!(
                "SaslAuthenticate: error {} {:?}",
                response.error_code,
                response.error_message
            );
        }
        Ok(response.auth_bytes)
    }

    /// Sets `user`'s SCRAM credential for `mechanism` (Kafka's type code: 1 SHA-256,
    /// 2 SHA-512) from a salted password the caller computed, as AdminClient does.
    pub fn alter_user_scram_credential(
        &mut self,
        user: &str,
        mechanism: i8,
        iterations: i32,
        salt: &[u8],
        salted_password: &[u8],
    ) -> Result<()> {
        let request = AlterUserScramCredentialsRequest::default().with_upsertions(vec![
            ScramCredentialUpsertion::default()
                .with_name(StrBytes::from_string(user.to_owned()))
                .with_mechanism(mechanism)
                .with_iterations(iterations)
                .with_salt(Bytes::copy_from_slice(salt))
                .with_salted_password(Bytes::copy_from_slice(salted_password)),
        ]);
        let response: AlterUserScramCredentialsResponse = self.call(
            ApiKey::AlterUserScramCredentials,
            ALTER_USER_SCRAM_CREDENTIALS_VERSION,
            &request,
        )?;
        for r in &response.results {
            if r.error_code != 0 {
                bail!(
                    "AlterUserScramCredentials {user}: error {} {:?}",
                    r.error_code,
                    r.error_message
                );
            }
        }
        Ok(())
    }

    pub fn metadata(&mut self, topic: &str) -> Result<MetadataResponse> {
        let request = MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic_name(topic))),
            ]))
            .with_allow_auto_topic_creation(false);
        self.call(ApiKey::Metadata, METADATA_VERSION, &request)
    }

    /// True if the broker knows `topic` with `partitions` partitions, each with a leader.
    pub fn topic_ready(&mut self, topic: &str, partitions: i32) -> Result<bool> {
        let metadata = self.metadata(topic)?;
        Ok(metadata.topics.iter().any(|t| {
            t.error_code == 0
                && t.partitions.len() == partitions as usize
                && t.partitions
                    .iter()
                    .all(|p| p.error_code == 0 && p.leader_id.0 >= 0)
        }))
    }

    /// Produces one small record to every partition of `topic` in one request (acks=1) and
    /// fails unless every partition answered without error.
    pub fn produce_probe(&mut self, topic: &str, partitions: i32) -> Result<()> {
        let batch = probe_batch()?;
        let request = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(topic_name(topic))
                    .with_partition_data(
                        (0..partitions)
                            .map(|p| {
                                PartitionProduceData::default()
                                    .with_index(p)
                                    .with_records(Some(batch.clone()))
                            })
                            .collect(),
                    ),
            ]);
        let response: ProduceResponse = self.call(ApiKey::Produce, PRODUCE_VERSION, &request)?;
        let mut answered = 0;
        for topic in &response.responses {
            for p in &topic.partition_responses {
                if p.error_code != 0 {
                    bail!(
                        "produce probe: partition {} error {}",
                        p.index,
                        p.error_code
                    );
                }
                answered += 1;
            }
        }
        if answered != partitions {
            bail!("produce probe: {answered} of {partitions} partitions answered");
        }
        Ok(())
    }

    /// Creates `topic` (an existing topic is fine).
    pub fn create_topic(&mut self, topic: &str, partitions: i32) -> Result<()> {
        self.create_topic_with(topic, partitions, &[])
    }

    /// Creates a topic with topic configs.
    pub fn create_topic_with(
        &mut self,
        topic: &str,
        partitions: i32,
        configs: &[(&str, &str)],
    ) -> Result<()> {
        let configs = configs
            .iter()
            .map(|(name, value)| {
                CreatableTopicConfig::default()
                    .with_name(StrBytes::from_string((*name).to_owned()))
                    .with_value(Some(StrBytes::from_string((*value).to_owned())))
            })
            .collect();
        let request = CreateTopicsRequest::default()
            .with_topics(vec![
                CreatableTopic::default()
                    .with_name(topic_name(topic))
                    .with_num_partitions(partitions)
                    .with_replication_factor(1)
                    .with_configs(configs),
            ])
            .with_timeout_ms(30_000);
        let response: CreateTopicsResponse =
            self.call(ApiKey::CreateTopics, CREATE_TOPICS_VERSION, &request)?;
        for t in &response.topics {
            topic_result(
                "create",
                topic,
                t.error_code,
                &t.error_message,
                TOPIC_ALREADY_EXISTS,
            )?;
        }
        Ok(())
    }

    /// Deletes `topic` (one that does not exist is fine).
    pub fn delete_topic(&mut self, topic: &str) -> Result<()> {
        let request = DeleteTopicsRequest::default()
            .with_topic_names(vec![topic_name(topic)])
            .with_timeout_ms(30_000);
        let response: DeleteTopicsResponse =
            self.call(ApiKey::DeleteTopics, DELETE_TOPICS_VERSION, &request)?;
        for t in &response.responses {
            let (code, message) = (t.error_code, &t.error_message);
            topic_result("delete", topic, code, message, UNKNOWN_TOPIC_OR_PARTITION)?;
        }
        Ok(())
    }

    /// Sets topic configs with IncrementalAlterConfigs (the others keep their values).
    pub fn set_topic_configs(&mut self, topic: &str, configs: &[(&str, &str)]) -> Result<()> {
        use kafka_protocol::messages::incremental_alter_configs_request::{
            AlterConfigsResource, AlterableConfig,
        };
        let configs = configs
            .iter()
            .map(|(name, value)| {
                AlterableConfig::default()
                    .with_name(StrBytes::from_string((*name).to_owned()))
                    .with_config_operation(0) // SET
                    .with_value(Some(StrBytes::from_string((*value).to_owned())))
            })
            .collect();
        let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(2) // TOPIC
                .with_resource_name(StrBytes::from_string(topic.to_owned()))
                .with_configs(configs),
        ]);
        let response: IncrementalAlterConfigsResponse = self.call(
            ApiKey::IncrementalAlterConfigs,
            INCREMENTAL_ALTER_CONFIGS_VERSION,
            &request,
        )?;
        for r in &response.responses {
            if r.error_code != 0 {
                bail!(
                    "alter configs of {topic}: error {} {:?}",
                    r.error_code,
                    r.error_message
                );
            }
        }
        Ok(())
    }
}

/// A topic's error code in a CreateTopics or DeleteTopics response as a result: 0 and
/// `tolerated` (the topic already in the wanted state) are fine.
fn topic_result(
    action: &str,
    topic: &str,
    code: i16,
    message: &Option<StrBytes>,
    tolerated: i16,
) -> Result<()> {
    if code != 0 && code != tolerated {
        bail!("{action} topic {topic}: error {code} {message:?}");
    }
    Ok(())
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

fn probe_batch() -> Result<Bytes> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: now_ms,
        key: None,
        value: Some(Bytes::from_static(b"floe-bench ready probe")),
        headers: Default::default(),
    };
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &[record],
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .context("encoding the probe batch")?;
    Ok(buf.freeze())
}

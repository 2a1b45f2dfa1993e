//! One module per Kafka API, and the table that routes requests to them.
//!
//! The `handlers!` table is the single source of truth for what the broker serves: the
//! ApiVersions response is generated from it, and a request for an API or version outside
//! it is refused, so the broker never advertises what it does not serve.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use floe_protocol::request::RequestFrame;
use kafka_protocol::messages::{ApiKey, FetchResponse, RequestHeader, ResponseKind};

use crate::security::acl::{Audit, CLUSTER_NAME, Operation, ResourceType};
use crate::state::Broker;

/// What a handler sees of the request besides its body.
#[derive(Clone)]
pub struct RequestContext {
    /// Shared broker state.
    pub broker: Arc<Broker>,
    /// Client address.
    pub peer: SocketAddr,
    /// The request header.
    pub header: RequestHeader,
    /// Who sent it (principal, address, listener).
    pub session: Arc<crate::security::Session>,
}

impl RequestContext {
    /// This broker as the client's listener advertises it.
    pub fn endpoint(&self) -> &crate::state::Endpoint {
        self.broker.endpoint_for(&self.session.listener)
    }

    /// The API version of the request.
    pub fn version(&self) -> i16 {
        self.header.request_api_version
    }
}

/// Authorization (`crate::security::acl`): what handlers ask before acting. When
/// authorization is off each answers "allowed" after one branch.
impl RequestContext {
    /// Whether requests are authorized at all (handlers skip work only authorization needs).
    pub fn authorizing(&self) -> bool {
        self.broker.security.authorizer.enabled()
    }

    /// Whether the client may do `operation` on the resource; a denial is logged (audit)
    /// with this request's API. For resources the client named.
    pub fn authorize(&self, operation: Operation, resource: ResourceType, name: &str) -> bool {
        self.authorize_with(operation, resource, name, Audit::Log)
    }

    /// [`RequestContext::authorize`] without the audit line, for filters over resources
    /// the client did not name (Kafka's `logIfDenied = false`).
    pub fn authorize_quietly(
        &self,
        operation: Operation,
        resource: ResourceType,
        name: &str,
    ) -> bool {
        self.authorize_with(operation, resource, name, Audit::Quiet)
    }

    /// [`RequestContext::authorize`] on the cluster resource.
    pub fn authorize_cluster(&self, operation: Operation) -> bool {
        self.authorize(operation, ResourceType::Cluster, CLUSTER_NAME)
    }

    fn authorize_with(
        &self,
        operation: Operation,
        resource: ResourceType,
        name: &str,
        audit: Audit,
    ) -> bool {
        if !self.authorizing() {
            return true;
        }
        let api = ApiKey::try_from(self.header.request_api_key).ok();
        self.broker
            .security
            .authorizer
            .check(&self.session, api, operation, resource, name, audit)
    }

    /// [`RequestContext::authorize`] on each of `names`: whether each is allowed, and the
    /// allowed ones in order (for APIs that look up only what the client may see).
    pub fn authorize_each(
        &self,
        operation: Operation,
        resource: ResourceType,
        names: &[String],
    ) -> (Vec<bool>, Vec<String>) {
        let allowed: Vec<bool> = names
            .iter()
            .map(|n| self.authorize(operation, resource, n))
            .collect();
        let wanted = names
            .iter()
            .zip(&allowed)
            .filter(|(_, ok)| **ok)
            .map(|(n, _)| n.clone())
            .collect();
        (allowed, wanted)
    }

    /// Why an ACL API (CreateAcls, DeleteAcls, DescribeAcls) may not run: the client lacks
    /// `operation` on the cluster, or no authorizer is configured (Kafka's
    /// SECURITY_DISABLED). `None`: go ahead.
    pub fn acl_api_refusal(
        &self,
        operation: Operation,
    ) -> Option<(kafka_protocol::ResponseError, &'static str)> {
        use kafka_protocol::ResponseError;
        if !self.authorize_cluster(operation) {
            Some((
                ResponseError::ClusterAuthorizationFailed,
                "Cluster authorization failed.",
            ))
        } else if !self.authorizing() {
            Some((
                ResponseError::SecurityDisabled,
                "No Authorizer is configured.",
            ))
        } else {
            None
        }
    }

    /// Kafka's "authorized operations" bit field of the client on a resource.
    pub fn authorized_operations(&self, resource: ResourceType, name: &str) -> i32 {
        self.broker
            .security
            .authorizer
            .authorized_operations(&self.session, resource, name)
    }
}

/// A response that is ready, or one that completes later (after an fsync or a long poll).
pub enum Reply {
    /// The response body (boxed: response structs are large, futures are a pointer).
    Now(Box<ResponseKind>),
    /// A future yielding the response body; awaited in request order by the writer.
    Later(Pin<Box<dyn Future<Output = ResponseKind> + Send + 'static>>),
    /// A future yielding a Fetch response whose record batches are sent from their segment
    /// files (`sendfile`); awaited in request order by the writer.
    Fetch(Pin<Box<dyn Future<Output = FetchReply> + Send + 'static>>),
    /// Bytes written as one size-prefixed frame with no response header: the SASL tokens
    /// that follow a SaslHandshake v0 (only the connection's authenticator makes these).
    Raw(bytes::Bytes),
}

/// A Fetch response whose record fields are stand-ins (`floe_protocol::rope::StandIns`)
/// for ranges of segment files: `regions[i]` holds the bytes of `stand_ins[i]`.
pub struct FetchReply {
    /// The response, records as stand-ins (or real bytes where no stand-in was left).
    pub body: FetchResponse,
    /// The stand-ins, in the order they were taken.
    pub stand_ins: Vec<bytes::Bytes>,
    /// The file ranges they stand for.
    pub regions: Vec<floe_storage::FileRegion>,
}

impl FetchReply {
    /// The response with every stand-in replaced by its bytes, read from the files (for
    /// writers that cannot send from a file).
    pub fn materialize(mut self) -> Result<FetchResponse, floe_storage::StorageError> {
        for topic in &mut self.body.responses {
            for p in &mut topic.partitions {
                let Some(records) = &p.records else { continue };
                let found = self
                    .stand_ins
                    .iter()
                    .position(|s| !s.is_empty() && s.as_ptr() == records.as_ptr());
                if let Some(i) = found {
                    p.records = Some(bytes::Bytes::from(self.regions[i].read()?));
                }
            }
        }
        Ok(self.body)
    }
}

/// What a handler returns.
pub enum Handled {
    /// Send this reply.
    Reply(Reply),
    /// Send nothing (acks=0 produce).
    NoResponse,
    /// Close the connection (how Kafka tells an acks=0 producer that something failed).
    Close(String),
}

impl From<ResponseKind> for Handled {
    fn from(body: ResponseKind) -> Handled {
        Handled::Reply(Reply::Now(Box::new(body)))
    }
}

/// A response queued for the connection's writer.
pub struct Outgoing {
    /// API of the response.
    pub api_key: ApiKey,
    /// Version to encode the response at.
    pub api_version: i16,
    /// Correlation id of the request.
    pub correlation_id: i32,
    /// The body.
    pub reply: Reply,
    /// When the request was read (for the latency metrics).
    pub received: std::time::Instant,
}

/// An API and the versions of it that the broker serves.
#[derive(Debug, Clone, Copy)]
pub struct SupportedApi {
    /// The API.
    pub key: ApiKey,
    /// Lowest version served.
    pub min: i16,
    /// Highest version served.
    pub max: i16,
}

macro_rules! handlers {
    ($($key:ident $min:literal ..= $max:literal => $module:ident;)*) => {
        $(pub mod $module;)*

        /// Every API the broker serves, with its version range.
        pub const SUPPORTED_APIS: &[SupportedApi] = &[
            $(SupportedApi { key: ApiKey::$key, min: $min, max: $max },)*
        ];

        async fn route(ctx: &RequestContext, frame: &RequestFrame) -> Result<Handled, String> {
            match frame.api_key {
                $(ApiKey::$key => {
                    let body = frame.decode_as().map_err(|e| e.to_string())?;
                    Ok($module::handle(ctx, body).await)
                })*
                other => Err(format!("unsupported api {other:?}")),
            }
        }
    };
}

handlers! {
    Produce 3..=12 => produce;
    Fetch 4..=16 => fetch;
    ListOffsets 1..=8 => list_offsets;
    Metadata 0..=12 => metadata;
    ApiVersions 0..=4 => api_versions;
    CreateTopics 2..=7 => create_topics;
    DeleteTopics 1..=6 => delete_topics;
    DeleteRecords 0..=2 => delete_records;
    InitProducerId 0..=5 => init_producer_id;
    OffsetForLeaderEpoch 2..=4 => offset_for_leader_epoch;
    DescribeConfigs 1..=4 => describe_configs;
    CreatePartitions 0..=3 => create_partitions;
    AlterConfigs 0..=2 => alter_configs;
    IncrementalAlterConfigs 0..=1 => incremental_alter_configs;
    DescribeClientQuotas 0..=1 => describe_client_quotas;
    AlterClientQuotas 0..=1 => alter_client_quotas;
    DescribeAcls 1..=3 => describe_acls;
    CreateAcls 1..=3 => create_acls;
    DeleteAcls 1..=3 => delete_acls;
    DescribeCluster 0..=1 => describe_cluster;
    DescribeLogDirs 1..=4 => describe_log_dirs;
    FindCoordinator 0..=5 => find_coordinator;
    JoinGroup 0..=9 => join_group;
    SyncGroup 0..=5 => sync_group;
    Heartbeat 0..=4 => heartbeat;
    LeaveGroup 0..=5 => leave_group;
    OffsetCommit 2..=9 => offset_commit;
    OffsetFetch 1..=9 => offset_fetch;
    OffsetDelete 0..=0 => offset_delete;
    DescribeGroups 0..=5 => describe_groups;
    ListGroups 0..=5 => list_groups;
    DeleteGroups 0..=2 => delete_groups;
    ConsumerGroupHeartbeat 0..=1 => consumer_group_heartbeat;
    ConsumerGroupDescribe 0..=1 => consumer_group_describe;
    AddPartitionsToTxn 0..=4 => add_partitions_to_txn;
    AddOffsetsToTxn 0..=3 => add_offsets_to_txn;
    EndTxn 0..=5 => end_txn;
    TxnOffsetCommit 0..=5 => txn_offset_commit;
    DescribeProducers 0..=0 => describe_producers;
    DescribeTransactions 0..=0 => describe_transactions;
    ListTransactions 0..=1 => list_transactions;
    ElectLeaders 0..=2 => elect_leaders;
    ListPartitionReassignments 0..=0 => list_partition_reassignments;
    DescribeTopicPartitions 0..=0 => describe_topic_partitions;
    SaslHandshake 0..=1 => sasl_handshake;
    SaslAuthenticate 0..=2 => sasl_authenticate;
    DescribeUserScramCredentials 0..=0 => describe_user_scram_credentials;
    AlterUserScramCredentials 0..=0 => alter_user_scram_credentials;
}

/// The served version range of an API, if it is served at all.
pub fn supported(key: ApiKey) -> Option<SupportedApi> {
    SUPPORTED_APIS.iter().copied().find(|a| a.key == key)
}

/// Routes one parsed request. `Ok(None)`: nothing to send; `Err`: close the connection.
pub async fn dispatch(
    ctx: &RequestContext,
    frame: &RequestFrame,
) -> Result<Option<Outgoing>, String> {
    let version = frame.api_version();
    let received = std::time::Instant::now();
    let outgoing = |api_version, reply| Outgoing {
        api_key: frame.api_key,
        api_version,
        correlation_id: frame.correlation_id(),
        reply,
        received,
    };
    let served = supported(frame.api_key).filter(|a| (a.min..=a.max).contains(&version));
    if served.is_none() {
        if frame.api_key == ApiKey::ApiVersions && version > 0 {
            // KIP-511: answer a too-new ApiVersions with v0 and UNSUPPORTED_VERSION, listing
            // what we serve, so the client can retry with a version we know.
            let body = api_versions::unsupported_version_response();
            return Ok(Some(outgoing(0, Reply::Now(Box::new(body)))));
        }
        return Err(format!(
            "{:?} v{version} is not served (client {:?})",
            frame.api_key,
            floe_protocol::request::client_id(&frame.header)
        ));
    }
    match route(ctx, frame).await? {
        Handled::Reply(reply) => Ok(Some(outgoing(version, reply))),
        Handled::NoResponse => Ok(None),
        Handled::Close(reason) => Err(reason),
    }
}

/// Runs a handler on the runtime's blocking pool: for the admin APIs that change topics
/// (create or remove partition directories and files, write the metadata store with
/// fsyncs), which must not hold a runtime worker while the disk works.
async fn on_blocking_pool(
    ctx: &RequestContext,
    handler: impl FnOnce(&RequestContext) -> Handled + Send + 'static,
) -> Handled {
    let ctx = ctx.clone();
    match tokio::task::spawn_blocking(move || handler(&ctx)).await {
        Ok(handled) => handled,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Handled::Close("the broker is shutting down".into()),
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `StrBytes` from a `&str`.
pub fn str_bytes(s: &str) -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_string(s.to_string())
}

//! A small blocking Kafka client for the admin commands: a connection per broker, metadata
//! (brokers, controller, partition leaders), group coordinators, and a bounded retry for the
//! errors that a new lookup can cure. Message codecs are `kafka-protocol`'s. Every
//! connection it opens (bootstrap, leaders, coordinators) has the same security settings
//! (TLS: `tls.rs`, SASL: `sasl.rs`).

pub mod conn;
pub mod sasl;
pub mod tls;
pub mod versions;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
use kafka_protocol::messages::metadata_response::MetadataResponse;
use kafka_protocol::messages::{GroupId, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::cli::error::{self, check};
pub use conn::{Conn, ConnOpts, Security};

/// Attempts of a request that fails with a retriable routing error.
const MAX_ATTEMPTS: u32 = 8;
/// First pause between attempts; doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// A partition as Metadata describes it.
#[derive(Debug, Clone)]
pub struct PartitionMeta {
    /// Partition index.
    pub index: i32,
    /// Leader's node id, -1 without a leader.
    pub leader: i32,
    /// Leader epoch (-1 before Metadata v7).
    pub leader_epoch: i32,
    /// Replica node ids.
    pub replicas: Vec<i32>,
    /// In-sync replica node ids.
    pub isr: Vec<i32>,
    /// Offline replica node ids.
    pub offline: Vec<i32>,
    /// The partition's error code (LEADER_NOT_AVAILABLE, ...), 0 if none.
    pub error: i16,
}

/// A topic as Metadata describes it.
#[derive(Debug, Clone)]
pub struct TopicMeta {
    /// Topic name.
    pub name: String,
    /// Topic id (nil before Metadata v10).
    pub id: uuid::Uuid,
    /// An internal topic (`__consumer_offsets`).
    pub internal: bool,
    /// Partitions, by index.
    pub partitions: Vec<PartitionMeta>,
}

impl TopicMeta {
    /// The leader of `partition`, or an error naming why there is none.
    pub fn leader(&self, partition: i32) -> anyhow::Result<i32> {
        let Some(p) = self.partitions.iter().find(|p| p.index == partition) else {
            return Err(error::kafka(
                3,
                format!("partition {}[{partition}]", self.name),
                format!("the topic has {} partitions", self.partitions.len()),
            ));
        };
        check(p.error, None, || {
            format!("partition {}[{partition}]", self.name)
        })?;
        if p.leader < 0 {
            return Err(error::kafka(
                5,
                format!("partition {}[{partition}]", self.name),
                "no leader",
            ));
        }
        Ok(p.leader)
    }
}

/// A broker as Metadata describes it.
#[derive(Debug, Clone)]
pub struct BrokerMeta {
    /// Node id.
    pub node_id: i32,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: i32,
    /// Rack, if configured.
    pub rack: Option<String>,
}

impl BrokerMeta {
    /// `host:port`, with brackets around an IPv6 host.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// A cluster as Metadata describes it.
#[derive(Debug, Clone)]
pub struct ClusterMeta {
    /// Cluster id (Metadata v2+).
    pub cluster_id: Option<String>,
    /// Controller node id, -1 if unknown.
    pub controller_id: i32,
    /// Brokers by node id.
    pub brokers: Vec<BrokerMeta>,
    /// Topics asked for (or all).
    pub topics: Vec<TopicMeta>,
    /// Per-topic errors of topics asked for by name: (name, code).
    pub topic_errors: Vec<(String, i16)>,
}

/// The client: bootstrap addresses, open connections, cached broker addresses and group
/// coordinators.
pub struct Client {
    opts: ConnOpts,
    bootstrap: Vec<String>,
    any: Option<Conn>,
    nodes: HashMap<i32, Conn>,
    addrs: HashMap<i32, String>,
    coordinators: HashMap<String, i32>,
}

impl Client {
    /// A client for the comma-separated `brokers` list; connects lazily.
    pub fn new(brokers: &str, opts: ConnOpts) -> anyhow::Result<Client> {
        let bootstrap: Vec<String> = brokers
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if bootstrap.is_empty() {
            return Err(error::usage("--brokers names no broker"));
        }
        Ok(Client {
            opts,
            bootstrap,
            any: None,
            nodes: HashMap::new(),
            addrs: HashMap::new(),
            coordinators: HashMap::new(),
        })
    }

    /// The request timeout (also the budget of the bounded retries).
    pub fn request_timeout(&self) -> Duration {
        self.opts.request_timeout
    }

    /// A connection to any broker (the first bootstrap address that answers).
    pub fn any(&mut self) -> anyhow::Result<&mut Conn> {
        if self.any.is_none() {
            let mut failures = Vec::new();
            for addr in &self.bootstrap {
                match Conn::connect(addr, &self.opts) {
                    Ok(conn) => {
                        self.any = Some(conn);
                        break;
                    }
                    // The same settings fail the same way at every broker.
                    Err(e) if is_security_failure(&e) => return Err(e),
                    Err(e) => failures.push(format!("{e:#}")),
                }
            }
            if self.any.is_none() {
                bail!("no broker reachable: {}", failures.join("; "));
            }
        }
        self.any
            .as_mut()
            .ok_or_else(|| anyhow!("no broker connection"))
    }

    /// A connection to node `id`, found through Metadata.
    pub fn node(&mut self, id: i32) -> anyhow::Result<&mut Conn> {
        if !self.nodes.contains_key(&id) {
            if !self.addrs.contains_key(&id) {
                self.cluster(Some(&[]), false)?;
            }
            let addr = self
                .addrs
                .get(&id)
                .ok_or_else(|| anyhow!("broker {id} is not in the cluster's metadata"))?
                .clone();
            let conn = Conn::connect(&addr, &self.opts)
                .with_context(|| format!("connecting to broker {id}"))?;
            self.nodes.insert(id, conn);
        }
        self.nodes
            .get_mut(&id)
            .ok_or_else(|| anyhow!("no connection to broker {id}"))
    }

    /// The controller (where Kafka wants topic changes), or any broker if none is named.
    pub fn controller(&mut self) -> anyhow::Result<&mut Conn> {
        let meta = self.cluster(Some(&[]), false)?;
        if meta.controller_id >= 0 && self.addrs.contains_key(&meta.controller_id) {
            self.node(meta.controller_id)
        } else {
            self.any()
        }
    }

    /// Metadata for `topics` (`None`: every topic; `Some(&[])`: none, brokers only).
    pub fn cluster(
        &mut self,
        topics: Option<&[String]>,
        allow_auto_create: bool,
    ) -> anyhow::Result<ClusterMeta> {
        let conn = self.any()?;
        let version = conn.version::<MetadataRequest>()?;
        let requested = match topics {
            None if version == 0 => Some(Vec::new()),
            None => None,
            Some(names) => Some(
                names
                    .iter()
                    .map(|n| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(n.clone()))))
                    })
                    .collect(),
            ),
        };
        let req = MetadataRequest::default()
            .with_topics(requested)
            .with_allow_auto_topic_creation(allow_auto_create);
        let resp = conn.call_at(&req, version)?;
        let meta = cluster_meta(resp);
        for b in &meta.brokers {
            self.addrs.insert(b.node_id, b.addr());
        }
        Ok(meta)
    }

    /// Metadata of one topic, waiting (bounded) for its partitions to have leaders;
    /// UNKNOWN_TOPIC_OR_PARTITION if it does not exist.
    pub fn topic(&mut self, name: &str, allow_auto_create: bool) -> anyhow::Result<TopicMeta> {
        let names = [name.to_string()];
        self.retry(|c| {
            let meta = c.cluster(Some(&names), allow_auto_create)?;
            if let Some(&(_, code)) = meta.topic_errors.iter().find(|(n, _)| n == name) {
                check(code, None, || format!("topic '{name}'"))?;
            }
            let topic = meta
                .topics
                .into_iter()
                .find(|t| t.name == name)
                .ok_or_else(|| error::kafka(3, format!("topic '{name}'"), "not in metadata"))?;
            // A partition being elected is worth waiting for; other partition errors (an
            // offline partition) are the commands' to report.
            if let Some(p) = topic.partitions.iter().find(|p| p.error == 5) {
                topic.leader(p.index)?;
            }
            Ok(topic)
        })
    }

    /// The coordinator of `group` (FindCoordinator, cached).
    pub fn coordinator(&mut self, group: &str) -> anyhow::Result<&mut Conn> {
        let node = self.coordinator_id(group)?;
        self.node(node)
    }

    /// The node id of `group`'s coordinator (FindCoordinator, cached).
    pub fn coordinator_id(&mut self, group: &str) -> anyhow::Result<i32> {
        if let Some(&node) = self.coordinators.get(group) {
            return Ok(node);
        }
        let node = self.find_coordinator(group)?;
        self.coordinators.insert(group.to_string(), node);
        Ok(node)
    }

    fn find_coordinator(&mut self, group: &str) -> anyhow::Result<i32> {
        let conn = self.any()?;
        let version = conn.version::<FindCoordinatorRequest>()?;
        let key = StrBytes::from_string(group.to_string());
        let context = || format!("finding the coordinator of group '{group}'");
        let (node, host, port) = if version >= 4 {
            let req = FindCoordinatorRequest::default()
                .with_key_type(0)
                .with_coordinator_keys(vec![key]);
            let resp = conn.call_at(&req, version)?;
            let c = resp
                .coordinators
                .into_iter()
                .next()
                .ok_or_else(|| anyhow!("FindCoordinator answered no coordinator"))?;
            check(c.error_code, c.error_message.as_deref(), context)?;
            (c.node_id.0, c.host.to_string(), c.port)
        } else {
            let req = FindCoordinatorRequest::default().with_key(key);
            let resp = conn.call_at(&req, version)?;
            check(resp.error_code, resp.error_message.as_deref(), context)?;
            (resp.node_id.0, resp.host.to_string(), resp.port)
        };
        let broker = BrokerMeta {
            node_id: node,
            host,
            port,
            rack: None,
        };
        self.addrs.insert(node, broker.addr());
        Ok(node)
    }

    /// Runs `f` again (up to 8 times within the request timeout, with a growing pause) while
    /// it fails with a retriable routing error (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS,
    /// LEADER_NOT_AVAILABLE, ...), forgetting cached coordinators and connections first.
    pub fn retry<T>(
        &mut self,
        mut f: impl FnMut(&mut Client) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let deadline = Instant::now() + self.opts.request_timeout;
        let mut pause = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            match f(self) {
                Ok(v) => return Ok(v),
                Err(e)
                    if error::is_retriable(&e)
                        && attempt < MAX_ATTEMPTS
                        && Instant::now() + pause < deadline =>
                {
                    self.coordinators.clear();
                    self.nodes.clear();
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(MAX_BACKOFF);
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Whether `e` is a TLS or SASL failure (a certificate not trusted, a password refused), not
/// a broker out of reach.
fn is_security_failure(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.is::<rustls::Error>()
            || c.is::<sasl::AuthFailure>()
            || c.downcast_ref::<error::KafkaError>()
                .is_some_and(|k| sasl::FAILURE_CODES.contains(&k.code))
    })
}

fn cluster_meta(resp: MetadataResponse) -> ClusterMeta {
    let brokers = resp
        .brokers
        .iter()
        .map(|b| BrokerMeta {
            node_id: b.node_id.0,
            host: b.host.to_string(),
            port: b.port,
            rack: b.rack.as_ref().map(ToString::to_string),
        })
        .collect();
    let mut topics = Vec::new();
    let mut topic_errors = Vec::new();
    for t in resp.topics {
        let name = t.name.map(|n| n.0.to_string()).unwrap_or_default();
        if t.error_code != 0 {
            topic_errors.push((name, t.error_code));
            continue;
        }
        let mut partitions: Vec<PartitionMeta> = t
            .partitions
            .iter()
            .map(|p| PartitionMeta {
                index: p.partition_index,
                leader: p.leader_id.0,
                leader_epoch: p.leader_epoch,
                replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                offline: p.offline_replicas.iter().map(|b| b.0).collect(),
                error: p.error_code,
            })
            .collect();
        partitions.sort_by_key(|p| p.index);
        topics.push(TopicMeta {
            name,
            id: t.topic_id,
            internal: t.is_internal,
            partitions,
        });
    }
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    ClusterMeta {
        cluster_id: resp.cluster_id.map(|c| c.to_string()),
        controller_id: resp.controller_id.0,
        brokers,
        topics,
        topic_errors,
    }
}

/// A group id for requests.
pub fn group_id(name: &str) -> GroupId {
    GroupId(StrBytes::from_string(name.to_string()))
}

/// A topic name for requests.
pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

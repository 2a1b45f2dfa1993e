//! The broker's shared state, handed to every connection and handler.

use std::sync::Arc;
use std::sync::Mutex;

use crate::config::Config;
use crate::fetch_session::FetchSessions;
use crate::request_budget::RequestBudget;
use crate::topics::{TopicError, Topics};

/// How clients reach this broker (the advertised listener).
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Node id.
    pub node_id: i32,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: i32,
}

/// Hands out producer ids from blocks reserved (and persisted) in the metadata, so an id
/// is never reused, even after a crash.
pub struct ProducerIds {
    next: Mutex<(i64, i64)>, // (next id, end of reserved block)
}

const PRODUCER_ID_BLOCK: i64 = 1000;

impl ProducerIds {
    fn new() -> ProducerIds {
        ProducerIds {
            next: Mutex::new((0, 0)),
        }
    }

    /// A fresh producer id.
    pub fn allocate(&self, topics: &Topics) -> Result<i64, TopicError> {
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        if next.0 >= next.1 {
            let first = topics.reserve_producer_ids(PRODUCER_ID_BLOCK)?;
            *next = (first, first + PRODUCER_ID_BLOCK);
        }
        let id = next.0;
        next.0 += 1;
        Ok(id)
    }
}

/// Everything a request handler can reach.
pub struct Broker {
    /// Settings.
    pub config: Arc<Config>,
    /// This broker as clients of the first listener see it.
    pub endpoint: Endpoint,
    /// This broker as each listener (by name) advertises it.
    pub listener_endpoints: Vec<(String, Endpoint)>,
    /// Authentication and authorization.
    pub security: crate::security::Security,
    /// Topics and their partition logs.
    pub topics: Topics,
    /// Producer id allocation.
    pub producer_ids: ProducerIds,
    /// Incremental fetch sessions (KIP-227).
    pub fetch_sessions: FetchSessions,
    /// Consumer groups and committed offsets.
    pub groups: crate::group::GroupCoordinator,
    /// Transactions.
    pub txns: crate::txn::TransactionCoordinator,
    /// Topics materialized as Iceberg tables (disabled until the server starts it).
    pub tableflow: floe_tableflow::Tableflow,
    /// Bytes of requests being received, across connections (`queued.max.request.bytes`).
    pub request_budget: RequestBudget,
    /// The schema registry (served on the HTTP listener, records in `_schemas`).
    pub schemas: Arc<floe_registry::Registry>,
}

/// Tableflow hears about topic changes through the registry's listener hook.
impl crate::topics::TopicListener for floe_tableflow::Tableflow {
    fn topic_changed(
        &self,
        name: &str,
        partitions: i32,
        configs: &std::collections::BTreeMap<String, String>,
    ) {
        floe_tableflow::Tableflow::topic_changed(self, name, partitions, configs);
    }

    fn topic_deleted(&self, name: &str) {
        floe_tableflow::Tableflow::topic_deleted(self, name);
    }
}

impl Broker {
    /// The endpoint a listener advertises (the first listener's for an unknown name).
    pub fn endpoint_for(&self, listener: &str) -> &Endpoint {
        self.listener_endpoints
            .iter()
            .find(|(name, _)| name == listener)
            .map(|(_, e)| e)
            .unwrap_or(&self.endpoint)
    }

    /// Assembles the shared state.
    pub fn new(
        config: Arc<Config>,
        endpoint: Endpoint,
        topics: Topics,
        security: crate::security::Security,
    ) -> Broker {
        let config_for_registry = Arc::clone(&config);
        Broker {
            listener_endpoints: vec![("PLAINTEXT".into(), endpoint.clone())],
            security,
            request_budget: RequestBudget::new(config.request_budget_bytes()),
            groups: crate::group::GroupCoordinator::open(&config, &topics),
            txns: crate::txn::TransactionCoordinator::open(&config, &topics),
            fetch_sessions: FetchSessions::new(config.fetch_session_cache_slots),
            config,
            endpoint,
            topics,
            producer_ids: ProducerIds::new(),
            tableflow: floe_tableflow::Tableflow::disabled(),
            schemas: Arc::new(floe_registry::Registry::new(
                crate::schema_registry::settings(&config_for_registry),
            )),
        }
    }
}

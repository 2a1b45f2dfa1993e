//! The schema registry's home in the broker: its records live in the compacted internal
//! topic `_schemas` (one partition, Confluent's name and record format), written through the
//! same internal-topic mechanism as the group and transaction coordinators
//! ([`crate::internal_topic`]): appended, fsynced before the registry applies and answers,
//! replayed at start. The registry itself (REST API, compatibility, state) is the
//! `floe-registry` crate; the HTTP listener serves it ([`crate::http`]). [`Validation`] is
//! the produce path's per-topic schema validation.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, Weak};

use bytes::Bytes;
use floe_registry::registry::EncodedRecord;
use floe_registry::validation::{self, SubjectStrategy};
use floe_registry::{Registry, SchemaLog, Settings};

use crate::config::Config;
use crate::internal_topic::{InternalLog, Replayed, StorageInternalLog, encode_batch, replay};
use crate::state::Broker;
use crate::topics::{NewTopic, TopicError, Topics};

/// The topic holding the registry's schemas, configs and modes.
pub const SCHEMAS_TOPIC: &str = "_schemas";

/// The registry's settings from the broker config.
pub fn settings(config: &Config) -> Settings {
    Settings {
        default_compatibility: floe_registry::compat::Compatibility::parse(
            &config.schema_registry_compatibility,
        )
        .unwrap_or_default(),
        ..Settings::default()
    }
}

/// Replays `_schemas` (if it exists) into `registry` and starts it; its writes go to the
/// returned log, which creates the topic on first use once [`TopicLog::attach`]ed to the
/// broker. Blocking (reads the log); called at start, before the listeners are bound, as
/// the coordinators load theirs. A topic that cannot be read leaves the registry unstarted
/// (every request answers 50003) rather than serving a partial state that could hand out
/// an id twice.
pub fn load(registry: &Registry, topics: &Topics) -> Arc<TopicLog> {
    let topic_log = Arc::new(TopicLog {
        broker: OnceLock::new(),
        log: OnceLock::new(),
    });
    let Some(info) = topics.get(SCHEMAS_TOPIC) else {
        registry.start(Arc::new(Shared(Arc::clone(&topic_log))));
        return topic_log;
    };
    let loaded =
        StorageInternalLog::of(topics, SCHEMAS_TOPIC, info.record.partitions).and_then(|log| {
            let mut records = 0u64;
            for p in 0..log.partition_count() {
                replay(log.as_ref(), p, |r| {
                    if let Replayed::Record { key, value, .. } = r {
                        records += 1;
                        registry.replay(key, value);
                    }
                })?;
            }
            Ok((log, records))
        });
    match loaded {
        Ok((log, records)) => {
            tracing::info!(
                records,
                skipped = registry.skipped(),
                "loaded the schema registry from {SCHEMAS_TOPIC}"
            );
            let _ = topic_log.log.set(log);
            registry.start(Arc::new(Shared(Arc::clone(&topic_log))));
        }
        Err(e) => {
            tracing::error!("cannot load {SCHEMAS_TOPIC}; the schema registry is unavailable: {e}")
        }
    }
    topic_log
}

/// `_schemas` as the registry's log: created on the first write.
pub struct TopicLog {
    broker: OnceLock<Weak<Broker>>,
    log: OnceLock<Arc<dyn InternalLog>>,
}

impl TopicLog {
    /// From now on the topic can be created through `broker`.
    pub fn attach(&self, broker: &Arc<Broker>) {
        let _ = self.broker.set(Arc::downgrade(broker));
    }

    fn log(&self) -> Result<Arc<dyn InternalLog>, String> {
        if let Some(log) = self.log.get() {
            return Ok(Arc::clone(log));
        }
        let broker = self
            .broker
            .get()
            .and_then(Weak::upgrade)
            .ok_or_else(|| "the broker is starting or shutting down".to_string())?;
        let created = broker.topics.create(NewTopic {
            name: SCHEMAS_TOPIC.to_string(),
            partitions: Some(1),
            replication_factor: None,
            configs: BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]),
        });
        match created {
            Ok(_) | Err(TopicError::AlreadyExists(_)) => {}
            Err(e) => return Err(format!("cannot create {SCHEMAS_TOPIC}: {e}")),
        }
        let log =
            StorageInternalLog::of(&broker.topics, SCHEMAS_TOPIC, 1).map_err(|e| e.to_string())?;
        Ok(Arc::clone(self.log.get_or_init(|| log)))
    }
}

/// The registry's handle on [`TopicLog`].
struct Shared(Arc<TopicLog>);

#[async_trait::async_trait]
impl SchemaLog for Shared {
    async fn append(&self, records: Vec<EncodedRecord>) -> Result<(), String> {
        let records: Vec<(Bytes, Option<Bytes>)> = records
            .into_iter()
            .map(|(k, v)| (Bytes::from(k), v.map(Bytes::from)))
            .collect();
        let log = Arc::clone(&self.0);
        // Creating the topic, appending and fsyncing block: off the runtime's workers.
        tokio::task::spawn_blocking(move || log.append(&records))
            .await
            .map_err(|e| format!("the {SCHEMAS_TOPIC} writer task failed: {e}"))?
    }
}

impl TopicLog {
    fn append(&self, records: &[(Bytes, Option<Bytes>)]) -> Result<(), String> {
        let log = self.log()?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let batch = encode_batch(records, now).map_err(|e| e.to_string())?;
        log.append(0, batch, now).map_err(|e| e.to_string())?;
        log.sync(0).map_err(|e| e.to_string())
    }
}

/// A topic's broker-side schema validation (`confluent.key.schema.validation`,
/// `confluent.value.schema.validation` and their subject name strategies).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Validation {
    /// Keys are checked, with this strategy.
    pub key: Option<SubjectStrategy>,
    /// Values are checked, with this strategy.
    pub value: Option<SubjectStrategy>,
}

impl Validation {
    /// The validation of `topic` from its configs (off for an unknown topic).
    pub fn of(topics: &Topics, topic: &str) -> Validation {
        topics
            .with_configs(topic, |configs| {
                let side = |on: &str, strategy: &str| {
                    configs
                        .get(on)
                        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
                        .then(|| {
                            configs
                                .get(strategy)
                                .and_then(|s| SubjectStrategy::parse(s))
                                .unwrap_or_default()
                        })
                };
                Validation {
                    key: side(
                        "confluent.key.schema.validation",
                        "confluent.key.subject.name.strategy",
                    ),
                    value: side(
                        "confluent.value.schema.validation",
                        "confluent.value.subject.name.strategy",
                    ),
                }
            })
            .unwrap_or_default()
    }

    /// Whether anything is checked.
    pub fn is_on(&self) -> bool {
        self.key.is_some() || self.value.is_some()
    }

    /// The records of one (validated) batch that fail: their index in the batch and why.
    pub fn failures(&self, registry: &Registry, topic: &str, batch: &[u8]) -> Vec<(usize, String)> {
        let mut failures = Vec::new();
        let walked = floe_protocol::record_batch::for_each_key_value(batch, |index, key, value| {
            let result = self
                .key
                .map_or(Ok(()), |s| validation::check(registry, topic, true, s, key))
                .and_then(|()| {
                    self.value.map_or(Ok(()), |s| {
                        validation::check(registry, topic, false, s, value)
                    })
                });
            if let Err(reason) = result {
                failures.push((index, reason));
            }
        });
        if let Err(e) = walked {
            failures.push((0, format!("the batch cannot be read: {e}")));
        }
        failures
    }
}

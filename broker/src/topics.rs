//! The topic registry: which topics exist, their ids, partitions and configs, and their
//! open partition logs. Every change is persisted through the [`MetadataStore`] before it is
//! acknowledged; partition directories are created or removed in the storage layer.
//!
//! Order of a create: open (create) its partition logs, then persist the topic; if either
//! fails, the partitions created are deleted again and nothing was persisted, so a topic
//! answered as failed never exists (a crash in between leaves stray directories, removed at
//! the next start). Order of a delete: persist the removal, then delete the directories (a
//! crash in between leaves stray directories, removed at the next start).
//!
//! A partition whose log cannot be opened at start-up (damage the recovery policy refuses,
//! no file descriptors left, a full disk) is offline: the broker starts and serves every
//! other partition, and requests for the offline one get `KAFKA_STORAGE_ERROR`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use floe_storage::{LogManager, PartitionLog, TopicPartition};
use kafka_protocol::ResponseError;
use uuid::Uuid;

use crate::config::Config;
use crate::metadata_store::{ClusterMetadata, MetadataError, MetadataStore, TopicRecord};
use crate::topic_config;

/// Why a topic operation failed; mapped to Kafka error codes in `crate::errors`.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    /// Name is empty, too long, `.`/`..`, or has characters outside `[a-zA-Z0-9._-]`.
    #[error("{0}")]
    InvalidName(String),
    /// A topic of that name exists.
    #[error("Topic '{0}' already exists.")]
    AlreadyExists(String),
    /// No topic of that name.
    #[error("This server does not host this topic-partition.")]
    Unknown,
    /// Partition count not allowed.
    #[error("{0}")]
    InvalidPartitions(String),
    /// Replication factor not allowed on this single-node broker.
    #[error("{0}")]
    InvalidReplicationFactor(String),
    /// Manual replica assignment not possible here.
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    /// A config name or value is invalid.
    #[error("{0}")]
    InvalidConfig(String),
    /// The metadata could not be persisted.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// A partition log could not be opened or removed.
    #[error(transparent)]
    Storage(#[from] floe_storage::StorageError),
}

/// Why a partition cannot be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unavailable {
    /// No such topic or partition.
    Unknown,
    /// The partition exists but its log is offline, for this reason.
    Offline(String),
}

/// Topics the broker itself writes (consumer offsets, transaction state, the schema
/// registry's schemas); clients may read them but not produce to or delete them.
pub fn is_internal(name: &str) -> bool {
    matches!(
        name,
        "__consumer_offsets" | "__transaction_state" | crate::schema_registry::SCHEMAS_TOPIC
    )
}

/// Kafka's topic name rules (`Topic.validate`).
pub fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    if name.is_empty() {
        return Err(TopicError::InvalidName(
            "Topic name is illegal, it can't be empty".into(),
        ));
    }
    if name == "." || name == ".." {
        return Err(TopicError::InvalidName(
            "Topic name cannot be \".\" or \"..\"".into(),
        ));
    }
    if name.len() > 249 {
        return Err(TopicError::InvalidName(format!(
            "Topic name is illegal, it can't be longer than 249 characters, topic name: {name}"
        )));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(TopicError::InvalidName(format!(
            "Topic name {name} is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        )));
    }
    Ok(())
}

/// What the broker knows about a topic right now.
#[derive(Debug, Clone)]
pub struct TopicInfo {
    /// Name.
    pub name: String,
    /// Persisted record (id, partitions, config overrides).
    pub record: TopicRecord,
}

/// A request to create a topic.
#[derive(Debug, Clone, Default)]
pub struct NewTopic {
    /// Name.
    pub name: String,
    /// Partitions; `None` for the broker default.
    pub partitions: Option<i32>,
    /// Replication factor; `None` for the default (1).
    pub replication_factor: Option<i16>,
    /// Config overrides.
    pub configs: BTreeMap<String, String>,
}

/// Told about topic changes after they are persisted and the partition logs are open
/// (tableflow listens). Implementations must not block.
pub trait TopicListener: Send + Sync {
    /// A topic was created, its configs altered, or partitions added.
    fn topic_changed(&self, name: &str, partitions: i32, configs: &BTreeMap<String, String>);
    /// A topic was deleted.
    fn topic_deleted(&self, name: &str);
}

/// The topic registry.
pub struct Topics {
    config: Arc<Config>,
    store: Box<dyn MetadataStore>,
    logs: Arc<LogManager>,
    metadata: RwLock<ClusterMetadata>,
    by_id: RwLock<HashMap<Uuid, String>>,
    /// Partitions whose log could not be opened, with the reason.
    offline: RwLock<BTreeMap<(String, i32), String>>,
    /// Serialises changes so persisted and in-memory metadata move together.
    change: Mutex<()>,
    listener: std::sync::OnceLock<Arc<dyn TopicListener>>,
}

impl Topics {
    /// Loads the metadata, opens (and recovers) every partition log, and removes partition
    /// directories of topics that no longer exist.
    pub fn open(
        config: Arc<Config>,
        store: Box<dyn MetadataStore>,
        logs: Arc<LogManager>,
    ) -> Result<Topics, TopicError> {
        let metadata = store.load_or_init()?;
        let mut by_id = HashMap::new();
        let mut offline = BTreeMap::new();
        for (name, record) in &metadata.topics {
            by_id.insert(record.topic_id, name.clone());
            let log_config =
                topic_config::log_config(&record.configs, &config).with_topic_id(record.topic_id);
            for partition in 0..record.partitions {
                let tp = TopicPartition::new(name, partition);
                if let Err(e) = logs.open_partition(&tp, log_config.clone()) {
                    let reason = error_chain(&e);
                    tracing::error!(topic = %name, partition, error = %reason, "partition is offline: its log cannot be opened; the broker serves the other partitions");
                    metrics::gauge!("floe_partition_offline", "topic" => name.clone(), "partition" => partition.to_string()).set(1.0);
                    offline.insert((name.clone(), partition), reason);
                }
            }
        }
        let dirs = logs.partition_dirs().unwrap_or_else(|e| {
            tracing::warn!(error = %error_chain(&e), "cannot list partition directories; stray ones stay until the next start");
            Vec::new()
        });
        for tp in dirs {
            let known = metadata
                .topics
                .get(&tp.topic)
                .is_some_and(|t| tp.partition < t.partitions);
            if !known {
                tracing::warn!(topic = %tp.topic, partition = tp.partition, "removing partition directory of a deleted (or never created) topic");
                if let Err(e) = logs.delete_partition(&tp) {
                    tracing::warn!(topic = %tp.topic, partition = tp.partition, error = %error_chain(&e), "cannot remove a stray partition directory");
                }
            }
        }
        if !offline.is_empty() {
            tracing::error!(
                count = offline.len(),
                "started with offline partitions; see the errors above"
            );
        }
        Ok(Topics {
            config,
            store,
            logs,
            metadata: RwLock::new(metadata),
            by_id: RwLock::new(by_id),
            offline: RwLock::new(offline),
            change: Mutex::new(()),
            listener: std::sync::OnceLock::new(),
        })
    }

    /// Sets who is told about topic changes (once; later calls are ignored).
    pub fn set_listener(&self, listener: Arc<dyn TopicListener>) {
        let _ = self.listener.set(listener);
    }

    fn notify_changed(&self, name: &str) {
        if let (Some(l), Some(t)) = (self.listener.get(), self.get(name)) {
            l.topic_changed(name, t.record.partitions, &t.record.configs);
        }
    }

    /// The Kafka cluster id.
    pub fn cluster_id(&self) -> String {
        self.read().cluster_id.clone()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, ClusterMetadata> {
        // A poisoned lock means a panic while holding it; the data is still consistent
        // because every change is applied after it was persisted.
        self.metadata.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, ClusterMetadata> {
        self.metadata.write().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_change(&self) -> std::sync::MutexGuard<'_, ()> {
        self.change.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A topic by name.
    pub fn get(&self, name: &str) -> Option<TopicInfo> {
        self.read().topics.get(name).map(|record| TopicInfo {
            name: name.to_string(),
            record: record.clone(),
        })
    }

    /// Runs `f` on a topic's config overrides (without copying them).
    pub fn with_configs<R>(
        &self,
        name: &str,
        f: impl FnOnce(&BTreeMap<String, String>) -> R,
    ) -> Option<R> {
        self.read()
            .topics
            .get(name)
            .map(|record| f(&record.configs))
    }

    /// The name of the topic with this id.
    pub fn name_by_id(&self, id: &Uuid) -> Option<String> {
        self.by_id
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    /// All topics, by name.
    pub fn list(&self) -> Vec<TopicInfo> {
        self.read()
            .topics
            .iter()
            .map(|(name, record)| TopicInfo {
                name: name.clone(),
                record: record.clone(),
            })
            .collect()
    }

    /// The log of one partition, if the topic and partition exist and are online.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<Arc<PartitionLog>> {
        self.logs.get(&TopicPartition::new(topic, partition))
    }

    /// Kafka's DeleteRecords on one partition: moves its log start offset to `offset` (-1:
    /// the high watermark) durably and deletes the segments below; returns the new low
    /// watermark. Blocks (renames, fsyncs).
    pub fn delete_records(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<i64, (ResponseError, String)> {
        if is_internal(topic) {
            return Err((
                ResponseError::InvalidTopicException,
                format!("Cannot delete records of internal topic {topic}"),
            ));
        }
        let log = self
            .lookup(topic, partition)
            .map_err(|e| (crate::errors::unavailable(&e), format!("{e:?}")))?;
        let policy = log.config().cleanup_policy;
        if !policy.delete {
            return Err((
                ResponseError::PolicyViolation,
                format!(
                    "Records of partitions of topic {topic} with cleanup.policy=compact can not be deleted"
                ),
            ));
        }
        self.logs.delete_records(&log, offset).map_err(|e| match e {
            floe_storage::DeleteRecordsError::OffsetOutOfRange { .. } => {
                (ResponseError::OffsetOutOfRange, e.to_string())
            }
            floe_storage::DeleteRecordsError::Storage(s) => {
                (crate::errors::storage_error(&s), s.to_string())
            }
        })
    }

    /// The log of one partition, or why it cannot be served.
    pub fn lookup(&self, topic: &str, partition: i32) -> Result<Arc<PartitionLog>, Unavailable> {
        if let Some(log) = self.partition(topic, partition) {
            return match log.offline_reason() {
                Some(reason) => Err(Unavailable::Offline(reason)),
                None => Ok(log),
            };
        }
        match self.offline_reason(topic, partition) {
            Some(reason) => Err(Unavailable::Offline(reason)),
            None => Err(Unavailable::Unknown),
        }
    }

    /// Why a partition is offline, if it is: its log could not be opened at start, or it
    /// was taken offline since (the scrubber found damage).
    pub fn offline_reason(&self, topic: &str, partition: i32) -> Option<String> {
        if let Some(log) = self.partition(topic, partition) {
            return log.offline_reason();
        }
        self.offline
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(topic.to_string(), partition))
            .cloned()
    }

    /// Every offline partition with its reason.
    pub fn offline_partitions(&self) -> Vec<(String, i32, String)> {
        self.offline
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|((t, p), r)| (t.clone(), *p, r.clone()))
            .collect()
    }

    fn forget_offline(&self, topic: &str) {
        self.offline
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(t, _), _| t != topic);
    }

    /// Partitions hosted now, all topics together.
    fn partition_total(&self) -> i64 {
        self.read()
            .topics
            .values()
            .map(|t| i64::from(t.partitions))
            .sum()
    }

    /// Checks `added` more partitions against `max_partitions` and a topic's new count
    /// against `max_partitions_per_topic`.
    fn check_partition_caps(&self, count: i32, added: i32) -> Result<(), TopicError> {
        let per_topic = self.config.max_partitions_per_topic;
        if count > per_topic {
            return Err(TopicError::InvalidPartitions(format!(
                "Number of partitions {count} is more than a topic may have on this broker (max_partitions_per_topic = {per_topic})."
            )));
        }
        let total = self.partition_total();
        let max = i64::from(self.config.max_partitions);
        if total + i64::from(added) > max {
            return Err(TopicError::InvalidPartitions(format!(
                "Adding {added} partitions to the {total} this broker hosts would exceed max_partitions = {max}."
            )));
        }
        Ok(())
    }

    /// Opens (creating) the logs of partitions `from..to` of a topic; on failure deletes
    /// the ones it created and returns the error.
    fn create_partition_logs(
        &self,
        name: &str,
        from: i32,
        to: i32,
        log_config: &floe_storage::LogConfig,
    ) -> Result<(), TopicError> {
        for partition in from..to {
            let tp = TopicPartition::new(name, partition);
            if let Err(e) = self.logs.open_partition(&tp, log_config.clone()) {
                self.remove_partition_logs(name, from, partition + 1);
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// Deletes the logs of partitions `from..to` (undoing a failed create), logging what
    /// it cannot remove (the next start removes stray directories).
    fn remove_partition_logs(&self, name: &str, from: i32, to: i32) {
        for partition in from..to {
            let tp = TopicPartition::new(name, partition);
            if let Err(e) = self.logs.delete_partition(&tp) {
                tracing::warn!(topic = %name, partition, error = %error_chain(&e), "cannot remove the directory of a partition whose creation failed; removed at the next start");
            }
        }
    }

    /// The broker configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Checks a create request without applying it; returns the resolved partition count.
    pub fn validate_new_topic(&self, topic: &NewTopic) -> Result<i32, TopicError> {
        validate_topic_name(&topic.name)?;
        let partitions = topic.partitions.unwrap_or(self.config.num_partitions);
        if partitions < 1 {
            return Err(TopicError::InvalidPartitions(
                "Number of partitions must be larger than 0.".into(),
            ));
        }
        if partitions > self.config.max_partitions_per_topic {
            return Err(TopicError::InvalidPartitions(format!(
                "Number of partitions {partitions} is more than a topic may have on this broker (max_partitions_per_topic = {}).",
                self.config.max_partitions_per_topic
            )));
        }
        if let Some(rf) = topic.replication_factor
            && rf != 1
        {
            return Err(TopicError::InvalidReplicationFactor(if rf < 1 {
                "Replication factor must be larger than 0.".into()
            } else {
                format!(
                    "Unable to replicate the partition {rf} time(s): The target replication factor of {rf} cannot be reached because only 1 broker(s) are registered."
                )
            }));
        }
        for (name, value) in &topic.configs {
            topic_config::validate(name, value).map_err(TopicError::InvalidConfig)?;
        }
        topic_config::validate_table_configs(&topic.name, &topic.configs)
            .map_err(TopicError::InvalidConfig)?;
        if self.read().topics.contains_key(&topic.name) {
            return Err(TopicError::AlreadyExists(topic.name.clone()));
        }
        self.check_partition_caps(partitions, partitions)?;
        Ok(partitions)
    }

    /// Creates a topic: creates its partition logs, then persists it; a failure of either
    /// undoes the other, so a topic answered as failed does not exist.
    pub fn create(&self, topic: NewTopic) -> Result<TopicInfo, TopicError> {
        let _guard = self.lock_change();
        let partitions = self.validate_new_topic(&topic)?;
        let record = TopicRecord {
            topic_id: Uuid::new_v4(),
            partitions,
            configs: topic.configs,
        };
        let log_config =
            topic_config::log_config(&record.configs, &self.config).with_topic_id(record.topic_id);
        self.create_partition_logs(&topic.name, 0, partitions, &log_config)?;
        let mut next = self.read().clone();
        next.topics.insert(topic.name.clone(), record.clone());
        if let Err(e) = self.store.save(&next) {
            self.remove_partition_logs(&topic.name, 0, partitions);
            return Err(e.into());
        }
        *self.write() = next;
        self.by_id
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(record.topic_id, topic.name.clone());
        tracing::info!(topic = %topic.name, partitions, "created topic");
        self.notify_changed(&topic.name);
        Ok(TopicInfo {
            name: topic.name,
            record,
        })
    }

    /// Returns the topic, creating it with default settings if it is missing and
    /// auto-creation is enabled.
    pub fn get_or_auto_create(&self, name: &str) -> Result<Option<TopicInfo>, TopicError> {
        if let Some(t) = self.get(name) {
            return Ok(Some(t));
        }
        if !self.config.auto_create_topics_enable {
            return Ok(None);
        }
        match self.create(NewTopic {
            name: name.to_string(),
            ..NewTopic::default()
        }) {
            Ok(t) => Ok(Some(t)),
            // Another request created it between our look and our create.
            Err(TopicError::AlreadyExists(_)) => Ok(self.get(name)),
            Err(e) => Err(e),
        }
    }

    /// Deletes a topic: persists the removal, then removes its partition directories.
    /// Internal topics cannot be deleted.
    pub fn delete(&self, name: &str) -> Result<Uuid, TopicError> {
        if is_internal(name) {
            return Err(TopicError::InvalidName(format!(
                "Topic {name} is an internal topic and cannot be deleted"
            )));
        }
        let _guard = self.lock_change();
        let mut next = self.read().clone();
        let record = next.topics.remove(name).ok_or(TopicError::Unknown)?;
        self.store.save(&next)?;
        *self.write() = next;
        self.by_id
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&record.topic_id);
        self.forget_offline(name);
        for partition in 0..record.partitions {
            self.logs
                .delete_partition(&TopicPartition::new(name, partition))?;
        }
        tracing::info!(topic = %name, "deleted topic");
        if let Some(l) = self.listener.get() {
            l.topic_deleted(name);
        }
        Ok(record.topic_id)
    }

    /// Grows a topic to `count` partitions (`validate_only`: check, change nothing).
    pub fn create_partitions(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let _guard = self.lock_change();
        let mut next = self.read().clone();
        let record = next.topics.get_mut(name).ok_or(TopicError::Unknown)?;
        let current = record.partitions;
        if count <= current {
            return Err(TopicError::InvalidPartitions(if count == current {
                format!("Topic already has {current} partitions.")
            } else {
                format!(
                    "Topic currently has {current} partitions, which is higher than the requested {count}."
                )
            }));
        }
        self.check_partition_caps(count, count - current)?;
        if validate_only {
            return Ok(());
        }
        record.partitions = count;
        let log_config =
            topic_config::log_config(&record.configs, &self.config).with_topic_id(record.topic_id);
        self.create_partition_logs(name, current, count, &log_config)?;
        if let Err(e) = self.store.save(&next) {
            self.remove_partition_logs(name, current, count);
            return Err(e.into());
        }
        *self.write() = next;
        tracing::info!(topic = %name, from = current, to = count, "added partitions");
        self.notify_changed(name);
        Ok(())
    }

    /// Replaces a topic's config overrides with `configs` after validating every entry
    /// (`validate_only`: check, change nothing). Takes effect on the partition logs at once.
    pub fn alter_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let _guard = self.lock_change();
        for (key, value) in &configs {
            topic_config::validate(key, value).map_err(TopicError::InvalidConfig)?;
        }
        topic_config::validate_table_configs(name, &configs).map_err(TopicError::InvalidConfig)?;
        let mut next = self.read().clone();
        let record = next.topics.get_mut(name).ok_or(TopicError::Unknown)?;
        if validate_only || record.configs == configs {
            return Ok(());
        }
        record.configs = configs;
        let (partitions, log_config) = (
            record.partitions,
            topic_config::log_config(&record.configs, &self.config).with_topic_id(record.topic_id),
        );
        self.store.save(&next)?;
        *self.write() = next;
        for partition in 0..partitions {
            if let Some(log) = self.logs.get(&TopicPartition::new(name, partition)) {
                log.set_config(log_config.clone());
            }
        }
        tracing::info!(topic = %name, "altered topic configs");
        self.notify_changed(name);
        Ok(())
    }

    /// Reserves a block of `count` producer ids, persisted before any is handed out, and
    /// returns its first id.
    pub fn reserve_producer_ids(&self, count: i64) -> Result<i64, TopicError> {
        let _guard = self.lock_change();
        let mut next = self.read().clone();
        let first = next.producer_id_block_end;
        next.producer_id_block_end = first + count;
        self.store.save(&next)?;
        *self.write() = next;
        Ok(first)
    }

    /// The stored ACLs, SCRAM credentials and client quotas.
    pub fn security(&self) -> crate::metadata_store::SecurityMetadata {
        self.read().security.clone()
    }

    /// Changes the security metadata with `change`, persists it (with fsyncs: call from a
    /// blocking thread), then makes it current, and returns what `change` returned. A
    /// failed save changes nothing.
    pub fn update_security<R>(
        &self,
        change: impl FnOnce(&mut crate::metadata_store::SecurityMetadata) -> R,
    ) -> Result<R, TopicError> {
        let _guard = self.lock_change();
        let mut next = self.read().clone();
        let out = change(&mut next.security);
        if next.security != self.read().security {
            self.store.save(&next)?;
            *self.write() = next;
        }
        Ok(out)
    }

    /// Flushes and closes every partition log (clean shutdown).
    pub fn shutdown(&self) -> Result<(), TopicError> {
        self.logs.shutdown()?;
        Ok(())
    }
}

/// An error and its sources, one line (`a: b: c`), for logs and offline reasons.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

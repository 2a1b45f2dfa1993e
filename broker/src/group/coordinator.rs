//! The shared group coordinator: every group behind one lock, the timers the state machine
//! asks for (tokio tasks that re-check the group when they fire), and the records written
//! to `__consumer_offsets`.
//!
//! Locking: one `std::sync::Mutex` over the group map, never held across an await. Records
//! are appended while it is held, so the log order is the order of the state changes;
//! fdatasync happens on a blocking thread afterwards, and the answers that promise
//! durability (OffsetCommit, the SyncGroup that made a group Stable, DeleteGroups,
//! OffsetDelete) are released only after it succeeded.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::{Duration, Instant};

use super::classic::{
    Effects, Group, GroupState, JoinArgs, Now, Pending, Settings, SyncArgs, Timer,
};
use super::consumer::assignor::Assignor;
use super::consumer::{ConsumerGroup, ConsumerSettings};
use super::member::{JoinOutcome, SyncOutcome};
use super::records::{
    OffsetValue, RecordKey, decode_consumer_group_value, decode_group_value, decode_key,
    decode_offset_value, encode_group_value, encode_key, encode_offset_value,
};
use super::{GroupError, OFFSETS_TOPIC, partition_for};
use crate::config::Config;
use crate::internal_topic::{
    InternalLog, PersistError, Replayed, StorageInternalLog, encode_batch_as, replay,
};
use crate::topics::{NewTopic, TopicError, Topics};

/// Coordinator settings, from the broker config.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// State machine settings.
    pub settings: Settings,
    /// Partitions of `__consumer_offsets` when it is created.
    pub offsets_topic_partitions: i32,
    /// `segment.bytes` of `__consumer_offsets` when it is created (compaction cleans only
    /// closed segments).
    pub offsets_topic_segment_bytes: u64,
    /// Offsets of groups without members are removed after this long.
    pub offsets_retention_ms: i64,
    /// How often expired offsets are looked for.
    pub retention_check_interval: Duration,
    /// Largest commit metadata string.
    pub offset_metadata_max_bytes: usize,
    /// KIP-848 consumer group settings.
    pub consumer: ConsumerSettings,
}

impl CoordinatorConfig {
    /// From the broker's settings.
    pub fn from_config(config: &Config) -> CoordinatorConfig {
        CoordinatorConfig {
            settings: Settings {
                initial_rebalance_delay: Duration::from_millis(
                    config.group_initial_rebalance_delay_ms,
                ),
                min_session_timeout_ms: config.group_min_session_timeout_ms,
                max_session_timeout_ms: config.group_max_session_timeout_ms,
            },
            offsets_topic_partitions: config.offsets_topic_num_partitions,
            offsets_topic_segment_bytes: config.offsets_topic_segment_bytes,
            offsets_retention_ms: config.offsets_retention_minutes.saturating_mul(60_000),
            retention_check_interval: Duration::from_millis(
                config.offsets_retention_check_interval_ms,
            ),
            offset_metadata_max_bytes: config.offset_metadata_max_bytes,
            consumer: ConsumerSettings {
                heartbeat_interval_ms: config.group_consumer_heartbeat_interval_ms,
                session_timeout_ms: config.group_consumer_session_timeout_ms,
                max_size: usize::try_from(config.group_consumer_max_size).unwrap_or(usize::MAX),
                assignors: config
                    .group_consumer_assignors
                    .split(',')
                    .filter_map(|a| Assignor::from_name(a.trim()))
                    .collect(),
            },
        }
    }
}

/// One partition of an OffsetCommit.
#[derive(Debug, Clone)]
pub struct CommitPartition {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Leader epoch, -1 if unknown.
    pub leader_epoch: i32,
    /// Metadata.
    pub metadata: Option<String>,
}

/// An OffsetCommit.
#[derive(Debug, Clone)]
pub struct CommitArgs {
    /// Group.
    pub group_id: String,
    /// Generation (-1: simple commit).
    pub generation: i32,
    /// Member id ("" for a simple commit).
    pub member_id: String,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// v2-v4 retention time, -1 for the broker default.
    pub retention_ms: i64,
    /// Request version (v9+ answers GROUP_ID_NOT_FOUND for an unknown group).
    pub api_version: i16,
    /// Offsets by topic.
    pub topics: Vec<(String, Vec<CommitPartition>)>,
}

/// Per topic, per partition results.
pub type PartitionResults = Vec<(String, Vec<(i32, Result<(), GroupError>)>)>;

impl CommitArgs {
    /// Every partition of the commit failed with `e`.
    pub fn fail_all(&self, e: GroupError) -> PartitionResults {
        self.topics
            .iter()
            .map(|(t, ps)| {
                (
                    t.clone(),
                    ps.iter().map(|p| (p.partition, Err(e.clone()))).collect(),
                )
            })
            .collect()
    }

    /// Takes the partitions of topics that do not exist (or partitions past a topic's
    /// count) out of the commit and answers them UNKNOWN_TOPIC_OR_PARTITION, as Kafka does
    /// before the group is consulted. `exists(topic, partition)` says what exists.
    pub fn take_unknown(&mut self, exists: impl Fn(&str, i32) -> bool) -> PartitionResults {
        let mut unknown: PartitionResults = Vec::new();
        for (topic, partitions) in &mut self.topics {
            let (known, missing): (Vec<_>, Vec<_>) = std::mem::take(partitions)
                .into_iter()
                .partition(|p| exists(topic, p.partition));
            *partitions = known;
            if !missing.is_empty() {
                unknown.push((
                    topic.clone(),
                    missing
                        .into_iter()
                        .map(|p| (p.partition, Err(GroupError::UnknownTopicOrPartition)))
                        .collect(),
                ));
            }
        }
        self.topics.retain(|(_, ps)| !ps.is_empty());
        unknown
    }
}

/// `results` with `more` added, each topic's partitions in one entry.
pub fn merge_results(mut results: PartitionResults, more: PartitionResults) -> PartitionResults {
    for (topic, partitions) in more {
        match results.iter_mut().find(|(t, _)| *t == topic) {
            Some((_, ps)) => ps.extend(partitions),
            None => results.push((topic, partitions)),
        }
    }
    results
}

/// Committed offsets by topic, `None` where nothing is committed.
pub type FetchedOffsets = Vec<(String, Vec<(i32, Option<OffsetValue>)>)>;

/// A member as DescribeGroups shows it.
#[derive(Debug, Clone)]
pub struct MemberDescription {
    /// Member id.
    pub member_id: String,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Metadata of the selected protocol (Stable groups only).
    pub metadata: Bytes,
    /// Assignment (Stable groups only).
    pub assignment: Bytes,
}

/// A group as DescribeGroups shows it.
#[derive(Debug, Clone)]
pub struct GroupDescription {
    /// Group id.
    pub group_id: String,
    /// State name.
    pub state: &'static str,
    /// Protocol type.
    pub protocol_type: String,
    /// Selected protocol (Stable groups only).
    pub protocol: String,
    /// Members.
    pub members: Vec<MemberDescription>,
}

/// A group as ListGroups shows it.
#[derive(Debug, Clone)]
pub struct GroupListing {
    /// Group id.
    pub group_id: String,
    /// Protocol type ("" for groups that only hold offsets).
    pub protocol_type: String,
    /// State name.
    pub state: &'static str,
    /// "classic", or "consumer" for KIP-848 groups.
    pub group_type: &'static str,
}

/// The group coordinator. Cheap to clone (shared state).
#[derive(Clone)]
pub struct GroupCoordinator {
    inner: Arc<Inner>,
}

/// Offsets committed inside transactions not yet ended, by producer id: they count once
/// the transaction commits (TxnOffsetCommit).
type PendingTxnOffsets = HashMap<i64, BTreeMap<(String, String, i32), OffsetValue>>;

struct Inner {
    config: CoordinatorConfig,
    groups: Mutex<HashMap<String, Group>>,
    /// Locked after `groups` when both are needed.
    txn_offsets: Mutex<PendingTxnOffsets>,
    log: OnceLock<Arc<dyn InternalLog>>,
    /// Set when `__consumer_offsets` could not be loaded: groups are not served.
    load_failure: Option<String>,
    started: AtomicBool,
}

fn now() -> Now {
    Now {
        instant: Instant::now(),
        ms: crate::handlers::now_ms(),
    }
}

impl GroupCoordinator {
    /// The coordinator for this broker: replays `__consumer_offsets` if it exists (it is
    /// created on first use, as Kafka does). A load failure is logged and makes every
    /// group request answer COORDINATOR_NOT_AVAILABLE rather than serve wrong offsets.
    pub fn open(config: &Config, topics: &Topics) -> GroupCoordinator {
        let config = CoordinatorConfig::from_config(config);
        let coordinator = match topics.get(OFFSETS_TOPIC) {
            None => GroupCoordinator::new(config, None),
            Some(info) => {
                match StorageInternalLog::of(topics, OFFSETS_TOPIC, info.record.partitions) {
                    Ok(log) => GroupCoordinator::new(config, Some(log)),
                    Err(e) => GroupCoordinator::failed(config, e.to_string()),
                }
            }
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            coordinator.start();
        }
        coordinator
    }

    /// A coordinator over `log` (replayed now), or with no log yet.
    pub fn new(config: CoordinatorConfig, log: Option<Arc<dyn InternalLog>>) -> GroupCoordinator {
        let mut groups = HashMap::new();
        let mut txn_offsets = HashMap::new();
        let mut load_failure = None;
        if let Some(log) = &log {
            let started = std::time::Instant::now();
            match load(log.as_ref(), &mut groups, &mut txn_offsets) {
                Ok(()) => tracing::info!(
                    groups = groups.len(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "loaded consumer groups from {OFFSETS_TOPIC}"
                ),
                Err(e) => {
                    tracing::error!("cannot load {OFFSETS_TOPIC}; groups are unavailable: {e}");
                    load_failure = Some(e.to_string());
                    groups.clear();
                    txn_offsets.clear();
                }
            }
        }
        let once = OnceLock::new();
        if let Some(log) = log {
            let _ = once.set(log);
        }
        GroupCoordinator {
            inner: Arc::new(Inner {
                config,
                groups: Mutex::new(groups),
                txn_offsets: Mutex::new(txn_offsets),
                log: once,
                load_failure,
                started: AtomicBool::new(false),
            }),
        }
    }

    fn failed(config: CoordinatorConfig, why: String) -> GroupCoordinator {
        tracing::error!("cannot open {OFFSETS_TOPIC}; groups are unavailable: {why}");
        GroupCoordinator {
            inner: Arc::new(Inner {
                config,
                groups: Mutex::new(HashMap::new()),
                txn_offsets: Mutex::new(HashMap::new()),
                log: OnceLock::new(),
                load_failure: Some(why),
                started: AtomicBool::new(false),
            }),
        }
    }

    /// Makes sure `__consumer_offsets` exists (creating it on first use) and arms the
    /// timers of restored groups. Every group API calls this first; only the read-only
    /// ones may go on when it fails.
    pub fn ensure_ready(&self, topics: &Topics) -> Result<(), GroupError> {
        self.start();
        if self.inner.load_failure.is_some() {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        if self.inner.log.get().is_some() {
            return Ok(());
        }
        let partitions = self.inner.config.offsets_topic_partitions;
        let created = topics.create(NewTopic {
            name: OFFSETS_TOPIC.to_string(),
            partitions: Some(partitions),
            replication_factor: None,
            configs: BTreeMap::from([
                ("cleanup.policy".to_string(), "compact".to_string()),
                (
                    "segment.bytes".to_string(),
                    self.inner.config.offsets_topic_segment_bytes.to_string(),
                ),
            ]),
        });
        let partitions = match created {
            Ok(info) => info.record.partitions,
            Err(TopicError::AlreadyExists(_)) => match topics.get(OFFSETS_TOPIC) {
                Some(info) => info.record.partitions,
                None => return Err(GroupError::CoordinatorNotAvailable),
            },
            Err(e) => {
                tracing::error!("cannot create {OFFSETS_TOPIC}: {e}");
                return Err(GroupError::CoordinatorNotAvailable);
            }
        };
        match StorageInternalLog::of(topics, OFFSETS_TOPIC, partitions) {
            Ok(log) => {
                // Another request may have set it first; both are views of the same logs.
                let _ = self.inner.log.set(log);
                Ok(())
            }
            Err(e) => {
                tracing::error!("{e}");
                Err(GroupError::CoordinatorNotAvailable)
            }
        }
    }

    /// Whether groups can be served at all (read-only APIs check only this).
    pub fn available(&self) -> Result<(), GroupError> {
        self.start();
        match self.inner.load_failure {
            Some(_) => Err(GroupError::CoordinatorNotAvailable),
            None => Ok(()),
        }
    }

    /// Arms the session timers of restored members and the offset retention task, once.
    /// Needs a tokio runtime.
    pub fn start(&self) {
        if self.inner.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let at = Instant::now();
        let mut armed = Vec::new();
        {
            let mut groups = self.inner.lock();
            for g in groups.values_mut() {
                let mut fx = Effects::default();
                g.restored_timers(at, &mut fx);
                armed.push((g.id.clone(), fx.timers));
            }
        }
        for (id, timers) in armed {
            self.arm(&id, timers);
        }
        let weak = Arc::downgrade(&self.inner);
        let interval = self
            .inner
            .config
            .retention_check_interval
            .max(Duration::from_millis(10));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(Instant::now() + interval, interval);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                GroupCoordinator { inner }.expire_offsets(crate::handlers::now_ms());
            }
        });
    }

    /// JoinGroup.
    pub fn join(&self, group_id: &str, args: JoinArgs) -> Pending<JoinOutcome> {
        if group_id.is_empty() {
            return Pending::Now(Err(GroupError::InvalidGroupId));
        }
        let s = &self.inner.config.settings;
        if args.session_timeout_ms < s.min_session_timeout_ms
            || args.session_timeout_ms > s.max_session_timeout_ms
        {
            return Pending::Now(Err(GroupError::InvalidSessionTimeout));
        }
        let now = now();
        let mut groups = self.inner.lock();
        if !groups.contains_key(group_id) {
            if !args.member_id.is_empty() {
                return Pending::Now(Err(GroupError::UnknownMemberId));
            }
            groups.insert(group_id.to_string(), Group::new(group_id, now.ms));
        }
        let Some(group) = groups.get_mut(group_id) else {
            return Pending::Now(Err(GroupError::CoordinatorNotAvailable));
        };
        if let Err(e) = self.leave_consumer_protocol(group, now.ms) {
            return Pending::Now(Err(e));
        }
        let mut fx = Effects::default();
        let out = group.join(args, now, s, &mut fx);
        self.finish(group, fx, now);
        out
    }

    /// SyncGroup.
    pub fn sync(&self, group_id: &str, args: SyncArgs) -> Pending<SyncOutcome> {
        if group_id.is_empty() {
            return Pending::Now(Err(GroupError::InvalidGroupId));
        }
        let now = now();
        let mut groups = self.inner.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return Pending::Now(Err(GroupError::UnknownMemberId));
        };
        let mut fx = Effects::default();
        let out = group.sync(args, now, &mut fx);
        self.finish(group, fx, now);
        out
    }

    /// Heartbeat.
    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        let mut groups = self.inner.lock();
        let group = groups
            .get_mut(group_id)
            .ok_or(GroupError::UnknownMemberId)?;
        group.heartbeat(member_id, instance_id, generation, now())
    }

    /// LeaveGroup of several members: a result per member, or one for the whole request.
    pub fn leave(
        &self,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        let now = now();
        let mut groups = self.inner.lock();
        let group = groups
            .get_mut(group_id)
            .ok_or(GroupError::UnknownMemberId)?;
        if group.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        let mut fx = Effects::default();
        let results = members
            .iter()
            .map(|(id, instance)| {
                group.leave(
                    id,
                    instance.as_deref(),
                    now,
                    &self.inner.config.settings,
                    &mut fx,
                )
            })
            .collect();
        self.finish(group, fx, now);
        Ok(results)
    }

    /// DescribeGroups. Unknown groups are described as Dead, as Kafka does (v0-v5).
    pub fn describe(&self, group_ids: &[String]) -> Vec<Result<GroupDescription, GroupError>> {
        self.describe_each(group_ids, |groups, id| {
            // A consumer group is not a classic group: Kafka describes it as Dead.
            let Some(g) = groups.get(id).filter(|g| g.consumer.is_none()) else {
                return Ok(GroupDescription {
                    group_id: id.clone(),
                    state: GroupState::Dead.name(),
                    protocol_type: String::new(),
                    protocol: String::new(),
                    members: vec![],
                });
            };
            let stable = g.state == GroupState::Stable;
            let protocol = if stable {
                g.protocol.clone().unwrap_or_default()
            } else {
                String::new()
            };
            Ok(GroupDescription {
                group_id: id.clone(),
                state: g.state.name(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                members: g
                    .members
                    .iter()
                    .map(|m| MemberDescription {
                        member_id: m.id.clone(),
                        instance_id: m.instance_id.clone(),
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        metadata: if stable {
                            m.metadata_for(&protocol).cloned().unwrap_or_default()
                        } else {
                            Bytes::new()
                        },
                        assignment: if stable {
                            m.assignment.clone()
                        } else {
                            Bytes::new()
                        },
                    })
                    .collect(),
                protocol,
            })
        })
    }

    /// The describe answer for each of `group_ids`, in order: `describe` builds one from the
    /// groups (locked once for all) and a non-empty id; an empty id is invalid, and nothing
    /// is described while the coordinator is loading.
    pub(super) fn describe_each<T>(
        &self,
        group_ids: &[String],
        mut describe: impl FnMut(&HashMap<String, Group>, &String) -> Result<T, GroupError>,
    ) -> Vec<Result<T, GroupError>> {
        if self.available().is_err() {
            return group_ids
                .iter()
                .map(|_| Err(GroupError::CoordinatorNotAvailable))
                .collect();
        }
        let groups = self.inner.lock();
        group_ids
            .iter()
            .map(|id| {
                if id.is_empty() {
                    return Err(GroupError::InvalidGroupId);
                }
                describe(&groups, id)
            })
            .collect()
    }

    /// ListGroups.
    pub fn list(&self) -> Result<Vec<GroupListing>, GroupError> {
        self.available()?;
        let groups = self.inner.lock();
        let mut out: Vec<GroupListing> = groups
            .values()
            .filter(|g| g.state != GroupState::Dead)
            .map(|g| match &g.consumer {
                Some(c) => GroupListing {
                    group_id: g.id.clone(),
                    protocol_type: "consumer".to_string(),
                    state: c.state().name(),
                    group_type: "consumer",
                },
                None => GroupListing {
                    group_id: g.id.clone(),
                    protocol_type: g.protocol_type.clone().unwrap_or_default(),
                    state: g.state.name(),
                    group_type: "classic",
                },
            })
            .collect();
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(out)
    }

    /// DeleteGroups: removes groups without members, with their offsets.
    pub fn delete_groups(
        &self,
        group_ids: &[String],
    ) -> Pending<Vec<(String, Result<(), GroupError>)>> {
        let now = now();
        let mut groups = self.inner.lock();
        let mut results = Vec::with_capacity(group_ids.len());
        let mut to_sync = Vec::new();
        for id in group_ids {
            let result = (|| {
                if id.is_empty() {
                    return Err(GroupError::InvalidGroupId);
                }
                let g = groups
                    .get(id)
                    .filter(|g| g.state != GroupState::Dead)
                    .ok_or(GroupError::GroupIdNotFound)?;
                if g.state != GroupState::Empty || !g.has_no_members() {
                    return Err(GroupError::NonEmptyGroup);
                }
                let mut records: Vec<(Bytes, Option<Bytes>)> = g
                    .offsets
                    .keys()
                    .map(|(t, p)| {
                        let key = RecordKey::Offset {
                            group: id.clone(),
                            topic: t.clone(),
                            partition: *p,
                        };
                        (encode_key(&key), None)
                    })
                    .collect();
                records.push((encode_key(&RecordKey::Group { group: id.clone() }), None));
                if g.consumer.is_some() {
                    let key = RecordKey::ConsumerGroupMetadata { group: id.clone() };
                    records.push((encode_key(&key), None));
                }
                let p = self.append(id, &records, now.ms).map_err(|e| {
                    tracing::error!(group = %id, "group delete not written: {e}");
                    GroupError::CoordinatorNotAvailable
                })?;
                groups.remove(id);
                tracing::info!(group = %id, "group deleted");
                to_sync.push(p);
                Ok(())
            })();
            results.push((id.clone(), result));
        }
        drop(groups);
        if to_sync.is_empty() {
            return Pending::Now(results);
        }
        let (tx, rx) = oneshot::channel();
        self.sync_then(to_sync, move |synced| {
            let results = match synced {
                Ok(()) => results,
                Err(_) => results
                    .into_iter()
                    .map(|(id, r)| (id, r.and(Err(GroupError::CoordinatorNotAvailable))))
                    .collect(),
            };
            let _ = tx.send(results);
        });
        Pending::Wait(rx)
    }

    /// The `__consumer_offsets` partition of a group, if the topic exists.
    pub fn partition_of(&self, group_id: &str) -> Option<i32> {
        self.inner
            .log
            .get()
            .map(|l| partition_for(group_id, l.partition_count()))
    }

    /// Applies a state change's effects: writes the group record (releasing the answers
    /// that wait for it once it is durable) and arms timers. Called with the lock held.
    fn finish(&self, group: &mut Group, mut fx: Effects, now: Now) {
        let settings = &self.inner.config.settings;
        let mut timers = std::mem::take(&mut fx.timers);
        while fx.persist_group {
            fx.persist_group = false;
            let waiting = std::mem::take(&mut fx.after_persist);
            let records = [(
                encode_key(&RecordKey::Group {
                    group: group.id.clone(),
                }),
                Some(encode_group_value(&group.to_value())),
            )];
            match self.append(&group.id, &records, now.ms) {
                Ok(p) => {
                    let weak = Arc::downgrade(&self.inner);
                    let (id, generation) = (group.id.clone(), group.generation);
                    self.sync_then(vec![p], move |synced| {
                        let ok = synced.is_ok();
                        if let Err(e) = synced {
                            tracing::error!(group = %id, "group metadata not durable: {e}");
                        }
                        for (tx, out) in waiting {
                            let _ = tx.send(if ok {
                                out
                            } else {
                                Err(GroupError::CoordinatorNotAvailable)
                            });
                        }
                        if !ok {
                            rebalance_after_failed_write(&weak, &id, generation);
                        }
                    });
                }
                Err(e) => {
                    tracing::error!(group = %group.id, "group metadata not written: {e}");
                    for (tx, _) in waiting {
                        let _ = tx.send(Err(GroupError::CoordinatorNotAvailable));
                    }
                    let mut more = Effects::default();
                    group.persist_failed(now, settings, &mut more);
                    timers.append(&mut more.timers);
                    fx.persist_group = more.persist_group;
                    fx.after_persist = more.after_persist;
                }
            }
        }
        for (tx, out) in fx.after_persist.drain(..) {
            let _ = tx.send(out);
        }
        self.arm(&group.id, timers);
    }

    /// Appends records to the group's partition of `__consumer_offsets`.
    fn append(
        &self,
        group_id: &str,
        records: &[(Bytes, Option<Bytes>)],
        now_ms: i64,
    ) -> Result<i32, PersistError> {
        self.append_as(group_id, records, None, now_ms)
    }

    /// [`GroupCoordinator::append`] inside `producer`'s transaction.
    fn append_as(
        &self,
        group_id: &str,
        records: &[(Bytes, Option<Bytes>)],
        producer: Option<(i64, i16)>,
        now_ms: i64,
    ) -> Result<i32, PersistError> {
        let log = self
            .inner
            .log
            .get()
            .ok_or(PersistError::MissingPartition(-1))?;
        let partition = partition_for(group_id, log.partition_count());
        let batch = encode_batch_as(records, producer, now_ms)?;
        log.append(partition, batch, now_ms)?;
        Ok(partition)
    }

    /// Syncs the partitions on a blocking thread, then calls `done` with the first failure.
    fn sync_then(
        &self,
        mut partitions: Vec<i32>,
        done: impl FnOnce(Result<(), PersistError>) + Send + 'static,
    ) {
        let Some(log) = self.inner.log.get().cloned() else {
            done(Err(PersistError::MissingPartition(-1)));
            return;
        };
        partitions.sort_unstable();
        partitions.dedup();
        tokio::spawn(async move {
            let synced = tokio::task::spawn_blocking(move || {
                partitions.iter().try_for_each(|p| log.sync(*p))
            })
            .await
            .unwrap_or_else(|e| Err(PersistError::Task(e.to_string())));
            done(synced);
        });
    }

    /// Arms timers: each fires into the group's state machine, if both still exist.
    fn arm(&self, group_id: &str, timers: Vec<(Instant, Timer)>) {
        for (at, timer) in timers {
            let weak = Arc::downgrade(&self.inner);
            let group_id = group_id.to_string();
            tokio::spawn(async move {
                tokio::time::sleep_until(at).await;
                let Some(inner) = weak.upgrade() else { return };
                GroupCoordinator { inner }.fire(&group_id, timer);
            });
        }
    }

    fn fire(&self, group_id: &str, timer: Timer) {
        if let Timer::Consumer(t) = timer {
            self.fire_consumer(group_id, t);
            return;
        }
        let now = now();
        let mut groups = self.inner.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return;
        };
        let mut fx = Effects::default();
        group.on_timer(timer, now, &self.inner.config.settings, &mut fx);
        self.finish(group, fx, now);
    }

    /// Test hook: runs `f` on a group.
    #[cfg(test)]
    pub(crate) fn with_group<T>(&self, group_id: &str, f: impl FnOnce(Option<&Group>) -> T) -> T {
        f(self.inner.lock().get(group_id))
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Group>> {
        // A panic while holding the lock leaves groups as consistent as the last completed
        // state change; serving them beats refusing every group forever.
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn rebalance_after_failed_write(weak: &Weak<Inner>, group_id: &str, generation: i32) {
    let Some(inner) = weak.upgrade() else { return };
    let c = GroupCoordinator { inner };
    let now = now();
    let mut groups = c.inner.lock();
    let Some(g) = groups.get_mut(group_id) else {
        return;
    };
    if g.generation != generation {
        return;
    }
    let mut fx = Effects::default();
    g.persist_failed(now, &c.inner.config.settings, &mut fx);
    c.finish(g, fx, now);
}

fn fail_ok(results: PartitionResults, e: GroupError) -> PartitionResults {
    results
        .into_iter()
        .map(|(t, rs)| {
            (
                t,
                rs.into_iter()
                    .map(|(p, r)| (p, r.and(Err(e.clone()))))
                    .collect(),
            )
        })
        .collect()
}

/// Replays every partition into `groups`; offsets of transactions whose marker is not in
/// the log yet go to `txn_offsets`.
fn load(
    log: &dyn InternalLog,
    groups: &mut HashMap<String, Group>,
    txn_offsets: &mut PendingTxnOffsets,
) -> Result<(), PersistError> {
    let now = Instant::now();
    let now_ms = crate::handlers::now_ms();
    for partition in 0..log.partition_count() {
        replay(log, partition, |replayed| {
            let (key, value) = match replayed {
                Replayed::Marker {
                    producer_id,
                    control,
                } => {
                    if let Some(offsets) = txn_offsets.remove(&producer_id)
                        && control == floe_protocol::control::ControlType::Commit
                    {
                        for ((group, topic, p), v) in offsets {
                            groups
                                .entry(group.clone())
                                .or_insert_with(|| Group::new(&group, now_ms))
                                .offsets
                                .insert((topic, p), v);
                        }
                    }
                    return;
                }
                Replayed::Record {
                    key,
                    value,
                    transaction: Some(producer_id),
                } => {
                    if let (
                        Ok(RecordKey::Offset {
                            group,
                            topic,
                            partition,
                        }),
                        Some(Ok(v)),
                    ) = (decode_key(key), value.map(decode_offset_value))
                    {
                        txn_offsets
                            .entry(producer_id)
                            .or_default()
                            .insert((group, topic, partition), v);
                    }
                    return;
                }
                Replayed::Record { key, value, .. } => (key, value),
            };
            let key = match decode_key(key) {
                Ok(k) => k,
                Err(e) => {
                    tracing::warn!(partition, "skipping a record with an unreadable key: {e}");
                    return;
                }
            };
            match key {
                RecordKey::Offset {
                    group,
                    topic,
                    partition: p,
                } => match value {
                    None => {
                        if let Some(g) = groups.get_mut(&group) {
                            g.offsets.remove(&(topic, p));
                        }
                    }
                    Some(v) => match decode_offset_value(v) {
                        Ok(v) => {
                            groups
                                .entry(group.clone())
                                .or_insert_with(|| Group::new(&group, now_ms))
                                .offsets
                                .insert((topic, p), v);
                        }
                        Err(e) => {
                            tracing::warn!(group = %group, "skipping an unreadable offset record: {e}")
                        }
                    },
                },
                RecordKey::ConsumerGroupMetadata { group } => match value {
                    None => {
                        if let Some(g) = groups.get_mut(&group) {
                            g.consumer = None;
                        }
                    }
                    Some(v) => match decode_consumer_group_value(v) {
                        Ok(epoch) => {
                            groups
                                .entry(group.clone())
                                .or_insert_with(|| Group::new(&group, now_ms))
                                .consumer = Some(ConsumerGroup::restored(epoch));
                        }
                        Err(e) => {
                            tracing::warn!(group = %group, "skipping an unreadable consumer group record: {e}")
                        }
                    },
                },
                RecordKey::Group { group } => match value {
                    None => {
                        // The group was deleted; offsets not tombstoned with it stay.
                        if let Some(g) = groups.remove(&group)
                            && !g.offsets.is_empty()
                        {
                            let mut fresh = Group::new(&group, now_ms);
                            fresh.offsets = g.offsets;
                            groups.insert(group, fresh);
                        }
                    }
                    Some(v) => match decode_group_value(v) {
                        Ok(v) => {
                            let offsets =
                                groups.remove(&group).map(|g| g.offsets).unwrap_or_default();
                            // (A classic record replaces any KIP-848 state of the group.)
                            let mut g = Group::from_value(&group, v, now);
                            g.offsets = offsets;
                            groups.insert(group, g);
                        }
                        Err(e) => {
                            tracing::warn!(group = %group, "skipping an unreadable group record: {e}")
                        }
                    },
                },
            }
        })?;
    }
    Ok(())
}

mod consumer_groups;
mod offsets;
#[cfg(test)]
mod tests;
mod txn_offsets;

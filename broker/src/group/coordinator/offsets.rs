//! Committed offsets in the coordinator: OffsetCommit, OffsetFetch, OffsetDelete and the
//! expiry of old offsets, for classic and consumer groups alike (both keep their offsets in
//! the shared [`Group`]). Commits are appended to `__consumer_offsets` under the group lock
//! and answered once synced.

use super::*;

impl GroupCoordinator {
    /// OffsetCommit; the answer comes once the offsets are durable.
    pub fn commit_offsets(&self, args: CommitArgs) -> Pending<PartitionResults> {
        if args.group_id.is_empty() {
            return Pending::Now(args.fail_all(GroupError::InvalidGroupId));
        }
        let now = now();
        let mut groups = self.inner.lock();
        if !groups.contains_key(&args.group_id) {
            if args.generation >= 0 {
                let e = if args.api_version >= 9 {
                    GroupError::GroupIdNotFound
                } else {
                    GroupError::IllegalGeneration
                };
                return Pending::Now(args.fail_all(e));
            }
            groups.insert(args.group_id.clone(), Group::new(&args.group_id, now.ms));
        }
        let Some(group) = groups.get_mut(&args.group_id) else {
            return Pending::Now(args.fail_all(GroupError::CoordinatorNotAvailable));
        };
        if let Err(e) = validate_commit(group, &args, now) {
            return Pending::Now(args.fail_all(e));
        }
        let expire_timestamp = if args.retention_ms >= 0 {
            now.ms.saturating_add(args.retention_ms)
        } else {
            -1
        };
        let (results, records, accepted) = self.commit_records(&args, now.ms, expire_timestamp);
        if records.is_empty() {
            return Pending::Now(results);
        }
        let partition = match self.append(&args.group_id, &records, now.ms) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(group = %args.group_id, "offset commit not written: {e}");
                return Pending::Now(fail_ok(results, append_failure(&e)));
            }
        };
        group.offsets.extend(accepted);
        drop(groups);
        self.answer_when_synced(partition, results, "offset commit")
    }

    /// The records of a commit (metadata checked against `offset_metadata_max_bytes`): the
    /// per-partition results, the records to append, and the offsets they set.
    pub(super) fn commit_records(
        &self,
        args: &CommitArgs,
        now_ms: i64,
        expire_timestamp: i64,
    ) -> CommitRecords {
        let max_meta = self.inner.config.offset_metadata_max_bytes;
        let mut results: PartitionResults = Vec::with_capacity(args.topics.len());
        let mut records = Vec::new();
        let mut accepted = Vec::new();
        for (topic, partitions) in &args.topics {
            let mut rs = Vec::with_capacity(partitions.len());
            for p in partitions {
                let metadata = p.metadata.clone().unwrap_or_default();
                if metadata.len() > max_meta {
                    rs.push((p.partition, Err(GroupError::OffsetMetadataTooLarge)));
                    continue;
                }
                let value = OffsetValue {
                    offset: p.offset,
                    leader_epoch: p.leader_epoch,
                    metadata,
                    commit_timestamp: now_ms,
                    expire_timestamp,
                };
                let key = RecordKey::Offset {
                    group: args.group_id.clone(),
                    topic: topic.clone(),
                    partition: p.partition,
                };
                records.push((encode_key(&key), Some(encode_offset_value(&value))));
                accepted.push(((topic.clone(), p.partition), value));
                rs.push((p.partition, Ok(())));
            }
            results.push((topic.clone(), rs));
        }
        (results, records, accepted)
    }

    /// Answers `results` once `partition` of `__consumer_offsets` is synced (every accepted
    /// partition fails with COORDINATOR_NOT_AVAILABLE if the sync does).
    pub(super) fn answer_when_synced(
        &self,
        partition: i32,
        results: PartitionResults,
        what: &'static str,
    ) -> Pending<PartitionResults> {
        let (tx, rx) = oneshot::channel();
        self.sync_then(vec![partition], move |synced| {
            let results = match synced {
                Ok(()) => results,
                Err(e) => {
                    tracing::error!("{what} not durable: {e}");
                    fail_ok(results, GroupError::CoordinatorNotAvailable)
                }
            };
            let _ = tx.send(results);
        });
        Pending::Wait(rx)
    }

    /// OffsetFetch for one group: `None` topics means every committed offset.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<Vec<(String, Vec<i32>)>>,
    ) -> Result<FetchedOffsets, GroupError> {
        self.available()?;
        let groups = self.inner.lock();
        let group = groups.get(group_id);
        let lookup =
            |t: &str, p: i32| group.and_then(|g| g.offsets.get(&(t.to_string(), p)).cloned());
        Ok(match topics {
            Some(topics) => topics
                .into_iter()
                .map(|(t, ps)| {
                    let found = ps.into_iter().map(|p| (p, lookup(&t, p))).collect();
                    (t, found)
                })
                .collect(),
            None => {
                let mut out: FetchedOffsets = Vec::new();
                if let Some(g) = group {
                    for ((t, p), v) in &g.offsets {
                        match out.last_mut() {
                            Some((last, ps)) if last == t => ps.push((*p, Some(v.clone()))),
                            _ => out.push((t.clone(), vec![(*p, Some(v.clone()))])),
                        }
                    }
                }
                out
            }
        })
    }

    /// Every committed offset, as (group, topic, partition, offset), sorted: for the lag
    /// metrics of `/metrics`.
    pub fn committed_offsets(&self) -> Vec<(String, String, i32, i64)> {
        let groups = self.inner.lock();
        let mut out: Vec<(String, String, i32, i64)> = groups
            .iter()
            .flat_map(|(id, g)| {
                g.offsets
                    .iter()
                    .map(move |((t, p), v)| (id.clone(), t.clone(), *p, v.offset))
            })
            .collect();
        out.sort();
        out
    }

    /// OffsetDelete: removes committed offsets of topics no member subscribes to.
    pub fn delete_offsets(
        &self,
        group_id: &str,
        topics: Vec<(String, Vec<i32>)>,
    ) -> Pending<Result<PartitionResults, GroupError>> {
        let now = now();
        let mut groups = self.inner.lock();
        let Some(group) = groups
            .get_mut(group_id)
            .filter(|g| g.state != GroupState::Dead)
        else {
            return Pending::Now(Err(GroupError::GroupIdNotFound));
        };
        let subscribed = if let Some(c) = &group.consumer {
            c.subscribed_topic_names().into_iter().collect()
        } else if group.state == GroupState::Empty {
            HashSet::new()
        } else {
            match group.subscribed_topics() {
                Some(s) => s,
                None => return Pending::Now(Err(GroupError::NonEmptyGroup)),
            }
        };
        let mut results: PartitionResults = Vec::new();
        let mut records = Vec::new();
        let mut removed = Vec::new();
        for (topic, partitions) in topics {
            let mut rs = Vec::new();
            for p in partitions {
                if subscribed.contains(&topic) {
                    rs.push((p, Err(GroupError::GroupSubscribedToTopic)));
                    continue;
                }
                if group.offsets.contains_key(&(topic.clone(), p)) {
                    let key = RecordKey::Offset {
                        group: group_id.to_string(),
                        topic: topic.clone(),
                        partition: p,
                    };
                    records.push((encode_key(&key), None));
                    removed.push((topic.clone(), p));
                }
                rs.push((p, Ok(())));
            }
            results.push((topic, rs));
        }
        if records.is_empty() {
            return Pending::Now(Ok(results));
        }
        let partition = match self.append(group_id, &records, now.ms) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(group = %group_id, "offset delete not written: {e}");
                return Pending::Now(Err(GroupError::CoordinatorNotAvailable));
            }
        };
        for k in &removed {
            group.offsets.remove(k);
        }
        drop(groups);
        let (tx, rx) = oneshot::channel();
        self.sync_then(vec![partition], move |synced| {
            let _ = tx.send(match synced {
                Ok(()) => Ok(results),
                Err(_) => Err(GroupError::CoordinatorNotAvailable),
            });
        });
        Pending::Wait(rx)
    }

    /// Removes expired committed offsets (Kafka's KIP-211 rules): all offsets of a group
    /// that has had no members for the retention time; offsets of topics a stable consumer
    /// group no longer subscribes to, and of groups that only hold offsets, when their
    /// commit is older than the retention time; any offset past an explicit expiry.
    /// Groups left with neither members nor offsets are deleted.
    pub fn expire_offsets(&self, now_ms: i64) {
        let retention = self.inner.config.offsets_retention_ms;
        let mut groups = self.inner.lock();
        let mut dead = Vec::new();
        let mut to_sync = Vec::new();
        for g in groups.values_mut() {
            let (base_state_ts, unsubscribed) = match (g.protocol_type.is_some(), g.state) {
                // KIP-848 groups: offsets of subscribed topics stay while members subscribe.
                _ if g.consumer.is_some() => (
                    None,
                    g.consumer
                        .as_ref()
                        .map(|c| c.subscribed_topic_names().into_iter().collect()),
                ),
                (true, GroupState::Empty) => (Some(g.state_timestamp_ms), None),
                (true, GroupState::Stable) => match g.subscribed_topics() {
                    Some(topics) => (None, Some(topics)),
                    None => continue,
                },
                (true, _) => continue,
                (false, _) => (None, None),
            };
            let expired: Vec<(String, i32)> = g
                .offsets
                .iter()
                .filter(|((topic, _), v)| {
                    if v.expire_timestamp >= 0 {
                        return now_ms >= v.expire_timestamp;
                    }
                    if unsubscribed
                        .as_ref()
                        .is_some_and(|subs| subs.contains(topic))
                    {
                        return false;
                    }
                    base_state_ts
                        .unwrap_or(v.commit_timestamp)
                        .saturating_add(retention)
                        <= now_ms
                })
                .map(|(k, _)| k.clone())
                .collect();
            let drop_group = g.state == GroupState::Empty
                && g.has_no_members()
                && expired.len() == g.offsets.len();
            if expired.is_empty() && !drop_group {
                continue;
            }
            let mut records: Vec<(Bytes, Option<Bytes>)> = expired
                .iter()
                .map(|(t, p)| {
                    let key = RecordKey::Offset {
                        group: g.id.clone(),
                        topic: t.clone(),
                        partition: *p,
                    };
                    (encode_key(&key), None)
                })
                .collect();
            if drop_group {
                records.push((
                    encode_key(&RecordKey::Group {
                        group: g.id.clone(),
                    }),
                    None,
                ));
                if g.consumer.is_some() {
                    let key = RecordKey::ConsumerGroupMetadata {
                        group: g.id.clone(),
                    };
                    records.push((encode_key(&key), None));
                }
            }
            match self.append(&g.id, &records, now_ms) {
                Ok(p) => {
                    for k in &expired {
                        g.offsets.remove(k);
                    }
                    if !expired.is_empty() {
                        tracing::info!(group = %g.id, offsets = expired.len(), "expired committed offsets");
                    }
                    if drop_group {
                        dead.push(g.id.clone());
                    }
                    to_sync.push(p);
                }
                Err(e) => tracing::warn!(group = %g.id, "offset expiry not written: {e}"),
            }
        }
        for id in dead {
            groups.remove(&id);
        }
        drop(groups);
        if !to_sync.is_empty() {
            self.sync_then(to_sync, |r| {
                if let Err(e) = r {
                    tracing::error!("offset expiry not durable: {e}");
                }
            });
        }
    }
}

/// A commit's per-partition results, the records to append, and the offsets they set.
pub(super) type CommitRecords = (
    PartitionResults,
    Vec<(Bytes, Option<Bytes>)>,
    Vec<((String, i32), OffsetValue)>,
);

/// The member and generation check of a commit, for classic and consumer groups.
pub(super) fn validate_commit(
    group: &mut Group,
    args: &CommitArgs,
    now: Now,
) -> Result<(), GroupError> {
    match &group.consumer {
        Some(c) => c.validate_offset_commit(&args.member_id, args.generation, args.api_version),
        None => group.validate_offset_commit(
            &args.member_id,
            args.instance_id.as_deref(),
            args.generation,
            now,
        ),
    }
}

/// The error a commit that could not be appended answers with.
pub(super) fn append_failure(e: &PersistError) -> GroupError {
    if e.is_too_large() {
        GroupError::InvalidCommitOffsetSize
    } else {
        GroupError::CoordinatorNotAvailable
    }
}

//! KIP-848 consumer groups in the coordinator: ConsumerGroupHeartbeat and
//! ConsumerGroupDescribe over the shared group map (a consumer group is a [`Group`] whose
//! `consumer` state is set, so committed offsets, listing, deletion and expiry are shared
//! with classic groups), their session and revocation timers, and the group epoch record.
//!
//! Persistence: the group epoch is written (ConsumerGroupMetadata key and value, Kafka's
//! layout) whenever it changes, and the heartbeat that changed it is answered once it is
//! durable. Members and assignments are not written: after a restart the group comes back
//! empty at its epoch, members heartbeating with their old epoch get UNKNOWN_MEMBER_ID and
//! rejoin with epoch 0, as after a session timeout; committed offsets are kept as always.

use uuid::Uuid;

use super::*;
use crate::group::consumer::assignor::Assignment;
use crate::group::consumer::{self, ConsumerTimer, HeartbeatArgs, HeartbeatReply};
use crate::group::records::encode_consumer_group_value;

/// A member as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone)]
pub struct ConsumerMemberDescription {
    /// Member id.
    pub member_id: String,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Rack id.
    pub rack_id: Option<String>,
    /// Member epoch.
    pub member_epoch: i32,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Subscribed topics.
    pub subscribed_topic_names: Vec<String>,
    /// Current assignment: topic id, name, partitions.
    pub assignment: Vec<(Uuid, String, Vec<i32>)>,
    /// Target assignment.
    pub target_assignment: Vec<(Uuid, String, Vec<i32>)>,
}

/// A consumer group as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone)]
pub struct ConsumerGroupDescription {
    /// Group id.
    pub group_id: String,
    /// State name.
    pub state: &'static str,
    /// Group epoch.
    pub group_epoch: i32,
    /// Target assignment epoch.
    pub assignment_epoch: i32,
    /// Assignor of the target assignment.
    pub assignor: String,
    /// Members.
    pub members: Vec<ConsumerMemberDescription>,
}

impl GroupCoordinator {
    /// ConsumerGroupHeartbeat (validated by [`consumer::validate`]); `topics` looks up a
    /// topic's id and partition count. Answered once a changed group epoch is durable.
    pub fn consumer_heartbeat(
        &self,
        group_id: &str,
        args: HeartbeatArgs,
        topics: consumer::TopicLookup<'_>,
    ) -> Pending<Result<HeartbeatReply, GroupError>> {
        let now = now();
        let joining = args.member_epoch == 0;
        let mut groups = self.inner.lock();
        let mut converted = false;
        match groups.get_mut(group_id) {
            None if joining => {
                let mut g = Group::new(group_id, now.ms);
                g.consumer = Some(ConsumerGroup::default());
                groups.insert(group_id.to_string(), g);
            }
            None => return Pending::Now(Err(GroupError::GroupIdNotFound)),
            Some(g) if g.consumer.is_none() => {
                // A classic group becomes a consumer group only while it has no members
                // (it may hold offsets); otherwise it is "not a consumer group".
                if !joining || g.state != GroupState::Empty || !g.has_no_members() {
                    return Pending::Now(Err(GroupError::GroupIdNotFound));
                }
                g.consumer = Some(ConsumerGroup::default());
                converted = true;
            }
            Some(_) => {}
        }
        let Some(group) = groups.get_mut(group_id) else {
            return Pending::Now(Err(GroupError::CoordinatorNotAvailable));
        };
        let Some(c) = group.consumer.as_mut() else {
            return Pending::Now(Err(GroupError::CoordinatorNotAvailable));
        };
        let mut fx = consumer::Effects::default();
        let reply = match c.heartbeat(
            args,
            topics,
            now.instant,
            &self.inner.config.consumer,
            &mut fx,
        ) {
            Ok(r) => r,
            Err(e) => {
                if converted {
                    group.consumer = None;
                }
                return Pending::Now(Err(e));
            }
        };
        let epoch = c.group_epoch;
        self.arm_consumer(group_id, fx.timers);
        if !fx.persist_epoch {
            return Pending::Now(Ok(reply));
        }
        tracing::info!(group = %group_id, epoch, member = %reply.member_id, member_epoch = reply.member_epoch, "consumer group epoch bumped");
        let partition = match self.write_consumer_epoch(group_id, epoch, converted, now.ms) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(group = %group_id, "consumer group epoch not written: {e}");
                return Pending::Now(Err(GroupError::CoordinatorNotAvailable));
            }
        };
        drop(groups);
        let (tx, rx) = oneshot::channel();
        self.sync_then(vec![partition], move |synced| {
            let _ = tx.send(match synced {
                Ok(()) => Ok(reply),
                Err(e) => {
                    tracing::error!("consumer group epoch not durable: {e}");
                    Err(GroupError::CoordinatorNotAvailable)
                }
            });
        });
        Pending::Wait(rx)
    }

    /// ConsumerGroupDescribe: GROUP_ID_NOT_FOUND for unknown and classic groups.
    pub fn consumer_describe(
        &self,
        group_ids: &[String],
    ) -> Vec<Result<ConsumerGroupDescription, GroupError>> {
        self.describe_each(group_ids, |groups, id| {
            let c = groups
                .get(id)
                .and_then(|g| g.consumer.as_ref())
                .ok_or(GroupError::GroupIdNotFound)?;
            let named = |a: &Assignment| {
                a.iter()
                    .map(|(t, ps)| {
                        let name = c.topic_name(t).unwrap_or_default().to_string();
                        (*t, name, ps.iter().copied().collect())
                    })
                    .collect()
            };
            Ok(ConsumerGroupDescription {
                group_id: id.clone(),
                state: c.state().name(),
                group_epoch: c.group_epoch,
                assignment_epoch: c.assignment_epoch,
                assignor: c
                    .assignor
                    .or_else(|| self.inner.config.consumer.assignors.first().copied())
                    .map(|a| a.name().to_string())
                    .unwrap_or_default(),
                members: c
                    .members
                    .values()
                    .map(|m| ConsumerMemberDescription {
                        member_id: m.id.clone(),
                        instance_id: m.instance_id.clone(),
                        rack_id: m.rack_id.clone(),
                        member_epoch: m.current.member_epoch,
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        subscribed_topic_names: m.subscribed_topics.clone(),
                        assignment: named(&m.current.assigned),
                        target_assignment: named(c.target.get(&m.id).unwrap_or(&Assignment::new())),
                    })
                    .collect(),
            })
        })
    }

    /// OffsetFetch v9+ of a KIP-848 member: its id and epoch must be current
    /// (STALE_MEMBER_EPOCH, UNKNOWN_MEMBER_ID); other groups are not checked.
    pub fn validate_offset_fetch(
        &self,
        group_id: &str,
        member_id: Option<&str>,
        member_epoch: i32,
    ) -> Result<(), GroupError> {
        let groups = self.inner.lock();
        match groups.get(group_id).and_then(|g| g.consumer.as_ref()) {
            Some(c) => c.validate_offset_fetch(member_id, member_epoch),
            None => Ok(()),
        }
    }

    /// A classic JoinGroup on a KIP-848 group: refused while it has members
    /// (INCONSISTENT_GROUP_PROTOCOL, as Kafka without migration); an empty one becomes a
    /// classic group again, keeping its offsets. Called with the lock held.
    pub(super) fn leave_consumer_protocol(
        &self,
        group: &mut Group,
        now_ms: i64,
    ) -> Result<(), GroupError> {
        let Some(c) = &group.consumer else {
            return Ok(());
        };
        if !c.members.is_empty() {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        let key = RecordKey::ConsumerGroupMetadata {
            group: group.id.clone(),
        };
        let p = self
            .append(&group.id, &[(encode_key(&key), None)], now_ms)
            .map_err(|e| {
                tracing::error!(group = %group.id, "consumer group tombstone not written: {e}");
                GroupError::CoordinatorNotAvailable
            })?;
        group.consumer = None;
        self.sync_then(vec![p], |r| {
            if let Err(e) = r {
                tracing::error!("consumer group tombstone not durable: {e}");
            }
        });
        Ok(())
    }

    /// Appends the group epoch record (after a tombstone of the classic group record when
    /// the group just became a consumer group).
    fn write_consumer_epoch(
        &self,
        group_id: &str,
        epoch: i32,
        converted: bool,
        now_ms: i64,
    ) -> Result<i32, PersistError> {
        let mut records = Vec::with_capacity(2);
        if converted {
            let key = RecordKey::Group {
                group: group_id.to_string(),
            };
            records.push((encode_key(&key), None));
        }
        let key = RecordKey::ConsumerGroupMetadata {
            group: group_id.to_string(),
        };
        records.push((encode_key(&key), Some(encode_consumer_group_value(epoch))));
        self.append(group_id, &records, now_ms)
    }

    fn arm_consumer(&self, group_id: &str, timers: Vec<(Instant, ConsumerTimer)>) {
        if timers.is_empty() {
            return;
        }
        let timers = timers
            .into_iter()
            .map(|(at, t)| (at, Timer::Consumer(t)))
            .collect();
        self.arm(group_id, timers);
    }

    /// A session or revocation timer fired: the member is removed if its deadline passed.
    pub(super) fn fire_consumer(&self, group_id: &str, timer: ConsumerTimer) {
        let now = now();
        let mut groups = self.inner.lock();
        let Some(c) = groups.get_mut(group_id).and_then(|g| g.consumer.as_mut()) else {
            return;
        };
        let mut fx = consumer::Effects::default();
        if !c.on_timer(&timer, now.instant, &mut fx) {
            return;
        }
        let epoch = c.group_epoch;
        match &timer {
            ConsumerTimer::Session { member_id } => {
                tracing::info!(group = %group_id, member = %member_id, epoch, "session expired; member removed")
            }
            ConsumerTimer::Revocation { member_id } => {
                tracing::info!(group = %group_id, member = %member_id, epoch, "partitions not revoked within the rebalance timeout; member removed")
            }
        }
        if fx.persist_epoch {
            match self.write_consumer_epoch(group_id, epoch, false, now.ms) {
                Ok(p) => self.sync_then(vec![p], |r| {
                    if let Err(e) = r {
                        tracing::error!("consumer group epoch not durable: {e}");
                    }
                }),
                Err(e) => {
                    tracing::error!(group = %group_id, "consumer group epoch not written: {e}")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;

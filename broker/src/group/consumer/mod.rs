//! Consumer groups of the KIP-848 protocol (ConsumerGroupHeartbeat): the broker assigns.
//!
//! A heartbeat (1) creates or updates its member; a new member, a changed subscription or
//! changed partition counts of subscribed topics bump the group epoch; (2) when the group
//! epoch is ahead of the assignment epoch, the server-side assignor ([`assignor`]) computes
//! a new target assignment; (3) the member is reconciled towards its target one step at a
//! time ([`reconcile`]): revoke first, then get partitions nobody else still owns; its member
//! epoch reaches the target epoch once it has nothing left to revoke.
//!
//! Members that stop heartbeating for the session timeout, or do not revoke within their
//! rebalance timeout, are removed (fenced). Like [`super::classic`], this is pure state: no
//! locks, no I/O; timers to arm come back in [`Effects`], and whether the group's epoch
//! record must be written.

pub mod assignor;
pub mod reconcile;

use std::collections::{BTreeMap, BTreeSet};

use tokio::time::{Duration, Instant};
use uuid::Uuid;

use self::assignor::{Assignment, AssignmentSpec, Assignor};
use self::reconcile::{MemberState, Reconciliation, is_subset};
use super::GroupError;

/// Member epoch of a leaving member.
pub const LEAVE_EPOCH: i32 = -1;
/// Member epoch of a static member leaving temporarily (it may come back with its
/// assignment within the session timeout).
pub const STATIC_LEAVE_EPOCH: i32 = -2;

/// Broker settings of consumer groups.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    /// `group.consumer.heartbeat.interval.ms`.
    pub heartbeat_interval_ms: i32,
    /// `group.consumer.session.timeout.ms`.
    pub session_timeout_ms: i32,
    /// `group.consumer.max.size`.
    pub max_size: usize,
    /// `group.consumer.assignors`; the first is the default.
    pub assignors: Vec<Assignor>,
}

impl Default for ConsumerSettings {
    fn default() -> ConsumerSettings {
        ConsumerSettings {
            heartbeat_interval_ms: 5000,
            session_timeout_ms: 45_000,
            max_size: usize::MAX,
            assignors: vec![Assignor::Uniform, Assignor::Range],
        }
    }
}

/// The states of a consumer group, as Kafka names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerState {
    /// No members.
    Empty,
    /// The group epoch is ahead of the target assignment.
    Assigning,
    /// Some member has not reached the target assignment.
    Reconciling,
    /// Every member is at the target assignment.
    Stable,
}

impl ConsumerState {
    /// The name in ListGroups and ConsumerGroupDescribe.
    pub fn name(self) -> &'static str {
        match self {
            ConsumerState::Empty => "Empty",
            ConsumerState::Assigning => "Assigning",
            ConsumerState::Reconciling => "Reconciling",
            ConsumerState::Stable => "Stable",
        }
    }
}

/// A subscribed topic as the group last saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMeta {
    /// Topic name.
    pub name: String,
    /// Partition count.
    pub partitions: i32,
}

/// One member.
#[derive(Debug, Clone)]
pub struct ConsumerMember {
    /// Member id.
    pub id: String,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Rack id.
    pub rack_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Rebalance timeout: how long it may take to revoke.
    pub rebalance_timeout_ms: i32,
    /// Subscribed topic names, sorted.
    pub subscribed_topics: Vec<String>,
    /// The assignor it asks for.
    pub server_assignor: Option<String>,
    /// Its assignment and epoch.
    pub current: Reconciliation,
    /// When its session ends unless it heartbeats.
    pub session_deadline: Instant,
    /// When it is fenced unless it has revoked (while revoking).
    pub revocation_deadline: Option<Instant>,
}

/// A timer a consumer group asks for; it re-checks the member's deadline when it fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerTimer {
    /// The member's session.
    Session {
        /// Member id.
        member_id: String,
    },
    /// The member's revocation deadline.
    Revocation {
        /// Member id.
        member_id: String,
    },
}

/// What the caller must do after a state change.
#[derive(Debug, Default)]
pub struct Effects {
    /// Timers to arm.
    pub timers: Vec<(Instant, ConsumerTimer)>,
    /// The group epoch changed: write the group's epoch record.
    pub persist_epoch: bool,
}

/// A ConsumerGroupHeartbeat as the state machine sees it.
#[derive(Debug, Clone, Default)]
pub struct HeartbeatArgs {
    /// Member id ("" in v0 for a new member: the broker generates one).
    pub member_id: String,
    /// Member epoch: 0 joins, -1 leaves, -2 leaves temporarily (static).
    pub member_epoch: i32,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Rack id.
    pub rack_id: Option<String>,
    /// Rebalance timeout, -1 if unchanged.
    pub rebalance_timeout_ms: i32,
    /// Subscribed topics, None if unchanged.
    pub subscribed_topic_names: Option<Vec<String>>,
    /// Server assignor, None if unchanged.
    pub server_assignor: Option<String>,
    /// Partitions the member owns, None if unchanged.
    pub owned: Option<Assignment>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
}

/// A successful heartbeat's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatReply {
    /// Member id.
    pub member_id: String,
    /// Member epoch.
    pub member_epoch: i32,
    /// The member's assignment, when it must be sent.
    pub assignment: Option<Assignment>,
}

/// Looks up a topic by name: its id and partition count.
pub type TopicLookup<'a> = &'a dyn Fn(&str) -> Option<(Uuid, i32)>;

/// Kafka's request checks (`throwIfConsumerGroupHeartbeatRequestIsInvalid`), before any
/// state is touched; `version` is the request's.
pub fn validate(
    group_id: &str,
    args: &HeartbeatArgs,
    subscribed_topic_regex: Option<&str>,
    version: i16,
) -> Result<(), GroupError> {
    let invalid = |m: &str| Err(GroupError::InvalidRequest(m.to_string()));
    if group_id.is_empty() {
        return invalid("GroupId can't be empty.");
    }
    if args.instance_id.as_deref() == Some("") {
        return invalid("InstanceId can't be empty.");
    }
    if args.rack_id.as_deref() == Some("") {
        return invalid("RackId can't be empty.");
    }
    let epoch = args.member_epoch;
    if args.member_id.is_empty() && (version >= 1 || epoch > 0 || epoch == LEAVE_EPOCH) {
        return invalid("MemberId can't be empty.");
    }
    // An empty regex means "no regex" (librdkafka sends one with topic names).
    if subscribed_topic_regex.is_some_and(|r| !r.is_empty()) {
        return invalid("SubscribedTopicRegex is not supported yet.");
    }
    match epoch {
        0 => {
            if args.rebalance_timeout_ms == -1 {
                return invalid("RebalanceTimeoutMs must be provided in first request.");
            }
            if args.owned.as_ref().is_some_and(|o| !o.is_empty()) {
                return invalid("TopicPartitions must be empty when (re-)joining.");
            }
            if args.subscribed_topic_names.is_none() {
                return invalid("SubscribedTopicNames must be set in first request.");
            }
        }
        STATIC_LEAVE_EPOCH if args.instance_id.is_none() => {
            return invalid("InstanceId can't be null.");
        }
        e if e < STATIC_LEAVE_EPOCH => return invalid("MemberEpoch is invalid."),
        _ => {}
    }
    if let Some(name) = &args.server_assignor
        && Assignor::from_name(name).is_none()
    {
        return Err(GroupError::UnsupportedAssignor(name.clone()));
    }
    Ok(())
}

/// One consumer group.
#[derive(Debug, Clone, Default)]
pub struct ConsumerGroup {
    /// Bumped when membership, subscriptions or subscribed topics change.
    pub group_epoch: i32,
    /// The group epoch the target assignment was computed for.
    pub assignment_epoch: i32,
    /// Members by id.
    pub members: BTreeMap<String, ConsumerMember>,
    /// Target assignment by member id.
    pub target: BTreeMap<String, Assignment>,
    /// Subscribed topics by id, as of the last epoch bump.
    pub topics: BTreeMap<Uuid, TopicMeta>,
    /// The assignor of the current target assignment.
    pub assignor: Option<Assignor>,
}

impl ConsumerGroup {
    /// A group restored from its epoch record: no members (they rejoin).
    pub fn restored(epoch: i32) -> ConsumerGroup {
        ConsumerGroup {
            group_epoch: epoch,
            assignment_epoch: epoch,
            ..ConsumerGroup::default()
        }
    }

    /// The group's state.
    pub fn state(&self) -> ConsumerState {
        if self.members.is_empty() {
            ConsumerState::Empty
        } else if self.group_epoch != self.assignment_epoch {
            ConsumerState::Assigning
        } else if self.members.values().any(|m| {
            m.current.state != MemberState::Stable
                || m.current.member_epoch != self.assignment_epoch
        }) {
            ConsumerState::Reconciling
        } else {
            ConsumerState::Stable
        }
    }

    /// Topic names the members subscribe to.
    pub fn subscribed_topic_names(&self) -> BTreeSet<String> {
        self.members
            .values()
            .flat_map(|m| m.subscribed_topics.iter().cloned())
            .collect()
    }

    /// The name of a topic id the group knows.
    pub fn topic_name(&self, id: &Uuid) -> Option<&str> {
        self.topics.get(id).map(|t| t.name.as_str())
    }

    fn member_by_instance(&self, instance: &str) -> Option<&ConsumerMember> {
        self.members
            .values()
            .find(|m| m.instance_id.as_deref() == Some(instance))
    }

    /// Whether a member other than `except` owns (or still has to revoke) a partition.
    fn taken_by_other(&self, except: &str, topic: Uuid, partition: i32) -> bool {
        self.members.iter().any(|(id, m)| {
            id != except
                && [&m.current.assigned, &m.current.pending_revocation]
                    .iter()
                    .any(|a| a.get(&topic).is_some_and(|ps| ps.contains(&partition)))
        })
    }

    /// A ConsumerGroupHeartbeat (already [`validate`]d).
    pub fn heartbeat(
        &mut self,
        mut args: HeartbeatArgs,
        topics: TopicLookup<'_>,
        now: Instant,
        s: &ConsumerSettings,
        fx: &mut Effects,
    ) -> Result<HeartbeatReply, GroupError> {
        if args.member_epoch == LEAVE_EPOCH || args.member_epoch == STATIC_LEAVE_EPOCH {
            return self.leave(&args, now, s, fx);
        }
        if self.members.len() >= s.max_size && !self.members.contains_key(&args.member_id) {
            return Err(GroupError::GroupMaxSizeReached);
        }
        if args.member_id.is_empty() {
            args.member_id = Uuid::new_v4().to_string();
        }
        let id = args.member_id.clone();
        let joining = args.member_epoch == 0;
        let mut bump = false;
        // Find or create the member, checking its epoch.
        let before: Option<ConsumerMember> = match &args.instance_id {
            None => match self.members.get(&id) {
                Some(m) if !joining => {
                    check_epoch(m, args.member_epoch, args.owned.as_ref())?;
                    Some(m.clone())
                }
                // An existing member rejoining (after it was fenced) has abandoned its
                // partitions: it starts over with the same id.
                Some(_) => None,
                None if joining => None,
                None => return Err(GroupError::UnknownMemberId),
            },
            Some(instance) => match self.member_by_instance(instance).cloned() {
                None if joining => None,
                None => return Err(GroupError::UnknownMemberId),
                Some(old) if joining => {
                    if old.id != id && old.current.member_epoch != STATIC_LEAVE_EPOCH {
                        return Err(GroupError::UnreleasedInstanceId);
                    }
                    // The instance comes back (maybe with a new member id): it takes over
                    // its predecessor's assignment, without a rebalance.
                    self.members.remove(&old.id);
                    if let Some(t) = self.target.remove(&old.id) {
                        self.target.insert(id.clone(), t);
                    }
                    let mut m = old;
                    m.id = id.clone();
                    m.current.state = MemberState::Stable;
                    m.current.member_epoch = 0;
                    m.current.previous_epoch = 0;
                    m.revocation_deadline = None;
                    self.members.insert(id.clone(), m.clone());
                    Some(m)
                }
                Some(old) => {
                    if old.id != id {
                        return Err(GroupError::FencedInstanceId);
                    }
                    check_epoch(&old, args.member_epoch, args.owned.as_ref())?;
                    Some(old)
                }
            },
        };
        let mut member = match before.clone() {
            Some(m) => m,
            None => {
                bump = true;
                ConsumerMember {
                    id: id.clone(),
                    instance_id: None,
                    rack_id: None,
                    client_id: String::new(),
                    client_host: String::new(),
                    rebalance_timeout_ms: 0,
                    subscribed_topics: Vec::new(),
                    server_assignor: None,
                    current: Reconciliation::joining(),
                    session_deadline: now,
                    revocation_deadline: None,
                }
            }
        };
        member.instance_id = args.instance_id.clone().or(member.instance_id);
        member.rack_id = args.rack_id.clone().or(member.rack_id);
        if args.rebalance_timeout_ms != -1 {
            member.rebalance_timeout_ms = args.rebalance_timeout_ms;
        }
        if let Some(a) = &args.server_assignor {
            member.server_assignor = Some(a.clone());
        }
        if let Some(mut names) = args.subscribed_topic_names.clone() {
            names.sort();
            names.dedup();
            if names != member.subscribed_topics {
                member.subscribed_topics = names;
                bump = true;
            }
        }
        member.client_id = args.client_id.clone();
        member.client_host = args.client_host.clone();
        self.members.insert(id.clone(), member);

        // Subscribed topics: a topic created, deleted or grown changes the assignment.
        let mut metadata = BTreeMap::new();
        for name in self.subscribed_topic_names() {
            if let Some((topic_id, partitions)) = topics(&name) {
                metadata.insert(topic_id, TopicMeta { name, partitions });
            }
        }
        if metadata != self.topics {
            self.topics = metadata;
            bump = true;
        }
        if bump {
            self.group_epoch += 1;
            fx.persist_epoch = true;
        }
        if self.group_epoch > self.assignment_epoch {
            self.compute_target(s);
        }

        // Reconcile this member.
        let target = self.target.get(&id).cloned().unwrap_or_default();
        let Some(member) = self.members.get(&id) else {
            return Err(GroupError::UnknownMemberId);
        };
        let old_current = member.current.clone();
        let next = {
            let taken = |t: Uuid, p: i32| self.taken_by_other(&id, t, p);
            old_current.next(self.assignment_epoch, &target, args.owned.as_ref(), &taken)
        };
        let Some(member) = self.members.get_mut(&id) else {
            return Err(GroupError::UnknownMemberId);
        };
        if next.state == MemberState::UnrevokedPartitions {
            if old_current.state != MemberState::UnrevokedPartitions
                || member.revocation_deadline.is_none()
            {
                let at = now + Duration::from_millis(member.rebalance_timeout_ms.max(0) as u64);
                member.revocation_deadline = Some(at);
                fx.timers.push((
                    at,
                    ConsumerTimer::Revocation {
                        member_id: id.clone(),
                    },
                ));
            }
        } else {
            member.revocation_deadline = None;
        }
        let changed = before.is_none_or(|b| b.current.assigned != next.assigned);
        member.current = next;
        member.session_deadline = now + Duration::from_millis(s.session_timeout_ms.max(0) as u64);
        fx.timers.push((
            member.session_deadline,
            ConsumerTimer::Session {
                member_id: id.clone(),
            },
        ));
        let send_assignment = args.owned.is_some() || joining || changed;
        Ok(HeartbeatReply {
            member_id: id,
            member_epoch: member.current.member_epoch,
            assignment: send_assignment.then(|| member.current.assigned.clone()),
        })
    }

    fn leave(
        &mut self,
        args: &HeartbeatArgs,
        now: Instant,
        s: &ConsumerSettings,
        fx: &mut Effects,
    ) -> Result<HeartbeatReply, GroupError> {
        let member = match &args.instance_id {
            Some(instance) => {
                let m = self
                    .member_by_instance(instance)
                    .ok_or(GroupError::UnknownMemberId)?;
                if m.id != args.member_id {
                    return Err(GroupError::FencedInstanceId);
                }
                m
            }
            None => self
                .members
                .get(&args.member_id)
                .ok_or(GroupError::UnknownMemberId)?,
        };
        let id = member.id.clone();
        if args.member_epoch == STATIC_LEAVE_EPOCH {
            // Keeps its partitions (nobody else gets them) until it returns or its
            // session ends.
            if let Some(m) = self.members.get_mut(&id) {
                m.current.member_epoch = STATIC_LEAVE_EPOCH;
                m.session_deadline =
                    now + Duration::from_millis(s.session_timeout_ms.max(0) as u64);
                m.revocation_deadline = None;
                fx.timers.push((
                    m.session_deadline,
                    ConsumerTimer::Session {
                        member_id: id.clone(),
                    },
                ));
            }
        } else {
            self.remove_member(&id, fx);
        }
        Ok(HeartbeatReply {
            member_id: id,
            member_epoch: args.member_epoch,
            assignment: None,
        })
    }

    /// Removes a member (left, or fenced): its partitions are free at once, and the
    /// others are rebalanced on their next heartbeats.
    pub fn remove_member(&mut self, id: &str, fx: &mut Effects) {
        if self.members.remove(id).is_some() {
            self.target.remove(id);
            self.group_epoch += 1;
            fx.persist_epoch = true;
        }
    }

    fn compute_target(&mut self, s: &ConsumerSettings) {
        // The assignor most members ask for, else the broker's default.
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = &m.server_assignor {
                *votes.entry(a.as_str()).or_default() += 1;
            }
        }
        let assignor = votes
            .iter()
            .max_by_key(|(_, n)| **n)
            .and_then(|(name, _)| Assignor::from_name(name))
            .or_else(|| s.assignors.first().copied())
            .unwrap_or(Assignor::Uniform);
        let by_name: BTreeMap<&str, Uuid> = self
            .topics
            .iter()
            .map(|(id, t)| (t.name.as_str(), *id))
            .collect();
        let spec = AssignmentSpec {
            members: self
                .members
                .iter()
                .map(|(id, m)| {
                    let subs = m
                        .subscribed_topics
                        .iter()
                        .filter_map(|n| by_name.get(n.as_str()).copied())
                        .collect();
                    (id.clone(), subs)
                })
                .collect(),
            topics: self
                .topics
                .iter()
                .map(|(id, t)| (*id, t.partitions))
                .collect(),
            previous: std::mem::take(&mut self.target),
        };
        self.target = assignor.assign(&spec);
        self.assignor = Some(assignor);
        self.assignment_epoch = self.group_epoch;
    }

    /// A timer fired: removes the member if its deadline passed.
    pub fn on_timer(&mut self, timer: &ConsumerTimer, now: Instant, fx: &mut Effects) -> bool {
        let (member_id, expired) = match timer {
            ConsumerTimer::Session { member_id } => (
                member_id,
                self.members
                    .get(member_id)
                    .is_some_and(|m| m.session_deadline <= now),
            ),
            ConsumerTimer::Revocation { member_id } => (
                member_id,
                self.members.get(member_id).is_some_and(|m| {
                    m.current.state == MemberState::UnrevokedPartitions
                        && m.revocation_deadline.is_some_and(|d| d <= now)
                }),
            ),
        };
        if expired {
            self.remove_member(member_id, fx);
        }
        expired
    }

    /// Kafka's `validateOffsetCommit` for consumer groups: a member commits with its
    /// current epoch; a commit without a member (epoch < 0) only while the group is empty.
    pub fn validate_offset_commit(
        &self,
        member_id: &str,
        member_epoch: i32,
        api_version: i16,
    ) -> Result<(), GroupError> {
        if member_epoch < 0 && self.members.is_empty() {
            return Ok(());
        }
        let m = self
            .members
            .get(member_id)
            .ok_or(GroupError::UnknownMemberId)?;
        if api_version < 9 {
            return Err(GroupError::UnsupportedVersion);
        }
        if member_epoch != m.current.member_epoch {
            return Err(GroupError::StaleMemberEpoch);
        }
        Ok(())
    }

    /// Kafka's `validateOffsetFetch`: without a member id and epoch (admin clients) any
    /// fetch is allowed; otherwise the member and its epoch must be current.
    pub fn validate_offset_fetch(
        &self,
        member_id: Option<&str>,
        member_epoch: i32,
    ) -> Result<(), GroupError> {
        let Some(member_id) = member_id else {
            return Ok(());
        };
        if member_epoch < 0 && member_id.is_empty() {
            return Ok(());
        }
        let m = self
            .members
            .get(member_id)
            .ok_or(GroupError::UnknownMemberId)?;
        if member_epoch != m.current.member_epoch {
            return Err(GroupError::StaleMemberEpoch);
        }
        Ok(())
    }
}

/// Kafka's `throwIfMemberEpochIsInvalid`: an epoch ahead of the member's is fenced; one
/// behind is accepted only if it is the previous epoch and the member owns no more than
/// it is assigned (the response with the new epoch was lost).
fn check_epoch(
    m: &ConsumerMember,
    received: i32,
    owned: Option<&Assignment>,
) -> Result<(), GroupError> {
    let current = m.current.member_epoch;
    if received > current {
        return Err(GroupError::FencedMemberEpoch);
    }
    if received < current {
        let owned_ok = owned.is_some_and(|o| is_subset(o, &m.current.assigned));
        if received != m.current.previous_epoch || !owned_ok {
            return Err(GroupError::FencedMemberEpoch);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;

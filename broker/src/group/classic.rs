//! One classic group and its rebalance state machine, as Kafka's `ClassicGroup` defines it:
//!
//! ```text
//! Empty ──join──▶ PreparingRebalance ──all joined / timeout──▶ CompletingRebalance
//!   ▲                 ▲      │ (no members left)                    │ leader's SyncGroup
//!   └─────────────────┼──────┘                                      ▼
//!                     └──── join with new metadata, leave, expiry ── Stable
//! ```
//! (Dead: deleted.) The join phase ends when every known member has rejoined (and no member
//! id handed out with MEMBER_ID_REQUIRED is still outstanding), or when the largest
//! rebalance timeout of the members expires, which removes the members that did not rejoin.
//! A group joined while Empty first waits `group_initial_rebalance_delay_ms`, extended while
//! new members keep arriving (bounded by the rebalance timeout), so a starting fleet of
//! consumers forms one generation instead of one per arrival.
//!
//! Nothing here locks, sleeps or writes: time comes in as arguments, and timers to arm,
//! the group record to persist and the answers that must wait for it go out in [`Effects`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::{Duration, Instant};

use super::GroupError;
use super::consumer::{ConsumerGroup, ConsumerTimer};
use super::member::{
    JoinOutcome, JoinResponse, JoinedMember, Member, SyncOutcome, SyncResponse, new_member_id,
};
use super::records::{GroupValue, MemberValue, OffsetValue};

/// The states of a classic group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// No members (maybe committed offsets).
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Joined; waiting for the leader's assignment.
    CompletingRebalance,
    /// Assigned and running.
    Stable,
    /// Deleted.
    Dead,
}

impl GroupState {
    /// The name Kafka uses in DescribeGroups and ListGroups.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// Broker settings the state machine needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `group.initial.rebalance.delay.ms`.
    pub initial_rebalance_delay: Duration,
    /// Smallest session timeout a member may ask for.
    pub min_session_timeout_ms: i32,
    /// Largest session timeout a member may ask for.
    pub max_session_timeout_ms: i32,
}

/// Current time, monotonic (for timers) and wall clock (for records).
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// Monotonic.
    pub instant: Instant,
    /// Milliseconds since the Unix epoch.
    pub ms: i64,
}

/// A timer the group asks for; stale timers (the group moved on) are ignored when they fire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Timer {
    /// Check this member's session.
    Session {
        /// Member id.
        member_id: String,
    },
    /// A member id handed out with MEMBER_ID_REQUIRED that was never used expires.
    PendingMember {
        /// Member id.
        member_id: String,
    },
    /// The join phase's delay or rebalance timeout.
    Join {
        /// Which join phase.
        token: u64,
    },
    /// Members that have not sent SyncGroup within the rebalance timeout are removed.
    Sync {
        /// Which sync phase.
        token: u64,
    },
    /// A timer of the group's KIP-848 state (handled by the coordinator).
    Consumer(ConsumerTimer),
}

/// What the caller must do after a state change.
#[derive(Debug, Default)]
pub struct Effects {
    /// Timers to arm.
    pub timers: Vec<(Instant, Timer)>,
    /// Write the group's metadata record.
    pub persist_group: bool,
    /// SyncGroup answers to release once the group record is durable.
    pub after_persist: Vec<(oneshot::Sender<SyncOutcome>, SyncOutcome)>,
}

/// An answer that is ready, or one to await.
#[derive(Debug)]
pub enum Pending<T> {
    /// Ready.
    Now(T),
    /// Comes later.
    Wait(oneshot::Receiver<T>),
}

/// A JoinGroup as the state machine sees it.
#[derive(Debug, Clone)]
pub struct JoinArgs {
    /// Member id ("" for a new member).
    pub member_id: String,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Session timeout.
    pub session_timeout_ms: i32,
    /// Rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// Protocol type.
    pub protocol_type: String,
    /// Protocols, most preferred first.
    pub protocols: Vec<(String, Bytes)>,
    /// v4+: a new dynamic member must first get its id (MEMBER_ID_REQUIRED).
    pub require_known_member_id: bool,
}

/// A SyncGroup as the state machine sees it.
#[derive(Debug, Clone)]
pub struct SyncArgs {
    /// Generation.
    pub generation: i32,
    /// Member id.
    pub member_id: String,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// v5+: protocol type to check.
    pub protocol_type: Option<String>,
    /// v5+: protocol name to check.
    pub protocol_name: Option<String>,
    /// The leader's assignments.
    pub assignments: Vec<(String, Bytes)>,
}

struct JoinPhase {
    token: u64,
    /// Still in the initial delay of a group that was Empty.
    initial: bool,
    new_member_added: bool,
    rebalance_deadline: Instant,
}

static TOKENS: AtomicU64 = AtomicU64::new(1);

fn next_token() -> u64 {
    TOKENS.fetch_add(1, Ordering::Relaxed)
}

/// One classic group.
pub struct Group {
    /// Group id.
    pub id: String,
    /// State.
    pub state: GroupState,
    /// When the group entered its state (wall clock ms).
    pub state_timestamp_ms: i64,
    /// Generation.
    pub generation: i32,
    /// Protocol type of the members.
    pub protocol_type: Option<String>,
    /// Selected protocol of the generation.
    pub protocol: Option<String>,
    /// Leader member id.
    pub leader: Option<String>,
    /// Members in join order.
    pub members: Vec<Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, not yet used.
    pub pending_members: HashSet<String>,
    /// Committed offsets by (topic, partition).
    pub offsets: BTreeMap<(String, i32), OffsetValue>,
    /// Set when the group is a KIP-848 consumer group (ConsumerGroupHeartbeat); the
    /// classic state then stays Empty, and only the offsets are shared.
    pub consumer: Option<ConsumerGroup>,
    join: Option<JoinPhase>,
    sync_token: u64,
    pending_sync: HashSet<String>,
}

impl Group {
    /// A new, empty group.
    pub fn new(id: &str, now_ms: i64) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            state_timestamp_ms: now_ms,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: Vec::new(),
            pending_members: HashSet::new(),
            offsets: BTreeMap::new(),
            consumer: None,
            join: None,
            sync_token: 0,
            pending_sync: HashSet::new(),
        }
    }

    /// Restores a group from its metadata record (Stable if it has members, else Empty).
    /// Member sessions start at `now`.
    pub fn from_value(id: &str, v: GroupValue, now: Instant) -> Group {
        let mut g = Group::new(id, v.current_state_timestamp);
        g.generation = v.generation;
        g.protocol_type = Some(v.protocol_type).filter(|t| !t.is_empty());
        g.protocol = v.protocol;
        g.leader = v.leader;
        g.members = v
            .members
            .into_iter()
            .map(|m| {
                let session_timeout = Duration::from_millis(m.session_timeout_ms.max(0) as u64);
                let protocols = match &g.protocol {
                    Some(p) => vec![(p.clone(), m.subscription)],
                    None => vec![],
                };
                Member {
                    id: m.member_id,
                    instance_id: m.group_instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    session_timeout,
                    rebalance_timeout: Duration::from_millis(m.rebalance_timeout_ms.max(0) as u64),
                    protocols,
                    assignment: m.assignment,
                    join_waiter: None,
                    sync_waiter: None,
                    session_deadline: now + session_timeout,
                }
            })
            .collect();
        g.state = if g.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        if g.leader.as_ref().is_some_and(|l| g.member(l).is_none()) {
            g.leader = g.members.first().map(|m| m.id.clone());
        }
        g
    }

    /// The group's metadata record.
    pub fn to_value(&self) -> GroupValue {
        let protocol = self.protocol.clone();
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: protocol.clone(),
            leader: self.leader.clone(),
            current_state_timestamp: self.state_timestamp_ms,
            members: self
                .members
                .iter()
                .map(|m| MemberValue {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout.as_millis() as i32,
                    session_timeout_ms: m.session_timeout.as_millis() as i32,
                    subscription: protocol
                        .as_deref()
                        .and_then(|p| m.metadata_for(p))
                        .cloned()
                        .unwrap_or_default(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// A member by id.
    pub fn member(&self, id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    fn member_mut(&mut self, id: &str) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.id == id)
    }

    fn member_by_instance(&self, instance: &str) -> Option<&Member> {
        self.members
            .iter()
            .find(|m| m.instance_id.as_deref() == Some(instance))
    }

    /// Whether the group has no members and no outstanding member ids.
    pub fn has_no_members(&self) -> bool {
        self.members.is_empty()
            && self.pending_members.is_empty()
            && self.consumer.as_ref().is_none_or(|c| c.members.is_empty())
    }

    fn set_state(&mut self, state: GroupState, now: Now) {
        self.state = state;
        self.state_timestamp_ms = now.ms;
    }

    /// Kafka's `validateMember`: a static member is known by its instance id, and an old
    /// member id of that instance is fenced.
    pub fn validate_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), GroupError> {
        match instance_id {
            Some(instance) => match self.member_by_instance(instance) {
                None => Err(GroupError::UnknownMemberId),
                Some(m) if m.id != member_id => Err(GroupError::FencedInstanceId),
                Some(_) => Ok(()),
            },
            None if self.member(member_id).is_some() => Ok(()),
            None => Err(GroupError::UnknownMemberId),
        }
    }

    fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols
                .iter()
                .any(|(name, _)| self.members.iter().all(|m| m.metadata_for(name).is_some()))
    }

    /// Kafka's protocol selection: among the protocols every member supports, each member
    /// votes for its most preferred; most votes wins (ties: the earlier in the first
    /// member's preference order).
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.first()?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| self.members.iter().all(|m| m.metadata_for(n).is_some()))
            .collect();
        let mut votes: HashMap<&str, usize> = HashMap::new();
        for m in &self.members {
            if let Some((name, _)) = m
                .protocols
                .iter()
                .find(|(n, _)| candidates.contains(&n.as_str()))
            {
                *votes.entry(name.as_str()).or_default() += 1;
            }
        }
        let mut best: Option<(&str, usize)> = None;
        for c in &candidates {
            let v = votes.get(c).copied().unwrap_or(0);
            if best.is_none_or(|(_, bv)| v > bv) {
                best = Some((c, v));
            }
        }
        best.map(|(n, _)| n.to_string())
    }

    fn max_rebalance_timeout(&self) -> Duration {
        self.members
            .iter()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or(Duration::ZERO)
    }

    fn join_response(&self, member_id: &str) -> JoinResponse {
        let leader = self.leader.clone().unwrap_or_default();
        let members = if leader == member_id {
            self.members
                .iter()
                .map(|m| JoinedMember {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    metadata: self
                        .protocol
                        .as_deref()
                        .and_then(|p| m.metadata_for(p))
                        .cloned()
                        .unwrap_or_default(),
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinResponse {
            member_id: member_id.to_string(),
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader,
            skip_assignment: false,
            members,
        }
    }

    /// JoinGroup.
    pub fn join(
        &mut self,
        args: JoinArgs,
        now: Now,
        s: &Settings,
        fx: &mut Effects,
    ) -> Pending<JoinOutcome> {
        if self.state == GroupState::Dead {
            return Pending::Now(Err(GroupError::CoordinatorNotAvailable));
        }
        if !self.supports_protocols(&args.protocol_type, &args.protocols) {
            return Pending::Now(Err(GroupError::InconsistentGroupProtocol));
        }
        if args.member_id.is_empty() {
            if let Some(instance) = args.instance_id.clone() {
                if self.member_by_instance(&instance).is_some() {
                    return self.replace_static_member(&instance, args, now, s, fx);
                }
                let id = new_member_id(&instance);
                return self.add_member_and_rebalance(id, args, now, s, fx);
            }
            let id = new_member_id(&args.client_id);
            if args.require_known_member_id {
                let session = Duration::from_millis(args.session_timeout_ms.max(0) as u64);
                self.pending_members.insert(id.clone());
                fx.timers.push((
                    now.instant + session,
                    Timer::PendingMember {
                        member_id: id.clone(),
                    },
                ));
                return Pending::Now(Err(GroupError::MemberIdRequired(id)));
            }
            return self.add_member_and_rebalance(id, args, now, s, fx);
        }
        // Ids handed out with MEMBER_ID_REQUIRED are for dynamic members; a join naming one
        // with an instance id is validated like any other, or it would add a second member
        // with an instance id that another member already has.
        if args.instance_id.is_none() && self.pending_members.remove(&args.member_id) {
            let id = args.member_id.clone();
            return self.add_member_and_rebalance(id, args, now, s, fx);
        }
        if let Err(e) = self.validate_member(&args.member_id, args.instance_id.as_deref()) {
            return Pending::Now(Err(e));
        }
        let member_id = args.member_id.clone();
        let unchanged = self
            .member(&member_id)
            .is_some_and(|m| m.same_protocols(&args.protocols));
        match self.state {
            GroupState::PreparingRebalance => {
                let rx = self.update_member(&member_id, args, now);
                self.try_complete_join(now, fx);
                Pending::Wait(rx)
            }
            GroupState::CompletingRebalance if unchanged => {
                // The member lost our answer (a retried JoinGroup): answer it again.
                Pending::Now(Ok(self.join_response(&member_id)))
            }
            GroupState::Stable
                if unchanged && self.leader.as_deref() != Some(member_id.as_str()) =>
            {
                Pending::Now(Ok(self.join_response(&member_id)))
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                let rx = self.update_member(&member_id, args, now);
                self.prepare_rebalance(now, s, fx);
                Pending::Wait(rx)
            }
            GroupState::Empty | GroupState::Dead => Pending::Now(Err(GroupError::UnknownMemberId)),
        }
    }

    fn update_member(
        &mut self,
        member_id: &str,
        args: JoinArgs,
        now: Now,
    ) -> oneshot::Receiver<JoinOutcome> {
        let (tx, rx) = oneshot::channel();
        if let Some(m) = self.member_mut(member_id) {
            // A member already waiting (a duplicate JoinGroup) is told to rejoin.
            m.answer_join(Err(GroupError::RebalanceInProgress));
            m.protocols = args.protocols;
            m.session_timeout = Duration::from_millis(args.session_timeout_ms.max(0) as u64);
            m.rebalance_timeout = Duration::from_millis(args.rebalance_timeout_ms.max(0) as u64);
            m.client_id = args.client_id;
            m.client_host = args.client_host;
            m.join_waiter = Some(tx);
            m.touch(now.instant);
        }
        rx
    }

    fn add_member_and_rebalance(
        &mut self,
        id: String,
        args: JoinArgs,
        now: Now,
        s: &Settings,
        fx: &mut Effects,
    ) -> Pending<JoinOutcome> {
        let (tx, rx) = oneshot::channel();
        let session_timeout = Duration::from_millis(args.session_timeout_ms.max(0) as u64);
        if self.members.is_empty() {
            self.protocol_type = Some(args.protocol_type.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(id.clone());
        }
        self.members.push(Member {
            id: id.clone(),
            instance_id: args.instance_id,
            client_id: args.client_id,
            client_host: args.client_host,
            session_timeout,
            rebalance_timeout: Duration::from_millis(args.rebalance_timeout_ms.max(0) as u64),
            protocols: args.protocols,
            assignment: Bytes::new(),
            join_waiter: Some(tx),
            sync_waiter: None,
            session_deadline: now.instant + session_timeout,
        });
        fx.timers.push((
            now.instant + session_timeout,
            Timer::Session { member_id: id },
        ));
        if let Some(join) = &mut self.join {
            join.new_member_added = true;
        }
        match self.state {
            GroupState::PreparingRebalance => self.try_complete_join(now, fx),
            _ => self.prepare_rebalance(now, s, fx),
        }
        Pending::Wait(rx)
    }

    /// A known static instance rejoins with an empty member id: it takes over the old
    /// member's place under a new id, the old id is fenced, and a stable group keeps its
    /// assignment without a rebalance.
    fn replace_static_member(
        &mut self,
        instance: &str,
        args: JoinArgs,
        now: Now,
        s: &Settings,
        fx: &mut Effects,
    ) -> Pending<JoinOutcome> {
        let new_id = new_member_id(instance);
        let Some(idx) = self
            .members
            .iter()
            .position(|m| m.instance_id.as_deref() == Some(instance))
        else {
            return Pending::Now(Err(GroupError::UnknownMemberId));
        };
        let old_id = self.members[idx].id.clone();
        let old_protocols_kept;
        {
            let m = &mut self.members[idx];
            m.answer_join(Err(GroupError::FencedInstanceId));
            m.answer_sync(Err(GroupError::FencedInstanceId));
            old_protocols_kept = m.same_protocols(&args.protocols);
            m.id = new_id.clone();
            m.protocols = args.protocols;
            m.session_timeout = Duration::from_millis(args.session_timeout_ms.max(0) as u64);
            m.rebalance_timeout = Duration::from_millis(args.rebalance_timeout_ms.max(0) as u64);
            m.client_id = args.client_id;
            m.client_host = args.client_host;
            m.touch(now.instant);
        }
        if self.leader.as_deref() == Some(old_id.as_str()) {
            self.leader = Some(new_id.clone());
        }
        if self.pending_sync.remove(&old_id) {
            self.pending_sync.insert(new_id.clone());
        }
        let session = self.members[idx].session_timeout;
        fx.timers.push((
            now.instant + session,
            Timer::Session {
                member_id: new_id.clone(),
            },
        ));
        let keeps_protocol = old_protocols_kept || self.select_protocol() == self.protocol;
        if self.state == GroupState::Stable && keeps_protocol {
            fx.persist_group = true;
            let mut resp = self.join_response(&new_id);
            resp.skip_assignment = self.leader.as_deref() == Some(new_id.as_str());
            return Pending::Now(Ok(resp));
        }
        let (tx, rx) = oneshot::channel();
        self.members[idx].join_waiter = Some(tx);
        match self.state {
            GroupState::PreparingRebalance => self.try_complete_join(now, fx),
            _ => self.prepare_rebalance(now, s, fx),
        }
        Pending::Wait(rx)
    }

    /// Starts a rebalance (from Empty, CompletingRebalance or Stable).
    fn prepare_rebalance(&mut self, now: Now, s: &Settings, fx: &mut Effects) {
        if self.state == GroupState::CompletingRebalance {
            // The leader's assignment for this generation will not come: everyone rejoins.
            for m in &mut self.members {
                m.assignment = Bytes::new();
                m.answer_sync(Err(GroupError::RebalanceInProgress));
            }
        }
        self.pending_sync.clear();
        let initial = self.state == GroupState::Empty;
        let rebalance_timeout = self.max_rebalance_timeout();
        let delay = if initial {
            s.initial_rebalance_delay.min(rebalance_timeout)
        } else {
            rebalance_timeout
        };
        let token = next_token();
        self.join = Some(JoinPhase {
            token,
            initial,
            new_member_added: false,
            rebalance_deadline: now.instant + rebalance_timeout,
        });
        self.set_state(GroupState::PreparingRebalance, now);
        fx.timers.push((now.instant + delay, Timer::Join { token }));
        self.try_complete_join(now, fx);
    }

    fn try_complete_join(&mut self, now: Now, fx: &mut Effects) {
        let Some(join) = &self.join else { return };
        if self.state != GroupState::PreparingRebalance || join.initial {
            return;
        }
        if self.members.iter().all(|m| m.join_waiter.is_some()) && self.pending_members.is_empty() {
            self.complete_join(now, fx);
        }
    }

    /// Ends the join phase: members that did not rejoin are removed, the generation moves
    /// on, and every waiting JoinGroup is answered (the leader with all members).
    fn complete_join(&mut self, now: Now, fx: &mut Effects) {
        self.join = None;
        let gone: Vec<String> = self
            .members
            .iter()
            .filter(|m| m.join_waiter.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            tracing::info!(group = %self.id, member = %id, "member did not rejoin in time; removed");
            self.remove_member(&id);
        }
        if self
            .leader
            .as_ref()
            .is_none_or(|l| self.member(l).is_none())
        {
            self.leader = self.members.first().map(|m| m.id.clone());
        }
        self.generation += 1;
        if self.members.is_empty() {
            self.protocol = None;
            self.leader = None;
            self.set_state(GroupState::Empty, now);
            fx.persist_group = true;
            tracing::info!(group = %self.id, generation = self.generation, "group is empty");
            return;
        }
        self.protocol = self.select_protocol();
        self.set_state(GroupState::CompletingRebalance, now);
        self.sync_token = next_token();
        self.pending_sync = self.members.iter().map(|m| m.id.clone()).collect();
        fx.timers.push((
            now.instant + self.max_rebalance_timeout(),
            Timer::Sync {
                token: self.sync_token,
            },
        ));
        tracing::info!(
            group = %self.id,
            generation = self.generation,
            members = self.members.len(),
            protocol = self.protocol.as_deref().unwrap_or(""),
            "join phase complete"
        );
        let responses: Vec<JoinResponse> = self
            .members
            .iter()
            .map(|m| self.join_response(&m.id))
            .collect();
        for (m, resp) in self.members.iter_mut().zip(responses) {
            m.touch(now.instant);
            m.answer_join(Ok(resp));
        }
    }

    fn remove_member(&mut self, id: &str) {
        let Some(idx) = self.members.iter().position(|m| m.id == id) else {
            return;
        };
        let mut m = self.members.remove(idx);
        m.answer_join(Err(GroupError::UnknownMemberId));
        m.answer_sync(Err(GroupError::UnknownMemberId));
        self.pending_sync.remove(id);
        if self.leader.as_deref() == Some(id) {
            self.leader = self.members.first().map(|m| m.id.clone());
        }
    }

    /// A member leaves (LeaveGroup) or its session expired.
    fn member_left(&mut self, id: &str, now: Now, s: &Settings, fx: &mut Effects) {
        self.remove_member(id);
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now, s, fx)
            }
            GroupState::PreparingRebalance => self.try_complete_join(now, fx),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// SyncGroup.
    pub fn sync(&mut self, args: SyncArgs, now: Now, fx: &mut Effects) -> Pending<SyncOutcome> {
        if self.state == GroupState::Dead {
            return Pending::Now(Err(GroupError::CoordinatorNotAvailable));
        }
        if let Err(e) = self.validate_member(&args.member_id, args.instance_id.as_deref()) {
            return Pending::Now(Err(e));
        }
        if args.generation != self.generation {
            return Pending::Now(Err(GroupError::IllegalGeneration));
        }
        if args
            .protocol_type
            .as_ref()
            .is_some_and(|t| Some(t) != self.protocol_type.as_ref())
            || args
                .protocol_name
                .as_ref()
                .is_some_and(|p| Some(p) != self.protocol.as_ref())
        {
            return Pending::Now(Err(GroupError::InconsistentGroupProtocol));
        }
        if let Some(m) = self.member_mut(&args.member_id) {
            m.touch(now.instant);
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => Pending::Now(Err(GroupError::UnknownMemberId)),
            GroupState::PreparingRebalance => Pending::Now(Err(GroupError::RebalanceInProgress)),
            GroupState::Stable => {
                self.pending_sync.remove(&args.member_id);
                let assignment = self
                    .member(&args.member_id)
                    .map(|m| m.assignment.clone())
                    .unwrap_or_default();
                Pending::Now(Ok(self.sync_response(assignment)))
            }
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                self.pending_sync.remove(&args.member_id);
                if let Some(m) = self.member_mut(&args.member_id) {
                    m.answer_sync(Err(GroupError::RebalanceInProgress));
                    m.sync_waiter = Some(tx);
                }
                if self.leader.as_deref() == Some(args.member_id.as_str()) {
                    let mut assignments: HashMap<String, Bytes> =
                        args.assignments.into_iter().collect();
                    for m in &mut self.members {
                        m.assignment = assignments.remove(&m.id).unwrap_or_default();
                    }
                    self.set_state(GroupState::Stable, now);
                    fx.persist_group = true;
                    let (ptype, pname) = (self.protocol_type.clone(), self.protocol.clone());
                    for m in &mut self.members {
                        if let Some(w) = m.sync_waiter.take() {
                            let resp = SyncResponse {
                                protocol_type: ptype.clone(),
                                protocol_name: pname.clone(),
                                assignment: m.assignment.clone(),
                            };
                            fx.after_persist.push((w, Ok(resp)));
                        }
                    }
                    tracing::info!(group = %self.id, generation = self.generation, "group is stable");
                }
                Pending::Wait(rx)
            }
        }
    }

    fn sync_response(&self, assignment: Bytes) -> SyncResponse {
        SyncResponse {
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            assignment,
        }
    }

    /// The group record could not be written after the leader's SyncGroup: the generation
    /// is abandoned and everyone rejoins (Kafka does the same).
    pub fn persist_failed(&mut self, now: Now, s: &Settings, fx: &mut Effects) {
        if self.state == GroupState::Stable {
            for m in &mut self.members {
                m.assignment = Bytes::new();
            }
            self.prepare_rebalance(now, s, fx);
        }
    }

    /// Heartbeat.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Now,
    ) -> Result<(), GroupError> {
        match self.state {
            GroupState::Dead => return Err(GroupError::CoordinatorNotAvailable),
            GroupState::Empty => return Err(GroupError::UnknownMemberId),
            _ => {}
        }
        self.validate_member(member_id, instance_id)?;
        if generation != self.generation {
            return Err(GroupError::IllegalGeneration);
        }
        if let Some(m) = self.member_mut(member_id) {
            m.touch(now.instant);
        }
        if self.state == GroupState::PreparingRebalance {
            return Err(GroupError::RebalanceInProgress);
        }
        Ok(())
    }

    /// LeaveGroup of one member, by member id or (static members) by instance id.
    pub fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        now: Now,
        s: &Settings,
        fx: &mut Effects,
    ) -> Result<(), GroupError> {
        if self.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        let id = match instance_id {
            Some(instance) => match self.member_by_instance(instance) {
                None => return Err(GroupError::UnknownMemberId),
                // Kafka's UNKNOWN_MEMBER_ID ("") means "whichever member has this instance".
                Some(m) if !member_id.is_empty() && m.id != member_id => {
                    return Err(GroupError::FencedInstanceId);
                }
                Some(m) => m.id.clone(),
            },
            None => {
                if self.pending_members.remove(member_id) {
                    self.try_complete_join(now, fx);
                    return Ok(());
                }
                if self.member(member_id).is_none() {
                    return Err(GroupError::UnknownMemberId);
                }
                member_id.to_string()
            }
        };
        tracing::info!(group = %self.id, member = %id, "member left the group");
        self.member_left(&id, now, s, fx);
        Ok(())
    }

    /// Kafka's `validateOffsetCommit` for a (non-transactional) OffsetCommit. A commit
    /// with generation -1 and no member id is a "simple" commit, allowed while the group
    /// has no members.
    pub fn validate_offset_commit(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Now,
    ) -> Result<(), GroupError> {
        if self.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        if generation < 0 && self.state == GroupState::Empty {
            return Ok(());
        }
        if self.state == GroupState::CompletingRebalance {
            return Err(GroupError::RebalanceInProgress);
        }
        if generation >= 0 || !member_id.is_empty() || instance_id.is_some() {
            self.validate_member(member_id, instance_id)?;
            if generation != self.generation {
                return Err(GroupError::IllegalGeneration);
            }
            if let Some(m) = self.member_mut(member_id) {
                m.touch(now.instant);
            }
            Ok(())
        } else {
            Err(GroupError::UnknownMemberId)
        }
    }

    /// A timer fired.
    pub fn on_timer(&mut self, timer: Timer, now: Now, s: &Settings, fx: &mut Effects) {
        match timer {
            Timer::Session { member_id } => {
                let Some(m) = self.member(&member_id) else {
                    return;
                };
                if m.join_waiter.is_some() || m.sync_waiter.is_some() {
                    // Waiting on us: the rebalance timeout governs, not the session.
                    fx.timers.push((
                        now.instant + m.session_timeout,
                        Timer::Session { member_id },
                    ));
                } else if now.instant < m.session_deadline {
                    fx.timers
                        .push((m.session_deadline, Timer::Session { member_id }));
                } else {
                    tracing::info!(group = %self.id, member = %member_id, "session expired; member removed");
                    self.member_left(&member_id, now, s, fx);
                }
            }
            Timer::PendingMember { member_id } => {
                if self.pending_members.remove(&member_id) {
                    self.try_complete_join(now, fx);
                }
            }
            Timer::Join { token } => {
                let Some(join) = &mut self.join else { return };
                if join.token != token || self.state != GroupState::PreparingRebalance {
                    return;
                }
                if join.initial && join.new_member_added && now.instant < join.rebalance_deadline {
                    // New members keep arriving: wait one more delay, within the timeout.
                    join.new_member_added = false;
                    let at = (now.instant + s.initial_rebalance_delay).min(join.rebalance_deadline);
                    fx.timers.push((at, Timer::Join { token }));
                    return;
                }
                self.complete_join(now, fx);
            }
            Timer::Sync { token } => {
                if token != self.sync_token
                    || !matches!(
                        self.state,
                        GroupState::CompletingRebalance | GroupState::Stable
                    )
                    || self.pending_sync.is_empty()
                {
                    return;
                }
                let late: Vec<String> = self.pending_sync.drain().collect();
                for id in &late {
                    tracing::info!(group = %self.id, member = %id, "no SyncGroup within the rebalance timeout; member removed");
                    self.remove_member(id);
                }
                self.prepare_rebalance(now, s, fx);
            }
            Timer::Consumer(_) => {}
        }
    }

    /// Timers for a group restored from the log: every member's session starts now.
    pub fn restored_timers(&mut self, now: Instant, fx: &mut Effects) {
        for m in &mut self.members {
            m.touch(now);
            fx.timers.push((
                m.session_deadline,
                Timer::Session {
                    member_id: m.id.clone(),
                },
            ));
        }
    }

    /// Topics the members subscribe to, if the group uses the consumer protocol and every
    /// subscription parses.
    pub fn subscribed_topics(&self) -> Option<HashSet<String>> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol.as_deref()?;
        let mut topics = HashSet::new();
        for m in &self.members {
            let meta = m.metadata_for(protocol)?;
            topics.extend(parse_subscription(meta)?);
        }
        Some(topics)
    }
}

/// Topics of a consumer protocol subscription (`ConsumerProtocolSubscription`, prefixed by
/// its int16 version).
fn parse_subscription(meta: &Bytes) -> Option<Vec<String>> {
    use kafka_protocol::messages::ConsumerProtocolSubscription;
    use kafka_protocol::protocol::Decodable;
    if meta.len() < 2 {
        return None;
    }
    let version = i16::from_be_bytes([meta[0], meta[1]]);
    let mut body = meta.slice(2..);
    let version = version.clamp(0, 3);
    let sub = ConsumerProtocolSubscription::decode(&mut body, version).ok()?;
    Some(sub.topics.iter().map(|t| t.to_string()).collect())
}

#[cfg(test)]
mod tests;

//! Group fuzzing: the classic group state machine driven by an arbitrary sequence of
//! JoinGroup, SyncGroup, Heartbeat, LeaveGroup and OffsetCommit requests, timers firing
//! and group-record writes succeeding or failing, with invariants checked after each step.
//!
//! The input bytes are a program of fixed-size steps: each step's bytes are an opcode and
//! its arguments, so every input is a valid sequence, and a mutation changes one argument
//! of one step instead of shifting every step after it.
//!
//! Time is virtual: timers the group asks for are kept here and fired in order when a step
//! advances the clock, as the coordinator's tokio timers would.

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::{Duration, Instant};

use crate::group::GroupError;
use crate::group::classic::{
    Effects, Group, GroupState, JoinArgs, Now, Pending, Settings, SyncArgs, Timer,
};
use crate::group::member::{JoinOutcome, SyncOutcome};

/// Steps per input at most, so one input cannot run for long.
const MAX_STEPS: usize = 96;
/// Bytes per step (arguments a step does not use are ignored; missing ones read as 0).
pub const STEP_BYTES: usize = 8;

const PROTOCOLS: [(&str, &[u8]); 3] = [("range", b"r"), ("roundrobin", b"rr"), ("sticky", b"s")];
const INSTANCES: [&str; 3] = ["i0", "i1", "i2"];

/// Reads the arguments of a step off the input; past the end every read is 0.
struct Reader<'a> {
    data: &'a [u8],
}

impl Reader<'_> {
    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    fn pick<'t, T>(&mut self, items: &'t [T]) -> &'t T {
        &items[self.byte() as usize % items.len()]
    }
}

/// A SyncGroup answer waiting for the group record to be durable.
type SyncAnswer = (oneshot::Sender<SyncOutcome>, SyncOutcome);

struct Harness {
    group: Group,
    settings: Settings,
    now: Now,
    /// Timers armed and not yet fired: (when, order armed, timer).
    timers: Vec<(Instant, u64, Timer)>,
    armed: u64,
    /// Every member id the group handed out, and a few it never did.
    member_ids: Vec<String>,
    joins: Vec<oneshot::Receiver<JoinOutcome>>,
    syncs: Vec<oneshot::Receiver<SyncOutcome>>,
    /// Group-record writes in flight: the generation written and the answers waiting.
    persisting: Vec<(i32, Vec<SyncAnswer>)>,
    generation: i32,
    /// The generation whose leader assigned something to every member.
    fully_assigned: Option<i32>,
    /// Steps after which the group was Stable (how far a program got).
    stable_steps: usize,
}

impl Harness {
    fn new() -> Harness {
        let now = Now {
            instant: Instant::now(),
            ms: 1_700_000_000_000,
        };
        Harness {
            group: Group::new("g", now.ms),
            settings: Settings {
                initial_rebalance_delay: Duration::from_millis(3000),
                // The coordinator refuses session timeouts outside these (Kafka's defaults)
                // before the state machine sees them.
                min_session_timeout_ms: 6_000,
                max_session_timeout_ms: 1_800_000,
            },
            now,
            timers: Vec::new(),
            armed: 0,
            member_ids: vec!["unknown".into(), String::new()],
            joins: Vec::new(),
            syncs: Vec::new(),
            persisting: Vec::new(),
            generation: 0,
            fully_assigned: None,
            stable_steps: 0,
        }
    }

    /// Mostly an id the group handed out, sometimes one it never did.
    fn member_id(&self, r: &mut Reader<'_>) -> String {
        let b = r.byte() as usize;
        match self.member_ids.len() {
            n if n > 2 && !b.is_multiple_of(8) => self.member_ids[2 + b / 8 % (n - 2)].clone(),
            n => self.member_ids[b % n].clone(),
        }
    }

    fn instance(r: &mut Reader<'_>) -> Option<String> {
        let b = r.byte();
        (b % 4 == 1).then(|| INSTANCES[(b as usize / 4) % INSTANCES.len()].to_string())
    }

    fn generation_arg(&self, r: &mut Reader<'_>) -> i32 {
        match r.byte() % 8 {
            0 => self.group.generation - 1,
            1 => self.group.generation + 1,
            2 => -1,
            _ => self.group.generation,
        }
    }

    fn join_args(&self, r: &mut Reader<'_>, member_id: String) -> JoinArgs {
        let bits = r.byte();
        let mut protocols: Vec<(String, Bytes)> = PROTOCOLS
            .iter()
            .enumerate()
            .filter(|(i, _)| bits & (1 << i) != 0)
            .map(|(_, (n, m))| (n.to_string(), Bytes::from_static(m)))
            .collect();
        if bits & 8 != 0 {
            protocols.reverse();
        }
        JoinArgs {
            member_id,
            instance_id: Harness::instance(r),
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: *r.pick(&[10_000, 6_000, 30_000, 45_000]),
            rebalance_timeout_ms: *r.pick(&[10_000, 0, 60_000, 5]),
            protocol_type: r
                .pick(&["consumer", "consumer", "consumer", "connect", ""])
                .to_string(),
            protocols,
            require_known_member_id: bits & 16 != 0,
        }
    }

    fn step(&mut self, r: &mut Reader<'_>) {
        let mut fx = Effects::default();
        let now = self.now;
        match r.byte() % 12 {
            0 | 1 => {
                let member_id = if r.byte().is_multiple_of(3) {
                    self.member_id(r)
                } else {
                    String::new()
                };
                let args = self.join_args(r, member_id);
                let out = self.group.join(args, now, &self.settings, &mut fx);
                match out {
                    Pending::Now(outcome) => self.joined(outcome),
                    Pending::Wait(rx) => self.joins.push(rx),
                }
            }
            2..=4 => {
                // Mostly the leader: only its SyncGroup moves the group on.
                let member_id = match (r.byte() % 4, &self.group.leader) {
                    (0, _) | (_, None) => self.member_id(r),
                    (_, Some(leader)) => leader.clone(),
                };
                let bits = r.byte();
                let mut assignments: Vec<(String, Bytes)> = self
                    .group
                    .members
                    .iter()
                    .filter(|m| bits & 1 == 0 || m.id.len() % 2 == 0)
                    .map(|m| (m.id.clone(), Bytes::from(format!("a-{}", m.id))))
                    .collect();
                let complete = assignments.len() == self.group.members.len();
                if bits & 2 != 0 {
                    assignments.push(("unknown".into(), Bytes::from_static(b"x")));
                }
                let args = SyncArgs {
                    generation: self.generation_arg(r),
                    member_id,
                    instance_id: Harness::instance(r),
                    protocol_type: match bits & 12 {
                        0 => None,
                        4 => Some("connect".into()),
                        _ => self.group.protocol_type.clone(),
                    },
                    protocol_name: match bits & 48 {
                        0 => None,
                        16 => Some("sticky".into()),
                        _ => self.group.protocol.clone(),
                    },
                    assignments,
                };
                let was_completing = self.group.state == GroupState::CompletingRebalance;
                match self.group.sync(args, now, &mut fx) {
                    Pending::Now(outcome) => self.synced(outcome, true),
                    Pending::Wait(rx) => self.syncs.push(rx),
                }
                if was_completing && self.group.state == GroupState::Stable {
                    self.fully_assigned = complete.then_some(self.group.generation);
                }
            }
            5 => {
                let member_id = self.member_id(r);
                let instance = Harness::instance(r);
                let generation = self.generation_arg(r);
                let _ = self
                    .group
                    .heartbeat(&member_id, instance.as_deref(), generation, now);
            }
            6 => {
                let member_id = self.member_id(r);
                let instance = Harness::instance(r);
                let _ = self.group.leave(
                    &member_id,
                    instance.as_deref(),
                    now,
                    &self.settings,
                    &mut fx,
                );
            }
            7 => {
                let member_id = self.member_id(r);
                let instance = Harness::instance(r);
                let generation = self.generation_arg(r);
                let _ = self.group.validate_offset_commit(
                    &member_id,
                    instance.as_deref(),
                    generation,
                    now,
                );
            }
            8 | 9 => {
                let ms = *r.pick(&[1u64, 100, 1_000, 3_000, 10_000, 30_000, 300_000]);
                self.advance(Duration::from_millis(ms));
                return;
            }
            10 => {
                // The oldest group-record write becomes durable: its answers go out.
                if !self.persisting.is_empty() {
                    let (_, waiting) = self.persisting.remove(0);
                    for (tx, out) in waiting {
                        let _ = tx.send(out);
                    }
                }
            }
            _ => {
                // The oldest write fails: its answers are errors, and if the group is still
                // at that generation it rebalances (as the coordinator does).
                if !self.persisting.is_empty() {
                    let (generation, waiting) = self.persisting.remove(0);
                    for (tx, _) in waiting {
                        let _ = tx.send(Err(GroupError::CoordinatorNotAvailable));
                    }
                    if self.group.generation == generation {
                        self.group.persist_failed(now, &self.settings, &mut fx);
                    }
                }
            }
        }
        self.apply(fx);
    }

    /// Fires, in order, every timer due by `now + by`.
    fn advance(&mut self, by: Duration) {
        let until = self.now.instant + by;
        for fired in 0.. {
            assert!(
                fired < 100_000,
                "timers keep re-arming: 100000 fired within {by:?}"
            );
            let next = self
                .timers
                .iter()
                .enumerate()
                .filter(|(_, (at, _, _))| *at <= until)
                .min_by_key(|(_, (at, order, _))| (*at, *order))
                .map(|(i, _)| i);
            let Some(i) = next else { break };
            let (at, _, timer) = self.timers.remove(i);
            self.set_time(at);
            let mut fx = Effects::default();
            self.group
                .on_timer(timer, self.now, &self.settings, &mut fx);
            self.apply(fx);
        }
        self.set_time(until);
        self.check();
    }

    fn set_time(&mut self, at: Instant) {
        if at > self.now.instant {
            let ms = (at - self.now.instant).as_millis() as i64;
            self.now = Now {
                instant: at,
                ms: self.now.ms + ms,
            };
        }
    }

    /// Carries out the effects of a step, and checks them and the group.
    fn apply(&mut self, mut fx: Effects) {
        assert!(
            fx.after_persist.is_empty() || fx.persist_group,
            "answers wait for a group record that is not written"
        );
        for (at, timer) in fx.timers.drain(..) {
            assert!(at >= self.now.instant, "timer {timer:?} armed in the past");
            self.armed += 1;
            self.timers.push((at, self.armed, timer));
        }
        if fx.persist_group {
            self.persisting
                .push((self.group.generation, std::mem::take(&mut fx.after_persist)));
        }
        self.collect_answers();
        self.check();
    }

    fn collect_answers(&mut self) {
        let mut joins = std::mem::take(&mut self.joins);
        joins.retain_mut(|rx| match rx.try_recv() {
            Ok(outcome) => {
                self.joined(outcome);
                false
            }
            Err(oneshot::error::TryRecvError::Empty) => true,
            Err(oneshot::error::TryRecvError::Closed) => false,
        });
        self.joins = joins;
        let mut syncs = std::mem::take(&mut self.syncs);
        syncs.retain_mut(|rx| match rx.try_recv() {
            Ok(outcome) => {
                self.synced(outcome, false);
                false
            }
            Err(oneshot::error::TryRecvError::Empty) => true,
            Err(oneshot::error::TryRecvError::Closed) => false,
        });
        self.syncs = syncs;
    }

    fn joined(&mut self, outcome: JoinOutcome) {
        match outcome {
            Ok(resp) => {
                assert!(
                    resp.generation <= self.group.generation,
                    "join answered with generation {} ahead of the group's {}",
                    resp.generation,
                    self.group.generation
                );
                assert!(
                    !resp.member_id.is_empty(),
                    "join answered without member id"
                );
                if resp.leader == resp.member_id {
                    assert!(
                        resp.members.iter().any(|m| m.member_id == resp.member_id),
                        "the leader's join answer does not list the leader"
                    );
                } else {
                    assert!(resp.members.is_empty(), "a follower was sent the members");
                }
                self.remember(resp.member_id);
            }
            Err(GroupError::MemberIdRequired(id)) => self.remember(id),
            Err(_) => {}
        }
    }

    /// A SyncGroup answer; one given at once is for the group as it is now (one released
    /// later may be for an earlier generation).
    fn synced(&mut self, outcome: SyncOutcome, immediate: bool) {
        if let Ok(resp) = outcome
            && immediate
            && self.group.state == GroupState::Stable
        {
            assert_eq!(
                resp.protocol_name, self.group.protocol,
                "sync answered with another protocol than the group's"
            );
        }
    }

    fn remember(&mut self, id: String) {
        if !self.member_ids.contains(&id) {
            self.member_ids.push(id);
        }
    }

    /// The invariants that hold after every step.
    fn check(&mut self) {
        let g = &self.group;
        assert!(
            g.generation >= self.generation,
            "generation went back from {} to {}",
            self.generation,
            g.generation
        );
        self.generation = g.generation;
        let mut ids: Vec<&str> = g.members.iter().map(|m| m.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), g.members.len(), "two members share an id");
        let mut instances: Vec<&str> = g
            .members
            .iter()
            .filter_map(|m| m.instance_id.as_deref())
            .collect();
        let with_instance = instances.len();
        instances.sort_unstable();
        instances.dedup();
        assert_eq!(
            instances.len(),
            with_instance,
            "two members share an instance id"
        );
        assert!(
            g.pending_members.iter().all(|p| g.member(p).is_none()),
            "a pending member id is also a member"
        );
        match &g.leader {
            Some(l) => assert!(g.member(l).is_some(), "leader {l} is not a member"),
            None => assert!(g.members.is_empty(), "members but no leader"),
        }
        match g.state {
            GroupState::Empty => assert!(g.members.is_empty(), "an Empty group has members"),
            GroupState::CompletingRebalance | GroupState::Stable => {
                assert!(!g.members.is_empty(), "{:?} group without members", g.state);
                assert!(
                    g.members.iter().all(|m| m.join_waiter.is_none()),
                    "a join waits in a {:?} group",
                    g.state
                );
            }
            GroupState::PreparingRebalance | GroupState::Dead => {}
        }
        if g.state == GroupState::Stable {
            self.stable_steps += 1;
            assert!(
                g.members.iter().all(|m| m.sync_waiter.is_none()),
                "a sync waits in a Stable group"
            );
            if self.fully_assigned == Some(g.generation) {
                assert!(
                    g.members.iter().all(|m| !m.assignment.is_empty()),
                    "a member of a Stable group has no assignment"
                );
            }
        }
    }
}

/// Body of the `group_sequence` target: runs the program in `data` against one classic
/// group and panics if an invariant breaks.
pub fn group_sequence(data: &[u8]) {
    run_program(data);
}

/// Runs a program; returns how many checks found the group Stable and its last generation.
pub(crate) fn run_program(data: &[u8]) -> (usize, i32) {
    let mut h = Harness::new();
    for step in data.chunks(STEP_BYTES).take(MAX_STEPS) {
        h.step(&mut Reader { data: step });
    }
    // Let every timer run out: the group must settle without breaking an invariant.
    h.advance(Duration::from_secs(3600));
    (h.stable_steps, h.group.generation)
}

/// A program of the given steps, each padded to [`STEP_BYTES`].
fn program(steps: &[&[u8]]) -> Vec<u8> {
    steps
        .iter()
        .flat_map(|step| {
            let mut padded = step.to_vec();
            padded.resize(STEP_BYTES, 0);
            padded
        })
        .collect()
}

/// Programs that walk the usual paths (a member joins, syncs, heartbeats, commits and
/// leaves; two members rebalance; a static member is replaced), to mutate from.
pub fn group_corpus() -> Vec<Vec<u8>> {
    vec![
        // New member (MEMBER_ID_REQUIRED), joins with its id, initial delay, leader sync,
        // write durable, heartbeat, commit, leave.
        program(&[
            &[0, 1, 0x11],
            &[0, 0, 1, 0x01],
            &[8, 3],
            &[2, 1, 0x3c, 3],
            &[10],
            &[5, 1, 0, 3],
            &[7, 1, 0, 3],
            &[6, 1],
        ]),
        // Two dynamic members without MEMBER_ID_REQUIRED (the second extends the initial
        // delay up to the rebalance timeout), a sync of each, sessions expiring.
        program(&[
            &[0, 1, 0x03],
            &[0, 1, 0x01],
            &[8, 4],
            &[2, 1, 0x3c, 3],
            &[2, 0, 9, 0x3c, 3],
            &[10],
            &[8, 5],
            &[5, 1, 0, 3],
            &[8, 6],
        ]),
        // Static members joining and rejoining, a failed write, a session expiry.
        program(&[
            &[0, 1, 0x01, 1],
            &[0, 1, 0x01, 5],
            &[8, 4],
            &[2, 1, 0x3c, 3],
            &[11],
            &[0, 1, 0x01, 1],
            &[8, 6],
            &[8, 6],
        ]),
    ]
}

//! The consumer group state machine driven heartbeat by heartbeat, as a client would.

use super::*;

const T: Uuid = Uuid::from_u128(42);

fn lookup(name: &str) -> Option<(Uuid, i32)> {
    (name == "t").then_some((T, 6))
}

fn settings() -> ConsumerSettings {
    ConsumerSettings::default()
}

fn parts(ps: &[i32]) -> Assignment {
    if ps.is_empty() {
        return Assignment::new();
    }
    Assignment::from([(T, ps.iter().copied().collect())])
}

fn join(id: &str) -> HeartbeatArgs {
    HeartbeatArgs {
        member_id: id.into(),
        member_epoch: 0,
        rebalance_timeout_ms: 300_000,
        subscribed_topic_names: Some(vec!["t".into()]),
        owned: Some(Assignment::new()),
        ..HeartbeatArgs::default()
    }
}

fn beat(id: &str, epoch: i32, owned: &Assignment) -> HeartbeatArgs {
    HeartbeatArgs {
        member_id: id.into(),
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        owned: Some(owned.clone()),
        ..HeartbeatArgs::default()
    }
}

struct Harness {
    group: ConsumerGroup,
    now: Instant,
}

impl Harness {
    fn new() -> Harness {
        Harness {
            group: ConsumerGroup::default(),
            now: Instant::now(),
        }
    }

    fn hb(&mut self, args: HeartbeatArgs) -> Result<HeartbeatReply, GroupError> {
        let mut fx = Effects::default();
        self.group
            .heartbeat(args, &lookup, self.now, &settings(), &mut fx)
    }

    /// A member that acknowledges whatever it is given, until nothing changes.
    fn settle(&mut self, id: &str) -> (i32, Assignment) {
        let mut epoch = self.group.members[id].current.member_epoch;
        let mut owned = self.group.members[id].current.assigned.clone();
        for _ in 0..4 {
            let r = self.hb(beat(id, epoch, &owned)).unwrap();
            epoch = r.member_epoch;
            owned = r.assignment.unwrap_or(owned);
        }
        (epoch, owned)
    }
}

#[test]
fn members_join_and_partitions_move_by_revoking_first() {
    let mut h = Harness::new();
    let a = h.hb(join("a")).unwrap();
    assert_eq!(a.member_epoch, 1);
    assert_eq!(a.assignment, Some(parts(&[0, 1, 2, 3, 4, 5])));
    assert_eq!(h.group.state(), ConsumerState::Stable);

    // b joins: epoch 2. a still owns everything, so b gets nothing yet.
    let b = h.hb(join("b")).unwrap();
    assert_eq!(h.group.group_epoch, 2);
    assert_eq!(b.member_epoch, 2);
    assert_eq!(b.assignment, Some(Assignment::new()));
    assert_eq!(h.group.state(), ConsumerState::Reconciling);

    // a is asked to revoke half, keeping its epoch.
    let r = h.hb(beat("a", 1, &parts(&[0, 1, 2, 3, 4, 5]))).unwrap();
    assert_eq!(r.member_epoch, 1);
    let kept = r.assignment.unwrap();
    assert_eq!(kept[&T].len(), 3);
    // b still waits: a has not confirmed.
    let r = h.hb(beat("b", 2, &Assignment::new())).unwrap();
    assert_eq!(r.assignment, Some(Assignment::new()));
    // a confirms: epoch 2.
    let r = h.hb(beat("a", 1, &kept)).unwrap();
    assert_eq!(r.member_epoch, 2);
    // b gets the other half.
    let r = h.hb(beat("b", 2, &Assignment::new())).unwrap();
    let got = r.assignment.unwrap();
    assert_eq!(got[&T].len(), 3);
    assert!(got[&T].is_disjoint(&kept[&T]));
    assert_eq!(h.group.state(), ConsumerState::Stable);
}

#[test]
fn three_members_get_two_partitions_each_and_a_leave_rebalances() {
    let mut h = Harness::new();
    for m in ["a", "b", "c"] {
        h.hb(join(m)).unwrap();
    }
    let mut owned = BTreeMap::new();
    for _ in 0..3 {
        for m in ["a", "b", "c"] {
            owned.insert(m, h.settle(m));
        }
    }
    for m in ["a", "b", "c"] {
        assert_eq!(owned[m].1[&T].len(), 2, "{m}");
        assert_eq!(owned[m].0, h.group.group_epoch);
    }
    let r = h.hb(HeartbeatArgs {
        member_epoch: LEAVE_EPOCH,
        ..beat("c", owned["c"].0, &owned["c"].1)
    });
    assert_eq!(r.unwrap().member_epoch, LEAVE_EPOCH);
    assert_eq!(h.group.group_epoch, 4);
    for m in ["a", "b"] {
        let (_, got) = h.settle(m);
        assert_eq!(got[&T].len(), 3, "{m}");
        // Sticky: what it had, it kept.
        assert!(owned[m].1[&T].is_subset(&got[&T]));
    }
}

#[test]
fn epochs_are_checked_as_kafka_does() {
    let mut h = Harness::new();
    h.hb(join("a")).unwrap();
    let all = parts(&[0, 1, 2, 3, 4, 5]);
    assert_eq!(h.hb(beat("a", 5, &all)), Err(GroupError::FencedMemberEpoch));
    assert_eq!(h.hb(beat("x", 1, &all)), Err(GroupError::UnknownMemberId));
    h.hb(join("b")).unwrap();
    let (epoch, owned) = h.settle("a");
    assert_eq!(epoch, 2);
    // The response with epoch 2 was lost: epoch 1 with a subset of the assignment is fine.
    assert!(h.hb(beat("a", 1, &owned)).is_ok());
    // But not while claiming partitions it does not have.
    assert_eq!(h.hb(beat("a", 1, &all)), Err(GroupError::FencedMemberEpoch));
    assert_eq!(
        h.hb(HeartbeatArgs {
            member_epoch: LEAVE_EPOCH,
            ..beat("nobody", 1, &all)
        }),
        Err(GroupError::UnknownMemberId)
    );
}

#[test]
fn a_fenced_member_rejoins_with_epoch_zero_and_its_id() {
    let mut h = Harness::new();
    h.hb(join("a")).unwrap();
    let r = h.hb(join("a")).unwrap();
    assert_eq!(r.member_epoch, h.group.group_epoch);
    assert_eq!(r.assignment, Some(parts(&[0, 1, 2, 3, 4, 5])));
}

#[test]
fn static_member_comes_back_with_its_partitions_without_a_rebalance() {
    let mut h = Harness::new();
    let with_instance = |id: &str| HeartbeatArgs {
        instance_id: Some("i1".into()),
        ..join(id)
    };
    h.hb(with_instance("a")).unwrap();
    h.hb(join("b")).unwrap();
    let (_, a_owned) = h.settle("a");
    h.settle("b");
    let epoch = h.group.group_epoch;
    // Still active: another member with the instance id is refused.
    assert_eq!(
        h.hb(with_instance("a2")),
        Err(GroupError::UnreleasedInstanceId)
    );
    let leave = HeartbeatArgs {
        member_epoch: STATIC_LEAVE_EPOCH,
        instance_id: Some("i1".into()),
        ..beat("a", epoch, &a_owned)
    };
    assert_eq!(h.hb(leave).unwrap().member_epoch, STATIC_LEAVE_EPOCH);
    assert_eq!(h.group.group_epoch, epoch);
    let r = h.hb(with_instance("a2")).unwrap();
    assert_eq!(r.assignment, Some(a_owned));
    assert_eq!(r.member_epoch, epoch);
    assert_eq!(h.group.group_epoch, epoch);
    assert!(!h.group.members.contains_key("a"));
}

#[test]
fn session_and_revocation_timeouts_remove_members() {
    let mut h = Harness::new();
    h.hb(join("a")).unwrap();
    h.hb(join("b")).unwrap();
    let mut fx = Effects::default();
    let timer = ConsumerTimer::Session {
        member_id: "b".into(),
    };
    assert!(!h.group.on_timer(&timer, h.now, &mut fx));
    let later = h.now + Duration::from_millis(45_000);
    assert!(h.group.on_timer(&timer, later, &mut fx));
    assert!(fx.persist_epoch);
    assert!(!h.group.members.contains_key("b"));

    // a must revoke for a newcomer but never confirms: fenced at its rebalance timeout.
    h.settle("a");
    h.hb(join("c")).unwrap();
    h.hb(beat("a", 3, &parts(&[0, 1, 2, 3, 4, 5]))).unwrap();
    let deadline = h.group.members["a"].revocation_deadline.unwrap();
    let timer = ConsumerTimer::Revocation {
        member_id: "a".into(),
    };
    assert!(h.group.on_timer(&timer, deadline, &mut Effects::default()));
    assert!(!h.group.members.contains_key("a"));
}

#[test]
fn requests_are_validated() {
    let bad = |args: &HeartbeatArgs, regex: Option<&str>, v: i16| {
        validate("g", args, regex, v).map_err(|e| e.code().code())
    };
    assert_eq!(
        validate("", &join("a"), None, 1).map_err(|e| e.code().code()),
        Err(42)
    );
    assert_eq!(bad(&join(""), None, 1), Err(42));
    assert_eq!(bad(&join(""), None, 0), Ok(()));
    assert_eq!(bad(&join("a"), Some("^t.*"), 1), Err(42));
    assert_eq!(bad(&join("a"), Some(""), 1), Ok(()));
    let no_subscription = HeartbeatArgs {
        subscribed_topic_names: None,
        ..join("a")
    };
    assert_eq!(bad(&no_subscription, None, 1), Err(42));
    let owned_on_join = HeartbeatArgs {
        owned: Some(parts(&[1])),
        ..join("a")
    };
    assert_eq!(bad(&owned_on_join, None, 1), Err(42));
    let assignor = HeartbeatArgs {
        server_assignor: Some("sticky".into()),
        ..join("a")
    };
    assert_eq!(bad(&assignor, None, 1), Err(112));
    let static_leave = beat("a", STATIC_LEAVE_EPOCH, &Assignment::new());
    assert_eq!(bad(&static_leave, None, 1), Err(42));
    assert_eq!(bad(&beat("a", -3, &Assignment::new()), None, 1), Err(42));
}

#[test]
fn group_max_size_is_enforced() {
    let mut h = Harness::new();
    let s = ConsumerSettings {
        max_size: 1,
        ..settings()
    };
    let mut fx = Effects::default();
    h.group
        .heartbeat(join("a"), &lookup, h.now, &s, &mut fx)
        .unwrap();
    assert_eq!(
        h.group.heartbeat(join("b"), &lookup, h.now, &s, &mut fx),
        Err(GroupError::GroupMaxSizeReached)
    );
}

#[test]
fn range_assignor_when_members_ask_for_it() {
    let mut h = Harness::new();
    for m in ["a", "b"] {
        h.hb(HeartbeatArgs {
            server_assignor: Some("range".into()),
            ..join(m)
        })
        .unwrap();
    }
    assert_eq!(h.group.assignor, Some(Assignor::Range));
    h.settle("a");
    let (_, b) = h.settle("b");
    let (_, a) = h.settle("a");
    assert_eq!(a, parts(&[0, 1, 2]));
    assert_eq!(b, parts(&[3, 4, 5]));
}

#[test]
fn offset_requests_check_the_member_epoch() {
    let mut h = Harness::new();
    let epoch = h.hb(join("a")).unwrap().member_epoch;
    let g = &h.group;
    assert_eq!(g.validate_offset_commit("a", epoch, 9), Ok(()));
    assert_eq!(
        g.validate_offset_commit("a", epoch - 1, 9),
        Err(GroupError::StaleMemberEpoch)
    );
    assert_eq!(
        g.validate_offset_commit("zz", epoch, 9),
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(
        g.validate_offset_commit("", -1, 9),
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(g.validate_offset_fetch(None, -1), Ok(()));
    assert_eq!(
        g.validate_offset_fetch(Some("a"), epoch + 1),
        Err(GroupError::StaleMemberEpoch)
    );
    assert_eq!(
        ConsumerGroup::default().validate_offset_commit("", -1, 9),
        Ok(())
    );
}

//! Coordinator scenarios over an in-memory `__consumer_offsets`, in paused tokio time:
//! waiting for a rebalance or a session to expire advances the clock instead of sleeping.

use std::sync::atomic::Ordering;

use super::*;
use crate::group::member::JoinResponse;
use crate::internal_topic::memory::MemoryLog;

const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 30_000;

fn config() -> CoordinatorConfig {
    CoordinatorConfig {
        settings: Settings {
            initial_rebalance_delay: Duration::from_millis(3000),
            min_session_timeout_ms: 1,
            max_session_timeout_ms: 600_000,
        },
        offsets_topic_partitions: 4,
        offsets_topic_segment_bytes: 100 * 1024 * 1024,
        offsets_retention_ms: 7 * 24 * 3600 * 1000,
        retention_check_interval: Duration::from_secs(600),
        offset_metadata_max_bytes: 16,
        consumer: crate::group::consumer::ConsumerSettings::default(),
    }
}

fn setup() -> (GroupCoordinator, Arc<MemoryLog>) {
    let log = Arc::new(MemoryLog::new(4));
    (GroupCoordinator::new(config(), Some(log.clone())), log)
}

fn args(member_id: &str) -> JoinArgs {
    JoinArgs {
        member_id: member_id.to_string(),
        instance_id: None,
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::from_static(b"sub"))],
        require_known_member_id: true,
    }
}

fn static_args(instance: &str) -> JoinArgs {
    JoinArgs {
        instance_id: Some(instance.to_string()),
        ..args("")
    }
}

async fn resolve<T>(p: Pending<T>) -> T {
    match p {
        Pending::Now(t) => t,
        Pending::Wait(rx) => rx.await.unwrap(),
    }
}

fn sync_args(resp: &JoinResponse, assignments: Vec<(String, Bytes)>) -> SyncArgs {
    SyncArgs {
        generation: resp.generation,
        member_id: resp.member_id.clone(),
        instance_id: None,
        protocol_type: Some("consumer".into()),
        protocol_name: Some("range".into()),
        assignments,
    }
}

/// A new dynamic member: MEMBER_ID_REQUIRED, then the join with the given id.
async fn new_member_id(c: &GroupCoordinator, group: &str) -> String {
    match c.join(group, args("")) {
        Pending::Now(Err(GroupError::MemberIdRequired(id))) => id,
        other => panic!("expected MEMBER_ID_REQUIRED, got {other:?}"),
    }
}

fn state(c: &GroupCoordinator, group: &str) -> GroupState {
    c.with_group(group, |g| g.map(|g| g.state).unwrap_or(GroupState::Dead))
}

/// One member joins and syncs alone; returns its join response.
async fn lone_stable_member(c: &GroupCoordinator, group: &str) -> JoinResponse {
    let id = new_member_id(c, group).await;
    let joined = resolve(c.join(group, args(&id))).await.unwrap();
    let assignment = vec![(id.clone(), Bytes::from_static(b"all"))];
    let synced = resolve(c.sync(group, sync_args(&joined, assignment)))
        .await
        .unwrap();
    assert_eq!(&synced.assignment[..], b"all");
    joined
}

#[tokio::test(start_paused = true)]
async fn first_member_waits_initial_delay_then_leads_and_syncs() {
    let (c, log) = setup();
    let id = new_member_id(&c, "g").await;
    assert!(id.starts_with("client-"), "{id}");
    let started = Instant::now();
    let joined = resolve(c.join("g", args(&id))).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(3000),
        "initial delay"
    );
    assert_eq!(joined.generation, 1);
    assert_eq!(joined.leader, id);
    assert_eq!(joined.protocol_name.as_deref(), Some("range"));
    assert_eq!(joined.members.len(), 1);
    assert_eq!(&joined.members[0].metadata[..], b"sub");
    assert_eq!(state(&c, "g"), GroupState::CompletingRebalance);

    let synced = resolve(c.sync(
        "g",
        sync_args(&joined, vec![(id.clone(), Bytes::from_static(b"a"))]),
    ))
    .await;
    assert_eq!(&synced.unwrap().assignment[..], b"a");
    assert_eq!(state(&c, "g"), GroupState::Stable);
    assert!(
        log.syncs.load(Ordering::SeqCst) >= 1,
        "group record synced before the answer"
    );
    assert_eq!(c.heartbeat("g", &id, None, 1), Ok(()));
    assert_eq!(
        c.heartbeat("g", &id, None, 0),
        Err(GroupError::IllegalGeneration)
    );
    assert_eq!(
        c.heartbeat("g", "nobody", None, 1),
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(
        c.heartbeat("other", &id, None, 1),
        Err(GroupError::UnknownMemberId)
    );
}

#[tokio::test(start_paused = true)]
async fn join_errors() {
    let (c, _) = setup();
    assert!(matches!(
        c.join("", args("")),
        Pending::Now(Err(GroupError::InvalidGroupId))
    ));
    let mut bad = args("");
    bad.session_timeout_ms = 700_000;
    assert!(matches!(
        c.join("g", bad),
        Pending::Now(Err(GroupError::InvalidSessionTimeout))
    ));
    assert!(matches!(
        c.join("g", args("ghost")),
        Pending::Now(Err(GroupError::UnknownMemberId))
    ));
    let mut no_protocols = args("");
    no_protocols.protocols.clear();
    assert!(matches!(
        c.join("g", no_protocols),
        Pending::Now(Err(GroupError::InconsistentGroupProtocol))
    ));

    lone_stable_member(&c, "g").await;
    let mut other_type = args("");
    other_type.protocol_type = "connect".into();
    assert!(matches!(
        c.join("g", other_type),
        Pending::Now(Err(GroupError::InconsistentGroupProtocol))
    ));
    let mut other_protocol = args("");
    other_protocol.protocols = vec![("roundrobin".into(), Bytes::new())];
    assert!(matches!(
        c.join("g", other_protocol),
        Pending::Now(Err(GroupError::InconsistentGroupProtocol))
    ));
    // Before v4 a new member joins without the MEMBER_ID_REQUIRED round trip.
    let mut old = args("");
    old.require_known_member_id = false;
    assert!(matches!(c.join("g", old), Pending::Wait(_)));
    assert_eq!(state(&c, "g"), GroupState::PreparingRebalance);
}

#[tokio::test(start_paused = true)]
async fn second_member_triggers_rebalance_and_both_get_the_new_generation() {
    let (c, _) = setup();
    let a = lone_stable_member(&c, "g").await;
    let b_id = new_member_id(&c, "g").await;
    let b_join = c.join("g", args(&b_id));
    assert_eq!(state(&c, "g"), GroupState::PreparingRebalance);
    assert_eq!(
        c.heartbeat("g", &a.member_id, None, 1),
        Err(GroupError::RebalanceInProgress)
    );
    // An old-generation commit is still accepted during the rebalance (revocation commits).
    let commit = c.commit_offsets(commit_args("g", 1, &a.member_id, 9, 8));
    assert!(resolve(commit).await[0].1[0].1.is_ok());

    let a_join = c.join("g", args(&a.member_id));
    let (a2, b2) = (
        resolve(a_join).await.unwrap(),
        resolve(b_join).await.unwrap(),
    );
    assert_eq!((a2.generation, b2.generation), (2, 2));
    assert_eq!(a2.leader, a.member_id, "the leader stays the leader");
    assert_eq!(a2.members.len(), 2);
    assert!(b2.members.is_empty(), "followers get no member list");

    // The follower's SyncGroup waits for the leader's.
    let b_sync = c.sync("g", sync_args(&b2, vec![]));
    assert!(matches!(b_sync, Pending::Wait(_)));
    let assignments = vec![
        (a2.member_id.clone(), Bytes::from_static(b"p0")),
        (b2.member_id.clone(), Bytes::from_static(b"p1")),
    ];
    let a_sync = c.sync("g", sync_args(&a2, assignments));
    assert_eq!(&resolve(a_sync).await.unwrap().assignment[..], b"p0");
    assert_eq!(&resolve(b_sync).await.unwrap().assignment[..], b"p1");
    assert_eq!(state(&c, "g"), GroupState::Stable);
    // A late or repeated SyncGroup in Stable gets the assignment again.
    let again = resolve(c.sync("g", sync_args(&b2, vec![]))).await.unwrap();
    assert_eq!(&again.assignment[..], b"p1");
    // A stale generation is refused.
    let stale = resolve(c.sync("g", sync_args(&a, vec![]))).await;
    assert_eq!(stale, Err(GroupError::IllegalGeneration));
}

#[tokio::test(start_paused = true)]
async fn session_expiry_removes_the_silent_member() {
    let (c, _) = setup();
    let a = lone_stable_member(&c, "g").await;
    let b_id = new_member_id(&c, "g").await;
    let b_join = c.join("g", args(&b_id));
    let a_join = c.join("g", args(&a.member_id));
    let (a2, b2) = (
        resolve(a_join).await.unwrap(),
        resolve(b_join).await.unwrap(),
    );
    let a_sync = c.sync("g", sync_args(&a2, vec![]));
    let b_sync = c.sync("g", sync_args(&b2, vec![]));
    resolve(a_sync).await.unwrap();
    resolve(b_sync).await.unwrap();

    // A heartbeats every 3 s; B is silent and expires after its 10 s session.
    let mut rebalancing_after = None;
    for i in 1..=6 {
        tokio::time::sleep(Duration::from_secs(3)).await;
        if c.heartbeat("g", &a.member_id, None, 2) == Err(GroupError::RebalanceInProgress) {
            rebalancing_after = Some(i * 3);
            break;
        }
    }
    let secs = rebalancing_after.expect("B's expiry starts a rebalance");
    assert!((9..=15).contains(&secs), "after {secs}s");
    let a3 = resolve(c.join("g", args(&a.member_id))).await.unwrap();
    assert_eq!(a3.generation, 3);
    assert_eq!(a3.members.len(), 1);
    assert_eq!(
        c.heartbeat("g", &b2.member_id, None, 2),
        Err(GroupError::UnknownMemberId)
    );
}

#[tokio::test(start_paused = true)]
async fn members_that_do_not_rejoin_within_the_rebalance_timeout_are_removed() {
    let (c, _) = setup();
    let a = lone_stable_member(&c, "g").await;
    // B's session outlives the rebalance timeout, so only the rebalance timeout removes it.
    let mut long = args("");
    long.session_timeout_ms = 120_000;
    let b_id = match c.join("g", long.clone()) {
        Pending::Now(Err(GroupError::MemberIdRequired(id))) => id,
        other => panic!("{other:?}"),
    };
    long.member_id = b_id.clone();
    let b_join = c.join("g", long);
    let a_join = c.join("g", args(&a.member_id));
    let b2 = resolve(b_join).await.unwrap();
    let a2 = resolve(a_join).await.unwrap();
    resolve(c.sync("g", sync_args(&a2, vec![]))).await.unwrap();
    resolve(c.sync("g", sync_args(&b2, vec![]))).await.unwrap();

    // A new member C: A rejoins, B never does.
    let c_id = new_member_id(&c, "g").await;
    let c_join = c.join("g", args(&c_id));
    let started = Instant::now();
    let a3 = resolve(c.join("g", args(&a.member_id))).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(REBALANCE_MS as u64 - 10));
    assert_eq!(a3.members.len(), 2, "B removed");
    assert!(resolve(c_join).await.is_ok());
    assert_eq!(
        c.heartbeat("g", &b_id, None, 2),
        Err(GroupError::UnknownMemberId)
    );
}

#[tokio::test(start_paused = true)]
async fn leave_group_rebalances_the_rest_and_reports_unknown_members() {
    let (c, _) = setup();
    let a = lone_stable_member(&c, "g").await;
    let b_id = new_member_id(&c, "g").await;
    let b_join = c.join("g", args(&b_id));
    let a_join = c.join("g", args(&a.member_id));
    let (a2, b2) = (
        resolve(a_join).await.unwrap(),
        resolve(b_join).await.unwrap(),
    );
    resolve(c.sync("g", sync_args(&a2, vec![]))).await.unwrap();
    resolve(c.sync("g", sync_args(&b2, vec![]))).await.unwrap();

    let results = c
        .leave("g", &[(b_id.clone(), None), ("ghost".into(), None)])
        .unwrap();
    assert_eq!(results, vec![Ok(()), Err(GroupError::UnknownMemberId)]);
    assert_eq!(state(&c, "g"), GroupState::PreparingRebalance);
    let a3 = resolve(c.join("g", args(&a.member_id))).await.unwrap();
    assert_eq!((a3.generation, a3.members.len()), (3, 1));
    assert_eq!(
        c.leave("nope", &[(b_id, None)]),
        Err(GroupError::UnknownMemberId)
    );

    // The last member leaving empties the group.
    c.leave("g", &[(a.member_id.clone(), None)]).unwrap();
    assert_eq!(state(&c, "g"), GroupState::Empty);
}

#[tokio::test(start_paused = true)]
async fn static_member_restart_keeps_its_assignment_without_a_rebalance() {
    let (c, _) = setup();
    let a_join = c.join("g", static_args("a"));
    let b_join = c.join("g", static_args("b"));
    let (a, b) = (
        resolve(a_join).await.unwrap(),
        resolve(b_join).await.unwrap(),
    );
    assert!(a.member_id.starts_with("a-"));
    assert_eq!(a.leader, a.member_id);
    let mut a_sync = sync_args(
        &a,
        vec![
            (a.member_id.clone(), Bytes::from_static(b"pa")),
            (b.member_id.clone(), Bytes::from_static(b"pb")),
        ],
    );
    a_sync.instance_id = Some("a".into());
    resolve(c.sync("g", a_sync)).await.unwrap();
    let mut b_sync = sync_args(&b, vec![]);
    b_sync.instance_id = Some("b".into());
    resolve(c.sync("g", b_sync.clone())).await.unwrap();

    // B restarts: same instance id, no member id.
    let b_again = resolve(c.join("g", static_args("b"))).await.unwrap();
    assert_ne!(b_again.member_id, b.member_id);
    assert_eq!(b_again.generation, 1, "no new generation");
    assert_eq!(state(&c, "g"), GroupState::Stable);
    assert_eq!(
        c.heartbeat("g", &a.member_id, Some("a"), 1),
        Ok(()),
        "A sees no rebalance"
    );
    // The old incarnation is fenced.
    assert_eq!(
        c.heartbeat("g", &b.member_id, Some("b"), 1),
        Err(GroupError::FencedInstanceId)
    );
    let commit = commit_args_static("g", 1, &b.member_id, "b");
    assert_eq!(
        resolve(c.commit_offsets(commit)).await[0].1[0].1,
        Err(GroupError::FencedInstanceId)
    );
    // The new one syncs and gets the old assignment.
    let mut sync_new = sync_args(&b_again, vec![]);
    sync_new.instance_id = Some("b".into());
    assert_eq!(
        &resolve(c.sync("g", sync_new)).await.unwrap().assignment[..],
        b"pb"
    );

    // Leaving by instance id with a stale member id is fenced; with the right one it works.
    assert_eq!(
        c.leave("g", &[(b.member_id.clone(), Some("b".into()))])
            .unwrap(),
        vec![Err(GroupError::FencedInstanceId)]
    );
    assert_eq!(
        c.leave("g", &[(String::new(), Some("b".into()))]).unwrap(),
        vec![Ok(())]
    );
    assert_eq!(state(&c, "g"), GroupState::PreparingRebalance);
}

#[tokio::test(start_paused = true)]
async fn unused_member_ids_expire_and_stop_blocking_the_join() {
    let (c, _) = setup();
    let a = lone_stable_member(&c, "g").await;
    let _never_used = new_member_id(&c, "g").await;
    // A rejoins (the leader rejoining starts a rebalance); the outstanding id blocks the
    // join phase until it expires after one session timeout.
    let started = Instant::now();
    let a2 = resolve(c.join("g", args(&a.member_id))).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(SESSION_MS as u64 - 10));
    assert_eq!(a2.generation, 2);
    assert_eq!(a2.members.len(), 1);
}

fn commit_args(
    group: &str,
    generation: i32,
    member: &str,
    offset: i64,
    version: i16,
) -> CommitArgs {
    CommitArgs {
        group_id: group.into(),
        generation,
        member_id: member.into(),
        instance_id: None,
        retention_ms: -1,
        api_version: version,
        topics: vec![(
            "t".into(),
            vec![CommitPartition {
                partition: 0,
                offset,
                leader_epoch: 3,
                metadata: Some("m".into()),
            }],
        )],
    }
}

fn commit_args_static(group: &str, generation: i32, member: &str, instance: &str) -> CommitArgs {
    CommitArgs {
        instance_id: Some(instance.into()),
        ..commit_args(group, generation, member, 1, 8)
    }
}

fn committed(c: &GroupCoordinator, group: &str) -> Option<i64> {
    let found = c
        .fetch_offsets(group, Some(vec![("t".into(), vec![0])]))
        .unwrap();
    found[0].1[0].1.as_ref().map(|v| v.offset)
}

#[tokio::test(start_paused = true)]
async fn offset_commit_checks_generation_and_member() {
    let (c, log) = setup();
    // Simple commits create a group that only holds offsets.
    let r = resolve(c.commit_offsets(commit_args("simple", -1, "", 5, 8))).await;
    assert_eq!(r[0].1[0].1, Ok(()));
    assert_eq!(committed(&c, "simple"), Some(5));
    assert!(log.syncs.load(Ordering::SeqCst) >= 1);
    let r = resolve(c.commit_offsets(commit_args("none", 1, "m", 5, 8))).await;
    assert_eq!(r[0].1[0].1, Err(GroupError::IllegalGeneration));
    let r = resolve(c.commit_offsets(commit_args("none", 1, "m", 5, 9))).await;
    assert_eq!(r[0].1[0].1, Err(GroupError::GroupIdNotFound));

    let a = lone_stable_member(&c, "g").await;
    let check = |generation, member: &str| {
        let c = c.clone();
        let member = member.to_string();
        async move {
            resolve(c.commit_offsets(commit_args("g", generation, &member, 7, 8))).await[0].1[0]
                .1
                .clone()
        }
    };
    assert_eq!(check(1, &a.member_id).await, Ok(()));
    assert_eq!(committed(&c, "g"), Some(7));
    assert_eq!(
        check(0, &a.member_id).await,
        Err(GroupError::IllegalGeneration)
    );
    assert_eq!(check(1, "ghost").await, Err(GroupError::UnknownMemberId));
    assert_eq!(
        check(-1, "").await,
        Err(GroupError::UnknownMemberId),
        "simple commit into a live group"
    );

    let mut big = commit_args("g", 1, &a.member_id, 8, 8);
    big.topics[0].1[0].metadata = Some("x".repeat(17));
    let r = resolve(c.commit_offsets(big)).await;
    assert_eq!(r[0].1[0].1, Err(GroupError::OffsetMetadataTooLarge));
    assert_eq!(committed(&c, "g"), Some(7));

    // Null topics: everything the group committed.
    let all = c.fetch_offsets("g", None).unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(
        all[0].1[0]
            .1
            .as_ref()
            .map(|v| (v.offset, v.leader_epoch, v.metadata.as_str())),
        Some((7, 3, "m"))
    );
    assert!(c.fetch_offsets("unknown", None).unwrap().is_empty());
    assert_eq!(committed(&c, "unknown"), None);
}

#[tokio::test(start_paused = true)]
async fn a_commit_that_cannot_be_synced_is_not_acknowledged() {
    let (c, log) = setup();
    log.fail_sync.store(true, Ordering::SeqCst);
    let r = resolve(c.commit_offsets(commit_args("g", -1, "", 5, 8))).await;
    assert_eq!(r[0].1[0].1, Err(GroupError::CoordinatorNotAvailable));
}

#[tokio::test(start_paused = true)]
async fn groups_and_offsets_survive_a_restart() {
    let (c, log) = setup();
    let a = lone_stable_member(&c, "g").await;
    resolve(c.commit_offsets(commit_args("g", 1, &a.member_id, 42, 8))).await;
    resolve(c.commit_offsets(commit_args("simple", -1, "", 5, 8))).await;
    resolve(c.commit_offsets(commit_args("gone", -1, "", 1, 8))).await;
    let deleted = resolve(c.delete_groups(&["gone".to_string()])).await;
    assert_eq!(deleted, vec![("gone".to_string(), Ok(()))]);

    let c2 = GroupCoordinator::new(config(), Some(log.clone()));
    assert_eq!(committed(&c2, "g"), Some(42));
    assert_eq!(committed(&c2, "simple"), Some(5));
    assert_eq!(committed(&c2, "gone"), None);
    let d = c2.describe(&["g".to_string()]).remove(0).unwrap();
    assert_eq!(d.state, "Stable");
    assert_eq!(d.members.len(), 1);
    assert_eq!(d.members[0].member_id, a.member_id);
    assert_eq!(&d.members[0].assignment[..], b"all");
    // The restored member carries on with its generation...
    assert_eq!(c2.heartbeat("g", &a.member_id, None, 1), Ok(()));
    // ...and if it never comes back, its session expires.
    c2.start();
    tokio::time::sleep(Duration::from_millis(SESSION_MS as u64 + 100)).await;
    assert_eq!(state(&c2, "g"), GroupState::Empty);
    let listed: Vec<String> = c2.list().unwrap().into_iter().map(|g| g.group_id).collect();
    assert_eq!(listed, vec!["g".to_string(), "simple".to_string()]);
}

#[tokio::test(start_paused = true)]
async fn offset_delete_and_group_delete() {
    let (c, log) = setup();
    let a = lone_stable_member(&c, "g").await;
    resolve(c.commit_offsets(commit_args("g", 1, &a.member_id, 3, 8))).await;
    // Members' subscriptions ("sub" is not a parsable consumer subscription) are unknown.
    let r = resolve(c.delete_offsets("g", vec![("t".into(), vec![0])])).await;
    assert_eq!(r, Err(GroupError::NonEmptyGroup));
    assert_eq!(
        resolve(c.delete_groups(&["g".to_string(), "x".to_string(), String::new()])).await,
        vec![
            ("g".to_string(), Err(GroupError::NonEmptyGroup)),
            ("x".to_string(), Err(GroupError::GroupIdNotFound)),
            (String::new(), Err(GroupError::InvalidGroupId)),
        ]
    );
    c.leave("g", &[(a.member_id.clone(), None)]).unwrap();
    let r = resolve(c.delete_offsets("g", vec![("t".into(), vec![0, 1])]))
        .await
        .unwrap();
    assert_eq!(r, vec![("t".to_string(), vec![(0, Ok(())), (1, Ok(()))])]);
    assert_eq!(committed(&c, "g"), None);
    assert_eq!(
        resolve(c.delete_groups(&["g".to_string()])).await,
        vec![("g".to_string(), Ok(()))]
    );
    assert_eq!(
        c.describe(&["g".to_string()]).remove(0).unwrap().state,
        "Dead"
    );
    let c2 = GroupCoordinator::new(config(), Some(log));
    assert!(c2.list().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn offsets_of_empty_groups_expire_after_the_retention_time() {
    let (c, log) = setup();
    resolve(c.commit_offsets(commit_args("simple", -1, "", 5, 8))).await;
    let retention = config().offsets_retention_ms;
    let now = crate::handlers::now_ms();
    c.expire_offsets(now + retention - 1000);
    assert_eq!(committed(&c, "simple"), Some(5));
    c.expire_offsets(now + retention + 1000);
    assert_eq!(committed(&c, "simple"), None);
    assert!(
        c.list().unwrap().is_empty(),
        "an empty group without offsets is removed"
    );
    let c2 = GroupCoordinator::new(config(), Some(log));
    assert!(c2.list().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn describe_shows_metadata_only_when_stable() {
    let (c, _) = setup();
    let id = new_member_id(&c, "g").await;
    let pending = c.join("g", args(&id));
    let d = c.describe(&["g".to_string()]).remove(0).unwrap();
    assert_eq!(
        (d.state, d.protocol.as_str(), d.members.len()),
        ("PreparingRebalance", "", 1)
    );
    assert!(d.members[0].metadata.is_empty());
    let joined = resolve(pending).await.unwrap();
    resolve(c.sync(
        "g",
        sync_args(&joined, vec![(id.clone(), Bytes::from_static(b"x"))]),
    ))
    .await
    .unwrap();
    let d = c.describe(&["g".to_string()]).remove(0).unwrap();
    assert_eq!(
        (d.state, d.protocol.as_str(), d.protocol_type.as_str()),
        ("Stable", "range", "consumer")
    );
    assert_eq!(&d.members[0].metadata[..], b"sub");
    assert_eq!(d.members[0].client_host, "/127.0.0.1");
}

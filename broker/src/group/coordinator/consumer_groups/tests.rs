//! KIP-848 groups through the coordinator: timers on paused tokio time, the epoch record
//! and its replay, and how classic and consumer groups refuse each other.

use std::sync::Arc;

use super::*;
use crate::group::classic::{JoinArgs, Settings};
use crate::internal_topic::memory::MemoryLog;

const T: Uuid = Uuid::from_u128(9);

fn config() -> CoordinatorConfig {
    CoordinatorConfig {
        settings: Settings {
            initial_rebalance_delay: Duration::from_millis(0),
            min_session_timeout_ms: 1,
            max_session_timeout_ms: 600_000,
        },
        offsets_topic_partitions: 4,
        offsets_topic_segment_bytes: 100 * 1024 * 1024,
        offsets_retention_ms: 7 * 24 * 3600 * 1000,
        retention_check_interval: Duration::from_secs(600),
        offset_metadata_max_bytes: 64,
        consumer: ConsumerSettings {
            session_timeout_ms: 10_000,
            ..ConsumerSettings::default()
        },
    }
}

fn lookup(name: &str) -> Option<(Uuid, i32)> {
    (name == "t").then_some((T, 4))
}

fn join(id: &str) -> HeartbeatArgs {
    HeartbeatArgs {
        member_id: id.into(),
        member_epoch: 0,
        rebalance_timeout_ms: 60_000,
        subscribed_topic_names: Some(vec!["t".into()]),
        ..HeartbeatArgs::default()
    }
}

async fn resolve<T>(p: Pending<T>) -> T {
    match p {
        Pending::Now(t) => t,
        Pending::Wait(rx) => rx.await.unwrap(),
    }
}

#[tokio::test(start_paused = true)]
async fn a_silent_member_is_removed_after_the_session_timeout() {
    let log = Arc::new(MemoryLog::new(4));
    let c = GroupCoordinator::new(config(), Some(log.clone()));
    resolve(c.consumer_heartbeat("g", join("a"), &lookup))
        .await
        .unwrap();
    resolve(c.consumer_heartbeat("g", join("b"), &lookup))
        .await
        .unwrap();
    // a keeps heartbeating, b goes silent.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_secs(4)).await;
        let d = c.consumer_describe(&["g".into()]).remove(0).unwrap();
        let a = d.members.iter().find(|m| m.member_id == "a").unwrap();
        // The member reports what it owns (it revoked what it was asked to).
        let owned = a
            .assignment
            .iter()
            .map(|(t, _, ps)| (*t, ps.iter().copied().collect()))
            .collect();
        let beat = HeartbeatArgs {
            member_id: "a".into(),
            member_epoch: a.member_epoch,
            rebalance_timeout_ms: -1,
            owned: Some(owned),
            ..HeartbeatArgs::default()
        };
        resolve(c.consumer_heartbeat("g", beat, &lookup))
            .await
            .unwrap();
    }
    let d = c.consumer_describe(&["g".into()]).remove(0).unwrap();
    assert_eq!(d.members.len(), 1);
    assert_eq!(d.members[0].member_id, "a");
    assert_eq!(d.members[0].assignment[0].2, vec![0, 1, 2, 3]);
    assert_eq!(d.state, "Stable");
    assert_eq!(d.group_epoch, 3);

    // Replaying the log restores the group, empty, at its epoch: members rejoin.
    let restored = GroupCoordinator::new(config(), Some(log));
    let d = restored.consumer_describe(&["g".into()]).remove(0).unwrap();
    assert_eq!((d.state, d.group_epoch, d.members.len()), ("Empty", 3, 0));
    let listed = restored.list().unwrap();
    assert_eq!(listed[0].group_type, "consumer");
    let beat = HeartbeatArgs {
        member_id: "a".into(),
        member_epoch: 3,
        rebalance_timeout_ms: -1,
        ..HeartbeatArgs::default()
    };
    assert_eq!(
        resolve(restored.consumer_heartbeat("g", beat, &lookup)).await,
        Err(GroupError::UnknownMemberId)
    );
    let r = resolve(restored.consumer_heartbeat("g", join("a"), &lookup))
        .await
        .unwrap();
    assert_eq!(r.member_epoch, 4);
}

#[tokio::test(start_paused = true)]
async fn classic_and_consumer_groups_refuse_each_other() {
    let c = GroupCoordinator::new(config(), Some(Arc::new(MemoryLog::new(4))));
    resolve(c.consumer_heartbeat("g", join("a"), &lookup))
        .await
        .unwrap();
    let classic = JoinArgs {
        member_id: String::new(),
        instance_id: None,
        client_id: "c".into(),
        client_host: "/h".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 10_000,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), bytes::Bytes::new())],
        require_known_member_id: false,
    };
    assert!(matches!(
        c.join("g", classic.clone()),
        Pending::Now(Err(GroupError::InconsistentGroupProtocol))
    ));
    // DescribeGroups sees no classic group; ConsumerGroupDescribe of a classic one fails.
    assert_eq!(c.describe(&["g".into()])[0].as_ref().unwrap().state, "Dead");
    let _ = c.join("h", classic);
    assert_eq!(
        c.consumer_describe(&["h".into()])[0].as_ref().err(),
        Some(&GroupError::GroupIdNotFound)
    );
    assert_eq!(
        resolve(c.consumer_heartbeat("h", join("x"), &lookup)).await,
        Err(GroupError::GroupIdNotFound)
    );
    // Unknown group with an epoch: not found; deleting a group with members: refused.
    let beat = HeartbeatArgs {
        member_epoch: 1,
        ..join("x")
    };
    assert_eq!(
        resolve(c.consumer_heartbeat("nope", beat, &lookup)).await,
        Err(GroupError::GroupIdNotFound)
    );
    let deleted = resolve(c.delete_groups(&["g".into()])).await;
    assert_eq!(deleted[0].1, Err(GroupError::NonEmptyGroup));
}

//! State machine details that are awkward to reach through the coordinator.

use super::*;

fn member(id: &str, protocols: &[&str]) -> Member {
    Member {
        id: id.into(),
        instance_id: None,
        client_id: "c".into(),
        client_host: "h".into(),
        session_timeout: Duration::from_secs(10),
        rebalance_timeout: Duration::from_secs(30),
        protocols: protocols
            .iter()
            .map(|p| (p.to_string(), Bytes::from(p.to_string())))
            .collect(),
        assignment: Bytes::new(),
        join_waiter: None,
        sync_waiter: None,
        session_deadline: Instant::now(),
    }
}

#[test]
fn the_protocol_most_members_prefer_among_those_all_support_wins() {
    let mut g = Group::new("g", 0);
    g.members = vec![
        member("a", &["range", "roundrobin", "sticky"]),
        member("b", &["roundrobin", "range"]),
        member("c", &["roundrobin", "range", "sticky"]),
    ];
    // "sticky" is not supported by b; roundrobin has two first-choice votes.
    assert_eq!(g.select_protocol().as_deref(), Some("roundrobin"));
    g.members.truncate(1);
    assert_eq!(g.select_protocol().as_deref(), Some("range"));
    g.members.push(member("d", &["sticky"]));
    assert_eq!(g.select_protocol().as_deref(), Some("sticky"));
    g.members.push(member("e", &["other"]));
    assert_eq!(g.select_protocol(), None);
}

#[test]
fn a_new_member_must_share_a_protocol_with_every_member() {
    let mut g = Group::new("g", 0);
    g.protocol_type = Some("consumer".into());
    g.members = vec![
        member("a", &["range", "roundrobin"]),
        member("b", &["roundrobin"]),
    ];
    let p = |names: &[&str]| -> Vec<(String, Bytes)> {
        names
            .iter()
            .map(|n| (n.to_string(), Bytes::new()))
            .collect()
    };
    assert!(g.supports_protocols("consumer", &p(&["roundrobin"])));
    assert!(!g.supports_protocols("consumer", &p(&["range"])));
    assert!(!g.supports_protocols("connect", &p(&["roundrobin"])));
    let empty = Group::new("e", 0);
    assert!(empty.supports_protocols("anything", &p(&["x"])));
    assert!(!empty.supports_protocols("", &p(&["x"])));
}

#[test]
fn state_names_are_kafkas() {
    let names: Vec<&str> = [
        GroupState::Empty,
        GroupState::PreparingRebalance,
        GroupState::CompletingRebalance,
        GroupState::Stable,
        GroupState::Dead,
    ]
    .iter()
    .map(|s| s.name())
    .collect();
    assert_eq!(
        names,
        [
            "Empty",
            "PreparingRebalance",
            "CompletingRebalance",
            "Stable",
            "Dead"
        ]
    );
}

#[test]
fn consumer_subscriptions_are_parsed_for_offset_delete() {
    use kafka_protocol::messages::ConsumerProtocolSubscription;
    use kafka_protocol::protocol::{Encodable, StrBytes};
    let sub =
        ConsumerProtocolSubscription::default().with_topics(vec![StrBytes::from_static_str("t1")]);
    let mut buf = bytes::BytesMut::new();
    bytes::BufMut::put_i16(&mut buf, 1);
    sub.encode(&mut buf, 1).unwrap();
    let mut g = Group::new("g", 0);
    g.protocol_type = Some("consumer".into());
    g.protocol = Some("range".into());
    let mut m = member("a", &["range"]);
    m.protocols = vec![("range".into(), buf.freeze())];
    g.members = vec![m];
    let topics = g.subscribed_topics().unwrap();
    assert!(topics.contains("t1") && topics.len() == 1);
}

/// Found by the group_sequence fuzz target: a JoinGroup naming a member id handed out with
/// MEMBER_ID_REQUIRED together with the instance id of an existing static member added a
/// second member with that instance id. (Kafka refuses it too: pending members are never
/// static.)
#[test]
fn a_pending_member_id_with_a_taken_instance_id_is_refused() {
    let now = Now {
        instant: Instant::now(),
        ms: 0,
    };
    let settings = Settings {
        initial_rebalance_delay: Duration::from_millis(3000),
        min_session_timeout_ms: 1,
        max_session_timeout_ms: 600_000,
    };
    let args = |member_id: &str, instance_id: Option<&str>| JoinArgs {
        member_id: member_id.into(),
        instance_id: instance_id.map(Into::into),
        client_id: "c".into(),
        client_host: "h".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 30_000,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::new())],
        require_known_member_id: true,
    };
    let mut g = Group::new("g", 0);
    let mut fx = Effects::default();
    assert!(matches!(
        g.join(args("", Some("i0")), now, &settings, &mut fx),
        Pending::Wait(_)
    ));
    let Pending::Now(Err(GroupError::MemberIdRequired(pending))) =
        g.join(args("", None), now, &settings, &mut fx)
    else {
        panic!("expected MEMBER_ID_REQUIRED");
    };
    assert!(matches!(
        g.join(args(&pending, Some("i0")), now, &settings, &mut fx),
        Pending::Now(Err(GroupError::FencedInstanceId))
    ));
    let with_i0 = g
        .members
        .iter()
        .filter(|m| m.instance_id.as_deref() == Some("i0"))
        .count();
    assert_eq!(with_i0, 1);
    // The pending id still works for the dynamic member it was handed to.
    assert!(matches!(
        g.join(args(&pending, None), now, &settings, &mut fx),
        Pending::Wait(_)
    ));
    assert_eq!(g.members.len(), 2);
}

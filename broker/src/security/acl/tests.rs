//! The decision rules, data-driven: a set of bindings written as `kafka-acls` lists them,
//! and requests with the decision each must get.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use super::*;
use crate::security::SecurityProtocol;

/// A binding written `PERMISSION principal host OPERATION TYPE:PATTERN:name`.
fn acl(s: &str) -> AclRecord {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [permission, principal, host, operation, resource] = parts[..] else {
        panic!("bad test binding {s}");
    };
    let mut r = resource.splitn(3, ':');
    let (t, p, n) = (r.next().unwrap(), r.next().unwrap(), r.next().unwrap());
    AclRecord {
        resource_type: t.into(),
        resource_name: n.into(),
        pattern_type: p.into(),
        principal: principal.into(),
        host: host.into(),
        operation: operation.into(),
        permission_type: permission.into(),
    }
}

fn authorizer(acls: &[&str], super_users: &str, allow_if_no_acl: bool) -> Authorizer {
    let config = Config {
        authorizer_class_name: "acl".into(),
        super_users: super_users.into(),
        allow_everyone_if_no_acl_found: allow_if_no_acl,
        ..Config::default()
    };
    let records: Vec<AclRecord> = acls.iter().map(|a| acl(a)).collect();
    Authorizer::new(&config, &records).unwrap()
}

fn session(principal: &str, host: IpAddr) -> Session {
    Session {
        principal: Principal::parse(principal).unwrap(),
        client_address: host,
        listener: Arc::from("PLAINTEXT"),
        protocol: SecurityProtocol::Plaintext,
    }
}

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Checks `(principal, operation, TYPE:name, allowed)` cases from localhost.
fn check(a: &Authorizer, cases: &[(&str, Operation, &str, bool)]) {
    for (principal, op, resource, want) in cases {
        let (t, name) = resource.split_once(':').unwrap();
        let t = ResourceType::parse(t).unwrap();
        let got = a.decide(&session(principal, LOCAL), *op, t, name);
        assert_eq!(
            got.allowed(),
            *want,
            "{principal} {op:?} {resource}: {got:?}"
        );
    }
}

use Operation::*;

#[test]
fn literal_bindings_allow_only_their_principal_resource_and_operation() {
    let a = authorizer(&["ALLOW User:alice * READ TOPIC:LITERAL:foo"], "", false);
    check(
        &a,
        &[
            ("User:alice", Read, "TOPIC:foo", true),
            ("User:bob", Read, "TOPIC:foo", false),
            ("User:alice", Write, "TOPIC:foo", false),
            ("User:alice", Read, "TOPIC:foobar", false),
            ("User:alice", Read, "TOPIC:fo", false),
            ("User:alice", Read, "GROUP:foo", false),
            // Principal types differ: Group:alice is not User:alice.
            ("Group:alice", Read, "TOPIC:foo", false),
        ],
    );
}

#[test]
fn allow_bindings_imply_describe_and_describe_configs() {
    let a = authorizer(
        &[
            "ALLOW User:r * READ TOPIC:LITERAL:t",
            "ALLOW User:w * WRITE TOPIC:LITERAL:t",
            "ALLOW User:d * DELETE TOPIC:LITERAL:t",
            "ALLOW User:a * ALTER TOPIC:LITERAL:t",
            "ALLOW User:c * CREATE TOPIC:LITERAL:t",
            "ALLOW User:ac * ALTER_CONFIGS TOPIC:LITERAL:t",
            "ALLOW User:dc * DESCRIBE_CONFIGS TOPIC:LITERAL:t",
            "ALLOW User:all * ALL TOPIC:LITERAL:t",
        ],
        "",
        false,
    );
    check(
        &a,
        &[
            ("User:r", Describe, "TOPIC:t", true),
            ("User:w", Describe, "TOPIC:t", true),
            ("User:d", Describe, "TOPIC:t", true),
            ("User:a", Describe, "TOPIC:t", true),
            ("User:c", Describe, "TOPIC:t", false),
            ("User:r", Write, "TOPIC:t", false),
            ("User:ac", DescribeConfigs, "TOPIC:t", true),
            ("User:ac", Describe, "TOPIC:t", false),
            ("User:dc", AlterConfigs, "TOPIC:t", false),
            ("User:all", Read, "TOPIC:t", true),
            ("User:all", IdempotentWrite, "TOPIC:t", true),
            ("User:all", AlterConfigs, "TOPIC:t", true),
        ],
    );
}

#[test]
fn deny_beats_allow_and_implies_nothing() {
    let a = authorizer(
        &[
            "ALLOW User:* * ALL TOPIC:LITERAL:*",
            "DENY User:alice * WRITE TOPIC:LITERAL:foo",
            "DENY User:bob * ALL TOPIC:PREFIXED:secret-",
            "DENY User:carol * READ TOPIC:LITERAL:*",
        ],
        "",
        false,
    );
    check(
        &a,
        &[
            ("User:alice", Write, "TOPIC:foo", false),
            ("User:alice", Read, "TOPIC:foo", true),
            // A DENY of WRITE does not deny the DESCRIBE that WRITE implies.
            ("User:alice", Describe, "TOPIC:foo", true),
            ("User:alice", Write, "TOPIC:bar", true),
            ("User:bob", Describe, "TOPIC:secret-1", false),
            ("User:bob", Read, "TOPIC:secret", true),
            ("User:carol", Read, "TOPIC:anything", false),
            ("User:carol", Describe, "TOPIC:anything", true),
        ],
    );
}

#[test]
fn prefixed_and_wildcard_patterns() {
    let a = authorizer(
        &[
            "ALLOW User:alice * READ TOPIC:PREFIXED:logs-",
            "ALLOW User:alice * WRITE TOPIC:PREFIXED:é",
            "ALLOW User:bob * READ GROUP:LITERAL:*",
            // A prefixed `*` is a prefix like any other, not a wildcard.
            "ALLOW User:carol * READ TOPIC:PREFIXED:*",
        ],
        "",
        false,
    );
    check(
        &a,
        &[
            ("User:alice", Read, "TOPIC:logs-a", true),
            ("User:alice", Read, "TOPIC:logs-", true),
            ("User:alice", Read, "TOPIC:logs", false),
            ("User:alice", Read, "TOPIC:xlogs-a", false),
            ("User:alice", Write, "TOPIC:éa", true),
            ("User:alice", Write, "TOPIC:e", false),
            ("User:bob", Read, "GROUP:any-group", true),
            ("User:bob", Read, "GROUP:*", true),
            ("User:bob", Read, "TOPIC:any", false),
            ("User:carol", Read, "TOPIC:topic", false),
            ("User:carol", Read, "TOPIC:*x", true),
        ],
    );
}

#[test]
fn wildcard_principal_and_hosts() {
    let a = authorizer(
        &[
            "ALLOW User:* 10.0.0.1 READ TOPIC:LITERAL:t",
            "ALLOW User:alice ::1 WRITE TOPIC:LITERAL:t",
            // `Group:*` is not the wildcard principal.
            "ALLOW Group:* * DELETE TOPIC:LITERAL:t",
        ],
        "",
        false,
    );
    let at = |p: &str, ip: IpAddr, op| a.decide(&session(p, ip), op, ResourceType::Topic, "t");
    let v4 = |d: u8| IpAddr::V4(Ipv4Addr::new(10, 0, 0, d));
    assert!(at("User:anyone", v4(1), Read).allowed());
    assert!(!at("User:anyone", v4(2), Read).allowed());
    // An IPv4 client reached over an IPv6 socket is its IPv4 address.
    let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped());
    assert!(at("User:anyone", mapped, Read).allowed());
    assert!(at("User:alice", IpAddr::V6(Ipv6Addr::LOCALHOST), Write).allowed());
    assert!(!at("User:alice", LOCAL, Write).allowed());
    assert!(!at("User:anyone", v4(1), Delete).allowed());
}

#[test]
fn super_users_and_the_no_acl_default() {
    let a = authorizer(
        &[
            "DENY User:admin * ALL TOPIC:LITERAL:*",
            "ALLOW User:bob * READ TOPIC:LITERAL:bobs",
            "ALLOW User:bob * READ TOPIC:PREFIXED:pre",
        ],
        "User:admin; User:root",
        true,
    );
    check(
        &a,
        &[
            // Super users pass whatever DENY says.
            ("User:admin", Delete, "TOPIC:anything", true),
            ("User:root", Alter, "CLUSTER:kafka-cluster", true),
            // No binding names the group: allow.everyone.if.no.acl.found.
            ("User:alice", Read, "GROUP:g", true),
            // A binding for someone else names the topic: denied.
            ("User:alice", Read, "TOPIC:bobs", false),
            ("User:alice", Read, "TOPIC:prefix", false),
        ],
    );
    assert_eq!(
        a.decide(
            &session("User:admin", LOCAL),
            Read,
            ResourceType::Topic,
            "x"
        ),
        Decision::SuperUser
    );
    // The wildcard DENY for User:admin names every topic, so the no-ACL default never
    // applies to topics.
    check(&a, &[("User:alice", Read, "TOPIC:other", false)]);
    let strict = authorizer(&[], "", false);
    let d = strict.decide(
        &session("User:alice", LOCAL),
        Read,
        ResourceType::Group,
        "g",
    );
    assert_eq!(d, Decision::DeniedNoAcl);
}

#[test]
fn disabled_allows_everything() {
    let config = Config::default();
    let a = Authorizer::new(&config, &[acl("DENY User:* * ALL TOPIC:LITERAL:*")]).unwrap();
    assert!(!a.enabled());
    let s = session("User:alice", LOCAL);
    assert!(a.authorize(&s, Write, ResourceType::Topic, "t"));
    assert!(a.authorize_any(&s, Write, ResourceType::Topic));
    assert_eq!(
        a.authorized_operations(&s, ResourceType::Group, "g"),
        (1 << 3) | (1 << 6) | (1 << 8) | (1 << 10) | (1 << 11)
    );
}

#[test]
fn authorize_by_resource_type() {
    let any = |acls: &[&str], principal: &str, allow_if_no_acl: bool| {
        authorizer(acls, "User:admin", allow_if_no_acl).authorize_any(
            &session(principal, LOCAL),
            Write,
            ResourceType::Topic,
        )
    };
    assert!(any(
        &["ALLOW User:alice * WRITE TOPIC:LITERAL:t"],
        "User:alice",
        false
    ));
    assert!(any(
        &["ALLOW User:alice * ALL TOPIC:PREFIXED:t"],
        "User:alice",
        false
    ));
    assert!(!any(
        &["ALLOW User:alice * READ TOPIC:LITERAL:t"],
        "User:alice",
        false
    ));
    assert!(!any(
        &["ALLOW User:bob * WRITE TOPIC:LITERAL:t"],
        "User:alice",
        false
    ));
    assert!(any(
        &["ALLOW User:* * WRITE TOPIC:LITERAL:t"],
        "User:alice",
        false
    ));
    let denied_literal = [
        "ALLOW User:alice * WRITE TOPIC:LITERAL:t",
        "DENY User:alice * WRITE TOPIC:LITERAL:t",
    ];
    assert!(!any(&denied_literal, "User:alice", false));
    let denied_prefix = [
        "ALLOW User:alice * WRITE TOPIC:PREFIXED:team-a",
        "DENY User:alice * WRITE TOPIC:PREFIXED:team",
    ];
    assert!(!any(&denied_prefix, "User:alice", false));
    let narrower_deny = [
        "ALLOW User:alice * WRITE TOPIC:PREFIXED:team",
        "DENY User:alice * WRITE TOPIC:PREFIXED:team-a",
    ];
    assert!(any(&narrower_deny, "User:alice", false));
    let wildcard_deny = [
        "ALLOW User:alice * WRITE TOPIC:LITERAL:*",
        "DENY User:* * ALL TOPIC:LITERAL:*",
    ];
    assert!(!any(&wildcard_deny, "User:alice", false));
    assert!(any(
        &["ALLOW User:alice * WRITE TOPIC:LITERAL:*"],
        "User:alice",
        false
    ));
    assert!(any(&wildcard_deny, "User:admin", false));
    // No binding names the hard-coded name: the no-ACL default decides.
    assert!(any(&[], "User:alice", true));
    assert!(!any(&[], "User:alice", false));
}

#[test]
fn authorized_operations_bits() {
    let a = authorizer(
        &[
            "ALLOW User:alice * READ TOPIC:LITERAL:t",
            "ALLOW User:alice * ALTER_CONFIGS TOPIC:LITERAL:t",
            "ALLOW User:alice * ALL GROUP:LITERAL:g",
            "DENY User:alice * DELETE GROUP:LITERAL:g",
        ],
        "",
        false,
    );
    let s = session("User:alice", LOCAL);
    assert_eq!(
        a.authorized_operations(&s, ResourceType::Topic, "t"),
        (1 << 3) | (1 << 8) | (1 << 10) | (1 << 11)
    );
    assert_eq!(
        a.authorized_operations(&s, ResourceType::Group, "g"),
        (1 << 3) | (1 << 8) | (1 << 10) | (1 << 11)
    );
    assert_eq!(
        a.authorized_operations(&s, ResourceType::Cluster, CLUSTER_NAME),
        0
    );
}

#[test]
fn filters_match_as_kafka_does() {
    let bindings: Vec<AclBinding> = [
        "ALLOW User:alice * READ TOPIC:LITERAL:foo",
        "ALLOW User:alice * READ TOPIC:LITERAL:*",
        "ALLOW User:alice * READ TOPIC:PREFIXED:f",
        "ALLOW User:alice * READ TOPIC:PREFIXED:foo",
        "DENY User:* 1.2.3.4 WRITE TOPIC:PREFIXED:foo-bar",
        "ALLOW User:bob * ALL GROUP:LITERAL:foo",
    ]
    .iter()
    .map(|s| AclBinding::from_record(&acl(s)).unwrap())
    .collect();
    let matching = |f: AclFilter| -> Vec<usize> {
        (0..bindings.len())
            .filter(|i| f.matches(&bindings[*i]))
            .collect()
    };
    let named = |t: i8, name: &str, p: i8| {
        AclFilter::from_wire(t, Some(name), p, None, None, 1, 1).unwrap()
    };
    assert_eq!(matching(AclFilter::any()), vec![0, 1, 2, 3, 4, 5]);
    // MATCH: what applies to a topic named foo.
    assert_eq!(matching(named(2, "foo", 2)), vec![0, 1, 2, 3]);
    // ANY with a name: that exact name, any pattern type.
    assert_eq!(matching(named(1, "foo", 1)), vec![0, 3, 5]);
    assert_eq!(matching(named(2, "foo", 4)), vec![3]);
    assert_eq!(matching(named(2, "*", 3)), vec![1]);
    let by_entry = AclFilter::from_wire(1, None, 1, Some("User:*"), Some("1.2.3.4"), 4, 2).unwrap();
    assert_eq!(matching(by_entry), vec![4]);
    // The principal filter is a string: User:* does not stand for alice.
    let alice = AclFilter::from_wire(1, None, 1, Some("User:alice"), None, 1, 1).unwrap();
    assert_eq!(matching(alice), vec![0, 1, 2, 3]);
    let all_op = AclFilter::from_wire(1, None, 1, None, None, 2, 1).unwrap();
    assert_eq!(matching(all_op), vec![5]);
    for bad in [
        (0, 1, 1, 1),
        (9, 1, 1, 1),
        (1, 0, 1, 1),
        (1, 5, 1, 1),
        (1, 1, 0, 1),
        (1, 1, 1, 4),
    ] {
        assert!(
            AclFilter::from_wire(bad.0, None, bad.1, None, None, bad.2, bad.3).is_err(),
            "{bad:?}"
        );
    }
}

#[test]
fn creations_are_validated_and_round_trip_through_records() {
    let ok = AclBinding::from_wire(2, "t", 4, "User:alice", "*", 3, 3).unwrap();
    assert_eq!(
        ok.to_record(),
        acl("ALLOW User:alice * READ TOPIC:PREFIXED:t")
    );
    assert_eq!(AclBinding::from_record(&ok.to_record()).unwrap(), ok);
    let lower = acl("allow User:alice * read topic:prefixed:t");
    assert_eq!(AclBinding::from_record(&lower).unwrap(), ok);
    let refused = [
        (1, "t", 3, "User:a", "*", 3, 3),     // resource type ANY
        (0, "t", 3, "User:a", "*", 3, 3),     // UNKNOWN
        (2, "t", 1, "User:a", "*", 3, 3),     // pattern ANY
        (2, "t", 2, "User:a", "*", 3, 3),     // pattern MATCH
        (2, "t", 3, "User:a", "*", 1, 3),     // operation ANY
        (2, "t", 3, "User:a", "*", 15, 3),    // no such operation
        (2, "t", 3, "User:a", "*", 3, 1),     // permission ANY
        (2, "", 3, "User:a", "*", 3, 3),      // empty name
        (4, "other", 3, "User:a", "*", 7, 3), // cluster name
        (2, "t", 3, "alice", "*", 3, 3),      // principal without type
        (2, "t", 3, "User:a", "", 3, 3),      // empty host
    ];
    for (t, n, p, who, host, op, perm) in refused {
        assert!(
            AclBinding::from_wire(t, n, p, who, host, op, perm).is_err(),
            "{t} {n} {p} {who} {host} {op} {perm}"
        );
    }
    assert!(AclBinding::from_wire(4, CLUSTER_NAME, 3, "User:a", "*", 7, 3).is_ok());
}

#[test]
fn stored_records_that_do_not_parse_refuse_the_start() {
    let config = Config {
        authorizer_class_name: "acl".into(),
        ..Config::default()
    };
    let mut bad = acl("ALLOW User:alice * READ TOPIC:LITERAL:t");
    bad.operation = "READ_EVERYTHING".into();
    assert!(Authorizer::new(&config, &[bad]).is_err());
    let a = Authorizer::new(&config, &[]).unwrap();
    let good = acl("ALLOW User:alice * READ TOPIC:LITERAL:t");
    a.reload(&[good.clone(), good]).unwrap();
    assert_eq!(a.bindings().len(), 1);
    assert!(a.authorize(
        &session("User:alice", LOCAL),
        Read,
        ResourceType::Topic,
        "t"
    ));
}

#[test]
fn codes_and_names_are_kafkas() {
    for (op, code, name) in OPERATIONS {
        assert_eq!(Operation::from_code(code), Some(op));
        assert_eq!(Operation::parse(name), Some(op));
        assert_eq!((op.code(), op.name()), (code, name));
    }
    for (t, code, name, _) in RESOURCE_TYPES {
        assert_eq!(ResourceType::from_code(code), Some(t));
        assert_eq!(ResourceType::parse(name), Some(t));
    }
    assert_eq!(Operation::from_code(1), None);
    assert_eq!(ResourceType::from_code(1), None);
    assert_eq!(PatternType::Prefixed.code(), 4);
    assert_eq!(Permission::Allow.code(), 3);
}

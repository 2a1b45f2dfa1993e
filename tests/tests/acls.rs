//! ACLs end to end (issue 15, acceptance 3): a principal's ACL matrix through real clients,
//! ACLs managed with confluent-kafka's and the Java AdminClient's create/describe/delete
//! calls, and all of it again after a restart.
//!
//! One broker for the whole flow ([`SecureBroker`], authorization on, `User:admin` a super
//! user, PLAIN users admin, alice and bob); every client logs in over SASL_PLAINTEXT:
//!
//! 1. `acl_check.py setup` (admin): the topics, records in `shared`, a group alice must
//!    not see; `admin-acls`: create_acls for alice, describe_acls with a principal and a
//!    MATCH filter, delete_acls of one mistaken binding.
//! 2. `acl_check.py alice-matrix`: each API alice may call succeeds and each she may not
//!    fails with Kafka's error code (the matrix is listed in the script and printed);
//!    Metadata hides the topics she may not describe.
//! 3. `FloeJavaAcls`: the Java AdminClient grants bob, describes and deletes with filters;
//!    bob's producer, consumers and AdminClient succeed or fail with the right exception.
//! 4. Raw frames as `User:ANONYMOUS` (the PLAINTEXT listener): nothing listed, DescribeAcls
//!    and Produce refused. The denials are in the broker's audit log (`floe::audit`).
//! 5. Restart: the same bindings are described, alice's matrix gives the same answers, and
//!    alice-group resumes from the offset it committed before.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use floe_tests::raw::{RawConn, batch};
use floe_tests::security::SecureBroker;
use floe_tests::{client_command, clients_dir, compile_java, python, run_ok_with};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{ApiKey, DescribeAclsRequest, DescribeAclsResponse};
use kafka_protocol::records::Compression;

const ADMIN_PASSWORD: &str = "admin-secret";
const ALICE_PASSWORD: &str = "alice-secret";
const BOB_PASSWORD: &str = "bob-secret";

/// Records the admin adds to `shared` before each round of alice's matrix.
const SHARED_RECORDS: u64 = 10;

/// Runs `acl_check.py <command> --bootstrap <sasl listener> --user U --password P ...`;
/// returns its JSON line.
fn py(
    sb: &SecureBroker,
    command: &str,
    user: &str,
    password: &str,
    extra: &[&str],
) -> serde_json::Value {
    let script = clients_dir().join("python/acl_check.py");
    let out = run_ok_with(
        client_command(python())
            .arg(script)
            .arg(command)
            .args(["--bootstrap", &SecureBroker::at(sb.sasl_plaintext)])
            .args(["--user", user, "--password", password])
            .args(extra),
        b"",
        Duration::from_secs(180),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "acl_check.py {command}:\n{}",
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.starts_with("[acl_check]"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("acl_check.py {command} printed {stdout:?}: {e}"))
}

fn admin(sb: &SecureBroker, command: &str, extra: &[&str]) -> serde_json::Value {
    py(sb, command, "admin", ADMIN_PASSWORD, extra)
}

/// Alice's matrix for `round` (1, 2, ...): check -> result ("ok" or the error code's
/// name). Each round alice-group reads the records the admin added since the last: from
/// the offset it committed in the round before, restart or not.
fn alice_matrix(sb: &SecureBroker, round: u32) -> serde_json::Map<String, serde_json::Value> {
    admin(sb, "setup", &["--count", &SHARED_RECORDS.to_string()]);
    let started = Instant::now();
    let out = py(
        sb,
        "alice-matrix",
        "alice",
        ALICE_PASSWORD,
        &[
            "--round",
            &round.to_string(),
            "--count",
            &SHARED_RECORDS.to_string(),
        ],
    );
    eprintln!("alice's matrix, round {round}, in {:?}", started.elapsed());
    let read = u64::from(round - 1) * SHARED_RECORDS;
    assert_eq!(out["first_offset"], read, "{out}");
    assert_eq!(out["consumed"], SHARED_RECORDS, "{out}");
    assert_eq!(out["committed"], read + SHARED_RECORDS, "{out}");
    out["matrix"].as_object().unwrap().clone()
}

/// The bindings DescribeAcls returns for a match-all filter, as the admin sees them.
fn bindings(sb: &SecureBroker) -> Vec<String> {
    let out = admin(sb, "list-acls", &[]);
    out["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_str().unwrap().to_string())
        .collect()
}

/// Runs FloeJavaAcls (compiled into `classpath`); panics unless it prints "OK".
fn java(sb: &SecureBroker, classpath: &str) {
    let started = Instant::now();
    let out = run_ok_with(
        client_command("java")
            .arg("-cp")
            .arg(classpath)
            .arg("FloeJavaAcls")
            .args([
                &SecureBroker::at(sb.sasl_plaintext),
                ADMIN_PASSWORD,
                BOB_PASSWORD,
            ]),
        b"",
        Duration::from_secs(180),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("FloeJavaAcls in {:?}:\n{stdout}", started.elapsed());
    assert!(stdout.lines().any(|l| l == "OK"), "FloeJavaAcls:\n{stdout}");
}

/// What `User:ANONYMOUS` (the PLAINTEXT listener, no ACLs) gets: no topic listed, and
/// Kafka's errors for DescribeAcls and Produce.
fn anonymous_is_refused(sb: &SecureBroker) {
    let mut conn = RawConn::open(&sb.broker, "acls-anonymous");
    let meta = conn.metadata();
    assert!(
        meta.topics.is_empty(),
        "ANONYMOUS sees {:?}",
        meta.topics.iter().map(|t| &t.name).collect::<Vec<_>>()
    );
    let any = 1;
    let resp: DescribeAclsResponse = conn.call(
        ApiKey::DescribeAcls,
        3,
        &DescribeAclsRequest::default()
            .with_resource_type_filter(any)
            .with_pattern_type_filter(any)
            .with_operation(any)
            .with_permission_type(any),
    );
    assert_eq!(
        resp.error_code,
        ResponseError::ClusterAuthorizationFailed.code(),
        "DescribeAcls as ANONYMOUS: {resp:?}"
    );
    assert!(resp.resources.is_empty(), "{resp:?}");
    let (code, _) = conn.produce("shared", 0, -1, batch(1, Compression::None));
    assert_eq!(
        code,
        ResponseError::TopicAuthorizationFailed.code(),
        "Produce as ANONYMOUS"
    );
}

#[test]
fn acl_matrix_with_real_clients_survives_restart() {
    let started = Instant::now();
    // javac takes seconds: compile while the Python clients run.
    let classes = tempfile::tempdir().unwrap();
    let classes_path = classes.path().to_path_buf();
    let compiling = std::thread::spawn(move || compile_java("FloeJavaAcls", &classes_path));

    let dir = tempfile::tempdir().unwrap();
    let users = format!(
        "sasl_plain_users={{admin = \"{ADMIN_PASSWORD}\", alice = \"{ALICE_PASSWORD}\", \
         bob = \"{BOB_PASSWORD}\"}}"
    );
    let mut sb = SecureBroker::start(
        dir.path(),
        &[
            "authorizer_class_name=acl",
            "super_users=User:admin",
            &users,
            // Consumers join their groups at once.
            "group_initial_rebalance_delay_ms=0",
        ],
    );

    // confluent-kafka's AdminClient: create, describe (two filters), delete.
    let acls = admin(&sb, "admin-acls", &[]);
    assert_eq!(
        acls["deleted"],
        serde_json::json!(["TOPIC/alice-/PREFIXED/User:alice/*/READ/ALLOW"]),
        "{acls}"
    );
    assert_eq!(acls["bindings"].as_array().unwrap().len(), 8, "{acls}");

    let before = alice_matrix(&sb, 1);
    assert!(before.len() >= 30, "a short matrix: {before:?}");
    for (check, want) in [
        ("Produce alice-orders (WRITE on prefix alice-)", "ok"),
        ("Produce shared (READ only)", "TOPIC_AUTHORIZATION_FAILED"),
        ("FindCoordinator other-group", "GROUP_AUTHORIZATION_FAILED"),
        (
            "InitProducerId bob-tx (FindCoordinator)",
            "TRANSACTIONAL_ID_AUTHORIZATION_FAILED",
        ),
        (
            "CreateAcls (granting herself bob-orders)",
            "CLUSTER_AUTHORIZATION_FAILED",
        ),
    ] {
        assert_eq!(before[check], want, "{check}: {before:?}");
    }

    // The Java AdminClient, and bob's clients.
    let classpath = compiling.join().unwrap();
    java(&sb, &classpath);
    anonymous_is_refused(&sb);

    let described = bindings(&sb);
    for b in [
        "TOPIC/alice-/PREFIXED/User:alice/*/WRITE/ALLOW",
        "TOPIC/alice-secret/LITERAL/User:alice/*/ALL/DENY",
        "TOPIC/bob-orders/LITERAL/User:bob/*/READ/ALLOW",
        "GROUP/bob-/PREFIXED/User:bob/*/READ/ALLOW",
    ] {
        assert!(described.iter().any(|d| d == b), "{b} not in {described:?}");
    }
    for deleted in [
        "TOPIC/alice-/PREFIXED/User:alice/*/READ/ALLOW",
        "TOPIC/bob-orders/LITERAL/User:bob/*/WRITE/ALLOW",
    ] {
        assert!(
            !described.iter().any(|d| d == deleted),
            "{deleted} still in {described:?}"
        );
    }
    assert_eq!(described.len(), 10, "{described:?}");

    // Denials were audited: principal, operation, resource, host, request, rule.
    let log = sb.broker.log();
    let audit: Vec<&str> = log.lines().filter(|l| l.contains("floe::audit")).collect();
    for (who, what) in [
        (
            "User:alice",
            "Principal = User:alice is Denied operation = WRITE from host = 127.0.0.1 on \
             resource = Topic:LITERAL:shared for request = Produce",
        ),
        ("User:bob", "Principal = User:bob is Denied operation = "),
        (
            "User:ANONYMOUS",
            "Principal = User:ANONYMOUS is Denied operation = DESCRIBE from host = \
             127.0.0.1 on resource = Cluster:LITERAL:kafka-cluster for request = DescribeAcls",
        ),
        ("User:admin", "created ACLs"),
    ] {
        assert!(
            audit.iter().any(|l| l.contains(what)),
            "no audit line for {who} ({what}); audit lines:\n{}",
            audit.join("\n")
        );
    }

    // After a restart: the same bindings, the same matrix.
    sb.broker.stop();
    sb.broker.restart();
    assert_eq!(bindings(&sb), described, "bindings after the restart");
    let after = alice_matrix(&sb, 2);
    assert_eq!(after, before, "alice's matrix after the restart");
    anonymous_is_refused(&sb);
    eprintln!("ACL flow in {:?}", started.elapsed());
}

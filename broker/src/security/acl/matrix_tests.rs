//! The ACL matrix: a real broker in-process with authorization on, ACLs created through
//! CreateAcls by a super user, and each API called as a principal with those ACLs. Every
//! call it may make must not fail authorization; every call it may not make must answer
//! the right authorization error; Metadata must hide what it may not describe; the ACLs
//! must survive a reopen of the broker.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use floe_protocol::request::parse_request;
use floe_protocol::response::encode_response_chunks;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::*;

use crate::config::Config;
use crate::handlers::{self, Reply, RequestContext};
use crate::metadata_store::FileMetadataStore;
use crate::security::{Principal, SecurityProtocol, Session};
use crate::state::{Broker, Endpoint};
use crate::topics::{NewTopic, Topics};

mod requests;
use requests::*;

const TOPIC_DENIED: i16 = ResponseError::TopicAuthorizationFailed.code();
const GROUP_DENIED: i16 = ResponseError::GroupAuthorizationFailed.code();
const CLUSTER_DENIED: i16 = ResponseError::ClusterAuthorizationFailed.code();
const TXN_DENIED: i16 = ResponseError::TransactionalIdAuthorizationFailed.code();
const AUTHORIZATION_ERRORS: [i16; 4] = [TOPIC_DENIED, GROUP_DENIED, CLUSTER_DENIED, TXN_DENIED];

/// The bindings the matrix runs under, as `kafka-acls` writes them.
const ACLS: &[&str] = &[
    "ALLOW User:alice * WRITE TOPIC:LITERAL:orders",
    "ALLOW User:alice * READ TOPIC:LITERAL:orders",
    "ALLOW User:alice * DESCRIBE TOPIC:PREFIXED:logs-",
    "DENY User:alice * DESCRIBE TOPIC:LITERAL:logs-private",
    "ALLOW User:alice * CREATE TOPIC:PREFIXED:alice-",
    "ALLOW User:alice * DELETE TOPIC:PREFIXED:alice-",
    "ALLOW User:alice * ALTER TOPIC:PREFIXED:alice-",
    "ALLOW User:alice * ALTER_CONFIGS TOPIC:PREFIXED:alice-",
    "ALLOW User:alice * READ GROUP:PREFIXED:alice-",
    "ALLOW User:alice * DELETE GROUP:PREFIXED:alice-",
    "ALLOW User:alice * WRITE TRANSACTIONAL_ID:LITERAL:alice-txn",
    "ALLOW User:* * DESCRIBE TOPIC:LITERAL:public",
    // Only from another address: alice connects from 127.0.0.1.
    "ALLOW User:alice 10.9.9.9 READ TOPIC:LITERAL:secret",
];

fn config(dir: &Path, authorizer: &str) -> Arc<Config> {
    Arc::new(Config {
        data_dir: dir.to_path_buf(),
        group_initial_rebalance_delay_ms: 0,
        fetch_max_wait_cap_ms: 10,
        authorizer_class_name: authorizer.into(),
        super_users: "User:admin".into(),
        ..Config::default()
    })
}

/// A broker over `dir` (what `server::run` assembles, without sockets).
fn open(dir: &Path, authorizer: &str) -> Arc<Broker> {
    let config = config(dir, authorizer);
    let logs = Arc::new(floe_storage::LogManager::open(dir).unwrap());
    let store = Box::new(FileMetadataStore::new(dir));
    let topics = Topics::open(config.clone(), store, logs).unwrap();
    let security = crate::security::Security::new(&config, &topics.security()).unwrap();
    let endpoint = Endpoint {
        node_id: config.node_id,
        host: "127.0.0.1".into(),
        port: 9092,
    };
    Arc::new(Broker::new(config, endpoint, topics, security))
}

fn create_topic(broker: &Broker, name: &str) {
    broker
        .topics
        .create(NewTopic {
            name: name.into(),
            partitions: Some(1),
            replication_factor: None,
            configs: BTreeMap::new(),
        })
        .unwrap();
}

/// Sends `body` as `principal` from 127.0.0.1 at the highest version served, checks that
/// the answer encodes, and returns it.
async fn send(
    broker: &Arc<Broker>,
    principal: &str,
    key: ApiKey,
    body: RequestKind,
) -> ResponseKind {
    let version = match key {
        // Clients send v3 at most; v4+ are broker-to-broker (KIP-890).
        ApiKey::AddPartitionsToTxn => 3,
        key => handlers::supported(key).map(|a| a.max).unwrap(),
    };
    send_at(broker, principal, key, version, body).await
}

async fn send_at(
    broker: &Arc<Broker>,
    principal: &str,
    key: ApiKey,
    version: i16,
    body: RequestKind,
) -> ResponseKind {
    let frame = crate::fuzz::encode_request(key, version, &body)
        .unwrap_or_else(|| panic!("{key:?} v{version} does not encode: {body:?}"));
    let frame = parse_request(Bytes::from(frame)).unwrap();
    let ctx = RequestContext {
        broker: broker.clone(),
        peer: SocketAddr::from(([127, 0, 0, 1], 40_000)),
        header: frame.header.clone(),
        session: Arc::new(Session {
            principal: Principal::parse(principal).unwrap(),
            client_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            listener: Arc::from("PLAINTEXT"),
            protocol: SecurityProtocol::Plaintext,
        }),
    };
    let out = match handlers::dispatch(&ctx, &frame).await {
        Ok(Some(out)) => out,
        Ok(None) => panic!("{key:?} v{version} as {principal}: no response"),
        Err(e) => panic!("{key:?} v{version} as {principal}: connection closed: {e}"),
    };
    let wait = Duration::from_secs(5);
    let body = match out.reply {
        Reply::Now(body) => *body,
        Reply::Later(fut) => tokio::time::timeout(wait, fut).await.unwrap(),
        Reply::Fetch(fut) => ResponseKind::Fetch(
            tokio::time::timeout(wait, fut)
                .await
                .unwrap()
                .materialize()
                .unwrap(),
        ),
        // Only the connection's SASL v0 exchange makes these, never a handler.
        Reply::Raw(_) => panic!("{key:?} v{version}: a raw frame, not a response"),
    };
    encode_response_chunks(out.api_key, out.api_version, out.correlation_id, &body)
        .unwrap_or_else(|e| panic!("{key:?} v{version} response does not encode: {e}"));
    body
}

/// Every error code in a response, wherever it sits (top level, per topic, partition,
/// group...): the matrix checks where codes appear, not each response's shape.
fn codes(body: &ResponseKind) -> Vec<i16> {
    let text = format!("{body:?}");
    text.match_indices("error_code: ")
        .filter_map(|(i, m)| {
            let rest = &text[i + m.len()..];
            let end = rest
                .find(|c: char| c != '-' && !c.is_ascii_digit())
                .unwrap_or(rest.len());
            rest[..end].parse().ok()
        })
        .collect()
}

const OK: Want = Want::Allowed;
const NO_TOPIC: Want = Want::Denied(TOPIC_DENIED);
const NO_GROUP: Want = Want::Denied(GROUP_DENIED);
const NO_CLUSTER: Want = Want::Denied(CLUSTER_DENIED);
const NO_TXN: Want = Want::Denied(TXN_DENIED);

/// What a call must get.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// No authorization error anywhere in the answer.
    Allowed,
    /// This authorization error somewhere in the answer.
    Denied(i16),
}

fn check(what: &str, body: &ResponseKind, want: Want) {
    let codes = codes(body);
    match want {
        Want::Allowed => assert!(
            !codes.iter().any(|c| AUTHORIZATION_ERRORS.contains(c)),
            "{what}: expected no authorization error, got {codes:?}: {body:?}"
        ),
        Want::Denied(code) => assert!(
            codes.contains(&code),
            "{what}: expected error {code}, got {codes:?}: {body:?}"
        ),
    }
}

fn metadata_names(body: &ResponseKind) -> Vec<String> {
    let ResponseKind::Metadata(m) = body else {
        panic!("not a Metadata response: {body:?}")
    };
    let mut names: Vec<String> = m
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect();
    names.sort();
    names
}

fn described_acls(body: &ResponseKind) -> usize {
    let ResponseKind::DescribeAcls(r) = body else {
        panic!("not a DescribeAcls response: {body:?}")
    };
    assert_eq!(r.error_code, 0, "{r:?}");
    r.resources.iter().map(|r| r.acls.len()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_matrix() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path(), "acl");
    for t in ["orders", "secret", "logs-app", "logs-private", "public"] {
        create_topic(&broker, t);
    }
    let orders_id = broker.topics.get("orders").unwrap().record.topic_id;
    let secret_id = broker.topics.get("secret").unwrap().record.topic_id;

    // The super user sets up: ACLs through CreateAcls (persisted), a group alice may not
    // see, and records to read.
    let created = send(&broker, "User:admin", ApiKey::CreateAcls, create_acls(ACLS)).await;
    check("admin CreateAcls", &created, Want::Allowed);
    assert!(codes(&created).iter().all(|c| *c == 0), "{created:?}");
    let body = send(
        &broker,
        "User:admin",
        ApiKey::DescribeAcls,
        describe_acls(None),
    )
    .await;
    assert_eq!(described_acls(&body), ACLS.len());
    for (what, key, req) in [
        (
            "admin commit",
            ApiKey::OffsetCommit,
            offset_commit("other-g", "orders"),
        ),
        ("admin produce", ApiKey::Produce, produce("orders")),
        ("admin produce secret", ApiKey::Produce, produce("secret")),
    ] {
        let body = send(&broker, "User:admin", key, req).await;
        assert!(codes(&body).iter().all(|c| *c == 0), "{what}: {body:?}");
    }

    // Metadata lists what alice may describe and nothing else.
    let all = send(&broker, "User:alice", ApiKey::Metadata, metadata(None)).await;
    assert_eq!(metadata_names(&all), ["logs-app", "orders", "public"]);
    let all_admin = send(&broker, "User:admin", ApiKey::Metadata, metadata(None)).await;
    assert!(metadata_names(&all_admin).contains(&"secret".to_string()));
    let ResponseKind::Metadata(m) = &all else {
        unreachable!()
    };
    let orders = m
        .topics
        .iter()
        .find(|t| t.name.as_deref().map(|n| n.as_str()) == Some("orders"));
    // READ and WRITE, and the DESCRIBE they imply.
    assert_eq!(
        orders.map(|t| t.topic_authorized_operations),
        Some((1 << 3) | (1 << 4) | (1 << 8))
    );
    let named = send(
        &broker,
        "User:alice",
        ApiKey::Metadata,
        metadata(Some(&["secret", "nothing-here"])),
    )
    .await;
    let ResponseKind::Metadata(m) = &named else {
        unreachable!()
    };
    // Denied whether or not the topic exists, without its id.
    assert!(
        m.topics
            .iter()
            .all(|t| t.error_code == TOPIC_DENIED && t.topic_id.is_nil()),
        "{m:?}"
    );
    // Auto-creation needs CREATE: alice may describe logs-* but not create them.
    let auto = send(
        &broker,
        "User:alice",
        ApiKey::Metadata,
        metadata(Some(&["logs-new"])),
    )
    .await;
    check(
        "Metadata auto-create logs-new",
        &auto,
        Want::Denied(TOPIC_DENIED),
    );
    assert!(broker.topics.get("logs-new").is_none());
    let auto = send(
        &broker,
        "User:alice",
        ApiKey::Metadata,
        metadata(Some(&["alice-auto"])),
    )
    .await;
    check("Metadata auto-create alice-auto", &auto, Want::Allowed);
    assert!(broker.topics.get("alice-auto").is_some());
    // A DENY on a prefixed ALLOW's topic.
    let private = send(
        &broker,
        "User:alice",
        ApiKey::Metadata,
        metadata(Some(&["logs-private"])),
    )
    .await;
    check(
        "Metadata logs-private",
        &private,
        Want::Denied(TOPIC_DENIED),
    );

    use ApiKey::*;
    // A table, one call per line.
    #[rustfmt::skip]
    let cases: Vec<(&str, ApiKey, RequestKind, Want)> = vec![
        ("Produce orders", Produce, produce("orders"), OK),
        ("Produce secret", Produce, produce("secret"), NO_TOPIC),
        ("Produce public", Produce, produce("public"), NO_TOPIC),
        ("Fetch orders", Fetch, fetch("orders", orders_id), OK),
        ("Fetch secret", Fetch, fetch("secret", secret_id), NO_TOPIC),
        ("ListOffsets orders", ListOffsets, list_offsets("orders"), OK),
        ("ListOffsets secret", ListOffsets, list_offsets("secret"), NO_TOPIC),
        ("OffsetForLeaderEpoch logs-app", OffsetForLeaderEpoch, leader_epoch("logs-app"), OK),
        ("OffsetForLeaderEpoch secret", OffsetForLeaderEpoch, leader_epoch("secret"), NO_TOPIC),
        ("CreateTopics alice-new", CreateTopics, create_topics("alice-new"), OK),
        ("CreateTopics other-new", CreateTopics, create_topics("other-new"), NO_TOPIC),
        ("CreatePartitions alice-new", CreatePartitions, create_partitions("alice-new"), OK),
        ("CreatePartitions orders", CreatePartitions, create_partitions("orders"), NO_TOPIC),
        ("DescribeConfigs alice-new", DescribeConfigs, describe_configs(2, "alice-new"), OK),
        ("DescribeConfigs orders", DescribeConfigs, describe_configs(2, "orders"), NO_TOPIC),
        ("DescribeConfigs broker", DescribeConfigs, describe_configs(4, ""), NO_CLUSTER),
        ("IncrementalAlterConfigs alice-new", IncrementalAlterConfigs, incremental_alter_configs("alice-new"), OK),
        ("IncrementalAlterConfigs orders", IncrementalAlterConfigs, incremental_alter_configs("orders"), NO_TOPIC),
        ("AlterConfigs orders", AlterConfigs, alter_configs("orders"), NO_TOPIC),
        ("DeleteRecords alice-new", DeleteRecords, delete_records("alice-new"), OK),
        ("DeleteRecords orders", DeleteRecords, delete_records("orders"), NO_TOPIC),
        ("DeleteTopics alice-new", DeleteTopics, delete_topics("alice-new"), OK),
        ("DeleteTopics orders", DeleteTopics, delete_topics("orders"), NO_TOPIC),
        ("DeleteTopics secret", DeleteTopics, delete_topics("secret"), NO_TOPIC),
        ("DescribeLogDirs", DescribeLogDirs, RequestKind::DescribeLogDirs(Default::default()), NO_CLUSTER),
        ("ElectLeaders", ElectLeaders, elect_leaders("orders"), NO_CLUSTER),
        ("ListPartitionReassignments", ListPartitionReassignments, RequestKind::ListPartitionReassignments(Default::default()), NO_CLUSTER),
        ("DescribeTopicPartitions logs-app", DescribeTopicPartitions, describe_topic_partitions(&["logs-app"]), OK),
        ("DescribeTopicPartitions secret", DescribeTopicPartitions, describe_topic_partitions(&["secret"]), NO_TOPIC),
        ("FindCoordinator alice-g", FindCoordinator, find_coordinator(0, "alice-g"), OK),
        ("FindCoordinator other-g", FindCoordinator, find_coordinator(0, "other-g"), NO_GROUP),
        ("FindCoordinator alice-txn", FindCoordinator, find_coordinator(1, "alice-txn"), OK),
        ("FindCoordinator other-txn", FindCoordinator, find_coordinator(1, "other-txn"), NO_TXN),
        ("JoinGroup other-g", JoinGroup, join_group("other-g"), NO_GROUP),
        ("SyncGroup other-g", SyncGroup, sync_group("other-g"), NO_GROUP),
        ("Heartbeat alice-g", Heartbeat, heartbeat("alice-g"), OK),
        ("Heartbeat other-g", Heartbeat, heartbeat("other-g"), NO_GROUP),
        ("LeaveGroup other-g", LeaveGroup, leave_group("other-g"), NO_GROUP),
        ("OffsetCommit alice-g orders", OffsetCommit, offset_commit("alice-g", "orders"), OK),
        ("OffsetCommit alice-g secret", OffsetCommit, offset_commit("alice-g", "secret"), NO_TOPIC),
        ("OffsetCommit other-g", OffsetCommit, offset_commit("other-g", "orders"), NO_GROUP),
        ("OffsetFetch alice-g", OffsetFetch, offset_fetch("alice-g", None), OK),
        ("OffsetFetch alice-g secret", OffsetFetch, offset_fetch("alice-g", Some("secret")), NO_TOPIC),
        ("OffsetFetch other-g", OffsetFetch, offset_fetch("other-g", None), NO_GROUP),
        ("OffsetDelete alice-g secret", OffsetDelete, offset_delete("alice-g", "secret"), NO_TOPIC),
        ("OffsetDelete other-g", OffsetDelete, offset_delete("other-g", "orders"), NO_GROUP),
        ("DescribeGroups alice-g", DescribeGroups, describe_groups("alice-g"), OK),
        ("DescribeGroups other-g", DescribeGroups, describe_groups("other-g"), NO_GROUP),
        ("DeleteGroups other-g", DeleteGroups, delete_groups("other-g"), NO_GROUP),
        ("ConsumerGroupHeartbeat other-g", ConsumerGroupHeartbeat, consumer_heartbeat("other-g", "orders"), NO_GROUP),
        ("ConsumerGroupHeartbeat alice-cg secret", ConsumerGroupHeartbeat, consumer_heartbeat("alice-cg", "secret"), NO_TOPIC),
        ("ConsumerGroupDescribe other-g", ConsumerGroupDescribe, consumer_describe("other-g"), NO_GROUP),
        ("InitProducerId idempotent", InitProducerId, init_producer_id(None), OK),
        ("InitProducerId alice-txn", InitProducerId, init_producer_id(Some("alice-txn")), OK),
        ("InitProducerId other-txn", InitProducerId, init_producer_id(Some("other-txn")), NO_TXN),
        ("AddPartitionsToTxn other-txn", AddPartitionsToTxn, add_partitions("other-txn", "orders"), NO_TXN),
        ("AddPartitionsToTxn alice-txn secret", AddPartitionsToTxn, add_partitions("alice-txn", "secret"), NO_TOPIC),
        ("AddPartitionsToTxn alice-txn internal", AddPartitionsToTxn, add_partitions("alice-txn", "__consumer_offsets"), NO_TOPIC),
        ("AddOffsetsToTxn other-txn", AddOffsetsToTxn, add_offsets("other-txn", "alice-g"), NO_TXN),
        ("AddOffsetsToTxn other-g", AddOffsetsToTxn, add_offsets("alice-txn", "other-g"), NO_GROUP),
        ("EndTxn other-txn", EndTxn, end_txn("other-txn"), NO_TXN),
        ("TxnOffsetCommit other-txn", TxnOffsetCommit, txn_offset_commit("other-txn", "alice-g", "orders"), NO_TXN),
        ("TxnOffsetCommit other-g", TxnOffsetCommit, txn_offset_commit("alice-txn", "other-g", "orders"), NO_GROUP),
        ("TxnOffsetCommit secret", TxnOffsetCommit, txn_offset_commit("alice-txn", "alice-g", "secret"), NO_TOPIC),
        ("DescribeTransactions alice-txn", DescribeTransactions, describe_transactions("alice-txn"), OK),
        ("DescribeTransactions other-txn", DescribeTransactions, describe_transactions("other-txn"), NO_TXN),
        ("ListTransactions", ListTransactions, RequestKind::ListTransactions(Default::default()), OK),
        ("DescribeProducers orders", DescribeProducers, describe_producers("orders"), OK),
        ("DescribeProducers logs-app", DescribeProducers, describe_producers("logs-app"), NO_TOPIC),
        ("DescribeCluster", DescribeCluster, RequestKind::DescribeCluster(DescribeClusterRequest::default().with_include_cluster_authorized_operations(true)), OK),
        ("ListGroups", ListGroups, RequestKind::ListGroups(Default::default()), OK),
        ("DescribeAcls", DescribeAcls, describe_acls(None), NO_CLUSTER),
        ("CreateAcls", CreateAcls, create_acls(&["ALLOW User:alice * ALL TOPIC:LITERAL:*"]), NO_CLUSTER),
        ("DeleteAcls", DeleteAcls, delete_acls(ACLS[0]), NO_CLUSTER),
    ];
    for (what, key, req, want) in cases {
        let body = send(&broker, "User:alice", key, req).await;
        check(what, &body, want);
    }

    // Filters: alice sees only the groups and transactional ids she may describe, and no
    // cluster operations.
    let body = send(
        &broker,
        "User:alice",
        ApiKey::ListGroups,
        RequestKind::ListGroups(Default::default()),
    )
    .await;
    let ResponseKind::ListGroups(groups) = &body else {
        unreachable!()
    };
    let listed: Vec<&str> = groups
        .groups
        .iter()
        .map(|g| g.group_id.0.as_str())
        .collect();
    assert!(
        listed.contains(&"alice-g") && !listed.contains(&"other-g"),
        "{listed:?}"
    );
    let body = send(
        &broker,
        "User:alice",
        ApiKey::ListTransactions,
        RequestKind::ListTransactions(Default::default()),
    )
    .await;
    let ResponseKind::ListTransactions(txns) = &body else {
        unreachable!()
    };
    assert!(
        txns.transaction_states
            .iter()
            .all(|t| t.transactional_id.0.as_str() == "alice-txn"),
        "{txns:?}"
    );
    let body = send(
        &broker,
        "User:alice",
        ApiKey::DescribeCluster,
        RequestKind::DescribeCluster(
            DescribeClusterRequest::default().with_include_cluster_authorized_operations(true),
        ),
    )
    .await;
    let ResponseKind::DescribeCluster(c) = &body else {
        unreachable!()
    };
    assert_eq!(c.cluster_authorized_operations, 0);
    // Someone without any ACL is denied idempotent production (no WRITE on any topic).
    let body = send(
        &broker,
        "User:carol",
        ApiKey::InitProducerId,
        init_producer_id(None),
    )
    .await;
    check("carol InitProducerId", &body, Want::Denied(CLUSTER_DENIED));
    // The wildcard principal: anyone may describe `public`.
    let body = send(&broker, "User:carol", ApiKey::Metadata, metadata(None)).await;
    assert_eq!(metadata_names(&body), ["public"]);

    // Deleting alice's WRITE takes effect at once.
    let body = send(
        &broker,
        "User:admin",
        ApiKey::DeleteAcls,
        delete_acls(ACLS[0]),
    )
    .await;
    let ResponseKind::DeleteAcls(d) = &body else {
        unreachable!()
    };
    assert_eq!(d.filter_results[0].matching_acls.len(), 1, "{d:?}");
    let body = send(&broker, "User:alice", ApiKey::Produce, produce("orders")).await;
    check(
        "Produce orders after DeleteAcls",
        &body,
        Want::Denied(TOPIC_DENIED),
    );

    // The ACLs are in the metadata store: a reopened broker decides the same.
    broker.topics.shutdown().unwrap();
    drop(broker);
    let broker = open(dir.path(), "acl");
    let body = send(
        &broker,
        "User:admin",
        ApiKey::DescribeAcls,
        describe_acls(Some("User:alice")),
    )
    .await;
    assert_eq!(described_acls(&body), ACLS.len() - 2);
    for (what, key, req, want) in [
        (
            "reopened Produce orders",
            ApiKey::Produce,
            produce("orders"),
            Want::Denied(TOPIC_DENIED),
        ),
        (
            "reopened Fetch orders",
            ApiKey::Fetch,
            fetch("orders", orders_id),
            Want::Allowed,
        ),
        (
            "reopened Fetch secret",
            ApiKey::Fetch,
            fetch("secret", secret_id),
            Want::Denied(TOPIC_DENIED),
        ),
    ] {
        let body = send(&broker, "User:alice", key, req).await;
        check(what, &body, want);
    }
    let all = send(&broker, "User:alice", ApiKey::Metadata, metadata(None)).await;
    assert_eq!(
        metadata_names(&all),
        ["alice-auto", "logs-app", "orders", "public"]
    );
    broker.topics.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_apis_validate_and_answer_security_disabled_without_an_authorizer() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path(), "");
    for (key, req) in [
        (ApiKey::DescribeAcls, describe_acls(None)),
        (ApiKey::CreateAcls, create_acls(&[ACLS[0]])),
        (ApiKey::DeleteAcls, delete_acls(ACLS[0])),
    ] {
        let body = send(&broker, "User:ANONYMOUS", key, req).await;
        assert_eq!(
            codes(&body),
            [ResponseError::SecurityDisabled.code()],
            "{body:?}"
        );
    }
    broker.topics.shutdown().unwrap();
    drop(broker);

    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path(), "acl");
    // A bad binding is refused; the good one beside it is created.
    let mut bad = creation(ACLS[0]);
    bad.resource_pattern_type = 2; // MATCH
    let mut cluster = creation(ACLS[0]);
    cluster.resource_type = 4;
    let req = RequestKind::CreateAcls(CreateAclsRequest::default().with_creations(vec![
        bad,
        creation(ACLS[1]),
        cluster,
    ]));
    let body = send(&broker, "User:admin", ApiKey::CreateAcls, req).await;
    let invalid = ResponseError::InvalidRequest.code();
    assert_eq!(codes(&body), [invalid, 0, invalid], "{body:?}");
    // Creating it again does not duplicate it.
    let body = send(
        &broker,
        "User:admin",
        ApiKey::CreateAcls,
        create_acls(&[ACLS[1]]),
    )
    .await;
    assert_eq!(codes(&body), [0]);
    let body = send(
        &broker,
        "User:admin",
        ApiKey::DescribeAcls,
        describe_acls(None),
    )
    .await;
    assert_eq!(described_acls(&body), 1);
    // Filters with unknown enums.
    let bad_filter =
        RequestKind::DescribeAcls(DescribeAclsRequest::default().with_resource_type_filter(42));
    let body = send(&broker, "User:admin", ApiKey::DescribeAcls, bad_filter).await;
    assert_eq!(codes(&body), [invalid]);
    let bad_delete = RequestKind::DeleteAcls(
        DeleteAclsRequest::default()
            .with_filters(vec![delete_acls_request::DeleteAclsFilter::default()]),
    );
    let body = send(&broker, "User:admin", ApiKey::DeleteAcls, bad_delete).await;
    assert_eq!(codes(&body), [invalid]);
    // The oldest served versions work too.
    let body = send_at(
        &broker,
        "User:admin",
        ApiKey::DescribeAcls,
        1,
        describe_acls(None),
    )
    .await;
    assert_eq!(described_acls(&body), 1);
    broker.topics.shutdown().unwrap();
}

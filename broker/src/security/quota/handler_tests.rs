//! DescribeClientQuotas and AlterClientQuotas through `handlers::dispatch` on a broker over
//! a temporary data directory: validation, match types, persistence, and the quota
//! manager seeing what was altered.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use floe_protocol::request::parse_request;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::*;

use super::entity::{
    CLIENT_ID, CONNECTION_CREATION_RATE, CONSUMER_BYTE_RATE, IP, PRODUCER_BYTE_RATE,
    REQUEST_PERCENTAGE, USER,
};
use crate::config::Config;
use crate::handlers::describe_client_quotas::{
    MATCH_TYPE_DEFAULT, MATCH_TYPE_EXACT, MATCH_TYPE_SPECIFIED,
};
use crate::handlers::{self, Reply, RequestContext, str_bytes};
use crate::metadata_store::FileMetadataStore;
use crate::security::{Security, Session};
use crate::state::{Broker, Endpoint};
use crate::topics::Topics;

struct TestBroker {
    broker: Arc<Broker>,
    _dir: tempfile::TempDir,
}

/// A broker over a fresh directory; with `authorize`, ACLs are checked (and there are
/// none, so an anonymous client may do nothing).
fn open(authorize: bool) -> TestBroker {
    let dir = tempfile::tempdir().unwrap();
    let broker = open_at(dir.path(), authorize);
    TestBroker { broker, _dir: dir }
}

fn open_at(path: &std::path::Path, authorize: bool) -> Arc<Broker> {
    let config = Arc::new(Config {
        data_dir: path.to_path_buf(),
        authorizer_class_name: if authorize {
            "acl".into()
        } else {
            String::new()
        },
        ..Config::default()
    });
    let logs = Arc::new(floe_storage::LogManager::open(path).unwrap());
    let store = Box::new(FileMetadataStore::new(path));
    let topics = Topics::open(config.clone(), store, logs).unwrap();
    let security = Security::new(&config, &topics.security()).unwrap();
    let endpoint = Endpoint {
        node_id: config.node_id,
        host: "127.0.0.1".into(),
        port: 9092,
    };
    Arc::new(Broker::new(config, endpoint, topics, security))
}

async fn call(broker: &Arc<Broker>, key: ApiKey, version: i16, body: RequestKind) -> ResponseKind {
    let data = crate::fuzz::encode_request(key, version, &body).unwrap();
    let frame = parse_request(Bytes::from(data)).unwrap();
    let ctx = RequestContext {
        broker: broker.clone(),
        peer: SocketAddr::from((Ipv4Addr::LOCALHOST, 40_000)),
        header: frame.header.clone(),
        session: Arc::new(Session::anonymous(Ipv4Addr::LOCALHOST.into())),
    };
    let out = handlers::dispatch(&ctx, &frame).await.unwrap().unwrap();
    match out.reply {
        Reply::Now(body) => *body,
        Reply::Later(body) => body.await,
        Reply::Fetch(_) | Reply::Raw(_) => panic!("a fetch or raw reply to a quota request"),
    }
}

fn entity(parts: &[(&str, Option<&str>)]) -> Vec<EntityData> {
    parts
        .iter()
        .map(|(t, n)| {
            EntityData::default()
                .with_entity_type(str_bytes(t))
                .with_entity_name(n.map(str_bytes))
        })
        .collect()
}

fn set(key: &str, value: f64) -> OpData {
    OpData::default().with_key(str_bytes(key)).with_value(value)
}

fn remove(key: &str) -> OpData {
    OpData::default().with_key(str_bytes(key)).with_remove(true)
}

fn entry(parts: &[(&str, Option<&str>)], ops: Vec<OpData>) -> EntryData {
    EntryData::default()
        .with_entity(entity(parts))
        .with_ops(ops)
}

/// Alters at v1 (and v0 for the first check); one (code, message) per entry.
async fn alter(
    broker: &Arc<Broker>,
    entries: Vec<EntryData>,
    validate_only: bool,
) -> Vec<(i16, Option<String>)> {
    let req = AlterClientQuotasRequest::default()
        .with_entries(entries)
        .with_validate_only(validate_only);
    let ResponseKind::AlterClientQuotas(resp) = call(
        broker,
        ApiKey::AlterClientQuotas,
        1,
        RequestKind::AlterClientQuotas(req),
    )
    .await
    else {
        panic!("not an AlterClientQuotas response");
    };
    resp.entries
        .iter()
        .map(|e| (e.error_code, e.error_message.as_deref().map(str::to_string)))
        .collect()
}

/// A describe filter component.
fn component(entity_type: &str, match_type: i8, name: Option<&str>) -> ComponentData {
    ComponentData::default()
        .with_entity_type(str_bytes(entity_type))
        .with_match_type(match_type)
        .with_match(name.map(str_bytes))
}

/// The described entries as sorted `type=name,...` strings with their values, or the
/// error.
async fn describe(
    broker: &Arc<Broker>,
    version: i16,
    components: Vec<ComponentData>,
    strict: bool,
) -> Result<Vec<String>, (i16, String)> {
    let req = DescribeClientQuotasRequest::default()
        .with_components(components)
        .with_strict(strict);
    let ResponseKind::DescribeClientQuotas(resp) = call(
        broker,
        ApiKey::DescribeClientQuotas,
        version,
        RequestKind::DescribeClientQuotas(req),
    )
    .await
    else {
        panic!("not a DescribeClientQuotas response");
    };
    if resp.error_code != 0 {
        assert!(resp.entries.is_none());
        let message = resp
            .error_message
            .as_deref()
            .unwrap_or_default()
            .to_string();
        return Err((resp.error_code, message));
    }
    let mut out: Vec<String> = resp
        .entries
        .unwrap()
        .iter()
        .map(|e| {
            let mut parts: Vec<String> = e
                .entity
                .iter()
                .map(|d| {
                    let name = d.entity_name.as_deref().unwrap_or("<default>");
                    format!("{}={name}", &*d.entity_type)
                })
                .collect();
            parts.sort();
            let values: Vec<String> = e
                .values
                .iter()
                .map(|v| format!("{}:{}", &*v.key, v.value))
                .collect();
            format!("{} {}", parts.join(","), values.join(","))
        })
        .collect();
    out.sort();
    Ok(out)
}

const OK: (i16, Option<String>) = (0, None);

fn invalid(message: &str) -> (i16, Option<String>) {
    (
        ResponseError::InvalidRequest.code(),
        Some(message.to_string()),
    )
}

/// Sets a quota on each of the 8 user/client-id levels and one IP default.
async fn populate(broker: &Arc<Broker>) {
    let entries = vec![
        entry(
            &[(USER, Some("alice")), (CLIENT_ID, Some("app"))],
            vec![set(PRODUCER_BYTE_RATE, 1000.0)],
        ),
        entry(
            &[(USER, Some("alice")), (CLIENT_ID, None)],
            vec![set(PRODUCER_BYTE_RATE, 2000.0)],
        ),
        entry(
            &[(USER, Some("alice"))],
            vec![
                set(CONSUMER_BYTE_RATE, 3000.0),
                set(REQUEST_PERCENTAGE, 25.5),
            ],
        ),
        entry(
            &[(USER, None), (CLIENT_ID, Some("app"))],
            vec![set(PRODUCER_BYTE_RATE, 4000.0)],
        ),
        entry(
            &[(USER, None), (CLIENT_ID, None)],
            vec![set(PRODUCER_BYTE_RATE, 5000.0)],
        ),
        entry(&[(USER, None)], vec![set(PRODUCER_BYTE_RATE, 6000.0)]),
        entry(
            &[(CLIENT_ID, Some("app"))],
            vec![set(PRODUCER_BYTE_RATE, 7000.0)],
        ),
        entry(&[(CLIENT_ID, None)], vec![set(PRODUCER_BYTE_RATE, 8000.0)]),
        entry(&[(IP, None)], vec![set(CONNECTION_CREATION_RATE, 10.0)]),
    ];
    let n = entries.len();
    assert_eq!(alter(broker, entries, false).await, vec![OK; n]);
}

#[tokio::test]
async fn altered_quotas_are_described_persisted_and_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open_at(dir.path(), false);
    assert!(!broker.security.quotas.enabled());
    populate(&broker).await;
    assert!(broker.security.quotas.enabled());
    assert_eq!(
        describe(
            &broker,
            1,
            vec![component(USER, MATCH_TYPE_EXACT, Some("alice"))],
            true
        )
        .await,
        Ok(vec![
            "user=alice consumer_byte_rate:3000,request_percentage:25.5".to_string()
        ])
    );
    // The quota manager has them: 1000 B/s for (alice, app), a 10 s padded span.
    let now = Instant::now();
    let quotas = &broker.security.quotas;
    assert_eq!(
        quotas.record_produce("alice", "app", 10_000, now),
        Duration::ZERO
    );
    assert!(quotas.record_produce("alice", "app", 100, now) > Duration::ZERO);
    // And they survive a restart.
    drop(broker);
    let reopened = open_at(dir.path(), false);
    assert!(reopened.security.quotas.enabled());
    assert_eq!(
        describe(&reopened, 0, vec![], false).await.unwrap().len(),
        9
    );
}

#[tokio::test]
async fn match_types_select_entities_as_kafka_does() {
    let b = open(false);
    populate(&b.broker).await;
    let user_client =
        |u: &str, c: &str, v: u32| format!("client-id={c},user={u} producer_byte_rate:{v}");
    // EXACT user, not strict: every entity with user=alice.
    let got = describe(
        &b.broker,
        1,
        vec![component(USER, MATCH_TYPE_EXACT, Some("alice"))],
        false,
    )
    .await
    .unwrap();
    assert_eq!(
        got,
        vec![
            user_client("alice", "<default>", 2000),
            user_client("alice", "app", 1000),
            "user=alice consumer_byte_rate:3000,request_percentage:25.5".to_string(),
        ]
    );
    // DEFAULT user, strict: only /config/users/<default>.
    let got = describe(
        &b.broker,
        1,
        vec![component(USER, MATCH_TYPE_DEFAULT, None)],
        true,
    )
    .await
    .unwrap();
    assert_eq!(
        got,
        vec!["user=<default> producer_byte_rate:6000".to_string()]
    );
    // SPECIFIED client-id with DEFAULT user: the <default> user's client entities.
    let got = describe(
        &b.broker,
        1,
        vec![
            component(USER, MATCH_TYPE_DEFAULT, None),
            component(CLIENT_ID, MATCH_TYPE_SPECIFIED, None),
        ],
        false,
    )
    .await
    .unwrap();
    assert_eq!(
        got,
        vec![
            user_client("<default>", "<default>", 5000),
            user_client("<default>", "app", 4000),
        ]
    );
    // SPECIFIED client-id, strict: client-id entities alone.
    let got = describe(
        &b.broker,
        1,
        vec![component(CLIENT_ID, MATCH_TYPE_SPECIFIED, None)],
        true,
    )
    .await
    .unwrap();
    assert_eq!(
        got,
        vec![
            "client-id=<default> producer_byte_rate:8000".to_string(),
            "client-id=app producer_byte_rate:7000".to_string(),
        ]
    );
    // IP entities.
    let got = describe(
        &b.broker,
        1,
        vec![component(IP, MATCH_TYPE_SPECIFIED, None)],
        false,
    )
    .await
    .unwrap();
    assert_eq!(
        got,
        vec!["ip=<default> connection_creation_rate:10".to_string()]
    );
    // No components: everything, or nothing when strict.
    assert_eq!(
        describe(&b.broker, 1, vec![], false).await.unwrap().len(),
        9
    );
    assert_eq!(describe(&b.broker, 1, vec![], true).await.unwrap().len(), 0);
    // A name that matches nothing.
    let got = describe(
        &b.broker,
        1,
        vec![component(USER, MATCH_TYPE_EXACT, Some("nobody"))],
        false,
    )
    .await
    .unwrap();
    assert!(got.is_empty());
}

#[tokio::test]
async fn malformed_describe_filters_are_refused_with_kafkas_errors() {
    let b = open(false);
    let invalid_request = ResponseError::InvalidRequest.code();
    let cases: Vec<(Vec<ComponentData>, i16, &str)> = vec![
        (
            vec![component("", MATCH_TYPE_SPECIFIED, None)],
            invalid_request,
            "Invalid empty entity type.",
        ),
        (
            vec![
                component(USER, MATCH_TYPE_SPECIFIED, None),
                component(USER, MATCH_TYPE_DEFAULT, None),
            ],
            invalid_request,
            "Entity type user cannot appear more than once in the filter.",
        ),
        (
            vec![component("group", MATCH_TYPE_SPECIFIED, None)],
            ResponseError::UnsupportedVersion.code(),
            "Unsupported entity type group",
        ),
        (
            vec![component(USER, MATCH_TYPE_EXACT, None)],
            invalid_request,
            "Request specified MATCH_TYPE_EXACT, but set match string to null.",
        ),
        (
            vec![component(USER, MATCH_TYPE_DEFAULT, Some("alice"))],
            invalid_request,
            "Request specified MATCH_TYPE_DEFAULT, but also specified a match string.",
        ),
        (
            vec![component(USER, MATCH_TYPE_SPECIFIED, Some("alice"))],
            invalid_request,
            "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string.",
        ),
        (
            vec![component(USER, 7, None)],
            invalid_request,
            "Unknown match type 7",
        ),
        (
            vec![
                component(IP, MATCH_TYPE_SPECIFIED, None),
                component(CLIENT_ID, MATCH_TYPE_SPECIFIED, None),
            ],
            invalid_request,
            "Invalid entity filter component combination. IP filter component should not be \
             used with user or clientId filter component.",
        ),
    ];
    for (components, code, message) in cases {
        assert_eq!(
            describe(&b.broker, 1, components, false).await,
            Err((code, message.to_string()))
        );
    }
}

#[tokio::test]
async fn invalid_alterations_are_refused_entry_by_entry() {
    let b = open(false);
    let entries = vec![
        entry(&[(USER, Some("alice"))], vec![set("bogus_rate", 1.0)]),
        entry(&[(USER, Some("bob"))], vec![set(PRODUCER_BYTE_RATE, 0.0)]),
        entry(
            &[(USER, Some("carol"))],
            vec![set(CONSUMER_BYTE_RATE, -10.0)],
        ),
        entry(&[(USER, Some("dave"))], vec![set(PRODUCER_BYTE_RATE, 1.5)]),
        entry(
            &[(IP, Some("10.0.0.1")), (USER, Some("eve"))],
            vec![set(CONNECTION_CREATION_RATE, 1.0)],
        ),
        entry(
            &[(IP, Some("not-an-ip"))],
            vec![set(CONNECTION_CREATION_RATE, 1.0)],
        ),
        entry(
            &[(IP, Some("10.0.0.1"))],
            vec![set(PRODUCER_BYTE_RATE, 1.0)],
        ),
        entry(&[(USER, Some(""))], vec![set(PRODUCER_BYTE_RATE, 1.0)]),
        entry(&[("group", Some("g"))], vec![set(PRODUCER_BYTE_RATE, 1.0)]),
        entry(&[], vec![set(PRODUCER_BYTE_RATE, 1.0)]),
        entry(
            &[(CLIENT_ID, Some("a")), (CLIENT_ID, Some("b"))],
            vec![set(PRODUCER_BYTE_RATE, 1.0)],
        ),
        entry(
            &[(CLIENT_ID, Some("twice"))],
            vec![set(PRODUCER_BYTE_RATE, 1.0), set(PRODUCER_BYTE_RATE, 2.0)],
        ),
        entry(
            &[(USER, Some("frank"))],
            vec![set(REQUEST_PERCENTAGE, f64::NAN)],
        ),
        // Valid: applied although its neighbours are not.
        entry(
            &[(USER, Some("grace"))],
            vec![set(PRODUCER_BYTE_RATE, 100.0)],
        ),
        // One bad key refuses the whole entry.
        entry(
            &[(USER, Some("heidi"))],
            vec![set(PRODUCER_BYTE_RATE, 100.0), set("nope", 1.0)],
        ),
    ];
    let got = alter(&b.broker, entries, false).await;
    assert_eq!(
        got,
        vec![
            invalid("Invalid configuration key bogus_rate"),
            invalid("Quota producer_byte_rate must be greater than 0"),
            invalid("Quota consumer_byte_rate must be greater than 0"),
            invalid("producer_byte_rate cannot be a fractional value."),
            invalid(
                "Invalid quota entity combination, IP entity should not be combined with \
                 User or ClientId"
            ),
            invalid("not-an-ip is not a valid IP address"),
            invalid("Invalid configuration key producer_byte_rate"),
            invalid("Empty user not supported"),
            invalid("Unhandled client quota entity type: group"),
            invalid("Invalid empty client quota entity"),
            invalid("Invalid client quota entity, duplicate entity entry client-id"),
            invalid(
                "Duplicate quota key producer_byte_rate not updating quota for this entity \
                 client-id=twice"
            ),
            invalid("Quota request_percentage must be a finite number"),
            OK,
            invalid("Invalid configuration key nope"),
        ]
    );
    assert_eq!(
        describe(&b.broker, 1, vec![], false).await.unwrap(),
        vec!["user=grace producer_byte_rate:100".to_string()]
    );
}

#[tokio::test]
async fn an_entity_named_twice_is_refused_in_both_entries() {
    let b = open(false);
    let entries = vec![
        entry(
            &[(USER, Some("alice")), (CLIENT_ID, Some("app"))],
            vec![set(PRODUCER_BYTE_RATE, 1.0)],
        ),
        // The same entity, its parts in the other order.
        entry(
            &[(CLIENT_ID, Some("app")), (USER, Some("alice"))],
            vec![set(CONSUMER_BYTE_RATE, 1.0)],
        ),
    ];
    let message = "Ignoring duplicate entity client-id=app, user=alice";
    assert_eq!(
        alter(&b.broker, entries, false).await,
        vec![invalid(message), invalid(message)]
    );
    assert!(
        describe(&b.broker, 1, vec![], false)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn removing_quotas_and_validate_only() {
    let b = open(false);
    let alice = [(USER, Some("alice"))];
    let both = vec![
        set(PRODUCER_BYTE_RATE, 100.0),
        set(CONSUMER_BYTE_RATE, 200.0),
    ];
    // validate_only: answered, nothing written, nothing enforced.
    assert_eq!(
        alter(&b.broker, vec![entry(&alice, both.clone())], true).await,
        vec![OK]
    );
    assert!(
        describe(&b.broker, 1, vec![], false)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!b.broker.security.quotas.enabled());
    assert!(b.broker.topics.security().client_quotas.is_empty());
    // validate_only still validates.
    assert_eq!(
        alter(&b.broker, vec![entry(&alice, vec![set("x", 1.0)])], true).await,
        vec![invalid("Invalid configuration key x")]
    );

    assert_eq!(
        alter(&b.broker, vec![entry(&alice, both)], false).await,
        vec![OK]
    );
    // Removing one key keeps the other; removing a key that is not set does nothing,
    // whatever its name (Kafka does not check the keys of removals).
    let ops = vec![remove(PRODUCER_BYTE_RATE), remove("never_set")];
    assert_eq!(
        alter(&b.broker, vec![entry(&alice, ops)], false).await,
        vec![OK]
    );
    assert_eq!(
        describe(&b.broker, 1, vec![], false).await.unwrap(),
        vec!["user=alice consumer_byte_rate:200".to_string()]
    );
    assert_eq!(
        b.broker
            .security
            .quotas
            .record_produce("alice", "c", u64::MAX, Instant::now()),
        Duration::ZERO
    );
    // Removing the last key forgets the entity and turns measuring off.
    let ops = vec![remove(CONSUMER_BYTE_RATE)];
    assert_eq!(
        alter(&b.broker, vec![entry(&alice, ops)], false).await,
        vec![OK]
    );
    assert!(
        describe(&b.broker, 1, vec![], false)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(b.broker.topics.security().client_quotas.is_empty());
    assert!(!b.broker.security.quotas.enabled());
}

#[tokio::test]
async fn both_versions_of_alter_are_served() {
    let b = open(false);
    for version in 0..=1 {
        let req = AlterClientQuotasRequest::default().with_entries(vec![entry(
            &[(CLIENT_ID, Some(&format!("v{version}")))],
            vec![set(PRODUCER_BYTE_RATE, 10.0)],
        )]);
        let ResponseKind::AlterClientQuotas(resp) = call(
            &b.broker,
            ApiKey::AlterClientQuotas,
            version,
            RequestKind::AlterClientQuotas(req),
        )
        .await
        else {
            panic!("not an AlterClientQuotas response");
        };
        assert_eq!(resp.entries[0].error_code, 0);
        assert_eq!(&*resp.entries[0].entity[0].entity_type, CLIENT_ID);
    }
    assert_eq!(
        describe(&b.broker, 0, vec![], false).await.unwrap().len(),
        2
    );
}

#[tokio::test]
async fn both_apis_need_their_cluster_permission() {
    let b = open(true);
    let denied = ResponseError::ClusterAuthorizationFailed.code();
    let got = alter(
        &b.broker,
        vec![entry(
            &[(USER, Some("alice"))],
            vec![set(PRODUCER_BYTE_RATE, 1.0)],
        )],
        false,
    )
    .await;
    assert_eq!(
        got,
        vec![(denied, Some("Cluster authorization failed.".into()))]
    );
    assert!(b.broker.topics.security().client_quotas.is_empty());
    assert_eq!(
        describe(&b.broker, 1, vec![], false).await,
        Err((denied, "Cluster authorization failed.".to_string()))
    );
}

/// Mutated DescribeClientQuotas and AlterClientQuotas frames through the real handlers:
/// nothing panics and every answer encodes. The broker-wide `fuzz_dispatch` starts from
/// empty requests of these APIs; these seeds carry entities, filters and ops.
#[test]
fn mutated_quota_requests_never_panic() {
    use floe_protocol::fuzz::{cases, run};

    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let broker = rt
        .block_on(async { crate::fuzz::FuzzBroker::open(dir.path()) })
        .unwrap();
    let alter = AlterClientQuotasRequest::default().with_entries(vec![
        entry(
            &[(USER, Some("alice")), (CLIENT_ID, None)],
            vec![set(PRODUCER_BYTE_RATE, 1024.0), remove(CONSUMER_BYTE_RATE)],
        ),
        entry(
            &[(IP, Some("10.0.0.1"))],
            vec![set(CONNECTION_CREATION_RATE, 5.0)],
        ),
    ]);
    let describe = DescribeClientQuotasRequest::default().with_components(vec![
        component(USER, MATCH_TYPE_EXACT, Some("alice")),
        component(CLIENT_ID, MATCH_TYPE_SPECIFIED, None),
    ]);
    let mut corpus = Vec::new();
    for version in 0..=1 {
        for (key, body) in [
            (
                ApiKey::AlterClientQuotas,
                RequestKind::AlterClientQuotas(alter.clone()),
            ),
            (
                ApiKey::DescribeClientQuotas,
                RequestKind::DescribeClientQuotas(describe.clone()),
            ),
        ] {
            corpus.push(crate::fuzz::encode_request(key, version, &body).unwrap());
        }
    }
    let answered = std::cell::Cell::new(0usize);
    let cases = cases(10_000);
    run(
        "client_quotas",
        cases,
        &corpus,
        crate::fuzz::mutate_request,
        |data| {
            if rt.block_on(broker.dispatch(data)) == crate::fuzz::Dispatched::Answered {
                answered.set(answered.get() + 1);
            }
        },
    );
    assert!(
        answered.get() >= cases / 8,
        "only {} answered",
        answered.get()
    );
}

//! Floe's built-in schema registry (issue 17, acceptances 1 and 5) with confluent-kafka's own
//! `SchemaRegistryClient` and its Avro, Protobuf and JSON Schema serializers: schemas are
//! registered on first use, records produced and consumed through the broker and
//! deserialized with the schemas fetched back by id; incompatible and invalid schemas are
//! refused with Confluent's error codes; and everything, ids included, is the same after a
//! kill -9 and restart (the registry's records are fsynced to the `_schemas` topic
//! before it answers). The checks live in
//! `tests/clients/python/schema_registry_check.py`.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use floe_tests::{Broker, client_command, clients_dir, http_get, python, run_ok_with};

const RECORDS: usize = 300;
const FORMATS: [&str; 3] = ["avro", "protobuf", "json"];

fn check(broker: &Broker, args: &[&str]) -> String {
    let mut cmd = client_command(python());
    cmd.arg(
        clients_dir()
            .join("python")
            .join("schema_registry_check.py"),
    )
    .args(args)
    .arg("--bootstrap")
    .arg(broker.bootstrap())
    .arg("--registry")
    .arg(format!("http://127.0.0.1:{}", broker.http_port));
    let out = run_ok_with(&mut cmd, b"", Duration::from_secs(300));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{stdout}");
    stdout
}

/// Everything the registry holds, as its own listings show it.
fn snapshot(broker: &Broker) -> Vec<String> {
    [
        "/subjects?deleted=true",
        "/schemas?deleted=true",
        "/config",
        "/mode",
    ]
    .iter()
    .map(|path| {
        let (status, body) = http_get(broker.http_port, path).unwrap();
        assert_eq!(status, 200, "{path}: {body}");
        body
    })
    .collect()
}

#[test]
fn serializers_register_produce_consume_and_everything_survives_a_restart() {
    let mut broker = Broker::start();
    // Before anything was registered: an empty registry, not an error.
    let (status, body) = http_get(broker.http_port, "/subjects").unwrap();
    assert_eq!((status, body.as_str()), (200, "[]"));

    let out = check(&broker, &["compat", "--topic", "sr"]);
    assert!(out.contains("OK: compatibility"), "{out}");
    let count = RECORDS.to_string();
    for format in FORMATS {
        let topic = format!("orders-{format}");
        let out = check(
            &broker,
            &[
                "produce", "--format", format, "--topic", &topic, "--count", &count,
            ],
        );
        assert!(out.contains(&format!("OK: produced {RECORDS}")), "{out}");
        let out = check(
            &broker,
            &[
                "consume", "--format", format, "--topic", &topic, "--count", &count,
            ],
        );
        assert!(
            out.contains(&format!("OK: consumed and deserialized {RECORDS}")),
            "{out}"
        );
    }
    // The Protobuf dependency was registered as its own subject and referenced.
    let (_, subjects) = http_get(broker.http_port, "/subjects").unwrap();
    assert!(subjects.contains("floe_test/money.proto"), "{subjects}");
    let (_, latest) = http_get(
        broker.http_port,
        "/subjects/orders-protobuf-value/versions/latest",
    )
    .unwrap();
    assert!(
        latest.contains("\"references\"") && latest.contains("floe_test/money.proto"),
        "{latest}"
    );

    let before = snapshot(&broker);
    // kill -9: every acknowledged registration was fsynced to `_schemas` before its answer.
    broker.kill9();
    broker.restart();
    assert_eq!(
        snapshot(&broker),
        before,
        "the registry changed across a restart"
    );
    // Fresh processes: the deserializers fetch every schema by id from the restarted
    // registry; producing again re-registers the same schemas and gets the same ids.
    for format in FORMATS {
        let topic = format!("orders-{format}");
        let out = check(
            &broker,
            &[
                "consume", "--format", format, "--topic", &topic, "--count", &count,
            ],
        );
        assert!(
            out.contains(&format!("OK: consumed and deserialized {RECORDS}")),
            "{out}"
        );
        let out = check(
            &broker,
            &[
                "produce",
                "--format",
                format,
                "--topic",
                &format!("again-{format}"),
                "--count",
                "10",
            ],
        );
        let first = before[1].clone();
        let id = out
            .split(" id ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .unwrap()
            .to_string();
        assert!(
            first.contains(&format!("\"id\":{id},")),
            "id {id} is new: {out}"
        );
    }
    // Every `_schemas` record written was replayed, none skipped as undecodable.
    let log = broker.log();
    assert!(!log.contains("skipping an undecodable record"), "{log}");
}

/// `confluent.value.schema.validation=true`: a value serialized with the topic's subject is
/// accepted; one naming another subject's schema, an unknown id or no wire-format header is
/// refused with INVALID_RECORD, and only the accepted records are in the log.
#[test]
fn schema_validation_refuses_records_of_other_schemas() {
    let broker = Broker::start();
    let out = check(&broker, &["validate", "--topic", "validated"]);
    assert!(
        out.contains("OK: schema validation refused 3 records"),
        "{out}"
    );
    assert!(
        broker.log().contains("failed schema validation"),
        "the refusals are logged"
    );
}

//! Typed Iceberg tables from the schema registry (issue 17, acceptances 2, 3 and 4):
//! topics with `table.mode=schema` fed by confluent-kafka's Avro, Protobuf and JSON Schema
//! serializers are read back by pyiceberg and DuckDB as typed columns (nested records,
//! arrays, maps, decimals, timestamps) equal to what was produced; a compatible version that
//! adds a field mid-stream adds the column without a restart (old rows null, new rows the
//! value); records with an unknown schema id, a payload that does not decode or no
//! wire-format header go to the `_dlq` table with the error while the table goes on; with
//! `table.schema.wire.format=false` bare payloads are decoded with the subject's latest
//! version. The
//! checks live in `tests/clients/python/schema_table_check.py`.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use floe_tests::{Broker, client_command, clients_dir, python, run_ok_with};

fn check(broker: &Broker, format: &str) -> String {
    let mut cmd = client_command(python());
    cmd.arg(clients_dir().join("python").join("schema_table_check.py"))
        .arg(format)
        .arg("--bootstrap")
        .arg(broker.bootstrap())
        .arg("--registry")
        .arg(format!("http://127.0.0.1:{}", broker.http_port))
        .arg("--data-dir")
        .arg(&broker.data_dir)
        .args(["--count", "400"]);
    let out = run_ok_with(&mut cmd, b"", Duration::from_secs(400));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{stdout}");
    stdout
}

/// One broker, the three schema types in turn.
#[test]
fn avro_protobuf_and_json_schema_tables_are_typed_evolve_and_keep_bad_records() {
    let broker = Broker::start();
    for format in ["avro", "protobuf", "json"] {
        let out = check(&broker, format);
        assert!(
            out.contains(&format!("OK: {format} table typed, evolved")),
            "{out}"
        );
    }
    let log = broker.log();
    assert!(log.contains("evolved the table schema"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

//! The Iceberg REST catalog Floe serves under `/iceberg` on its HTTP listener (issue 16,
//! acceptance 4): real engines attach to it by URL (pyiceberg's `RestCatalog`, DuckDB's
//! `ATTACH ... (TYPE iceberg)` with its pip-bundled extensions, Spark 3.5 with Iceberg's
//! runtime and `RESTCatalog`), list the namespace, load a table Floe materialized and read
//! exactly the rows produced with confluent-kafka; every write through the catalog is
//! refused with the specification's 403 error. The checks live in
//! `tests/clients/python/iceberg_rest_check.py`.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use floe_tests::s3::{S3Kind, S3Server};
use floe_tests::{
    Broker, client_command, clients_dir, http_get, python, run_ok_with, workspace_root,
};

/// Rows produced to the table every engine reads.
const ROWS: usize = 20_000;

fn rest_uri(broker: &Broker) -> String {
    format!("http://127.0.0.1:{}/iceberg", broker.http_port)
}

/// Runs `iceberg_rest_check.py <command>` against `broker`; returns its output.
fn check(broker: &Broker, command: &str, topic: &str, count: usize, extra: &[&str]) -> String {
    let mut cmd = client_command(python());
    cmd.arg(clients_dir().join("python").join("iceberg_rest_check.py"))
        .arg(command)
        .arg("--bootstrap")
        .arg(broker.bootstrap())
        .arg("--rest-uri")
        .arg(rest_uri(broker))
        .args(["--topic", topic, "--count"])
        .arg(count.to_string())
        .args(extra)
        // Spark's driver binds to loopback, not to the machine's first address.
        .env("SPARK_LOCAL_IP", "127.0.0.1");
    let out = run_ok_with(&mut cmd, b"", Duration::from_secs(300));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{stdout}");
    stdout
}

/// pyiceberg and DuckDB read the table through the REST catalog, and every write through
/// it (pyiceberg's and DuckDB's, and raw HTTP) is refused with 403 and the spec's error
/// model; unknown names answer 404 with the spec's exception types. One broker for all.
#[test]
fn pyiceberg_and_duckdb_read_through_rest_and_writes_are_refused() {
    let broker = Broker::start();
    // Before any table: the catalog answers, with no namespace yet.
    let (status, body) = http_get(broker.http_port, "/iceberg/v1/namespaces").unwrap();
    assert_eq!((status, body.as_str()), (200, "{\"namespaces\":[]}"));
    let out = check(&broker, "produce", "orders", ROWS, &[]);
    assert!(out.contains(&format!("OK: produced {ROWS}")), "{out}");
    // A second table, so that listings have pages.
    let out = check(&broker, "produce", "audit", 100, &[]);
    assert!(out.contains("OK: produced 100"), "{out}");

    let out = check(&broker, "pyiceberg", "orders", ROWS, &[]);
    assert!(
        out.contains(&format!("OK: pyiceberg {ROWS}")),
        "{out}\n{}",
        broker.log()
    );
    let out = check(&broker, "duckdb", "orders", ROWS, &[]);
    assert!(
        out.contains(&format!("OK: duckdb {ROWS}")),
        "{out}\n{}",
        broker.log()
    );
    assert!(
        !broker.log().contains("Iceberg REST catalog request failed"),
        "{}",
        broker.log()
    );
}

/// Spark 3.5 with the Iceberg 1.10 runtime attaches through `RESTCatalog`, lists the
/// namespace and tables, reads exactly the produced rows (count and checksums), and its
/// CREATE TABLE is refused with a ForbiddenException.
#[test]
fn spark_reads_through_rest_catalog() {
    let jars = spark_jars();
    assert!(
        jars.join("iceberg-spark-runtime.jar").is_file(),
        "no Iceberg Spark runtime in {} (run scripts/install-test-deps.sh or set FLOE_SPARK_JARS)",
        jars.display()
    );
    let broker = Broker::start();
    let out = check(&broker, "produce", "clicks", ROWS, &[]);
    assert!(out.contains(&format!("OK: produced {ROWS}")), "{out}");
    let jars = jars.display().to_string();
    let out = check(&broker, "spark", "clicks", ROWS, &["--spark-jars", &jars]);
    assert!(
        out.contains(&format!("OK: spark {ROWS}")),
        "{out}\n{}",
        broker.log()
    );
}

/// An S3 warehouse (moto): the catalog hands engines the endpoint, region and path-style
/// addressing, never the access keys unless `tableflow_rest_catalog_vend_credentials` is
/// on; with it on, pyiceberg and DuckDB read the table with nothing but the catalog URL.
#[test]
fn s3_warehouse_settings_and_vended_credentials() {
    let s3 = S3Server::start(S3Kind::Moto, "warehouse");
    let endpoint = s3.endpoint();
    let settings = [
        "tableflow_warehouse=s3://warehouse/floe".to_string(),
        format!("tableflow_s3_endpoint={endpoint}"),
        format!("tableflow_s3_region={}", s3.region()),
        format!("tableflow_s3_access_key_id={}", s3.access_key()),
        format!("tableflow_s3_secret_access_key={}", s3.secret_key()),
    ];
    let mut flags: Vec<&str> = settings
        .iter()
        .flat_map(|s| ["--set", s.as_str()])
        .collect();
    let mut broker = Broker::start_with(&flags);
    let s3_args = ["--s3-endpoint", endpoint.as_str()];
    let out = check(&broker, "produce", "s3orders", 5000, &s3_args);
    assert!(out.contains("OK: produced 5000"), "{out}");
    let out = check(&broker, "s3", "s3orders", 5000, &s3_args);
    assert!(
        out.contains("OK: s3 5000 vend=False"),
        "{out}\n{}",
        broker.log()
    );

    broker.stop();
    flags.extend(["--set", "tableflow_rest_catalog_vend_credentials=true"]);
    broker.restart_with(&flags);
    let vend_args = ["--s3-endpoint", endpoint.as_str(), "--vend"];
    let out = check(&broker, "s3", "s3orders", 5000, &vend_args);
    assert!(
        out.contains("OK: s3 5000 vend=True"),
        "{out}\n{}",
        broker.log()
    );
}

/// With tableflow off every path of the catalog answers 503, with the REST catalog off
/// 404, each as the spec's error model saying why; vending without keys does not start.
#[test]
fn catalog_off_answers_with_an_error_model() {
    let broker = Broker::start_with(&["--set", "tableflow_enable=false"]);
    let (status, body) = http_get(broker.http_port, "/iceberg/v1/config").unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("\"type\":\"ServiceUnavailableException\"")
            && body.contains("tableflow_enable = false"),
        "{body}"
    );
    drop(broker);
    let broker = Broker::start_with(&["--set", "tableflow_rest_catalog_enable=false"]);
    let (status, body) = http_get(broker.http_port, "/iceberg/v1/namespaces").unwrap();
    assert_eq!(status, 404, "{body}");
    assert!(
        body.contains("\"type\":\"NotFoundException\"")
            && body.contains("tableflow_rest_catalog_enable = false"),
        "{body}"
    );
    // The rest of the listener is unaffected.
    assert_eq!(http_get(broker.http_port, "/health").unwrap().0, 200);
    drop(broker);

    // Vending needs the keys it would hand out: the broker refuses to start without them.
    let dir = tempfile::tempdir().unwrap();
    let mut child = client_command(floe_tests::floe_bin())
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0", "--set", "http_listen="])
        .args(["--set", "tableflow_rest_catalog_vend_credentials=true"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("floe started with credential vending and no keys");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("tableflow_rest_catalog_vend_credentials needs the keys"),
        "{stderr}"
    );
}

/// Where scripts/install-test-deps.sh put Spark's Iceberg jars.
fn spark_jars() -> PathBuf {
    std::env::var("FLOE_SPARK_JARS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join(".cache/spark-iceberg"))
}

//! The admin CLI (docs/cli.md) against secured listeners: the real `floe` binary as the
//! client of a broker with SASL_SSL, SSL (client certificates requested) and SASL_PLAINTEXT
//! listeners ([`SecureBroker`]).
//!
//! - `cli_over_tls_and_sasl`: topic create, produce, consume, topic list, group list and
//!   cluster info over SASL_SSL with SCRAM-SHA-512 (password from `FLOE_SASL_PASSWORD`),
//!   SASL_PLAINTEXT with PLAIN, SSL with a client certificate, and SSL with verification
//!   off. Produce and consume go to the partition leaders the listener advertises, so
//!   every connection a command opens carries the security settings.
//! - `cli_security_failures`: a wrong password (SCRAM and PLAIN) exits 1 naming
//!   SASL_AUTHENTICATION_FAILED and the broker's message, quickly; a CA that did not sign
//!   the broker's certificate exits 1 with rustls's reason; a client of the wrong protocol
//!   fails instead of hanging; inconsistent options exit 2.
//! - `cli_reauthenticates`: a consumer that runs longer than the SASL session
//!   (`connections_max_reauth_ms`) authenticates again on its connection (KIP-368).

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::num::NonZeroU32;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use floe_broker::security::sasl::{ScramMechanism, salted_password};
use floe_tests::raw::RawConn;
use floe_tests::security::{Pki, SecureBroker};
use floe_tests::{floe_bin, run_ok_with};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    AlterUserScramCredentialsRequest, ScramCredentialUpsertion,
};
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResponse;
use kafka_protocol::protocol::StrBytes;
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(60);
const ADMIN: &str = "admin";
const ADMIN_PASSWORD: &str = "admin-secret";
const SCRAM_USER: &str = "alice";
const SCRAM_PASSWORD: &str = "alice-s3cret";

/// Environment variables of the CLI that must not leak in from the test's environment.
const CLI_ENV: &[&str] = &[
    "FLOE_BROKERS",
    "FLOE_SECURITY_PROTOCOL",
    "FLOE_SASL_MECHANISM",
    "FLOE_SASL_USER",
    "FLOE_SASL_PASSWORD",
    "FLOE_TLS_CA",
    "FLOE_TLS_CERT",
    "FLOE_TLS_KEY",
];

fn start(dir: &Path, extra: &[&str]) -> SecureBroker {
    let users = format!("sasl_plain_users={{{ADMIN} = \"{ADMIN_PASSWORD}\"}}");
    let mut settings = vec![users.as_str()];
    settings.extend(extra);
    SecureBroker::start(dir, &settings)
}

/// A SCRAM-SHA-512 credential for `user`, set with AlterUserScramCredentials over the
/// PLAINTEXT listener, as an operator's tool sets it.
fn add_scram_user(sb: &SecureBroker, user: &str, password: &str) {
    let salt = b"cli-security-test-salt".to_vec();
    let iterations = 4096;
    let salted = salted_password(
        ScramMechanism::Sha512,
        password,
        &salt,
        NonZeroU32::new(iterations as u32).unwrap(),
    );
    let mut conn = RawConn::open(&sb.broker, "cli-security-setup");
    let req = AlterUserScramCredentialsRequest::default().with_upsertions(vec![
        ScramCredentialUpsertion::default()
            .with_name(StrBytes::from_string(user.to_string()))
            .with_mechanism(ScramMechanism::Sha512.type_code())
            .with_iterations(iterations)
            .with_salt(Bytes::from(salt))
            .with_salted_password(Bytes::from(salted)),
    ]);
    let resp: AlterUserScramCredentialsResponse =
        conn.call(ApiKey::AlterUserScramCredentials, 0, &req);
    assert_eq!(resp.results.len(), 1);
    assert_eq!(
        resp.results[0].error_code, 0,
        "{:?}",
        resp.results[0].error_message
    );
}

/// `floe <args> -b <addr> <security...>`, with none of the CLI's variables inherited.
fn floe(addr: &str, security: &[&str], args: &[&str]) -> Command {
    let mut cmd = Command::new(floe_bin());
    cmd.args(args).args(["-b", addr]).args(security);
    for var in CLI_ENV {
        cmd.env_remove(var);
    }
    cmd
}

/// Runs a command with `--format json` that must succeed; parses its output (one
/// document, or one per line).
fn json(mut cmd: Command, stdin: &[u8]) -> Vec<Value> {
    cmd.args(["--format", "json"]);
    let out = run_ok_with(&mut cmd, stdin, TIMEOUT);
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Runs a command that must fail, bounded; returns its output and how long it took.
fn fails(mut cmd: Command) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            panic!("{cmd:?} did not finish in {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (out, started.elapsed())
}

fn assert_fails(out: &Output, code: i32, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr:\n{stderr}");
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "stderr lacks '{needle}':\n{stderr}"
        );
    }
}

/// Creates `topic`, produces three records to it, reads them back, and finds the topic,
/// the group-less cluster and this listener in the listings, all through `addr` with
/// `security`.
fn round_trip(addr: &str, port: u16, security: &[&str], topic: &str) {
    let created = json(
        floe(addr, security, &["topic", "create", topic, "-p", "2"]),
        b"",
    );
    assert_eq!(created[0][0]["name"], topic, "{created:?}");
    assert_eq!(created[0][0]["partitions"], 2, "{created:?}");

    let produced = json(
        floe(addr, security, &["produce", topic, "-k", ":"]),
        b"k1:one\nk2:two\nk3:three\n",
    );
    let records = produced[0]["records"].as_array().unwrap();
    assert_eq!(records.len(), 3, "{produced:?}");
    assert!(records.iter().all(|r| r["offset"].is_i64()), "{produced:?}");

    let consumed = json(floe(addr, security, &["consume", topic, "-e"]), b"");
    let mut values: Vec<&str> = consumed
        .iter()
        .map(|r| r["value"].as_str().unwrap())
        .collect();
    values.sort_unstable();
    assert_eq!(values, ["one", "three", "two"], "{consumed:?}");

    let listed = json(floe(addr, security, &["topic", "list"]), b"");
    assert!(
        listed[0]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == topic),
        "{listed:?}"
    );

    json(floe(addr, security, &["group", "list"]), b"");

    let info = json(floe(addr, security, &["cluster", "info"]), b"");
    let brokers = info[0]["brokers"].as_array().unwrap();
    assert_eq!(brokers.len(), 1, "{info:?}");
    // The broker advertises the listener the client came in on.
    assert_eq!(brokers[0]["port"], i64::from(port), "{info:?}");
    assert!(info[0]["topics"].as_i64().unwrap() >= 1, "{info:?}");
}

#[test]
fn cli_over_tls_and_sasl() {
    let dir = tempfile::tempdir().unwrap();
    let sb = start(dir.path(), &[]);
    add_scram_user(&sb, SCRAM_USER, SCRAM_PASSWORD);
    let ca = sb.pki.ca.to_str().unwrap();

    // SASL_SSL + SCRAM-SHA-512, the password from the environment.
    let scram = [
        "--security-protocol",
        "SASL_SSL",
        "--sasl-mechanism",
        "SCRAM-SHA-512",
        "--user",
        SCRAM_USER,
        "--tls-ca",
        ca,
    ];
    let addr = SecureBroker::at(sb.sasl_ssl);
    let started = Instant::now();
    let created = {
        let mut cmd = floe(&addr, &scram, &["topic", "create", "scram-env", "-p", "1"]);
        cmd.env("FLOE_SASL_PASSWORD", SCRAM_PASSWORD);
        json(cmd, b"")
    };
    assert_eq!(created[0][0]["name"], "scram-env", "{created:?}");
    let with_password = [&scram[..], &["--password", SCRAM_PASSWORD]].concat();
    round_trip(&addr, sb.sasl_ssl, &with_password, "cli-scram");
    let scram_took = started.elapsed();

    // SASL_PLAINTEXT + PLAIN, the protocol inferred from --sasl-mechanism.
    let plain = [
        "--sasl-mechanism",
        "plain",
        "--user",
        ADMIN,
        "--password",
        ADMIN_PASSWORD,
    ];
    round_trip(
        &SecureBroker::at(sb.sasl_plaintext),
        sb.sasl_plaintext,
        &plain,
        "cli-plain",
    );

    // SSL with a client certificate (the listener requests one).
    let (crt, key) = sb.pki.client("cli-cert", "/O=Floe Test/CN=cli");
    let mtls = [
        "--security-protocol",
        "SSL",
        "--tls-ca",
        ca,
        "--tls-cert",
        crt.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    round_trip(&SecureBroker::at(sb.ssl), sb.ssl, &mtls, "cli-mtls");

    // SSL without verifying the broker (encryption only), SSL inferred.
    let info = json(
        floe(
            &SecureBroker::at(sb.ssl),
            &["--tls-insecure-skip-verify"],
            &["cluster", "info"],
        ),
        b"",
    );
    assert_eq!(info[0]["brokers"][0]["port"], i64::from(sb.ssl), "{info:?}");

    // Every topic made over every listener is there for the admin.
    let all = json(floe(&sb.broker.bootstrap(), &[], &["topic", "list"]), b"");
    let names: Vec<&str> = all[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for t in ["scram-env", "cli-scram", "cli-plain", "cli-mtls"] {
        assert!(names.contains(&t), "{t} missing: {names:?}");
    }
    eprintln!("SCRAM-SHA-512 over TLS: 6 commands in {scram_took:?}");
}

#[test]
fn cli_security_failures() {
    let dir = tempfile::tempdir().unwrap();
    let sb = start(dir.path(), &[]);
    add_scram_user(&sb, SCRAM_USER, SCRAM_PASSWORD);
    let ca = sb.pki.ca.to_str().unwrap();
    let sasl_ssl = SecureBroker::at(sb.sasl_ssl);
    let sasl_plaintext = SecureBroker::at(sb.sasl_plaintext);
    let ssl = SecureBroker::at(sb.ssl);

    // A wrong SCRAM password: exit 1, the Kafka error and the broker's message, quickly
    // (the broker delays a failure by 100 ms).
    let (out, took) = fails(floe(
        &sasl_ssl,
        &[
            "--security-protocol",
            "SASL_SSL",
            "--sasl-mechanism",
            "SCRAM-SHA-512",
            "--user",
            SCRAM_USER,
            "--password",
            "not-the-password",
            "--tls-ca",
            ca,
        ],
        &["topic", "list"],
    ));
    assert_fails(
        &out,
        1,
        &[
            "SASL SCRAM-SHA-512 authentication of 'alice'",
            "SASL_AUTHENTICATION_FAILED (error code 58)",
            "Authentication failed",
        ],
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");

    // An unknown SCRAM user fails the same way.
    let (out, _) = fails(floe(
        &sasl_ssl,
        &[
            "--sasl-mechanism",
            "SCRAM-SHA-256",
            "--user",
            "mallory",
            "--password",
            "x",
            "--tls-ca",
            ca,
        ],
        &["cluster", "info"],
    ));
    assert_fails(&out, 1, &["SASL_AUTHENTICATION_FAILED"]);

    // A wrong PLAIN password.
    let (out, took) = fails(floe(
        &sasl_plaintext,
        &[
            "--sasl-mechanism",
            "PLAIN",
            "--user",
            ADMIN,
            "--password",
            "wrong",
        ],
        &["produce", "t"],
    ));
    assert_fails(
        &out,
        1,
        &["SASL_AUTHENTICATION_FAILED", "Authentication failed"],
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");

    // A CA that did not sign the broker's certificate: rustls's reason. Another CA of the
    // same name fails the signature check, one of another name is unknown.
    let same_name = Pki::generate(&dir.path().join("same-name-pki"));
    let other_name = dir.path().join("other-ca.pem");
    floe_tests::security::self_signed_ca(
        &dir.path().join("other-ca.key"),
        &other_name,
        "/O=Elsewhere/CN=Another CA",
    );
    for (other, reason) in [
        (same_name.ca.as_path(), "BadSignature"),
        (other_name.as_path(), "UnknownIssuer"),
    ] {
        let (out, _) = fails(floe(
            &ssl,
            &["--tls-ca", other.to_str().unwrap()],
            &["topic", "list"],
        ));
        assert_fails(
            &out,
            1,
            &[&format!("TLS handshake with {ssl} failed"), reason],
        );
    }

    // The wrong protocol for the listener fails, it does not hang.
    let (out, took) = fails(floe(&sasl_plaintext, &[], &["topic", "list"]));
    assert_fails(&out, 1, &["closed the connection", "--sasl-mechanism"]);
    assert!(took < Duration::from_secs(20), "took {took:?}");
    let (out, took) = fails(floe(&ssl, &[], &["topic", "list"]));
    assert_fails(&out, 1, &["answered with TLS"]);
    assert!(took < Duration::from_secs(20), "took {took:?}");
    let (out, took) = fails(floe(
        &sb.broker.bootstrap(),
        &["--tls-ca", ca],
        &["topic", "list"],
    ));
    assert_fails(&out, 1, &["TLS handshake with"]);
    assert!(took < Duration::from_secs(40), "took {took:?}");

    // Inconsistent or missing options: exit 2 before anything is sent.
    let usage: &[(&[&str], &str)] = &[
        (&["--user", "alice"], "--user is a SASL option"),
        (
            &[
                "--security-protocol",
                "SASL_SSL",
                "--user",
                "a",
                "--password",
                "b",
            ],
            "needs --sasl-mechanism",
        ),
        (
            &["--sasl-mechanism", "SCRAM-SHA-512", "--user", "a"],
            "needs --password",
        ),
        (
            &["--security-protocol", "SASL_PLAINTEXT", "--tls-ca", ca],
            "--tls-ca is a TLS option",
        ),
        (&["--tls-ca", "/nonexistent/ca.pem"], "/nonexistent/ca.pem"),
        (&["--tls-key", "/tmp/k.pem"], "--tls-cert"),
        (&["--sasl-mechanism", "GSSAPI"], "invalid value"),
        (&["--security-protocol", "TLS"], "invalid value"),
    ];
    for (security, needle) in usage {
        let (out, _) = fails(floe(&ssl, security, &["cluster", "info"]));
        assert_fails(&out, 2, &[needle]);
    }
}

#[test]
fn cli_reauthenticates() {
    let dir = tempfile::tempdir().unwrap();
    let sb = start(dir.path(), &["connections_max_reauth_ms=1500"]);
    let addr = SecureBroker::at(sb.sasl_plaintext);
    let plain = [
        "--sasl-mechanism",
        "PLAIN",
        "--user",
        ADMIN,
        "--password",
        ADMIN_PASSWORD,
    ];
    json(
        floe(&addr, &plain, &["topic", "create", "reauth", "-p", "1"]),
        b"",
    );
    json(floe(&addr, &plain, &["produce", "reauth"]), b"first\n");

    // A consumer that outlives two sessions: records arrive at 0, ~2 and ~4 s.
    let mut consumer = floe(
        &addr,
        &plain,
        &["consume", "reauth", "-n", "3", "--format", "json"],
    );
    let child = consumer
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for value in ["second\n", "third\n"] {
        std::thread::sleep(Duration::from_millis(2000));
        json(
            floe(&addr, &plain, &["produce", "reauth"]),
            value.as_bytes(),
        );
    }
    let waiter = std::thread::spawn(move || child.wait_with_output().unwrap());
    let deadline = Instant::now() + TIMEOUT;
    while !waiter.is_finished() {
        assert!(Instant::now() < deadline, "the consumer did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = waiter.join().unwrap();
    assert!(
        out.status.success(),
        "consumer failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let values: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["value"].to_string())
        .collect();
    assert_eq!(values, ["\"first\"", "\"second\"", "\"third\""]);

    let (_, metrics) = floe_tests::http_get(sb.broker.http_port, "/metrics").unwrap();
    let reauths: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("floe_sasl_reauthentications_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(reauths >= 2, "{reauths} re-authentications");
}

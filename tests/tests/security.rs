//! Security end to end: TLS, mTLS and SASL listeners driven by real clients, and what
//! bad input on them gets.
//!
//! One broker per test with four listeners ([`SecureBroker`]): PLAINTEXT (setup as an
//! admin), SASL_SSL, SSL with client certificates requested, SASL_PLAINTEXT. Certificates
//! are generated for the run with openssl.
//!
//! - `clients_over_tls_and_sasl`: confluent-kafka and kcat (Debian's librdkafka 2.0.2) over
//!   SASL_SSL with SCRAM-SHA-512 and over SSL with a client certificate; the Java client
//!   over SASL_SSL with PLAIN and SCRAM-SHA-256; kafkajs with SASL PLAIN over TLS. Each
//!   produces and consumes; a wrong password fails with an authentication error, quickly.
//! - `bad_input_on_secured_listeners`: raw frames: requests before authentication, unknown
//!   mechanisms, malformed tokens, oversized frames, plaintext on a TLS port, TLS garbage.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use floe_tests::raw::RawConn;
use floe_tests::security::SecureBroker;
use floe_tests::{client_command, clients_dir, compile_java, python, run_ok_with};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, SaslAuthenticateRequest,
    SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;

const SCRAM_USER: &str = "alice";
const SCRAM_PASSWORD: &str = "alice-s3cret";
const PLAIN_USER: &str = "carol";
const PLAIN_PASSWORD: &str = "carol-s3cret";

fn start(dir: &std::path::Path) -> SecureBroker {
    SecureBroker::start(
        dir,
        &[&format!(
            "sasl_plain_users={{{PLAIN_USER} = \"{PLAIN_PASSWORD}\"}}"
        )],
    )
}

/// Runs `security_check.py` with `args`; returns its JSON line.
fn py(args: &[&str]) -> serde_json::Value {
    let script = clients_dir().join("python/security_check.py");
    let out = run_ok_with(
        Command::new(python()).arg(script).args(args),
        b"",
        Duration::from_secs(240),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("security_check.py printed {stdout:?}: {e}"))
}

fn kcat(args: &[&str], stdin: &[u8]) -> std::process::Output {
    let mut cmd = client_command("kcat");
    cmd.args(args);
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "kcat {args:?} did not finish in 120 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn clients_over_tls_and_sasl() {
    let dir = tempfile::tempdir().unwrap();
    let sb = start(dir.path());
    let ca = sb.pki.ca.to_str().unwrap().to_string();
    let sasl_ssl = SecureBroker::at(sb.sasl_ssl);
    let ssl = SecureBroker::at(sb.ssl);
    let (alice_crt, alice_key) = sb.pki.client("alice-cert", "/O=Floe Test/CN=alice");
    let (alice_crt, alice_key) = (alice_crt.to_str().unwrap(), alice_key.to_str().unwrap());

    // SCRAM credentials through AdminClient, as an operator sets them up.
    let set = py(&[
        "scram-users",
        "--bootstrap",
        &sb.broker.bootstrap(),
        "--user",
        SCRAM_USER,
        "--password",
        SCRAM_PASSWORD,
    ]);
    assert_eq!(set["mechanisms"].as_array().unwrap().len(), 2, "{set}");

    // confluent-kafka: SASL_SSL + SCRAM-SHA-512, SSL + client certificate.
    let scram = [
        "--protocol",
        "SASL_SSL",
        "--mechanism",
        "SCRAM-SHA-512",
        "--user",
        SCRAM_USER,
        "--ca",
        &ca,
    ];
    let r = py(&[
        &[
            "roundtrip",
            "--bootstrap",
            &sasl_ssl,
            "--topic",
            "py-scram",
            "--count",
            "2000",
            "--password",
            SCRAM_PASSWORD,
        ][..],
        &scram,
    ]
    .concat());
    assert_eq!(r["consumed"], 2000, "{r}");
    let bad = py(&[
        &[
            "auth-fails",
            "--bootstrap",
            &sasl_ssl,
            "--password",
            "not-the-password",
        ][..],
        &scram,
    ]
    .concat());
    assert!(bad["seconds"].as_f64().unwrap() < 20.0, "{bad}");
    eprintln!("confluent-kafka wrong password: {bad}");
    let r = py(&[
        "roundtrip",
        "--bootstrap",
        &ssl,
        "--topic",
        "py-mtls",
        "--count",
        "2000",
        "--protocol",
        "SSL",
        "--ca",
        &ca,
        "--cert",
        alice_crt,
        "--key",
        alice_key,
    ]);
    assert_eq!(r["consumed"], 2000, "{r}");

    // kcat (librdkafka 2.0.2): the same two ways, and a wrong password.
    let kcat_scram = |password: &str| {
        vec![
            "-X".to_string(),
            "security.protocol=SASL_SSL".into(),
            "-X".into(),
            "sasl.mechanisms=SCRAM-SHA-512".into(),
            "-X".into(),
            format!("sasl.username={SCRAM_USER}"),
            "-X".into(),
            format!("sasl.password={password}"),
            "-X".into(),
            format!("ssl.ca.location={ca}"),
        ]
    };
    let lines: String = (0..500).map(|i| format!("k{i}:v{i}\n")).collect();
    for (topic, bootstrap, sec) in [
        ("kcat-scram", &sasl_ssl, kcat_scram(SCRAM_PASSWORD)),
        (
            "kcat-mtls",
            &ssl,
            vec![
                "-X".to_string(),
                "security.protocol=SSL".into(),
                "-X".into(),
                format!("ssl.ca.location={ca}"),
                "-X".into(),
                format!("ssl.certificate.location={alice_crt}"),
                "-X".into(),
                format!("ssl.key.location={alice_key}"),
            ],
        ),
    ] {
        let sec: Vec<&str> = sec.iter().map(String::as_str).collect();
        let out = kcat(
            &[
                &[
                    "-b",
                    bootstrap,
                    "-P",
                    "-t",
                    topic,
                    "-K:",
                    "-X",
                    "message.timeout.ms=60000",
                ][..],
                &sec,
            ]
            .concat(),
            lines.as_bytes(),
        );
        assert!(
            out.status.success(),
            "kcat produce to {topic}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = kcat(
            &[
                &[
                    "-b",
                    bootstrap,
                    "-C",
                    "-t",
                    topic,
                    "-o",
                    "beginning",
                    "-e",
                    "-f",
                    "%k:%s\n",
                ][..],
                &sec,
            ]
            .concat(),
            b"",
        );
        assert!(
            out.status.success(),
            "kcat consume {topic}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut got: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        got.sort();
        let mut want: Vec<String> = lines.lines().map(str::to_string).collect();
        want.sort();
        assert_eq!(got, want, "kcat read back {topic}");
    }
    let sec = kcat_scram("wrong");
    let sec: Vec<&str> = sec.iter().map(String::as_str).collect();
    let started = Instant::now();
    let out = kcat(
        &[&["-b", &sasl_ssl, "-L", "-m", "5"][..], &sec].concat(),
        b"",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "kcat with a wrong password listed metadata"
    );
    assert!(
        stderr.contains("Authentication failed") || stderr.contains("SASL authentication error"),
        "kcat: {stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "kcat took {:?}",
        started.elapsed()
    );

    // The Java client: SASL_SSL with PLAIN and with SCRAM-SHA-256.
    let classes = tempfile::tempdir().unwrap();
    let classpath = compile_java("FloeJavaSecurity", classes.path());
    for (mechanism, user, password, topic) in [
        (
            "PLAIN",
            PLAIN_USER,
            PLAIN_PASSWORD.to_string(),
            "java-plain",
        ),
        (
            "SCRAM-SHA-256",
            SCRAM_USER,
            SCRAM_PASSWORD.to_string(),
            "java-scram",
        ),
        (
            "SCRAM-SHA-256",
            SCRAM_USER,
            "wrong:nope".to_string(),
            "java-wrong",
        ),
    ] {
        let out = run_ok_with(
            Command::new("java")
                .arg("-cp")
                .arg(&classpath)
                .arg("FloeJavaSecurity")
                .args([
                    &sasl_ssl, "SASL_SSL", mechanism, user, &password, &ca, topic,
                ]),
            b"",
            Duration::from_secs(240),
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        eprintln!("java {mechanism} {topic}:\n{stdout}");
        assert!(
            stdout.lines().any(|l| l == "OK"),
            "java {mechanism} {topic}:\n{stdout}"
        );
    }

    // kafkajs: SASL PLAIN over TLS, and a wrong password.
    let node_dir = clients_dir().join("node");
    for wrong in [false, true] {
        let mut cmd = Command::new("node");
        cmd.arg("kafkajs_security.js")
            .args([&sasl_ssl, &ca, PLAIN_USER])
            .current_dir(&node_dir);
        if wrong {
            cmd.args(["nope", "wrong"]);
        } else {
            cmd.arg(PLAIN_PASSWORD);
        }
        let out = run_ok_with(&mut cmd, b"", Duration::from_secs(180));
        let stdout = String::from_utf8_lossy(&out.stdout);
        eprintln!("kafkajs (wrong password: {wrong}):\n{stdout}");
        assert!(stdout.lines().any(|l| l == "OK"), "kafkajs:\n{stdout}");
    }

    // Failed logins were logged (rate limited) and counted.
    let log = sb.broker.log();
    assert!(
        log.contains("SASL authentication failed"),
        "no failure logged"
    );
    let (_, metrics) = floe_tests::http_get(sb.broker.http_port, "/metrics").unwrap();
    let failures: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("floe_sasl_authentication_failures_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        failures >= 4.0,
        "floe_sasl_authentication_failures_total {failures}"
    );
}

/// Reads until the broker closes the connection; returns what it sent (a TLS alert at
/// most), failing if it stays open.
fn read_to_close(stream: &mut TcpStream, what: &str) -> Vec<u8> {
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                assert!(got.len() < 4096, "{what}: the broker keeps sending");
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!("{what}: still open after 20 s")
            }
            Err(_) => return got, // reset
        }
    }
}

fn handshake(conn: &mut RawConn, mechanism: &'static str) -> SaslHandshakeResponse {
    conn.call_at(
        ApiKey::SaslHandshake,
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism)),
    )
}

fn authenticate(conn: &mut RawConn, token: &[u8]) -> SaslAuthenticateResponse {
    conn.call_at(
        ApiKey::SaslAuthenticate,
        2,
        &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(token)),
    )
}

#[test]
fn bad_input_on_secured_listeners() {
    let dir = tempfile::tempdir().unwrap();
    let sb = start(dir.path());
    let addr = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let sasl = addr(sb.sasl_plaintext);

    // A request before authentication closes the connection, unanswered.
    let mut c = RawConn::connect(sasl, "early");
    c.send(ApiKey::Metadata, 12, &MetadataRequest::default());
    c.assert_closed("Metadata before SASL");

    // ApiVersions is answered before authentication and lists the SASL APIs.
    let mut c = RawConn::connect(sasl, "versions");
    let v: ApiVersionsResponse = c.call_at(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert!(
        v.api_keys
            .iter()
            .any(|k| k.api_key == ApiKey::SaslHandshake as i16)
    );

    // An unknown mechanism: UNSUPPORTED_SASL_MECHANISM with the enabled ones, then closed.
    let r = handshake(&mut c, "GSSAPI");
    assert_eq!(r.error_code, 33);
    let offered: Vec<&str> = r.mechanisms.iter().map(|m| m.as_str()).collect();
    assert!(
        offered.contains(&"PLAIN") && offered.contains(&"SCRAM-SHA-512"),
        "{offered:?}"
    );
    c.assert_closed("after an unsupported mechanism");

    // A malformed PLAIN token and a wrong password: SASL_AUTHENTICATION_FAILED, then closed.
    for token in [
        &b"no separators at all"[..],
        b"\0carol\0wrong-password",
        b"\0\0",
        b"\xff\0carol\0\xfe",
    ] {
        let mut c = RawConn::connect(sasl, "bad-token");
        assert_eq!(handshake(&mut c, "PLAIN").error_code, 0);
        let started = Instant::now();
        let r = authenticate(&mut c, token);
        assert_eq!(r.error_code, 58, "token {token:?}");
        assert!(
            started.elapsed() >= Duration::from_millis(90),
            "failure answered without a delay"
        );
        c.assert_closed("after a failed authentication");
    }
    // Malformed SCRAM messages too.
    for token in [
        &b"n,,n=alice"[..],
        b"garbage",
        b"p=tls-unique,,n=alice,r=abc",
        b"",
    ] {
        let mut c = RawConn::connect(sasl, "bad-scram");
        assert_eq!(handshake(&mut c, "SCRAM-SHA-256").error_code, 0);
        let r = authenticate(&mut c, token);
        assert_eq!(r.error_code, 58, "token {token:?}");
        c.assert_closed("after a malformed SCRAM message");
    }

    // The right PLAIN token authenticates; then requests are served.
    let mut c = RawConn::connect(sasl, "good");
    assert_eq!(handshake(&mut c, "PLAIN").error_code, 0);
    let r = authenticate(
        &mut c,
        format!("\0{PLAIN_USER}\0{PLAIN_PASSWORD}").as_bytes(),
    );
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    c.versions = [(ApiKey::Metadata as i16, (0, 12))].into();
    let md = c.metadata();
    assert_eq!(
        md.brokers[0].port,
        i32::from(sb.sasl_plaintext),
        "Metadata advertises the listener connected to"
    );
    // A second SaslAuthenticate without a handshake: ILLEGAL_SASL_STATE, the session goes on.
    let r = authenticate(&mut c, b"\0carol\0x");
    assert_eq!(r.error_code, 34);

    // SaslHandshake v0: bare size-prefixed tokens follow instead of SaslAuthenticate
    // (clients from before Kafka 1.0); a good PLAIN token gets an empty token back and the
    // session is authenticated, a bad one closes the connection.
    for (password, ok) in [(PLAIN_PASSWORD, true), ("wrong", false)] {
        let mut c = RawConn::connect(sasl, "v0");
        let r: SaslHandshakeResponse = c.call_at(
            ApiKey::SaslHandshake,
            0,
            &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
        );
        assert_eq!(r.error_code, 0);
        let token = format!("\0{PLAIN_USER}\0{password}");
        let mut frame = (token.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(token.as_bytes());
        c.stream.write_all(&frame).unwrap();
        if ok {
            let mut len = [0u8; 4];
            c.stream.read_exact(&mut len).unwrap();
            assert_eq!(u32::from_be_bytes(len), 0, "PLAIN's final token is empty");
            c.versions = [(ApiKey::Metadata as i16, (0, 12))].into();
            assert_eq!(c.metadata().brokers.len(), 1);
        } else {
            c.assert_closed("a wrong password after SaslHandshake v0");
        }
    }

    // A frame larger than sasl_server_max_receive_size before authentication: closed
    // before the broker allocates for it.
    let mut c = RawConn::connect(sasl, "huge");
    c.stream.write_all(&(10u32 << 20).to_be_bytes()).unwrap();
    c.stream.write_all(&[0u8; 64]).unwrap();
    c.assert_closed("a 10 MiB frame before authentication");

    // On the PLAINTEXT listener SASL requests get ILLEGAL_SASL_STATE.
    let mut c = RawConn::connect(sb.broker.addr(), "plain");
    assert_eq!(handshake(&mut c, "PLAIN").error_code, 34);

    // A Kafka frame on a TLS port, and TLS garbage: closed (a TLS alert at most).
    for port in [sb.ssl, sb.sasl_ssl] {
        let mut c = RawConn::connect(addr(port), "plaintext-on-tls");
        c.send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
        let got = read_to_close(&mut c.stream, "plaintext on a TLS port");
        assert!(got.is_empty() || got[0] == 0x15, "not a TLS alert: {got:?}");
        let mut s = TcpStream::connect(addr(port)).unwrap();
        // A TLS handshake record header with a nonsense body.
        s.write_all(&[0x16, 0x03, 0x01, 0x00, 0x20]).unwrap();
        s.write_all(&[0xAB; 32]).unwrap();
        let got = read_to_close(&mut s, "TLS garbage");
        assert!(got.is_empty() || got[0] == 0x15, "not a TLS alert: {got:?}");
    }
    // A client that connects to a TLS port and sends nothing is closed after the
    // handshake timeout (checked in the log, not waited for here).

    // The broker still serves.
    let mut c = RawConn::open(&sb.broker, "after");
    assert_eq!(c.create_topic("still-serving", 1), 0);
    let log = sb.broker.log();
    assert!(
        log.contains("TLS handshake failed"),
        "TLS failures are logged"
    );
    assert!(
        log.contains("before SASL authentication completed"),
        "early requests are logged"
    );
}

/// Sets `producer_byte_rate` for a client id with AlterClientQuotas.
fn set_producer_quota(conn: &mut RawConn, client_id: &str, bytes_per_sec: f64) {
    use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
    use kafka_protocol::messages::{AlterClientQuotasRequest, AlterClientQuotasResponse};
    let req = AlterClientQuotasRequest::default().with_entries(vec![
        EntryData::default()
            .with_entity(vec![
                EntityData::default()
                    .with_entity_type(StrBytes::from_static_str("client-id"))
                    .with_entity_name(Some(StrBytes::from_string(client_id.to_string()))),
            ])
            .with_ops(vec![
                OpData::default()
                    .with_key(StrBytes::from_static_str("producer_byte_rate"))
                    .with_value(bytes_per_sec),
            ]),
    ]);
    let r: AlterClientQuotasResponse = conn.call_at(ApiKey::AlterClientQuotas, 1, &req);
    assert_eq!(
        r.entries[0].error_code, 0,
        "{:?}",
        r.entries[0].error_message
    );
}

#[test]
fn quotas_throttle_a_producer_and_no_one_else() {
    const QUOTA: f64 = 1024.0 * 1024.0;
    // Rates over 4 one-second samples (Kafka's default is 11): the first burst, which the
    // quota lets through before it has a rate to compare, leaves the window sooner.
    let broker = floe_tests::Broker::start_with(&["--set", "quota_window_num=4"]);
    let mut admin = RawConn::open(&broker, "quota-admin");
    set_producer_quota(&mut admin, "slow-producer", QUOTA);
    assert_eq!(admin.create_topic("quota-slow", 1), 0);
    assert_eq!(admin.create_topic("quota-fast", 1), 0);
    let script = clients_dir().join("python/security_check.py");
    let run = |client: &'static str, topic: &'static str| {
        let (script, bootstrap) = (script.clone(), broker.bootstrap());
        std::thread::spawn(move || {
            let out = run_ok_with(
                Command::new(python()).arg(script).args([
                    "throttled-produce",
                    "--bootstrap",
                    &bootstrap,
                    "--topic",
                    topic,
                    "--client-id",
                    client,
                    "--seconds",
                    "18",
                    "--warmup",
                    "8",
                ]),
                b"",
                Duration::from_secs(120),
            );
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            serde_json::from_str::<serde_json::Value>(stdout.lines().last().unwrap()).unwrap()
        })
    };
    let slow = run("slow-producer", "quota-slow");
    let fast = run("fast-producer", "quota-fast");
    let (slow, fast) = (slow.join().unwrap(), fast.join().unwrap());
    eprintln!("throttled: {slow}\nunthrottled: {fast}");
    let rate = slow["bytes_per_sec"].as_f64().unwrap();
    assert!(
        (0.8 * QUOTA..=1.2 * QUOTA).contains(&rate),
        "a producer limited to 1 MiB/s made {rate:.0} B/s"
    );
    assert!(
        slow["throttle_max_ms"].as_i64().unwrap() > 0,
        "no throttle_time_ms seen: {slow}"
    );
    let free = fast["bytes_per_sec"].as_f64().unwrap();
    assert!(
        free > 3.0 * QUOTA,
        "an unthrottled producer made only {free:.0} B/s"
    );
    assert_eq!(fast["throttle_max_ms"].as_i64().unwrap(), 0, "{fast}");
}

/// Authenticates `conn` with PLAIN (SaslHandshake v1, SaslAuthenticate v2).
fn plain_login(conn: &mut RawConn, user: &str, password: &str) -> SaslAuthenticateResponse {
    assert_eq!(handshake(conn, "PLAIN").error_code, 0);
    authenticate(conn, format!("\0{user}\0{password}").as_bytes())
}

#[test]
fn sessions_expire_and_reauthenticate() {
    let dir = tempfile::tempdir().unwrap();
    let sb = SecureBroker::start(
        dir.path(),
        &[
            "sasl_plain_users={carol = \"carol-s3cret\", dave = \"dave-s3cret\"}",
            "connections_max_reauth_ms=1500",
        ],
    );
    let sasl = SocketAddr::from(([127, 0, 0, 1], sb.sasl_plaintext));
    let metadata = |c: &mut RawConn| {
        c.versions = [(ApiKey::Metadata as i16, (0, 12))].into();
        c.metadata()
    };

    // The session lifetime is told to the client (SaslAuthenticate v1+).
    let mut c = RawConn::connect(sasl, "reauth");
    let r = plain_login(&mut c, "carol", "carol-s3cret");
    assert_eq!(r.error_code, 0);
    assert!(
        (1..=1500).contains(&r.session_lifetime_ms),
        "{}",
        r.session_lifetime_ms
    );
    metadata(&mut c);
    // Re-authenticating on the same connection renews the session (KIP-368)...
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(plain_login(&mut c, "carol", "carol-s3cret").error_code, 0);
    std::thread::sleep(Duration::from_millis(1000));
    metadata(&mut c); // 2 s after the first login, 1 s after the second
    // ...and a session that ran out closes the connection at the next request.
    std::thread::sleep(Duration::from_millis(1700));
    c.send(ApiKey::Metadata, 12, &MetadataRequest::default());
    c.assert_closed("a request after the session expired");

    // Re-authentication as someone else fails and closes the connection.
    let mut c = RawConn::connect(sasl, "reauth-other");
    assert_eq!(plain_login(&mut c, "carol", "carol-s3cret").error_code, 0);
    let r = plain_login(&mut c, "dave", "dave-s3cret");
    assert_eq!(r.error_code, 58, "{:?}", r.error_message);
    c.assert_closed("re-authentication as another principal");

    let reauths = || -> u64 {
        let (_, metrics) = floe_tests::http_get(sb.broker.http_port, "/metrics").unwrap();
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("floe_sasl_reauthentications_total "))
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(reauths(), 1);
    assert!(
        sb.broker.log().contains("session expired"),
        "expiry is logged"
    );

    // The Java client re-authenticates by itself while it produces and consumes for longer
    // than a session lasts.
    let classes = tempfile::tempdir().unwrap();
    let classpath = compile_java("FloeJavaSecurity", classes.path());
    let ca = sb.pki.ca.to_str().unwrap().to_string();
    let out = run_ok_with(
        Command::new("java")
            .arg("-cp")
            .arg(&classpath)
            .arg("FloeJavaSecurity")
            .args([
                &SecureBroker::at(sb.sasl_plaintext),
                "SASL_PLAINTEXT",
                "PLAIN",
                "carol",
                "carol-s3cret",
                &ca,
                "java-reauth",
                "slow",
            ]),
        b"",
        Duration::from_secs(240),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.lines().any(|l| l == "OK"), "java:\n{stdout}");
    assert!(reauths() > 1, "the Java client never re-authenticated");
}

#[test]
fn oauthbearer_tokens_checked_against_a_jwks() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("oauth");
    std::fs::create_dir_all(&keys).unwrap();
    py(&[
        "oauth-keys",
        "--bootstrap",
        "-",
        "--dir",
        keys.to_str().unwrap(),
    ]);
    let jwks = format!(
        "sasl_oauthbearer_jwks_endpoint_url=file://{}",
        keys.join("jwks.json").display()
    );
    let sb = SecureBroker::start(
        dir.path(),
        &[
            "sasl_enabled_mechanisms=SCRAM-SHA-512,OAUTHBEARER",
            &jwks,
            "sasl_oauthbearer_expected_audience=floe",
            "sasl_oauthbearer_expected_issuer=floe-test",
        ],
    );
    let key = keys.join("oauth-key.pem");
    let ca = sb.pki.ca.to_str().unwrap().to_string();
    let sasl_ssl = SecureBroker::at(sb.sasl_ssl);
    let oauth = [
        "--protocol",
        "SASL_SSL",
        "--mechanism",
        "OAUTHBEARER",
        "--user",
        "erin",
        "--oauth-key",
        key.to_str().unwrap(),
        "--ca",
        &ca,
    ];
    // confluent-kafka's oauth_cb hands out signed tokens: produce and consume.
    let r = py(&[
        &[
            "roundtrip",
            "--bootstrap",
            &sasl_ssl,
            "--topic",
            "oauth",
            "--count",
            "1000",
        ][..],
        &oauth,
    ]
    .concat());
    assert_eq!(r["consumed"], 1000, "{r}");
    // A token signed by a key the JWKS does not hold is an authentication error (an
    // expired one never leaves librdkafka, which checks `exp` itself).
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    py(&[
        "oauth-keys",
        "--bootstrap",
        "-",
        "--dir",
        other.to_str().unwrap(),
    ]);
    let forged = other.join("oauth-key.pem");
    let mut forged_args = oauth.to_vec();
    forged_args[7] = forged.to_str().unwrap();
    let bad = py(&[&["auth-fails", "--bootstrap", &sasl_ssl][..], &forged_args].concat());
    eprintln!("forged token: {bad}");
    assert!(
        sb.broker.log().contains("SASL authentication failed"),
        "the expired token is logged"
    );
}

/// The serial number of the certificate the TLS listener at `port` presents.
fn served_serial(port: u16) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect 127.0.0.1:{port} -servername localhost </dev/null \
             2>/dev/null | openssl x509 -noout -serial"
        ))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn certificates_reload_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let sb = SecureBroker::start(dir.path(), &["ssl_reload_interval_ms=200"]);
    let before = served_serial(sb.ssl);
    assert!(
        before.starts_with("serial="),
        "no certificate served: {before:?}"
    );

    // A renewed certificate is served to new connections without a restart.
    sb.pki.renew_server();
    let mut after = String::new();
    floe_tests::wait_until(Duration::from_secs(10), "the renewed certificate", || {
        after = served_serial(sb.ssl);
        after.starts_with("serial=") && after != before
    });
    assert!(sb.broker.log().contains("TLS certificate files changed"));

    // A broken file is reported and the last good certificate stays in service.
    std::fs::write(&sb.pki.server, b"-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    floe_tests::wait_until(
        Duration::from_secs(10),
        "the broken file to be reported",
        || {
            sb.broker
                .log()
                .contains("cannot be loaded; still serving the previous ones")
        },
    );
    assert_eq!(served_serial(sb.ssl), after);
}

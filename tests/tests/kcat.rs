//! kcat 1.7.1 from Debian (librdkafka 2.0.2) against a real broker.
//!
//! This is the oldest client in the matrix on purpose: librdkafka before 2.2 mis-skips
//! tagged fields, so it catches a broker that writes tagged fields it should leave out.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::Duration;

use floe_tests::{Broker, client_command, run_ok_with};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

/// Messages produced per codec.
const COUNT: usize = 10_000;

/// Longest a single kcat run may take before the test fails instead of hanging.
const KCAT_TIMEOUT: Duration = Duration::from_secs(180);

fn kcat(broker: &Broker) -> Command {
    let mut cmd = client_command("kcat");
    cmd.arg("-b").arg(broker.bootstrap());
    cmd
}

fn run_kcat(cmd: &mut Command, stdin: &[u8]) -> String {
    let out = run_ok_with(cmd, stdin, KCAT_TIMEOUT);
    String::from_utf8(out.stdout).expect("kcat printed UTF-8")
}

/// Produce `lines` ("key:value" each) to `topic`, failing fast if the broker does not ack.
fn produce(broker: &Broker, topic: &str, codec: &str, headers: &[(&str, &str)], lines: &str) {
    let mut cmd = kcat(broker);
    cmd.args(["-P", "-t", topic, "-z", codec, "-K:"]);
    for (name, value) in headers {
        cmd.arg("-H").arg(format!("{name}={value}"));
    }
    // librdkafka retries for five minutes by default; a test wants the error sooner.
    cmd.args(["-X", "message.timeout.ms=60000"]);
    run_kcat(&mut cmd, lines.as_bytes());
}

/// A value of varied length: a compressible run plus random characters, including
/// multi-byte UTF-8. Never contains the key delimiter ':' or a newline.
fn value_for(i: usize, rng: &mut StdRng) -> String {
    const ALPHABET: &[char] = &[
        'a', 'b', 'c', 'x', 'y', 'z', 'A', 'Z', '0', '9', ' ', ',', '.', '-', '_', '|', '=', 'é',
        'ß', '日', '本', '🦀',
    ];
    let run = "floe".repeat(i % 37);
    let n = rng.random_range(0..200);
    let random: String = (0..n)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())])
        .collect();
    format!("v{i}-{run}-{random}")
}

/// The headers kcat 1.7.1 attaches in `-J` output, whichever shape it uses
/// (`{"n": "v"}` per its usage text, or `["n", "v", ...]`), as (name, value) pairs.
fn json_headers(msg: &Value) -> Vec<(String, String)> {
    match msg.get("headers") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect(),
        Some(Value::Array(items)) => items
            .chunks(2)
            .map(|pair| {
                (
                    pair[0].as_str().unwrap_or_default().to_string(),
                    pair.get(1)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect(),
        Some(other) => panic!("unexpected headers in kcat JSON: {other}"),
    }
}

fn produce_and_consume_with_codec(codec: &str) {
    let broker = Broker::start();
    let topic = format!("kcat-{codec}");
    let headers = [("source", "kcat"), ("codec", codec)];

    let mut rng = StdRng::seed_from_u64(0xf10e);
    let expected: Vec<(String, String)> = (0..COUNT)
        .map(|i| (format!("key-{i:05}"), value_for(i, &mut rng)))
        .collect();
    let mut input = String::new();
    for (key, value) in &expected {
        input.push_str(key);
        input.push(':');
        input.push_str(value);
        input.push('\n');
    }
    produce(&broker, &topic, codec, &headers, &input);

    // Everything back, in order, as JSON envelopes (one per line).
    let out = run_kcat(
        kcat(&broker).args(["-C", "-e", "-o", "beginning", "-J", "-t", &topic]),
        b"",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.len(),
        COUNT,
        "kcat -C read {} messages, expected {COUNT}; first lines:\n{}",
        lines.len(),
        lines.iter().take(5).copied().collect::<Vec<_>>().join("\n")
    );
    let want_headers: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    for (i, (line, (key, value))) in lines.iter().zip(&expected).enumerate() {
        let msg: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("line {i} not JSON ({e}): {line}"));
        assert_eq!(msg["topic"], topic.as_str(), "message {i}: {line}");
        assert_eq!(msg["partition"], 0, "message {i}: {line}");
        assert_eq!(msg["offset"], i as u64, "message {i}: {line}");
        assert_eq!(msg["key"], key.as_str(), "message {i} key: {line}");
        assert_eq!(msg["payload"], value.as_str(), "message {i} value: {line}");
        assert_eq!(
            json_headers(&msg),
            want_headers,
            "message {i} headers: {line}"
        );
        assert_eq!(
            msg["tstype"], "create",
            "message {i} timestamp type: {line}"
        );
    }

    // A relative start offset: exactly the last five, through a format string this time.
    let out = run_kcat(
        kcat(&broker).args(["-C", "-e", "-o", "-5", "-f", "%o|%k|%s|%h\n", "-t", &topic]),
        b"",
    );
    let got: Vec<&str> = out.lines().collect();
    let want: Vec<String> = (COUNT - 5..COUNT)
        .map(|i| {
            let (key, value) = &expected[i];
            format!("{i}|{key}|{value}|source=kcat,codec={codec}")
        })
        .collect();
    assert_eq!(got, want, "kcat -o -5 should return exactly the last five");
}

#[test]
fn gzip_round_trip() {
    produce_and_consume_with_codec("gzip");
}

#[test]
fn snappy_round_trip() {
    produce_and_consume_with_codec("snappy");
}

#[test]
fn lz4_round_trip() {
    produce_and_consume_with_codec("lz4");
}

#[test]
fn zstd_round_trip() {
    produce_and_consume_with_codec("zstd");
}

/// `kcat -L` lists the broker (id and advertised address) and every topic with its
/// partitions, in plain text and as JSON.
#[test]
fn metadata_lists_broker_and_topics() {
    let broker = Broker::start_with(&["--num-partitions", "3"]);
    // Auto-created on first produce, with the broker's default of three partitions.
    produce(&broker, "kcat-meta-a", "none", &[], "k:v\n");
    produce(&broker, "kcat-meta-b", "none", &[], "k:v\n");

    let out = run_kcat(kcat(&broker).arg("-L"), b"");
    // floe's default node.id is 1 (docs/configuration.md), advertised as the listen address.
    let addr = broker.bootstrap();
    for want in [
        "1 brokers:".to_string(),
        format!("broker 1 at {addr}"),
        "topic \"kcat-meta-a\" with 3 partitions:".to_string(),
        "topic \"kcat-meta-b\" with 3 partitions:".to_string(),
        "partition 0, leader 1, replicas: 1, isrs: 1".to_string(),
        "partition 2, leader 1, replicas: 1, isrs: 1".to_string(),
    ] {
        assert!(out.contains(&want), "kcat -L output lacks {want:?}:\n{out}");
    }
    assert!(
        !out.contains("Broker: "),
        "kcat -L reported an error:\n{out}"
    );

    let out = run_kcat(kcat(&broker).args(["-L", "-J"]), b"");
    let meta: Value = serde_json::from_str(out.trim()).expect("kcat -L -J prints JSON");
    let brokers = meta["brokers"].as_array().expect("brokers array");
    assert_eq!(brokers.len(), 1, "{meta}");
    assert_eq!(brokers[0]["id"], 1, "{meta}");
    assert_eq!(brokers[0]["name"], addr.as_str(), "{meta}");
    let topics = meta["topics"].as_array().expect("topics array");
    for name in ["kcat-meta-a", "kcat-meta-b"] {
        let topic = topics
            .iter()
            .find(|t| t["topic"] == name)
            .unwrap_or_else(|| panic!("topic {name} missing from {meta}"));
        let partitions = topic["partitions"].as_array().expect("partitions array");
        let mut ids: Vec<u64> = partitions
            .iter()
            .map(|p| p["partition"].as_u64().unwrap())
            .collect();
        ids.sort_unstable();
        assert_eq!(ids, [0, 1, 2], "{meta}");
        assert!(
            topic.get("error").is_none(),
            "topic {name} has an error: {meta}"
        );
    }

    // Metadata for one topic only.
    let out = run_kcat(kcat(&broker).args(["-L", "-t", "kcat-meta-b"]), b"");
    assert!(
        out.contains("topic \"kcat-meta-b\" with 3 partitions:"),
        "{out}"
    );
    assert!(
        !out.contains("kcat-meta-a"),
        "asked for one topic only:\n{out}"
    );
}

/// The point of kcat in the matrix is its old librdkafka (Debian bookworm: 2.0.2, before the
/// 2.2 fix for skipping unknown tagged fields); make sure that is what the tests ran.
#[test]
fn kcat_uses_an_old_librdkafka() {
    let out = run_kcat(client_command("kcat").arg("-V"), b"");
    let version = out
        .split("librdkafka ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no librdkafka version in kcat -V:\n{out}"));
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    assert!(
        (major, minor) < (2, 2),
        "kcat runs librdkafka {version}; the matrix wants an old one (< 2.2):\n{out}"
    );
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        assert!(out.contains(codec), "kcat lacks {codec}:\n{out}");
    }
}

//! The admin CLI (`floe topic|group|produce|consume|cluster`, docs/cli.md) against a running
//! broker: every command with `--format json` parsed and checked, groups driven by a real
//! client (the `rdkafka` crate) so the lag the CLI shows is the real lag, bad arguments
//! (exit 2) and Kafka errors (exit 1, named).

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "cli/support.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

use floe_tests::{Broker, floe_bin, free_port, run_ok_with};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

use support::{
    TIMEOUT, assert_fails, configs, fails, fails_in, find, floe, group_offsets, json, json_in,
    json_lines, offsets_of, ok, run_while_polling,
};

#[test]
fn cli_bad_arguments_exit_2() {
    let nowhere = format!("127.0.0.1:{}", free_port());
    let cases: &[(&[&str], &str)] = &[
        (&["topic", "create"], "required"),
        (&["topic", "create", "t", "-p", "0"], "partition count"),
        (&["topic", "create", "t", "-c", "retention.ms"], "KEY=VALUE"),
        (&["topic", "alter-config", "t"], "required"),
        (&["topic", "add-partitions", "t"], "required"),
        (&["topic", "frobnicate"], "unrecognized subcommand"),
        (&["group", "reset-offsets", "g", "--topic", "t"], "required"),
        (
            &[
                "group",
                "reset-offsets",
                "g",
                "--topic",
                "t",
                "--to-earliest",
                "--to-latest",
            ],
            "cannot be used with",
        ),
        (
            &[
                "group",
                "reset-offsets",
                "g",
                "--topic",
                "t",
                "--to-offset",
                "x",
            ],
            "invalid value",
        ),
        (&["produce", "t", "--acks", "2"], "expected all, -1, 1 or 0"),
        (&["produce", "t", "-H", "novalue"], "KEY=VALUE"),
        (&["produce", "t", "-z", "brotli"], "invalid value"),
        (
            &["consume", "t", "--offset", "soon"],
            "expected start, end or an offset",
        ),
        (
            &["consume", "t", "-o", "3", "--timestamp", "5"],
            "cannot be used with",
        ),
        (
            &["consume", "t", "-f", "%k %x"],
            "unknown template field '%x'",
        ),
        (&["cluster", "info", "--format", "yaml"], "invalid value"),
        (&["cluster", "info", "--timeout-ms", "0"], "invalid value"),
    ];
    for (args, needle) in cases {
        let out = fails(floe(&nowhere, args));
        assert_fails(&out, 2, needle);
    }
    let out = fails(floe(",", &["topic", "list"]));
    assert_fails(&out, 2, "--brokers names no broker");
    // A broker that is not there is a runtime failure, not a usage error.
    let out = fails(floe(
        &nowhere,
        &["topic", "list", "--connect-timeout-ms", "2000"],
    ));
    assert_fails(&out, 1, "no broker reachable");
}

/// Topics end to end: create -> list -> describe -> alter-config -> describe -> add-partitions
/// -> produce with keys and headers -> consume exactly those records -> every codec, start
/// offsets and timestamps -> cluster info -> delete; Kafka errors exit 1 with their name.
#[test]
fn cli_topics_produce_consume_round_trip() {
    let broker = Broker::start();

    let created = json(
        &broker,
        &[
            "topic",
            "create",
            "cli-a",
            "-p",
            "2",
            "-r",
            "1",
            "-c",
            "retention.ms=3600000",
        ],
    );
    assert_eq!(created[0]["name"], "cli-a");
    assert_eq!(created[0]["partitions"], 2);
    let again = fails(floe(&broker.bootstrap(), &["topic", "create", "cli-a"]));
    assert_fails(&again, 1, "TOPIC_ALREADY_EXISTS");

    let listed = json(&broker, &["topic", "list"]);
    let a = find(&listed, "name", "cli-a").expect("cli-a listed");
    assert_eq!(a["partitions"], 2);
    assert_eq!(a["replication_factor"], 1);
    assert_eq!(a["internal"], false);
    let text = ok(&broker, &["topic", "list"], b"");
    assert!(text.starts_with("NAME") && text.contains("cli-a"), "{text}");

    let described = json(&broker, &["topic", "describe", "cli-a"]);
    let d = &described[0];
    assert_eq!(d["partitions"].as_array().unwrap().len(), 2);
    for p in d["partitions"].as_array().unwrap() {
        let leader = p["leader"].as_i64().expect("a leader");
        assert_eq!(p["replicas"], serde_json::json!([leader]));
        assert_eq!(p["isr"], serde_json::json!([leader]));
        assert_eq!(p["high_watermark"], 0);
        assert_eq!(p["error"], Value::Null);
    }
    let c = configs(d);
    assert_eq!(
        c["retention.ms"],
        ("3600000".into(), "DYNAMIC_TOPIC_CONFIG".into())
    );
    assert_eq!(c["cleanup.policy"].1, "DEFAULT_CONFIG");

    let altered = json(
        &broker,
        &[
            "topic",
            "alter-config",
            "cli-a",
            "--set",
            "retention.ms=7200000",
            "--set",
            "max.message.bytes=2000000",
        ],
    );
    assert_eq!(altered["set"]["retention.ms"], "7200000");
    let c = configs(&json(&broker, &["topic", "describe", "cli-a"])[0]);
    assert_eq!(
        c["retention.ms"],
        ("7200000".into(), "DYNAMIC_TOPIC_CONFIG".into())
    );
    assert_eq!(
        c["max.message.bytes"],
        ("2000000".into(), "DYNAMIC_TOPIC_CONFIG".into())
    );
    json(
        &broker,
        &[
            "topic",
            "alter-config",
            "cli-a",
            "--delete",
            "max.message.bytes",
        ],
    );
    let c = configs(&json(&broker, &["topic", "describe", "cli-a"])[0]);
    assert_ne!(c["max.message.bytes"].1, "DYNAMIC_TOPIC_CONFIG");
    assert_eq!(c["retention.ms"].0, "7200000");

    let added = json(&broker, &["topic", "add-partitions", "cli-a", "-n", "2"]);
    assert_eq!(added["partitions"], 4);
    let described = json(&broker, &["topic", "describe", "cli-a"]);
    assert_eq!(described[0]["partitions"].as_array().unwrap().len(), 4);
    let shrink = fails(floe(
        &broker.bootstrap(),
        &["topic", "add-partitions", "cli-a", "--total", "2"],
    ));
    assert_fails(&shrink, 1, "INVALID_PARTITIONS");

    // Keyed records with headers, and one line without the separator (no key).
    let mut input = String::new();
    for i in 0..12 {
        input.push_str(&format!("key-{}:value-{i}\n", i % 5));
    }
    input.push_str("no separator here\n");
    let produced = json_in(
        &broker,
        &[
            "produce",
            "cli-a",
            "-k",
            ":",
            "-H",
            "source=cli",
            "-H",
            "n=1",
        ],
        input.as_bytes(),
    );
    let records = produced["records"].as_array().unwrap();
    assert_eq!(records.len(), 13);
    let mut key_partition: BTreeMap<String, i64> = BTreeMap::new();
    let mut expected: BTreeMap<(i64, i64), (Value, String)> = BTreeMap::new();
    for (i, r) in records.iter().enumerate() {
        let (p, o) = (
            r["partition"].as_i64().unwrap(),
            r["offset"].as_i64().unwrap(),
        );
        let (key, value) = if i < 12 {
            let key = format!("key-{}", i % 5);
            let first = *key_partition.entry(key.clone()).or_insert(p);
            assert_eq!(first, p, "records with one key go to one partition");
            (Value::String(key), format!("value-{i}"))
        } else {
            (Value::Null, "no separator here".to_string())
        };
        assert!(
            expected.insert((p, o), (key, value)).is_none(),
            "offset {p}/{o} twice"
        );
    }
    for p in 0..4 {
        let offsets: Vec<i64> = expected
            .keys()
            .filter(|(q, _)| *q == p)
            .map(|(_, o)| *o)
            .collect();
        assert_eq!(
            offsets,
            (0..offsets.len() as i64).collect::<Vec<_>>(),
            "partition {p}"
        );
    }

    let consumed = json_lines(&broker, &["cli-a", "-e"]);
    assert_eq!(consumed.len(), 13);
    let mut seen = BTreeSet::new();
    for r in &consumed {
        let at = (
            r["partition"].as_i64().unwrap(),
            r["offset"].as_i64().unwrap(),
        );
        let (key, value) = &expected[&at];
        assert_eq!(&r["key"], key, "{r}");
        assert_eq!(r["value"], value.as_str(), "{r}");
        assert_eq!(r["topic"], "cli-a");
        assert_eq!(
            r["headers"],
            serde_json::json!([{"key": "source", "value": "cli"}, {"key": "n", "value": "1"}])
        );
        assert!(seen.insert(at));
    }
    let text = ok(
        &broker,
        &["consume", "cli-a", "-e", "-f", "%p/%o %k=%v [%h]\\n"],
        b"",
    );
    let lines: BTreeSet<String> = text.lines().map(str::to_string).collect();
    let want: BTreeSet<String> = expected
        .iter()
        .map(|((p, o), (k, v))| {
            format!("{p}/{o} {}={v} [source=cli,n=1]", k.as_str().unwrap_or(""))
        })
        .collect();
    assert_eq!(lines, want);

    // JSON input: per-record keys, partitions, timestamps and headers, and a tombstone.
    ok(&broker, &["topic", "create", "cli-j", "-p", "2"], b"");
    let input = concat!(
        r#"{"key":"j1","value":"v1","partition":1,"timestamp":1700000000000,"headers":[["h","1"]]}"#,
        "\n",
        r#"{"key":"j1","value":null,"partition":1,"timestamp":1700000000001}"#,
        "\n",
    );
    let produced = json_in(
        &broker,
        &["produce", "cli-j", "--input", "json"],
        input.as_bytes(),
    );
    let at: Vec<(i64, i64)> = produced["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["partition"].as_i64().unwrap(),
                r["offset"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(at, vec![(1, 0), (1, 1)]);
    let consumed = json_lines(&broker, &["cli-j", "-e", "-p", "1"]);
    assert_eq!(consumed.len(), 2, "{consumed:?}");
    assert_eq!(consumed[0]["value"], "v1");
    assert_eq!(consumed[0]["timestamp"], 1_700_000_000_000_i64);
    assert_eq!(
        consumed[0]["headers"],
        serde_json::json!([{"key": "h", "value": "1"}])
    );
    assert_eq!(consumed[1]["key"], "j1");
    assert_eq!(consumed[1]["value"], Value::Null, "the tombstone");
    // A bad line fails the command once the lines before it are sent.
    let bad = fails_in(
        &broker,
        &["produce", "cli-j", "--input", "json"],
        b"{\"value\":\"sent\",\"partition\":0}\n{\"value\":3}\n",
    );
    assert_fails(&bad, 1, "input line 2: value must be a string");
    let sent = json_lines(&broker, &["cli-j", "-e", "-p", "0"]);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["value"], "sent");

    // Every codec, in one partition, in order; then start offsets, counts and timestamps.
    let mut values = Vec::new();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let lines: Vec<String> = (0..3).map(|i| format!("{codec}-{i}")).collect();
        let produced = json_in(
            &broker,
            &["produce", "cli-b", "-p", "0", "-z", codec, "--acks", "1"],
            format!("{}\n", lines.join("\n")).as_bytes(),
        );
        assert_eq!(produced["records"].as_array().unwrap().len(), 3, "{codec}");
        values.extend(lines);
        std::thread::sleep(Duration::from_millis(20));
    }
    let all = json_lines(&broker, &["cli-b", "-e"]);
    let got: Vec<&str> = all.iter().map(|r| r["value"].as_str().unwrap()).collect();
    assert_eq!(got, values.iter().map(String::as_str).collect::<Vec<_>>());
    let offsets = |rs: &[Value]| {
        rs.iter()
            .map(|r| r["offset"].as_i64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(offsets(&all), (0..15).collect::<Vec<_>>());
    assert_eq!(
        offsets(&json_lines(&broker, &["cli-b", "-o", "5", "-n", "3"])),
        [5, 6, 7]
    );
    assert!(json_lines(&broker, &["cli-b", "-o", "end", "-e"]).is_empty());
    let ts9 = all[9]["timestamp"].as_i64().unwrap();
    let first_at = all
        .iter()
        .find(|r| r["timestamp"].as_i64().unwrap() >= ts9)
        .unwrap()["offset"]
        .as_i64()
        .unwrap();
    let from_ts = json_lines(&broker, &["cli-b", "--timestamp", &ts9.to_string(), "-e"]);
    assert_eq!(offsets(&from_ts), (first_at..15).collect::<Vec<_>>());
    let none = json_lines(
        &broker,
        &["cli-b", "--timestamp", &(ts9 + 3_600_000).to_string(), "-e"],
    );
    assert!(none.is_empty());
    let missing = fails(floe(
        &broker.bootstrap(),
        &["consume", "cli-b", "-p", "7", "-e"],
    ));
    assert_fails(&missing, 1, "UNKNOWN_TOPIC_OR_PARTITION");

    let info = json(&broker, &["cluster", "info"]);
    assert_eq!(info["brokers"].as_array().unwrap().len(), 1);
    assert_eq!(info["brokers"][0]["port"], broker.port);
    assert_eq!(info["controller_id"], info["brokers"][0]["node_id"]);
    assert!(
        info["cluster_id"].as_str().is_some_and(|id| !id.is_empty()),
        "{info}"
    );
    assert_eq!(info["topics"], 3);

    // The brokers may come from the environment.
    let out = run_ok_with(
        Command::new(floe_bin())
            .args(["topic", "list", "--format", "json"])
            .env("FLOE_BROKERS", broker.bootstrap()),
        b"",
        TIMEOUT,
    );
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(find(&listed, "name", "cli-b").is_some());

    let deleted = json(&broker, &["topic", "delete", "cli-b"]);
    assert_eq!(
        deleted,
        serde_json::json!([{"name": "cli-b", "deleted": true}])
    );
    assert!(find(&json(&broker, &["topic", "list"]), "name", "cli-b").is_none());
    let gone = fails(floe(&broker.bootstrap(), &["topic", "describe", "cli-b"]));
    assert_fails(&gone, 1, "UNKNOWN_TOPIC_OR_PARTITION");
}

/// Groups: a real consumer (rdkafka) commits offsets; `group describe` shows its member,
/// assignment and the real lag; reset-offsets is refused while it is a member and moves the
/// offsets to earliest/offset/latest/timestamp once it left; delete removes the group.
#[test]
fn cli_group_lag_and_reset_offsets() {
    let broker = Broker::start();
    json(&broker, &["topic", "create", "cli-g", "-p", "2"]);
    let first: String = (0..5).map(|i| format!("p0-{i}\n")).collect();
    json_in(&broker, &["produce", "cli-g", "-p", "0"], first.as_bytes());
    // A later timestamp for the second half of partition 0 (the reset-to-timestamp target).
    std::thread::sleep(Duration::from_millis(50));
    let second: String = (5..10).map(|i| format!("p0-{i}\n")).collect();
    json_in(&broker, &["produce", "cli-g", "-p", "0"], second.as_bytes());
    let third: String = (0..6).map(|i| format!("p1-{i}\n")).collect();
    json_in(&broker, &["produce", "cli-g", "-p", "1"], third.as_bytes());

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "cli-group")
        .set("client.id", "cli-test-consumer")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&["cli-g"]).unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let mut got = 0;
    while got < 16 {
        assert!(
            Instant::now() < deadline,
            "consumed only {got} of 16 records"
        );
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                assert_eq!(m.topic(), "cli-g");
                got += 1;
            }
            Some(Err(e)) => panic!("consumer error: {e}"),
            None => {}
        }
    }
    // The consumer processed partition 0 up to offset 4 and all of partition 1.
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("cli-g", 0, Offset::Offset(4))
        .unwrap();
    tpl.add_partition_offset("cli-g", 1, Offset::Offset(6))
        .unwrap();
    consumer.commit(&tpl, CommitMode::Sync).unwrap();

    let out = run_while_polling(
        &consumer,
        floe(
            &broker.bootstrap(),
            &["group", "describe", "cli-group", "--format", "json"],
        ),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let g: Value = serde_json::from_slice::<Value>(&out.stdout).unwrap()[0].clone();
    assert_eq!(g["state"], "Stable");
    assert_eq!(g["protocol_type"], "consumer");
    let members = g["members"].as_array().unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0]["client_id"], "cli-test-consumer");
    assert_eq!(
        members[0]["assignments"],
        serde_json::json!([{"topic": "cli-g", "partitions": [0, 1]}])
    );
    for o in g["offsets"].as_array().unwrap() {
        assert_eq!(o["member_id"], members[0]["member_id"]);
    }
    let want = BTreeMap::from([(0, (4, 10, 6)), (1, (6, 6, 0))]);
    assert_eq!(offsets_of(&g), want);
    assert_eq!(g["total_lag"], 6);

    let out = run_while_polling(
        &consumer,
        floe(&broker.bootstrap(), &["group", "list", "--format", "json"]),
    );
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let entry = find(&listed, "group", "cli-group").expect("cli-group listed");
    assert_eq!(entry["protocol_type"], "consumer");

    let out = run_while_polling(
        &consumer,
        floe(
            &broker.bootstrap(),
            &[
                "group",
                "reset-offsets",
                "cli-group",
                "--topic",
                "cli-g",
                "--to-earliest",
            ],
        ),
    );
    assert_fails(&out, 1, "NON_EMPTY_GROUP");

    drop(consumer); // closes: leaves the group
    let deadline = Instant::now() + TIMEOUT;
    while group_offsets(&broker, "cli-group").0["state"] != "Empty" {
        assert!(Instant::now() < deadline, "the group did not become empty");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (g, rows) = group_offsets(&broker, "cli-group");
    assert!(g["members"].as_array().unwrap().is_empty());
    assert_eq!(rows, want);

    // Resets the offsets of cli-g with `extra` arguments; returns the plan and the offsets
    // `group describe` shows afterwards.
    let reset = |extra: &[&str]| {
        let mut args = vec!["group", "reset-offsets", "cli-group", "--topic", "cli-g"];
        args.extend(extra);
        (json(&broker, &args), group_offsets(&broker, "cli-group").1)
    };
    let (plan, after) = reset(&["--to-earliest", "--dry-run"]);
    assert_eq!(plan["dry_run"], true);
    assert_eq!(
        plan["partitions"],
        serde_json::json!([
            {"partition": 0, "current_offset": 4, "new_offset": 0},
            {"partition": 1, "current_offset": 6, "new_offset": 0},
        ])
    );
    assert_eq!(after, want, "a dry run commits nothing");
    let (_, after) = reset(&["--to-earliest"]);
    assert_eq!(after, BTreeMap::from([(0, (0, 10, 10)), (1, (0, 6, 6))]));
    // Past the end of partition 1: clamped to its log end offset.
    let (_, after) = reset(&["--to-offset", "7"]);
    assert_eq!(after, BTreeMap::from([(0, (7, 10, 3)), (1, (6, 6, 0))]));
    let (_, after) = reset(&["--to-latest", "-p", "0"]);
    assert_eq!(after, BTreeMap::from([(0, (10, 10, 0)), (1, (6, 6, 0))]));
    let p0 = json_lines(&broker, &["cli-g", "-p", "0", "-e"]);
    let ts5 = p0[5]["timestamp"].as_i64().unwrap();
    assert!(
        p0[4]["timestamp"].as_i64().unwrap() < ts5,
        "two produce calls, two times"
    );
    let (_, after) = reset(&["--to-timestamp", &ts5.to_string(), "-p", "0"]);
    assert_eq!(after[&0], (5, 10, 5));

    let text = ok(&broker, &["group", "describe", "cli-group"], b"");
    assert!(
        text.contains("TOTAL-LAG") && text.contains("CURRENT-OFFSET"),
        "{text}"
    );

    let deleted = json(&broker, &["group", "delete", "cli-group"]);
    assert_eq!(
        deleted,
        serde_json::json!([{"group": "cli-group", "deleted": true}])
    );
    assert!(find(&json(&broker, &["group", "list"]), "group", "cli-group").is_none());
    let gone = fails(floe(
        &broker.bootstrap(),
        &["group", "describe", "cli-group"],
    ));
    assert_fails(&gone, 1, "GROUP_ID_NOT_FOUND");
}

/// Transaction markers are never printed as records, and `--read-committed` leaves out the
/// records of an aborted transaction (written by a real transactional producer).
#[test]
fn cli_consume_skips_markers_and_aborted_records() {
    let broker = Broker::start();
    json(&broker, &["topic", "create", "cli-t", "-p", "1"]);
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("transactional.id", "cli-txn")
        .create()
        .unwrap();
    producer.init_transactions(TIMEOUT).unwrap();
    for (values, commit) in [
        (&["committed-1"][..], true),
        (&["aborted-1", "aborted-2"][..], false),
        (&["committed-2"][..], true),
    ] {
        producer.begin_transaction().unwrap();
        for v in values {
            producer
                .send(BaseRecord::to("cli-t").partition(0).key("k").payload(*v))
                .map_err(|(e, _)| e)
                .unwrap();
        }
        producer.flush(TIMEOUT).unwrap();
        if commit {
            producer.commit_transaction(TIMEOUT).unwrap();
        } else {
            producer.abort_transaction(TIMEOUT).unwrap();
        }
    }
    drop(producer);

    let values = |records: &[Value]| {
        records
            .iter()
            .map(|r| {
                (
                    r["offset"].as_i64().unwrap(),
                    r["value"].as_str().unwrap().to_string(),
                )
            })
            .collect::<Vec<_>>()
    };
    // Offsets 1, 4 and 6 are the markers.
    let all = json_lines(&broker, &["cli-t", "-e"]);
    assert_eq!(
        values(&all),
        [
            (0, "committed-1".to_string()),
            (2, "aborted-1".to_string()),
            (3, "aborted-2".to_string()),
            (5, "committed-2".to_string()),
        ]
    );
    let committed = json_lines(&broker, &["cli-t", "-e", "--read-committed"]);
    assert_eq!(
        values(&committed),
        [
            (0, "committed-1".to_string()),
            (5, "committed-2".to_string())
        ]
    );
    let described = json(&broker, &["topic", "describe", "cli-t"]);
    assert_eq!(described[0]["partitions"][0]["high_watermark"], 7);
}

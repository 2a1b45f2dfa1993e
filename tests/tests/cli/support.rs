//! Helpers of `tests/tests/cli.rs`: running `floe` client commands and reading their JSON.

use std::collections::BTreeMap;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use floe_tests::{Broker, floe_bin, run_ok_with};
use rdkafka::consumer::BaseConsumer;
use serde_json::Value;

pub const TIMEOUT: Duration = Duration::from_secs(60);

/// `floe <args> -b <broker>`.
pub fn floe(broker: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(floe_bin());
    cmd.args(args)
        .args(["-b", broker])
        .env_remove("FLOE_BROKERS");
    cmd
}

/// Runs a command that must succeed, feeding `stdin`; returns stdout.
pub fn ok(broker: &Broker, args: &[&str], stdin: &[u8]) -> String {
    let out = run_ok_with(&mut floe(&broker.bootstrap(), args), stdin, TIMEOUT);
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command with `--format json` and parses its one JSON document.
pub fn json(broker: &Broker, args: &[&str]) -> Value {
    json_in(broker, args, b"")
}

pub fn json_in(broker: &Broker, args: &[&str], stdin: &[u8]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    let out = ok(broker, &all, stdin);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}):\n{out}"))
}

/// `floe consume ... --format json`: one JSON object per line.
pub fn json_lines(broker: &Broker, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["consume"];
    all.extend(args);
    all.extend(["--format", "json"]);
    ok(broker, &all, b"")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Runs a command that must fail; returns its output.
pub fn fails(mut cmd: Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    assert!(
        !out.status.success(),
        "{cmd:?} succeeded:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

/// Asserts the exit status and that stderr contains `needle`.
pub fn assert_fails(out: &Output, code: i32, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr:\n{stderr}");
    assert!(
        stderr.contains(needle),
        "stderr lacks '{needle}':\n{stderr}"
    );
}

/// The entry of `list` whose `key` is `value`.
pub fn find<'a>(list: &'a Value, key: &str, value: &str) -> Option<&'a Value> {
    list.as_array().unwrap().iter().find(|v| v[key] == value)
}

pub fn configs(described: &Value) -> BTreeMap<String, (Value, String)> {
    described["configs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                (
                    c["value"].clone(),
                    c["source"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect()
}

/// (committed offset, log end offset, lag) by partition of one `group describe` entry
/// (-1 for a null committed offset or lag).
pub fn offsets_of(g: &Value) -> BTreeMap<i64, (i64, i64, i64)> {
    g["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["partition"].as_i64().unwrap(),
                (
                    o["committed_offset"].as_i64().unwrap_or(-1),
                    o["log_end_offset"].as_i64().unwrap(),
                    o["lag"].as_i64().unwrap_or(-1),
                ),
            )
        })
        .collect()
}

/// `group describe GROUP` and its offsets by partition.
pub fn group_offsets(broker: &Broker, group: &str) -> (Value, BTreeMap<i64, (i64, i64, i64)>) {
    let g = json(broker, &["group", "describe", group])[0].clone();
    let rows = offsets_of(&g);
    (g, rows)
}

/// Polls `consumer` (keeping it in its group) until `cmd` finishes; returns its output.
pub fn run_while_polling(consumer: &BaseConsumer, cmd: Command) -> Output {
    let mut cmd = cmd;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let handle = std::thread::spawn(move || child.wait_with_output().unwrap());
    while !handle.is_finished() {
        if let Some(Err(e)) = consumer.poll(Duration::from_millis(50)) {
            panic!("consumer error: {e}");
        }
    }
    handle.join().unwrap()
}

/// Runs a command that must fail, feeding `stdin`; returns its output.
pub fn fails_in(broker: &Broker, args: &[&str], stdin: &[u8]) -> Output {
    use std::io::Write;
    let mut cmd = floe(&broker.bootstrap(), args);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "{cmd:?} succeeded");
    out
}

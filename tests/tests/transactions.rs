//! Kafka transactions against the real binary, through confluent-kafka (librdkafka 2.16)
//! unless said otherwise:
//! - committed and aborted transactions of two producers interleaved over three partitions:
//!   read_committed consumers (one reading while the transactions run, one started after)
//!   return exactly the committed records, in offset order per partition; read_uncommitted
//!   returns every data record, committed or aborted, and never a control record; every
//!   commit or abort marker takes one offset;
//! - fencing: a second producer with the same `transactional.id` aborts the first one's open
//!   transaction, the first fails with a fatal fencing error, the second commits normally;
//! - a producer SIGKILLed inside a transaction: the coordinator aborts it once its
//!   `transaction.timeout.ms` has passed, so a read_committed consumer waiting since before
//!   gets the records another producer committed after it (the last stable offset moves on),
//!   and never the killed producer's;
//! - tableflow on a table-enabled topic written by the same kind of interleaved committed
//!   and aborted transactions: the table reads to the last stable offset and no further
//!   while a transaction is open, and pyiceberg and DuckDB read exactly the committed
//!   records (partition, offset, key, value), each once, and no aborted one;
//! - consume-transform-produce with `send_offsets_to_transaction`, the app SIGKILLed at
//!   random points and started again with the same `transactional.id`: the output holds
//!   every input record exactly once, in order, and the group's committed offsets are the
//!   input's ends; the same with an app on the Apache Kafka Java client 3.9.1.
//!
//! The clients are `tests/clients/python/txn_check.py` (one command per check; each checks
//! what it read itself and prints a JSON summary), `txn_ctp.py` (the app) and
//! `tests/clients/java/FloeJavaCtp.java` (the Java app, compiled against the jars in
//! [`floe_tests::java_libs`]; `txn_check.py` fills its input and reads its output).

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use floe_tests::groups::committed_offsets;
use floe_tests::{Broker, client_command, clients_dir, compile_java, python, run_ok_with};
use rand::Rng;
use serde_json::Value;

/// The broker of the isolation, fencing and timeout checks: timed-out transactions are
/// looked for every 500 ms (Kafka: every 10 s), so the killed producer's transaction is
/// aborted soon after its 5 s timeout; five transaction-state partitions (Kafka: 50) spread
/// the checks' transactional ids over several coordinator partitions.
const TXN_BROKER: [&str; 4] = [
    "--set",
    "transaction_abort_timed_out_transaction_cleanup_interval_ms=500",
    "--set",
    "transaction_state_log_num_partitions=5",
];

/// Error names of a fenced transactional producer (librdkafka reports the broker's
/// PRODUCER_FENCED and INVALID_PRODUCER_EPOCH as its fatal `_FENCED`).
const FENCING_ERRORS: [&str; 3] = ["_FENCED", "PRODUCER_FENCED", "INVALID_PRODUCER_EPOCH"];

/// Records read from or acknowledged in a topic: partition -> (offset, value) by offset.
type Records = BTreeMap<i32, Vec<(i64, String)>>;

fn script(name: &str) -> PathBuf {
    clients_dir().join("python").join(name)
}

/// The command line of `txn_check.py COMMAND --bootstrap ... ARGS`.
fn txn_check_command(broker: &Broker, command: &str, args: &[&str]) -> Command {
    let mut cmd = client_command(python());
    cmd.arg(script("txn_check.py"))
        .arg(command)
        .arg("--bootstrap")
        .arg(broker.bootstrap())
        .args(args)
        .env("PYTHONUNBUFFERED", "1");
    cmd
}

/// Runs `txn_check.py COMMAND` to completion and returns its JSON summary (its last line).
fn txn_check(broker: &Broker, command: &str, args: &[&str]) -> Value {
    let out = run_ok_with(
        &mut txn_check_command(broker, command, args),
        b"",
        Duration::from_secs(300),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("txn_check.py {command} printed no JSON summary:\n{stdout}"));
    serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("txn_check.py {command} printed {line:?}: {e}"))
}

/// `{"<partition>": [[offset, value], ...]}` as printed by `txn_check.py`.
fn read_records(v: &Value) -> Records {
    v.as_object()
        .unwrap_or_else(|| panic!("not a records object: {v}"))
        .iter()
        .map(|(p, records)| {
            let records = records
                .as_array()
                .unwrap()
                .iter()
                .map(|r| (r[0].as_i64().unwrap(), r[1].as_str().unwrap().to_string()))
                .collect();
            (p.parse().unwrap(), records)
        })
        .collect()
}

/// `[[partition, offset, value], ...]` acknowledged to a producer, as [`Records`].
fn delivered_records(v: &Value) -> Records {
    let mut out = Records::new();
    for r in v
        .as_array()
        .unwrap_or_else(|| panic!("not a delivered list: {v}"))
    {
        let p = r[0].as_i64().unwrap() as i32;
        out.entry(p)
            .or_default()
            .push((r[1].as_i64().unwrap(), r[2].as_str().unwrap().to_string()));
    }
    for records in out.values_mut() {
        records.sort();
    }
    out
}

/// Both sets of records, in offset order per partition.
fn union(a: &Records, b: &Records) -> Records {
    let mut out = a.clone();
    for (p, records) in b {
        let all = out.entry(*p).or_default();
        all.extend(records.iter().cloned());
        all.sort();
    }
    out
}

/// Panics unless `got` and `want` hold the same records in every partition (a partition
/// missing from one side counts as empty), naming what is missing and what is unexpected.
fn assert_same_records(what: &str, got: &Records, want: &Records) {
    let empty = Vec::new();
    let mut problems = Vec::new();
    for p in got
        .keys()
        .chain(want.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let (g, w) = (got.get(p).unwrap_or(&empty), want.get(p).unwrap_or(&empty));
        if g == w {
            continue;
        }
        let missing: Vec<_> = w.iter().filter(|r| !g.contains(r)).take(5).collect();
        let unexpected: Vec<_> = g.iter().filter(|r| !w.contains(r)).take(5).collect();
        problems.push(format!(
            "partition {p}: read {} records, expected {}; missing (first 5) {missing:?}; \
             unexpected (first 5) {unexpected:?}",
            g.len(),
            w.len()
        ));
    }
    assert!(problems.is_empty(), "{what}:\n{}", problems.join("\n"));
}

/// A client script running in the background: its stdout lines (JSON objects) arrive on a
/// channel, its stderr goes to a file shown in failure messages. Killed when dropped.
struct Background {
    name: String,
    child: Option<Child>,
    lines: mpsc::Receiver<String>,
    reader: Option<JoinHandle<()>>,
    stdout: Vec<String>,
    stderr: PathBuf,
}

impl Background {
    fn spawn(name: &str, mut cmd: Command, work: &Path) -> Background {
        let stderr = work.join(format!("{}.stderr", name.replace([' ', '/'], "-")));
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&stderr).unwrap()))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Background {
            name: name.to_string(),
            child: Some(child),
            lines,
            reader: Some(reader),
            stdout: Vec::new(),
            stderr,
        }
    }

    /// What the script printed so far, for failure messages.
    fn diagnostics(&self) -> String {
        format!(
            "{}: stdout:\n{}\nstderr:\n{}",
            self.name,
            self.stdout.join("\n"),
            std::fs::read_to_string(&self.stderr).unwrap_or_default()
        )
    }

    /// Waits up to `timeout` for the next stdout line that is a JSON object with one of
    /// `keys`, and returns it.
    fn wait_for(&mut self, keys: &[&str], timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.stdout.push(line.clone());
                    if let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(&line)
                        && keys.iter().any(|k| v.get(k).is_some())
                    {
                        return v;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                    "{} printed no {keys:?} line within {timeout:?}\n{}",
                    self.name,
                    self.diagnostics()
                ),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.as_mut().map(|c| c.wait().unwrap());
                    panic!(
                        "{} exited ({status:?}) before printing a {keys:?} line\n{}",
                        self.name,
                        self.diagnostics()
                    )
                }
            }
        }
    }

    /// Collects every line printed so far without waiting.
    fn drain(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.stdout.push(line);
        }
    }

    /// The JSON lines printed so far that have `key`.
    fn printed(&mut self, key: &str) -> Vec<Value> {
        self.drain();
        self.stdout
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v.get(key).is_some())
            .collect()
    }

    /// The script's exit status if it has exited, without waiting.
    fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().unwrap())
    }

    /// SIGKILL the script (no cleanup of any kind) and reap it.
    fn kill9(&mut self) {
        let mut child = self.child.take().expect("script running");
        let _ = child.kill(); // SIGKILL on unix
        child.wait().unwrap();
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        self.drain();
    }

    /// Waits up to `timeout` for the script to exit successfully and returns its last JSON
    /// line (its summary).
    fn finish(&mut self, timeout: Duration) -> Value {
        let mut child = self.child.take().expect("script running");
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                self.drain();
                panic!(
                    "{} did not finish within {timeout:?}\n{}",
                    self.name,
                    self.diagnostics()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        self.drain();
        assert!(
            status.success(),
            "{} failed ({status})\n{}",
            self.name,
            self.diagnostics()
        );
        self.stdout
            .iter()
            .rev()
            .find_map(|l| serde_json::from_str::<Value>(l).ok())
            .unwrap_or_else(|| {
                panic!(
                    "{} printed no JSON summary\n{}",
                    self.name,
                    self.diagnostics()
                )
            })
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One broker, four independent checks (each on its own topic and transactional ids).
#[test]
fn isolation_fencing_timeouts_and_tables() {
    let broker = Broker::start_with(&TXN_BROKER);
    let work = tempfile::tempdir().unwrap();
    committed_and_aborted_transactions(&broker);
    a_second_producer_fences_the_first(&broker);
    a_killed_producers_transaction_times_out(&broker, work.path());
    tables_hold_exactly_the_committed_records(&broker);
}

/// Two transactional producers, ten rounds; in each both write interleaved batches, then one
/// commits and the other aborts. `txn_check.py isolation` compares every record read with
/// every record acknowledged; the summary's counts are checked again here.
fn committed_and_aborted_transactions(broker: &Broker) {
    let s = txn_check(
        broker,
        "isolation",
        &["--topic", "txn-mixed", "--rounds", "10"],
    );
    let committed = s["committed_records"].as_u64().unwrap();
    let aborted = s["aborted_records"].as_u64().unwrap();
    assert!(
        committed > 0 && aborted > 0,
        "both committed and aborted records: {s}"
    );
    assert_eq!(s["transactions"], 20, "transactions run: {s}");
    assert_eq!(
        s["live_read_committed"].as_u64(),
        Some(committed),
        "a read_committed consumer reading while the transactions ran returns exactly the \
         committed records: {s}"
    );
    assert_eq!(
        s["read_committed"].as_u64(),
        Some(committed),
        "a fresh read_committed consumer returns exactly the committed records: {s}"
    );
    assert_eq!(
        s["read_uncommitted"].as_u64(),
        Some(committed + aborted),
        "a read_uncommitted consumer returns every data record, committed or aborted, and no \
         control record: {s}"
    );
    assert_eq!(
        s["high_watermarks"], s["expected_high_watermarks"],
        "each partition ends after its data records plus one offset per commit or abort \
         marker: {s}"
    );
}

/// Producer A's open transaction is aborted by producer B's init_transactions with the same
/// transactional id; A fails fatally, B works.
fn a_second_producer_fences_the_first(broker: &Broker) {
    let s = txn_check(
        broker,
        "fencing",
        &["--topic", "txn-fenced", "--transactional-id", "fenced-app"],
    );
    let error = s["fenced_error"].as_str().unwrap();
    assert!(
        s["fenced_fatal"] == true || FENCING_ERRORS.contains(&error),
        "producer A fails with a fatal fencing error once B called init_transactions: {s}"
    );
    assert_eq!(
        s["a_delivered_after_fence"], 0,
        "no record of the fenced producer is acknowledged: {s}"
    );
    let before = s["a_delivered_before"].as_u64().unwrap();
    let b = s["b_committed"].as_u64().unwrap();
    assert!(before > 0 && b > 0, "{s}");
    assert_eq!(
        s["read_committed"].as_u64(),
        Some(b),
        "read_committed returns B's committed records and none of A's aborted ones: {s}"
    );
    assert_eq!(
        s["read_uncommitted"].as_u64(),
        Some(before + b),
        "read_uncommitted returns A's acknowledged records and B's: {s}"
    );
}

/// A read_committed consumer waits at the end of an empty topic; a producer begins a
/// transaction there (5 s transaction timeout), has its records acknowledged and is
/// SIGKILLed; another producer commits records after them. The waiting consumer gets those
/// once the coordinator has aborted the killed producer's transaction, and never the
/// killed producer's records, which are in the log all the same.
fn a_killed_producers_transaction_times_out(broker: &Broker, work: &Path) {
    const TOPIC: &str = "txn-timeout";
    const PER_PARTITION: usize = 10;
    const PARTITIONS: usize = 3;
    let expect = (PER_PARTITION * PARTITIONS).to_string();
    let per_partition = PER_PARTITION.to_string();
    let partitions = PARTITIONS.to_string();

    let mut watcher = Background::spawn(
        "read_committed watcher",
        txn_check_command(
            broker,
            "watch",
            &[
                "--topic",
                TOPIC,
                "--partitions",
                &partitions,
                "--expect-prefix",
                "after-",
                "--expect",
                &expect,
                "--timeout",
                "180",
            ],
        ),
        work,
    );
    watcher.wait_for(&["ready"], Duration::from_secs(90));

    let mut victim = Background::spawn(
        "producer killed in its transaction",
        txn_check_command(
            broker,
            "hang",
            &[
                "--topic",
                TOPIC,
                "--partitions",
                &partitions,
                "--transactional-id",
                "txn-timeout-victim",
                "--transaction-timeout-ms",
                "5000",
                "--per-partition",
                &per_partition,
                "--prefix",
                "doomed-",
            ],
        ),
        work,
    );
    let doomed =
        delivered_records(&victim.wait_for(&["delivered"], Duration::from_secs(90))["delivered"]);
    victim.kill9();

    // Committed after the killed producer's records: beyond the last stable offset until the
    // coordinator aborts the open transaction.
    let after = txn_check(
        broker,
        "commit",
        &[
            "--topic",
            TOPIC,
            "--partitions",
            &partitions,
            "--transactional-id",
            "txn-timeout-survivor",
            "--per-partition",
            &per_partition,
            "--prefix",
            "after-",
        ],
    );
    let after = delivered_records(&after["delivered"]);

    let watched = watcher.finish(Duration::from_secs(240));
    let seen = read_records(&watched["records"]);
    eprintln!(
        "the waiting read_committed consumer got the later commit {} s after the killed \
         producer's records",
        watched["waited_s"]
    );
    let leaked: Vec<_> = seen
        .values()
        .flatten()
        .filter(|(_, v)| v.starts_with("doomed-"))
        .collect();
    assert!(
        leaked.is_empty(),
        "read_committed returned records of the killed producer's transaction: {leaked:?}"
    );
    assert_same_records(
        "the read_committed consumer waiting since before the killed transaction",
        &seen,
        &after,
    );

    let committed = txn_check(
        broker,
        "read",
        &["--topic", TOPIC, "--isolation", "read_committed"],
    );
    assert_same_records(
        "a fresh read_committed consumer after the timeout abort",
        &read_records(&committed["records"]),
        &after,
    );
    let uncommitted = txn_check(
        broker,
        "read",
        &["--topic", TOPIC, "--isolation", "read_uncommitted"],
    );
    assert_same_records(
        "a fresh read_uncommitted consumer (the killed producer's records are in the log)",
        &read_records(&uncommitted["records"]),
        &union(&doomed, &after),
    );
}

/// Acceptance 6: a table-enabled topic (key_value, committed every 300 ms) of three
/// partitions gets the isolation check's ten rounds of interleaved committed and aborted
/// transactions; then one producer leaves a transaction open in every partition and the
/// other commits one after it. `txn_check.py tableflow` waits (bounded) for the table's
/// `floe.next-offsets` to reach each partition's last stable offset, failing at once if one
/// goes past it, and compares the rows pyiceberg and DuckDB read with the committed
/// records; then it aborts the open transaction, waits for the table to reach the high
/// watermarks and compares again. The summary's counts and offsets are checked here.
fn tables_hold_exactly_the_committed_records(broker: &Broker) {
    let data_dir = broker.data_dir.to_str().unwrap();
    let s = txn_check(
        broker,
        "tableflow",
        &[
            "--topic",
            "txn_table",
            "--partitions",
            "3",
            "--rounds",
            "10",
            "--data-dir",
            data_dir,
        ],
    );
    let committed = s["committed_records"].as_u64().unwrap();
    let aborted = s["aborted_records"].as_u64().unwrap();
    let before_open = s["committed_before_open"].as_u64().unwrap();
    assert!(
        before_open > 0 && committed > before_open && aborted > 0,
        "committed records before and after the open transaction, and aborted records: {s}"
    );
    assert_eq!(s["transactions"], 22, "transactions run: {s}");
    for engine in ["pyiceberg", "duckdb"] {
        assert_eq!(
            s["rows_while_open"][engine].as_u64(),
            Some(before_open),
            "{engine} reads exactly the records committed before the open transaction while \
             it is open: {s}"
        );
        assert_eq!(
            s["rows"][engine].as_u64(),
            Some(committed),
            "{engine} reads exactly the committed records once every transaction ended: {s}"
        );
    }
    assert_eq!(
        s["next_offsets_while_open"], s["last_stable_offsets_while_open"],
        "while a transaction is open the table reads to the last stable offset: {s}"
    );
    assert_eq!(
        s["next_offsets"], s["high_watermarks"],
        "once every transaction ended the table reads to the high watermarks: {s}"
    );
}

/// A consume-transform-produce scenario: the input topic, filled by `txn_check.py fill` with
/// `count` records `in-<n>` (n from 0, record n in partition n % `partitions`), is read by an
/// app in `group` that writes each record as `out-<n>` to the same partition of the output
/// topic, sending its consumed offsets to each transaction.
struct Ctp {
    input: &'static str,
    output: &'static str,
    group: &'static str,
    partitions: i32,
    count: usize,
    /// Times the app is SIGKILLed before the run that must finish.
    kills: usize,
}

/// Fills the input, then SIGKILLs the app `ctp.kills` times, some runs after their first
/// committed transaction and a random delay, some at a random moment from start-up
/// (initTransactions, joining the group), starting it again each time (`start_app(run)`,
/// with the same `transactional.id`), and then lets it run to the end. The apps print the
/// lines `txn_ctp.py` documents. A read_committed consumer of the output must see every
/// input record exactly once, in input order per partition, and the group's committed
/// offsets must be the input's ends.
fn exactly_once_across_kill9(
    broker: &Broker,
    ctp: &Ctp,
    mut start_app: impl FnMut(usize) -> Background,
) {
    let filled = txn_check(
        broker,
        "fill",
        &[
            "--input",
            ctp.input,
            "--output",
            ctp.output,
            "--partitions",
            &ctp.partitions.to_string(),
            "--count",
            &ctp.count.to_string(),
        ],
    );
    assert_eq!(filled["filled"], ctp.count, "{filled}");

    let mut rng = rand::rng();
    for run in 0..ctp.kills {
        let mut app = start_app(run);
        let (delay, since) = if rng.random_bool(0.3) {
            (Duration::from_millis(rng.random_range(0..4000)), "start")
        } else {
            app.wait_for(&["txn"], Duration::from_secs(120));
            (
                Duration::from_millis(rng.random_range(0..1500)),
                "first committed transaction",
            )
        };
        std::thread::sleep(delay);
        if let Some(status) = app.exit_status() {
            app.drain();
            panic!(
                "the app exited ({status}) before its kill {}: it must still be working at \
                 every kill\n{}",
                run + 1,
                app.diagnostics()
            );
        }
        app.kill9();
        assert!(
            app.printed("done").is_empty(),
            "the app finished before its kill {}: it must still be working at every kill\n{}",
            run + 1,
            app.diagnostics()
        );
        let txns = app.printed("txn");
        eprintln!(
            "run {run}: SIGKILLed {delay:?} after its {since}; {} transactions committed, {} \
             records processed in this run",
            txns.len(),
            txns.last().map_or(0, |t| t["processed"].as_u64().unwrap())
        );
    }
    let mut last = start_app(ctp.kills);
    let done = last.finish(Duration::from_secs(300));
    assert_eq!(done["done"], true, "{}", last.diagnostics());
    eprintln!("last run: {done}");

    // The output, read_committed: each input record exactly once, in input order.
    let out = txn_check(
        broker,
        "read",
        &["--topic", ctp.output, "--isolation", "read_committed"],
    );
    let got = read_records(&out["records"]);
    let mut problems = Vec::new();
    for p in 0..ctp.partitions {
        let values: Vec<&str> = got
            .get(&p)
            .map(|rs| rs.iter().map(|(_, v)| v.as_str()).collect())
            .unwrap_or_default();
        let want: Vec<String> = (p as usize..ctp.count)
            .step_by(ctp.partitions as usize)
            .map(|i| format!("out-{i:05}"))
            .collect();
        if values == want {
            continue;
        }
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for v in &values {
            *seen.entry(v).or_default() += 1;
        }
        let duplicates: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(10).collect();
        let missing: Vec<_> = want
            .iter()
            .filter(|v| !seen.contains_key(v.as_str()))
            .take(10)
            .collect();
        let unexpected: Vec<_> = seen
            .keys()
            .filter(|v| !want.iter().any(|w| w == *v))
            .take(10)
            .collect();
        let first_difference = values
            .iter()
            .zip(&want)
            .position(|(v, w)| v != w)
            .unwrap_or(values.len().min(want.len()));
        problems.push(format!(
            "partition {p}: {} records, expected {}; duplicated (first 10) {duplicates:?}; \
             missing (first 10) {missing:?}; unexpected (first 10) {unexpected:?}; first \
             difference from the input order at index {first_difference}",
            values.len(),
            want.len()
        ));
    }
    assert!(
        problems.is_empty(),
        "the output read with read_committed is not every input record exactly once:\n{}",
        problems.join("\n")
    );

    // The offsets committed with the last transaction become visible once the coordinator
    // has written its commit marker, which may be after commitTransaction returned.
    let want: BTreeMap<i32, Option<i64>> = (0..ctp.partitions)
        .map(|p| (p, Some((ctp.count / ctp.partitions as usize) as i64)))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut committed = committed_offsets(broker, ctp.group, ctp.input, ctp.partitions);
    while committed != want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        committed = committed_offsets(broker, ctp.group, ctp.input, ctp.partitions);
    }
    assert_eq!(
        committed, want,
        "the offsets sent to the transactions are the group's committed offsets, at the \
         input's end"
    );

    let raw = txn_check(
        broker,
        "read",
        &["--topic", ctp.output, "--isolation", "read_uncommitted"],
    );
    let raw_count: usize = read_records(&raw["records"]).values().map(Vec::len).sum();
    eprintln!(
        "{} output records of transactions the kills left open were aborted and not read \
         with read_committed",
        raw_count.saturating_sub(ctp.count)
    );
}

/// `txn_ctp.py` (librdkafka) reads 6,000 records (three partitions) and writes them
/// transformed, 30 to a transaction with 100 ms spent inside each (so the app needs at least
/// 20 s and a kill usually lands inside a transaction); it is SIGKILLed five times
/// ([`exactly_once_across_kill9`]).
#[test]
fn consume_transform_produce_is_exactly_once_across_kill9() {
    let ctp = Ctp {
        input: "ctp-in",
        output: "ctp-out",
        group: "ctp-app",
        partitions: 3,
        count: 6000,
        kills: 5,
    };
    let broker = Broker::start_with(&["--set", "group_initial_rebalance_delay_ms=0"]);
    let work = tempfile::tempdir().unwrap();
    exactly_once_across_kill9(&broker, &ctp, |run| {
        let mut cmd = client_command(python());
        cmd.arg(script("txn_ctp.py"))
            .arg("--bootstrap")
            .arg(broker.bootstrap())
            .args([
                "--input", ctp.input, "--output", ctp.output, "--group", ctp.group,
            ])
            .args(["--transactional-id", "ctp-app-txn"])
            .args(["--batch", "30", "--process-ms", "100", "--timeout", "280"])
            .env("PYTHONUNBUFFERED", "1");
        Background::spawn(&format!("txn_ctp.py run {run}"), cmd, work.path())
    });
}

/// Acceptance 2 (Java): `tests/clients/java/FloeJavaCtp.java`, a consume-transform-produce
/// app on the Java client (a producer with default settings plus `transactional.id`, a
/// read_committed consumer in a group without auto-commit, `sendOffsetsToTransaction` with
/// the consumer's group metadata), reads 3,000 records (three partitions) and writes them
/// transformed, at most 30 to a transaction (`max.poll.records`) with 100 ms spent inside
/// each; it is SIGKILLed five times ([`exactly_once_across_kill9`]). Each start after a kill
/// joins the group once the killed instance's 6 s session has expired.
#[test]
fn java_consume_transform_produce_is_exactly_once_across_kill9() {
    let ctp = Ctp {
        input: "java-ctp-in",
        output: "java-ctp-out",
        group: "java-ctp-app",
        partitions: 3,
        count: 3000,
        kills: 5,
    };
    let broker = Broker::start_with(&["--set", "group_initial_rebalance_delay_ms=0"]);
    let work = tempfile::tempdir().unwrap();
    let classpath = compile_java("FloeJavaCtp", &work.path().join("classes"));
    let count = ctp.count.to_string();
    exactly_once_across_kill9(&broker, &ctp, |run| {
        let mut cmd = client_command("java");
        cmd.arg("-cp")
            .arg(&classpath)
            .arg("FloeJavaCtp")
            .arg("--bootstrap")
            .arg(broker.bootstrap())
            .args([
                "--input", ctp.input, "--output", ctp.output, "--group", ctp.group,
            ])
            .args(["--transactional-id", "java-ctp-app-txn", "--count", &count])
            .args([
                "--batch",
                "30",
                "--process-ms",
                "100",
                "--session-timeout-ms",
                "6000",
            ])
            .args(["--timeout", "280"]);
        Background::spawn(&format!("FloeJavaCtp run {run}"), cmd, work.path())
    });
}

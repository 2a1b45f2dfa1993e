//! Consumer-group test support: group members of every client as separate processes, a
//! producer of numbered records, and the event logs they write.
//!
//! Each member program (`tests/clients/python/groups_member_confluent.py`,
//! `groups_member_kafka_python.py`, `tests/clients/node/groups_member.js`,
//! `tests/clients/java/FloeGroupMember.java`) takes the same flags and appends the same
//! event log, one flushed line per event (format in `tests/clients/python/groups_common.py`),
//! so one scenario and one set of checks run against every client. A member stops
//! gracefully (close(), LeaveGroup) when its stop file appears, or is SIGKILLed.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::{Broker, client_command, clients_dir, java_libs, python, run_ok_with, wait_until};

/// A Kafka client library that can run a group member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// confluent-kafka-python (librdkafka 2.16).
    Confluent,
    /// kafka-python (pure Python, classic protocol only).
    KafkaPython,
    /// The Apache Kafka Java client 3.9.1.
    Java,
    /// kafkajs 2.2.4 (round-robin assignor only).
    Kafkajs,
}

/// Settings of one member beyond its group and topic.
#[derive(Debug, Clone)]
pub struct MemberOpts {
    /// `group.instance.id` (static membership).
    pub instance_id: Option<String>,
    /// Assignment strategy name ("range", "roundrobin"); the client's default if `None`.
    pub assignor: Option<&'static str>,
    /// `session.timeout.ms`.
    pub session_timeout_ms: u32,
    /// `heartbeat.interval.ms`.
    pub heartbeat_ms: u32,
    /// "classic" or "consumer" (KIP-848; confluent-kafka only).
    pub protocol: &'static str,
    /// Simulated processing time of each poll's records, between processing and commit.
    pub process_ms: u32,
}

impl Default for MemberOpts {
    fn default() -> Self {
        MemberOpts {
            instance_id: None,
            assignor: None,
            session_timeout_ms: 6000,
            heartbeat_ms: 1000,
            protocol: "classic",
            process_ms: 0,
        }
    }
}

/// One line of a member's event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The partitions the member owns after an assignment change.
    Own(BTreeSet<i32>),
    /// A record was processed.
    Rec {
        /// Partition.
        partition: i32,
        /// Offset.
        offset: i64,
        /// Value.
        value: String,
    },
    /// A synchronous commit of `next` (the next offset to read) was acknowledged.
    Commit {
        /// Partition.
        partition: i32,
        /// Committed offset.
        next: i64,
    },
    /// A synchronous commit failed.
    CommitFail(String),
    /// An error the client reported.
    Error(String),
    /// The consumer was closed after the stop file appeared.
    Closed,
}

fn parse_event(line: &str) -> Event {
    let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
    let field = |s: Option<&str>| -> i64 {
        s.and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad event line {line:?}"))
    };
    match kind {
        "own" if rest == "-" => Event::Own(BTreeSet::new()),
        "own" => Event::Own(
            rest.split(',')
                .map(|p| {
                    p.parse()
                        .unwrap_or_else(|_| panic!("bad event line {line:?}"))
                })
                .collect(),
        ),
        "rec" => {
            let mut it = rest.splitn(3, ' ');
            Event::Rec {
                partition: field(it.next()) as i32,
                offset: field(it.next()),
                value: it.next().unwrap_or_default().to_string(),
            }
        }
        "commit" => {
            let mut it = rest.split(' ');
            Event::Commit {
                partition: field(it.next()) as i32,
                next: field(it.next()),
            }
        }
        "commitfail" => Event::CommitFail(rest.to_string()),
        "error" => Event::Error(rest.to_string()),
        "closed" => Event::Closed,
        _ => panic!("unknown event line {line:?}"),
    }
}

/// Complete lines of `path` (a line still being written when read is left out).
fn complete_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    complete.lines().map(str::to_string).collect()
}

/// A directory for one test's logs, stop files and compiled Java classes.
pub struct GroupWork {
    dir: Option<tempfile::TempDir>,
    java_classes: OnceLock<PathBuf>,
}

impl Default for GroupWork {
    fn default() -> Self {
        GroupWork::new()
    }
}

impl GroupWork {
    /// A fresh work directory.
    pub fn new() -> GroupWork {
        GroupWork {
            dir: Some(tempfile::tempdir().unwrap()),
            java_classes: OnceLock::new(),
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.as_ref().unwrap().path()
    }

    fn java_classes(&self) -> &Path {
        self.java_classes.get_or_init(|| {
            let libs = java_libs();
            assert!(
                libs.join("kafka-clients.jar").is_file(),
                "no kafka-clients.jar in {} (run scripts/install-test-deps.sh)",
                libs.display()
            );
            let classes = self.path().join("java-classes");
            run_ok_with(
                Command::new("javac")
                    .arg("-d")
                    .arg(&classes)
                    .arg("-cp")
                    .arg(format!("{}/*", libs.display()))
                    .arg(clients_dir().join("java").join("FloeGroupMember.java")),
                b"",
                Duration::from_secs(180),
            );
            classes
        })
    }

    /// The command line of a member of `group` consuming `topic`, without its log flags.
    fn member_command(&self, client: Client, broker: &Broker, group: &str, topic: &str) -> Command {
        let mut cmd = match client {
            Client::Confluent | Client::KafkaPython => {
                let script = if client == Client::Confluent {
                    "groups_member_confluent.py"
                } else {
                    "groups_member_kafka_python.py"
                };
                let mut cmd = client_command(python());
                cmd.arg(clients_dir().join("python").join(script));
                cmd
            }
            Client::Java => {
                let mut cmd = client_command("java");
                cmd.arg("-cp")
                    .arg(format!(
                        "{}:{}/*",
                        self.java_classes().display(),
                        java_libs().display()
                    ))
                    .arg("FloeGroupMember");
                cmd
            }
            Client::Kafkajs => {
                let node_dir = clients_dir().join("node");
                assert!(
                    node_dir.join("node_modules/kafkajs/package.json").is_file(),
                    "kafkajs is not installed in {} (run scripts/install-test-deps.sh)",
                    node_dir.display()
                );
                let mut cmd = client_command("node");
                cmd.arg(node_dir.join("groups_member.js"));
                cmd
            }
        };
        cmd.arg("--bootstrap")
            .arg(broker.bootstrap())
            .args(["--group", group, "--topic", topic]);
        cmd
    }

    /// Start a member named `name` (its log is `<name>.log` in the work directory).
    pub fn member(
        &self,
        client: Client,
        name: &str,
        broker: &Broker,
        group: &str,
        topic: &str,
        opts: &MemberOpts,
    ) -> Member {
        let mut cmd = self.member_command(client, broker, group, topic);
        let log = self.path().join(format!("{name}.log"));
        let stop_file = self.path().join(format!("{name}.stop"));
        cmd.arg("--log")
            .arg(&log)
            .arg("--stop-file")
            .arg(&stop_file)
            .arg("--session-timeout-ms")
            .arg(opts.session_timeout_ms.to_string())
            .arg("--heartbeat-ms")
            .arg(opts.heartbeat_ms.to_string())
            .arg("--process-ms")
            .arg(opts.process_ms.to_string());
        if let Some(id) = &opts.instance_id {
            cmd.args(["--instance-id", id]);
        }
        if let Some(assignor) = opts.assignor {
            cmd.args(["--assignor", assignor]);
        }
        if opts.protocol != "classic" {
            cmd.args(["--protocol", opts.protocol]);
        }
        let mut member = Member {
            name: name.to_string(),
            client,
            cmd,
            child: None,
            log,
            stop_file,
            output: self.path().join(format!("{name}.out")),
            starts: Vec::new(),
        };
        member.spawn();
        member
    }

    /// Start a producer of numbered records into `topic` (created with `partitions`
    /// partitions if it does not exist), at about `rate` records a second, and wait until
    /// it has a record acknowledged. Acknowledgements of every producer this work
    /// directory ran for `topic` accumulate in one log.
    pub fn producer(&self, broker: &Broker, topic: &str, partitions: i32, rate: u32) -> Producer {
        let ack_log = self.path().join(format!("{topic}.acks"));
        let stop_file = self.path().join(format!("{topic}.producer.stop"));
        let output = self.path().join(format!("{topic}.producer.out"));
        let _ = std::fs::remove_file(&stop_file);
        let already_acked = complete_lines(&ack_log).len();
        let out = File::create(&output).unwrap();
        let child = client_command(python())
            .arg(clients_dir().join("python").join("groups_producer.py"))
            .arg(broker.bootstrap())
            .arg(topic)
            .arg(partitions.to_string())
            .arg(&ack_log)
            .arg(&stop_file)
            .arg(rate.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("spawn groups_producer.py");
        let mut producer = Producer {
            child: Some(child),
            ack_log,
            stop_file,
            output,
        };
        wait_until(
            Duration::from_secs(60),
            "the producer has a record acknowledged",
            || {
                producer.assert_running();
                producer.acked().len() > already_acked
            },
        );
        producer
    }
}

impl Drop for GroupWork {
    fn drop(&mut self) {
        // A failed test keeps its event logs for a post-mortem.
        if std::thread::panicking()
            && let Some(dir) = self.dir.take()
        {
            eprintln!("event logs kept in {}", dir.keep().display());
        }
    }
}

/// A group member process and its event log.
pub struct Member {
    /// Name used in logs and messages.
    pub name: String,
    /// Its client library.
    pub client: Client,
    cmd: Command,
    child: Option<Child>,
    log: PathBuf,
    stop_file: PathBuf,
    output: PathBuf,
    /// Event-log length at each (re)start.
    starts: Vec<usize>,
}

impl Member {
    fn spawn(&mut self) {
        let _ = std::fs::remove_file(&self.stop_file);
        self.starts.push(complete_lines(&self.log).len());
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.output)
            .unwrap();
        let child = self
            .cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn member {}: {e}", self.name));
        self.child = Some(child);
    }

    /// Start the member again (same flags, same log) after [`Member::kill9`] or
    /// [`Member::stop`].
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "{} is still running", self.name);
        self.spawn();
    }

    /// Every complete event so far.
    pub fn events(&self) -> Vec<Event> {
        complete_lines(&self.log)
            .iter()
            .map(|l| parse_event(l))
            .collect()
    }

    /// Index into [`Member::events`] where the latest run started.
    pub fn last_start(&self) -> usize {
        *self.starts.last().unwrap()
    }

    /// The partitions the member owns according to its latest `own` event of its current
    /// run (empty before the first).
    pub fn owned(&self) -> BTreeSet<i32> {
        self.events()
            .into_iter()
            .skip(self.last_start())
            .filter_map(|e| match e {
                Event::Own(s) => Some(s),
                _ => None,
            })
            .next_back()
            .unwrap_or_default()
    }

    /// How many assignment changes the member has logged in total.
    pub fn assignment_changes(&self) -> usize {
        self.events()
            .iter()
            .filter(|e| matches!(e, Event::Own(_)))
            .count()
    }

    /// Highest acknowledged commit per partition in the whole log.
    pub fn commits(&self) -> BTreeMap<i32, i64> {
        let mut out = BTreeMap::new();
        for e in self.events() {
            if let Event::Commit { partition, next } = e {
                let n = out.entry(partition).or_insert(next);
                *n = (*n).max(next);
            }
        }
        out
    }

    /// Everything the member logged and printed, for failure messages.
    pub fn diagnostics(&self) -> String {
        let lines = complete_lines(&self.log);
        let interesting: Vec<&String> = lines
            .iter()
            .filter(|l| !l.starts_with("rec ") && !l.starts_with("commit "))
            .collect();
        format!(
            "member {} ({:?}): {} log lines; non-record events:\n{}\noutput:\n{}",
            self.name,
            self.client,
            lines.len(),
            interesting
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            std::fs::read_to_string(&self.output).unwrap_or_default()
        )
    }

    /// Panic with the member's diagnostics if its process has exited.
    pub fn assert_running(&mut self) {
        let child = self.child.as_mut().expect("member running");
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "{} exited early ({status}):\n{}",
                self.name,
                self.diagnostics()
            );
        }
    }

    /// Graceful stop: create the stop file, wait for the process to close its consumer and
    /// exit 0.
    pub fn stop(&mut self) {
        File::create(&self.stop_file).unwrap();
        let child = self.child.take().expect("member running");
        let status = wait_exit(child, Duration::from_secs(60), || {
            format!(
                "{} did not close within 60 s:\n{}",
                self.name,
                self.diagnostics()
            )
        });
        assert!(
            status.success() && self.events().last() == Some(&Event::Closed),
            "{} did not close cleanly ({status}):\n{}",
            self.name,
            self.diagnostics()
        );
    }

    /// SIGKILL the member: no LeaveGroup, no commit, nothing flushed beyond its log.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("member running");
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A running `groups_producer.py`.
pub struct Producer {
    child: Option<Child>,
    ack_log: PathBuf,
    stop_file: PathBuf,
    output: PathBuf,
}

impl Producer {
    /// Acknowledged records so far: (partition, offset, value).
    pub fn acked(&self) -> Vec<(i32, i64, String)> {
        complete_lines(&self.ack_log)
            .iter()
            .map(|l| {
                let mut it = l.splitn(3, ' ');
                let p = it.next().and_then(|s| s.parse().ok());
                let o = it.next().and_then(|s| s.parse().ok());
                match (p, o, it.next()) {
                    (Some(p), Some(o), Some(v)) => (p, o, v.to_string()),
                    _ => panic!("bad ack line {l:?}"),
                }
            })
            .collect()
    }

    /// Panic with the producer's output if it has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
            panic!(
                "groups_producer.py exited early ({status}):\n{}",
                std::fs::read_to_string(&self.output).unwrap_or_default()
            );
        }
    }

    /// Stop producing, wait until everything in flight is acknowledged, and return every
    /// acknowledged record.
    pub fn stop(&mut self) -> Vec<(i32, i64, String)> {
        File::create(&self.stop_file).unwrap();
        let child = self.child.take().expect("producer running");
        let status = wait_exit(child, Duration::from_secs(90), || {
            "groups_producer.py did not stop within 90 s".to_string()
        });
        assert!(
            status.success(),
            "groups_producer.py failed ({status}):\n{}",
            std::fs::read_to_string(&self.output).unwrap_or_default()
        );
        self.acked()
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The committed offset of each of `partitions` partitions of `topic` in `group` (`None`
/// where nothing is committed), read with `groups_admin.py committed`.
pub fn committed_offsets(
    broker: &Broker,
    group: &str,
    topic: &str,
    partitions: i32,
) -> BTreeMap<i32, Option<i64>> {
    let out = group_admin(&[
        "committed",
        &broker.bootstrap(),
        group,
        topic,
        &partitions.to_string(),
    ]);
    let json: BTreeMap<String, Option<i64>> = serde_json::from_str(&out).unwrap();
    json.into_iter()
        .map(|(p, o)| (p.parse().unwrap(), o))
        .collect()
}

/// Waits up to `timeout` for `child` to exit; kills it and panics with `what` otherwise.
fn wait_exit(
    mut child: Child,
    timeout: Duration,
    what: impl FnOnce() -> String,
) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{}", what());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Run `groups_admin.py` with `args` and return its JSON output.
pub fn group_admin(args: &[&str]) -> String {
    let out = run_ok_with(
        client_command(python())
            .arg(clients_dir().join("python").join("groups_admin.py"))
            .args(args),
        b"",
        Duration::from_secs(120),
    );
    String::from_utf8(out.stdout).unwrap()
}

/// High watermark per partition (one past the last acknowledged offset) of a topic that
/// only `acks` were written to.
pub fn high_watermarks(acks: &[(i32, i64, String)], partitions: i32) -> BTreeMap<i32, i64> {
    let mut hw: BTreeMap<i32, i64> = (0..partitions).map(|p| (p, 0)).collect();
    for (p, o, _) in acks {
        let h = hw.get_mut(p).expect("ack for a partition of the topic");
        *h = (*h).max(o + 1);
    }
    hw
}

/// The group's bookkeeping across every member's event log is exact:
/// - every acknowledged record was processed, with its acknowledged value (none skipped);
/// - a record was processed twice only if a member in `killed` processed it first without a
///   logged commit covering it (its offset is at or past that member's last acknowledged
///   commit for the partition), and then exactly once by another member; every other
///   record was processed exactly once;
/// - no member logged a failed commit;
/// - `committed` (read back by a fresh consumer) is the high watermark of every partition.
///
/// Panics with every violation found.
pub fn check_exactly_once(
    acks: &[(i32, i64, String)],
    partitions: i32,
    members: &[&Member],
    killed: &[&str],
    committed: &BTreeMap<i32, Option<i64>>,
) {
    let hw = high_watermarks(acks, partitions);
    let values: BTreeMap<(i32, i64), &str> = acks
        .iter()
        .map(|(p, o, v)| ((*p, *o), v.as_str()))
        .collect();
    let mut problems = Vec::new();
    // (partition, offset) -> names of the members that processed it.
    let mut processed: BTreeMap<(i32, i64), Vec<&str>> = BTreeMap::new();
    let mut last_commit: BTreeMap<&str, BTreeMap<i32, i64>> = BTreeMap::new();
    for m in members {
        last_commit.insert(&m.name, m.commits());
        for e in m.events() {
            match e {
                Event::Rec {
                    partition,
                    offset,
                    value,
                } => {
                    match values.get(&(partition, offset)) {
                        Some(v) if *v == value => {}
                        Some(v) => problems.push(format!(
                            "{} read {value:?} at {partition}/{offset}, acknowledged {v:?}",
                            m.name
                        )),
                        None => problems.push(format!(
                            "{} read {value:?} at {partition}/{offset}, never acknowledged",
                            m.name
                        )),
                    }
                    processed
                        .entry((partition, offset))
                        .or_default()
                        .push(&m.name);
                }
                Event::CommitFail(msg) => {
                    problems.push(format!("{}: commit failed: {msg}", m.name));
                }
                _ => {}
            }
        }
    }
    let mut duplicates_allowed = 0;
    for (&p, &h) in &hw {
        for o in 0..h {
            match processed.get(&(p, o)).map(Vec::as_slice) {
                None | Some([]) => problems.push(format!("record {p}/{o} was never processed")),
                Some([_]) => {}
                Some(by) => {
                    // The one allowed duplicate: a killed member's uncommitted record, read
                    // again once by its partition's next owner.
                    let uncommitted_by_killed = |name: &&str| {
                        killed.contains(name)
                            && o >= last_commit[name].get(&p).copied().unwrap_or(0)
                    };
                    let ok = by.len() == 2
                        && by.iter().filter(|n| uncommitted_by_killed(n)).count() == 1
                        && by[0] != by[1];
                    if ok {
                        duplicates_allowed += 1;
                    } else {
                        problems.push(format!(
                            "record {p}/{o} processed {} times, by {by:?} (last commits: {:?})",
                            by.len(),
                            by.iter()
                                .map(|n| (n, last_commit[n].get(&p)))
                                .collect::<Vec<_>>()
                        ));
                    }
                }
            }
        }
        match committed.get(&p) {
            Some(Some(c)) if *c == h => {}
            other => problems.push(format!(
                "partition {p}: committed offset {other:?}, high watermark {h}"
            )),
        }
    }
    eprintln!(
        "checked {} records in {partitions} partitions: {duplicates_allowed} re-read after a kill",
        acks.len()
    );
    if !problems.is_empty() {
        let shown: Vec<&String> = problems.iter().take(40).collect();
        let diags: Vec<String> = members.iter().map(|m| m.diagnostics()).collect();
        panic!(
            "{} problems:\n{}\n\n{}",
            problems.len(),
            shown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            diags.join("\n\n")
        );
    }
}

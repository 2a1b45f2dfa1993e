//! Shared helpers for the end-to-end tests in `tests/tests/`.
//!
//! Every test starts the real `floe` binary on a free loopback port with a fresh data
//! directory, then drives it with real Kafka clients (kcat, confluent-kafka-python, the Java
//! client, kafkajs, the `rdkafka` crate) or with raw frames.
//!
//! Tools the tests need are installed by `scripts/test.sh`; their locations are found here:
//! - the `floe` binary: `$FLOE_BIN`, else `<workspace>/target/debug/floe` (built on demand),
//! - Python with the client libraries: `$FLOE_PYTHON`, else `<workspace>/.venv/bin/python`,
//! - node with kafkajs: `tests/clients/node/node_modules`,
//! - the Java client jars: `$FLOE_JAVA_LIBS`, else `<workspace>/.cache/java-libs`,
//! - local S3 servers ([`s3`]): moto from the venv, s3s-fs at `$FLOE_S3S_FS`.

// Helpers in a test-support crate: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod groups;
pub mod raw;
pub mod s3;
pub mod security;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests crate lives inside the workspace")
        .to_path_buf()
}

/// Path of the `floe` binary, building it once per test process if needed.
pub fn floe_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("FLOE_BIN") {
            return PathBuf::from(p);
        }
        let root = workspace_root();
        let status = Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "floe-broker", "--bin", "floe"])
            .current_dir(&root)
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building floe failed");
        let target = std::env::var("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| root.join("target"));
        target.join("debug").join("floe")
    })
    .clone()
}

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `floe serve` process with its own data directory.
pub struct Broker {
    child: Option<Child>,
    /// Port the broker listens on (kept across restarts).
    pub port: u16,
    /// Port of its HTTP admin listener (`/metrics`, `/health`, `/ready`).
    pub http_port: u16,
    /// Data directory (kept across restarts; removed on drop).
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    extra_args: Vec<String>,
    env: Vec<(String, String)>,
    log_path: PathBuf,
}

impl Broker {
    /// Start a broker with default settings on a fresh data directory.
    pub fn start() -> Broker {
        Broker::start_with(&[])
    }

    /// Start a broker with extra `floe serve` flags, e.g. `["--num-partitions", "3"]`.
    pub fn start_with(extra_args: &[&str]) -> Broker {
        Broker::start_on(free_port(), extra_args)
    }

    /// Start a broker whose (PLAINTEXT) listener is `port`: for tests that name it in
    /// `listeners` beside others.
    pub fn start_on(port: u16, extra_args: &[&str]) -> Broker {
        let tmp = tempfile::tempdir().unwrap();
        let data_dir = tmp.path().join("data");
        let log_path = tmp.path().join("broker.log");
        let mut broker = Broker {
            child: None,
            port,
            http_port: free_port(),
            data_dir,
            _tmp: Some(tmp),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
            log_path,
        };
        broker.spawn();
        broker
    }

    /// `host:port` for client bootstrap settings.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The socket address of the listener.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .unwrap();
        let child = Command::new(floe_bin())
            .arg("serve")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--listen")
            .arg(self.bootstrap())
            .arg("--set")
            .arg(format!("http_listen=127.0.0.1:{}", self.http_port))
            .args(&self.extra_args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or("info".into()),
            )
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn floe");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200)).is_ok() {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("floe exited during start ({status}); log:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "floe did not listen within 60 s; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the broker wrote to stdout/stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Process id of the running broker.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("broker running").id()
    }

    /// Resident set size of the running broker in bytes.
    pub fn rss_bytes(&self) -> u64 {
        rss_bytes_of(self.pid())
    }

    /// SIGKILL the broker and reap it (no chance to flush anything).
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL on unix
            let _ = child.wait();
        }
    }

    /// SIGTERM the broker and wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    assert!(
                        status.success(),
                        "floe exited with {status}; log:\n{}",
                        self.log()
                    );
                    return;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    panic!("floe did not stop within 30 s; log:\n{}", self.log());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Start the broker again on the same port and data directory with other extra
    /// `floe serve` flags (they stay for later restarts).
    pub fn restart_with(&mut self, extra_args: &[&str]) {
        self.extra_args = extra_args.iter().map(|s| s.to_string()).collect();
        self.restart();
    }

    /// Environment variables for the next start (and the ones after), e.g. a crash point.
    pub fn set_env(&mut self, env: &[(&str, &str)]) {
        self.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    }

    /// Waits up to `timeout` for the broker process to exit on its own (a crash point);
    /// its exit status if it did. The broker then counts as stopped.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.child.as_mut()?;
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Start the broker again on the same port and data directory.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop or kill the broker first");
        self.spawn();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- broker log ----\n{}", self.log());
        }
    }
}

/// Resident set size of process `pid` in bytes (`VmRSS` in `/proc/<pid>/status`).
pub fn rss_bytes_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS line in:\n{status}"));
    kib * 1024
}

/// Python interpreter of the test venv (has confluent-kafka, kafka-python).
pub fn python() -> PathBuf {
    std::env::var("FLOE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join(".venv/bin/python"))
}

/// Directory of the client programs (`tests/clients/`).
pub fn clients_dir() -> PathBuf {
    workspace_root().join("tests").join("clients")
}

/// Run a command to completion, panicking with its output if it fails.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Run a command to completion with `stdin` as its standard input, killing it if it has not
/// finished within `timeout`; panics with its output if it fails or times out.
///
/// Clients wait for a broker that misbehaves for minutes (librdkafka's default message
/// timeout is five), so a test bounds every client run instead of hanging.
pub fn run_ok_with(cmd: &mut Command, stdin: &[u8], timeout: Duration) -> Output {
    use std::io::{Read, Write};

    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    // Feed stdin and drain stdout/stderr on their own threads so neither side can block
    // the other on a full pipe.
    let mut input = child.stdin.take().unwrap();
    let stdin_data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        // The command may exit without reading everything; its exit status tells.
        let _ = input.write_all(&stdin_data);
    });
    let mut out_pipe = child.stdout.take().unwrap();
    let stdout = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out_pipe.read_to_end(&mut buf);
        buf
    });
    let mut err_pipe = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err_pipe.read_to_end(&mut buf);
        buf
    });

    let deadline = Instant::now() + timeout;
    let (status, timed_out) = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break (status, false);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break (child.wait().unwrap(), true);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    writer.join().unwrap();
    let out = Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    };
    assert!(
        !timed_out && out.status.success(),
        "{cmd:?} {} ({}):\nstdout:\n{}\nstderr:\n{}",
        if timed_out {
            format!("timed out after {timeout:?}")
        } else {
            "failed".to_string()
        },
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Directory holding the Java client jars (`kafka-clients.jar` plus its compression and
/// logging jars): `$FLOE_JAVA_LIBS`, else `<workspace>/.cache/java-libs`.
pub fn java_libs() -> PathBuf {
    std::env::var("FLOE_JAVA_LIBS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join(".cache/java-libs"))
}

/// Compiles `tests/clients/java/<class>.java` against the client jars in [`java_libs`] into
/// `classes` and returns the classpath to run it with (`classes` and every client jar).
pub fn compile_java(class: &str, classes: &Path) -> String {
    let libs = java_libs();
    assert!(
        libs.join("kafka-clients.jar").is_file(),
        "no kafka-clients.jar in {} (run scripts/install-test-deps.sh or set FLOE_JAVA_LIBS)",
        libs.display()
    );
    // The JVM expands `dir/*` to every jar in `dir`.
    let jars = format!("{}/*", libs.display());
    run_ok_with(
        Command::new("javac")
            .arg("-d")
            .arg(classes)
            .arg("-cp")
            .arg(&jars)
            .arg(clients_dir().join("java").join(format!("{class}.java"))),
        b"",
        Duration::from_secs(180),
    );
    format!("{}:{jars}", classes.display())
}

/// Wait until `cond` holds, polling every 20 ms; panic with `what` after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `Command` for an external client program (kcat, python, node, java).
///
/// Cargo runs test binaries with `LD_LIBRARY_PATH` pointing into build-script output
/// directories, and the `rdkafka` crate's build leaves its bundled `librdkafka.so.1` (2.12,
/// built without zstd) there. Left in place, Debian's kcat would load that library instead of
/// its own librdkafka 2.0.2, so clients run without it.
pub fn client_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_remove("LD_LIBRARY_PATH");
    cmd
}

/// `GET path` on 127.0.0.1:`port` over HTTP/1.0: `(status, body)`, or `None` if nothing
/// answered (not listening yet, or the connection failed).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    http_get_at(SocketAddr::from(([127, 0, 0, 1], port)), path)
}

/// `GET path` on `addr` over HTTP/1.0, as [`http_get`].
pub fn http_get_at(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// Runs `durability_load.py verify` on `topic` with the acknowledgement logs of its load
/// producers: every acknowledged record is at its acknowledged offset, none twice. Returns
/// its output (it ends with OK); fails the test otherwise.
pub fn verify_acknowledged(broker: &Broker, topic: &str, ack_logs: &[PathBuf]) -> String {
    let out = run_ok_with(
        Command::new(python())
            .arg(clients_dir().join("python").join("durability_load.py"))
            .arg(broker.bootstrap())
            .arg(topic)
            .arg("verify")
            .args(ack_logs),
        b"",
        Duration::from_secs(300),
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(stdout.contains("OK"), "{stdout}");
    stdout
}

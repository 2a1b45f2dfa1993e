//! Starting, probing and stopping the brokers under test. Each broker gets a fresh data
//! directory and a free port on 127.0.0.1, and runs alone while it is measured.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::wire::Conn;

/// Which broker a process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Floe,
    Tansu,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Floe => "floe",
            Kind::Tansu => "tansu",
        }
    }
}

/// How to start one broker.
#[derive(Debug, Clone)]
pub struct BrokerSpec {
    pub kind: Kind,
    pub binary: PathBuf,
    pub data_dir: PathBuf,
    pub port: u16,
    /// Extra environment of the process (Floe: `FLOE_STORAGE_IO=std` for the std backend).
    pub env: Vec<(String, String)>,
}

/// A running broker process.
pub struct Broker {
    pub spec: BrokerSpec,
    child: Child,
    /// When `spawn` was called.
    pub spawned_at: Instant,
    launches: u32,
}

/// Time from spawn to each stage of readiness.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Readiness {
    /// First accepted TCP connection.
    pub connect_ms: f64,
    /// First Metadata response that lists the topic with every partition led.
    pub metadata_ms: f64,
    /// First acks=1 produce that every partition of the topic accepted.
    pub produce_ms: f64,
}

pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

impl BrokerSpec {
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn command(&self) -> Command {
        let listen = self.bootstrap();
        match self.kind {
            Kind::Floe => {
                let mut cmd = Command::new(&self.binary);
                cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
                cmd.arg("serve")
                    .arg("--data-dir")
                    .arg(&self.data_dir)
                    .arg("--listen")
                    .arg(&listen);
                if !self.env.iter().any(|(k, _)| k == "FLOE_HTTP_LISTEN") {
                    // Any free port: runs must not collide on the default 9644.
                    cmd.arg("--set").arg("http_listen=127.0.0.1:0");
                }
                cmd
            }
            Kind::Tansu => {
                // Its default listener is 0.0.0.0; always pass 127.0.0.1 URLs.
                let url = format!("tcp://{listen}");
                let mut cmd = Command::new(&self.binary);
                cmd.arg("broker")
                    .arg("--listener-url")
                    .arg(&url)
                    .arg("--advertised-listener-url")
                    .arg(&url)
                    .arg("--storage-engine")
                    // tansu resolves the path against its working directory, the data dir.
                    .arg("sqlite://tansu.db");
                cmd
            }
        }
    }
}

impl Broker {
    /// Starts the broker (creating its data directory) with its output in
    /// `<data_dir>/../<kind>-<n>.log`.
    pub fn spawn(spec: BrokerSpec) -> Result<Broker> {
        let mut broker = Broker {
            child: start(&spec, 0)?,
            spawned_at: Instant::now(),
            spec,
            launches: 1,
        };
        broker.spawned_at = Instant::now();
        Ok(broker)
    }

    /// Starts the same broker again on the same data directory (after `stop` or `kill`).
    pub fn respawn(&mut self) -> Result<()> {
        let spawned_at = Instant::now();
        self.child = start(&self.spec, self.launches)?;
        self.spawned_at = spawned_at;
        self.launches += 1;
        Ok(())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the current launch wrote to its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(log_path(&self.spec, self.launches - 1)).unwrap_or_default()
    }

    /// Waits until the broker accepts connections and answers Metadata.
    pub fn wait_listening(&mut self, timeout: Duration) -> Result<Duration> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive()?;
            if let Ok(mut conn) = Conn::connect(self.spec.addr(), Duration::from_millis(200))
                && conn.metadata("floe-bench-probe").is_ok()
            {
                return Ok(self.spawned_at.elapsed());
            }
            if Instant::now() > deadline {
                bail!("{} did not start within {timeout:?}", self.spec.kind.name());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Measures, from spawn, when the broker is ready to serve `topic`: polls (every
    /// millisecond) connect, then Metadata, then an acks=1 produce to every partition.
    pub fn wait_ready(
        &mut self,
        topic: &str,
        partitions: i32,
        timeout: Duration,
    ) -> Result<Readiness> {
        let deadline = self.spawned_at + timeout;
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let mut stage_times = [None; 3];
        loop {
            self.check_alive()?;
            if Instant::now() > deadline {
                bail!(
                    "{} not ready to serve {topic} within {timeout:?}",
                    self.spec.kind.name()
                );
            }
            let Ok(mut conn) = Conn::connect(self.spec.addr(), Duration::from_millis(200)) else {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            };
            stage_times[0].get_or_insert(self.spawned_at.elapsed());
            loop {
                if Instant::now() > deadline {
                    break;
                }
                if stage_times[1].is_none() {
                    match conn.topic_ready(topic, partitions) {
                        Ok(true) => stage_times[1] = Some(self.spawned_at.elapsed()),
                        Ok(false) => {
                            std::thread::sleep(Duration::from_millis(1));
                            continue;
                        }
                        Err(_) => break,
                    }
                }
                match conn.produce_probe(topic, partitions) {
                    Ok(()) => {
                        let produce = self.spawned_at.elapsed();
                        return Ok(Readiness {
                            connect_ms: ms(stage_times[0].unwrap_or(produce)),
                            metadata_ms: ms(stage_times[1].unwrap_or(produce)),
                            produce_ms: ms(produce),
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        }
    }

    fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited with {status}; see {}",
                self.spec.kind.name(),
                log_path(&self.spec, self.launches - 1).display()
            );
        }
        Ok(())
    }

    /// Resident set size (VmRSS) and its peak (VmHWM), in bytes.
    pub fn rss(&self) -> Result<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let field = |name: &str| -> Result<u64> {
            let line = status
                .lines()
                .find(|l| l.starts_with(name))
                .with_context(|| format!("no {name} in /proc/<pid>/status"))?;
            let kb: u64 = line
                .split_whitespace()
                .nth(1)
                .context("malformed status line")?
                .parse()?;
            Ok(kb * 1024)
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// Graceful stop (SIGTERM), waiting for exit; returns how long shutting down took.
    pub fn stop(&mut self) -> Result<Duration> {
        let start = Instant::now();
        if self.child.try_wait()?.is_some() {
            return Ok(Duration::ZERO);
        }
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status()?;
        if !status.success() {
            bail!("kill -TERM {} failed", self.pid());
        }
        let deadline = start + Duration::from_secs(60);
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                self.child.kill()?;
                self.child.wait()?;
                bail!("{} ignored SIGTERM for 60 s", self.spec.kind.name());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(start.elapsed())
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) -> Result<()> {
        if self.child.try_wait()?.is_none() {
            self.child.kill()?;
            self.child.wait()?;
        }
        Ok(())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn log_path(spec: &BrokerSpec, launch: u32) -> PathBuf {
    let parent = spec.data_dir.parent().unwrap_or(Path::new("."));
    parent.join(format!("{}-{launch}.log", spec.kind.name()))
}

fn start(spec: &BrokerSpec, launch: u32) -> Result<Child> {
    std::fs::create_dir_all(&spec.data_dir)?;
    let log = File::create(log_path(spec, launch))?;
    let mut cmd = spec.command();
    cmd.current_dir(&spec.data_dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    if spec.kind == Kind::Floe && !spec.env.iter().any(|(k, _)| k == "RUST_LOG") {
        cmd.env("RUST_LOG", "warn");
    }
    cmd.spawn()
        .with_context(|| format!("starting {}", spec.binary.display()))
}

/// Creates a topic and waits until its metadata shows every partition with a leader.
pub fn create_topic(spec: &BrokerSpec, topic: &str, partitions: i32) -> Result<()> {
    match spec.kind {
        Kind::Floe => {
            Conn::connect(spec.addr(), Duration::from_secs(5))?.create_topic(topic, partitions)?
        }
        Kind::Tansu => {
            // tansu does not auto-create topics; its own CLI is the documented way.
            let out = Command::new(&spec.binary)
                .arg("topic")
                .arg("create")
                .arg("--broker")
                .arg(format!("tcp://{}", spec.bootstrap()))
                .arg("--partitions")
                .arg(partitions.to_string())
                .arg(topic)
                .output()?;
            if !out.status.success() {
                bail!(
                    "tansu topic create {topic}: {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut conn = Conn::connect(spec.addr(), Duration::from_secs(5))?;
        if conn.topic_ready(topic, partitions)? {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("topic {topic} has no leaders after 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Total size of the regular files under `dir`.
pub fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

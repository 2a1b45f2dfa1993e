//! Real local S3 servers for the end-to-end tests: moto (`moto_server` from the test venv)
//! and s3s-fs (`$FLOE_S3S_FS`), both installed by `scripts/install-test-deps.sh`.
//!
//! The two differ where it matters to a broker writing to S3:
//! - moto keeps everything in memory: a stopped moto loses its buckets and objects,
//! - s3s-fs keeps objects as files under its root directory (one subdirectory per bucket),
//!   so they survive a stop and a restart.
//!
//! Both refuse a conditional PUT (`If-None-Match: *` on an existing key, `If-Match` with
//! another ETag) with 412. s3s-fs checks and then writes, not atomically: concurrent
//! create-only PUTs of one key can all succeed there.
//!
//! ```no_run
//! use floe_tests::s3::{S3Kind, S3Server};
//!
//! let s3 = S3Server::start(S3Kind::S3sFs, "warehouse");
//! println!("{} {} {}", s3.endpoint(), s3.access_key(), s3.secret_key());
//! assert!(s3.list("floe/").is_empty());
//! ```

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::{client_command, free_port, python, run_ok_with};

/// Which S3 server implementation to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum S3Kind {
    /// moto's server mode (`moto_server`, Python): in memory, lost on stop.
    Moto,
    /// s3s-fs (Rust): objects are files under its data directory, kept across restarts.
    S3sFs,
}

/// moto accepts any credentials; these are the ones its documentation uses.
const MOTO_ACCESS_KEY: &str = "test";
const MOTO_SECRET_KEY: &str = "test";
/// s3s-fs checks signatures against the one key pair it is started with.
const S3S_FS_ACCESS_KEY: &str = "floe-test-access-key";
const S3S_FS_SECRET_KEY: &str = "floe-test-secret-key";
const REGION: &str = "us-east-1";

/// How long a server may take to listen (moto imports a lot of Python on start).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running local S3 server on a free loopback port with one bucket. Killed (and reaped)
/// on drop; its log and data directory are removed then.
pub struct S3Server {
    kind: S3Kind,
    port: u16,
    bucket: String,
    child: Option<Child>,
    /// Holds `server.log` and, for s3s-fs, the data directory `data/`.
    tmp: tempfile::TempDir,
}

impl S3Server {
    /// Starts a server of that kind on a free 127.0.0.1 port and creates bucket `bucket`.
    ///
    /// Returns once the server accepts connections and the bucket exists.
    pub fn start(kind: S3Kind, bucket: &str) -> S3Server {
        let tmp = tempfile::tempdir().unwrap();
        let mut server = S3Server {
            kind,
            port: free_port(),
            bucket: bucket.to_string(),
            child: None,
            tmp,
        };
        if kind == S3Kind::S3sFs {
            // s3s-fs has a bucket for every subdirectory of its root (CreateBucket is a
            // mkdir), so the bucket exists before the server does.
            std::fs::create_dir_all(server.bucket_dir()).unwrap();
        }
        server.spawn();
        server
    }

    /// The server kind.
    pub fn kind(&self) -> S3Kind {
        self.kind
    }

    /// The port it listens on (kept across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The bucket created by `start`.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Endpoint URL for S3 clients, `http://127.0.0.1:PORT` (path-style addressing).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Access key id the server accepts.
    pub fn access_key(&self) -> &str {
        match self.kind {
            S3Kind::Moto => MOTO_ACCESS_KEY,
            S3Kind::S3sFs => S3S_FS_ACCESS_KEY,
        }
    }

    /// Secret access key the server accepts.
    pub fn secret_key(&self) -> &str {
        match self.kind {
            S3Kind::Moto => MOTO_SECRET_KEY,
            S3Kind::S3sFs => S3S_FS_SECRET_KEY,
        }
    }

    /// Region to sign requests for.
    pub fn region(&self) -> &str {
        REGION
    }

    /// Everything the server wrote to stdout/stderr so far (across restarts).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Whether the server process is running (started and not stopped).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Stops the server (SIGKILL and wait). s3s-fs keeps its objects on disk, so `restart`
    /// brings them back; moto keeps them in memory and loses them.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (and, for s3s-fs, the same data directory,
    /// so buckets and objects are as they were). A restarted moto starts empty, so the
    /// bucket is created again, with no objects in it.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the S3 server first");
        self.spawn();
    }

    /// The bytes of an object, read from s3s-fs's data directory (also while the server is
    /// stopped); `None` if it does not exist. Not available for moto.
    pub fn read_object(&self, key: &str) -> Option<Vec<u8>> {
        assert_eq!(self.kind, S3Kind::S3sFs, "read_object reads s3s-fs's files");
        std::fs::read(self.bucket_dir().join(key)).ok()
    }

    /// Keys (object names) under `prefix` in the bucket with their sizes in bytes, sorted
    /// by key.
    ///
    /// For s3s-fs this reads its data directory, so it works while the server is stopped;
    /// for moto it asks the server (boto3's `list_objects_v2`).
    pub fn list(&self, prefix: &str) -> Vec<(String, u64)> {
        let mut objects = match self.kind {
            S3Kind::S3sFs => {
                let mut out = Vec::new();
                list_files(&self.bucket_dir(), "", &mut out);
                out.retain(|(key, _)| key.starts_with(prefix));
                out
            }
            S3Kind::Moto => self.list_via_boto3(prefix),
        };
        objects.sort();
        objects
    }

    fn log_path(&self) -> PathBuf {
        self.tmp.path().join("server.log")
    }

    /// Root directory of s3s-fs.
    fn data_dir(&self) -> PathBuf {
        self.tmp.path().join("data")
    }

    fn bucket_dir(&self) -> PathBuf {
        self.data_dir().join(&self.bucket)
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let port = self.port.to_string();
        let mut cmd = match self.kind {
            S3Kind::Moto => {
                // Installed into the venv next to its python by the moto[server] package.
                let mut cmd = client_command(python().parent().unwrap().join("moto_server"));
                cmd.args(["-H", "127.0.0.1", "-p", &port]);
                cmd
            }
            S3Kind::S3sFs => {
                let mut cmd = client_command(s3s_fs_bin());
                cmd.args(["--host", "127.0.0.1", "--port", &port])
                    .args(["--access-key", S3S_FS_ACCESS_KEY])
                    .args(["--secret-key", S3S_FS_SECRET_KEY])
                    .arg(self.data_dir())
                    // Start-up and errors only; per-request tracing is at debug.
                    .env("RUST_LOG", "info");
                cmd
            }
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {:?} S3 server ({cmd:?}): {e}", self.kind));
        self.child = Some(child);
        self.wait_listening();
        if self.kind == S3Kind::Moto {
            self.create_bucket_via_boto3();
        }
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200)).is_ok() {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                panic!(
                    "{:?} S3 server exited during start ({status}); log:\n{}",
                    self.kind,
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{:?} S3 server did not listen on {} within {START_TIMEOUT:?}; log:\n{}",
                self.kind,
                self.addr(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs a boto3 snippet with an S3 client `s3` for this server and the arguments
    /// `sys.argv[1:]`, returning its stdout.
    pub fn boto3(&self, code: &str, args: &[&str]) -> String {
        let script = format!("{BOTO3_PRELUDE}{code}");
        let mut cmd = client_command(python());
        cmd.arg("-c")
            .arg(script)
            .arg(self.endpoint())
            .arg(self.access_key())
            .arg(self.secret_key())
            .arg(self.region())
            .args(args);
        let out = run_ok_with(&mut cmd, b"", Duration::from_secs(120));
        String::from_utf8(out.stdout).unwrap()
    }

    fn create_bucket_via_boto3(&self) {
        // Retried until it succeeds: the port may accept before the app answers requests.
        self.boto3(
            r#"
import time
deadline = time.monotonic() + 60
while True:
    try:
        s3.create_bucket(Bucket=args[0])
        break
    except s3.exceptions.BucketAlreadyOwnedByYou:
        break
    except Exception:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.1)
"#,
            &[&self.bucket],
        );
    }

    fn list_via_boto3(&self, prefix: &str) -> Vec<(String, u64)> {
        let out = self.boto3(
            r#"
import json
found = []
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=args[0], Prefix=args[1]):
    found += [[o["Key"], o["Size"]] for o in page.get("Contents", [])]
print(json.dumps(found))
"#,
            &[&self.bucket, prefix],
        );
        let found: Vec<(String, u64)> = serde_json::from_str(out.trim())
            .unwrap_or_else(|e| panic!("bad listing from boto3 ({e}): {out}"));
        found
    }
}

/// Python prelude of `S3Server::boto3`: `s3` is a path-style client for the server named by
/// `sys.argv[1..5]` (endpoint, access key, secret key, region); `args` is the rest.
const BOTO3_PRELUDE: &str = r#"
import sys
import boto3
from botocore.config import Config
endpoint, access_key, secret_key, region = sys.argv[1:5]
args = sys.argv[5:]
s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    aws_access_key_id=access_key,
    aws_secret_access_key=secret_key,
    region_name=region,
    config=Config(s3={"addressing_style": "path"}),
)
"#;

/// Every file under `dir` as (`key`, size), the key being the path below the bucket
/// directory joined with `/` (how s3s-fs maps keys to files). An object (or directory)
/// deleted while it is being listed is left out.
fn list_files(dir: &Path, key_prefix: &str, out: &mut Vec<(String, u64)>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !key_prefix.is_empty() => return,
        Err(e) => panic!("read {}: {e}", dir.display()),
    };
    for entry in entries {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name().into_string().unwrap();
        let key = format!("{key_prefix}{name}");
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            list_files(&entry.path(), &format!("{key}/"), out);
        } else {
            out.push((key, meta.len()));
        }
    }
}

/// Path of the s3s-fs binary: `$FLOE_S3S_FS`, which `scripts/install-test-deps.sh` sets.
pub fn s3s_fs_bin() -> PathBuf {
    let bin = std::env::var_os("FLOE_S3S_FS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "FLOE_S3S_FS is not set: run scripts/install-test-deps.sh (it builds s3s-fs into \
             .cache/s3s-fs) and export FLOE_S3S_FS=<workspace>/.cache/s3s-fs/bin/s3s-fs"
            )
        });
    assert!(
        bin.is_file(),
        "FLOE_S3S_FS={} does not exist: run scripts/install-test-deps.sh to build s3s-fs",
        bin.display()
    );
    bin
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            // moto logs every request: the tail is what explains a failure.
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(200)..];
            eprintln!(
                "---- {:?} S3 server log (last {} lines) ----\n{}",
                self.kind,
                tail.len(),
                tail.join("\n")
            );
        }
    }
}

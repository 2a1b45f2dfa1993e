//! The security scenario (Floe only): what TLS costs the data path and what a secured
//! connection costs to set up.
//!
//! Every broker of the scenario has four listeners, `PLAINTEXT`, `SSL`, `SASL_SSL` and
//! `SASL_PLAINTEXT`, with a certificate generated for the run (`openssl`: a CA and a server
//! certificate for 127.0.0.1, RSA 2048 or, with `--security-key p256`, ECDSA P-256, in the
//! work directory; nothing is kept).
//!
//! - **Throughput**: `--security-rounds` rounds, each on two fresh brokers, one measured over
//!   its PLAINTEXT listener and one over its SSL listener, the order alternating from round
//!   to round (as the metrics scenario does): acks=all produce for `--produce-seconds` over
//!   `SECURITY_PARTITIONS` partitions, then one consumer reading it all back, with librdkafka
//!   (`security.protocol=ssl` on the TLS side). Reported: mean MB/s of each side and TLS as a
//!   share of plaintext (the target: at least 70 %), with broker and client CPU per GB.
//! - **Connection set-ups**: on one more broker, a SCRAM-SHA-512 credential is set with
//!   AlterUserScramCredentials (salted password computed here, PBKDF2-HMAC-SHA-512), then
//!   fresh connections are opened for `--security-setup-seconds` each, by one thread and by
//!   `SETUP_THREADS` threads: TCP connect, the TLS handshake (SSL and SASL_SSL, full
//!   handshakes: no session resumption), ApiVersions, SaslHandshake + the SCRAM exchange
//!   (SASL listeners), one Metadata, close. PLAINTEXT and SSL runs separate the TLS
//!   handshake's share from SCRAM's. The client derives the salted password once and keeps
//!   it (so the rate is the broker's, not the client's PBKDF2); one more SASL_SSL run
//!   derives it on every connection, as librdkafka and the Java client do.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::{digest, hmac, pbkdf2};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hdrhistogram::Histogram;
use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use serde::Serialize;

use crate::RunArgs;
use crate::broker::{self, Broker, BrokerSpec, Kind};
use crate::load::{self, Acks, Throughput};
use crate::metrics_cost::{cpu_per_gb, mean};
use crate::wire::{self, Conn};

/// Partitions of the throughput topic (as the metrics scenario).
pub const SECURITY_PARTITIONS: i32 = 8;
/// Threads of the parallel connection set-up runs: two per core here, so one thread's wait
/// for the broker overlaps another's work.
pub const SETUP_THREADS: u32 = 4;
/// Unmeasured start of each connection set-up run.
const SETUP_WARMUP: Duration = Duration::from_secs(1);
/// The SCRAM user and its password.
const USER: &str = "bench";
const PASSWORD: &str = "bench-secret";
/// PBKDF2 iterations of the credential: Kafka's minimum and `kafka-configs`' usual value.
const SCRAM_ITERATIONS: u32 = 4096;
/// Kafka's type code of SCRAM-SHA-512.
const SCRAM_SHA_512: i8 = 2;

/// A listener of the scenario's brokers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Listener {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl Listener {
    const ALL: [Listener; 4] = [
        Listener::Plaintext,
        Listener::Ssl,
        Listener::SaslPlaintext,
        Listener::SaslSsl,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Listener::Plaintext => "PLAINTEXT",
            Listener::Ssl => "SSL",
            Listener::SaslPlaintext => "SASL_PLAINTEXT",
            Listener::SaslSsl => "SASL_SSL",
        }
    }

    fn tls(self) -> bool {
        matches!(self, Listener::Ssl | Listener::SaslSsl)
    }

    fn sasl(self) -> bool {
        matches!(self, Listener::SaslPlaintext | Listener::SaslSsl)
    }
}

/// The CA and server certificate of the run.
struct Pki {
    /// CA certificate (the clients' trust anchor).
    ca: PathBuf,
    /// Server certificate followed by its key (`ssl_keystore_location`).
    server: PathBuf,
}

fn openssl(args: &[&str]) -> Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .context("running openssl (the scenario generates its certificates with it)")?;
    if !out.status.success() {
        bail!(
            "openssl {}: {}",
            args.first().unwrap_or(&""),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// A CA and a server certificate for 127.0.0.1 and localhost, valid for two days; the
/// server key RSA 2048 (as the security tests make it) or ECDSA P-256 (`key` `p256`).
fn generate_pki(dir: &Path, key: &str) -> Result<Pki> {
    std::fs::create_dir_all(dir)?;
    let path = |name: &str| dir.join(name).display().to_string();
    let subject_ca = "/O=Floe Bench/CN=Floe Bench CA";
    #[rustfmt::skip]
    openssl(&[
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", subject_ca,
        "-keyout", &path("ca.key"), "-out", &path("ca.pem"),
    ])?;
    let new_key: &[&str] = match key {
        "p256" => &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
        _ => &["-newkey", "rsa:2048"],
    };
    #[rustfmt::skip]
    openssl(&[
        &["req"][..], new_key,
        &["-nodes", "-subj", "/O=Floe Bench/CN=localhost"],
        &["-keyout", &path("server.key"), "-out", &path("server.csr")],
    ].concat())?;
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )?;
    #[rustfmt::skip]
    openssl(&[
        "x509", "-req", "-days", "2", "-sha256", "-in", &path("server.csr"),
        "-CA", &path("ca.pem"), "-CAkey", &path("ca.key"), "-CAcreateserial",
        "-extfile", &path("server.ext"), "-out", &path("server.crt"),
    ])?;
    let chain = [
        std::fs::read(dir.join("server.crt"))?,
        std::fs::read(dir.join("server.key"))?,
    ]
    .concat();
    std::fs::write(dir.join("server.pem"), chain)?;
    Ok(Pki {
        ca: dir.join("ca.pem"),
        server: dir.join("server.pem"),
    })
}

/// A broker of the scenario: its spec (whose port is the PLAINTEXT listener) and the ports of
/// its other listeners.
struct SecureSpec {
    spec: BrokerSpec,
    ssl: u16,
    sasl_ssl: u16,
    sasl_plaintext: u16,
}

impl SecureSpec {
    fn new(args: &RunArgs, pki: &Pki, name: &str) -> Result<SecureSpec> {
        let (port, ssl, sasl_ssl, sasl_plaintext) = (
            broker::free_port()?,
            broker::free_port()?,
            broker::free_port()?,
            broker::free_port()?,
        );
        let listeners = format!(
            "PLAINTEXT://127.0.0.1:{port},SSL://127.0.0.1:{ssl},\
             SASL_SSL://127.0.0.1:{sasl_ssl},SASL_PLAINTEXT://127.0.0.1:{sasl_plaintext}"
        );
        let spec = BrokerSpec {
            kind: Kind::Floe,
            binary: std::fs::canonicalize(&args.floe)?,
            data_dir: args.work_dir.join(name).join("data"),
            port,
            // The same settings `--set listeners=...` would give (`FLOE_<KEY>` is the
            // environment's form of every key); `listeners` replaces the `--listen` address.
            env: vec![
                ("FLOE_LISTENERS".into(), listeners),
                (
                    "FLOE_SSL_KEYSTORE_LOCATION".into(),
                    pki.server.display().to_string(),
                ),
            ],
        };
        Ok(SecureSpec {
            spec,
            ssl,
            sasl_ssl,
            sasl_plaintext,
        })
    }

    fn port(&self, listener: Listener) -> u16 {
        match listener {
            Listener::Plaintext => self.spec.port,
            Listener::Ssl => self.ssl,
            Listener::SaslSsl => self.sasl_ssl,
            Listener::SaslPlaintext => self.sasl_plaintext,
        }
    }

    fn addr(&self, listener: Listener) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port(listener)))
    }
}

/// One side of the throughput comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    pub listener: Listener,
    pub produce: Vec<Throughput>,
    pub consume: Vec<Throughput>,
    pub produce_mb_per_sec: f64,
    pub consume_mb_per_sec: f64,
    /// Broker CPU seconds per GB produced (the produce runs together).
    pub produce_cpu_s_per_gb: Option<f64>,
    /// Broker CPU seconds per GB consumed.
    pub consume_cpu_s_per_gb: Option<f64>,
    /// Load generator (librdkafka) CPU seconds per GB produced.
    pub produce_client_cpu_s_per_gb: Option<f64>,
    /// Load generator CPU seconds per GB consumed.
    pub consume_client_cpu_s_per_gb: Option<f64>,
}

fn client_cpu_per_gb(runs: &[Throughput]) -> Option<f64> {
    let cpu: Option<f64> = runs.iter().map(|t| t.client_cpu_seconds).sum();
    let bytes: u64 = runs.iter().map(|t| t.bytes).sum();
    cpu.map(|c| c / (bytes.max(1) as f64 / 1e9))
}

/// Mean time of each step of a connection set-up, in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SetupSteps {
    pub connect_ms: f64,
    /// The TLS handshake (0 on plaintext listeners).
    pub tls_ms: f64,
    pub api_versions_ms: f64,
    /// SaslHandshake and the two SaslAuthenticate round trips of SCRAM (0 without SASL).
    pub sasl_ms: f64,
    pub metadata_ms: f64,
}

/// Connection set-ups on one listener.
#[derive(Debug, Clone, Serialize)]
pub struct SetupRun {
    pub listener: Listener,
    /// `SCRAM-SHA-512` on SASL listeners.
    pub mechanism: Option<String>,
    pub threads: u32,
    /// The client derived the salted password (PBKDF2) on every connection, as real
    /// clients do; otherwise once.
    pub client_pbkdf2_each_time: bool,
    pub connections: u64,
    pub seconds: f64,
    pub setups_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub steps: SetupSteps,
    /// Broker CPU per set-up, in microseconds.
    pub broker_cpu_us_per_setup: Option<f64>,
    /// Client (this process) CPU per set-up, in microseconds.
    pub client_cpu_us_per_setup: Option<f64>,
}

/// What the scenario measured.
#[derive(Debug, Clone, Serialize)]
pub struct SecurityRun {
    pub partitions: i32,
    pub rounds: u32,
    /// The server key.
    pub key: String,
    /// What the set-up client's TLS handshakes negotiated (rustls against the broker's
    /// rustls).
    pub tls_version: String,
    pub tls_cipher_suite: String,
    pub plaintext: Side,
    pub tls: Side,
    /// TLS MB/s as a percentage of plaintext MB/s.
    pub produce_share_pct: f64,
    pub consume_share_pct: f64,
    pub scram_iterations: u32,
    /// Time of one PBKDF2-HMAC-SHA-512 of the credential on this client.
    pub client_pbkdf2_ms: f64,
    pub setups: Vec<SetupRun>,
}

/// librdkafka settings for `listener`.
fn client_settings(listener: Listener, pki: &Pki) -> Vec<(String, String)> {
    if listener == Listener::Ssl {
        vec![
            ("security.protocol".into(), "ssl".into()),
            ("ssl.ca.location".into(), pki.ca.display().to_string()),
        ]
    } else {
        Vec::new()
    }
}

/// One throughput run on a fresh broker over `listener`: produce, then consume it all.
fn round(
    args: &RunArgs,
    pki: &Pki,
    listener: Listener,
    index: u32,
) -> Result<(Throughput, Throughput)> {
    let secure = SecureSpec::new(args, pki, &format!("floe-security-{index}"))?;
    let spec = &secure.spec;
    let mut broker = Broker::spawn(spec.clone())?;
    broker.wait_listening(Duration::from_secs(60))?;
    let topic = "security";
    broker::create_topic(spec, topic, SECURITY_PARTITIONS)?;
    crate::settle_disk();
    let bootstrap = format!("127.0.0.1:{}", secure.port(listener));
    let settings = client_settings(listener, pki);
    let pid = broker.pid();
    let produced = load::with_cpu(pid, || {
        load::produce_throughput_with(
            &bootstrap,
            &settings,
            topic,
            SECURITY_PARTITIONS,
            Acks::All,
            args.record_size,
            Duration::from_secs_f64(args.produce_seconds),
            args.produce_max_records,
        )
    })?;
    if produced.failed > 0 {
        bail!("{} records failed to produce", produced.failed);
    }
    let consumed = load::with_cpu(pid, || {
        load::consume_throughput_with(
            &bootstrap,
            &settings,
            topic,
            SECURITY_PARTITIONS,
            produced.records,
            args.record_size,
        )
    })?;
    eprintln!(
        "[bench]   {:9}: produce {:.0} MB/s, consume {:.0} MB/s",
        listener.name(),
        produced.mb_per_sec,
        consumed.mb_per_sec
    );
    broker.stop().ok();
    drop(broker);
    std::fs::remove_dir_all(args.work_dir.join(format!("floe-security-{index}"))).ok();
    Ok((produced, consumed))
}

/// PBKDF2-HMAC-SHA-512: SCRAM's `Hi(password, salt, i)`.
fn salted_password(password: &str, salt: &[u8], iterations: u32) -> Result<[u8; 64]> {
    let mut out = [0u8; 64];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA512,
        NonZeroU32::new(iterations).context("zero iterations")?,
        salt,
        password.as_bytes(),
        &mut out,
    );
    Ok(out)
}

fn hmac512(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA512, key), data)
        .as_ref()
        .to_vec()
}

/// (salt, iterations, salted password) of the last exchange.
type SaltedPassword = (Vec<u8>, u32, [u8; 64]);

/// The client side of SCRAM-SHA-512 (RFC 5802), with the salted password kept from one
/// exchange to the next unless `derive_each_time`.
struct ScramClient {
    derive_each_time: bool,
    cache: Mutex<Option<SaltedPassword>>,
    random: SystemRandom,
}

impl ScramClient {
    fn new(derive_each_time: bool) -> ScramClient {
        ScramClient {
            derive_each_time,
            cache: Mutex::new(None),
            random: SystemRandom::new(),
        }
    }

    fn salted(&self, salt: &[u8], iterations: u32) -> Result<[u8; 64]> {
        if self.derive_each_time {
            return salted_password(PASSWORD, salt, iterations);
        }
        let mut cache = self.cache.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        if let Some((s, i, p)) = cache.as_ref()
            && s == salt
            && *i == iterations
        {
            return Ok(*p);
        }
        let p = salted_password(PASSWORD, salt, iterations)?;
        *cache = Some((salt.to_vec(), iterations, p));
        Ok(p)
    }

    /// SaslHandshake and the SCRAM exchange on `conn`; fails unless the broker accepts the
    /// proof and proves it knows the credential.
    fn authenticate<S: Read + Write>(&self, conn: &mut Conn<S>) -> Result<()> {
        conn.sasl_handshake("SCRAM-SHA-512")?;
        let mut nonce = [0u8; 24];
        self.random
            .fill(&mut nonce)
            .map_err(|_| anyhow::anyhow!("no random bytes"))?;
        let client_nonce = BASE64.encode(nonce);
        let client_first_bare = format!("n={USER},r={client_nonce}");
        let server_first = conn.sasl_authenticate(format!("n,,{client_first_bare}").as_bytes())?;
        let server_first = std::str::from_utf8(&server_first)?.to_owned();
        let (mut nonce, mut salt, mut iterations) = (None, None, None);
        for attr in server_first.split(',') {
            match attr.split_at_checked(2) {
                Some(("r=", v)) => nonce = Some(v),
                Some(("s=", v)) => salt = Some(BASE64.decode(v)?),
                Some(("i=", v)) => iterations = Some(v.parse::<u32>()?),
                _ => {}
            }
        }
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
            bail!("server-first {server_first:?} lacks r=, s= or i=");
        };
        if !nonce.starts_with(&client_nonce) {
            bail!("server nonce does not extend the client's");
        }
        let salted = self.salted(&salt, iterations)?;
        let client_key = hmac512(&salted, b"Client Key");
        let stored_key = digest::digest(&digest::SHA512, &client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let signature = hmac512(stored_key.as_ref(), auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let client_final = format!("{without_proof},p={}", BASE64.encode(proof));
        let server_final = conn.sasl_authenticate(client_final.as_bytes())?;
        let server_key = hmac512(&salted, b"Server Key");
        let expected = format!(
            "v={}",
            BASE64.encode(hmac512(&server_key, auth_message.as_bytes()))
        );
        if server_final.as_ref() != expected.as_bytes() {
            bail!("the broker's server-final signature is wrong");
        }
        Ok(())
    }
}

/// What the set-up threads share.
struct SetupClient {
    tls: Arc<ClientConfig>,
    scram: ScramClient,
}

/// The negotiated TLS version and cipher suite of a handshake.
type Negotiated = (String, String);

/// Times of one set-up's steps.
#[derive(Default)]
struct Steps {
    connect: Duration,
    tls: Duration,
    api_versions: Duration,
    sasl: Duration,
    metadata: Duration,
}

impl Steps {
    fn add(&mut self, other: &Steps) {
        self.connect += other.connect;
        self.tls += other.tls;
        self.api_versions += other.api_versions;
        self.sasl += other.sasl;
        self.metadata += other.metadata;
    }
}

impl SetupClient {
    fn new(pki: &Pki, derive_each_time: bool) -> Result<SetupClient> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&pki.ca)? {
            roots.add(cert?)?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut tls = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        // Every set-up is a full handshake, as a fresh client process makes.
        tls.resumption = Resumption::disabled();
        Ok(SetupClient {
            tls: Arc::new(tls),
            scram: ScramClient::new(derive_each_time),
        })
    }

    /// One connection set-up: connect, TLS, ApiVersions, SASL, Metadata, close.
    fn setup(&self, listener: Listener, addr: SocketAddr) -> Result<(Steps, Option<Negotiated>)> {
        let mut steps = Steps::default();
        let mut t = Instant::now();
        let mut sock = wire::tcp(addr, Duration::from_secs(5))?;
        steps.connect = lap(&mut t);
        if listener.tls() {
            let name = ServerName::from(IpAddr::from([127, 0, 0, 1]));
            let mut tls = ClientConnection::new(self.tls.clone(), name)?;
            while tls.is_handshaking() {
                tls.complete_io(&mut sock).context("TLS handshake")?;
            }
            steps.tls = lap(&mut t);
            let negotiated = (
                tls.protocol_version()
                    .map_or("-".into(), |v| format!("{v:?}")),
                tls.negotiated_cipher_suite()
                    .map_or("-".into(), |s| format!("{:?}", s.suite())),
            );
            let mut conn = Conn::over(StreamOwned::new(tls, sock));
            self.exchange(listener, &mut conn, &mut steps, &mut t)?;
            Ok((steps, Some(negotiated)))
        } else {
            let mut conn = Conn::over(sock);
            self.exchange(listener, &mut conn, &mut steps, &mut t)?;
            Ok((steps, None))
        }
    }

    fn exchange<S: Read + Write>(
        &self,
        listener: Listener,
        conn: &mut Conn<S>,
        steps: &mut Steps,
        t: &mut Instant,
    ) -> Result<()> {
        conn.api_versions()?;
        steps.api_versions = lap(t);
        if listener.sasl() {
            self.scram.authenticate(conn)?;
            steps.sasl = lap(t);
        }
        conn.metadata("security")?;
        steps.metadata = lap(t);
        Ok(())
    }
}

/// One thread's set-ups: their latency (µs), the steps' summed times, how many.
type Tally = (Histogram<u64>, Steps, u64);

/// The time since `*t`, which becomes now.
fn lap(t: &mut Instant) -> Duration {
    let now = Instant::now();
    let d = now - *t;
    *t = now;
    d
}

/// Set-ups on `listener` by `threads` threads, each back to back, for `duration`: their
/// latencies, summed step times and count.
fn set_up_for(
    client: &SetupClient,
    listener: Listener,
    addr: SocketAddr,
    threads: u32,
    duration: Duration,
) -> Result<Tally> {
    let start = Instant::now();
    let results: Vec<Result<Tally>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| -> Result<Tally> {
                    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
                    let mut sum = Steps::default();
                    let mut n = 0u64;
                    while start.elapsed() < duration {
                        let began = Instant::now();
                        let (s, _) = client.setup(listener, addr)?;
                        hist.saturating_record(began.elapsed().as_micros() as u64);
                        sum.add(&s);
                        n += 1;
                    }
                    Ok((hist, sum, n))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("a set-up thread panicked"))?
            })
            .collect()
    });
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut sum = Steps::default();
    let mut n = 0u64;
    for r in results {
        let (h, s, k) = r?;
        hist.add(&h)?;
        sum.add(&s);
        n += k;
    }
    Ok((hist, sum, n))
}

/// Set-ups on `listener` by `threads` threads for `duration`, after a warm-up of
/// `SETUP_WARMUP` (the broker's first connections after its start and the client's first
/// handshake are not what is measured).
fn setup_run(
    secure: &SecureSpec,
    broker: &Broker,
    pki: &Pki,
    listener: Listener,
    threads: u32,
    derive_each_time: bool,
    duration: Duration,
) -> Result<(SetupRun, Option<Negotiated>)> {
    let client = SetupClient::new(pki, derive_each_time)?;
    let addr = secure.addr(listener);
    // The first set-up reports what TLS negotiated (and derives a kept salted password).
    let (_, negotiated) = client.setup(listener, addr)?;
    set_up_for(&client, listener, addr, threads, SETUP_WARMUP)?;
    let pid = broker.pid().to_string();
    let (broker0, client0) = (load::cpu_seconds(&pid), load::cpu_seconds("self"));
    let start = Instant::now();
    let (hist, sum, n) = set_up_for(&client, listener, addr, threads, duration)?;
    let seconds = start.elapsed().as_secs_f64();
    let (broker1, client1) = (load::cpu_seconds(&pid), load::cpu_seconds("self"));
    let per = |d: Duration| d.as_secs_f64() * 1e3 / n.max(1) as f64;
    let us_per = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| (b - a) * 1e6 / n as f64);
    let run = SetupRun {
        listener,
        mechanism: listener.sasl().then(|| "SCRAM-SHA-512".to_owned()),
        threads,
        client_pbkdf2_each_time: derive_each_time,
        connections: n,
        seconds,
        setups_per_sec: n as f64 / seconds,
        p50_ms: hist.value_at_quantile(0.5) as f64 / 1e3,
        p99_ms: hist.value_at_quantile(0.99) as f64 / 1e3,
        steps: SetupSteps {
            connect_ms: per(sum.connect),
            tls_ms: per(sum.tls),
            api_versions_ms: per(sum.api_versions),
            sasl_ms: per(sum.sasl),
            metadata_ms: per(sum.metadata),
        },
        broker_cpu_us_per_setup: us_per(broker0, broker1).filter(|_| n > 0),
        client_cpu_us_per_setup: us_per(client0, client1).filter(|_| n > 0),
    };
    Ok((run, negotiated))
}

/// Runs the scenario: the throughput rounds, then the connection set-ups.
pub fn security_phase(args: &RunArgs) -> Result<SecurityRun> {
    eprintln!(
        "[bench] floe (TLS vs plaintext): {} rounds",
        args.security_rounds
    );
    let pki = generate_pki(&args.work_dir.join("security-pki"), &args.security_key)?;
    // [plaintext, tls]: produce runs, consume runs.
    let mut runs: [(Vec<Throughput>, Vec<Throughput>); 2] = Default::default();
    for r in 0..args.security_rounds {
        // Alternate which side goes first, so neither always runs on a warmer machine.
        let order = if r % 2 == 0 {
            [Listener::Plaintext, Listener::Ssl]
        } else {
            [Listener::Ssl, Listener::Plaintext]
        };
        for (i, listener) in order.into_iter().enumerate() {
            let (p, c) = round(args, &pki, listener, r * 2 + i as u32)
                .with_context(|| format!("round {r}, {}", listener.name()))?;
            let side = &mut runs[usize::from(listener == Listener::Ssl)];
            side.0.push(p);
            side.1.push(c);
        }
    }
    let [plain, tls] = runs;
    let side = |listener: Listener, (produce, consume): (Vec<Throughput>, Vec<Throughput>)| Side {
        listener,
        produce_mb_per_sec: mean(produce.iter().map(|t| t.mb_per_sec)),
        consume_mb_per_sec: mean(consume.iter().map(|t| t.mb_per_sec)),
        produce_cpu_s_per_gb: cpu_per_gb(&produce),
        consume_cpu_s_per_gb: cpu_per_gb(&consume),
        produce_client_cpu_s_per_gb: client_cpu_per_gb(&produce),
        consume_client_cpu_s_per_gb: client_cpu_per_gb(&consume),
        produce,
        consume,
    };
    let plaintext = side(Listener::Plaintext, plain);
    let tls = side(Listener::Ssl, tls);
    let share = |a: f64, b: f64| a / b.max(f64::MIN_POSITIVE) * 100.0;
    let produce_share_pct = share(tls.produce_mb_per_sec, plaintext.produce_mb_per_sec);
    let consume_share_pct = share(tls.consume_mb_per_sec, plaintext.consume_mb_per_sec);
    eprintln!(
        "[bench]   TLS / plaintext: produce {produce_share_pct:.0} %, consume {consume_share_pct:.0} %"
    );

    // Connection set-ups, on one more broker.
    let secure = SecureSpec::new(args, &pki, "floe-security-setups")?;
    let mut broker = Broker::spawn(secure.spec.clone())?;
    broker.wait_listening(Duration::from_secs(60))?;
    broker::create_topic(&secure.spec, "security", 1)?;
    let mut salt = [0u8; 32];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| anyhow::anyhow!("no random bytes"))?;
    let pbkdf2_start = Instant::now();
    let salted = salted_password(PASSWORD, &salt, SCRAM_ITERATIONS)?;
    let client_pbkdf2_ms = pbkdf2_start.elapsed().as_secs_f64() * 1e3;
    Conn::connect(secure.spec.addr(), Duration::from_secs(5))?.alter_user_scram_credential(
        USER,
        SCRAM_SHA_512,
        i32::try_from(SCRAM_ITERATIONS)?,
        &salt,
        &salted,
    )?;
    let duration = Duration::from_secs_f64(args.security_setup_seconds);
    let mut setups = Vec::new();
    let mut negotiated = None;
    let mut plan: Vec<(Listener, u32, bool)> = Listener::ALL
        .into_iter()
        .flat_map(|l| [(l, 1, false), (l, SETUP_THREADS, false)])
        .collect();
    plan.push((Listener::SaslSsl, 1, true));
    for (listener, threads, each) in plan {
        let (run, n) = setup_run(&secure, &broker, &pki, listener, threads, each, duration)
            .with_context(|| format!("connection set-ups on {}", listener.name()))?;
        eprintln!(
            "[bench]   set-ups {:14} {} thread(s){}: {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, \
             broker CPU {:.0} us each",
            listener.name(),
            threads,
            if each { ", PBKDF2 each time" } else { "" },
            run.setups_per_sec,
            run.p50_ms,
            run.p99_ms,
            run.broker_cpu_us_per_setup.unwrap_or(f64::NAN)
        );
        negotiated = negotiated.or(n);
        setups.push(run);
    }
    broker.stop().ok();
    drop(broker);
    std::fs::remove_dir_all(args.work_dir.join("floe-security-setups")).ok();
    let (tls_version, tls_cipher_suite) = negotiated.unwrap_or_default();
    Ok(SecurityRun {
        partitions: SECURITY_PARTITIONS,
        rounds: args.security_rounds,
        key: match args.security_key.as_str() {
            "p256" => "ECDSA P-256".into(),
            _ => "RSA 2048".into(),
        },
        tls_version,
        tls_cipher_suite,
        plaintext,
        tls,
        produce_share_pct,
        consume_share_pct,
        scram_iterations: SCRAM_ITERATIONS,
        client_pbkdf2_ms,
        setups,
    })
}

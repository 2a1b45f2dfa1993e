//! One blocking connection to one broker: framing, correlation ids, request and response
//! headers, the API versions negotiated when it opened, and its security: TLS under the
//! frames (`tls.rs`) and SASL authentication after ApiVersions (`sasl.rs`), renewed before
//! the session the broker announced ends (KIP-368).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

use rustls::{ClientConnection, StreamOwned};

use super::sasl::{self, Credentials};
use super::tls;
use super::versions::{self, Versions};

/// The largest response frame accepted. A frame's buffer grows with the bytes that arrive,
/// never to the size its prefix announces, so a lying broker costs at most this much.
pub const MAX_RESPONSE_BYTES: usize = 128 * 1024 * 1024;

/// Settings shared by every connection of a client.
#[derive(Debug, Clone)]
pub struct ConnOpts {
    /// `client.id` in every request header.
    pub client_id: String,
    /// How long a connection attempt may take.
    pub connect_timeout: Duration,
    /// How long a request may wait for its response.
    pub request_timeout: Duration,
    /// TLS and SASL, the same for every connection (bootstrap, leaders, coordinators).
    pub security: Security,
}

/// The security settings of a client's connections (Kafka's `security.protocol`: TLS for
/// SSL and SASL_SSL, SASL for SASL_PLAINTEXT and SASL_SSL).
#[derive(Debug, Clone, Default)]
pub struct Security {
    /// The TLS configuration, built once; `None`: plaintext.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// SASL credentials; `None`: no SASL.
    pub sasl: Option<Credentials>,
}

/// The byte stream under the frames.
enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// A connection to one broker.
pub struct Conn {
    stream: Stream,
    addr: String,
    client_id: StrBytes,
    correlation_id: i32,
    versions: Versions,
    sasl: Option<Credentials>,
    /// When to authenticate again (a share of the session lifetime the broker announced).
    reauth_at: Option<Instant>,
}

impl Conn {
    /// Connects to `addr` (`host:port`), does the TLS handshake if TLS is on, negotiates API
    /// versions and authenticates if SASL is on.
    pub fn connect(addr: &str, opts: &ConnOpts) -> anyhow::Result<Conn> {
        let candidates: Vec<SocketAddr> = addr
            .to_socket_addrs()
            .with_context(|| format!("resolving broker address '{addr}'"))?
            .collect();
        let mut last = None;
        let mut stream = None;
        for candidate in candidates {
            match TcpStream::connect_timeout(&candidate, opts.connect_timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let stream = match (stream, last) {
            (Some(s), _) => s,
            (None, Some(e)) => return Err(e).with_context(|| format!("connecting to {addr}")),
            (None, None) => bail!("broker address '{addr}' resolves to nothing"),
        };
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(opts.request_timeout))?;
        stream.set_write_timeout(Some(opts.request_timeout))?;
        let stream = match &opts.security.tls {
            Some(config) => Stream::Tls(Box::new(tls::handshake(config, addr, stream)?)),
            None => Stream::Plain(stream),
        };
        let mut conn = Conn {
            stream,
            addr: addr.to_string(),
            client_id: StrBytes::from_string(opts.client_id.clone()),
            correlation_id: 0,
            versions: Versions::default(),
            sasl: opts.security.sasl.clone(),
            reauth_at: None,
        };
        conn.versions = versions::negotiate(&mut conn)
            .with_context(|| format!("negotiating API versions with {addr}"))?;
        conn.authenticate()?;
        Ok(conn)
    }

    /// The address this connection was opened to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// SASL authentication (again, for a re-authentication); nothing without SASL.
    fn authenticate(&mut self) -> anyhow::Result<()> {
        let Some(creds) = self.sasl.clone() else {
            return Ok(());
        };
        self.reauth_at = None;
        let started = Instant::now();
        let lifetime = sasl::authenticate(self, &creds)?;
        // Like Kafka's clients, well before the end (they pick 85-95%).
        self.reauth_at = lifetime.map(|l| started + l.mul_f64(0.85));
        Ok(())
    }

    /// The version to use for `R`: the highest both sides speak.
    pub fn version<R: Request>(&self) -> anyhow::Result<i16> {
        self.versions.pick::<R>()
    }

    /// Whether the broker serves `R` in a version this client speaks.
    pub fn supports<R: Request>(&self) -> bool {
        self.versions.pick::<R>().is_ok()
    }

    /// Sends `req` at the negotiated version and waits for its response.
    pub fn call<R: Request>(&mut self, req: &R) -> anyhow::Result<R::Response> {
        let version = self.version::<R>()?;
        self.call_at(req, version)
    }

    /// Sends `req` at `version` (for requests whose fields depend on it) and waits for its
    /// response.
    pub fn call_at<R: Request>(&mut self, req: &R, version: i16) -> anyhow::Result<R::Response> {
        let id = self.send_at(req, version)?;
        let mut body = self.receive(id, R::Response::header_version(version))?;
        R::Response::decode(&mut body, version).with_context(|| {
            format!(
                "decoding {} v{version} response",
                versions::api_name(R::KEY)
            )
        })
    }

    /// Sends `req` at `version` without waiting (acks=0 produce has no response); returns
    /// its correlation id.
    pub fn send_at<R: Request>(&mut self, req: &R, version: i16) -> anyhow::Result<i32> {
        if self.reauth_at.is_some_and(|at| Instant::now() >= at) {
            self.authenticate()
                .context("authenticating again before the SASL session ends")?;
        }
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let mut frame = BytesMut::with_capacity(64);
        frame.extend_from_slice(&[0; 4]);
        header.encode(&mut frame, R::header_version(version))?;
        req.encode(&mut frame, version)
            .with_context(|| format!("encoding {} v{version}", versions::api_name(R::KEY)))?;
        let len = u32::try_from(frame.len() - 4).map_err(|_| anyhow!("request too large"))?;
        frame[..4].copy_from_slice(&len.to_be_bytes());
        self.stream
            .write_all(&frame)
            .and_then(|()| self.stream.flush())
            .map_err(|e| io_context(e, &format!("sending to {}", self.addr)))?;
        Ok(self.correlation_id)
    }

    /// Reads one response frame, checks its correlation id and returns the body after the
    /// response header.
    pub fn receive(&mut self, correlation_id: i32, header_version: i16) -> anyhow::Result<Bytes> {
        let mut prefix = [0u8; 4];
        let sasl = self.sasl.is_some();
        self.stream
            .read_exact(&mut prefix)
            .map_err(|e| timeout_context(e, &self.addr, sasl))?;
        let len = usize::try_from(u32::from_be_bytes(prefix)).unwrap_or(usize::MAX);
        if len > MAX_RESPONSE_BYTES {
            // A TLS record header (alert or handshake, version 3.x) where a frame should be.
            if matches!(self.stream, Stream::Plain(_))
                && matches!(prefix, [0x15 | 0x16, 0x03, 0..=4, _])
            {
                bail!(
                    "{} answered with TLS: it is an SSL or SASL_SSL listener (see \
                     --security-protocol, --tls-ca)",
                    self.addr
                );
            }
            bail!(
                "{} announced a {len}-byte response, over the {MAX_RESPONSE_BYTES}-byte limit",
                self.addr
            );
        }
        let mut buf = Vec::new();
        (&mut self.stream)
            .take(len as u64)
            .read_to_end(&mut buf)
            .map_err(|e| timeout_context(e, &self.addr, sasl))?;
        if buf.len() != len {
            bail!(
                "{} closed the connection in the middle of a response",
                self.addr
            );
        }
        let mut body = Bytes::from(buf);
        let header = ResponseHeader::decode(&mut body, header_version)
            .context("decoding the response header")?;
        if header.correlation_id != correlation_id {
            bail!(
                "{} answered correlation id {} to request {correlation_id}",
                self.addr,
                header.correlation_id
            );
        }
        Ok(body)
    }
}

/// A read failure; `sasl`: whether the connection authenticated (a SASL listener closes
/// connections that send requests without authenticating).
fn timeout_context(e: std::io::Error, addr: &str, sasl: bool) -> anyhow::Error {
    if tls::rustls_error(&e).is_some() {
        return io_context(e, &format!("reading from {addr}"));
    }
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            anyhow!("{addr} did not answer within the request timeout")
        }
        std::io::ErrorKind::UnexpectedEof if sasl => anyhow!("{addr} closed the connection"),
        std::io::ErrorKind::UnexpectedEof => anyhow!(
            "{addr} closed the connection (a SASL listener does so to clients that do not \
             authenticate: see --sasl-mechanism)"
        ),
        _ => anyhow::Error::new(e).context(format!("reading from {addr}")),
    }
}

/// An I/O error with `what` as its context; a TLS error (an alert from the broker, a bad
/// record) as rustls's error, so callers can tell it from a network failure.
fn io_context(e: std::io::Error, what: &str) -> anyhow::Error {
    match tls::rustls_error(&e) {
        Some(tls) => anyhow::Error::new(tls).context(format!("{what}: TLS error")),
        None => anyhow::Error::new(e).context(what.to_string()),
    }
}

// Framing failures against a peer that answers with raw bytes.
#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn opts() -> ConnOpts {
        ConnOpts {
            client_id: "t".into(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            security: Security::default(),
        }
    }

    /// A peer that answers the first request with `reply` raw bytes.
    fn peer(reply: Vec<u8>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = listener.accept() {
                let mut prefix = [0u8; 4];
                if s.read_exact(&mut prefix).is_ok() {
                    let mut req = vec![0u8; u32::from_be_bytes(prefix) as usize];
                    let _ = s.read_exact(&mut req);
                    let _ = s.write_all(&reply);
                }
            }
        });
        addr
    }

    #[test]
    fn an_oversized_announced_response_is_refused_without_allocating_it() {
        let addr = peer(u32::MAX.to_be_bytes().to_vec());
        let err = Conn::connect(&addr, &opts()).err().expect("refused");
        assert!(format!("{err:#}").contains("over the"), "{err:#}");
    }

    #[test]
    fn a_truncated_response_is_an_error() {
        let mut reply = 100u32.to_be_bytes().to_vec();
        reply.extend_from_slice(&[0, 0, 0, 1]);
        let addr = peer(reply);
        let err = Conn::connect(&addr, &opts()).err().expect("refused");
        assert!(format!("{err:#}").contains("closed"), "{err:#}");
    }
}

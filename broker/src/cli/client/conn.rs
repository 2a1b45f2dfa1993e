//! One blocking connection to one broker: framing, correlation ids, request and response
//! headers, and the API versions negotiated when it opened.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

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
}

/// A connection to one broker.
pub struct Conn {
    stream: TcpStream,
    addr: String,
    client_id: StrBytes,
    correlation_id: i32,
    versions: Versions,
}

impl Conn {
    /// Connects to `addr` (`host:port`) and negotiates API versions.
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
        let mut conn = Conn {
            stream,
            addr: addr.to_string(),
            client_id: StrBytes::from_string(opts.client_id.clone()),
            correlation_id: 0,
            versions: Versions::default(),
        };
        conn.versions = versions::negotiate(&mut conn)
            .with_context(|| format!("negotiating API versions with {addr}"))?;
        Ok(conn)
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
            .with_context(|| format!("sending to {}", self.addr))?;
        Ok(self.correlation_id)
    }

    /// Reads one response frame, checks its correlation id and returns the body after the
    /// response header.
    pub fn receive(&mut self, correlation_id: i32, header_version: i16) -> anyhow::Result<Bytes> {
        let mut prefix = [0u8; 4];
        self.stream
            .read_exact(&mut prefix)
            .map_err(|e| timeout_context(e, &self.addr))?;
        let len = usize::try_from(u32::from_be_bytes(prefix)).unwrap_or(usize::MAX);
        if len > MAX_RESPONSE_BYTES {
            bail!(
                "{} announced a {len}-byte response, over the {MAX_RESPONSE_BYTES}-byte limit",
                self.addr
            );
        }
        let mut buf = Vec::new();
        (&mut self.stream)
            .take(len as u64)
            .read_to_end(&mut buf)
            .map_err(|e| timeout_context(e, &self.addr))?;
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

fn timeout_context(e: std::io::Error, addr: &str) -> anyhow::Error {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            anyhow!("{addr} did not answer within the request timeout")
        }
        std::io::ErrorKind::UnexpectedEof => anyhow!("{addr} closed the connection"),
        _ => anyhow::Error::new(e).context(format!("reading from {addr}")),
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

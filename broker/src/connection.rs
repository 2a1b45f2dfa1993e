//! One client connection: read frames, hand each request to its handler in arrival order,
//! write responses back in the same order (Kafka's rule), whatever order they complete in.
//!
//! Requests are dispatched one after another on the reading side, so the effects of a
//! connection's requests (appends in particular) happen in the order they were sent. A
//! handler that must wait (an acks=all produce for its fsync, a fetch for data) returns a
//! future instead of a response; the writing side awaits those futures in request order,
//! so waiting never blocks the dispatch of the next request.
//!
//! A connection with no response pending that has read and written nothing for
//! `connections.max.idle.ms` is closed, also while it waits for the request budget
//! (`request_budget.rs`): that is what frees the memory of clients that stall halfway
//! through a request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use std::io::IoSlice;
use std::os::fd::AsFd;

use bytes::{Buf, Bytes, BytesMut};
use floe_protocol::frame::{PREFIX_SIZE, decode_frame, grow_to, next_capacity, peek_frame_size};
use floe_protocol::request::parse_request;
use floe_protocol::response::{encode_fetch_parts, encode_response_chunks};
use floe_protocol::rope::Part;
use floe_storage::FileRegion;
use futures_util::FutureExt;
use kafka_protocol::messages::{ApiKey, ResponseKind};
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;

mod auth;
mod throttle;
mod transport;

use auth::{Authenticator, Gate};
use transport::Writer;

use crate::handlers::{self, FetchReply, Outgoing, Reply, RequestContext};
use crate::log_limit::LogLimit;
use crate::request_budget::FREE_BYTES;
use crate::state::Broker;
use crate::telemetry;

/// Warnings about connections closed for what their client sent: any client can cause as
/// many as it likes, so they are rate limited across all connections.
static CLOSED_BAD_INPUT: LogLimit = LogLimit::new("connection closed for bad input", 10);

/// Responses that may be pending (encoded or awaited) per connection before reading pauses.
const MAX_IN_FLIGHT: usize = 64;

/// What `connections.max.idle.ms` looks at, shared by the reading and the writing side.
#[derive(Debug)]
struct Activity {
    start: Instant,
    /// Milliseconds after `start` of the last read or written response.
    last_ms: AtomicU64,
    /// Requests dispatched whose response is not written yet.
    in_flight: AtomicUsize,
    /// Milliseconds after `start` until which a throttled client is not read from.
    muted_until_ms: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            muted_until_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    /// Reads nothing for `throttle` from now (a quota was exceeded).
    fn mute_for(&self, throttle: Duration) {
        let until = self.start.elapsed().saturating_add(throttle);
        let ms = u64::try_from(until.as_millis()).unwrap_or(u64::MAX);
        self.muted_until_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// How long the connection stays muted, if it is.
    fn muted_for(&self) -> Option<Duration> {
        let until = Duration::from_millis(self.muted_until_ms.load(Ordering::Relaxed));
        until
            .checked_sub(self.start.elapsed())
            .filter(|d| !d.is_zero())
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// How long the connection has been idle, `None` while a response is pending.
    fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let last = self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        Some(Instant::now().saturating_duration_since(last))
    }

    /// Completes once the connection has been idle for `max_idle` (never if `None`).
    async fn idle_timeout(&self, max_idle: Option<Duration>) {
        let Some(max_idle) = max_idle else {
            return std::future::pending().await;
        };
        loop {
            let wait = match self.idle_for() {
                Some(idle) if idle >= max_idle => return,
                Some(idle) => max_idle - idle,
                None => max_idle,
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// A listener as its connections see it.
pub struct Listener {
    /// The listener name (`PLAINTEXT`, `CLIENT`, ...).
    pub name: Arc<str>,
    /// Its security protocol.
    pub protocol: crate::security::SecurityProtocol,
    /// The TLS material (SSL and SASL_SSL listeners).
    pub tls: Option<Arc<crate::security::tls::Tls>>,
}

/// Longest a TLS handshake may take: a client that connects and sends nothing (or a
/// plaintext client on a TLS port that waits for an answer) is closed after it.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Plaintext rustls may hold for sending on one TLS connection.
const TLS_SEND_BUFFER: usize = 1024 * 1024;

/// TLS handshakes that fail: anyone can cause them (a plaintext client on a TLS port, a
/// scanner), so they are rate limited.
static TLS_FAILED: LogLimit = LogLimit::new("TLS handshake failed", 10);

/// Serves one connection until the client closes it, sends something unparseable, stays
/// idle for `connections.max.idle.ms`, or `shutdown` turns true: then it reads no further
/// request, answers those it has read, and closes. On a TLS listener the handshake comes
/// first; on a SASL listener nothing but ApiVersions and the SASL exchange is served until
/// the client has authenticated (`auth.rs`).
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    broker: Arc<Broker>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    listener: Arc<Listener>,
) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%peer, "set_nodelay failed: {e}");
    }
    let mut session = crate::security::Session {
        principal: crate::security::Principal::anonymous(),
        client_address: peer.ip().to_canonical(),
        listener: listener.name.clone(),
        protocol: listener.protocol,
    };
    let (mut reader, writer) = match &listener.tls {
        Some(tls) if listener.protocol.uses_tls() => {
            let accept = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.acceptor().accept(stream));
            let accepted = tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => return,
                accepted = accept => accepted,
            };
            let failed = |reason: String| {
                telemetry::TLS_HANDSHAKE_FAILURES.fetch_add(1, Ordering::Relaxed);
                crate::warn_limited!(TLS_FAILED, %peer, listener = %listener.name, "closing connection: {reason}");
            };
            let mut stream = match accepted {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => return failed(format!("TLS handshake failed: {e}")),
                Err(_) => {
                    return failed(format!(
                        "no TLS handshake within {}s",
                        TLS_HANDSHAKE_TIMEOUT.as_secs()
                    ));
                }
            };
            if listener.protocol == crate::security::SecurityProtocol::Ssl {
                let certs = stream.get_ref().1.peer_certificates();
                match auth::tls_principal(certs, &tls.rules) {
                    Ok(p) => session.principal = p,
                    Err(e) => return failed(format!("client certificate refused: {e}")),
                }
            }
            // Room for a large response's plaintext at once: rustls then fills each
            // `writev` with many records (the default 64 KiB cut fetches into small writes).
            stream.get_mut().1.set_buffer_limit(Some(TLS_SEND_BUFFER));
            transport::tls(stream)
        }
        _ => transport::plain(stream),
    };
    let mut auth = Authenticator::new(broker.clone(), session);
    let (tx, rx) = mpsc::channel::<Outgoing>(MAX_IN_FLIGHT);
    let activity = Arc::new(Activity::new());
    let max_idle = broker.config.max_idle();
    let writer = tokio::spawn(write_responses(writer, rx, peer, activity.clone()));
    let socket_max = broker.config.socket_request_max_bytes;
    let sasl_max = broker.config.sasl_server_max_receive_size.min(socket_max);
    // Holds at most the start of one frame between reads (complete frames are split off
    // first), and grows only as that frame's bytes arrive (`next_capacity`).
    let mut buf = BytesMut::new();
    // The part of `buf`'s allocation counted in the broker-wide request budget.
    let mut budget = broker.request_budget.hold();
    'conn: loop {
        // Until a SASL client has authenticated, requests are small.
        let mut max = if auth.pending() { sasl_max } else { socket_max };
        loop {
            let frame = match decode_frame(&mut buf, max) {
                Ok(Some(frame)) => frame.freeze(),
                Ok(None) => break,
                Err(e) => {
                    crate::warn_limited!(CLOSED_BAD_INPUT, %peer, "closing connection: {e}");
                    break 'conn;
                }
            };
            let frame_len = frame.len() as u64;
            if auth.raw_pending() {
                // After SaslHandshake v0 the client sends bare SASL tokens, not requests.
                let answer = auth.raw_token(&frame);
                if let Some(token) = answer.token {
                    let out = Outgoing {
                        api_key: ApiKey::SaslAuthenticate,
                        api_version: 0,
                        correlation_id: 0,
                        reply: Reply::Raw(token),
                        received: Instant::now(),
                    };
                    activity.in_flight.fetch_add(1, Ordering::Relaxed);
                    if tx.send(out).await.is_err() {
                        break 'conn;
                    }
                }
                if answer.close {
                    break 'conn;
                }
                max = if auth.pending() { sasl_max } else { socket_max };
                continue;
            }
            let request = match parse_request(frame) {
                Ok(r) => r,
                Err(e) => {
                    crate::warn_limited!(
                        CLOSED_BAD_INPUT,
                        %peer,
                        "closing connection: unparseable request: {e}"
                    );
                    break 'conn;
                }
            };
            match auth.gate(request.api_key) {
                Gate::Dispatch => {}
                Gate::Close(reason) => {
                    crate::warn_limited!(CLOSED_BAD_INPUT, %peer, "closing connection: {reason}");
                    break 'conn;
                }
                Gate::Sasl => {
                    let answer = match auth.step(&request) {
                        Ok(answer) => answer,
                        Err(e) => {
                            crate::warn_limited!(CLOSED_BAD_INPUT, %peer, "closing connection: undecodable SASL request: {e}");
                            break 'conn;
                        }
                    };
                    let body = answer.body;
                    let reply = match answer.delay {
                        Some(delay) => Reply::Later(Box::pin(async move {
                            tokio::time::sleep(delay).await;
                            body
                        })),
                        None => Reply::Now(Box::new(body)),
                    };
                    let out = Outgoing {
                        api_key: request.api_key,
                        api_version: request.api_version(),
                        correlation_id: request.correlation_id(),
                        reply,
                        received: Instant::now(),
                    };
                    activity.in_flight.fetch_add(1, Ordering::Relaxed);
                    if tx.send(out).await.is_err() || answer.close {
                        break 'conn;
                    }
                    max = if auth.pending() { sasl_max } else { socket_max };
                    continue;
                }
            }
            let ctx = RequestContext {
                broker: broker.clone(),
                peer,
                header: request.header.clone(),
                session: auth.session().clone(),
            };
            match handlers::dispatch(&ctx, &request).await {
                Ok(Some(mut out)) => {
                    if broker.security.quotas.enabled() {
                        let (version, received) = (out.api_version, out.received);
                        out.reply = quotas(
                            &ctx, &request, frame_len, received, version, out.reply, &activity,
                        );
                    }
                    activity.in_flight.fetch_add(1, Ordering::Relaxed);
                    if tx.send(out).await.is_err() {
                        break 'conn; // the writer failed; the socket is gone
                    }
                }
                Ok(None) => {}
                Err(reason) => {
                    crate::warn_limited!(
                        CLOSED_BAD_INPUT,
                        %peer,
                        api = ?request.api_key,
                        version = request.api_version(),
                        "closing connection: {reason}"
                    );
                    break 'conn;
                }
            }
        }
        if buf.is_empty() {
            // Every request read was handled: give the buffer back, so an idle connection
            // holds no receive buffer at all.
            buf = BytesMut::new();
            budget.release();
        }
        // A throttled client is not read from until its throttle time has passed (KIP-219).
        if let Some(muted) = activity.muted_for() {
            tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => break,
                () = tokio::time::sleep(muted) => {}
            }
        }
        // Wait for bytes before allocating for them. Biased: when bytes are already there the
        // idle timer is never polled, so it costs nothing on a busy connection.
        tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => break,
            ready = reader.readable() => if let Err(e) = ready {
                tracing::debug!(%peer, "read failed: {e}");
                break;
            },
            () = activity.idle_timeout(max_idle) => {
                tracing::debug!(%peer, "closing idle connection");
                break;
            }
        }
        let grow = match next_capacity(&buf, max) {
            Ok(grow) => grow,
            Err(e) => {
                crate::warn_limited!(CLOSED_BAD_INPUT, %peer, "closing connection: {e}");
                break;
            }
        };
        if let Some(target) = grow {
            // Waits while the budget is spent: this connection stops reading meanwhile.
            // A buffer past the free bytes is for a request whose prefix is in: its whole
            // size is taken from the budget at once (see `request_budget.rs`).
            let size = match peek_frame_size(&buf, max) {
                Ok(Some(size)) if target > FREE_BYTES => PREFIX_SIZE + size,
                _ => target,
            };
            tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => break,
                () = budget.cover(size) => {}
                () = activity.idle_timeout(max_idle) => {
                    tracing::debug!(%peer, "closing connection idle while waiting for the request budget");
                    break;
                }
            }
            grow_to(&mut buf, target);
        }
        match reader.try_read_buf(&mut buf) {
            Ok(0) => break,
            Ok(_) => activity.touch(),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => {
                tracing::debug!(%peer, "read failed: {e}");
                break;
            }
        }
    }
    // Let the writer send what was already answered, then close.
    drop(tx);
    if let Err(e) = writer.await {
        tracing::error!(%peer, "response writer task failed: {e}");
    }
}

/// Measures a request against the client's quotas (request time; Produce request bytes;
/// consumer Fetch response bytes when the fetch completes) and, when one is exceeded,
/// sets `throttle_time_ms` in the response and mutes the connection for that long. A
/// throttled Fetch is answered without records, which are not counted (Kafka's rule).
fn quotas(
    ctx: &RequestContext,
    request: &floe_protocol::request::RequestFrame,
    frame_len: u64,
    received: Instant,
    version: i16,
    reply: Reply,
    activity: &Arc<Activity>,
) -> Reply {
    let quotas = &ctx.broker.security.quotas;
    let user = ctx.session.principal.name.clone();
    let client_id = floe_protocol::request::client_id(&request.header).to_string();
    let now = Instant::now();
    let mut throttle = quotas.record_request_time(&user, &client_id, now - received, now);
    if request.api_key == ApiKey::Produce {
        throttle = throttle.max(quotas.record_produce(&user, &client_id, frame_len, now));
    }
    let ms = |d: Duration| i32::try_from(d.as_millis()).unwrap_or(i32::MAX);
    match reply {
        Reply::Fetch(fut) => {
            let (broker, activity) = (ctx.broker.clone(), activity.clone());
            Reply::Fetch(Box::pin(async move {
                let mut reply = fut.await;
                let quotas = &broker.security.quotas;
                let bytes = throttle::fetch_bytes(&reply.body);
                let now = Instant::now();
                let fetch = quotas.record_fetch(&user, &client_id, bytes, now);
                if !fetch.is_zero() {
                    quotas.unrecord_fetch(&user, &client_id, bytes, now);
                    for p in reply
                        .body
                        .responses
                        .iter_mut()
                        .flat_map(|t| &mut t.partitions)
                    {
                        p.records = None;
                    }
                }
                let throttle = throttle.max(fetch);
                if !throttle.is_zero() {
                    reply.body.throttle_time_ms = reply.body.throttle_time_ms.max(ms(throttle));
                    activity.mute_for(throttle);
                }
                reply
            }))
        }
        reply if throttle.is_zero() => reply,
        Reply::Now(mut body) => {
            throttle::set_throttle_time(&mut body, version, ms(throttle));
            activity.mute_for(throttle);
            Reply::Now(body)
        }
        Reply::Later(fut) => {
            activity.mute_for(throttle);
            Reply::Later(Box::pin(async move {
                let mut body = fut.await;
                throttle::set_throttle_time(&mut body, version, ms(throttle));
                body
            }))
        }
        raw @ Reply::Raw(_) => raw,
    }
}

async fn write_responses(
    mut writer: Writer,
    mut rx: mpsc::Receiver<Outgoing>,
    peer: SocketAddr,
    activity: Arc<Activity>,
) {
    // A response taken from the queue to join a batch but not ready yet: next in line.
    let mut held: Option<Outgoing> = None;
    loop {
        let out = match held.take() {
            Some(out) => out,
            None => match rx.recv().await {
                Some(out) => out,
                None => break,
            },
        };
        let head = (out.api_key, out.api_version, out.correlation_id);
        let received = out.received;
        let (written, answered) = 'write: {
            let body = match out.reply {
                Reply::Now(body) => *body,
                Reply::Later(fut) => fut.await,
                Reply::Raw(token) => {
                    let len = u32::try_from(token.len()).unwrap_or(u32::MAX);
                    let prefix = Bytes::copy_from_slice(&len.to_be_bytes());
                    break 'write (write_chunks(&mut writer, vec![prefix, token]).await, 1);
                }
                Reply::Fetch(fut) => {
                    let reply = fut.await;
                    telemetry::requests::record(head.0, received.elapsed(), |f| {
                        telemetry::errors::fetch(&reply.body, f)
                    });
                    break 'write (write_fetch(&mut writer, head.1, head.2, reply).await, 1);
                }
            };
            record(head.0, received, &body);
            let Some(mut chunks) = encode(head, &body, peer) else {
                return;
            };
            drop(body);
            let Some(more) = coalesce(&mut rx, &mut held, &mut chunks, peer) else {
                return;
            };
            (write_chunks(&mut writer, chunks).await, 1 + more)
        };
        activity.touch();
        activity.in_flight.fetch_sub(answered, Ordering::Relaxed);
        if let Err(e) = written {
            tracing::debug!(%peer, "write failed: {e}");
            return;
        }
    }
    let _ = writer.shutdown().await;
}

/// Appends to `chunks` the responses queued behind the one they hold that are already
/// answered, so they go out in the same write: pipelined requests (a producer's in-flight
/// batches) cost one syscall, not one each. Stops at a response still waiting, or a Fetch
/// (written with `sendfile`), which it leaves in `held` to be written next. Returns how many
/// it added; `None` if one cannot be encoded (see [`encode`]).
fn coalesce(
    rx: &mut mpsc::Receiver<Outgoing>,
    held: &mut Option<Outgoing>,
    chunks: &mut Vec<Bytes>,
    peer: SocketAddr,
) -> Option<usize> {
    let mut added = 0;
    while added + 1 < COALESCE_MAX && chunks.len() < COALESCE_CHUNKS {
        let Ok(next) = rx.try_recv() else { break };
        let head = (next.api_key, next.api_version, next.correlation_id);
        let received = next.received;
        let body = match next.reply {
            Reply::Now(body) => *body,
            Reply::Later(mut fut) => match (&mut fut).now_or_never() {
                Some(body) => body,
                None => {
                    *held = Some(Outgoing {
                        reply: Reply::Later(fut),
                        ..next
                    });
                    break;
                }
            },
            Reply::Fetch(_) | Reply::Raw(_) => {
                *held = Some(next);
                break;
            }
        };
        record(head.0, received, &body);
        chunks.extend(encode(head, &body, peer)?);
        added += 1;
    }
    Some(added)
}

/// Counts a response whose body is ready in the request metrics.
fn record(api: ApiKey, received: Instant, body: &ResponseKind) {
    telemetry::requests::record(api, received.elapsed(), |f| {
        telemetry::errors::for_each_error_code(body, f)
    });
}

/// Responses written together at most.
const COALESCE_MAX: usize = 64;
/// Chunks gathered for one write at most (a write takes 64 per `writev`).
const COALESCE_CHUNKS: usize = 256;

/// `body` as the chunks of its frame; `None` (logged) if it cannot be encoded: a broker bug
/// (a field set that its version cannot carry), to which closing the connection is the only
/// honest answer, since the client would otherwise wait forever.
fn encode(head: (ApiKey, i16, i32), body: &ResponseKind, peer: SocketAddr) -> Option<Vec<Bytes>> {
    match encode_response_chunks(head.0, head.1, head.2, body) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::error!(%peer, "closing connection: {e}");
            None
        }
    }
}

/// Writes a Fetch response: encoded parts with vectored writes, each partition's record
/// batches with `sendfile` from their segment file (no copy through user space).
async fn write_fetch(
    writer: &mut Writer,
    api_version: i16,
    correlation_id: i32,
    reply: FetchReply,
) -> std::io::Result<()> {
    let parts = encode_fetch_parts(api_version, correlation_id, &reply.body, reply.stand_ins)
        .map_err(|e| {
            // A broker bug; closing is the only honest answer (the client would wait).
            tracing::error!("closing connection: {e}");
            std::io::Error::other(e)
        })?;
    drop(reply.body);
    let mut pending: Vec<Bytes> = Vec::new();
    for part in parts {
        match part {
            Part::Bytes(b) => pending.push(b),
            Part::Stand { index, offset, len } => {
                let region = reply.regions.get(index).ok_or_else(|| {
                    std::io::Error::other(format!("fetch stand-in {index} has no file range"))
                })?;
                match writer.plain() {
                    Some(_) => {
                        write_chunks(writer, std::mem::take(&mut pending)).await?;
                        if let Some(socket) = writer.plain() {
                            send_region(socket, region, offset, len).await?;
                        }
                    }
                    None => {
                        // TLS: the bytes are encrypted in user space, a piece at a time, so
                        // the client decrypts one piece while the next is read and
                        // encrypted (reading a whole multi-MiB response first left it
                        // idle). The range is in the page cache or memory already (the
                        // fetch loaded it off the runtime), so no read waits for the disk.
                        let end = offset.saturating_add(len).min(region.len());
                        let mut at = offset.min(end);
                        while at < end {
                            let piece = region
                                .read_range(at, (end - at).min(TLS_FETCH_PIECE))
                                .map_err(std::io::Error::other)?;
                            if piece.is_empty() {
                                break;
                            }
                            at += piece.len();
                            pending.push(piece);
                            write_chunks(writer, std::mem::take(&mut pending)).await?;
                        }
                    }
                }
            }
        }
    }
    write_chunks(writer, pending).await
}

/// Bytes of a fetched range read and encrypted at a time on a TLS connection.
const TLS_FETCH_PIECE: usize = 256 * 1024;

/// Sends `len` bytes of `region` from `offset` with `sendfile`, waiting for the socket to
/// take more whenever its buffer is full.
async fn send_region(
    writer: &mut OwnedWriteHalf,
    region: &FileRegion,
    offset: usize,
    len: usize,
) -> std::io::Result<()> {
    let stream: &TcpStream = writer.as_ref();
    let mut queued = Queued::new(len);
    let mut sent = 0;
    while sent < len {
        stream.writable().await?;
        match stream.try_io(Interest::WRITABLE, || {
            region.send_to(stream.as_fd(), offset + sent, len - sent)
        }) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                sent += n;
                queued.written(n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes a response's chunks in order with vectored writes (fetched record batches are
/// chunks of their own, written from the buffers they were read into).
async fn write_chunks(writer: &mut Writer, mut chunks: Vec<Bytes>) -> std::io::Result<()> {
    /// Chunks per `writev` (well under every kernel's IOV_MAX).
    const MAX_SLICES: usize = 64;
    // An empty slice would make a write of nothing look like a closed socket.
    chunks.retain(|c| !c.is_empty());
    let mut queued = Queued::new(chunks.iter().map(Bytes::len).sum());
    let mut first = 0;
    while first < chunks.len() {
        let slices: Vec<IoSlice<'_>> = chunks[first..]
            .iter()
            .take(MAX_SLICES)
            .map(|c| IoSlice::new(c))
            .collect();
        let mut written = writer.write_vectored(&slices).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        queued.written(written);
        while written > 0 {
            let chunk = &mut chunks[first];
            let n = written.min(chunk.len());
            chunk.advance(n);
            written -= n;
            if chunk.is_empty() {
                first += 1;
            }
        }
    }
    writer.flush().await
}

/// Bytes of a response counted in `floe_response_queued_bytes` until they are written (or
/// the write fails).
struct Queued(u64);

impl Queued {
    fn new(bytes: usize) -> Queued {
        let bytes = bytes as u64;
        telemetry::QUEUED_RESPONSE_BYTES.fetch_add(bytes, Ordering::Relaxed);
        Queued(bytes)
    }

    fn written(&mut self, bytes: usize) {
        let n = (bytes as u64).min(self.0);
        self.0 -= n;
        telemetry::QUEUED_RESPONSE_BYTES.fetch_sub(n, Ordering::Relaxed);
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        telemetry::QUEUED_RESPONSE_BYTES.fetch_sub(self.0, Ordering::Relaxed);
    }
}

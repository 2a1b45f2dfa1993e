//! One client connection: read frames, hand each request to its handler in arrival order,
//! write responses back in the same order (Kafka's rule), whatever order they complete in.
//!
//! Requests are dispatched one after another on the reading side, so the effects of a
//! connection's requests (appends in particular) happen in the order they were sent. A
//! handler that must wait (an acks=all produce for its fsync, a fetch for data) returns a
//! future instead of a response; the writing side awaits those futures in request order,
//! so waiting never blocks the dispatch of the next request.

use std::net::SocketAddr;
use std::sync::Arc;

use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};
use floe_protocol::frame::{decode_frame, grow_to, next_capacity};
use floe_protocol::request::parse_request;
use floe_protocol::response::encode_response_chunks;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;

use crate::handlers::{self, Outgoing, Reply, RequestContext};
use crate::log_limit::LogLimit;
use crate::state::Broker;

/// Warnings about connections closed for what their client sent: any client can cause as
/// many as it likes, so they are rate limited across all connections.
static CLOSED_BAD_INPUT: LogLimit = LogLimit::new("connection closed for bad input", 10);

/// Responses that may be pending (encoded or awaited) per connection before reading pauses.
const MAX_IN_FLIGHT: usize = 64;

/// Serves one connection until the client closes it or sends something unparseable.
pub async fn serve(stream: TcpStream, peer: SocketAddr, broker: Arc<Broker>) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%peer, "set_nodelay failed: {e}");
    }
    let (reader, writer) = stream.into_split();
    let (tx, rx) = mpsc::channel::<Outgoing>(MAX_IN_FLIGHT);
    let writer = tokio::spawn(write_responses(writer, rx, peer));
    let max = broker.config.socket_request_max_bytes;
    // Holds at most the start of one frame between reads (complete frames are split off
    // first), and grows only as that frame's bytes arrive (`next_capacity`).
    let mut buf = BytesMut::new();
    // The part of `buf`'s allocation counted in the broker-wide request budget.
    let mut budget = broker.request_budget.hold();
    'conn: loop {
        loop {
            let frame = match decode_frame(&mut buf, max) {
                Ok(Some(frame)) => frame.freeze(),
                Ok(None) => break,
                Err(e) => {
                    crate::warn_limited!(CLOSED_BAD_INPUT, %peer, "closing connection: {e}");
                    break 'conn;
                }
            };
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
            let ctx = RequestContext {
                broker: broker.clone(),
                peer,
                header: request.header.clone(),
            };
            match handlers::dispatch(&ctx, &request).await {
                Ok(Some(out)) => {
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
        // Wait for bytes before allocating for them.
        if let Err(e) = reader.readable().await {
            tracing::debug!(%peer, "read failed: {e}");
            break;
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
            budget.cover(target).await;
            grow_to(&mut buf, target);
        }
        match reader.try_read_buf(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
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

async fn write_responses(
    mut writer: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Outgoing>,
    peer: SocketAddr,
) {
    while let Some(out) = rx.recv().await {
        let body = match out.reply {
            Reply::Now(body) => *body,
            Reply::Later(fut) => fut.await,
        };
        let chunks =
            match encode_response_chunks(out.api_key, out.api_version, out.correlation_id, &body) {
                Ok(c) => c,
                Err(e) => {
                    // A broker bug (a field set that its version cannot carry). Closing is the
                    // only honest answer: the client would otherwise wait forever.
                    tracing::error!(%peer, "closing connection: {e}");
                    return;
                }
            };
        drop(body);
        if let Err(e) = write_chunks(&mut writer, chunks).await {
            tracing::debug!(%peer, "write failed: {e}");
            return;
        }
    }
    let _ = writer.shutdown().await;
}

/// Writes a response's chunks in order with vectored writes (fetched record batches are
/// chunks of their own, written from the buffers they were read into).
async fn write_chunks(writer: &mut OwnedWriteHalf, mut chunks: Vec<Bytes>) -> std::io::Result<()> {
    /// Chunks per `writev` (well under every kernel's IOV_MAX).
    const MAX_SLICES: usize = 64;
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
    Ok(())
}

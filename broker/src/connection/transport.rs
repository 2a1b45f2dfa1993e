//! The two byte streams a connection can run over: a plain TCP socket (reads wait for
//! readiness before a buffer is allocated; fetched record batches go out with `sendfile`),
//! or TLS over it (bytes are decrypted into a small staging buffer, freed once drained;
//! fetched record batches are copied out of the page cache, since the kernel cannot
//! encrypt them).

use std::io::IoSlice;

use bytes::BytesMut;
use futures_util::FutureExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_rustls::server::TlsStream;

/// Decrypted bytes read at a time: one TLS record.
const TLS_RECORD: usize = 16 * 1024;

/// Most decrypted bytes staged per wake-up: clients that write many small TLS records
/// (librdkafka writes one per buffer slice) are read record after record while records
/// are there, not one per trip through the connection's loop.
const TLS_STAGING: usize = 256 * 1024;

/// The reading side.
pub enum Reader {
    /// A plain socket.
    Plain(OwnedReadHalf),
    /// TLS.
    Tls {
        /// The TLS stream's reading half.
        inner: ReadHalf<TlsStream<TcpStream>>,
        /// Decrypted bytes not yet taken.
        staged: BytesMut,
        /// The peer closed its side.
        eof: bool,
    },
}

/// The writing side.
pub enum Writer {
    /// A plain socket.
    Plain(OwnedWriteHalf),
    /// TLS.
    Tls(WriteHalf<TlsStream<TcpStream>>),
}

/// Splits a plain socket.
pub fn plain(stream: TcpStream) -> (Reader, Writer) {
    let (r, w) = stream.into_split();
    (Reader::Plain(r), Writer::Plain(w))
}

/// Splits a TLS stream.
pub fn tls(stream: TlsStream<TcpStream>) -> (Reader, Writer) {
    let (r, w) = tokio::io::split(stream);
    (
        Reader::Tls {
            inner: r,
            staged: BytesMut::new(),
            eof: false,
        },
        Writer::Tls(w),
    )
}

impl Reader {
    /// Completes when [`Reader::try_read_buf`] has something to say (bytes, the end of the
    /// stream or an error). Cancel-safe.
    pub async fn readable(&mut self) -> std::io::Result<()> {
        match self {
            Reader::Plain(r) => r.readable().await,
            Reader::Tls { inner, staged, eof } => {
                if !staged.is_empty() || *eof {
                    return Ok(());
                }
                staged.reserve(TLS_RECORD);
                if inner.read_buf(staged).await? == 0 {
                    *eof = true;
                    return Ok(());
                }
                // Take what else has arrived without waiting.
                while staged.len() < TLS_STAGING {
                    staged.reserve(TLS_RECORD);
                    match inner.read_buf(staged).now_or_never() {
                        Some(Ok(0)) => {
                            *eof = true;
                            break;
                        }
                        Some(Ok(_)) => {}
                        // Reported by the next read; what was read goes first.
                        Some(Err(_)) | None => break,
                    }
                }
                Ok(())
            }
        }
    }

    /// Moves what is available into `buf`'s spare capacity without waiting: `Ok(0)` at the
    /// end of the stream, `WouldBlock` when nothing is there.
    pub fn try_read_buf(&mut self, buf: &mut BytesMut) -> std::io::Result<usize> {
        match self {
            Reader::Plain(r) => r.try_read_buf(buf),
            Reader::Tls { staged, eof, .. } => {
                if staged.is_empty() {
                    return if *eof {
                        Ok(0)
                    } else {
                        Err(std::io::ErrorKind::WouldBlock.into())
                    };
                }
                let n = staged.len().min(buf.capacity() - buf.len());
                if n == 0 {
                    return Err(std::io::ErrorKind::WouldBlock.into());
                }
                buf.extend_from_slice(&staged.split_to(n));
                if staged.is_empty() {
                    // An idle TLS connection holds no staging buffer.
                    *staged = BytesMut::new();
                }
                Ok(n)
            }
        }
    }
}

impl Writer {
    /// Writes some of `bufs`; returns how many bytes were taken.
    pub async fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> std::io::Result<usize> {
        match self {
            Writer::Plain(w) => w.write_vectored(bufs).await,
            Writer::Tls(w) => w.write_vectored(bufs).await,
        }
    }

    /// Pushes out what TLS holds back (a no-op on a plain socket).
    pub async fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Writer::Plain(_) => Ok(()),
            Writer::Tls(w) => w.flush().await,
        }
    }

    /// Closes the writing side (TLS sends its close_notify first).
    pub async fn shutdown(&mut self) -> std::io::Result<()> {
        match self {
            Writer::Plain(w) => w.shutdown().await,
            Writer::Tls(w) => w.shutdown().await,
        }
    }

    /// The plain socket, for `sendfile`; `None` over TLS.
    pub fn plain(&mut self) -> Option<&mut OwnedWriteHalf> {
        match self {
            Writer::Plain(w) => Some(w),
            Writer::Tls(_) => None,
        }
    }
}

//! [`FileRegion`]: a byte range of a segment file on its way to the network, and the
//! positional read into a fresh buffer that the region and [`super::File`] share.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use super::{Result, nonblocking};
use crate::error::{IoOp, StorageError};

/// A byte range of a segment file, handed to the network without a copy through user space:
/// a fetch response's record batches are `sendfile`d from the page cache to the socket.
/// Segment bytes below a segment's size never change, so the range stays valid while the
/// region holds the file open, even if the file is deleted meanwhile. A range that is not in
/// the page cache is read into memory off the runtime first ([`FileRegion::load`]), so that
/// sending it never waits for the disk on a runtime thread.
#[derive(Debug, Clone)]
pub struct FileRegion {
    source: Source,
    path: PathBuf,
    len: usize,
}

#[derive(Debug, Clone)]
enum Source {
    /// In the file, at `position`.
    File { file: Arc<fs::File>, position: u64 },
    /// Read into memory.
    Memory(Bytes),
}

impl FileRegion {
    /// `len` bytes of the open `file` (at `path`) from `position`.
    pub(super) fn in_file(
        file: Arc<fs::File>,
        position: u64,
        path: PathBuf,
        len: usize,
    ) -> FileRegion {
        FileRegion {
            source: Source::File { file, position },
            path,
            len,
        }
    }

    /// Length of the range.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the range is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether sending the range needs no disk read: it is in memory, or entirely in the
    /// page cache (`cachestat(2)`; `false` where the kernel cannot tell).
    pub fn is_cached(&self) -> bool {
        match &self.source {
            Source::File { file, position } => nonblocking::cached(file, *position, self.len),
            Source::Memory(_) => true,
        }
    }

    /// The same range, read into memory (blocks: call it through [`offload`]).
    pub fn load(self) -> Result<FileRegion> {
        match &self.source {
            Source::Memory(_) => Ok(self),
            Source::File { .. } => {
                let bytes = Bytes::from(self.read()?);
                Ok(FileRegion {
                    source: Source::Memory(bytes),
                    path: self.path,
                    len: self.len,
                })
            }
        }
    }

    /// Sends at most `len` of the range's bytes from `from` on to `socket` with one
    /// `sendfile(2)` (or `write(2)` of a loaded range); returns how many were sent (fewer
    /// when the socket buffer fills: the socket is non-blocking, and the caller waits for it
    /// to be writable and calls again). The file side reads the page cache (a read from the
    /// disk where the pages are not cached).
    pub fn send_to(
        &self,
        socket: std::os::fd::BorrowedFd<'_>,
        from: usize,
        len: usize,
    ) -> io::Result<usize> {
        let remaining = self.len.saturating_sub(from).min(len);
        if remaining == 0 {
            return Ok(0);
        }
        let (file, position) = match &self.source {
            Source::File { file, position } => (file, *position),
            Source::Memory(bytes) => {
                return Ok(rustix::io::write(socket, &bytes[from..from + remaining])?);
            }
        };
        let mut offset = position + from as u64;
        let n = rustix::fs::sendfile(socket, &**file, Some(&mut offset), remaining)?;
        if n == 0 {
            // The file is shorter than the region: it was truncated under us (only recovery
            // truncates, before serving), so this is a bug or outside interference.
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{} ends before byte {} of a fetched range",
                    self.path.display(),
                    position + from as u64
                ),
            ));
        }
        Ok(n)
    }

    /// The range's bytes (for connections that cannot use `sendfile`); reads the file unless
    /// the range was loaded.
    pub fn read(&self) -> Result<Vec<u8>> {
        match &self.source {
            Source::Memory(bytes) => Ok(bytes.to_vec()),
            Source::File { file, position } => pread_vec(file, &self.path, *position, self.len),
        }
    }

    /// At most `len` of the range's bytes from `from` (fewer at its end): a slice of a loaded
    /// range, otherwise read from the file. A TLS connection encrypts a large range a piece
    /// at a time with it, so the client receives the first piece while the next is read.
    pub fn read_range(&self, from: usize, len: usize) -> Result<Bytes> {
        let from = from.min(self.len);
        let len = len.min(self.len - from);
        match &self.source {
            Source::Memory(bytes) => Ok(bytes.slice(from..from + len)),
            Source::File { file, position } => Ok(Bytes::from(pread_vec(
                file,
                &self.path,
                position + from as u64,
                len,
            )?)),
        }
    }
}

/// `len` bytes of `file` (at `path`) from `position`, in a new buffer. A blocking read
/// fills the buffer's spare capacity, so a multi-MiB read is not zeroed before the copy
/// overwrites it; under [`nonblocking::without_blocking`] it is a `preadv2(RWF_NOWAIT)`.
pub(super) fn pread_vec(
    file: &fs::File,
    path: &Path,
    position: u64,
    len: usize,
) -> Result<Vec<u8>> {
    if nonblocking::no_wait() {
        let mut buf = vec![0u8; len];
        nonblocking::pread_no_wait(file, path, position, &mut buf)?;
        return Ok(buf);
    }
    // `with_capacity` allocates exactly `len` for `u8`, so the reads stop at `len`.
    let mut buf = Vec::with_capacity(len);
    while buf.len() < len {
        let at = position + buf.len() as u64;
        match rustix::io::pread(file, rustix::buffer::spare_capacity(&mut buf), at) {
            Ok(0) => {
                return Err(StorageError::io(
                    IoOp::Read,
                    path,
                    io::ErrorKind::UnexpectedEof.into(),
                ));
            }
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(StorageError::io(IoOp::Read, path, e.into())),
        }
    }
    buf.truncate(len);
    Ok(buf)
}

//! Keeping file I/O off the async runtime's worker threads.
//!
//! - [`offload`] runs a blocking closure on the runtime's blocking pool and awaits it (the
//!   std backend's large writes, segment creation on a roll, reads that miss the page cache).
//!   Outside a runtime (tests, recovery, the sync thread) it runs the closure in place.
//! - [`without_blocking`] runs a read path on the calling thread with every `pread` issued as
//!   `preadv2(RWF_NOWAIT)`: page-cache hits are served in place (the common case: consumers
//!   read what was just written), and the first read that would wait for the disk makes the
//!   whole attempt report `None`, so the caller repeats it with [`offload`]. Reads are
//!   idempotent, so repeating one is harmless.
//! - [`cached`] asks the kernel (`cachestat(2)`, Linux 6.5) whether a file range is
//!   entirely in the page cache, so a `sendfile` of it will not wait for the disk.
//!
//! Writes have no non-blocking form worth using: ext4 refuses `pwritev2(RWF_NOWAIT)` on
//! buffered files (`EOPNOTSUPP`, measured on Linux 6.18), so small appends stay a page-cache
//! copy on the calling thread (see `RING_WRITE_MIN`) and large ones leave it.

use std::cell::Cell;
use std::fs;
use std::io;
use std::os::fd::AsRawFd;

use crate::error::{IoOp, StorageError};

/// How `pread`s on this thread behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadMode {
    /// Plain `pread`: may wait for the disk.
    Blocking,
    /// `preadv2(RWF_NOWAIT)`: served only from the page cache.
    NoWait,
    /// A no-wait read found data that is not cached; the attempt is void.
    WouldBlock,
}

thread_local! {
    static READ_MODE: Cell<ReadMode> = const { Cell::new(ReadMode::Blocking) };
}

/// Runs `f` with this thread's reads served only from the page cache. `None` if any read
/// would have waited for the disk (whatever `f` returned is then discarded: its reads failed
/// with `WouldBlock`).
pub fn without_blocking<T>(f: impl FnOnce() -> T) -> Option<T> {
    let previous = READ_MODE.replace(ReadMode::NoWait);
    let out = f();
    let mode = READ_MODE.replace(previous);
    (mode != ReadMode::WouldBlock).then_some(out)
}

/// Whether reads on this thread must not wait for the disk.
pub(super) fn no_wait() -> bool {
    READ_MODE.get() != ReadMode::Blocking
}

/// Fills `buf` from `position` with `preadv2(RWF_NOWAIT)`. A read that would wait for the
/// disk (or a file system without no-wait reads) voids the current [`without_blocking`]
/// attempt and fails with `WouldBlock`.
pub(super) fn pread_no_wait(
    file: &fs::File,
    path: &std::path::Path,
    position: u64,
    buf: &mut [u8],
) -> Result<(), StorageError> {
    use rustix::io::{Errno, ReadWriteFlags, preadv2};
    let mut done = 0;
    while done < buf.len() {
        let mut slices = [io::IoSliceMut::new(&mut buf[done..])];
        match preadv2(
            file,
            &mut slices,
            position + done as u64,
            ReadWriteFlags::NOWAIT,
        ) {
            Ok(0) => {
                return Err(StorageError::io(
                    IoOp::Read,
                    path,
                    io::ErrorKind::UnexpectedEof.into(),
                ));
            }
            Ok(n) => done += n,
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN | Errno::OPNOTSUPP | Errno::NOSYS) => {
                READ_MODE.set(ReadMode::WouldBlock);
                return Err(StorageError::io(
                    IoOp::Read,
                    path,
                    io::ErrorKind::WouldBlock.into(),
                ));
            }
            Err(e) => return Err(StorageError::io(IoOp::Read, path, e.into())),
        }
    }
    Ok(())
}

/// Runs `f` on the runtime's blocking pool and awaits it; in place when there is no runtime.
/// Fails only if the runtime shut down before running it.
pub async fn offload<T, E, F>(f: F) -> Result<T, E>
where
    T: Send + 'static,
    E: From<StorageError> + Send + 'static,
    F: FnOnce() -> Result<T, E> + Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => match runtime.spawn_blocking(f).await {
            Ok(out) => out,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(StorageError::io(
                IoOp::Write,
                std::path::Path::new(""),
                io::Error::other("the runtime shut down before a storage task ran"),
            )
            .into()),
        },
        Err(_) => f(),
    }
}

/// Whether `len` bytes of `file` from `position` are all in the page cache. `false` when the
/// kernel cannot tell (before Linux 6.5), so callers take the path that never blocks.
pub(super) fn cached(file: &fs::File, position: u64, len: usize) -> bool {
    if len == 0 {
        return true;
    }
    let page = 4096u64;
    let first = position / page;
    let last = (position + len as u64 - 1) / page;
    cachestat::cached_pages(file.as_raw_fd(), position, len as u64)
        .is_some_and(|pages| pages > last - first)
}

// `cachestat(2)` has no wrapper in rustix or libc yet; this is the one raw system call of the
// crate outside the io_uring driver.
#[allow(unsafe_code)]
mod cachestat {
    /// `cachestat` is 451 on every Linux architecture (the unified syscall table).
    const SYS_CACHESTAT: libc::c_long = 451;

    #[repr(C)]
    struct Range {
        off: u64,
        len: u64,
    }

    #[repr(C)]
    #[derive(Default)]
    struct Stat {
        nr_cache: u64,
        nr_dirty: u64,
        nr_writeback: u64,
        nr_evicted: u64,
        nr_recently_evicted: u64,
    }

    /// Pages of the range in the page cache; `None` if the kernel cannot say.
    pub(super) fn cached_pages(fd: libc::c_int, off: u64, len: u64) -> Option<u64> {
        let range = Range { off, len };
        let mut stat = Stat::default();
        // SAFETY: both pointers are to live, properly laid out `repr(C)` values that the
        // kernel reads (`range`) and writes (`stat`) only during the call; `fd` is an open
        // descriptor borrowed from the caller for the duration of the call.
        let rc = unsafe {
            libc::syscall(
                SYS_CACHESTAT,
                fd,
                &raw const range,
                &raw mut stat,
                0 as libc::c_uint,
            )
        };
        (rc == 0).then_some(stat.nr_cache)
    }
}

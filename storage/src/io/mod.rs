//! All file I/O of the storage crate goes through this module, behind one narrow interface
//! with two backends, so the rest of the crate never touches a file descriptor and tests can
//! inject faults at this edge.
//!
//! - [`Io`] is the backend handle a [`crate::LogManager`] is opened with: the portable std
//!   backend (`pwrite`/`pread`/`fdatasync` on the calling thread) or the io_uring backend
//!   ([`uring`]: one driver thread per handle owning one ring, batching the submissions of
//!   every partition, with a durable write submitted as a `WRITE` linked to an `FSYNC`).
//!   [`IoMode::Auto`] probes io_uring and falls back to std with a log line.
//! - [`File`] is an open file bound to its backend. The interface is positional: writes and
//!   reads name their file offset, so one handle is shared by one appender and many readers.
//!   Data-path operations go through the backend: writes of at least [`RING_WRITE_MIN`]
//!   bytes and writes linked to a sync (a smaller write is a page-cache copy cheaper than
//!   the hop to the driver thread, so both backends `pwrite` it on the calling thread),
//!   `fdatasync` of several files at once (a lone `fdatasync` runs on the calling thread: the kernel would run it on a
//!   blocking worker anyway, so the ring only adds two hand-offs), and reads of at least
//!   [`RING_READ_MIN`] bytes (smaller reads, batch headers and index probes, are page-cache
//!   hits where a hop to the driver thread costs more than the read, so both backends serve
//!   them with `pread` on the calling thread).
//!   Runtime tasks use the awaitable forms: [`File::write_owned_async`] (a large write's
//!   completion is a future; the std backend runs it on the blocking pool) and
//!   [`without_blocking`]/[`offload`] for reads ([`nonblocking`]).
//! - Namespace operations (open, create, rename, remove, list, lock, directory fsync) are
//!   plain std calls in both backends: they are rare and not on the produce or fetch path
//!   (a roll creates its segment through [`offload`]).
//!
//! Durability primitives: [`File::sync_data`] (`fdatasync`), [`File::write_and_sync_at`]
//! (write then `fdatasync`, linked on io_uring), [`sync_dir`] (fsync of a directory, needed
//! after creating, renaming or removing entries), and [`Io::write_atomic`] (write a temporary
//! file, sync it, rename it over the target, fsync the directory), which leaves either the old
//! or the new content after a crash, never a mix.
//!
//! `unsafe` is allowed only in this module: in [`uring`] (the kernel reads and writes caller
//! memory asynchronously there) and for the one raw `cachestat(2)` call in [`nonblocking`];
//! every block carries a `// SAFETY:` note.

#[cfg(any(test, feature = "faults"))]
pub mod faults;
// The workspace denies `unsafe_code`; io_uring needs it to hand the kernel pointers to
// buffers it uses after the call returns. The driver keeps ownership of those buffers until
// their completions arrive; each unsafe block states why it is sound.
mod nonblocking;
mod region;
mod removal;
#[allow(unsafe_code)]
mod uring;

/// io_uring operations submitted and not yet answered (0 on the std backend).
pub fn uring_in_flight() -> u64 {
    uring::URING_IN_FLIGHT.load(std::sync::atomic::Ordering::Relaxed)
}

pub use nonblocking::{offload, without_blocking};
pub use region::FileRegion;
use region::pread_vec;
pub use removal::{DoomedFile, shrink_or_remove};

use std::collections::VecDeque;
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use bytes::Bytes;

use crate::error::{IoOp, StorageError};

type Result<T> = std::result::Result<T, StorageError>;

/// Reads at least this long go through the backend (the ring); shorter ones are `pread`s.
pub const RING_READ_MIN: usize = 16 * 1024;

/// Writes (without a linked sync) at least this long go through the backend (the ring);
/// shorter ones are `pwrite`s on the calling thread, as on the std backend. A small write is
/// a copy into the page cache that takes a few microseconds; the hop to the driver thread and
/// back costs several times that (two context switches when the driver sleeps): measured with
/// 1 KiB single-record produce requests at 10,000/s, broker CPU per request fell from 33 us to
/// about 12 us (acks=1) when small writes stopped going through the ring.
pub const RING_WRITE_MIN: usize = 64 * 1024;

/// Which backend to use, as configured (`storage.io`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IoMode {
    /// io_uring if this kernel and sandbox allow it, std otherwise.
    #[default]
    Auto,
    /// io_uring; opening fails where it is unavailable.
    Uring,
    /// Portable std file I/O.
    Std,
}

impl FromStr for IoMode {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "auto" => Ok(IoMode::Auto),
            "uring" | "io_uring" => Ok(IoMode::Uring),
            "std" => Ok(IoMode::Std),
            other => Err(format!(
                "unknown storage I/O backend {other:?}: expected auto, uring or std"
            )),
        }
    }
}

impl fmt::Display for IoMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IoMode::Auto => "auto",
            IoMode::Uring => "uring",
            IoMode::Std => "std",
        })
    }
}

/// The backend actually running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoKind {
    /// Portable std file I/O.
    Std,
    /// io_uring with a driver thread.
    Uring,
}

#[derive(Debug)]
enum Backend {
    Std,
    Uring(uring::Driver),
}

/// A storage I/O backend. Cheap to clone; every clone shares the same driver, and the
/// io_uring driver thread stops when the last clone (and every file opened with it) is gone.
#[derive(Debug, Clone)]
pub struct Io {
    backend: Arc<Backend>,
    /// Handles of cold files (sealed, synced segments) kept open, closed beyond a limit.
    handles: Arc<HandleCache>,
    #[cfg(any(test, feature = "faults"))]
    faults: Option<Arc<faults::Faults>>,
}

/// Most handles of cold files one [`Io`] keeps open (three files per closed segment; the
/// active segments' files are always open). Reads of a closed cold file reopen it.
pub const COLD_HANDLE_LIMIT: usize = 512;

/// The open handles of cold files, oldest first; beyond the limit the oldest is closed (a
/// read or sync in flight keeps its own reference, so closing never breaks one).
#[derive(Debug)]
struct HandleCache {
    limit: usize,
    open: Mutex<VecDeque<Weak<HandleSlot>>>,
}

impl HandleCache {
    fn new(limit: usize) -> HandleCache {
        HandleCache {
            limit,
            open: Mutex::new(VecDeque::new()),
        }
    }

    /// A cold file's handle was (re)opened: remember it, and close the oldest beyond the
    /// limit.
    fn opened(&self, slot: &Arc<HandleSlot>) {
        let evicted: Vec<Arc<HandleSlot>> = {
            let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
            open.push_back(Arc::downgrade(slot));
            let mut evicted = Vec::new();
            while open.len() > self.limit {
                if let Some(old) = open.pop_front().and_then(|w| w.upgrade())
                    && !old.pinned.load(Ordering::Acquire)
                {
                    evicted.push(old);
                }
            }
            evicted
        };
        for slot in evicted {
            // Dropping the handle outside the cache lock: close() may take a moment.
            let handle = slot
                .handle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            drop(handle);
        }
    }

    fn count_open(&self) -> usize {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let mut seen = std::collections::HashSet::new();
        open.iter()
            .filter_map(Weak::upgrade)
            .filter(|slot| {
                seen.insert(Arc::as_ptr(slot))
                    && slot
                        .handle
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .is_some()
            })
            .count()
    }
}

/// A file's handle, which the [`HandleCache`] may close while the file is cold.
#[derive(Debug)]
struct HandleSlot {
    handle: Mutex<Option<Arc<fs::File>>>,
    cold: AtomicBool,
    /// Never closed by the cache ([`File::rename_pinned`]: its path no longer names it).
    pinned: AtomicBool,
}

impl Default for Io {
    fn default() -> Self {
        Io::std()
    }
}

impl Io {
    fn with_backend(backend: Backend) -> Io {
        Io {
            backend: Arc::new(backend),
            handles: Arc::new(HandleCache::new(COLD_HANDLE_LIMIT)),
            #[cfg(any(test, feature = "faults"))]
            faults: None,
        }
    }

    /// The portable std backend.
    pub fn std() -> Io {
        Io::with_backend(Backend::Std)
    }

    /// The io_uring backend: sets up a ring and starts its driver thread. Fails where
    /// io_uring is unavailable.
    pub fn uring() -> Result<Io> {
        let driver =
            uring::Driver::start().map_err(|e| StorageError::io(IoOp::Open, "io_uring", e))?;
        Ok(Io::with_backend(Backend::Uring(driver)))
    }

    /// The backend for a configured mode. `Auto` falls back to std, with a log line saying
    /// why, where io_uring cannot be set up.
    pub fn from_mode(mode: IoMode) -> Result<Io> {
        match mode {
            IoMode::Std => Ok(Io::std()),
            IoMode::Uring => Io::uring(),
            IoMode::Auto => match Io::uring() {
                Ok(io) => Ok(io),
                Err(error) => {
                    tracing::warn!(
                        error = %std::error::Error::source(&error).map_or_else(|| error.to_string(), ToString::to_string),
                        "io_uring is unavailable; storage falls back to std file I/O"
                    );
                    Ok(Io::std())
                }
            },
        }
    }

    /// Whether two handles share one backend (one driver).
    pub fn same_backend(&self, other: &Io) -> bool {
        Arc::ptr_eq(&self.backend, &other.backend)
    }

    /// Which backend runs.
    pub fn kind(&self) -> IoKind {
        match *self.backend {
            Backend::Std => IoKind::Std,
            Backend::Uring(_) => IoKind::Uring,
        }
    }

    /// This backend with a fault injector in front (tests).
    #[cfg(any(test, feature = "faults"))]
    pub fn with_faults(&self) -> (Io, Arc<faults::Faults>) {
        let faults = Arc::new(faults::Faults::modelling_crashes());
        let io = Io {
            backend: Arc::clone(&self.backend),
            handles: Arc::clone(&self.handles),
            faults: Some(Arc::clone(&faults)),
        };
        (io, faults)
    }

    /// This backend with a fault set in front (see [`faults::Faults::from_spec`]).
    #[cfg(any(test, feature = "faults"))]
    pub fn with_fault_set(&self, faults: Arc<faults::Faults>) -> Io {
        Io {
            backend: Arc::clone(&self.backend),
            handles: Arc::clone(&self.handles),
            faults: Some(faults),
        }
    }

    /// This backend with its own cold-handle cache of `limit` handles (tests).
    pub fn with_cold_handle_limit(&self, limit: usize) -> Io {
        Io {
            handles: Arc::new(HandleCache::new(limit)),
            ..self.clone()
        }
    }

    /// Handles of cold files open now.
    pub fn cold_handles_open(&self) -> usize {
        self.handles.count_open()
    }

    /// Replaces `path` with `contents` atomically and durably: writes `<path>.tmp` and
    /// fdatasyncs it (linked on io_uring), renames it over `path` and fsyncs the parent
    /// directory.
    pub fn write_atomic(&self, path: &Path, contents: &[u8]) -> Result<()> {
        let tmp = tmp_path(path);
        {
            let file = File::create(self, &tmp)?;
            file.set_len(0)?;
            file.write_and_sync_at(0, Bytes::copy_from_slice(contents))?;
        }
        rename(&tmp, path)?;
        if let Some(parent) = path.parent() {
            sync_dir(parent)?;
        }
        Ok(())
    }

    /// `fdatasync`s several files, on io_uring in one submission; the first error wins but
    /// every sync is waited for.
    pub fn sync_all(&self, files: &[&File]) -> Result<()> {
        self.sync_each(files).into_iter().collect()
    }

    /// `fdatasync`s several files (on io_uring in one submission) and reports each result.
    pub fn sync_each(&self, files: &[&File]) -> Vec<Result<()>> {
        #[cfg(any(test, feature = "faults"))]
        let before: Vec<_> = files.iter().map(|f| f.fault_snapshot()).collect();
        #[cfg(any(test, feature = "faults"))]
        if let Some(faults) = &self.faults {
            faults.count_sync_batch();
        }
        let results: Vec<Result<()>> = match &*self.backend {
            // io_uring runs fdatasync on a kernel worker thread (it blocks; there is no
            // async fsync in the kernel), so for one file the two hand-offs to the driver and
            // the worker only add latency: sync on the calling thread. The file's writes have
            // all completed (writes return after their completion), so the sync covers them.
            // Several files go to io_uring together, where their syncs run in parallel.
            Backend::Uring(driver) if files.len() > 1 => {
                let handles: Vec<Result<Arc<fs::File>>> =
                    files.iter().map(|f| f.handle()).collect();
                let ops = handles
                    .iter()
                    .filter_map(|h| h.as_ref().ok())
                    .map(|h| uring::Op::Sync {
                        file: Arc::clone(h),
                    })
                    .collect();
                // One outcome per file whose handle could be had, in order.
                let mut outcomes = driver.run_all(ops).into_iter();
                files
                    .iter()
                    .zip(handles)
                    .map(|(file, handle)| {
                        handle?;
                        let outcome = outcomes.next().ok_or_else(|| {
                            StorageError::io(
                                IoOp::Sync,
                                &file.path,
                                io::Error::other("io_uring returned too few completions"),
                            )
                        })?;
                        file.check_sync_fault()?;
                        outcome
                            .map(|_| ())
                            .map_err(|(op, e)| StorageError::io(op, &file.path, e))
                    })
                    .collect()
            }
            Backend::Std | Backend::Uring(_) => files
                .iter()
                .map(|file| {
                    file.check_sync_fault()?;
                    file.handle()?
                        .sync_data()
                        .map_err(|e| StorageError::io(IoOp::Sync, &file.path, e))
                })
                .collect(),
        };
        #[cfg(any(test, feature = "faults"))]
        for ((file, snapshot), result) in files.iter().zip(before).zip(&results) {
            if result.is_ok() {
                file.fault_synced(snapshot);
            }
        }
        results
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(TMP_SUFFIX);
    PathBuf::from(tmp)
}

/// A file, readable and writable at explicit positions, bound to its backend. Open until
/// it is made cold ([`File::make_cold`]); then the backend's handle cache may close it while
/// idle, and the next operation reopens it.
#[derive(Debug)]
pub struct File {
    slot: Arc<HandleSlot>,
    path: PathBuf,
    io: Io,
}

impl File {
    fn open_with(io: &Io, path: &Path, create: bool) -> Result<File> {
        #[cfg(any(test, feature = "faults"))]
        let existed = exists(path);
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(path)
            .map_err(|e| StorageError::io(IoOp::Open, path, e))?;
        #[cfg(any(test, feature = "faults"))]
        if let Some(faults) = &io.faults {
            faults.opened(path, existed);
        }
        Ok(File {
            slot: Arc::new(HandleSlot {
                handle: Mutex::new(Some(Arc::new(file))),
                cold: AtomicBool::new(false),
                pinned: AtomicBool::new(false),
            }),
            path: path.to_owned(),
            io: io.clone(),
        })
    }

    /// The open handle, reopening a cold file the cache closed.
    fn handle(&self) -> Result<Arc<fs::File>> {
        let mut slot = self
            .slot
            .handle
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(handle) = slot.as_ref() {
            return Ok(Arc::clone(handle));
        }
        let handle = Arc::new(
            fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&self.path)
                .map_err(|e| StorageError::io(IoOp::Open, &self.path, e))?,
        );
        *slot = Some(Arc::clone(&handle));
        drop(slot);
        self.io.handles.opened(&self.slot);
        Ok(handle)
    }

    /// A byte range of this file for [`FileRegion::send_to`]: the region keeps the file
    /// open (its handle, reopened if it was cold) until it is dropped.
    pub fn region(&self, position: u64, len: usize) -> Result<FileRegion> {
        Ok(FileRegion::in_file(
            self.handle()?,
            position,
            self.path.clone(),
            len,
        ))
    }

    /// Marks the file cold: sealed and synced, so nothing unsynced can be lost with its
    /// handle (a write error is reported to the descriptors open when it happens). From now
    /// on the backend's cache may close the handle while it is idle.
    pub fn make_cold(&self) {
        if self.slot.cold.swap(true, Ordering::AcqRel) {
            return;
        }
        let open = self
            .slot
            .handle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some();
        if open {
            self.io.handles.opened(&self.slot);
        }
    }

    /// Opens an existing file for reading and writing.
    pub fn open(io: &Io, path: &Path) -> Result<File> {
        File::open_with(io, path, false)
    }

    /// Opens a file for reading and writing, creating it empty if it does not exist.
    pub fn create(io: &Io, path: &Path) -> Result<File> {
        File::open_with(io, path, true)
    }

    /// The path the file was opened with.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the file to `to` while keeping it readable through this handle: its
    /// descriptor is opened (if the cache had closed it) and pinned, so that nothing ever
    /// reopens it by its old path. For deleting a segment that readers may still hold.
    pub fn rename_pinned(&self, to: &Path) -> Result<DoomedFile> {
        self.slot.pinned.store(true, Ordering::Release);
        let handle = self.handle()?;
        rename(&self.path, to)?;
        Ok(DoomedFile::new(to.to_path_buf(), Arc::downgrade(&handle)))
    }

    /// Last modification time of the file, in ms since the Unix epoch.
    pub fn modified_ms(&self) -> Result<i64> {
        let modified = self
            .handle()?
            .metadata()
            .and_then(|m| m.modified())
            .map_err(|e| StorageError::io(IoOp::Metadata, &self.path, e))?;
        Ok(modified
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
    }

    /// Current length of the file.
    pub fn size(&self) -> Result<u64> {
        self.handle()?
            .metadata()
            .map(|m| m.len())
            .map_err(|e| StorageError::io(IoOp::Metadata, &self.path, e))
    }

    /// Writes all of `buf` at `position` (to the page cache; see [`File::sync_data`]).
    pub fn write_at(&self, position: u64, buf: &[u8]) -> Result<()> {
        match &*self.io.backend {
            Backend::Std => {
                self.fault_written();
                self.pwrite(position, buf)
            }
            Backend::Uring(_) if buf.len() < RING_WRITE_MIN => {
                self.check_write_fault(position, buf)?;
                self.fault_written();
                self.pwrite(position, buf)
            }
            Backend::Uring(_) => self.write_bytes(position, Bytes::copy_from_slice(buf), false),
        }
    }

    /// Writes all of `buf` at `position`, handing the buffer itself to the backend (no copy).
    pub fn write_owned_at(&self, position: u64, buf: Bytes) -> Result<()> {
        self.write_bytes(position, buf, false)
    }

    /// Whether a write of `len` bytes is a page-cache copy done on the calling thread by
    /// [`File::write_owned_at`] (both backends; see [`RING_WRITE_MIN`]). Larger writes belong
    /// on [`File::write_owned_async`] when the caller is a runtime task.
    pub fn writes_in_place(len: usize) -> bool {
        len < RING_WRITE_MIN
    }

    /// Writes all of `buf` at `position` without blocking the calling task's thread: through
    /// the ring on io_uring (the future resolves with the completion), on the runtime's
    /// blocking pool on std. A write that [`File::writes_in_place`] is done in place.
    pub async fn write_owned_async(self: &Arc<Self>, position: u64, buf: Bytes) -> Result<()> {
        if File::writes_in_place(buf.len()) {
            return self.write_owned_at(position, buf);
        }
        self.check_write_fault(position, &buf)?;
        self.fault_written();
        match &*self.io.backend {
            Backend::Std => {
                let file = Arc::clone(self);
                offload(move || file.pwrite(position, &buf)).await
            }
            Backend::Uring(driver) => driver
                .run_async(uring::Op::Write {
                    file: self.handle()?,
                    offset: position,
                    buf,
                    sync: false,
                })
                .await
                .map(drop)
                .map_err(|(op, e)| StorageError::io(op, &self.path, e)),
        }
    }

    /// Writes all of `buf` at `position` and then `fdatasync`s the file; on io_uring the two
    /// are linked in one submission. Durable when this returns `Ok`.
    pub fn write_and_sync_at(&self, position: u64, buf: Bytes) -> Result<()> {
        self.write_bytes(position, buf, true)
    }

    fn write_bytes(&self, position: u64, buf: Bytes, sync: bool) -> Result<()> {
        self.check_write_fault(position, &buf)?;
        self.fault_written();
        if sync {
            self.check_sync_fault()?;
        }
        match &*self.io.backend {
            Backend::Uring(_) if !sync && buf.len() < RING_WRITE_MIN => self.pwrite(position, &buf),
            Backend::Std => {
                self.pwrite(position, &buf)?;
                if sync {
                    #[cfg(any(test, feature = "faults"))]
                    let before = self.fault_snapshot();
                    self.handle()?
                        .sync_data()
                        .map_err(|e| StorageError::io(IoOp::Sync, &self.path, e))?;
                    #[cfg(any(test, feature = "faults"))]
                    self.fault_synced(before);
                }
                Ok(())
            }
            Backend::Uring(driver) => {
                #[cfg(any(test, feature = "faults"))]
                let before = sync.then(|| self.fault_snapshot_after(position, &buf));
                driver
                    .run(uring::Op::Write {
                        file: self.handle()?,
                        offset: position,
                        buf,
                        sync,
                    })
                    .map_err(|(op, e)| StorageError::io(op, &self.path, e))?;
                #[cfg(any(test, feature = "faults"))]
                if let Some(before) = before {
                    self.fault_synced(before);
                }
                Ok(())
            }
        }
    }

    /// `pwrite` of all of `buf` at `position` on the calling thread.
    fn pwrite(&self, position: u64, buf: &[u8]) -> Result<()> {
        self.handle()?
            .write_all_at(buf, position)
            .map_err(|e| StorageError::io(IoOp::Write, &self.path, e))
    }

    /// Fills `buf` from `position` with `pread` on the calling thread (both backends: used
    /// for small reads); reading past the end of the file is an error. Inside
    /// [`without_blocking`], served only from the page cache.
    pub fn read_exact_at(&self, position: u64, buf: &mut [u8]) -> Result<()> {
        let handle = self.handle()?;
        if nonblocking::no_wait() {
            return nonblocking::pread_no_wait(&handle, &self.path, position, buf);
        }
        handle
            .read_exact_at(buf, position)
            .map_err(|e| StorageError::io(IoOp::Read, &self.path, e))
    }

    /// Reads `len` bytes from `position` into a new buffer with `pread` on the calling
    /// thread (a blocking-pool thread), never through the ring: for bulk background reads
    /// (tiered-storage uploads), which would otherwise hold the ring's thread with
    /// multi-MiB copies while the log's writes and syncs queue behind them.
    pub fn read_vec_here(&self, position: u64, len: usize) -> Result<Vec<u8>> {
        pread_vec(&*self.handle()?, &self.path, position, len)
    }

    /// Reads `len` bytes from `position` into a new buffer (through the ring on io_uring when
    /// `len >= RING_READ_MIN`); the buffer is the caller's, no further copy is needed.
    pub fn read_vec(&self, position: u64, len: usize) -> Result<Vec<u8>> {
        match &*self.io.backend {
            Backend::Uring(driver) if len >= RING_READ_MIN && !nonblocking::no_wait() => {
                match driver.run(uring::Op::Read {
                    file: self.handle()?,
                    offset: position,
                    len,
                }) {
                    Ok(Some(buf)) => Ok(buf),
                    Ok(None) => Err(StorageError::io(
                        IoOp::Read,
                        &self.path,
                        io::Error::other("io_uring read returned no buffer"),
                    )),
                    Err((op, e)) => Err(StorageError::io(op, &self.path, e)),
                }
            }
            _ => self.read_vec_here(position, len),
        }
    }

    /// `fdatasync`: everything written so far is on stable storage when this returns `Ok`.
    pub fn sync_data(&self) -> Result<()> {
        self.io.sync_all(&[self])
    }

    /// Truncates or extends the file to `len` bytes.
    pub fn set_len(&self, len: u64) -> Result<()> {
        self.fault_written();
        self.handle()?
            .set_len(len)
            .map_err(|e| StorageError::io(IoOp::Truncate, &self.path, e))
    }

    fn fault_written(&self) {
        #[cfg(any(test, feature = "faults"))]
        if let Some(faults) = &self.io.faults {
            faults.written(&self.path);
        }
    }

    fn check_write_fault(&self, position: u64, buf: &[u8]) -> Result<()> {
        #[cfg(any(test, feature = "faults"))]
        if let Some(faults) = &self.io.faults
            && let Some(written) = faults.write_fault(&self.path, buf.len())
        {
            if written > 0 {
                self.pwrite(position, &buf[..written])?;
            }
            return Err(StorageError::io(
                IoOp::Write,
                &self.path,
                io::Error::from(io::ErrorKind::StorageFull),
            ));
        }
        #[cfg(not(any(test, feature = "faults")))]
        let _ = (position, buf);
        Ok(())
    }

    fn check_sync_fault(&self) -> Result<()> {
        #[cfg(any(test, feature = "faults"))]
        if let Some(faults) = &self.io.faults
            && faults.sync_fault(&self.path)
        {
            return Err(StorageError::io(
                IoOp::Sync,
                &self.path,
                io::Error::other("injected fdatasync failure"),
            ));
        }
        Ok(())
    }

    /// What a sync starting now makes durable (the model reads the file before the sync, so
    /// a concurrent later write is never counted as durable).
    #[cfg(any(test, feature = "faults"))]
    fn fault_snapshot(&self) -> Option<Vec<u8>> {
        self.io
            .faults
            .as_ref()
            .filter(|f| f.models_crashes())
            .map(|_| fs::read(&self.path).unwrap_or_default())
    }

    /// Like [`File::fault_snapshot`], for a write-and-sync whose write has not happened yet.
    #[cfg(any(test, feature = "faults"))]
    fn fault_snapshot_after(&self, position: u64, buf: &[u8]) -> Option<Vec<u8>> {
        let mut bytes = self.fault_snapshot()?;
        let start = usize::try_from(position).unwrap_or(usize::MAX);
        if bytes.len() < start + buf.len() {
            bytes.resize(start + buf.len(), 0);
        }
        bytes[start..start + buf.len()].copy_from_slice(buf);
        Some(bytes)
    }

    #[cfg(any(test, feature = "faults"))]
    fn fault_synced(&self, snapshot: Option<Vec<u8>>) {
        if let (Some(faults), Some(snapshot)) = (&self.io.faults, snapshot) {
            faults.synced(&self.path, snapshot);
        }
    }
}

/// The fault set the free functions (rename, directory fsync) consult; installed once.
#[cfg(any(test, feature = "faults"))]
static PROCESS_FAULTS: std::sync::OnceLock<Arc<faults::Faults>> = std::sync::OnceLock::new();

/// Makes `faults` the process-wide set for operations without a handle (rename, directory
/// fsync). Only the first call counts.
#[cfg(any(test, feature = "faults"))]
pub fn install_process_faults(faults: Arc<faults::Faults>) {
    let _ = PROCESS_FAULTS.set(faults);
}

/// Creates a directory and its parents.
pub fn create_dir_all(path: &Path) -> Result<()> {
    fs::create_dir_all(path).map_err(|e| StorageError::io(IoOp::CreateDir, path, e))
}

/// fsyncs a directory, making creations, renames and removals of its entries durable.
pub fn sync_dir(path: &Path) -> Result<()> {
    #[cfg(any(test, feature = "faults"))]
    if PROCESS_FAULTS.get().is_some_and(|f| f.dir_sync_fails(path)) {
        return Err(StorageError::io(
            IoOp::Sync,
            path,
            io::Error::other("injected directory fsync failure"),
        ));
    }
    let dir = fs::File::open(path).map_err(|e| StorageError::io(IoOp::Open, path, e))?;
    dir.sync_all()
        .map_err(|e| StorageError::io(IoOp::Sync, path, e))
}

/// One directory entry.
#[derive(Debug, Clone)]
pub struct DirEntry {
    /// File name (entries whose names are not UTF-8 are skipped).
    pub name: String,
    /// Full path.
    pub path: PathBuf,
    /// Whether the entry is a directory.
    pub is_dir: bool,
}

/// Lists a directory, sorted by name.
pub fn list_dir(path: &Path) -> Result<Vec<DirEntry>> {
    let read = fs::read_dir(path).map_err(|e| StorageError::io(IoOp::ListDir, path, e))?;
    let mut out = Vec::new();
    for entry in read {
        let entry = entry.map_err(|e| StorageError::io(IoOp::ListDir, path, e))?;
        let file_type = entry
            .file_type()
            .map_err(|e| StorageError::io(IoOp::Metadata, entry.path(), e))?;
        if let Ok(name) = entry.file_name().into_string() {
            out.push(DirEntry {
                name,
                path: entry.path(),
                is_dir: file_type.is_dir(),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Whether a path exists (errors other than "not found" count as existing, so callers
/// go on to fail with a proper error when they touch it).
pub fn exists(path: &Path) -> bool {
    !matches!(fs::symlink_metadata(path), Err(e) if e.kind() == io::ErrorKind::NotFound)
}

/// Removes a file; a file that is already gone is not an error.
pub fn remove_file(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(StorageError::io(IoOp::Remove, path, e))
        }
        _ => Ok(()),
    }
}

/// Removes a directory tree; a directory that is already gone is not an error.
pub fn remove_dir_all(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(StorageError::io(IoOp::Remove, path, e))
        }
        _ => Ok(()),
    }
}

/// Renames `from` to `to` (not durable until the parent directory is synced).
pub fn rename(from: &Path, to: &Path) -> Result<()> {
    #[cfg(any(test, feature = "faults"))]
    if PROCESS_FAULTS.get().is_some_and(|f| f.rename_fails(from)) {
        return Err(StorageError::io(
            IoOp::Rename,
            from,
            io::Error::other("injected rename failure"),
        ));
    }
    fs::rename(from, to).map_err(|e| StorageError::io(IoOp::Rename, from, e))
}

/// Reads a whole small file; `Ok(None)` if it does not exist.
pub fn read_file(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StorageError::io(IoOp::Read, path, e)),
    }
}

/// Suffix of temporary files written by [`Io::write_atomic`]; recovery deletes leftovers.
pub const TMP_SUFFIX: &str = ".tmp";

/// [`Io::write_atomic`] with the std backend, for callers outside the log (metadata files).
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    Io::std().write_atomic(path, contents)
}

/// Writes an empty marker file durably (used for the clean-shutdown marker).
pub fn create_marker(path: &Path) -> Result<()> {
    write_atomic(path, &[])
}

/// An exclusive advisory lock on a file, held until dropped.
#[derive(Debug)]
pub struct DirLock {
    _file: fs::File,
    path: PathBuf,
}

impl DirLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Takes an exclusive lock on `path` (created if missing) without waiting; fails with
/// [`StorageError::DirLocked`] if another process holds it.
pub fn lock_exclusive(path: &Path) -> Result<DirLock> {
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| StorageError::io(IoOp::Open, path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(DirLock {
            _file: file,
            path: path.to_owned(),
        }),
        Err(fs::TryLockError::WouldBlock) => Err(StorageError::DirLocked {
            path: path.to_owned(),
        }),
        Err(fs::TryLockError::Error(e)) => Err(StorageError::io(IoOp::Lock, path, e)),
    }
}

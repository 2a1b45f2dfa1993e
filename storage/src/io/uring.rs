//! The io_uring backend: one driver thread owns one ring and serves every file of a
//! [`super::Io`] handle (all partitions of a data directory).
//!
//! Callers hand the driver an [`Op`] over a channel with a one-shot reply: threads that may
//! block wait on it ([`Driver::run`]), runtime tasks await it ([`Driver::run_async`]). The driver
//! loop takes everything queued, pushes it to the submission queue, submits it with one
//! `io_uring_enter`, and reaps completions, so appends and syncs of many partitions that
//! arrive together share system calls. A write that asks for durability is pushed as a
//! `WRITE` linked (`IOSQE_IO_LINK`) to an `FSYNC(DATASYNC)`: the kernel starts the sync only
//! after the write succeeded, and one submission covers both.
//!
//! A sleeping driver waits in `io_uring_enter` for at least one completion; a `READ` on a
//! pipe is always armed so that a caller can wake it by writing one byte (at most one byte per
//! sleep, guarded by a flag).
//!
//! Memory safety: the kernel reads write buffers and fills read buffers after submission,
//! until the completion arrives. The driver therefore owns every buffer (and an `Arc` of the
//! file, so the descriptor stays open) in its in-flight table from the push of the SQE until
//! the last completion of that operation has been reaped. If the table is dropped with
//! operations still in flight (only on a panic of the driver), their buffers are leaked rather
//! than freed.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write as _};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;

use bytes::Bytes;
use io_uring::{IoUring, opcode, squeue, types};

use crate::error::IoOp;

/// Submission queue entries. Completions beyond the completion queue are buffered by the
/// kernel (`IORING_FEAT_NODROP`, Linux 5.5+), so this bounds a batch, not the load.
const RING_ENTRIES: u32 = 256;
/// `user_data` of the wake-up read on the pipe.
const WAKE: u64 = u64::MAX;
// Linux errno values (io_uring is Linux-only).
const EINTR: i32 = 4;
const EBUSY: i32 = 16;
const ECANCELED: i32 = 125;

/// One file operation for the driver.
#[derive(Debug)]
pub(super) enum Op {
    /// Write all of `buf` at `offset`; then, if `sync`, `fdatasync` the file (linked).
    Write {
        file: Arc<fs::File>,
        offset: u64,
        buf: Bytes,
        sync: bool,
    },
    /// Read exactly `len` bytes at `offset` into a new buffer.
    Read {
        file: Arc<fs::File>,
        offset: u64,
        len: usize,
    },
    /// `fdatasync` the file.
    Sync { file: Arc<fs::File> },
}

/// What an operation produced: the buffer of a read, nothing otherwise, or which step failed.
pub(super) type Outcome = Result<Option<Vec<u8>>, (IoOp, io::Error)>;

struct Request {
    op: Op,
    reply: Reply,
}

/// Where an operation's outcome goes: a thread blocked on it, or a task awaiting it.
enum Reply {
    Blocking(mpsc::SyncSender<Outcome>),
    Async(tokio::sync::oneshot::Sender<Outcome>),
}

impl Reply {
    fn send(self, outcome: Outcome) {
        // The caller may have gone away (a task dropped while awaiting); nothing to do then.
        match self {
            Reply::Blocking(tx) => {
                let _ = tx.send(outcome);
            }
            Reply::Async(tx) => {
                let _ = tx.send(outcome);
            }
        }
    }
}

/// Wakes the driver out of `io_uring_enter`.
#[derive(Debug)]
struct Waker {
    /// A byte was written and its read has not completed yet.
    pending: AtomicBool,
    pipe: io::PipeWriter,
}

impl Waker {
    fn wake(&self) {
        if !self.pending.swap(true, Ordering::SeqCst) {
            self.poke();
        }
    }

    fn poke(&self) {
        // A failed wake-up write can only mean the driver is gone (its read end closed); the
        // caller then sees its reply channel closed and reports that as an I/O error.
        if let Err(error) = (&self.pipe).write(&[1]) {
            tracing::error!(%error, "failed to wake the io_uring driver");
        }
    }
}

/// Handle to the driver thread. Dropping it lets the thread finish what is in flight and
/// exit, and waits for that.
#[derive(Debug)]
pub(super) struct Driver {
    tx: Option<mpsc::Sender<Request>>,
    waker: Arc<Waker>,
    thread: Option<thread::JoinHandle<()>>,
}

fn stopped() -> (IoOp, io::Error) {
    (IoOp::Write, io::Error::other("io_uring driver stopped"))
}

impl Driver {
    /// Sets up a ring, checks that the kernel supports the opcodes used, and starts the
    /// driver thread. Fails where io_uring is unavailable (old kernel, seccomp, sysctl).
    pub(super) fn start() -> io::Result<Driver> {
        let ring = IoUring::new(RING_ENTRIES)?;
        let mut probe = io_uring::Probe::new();
        ring.submitter().register_probe(&mut probe)?;
        for (code, name) in [
            (opcode::Write::CODE, "WRITE"),
            (opcode::Read::CODE, "READ"),
            (opcode::Fsync::CODE, "FSYNC"),
        ] {
            if !probe.is_supported(code) {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("io_uring opcode {name} is not supported by this kernel"),
                ));
            }
        }
        let (reader, writer) = io::pipe()?;
        let (tx, rx) = mpsc::channel();
        let waker = Arc::new(Waker {
            pending: AtomicBool::new(false),
            pipe: writer,
        });
        let thread = {
            let waker = Arc::clone(&waker);
            thread::Builder::new()
                .name("floe-io-uring".into())
                .spawn(move || DriverLoop::new(ring, reader, waker).run(&rx))?
        };
        Ok(Driver {
            tx: Some(tx),
            waker,
            thread: Some(thread),
        })
    }

    /// Queues one request (the caller wakes the driver). A send error means the driver
    /// exited; the reply channel is then closed too (its sender was dropped with the
    /// request), which the waiting side reports.
    fn queue(&self, op: Op, reply: Reply) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Request { op, reply });
        }
    }

    /// Queues `ops` (submitted together) and returns one reply receiver per op.
    fn send(&self, ops: Vec<Op>) -> Vec<mpsc::Receiver<Outcome>> {
        let mut replies = Vec::with_capacity(ops.len());
        for op in ops {
            let (reply, rx) = mpsc::sync_channel(1);
            self.queue(op, Reply::Blocking(reply));
            replies.push(rx);
        }
        self.waker.wake();
        replies
    }

    /// Runs one operation; the future resolves with its completion (nothing blocks while
    /// the kernel works). Dropping the future does not cancel the operation.
    pub(super) fn run_async(&self, op: Op) -> impl Future<Output = Outcome> + Send + 'static {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.queue(op, Reply::Async(reply));
        self.waker.wake();
        async move { rx.await.unwrap_or_else(|_| Err(stopped())) }
    }

    /// Runs one operation and waits for it.
    pub(super) fn run(&self, op: Op) -> Outcome {
        self.run_all(vec![op])
            .pop()
            .unwrap_or_else(|| Err(stopped()))
    }

    /// Runs several operations in one batch and waits for all of them.
    pub(super) fn run_all(&self, ops: Vec<Op>) -> Vec<Outcome> {
        self.send(ops)
            .into_iter()
            .map(|rx| rx.recv().unwrap_or_else(|_| Err(stopped())))
            .collect()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Closing the channel tells the loop to stop once nothing is in flight; the extra
        // byte completes its armed pipe read so it looks.
        drop(self.tx.take());
        self.waker.poke();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("io_uring driver thread panicked");
        }
    }
}

/// One submitted operation, owned by the driver until its last completion is reaped.
struct InFlight {
    op: Op,
    reply: Reply,
    /// Bytes written or read so far (short transfers are resubmitted for the rest).
    done: usize,
    /// Destination of a read; its spare capacity is what the kernel fills.
    read_buf: Vec<u8>,
    /// A requested sync has not succeeded yet.
    need_sync: bool,
    /// Completions still expected for the current submission.
    cqes_pending: u8,
    error: Option<(IoOp, io::Error)>,
}

/// Operations submitted to io_uring and not yet answered, over every ring of the process
/// (one per backend; a broker has one): read by `/metrics`.
pub static URING_IN_FLIGHT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The in-flight table. Buffers in it may still be in use by the kernel.
struct Table(HashMap<u64, InFlight>);

impl Drop for Table {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            // Only reached when the driver unwinds with operations in flight: the kernel may
            // still write into these buffers, so they must never be freed.
            tracing::error!(
                in_flight = self.0.len(),
                "io_uring driver stopping with operations in flight; leaking their buffers"
            );
            for (_, op) in self.0.drain() {
                std::mem::forget(op);
            }
        }
    }
}

struct DriverLoop {
    ring: IoUring,
    table: Table,
    next_id: u64,
    wake_reader: io::PipeReader,
    /// Destination of the armed wake-up read; boxed so its address is stable.
    wake_buf: Box<[u8; 64]>,
    wake_armed: bool,
    waker: Arc<Waker>,
    closing: bool,
}

impl DriverLoop {
    fn new(ring: IoUring, wake_reader: io::PipeReader, waker: Arc<Waker>) -> DriverLoop {
        DriverLoop {
            ring,
            table: Table(HashMap::new()),
            next_id: 0,
            wake_reader,
            wake_buf: Box::new([0; 64]),
            wake_armed: false,
            waker,
            closing: false,
        }
    }

    fn run(mut self, rx: &mpsc::Receiver<Request>) {
        loop {
            loop {
                match rx.try_recv() {
                    Ok(request) => self.start(request),
                    Err(mpsc::TryRecvError::Empty) => break,
                    Err(mpsc::TryRecvError::Disconnected) => {
                        self.closing = true;
                        break;
                    }
                }
            }
            if !self.closing && !self.wake_armed {
                self.arm_wake();
            }
            if self.closing && self.table.0.is_empty() && !self.wake_armed {
                break;
            }
            URING_IN_FLIGHT.store(self.table.0.len() as u64, Ordering::Relaxed);
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(EINTR) => {}
                // The completion queue is full: reap below, then enter again.
                Err(e) if e.raw_os_error() == Some(EBUSY) => {}
                Err(error) => {
                    // Nothing submitted is lost (the kernel still owns it); retry after a
                    // pause rather than spin.
                    tracing::error!(%error, "io_uring_enter failed; retrying");
                    thread::sleep(std::time::Duration::from_millis(1));
                }
            }
            let completed: Vec<(u64, i32)> = self
                .ring
                .completion()
                .map(|cqe| (cqe.user_data(), cqe.result()))
                .collect();
            for (user_data, result) in completed {
                self.complete(user_data, result);
            }
        }
    }

    /// Pushes entries, submitting first if the queue lacks room for all of them (linked
    /// entries must be pushed together).
    ///
    /// # Safety
    /// Every buffer an entry points to must stay valid and unmoved until its completion is
    /// reaped.
    unsafe fn push(&mut self, entries: &[squeue::Entry]) -> io::Result<()> {
        let room = {
            let sq = self.ring.submission();
            sq.capacity() - sq.len()
        };
        if room < entries.len() {
            self.ring.submit()?;
        }
        // SAFETY: the caller guarantees every buffer the entries point to stays valid and
        // unmoved until their completions are reaped.
        unsafe { self.ring.submission().push_multiple(entries) }
            .map_err(|_| io::Error::other("io_uring submission queue full"))
    }

    fn arm_wake(&mut self) {
        let entry = opcode::Read::new(
            types::Fd(self.wake_reader.as_raw_fd()),
            self.wake_buf.as_mut_ptr(),
            self.wake_buf.len() as u32,
        )
        .build()
        .user_data(WAKE);
        // SAFETY: `wake_buf` is a heap allocation owned by this loop, which never frees it
        // while `wake_armed` (the loop only exits when the read has completed), and the pipe
        // reader it reads from lives as long as the loop.
        match unsafe { self.push(&[entry]) } {
            Ok(()) => self.wake_armed = true,
            Err(error) => tracing::error!(%error, "failed to arm the io_uring wake-up read"),
        }
    }

    fn start(&mut self, request: Request) {
        let Request { op, reply } = request;
        let (need_sync, read_buf) = match &op {
            Op::Write { sync, .. } => (*sync, Vec::new()),
            Op::Read { len, .. } => (false, Vec::with_capacity(*len)),
            Op::Sync { .. } => (true, Vec::new()),
        };
        let id = self.next_id;
        self.next_id += 1;
        let flight = InFlight {
            op,
            reply,
            done: 0,
            read_buf,
            need_sync,
            cqes_pending: 0,
            error: None,
        };
        self.submit(id, flight);
    }

    /// Pushes what remains of `flight` (the rest of a transfer, a sync), or answers it if
    /// nothing remains.
    fn submit(&mut self, id: u64, mut flight: InFlight) {
        let main = id << 1;
        let sync_entry = |fd: i32| {
            opcode::Fsync::new(types::Fd(fd))
                .flags(types::FsyncFlags::DATASYNC)
                .build()
                .user_data(main | 1)
        };
        let mut entries: Vec<squeue::Entry> = Vec::with_capacity(2);
        match &mut flight.op {
            Op::Write {
                file, offset, buf, ..
            } => {
                let fd = file.as_raw_fd();
                let rest = &buf[flight.done..];
                if !rest.is_empty() {
                    let len = u32::try_from(rest.len()).unwrap_or(u32::MAX);
                    let write = opcode::Write::new(types::Fd(fd), rest.as_ptr(), len)
                        .offset(*offset + flight.done as u64)
                        .build()
                        .user_data(main);
                    entries.push(if flight.need_sync {
                        write.flags(squeue::Flags::IO_LINK)
                    } else {
                        write
                    });
                }
                if flight.need_sync {
                    entries.push(sync_entry(fd));
                }
            }
            Op::Read { file, offset, len } => {
                let rest = *len - flight.done;
                if rest > 0 {
                    let fd = file.as_raw_fd();
                    let spare = flight.read_buf.spare_capacity_mut();
                    let n = u32::try_from(rest.min(spare.len())).unwrap_or(u32::MAX);
                    entries.push(
                        opcode::Read::new(types::Fd(fd), spare.as_mut_ptr().cast::<u8>(), n)
                            .offset(*offset + flight.done as u64)
                            .build()
                            .user_data(main),
                    );
                }
            }
            Op::Sync { file } => {
                if flight.need_sync {
                    entries.push(sync_entry(file.as_raw_fd()));
                }
            }
        }
        if entries.is_empty() {
            return Self::answer(flight);
        }
        // SAFETY: the write buffer (`Bytes`, whose heap data never moves), the read buffer's
        // spare capacity (a `Vec` that is not resized while in flight) and the file (an `Arc`
        // keeping the descriptor open) are all owned by `flight`, which goes into the
        // in-flight table below and leaves it only when every completion of these entries has
        // been reaped (`cqes_pending` reaches zero in `complete`).
        match unsafe { self.push(&entries) } {
            Ok(()) => {
                flight.cqes_pending = entries.len() as u8;
                self.table.0.insert(id, flight);
            }
            Err(error) => {
                let op = match flight.op {
                    Op::Read { .. } => IoOp::Read,
                    _ => IoOp::Write,
                };
                flight.error = Some((op, error));
                Self::answer(flight);
            }
        }
    }

    fn complete(&mut self, user_data: u64, result: i32) {
        if user_data == WAKE {
            self.wake_armed = false;
            match result {
                // Cleared before the loop drains the channel, so a request queued after the
                // drain wakes the next sleep.
                n if n > 0 => self.waker.pending.store(false, Ordering::SeqCst),
                0 => self.closing = true,
                error => {
                    tracing::error!(error, "io_uring wake-up read failed");
                    self.waker.pending.store(false, Ordering::SeqCst);
                }
            }
            return;
        }
        let id = user_data >> 1;
        let is_sync = user_data & 1 == 1;
        let Some(flight) = self.table.0.get_mut(&id) else {
            tracing::error!(user_data, "io_uring completion for an unknown operation");
            return;
        };
        flight.cqes_pending = flight.cqes_pending.saturating_sub(1);
        let os_error = |result: i32| io::Error::from_raw_os_error(-result);
        if is_sync || matches!(flight.op, Op::Sync { .. }) {
            if result >= 0 {
                flight.need_sync = false;
            } else if result != -ECANCELED {
                flight.error.get_or_insert((IoOp::Sync, os_error(result)));
            }
            // Cancelled: the linked write failed or was short; the sync is pushed again with
            // the rest of the write.
        } else {
            let op = match flight.op {
                Op::Read { .. } => IoOp::Read,
                _ => IoOp::Write,
            };
            if result < 0 {
                flight.error.get_or_insert((op, os_error(result)));
            } else if result == 0 {
                flight.error.get_or_insert((
                    op,
                    io::Error::new(io::ErrorKind::UnexpectedEof, "transfer made no progress"),
                ));
            } else {
                let n = result as usize;
                if let Op::Read { .. } = flight.op {
                    let filled = flight.read_buf.len() + n;
                    // SAFETY: the kernel reported `n` bytes written into the spare capacity
                    // that starts at the current length (each read is submitted at
                    // `done == len()`), so the first `filled` bytes are initialized, and
                    // `filled <= capacity` because a read asks for at most the spare room.
                    unsafe { flight.read_buf.set_len(filled) };
                }
                flight.done += n;
            }
        }
        if flight.cqes_pending > 0 {
            return;
        }
        if let Some(flight) = self.table.0.remove(&id) {
            if flight.error.is_some() {
                Self::answer(flight);
            } else {
                self.submit(id, flight);
            }
        }
    }

    fn answer(flight: InFlight) {
        let outcome = match flight.error {
            Some(e) => Err(e),
            None => Ok(match flight.op {
                Op::Read { .. } => Some(flight.read_buf),
                _ => None,
            }),
        };
        flight.reply.send(outcome);
    }
}

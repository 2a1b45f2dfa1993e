//! One partition's log: a sequence of segments with producer state, shared by many tasks.
//!
//! Concurrency: one `std::sync::Mutex` guards the segment list, the active segment and the
//! producer state. It is held while an append checks producer state, assigns offsets and
//! writes to the page cache, and briefly by readers to take a consistent snapshot of a
//! segment (file handle, size, index entry counts); reads of the files happen after it is
//! released. It is never held across an fdatasync.
//!
//! Durability: an append is visible to readers (and counts toward the high watermark, single
//! node) as soon as it is in the page cache; [`group_commit`] makes it durable (the protocol,
//! and every way to ask for a sync, are described there). Any failed write or sync marks the
//! log failed: every later append and sync errors, because the kernel may have dropped the
//! dirty pages and a later successful fsync would prove nothing about them.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use bytes::{Bytes, BytesMut};
use floe_protocol::control;
use floe_protocol::record_batch::{self, BatchError, BatchHeader, MAGIC_V2};
use tokio::sync::watch;

use self::group_commit::SyncQueue;
use crate::config::LogConfig;
use crate::error::StorageError;
use crate::io;
use crate::producer_state::{
    self, Check, Pending, ProducerEntry, ProducerError, ProducerStateManager,
};
use crate::recovery;
use crate::remote::RemoteLog;
use crate::segment::{NO_TIMESTAMP, Segment, SegmentReader};
use crate::topic_partition::TopicPartition;
use crate::txn_index::TxnIndex;

/// Result of a successful append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the first record appended.
    pub base_offset: i64,
    /// Offset of the last record appended.
    pub last_offset: i64,
    /// The log start offset after the append.
    pub log_start_offset: i64,
    /// The batch was already in the log (idempotent retry): nothing was written and the
    /// offsets are those of the original append.
    pub duplicate: bool,
    /// The append made `flush.messages` records unsynced: a sync was requested from the sync
    /// thread, and the append must not be answered before it completes
    /// ([`PartitionLog::sync_async`] resolves when it has).
    pub flush_due: bool,
}

/// Why an append was refused.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The batch breaks the producer's sequence or epoch rules (idempotent producers).
    #[error(transparent)]
    Producer(#[from] ProducerError),
    /// A batch is larger than `max.message.bytes`.
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    RecordTooLarge {
        /// Size of the batch.
        size: usize,
        /// The configured limit.
        max: u32,
    },
    /// The bytes are not record batches (the broker validates before appending, so this
    /// means a caller bug).
    #[error("invalid record batches")]
    InvalidRecords(#[from] BatchError),
    /// The log could not be written.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Records read from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    /// Whole record batches (possibly empty).
    pub records: Bytes,
    /// High watermark at the time of the read (the log end offset on a single node).
    pub high_watermark: i64,
    /// Last stable offset at the time of the read: the high watermark, or the first offset
    /// of the oldest open transaction if that is lower.
    pub last_stable_offset: i64,
    /// Log start offset at the time of the read.
    pub log_start_offset: i64,
}

/// Records read from the log as a range of a segment file ([`PartitionLog::read_region`]).
#[derive(Debug, Clone)]
pub struct RegionRead {
    /// Whole record batches in a segment file; `None` if there was nothing to read.
    pub region: Option<io::FileRegion>,
    /// Offset after the last batch of `region` (with the first batch's base offset, how many
    /// offsets it delivers).
    pub next_offset: Option<i64>,
    /// High watermark at the time of the read (the log end offset on a single node).
    pub high_watermark: i64,
    /// Last stable offset at the time of the read ([`ReadResult::last_stable_offset`]).
    pub last_stable_offset: i64,
    /// Log start offset at the time of the read.
    pub log_start_offset: i64,
}

/// Where a read starts: a segment and the batch holding the fetch offset.
struct Located {
    start: Option<(SegmentReader, crate::segment::LocatedBatch)>,
    high_watermark: i64,
    last_stable_offset: i64,
    log_start_offset: i64,
}

/// Which records a read may return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Everything up to the high watermark (Kafka's read_uncommitted).
    Uncommitted,
    /// Only records below the last stable offset (read_committed); the caller reports the
    /// aborted transactions of the range ([`PartitionLog::aborted_transactions`]).
    Committed,
}

/// Why a read was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The fetch offset is below the log start or above the log end.
    #[error("offset {requested} is out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        /// The requested offset.
        requested: i64,
        /// First offset in the log.
        log_start: i64,
        /// Offset after the last record in the log.
        log_end: i64,
    },
    /// The log could not be read.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Batches to append, checked and parsed ([`PartitionLog::append`]).
struct Incoming {
    records: BytesMut,
    batches: Vec<(BatchHeader, Range<usize>)>,
    config: LogConfig,
    /// The append rolled the active segment first.
    rolled: bool,
}

impl Incoming {
    fn len(&self) -> usize {
        self.records.len()
    }
}

/// Offsets and producer state assigned to an append, applied when its write succeeds.
struct Assigned {
    batches: Vec<(BatchHeader, Range<usize>)>,
    pending: Pending,
    first_offset: i64,
    next: i64,
    log_start_offset: i64,
}

/// What an append does next.
enum Step {
    /// Answered by the original append of a duplicate batch.
    Duplicate(AppendInfo),
    /// The active segment must roll first.
    Roll,
    /// Write these.
    Write(Assigned),
}

/// How far [`PartitionLog::try_append`] got.
enum Attempt {
    Done(AppendInfo),
    /// Another append is in flight; wait for it and try again.
    Busy(Incoming),
    /// Continue off the calling thread (the partition is marked busy).
    Slow(Step, Incoming),
}

/// A partition whose append is in flight off the calling thread (`Inner::writer_busy`);
/// dropping it lets the next append in.
struct Busy(Arc<PartitionLog>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.lock().writer_busy = false;
        self.0.writer_idle.notify_waiters();
        self.0.writer_idle_cv.notify_all();
    }
}

impl Busy {
    /// The slow part of an append: rolls (segment files created on the blocking pool) and
    /// writes that leave the calling thread, then publishes.
    async fn append(
        self,
        mut step: Step,
        mut incoming: Incoming,
        now_ms: i64,
    ) -> Result<AppendInfo, AppendError> {
        let log = &self.0;
        loop {
            match step {
                Step::Duplicate(info) => return Ok(info),
                Step::Roll => {
                    let base = log.log_end.load(Ordering::Acquire);
                    let (io, dir) = (log.io.clone(), log.dir.clone());
                    let created = io::offload(move || Segment::create(&io, &dir, base)).await;
                    let mut inner = log.lock();
                    log.install_roll(&mut inner, created)?;
                    incoming.rolled = true;
                    step = log.prepare(&inner, &mut incoming, now_ms)?;
                }
                Step::Write(assigned) => {
                    let (file, position) = {
                        let inner = log.lock();
                        log.check_usable(&inner)?;
                        let Some(active) = inner.active() else {
                            return Err(StorageError::Closed {
                                path: log.dir.clone(),
                            }
                            .into());
                        };
                        (Arc::clone(&active.log), active.size)
                    };
                    let records = std::mem::take(&mut incoming.records).freeze();
                    let written = file.write_owned_async(position, records.clone()).await;
                    let mut inner = log.lock();
                    let written = match written {
                        Ok(()) if inner.closed => Err(StorageError::Closed {
                            path: log.dir.clone(),
                        }),
                        Ok(()) => match inner.segments.values_mut().next_back() {
                            Some(active) if Arc::ptr_eq(&active.log, &file) => active.appended(
                                position,
                                records.len(),
                                &assigned.batches,
                                &incoming.config,
                                now_ms,
                            ),
                            // Closed or deleted meanwhile.
                            _ => Err(StorageError::Closed {
                                path: log.dir.clone(),
                            }),
                        },
                        Err(e) => Err(match inner.segments.values_mut().next_back() {
                            Some(active) => active.refused(e),
                            None => e,
                        }),
                    };
                    return log.published(
                        inner,
                        written,
                        incoming.rolled,
                        &incoming.config,
                        assigned,
                        now_ms,
                    );
                }
            }
        }
    }
}

/// Runs `future` as its own task and awaits it, so that dropping the caller's future does not
/// stop it halfway (in place when there is no runtime).
async fn detach<T: Send + 'static>(
    future: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => match runtime.spawn(future).await {
            Ok(out) => out,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Only when the runtime shuts down, which ends the process's serving too.
            Err(_) => std::future::pending().await,
        },
        Err(_) => future.await,
    }
}

/// `oldest_unsynced_ms` when everything appended is durable.
const NONE_UNSYNCED: i64 = i64::MIN;

/// Wall-clock milliseconds since the Unix epoch.
pub(crate) fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[derive(Debug)]
struct Inner {
    segments: BTreeMap<i64, Segment>,
    producers: ProducerStateManager,
    /// Files of rolled segments that the next sync must fdatasync.
    unsynced: Vec<Arc<io::File>>,
    /// A segment file was created since the last sync of the partition directory.
    dir_dirty: bool,
    /// Producer state at the base offset of each segment rolled since the last sync: written
    /// as snapshots by the sync that makes everything below those bases durable.
    pending_snapshots: Vec<(i64, ProducerStateManager)>,
    closed: bool,
    /// An append is writing off the calling thread ([`Busy`]); the next one waits.
    writer_busy: bool,
    /// Why the log was taken offline (damaged data), if it was.
    offline: Option<String>,
}

impl Inner {
    fn active(&self) -> Option<&Segment> {
        self.segments.values().next_back()
    }
}

/// One partition's log. `Send + Sync`; share it as `Arc<PartitionLog>`.
#[derive(Debug)]
pub struct PartitionLog {
    tp: TopicPartition,
    dir: PathBuf,
    /// Replaced whole by `set_config` (topic config changes); appends read a snapshot.
    config: std::sync::RwLock<LogConfig>,
    inner: Mutex<Inner>,
    io: io::Io,
    /// A sync is in flight (its leader owns the sync work until it clears this).
    sync_in_flight: Mutex<bool>,
    sync_done: Condvar,
    /// Wall-clock ms of the oldest append not yet known durable, or `NONE_UNSYNCED`.
    oldest_unsynced_ms: AtomicI64,
    log_start: AtomicI64,
    log_end: AtomicI64,
    end_tx: watch::Sender<i64>,
    /// How far the log is known durable, and whether it failed; waiters that must not block
    /// a thread watch it ([`PartitionLog::sync_async`]).
    durable_tx: watch::Sender<Durability>,
    /// The data directory's sync thread ([`PartitionLog::sync_async`]).
    sync_queue: Arc<SyncQueue>,
    /// Woken when an append in flight off the calling thread is done ([`Busy`]): tasks
    /// wait on the `Notify`, threads on the condvar.
    writer_idle: tokio::sync::Notify,
    writer_idle_cv: Condvar,
    /// Held by retention, DeleteRecords and the cleaner, so they never change the segment
    /// list under each other.
    maintenance: Mutex<()>,
    /// The first dirty offset of compaction ([`compaction`]).
    cleaned_to: AtomicI64,
    /// When the first tombstone kept in the clean part expires (`i64::MIN`: unknown).
    tombstones_due_at: AtomicI64,
    /// The remote part of a tiered log, once its manifest was loaded ([`crate::remote`]).
    remote: std::sync::RwLock<Option<Arc<RemoteLog>>>,
    /// Aborted transactions ([`crate::txn_index`]); updated before `first_unstable` and
    /// `log_end` are published, so a reader that sees a marker sees its entry.
    txn_index: std::sync::RwLock<TxnIndex>,
    /// Held while the index file is appended to or rewritten (the two never interleave).
    txn_index_file: Mutex<()>,
    /// First offset of the oldest open transaction (`i64::MAX` if none); stored before
    /// `log_end` under the append lock.
    first_unstable: AtomicI64,
    /// Bytes and records clients produced and fetched (for `/metrics`).
    traffic: traffic::Traffic,
    /// Claims on the head of the log that retention honours for a bounded time
    /// ([`retention::RetentionHold`]); in memory only.
    retention_holds: Arc<retention::Holds>,
}

/// What the data directory's checkpoints say about a log being opened.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct OpenHints {
    /// The recovery point: everything below was synced.
    pub(crate) durable: Option<i64>,
    /// The log start offset (moved by DeleteRecords).
    pub(crate) log_start: Option<i64>,
    /// The first dirty offset of compaction.
    pub(crate) cleaned_to: Option<i64>,
}

/// How far a log is known durable, and whether it failed.
#[derive(Debug, Clone, Copy)]
struct Durability {
    /// Offset below which every record is on stable storage.
    offset: i64,
    /// A write or sync failed (see [`PartitionLog::fail`]).
    failed: bool,
}

impl PartitionLog {
    /// Opens (recovering) or creates the log in `dir`, which must exist. `clean` says whether
    /// the previous shutdown left a clean-shutdown marker; `hints` are what the data
    /// directory's checkpoints say about it.
    pub(crate) fn open(
        io: io::Io,
        sync_queue: Arc<SyncQueue>,
        tp: TopicPartition,
        dir: PathBuf,
        config: LogConfig,
        clean: bool,
        hints: OpenHints,
    ) -> Result<PartitionLog, StorageError> {
        let OpenHints {
            durable: durable_hint,
            log_start: start_hint,
            cleaned_to: cleaned_hint,
        } = hints;
        let recovered = recovery::recover(&io, &dir, &config, clean, durable_hint)?;
        let log_end = recovered
            .segments
            .values()
            .next_back()
            .map_or(0, |s| s.next_offset);
        // The first segment's base, or higher where DeleteRecords moved the start inside it
        // (never past the end: recovery may have cut the tail the start was in).
        let first_base = recovered.segments.keys().next().copied().unwrap_or(0);
        let log_start = start_hint.map_or(first_base, |hint| {
            if config.remote_storage_enable {
                // The remote part may hold what lies below the first local segment; the
                // remote view checks it when it is attached.
                hint.min(log_end.max(first_base))
            } else {
                hint.clamp(first_base, log_end.max(first_base))
            }
        });
        if !clean {
            // What recovery kept may exist only in the page cache (the process died, the
            // machine did not); make it durable before calling it durable.
            let files: Vec<&io::File> = recovered.segments.values().map(|s| &*s.log).collect();
            io.sync_all(&files)?;
            io::sync_dir(&dir)?;
        }
        // Closed segments are synced (their logs above, or before a clean shutdown): their
        // handles may be closed while idle, so a partition keeps only its active segment's
        // files open. (Indexes rebuilt by recovery are a cache: a lost write of one is
        // found and rebuilt at the next recovery.)
        let closed = recovered.segments.len().saturating_sub(1);
        for segment in recovered.segments.values().take(closed) {
            for file in segment.all_files() {
                file.make_cold();
            }
        }
        // Replay finds the markers at or above the snapshot it starts from, in the local
        // segments; entries below the first local segment (a tiered log's remote part) come
        // only from the file.
        let mut txn_index = TxnIndex::load(
            &io,
            &dir,
            recovered.replayed_from.max(first_base),
            log_start.min(log_end),
        )?;
        for txn in recovered.replayed_aborts {
            txn_index.insert(txn);
        }
        txn_index.prune_below(log_start.min(log_end));
        let first_unstable = recovered
            .producers
            .first_unstable_offset()
            .unwrap_or(i64::MAX);
        let (end_tx, _) = watch::channel(log_end);
        let (durable_tx, _) = watch::channel(Durability {
            offset: log_end,
            failed: false,
        });
        Ok(PartitionLog {
            tp,
            dir,
            config: std::sync::RwLock::new(config),
            inner: Mutex::new(Inner {
                segments: recovered.segments,
                producers: recovered.producers,
                unsynced: Vec::new(),
                dir_dirty: false,
                pending_snapshots: Vec::new(),
                closed: false,
                writer_busy: false,
                offline: None,
            }),
            io,
            sync_in_flight: Mutex::new(false),
            sync_done: Condvar::new(),
            oldest_unsynced_ms: AtomicI64::new(NONE_UNSYNCED),
            log_start: AtomicI64::new(log_start),
            log_end: AtomicI64::new(log_end),
            end_tx,
            durable_tx,
            sync_queue,
            writer_idle: tokio::sync::Notify::new(),
            writer_idle_cv: Condvar::new(),
            maintenance: Mutex::new(()),
            cleaned_to: AtomicI64::new(cleaned_hint.unwrap_or(log_start)),
            tombstones_due_at: AtomicI64::new(i64::MIN),
            remote: std::sync::RwLock::new(None),
            txn_index: std::sync::RwLock::new(txn_index),
            txn_index_file: Mutex::new(()),
            first_unstable: AtomicI64::new(first_unstable),
            traffic: traffic::Traffic::default(),
            retention_holds: Arc::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock is a bug; the state it protects is only modified
        // after all fallible steps, so continuing with it is no worse than the panic itself.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn check_usable(&self, inner: &Inner) -> Result<(), StorageError> {
        if self.is_failed() {
            return Err(StorageError::LogFailed {
                path: self.dir.clone(),
            });
        }
        self.check_usable_for_reads(inner)
    }

    fn check_usable_for_reads(&self, inner: &Inner) -> Result<(), StorageError> {
        if inner.closed {
            return Err(StorageError::Closed {
                path: self.dir.clone(),
            });
        }
        if let Some(reason) = &inner.offline {
            return Err(StorageError::Offline {
                path: self.dir.clone(),
                reason: reason.clone(),
            });
        }
        Ok(())
    }

    /// Takes the log offline because its data is damaged: appends and reads are refused
    /// with `reason` from now on (the files stay as they are for the operator).
    pub fn take_offline(&self, reason: String) {
        self.lock().offline = Some(reason);
        self.report_offline();
    }

    /// `floe_partition_offline{topic, partition}` = 1: the gauge the broker also sets for a
    /// partition that could not be opened at start-up.
    fn report_offline(&self) {
        metrics::gauge!(
            "floe_partition_offline",
            "topic" => self.tp.topic.clone(),
            "partition" => self.tp.partition.to_string()
        )
        .set(1.0);
    }

    /// Why the log is offline, if it is: damaged data, or a failed write or sync (its
    /// durable state is unknown until the broker restarts and recovers it).
    pub fn offline_reason(&self) -> Option<String> {
        if let Some(reason) = self.lock().offline.clone() {
            return Some(reason);
        }
        self.is_failed().then(|| {
            "a write or fdatasync failed; the log is offline until the broker restarts and recovers it"
                .to_string()
        })
    }

    /// Readers of every segment but the active one (for the scrubber and the cleaner).
    pub(crate) fn closed_segments(&self) -> Vec<SegmentReader> {
        let inner = self.lock();
        let n = inner.segments.len().saturating_sub(1);
        inner
            .segments
            .values()
            .take(n)
            .map(Segment::reader)
            .collect()
    }

    fn fail<T>(&self, error: StorageError) -> Result<T, StorageError> {
        tracing::error!(dir = %self.dir.display(), %error, "taking partition log offline");
        self.durable_tx.send_modify(|d| d.failed = true);
        self.report_offline();
        Err(error)
    }

    /// The partition this log belongs to.
    pub fn topic_partition(&self) -> &TopicPartition {
        &self.tp
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The log's configuration.
    pub fn config(&self) -> LogConfig {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the log's configuration (a topic config changed); applies to later appends
    /// and rolls.
    pub fn set_config(&self, config: LogConfig) {
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = config;
    }

    /// Appends `records`: record batches already CRC-validated by the broker
    /// (`floe_protocol::record_batch::validate_batches`). Checks idempotent-producer state for
    /// each batch, assigns offsets by rewriting each batch's base offset, writes the batches
    /// to the active segment (rolling it first on `segment_bytes`/`segment_ms`), indexes them
    /// and makes them visible to readers. Not durable until a sync (see [`group_commit`]);
    /// never syncs: a roll or `flush.messages` asks the sync thread.
    ///
    /// Never blocks the calling task's thread for I/O: a write below `RING_WRITE_MIN` is a
    /// page-cache copy done in place (under the partition lock, as the std backend and
    /// Kafka do); a larger write goes through the ring or the blocking pool, and a roll
    /// creates the new segment's files on the blocking pool. While such an append is in
    /// flight the partition's next appends wait for it (asynchronously), so offsets are
    /// written and published in order. The slow part runs as its own task, so dropping the
    /// returned future never leaves a write half done.
    ///
    /// If a batch is a duplicate of one of its producer's last five batches, nothing is
    /// written and the original offsets are returned with `duplicate: true` (as in Kafka, the
    /// whole append is answered by the first duplicate batch).
    pub async fn append(
        self: &Arc<Self>,
        records: BytesMut,
        now_ms: i64,
    ) -> Result<AppendInfo, AppendError> {
        let mut incoming = self.parse(records)?;
        loop {
            let idle = self.writer_idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            match self.try_append(incoming, now_ms)? {
                Attempt::Done(info) => return Ok(info),
                Attempt::Busy(again) => incoming = again,
                Attempt::Slow(step, incoming) => {
                    let busy = Busy(Arc::clone(self));
                    return detach(async move { busy.append(step, incoming, now_ms).await }).await;
                }
            }
            idle.await;
        }
    }

    /// The part of [`PartitionLog::append`] done on the calling thread: everything, unless
    /// another append is in flight (`Busy`) or this one must leave the thread (`Slow`, and
    /// the partition is then marked busy for it).
    fn try_append(
        self: &Arc<Self>,
        mut incoming: Incoming,
        now_ms: i64,
    ) -> Result<Attempt, AppendError> {
        let mut inner = self.lock();
        if inner.writer_busy {
            return Ok(Attempt::Busy(incoming));
        }
        match self.prepare(&inner, &mut incoming, now_ms)? {
            Step::Duplicate(info) => Ok(Attempt::Done(info)),
            Step::Write(assigned) if io::File::writes_in_place(incoming.len()) => self
                .write_in_place(inner, incoming, assigned, now_ms)
                .map(Attempt::Done),
            step => {
                inner.writer_busy = true;
                Ok(Attempt::Slow(step, incoming))
            }
        }
    }

    /// [`PartitionLog::append`] on the calling thread, which may block: a roll creates the
    /// new segment's files and a large write waits for the disk here. For threads that may
    /// block and for small internal records (the group coordinator appends its records under
    /// its group lock, to keep them in the order of its state changes; they are far below
    /// `RING_WRITE_MIN`, so only a roll of `__consumer_offsets` touches the file system).
    pub fn append_now(
        self: &Arc<Self>,
        records: BytesMut,
        now_ms: i64,
    ) -> Result<AppendInfo, AppendError> {
        let mut incoming = self.parse(records)?;
        let mut inner = self.lock();
        loop {
            while inner.writer_busy {
                inner = self
                    .writer_idle_cv
                    .wait(inner)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            match self.prepare(&inner, &mut incoming, now_ms)? {
                Step::Duplicate(info) => return Ok(info),
                Step::Write(assigned) => {
                    return self.write_in_place(inner, incoming, assigned, now_ms);
                }
                Step::Roll => {
                    let base = self.log_end.load(Ordering::Acquire);
                    let created = Segment::create(&self.io, &self.dir, base);
                    self.install_roll(&mut inner, created)?;
                    incoming.rolled = true;
                }
            }
        }
    }

    /// Checks the batches' framing and size limits.
    fn parse(&self, records: BytesMut) -> Result<Incoming, AppendError> {
        let config = self.config();
        let mut batches = Vec::new();
        for item in record_batch::iter_batches(&records) {
            let (header, range) = item?;
            if header.magic != MAGIC_V2 {
                return Err(BatchError::UnsupportedMagic(header.magic).into());
            }
            if header.records_count < 1 || header.last_offset_delta < 0 {
                return Err(BatchError::BadRecordCount {
                    records_count: header.records_count,
                    last_offset_delta: header.last_offset_delta,
                }
                .into());
            }
            if header.total_size() > config.max_message_bytes as usize {
                return Err(AppendError::RecordTooLarge {
                    size: header.total_size(),
                    max: config.max_message_bytes,
                });
            }
            batches.push((header, range));
        }
        if batches.is_empty() {
            return Err(BatchError::Empty.into());
        }
        Ok(Incoming {
            records,
            batches,
            config,
            rolled: false,
        })
    }

    /// Producer checks and offset assignment (on working copies: nothing in `inner` changes),
    /// and whether the active segment must roll first. Rewrites the base offsets in
    /// `incoming`; called again after a roll, which is harmless.
    fn prepare(
        &self,
        inner: &Inner,
        incoming: &mut Incoming,
        now_ms: i64,
    ) -> Result<Step, AppendError> {
        self.check_usable(inner)?;
        if let Some(limit) = incoming.config.local_hard_limit_bytes
            && incoming.config.remote_storage_enable
        {
            let end = self
                .remote()
                .and_then(|r| r.uploaded_end())
                .unwrap_or(i64::MIN);
            let bytes = Self::unuploaded(inner, end);
            if bytes > limit {
                return Err(StorageError::UploadBacklog {
                    path: self.dir.clone(),
                    bytes,
                    limit,
                }
                .into());
            }
        }
        let log_start_offset = self.log_start.load(Ordering::Acquire);
        let first_offset = self.log_end.load(Ordering::Acquire);
        let mut pending = Pending::default();
        let mut next = first_offset;
        let mut assigned: Vec<(BatchHeader, Range<usize>)> =
            Vec::with_capacity(incoming.batches.len());
        for (header, range) in &incoming.batches {
            let mut header = *header;
            if header.has_producer_id() {
                let entry = pending
                    .get(header.producer_id)
                    .or_else(|| inner.producers.get(header.producer_id));
                if let Check::Duplicate(original) = ProducerStateManager::check(&header, entry)? {
                    return Ok(Step::Duplicate(AppendInfo {
                        base_offset: original.base_offset,
                        last_offset: original.last_offset,
                        log_start_offset,
                        duplicate: true,
                        flush_due: false,
                    }));
                }
            }
            header.base_offset = next;
            if header.has_producer_id() {
                let control = if header.is_control() {
                    control::control_type(&incoming.records[range.clone()])?
                } else {
                    None
                };
                inner
                    .producers
                    .apply_pending(&mut pending, &header, control);
            }
            next = header.next_offset();
            assigned.push((header, range.clone()));
        }
        for (header, range) in &assigned {
            record_batch::set_base_offset(
                &mut incoming.records[range.clone()],
                header.base_offset,
            )?;
        }
        let Some(active) = inner.active() else {
            return Err(StorageError::Closed {
                path: self.dir.clone(),
            }
            .into());
        };
        if active.should_roll(&incoming.config, incoming.len(), next - 1, now_ms) {
            return Ok(Step::Roll);
        }
        Ok(Step::Write(Assigned {
            batches: assigned,
            pending,
            first_offset,
            next,
            log_start_offset,
        }))
    }

    /// Writes prepared batches to the active segment on the calling thread and publishes
    /// them.
    fn write_in_place(
        self: &Arc<Self>,
        mut inner: MutexGuard<'_, Inner>,
        incoming: Incoming,
        assigned: Assigned,
        now_ms: i64,
    ) -> Result<AppendInfo, AppendError> {
        let Some(active) = inner.segments.values_mut().next_back() else {
            return Err(StorageError::Closed {
                path: self.dir.clone(),
            }
            .into());
        };
        // The buffer goes to the I/O backend as is (the io_uring driver owns it until the
        // write completes); no copy.
        let records = incoming.records.freeze();
        let written = active.append(records, &assigned.batches, &incoming.config, now_ms);
        self.published(
            inner,
            written,
            incoming.rolled,
            &incoming.config,
            assigned,
            now_ms,
        )
    }

    /// After the write of prepared batches: on success makes them visible (producer state,
    /// log end, readers woken) and asks for the syncs a roll or `flush.messages` needs; on
    /// failure takes the log offline (a refused write on a full disk leaves it usable).
    fn published(
        self: &Arc<Self>,
        mut inner: MutexGuard<'_, Inner>,
        written: Result<(), StorageError>,
        rolled: bool,
        config: &LogConfig,
        assigned: Assigned,
        now_ms: i64,
    ) -> Result<AppendInfo, AppendError> {
        match written {
            Ok(()) => {}
            // A full disk: nothing was appended and the log stays usable, so the partition
            // serves again by itself once space is freed.
            Err(e @ StorageError::WriteRefused { .. }) => return Err(e.into()),
            Err(e) => return Err(self.fail(e)?),
        }
        let Assigned {
            pending,
            first_offset,
            next,
            log_start_offset,
            ..
        } = assigned;
        let aborted = inner.producers.commit(pending);
        if !aborted.is_empty() {
            let mut index = self
                .txn_index
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            for txn in aborted {
                index.insert(txn);
            }
        }
        self.first_unstable.store(
            inner.producers.first_unstable_offset().unwrap_or(i64::MAX),
            Ordering::Release,
        );
        self.log_end.store(next, Ordering::Release);
        // Under the lock, so the flusher never sees new records without their age.
        let _ = self.oldest_unsynced_ms.compare_exchange(
            NONE_UNSYNCED,
            now_ms,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        drop(inner);
        // Outside the lock, so two appends may publish out of order: the watch only moves
        // forward (a reader must never see the end go back).
        self.end_tx.send_if_modified(|end| {
            let moved = next > *end;
            if moved {
                *end = next;
            }
            moved
        });

        let flush_due = u64::try_from(next - self.durable_offset())
            .is_ok_and(|unsynced| unsynced >= config.flush_messages);
        if rolled || flush_due {
            // Never an fdatasync on the appending thread (a runtime worker): the sync thread
            // makes a rolled segment durable and then writes the producer snapshot for the
            // new base (see `group_commit`); `flush.messages` waits on the same sync.
            self.sync_queue.request(self);
        }
        Ok(AppendInfo {
            base_offset: first_offset,
            last_offset: next - 1,
            log_start_offset,
            duplicate: false,
            flush_due,
        })
    }

    /// Makes a newly created segment (at the log end) the active one; the producer state at
    /// its base offset is snapshotted by the sync that makes the rolled segment durable. A
    /// failure takes the log offline.
    fn install_roll(
        &self,
        inner: &mut Inner,
        created: Result<Segment, StorageError>,
    ) -> Result<(), StorageError> {
        let installed = created.and_then(|segment| {
            if let Some(active) = inner.segments.values_mut().next_back() {
                active.seal_time_index()?;
                let files = active.all_files();
                inner.unsynced.extend(files);
            }
            let base = segment.base_offset;
            inner.segments.insert(base, segment);
            inner.dir_dirty = true;
            let producers = inner.producers.clone();
            inner.pending_snapshots.push((base, producers));
            tracing::debug!(dir = %self.dir.display(), base, "rolled segment");
            Ok(())
        });
        match installed {
            Ok(()) => Ok(()),
            Err(e) => self.fail(e),
        }
    }

    /// Reads whole batches starting with the one that holds `fetch_offset`, up to
    /// `max_bytes` but always at least one batch if there is one (KIP-74). Never returns a
    /// partially written batch, and never crosses a segment boundary in one read.
    pub fn read(&self, fetch_offset: i64, max_bytes: usize) -> Result<ReadResult, ReadError> {
        self.read_isolated(fetch_offset, max_bytes, Isolation::Uncommitted)
    }

    /// [`PartitionLog::read`] of the records `isolation` allows (read_committed stops
    /// before the batch holding the last stable offset).
    pub fn read_isolated(
        &self,
        fetch_offset: i64,
        max_bytes: usize,
        isolation: Isolation,
    ) -> Result<ReadResult, ReadError> {
        let located = self.locate(fetch_offset, isolation)?;
        let records = match &located.start {
            Some((segment, batch)) => segment.read_from(batch, max_bytes)?,
            None => Bytes::new(),
        };
        Ok(ReadResult {
            records,
            high_watermark: located.high_watermark,
            last_stable_offset: located.last_stable_offset,
            log_start_offset: located.log_start_offset,
        })
    }

    /// The same batches as [`PartitionLog::read`], as a range of a segment file instead of
    /// bytes in memory, for sending without a copy ([`io::FileRegion::send_to`]). `None`
    /// when there is nothing to read at `fetch_offset`.
    ///
    /// Never waits for the disk on the calling task's thread: the index probes and batch
    /// headers are read from the page cache (`preadv2(RWF_NOWAIT)`), and a range that is
    /// all in the page cache is returned for `sendfile`. If anything is not cached, the read
    /// is done again on the blocking pool, and the range is loaded into memory there.
    ///
    /// Below the local start of a tiered log, the read is served from the remote part: the
    /// segment is fetched into the download cache (on the remote runtime) and read there
    /// on the blocking pool.
    pub async fn read_region(
        self: &Arc<Self>,
        fetch_offset: i64,
        max_bytes: usize,
        isolation: Isolation,
    ) -> Result<RegionRead, ReadError> {
        if let Some(remote) = self.remote_for(fetch_offset) {
            return self
                .read_region_remote(remote, fetch_offset, max_bytes, isolation)
                .await;
        }
        self.read_region_local(fetch_offset, max_bytes, isolation)
            .await
    }

    async fn read_region_local(
        self: &Arc<Self>,
        fetch_offset: i64,
        max_bytes: usize,
        isolation: Isolation,
    ) -> Result<RegionRead, ReadError> {
        if let Some(read) =
            io::without_blocking(|| self.read_region_now(fetch_offset, max_bytes, isolation))
        {
            let read = read?;
            if read.region.as_ref().is_none_or(io::FileRegion::is_cached) {
                return Ok(read);
            }
        }
        let log = Arc::clone(self);
        io::offload(move || {
            let mut read = log.read_region_now(fetch_offset, max_bytes, isolation)?;
            read.region = read.region.map(io::FileRegion::load).transpose()?;
            Ok(read)
        })
        .await
    }

    /// [`PartitionLog::read_region`] on the calling thread, which may wait for the disk.
    pub fn read_region_now(
        &self,
        fetch_offset: i64,
        max_bytes: usize,
        isolation: Isolation,
    ) -> Result<RegionRead, ReadError> {
        let located = self.locate(fetch_offset, isolation)?;
        let (region, next_offset) = match &located.start {
            Some((segment, batch)) => {
                let (region, next) = segment.region_from(batch, max_bytes)?;
                (Some(region), Some(next))
            }
            None => (None, None),
        };
        Ok(RegionRead {
            region,
            next_offset,
            high_watermark: located.high_watermark,
            last_stable_offset: located.last_stable_offset,
            log_start_offset: located.log_start_offset,
        })
    }

    /// The segment and batch a read at `fetch_offset` starts with (none at the log end, or
    /// at the last stable offset for read_committed).
    fn locate(&self, fetch_offset: i64, isolation: Isolation) -> Result<Located, ReadError> {
        let mut offset = fetch_offset;
        if let Some(remote) = self.remote_for(fetch_offset) {
            // Below the local start of a tiered log: the remote part (this thread may block).
            let log_end = self.log_end_offset();
            let upper = self.read_upper(isolation, log_end);
            while offset < upper
                && let Some((mut segment, next)) = remote.reader_at_blocking(offset)?
            {
                segment.cap_at(upper)?;
                if let Some(batch) = segment.find_batch(offset)? {
                    return Ok(Located {
                        start: Some((segment, batch)),
                        high_watermark: log_end,
                        last_stable_offset: self.last_stable_offset(),
                        log_start_offset: self.log_start_offset(),
                    });
                }
                offset = next;
                if self.remote_for(offset).is_none() {
                    break;
                }
            }
            if offset >= upper {
                return Ok(Located {
                    start: None,
                    high_watermark: log_end,
                    last_stable_offset: self.last_stable_offset(),
                    log_start_offset: self.log_start_offset(),
                });
            }
        }
        let tiered = self.remote().is_some();
        loop {
            let (mut segment, next_base, log_start, log_end, lso) = {
                let inner = self.lock();
                self.check_usable_for_reads(&inner)?;
                let log_start = self.log_start.load(Ordering::Acquire);
                let log_end = self.log_end.load(Ordering::Acquire);
                let lso = self.read_upper(Isolation::Committed, log_end);
                if fetch_offset < log_start || fetch_offset > log_end {
                    return Err(ReadError::OffsetOutOfRange {
                        requested: fetch_offset,
                        log_start,
                        log_end,
                    });
                }
                // A tiered log continues locally where its remote part ends.
                let found = inner
                    .segments
                    .range(..=offset)
                    .next_back()
                    .or_else(|| tiered.then(|| inner.segments.iter().next()).flatten());
                let Some((_, segment)) = found else {
                    return Err(ReadError::OffsetOutOfRange {
                        requested: fetch_offset,
                        log_start,
                        log_end,
                    });
                };
                let next_base = inner
                    .segments
                    .range(offset.saturating_add(1)..)
                    .next()
                    .map(|(&base, _)| base);
                (segment.reader(), next_base, log_start, log_end, lso)
            };
            let located = |start| Located {
                start,
                high_watermark: log_end,
                last_stable_offset: lso,
                log_start_offset: log_start,
            };
            let upper = match isolation {
                Isolation::Uncommitted => log_end,
                Isolation::Committed => lso,
            };
            if offset >= upper {
                return Ok(located(None));
            }
            if upper < log_end {
                segment.cap_at(upper)?;
            }
            if let Some(batch) = segment.find_batch(offset)? {
                return Ok(located(Some((segment, batch))));
            }
            match next_base {
                Some(base) if base < upper => offset = base,
                _ => return Ok(located(None)),
            }
        }
    }

    /// Bytes of the log's segment files (`.log` only), as DescribeLogDirs reports them.
    pub fn size_bytes(&self) -> u64 {
        self.lock().segments.values().map(|s| s.size).sum()
    }

    /// Segments of the log on local disk.
    pub fn segment_count(&self) -> usize {
        self.lock().segments.len()
    }

    /// What clients produced to and fetched from this partition since it was opened.
    pub fn traffic(&self) -> &traffic::Traffic {
        &self.traffic
    }

    /// First offset in the log.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start.load(Ordering::Acquire)
    }

    /// Offset the next appended record will get.
    pub fn log_end_offset(&self) -> i64 {
        self.log_end.load(Ordering::Acquire)
    }

    /// Offset up to which consumers may read: the log end offset on a single node.
    pub fn high_watermark(&self) -> i64 {
        self.log_end_offset()
    }

    /// Offset up to which the log is known to be on stable storage.
    pub fn durable_offset(&self) -> i64 {
        self.durable_tx.borrow().offset
    }

    /// A write or sync failed: the log refuses appends and never claims durability again.
    fn is_failed(&self) -> bool {
        self.durable_tx.borrow().failed
    }

    fn readers(&self) -> Vec<SegmentReader> {
        self.lock().segments.values().map(Segment::reader).collect()
    }

    /// The first record with timestamp `>= ts`, as `(offset, timestamp)` (ListOffsets by
    /// timestamp). Uses each segment's largest timestamp to pick the segment, its time index
    /// and offset index to find the batch, and decodes that batch's records.
    ///
    /// A tiered log looks in its remote part first (downloading the segment that holds the
    /// answer; the caller's thread may block).
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, StorageError> {
        if let Some(remote) = self.remote() {
            let log_start = self.log_start_offset();
            for segment in remote.segments_below(self.local_start_offset()) {
                if segment.next_offset <= log_start
                    || segment.size == 0
                    || segment.max_timestamp < ts
                {
                    continue;
                }
                let reader = remote.reader_of_blocking(segment)?;
                if let Some((offset, timestamp)) = reader.offset_for_timestamp(ts)? {
                    return Ok(Some((offset.max(log_start), timestamp)));
                }
            }
        }
        for segment in self.readers() {
            if segment.size > 0
                && segment.max_timestamp >= ts
                && let Some(found) = segment.offset_for_timestamp(ts)?
            {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// The record with the largest timestamp (the first one if several share it), as
    /// `(offset, timestamp)` (ListOffsets `-3`).
    pub fn max_timestamp_offset(&self) -> Result<Option<(i64, i64)>, StorageError> {
        let mut best: Option<SegmentReader> = None;
        for segment in self.readers() {
            if segment.size == 0 || segment.max_timestamp == NO_TIMESTAMP {
                continue;
            }
            if best
                .as_ref()
                .is_none_or(|b| segment.max_timestamp > b.max_timestamp)
            {
                best = Some(segment);
            }
        }
        if let Some(remote) = self.remote() {
            let log_start = self.log_start_offset();
            let best_remote = remote
                .segments_below(self.local_start_offset())
                .into_iter()
                .filter(|s| {
                    s.next_offset > log_start && s.size > 0 && s.max_timestamp != NO_TIMESTAMP
                })
                .fold(
                    None::<crate::remote::manifest::RemoteSegment>,
                    |best, s| match best {
                        Some(b) if b.max_timestamp >= s.max_timestamp => Some(b),
                        _ => Some(s),
                    },
                );
            if let Some(segment) = best_remote
                && best
                    .as_ref()
                    .is_none_or(|b| segment.max_timestamp >= b.max_timestamp)
            {
                return remote.reader_of_blocking(segment)?.max_timestamp_record();
            }
        }
        match best {
            Some(segment) => segment.max_timestamp_record(),
            None => Ok(None),
        }
    }

    /// A receiver that sees the log end offset change (for fetch long polls).
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.end_tx.subscribe()
    }

    /// What the partition knows about a producer id.
    pub fn producer_state(&self, producer_id: i64) -> Option<ProducerEntry> {
        self.lock().producers.get(producer_id).cloned()
    }

    /// Clean close: syncs everything, seals the active segment's time index, syncs the
    /// indexes and writes a producer snapshot at the log end. Later appends fail with
    /// [`StorageError::Closed`].
    pub(crate) fn close(&self) -> Result<(), StorageError> {
        self.sync()?;
        let (files, end, producers) = {
            let mut inner = self.lock();
            if inner.closed {
                return Ok(());
            }
            inner.closed = true;
            let end = self.log_end.load(Ordering::Acquire);
            let mut files = Vec::new();
            if let Some(active) = inner.segments.values_mut().next_back() {
                if let Err(e) = active.seal_time_index() {
                    return self.fail(e);
                }
                files.extend(active.all_files());
            }
            (files, end, inner.producers.clone())
        };
        // Hold the sync lead so no other sync runs concurrently with the final one.
        {
            let mut in_flight = self.sync_in_flight();
            while *in_flight {
                in_flight = self
                    .sync_done
                    .wait(in_flight)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            *in_flight = true;
        }
        let refs: Vec<&io::File> = files.iter().map(|f| &**f).collect();
        let synced = self.io.sync_all(&refs);
        *self.sync_in_flight() = false;
        self.sync_done.notify_all();
        if let Err(e) = synced {
            return self.fail(e);
        }
        self.persist_txn_index(end)?;
        producer_state::write_snapshot(&self.io, &self.dir, end, &producers)
    }

    /// Marks the log closed without syncing (it is about to be deleted).
    /// Closes its files too: an unlinked file that stays open keeps its space, and deleting
    /// a topic is how an operator frees a full disk. A read in flight keeps its segment's
    /// file until it is done.
    pub(crate) fn mark_deleted(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        inner.segments.clear();
        inner.unsynced.clear();
    }
}

pub mod compaction;
pub(crate) mod group_commit;
#[cfg(test)]
mod nonblocking_tests;
pub mod retention;
#[cfg(test)]
mod tests;
mod tiered;
pub mod traffic;
mod transactions;
#[cfg(test)]
mod txn_tests;

pub(crate) use tiered::UploadCandidate;

//! The data directory: one lock, one clean-shutdown marker, one subdirectory per partition.
//!
//! - `<data_dir>/.lock` is held with an exclusive `flock` for the life of the [`LogManager`],
//!   so two brokers can never share a data directory.
//! - `<data_dir>/.floe_clean_shutdown` is written (atomically) by [`LogManager::shutdown`]
//!   after every open partition was synced and snapshotted. It lists, one directory name per
//!   line, the partitions that are known clean: those closed by this shutdown plus those that
//!   were clean at startup and never opened since. [`LogManager::open`] reads and removes it,
//!   so a crash later is detected; partitions not in it are recovered as after a crash.
//! - Deleting a partition first renames its directory to `<dir>.<unique>-delete` (and syncs
//!   the data directory), then removes it; a crash in between leaves a recognisable directory
//!   that the next [`LogManager::partition_dirs`] removes.
//! - Every log of the directory shares one I/O backend ([`Io`], one io_uring driver), so the
//!   syncs and writes of all partitions are batched together.
//! - A sync thread serves [`PartitionLog::sync_async`] (acks=all produce, group commit across
//!   all partitions and connections; see [`crate::partition_log::group_commit`]).
//! - A flusher thread enforces `flush.ms`: it wakes every [`FLUSH_TICK`] (or sooner for a
//!   smaller `flush.ms`) and syncs each log whose oldest unsynced record is that old.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::background::{Background, Stop, lock};
use crate::cleaner::{Cleaner, CleanerConfig};
use crate::config::LogConfig;
use crate::error::StorageError;
use crate::io::{self, Io};
use crate::partition_log::group_commit::Syncer;
use crate::partition_log::retention::DeleteRecordsError;
use crate::partition_log::{OpenHints, PartitionLog};
use crate::producer_state;
use crate::recovery_point;
use crate::remote::{RemoteConfig, RemoteLog, RemoteStorage};
use crate::retention::{PendingRemovals, Retention, RetentionConfig};
use crate::scrubber::{ScrubConfig, Scrubber};
use crate::topic_partition::TopicPartition;

/// Name of the lock file in the data directory.
pub const LOCK_FILE: &str = ".lock";
/// Name of the clean-shutdown marker in the data directory.
pub const CLEAN_SHUTDOWN_FILE: &str = ".floe_clean_shutdown";
/// Suffix of partition directories being deleted.
pub const DELETE_SUFFIX: &str = "-delete";

/// Longest sleep of the `flush.ms` flusher thread.
pub const FLUSH_TICK: Duration = Duration::from_millis(100);

type Logs = Arc<Mutex<HashMap<TopicPartition, Arc<PartitionLog>>>>;

/// A checkpoint file of a data directory (the recovery points, the log start offsets):
/// what was read at start (for the partitions not opened since) and what was last written.
#[derive(Debug)]
struct Checkpoint {
    data_dir: PathBuf,
    file: &'static str,
    /// Each open log's value.
    value: fn(&PartitionLog) -> i64,
    /// Points read at start, by directory name, until the partition is opened or deleted.
    at_start: Mutex<BTreeMap<String, i64>>,
    last_written: Mutex<Option<BTreeMap<TopicPartition, i64>>>,
}

impl Checkpoint {
    /// The points to write now: every open log's durable offset, plus the start-up points
    /// of partitions that exist but are not open (offline ones keep theirs).
    fn current(&self, logs: &Logs) -> BTreeMap<TopicPartition, i64> {
        let mut points: BTreeMap<TopicPartition, i64> = lock(logs)
            .iter()
            .map(|(tp, log)| (tp.clone(), (self.value)(log)))
            .collect();
        for (name, offset) in lock(&self.at_start).iter() {
            if let Some(tp) = TopicPartition::from_dir_name(name) {
                points.entry(tp).or_insert(*offset);
            }
        }
        points
    }

    /// Writes the file if a point moved since the last write (or `force`).
    fn write(&self, logs: &Logs, force: bool) -> Result<(), StorageError> {
        let points = self.current(logs);
        let mut last = lock(&self.last_written);
        if !force && last.as_ref() == Some(&points) {
            return Ok(());
        }
        recovery_point::write_named(&self.data_dir, self.file, &points)?;
        *last = Some(points);
        Ok(())
    }

    fn open(data_dir: &Path, file: &'static str, value: fn(&PartitionLog) -> i64) -> Checkpoint {
        Checkpoint {
            data_dir: data_dir.to_owned(),
            file,
            value,
            at_start: Mutex::new(recovery_point::read_named(data_dir, file)),
            last_written: Mutex::new(None),
        }
    }

    /// Forgets a partition read at start (it was opened or deleted); returns its value.
    fn take(&self, name: &str) -> Option<i64> {
        lock(&self.at_start).remove(name)
    }
}

/// The checkpoints the flusher thread keeps up to date.
#[derive(Debug)]
struct Checkpoints {
    recovery_points: Checkpoint,
    log_starts: Checkpoint,
    cleaner_offsets: Checkpoint,
}

impl Checkpoints {
    fn write(&self, logs: &Logs, force: bool) -> Result<(), StorageError> {
        self.recovery_points.write(logs, force)?;
        self.log_starts.write(logs, force)?;
        self.cleaner_offsets.write(logs, force)
    }
}

/// All partition logs of one data directory.
#[derive(Debug)]
pub struct LogManager {
    data_dir: PathBuf,
    _lock: io::DirLock,
    io: Io,
    /// Partitions the marker said were cleanly closed, minus those opened since.
    clean_at_start: Mutex<BTreeSet<String>>,
    logs: Logs,
    delete_counter: AtomicU64,
    /// The recovery-point and log-start checkpoints ([`crate::recovery_point`]).
    checkpoint: Arc<Checkpoints>,
    /// The retention thread, once started ([`LogManager::start_retention`]); stopped on drop.
    retention: Mutex<Option<Retention>>,
    /// Files of deleted segments waiting for `file.delete.delay.ms`.
    pending_removals: Arc<PendingRemovals>,
    /// The log cleaner thread, once started ([`LogManager::start_cleaner`]); stopped on drop.
    cleaner: Mutex<Option<Cleaner>>,
    /// Held for its `Drop`, which stops the thread.
    _flusher: Flusher,
    /// The sync thread behind [`PartitionLog::sync_async`]; stopped on drop.
    syncer: Syncer,
    /// The scrubber thread, once started ([`LogManager::start_scrubber`]); stopped on drop.
    scrubber: Mutex<Option<Scrubber>>,
    /// Tiered storage, once started ([`LogManager::start_remote`]).
    remote: Mutex<Option<Arc<RemoteStorage>>>,
}

/// The `flush.ms` thread (and the checkpoints' writer); stopped and joined on drop.
#[derive(Debug)]
struct Flusher {
    _thread: Background,
}

impl Flusher {
    fn start(logs: Logs, checkpoint: Arc<Checkpoints>) -> Result<Flusher, StorageError> {
        let thread = Background::start("floe-log-flusher", move |stop| {
            flusher_loop(&logs, &checkpoint, stop)
        })?;
        Ok(Flusher { _thread: thread })
    }
}

fn flusher_loop(logs: &Logs, checkpoint: &Checkpoints, stop: &Stop) {
    let mut last_checkpoint = Instant::now();
    while !stop.is_set() {
        if last_checkpoint.elapsed() >= recovery_point::CHECKPOINT_INTERVAL {
            if let Err(error) = checkpoint.write(logs, false) {
                tracing::warn!(%error, "cannot write the checkpoints");
            }
            last_checkpoint = Instant::now();
        }
        let open: Vec<Arc<PartitionLog>> = lock(logs).values().cloned().collect();
        let mut tick = FLUSH_TICK;
        if !open.is_empty() {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            for log in &open {
                let flush_ms = log.config().flush_ms;
                if flush_ms == u64::MAX {
                    continue;
                }
                // Wake often enough to honour the smallest flush.ms within ~10%.
                tick = tick.min(Duration::from_millis((flush_ms / 10).max(1)));
                if let Err(error) = log.flush_if_due(now) {
                    // The log took itself offline; appends report it.
                    tracing::error!(partition = %log.topic_partition(), %error, "flush.ms sync failed");
                }
            }
        }
        if stop.sleep(tick) {
            return;
        }
    }
}

impl LogManager {
    /// Opens (creating) the data directory with the std I/O backend and takes its lock. Fails
    /// with [`StorageError::DirLocked`] if another process has it open.
    pub fn open(data_dir: &Path) -> Result<LogManager, StorageError> {
        LogManager::open_with(data_dir, Io::std())
    }

    /// Opens (creating) the data directory with the given I/O backend (see
    /// [`Io::from_mode`]) and takes its lock.
    pub fn open_with(data_dir: &Path, io: Io) -> Result<LogManager, StorageError> {
        io::create_dir_all(data_dir)?;
        let dir_lock = io::lock_exclusive(&data_dir.join(LOCK_FILE))?;
        let marker = data_dir.join(CLEAN_SHUTDOWN_FILE);
        let clean: BTreeSet<String> = match io::read_file(&marker)? {
            Some(bytes) => {
                let clean = String::from_utf8_lossy(&bytes)
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
                    .collect();
                io::remove_file(&marker)?;
                io::sync_dir(data_dir)?;
                clean
            }
            None => BTreeSet::new(),
        };
        if clean.is_empty() {
            tracing::info!(
                "no clean-shutdown marker: every partition is recovered from its recovery point"
            );
        } else {
            tracing::info!(
                partitions = clean.len(),
                "clean-shutdown marker found: these partitions skip recovery"
            );
        }
        let logs: Logs = Arc::new(Mutex::new(HashMap::new()));
        let checkpoint = Arc::new(Checkpoints {
            recovery_points: Checkpoint::open(
                data_dir,
                recovery_point::CHECKPOINT_FILE,
                PartitionLog::durable_offset,
            ),
            log_starts: Checkpoint::open(
                data_dir,
                recovery_point::LOG_START_FILE,
                PartitionLog::log_start_offset,
            ),
            cleaner_offsets: Checkpoint::open(
                data_dir,
                recovery_point::CLEANER_OFFSET_FILE,
                PartitionLog::cleaned_to,
            ),
        });
        Ok(LogManager {
            data_dir: data_dir.to_owned(),
            _lock: dir_lock,
            io,
            clean_at_start: Mutex::new(clean),
            _flusher: Flusher::start(Arc::clone(&logs), Arc::clone(&checkpoint))?,
            checkpoint,
            syncer: Syncer::start()?,
            scrubber: Mutex::new(None),
            remote: Mutex::new(None),
            retention: Mutex::new(None),
            cleaner: Mutex::new(None),
            pending_removals: Arc::new(PendingRemovals::default()),
            logs,
            delete_counter: AtomicU64::new(0),
        })
    }

    /// Writes the recovery-point and log-start checkpoints now (the flusher thread does it
    /// every [`recovery_point::CHECKPOINT_INTERVAL`] when a value moved).
    pub fn checkpoint_recovery_points(&self) -> Result<(), StorageError> {
        self.checkpoint.write(&self.logs, true)
    }

    /// Starts (or restarts with new settings) the retention thread ([`crate::retention`]).
    pub fn start_retention(&self, config: RetentionConfig) -> Result<(), StorageError> {
        let mut retention = lock(&self.retention);
        *retention = None; // stops the old thread first
        *retention = Some(Retention::start(
            Arc::clone(&self.logs),
            Arc::clone(&self.pending_removals),
            config,
        )?);
        Ok(())
    }

    /// Opens the remote store of tiered storage ([`crate::remote`]) and starts its upload
    /// thread. Call before opening partitions: a tiered partition is attached to its remote
    /// part when it is opened (and rebuilt from it when its directory is missing).
    pub fn start_remote(&self, config: RemoteConfig) -> Result<(), StorageError> {
        let storage = Arc::new(RemoteStorage::open(
            config,
            &self.data_dir,
            self.io.clone(),
        )?);
        storage.start_uploader(Arc::clone(&self.logs))?;
        if let Some(old) = lock(&self.remote).replace(storage) {
            old.stop();
        }
        Ok(())
    }

    /// Starts (or restarts with new settings) the log cleaner thread ([`crate::cleaner`]).
    pub fn start_cleaner(&self, config: CleanerConfig) -> Result<(), StorageError> {
        let mut cleaner = lock(&self.cleaner);
        *cleaner = None; // stops the old thread first
        *cleaner = Some(Cleaner::start(
            Arc::clone(&self.logs),
            Arc::clone(&self.pending_removals),
            config,
        )?);
        Ok(())
    }

    /// Kafka's DeleteRecords on one of this directory's logs
    /// ([`PartitionLog::delete_records`]): the new log start offset is in the log-start
    /// checkpoint, durably, when this returns, and the deleted segments' files are removed
    /// after `file.delete.delay.ms`. Blocks.
    pub fn delete_records(
        &self,
        log: &PartitionLog,
        offset: i64,
    ) -> Result<i64, DeleteRecordsError> {
        let (start, deleted) = log.delete_records(offset)?;
        let delay = std::time::Duration::from_millis(log.config().file_delete_delay_ms);
        self.pending_removals.schedule(deleted, delay);
        self.checkpoint.log_starts.write(&self.logs, false)?;
        Ok(start)
    }

    /// Starts (or restarts with new settings) the background scrubber that checks the CRCs
    /// of closed segments ([`crate::scrubber`]); a rate of 0 stops it.
    pub fn start_scrubber(&self, config: ScrubConfig) -> Result<(), StorageError> {
        let mut scrubber = lock(&self.scrubber);
        *scrubber = None; // stops the old thread first
        *scrubber = Some(Scrubber::start(Arc::clone(&self.logs), config)?);
        Ok(())
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The I/O backend every log of this directory uses.
    pub fn io(&self) -> &Io {
        &self.io
    }

    /// Opens a partition's log: creates its directory if missing, otherwise recovers it.
    /// Idempotent: a partition that is already open is returned as is (and `config` ignored).
    pub fn open_partition(
        &self,
        tp: &TopicPartition,
        config: LogConfig,
    ) -> Result<Arc<PartitionLog>, StorageError> {
        let mut logs = lock(&self.logs);
        if let Some(log) = logs.get(tp) {
            return Ok(Arc::clone(log));
        }
        let name = tp.dir_name();
        let dir = self.data_dir.join(&name);
        let remote_storage = lock(&self.remote)
            .clone()
            .filter(|_| config.remote_storage_enable);
        // A tiered partition learns its remote part first: a missing directory is rebuilt
        // from it (a broker that lost its disk), and reads below the local start need it.
        let mut remote: Option<Arc<RemoteLog>> = None;
        let fresh = !has_segments(&dir)?;
        if let Some(storage) = &remote_storage {
            match storage.load_blocking(tp, &config) {
                Ok(loaded) => remote = Some(loaded),
                // A new directory must not start at offset 0 over an unknown remote part.
                Err(e) if fresh => return Err(e),
                Err(error) => {
                    tracing::warn!(partition = %tp, %error, "cannot load the remote manifest; the uploader attaches it when the store is reachable");
                }
            }
        }
        // A checkpoint only says something about the directory it was written for.
        let durable_hint = self.checkpoint.recovery_points.take(&name);
        let start_hint = self.checkpoint.log_starts.take(&name);
        let cleaned_hint = self.checkpoint.cleaner_offsets.take(&name);
        let hints = if !fresh {
            OpenHints {
                durable: durable_hint,
                log_start: start_hint,
                cleaned_to: cleaned_hint,
            }
        } else {
            io::create_dir_all(&dir)?;
            io::sync_dir(&self.data_dir)?;
            match (&remote_storage, &remote) {
                (Some(storage), Some(remote)) => self.rebuild_from_remote(storage, remote, &dir)?,
                _ => OpenHints::default(),
            }
        };
        let clean = lock(&self.clean_at_start).remove(&name);
        let log = Arc::new(PartitionLog::open(
            self.io.clone(),
            Arc::clone(self.syncer.queue()),
            tp.clone(),
            dir,
            config,
            clean,
            hints,
        )?);
        if let Some(remote) = remote {
            log.attach_remote(remote);
        }
        logs.insert(tp.clone(), Arc::clone(&log));
        Ok(log)
    }

    /// Prepares the empty directory of a tiered partition to continue where its remote
    /// part ends: an empty first segment at the remote end, and the producer state uploaded
    /// with the last remote segment. Everything uploaded is served again; what was never
    /// uploaded is lost with the disk that held it.
    fn rebuild_from_remote(
        &self,
        storage: &RemoteStorage,
        remote: &RemoteLog,
        dir: &Path,
    ) -> Result<OpenHints, StorageError> {
        let manifest = remote.manifest();
        let (Some(end), Some(last)) = (manifest.end(), manifest.segments.last()) else {
            return Ok(OpenHints::default());
        };
        crate::segment::Segment::create(&self.io, dir, end)?;
        let snapshot =
            storage.download_snapshot(remote, last, producer_state::snapshot_path(dir, end))?;
        let aborted: Vec<producer_state::AbortedTxn> = manifest
            .segments
            .iter()
            .flat_map(|s| s.aborted.iter())
            .map(
                |&[producer_id, first_offset, last_offset, last_stable_offset]| {
                    producer_state::AbortedTxn {
                        producer_id,
                        first_offset,
                        last_offset,
                        last_stable_offset,
                    }
                },
            )
            .collect();
        if !aborted.is_empty() {
            crate::txn_index::write_file(&self.io, dir, &aborted)?;
        }
        io::sync_dir(dir)?;
        tracing::info!(
            dir = %dir.display(),
            log_start = manifest.log_start_offset,
            log_end = end,
            segments = manifest.segments.len(),
            producer_state = snapshot,
            "rebuilt partition from its remote manifest"
        );
        Ok(OpenHints {
            durable: Some(end),
            log_start: Some(manifest.log_start_offset),
            cleaned_to: None,
        })
    }

    /// The open log of a partition.
    pub fn get(&self, tp: &TopicPartition) -> Option<Arc<PartitionLog>> {
        lock(&self.logs).get(tp).cloned()
    }

    /// Closes a partition's log and removes its directory (renamed to `*-delete` first).
    /// The remote part of a tiered partition is deleted too (in the background).
    pub fn delete_partition(&self, tp: &TopicPartition) -> Result<(), StorageError> {
        if let Some(log) = lock(&self.logs).remove(tp) {
            log.mark_deleted();
            let config = log.config();
            if config.remote_storage_enable
                && let Some(storage) = lock(&self.remote).clone()
            {
                storage.delete_partition(tp, &config);
            }
        }
        let name = tp.dir_name();
        lock(&self.clean_at_start).remove(&name);
        self.checkpoint.recovery_points.take(&name);
        self.checkpoint.log_starts.take(&name);
        self.checkpoint.cleaner_offsets.take(&name);
        // A partition created again under this name must not inherit the old values.
        if let Err(error) = self.checkpoint.write(&self.logs, false) {
            tracing::warn!(%error, "cannot write the checkpoints");
        }
        let dir = self.data_dir.join(&name);
        if !io::exists(&dir) {
            return Ok(());
        }
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let n = self.delete_counter.fetch_add(1, Ordering::Relaxed);
        let doomed = self
            .data_dir
            .join(format!("{name}.{nanos:x}{n:x}{DELETE_SUFFIX}"));
        io::rename(&dir, &doomed)?;
        io::sync_dir(&self.data_dir)?;
        io::remove_dir_all(&doomed)?;
        io::sync_dir(&self.data_dir)
    }

    /// The partitions that have a directory on disk, sorted. Removes leftovers of interrupted
    /// deletions (`*-delete` directories) and ignores other entries.
    pub fn partition_dirs(&self) -> Result<Vec<TopicPartition>, StorageError> {
        let mut out = Vec::new();
        for entry in io::list_dir(&self.data_dir)? {
            if !entry.is_dir {
                continue;
            }
            if entry.name.ends_with(DELETE_SUFFIX) {
                tracing::info!(dir = %entry.path.display(), "removing partition left by an interrupted delete");
                io::remove_dir_all(&entry.path)?;
                continue;
            }
            if let Some(tp) = TopicPartition::from_dir_name(&entry.name) {
                out.push(tp);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Clean shutdown: closes every open log (sync, producer snapshot) and then writes the
    /// clean-shutdown marker. If any log fails to close, no marker is written and the first
    /// error is returned, so the next start recovers.
    pub fn shutdown(&self) -> Result<(), StorageError> {
        // No retention pass, clean or upload may change a log while it closes.
        *lock(&self.cleaner) = None;
        *lock(&self.retention) = None;
        if let Some(remote) = lock(&self.remote).clone() {
            remote.stop();
        }
        let logs: Vec<(TopicPartition, Arc<PartitionLog>)> = lock(&self.logs)
            .iter()
            .map(|(tp, log)| (tp.clone(), Arc::clone(log)))
            .collect();
        let mut clean: BTreeSet<String> = lock(&self.clean_at_start).clone();
        let mut first_error = None;
        for (tp, log) in logs {
            match log.close() {
                Ok(()) => {
                    clean.insert(tp.dir_name());
                }
                Err(e) => {
                    tracing::error!(partition = %tp, error = %e, "failed to close partition log");
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        // Everything is synced now; a later crash starts from these points.
        if let Err(error) = self.checkpoint.write(&self.logs, true) {
            tracing::warn!(%error, "cannot write the checkpoints");
        }
        let mut contents = String::new();
        for name in &clean {
            contents.push_str(name);
            contents.push('\n');
        }
        self.io.write_atomic(
            &self.data_dir.join(CLEAN_SHUTDOWN_FILE),
            contents.as_bytes(),
        )
    }
}

/// Whether a partition directory holds any segment (a directory created but never given
/// one, as a crash can leave it, counts as missing).
fn has_segments(dir: &Path) -> Result<bool, StorageError> {
    if !io::exists(dir) {
        return Ok(false);
    }
    Ok(io::list_dir(dir)?
        .iter()
        .any(|e| !e.is_dir && e.name.ends_with(crate::segment::LOG_SUFFIX)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::batch;
    use crate::test_util::open_manager;

    fn data_dir_lock_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let first = open_manager(dir.path());
        assert!(matches!(
            LogManager::open_with(dir.path(), crate::test_util::backend()),
            Err(StorageError::DirLocked { .. })
        ));
        drop(first);
        open_manager(dir.path());
    }

    fn open_partition_is_idempotent_and_listed() {
        let dir = tempfile::tempdir().unwrap();
        let manager = open_manager(dir.path());
        let a = TopicPartition::new("my-topic", 1);
        let log = manager.open_partition(&a, LogConfig::default()).unwrap();
        let again = manager.open_partition(&a, LogConfig::default()).unwrap();
        assert!(Arc::ptr_eq(&log, &again));
        assert!(Arc::ptr_eq(&log, &manager.get(&a).unwrap()));
        manager
            .open_partition(&TopicPartition::new("b", 0), LogConfig::default())
            .unwrap();
        std::fs::create_dir(dir.path().join("not a partition")).unwrap();
        std::fs::create_dir(dir.path().join("gone-0.1a2b-delete")).unwrap();
        assert_eq!(
            manager.partition_dirs().unwrap(),
            vec![TopicPartition::new("b", 0), a.clone()]
        );
        assert!(!dir.path().join("gone-0.1a2b-delete").exists());
        assert!(
            dir.path()
                .join("my-topic-1")
                .join("00000000000000000000.log")
                .exists()
        );
    }

    fn delete_partition_removes_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let manager = open_manager(dir.path());
        let tp = TopicPartition::new("doomed", 0);
        let log = manager.open_partition(&tp, LogConfig::default()).unwrap();
        log.append_now(batch("x", 2, 0), 0).unwrap();
        manager.delete_partition(&tp).unwrap();
        assert!(manager.get(&tp).is_none());
        assert!(!dir.path().join("doomed-0").exists());
        assert!(manager.partition_dirs().unwrap().is_empty());
        assert_eq!(
            std::fs::read_dir(dir.path())
                .unwrap()
                .filter(|e| e.as_ref().unwrap().path().is_dir())
                .count(),
            0
        );
        assert!(log.append_now(batch("y", 1, 0), 0).is_err());
        assert!(log.read(0, 100).is_err());
        // Deleting again, or something never created, is fine; re-creating starts empty.
        manager.delete_partition(&tp).unwrap();
        let log = manager.open_partition(&tp, LogConfig::default()).unwrap();
        assert_eq!(log.log_end_offset(), 0);
    }

    fn failed_close_writes_no_clean_marker() {
        let dir = tempfile::tempdir().unwrap();
        let (io, faults) = crate::test_util::backend().with_faults();
        let manager = LogManager::open_with(dir.path(), io).unwrap();
        let tp = TopicPartition::new("t", 0);
        let log = manager.open_partition(&tp, LogConfig::default()).unwrap();
        log.append_now(batch("x", 1, 0), 0).unwrap();
        faults.fail_syncs();
        assert!(manager.shutdown().is_err());
        assert!(!dir.path().join(CLEAN_SHUTDOWN_FILE).exists());
    }

    fn clean_shutdown_marker_lists_partitions_and_is_consumed() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join(CLEAN_SHUTDOWN_FILE);
        let (a, b) = (TopicPartition::new("a", 0), TopicPartition::new("b", 0));
        {
            let manager = open_manager(dir.path());
            manager.open_partition(&a, LogConfig::default()).unwrap();
            manager.open_partition(&b, LogConfig::default()).unwrap();
            manager.shutdown().unwrap();
        }
        assert_eq!(std::fs::read_to_string(&marker).unwrap(), "a-0\nb-0\n");
        {
            // Only `a` is opened; `b` stays clean from before.
            let manager = open_manager(dir.path());
            assert!(!marker.exists());
            manager.open_partition(&a, LogConfig::default()).unwrap();
            manager.shutdown().unwrap();
        }
        assert_eq!(std::fs::read_to_string(&marker).unwrap(), "a-0\nb-0\n");
        {
            // Crash: no marker afterwards.
            let manager = open_manager(dir.path());
            manager.open_partition(&a, LogConfig::default()).unwrap();
        }
        assert!(!marker.exists());
        {
            let manager = open_manager(dir.path());
            assert!(lock(&manager.clean_at_start).is_empty());
        }
    }

    crate::test_util::on_both_backends!(
        data_dir_lock_is_exclusive,
        open_partition_is_idempotent_and_listed,
        delete_partition_removes_the_directory,
        failed_close_writes_no_clean_marker,
        clean_shutdown_marker_lists_partitions_and_is_consumed,
    );
}

//! Group commit: how appended records become durable, and the one way each caller asks for it.
//!
//! An append is visible to readers as soon as it is in the page cache; durability comes from
//! syncs shared by every caller that wants one:
//!
//! - At most one sync per log is in flight. A caller that finds one in flight waits for it
//!   and returns if it covered its target; otherwise the first waiter leads the next sync,
//!   which covers everything appended up to its start, so every caller that arrived during a
//!   sync shares the next one. `durable_offset` records how far the log is known to be on
//!   disk, and the log's durability watch publishes it.
//! - A rolled segment's files (and the directory entry of the new segment) are synced by the
//!   next sync, which the rolling append requests from the sync thread (it never syncs on
//!   its own thread); the sync that covers them then writes the producer snapshot for the
//!   new segment's base offset. `flush.messages` likewise asks the sync thread, and the
//!   append reports `flush_due` so its caller waits for that sync before answering.
//! - Any failed sync marks the log failed (see [`PartitionLog`]).
//!
//! Entry points, one per kind of caller:
//!
//! - [`PartitionLog::sync`]: blocking, on the caller's thread; for storage threads and
//!   `spawn_blocking` (a roll, `flush.messages`, close, the group coordinator's offsets).
//! - [`PartitionLog::sync_async`]: a future for callers on the runtime (acks=all produce,
//!   tableflow before a commit). The data directory's sync thread ([`Syncer`]) leads, in each
//!   round, the syncs of every log requested since its previous round; waiters watch the
//!   log's durability and hold no thread.
//! - [`sync_logs`]: blocking, several logs at once, their fdatasyncs issued as one batch (one
//!   io_uring submission); the sync thread's round.
//! - [`PartitionLog::flush_if_due`]: Kafka's `flush.ms`, called by the log manager's flusher
//!   thread. (`flush.messages` is checked by the append itself.)

use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;

use super::{NONE_UNSYNCED, PartitionLog, wall_clock_ms};
use crate::error::{IoOp, StorageError};
use crate::io;
use crate::producer_state::{self, ProducerStateManager};

/// What the next sync of a log must do, planned by the caller that leads it.
#[derive(Debug)]
struct SyncPlan {
    /// The files to fdatasync: first the rolled segments' files pending at the plan, then
    /// the active segment's `.log`.
    files: Vec<Arc<io::File>>,
    /// How many of `files` are rolled segments' files. Only those leave the unsynced list
    /// when the sync succeeds: the active `.log` may be rolled while the sync runs, and its
    /// writes after the plan are not covered, so it must stay for the next sync.
    rolled_files: usize,
    /// Log end when planned: durable once the files are synced.
    end: i64,
    dir_dirty: bool,
    started_ms: i64,
    /// Producer snapshots of segments rolled before the plan: written once it succeeded.
    snapshots: Vec<(i64, ProducerStateManager)>,
}

enum SyncStep {
    /// Nothing to do (durable already, or the log failed).
    Done(Result<(), StorageError>),
    /// This caller leads the next sync.
    Lead(SyncPlan),
}

/// Makes every log in `logs` durable up to its log end at the call, like
/// [`PartitionLog::sync`] on each, but leading the syncs of all of them at once: their
/// fdatasyncs go to the backend as one batch (one submission on io_uring), so a request
/// touching many partitions waits about one sync, not one per partition. Logs whose sync is
/// in flight are waited for afterwards. Returns one result per log, in order.
pub fn sync_logs(logs: &[&PartitionLog]) -> Vec<Result<(), StorageError>> {
    let targets: Vec<i64> = logs.iter().map(|l| l.log_end_offset()).collect();
    let mut results: Vec<Option<Result<(), StorageError>>> = logs.iter().map(|_| None).collect();
    // Take the lead where no sync is in flight (never waiting here: a caller that leads one
    // log must not block on another's leader, who may be waiting on this one).
    let mut led: Vec<(usize, SyncPlan)> = Vec::new();
    for (i, log) in logs.iter().enumerate() {
        let mut in_flight = log.sync_in_flight();
        if log.is_failed() {
            results[i] = Some(Err(StorageError::LogFailed {
                path: log.dir.clone(),
            }));
        } else if log.durable_offset() >= targets[i] {
            results[i] = Some(Ok(()));
        } else if !*in_flight {
            *in_flight = true;
            drop(in_flight);
            led.push((i, log.plan_sync()));
        }
    }
    // Group by backend (all logs of one manager share one); normally a single batch.
    let mut outcomes: Vec<Option<Result<(), StorageError>>> = led.iter().map(|_| None).collect();
    let mut done = vec![false; led.len()];
    for first in 0..led.len() {
        if done[first] {
            continue;
        }
        let io = &logs[led[first].0].io;
        let members: Vec<usize> = (first..led.len())
            .filter(|&k| !done[k] && logs[led[k].0].io.same_backend(io))
            .collect();
        let mut files: Vec<&io::File> = Vec::new();
        let mut owner: Vec<usize> = Vec::new();
        for &k in &members {
            done[k] = true;
            for f in &led[k].1.files {
                files.push(f);
                owner.push(k);
            }
        }
        let started = std::time::Instant::now();
        let synced = io.sync_each(&files);
        metrics::histogram!("floe_log_fsync_seconds").record(started.elapsed().as_secs_f64());
        for (k, result) in owner.into_iter().zip(synced) {
            let slot = outcomes[k].get_or_insert(Ok(()));
            if slot.is_ok()
                && let Err(e) = result
            {
                *slot = Err(e);
            }
        }
    }
    for ((i, plan), outcome) in led.into_iter().zip(outcomes) {
        results[i] = Some(logs[i].finish_sync(plan, outcome.unwrap_or(Ok(()))));
    }
    // The rest had a sync in flight (or failed to lead): wait and, if needed, lead alone.
    logs.iter()
        .zip(targets)
        .zip(results)
        .map(|((log, target), result)| result.unwrap_or_else(|| log.sync_to(target)))
        .collect()
}

impl PartitionLog {
    /// Makes everything appended so far durable (fdatasync). Blocking; see the module docs
    /// for how concurrent callers share syncs (group commit).
    pub fn sync(&self) -> Result<(), StorageError> {
        let target = self.log_end.load(Ordering::Acquire);
        self.sync_to(target)
    }

    /// Makes everything appended so far durable without blocking the caller: the data
    /// directory's sync thread syncs this log in its next round (shared with every other
    /// log and caller waiting then, see [`SyncQueue`]) and the returned future resolves
    /// once the records appended before this call are on stable storage, or with the error
    /// that took the log offline. The sync is requested at the call, not when the future is
    /// first polled.
    pub fn sync_async(
        self: &Arc<Self>,
    ) -> impl Future<Output = Result<(), StorageError>> + Send + 'static {
        let target = self.log_end.load(Ordering::Acquire);
        let mut rx = self.durable_tx.subscribe();
        let now = *rx.borrow_and_update();
        if !now.failed && now.offset < target {
            self.sync_queue.request(self);
        }
        let path = self.dir.clone();
        async move {
            match rx.wait_for(|d| d.offset >= target || d.failed).await {
                Ok(d) if d.offset >= target => Ok(()),
                // Failed, or the log was dropped (closed) without making the target durable.
                _ => Err(StorageError::LogFailed { path }),
            }
        }
    }

    pub(super) fn sync_in_flight(&self) -> MutexGuard<'_, bool> {
        self.sync_in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Where a log stands for a caller that wants it durable up to `target`.
    fn begin_sync(&self, target: i64) -> SyncStep {
        let mut in_flight = self.sync_in_flight();
        loop {
            if self.is_failed() {
                return SyncStep::Done(Err(StorageError::LogFailed {
                    path: self.dir.clone(),
                }));
            }
            // A roll with no record after it (a quiet segment rolled by `segment.ms`) still
            // has files, a directory entry and a snapshot to make durable.
            if self.durable_offset() >= target && !self.roll_pending() {
                return SyncStep::Done(Ok(()));
            }
            if !*in_flight {
                *in_flight = true;
                return SyncStep::Lead(self.plan_sync());
            }
            in_flight = self
                .sync_done
                .wait(in_flight)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// A roll left files, a directory entry or a producer snapshot for a sync.
    fn roll_pending(&self) -> bool {
        let inner = self.lock();
        !inner.unsynced.is_empty() || inner.dir_dirty || !inner.pending_snapshots.is_empty()
    }

    /// What the next sync covers: rolled segments' files, the active `.log`, the log end now.
    fn plan_sync(&self) -> SyncPlan {
        let started_ms = wall_clock_ms();
        let mut inner = self.lock();
        let mut files = inner.unsynced.clone();
        let rolled_files = files.len();
        if let Some(active) = inner.active() {
            files.push(Arc::clone(&active.log));
        }
        SyncPlan {
            files,
            rolled_files,
            end: self.log_end.load(Ordering::Acquire),
            dir_dirty: std::mem::take(&mut inner.dir_dirty),
            started_ms,
            snapshots: std::mem::take(&mut inner.pending_snapshots),
        }
    }

    /// Records the outcome of a sync this caller led and hands leadership back.
    fn finish_sync(
        &self,
        plan: SyncPlan,
        synced: Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        let result = synced.and_then(|()| {
            if plan.dir_dirty {
                io::sync_dir(&self.dir)
            } else {
                Ok(())
            }
        });
        let result = match result {
            Ok(()) => {
                let mut inner = self.lock();
                // Rolled segments' files are sealed and now synced: they go cold (their
                // handles may be closed while idle).
                let rolled = &plan.files[..plan.rolled_files];
                inner.unsynced.retain(|f| {
                    let synced = rolled.iter().any(|s| Arc::ptr_eq(s, f));
                    if synced {
                        f.make_cold();
                    }
                    !synced
                });
                self.durable_tx
                    .send_modify(|d| d.offset = d.offset.max(plan.end));
                // Under the append lock, so no append slips between the check and the store.
                // Records appended after the plan was made are younger than its start.
                let still_unsynced = self.log_end.load(Ordering::Acquire) > plan.end;
                self.oldest_unsynced_ms.store(
                    if still_unsynced {
                        plan.started_ms
                    } else {
                        NONE_UNSYNCED
                    },
                    Ordering::Release,
                );
                drop(inner);
                // Everything below each rolled base is durable now (the rolled files and
                // the directory entry were in this sync), so its snapshot may say so. Only
                // the newest one is written: recovery starts from the newest snapshot, and
                // each one costs two fsyncs (file and directory).
                // The aborted transactions below the snapshot go to the index file first:
                // recovery takes those from the file and replays the rest.
                if let Some((base, producers)) = plan.snapshots.last()
                    && let Err(error) = self.persist_txn_index(*base).and_then(|()| {
                        producer_state::write_snapshot(&self.io, &self.dir, *base, producers)
                    })
                {
                    // Only costs replay time at the next open; the data itself is durable.
                    tracing::warn!(dir = %self.dir.display(), %error, "failed to write producer snapshot");
                }
                Ok(())
            }
            Err(e) => self.fail(e),
        };
        *self.sync_in_flight() = false;
        self.sync_done.notify_all();
        result
    }

    fn sync_to(&self, target: i64) -> Result<(), StorageError> {
        loop {
            match self.begin_sync(target) {
                SyncStep::Done(result) => return result,
                SyncStep::Lead(plan) => {
                    let files: Vec<&io::File> = plan.files.iter().map(|f| &**f).collect();
                    let synced = self.io.sync_all(&files);
                    self.finish_sync(plan, synced)?;
                }
            }
        }
    }

    /// `flush.ms`: syncs if the oldest unsynced append is at least `flush_ms` old at `now_ms`.
    /// Called by the log manager's flusher thread.
    pub fn flush_if_due(&self, now_ms: i64) -> Result<(), StorageError> {
        let flush_ms = self.config().flush_ms;
        let oldest = self.oldest_unsynced_ms.load(Ordering::Acquire);
        if flush_ms == u64::MAX || oldest == NONE_UNSYNCED || self.lock().closed {
            return Ok(());
        }
        let age = u64::try_from(now_ms.saturating_sub(oldest)).unwrap_or(0);
        if age >= flush_ms {
            self.sync()?;
        }
        Ok(())
    }
}

/// Logs waiting for the next sync round.
#[derive(Debug, Default)]
pub(crate) struct SyncQueue {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Debug, Default)]
struct State {
    pending: Vec<Arc<PartitionLog>>,
    stopped: bool,
}

impl SyncQueue {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks for `log` to be synced in the next round (once, however often it is asked).
    /// After the thread stopped, the log is synced on the caller's thread instead, so no
    /// waiter is ever left behind.
    pub(crate) fn request(&self, log: &Arc<PartitionLog>) {
        let mut state = self.lock();
        if state.stopped {
            drop(state);
            // Outcome reported through the log's durability watch.
            let _ = log.sync();
            return;
        }
        if !state.pending.iter().any(|l| Arc::ptr_eq(l, log)) {
            state.pending.push(Arc::clone(log));
            if state.pending.len() == 1 {
                self.wake.notify_one();
            }
        }
    }

    /// Waits for the next round's logs; `None` once stopped with nothing pending.
    fn next_round(&self) -> Option<Vec<Arc<PartitionLog>>> {
        let mut state = self.lock();
        loop {
            if !state.pending.is_empty() {
                return Some(std::mem::take(&mut state.pending));
            }
            if state.stopped {
                return None;
            }
            state = self
                .wake
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// The sync thread; stopped (after a last round for what is pending) and joined on drop.
#[derive(Debug)]
pub(crate) struct Syncer {
    queue: Arc<SyncQueue>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Syncer {
    pub(crate) fn start() -> Result<Syncer, StorageError> {
        let queue = Arc::new(SyncQueue::default());
        let thread = {
            let queue = Arc::clone(&queue);
            thread::Builder::new()
                .name("floe-log-syncer".into())
                .spawn(move || {
                    while let Some(round) = queue.next_round() {
                        let logs: Vec<&PartitionLog> = round.iter().map(|l| &**l).collect();
                        metrics::histogram!("floe_group_commit_partitions")
                            .record(logs.len() as f64);
                        // Failures take the log offline and reach waiters via its watch.
                        let _ = sync_logs(&logs);
                    }
                })
                .map_err(|e| StorageError::io(IoOp::Open, "floe-log-syncer thread", e))?
        };
        Ok(Syncer {
            queue,
            thread: Some(thread),
        })
    }

    pub(crate) fn queue(&self) -> &Arc<SyncQueue> {
        &self.queue
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.queue.lock().stopped = true;
        self.queue.wake.notify_all();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("log sync thread panicked");
        }
    }
}

#[cfg(test)]
mod tests;

//! The sync thread of a data directory: group commit for callers that must not block.
//!
//! [`PartitionLog::sync_async`] registers its log here and returns a future; this thread
//! takes every log registered since its last round and makes them durable together with
//! [`sync_all`] (one batch of fdatasyncs, one io_uring submission). Requests that arrive
//! while a round is in flight are collected for the next round, so under load each round
//! covers everything appended during the previous one: a caller waits at most for the end
//! of the sync in flight plus one more sync, however many requests (of however many
//! connections and partitions) are pending. Waiters learn the outcome from the log's
//! durability watch, never from this thread directly.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;

use crate::error::{IoOp, StorageError};
use crate::partition_log::{PartitionLog, sync_all};

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
                        // Failures take the log offline and reach waiters via its watch.
                        let _ = sync_all(&logs);
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

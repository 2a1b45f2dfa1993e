//! The retention thread: every `log.retention.check.interval.ms` (the first time after at
//! most 30 s) it runs a retention pass
//! over every open log ([`PartitionLog::enforce_retention`]: rolls by `segment.ms`, deletes
//! the segments `retention.ms`, `retention.bytes` and the log start offset condemn), and it
//! removes the `*.deleted` files of deleted segments once their `file.delete.delay.ms` has
//! passed, gradually (4 MiB at a time, see [`PendingRemovals`]) and only once nothing holds
//! them open. Files still waiting when the broker stops are removed by the next recovery.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::background::{Background, Stop, lock};
use crate::error::StorageError;
use crate::io;
use crate::partition_log::PartitionLog;
use crate::partition_log::retention::Deleted;
use crate::topic_partition::TopicPartition;

/// Longest wait before the first retention pass.
const INITIAL_DELAY: Duration = Duration::from_secs(30);

/// How the retention thread runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionConfig {
    /// Kafka's `log.retention.check.interval.ms`: time between two retention passes.
    pub check_interval: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            check_interval: Duration::from_secs(300),
        }
    }
}

type Logs = Arc<Mutex<HashMap<TopicPartition, Arc<PartitionLog>>>>;

/// Bytes cut off a deleted file's end per step of its removal ([`io::shrink_or_remove`]).
const REMOVAL_CHUNK: u64 = 4 << 20;
/// Pause between two steps: at most 4 MiB freed per 10 ms, ~400 MB/s, faster than a disk
/// takes writes, so removals keep up with any produce rate.
const REMOVAL_PAUSE: Duration = Duration::from_millis(10);
/// Longest a call of [`PendingRemovals::remove_due`] works before the retention passes get
/// their turn (what is left stays due).
const REMOVAL_SLICE: Duration = Duration::from_secs(1);
/// Longest a due file still held open (a slow fetch, an upload) is waited for; then it is
/// unlinked as it is, and freed at once when the last holder closes it.
const IN_USE_GRACE: Duration = Duration::from_secs(60);

/// A file waiting for removal.
#[derive(Debug)]
struct Pending {
    file: io::DoomedFile,
    /// When it became due (`file.delete.delay.ms` after its segment was deleted).
    due: Instant,
}

/// Files of deleted segments and when they are due for removal; shared with DeleteRecords,
/// which deletes segments outside the thread's passes. A due file is removed gradually,
/// 4 MiB at a time ([`io::shrink_or_remove`] says why), once nothing holds it open.
#[derive(Debug, Default)]
pub(crate) struct PendingRemovals {
    due: Mutex<BTreeMap<Instant, Vec<Pending>>>,
}

impl PendingRemovals {
    /// Schedules the files of `deleted` for removal after `delay`.
    pub(crate) fn schedule(&self, deleted: Deleted, delay: Duration) {
        if deleted.files.is_empty() {
            return;
        }
        let due = Instant::now() + delay;
        let files = deleted.files.into_iter().map(|file| Pending { file, due });
        lock(&self.due).entry(due).or_default().extend(files);
    }

    /// Removes files that are due, for up to [`REMOVAL_SLICE`]; returns when the next one
    /// is due (now, if some are left over).
    pub(crate) fn remove_due(&self, stop: &Stop) -> Option<Instant> {
        let now = Instant::now();
        let mut ready: VecDeque<Pending> = {
            let mut due = lock(&self.due);
            let later = due.split_off(&now);
            std::mem::replace(&mut *due, later)
                .into_values()
                .flatten()
                .collect()
        };
        let mut again = Vec::new();
        let deadline = now + REMOVAL_SLICE;
        while let Some(pending) = ready.pop_front() {
            if Instant::now() >= deadline || stop.is_set() {
                again.push((now, pending));
                again.extend(ready.drain(..).map(|p| (now, p)));
                break;
            }
            let path = pending.file.path();
            if pending.file.in_use() {
                if now.saturating_duration_since(pending.due) < IN_USE_GRACE {
                    again.push((now + REMOVAL_TICK, pending));
                } else if let Err(error) = io::remove_file(path) {
                    tracing::warn!(file = %path.display(), %error, "cannot remove a deleted segment file");
                }
                continue;
            }
            match io::shrink_or_remove(path, REMOVAL_CHUNK) {
                Ok(true) => {}
                Ok(false) => {
                    ready.push_front(pending);
                    if stop.sleep(REMOVAL_PAUSE) {
                        // Left for the next recovery, which removes `*.deleted` files.
                        return None;
                    }
                }
                Err(error) => {
                    tracing::warn!(file = %path.display(), %error, "cannot remove a deleted segment file");
                }
            }
        }
        let mut due = lock(&self.due);
        for (when, pending) in again {
            due.entry(when).or_default().push(pending);
        }
        due.keys().next().copied()
    }
}

/// The retention thread; stopped and joined on drop.
#[derive(Debug)]
pub(crate) struct Retention {
    _thread: Background,
}

impl Retention {
    /// Starts the thread over the logs of a data directory.
    pub(crate) fn start(
        logs: Logs,
        pending: Arc<PendingRemovals>,
        config: RetentionConfig,
    ) -> Result<Retention, StorageError> {
        let thread = Background::start("floe-log-retention", move |stop| {
            run(&logs, &pending, config, stop)
        })?;
        Ok(Retention { _thread: thread })
    }
}

/// Longest sleep between looks at the removals due (one scheduled meanwhile may be due
/// sooner than what the thread was waiting for).
const REMOVAL_TICK: Duration = Duration::from_secs(1);

fn run(logs: &Logs, pending: &PendingRemovals, config: RetentionConfig, stop: &Stop) {
    // As Kafka: the first pass after 30 s (sooner with a shorter interval), so a broker that
    // starts serves before it deletes.
    let mut next_pass = Instant::now() + config.check_interval.min(INITIAL_DELAY);
    while !stop.is_set() {
        if Instant::now() >= next_pass {
            let open: Vec<Arc<PartitionLog>> = lock(logs).values().cloned().collect();
            for log in open {
                match log.enforce_retention(crate::partition_log::wall_clock_ms()) {
                    Ok(deleted) => {
                        let delay = Duration::from_millis(log.config().file_delete_delay_ms);
                        pending.schedule(deleted, delay);
                    }
                    Err(error) => tracing::error!(
                        partition = %log.topic_partition(),
                        %error,
                        "retention pass failed"
                    ),
                }
                if stop.is_set() {
                    return;
                }
            }
            next_pass = Instant::now() + config.check_interval;
        }
        let next_removal = pending.remove_due(stop);
        let wake_at = next_removal.map_or(next_pass, |r| r.min(next_pass));
        let wait = wake_at.saturating_duration_since(Instant::now());
        if stop.sleep(wait.min(REMOVAL_TICK)) {
            return;
        }
    }
}

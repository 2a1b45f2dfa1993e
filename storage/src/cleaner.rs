//! The log cleaner thread: compaction of `cleanup.policy=compact` logs
//! ([`crate::partition_log::compaction`]). Each round it picks the due log with the highest
//! dirty ratio (or one past `max.compaction.lag.ms`), cleans it, and goes on at once while
//! work remains; otherwise it sleeps `log.cleaner.backoff.ms`. Its memory is bounded by
//! `log.cleaner.dedupe.buffer.size` (the offset map) plus one record batch, and its reads
//! and writes together by `log.cleaner.io.max.bytes.per.second`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::background::{Background, Stop, lock};
use crate::error::StorageError;
use crate::partition_log::PartitionLog;
use crate::partition_log::compaction::{MAP_ENTRY_BYTES, Throttle};
use crate::retention::PendingRemovals;
use crate::topic_partition::TopicPartition;

/// How the cleaner runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CleanerConfig {
    /// Kafka's `log.cleaner.enable`.
    pub enabled: bool,
    /// Kafka's `log.cleaner.dedupe.buffer.size`: memory for the offset map.
    pub dedupe_buffer_bytes: usize,
    /// Kafka's `log.cleaner.io.max.bytes.per.second` (reads and writes together).
    pub io_max_bytes_per_second: f64,
    /// Kafka's `log.cleaner.backoff.ms`: sleep when no log needs cleaning.
    pub backoff: Duration,
}

impl Default for CleanerConfig {
    fn default() -> Self {
        CleanerConfig {
            enabled: true,
            dedupe_buffer_bytes: 128 * 1024 * 1024,
            io_max_bytes_per_second: f64::MAX,
            backoff: Duration::from_secs(15),
        }
    }
}

type Logs = Arc<Mutex<HashMap<TopicPartition, Arc<PartitionLog>>>>;

/// Keeps I/O under a rate by sleeping once ahead of it.
struct RateThrottle {
    rate: f64,
    state: Mutex<(Instant, u64)>,
}

impl Throttle for RateThrottle {
    fn account(&self, bytes: u64) {
        if !self.rate.is_finite() || self.rate <= 0.0 || self.rate >= f64::MAX {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (since, done) = &mut *state;
        *done += bytes;
        let due = Duration::from_secs_f64(*done as f64 / self.rate);
        let elapsed = since.elapsed();
        if due > elapsed {
            thread::sleep(due - elapsed);
        }
        // Start a new window now and then, so an idle stretch is not spent as credit.
        if since.elapsed() > Duration::from_secs(1) {
            *since = Instant::now();
            *done = 0;
        }
    }
}

/// The cleaner thread; stopped and joined on drop.
#[derive(Debug)]
pub(crate) struct Cleaner {
    _thread: Option<Background>,
}

impl Cleaner {
    /// Starts the thread (not at all when disabled).
    pub(crate) fn start(
        logs: Logs,
        pending: Arc<PendingRemovals>,
        config: CleanerConfig,
    ) -> Result<Cleaner, StorageError> {
        let thread = if config.enabled {
            Some(Background::start("floe-log-cleaner", move |stop| {
                run(&logs, &pending, config, stop)
            })?)
        } else {
            None
        };
        Ok(Cleaner { _thread: thread })
    }
}

/// The due log with the most to gain, if any.
fn pick(logs: &Logs, now: i64) -> Option<Arc<PartitionLog>> {
    let open: Vec<Arc<PartitionLog>> = lock(logs).values().cloned().collect();
    let mut best: Option<(bool, f64, Arc<PartitionLog>)> = None;
    for log in open {
        let config = log.config();
        if !config.cleanup_policy.compact || log.offline_reason().is_some() {
            continue;
        }
        let cleanable = match log.cleanable(now) {
            Ok(c) => c,
            Err(error) => {
                tracing::warn!(partition = %log.topic_partition(), %error, "log cleaner cannot inspect a log");
                continue;
            }
        };
        if !cleanable.due(&config) {
            continue;
        }
        let key = (cleanable.overdue, cleanable.ratio);
        if best.as_ref().is_none_or(|(o, r, _)| key > (*o, *r)) {
            best = Some((key.0, key.1, log));
        }
    }
    best.map(|(_, _, log)| log)
}

fn run(logs: &Logs, pending: &PendingRemovals, config: CleanerConfig, stop: &Stop) {
    let throttle = RateThrottle {
        rate: config.io_max_bytes_per_second,
        state: Mutex::new((Instant::now(), 0)),
    };
    let map_entries = (config.dedupe_buffer_bytes / MAP_ENTRY_BYTES).max(1);
    while !stop.is_set() {
        let mut worked = false;
        if let Some(log) = pick(logs, crate::partition_log::wall_clock_ms()) {
            match log.clean(
                map_entries,
                &throttle,
                crate::partition_log::wall_clock_ms(),
            ) {
                Ok(stats) => {
                    worked = stats.segments_cleaned > 0;
                    let delay = Duration::from_millis(log.config().file_delete_delay_ms);
                    pending.schedule(stats.deleted, delay);
                }
                Err(error) => {
                    tracing::error!(partition = %log.topic_partition(), %error, "log cleaning failed");
                }
            }
        }
        if !worked && stop.sleep(config.backoff) {
            return;
        }
    }
}

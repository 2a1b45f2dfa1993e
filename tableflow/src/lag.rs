//! Lag of every materialized partition: records and seconds between the log end and what
//! the table has committed, readable with [`LagRegistry::snapshot`]: the broker renders it
//! at each `/metrics` scrape (`floe_tableflow_lag_records`, `floe_tableflow_lag_seconds`),
//! so a table that goes away stops being reported.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lag of one partition of one table.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionLag {
    /// Topic.
    pub topic: String,
    /// Table (`namespace.name`).
    pub table: String,
    /// Partition.
    pub partition: i32,
    /// Records in the log not yet committed to the table.
    pub records: i64,
    /// Seconds since the oldest uncommitted record was seen in the log (0 when caught up).
    pub seconds: f64,
}

/// All current lags.
#[derive(Debug, Default)]
pub struct LagRegistry {
    lags: Mutex<BTreeMap<(String, i32), PartitionLag>>,
}

impl LagRegistry {
    /// Records the lag of a partition.
    pub fn set(&self, lag: PartitionLag) {
        self.lags
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((lag.topic.clone(), lag.partition), lag);
    }

    /// Forgets a topic (tables off or topic deleted).
    pub fn remove_topic(&self, topic: &str) {
        self.lags
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(t, _), _| t != topic);
    }

    /// Every partition's lag.
    pub fn snapshot(&self) -> Vec<PartitionLag> {
        self.lags
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }
}

/// When log end offsets were first seen, to turn a committed offset into seconds behind.
#[derive(Debug, Default)]
pub struct EndOffsetClock {
    seen: VecDeque<(i64, Instant)>,
}

impl EndOffsetClock {
    /// Notes that the log end is `end` now.
    pub fn observe(&mut self, end: i64, now: Instant) {
        match self.seen.back_mut() {
            Some((last, _)) if *last >= end => {}
            // Coalesce close observations (keeping the older time: lag is never understated).
            Some((last, at)) if now.duration_since(*at) < Duration::from_millis(10) => *last = end,
            _ => self.seen.push_back((end, now)),
        }
    }

    /// Seconds the oldest record at or after `committed` has been waiting.
    pub fn seconds_behind(&mut self, committed: i64, now: Instant) -> f64 {
        while self.seen.front().is_some_and(|(end, _)| *end <= committed) {
            self.seen.pop_front();
        }
        self.seen
            .front()
            .map_or(0.0, |(_, at)| now.duration_since(*at).as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock() {
        let t0 = Instant::now();
        let mut c = EndOffsetClock::default();
        c.observe(10, t0);
        c.observe(20, t0 + Duration::from_secs(1));
        let now = t0 + Duration::from_secs(3);
        assert_eq!(c.seconds_behind(5, now), 3.0);
        assert_eq!(c.seconds_behind(10, now), 2.0);
        assert_eq!(c.seconds_behind(20, now), 0.0);
        let r = LagRegistry::default();
        r.set(PartitionLag {
            topic: "t".into(),
            table: "default.t".into(),
            partition: 0,
            records: 3,
            seconds: 1.0,
        });
        assert_eq!(r.snapshot().len(), 1);
        r.remove_topic("t");
        assert!(r.snapshot().is_empty());
    }
}

/// Health of one table writer: failed commits so far, and why it stopped if it did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableStatus {
    /// Topic.
    pub topic: String,
    /// Table (`namespace.name`).
    pub table: String,
    /// Catalog commits that failed (each was retried; none advanced the table's offsets).
    pub commit_failures: u64,
    /// Set when the writer stopped for good and needs an operator (see `docs/tableflow.md`).
    pub stopped: Option<String>,
}

/// Status of every table writer, published as `floe_tableflow_commit_failures_total`
/// (counter) and `floe_tableflow_stopped` (gauge, 1 while stopped), labels `table`.
#[derive(Debug, Default)]
pub struct StatusRegistry {
    tables: Mutex<BTreeMap<String, TableStatus>>,
}

impl StatusRegistry {
    fn update(&self, topic: &str, table: &str, f: impl FnOnce(&mut TableStatus)) {
        let mut tables = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        let status = tables
            .entry(topic.to_string())
            .or_insert_with(|| TableStatus {
                topic: topic.to_string(),
                table: table.to_string(),
                ..TableStatus::default()
            });
        f(status);
    }

    /// A commit to `table` failed.
    pub fn commit_failed(&self, topic: &str, table: &str) {
        metrics::counter!("floe_tableflow_commit_failures_total", "table" => table.to_string())
            .increment(1);
        self.update(topic, table, |s| s.commit_failures += 1);
    }

    /// The writer of `table` stopped for good, for `reason`.
    pub fn stopped(&self, topic: &str, table: &str, reason: String) {
        metrics::gauge!("floe_tableflow_stopped", "table" => table.to_string()).set(1.0);
        self.update(topic, table, |s| s.stopped = Some(reason));
    }

    /// The writer of `table` is running (again).
    pub fn running(&self, topic: &str, table: &str) {
        metrics::gauge!("floe_tableflow_stopped", "table" => table.to_string()).set(0.0);
        self.update(topic, table, |s| s.stopped = None);
    }

    /// Forgets a topic (tables off or topic deleted).
    pub fn remove_topic(&self, topic: &str) {
        self.tables
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(topic);
    }

    /// Every table writer's status.
    pub fn snapshot(&self) -> Vec<TableStatus> {
        self.tables
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }
}

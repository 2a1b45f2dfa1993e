//! What a table writer does when the catalog or the warehouse fails, and what it keeps
//! meanwhile (`docs/tableflow.md`, "When the catalog or warehouse is down").
//!
//! - Retention holds: from its start, the writer holds back the retention of each partition
//!   log at the first offset its table has not committed (the log start until the table
//!   says where it is), for `table.retention.hold.ms`, so records are not deleted before
//!   they were materialized while the table cannot commit. The holds live as long as the
//!   writer, across its restarts after errors; a stopped writer (or one whose table is
//!   ahead of its log) releases them, so a dead table never holds retention.
//! - A commit attempt that failed may have landed all the same (the catalog swapped the
//!   metadata, then reading it back failed): before committing the same files again, the
//!   writer asks the catalog, and if the table already records the attempt's offsets it
//!   takes the table as it is instead of appending the rows twice.
//! - A commit attempt that failed while closing its data files lost the rows of those
//!   files with the writer: the writer restarts from the table's offsets instead of
//!   committing without them.
//! - `floe_tableflow_failing{table}` is 1 from the first failure until a commit lands or
//!   the writer is caught up again.

use std::collections::BTreeMap;

use floe_storage::PartitionLog;
use floe_storage::partition_log::retention::RetentionHold;

use super::TopicWorker;
use crate::error::TableflowError;
use crate::sink::TableSink;

/// A writer's state that outlives its restarts: its retention holds and its health gauge.
pub(super) struct WriterState {
    max_hold_ms: u64,
    holds: BTreeMap<i32, RetentionHold>,
    /// A commit landed since the last restart (the restart backoff starts over).
    pub(super) committed: bool,
    failing: metrics::Gauge,
}

impl WriterState {
    pub(super) fn new(table: &str, max_hold_ms: u64) -> WriterState {
        let failing = metrics::gauge!("floe_tableflow_failing", "table" => table.to_string());
        failing.set(0.0);
        WriterState {
            max_hold_ms,
            holds: BTreeMap::new(),
            committed: false,
            failing,
        }
    }

    /// Holds back the retention of `partition`'s log from `offset` on (nothing with a
    /// `table.retention.hold.ms` of 0).
    pub(super) fn hold(&mut self, partition: i32, log: &PartitionLog, offset: i64) {
        if self.max_hold_ms == 0 {
            return;
        }
        match self.holds.get(&partition) {
            Some(hold) if hold.is_on(log) => hold.set_offset(offset),
            _ => {
                self.holds
                    .insert(partition, log.hold_retention(offset, self.max_hold_ms));
            }
        }
    }

    /// Releases every hold (the table stopped for good).
    pub(super) fn release_holds(&mut self) {
        self.holds.clear();
    }

    /// The table is failing: its writer retries.
    pub(super) fn failing(&self) {
        self.failing.set(1.0);
    }

    /// The catalog and warehouse answer: a commit landed, or the writer is caught up.
    pub(super) fn healthy(&self) {
        self.failing.set(0.0);
    }
}

impl Drop for WriterState {
    fn drop(&mut self) {
        // A writer that is gone is not failing (its table may have been turned off).
        self.failing.set(0.0);
    }
}

/// How one commit attempt failed.
pub(super) enum Failure {
    /// Retry the commit (after backoff), with the files staged.
    Retry(TableflowError),
    /// Give the sinks up and restart from the table's offsets.
    Restart(TableflowError),
}

impl TopicWorker {
    /// Commits `sink` with `offsets`. `uncertain` says the previous attempt failed, so it may
    /// have landed: the catalog is asked first (see the module docs).
    pub(super) async fn commit_sink(
        &self,
        sink: &mut TableSink,
        offsets: &BTreeMap<i32, i64>,
        uncertain: &mut bool,
    ) -> Result<(), Failure> {
        if *uncertain {
            let layout = sink.layout().clone();
            let fresh = TableSink::open(
                self.catalog.as_ref(),
                sink.ident().clone(),
                &layout,
                false,
                self.settings.target_file_size_bytes,
            )
            .await
            .map_err(Failure::Retry)?
            .ok_or_else(|| {
                Failure::Restart(TableflowError::Internal(format!(
                    "table {} disappeared while committing",
                    sink.ident()
                )))
            })?
            .with_in_flight(self.in_flight.clone());
            if offsets.iter().all(|(p, o)| fresh.committed(*p) == Some(*o)) {
                tracing::info!(topic = %self.topic, table = %sink.ident(), "a commit reported as failed had landed; its files are not committed again");
                *sink = fresh;
                *uncertain = false;
                return Ok(());
            }
            if offsets
                .keys()
                .any(|p| fresh.committed(*p) != sink.committed(*p))
            {
                return Err(Failure::Restart(TableflowError::Internal(format!(
                    "the offsets of {} moved while its commit was retried",
                    sink.ident()
                ))));
            }
            *uncertain = false;
        }
        match sink.commit(self.catalog.as_ref(), offsets).await {
            Ok(()) => Ok(()),
            // Rows written since the last commit that are not staged went with a writer
            // whose files failed to close.
            Err(e) if sink.pending_rows > 0 => Err(Failure::Restart(e)),
            Err(e) => {
                *uncertain = true;
                Err(Failure::Retry(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    // Test code: a failed unwrap is a failed test, with its location.
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;

    use bytes::Bytes;
    use floe_storage::{LogConfig, LogManager, TopicPartition};
    use futures_util::TryStreamExt;
    use tokio::sync::watch;

    use super::*;
    use crate::config::{TableConfig, TableflowSettings};
    use crate::convert::{self, KafkaRecord};
    use crate::lag::{LagRegistry, StatusRegistry};
    use crate::maintenance::InFlight;
    use crate::schema::TableLayout;
    use crate::sink::table_ident;

    const TOPIC: &str = "events";

    async fn worker(dir: &std::path::Path) -> (TopicWorker, watch::Sender<bool>) {
        let settings = TableflowSettings::embedded(dir);
        let logs = Arc::new(LogManager::open(&dir.join("logs")).unwrap());
        logs.open_partition(&TopicPartition::new(TOPIC, 0), LogConfig::default())
            .unwrap();
        let configs = [("table.enable", "true"), ("table.mode", "key_value")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let cfg = TableConfig::from_topic(TOPIC, &configs, "default")
            .unwrap()
            .unwrap();
        let (stop_tx, stop) = watch::channel(false);
        let worker = TopicWorker {
            topic: TOPIC.to_string(),
            partitions: 1,
            cfg,
            logs,
            catalog: crate::sink::open_floe_catalog(&settings).await.unwrap(),
            settings,
            lag: Arc::new(LagRegistry::default()),
            status: Arc::new(StatusRegistry::default()),
            stop,
            in_flight: InFlight::default(),
            registry: None,
        };
        (worker, stop_tx)
    }

    async fn sink(w: &TopicWorker) -> TableSink {
        let layout = TableLayout::new(&w.cfg).unwrap();
        let ident = table_ident("default", TOPIC).unwrap();
        TableSink::open(w.catalog.as_ref(), ident, &layout, true, 1 << 20)
            .await
            .unwrap()
            .unwrap()
    }

    /// Writes rows for offsets `from..to` of partition 0.
    async fn write(sink: &mut TableSink, from: i64, to: i64) {
        let records: Vec<KafkaRecord> = (from..to)
            .map(|offset| KafkaRecord {
                partition: 0,
                offset,
                timestamp_ms: 0,
                key: None,
                value: Some(Bytes::from(format!("v{offset}"))),
                headers: Vec::new(),
            })
            .collect();
        let refs: Vec<&KafkaRecord> = records.iter().collect();
        let batch = convert::key_value_batch(sink.layout(), &refs).unwrap();
        sink.write(batch, 0).await.unwrap();
    }

    async fn rows(w: &TopicWorker) -> usize {
        let ident = table_ident("default", TOPIC).unwrap();
        let table = iceberg::Catalog::load_table(w.catalog.as_ref(), &ident)
            .await
            .unwrap();
        let batches: Vec<arrow_array::RecordBatch> = table
            .scan()
            .build()
            .unwrap()
            .to_arrow()
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        batches.iter().map(|b| b.num_rows()).sum()
    }

    /// A commit that landed although its writer was told it failed is not committed again:
    /// the writer asks the catalog first and takes the table as it is. One that did not land
    /// is committed with its staged rows.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_commit_that_landed_is_not_appended_twice() {
        let dir = tempfile::tempdir().unwrap();
        let (w, _stop) = worker(dir.path()).await;
        // `stale` is the writer whose commit "failed"; `other` lands the same offsets, as
        // the failed attempt would have.
        let mut stale = sink(&w).await;
        write(&mut stale, 0, 10).await;
        let mut other = sink(&w).await;
        write(&mut other, 0, 10).await;
        let offsets = BTreeMap::from([(0, 10)]);
        other.commit(w.catalog.as_ref(), &offsets).await.unwrap();
        assert_eq!(rows(&w).await, 10);

        let mut uncertain = true;
        assert!(
            w.commit_sink(&mut stale, &offsets, &mut uncertain)
                .await
                .is_ok()
        );
        assert!(!uncertain);
        assert_eq!(stale.committed(0), Some(10));
        assert_eq!(rows(&w).await, 10, "the landed commit was appended again");

        // Not landed: the retry commits the rows, once.
        write(&mut stale, 10, 15).await;
        let mut uncertain = true;
        let offsets = BTreeMap::from([(0, 15)]);
        assert!(
            w.commit_sink(&mut stale, &offsets, &mut uncertain)
                .await
                .is_ok()
        );
        assert_eq!(stale.committed(0), Some(15));
        assert_eq!(rows(&w).await, 15);
    }

    /// The retention holds follow the table's offsets and go with the writer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn holds_follow_the_table_and_go_with_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let (w, _stop) = worker(dir.path()).await;
        let log = w.logs.get(&TopicPartition::new(TOPIC, 0)).unwrap();
        let mut state = WriterState::new("default.events", 60_000);
        state.hold(0, &log, 0);
        assert_eq!(state.holds[&0].offset(), 0);
        state.hold(0, &log, 42);
        assert_eq!(state.holds[&0].offset(), 42);
        state.release_holds();
        assert!(state.holds.is_empty());
        let mut none = WriterState::new("default.events", 0);
        none.hold(0, &log, 0);
        assert!(
            none.holds.is_empty(),
            "table.retention.hold.ms=0 holds nothing"
        );
    }
}

//! One topic's materialization loop: read committed batches from every partition log,
//! decode them, stream rows into the table's open files (bad records into the `_dlq`
//! table), and commit when the commit interval has passed or the target file size is
//! reached. Wakes on the logs' end-offset watches, never on the produce path.
//!
//! Restart rule: each table resumes from the next offsets in its newest snapshot summary.
//! The dead-letter table is committed before the main table in every cycle, so after a
//! crash between the two the DLQ may be ahead; records it already holds are skipped by
//! offset, as are main-table records below the main table's offsets.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use floe_storage::{LogManager, PartitionLog, ReadError, TopicPartition};
use iceberg::Catalog;
use kafka_protocol::records::RecordBatchDecoder;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use crate::config::{TableConfig, TableMode, TableflowSettings};
use crate::convert::{self, KafkaRecord, Rejected};
use crate::error::TableflowError;
use crate::lag::{EndOffsetClock, LagRegistry, PartitionLag};
use crate::schema::TableLayout;
use crate::sink::{TableSink, table_ident};

/// Bytes read from one partition per read call.
const READ_BYTES: usize = 1024 * 1024;
/// Bytes read from one partition before moving to the next, so partitions share fairly.
const ROUND_BYTES: usize = 8 * 1024 * 1024;

/// What a worker needs.
pub(crate) struct TopicWorker {
    pub topic: String,
    pub partitions: i32,
    pub cfg: TableConfig,
    pub logs: Arc<LogManager>,
    pub catalog: Arc<dyn Catalog>,
    pub settings: TableflowSettings,
    pub lag: Arc<LagRegistry>,
    pub stop: watch::Receiver<bool>,
}

struct PartitionState {
    log: Arc<PartitionLog>,
    position: i64,
    committed: i64,
    dlq_skip: i64,
    clock: EndOffsetClock,
}

fn decode_batches(
    topic: &str,
    partition: i32,
    records: &Bytes,
    from: i64,
    out: &mut Vec<KafkaRecord>,
) -> Result<i64, TableflowError> {
    let mut next = from;
    for item in floe_protocol::record_batch::iter_batches(records) {
        let (header, range) = item.map_err(|e| TableflowError::Decode {
            topic: topic.to_string(),
            partition,
            offset: next,
            reason: e.to_string(),
        })?;
        if header.next_offset() <= from {
            continue;
        }
        next = header.next_offset();
        if header.is_control() {
            continue;
        }
        let mut buf = records.slice(range);
        let set = RecordBatchDecoder::decode(&mut buf).map_err(|e| TableflowError::Decode {
            topic: topic.to_string(),
            partition,
            offset: header.base_offset,
            reason: e.to_string(),
        })?;
        for r in set.records {
            if r.offset < from || r.control {
                continue;
            }
            out.push(KafkaRecord {
                partition,
                offset: r.offset,
                timestamp_ms: r.timestamp,
                key: r.key,
                value: r.value,
                headers: r
                    .headers
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
            });
        }
    }
    Ok(next)
}

impl TopicWorker {
    /// Runs until stopped; errors restart the loop from the tables' committed offsets.
    pub async fn run(mut self) {
        let mut backoff = Duration::from_millis(500);
        loop {
            match self.run_once().await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(topic = %self.topic, error = %e, source = ?std::error::Error::source(&e), "tableflow worker failed; restarting from the committed offsets");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = self.stop.changed() => return,
            }
            if *self.stop.borrow() {
                return;
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }

    async fn run_once(&mut self) -> Result<(), TableflowError> {
        let layout = TableLayout::new(&self.cfg).map_err(TableflowError::Internal)?;
        let dlq_layout = TableLayout::dlq();
        let ident = table_ident(&self.cfg.namespace, &self.cfg.name)?;
        let dlq_ident = table_ident(&self.cfg.namespace, &format!("{}_dlq", self.cfg.name))?;
        let table_name = ident.to_string();
        let target = self.settings.target_file_size_bytes;
        let catalog = self.catalog.clone();
        let mut main = TableSink::open(catalog.as_ref(), ident, &layout, true, target)
            .await?
            .ok_or_else(|| TableflowError::Internal("table not created".into()))?;
        let mut dlq = TableSink::open(
            catalog.as_ref(),
            dlq_ident.clone(),
            &dlq_layout,
            false,
            target,
        )
        .await?;

        let notify = Arc::new(Notify::new());
        let mut watchers = JoinSet::new();
        let mut parts: BTreeMap<i32, PartitionState> = BTreeMap::new();
        for p in 0..self.partitions {
            let Some(log) = self.logs.get(&TopicPartition::new(&self.topic, p)) else {
                continue;
            };
            let (start, end) = (log.log_start_offset(), log.log_end_offset());
            let committed = main.committed(p);
            let mut position = committed.unwrap_or(start);
            if position < start {
                tracing::warn!(topic = %self.topic, partition = p, committed = position, log_start = start, "records before the log start were deleted before they were materialized");
                position = start;
            } else if position > end {
                tracing::warn!(topic = %self.topic, partition = p, committed = position, log_end = end, "table is ahead of the log (topic recreated?); materializing from the log start");
                position = start;
            }
            if committed.is_none() && end > start {
                tracing::info!(topic = %self.topic, partition = p, from = start, to = end, "backfilling table from the log start");
            }
            let mut rx = log.subscribe();
            let n = notify.clone();
            watchers.spawn(async move {
                while rx.changed().await.is_ok() {
                    n.notify_one();
                }
            });
            let dlq_skip = dlq.as_ref().and_then(|d| d.committed(p)).unwrap_or(0);
            parts.insert(
                p,
                PartitionState {
                    log,
                    position,
                    committed: position,
                    dlq_skip,
                    clock: EndOffsetClock::default(),
                },
            );
        }

        let interval = Duration::from_millis(self.cfg.commit_interval_ms);
        let mut first_pending: Option<Instant> = None;
        let mut last_log = Instant::now();
        let mut records = Vec::new();
        loop {
            let stopping = *self.stop.borrow();
            // Read what is committed in the logs now.
            let mut progressed = false;
            for (p, st) in parts.iter_mut() {
                let now = Instant::now();
                st.clock.observe(st.log.high_watermark(), now);
                let mut round = 0usize;
                while round < ROUND_BYTES && st.position < st.log.high_watermark() {
                    let read = match st.log.read(st.position, READ_BYTES) {
                        Ok(r) => r,
                        Err(ReadError::OffsetOutOfRange { log_start, .. })
                            if st.position < log_start =>
                        {
                            tracing::warn!(topic = %self.topic, partition = *p, from = st.position, to = log_start, "records deleted before they were materialized");
                            st.position = log_start;
                            continue;
                        }
                        Err(source) => {
                            return Err(TableflowError::Read {
                                topic: self.topic.clone(),
                                partition: *p,
                                source,
                            });
                        }
                    };
                    if read.records.is_empty() {
                        break;
                    }
                    round += read.records.len();
                    records.clear();
                    let next =
                        decode_batches(&self.topic, *p, &read.records, st.position, &mut records)?;
                    if next <= st.position {
                        break;
                    }
                    st.position = next;
                    progressed = true;
                    self.write_records(&dlq_layout, &dlq_ident, &mut main, &mut dlq, st, &records)
                        .await?;
                }
            }
            let pending = main.pending_rows > 0 || dlq.as_ref().is_some_and(|d| d.pending_rows > 0);
            let moved = parts.values().any(|s| s.position != s.committed);
            if (pending || moved) && first_pending.is_none() {
                first_pending = Some(Instant::now());
            }
            let due = first_pending.is_some_and(|t| t.elapsed() >= interval)
                || main.pending_bytes >= target;
            if (pending || moved) && (due || stopping) {
                let offsets: BTreeMap<i32, i64> =
                    parts.iter().map(|(p, s)| (*p, s.position)).collect();
                if let Some(d) = dlq.as_mut() {
                    d.commit(catalog.as_ref(), &offsets).await?;
                }
                main.commit(catalog.as_ref(), &offsets).await?;
                for s in parts.values_mut() {
                    s.committed = s.position;
                }
                first_pending = None;
            }
            let now = Instant::now();
            let log_now = now.duration_since(last_log) >= Duration::from_secs(30);
            for (p, s) in parts.iter_mut() {
                let lag = PartitionLag {
                    topic: self.topic.clone(),
                    table: table_name.clone(),
                    partition: *p,
                    records: (s.log.high_watermark() - s.committed).max(0),
                    seconds: s.clock.seconds_behind(s.committed, now),
                };
                if log_now && lag.records > 0 {
                    tracing::info!(table = %lag.table, partition = lag.partition, records = lag.records, seconds = lag.seconds, "tableflow lag");
                }
                self.lag.set(lag);
            }
            if log_now {
                last_log = now;
            }
            if stopping {
                return Ok(());
            }
            if progressed {
                // More may be waiting; yield so other tasks run, then read again.
                tokio::task::yield_now().await;
                continue;
            }
            let deadline = first_pending.map(|t| t + interval);
            tokio::select! {
                _ = notify.notified() => {}
                _ = async {
                    match deadline {
                        Some(d) => tokio::time::sleep_until(d.into()).await,
                        None => std::future::pending().await,
                    }
                } => {}
                _ = tokio::time::sleep(Duration::from_secs(10)) => {}
                _ = self.stop.changed() => {}
            }
        }
    }

    #[allow(clippy::too_many_arguments)] // the loop's state, passed apart to keep borrows simple
    async fn write_records(
        &self,
        dlq_layout: &TableLayout,
        dlq_ident: &iceberg::TableIdent,
        main: &mut TableSink,
        dlq: &mut Option<TableSink>,
        st: &PartitionState,
        records: &[KafkaRecord],
    ) -> Result<(), TableflowError> {
        let arrow_err = |table: &str| {
            let table = table.to_string();
            move |source| TableflowError::Arrow { table, source }
        };
        let layout = main.layout().clone();
        let layout = &layout;
        let fresh: Vec<&KafkaRecord> = records.iter().collect();
        let bytes: usize = fresh.iter().map(|r| r.size()).sum();
        let (batch, rejected) = match &self.cfg.mode {
            TableMode::KeyValue => (
                Some(convert::key_value_batch(layout, &fresh).map_err(arrow_err(&self.cfg.name))?),
                Vec::new(),
            ),
            TableMode::Json(_) => {
                convert::json_batch(layout, &fresh).map_err(arrow_err(&self.cfg.name))?
            }
        };
        if let Some(batch) = batch {
            main.write(batch, bytes).await?;
        }
        let rejected: Vec<Rejected> = rejected
            .into_iter()
            .filter(|r| r.record.offset >= st.dlq_skip)
            .collect();
        if !rejected.is_empty() {
            if dlq.is_none() {
                *dlq = TableSink::open(
                    self.catalog.as_ref(),
                    dlq_ident.clone(),
                    dlq_layout,
                    true,
                    self.settings.target_file_size_bytes,
                )
                .await?;
            }
            tracing::debug!(topic = %self.topic, count = rejected.len(), first_error = %rejected[0].error, "records to the dead-letter table");
            let dlq_layout = dlq.as_ref().map_or(dlq_layout, |d| d.layout());
            let batch = convert::dlq_batch(dlq_layout, &rejected)
                .map_err(arrow_err(&dlq_ident.to_string()))?;
            if let Some(d) = dlq.as_mut() {
                d.write(batch, 0).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use floe_protocol::fuzz::{self, Rng};
    use floe_protocol::record_batch::{record_timestamps, validate_batches};

    use super::*;

    /// Whether `buf` could be in a partition log: every batch passes produce validation,
    /// and holds as many records as it claims with offset deltas 0, 1, 2... (validation
    /// checks that for uncompressed batches only; see `floe_protocol::fuzz::
    /// record_batch_count`).
    fn loggable(buf: &[u8]) -> bool {
        validate_batches(buf).is_ok()
            && floe_protocol::record_batch::iter_batches(buf)
                .map_while(Result::ok)
                .all(|(h, range)| {
                    record_timestamps(&buf[range]).is_ok_and(|records| {
                        records.len() == h.records_count as usize
                            && records
                                .iter()
                                .enumerate()
                                .all(|(i, &(offset, _))| offset == h.base_offset + i as i64)
                    })
                })
    }

    /// Gives the batches in `buf` consecutive offsets from `base`, as appending them does.
    fn assign_offsets(buf: &mut [u8], mut base: i64) {
        let ranges: Vec<_> = floe_protocol::record_batch::iter_batches(buf)
            .map_while(Result::ok)
            .collect();
        for (h, range) in ranges {
            let _ = floe_protocol::record_batch::set_base_offset(&mut buf[range], base);
            base += i64::from(h.last_offset_delta) + 1;
        }
    }

    /// Mutated log contents of every codec through the worker's decode loop: no panic, and
    /// the records come out in offset order from the requested offset on.
    #[test]
    fn fuzz_decode_batches() {
        let corpus: Vec<Vec<u8>> = fuzz::batch_corpus()
            .into_iter()
            .map(|input| input[1..].to_vec())
            .collect();
        let mut rng = Rng::new(fuzz::seed());
        let mut decoded = 0;
        for case in 0..fuzz::cases(50_000) {
            let input = rng.pick(&corpus).clone();
            let donor = rng.pick(&corpus).clone();
            let mut data = fuzz::mutate_batches(&mut rng, &input, &donor);
            assign_offsets(&mut data, rng.below(4) as i64);
            if !loggable(&data) {
                continue;
            }
            let from = rng.below(4) as i64;
            let mut out = Vec::new();
            let records = Bytes::from(data.clone());
            let result = std::panic::catch_unwind(|| {
                let next = decode_batches("t", 0, &records, from, &mut out);
                (next, out)
            });
            let Ok((next, out)) = result else {
                panic!(
                    "decode_batches panicked on case {case} (FLOE_FUZZ_SEED={}): {}",
                    fuzz::seed(),
                    fuzz::hex(&data)
                );
            };
            if let Ok(next) = next {
                decoded += 1;
                assert!(next >= from);
                assert!(out.iter().all(|r| r.offset >= from && r.offset < next));
                assert!(out.windows(2).all(|w| w[0].offset < w[1].offset));
            }
        }
        assert!(decoded > 100, "only {decoded} mutated buffers decoded");
    }

    /// Found by `fuzz_decode_batches`: a record whose header key is not UTF-8 passes produce
    /// validation (Kafka accepts it too: its clients decode keys lossily), but
    /// `RecordBatchDecoder` refuses the whole batch, so the worker fails on it and restarts
    /// from the committed offsets forever: the table stops at that batch.
    ///
    /// FIXME: decode header keys lossily (or route the batch's records to the `_dlq` table)
    /// so one bad header cannot stop a table; then this asserts the records come out.
    #[test]
    fn a_non_utf8_header_key_stops_the_batch_today() {
        use kafka_protocol::records::Compression;
        let mut batch = fuzz::sample_batch(Compression::None, 1, false);
        // The record's one header is key "h" (length varint 2), value "v".
        let at = batch
            .windows(4)
            .position(|w| w == [2, b'h', 2, b'v'])
            .expect("the sample record's header");
        batch[at + 1] = 0xff;
        fuzz::fix_batch_crcs(&mut batch);
        assert!(validate_batches(&batch).is_ok());
        let mut out = Vec::new();
        let result = decode_batches("t", 0, &Bytes::from(batch), 0, &mut out);
        assert!(matches!(result, Err(TableflowError::Decode { .. })));
    }
}

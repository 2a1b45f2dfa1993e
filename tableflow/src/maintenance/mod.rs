//! Table maintenance: what keeps a table that is committed every few seconds readable and
//! bounded for months. Small-file compaction and manifest merging ([`compact`]), snapshot
//! expiry ([`expire`]), orphan-file cleanup ([`orphans`]) and bounded metadata
//! ([`metadata_files`], applied after every commit by [`crate::catalog::FloeCatalog`]).
//!
//! One [`Maintainer`] task per table-enabled topic runs beside the topic's materializer,
//! every `table.maintenance.interval.ms`, on the topic's table and its dead-letter table.
//! A round: write the topic's `table.maintenance.*` settings to the table as Iceberg
//! properties, compact, expire snapshots, delete orphans. Maintenance and materializer
//! commit through the same catalog swap; the one that loses a race retries on the new
//! snapshot, so neither waits for the other for longer than a commit.

pub mod compact;
pub mod expire;
pub mod metadata_files;
pub mod orphans;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::{Catalog, TableIdent};
use tokio::sync::watch;

use crate::catalog::FloeCatalog;
use crate::config::MaintenanceConfig;
use crate::error::TableflowError;
use crate::error::iceberg_error as ice;

/// What a topic's table writers and its maintainer share: the name prefixes of data files
/// the writers have written but not committed yet (orphan-file cleanup never deletes them,
/// however old), and a commit lock that makes their catalog commits take turns, so a
/// compaction never loses the race against a materializer committing every few
/// milliseconds (conflicts with writers in other processes are still retried).
#[derive(Debug, Default, Clone)]
pub struct InFlight(Arc<Mutex<HashSet<String>>>, Arc<tokio::sync::Mutex<()>>);

impl InFlight {
    /// Waits for the commit lock; commit while holding it.
    pub async fn commit_lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.1.lock().await
    }

    /// A writer started files named `prefix...`.
    pub fn add(&self, prefix: &str) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(prefix.to_string());
    }

    /// The files named `prefixes...` are committed (or abandoned by a restarted writer).
    pub fn remove(&self, prefixes: &[String]) {
        let mut set = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for p in prefixes {
            set.remove(p);
        }
    }

    /// Whether `path` is a file of an uncommitted writer.
    pub fn covers(&self, path: &str) -> bool {
        let name = path.rsplit('/').next().unwrap_or(path);
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|prefix| name.starts_with(prefix.as_str()))
    }
}

/// The background maintenance of one topic's tables.
pub(crate) struct Maintainer {
    pub topic: String,
    pub tables: Vec<TableIdent>,
    pub cfg: MaintenanceConfig,
    pub catalog: Arc<FloeCatalog>,
    pub storage_props: std::collections::HashMap<String, String>,
    pub in_flight: InFlight,
    pub stop: watch::Receiver<bool>,
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Maintainer {
    /// Runs rounds until stopped. A round cut short by a stop is like a crash: safe.
    pub async fn run(mut self) {
        if !self.cfg.enabled {
            return;
        }
        let interval = Duration::from_millis(self.cfg.interval_ms.max(1));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = self.stop.changed() => {}
            }
            if *self.stop.borrow() {
                return;
            }
            for ident in self.tables.clone() {
                let stop = self.stop.clone();
                let round = self.round(&ident);
                tokio::select! {
                    result = round => {
                        if let Err(e) = result {
                            metrics::counter!("floe_tableflow_maintenance_failures_total", "table" => ident.to_string()).increment(1);
                            tracing::warn!(topic = %self.topic, table = %ident, error = %e, source = ?std::error::Error::source(&e), "table maintenance failed; the next round retries");
                        }
                    }
                    _ = wait_stop(stop) => return,
                }
            }
        }
    }

    /// One round on one table; a table that does not exist (yet) is skipped.
    async fn round(&self, ident: &TableIdent) -> Result<(), TableflowError> {
        let name = ident.to_string();
        if !self
            .catalog
            .table_exists(ident)
            .await
            .map_err(ice(format!("look up {name}")))?
        {
            return Ok(());
        }
        let started = Instant::now();
        self.sync_properties(ident).await?;
        if self.cfg.compaction_enabled {
            let policy = compact::CompactionPolicy {
                small_file_bytes: self.cfg.small_file_bytes,
                min_files: usize::try_from(self.cfg.min_files).unwrap_or(usize::MAX),
                target_file_bytes: self.cfg.target_file_bytes,
            };
            let c = compact::compact(&self.catalog, ident, &policy, &self.in_flight).await?;
            metrics::gauge!("floe_tableflow_data_files", "table" => name.clone())
                .set(c.data_files_after as f64);
            metrics::gauge!("floe_tableflow_manifests", "table" => name.clone())
                .set(c.manifests_after as f64);
            if c.files_rewritten > 0 || c.manifests_after < c.manifests_before {
                metrics::counter!("floe_tableflow_compactions_total", "table" => name.clone())
                    .increment(1);
                metrics::counter!("floe_tableflow_compaction_files_rewritten_total", "table" => name.clone())
                    .increment(c.files_rewritten as u64);
                tracing::info!(table = %name, files_rewritten = c.files_rewritten, files_written = c.files_written, rows = c.rows, manifests_before = c.manifests_before, manifests_after = c.manifests_after, data_files = c.data_files_after, conflicts = c.conflicts, "compacted table");
            }
        }
        {
            let _turn = self.in_flight.commit_lock().await;
            expire::expire_snapshots(self.catalog.as_ref(), ident).await?;
        }
        let older_than =
            now_ms().saturating_sub(i64::try_from(self.cfg.orphan_age_ms).unwrap_or(i64::MAX));
        let in_flight = self.in_flight.clone();
        let keep = move |path: &str| in_flight.covers(path);
        orphans::remove_orphan_files(
            self.catalog.as_ref(),
            ident,
            &self.storage_props,
            older_than,
            &keep,
        )
        .await?;
        metrics::histogram!("floe_tableflow_maintenance_seconds", "table" => name.clone())
            .record(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Writes the topic's maintenance settings to the table as Iceberg properties, so
    /// expiry and the metadata log follow them and engines see them.
    async fn sync_properties(&self, ident: &TableIdent) -> Result<(), TableflowError> {
        let name = ident.to_string();
        let table = self
            .catalog
            .load_table(ident)
            .await
            .map_err(ice(format!("load {name}")))?;
        let current = table.metadata().properties();
        let wanted = self.cfg.table_properties();
        if wanted
            .iter()
            .all(|(k, v)| current.get(k).is_some_and(|c| c == v))
        {
            return Ok(());
        }
        let tx = Transaction::new(&table);
        let mut action = tx.update_table_properties();
        for (k, v) in wanted {
            action = action.set(k, v);
        }
        let tx = action
            .apply(tx)
            .map_err(ice(format!("set maintenance properties of {name}")))?;
        tx.commit(self.catalog.as_ref())
            .await
            .map_err(ice(format!("set maintenance properties of {name}")))?;
        tracing::info!(table = %name, "table maintenance properties written");
        Ok(())
    }
}

async fn wait_stop(mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

//! Snapshot expiry: a table committed every few seconds gains a snapshot per commit; this
//! removes the old ones from its metadata, by the table's own Iceberg properties
//! `history.expire.max-snapshot-age-ms` (default 5 days) and
//! `history.expire.min-snapshots-to-keep` (default 1), which tableflow writes from the
//! topic's `table.maintenance.snapshot.*` configs.
//!
//! The selection is the `iceberg` crate's `ExpireSnapshotsAction` (Java's `RemoveSnapshots`):
//! along the ancestry of the current snapshot (and of every branch), the newest
//! `min-snapshots-to-keep` snapshots are kept, and any newer than the age cutoff. The current
//! snapshot and the head of every branch and tag are never expired; a branch or tag is only
//! dropped when it sets a `max-ref-age-ms` or the table sets `history.expire.max-ref-age-ms`
//! (Floe sets neither). `gc.enabled=false` turns expiry off.
//!
//! What it leaves behind: expiry rewrites metadata only. The manifest lists of the expired
//! snapshots, the manifests and data files only they referenced, and the metadata files the
//! metadata log drops stay on disk; orphan-file cleanup ([`super::orphans`]) removes them
//! once no live snapshot references them.
//!
//! Crash safety: the commit is one metadata swap in the catalog, so a crash leaves the table
//! at the old metadata (nothing expired) or at the new one; the current snapshot, and so its
//! rows and its `floe.next-offsets`, is the same in both. A conflict with a concurrent commit
//! (the materializer's, compaction's) is retried on the fresh table; a commit the catalog
//! reports done but that did not land is detected by reloading the table, and retried too.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;
use iceberg::spec::TableMetadataRef;
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::{
    Catalog, ErrorKind, Namespace, NamespaceIdent, TableCommit, TableCreation, TableIdent,
    TableUpdate,
};

use crate::error::TableflowError;
use crate::error::iceberg_error as err;

/// How many times a commit that conflicted or did not land is tried again on a fresh table
/// (the crate's own commit retries conflicts first, a few times with backoff).
const ATTEMPTS: usize = 4;

/// What one expiry run did.
#[derive(Debug, Clone)]
pub struct ExpireOutcome {
    /// Snapshots removed from the table's metadata.
    pub expired: usize,
    /// Snapshots the table holds now.
    pub remaining: usize,
    /// The metadata the run started from.
    pub before: TableMetadataRef,
    /// Where `before` was read from.
    pub before_location: String,
    /// The table as the catalog holds it after the run (the committed table when something
    /// was expired, the loaded one otherwise).
    pub table: Table,
}

/// The snapshots an expiry of `table` would remove now: the crate's own selection, run
/// against [`DryRun`] (its action type is not public, so a commit is the only way to run it).
async fn planned(table: &Table) -> Result<Vec<i64>, iceberg::Error> {
    let dry = DryRun {
        table: table.clone(),
        updates: Mutex::new(None),
    };
    let tx = Transaction::new(table);
    let result = tx.expire_snapshots().apply(tx)?.commit(&dry).await;
    let updates = dry.updates.lock().ok().and_then(|mut u| u.take());
    match (result, updates) {
        (_, Some(updates)) => Ok(updates
            .into_iter()
            .flat_map(|u| match u {
                TableUpdate::RemoveSnapshots { snapshot_ids } => snapshot_ids,
                _ => Vec::new(),
            })
            .collect()),
        (Err(e), None) => Err(e),
        (Ok(_), None) => Ok(Vec::new()),
    }
}

/// A catalog that serves one table and records the updates of a commit instead of making
/// it (the commit then fails, without retries).
#[derive(Debug)]
struct DryRun {
    table: Table,
    updates: Mutex<Option<Vec<TableUpdate>>>,
}

fn dry_run_only() -> iceberg::Error {
    iceberg::Error::new(ErrorKind::FeatureUnsupported, "dry run of snapshot expiry")
}

#[async_trait]
impl Catalog for DryRun {
    async fn list_namespaces(
        &self,
        _parent: Option<&NamespaceIdent>,
    ) -> iceberg::Result<Vec<NamespaceIdent>> {
        Err(dry_run_only())
    }

    async fn create_namespace(
        &self,
        _namespace: &NamespaceIdent,
        _properties: HashMap<String, String>,
    ) -> iceberg::Result<Namespace> {
        Err(dry_run_only())
    }

    async fn get_namespace(&self, _namespace: &NamespaceIdent) -> iceberg::Result<Namespace> {
        Err(dry_run_only())
    }

    async fn namespace_exists(&self, _namespace: &NamespaceIdent) -> iceberg::Result<bool> {
        Err(dry_run_only())
    }

    async fn update_namespace(
        &self,
        _namespace: &NamespaceIdent,
        _properties: HashMap<String, String>,
    ) -> iceberg::Result<()> {
        Err(dry_run_only())
    }

    async fn drop_namespace(&self, _namespace: &NamespaceIdent) -> iceberg::Result<()> {
        Err(dry_run_only())
    }

    async fn list_tables(&self, _namespace: &NamespaceIdent) -> iceberg::Result<Vec<TableIdent>> {
        Err(dry_run_only())
    }

    async fn create_table(
        &self,
        _namespace: &NamespaceIdent,
        _creation: TableCreation,
    ) -> iceberg::Result<Table> {
        Err(dry_run_only())
    }

    async fn load_table(&self, _table: &TableIdent) -> iceberg::Result<Table> {
        Ok(self.table.clone())
    }

    async fn drop_table(&self, _table: &TableIdent) -> iceberg::Result<()> {
        Err(dry_run_only())
    }

    async fn purge_table(&self, _table: &TableIdent) -> iceberg::Result<()> {
        Err(dry_run_only())
    }

    async fn table_exists(&self, _table: &TableIdent) -> iceberg::Result<bool> {
        Err(dry_run_only())
    }

    async fn rename_table(&self, _src: &TableIdent, _dest: &TableIdent) -> iceberg::Result<()> {
        Err(dry_run_only())
    }

    async fn register_table(
        &self,
        _table: &TableIdent,
        _metadata_location: String,
    ) -> iceberg::Result<Table> {
        Err(dry_run_only())
    }

    async fn update_table(&self, mut commit: TableCommit) -> iceberg::Result<Table> {
        if let Ok(mut updates) = self.updates.lock() {
            *updates = Some(commit.take_updates());
        }
        Err(dry_run_only())
    }
}

/// Expires the snapshots of table `ident` that its `history.expire.*` properties select,
/// commits, and checks that the commit landed. See the module docs.
pub async fn expire_snapshots(
    catalog: &dyn Catalog,
    ident: &TableIdent,
) -> Result<ExpireOutcome, TableflowError> {
    let name = ident.to_string();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let table = catalog
            .load_table(ident)
            .await
            .map_err(err(format!("load table {ident}")))?;
        let before = table.metadata_ref();
        let before_location = table.metadata_location().unwrap_or_default().to_string();
        let properties = before
            .table_properties()
            .map_err(err(format!("read the properties of {ident}")))?;
        let plan = if properties.gc_enabled {
            planned(&table)
                .await
                .map_err(err(format!("plan snapshot expiry of {ident}")))?
        } else {
            Vec::new()
        };
        if plan.is_empty() {
            let remaining = before.snapshots().len();
            metrics::gauge!("floe_tableflow_snapshots", "table" => name.clone())
                .set(remaining as f64);
            return Ok(ExpireOutcome {
                expired: 0,
                remaining,
                before,
                before_location,
                table,
            });
        }
        // The crate never selects the current snapshot (nor a branch or tag head); checked
        // anyway, as expiring it would lose the table's rows.
        if let Some(current) = before.current_snapshot_id()
            && plan.contains(&current)
        {
            return Err(TableflowError::Internal(format!(
                "snapshot expiry of {ident} selected the current snapshot {current}"
            )));
        }

        crate::faults::crash_point("expire.before_commit");
        let tx = Transaction::new(&table);
        let committed = tx
            .expire_snapshots()
            .apply(tx)
            .map_err(err(format!("expire snapshots of {ident}")))?
            .commit(catalog)
            .await;
        let committed = match committed {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::CatalogCommitConflicts && attempt < ATTEMPTS => {
                tracing::debug!(table = %ident, attempt, error = %e, "snapshot expiry conflicted with another commit; retrying");
                continue;
            }
            Err(e) => return Err(err(format!("commit snapshot expiry of {ident}"))(e)),
        };

        let kept: HashSet<i64> = committed
            .metadata()
            .snapshots()
            .map(|s| s.snapshot_id())
            .collect();
        let expired_ids: Vec<i64> = before
            .snapshots()
            .map(|s| s.snapshot_id())
            .filter(|id| !kept.contains(id))
            .collect();
        let current = catalog
            .load_table(ident)
            .await
            .map_err(err(format!("reload {ident} after snapshot expiry")))?;
        if !landed(&committed, &current, &expired_ids) {
            if attempt < ATTEMPTS {
                tracing::debug!(table = %ident, attempt, "snapshot expiry did not land; retrying");
                continue;
            }
            return Err(TableflowError::CommitNotApplied { table: name });
        }

        let expired = expired_ids.len();
        let remaining = current.metadata().snapshots().len();
        metrics::counter!("floe_tableflow_snapshots_expired_total", "table" => name.clone())
            .increment(expired as u64);
        metrics::gauge!("floe_tableflow_snapshots", "table" => name.clone()).set(remaining as f64);
        if expired > 0 {
            tracing::info!(table = %ident, expired, remaining, "expired snapshots");
        }
        return Ok(ExpireOutcome {
            expired,
            remaining,
            before,
            before_location,
            table: current,
        });
    }
}

/// Whether the commit that produced `committed` is in the catalog's `current` table: its
/// metadata file is current or in the metadata log, or (the log trimmed by later commits)
/// none of the snapshots it expired is back.
fn landed(committed: &Table, current: &Table, expired_ids: &[i64]) -> bool {
    let Some(location) = committed.metadata_location() else {
        return false;
    };
    current.metadata_location() == Some(location)
        || current
            .metadata()
            .metadata_log()
            .iter()
            .any(|l| l.metadata_file == location)
        || (!expired_ids.is_empty()
            && expired_ids
                .iter()
                .all(|id| current.metadata().snapshot_by_id(*id).is_none()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use iceberg::spec::{SnapshotReference, SnapshotRetention};

    use super::*;
    use crate::maintenance::orphans::test_support::Fixture;
    use crate::sink::NEXT_OFFSETS_PROPERTY;

    async fn set_props(fx: &Fixture, props: &[(&str, &str)]) {
        let table = fx.catalog.load_table(&fx.ident).await.unwrap();
        let tx = Transaction::new(&table);
        let mut action = tx.update_table_properties();
        for (k, v) in props {
            action = action.set(k.to_string(), v.to_string());
        }
        action
            .apply(tx)
            .unwrap()
            .commit(fx.catalog.as_ref())
            .await
            .unwrap();
    }

    /// Many small commits, then expiry down to min-snapshots-to-keep: the current snapshot,
    /// its offsets and every row survive. (40 commits: each costs more as the table grows,
    /// and a debug build takes ~14 s for 200.)
    #[tokio::test]
    async fn many_commits_expire_down_to_the_bound() {
        const COMMITS: i64 = 40;
        let fx = Fixture::new("expire").await;
        set_props(
            &fx,
            &[
                ("history.expire.max-snapshot-age-ms", "1"),
                ("history.expire.min-snapshots-to-keep", "5"),
            ],
        )
        .await;
        let mut sink = fx.sink().await;
        for i in 0..COMMITS {
            fx.write(&mut sink, i, 1).await;
            sink.commit(fx.catalog.as_ref(), &BTreeMap::from([(0, i + 1)]))
                .await
                .unwrap();
        }
        let before = fx.catalog.load_table(&fx.ident).await.unwrap();
        assert_eq!(before.metadata().snapshots().len(), COMMITS as usize);
        let current = before.metadata().current_snapshot().unwrap().clone();
        // Wait until the newest snapshot is past the 1 ms age, so the count decides alone.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;

        let out = expire_snapshots(fx.catalog.as_ref(), &fx.ident)
            .await
            .unwrap();
        assert_eq!(out.expired, COMMITS as usize - 5);
        assert_eq!(out.remaining, 5);
        let after = fx.catalog.load_table(&fx.ident).await.unwrap();
        assert_eq!(after.metadata().snapshots().len(), 5);
        let now = after.metadata().current_snapshot().unwrap();
        assert_eq!(now.snapshot_id(), current.snapshot_id());
        assert_eq!(
            now.summary()
                .additional_properties
                .get(NEXT_OFFSETS_PROPERTY),
            Some(&format!("{{\"0\":{COMMITS}}}"))
        );
        assert_eq!(fx.offsets().await, (0..COMMITS).collect::<Vec<i64>>());

        // A second run finds nothing to do and commits nothing.
        let again = expire_snapshots(fx.catalog.as_ref(), &fx.ident)
            .await
            .unwrap();
        assert_eq!(again.expired, 0);
        let unchanged = fx.catalog.load_table(&fx.ident).await.unwrap();
        assert_eq!(unchanged.metadata_location(), after.metadata_location());

        // The sink keeps committing on top of the expired table.
        fx.write(&mut sink, COMMITS, 1).await;
        sink.commit(fx.catalog.as_ref(), &BTreeMap::from([(0, COMMITS + 1)]))
            .await
            .unwrap();
        assert_eq!(fx.offsets().await, (0..=COMMITS).collect::<Vec<i64>>());
    }

    /// Nothing is old enough under the default 5-day age: nothing is expired.
    #[tokio::test]
    async fn default_age_keeps_young_snapshots() {
        let fx = Fixture::new("young").await;
        let mut sink = fx.sink().await;
        for i in 0..5 {
            fx.write(&mut sink, i, 1).await;
            sink.commit(fx.catalog.as_ref(), &BTreeMap::from([(0, i + 1)]))
                .await
                .unwrap();
        }
        let out = expire_snapshots(fx.catalog.as_ref(), &fx.ident)
            .await
            .unwrap();
        assert_eq!((out.expired, out.remaining), (0, 5));
    }

    /// A tag keeps the snapshot it references; gc.enabled=false keeps everything.
    #[tokio::test]
    async fn tags_and_gc_disabled_protect_snapshots() {
        let fx = Fixture::new("tagged").await;
        set_props(
            &fx,
            &[
                ("history.expire.max-snapshot-age-ms", "1"),
                ("history.expire.min-snapshots-to-keep", "1"),
                ("gc.enabled", "false"),
            ],
        )
        .await;
        let mut sink = fx.sink().await;
        for i in 0..10 {
            fx.write(&mut sink, i, 1).await;
            sink.commit(fx.catalog.as_ref(), &BTreeMap::from([(0, i + 1)]))
                .await
                .unwrap();
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let out = expire_snapshots(fx.catalog.as_ref(), &fx.ident)
            .await
            .unwrap();
        assert_eq!((out.expired, out.remaining), (0, 10));

        let table = fx.catalog.load_table(&fx.ident).await.unwrap();
        let mut ids: Vec<(i64, i64)> = table
            .metadata()
            .snapshots()
            .map(|s| (s.timestamp_ms(), s.snapshot_id()))
            .collect();
        ids.sort();
        let tagged = ids[2].1;
        fx.floe
            .commit(
                &fx.ident,
                vec![],
                vec![TableUpdate::SetSnapshotRef {
                    ref_name: "audit".to_string(),
                    reference: SnapshotReference::new(
                        tagged,
                        SnapshotRetention::Tag {
                            max_ref_age_ms: None,
                        },
                    ),
                }],
            )
            .await
            .unwrap();
        set_props(&fx, &[("gc.enabled", "true")]).await;
        let out = expire_snapshots(fx.catalog.as_ref(), &fx.ident)
            .await
            .unwrap();
        assert_eq!((out.expired, out.remaining), (8, 2));
        let after = fx.catalog.load_table(&fx.ident).await.unwrap();
        assert!(after.metadata().snapshot_by_id(tagged).is_some());
        assert_eq!(
            after
                .metadata()
                .snapshot_for_ref("audit")
                .map(|s| s.snapshot_id()),
            Some(tagged)
        );
        assert_eq!(fx.offsets().await, (0..10).collect::<Vec<i64>>());
    }

    /// Expiry racing the materializer's commits: both succeed (conflicts are retried) and
    /// no row is lost.
    #[tokio::test]
    async fn expiry_concurrent_with_commits() {
        let fx = Fixture::new("race").await;
        set_props(
            &fx,
            &[
                ("history.expire.max-snapshot-age-ms", "1"),
                ("history.expire.min-snapshots-to-keep", "2"),
            ],
        )
        .await;
        let mut sink = fx.sink().await;
        for i in 0..10 {
            fx.write(&mut sink, i, 1).await;
            sink.commit(fx.catalog.as_ref(), &BTreeMap::from([(0, i + 1)]))
                .await
                .unwrap();
        }
        let writer = async {
            for i in 10..25 {
                fx.write(&mut sink, i, 1).await;
                // A commit that loses to the expiry fails and is retried, as the worker does.
                let mut tries = 0;
                while let Err(e) = sink
                    .commit(fx.catalog.as_ref(), &BTreeMap::from([(0, i + 1)]))
                    .await
                {
                    tries += 1;
                    assert!(tries < 10, "commit keeps failing: {e}");
                }
            }
        };
        let expirer = async {
            let mut expired = 0;
            for _ in 0..3 {
                expired += expire_snapshots(fx.catalog.as_ref(), &fx.ident)
                    .await
                    .unwrap()
                    .expired;
                tokio::task::yield_now().await;
            }
            expired
        };
        let ((), expired) = tokio::join!(writer, expirer);
        assert!(expired > 0);
        assert_eq!(fx.offsets().await, (0..25).collect::<Vec<i64>>());
        let table = fx.catalog.load_table(&fx.ident).await.unwrap();
        let offsets = table
            .metadata()
            .current_snapshot()
            .unwrap()
            .summary()
            .additional_properties
            .get(NEXT_OFFSETS_PROPERTY)
            .cloned();
        assert_eq!(offsets, Some("{\"0\":25}".to_string()));
    }
}

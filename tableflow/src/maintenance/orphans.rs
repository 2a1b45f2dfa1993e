//! Orphan-file cleanup: deletes the files under a table's `data/` and `metadata/`
//! directories that the table no longer references.
//!
//! Files become orphans in several ways: snapshot expiry ([`super::expire`]) leaves the
//! manifest lists, manifests and data files of the snapshots it removed; the metadata log
//! drops old metadata files; a commit that lost a race leaves its metadata file (and, if it
//! was never retried, its manifests); a crash between writing Parquet files and committing
//! them leaves the files.
//!
//! A run: load the table; collect every file reachable from its current metadata (the
//! current metadata file, each file of the metadata log, each live snapshot's manifest
//! list, its manifests and the data and delete files they list, and the statistics files);
//! then stream the listing of `<location>/data/` and `<location>/metadata/` and delete each
//! file that is not reachable, was last modified before `older_than_ms`, and that `keep`
//! does not claim. Paths are compared after [`normalize_path`] (`file:/x`, `file:///x` and
//! `/x` are one file; `s3a://` is `s3://`).
//!
//! Never a live file:
//! - Reading the table must succeed completely: a manifest list or manifest that cannot be
//!   read aborts the run before anything is deleted (keeping an orphan is harmless, deleting
//!   a live file loses rows).
//! - Only files under the table's own location are listed, so only those can be deleted.
//! - `gc.enabled=false` on the table turns cleanup off, as in Iceberg.
//!
//! The race with concurrent commits. A writer writes its data files, then manifests, a
//! manifest list and a metadata file, and only then swaps the catalog's pointer; until the
//! swap those files are unreachable. Three things protect them:
//! - the safety age: a file modified after `older_than_ms` is never deleted, so every file
//!   of a commit in flight is safe as long as writing and committing take less than the
//!   age (the broker's default is an hour against a commit every few seconds);
//! - `keep`: files older than that which a writer may still commit must be claimed by the
//!   caller, e.g. the data files a failed commit left staged for its retry (a catalog
//!   outage can last longer than the age), or the files a compaction is about to swap in;
//! - before each batch of deletes the table is loaded again, and if its metadata moved, the
//!   files the new snapshots reach are added to the reachable set (each manifest is read
//!   once per run) and spared. A run also stops if the table was dropped, or replaced by
//!   another table at the same location.
//!
//! Memory: the listing is streamed and deleted in batches of [`BATCH`]; only the set of
//! reachable paths is held (one string per live file), never file contents beyond one
//! manifest at a time.
//!
//! Crash safety: deleting unreferenced files changes nothing a reader sees; a crash leaves
//! some orphans for the next run.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use iceberg::table::Table;
use iceberg::{Catalog, TableIdent};
use object_store::ObjectStore;
use object_store::path::Path;

use crate::error::TableflowError;
use crate::error::iceberg_error as err;

/// Files deleted per batch: the table is reloaded before each batch.
pub const BATCH: usize = 1000;

/// What one cleanup run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrphanOutcome {
    /// Files listed under the table's `data/` and `metadata/`.
    pub files_listed: usize,
    /// Files deleted.
    pub files_deleted: usize,
    /// Bytes of the deleted files.
    pub bytes_deleted: u64,
    /// Unreferenced files spared because they are younger than the safety age.
    pub files_too_young: usize,
    /// Unreferenced files spared because `keep` claimed them.
    pub files_kept: usize,
}

fn store_err(
    what: &str,
    path: impl Into<String>,
) -> impl FnOnce(object_store::Error) -> TableflowError {
    let (what, path) = (what.to_string(), path.into());
    move |source| TableflowError::Warehouse {
        what,
        path,
        source: Box::new(source),
    }
}

/// The one spelling of a file path used to compare them: local paths lose their `file:`
/// URL form (`file:/x`, `file:///x`, `file://localhost/x` -> `/x`), `s3a://` and `s3n://`
/// become `s3://`, and repeated slashes in the path collapse (object stores and the local
/// file system both resolve `a//b` as `a/b` for the crate's FileIO).
pub fn normalize_path(path: &str) -> String {
    let (scheme, rest) = match path.split_once("://") {
        Some((scheme, rest)) if !scheme.is_empty() && !scheme.contains('/') => {
            (Some(scheme.to_ascii_lowercase()), rest)
        }
        _ => match path.strip_prefix("file:") {
            Some(rest) => (Some("file".to_string()), rest),
            None => (None, path),
        },
    };
    let (prefix, path_part) = match scheme.as_deref() {
        None => (String::new(), rest),
        Some("file") => {
            // `file://host/x`: the host is dropped. Only an empty host or `localhost` names
            // this machine, but a reference that spells a local file with another host
            // should protect that file rather than let it look unreferenced.
            let rest = if rest.starts_with('/') {
                rest
            } else {
                rest.split_once('/').map_or("", |(_, p)| p)
            };
            (String::new(), rest)
        }
        Some(s) => {
            let scheme = match s {
                "s3a" | "s3n" => "s3",
                other => other,
            };
            let (authority, key) = rest.split_once('/').unwrap_or((rest, ""));
            (format!("{scheme}://{authority}/"), key)
        }
    };
    let parts: Vec<&str> = path_part.split('/').filter(|p| !p.is_empty()).collect();
    if prefix.is_empty() {
        format!("/{}", parts.join("/"))
    } else {
        format!("{prefix}{}", parts.join("/"))
    }
}

/// Whether normalized `path` is strictly inside normalized directory `dir`.
pub(crate) fn is_under(path: &str, dir: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    path.len() > dir.len() + 1 && path.starts_with(dir) && path.as_bytes()[dir.len()] == b'/'
}

/// The files a table reaches, normalized; and which manifest lists and manifests were read.
#[derive(Default)]
struct Reachable {
    files: HashSet<String>,
}

impl Reachable {
    fn contains(&self, normalized: &str) -> bool {
        self.files.contains(normalized)
    }

    /// Adds what `table`'s metadata reaches. Manifest lists and manifests already added are
    /// not read again, so calling this again for a newer version of the table reads only
    /// what the new snapshots added. Fails if any of them cannot be read.
    async fn add(&mut self, table: &Table) -> Result<(), TableflowError> {
        let metadata = table.metadata();
        let ident = table.identifier();
        if let Some(location) = table.metadata_location() {
            self.files.insert(normalize_path(location));
        }
        for log in metadata.metadata_log() {
            self.files.insert(normalize_path(&log.metadata_file));
        }
        for stats in metadata.statistics_iter() {
            self.files.insert(normalize_path(&stats.statistics_path));
        }
        for stats in metadata.partition_statistics_iter() {
            self.files.insert(normalize_path(&stats.statistics_path));
        }
        for snapshot in metadata.snapshots() {
            if !self.files.insert(normalize_path(snapshot.manifest_list())) {
                continue;
            }
            let list = table
                .manifest_list_reader(snapshot)
                .load()
                .await
                .map_err(err(format!(
                    "read manifest list {} of {ident}",
                    snapshot.manifest_list()
                )))?;
            for manifest_file in list.entries() {
                if !self
                    .files
                    .insert(normalize_path(&manifest_file.manifest_path))
                {
                    continue;
                }
                let manifest = manifest_file
                    .load_manifest(table.file_io())
                    .await
                    .map_err(err(format!(
                        "read manifest {} of {ident}",
                        manifest_file.manifest_path
                    )))?;
                // Every entry, deleted ones too: an older live snapshot may still read it.
                for entry in manifest.entries() {
                    self.files.insert(normalize_path(entry.file_path()));
                }
            }
        }
        Ok(())
    }
}

/// The object store holding a table's files and the key of its location in that store.
struct TableStore {
    store: Arc<dyn ObjectStore>,
    root: Path,
}

impl TableStore {
    /// The store of a `file://` (or bare absolute path) or `s3://` table location, with the
    /// same `s3.*` properties the catalog gives the crate's FileIO.
    fn open(location: &str, props: &HashMap<String, String>) -> Result<TableStore, TableflowError> {
        let bad = |reason: String| TableflowError::MaintenanceAborted {
            table: location.to_string(),
            reason,
        };
        let local = |dir: &std::path::Path| -> Result<TableStore, TableflowError> {
            let root = Path::from_absolute_path(dir).map_err(|e| {
                store_err("use the table directory", dir.display().to_string())(e.into())
            })?;
            // Rooted at `/` rather than at the table directory: that constructor would
            // canonicalize (blocking I/O) and fail for a table with no files yet.
            let store = object_store::local::LocalFileSystem::new();
            Ok(TableStore {
                store: Arc::new(store),
                root,
            })
        };
        if location.starts_with('/') {
            return local(std::path::Path::new(location));
        }
        let url = url::Url::parse(location).map_err(|e| bad(format!("bad location: {e}")))?;
        match url.scheme() {
            "file" => {
                let dir = url
                    .to_file_path()
                    .map_err(|()| bad("not a local path".to_string()))?;
                local(&dir)
            }
            "s3" | "s3a" | "s3n" => {
                let bucket = url
                    .host_str()
                    .ok_or_else(|| bad("an s3:// location needs a bucket".to_string()))?;
                let retry = object_store::RetryConfig {
                    backoff: object_store::BackoffConfig {
                        init_backoff: Duration::from_millis(100),
                        max_backoff: Duration::from_secs(2),
                        base: 2.0,
                    },
                    // The next maintenance round retries; an outage should end a run
                    // quickly, not stall it for minutes.
                    max_retries: 2,
                    retry_timeout: Duration::from_secs(10),
                };
                let client = object_store::ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(Duration::from_secs(30))
                    .with_allow_http(true);
                let path_style = props
                    .get("s3.path-style-access")
                    .is_some_and(|v| v.eq_ignore_ascii_case("true"));
                let mut builder = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_retry(retry)
                    .with_client_options(client)
                    .with_virtual_hosted_style_request(!path_style);
                if let Some(v) = props.get("s3.endpoint") {
                    builder = builder.with_endpoint(v);
                }
                if let Some(v) = props.get("s3.region") {
                    builder = builder.with_region(v);
                }
                if let Some(v) = props.get("s3.access-key-id") {
                    builder = builder.with_access_key_id(v);
                }
                if let Some(v) = props.get("s3.secret-access-key") {
                    builder = builder.with_secret_access_key(v);
                }
                if let Some(v) = props.get("s3.session-token") {
                    builder = builder.with_token(v);
                }
                let store = builder
                    .build()
                    .map_err(store_err("open the object store of", location))?;
                let root = Path::from_url_path(url.path())
                    .map_err(|e| store_err("use the table location", location)(e.into()))?;
                Ok(TableStore {
                    store: Arc::new(store),
                    root,
                })
            }
            other => Err(bad(format!(
                "orphan-file cleanup supports file:// and s3:// warehouses, not {other}://"
            ))),
        }
    }

    /// `location`'s path relative to the table's root, `None` if it is not under it.
    fn relative(&self, location: &Path) -> Option<String> {
        let parts = location.prefix_match(&self.root)?;
        let rel: Vec<String> = parts.map(|p| p.as_ref().to_string()).collect();
        (!rel.is_empty()).then(|| rel.join("/"))
    }
}

/// A file to delete: its key in the store, its path as the table names files, its size.
struct Candidate {
    key: Path,
    path: String,
    size: u64,
}

/// Deletes the files under table `ident`'s `data/` and `metadata/` that its current
/// metadata does not reach, that were last modified before `older_than_ms` (unix
/// milliseconds) and that `keep` does not claim. `keep` is given each such file's path as
/// `<table location>/<relative path>`, the form the table's writers use. `storage_props`
/// are the FileIO properties of the warehouse (`s3.endpoint`, `s3.access-key-id`,
/// `s3.secret-access-key`, `s3.region`, `s3.path-style-access`). See the module docs for
/// what protects files of commits in flight.
///
/// `keep` is `Sync` so that the run can be spawned on the runtime.
pub async fn remove_orphan_files(
    catalog: &dyn Catalog,
    ident: &TableIdent,
    storage_props: &HashMap<String, String>,
    older_than_ms: i64,
    keep: &(dyn Fn(&str) -> bool + Sync),
) -> Result<OrphanOutcome, TableflowError> {
    let mut outcome = OrphanOutcome::default();
    let table = catalog
        .load_table(ident)
        .await
        .map_err(err(format!("load table {ident}")))?;
    let properties = table
        .metadata()
        .table_properties()
        .map_err(err(format!("read the properties of {ident}")))?;
    if !properties.gc_enabled {
        return Ok(outcome);
    }
    let location = table
        .metadata()
        .location()
        .trim_end_matches('/')
        .to_string();
    let store = TableStore::open(&location, storage_props)?;
    let mut reachable = Reachable::default();
    reachable.add(&table).await?;
    let mut run = Run {
        catalog,
        ident,
        table,
        location,
        reachable,
        outcome: &mut outcome,
    };
    for dir in ["data", "metadata"] {
        let prefix = store.root.clone().join(dir);
        let mut listing = store.store.list(Some(&prefix));
        let mut batch: Vec<Candidate> = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(store_err("list", format!("{}/{dir}", run.location)))?;
            run.outcome.files_listed += 1;
            let Some(rel) = store.relative(&meta.location) else {
                continue;
            };
            let path = format!("{}/{rel}", run.location);
            if run.reachable.contains(&normalize_path(&path)) {
                continue;
            }
            if meta.last_modified.timestamp_millis() >= older_than_ms {
                run.outcome.files_too_young += 1;
                continue;
            }
            if keep(&path) {
                run.outcome.files_kept += 1;
                continue;
            }
            batch.push(Candidate {
                key: meta.location,
                path,
                size: meta.size,
            });
            if batch.len() >= BATCH {
                run.delete(&store, std::mem::take(&mut batch)).await?;
            }
        }
        if !batch.is_empty() {
            run.delete(&store, batch).await?;
        }
    }
    if outcome.files_deleted > 0 {
        tracing::info!(
            table = %ident,
            files = outcome.files_deleted,
            bytes = outcome.bytes_deleted,
            listed = outcome.files_listed,
            "deleted orphan files"
        );
    }
    Ok(outcome)
}

/// The state of one cleanup run.
struct Run<'a> {
    catalog: &'a dyn Catalog,
    ident: &'a TableIdent,
    /// The table as last loaded.
    table: Table,
    location: String,
    reachable: Reachable,
    outcome: &'a mut OrphanOutcome,
}

impl Run<'_> {
    /// Reloads the table, spares what it reaches now, deletes the rest of `batch`.
    async fn delete(
        &mut self,
        store: &TableStore,
        batch: Vec<Candidate>,
    ) -> Result<(), TableflowError> {
        let current = self
            .catalog
            .load_table(self.ident)
            .await
            .map_err(err(format!("reload table {}", self.ident)))?;
        let abort = |reason: &str| TableflowError::MaintenanceAborted {
            table: self.ident.to_string(),
            reason: reason.to_string(),
        };
        if current.metadata().uuid() != self.table.metadata().uuid()
            || current.metadata().location().trim_end_matches('/') != self.location
        {
            return Err(abort("the table was replaced during orphan-file cleanup"));
        }
        if !current
            .metadata()
            .table_properties()
            .map_err(err(format!("read the properties of {}", self.ident)))?
            .gc_enabled
        {
            return Err(abort("gc.enabled was turned off"));
        }
        if current.metadata_location() != self.table.metadata_location() {
            self.reachable.add(&current).await?;
            self.table = current;
        }
        let mut sizes: HashMap<Path, (u64, String)> = HashMap::with_capacity(batch.len());
        for c in batch {
            if !self.reachable.contains(&normalize_path(&c.path)) {
                sizes.insert(c.key, (c.size, c.path));
            }
        }
        if sizes.is_empty() {
            return Ok(());
        }
        let keys: Vec<object_store::Result<Path>> = sizes.keys().cloned().map(Ok).collect();
        let mut results = store
            .store
            .delete_stream(futures_util::stream::iter(keys).boxed());
        let (mut files, mut bytes) = (0usize, 0u64);
        let mut failure = None;
        while let Some(result) = results.next().await {
            match result {
                Ok(key) => {
                    if let Some((size, path)) = sizes.get(&key) {
                        tracing::debug!(table = %self.ident, file = %path, "deleted orphan file");
                        files += 1;
                        bytes += size;
                    }
                    if files == 1 && self.outcome.files_deleted == 0 {
                        crate::faults::crash_point("orphans.mid_delete");
                    }
                }
                // Gone already (another run, the metadata cleanup): nothing to do.
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => {
                    if failure.is_none() {
                        failure = Some(e);
                    }
                }
            }
        }
        self.outcome.files_deleted += files;
        self.outcome.bytes_deleted += bytes;
        metrics::counter!("floe_tableflow_orphan_files_deleted_total", "table" => self.ident.to_string())
            .increment(files as u64);
        match failure {
            // The store is failing: stop here, the next run goes on.
            Some(e) => Err(store_err(
                "delete orphan files under",
                self.location.clone(),
            )(e)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! A real SQL catalog over SQLite and a file warehouse in a temporary directory, with a
    //! key_value table that [`TableSink`] commits to.

    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use std::sync::Arc;

    use arrow_array::Int64Array;
    use bytes::Bytes;
    use futures_util::StreamExt;
    use iceberg::{Catalog, TableIdent};

    use super::normalize_path;
    use crate::catalog::FloeCatalog;
    use crate::config::{TABLE_ENABLE, TableConfig, TableflowSettings};
    use crate::convert::{KafkaRecord, key_value_batch};
    use crate::schema::TableLayout;
    use crate::sink::{TableSink, open_floe_catalog, table_ident};

    pub(crate) struct Fixture {
        /// Holds the temporary directory for the fixture's life.
        _dir: tempfile::TempDir,
        pub floe: Arc<FloeCatalog>,
        pub catalog: Arc<dyn Catalog>,
        pub ident: TableIdent,
        pub settings: TableflowSettings,
        layout: TableLayout,
    }

    impl Fixture {
        /// A catalog with table `default.<name>` created (no snapshot yet).
        pub(crate) async fn new(name: &str) -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let settings = TableflowSettings::embedded(dir.path());
            let floe = open_floe_catalog(&settings).await.unwrap();
            let catalog: Arc<dyn Catalog> = floe.clone();
            let configs = BTreeMap::from([(TABLE_ENABLE.to_string(), "true".to_string())]);
            let cfg = TableConfig::from_topic(name, &configs, "default")
                .unwrap()
                .unwrap();
            let layout = TableLayout::new(&cfg).unwrap();
            let ident = table_ident("default", name).unwrap();
            let fx = Fixture {
                _dir: dir,
                floe,
                catalog,
                ident,
                settings,
                layout,
            };
            drop(fx.sink_with(true).await);
            fx
        }

        async fn sink_with(&self, create: bool) -> TableSink {
            TableSink::open(
                self.catalog.as_ref(),
                self.ident.clone(),
                &self.layout,
                create,
                1 << 20,
            )
            .await
            .unwrap()
            .unwrap()
        }

        /// A sink on the table.
        pub(crate) async fn sink(&self) -> TableSink {
            self.sink_with(false).await
        }

        /// Writes records `from..from + n` of partition 0 into `sink` (not committed).
        pub(crate) async fn write(&self, sink: &mut TableSink, from: i64, n: i64) {
            let records: Vec<KafkaRecord> = (from..from + n)
                .map(|o| KafkaRecord {
                    partition: 0,
                    offset: o,
                    timestamp_ms: 1_700_000_000_000 + o,
                    key: Some(Bytes::from(format!("k{o}"))),
                    value: Some(Bytes::from(format!("v{o}"))),
                    headers: vec![],
                })
                .collect();
            let refs: Vec<&KafkaRecord> = records.iter().collect();
            let batch = key_value_batch(sink.layout(), &refs).unwrap();
            sink.write(batch, 0).await.unwrap();
        }

        /// The table's directory.
        pub(crate) fn table_dir(&self) -> PathBuf {
            let warehouse = self.settings.warehouse.strip_prefix("file://").unwrap();
            PathBuf::from(warehouse)
                .join("default")
                .join(self.ident.name())
        }

        /// The offsets of every row a scan of the current snapshot reads, sorted.
        pub(crate) async fn offsets(&self) -> Vec<i64> {
            let table = self.catalog.load_table(&self.ident).await.unwrap();
            let mut stream = table.scan().build().unwrap().to_arrow().await.unwrap();
            let mut out = Vec::new();
            while let Some(batch) = stream.next().await {
                let batch = batch.unwrap();
                let col = batch
                    .column_by_name("offset")
                    .unwrap()
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap();
                out.extend(col.values().iter().copied());
            }
            out.sort_unstable();
            out
        }

        /// How many rows a scan reads.
        pub(crate) async fn count_rows(&self) -> usize {
            self.offsets().await.len()
        }
    }

    /// Every file under `dir`, as normalized paths, sorted.
    pub(crate) async fn files_under(dir: PathBuf) -> Vec<String> {
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let mut stack = vec![dir];
            while let Some(d) = stack.pop() {
                let Ok(entries) = std::fs::read_dir(&d) else {
                    continue;
                };
                for e in entries {
                    let p = e.unwrap().path();
                    if p.is_dir() {
                        stack.push(p);
                    } else {
                        out.push(normalize_path(&p.display().to_string()));
                    }
                }
            }
            out.sort();
            out
        })
        .await
        .unwrap()
    }

    /// The `*.metadata.json` files of the table in `table_dir`, normalized, sorted.
    pub(crate) async fn metadata_json_files(table_dir: &std::path::Path) -> Vec<String> {
        files_under(table_dir.join("metadata"))
            .await
            .into_iter()
            .filter(|f| f.ends_with(".metadata.json"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::time::{SystemTime, UNIX_EPOCH};

    use iceberg::transaction::{ApplyTransactionAction, Transaction};

    use super::test_support::{Fixture, files_under, metadata_json_files};
    use super::*;
    use crate::maintenance::expire::expire_snapshots;

    fn now_ms() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }

    #[test]
    fn normalized_forms() {
        let cases = [
            ("file:///w/t/data/a.parquet", "/w/t/data/a.parquet"),
            ("file:/w/t/data/a.parquet", "/w/t/data/a.parquet"),
            (
                "file://localhost/w/t//data/a.parquet",
                "/w/t/data/a.parquet",
            ),
            ("/w/t/data/a.parquet", "/w/t/data/a.parquet"),
            ("FILE:///w/x", "/w/x"),
            ("file://host/w/x", "/w/x"),
            ("s3://b/w/t/data/a.parquet", "s3://b/w/t/data/a.parquet"),
            ("s3a://b/w//t/data/a.parquet", "s3://b/w/t/data/a.parquet"),
            ("gs://b/x", "gs://b/x"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_path(input), want, "{input}");
        }
        assert!(is_under("/w/t/data/a", "/w/t"));
        assert!(is_under("/w/t/data/a", "/w/t/"));
        assert!(!is_under("/w/t2/data/a", "/w/t"));
        assert!(!is_under("/w/t", "/w/t"));
        assert!(is_under("s3://b/w/t/x", "s3://b/w/t"));
    }

    /// The files of every live snapshot (manifest lists, manifests, data files) and the
    /// metadata files the table lists, as the table's own metadata reaches them.
    async fn live_files(fx: &Fixture) -> BTreeSet<String> {
        let table = fx.catalog.load_table(&fx.ident).await.unwrap();
        let mut r = Reachable::default();
        r.add(&table).await.unwrap();
        r.files.into_iter().collect()
    }

    /// Orphans of every kind are deleted once old enough, unless claimed by `keep`; every
    /// live file stays and the rows read back identical.
    #[tokio::test]
    async fn deletes_unreferenced_old_files_only() {
        let fx = Fixture::new("orphans").await;
        let table = fx.catalog.load_table(&fx.ident).await.unwrap();
        let tx = Transaction::new(&table);
        tx.update_table_properties()
            .set(
                "history.expire.max-snapshot-age-ms".to_string(),
                "1".to_string(),
            )
            .set(
                "history.expire.min-snapshots-to-keep".to_string(),
                "3".to_string(),
            )
            // Metadata files the log drops stay on disk (no delete-after-commit): orphans.
            .set(
                "write.metadata.previous-versions-max".to_string(),
                "5".to_string(),
            )
            .apply(tx)
            .unwrap()
            .commit(fx.catalog.as_ref())
            .await
            .unwrap();
        let mut sink = fx.sink().await;
        for i in 0..20 {
            fx.write(&mut sink, i * 2, 2).await;
            sink.commit(fx.catalog.as_ref(), &BTreeMap::from([(0, i * 2 + 2)]))
                .await
                .unwrap();
        }
        // A crash between the Parquet write and the commit: a sink wrote and closed a file
        // that no commit adopts.
        {
            let mut lost = fx.sink().await;
            fx.write(&mut lost, 1000, 5).await;
            drop(lost);
        }
        let table_dir = fx.table_dir();
        let stray = table_dir.join("data").join("stray.parquet");
        let stray_meta = table_dir.join("metadata").join("99999-stray.metadata.json");
        let claimed = table_dir.join("data").join("claimed.parquet");
        let outside = table_dir.parent().unwrap().join("other").join("x.parquet");
        tokio::fs::create_dir_all(outside.parent().unwrap())
            .await
            .unwrap();
        for f in [&stray, &stray_meta, &claimed, &outside] {
            tokio::fs::write(f, b"not referenced").await.unwrap();
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let out = expire_snapshots(fx.catalog.as_ref(), &fx.ident)
            .await
            .unwrap();
        assert_eq!(out.remaining, 3);
        let live = live_files(&fx).await;
        let before = files_under(table_dir.clone()).await;
        let claimed_path = format!(
            "{}/data/claimed.parquet",
            fx.catalog
                .load_table(&fx.ident)
                .await
                .unwrap()
                .metadata()
                .location()
        );
        let keep = |p: &str| p == claimed_path;
        let props = HashMap::new();

        // Safety age not reached: nothing is deleted.
        let young = remove_orphan_files(
            fx.catalog.as_ref(),
            &fx.ident,
            &props,
            now_ms() - 3_600_000,
            &keep,
        )
        .await
        .unwrap();
        assert_eq!(young.files_deleted, 0);
        assert!(young.files_too_young > 0);
        assert_eq!(files_under(table_dir.clone()).await, before);

        // Past the safety age: every unreferenced file but the claimed one goes.
        let out = remove_orphan_files(
            fx.catalog.as_ref(),
            &fx.ident,
            &props,
            now_ms() + 1000,
            &keep,
        )
        .await
        .unwrap();
        assert_eq!(out.files_kept, 1);
        let after: BTreeSet<String> = files_under(table_dir.clone()).await.into_iter().collect();
        let mut want = live.clone();
        want.insert(normalize_path(&claimed.display().to_string()));
        assert_eq!(after, want);
        let gone = before.len() - after.len();
        assert_eq!(out.files_deleted, gone);
        assert!(out.bytes_deleted > 0);
        // The manifest lists of the 17 expired snapshots were among them (their manifests
        // and data files are still live: appends carry them into every later snapshot).
        assert!(gone >= 17 + 2, "only {gone} files deleted");
        assert!(tokio::fs::try_exists(&outside).await.unwrap());
        // The current metadata file and the five of the log.
        assert_eq!(metadata_json_files(&table_dir).await.len(), 6);
        assert_eq!(fx.offsets().await, (0..40).collect::<Vec<i64>>());

        // The table goes on: commit, expire, clean again.
        fx.write(&mut sink, 40, 2).await;
        sink.commit(fx.catalog.as_ref(), &BTreeMap::from([(0, 42)]))
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        expire_snapshots(fx.catalog.as_ref(), &fx.ident)
            .await
            .unwrap();
        let again = remove_orphan_files(
            fx.catalog.as_ref(),
            &fx.ident,
            &props,
            now_ms() + 1000,
            &keep,
        )
        .await
        .unwrap();
        assert!(again.files_deleted > 0);
        let live: BTreeSet<String> = live_files(&fx).await;
        let on_disk: BTreeSet<String> = files_under(table_dir.clone()).await.into_iter().collect();
        assert!(live.is_subset(&on_disk));
        assert_eq!(fx.offsets().await, (0..42).collect::<Vec<i64>>());
    }

    /// A manifest that cannot be read aborts the run before anything is deleted.
    #[tokio::test]
    async fn unreadable_manifest_aborts() {
        let fx = Fixture::new("broken").await;
        let mut sink = fx.sink().await;
        for i in 0..3 {
            fx.write(&mut sink, i, 1).await;
            sink.commit(fx.catalog.as_ref(), &BTreeMap::from([(0, i + 1)]))
                .await
                .unwrap();
        }
        let table_dir = fx.table_dir();
        let stray = table_dir.join("data").join("stray.parquet");
        tokio::fs::write(&stray, b"x").await.unwrap();
        let table = fx.catalog.load_table(&fx.ident).await.unwrap();
        let snapshot = table.metadata().current_snapshot().unwrap();
        let list = table.manifest_list_reader(snapshot).load().await.unwrap();
        let manifest = normalize_path(&list.entries()[0].manifest_path);
        tokio::fs::write(&manifest, b"garbage").await.unwrap();

        let result = remove_orphan_files(
            fx.catalog.as_ref(),
            &fx.ident,
            &HashMap::new(),
            now_ms() + 1000,
            &|_| false,
        )
        .await;
        assert!(result.is_err());
        assert!(tokio::fs::try_exists(&stray).await.unwrap());
    }

    /// A commit that lands while a run lists files: the reload before deleting spares it,
    /// even when its files are older than the safety age.
    #[tokio::test]
    async fn reload_spares_files_committed_during_the_run() {
        let fx = Fixture::new("late").await;
        let mut sink = fx.sink().await;
        fx.write(&mut sink, 0, 1).await;
        sink.commit(fx.catalog.as_ref(), &BTreeMap::from([(0, 1)]))
            .await
            .unwrap();
        let table = fx.catalog.load_table(&fx.ident).await.unwrap();
        let mut run_outcome = OrphanOutcome::default();
        let mut reachable = Reachable::default();
        reachable.add(&table).await.unwrap();
        let location = table
            .metadata()
            .location()
            .trim_end_matches('/')
            .to_string();
        let store = TableStore::open(&location, &HashMap::new()).unwrap();
        // Committed after the run loaded the table.
        fx.write(&mut sink, 1, 1).await;
        sink.commit(fx.catalog.as_ref(), &BTreeMap::from([(0, 2)]))
            .await
            .unwrap();
        let mut candidates = Vec::new();
        let mut listing = store.store.list(Some(&store.root.clone().join("data")));
        while let Some(meta) = listing.next().await {
            let meta = meta.unwrap();
            let rel = store.relative(&meta.location).unwrap();
            let path = format!("{location}/{rel}");
            if !reachable.contains(&normalize_path(&path)) {
                candidates.push(Candidate {
                    key: meta.location,
                    path,
                    size: meta.size,
                });
            }
        }
        assert_eq!(candidates.len(), 1);
        let mut run = Run {
            catalog: fx.catalog.as_ref(),
            ident: &fx.ident,
            table,
            location,
            reachable,
            outcome: &mut run_outcome,
        };
        run.delete(&store, candidates).await.unwrap();
        assert_eq!(run_outcome.files_deleted, 0);
        assert_eq!(fx.offsets().await, vec![0, 1]);
    }
}

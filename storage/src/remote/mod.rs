//! Tiered storage: closed segments of `remote.storage.enable` topics are copied to an object
//! store (a local directory by default; S3, GCS or Azure through `object_store`) and served
//! from it once the local copy is gone.
//!
//! - Layout: `<url prefix>/<topic>-<topic_id>/<partition>/manifest.json` lists the uploaded
//!   segments ([`manifest`]); each segment is `<base:020>-<upload id>.log|.index|.timeindex`
//!   plus `.snapshot` (the producer state at its end) where that was still on disk.
//! - Uploads ([`RemoteStorage`]'s thread `floe-remote-uploader`, every
//!   `remote.log.manager.task.interval.ms`): for each tiered log, the closed segments that
//!   are entirely durable, oldest first. Every file is streamed up, then verified (size, and
//!   the CRC32C of the bytes read back), then the manifest is rewritten with a conditional
//!   put, and only then does the log count the segment as uploaded: local retention deletes
//!   nothing that is not. A crash anywhere leaves at worst objects no manifest lists
//!   (removed when the partition is next attached). Failures back off exponentially with
//!   jitter per partition; `floe_remote_store_up` and a log line report an outage, and an
//!   append is refused once a partition's backlog passes `log.local.hard.limit.bytes`.
//! - Reads below the local start go to [`RemoteLog`]: the segment is downloaded whole into
//!   the bounded cache ([`cache`]) and read like a local one.
//! - Retention of the remote part: the log start offset (moved by `retention.ms`,
//!   `retention.bytes` over the whole log, or DeleteRecords) condemns remote segments; the
//!   manifest drops them first, then their objects are deleted.
//! - Disaster recovery: a tiered partition whose directory is missing is rebuilt from its
//!   manifest ([`crate::LogManager::open_partition`]): everything uploaded is served again.
//!
//! Everything remote runs on the storage's own tokio runtime (`floe-remote` threads), never
//! on the broker's; file work goes to that runtime's blocking pool.

pub(crate) mod cache;
pub mod manifest;
pub(crate) mod store;

use std::collections::HashMap;
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use object_store::{ObjectStoreExt, UpdateVersion};

use self::cache::Cache;
use self::manifest::{Manifest, RemoteFile, RemoteSegment};
use self::store::Store;
use crate::background::{Background, Stop, lock};
use crate::config::LogConfig;
use crate::error::StorageError;
use crate::io;
use crate::partition_log::{PartitionLog, UploadCandidate, wall_clock_ms};
use crate::segment::SegmentReader;
use crate::topic_partition::TopicPartition;

/// Suffix of an uploaded producer snapshot.
pub const SNAPSHOT_SUFFIX: &str = ".snapshot";
/// Name of the manifest object in a partition's prefix.
pub const MANIFEST: &str = "manifest.json";

/// Settings of tiered storage (see `docs/configuration.md`, "Tiered storage").
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteConfig {
    /// `file:///dir`, `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`.
    pub url: String,
    /// S3 endpoint (MinIO, moto, ...); AWS's when unset.
    pub endpoint: Option<String>,
    /// S3 region.
    pub region: Option<String>,
    /// Path-style S3 requests (`endpoint/bucket/key`) instead of virtual-hosted ones.
    pub path_style: bool,
    /// S3 access key id (else from the environment, as the AWS SDKs read it).
    pub access_key: Option<String>,
    /// S3 secret access key.
    pub secret_key: Option<String>,
    /// Further `object_store` options by name (GCS service account, Azure account key, ...).
    pub options: Vec<(String, String)>,
    /// Time between two upload passes (Kafka `remote.log.manager.task.interval.ms`).
    pub task_interval: Duration,
    /// Partitions uploading at once.
    pub upload_concurrency: usize,
    /// Upload bandwidth limit over all partitions, bytes per second (`None`: unlimited).
    pub copy_max_bytes_per_second: Option<u64>,
    /// Bytes of downloaded segments kept in the read cache.
    pub cache_bytes: u64,
    /// Timeout of one object-store request.
    pub request_timeout: Duration,
}

impl RemoteConfig {
    /// The embedded default: a directory under the data directory.
    pub fn local(data_dir: &FsPath) -> RemoteConfig {
        RemoteConfig {
            url: format!("file://{}", data_dir.join("remote-store").display()),
            endpoint: None,
            region: None,
            path_style: false,
            access_key: None,
            secret_key: None,
            options: Vec::new(),
            task_interval: Duration::from_secs(30),
            upload_concurrency: 4,
            copy_max_bytes_per_second: None,
            cache_bytes: 1 << 30,
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// What the remote runtime, the store and the cache share with every [`RemoteLog`].
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) store: Store,
    pub(crate) cache: Cache,
    pub(crate) handle: tokio::runtime::Handle,
}

impl Shared {
    /// Runs `future` on the remote runtime and waits for it on this thread (which must be
    /// one that may block: a storage thread or the broker's blocking pool).
    pub(crate) fn block_on<T: Send + 'static>(
        &self,
        future: impl std::future::Future<Output = Result<T, StorageError>> + Send + 'static,
    ) -> Result<T, StorageError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = tx.send(future.await);
        });
        rx.recv()
            .map_err(|_| StorageError::remote("run", "remote runtime", "shut down"))?
    }

    /// Awaits `future` run on the remote runtime (from any runtime).
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        future: impl std::future::Future<Output = Result<T, StorageError>> + Send + 'static,
    ) -> Result<T, StorageError> {
        match self.handle.spawn(future).await {
            Ok(out) => out,
            Err(e) => Err(StorageError::remote("run", "remote runtime", e)),
        }
    }
}

#[derive(Debug)]
struct RemoteState {
    manifest: Manifest,
    /// The manifest's version as last read or written; `None` while it does not exist.
    version: Option<UpdateVersion>,
}

/// The remote part of one partition: its manifest, and reads from it.
#[derive(Debug)]
pub struct RemoteLog {
    shared: Arc<Shared>,
    tp: TopicPartition,
    /// `<topic>-<topic_id>/<partition>`, relative to the store's prefix.
    key: String,
    state: Mutex<RemoteState>,
    /// Offset after the last uploaded segment; `i64::MIN` while nothing is uploaded.
    end: AtomicI64,
}

/// The stored manifest at `key` and its version; an empty one (no version) if none exists.
async fn read_manifest(
    store: &Store,
    key: &object_store::path::Path,
) -> Result<(Manifest, Option<UpdateVersion>), StorageError> {
    match store.get_small(key).await? {
        Some((bytes, version)) => {
            let manifest = Manifest::parse(&bytes)
                .map_err(|reason| StorageError::remote("manifest", key, reason))?;
            Ok((manifest, Some(version)))
        }
        None => Ok((Manifest::default(), None)),
    }
}

/// The partition's key under the store's prefix.
fn partition_key(tp: &TopicPartition, config: &LogConfig) -> String {
    match &config.topic_id {
        Some(id) => format!("{}-{id}/{}", tp.topic, tp.partition),
        None => format!("{}/{}", tp.topic, tp.partition),
    }
}

impl RemoteLog {
    /// Loads a partition's manifest (empty when there is none) and removes the objects it
    /// does not list (uploads a crash interrupted).
    async fn load(
        shared: Arc<Shared>,
        tp: TopicPartition,
        key: String,
    ) -> Result<RemoteLog, StorageError> {
        let manifest_key = shared.store.object_key(&key, MANIFEST);
        let (manifest, version) = read_manifest(&shared.store, &manifest_key).await?;
        let listed: std::collections::HashSet<String> = manifest
            .segments
            .iter()
            .flat_map(|s| s.files.iter().map(|f| s.object_name(&f.suffix)))
            .collect();
        let prefix = shared.store.key(&key);
        for (object, _) in shared.store.list(&prefix).await? {
            let name = object.filename().unwrap_or_default().to_owned();
            if name != MANIFEST && !listed.contains(&name) {
                tracing::info!(partition = %tp, object = %object, "removing remote object no manifest lists (an interrupted upload)");
                shared.store.delete(&object).await?;
            }
        }
        let end = manifest.end().unwrap_or(i64::MIN);
        Ok(RemoteLog {
            shared,
            tp,
            key,
            state: Mutex::new(RemoteState { manifest, version }),
            end: AtomicI64::new(end),
        })
    }

    /// Offset after the last uploaded segment, if any is.
    pub fn uploaded_end(&self) -> Option<i64> {
        let end = self.end.load(Ordering::Acquire);
        (end != i64::MIN).then_some(end)
    }

    /// A copy of the manifest.
    pub fn manifest(&self) -> Manifest {
        lock(&self.state).manifest.clone()
    }

    /// The uploaded segments that start below `offset`.
    pub(crate) fn segments_below(&self, offset: i64) -> Vec<RemoteSegment> {
        lock(&self.state)
            .manifest
            .segments
            .iter()
            .take_while(|s| s.base_offset < offset)
            .cloned()
            .collect()
    }

    /// The first uploaded segment holding offsets at or after `offset`, and the one after it.
    fn segment_at(&self, offset: i64) -> Option<(RemoteSegment, Option<RemoteSegment>)> {
        let state = lock(&self.state);
        let segments = &state.manifest.segments;
        let i = segments.partition_point(|s| s.next_offset <= offset);
        let found = segments.get(i)?.clone();
        Some((found, segments.get(i + 1).cloned()))
    }

    /// A reader of the uploaded segment holding `offset` (or the first after it), with that
    /// segment's next offset; downloads it if needed and starts downloading the next one.
    pub(crate) async fn reader_at(
        self: &Arc<Self>,
        offset: i64,
    ) -> Result<Option<(SegmentReader, i64)>, StorageError> {
        let Some((segment, next)) = self.segment_at(offset) else {
            return Ok(None);
        };
        let this = Arc::clone(self);
        let next_offset = segment.next_offset;
        let reader = self
            .shared
            .run(async move {
                let reader = this
                    .shared
                    .cache
                    .get(&this.shared.store, &this.key, &this.tp, &segment)
                    .await?;
                if let Some(next) = next
                    && !this.shared.cache.contains(&this.tp, &next)
                {
                    let ahead = Arc::clone(&this);
                    tokio::spawn(async move {
                        // Read-ahead: a failure here is retried by the read that needs it.
                        let _ = ahead
                            .shared
                            .cache
                            .get(&ahead.shared.store, &ahead.key, &ahead.tp, &next)
                            .await;
                    });
                }
                Ok(reader)
            })
            .await?;
        Ok(Some((reader, next_offset)))
    }

    /// [`RemoteLog::reader_at`] for threads that may block.
    pub(crate) fn reader_at_blocking(
        self: &Arc<Self>,
        offset: i64,
    ) -> Result<Option<(SegmentReader, i64)>, StorageError> {
        let this = Arc::clone(self);
        let shared = Arc::clone(&self.shared);
        shared.block_on(async move { this.reader_at(offset).await })
    }

    /// A reader of one listed segment (for ListOffsets in the remote part).
    pub(crate) fn reader_of_blocking(
        self: &Arc<Self>,
        segment: RemoteSegment,
    ) -> Result<SegmentReader, StorageError> {
        let this = Arc::clone(self);
        self.shared.block_on(async move {
            this.shared
                .cache
                .get(&this.shared.store, &this.key, &this.tp, &segment)
                .await
        })
    }

    /// Rewrites the manifest with `change` applied (which says whether it changed
    /// anything), conditionally on the version last seen; after a lost race, reloads and
    /// applies `change` to what is stored.
    async fn commit(
        &self,
        mut change: impl FnMut(&mut Manifest) -> bool,
    ) -> Result<bool, StorageError> {
        let key = self.shared.store.object_key(&self.key, MANIFEST);
        for _ in 0..5 {
            let (mut manifest, version) = {
                let state = lock(&self.state);
                (state.manifest.clone(), state.version.clone())
            };
            if !change(&mut manifest) {
                return Ok(false);
            }
            let written = self
                .shared
                .store
                .put_conditional(&key, manifest.to_bytes(), version.as_ref())
                .await?;
            match written {
                Some(version) => {
                    let end = manifest.end().unwrap_or(i64::MIN);
                    let mut state = lock(&self.state);
                    state.manifest = manifest;
                    state.version = Some(version);
                    self.end.store(end, Ordering::Release);
                    return Ok(true);
                }
                None => {
                    tracing::warn!(partition = %self.tp, "remote manifest changed under this broker; reloading it");
                    let (stored, version) = read_manifest(&self.shared.store, &key).await?;
                    let end = stored.end().unwrap_or(i64::MIN);
                    let mut state = lock(&self.state);
                    state.manifest = stored;
                    state.version = version;
                    self.end.store(end, Ordering::Release);
                }
            }
        }
        Err(StorageError::remote(
            "manifest",
            &key,
            "conditional write lost five races in a row",
        ))
    }

    /// Uploads one closed segment, verifies it and records it in the manifest.
    async fn upload(&self, candidate: UploadCandidate, log_start: i64) -> Result<(), StorageError> {
        let started = Instant::now();
        let id = uuid::Uuid::new_v4().simple().to_string();
        let store = &self.shared.store;
        let mut files = Vec::new();
        let mut keys = Vec::new();
        let result: Result<(), StorageError> = async {
            for (suffix, file, size) in &candidate.files {
                let key = store.object_key(
                    &self.key,
                    &manifest::object_name(candidate.base_offset, &id, suffix),
                );
                keys.push(key.clone());
                let crc = store.upload_file(Arc::clone(file), *size, &key).await?;
                store.verify(&key, *size, crc).await?;
                files.push(RemoteFile {
                    suffix: (*suffix).to_owned(),
                    size: *size,
                    crc32c: crc,
                });
            }
            if let Some(path) = candidate.snapshot.clone() {
                let bytes = io::offload(move || io::read_file(&path)).await?;
                if let Some(bytes) = bytes {
                    let key = store.object_key(
                        &self.key,
                        &manifest::object_name(candidate.base_offset, &id, SNAPSHOT_SUFFIX),
                    );
                    keys.push(key.clone());
                    let crc = crc32c::crc32c(&bytes);
                    let size = bytes.len() as u64;
                    store
                        .inner
                        .put(&key, bytes.into())
                        .await
                        .map_err(|e| StorageError::remote("put", &key, e))?;
                    store.verify(&key, size, crc).await?;
                    files.push(RemoteFile {
                        suffix: SNAPSHOT_SUFFIX.into(),
                        size,
                        crc32c: crc,
                    });
                }
            }
            let segment = RemoteSegment {
                id: id.clone(),
                base_offset: candidate.base_offset,
                next_offset: candidate.next_offset,
                size: candidate.size,
                max_timestamp: candidate.max_timestamp,
                offset_of_max_timestamp: candidate.offset_of_max_timestamp,
                uploaded_at_ms: wall_clock_ms(),
                files: std::mem::take(&mut files),
                aborted: candidate
                    .aborted
                    .iter()
                    .map(|t| {
                        [
                            t.producer_id,
                            t.first_offset,
                            t.last_offset,
                            t.last_stable_offset,
                        ]
                    })
                    .collect(),
            };
            let recorded = self
                .commit(|m| {
                    if m.end().is_some_and(|end| end > segment.base_offset) {
                        return false; // already covered (another writer uploaded it)
                    }
                    m.log_start_offset = m.log_start_offset.max(log_start);
                    m.segments.push(segment.clone());
                    true
                })
                .await?;
            if !recorded {
                return Err(StorageError::remote(
                    "manifest",
                    &self.key,
                    "segment already covered by the stored manifest",
                ));
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            // Not in the manifest: its objects are orphans; remove them now (or at the
            // next attach if the store is unreachable).
            for key in keys {
                let _ = store.delete(&key).await;
            }
            return Err(e);
        }
        metrics::counter!("floe_remote_upload_bytes_total").increment(candidate.size);
        metrics::counter!("floe_remote_upload_segments_total").increment(1);
        metrics::histogram!("floe_remote_upload_seconds").record(started.elapsed().as_secs_f64());
        tracing::debug!(partition = %self.tp, base = candidate.base_offset, next = candidate.next_offset, bytes = candidate.size, "uploaded segment");
        Ok(())
    }

    /// Removes the uploaded segments entirely below `log_start`: from the manifest first,
    /// then their objects. Returns how many went.
    async fn expire(&self, log_start: i64) -> Result<usize, StorageError> {
        let doomed: Vec<RemoteSegment> = {
            let state = lock(&self.state);
            let m = &state.manifest;
            if m.log_start_offset >= log_start
                && m.segments.first().is_none_or(|s| s.next_offset > log_start)
            {
                return Ok(0);
            }
            m.segments
                .iter()
                .take_while(|s| s.next_offset <= log_start)
                .cloned()
                .collect()
        };
        let changed = self
            .commit(|m| {
                let before = (m.log_start_offset, m.segments.len());
                m.log_start_offset = m.log_start_offset.max(log_start);
                m.segments.retain(|s| s.next_offset > log_start);
                (m.log_start_offset, m.segments.len()) != before
            })
            .await?;
        if !changed {
            return Ok(0);
        }
        for segment in &doomed {
            for file in &segment.files {
                let key = self
                    .shared
                    .store
                    .object_key(&self.key, &segment.object_name(&file.suffix));
                self.shared.store.delete(&key).await?;
            }
            tracing::info!(partition = %self.tp, base = segment.base_offset, bytes = segment.size, log_start, "deleted remote segment");
        }
        metrics::counter!("floe_remote_deleted_segments_total").increment(doomed.len() as u64);
        Ok(doomed.len())
    }
}

/// Per-partition retry state of the uploader.
#[derive(Debug, Default, Clone, Copy)]
struct Backoff {
    failures: u32,
    next_at: Option<Instant>,
}

/// Tiered storage of a data directory: the remote runtime, store, cache and upload thread.
pub struct RemoteStorage {
    shared: Arc<Shared>,
    config: RemoteConfig,
    runtime: Option<tokio::runtime::Runtime>,
    uploader: Mutex<Option<Background>>,
}

impl std::fmt::Debug for RemoteStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteStorage")
            .field("url", &self.config.url)
            .finish_non_exhaustive()
    }
}

type Logs = Arc<Mutex<HashMap<TopicPartition, Arc<PartitionLog>>>>;

impl RemoteStorage {
    /// Opens the store and the cache (emptied) under `data_dir`.
    pub(crate) fn open(
        config: RemoteConfig,
        data_dir: &FsPath,
        io: io::Io,
    ) -> Result<RemoteStorage, StorageError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(8)
            .thread_name("floe-remote")
            .on_thread_start(lower_priority)
            .enable_all()
            .build()
            .map_err(|e| StorageError::io(crate::error::IoOp::Open, "floe-remote runtime", e))?;
        // The S3 client spawns on the current runtime while it is built.
        let store = {
            let _entered = runtime.enter();
            Store::open(&config)?
        };
        let cache = Cache::open(data_dir.join(cache::CACHE_DIR), config.cache_bytes, io)?;
        let shared = Arc::new(Shared {
            store,
            cache,
            handle: runtime.handle().clone(),
        });
        metrics::gauge!("floe_remote_store_up").set(1.0);
        Ok(RemoteStorage {
            shared,
            config,
            runtime: Some(runtime),
            uploader: Mutex::new(None),
        })
    }

    /// Starts the upload thread over the logs of the data directory.
    pub(crate) fn start_uploader(self: &Arc<Self>, logs: Logs) -> Result<(), StorageError> {
        let this = Arc::clone(self);
        let thread = Background::start("floe-remote-uploader", move |stop| {
            lower_priority();
            this.upload_loop(&logs, stop);
        })?;
        *lock(&self.uploader) = Some(thread);
        Ok(())
    }

    /// Stops the upload thread (waiting for the segment in flight).
    pub(crate) fn stop(&self) {
        *lock(&self.uploader) = None;
    }

    /// Loads the remote view of a partition (blocking; bounded by the request timeouts).
    pub(crate) fn load_blocking(
        &self,
        tp: &TopicPartition,
        config: &LogConfig,
    ) -> Result<Arc<RemoteLog>, StorageError> {
        let (shared, tp, key) = (
            Arc::clone(&self.shared),
            tp.clone(),
            partition_key(tp, config),
        );
        self.shared
            .block_on(async move { RemoteLog::load(shared, tp, key).await.map(Arc::new) })
    }

    /// Downloads the producer snapshot uploaded with `segment` to `to`.
    pub(crate) fn download_snapshot(
        &self,
        remote: &RemoteLog,
        segment: &RemoteSegment,
        to: PathBuf,
    ) -> Result<bool, StorageError> {
        let Some(expected) = segment.file(SNAPSHOT_SUFFIX).cloned() else {
            return Ok(false);
        };
        let key = self
            .shared
            .store
            .object_key(&remote.key, &segment.object_name(SNAPSHOT_SUFFIX));
        let shared = Arc::clone(&self.shared);
        self.shared.block_on(async move {
            let (size, crc) = shared.store.stream_crc(&key, Some(to)).await?;
            if size != expected.size || crc != expected.crc32c {
                return Err(StorageError::remote(
                    "get",
                    &key,
                    "producer snapshot does not match its manifest entry",
                ));
            }
            Ok(true)
        })
    }

    /// Deletes every object of a deleted partition, in the background.
    pub(crate) fn delete_partition(&self, tp: &TopicPartition, config: &LogConfig) {
        self.shared.cache.forget(tp);
        let shared = Arc::clone(&self.shared);
        let prefix = shared.store.key(&partition_key(tp, config));
        let tp = tp.clone();
        self.shared.handle.spawn(async move {
            let result: Result<usize, StorageError> = async {
                let objects = shared.store.list(&prefix).await?;
                // The manifest first: a partial delete leaves orphans, never a manifest
                // naming missing objects.
                let (manifests, rest): (Vec<_>, Vec<_>) = objects
                    .into_iter()
                    .partition(|(key, _)| key.filename() == Some(MANIFEST));
                for (key, _) in manifests.iter().chain(rest.iter()) {
                    shared.store.delete(key).await?;
                }
                Ok(manifests.len() + rest.len())
            }
            .await;
            match result {
                Ok(n) => tracing::info!(partition = %tp, objects = n, "deleted the remote part of a deleted partition"),
                Err(error) => tracing::warn!(partition = %tp, %error, "cannot delete the remote part of a deleted partition; its objects stay in the bucket"),
            }
        });
    }

    fn upload_loop(&self, logs: &Logs, stop: &Stop) {
        let mut backoff: HashMap<TopicPartition, Backoff> = HashMap::new();
        let mut store_up = true;
        let Some(runtime) = &self.runtime else { return };
        while !stop.is_set() {
            let now = Instant::now();
            let tiered: Vec<Arc<PartitionLog>> = lock(logs)
                .values()
                .filter(|log| log.config().remote_storage_enable)
                .filter(|log| {
                    backoff
                        .get(log.topic_partition())
                        .and_then(|b| b.next_at)
                        .is_none_or(|at| at <= now)
                })
                .cloned()
                .collect();
            let permits = Arc::new(tokio::sync::Semaphore::new(
                self.config.upload_concurrency.max(1),
            ));
            let passes = futures_util::future::join_all(tiered.iter().map(|log| {
                let permits = Arc::clone(&permits);
                async move {
                    let _permit = permits.acquire().await;
                    (log.topic_partition().clone(), self.pass(log, stop).await)
                }
            }));
            // A shutdown does not wait for uploads in flight: they are dropped, and what
            // they wrote is not in any manifest (removed at the next attach).
            let stopped = async {
                while !stop.is_set() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            };
            let results: Vec<(TopicPartition, Result<(), StorageError>)> =
                match runtime.block_on(async {
                    tokio::select! {
                        results = passes => Some(results),
                        () = stopped => None,
                    }
                }) {
                    Some(results) => results,
                    None => return,
                };
            let mut failed = 0;
            for (tp, result) in results {
                match result {
                    Ok(()) => {
                        backoff.remove(&tp);
                    }
                    Err(error) => {
                        failed += 1;
                        metrics::counter!("floe_remote_upload_errors_total").increment(1);
                        let entry = backoff.entry(tp.clone()).or_default();
                        entry.failures = entry.failures.saturating_add(1);
                        let delay = retry_delay(entry.failures);
                        entry.next_at = Some(Instant::now() + delay);
                        tracing::warn!(partition = %tp, %error, retry_in_ms = delay.as_millis() as u64, "tiered storage pass failed; local segments stay until it succeeds");
                    }
                }
            }
            let up = failed == 0 || failed < tiered.len();
            if up != store_up {
                if up {
                    tracing::info!(url = %self.config.url, "remote store reachable again; uploads resume");
                } else {
                    tracing::error!(url = %self.config.url, "remote store unreachable: uploads wait, local segments are kept (appends are refused past log.local.hard.limit.bytes)");
                }
                store_up = up;
            }
            metrics::gauge!("floe_remote_store_up").set(if up { 1.0 } else { 0.0 });
            let wait = backoff
                .values()
                .filter_map(|b| b.next_at)
                .map(|at| at.saturating_duration_since(Instant::now()))
                .fold(self.config.task_interval, Duration::min);
            if stop.sleep(wait.max(Duration::from_millis(10))) {
                return;
            }
        }
    }

    /// One partition's pass: attach (load the manifest) if needed, expire what the log
    /// start condemns, upload what is closed and durable.
    async fn pass(&self, log: &Arc<PartitionLog>, stop: &Stop) -> Result<(), StorageError> {
        let remote = match log.remote() {
            Some(remote) => remote,
            None => {
                let (shared, tp, key) = (
                    Arc::clone(&self.shared),
                    log.topic_partition().clone(),
                    partition_key(log.topic_partition(), &log.config()),
                );
                let remote = Arc::new(self.shared.run(RemoteLog::load(shared, tp, key)).await?);
                log.attach_remote(Arc::clone(&remote));
                remote
            }
        };
        remote.expire(log.log_start_offset()).await?;
        while !stop.is_set() {
            let after = remote.uploaded_end().unwrap_or(i64::MIN);
            let Some(candidate) = log.upload_candidate(after) else {
                break;
            };
            remote.upload(candidate, log.log_start_offset()).await?;
        }
        let tp = log.topic_partition();
        metrics::gauge!("floe_remote_upload_lag_bytes", "topic" => tp.topic.clone(), "partition" => tp.partition.to_string())
            .set(log.unuploaded_bytes() as f64);
        let manifest = remote.manifest();
        metrics::gauge!("floe_remote_log_bytes", "topic" => tp.topic.clone(), "partition" => tp.partition.to_string())
            .set(manifest.bytes() as f64);
        Ok(())
    }
}

/// Runs the calling thread at nice 10: tiered storage is background work, and on a busy
/// machine the threads serving produce and fetch requests go first. (Linux applies
/// `setpriority` on a thread id to that thread alone.)
fn lower_priority() {
    let tid = rustix::thread::gettid();
    if let Err(error) = rustix::process::setpriority_process(Some(tid), 10) {
        tracing::debug!(%error, "cannot lower the priority of a tiered-storage thread");
    }
}

/// Exponential backoff with jitter: 1 s, 2 s, 4 s ... up to 60 s, each times 0.5–1.5.
fn retry_delay(failures: u32) -> Duration {
    let base = 1000u64
        .saturating_mul(1 << failures.saturating_sub(1).min(6))
        .min(60_000);
    let jitter = 0.5 + rand_unit();
    Duration::from_millis((base as f64 * jitter) as u64)
}

/// A number in [0, 1) from the clock's nanoseconds (jitter needs no better randomness).
fn rand_unit() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    f64::from(nanos % 1000) / 1000.0
}

impl Drop for RemoteStorage {
    fn drop(&mut self) {
        self.stop();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests;

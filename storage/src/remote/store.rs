//! The object store behind tiered storage, and the transfers that move files to and from it:
//! streamed in chunks (never a whole segment in memory), CRC32C computed on the way, the
//! file side done on the blocking pool (never on a runtime worker), uploads paced by the
//! bandwidth limit.

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::path::Path;
use object_store::{
    ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion, WriteMultipart,
};

use super::RemoteConfig;
use crate::error::StorageError;
use crate::io;

/// Size of the chunks files are read and uploaded in (and of multipart parts).
pub(crate) const CHUNK: usize = 8 << 20;
/// Largest write of a download to its file.
const WRITE_CHUNK: usize = 1 << 20;

/// The configured object store and the key prefix everything lives under.
#[derive(Debug)]
pub(crate) struct Store {
    pub(crate) inner: Arc<dyn ObjectStore>,
    pub(crate) prefix: Path,
    /// Whether the store can replace an object conditionally (`PutMode::Update`); the local
    /// file system cannot, and needs not: one broker owns a local directory (its data
    /// directory lock), and its puts are atomic renames.
    pub(crate) conditional_update: bool,
    /// Paces uploads (`remote.log.manager.copy.max.bytes.per.second`).
    limiter: RateLimiter,
}

impl Store {
    /// Builds the store described by `config` (the local directory of a `file://` URL is
    /// created).
    pub(crate) fn open(config: &RemoteConfig) -> Result<Store, StorageError> {
        let bad = |reason: String| StorageError::remote("configure", &config.url, reason);
        let url = url::Url::parse(&config.url).map_err(|e| bad(e.to_string()))?;
        let retry = object_store::RetryConfig {
            backoff: object_store::BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(2),
                base: 2.0,
            },
            // The uploader retries on its own schedule (with backoff and jitter); a request
            // gives up quickly so an outage is seen and reported.
            max_retries: 2,
            retry_timeout: Duration::from_secs(10),
        };
        let client = object_store::ClientOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(config.request_timeout)
            .with_allow_http(true);
        let (inner, prefix, conditional_update): (Arc<dyn ObjectStore>, Path, bool) =
            match url.scheme() {
                "file" => {
                    let dir = url
                        .to_file_path()
                        .map_err(|()| bad("not a local path".into()))?;
                    io::create_dir_all(&dir)?;
                    let store = object_store::local::LocalFileSystem::new_with_prefix(&dir)
                        .map_err(|e| bad(e.to_string()))?
                        .with_automatic_cleanup(true);
                    (Arc::new(store), Path::default(), false)
                }
                "s3" | "s3a" => {
                    let bucket = url
                        .host_str()
                        .ok_or_else(|| bad("an s3:// URL needs a bucket".into()))?;
                    let mut builder = object_store::aws::AmazonS3Builder::from_env()
                        .with_bucket_name(bucket)
                        .with_retry(retry)
                        .with_client_options(client)
                        .with_virtual_hosted_style_request(!config.path_style)
                        // No SHA-256 of every body for the signature (on both ends): each
                        // object's CRC32C is verified after the upload, and against the
                        // manifest on download (TLS protects https endpoints in transit).
                        .with_unsigned_payload(true);
                    for (key, value) in &config.options {
                        let key = key
                            .parse()
                            .map_err(|e: object_store::Error| bad(e.to_string()))?;
                        builder = builder.with_config(key, value);
                    }
                    if let Some(endpoint) = &config.endpoint {
                        builder = builder.with_endpoint(endpoint);
                    }
                    if let Some(region) = &config.region {
                        builder = builder.with_region(region);
                    }
                    if let Some(key) = &config.access_key {
                        builder = builder.with_access_key_id(key);
                    }
                    if let Some(secret) = &config.secret_key {
                        builder = builder.with_secret_access_key(secret);
                    }
                    let store = builder.build().map_err(|e| bad(e.to_string()))?;
                    (Arc::new(store), Path::from(url.path()), true)
                }
                _ => {
                    // gs://, az://, abfss://, ...: object_store's own URL and option names
                    // (service account, account key, ...), from `remote.storage.options`.
                    let mut options: Vec<(String, String)> = config.options.clone();
                    options.push(("allow_http".into(), "true".into()));
                    let (store, prefix) = object_store::parse_url_opts(&url, options)
                        .map_err(|e| bad(e.to_string()))?;
                    (Arc::from(store), prefix, true)
                }
            };
        Ok(Store {
            inner,
            prefix,
            conditional_update,
            limiter: RateLimiter::new(config.copy_max_bytes_per_second),
        })
    }

    /// The key `<prefix>/<relative>`.
    pub(crate) fn key(&self, relative: &str) -> Path {
        let mut key = self.prefix.clone();
        for part in relative.split('/').filter(|p| !p.is_empty()) {
            key = key.clone().join(part);
        }
        key
    }

    /// The key of object `name` of the partition at `partition` (`<topic>-<id>/<n>`).
    pub(crate) fn object_key(&self, partition: &str, name: &str) -> Path {
        self.key(&format!("{partition}/{name}"))
    }

    /// Uploads `len` bytes of `file` as `key`; returns the CRC32C of what was sent. Reads
    /// run on the blocking pool, a chunk at a time; objects above [`CHUNK`] go as a
    /// multipart upload (aborted on failure, so no part lingers).
    pub(crate) async fn upload_file(
        &self,
        file: Arc<io::File>,
        len: u64,
        key: &Path,
    ) -> Result<u32, StorageError> {
        let failed = |e: object_store::Error| StorageError::remote("put", key, e);
        let mut crc = 0u32;
        if len <= CHUNK as u64 {
            let bytes = read_chunk(&file, 0, len as usize).await?;
            crc = crc32c::crc32c_append(crc, &bytes);
            self.limiter.acquire(bytes.len()).await;
            self.inner
                .put(key, PutPayload::from(bytes))
                .await
                .map_err(failed)?;
            return Ok(crc);
        }
        let upload = self.inner.put_multipart(key).await.map_err(failed)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, CHUNK);
        let mut position = 0u64;
        let sent: Result<(), StorageError> = async {
            while position < len {
                let n = (len - position).min(CHUNK as u64) as usize;
                let bytes = read_chunk(&file, position, n).await?;
                crc = crc32c::crc32c_append(crc, &bytes);
                self.limiter.acquire(bytes.len()).await;
                writer.wait_for_capacity(2).await.map_err(failed)?;
                writer.put(bytes);
                position += n as u64;
            }
            Ok(())
        }
        .await;
        match sent {
            Ok(()) => {
                writer.finish().await.map_err(failed)?;
                Ok(crc)
            }
            Err(e) => {
                if let Err(error) = writer.abort().await {
                    tracing::debug!(key = %key, %error, "cannot abort a multipart upload");
                }
                Err(e)
            }
        }
    }

    /// Checks a stored object against what was uploaded: its size, then the CRC32C of its
    /// bytes as the store returns them.
    pub(crate) async fn verify(&self, key: &Path, size: u64, crc: u32) -> Result<(), StorageError> {
        let meta = self
            .inner
            .head(key)
            .await
            .map_err(|e| StorageError::remote("verify", key, e))?;
        if meta.size != size {
            return Err(StorageError::remote(
                "verify",
                key,
                format!("stored object has {} bytes, uploaded {size}", meta.size),
            ));
        }
        let (stored_size, stored_crc) = self.stream_crc(key, None).await?;
        if stored_size != size || stored_crc != crc {
            return Err(StorageError::remote(
                "verify",
                key,
                format!(
                    "stored object reads back as {stored_size} bytes with CRC32C {stored_crc:08x}, uploaded {size} bytes with {crc:08x}"
                ),
            ));
        }
        Ok(())
    }

    /// Reads an object through, returning its size and CRC32C; with `to`, writes it there
    /// (on the blocking pool, through a bounded queue of chunks).
    pub(crate) async fn stream_crc(
        &self,
        key: &Path,
        to: Option<PathBuf>,
    ) -> Result<(u64, u32), StorageError> {
        let failed = |e: object_store::Error| StorageError::remote("get", key, e);
        let result = self.inner.get(key).await.map_err(failed)?;
        let mut stream = result.into_stream();
        let writer = to.map(ChunkWriter::start);
        let (mut size, mut crc) = (0u64, 0u32);
        let mut outcome = Ok(());
        // The body arrives in frames of a few KiB; the file gets them in writes of up to
        // WRITE_CHUNK (fewer hand-offs and syscalls).
        let mut pending = bytes::BytesMut::with_capacity(if writer.is_some() {
            WRITE_CHUNK + (64 << 10)
        } else {
            0
        });
        loop {
            let chunk = stream.next().await;
            let flush = match &chunk {
                Some(Ok(bytes)) => {
                    size += bytes.len() as u64;
                    crc = crc32c::crc32c_append(crc, bytes);
                    if writer.is_some() {
                        pending.extend_from_slice(bytes);
                    }
                    pending.len() >= WRITE_CHUNK
                }
                Some(Err(_)) | None => true,
            };
            if flush
                && !pending.is_empty()
                && let Some(writer) = &writer
                && writer.send(pending.split().freeze()).await.is_err()
            {
                break; // the writer failed; its error is reported below
            }
            if flush && writer.is_some() {
                // One allocation per chunk, not a doubling series of them.
                pending.reserve(WRITE_CHUNK + (64 << 10));
            }
            match chunk {
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    outcome = Err(failed(e));
                    break;
                }
                None => break,
            }
        }
        if let Some(writer) = writer {
            let written = writer.finish().await;
            outcome?;
            written?;
        } else {
            outcome?;
        }
        Ok((size, crc))
    }

    /// Reads a small object whole; `None` if it does not exist. Returns its version too.
    pub(crate) async fn get_small(
        &self,
        key: &Path,
    ) -> Result<Option<(Bytes, UpdateVersion)>, StorageError> {
        match self.inner.get(key).await {
            Ok(result) => {
                let version = UpdateVersion {
                    e_tag: result.meta.e_tag.clone(),
                    version: result.meta.version.clone(),
                };
                let bytes = result
                    .bytes()
                    .await
                    .map_err(|e| StorageError::remote("get", key, e))?;
                Ok(Some((bytes, version)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(StorageError::remote("get", key, e)),
        }
    }

    /// Writes a small object conditionally: created only if absent when `over` is `None`,
    /// replaced only if still at version `over` otherwise (where the store can check it).
    /// `Ok(None)`: the condition failed (another writer got there first).
    pub(crate) async fn put_conditional(
        &self,
        key: &Path,
        bytes: Vec<u8>,
        over: Option<&UpdateVersion>,
    ) -> Result<Option<UpdateVersion>, StorageError> {
        let mode = match over {
            None => PutMode::Create,
            Some(version) if self.conditional_update => PutMode::Update(version.clone()),
            Some(_) => PutMode::Overwrite,
        };
        let options = PutOptions {
            mode,
            ..PutOptions::default()
        };
        match self
            .inner
            .put_opts(key, PutPayload::from(bytes), options)
            .await
        {
            Ok(result) => Ok(Some(UpdateVersion::from(result))),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(None),
            Err(e) => Err(StorageError::remote("put", key, e)),
        }
    }

    /// Every object under `prefix` with its size.
    pub(crate) async fn list(&self, prefix: &Path) -> Result<Vec<(Path, u64)>, StorageError> {
        let mut out = Vec::new();
        let mut stream = self.inner.list(Some(prefix));
        while let Some(meta) = stream.next().await {
            let meta = meta.map_err(|e| StorageError::remote("list", prefix, e))?;
            out.push((meta.location, meta.size));
        }
        Ok(out)
    }

    /// Deletes an object (one already gone is fine).
    pub(crate) async fn delete(&self, key: &Path) -> Result<(), StorageError> {
        match self.inner.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(StorageError::remote("delete", key, e)),
        }
    }
}

/// `len` bytes of `file` from `position`, read on the blocking pool (not through the
/// log's io_uring ring: see [`io::File::read_vec_here`]).
async fn read_chunk(
    file: &Arc<io::File>,
    position: u64,
    len: usize,
) -> Result<Bytes, StorageError> {
    let file = Arc::clone(file);
    io::offload(move || file.read_vec_here(position, len).map(Bytes::from)).await
}

/// Writes a downloaded object to a file on the blocking pool, fed through a bounded queue
/// (so a slow disk slows the download rather than buffering it). Not synced: the
/// download cache is wiped at every start.
struct ChunkWriter {
    tx: tokio::sync::mpsc::Sender<Bytes>,
    done: tokio::task::JoinHandle<Result<(), StorageError>>,
}

impl ChunkWriter {
    fn start(path: PathBuf) -> ChunkWriter {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(4);
        let done = tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let mut file = std::fs::File::create(&path)
                .map_err(|e| StorageError::io(crate::error::IoOp::Open, &path, e))?;
            while let Some(bytes) = rx.blocking_recv() {
                file.write_all(&bytes)
                    .map_err(|e| StorageError::io(crate::error::IoOp::Write, &path, e))?;
            }
            Ok(())
        });
        ChunkWriter { tx, done }
    }

    async fn send(&self, bytes: Bytes) -> Result<(), ()> {
        self.tx.send(bytes).await.map_err(|_| ())
    }

    async fn finish(self) -> Result<(), StorageError> {
        drop(self.tx);
        match self.done.await {
            Ok(result) => result,
            Err(e) => Err(StorageError::remote("get", "download", e)),
        }
    }
}

/// A token bucket over bytes per second (`None`: unlimited), shared by every upload.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    rate: Option<u64>,
    state: std::sync::Mutex<(Instant, f64)>,
}

impl RateLimiter {
    pub(crate) fn new(rate: Option<u64>) -> RateLimiter {
        RateLimiter {
            rate: rate.filter(|&r| r > 0),
            state: std::sync::Mutex::new((Instant::now(), 0.0)),
        }
    }

    /// Waits until `n` bytes may be sent.
    pub(crate) async fn acquire(&self, n: usize) {
        let Some(rate) = self.rate else { return };
        let wait = {
            let mut state = crate::background::lock(&self.state);
            let (last, tokens) = &mut *state;
            let now = Instant::now();
            // At most one second of burst.
            *tokens =
                (*tokens + now.duration_since(*last).as_secs_f64() * rate as f64).min(rate as f64);
            *last = now;
            *tokens -= n as f64;
            if *tokens >= 0.0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(-*tokens / rate as f64)
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// Removes a directory tree of the download cache, logging what it cannot remove.
pub(crate) fn remove_tree(path: &FsPath) {
    if io::exists(path)
        && let Err(error) = io::remove_dir_all(path)
    {
        tracing::warn!(dir = %path.display(), %error, "cannot remove a remote cache directory");
    }
}

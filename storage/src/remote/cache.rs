//! The download cache of remote segments: `<data_dir>/remote-cache/<topic>-<partition>/
//! <base>-<id>/`, holding a segment's `.log`, `.index` and `.timeindex` as downloaded
//! (streamed to disk, each file's CRC32C checked against the manifest). Reads of the remote
//! part are served from these files exactly as from local segments (offset index, batch
//! scan, `sendfile`), so memory stays bounded however many consumers read old data: only
//! the bytes of one fetch response are ever in memory.
//!
//! Bounded by `remote.log.reader.cache.bytes`: after each download the least recently used
//! segments are removed until the cache fits (a read in flight keeps its open files until
//! it is done). Concurrent reads of one segment share one download. A read of segment `k`
//! starts the download of segment `k + 1` (read-ahead for sequential consumers). The cache
//! is emptied at every start.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::manifest::RemoteSegment;
use super::store::{Store, remove_tree};
use crate::background::lock;
use crate::error::StorageError;
use crate::io;
use crate::segment::{INDEX_SUFFIX, LOG_SUFFIX, Segment, SegmentReader, TIME_INDEX_SUFFIX};
use crate::topic_partition::TopicPartition;

/// Name of the cache directory in the data directory.
pub const CACHE_DIR: &str = "remote-cache";

type Key = (TopicPartition, i64, String);

/// One cached (or downloading) segment.
#[derive(Debug, Default)]
struct Slot {
    ready: tokio::sync::OnceCell<SegmentReader>,
    bytes: AtomicU64,
    last_used: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    slots: HashMap<Key, Arc<Slot>>,
    clock: u64,
}

/// The download cache (see the module docs).
#[derive(Debug)]
pub(crate) struct Cache {
    dir: PathBuf,
    max_bytes: u64,
    io: io::Io,
    state: std::sync::Mutex<State>,
}

impl Cache {
    /// Empties (creating) the cache directory.
    pub(crate) fn open(dir: PathBuf, max_bytes: u64, io: io::Io) -> Result<Cache, StorageError> {
        remove_tree(&dir);
        io::create_dir_all(&dir)?;
        Ok(Cache {
            dir,
            max_bytes,
            io,
            state: std::sync::Mutex::new(State::default()),
        })
    }

    /// Bytes of the segments cached now.
    pub(crate) fn bytes(&self) -> u64 {
        lock(&self.state)
            .slots
            .values()
            .map(|s| s.bytes.load(Ordering::Relaxed))
            .sum()
    }

    /// `<cache>/<topic>-<partition>/<base>-<id>/`.
    fn segment_dir(&self, (tp, base, id): &Key) -> PathBuf {
        self.dir
            .join(tp.dir_name())
            .join(format!("{base:020}-{id}"))
    }

    /// Whether a segment is cached (or being downloaded).
    pub(crate) fn contains(&self, tp: &TopicPartition, segment: &RemoteSegment) -> bool {
        lock(&self.state)
            .slots
            .contains_key(&(tp.clone(), segment.base_offset, segment.id.clone()))
    }

    /// A reader of `segment`, downloading it first if it is not cached.
    pub(crate) async fn get(
        &self,
        store: &Store,
        partition_key: &str,
        tp: &TopicPartition,
        segment: &RemoteSegment,
    ) -> Result<SegmentReader, StorageError> {
        let key = (tp.clone(), segment.base_offset, segment.id.clone());
        let slot = {
            let mut state = lock(&self.state);
            state.clock += 1;
            let clock = state.clock;
            let slot = Arc::clone(state.slots.entry(key.clone()).or_default());
            slot.last_used.store(clock, Ordering::Relaxed);
            slot
        };
        let reader = slot
            .ready
            .get_or_try_init(|| async {
                let started = std::time::Instant::now();
                let reader = self.download(store, partition_key, tp, segment).await;
                match &reader {
                    Ok(_) => {
                        metrics::counter!("floe_remote_fetch_bytes_total").increment(segment.size);
                        metrics::histogram!("floe_remote_fetch_seconds")
                            .record(started.elapsed().as_secs_f64());
                        tracing::debug!(partition = %tp, base = segment.base_offset, bytes = segment.size, "downloaded remote segment");
                    }
                    Err(error) => {
                        metrics::counter!("floe_remote_fetch_errors_total").increment(1);
                        tracing::warn!(partition = %tp, base = segment.base_offset, %error, "cannot download remote segment");
                    }
                }
                reader
            })
            .await;
        let reader = match reader {
            Ok(reader) => reader.clone(),
            Err(e) => {
                // Not cached: the next read tries again.
                let mut state = lock(&self.state);
                if state
                    .slots
                    .get(&key)
                    .is_some_and(|s| Arc::ptr_eq(s, &slot) && s.ready.get().is_none())
                {
                    state.slots.remove(&key);
                }
                return Err(e);
            }
        };
        slot.bytes.store(
            segment.files.iter().map(|f| f.size).sum(),
            Ordering::Relaxed,
        );
        self.evict(&key).await;
        Ok(reader)
    }

    /// Downloads a segment's files into its cache directory and opens them.
    async fn download(
        &self,
        store: &Store,
        partition_key: &str,
        tp: &TopicPartition,
        segment: &RemoteSegment,
    ) -> Result<SegmentReader, StorageError> {
        let dir = self.segment_dir(&(tp.clone(), segment.base_offset, segment.id.clone()));
        {
            let dir = dir.clone();
            io::offload(move || {
                remove_tree(&dir);
                io::create_dir_all(&dir)
            })
            .await?;
        }
        for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            let path = crate::segment::segment_file(&dir, segment.base_offset, suffix);
            let Some(expected) = segment.file(suffix) else {
                // An index not uploaded is rebuilt empty: reads then scan the batches.
                continue;
            };
            let key = store.object_key(partition_key, &segment.object_name(suffix));
            let (size, crc) = store.stream_crc(&key, Some(path)).await?;
            if size != expected.size || crc != expected.crc32c {
                return Err(StorageError::remote(
                    "get",
                    &key,
                    format!(
                        "downloaded {size} bytes with CRC32C {crc:08x}, the manifest says {} bytes with {:08x}",
                        expected.size, expected.crc32c
                    ),
                ));
            }
        }
        let (io, meta) = (self.io.clone(), segment.clone());
        io::offload(move || {
            let (mut opened, _) = Segment::open_files(&io, &dir, meta.base_offset)?;
            if opened.size != meta.size {
                return Err(StorageError::remote(
                    "get",
                    dir.display(),
                    format!(
                        "segment has {} bytes, the manifest says {}",
                        opened.size, meta.size
                    ),
                ));
            }
            opened.next_offset = meta.next_offset;
            opened.max_timestamp = meta.max_timestamp;
            opened.offset_of_max_timestamp = meta.offset_of_max_timestamp;
            Ok(opened.reader())
        })
        .await
    }

    /// Removes least recently used segments (never `keep`) until the cache fits.
    async fn evict(&self, keep: &Key) {
        let doomed: Vec<PathBuf> = {
            let mut state = lock(&self.state);
            let mut total: u64 = state
                .slots
                .values()
                .map(|s| s.bytes.load(Ordering::Relaxed))
                .sum();
            let mut doomed = Vec::new();
            while total > self.max_bytes {
                let victim = state
                    .slots
                    .iter()
                    .filter(|(k, s)| *k != keep && s.ready.get().is_some())
                    .min_by_key(|(_, s)| s.last_used.load(Ordering::Relaxed))
                    .map(|(k, _)| k.clone());
                let Some(victim) = victim else { break };
                if let Some(slot) = state.slots.remove(&victim) {
                    total = total.saturating_sub(slot.bytes.load(Ordering::Relaxed));
                    doomed.push(self.segment_dir(&victim));
                }
            }
            doomed
        };
        metrics::gauge!("floe_remote_cache_bytes").set(self.bytes() as f64);
        if doomed.is_empty() {
            return;
        }
        let removed: Result<(), StorageError> = io::offload(move || {
            for dir in doomed {
                remove_tree(&dir);
            }
            Ok(())
        })
        .await;
        if let Err(error) = removed {
            tracing::warn!(%error, "cannot evict remote cache entries");
        }
    }

    /// Forgets every segment of a partition (it was deleted).
    pub(crate) fn forget(&self, tp: &TopicPartition) {
        lock(&self.state).slots.retain(|(t, _, _), _| t != tp);
        remove_tree(&self.dir.join(tp.dir_name()));
    }
}

//! The awaitable append and read paths (`PartitionLog::append`, `read_region`) driven from a
//! multi-threaded runtime, on both I/O backends.

use std::future::Future;
use std::task::Poll;

use super::tests::{open, read_all};
use super::*;
use crate::segment::{LOG_SUFFIX, parse_segment_file};
use crate::test_util::{batch, batch_with, decode};
use kafka_protocol::records::Compression;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A one-record batch of about `size` bytes whose value starts with `tag`.
fn sized(tag: &str, size: usize) -> BytesMut {
    let value = format!("{tag}-{}", "x".repeat(size));
    batch_with(&value, &[1_000], None, Compression::None)
}

/// Appends from several tasks at once, mixing writes done in place with writes through the
/// ring or the blocking pool (`RING_WRITE_MIN` and up) and rolls: every append gets its
/// own contiguous offsets, each task's appends keep their order, and reading back returns
/// every record at the offset its append was told.
fn concurrent_appends_of_every_size_stay_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 512 * 1024,
        ..LogConfig::default()
    };
    let (manager, log) = open(dir.path(), config);
    let rt = runtime();
    let tasks: Vec<_> = (0..4)
        .map(|t| {
            let log = Arc::clone(&log);
            rt.spawn(async move {
                let mut told = Vec::new();
                for i in 0..40 {
                    let tag = format!("t{t}-{i}");
                    let size = if (i + t) % 3 == 0 { 100 * 1024 } else { 200 };
                    let info = log.append(sized(&tag, size), 0).await.unwrap();
                    assert_eq!(info.base_offset, info.last_offset);
                    told.push((info.base_offset, tag));
                }
                told
            })
        })
        .collect();
    let mut told = Vec::new();
    for task in tasks {
        let appended = rt.block_on(task).unwrap();
        assert!(
            appended.windows(2).all(|w| w[0].0 < w[1].0),
            "a task's order"
        );
        told.extend(appended);
    }
    told.sort();
    assert_eq!(log.log_end_offset(), 160);
    let read = read_all(&log, 0);
    assert_eq!(read.len(), 160);
    for ((offset, value), (told_offset, tag)) in read.iter().zip(&told) {
        assert_eq!(offset, told_offset);
        assert!(value.starts_with(&format!("{tag}-")), "{offset}: {tag}");
    }
    let segments = std::fs::read_dir(log.dir())
        .unwrap()
        .filter(|e| {
            parse_segment_file(
                e.as_ref().unwrap().file_name().to_str().unwrap(),
                LOG_SUFFIX,
            )
            .is_some()
        })
        .count();
    assert!(segments > 5, "{segments} segments: the appends rolled");
    drop(rt);
    manager.shutdown().unwrap();
}

/// Dropping an append's future while its write is in flight neither loses the partition
/// (the write finishes as its own task) nor lets a later append overtake it.
fn dropped_append_finishes_and_is_not_overtaken() {
    let dir = tempfile::tempdir().unwrap();
    let (_manager, log) = open(dir.path(), LogConfig::default());
    let rt = runtime();
    rt.block_on(async {
        {
            let mut large = std::pin::pin!(log.append(sized("large", 200 * 1024), 0));
            // Polled once: the write has left for the ring or the blocking pool; then the
            // future is dropped.
            let first = std::future::poll_fn(|cx| Poll::Ready(large.as_mut().poll(cx))).await;
            assert!(
                first.is_pending(),
                "a 200 KiB append completed on its first poll"
            );
        }
        let small = log.append(batch("small", 1, 1_000), 0).await.unwrap();
        assert_eq!(small.base_offset, 1);
    });
    // A thread appending meanwhile waits for the same in-flight write.
    assert_eq!(
        log.append_now(batch("now", 1, 1_000), 0)
            .unwrap()
            .base_offset,
        2
    );
    let read = read_all(&log, 0);
    assert_eq!(read.len(), 3);
    assert!(read[0].1.starts_with("large-"));
    assert_eq!(read[1], (1, "small-0".to_string()));
    assert_eq!(read[2], (2, "now-0".to_string()));
}

/// Evicts a file's pages from the page cache (clean pages only: sync first).
fn evict(path: &Path) {
    let file = std::fs::File::open(path).unwrap();
    rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed).unwrap();
}

/// A fetch of data in the page cache is served as a file range (for `sendfile`); a fetch of
/// data that is not cached is read on the blocking pool and returned loaded, with the same
/// bytes. Either way the runtime's threads never wait for the disk.
fn read_region_serves_cached_and_evicted_data() {
    let dir = tempfile::tempdir().unwrap();
    let (_manager, log) = open(dir.path(), LogConfig::default());
    for i in 0..20 {
        log.append_now(batch(&format!("b{i}"), 10, 1_000), 0)
            .unwrap();
        log.append_now(sized(&format!("s{i}"), 16 * 1024), 0)
            .unwrap();
    }
    log.sync().unwrap();
    let expected = log.read(0, 1 << 20).unwrap().records;
    let rt = runtime();
    let cached = rt
        .block_on(log.read_region(0, 1 << 20, Isolation::Uncommitted))
        .unwrap();
    let region = cached.region.unwrap();
    assert!(region.is_cached());
    assert_eq!(Bytes::from(region.read().unwrap()), expected);
    assert_pieces_match(&region, &expected);

    // Reading without waiting for the disk gives up on the evicted index or batch. The
    // kernel may keep a page that is still under writeback when asked to drop it (seen on a
    // loaded machine), so eviction is retried until the read has to give up.
    let gave_up = (0..50).any(|_| {
        for file in std::fs::read_dir(log.dir()).unwrap() {
            evict(&file.unwrap().path());
        }
        let read = io::without_blocking(|| log.read_region_now(0, 1 << 20, Isolation::Uncommitted));
        if read.is_some() {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        read.is_none()
    });
    assert!(gave_up, "a read of evicted data never gave up");
    for file in std::fs::read_dir(log.dir()).unwrap() {
        evict(&file.unwrap().path());
    }
    let loaded = rt
        .block_on(log.read_region(0, 1 << 20, Isolation::Uncommitted))
        .unwrap();
    let region = loaded.region.unwrap();
    assert!(region.is_cached(), "loaded into memory");
    assert_eq!(Bytes::from(region.read().unwrap()), expected);
    assert_pieces_match(&region, &expected);
    assert_eq!(decode(&expected).len(), 220);
}

/// `read_range` of a region, piece by piece (as a TLS connection sends it) and at its edges,
/// gives the region's bytes.
fn assert_pieces_match(region: &io::FileRegion, expected: &Bytes) {
    assert_eq!(region.len(), expected.len());
    for piece in [1, 4096, 100_000, expected.len()] {
        let mut joined = Vec::new();
        let mut at = 0;
        while at < region.len() {
            let bytes = region.read_range(at, piece).unwrap();
            assert!(!bytes.is_empty() && bytes.len() <= piece);
            at += bytes.len();
            joined.extend_from_slice(&bytes);
        }
        assert_eq!(joined, expected[..], "pieces of {piece} bytes");
    }
    let middle = expected.len() / 2;
    assert_eq!(
        region.read_range(middle, 7).unwrap(),
        expected.slice(middle..middle + 7)
    );
    assert_eq!(
        region.read_range(middle, usize::MAX).unwrap(),
        expected.slice(middle..)
    );
    assert!(region.read_range(expected.len(), 10).unwrap().is_empty());
    assert!(
        region
            .read_range(expected.len() + 5, 10)
            .unwrap()
            .is_empty()
    );
}

crate::test_util::on_both_backends!(
    concurrent_appends_of_every_size_stay_in_order,
    dropped_append_finishes_and_is_not_overtaken,
    read_region_serves_cached_and_evicted_data,
);

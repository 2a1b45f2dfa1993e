//! Storage micro-benchmarks on the public API only (`LogManager`, `PartitionLog`):
//!
//! - `append`: 16 KiB batches (16 x 1 KiB records) appended to one partition, without sync
//!   (what an acks=1 produce costs the log) and with a sync after every append (the worst
//!   case of acks=all: no group commit to share the fdatasync).
//! - `read_random_offset`: `read(offset, 1 byte)` at random offsets of a 256 MiB log of 4 KiB
//!   batches, which returns the one batch holding the offset: offset-index lookup, the short
//!   scan from the indexed position, and the read of one batch.
//! - `recovery`: opening a partition of 64 MiB / 256 MiB / 1 GiB after a clean shutdown
//!   (the marker lets it skip validation) and after a crash (no marker: the active segment
//!   is validated batch by batch).
//!
//! Every log lives in a temporary directory on the disk that holds the system temp dir
//! (`TMPDIR` picks another). Run: `cargo bench -p floe-storage --bench log`.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use floe_protocol::test_kit::{encode, record};
use floe_storage::{LogConfig, LogManager, TopicPartition};
use kafka_protocol::records::Compression;

const RECORD_SIZE: usize = 1024;
const NOW_MS: i64 = 1_700_000_000_000;

/// An uncompressed batch of `records` records of 1 KiB.
fn batch(records: usize) -> BytesMut {
    let value = Bytes::from(
        (0..RECORD_SIZE)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>(),
    );
    let records: Vec<_> = (0..records)
        .map(|i| record(i as i64, NOW_MS, None, Some(value.clone())))
        .collect();
    encode(&records, Compression::None)
}

fn tp() -> TopicPartition {
    TopicPartition::new("bench", 0)
}

fn config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        ..LogConfig::default()
    }
}

fn append(c: &mut Criterion) {
    let template = batch(16);
    let mut group = c.benchmark_group("append");
    group.throughput(Throughput::Bytes(template.len() as u64));
    for sync in [false, true] {
        let name = if sync { "16KiB_sync_each" } else { "16KiB" };
        group.bench_function(name, |b| {
            // A fresh log per sample, so the disk use of a run stays bounded.
            b.iter_custom(|iters| {
                let dir = tempfile::tempdir().expect("temp dir");
                let logs = LogManager::open(dir.path()).expect("open log manager");
                let log = logs
                    .open_partition(&tp(), config(256 << 20))
                    .expect("open partition");
                let mut elapsed = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    // Copies of the batch are made off the clock, in chunks.
                    let chunk = left.min(512);
                    let batches: Vec<BytesMut> = (0..chunk).map(|_| template.clone()).collect();
                    let start = Instant::now();
                    for records in batches {
                        log.append_now(records, NOW_MS).expect("append");
                        if sync {
                            log.sync().expect("sync");
                        }
                    }
                    elapsed += start.elapsed();
                    left -= chunk;
                }
                elapsed
            })
        });
    }
    group.finish();
}

/// Appends 4 KiB batches until the log holds `bytes`; returns the log end offset.
fn fill(dir: &Path, bytes: u64, segment_bytes: u64) -> i64 {
    let logs = LogManager::open(dir).expect("open log manager");
    let log = logs
        .open_partition(&tp(), config(segment_bytes))
        .expect("open partition");
    let template = batch(4);
    let batches = bytes / template.len() as u64;
    for _ in 0..batches {
        log.append_now(template.clone(), NOW_MS).expect("append");
    }
    logs.shutdown().expect("clean shutdown");
    log.log_end_offset()
}

fn read_random_offset(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let end = fill(dir.path(), 256 << 20, 64 << 20);
    let logs = LogManager::open(dir.path()).expect("open log manager");
    let log = logs
        .open_partition(&tp(), config(64 << 20))
        .expect("open partition");
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    c.bench_function("read_random_offset/256MiB_log", |b| {
        b.iter(|| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let offset = (state % end as u64) as i64;
            let result = log.read(offset, 1).expect("read");
            assert!(!result.records.is_empty());
            result
        })
    });
}

fn recovery(c: &mut Criterion) {
    let mut group = c.benchmark_group("recovery");
    group.sample_size(10);
    for (name, bytes) in [
        ("64MiB", 64u64 << 20),
        ("256MiB", 256 << 20),
        ("1GiB", 1 << 30),
    ] {
        let dir = tempfile::tempdir().expect("temp dir");
        // Default segment size (1 GiB): the whole log is in the active segment, which is
        // what crash recovery validates.
        fill(dir.path(), bytes, LogConfig::default().segment_bytes);
        group.throughput(Throughput::Bytes(bytes));
        group.bench_with_input(BenchmarkId::new("clean", name), dir.path(), |b, path| {
            b.iter_custom(|iters| {
                let mut elapsed = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let logs = LogManager::open(path).expect("open log manager");
                    logs.open_partition(&tp(), LogConfig::default())
                        .expect("open partition");
                    elapsed += start.elapsed();
                    // Off the clock: write the marker again for the next iteration.
                    logs.shutdown().expect("clean shutdown");
                }
                elapsed
            })
        });
        group.bench_with_input(
            BenchmarkId::new("after_crash", name),
            dir.path(),
            |b, path| {
                b.iter_custom(|iters| {
                    let mut elapsed = Duration::ZERO;
                    for _ in 0..iters {
                        // Consume the marker off the clock so the timed open finds none.
                        drop(LogManager::open(path).expect("open log manager"));
                        let start = Instant::now();
                        let logs = LogManager::open(path).expect("open log manager");
                        logs.open_partition(&tp(), LogConfig::default())
                            .expect("open partition");
                        elapsed += start.elapsed();
                        drop(logs);
                    }
                    elapsed
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, append, read_random_offset, recovery);
criterion_main!(benches);

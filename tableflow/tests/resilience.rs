//! Tableflow under faults (issue 9, "holes in tables"), in process: a real log directory,
//! the embedded SQLite catalog, and the tables read back with the `iceberg` crate's scan.
//!
//! - A batch that cannot be decoded goes to the dead-letter table and the table moves on.
//! - A catalog held locked by a reader for 10 s while commits are due loses no record and
//!   doubles none.
//! - A machine crash (the storage fault model drops what was not synced) never leaves the
//!   table ahead of the log, and every durable record is in the table exactly once.
//! - A table found ahead of its log stops with an error instead of refilling from the start.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{Array, Int64Array, LargeBinaryArray, RecordBatch};
use bytes::{Bytes, BytesMut};
use floe_storage::{Io, LogConfig, LogManager, PartitionLog, TopicPartition};
use floe_tableflow::sink::{NEXT_OFFSETS_PROPERTY, open_catalog};
use floe_tableflow::{Tableflow, TableflowSettings};
use futures_util::TryStreamExt;
use iceberg::{Catalog, NamespaceIdent, TableIdent};
use kafka_protocol::records::Compression;

const TOPIC: &str = "events";

fn configs() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("table.enable".to_string(), "true".to_string()),
        ("table.commit.interval.ms".to_string(), "100".to_string()),
    ])
}

/// One batch of `n` records with values `v<first>`..`v<first + n - 1>`.
fn batch(first: i64, n: usize, compression: Compression) -> BytesMut {
    floe_protocol::test_kit::numbered_batch(first, n, "k", "v", compression)
}

/// Rewrites `recordsCount` and `lastOffsetDelta` (consistently with each other) and fixes
/// the CRC: a batch that claims `claim` records whatever it holds.
fn claiming(mut batch: BytesMut, claim: i32) -> BytesMut {
    batch[23..27].copy_from_slice(&(claim - 1).to_be_bytes());
    batch[57..61].copy_from_slice(&claim.to_be_bytes());
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    batch
}

struct Node {
    logs: Arc<LogManager>,
    log: Arc<PartitionLog>,
    tableflow: Tableflow,
}

fn settings(dir: &Path) -> TableflowSettings {
    TableflowSettings::embedded(dir)
}

fn start(dir: &Path, io: Io) -> Node {
    let logs = Arc::new(LogManager::open_with(dir, io).unwrap());
    let log = logs
        .open_partition(&TopicPartition::new(TOPIC, 0), LogConfig::default())
        .unwrap();
    let tableflow = Tableflow::start(settings(dir), logs.clone(), None);
    tableflow.topic_changed(TOPIC, 1, &configs());
    Node {
        logs,
        log,
        tableflow,
    }
}

fn ident(name: &str) -> TableIdent {
    TableIdent::new(NamespaceIdent::new("default".into()), name.into())
}

/// The table's rows as `(offset, value)` and the next offset its newest snapshot records.
async fn table_rows(catalog: &dyn Catalog, name: &str) -> Option<(Vec<(i64, Bytes)>, i64)> {
    let ident = ident(name);
    if !catalog.table_exists(&ident).await.ok()? {
        return None;
    }
    let table = catalog.load_table(&ident).await.ok()?;
    let next = table
        .metadata()
        .current_snapshot()
        .and_then(|s| {
            s.summary()
                .additional_properties
                .get(NEXT_OFFSETS_PROPERTY)
                .cloned()
        })
        .map(|text| {
            let m: HashMap<String, i64> = serde_json::from_str(&text).unwrap();
            m.get("0").copied().unwrap_or(0)
        })
        .unwrap_or(0);
    let batches: Vec<RecordBatch> = table
        .scan()
        .select(["offset", "value"])
        .build()
        .unwrap()
        .to_arrow()
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let mut rows = Vec::new();
    for b in batches {
        let offsets = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        let values = b
            .column(1)
            .as_any()
            .downcast_ref::<LargeBinaryArray>()
            .unwrap();
        for i in 0..b.num_rows() {
            let v = if values.is_null(i) {
                Bytes::new()
            } else {
                Bytes::copy_from_slice(values.value(i))
            };
            rows.push((offsets.value(i), v));
        }
    }
    rows.sort();
    Some((rows, next))
}

async fn wait_for_next_offset(catalog: &dyn Catalog, name: &str, want: i64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some((_, next)) = table_rows(catalog, name).await
            && next >= want
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "table {name} did not reach next offset {want} in {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every offset in `0..end` exactly once, with its value `v<offset>`.
fn assert_exactly_once(rows: &[(i64, Bytes)], end: i64) {
    let mut count = vec![0u32; end.max(0) as usize];
    for (o, _) in rows {
        assert!(
            (0..end).contains(o),
            "row at offset {o} is outside 0..{end}"
        );
        count[*o as usize] += 1;
    }
    let missing: Vec<usize> = (0..count.len()).filter(|&o| count[o] == 0).collect();
    let doubled: Vec<usize> = (0..count.len()).filter(|&o| count[o] > 1).collect();
    assert!(
        missing.is_empty() && doubled.is_empty(),
        "table rows are not offsets 0..{end} exactly once: missing {missing:?}, doubled {doubled:?}"
    );
    for (o, v) in rows {
        assert_eq!(&v[..], format!("v{o}").as_bytes(), "value of offset {o}");
    }
}

fn append(log: &std::sync::Arc<PartitionLog>, first: i64, n: usize) {
    let info = log
        .append_now(batch(first, n, Compression::None), 0)
        .unwrap();
    assert_eq!(info.base_offset, first);
}

/// Item 1: a compressed batch claiming 2^31 - 1 records (written to the log directly, as an
/// old broker accepted it) and one whose gzip stream is damaged go to `events_dlq` whole;
/// the table carries on with the records after them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_batches_go_to_the_dead_letter_table() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), Io::std());
    append(&node.log, 0, 10);
    let hostile = claiming(batch(10, 1, Compression::Gzip), i32::MAX);
    node.log.append_now(hostile, 0).unwrap();
    let offset_after_hostile = node.log.log_end_offset();
    let mut damaged = batch(0, 5, Compression::Gzip);
    let len = damaged.len();
    damaged[len - 12..len - 4].fill(0xAB); // inside the deflate stream / gzip trailer
    let crc = crc32c::crc32c(&damaged[21..]);
    damaged[17..21].copy_from_slice(&crc.to_be_bytes());
    node.log.append_now(damaged, 0).unwrap();
    let after = node.log.log_end_offset();
    let info = node
        .log
        .append_now(batch(after, 10, Compression::Zstd), 0)
        .unwrap();
    let end = info.last_offset + 1;
    node.log.sync().unwrap();

    let catalog = open_catalog(&settings(dir.path())).await.unwrap();
    wait_for_next_offset(catalog.as_ref(), TOPIC, end, Duration::from_secs(60)).await;
    let (rows, _) = table_rows(catalog.as_ref(), TOPIC).await.unwrap();
    let offsets: Vec<i64> = rows.iter().map(|(o, _)| *o).collect();
    let want: Vec<i64> = (0..10).chain(after..end).collect();
    assert_eq!(offsets, want);
    wait_for_next_offset(catalog.as_ref(), "events_dlq", 1, Duration::from_secs(30)).await;
    let (dlq, _) = table_rows(catalog.as_ref(), "events_dlq").await.unwrap();
    let dlq_offsets: Vec<i64> = dlq.iter().map(|(o, _)| *o).collect();
    assert_eq!(dlq_offsets, vec![10, offset_after_hostile]);
    node.tableflow.shutdown().await;
}

/// Item 2 / acceptance 2: a reader holds a transaction on `catalog.db` for 10 s while
/// records keep arriving and commits fall due. Every record ends up in the table exactly
/// once, and the failed commits are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_locked_for_ten_seconds_loses_nothing() {
    use sqlx::{Connection, Executor};
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), Io::std());
    let catalog = open_catalog(&settings(dir.path())).await.unwrap();
    let mut next = 0i64;
    for _ in 0..20 {
        append(&node.log, next, 10);
        next += 10;
    }
    node.log.sync().unwrap();
    wait_for_next_offset(catalog.as_ref(), TOPIC, next, Duration::from_secs(60)).await;

    // A reader (as Spark's JDBC catalog or the sqlite3 shell would) holds a shared lock.
    let db = dir.path().join("iceberg/catalog.db");
    let mut reader = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    reader.execute("BEGIN").await.unwrap();
    reader
        .execute("SELECT count(*) FROM iceberg_tables")
        .await
        .unwrap();
    let locked_at = Instant::now();
    while locked_at.elapsed() < Duration::from_secs(10) {
        append(&node.log, next, 10);
        next += 10;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    reader.execute("COMMIT").await.unwrap();
    drop(reader);
    for _ in 0..5 {
        append(&node.log, next, 10);
        next += 10;
    }
    node.log.sync().unwrap();
    wait_for_next_offset(catalog.as_ref(), TOPIC, next, Duration::from_secs(90)).await;
    let (rows, committed) = table_rows(catalog.as_ref(), TOPIC).await.unwrap();
    assert_eq!(committed, next);
    assert_exactly_once(&rows, next);
    let failures: u64 = node
        .tableflow
        .status()
        .iter()
        .map(|s| s.commit_failures)
        .sum();
    assert!(failures > 0, "the blocked commits were not counted");
    node.tableflow.shutdown().await;
}

/// Item 3 / acceptance 2: a machine crash (the fault model keeps only what was synced, the
/// unsynced tail possibly torn) right after the table committed. The table commits only
/// records the log made durable first, so after recovery it is never ahead of the log,
/// and once caught up it holds every record of the recovered log exactly once.
#[test]
fn power_loss_never_leaves_the_table_ahead_of_the_log() {
    for seed in [3u64, 8, 21] {
        let dir = tempfile::tempdir().unwrap();
        let (io, faults) = Io::std().with_faults();
        let durable_before_crash = {
            let rt = tokio::runtime::Runtime::new().unwrap();
            let durable = rt.block_on(async {
                let node = start(dir.path(), io.clone());
                let catalog = open_catalog(&settings(dir.path())).await.unwrap();
                // Only page-cache writes (acks=1): the table's commit is what syncs them.
                for i in 0..15 {
                    append(&node.log, i * 10, 10);
                }
                wait_for_next_offset(catalog.as_ref(), TOPIC, 150, Duration::from_secs(60)).await;
                // More records, and the crash before or while they are committed.
                for i in 15..20 {
                    append(&node.log, i * 10, 10);
                }
                tokio::time::sleep(Duration::from_millis(seed * 10)).await;
                node.log.durable_offset()
            });
            // The process is gone: tasks dropped mid-flight, nothing shut down cleanly.
            rt.shutdown_timeout(Duration::from_secs(10));
            durable
        };
        faults.crash(seed);

        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let node = start(dir.path(), Io::std());
            let end = node.log.log_end_offset();
            assert!(
                end >= durable_before_crash,
                "seed {seed}: the log lost durable records"
            );
            let catalog = open_catalog(&settings(dir.path())).await.unwrap();
            let (_, next) = table_rows(catalog.as_ref(), TOPIC).await.unwrap();
            assert!(
                next <= end,
                "seed {seed}: table at {next} is ahead of the log end {end}"
            );
            append(&node.log, end, 10);
            wait_for_next_offset(catalog.as_ref(), TOPIC, end + 10, Duration::from_secs(60)).await;
            let (rows, _) = table_rows(catalog.as_ref(), TOPIC).await.unwrap();
            assert_exactly_once(&rows, end + 10);
            assert!(node.tableflow.status().iter().all(|s| s.stopped.is_none()));
            node.tableflow.shutdown().await;
            node.logs.shutdown().unwrap();
        });
    }
}

/// Item 3: a table whose offsets are past its log's end (here the partition was deleted
/// and created again under the same table) is not refilled from the log start: its writer
/// stops with an error the status shows, and the table keeps exactly what it had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_ahead_of_its_log_stops_instead_of_refilling() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), Io::std());
    let catalog = open_catalog(&settings(dir.path())).await.unwrap();
    for i in 0..10 {
        append(&node.log, i * 10, 10);
    }
    wait_for_next_offset(catalog.as_ref(), TOPIC, 100, Duration::from_secs(60)).await;
    node.tableflow.shutdown().await;

    let tp = TopicPartition::new(TOPIC, 0);
    drop(node.log);
    node.logs.delete_partition(&tp).unwrap();
    let log = node.logs.open_partition(&tp, LogConfig::default()).unwrap();
    append(&log, 0, 10);
    let tableflow = Tableflow::start(settings(dir.path()), node.logs.clone(), None);
    tableflow.topic_changed(TOPIC, 1, &configs());
    let deadline = Instant::now() + Duration::from_secs(30);
    let reason = loop {
        if let Some(reason) = tableflow.status().into_iter().find_map(|s| s.stopped) {
            break reason;
        }
        assert!(Instant::now() < deadline, "the writer did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(reason.contains("ahead"), "{reason}");
    let (rows, next) = table_rows(catalog.as_ref(), TOPIC).await.unwrap();
    assert_eq!(next, 100);
    assert_exactly_once(&rows, 100);
    tableflow.shutdown().await;
}

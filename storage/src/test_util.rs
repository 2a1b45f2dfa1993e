//! Helpers for storage tests: record batches built with `kafka-protocol`'s encoder.

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder, TimestampType};

/// Idempotent producer fields of a test batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Producer {
    pub(crate) id: i64,
    pub(crate) epoch: i16,
    pub(crate) first_seq: i32,
}

/// A batch of records with the given timestamps; values are `"<tag>-<i>"`.
pub(crate) fn batch_with(
    tag: &str,
    timestamps: &[i64],
    producer: Option<Producer>,
    compression: Compression,
) -> BytesMut {
    let records: Vec<Record> = timestamps
        .iter()
        .enumerate()
        .map(|(i, &timestamp)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: producer.map_or(-1, |p| p.id),
            producer_epoch: producer.map_or(-1, |p| p.epoch),
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder starts a new batch whenever `offset - sequence` changes, so
            // non-idempotent records count up from -1 to get one batch with base sequence -1.
            sequence: producer.map_or(i as i32 - 1, |p| p.first_seq + i as i32),
            timestamp,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(format!("{tag}-{i}"))),
            headers: IndexMap::new(),
        })
        .collect();
    floe_protocol::test_kit::encode(&records, compression)
}

/// An uncompressed batch of `n` records, all with timestamp `ts`.
pub(crate) fn batch(tag: &str, n: usize, ts: i64) -> BytesMut {
    batch_with(tag, &vec![ts; n], None, Compression::None)
}

/// An idempotent batch of `n` records.
pub(crate) fn idempotent(id: i64, epoch: i16, first_seq: i32, n: usize) -> BytesMut {
    batch_with(
        &format!("p{id}-s{first_seq}"),
        &vec![1_000; n],
        Some(Producer {
            id,
            epoch,
            first_seq,
        }),
        Compression::None,
    )
}

/// A transactional batch of `n` records from producer `id` (values `"<tag>-<i>"`).
pub(crate) fn transactional(tag: &str, id: i64, epoch: i16, first_seq: i32, n: usize) -> BytesMut {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: true,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: id,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: first_seq + i as i32,
            timestamp: 1_000,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(format!("{tag}-{i}"))),
            headers: IndexMap::new(),
        })
        .collect();
    floe_protocol::test_kit::encode(&records, Compression::None)
}

/// Decodes fetched bytes into `(offset, value)` pairs.
pub(crate) fn decode(bytes: &Bytes) -> Vec<(i64, String)> {
    let mut buf = bytes.clone();
    RecordBatchDecoder::decode_all(&mut buf)
        .unwrap()
        .into_iter()
        .flat_map(|set| set.records)
        .map(|r| {
            let value = r.value.map(|v| String::from_utf8(v.to_vec()).unwrap());
            (r.offset, value.unwrap_or_default())
        })
        .collect()
}

/// Decodes fetched bytes into `(offset, value)` pairs of data records, skipping control
/// records (transaction markers), as a consumer does.
pub(crate) fn decode_data(bytes: &Bytes) -> Vec<(i64, String)> {
    let mut buf = bytes.clone();
    RecordBatchDecoder::decode_all(&mut buf)
        .unwrap()
        .into_iter()
        .flat_map(|set| set.records)
        .filter(|r| !r.control)
        .map(|r| {
            let value = r.value.map(|v| String::from_utf8(v.to_vec()).unwrap());
            (r.offset, value.unwrap_or_default())
        })
        .collect()
}

/// Offsets of every record in `bytes`.
pub(crate) fn offsets(bytes: &Bytes) -> Vec<i64> {
    decode(bytes).into_iter().map(|(o, _)| o).collect()
}

thread_local! {
    /// The backend the current test scenario runs on (see [`on_both_backends!`]).
    static BACKEND: std::cell::RefCell<Option<crate::io::Io>> = const { std::cell::RefCell::new(None) };
}

/// A fresh backend of `kind`. Storage scenarios run on both backends; io_uring must work
/// on the machines the tests run on (it does on this project's machines and CI).
pub(crate) fn new_backend(kind: crate::io::IoKind) -> crate::io::Io {
    match kind {
        crate::io::IoKind::Std => crate::io::Io::std(),
        crate::io::IoKind::Uring => crate::io::Io::uring()
            .expect("io_uring must be available: storage tests run every scenario on it"),
    }
}

/// Runs `scenario` with [`backend`] returning a backend of `kind`.
pub(crate) fn with_backend(kind: crate::io::IoKind, scenario: impl FnOnce()) {
    let io = new_backend(kind);
    assert_eq!(io.kind(), kind);
    BACKEND.with(|b| *b.borrow_mut() = Some(io));
    scenario();
    BACKEND.with(|b| *b.borrow_mut() = None);
}

/// The backend of the running scenario (std outside [`with_backend`]).
pub(crate) fn backend() -> crate::io::Io {
    BACKEND.with(|b| b.borrow().clone()).unwrap_or_default()
}

/// Both backends, for property tests that loop over them.
pub(crate) fn all_backends() -> [crate::io::IoKind; 2] {
    [crate::io::IoKind::Std, crate::io::IoKind::Uring]
}

/// Opens a log manager on the scenario's backend.
pub(crate) fn open_manager(dir: &std::path::Path) -> crate::LogManager {
    crate::LogManager::open_with(dir, backend()).unwrap()
}

/// Declares a `#[test]` per scenario and backend: `std_backend::<name>` and
/// `uring_backend::<name>` each run the plain function `<name>` on that backend.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod std_backend {
            $(
                #[test]
                fn $name() {
                    $crate::test_util::with_backend($crate::io::IoKind::Std, super::$name);
                }
            )*
        }
        mod uring_backend {
            $(
                #[test]
                fn $name() {
                    $crate::test_util::with_backend($crate::io::IoKind::Uring, super::$name);
                }
            )*
        }
    };
}
pub(crate) use on_both_backends;

/// Waits (up to 10 s) until `log` is durable up to `target`, as a caller of
/// `PartitionLog::sync_async` would: the sync thread does the work. Panics on a failed log
/// or a timeout.
pub(crate) fn wait_durable(log: &crate::PartitionLog, target: i64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while log.durable_offset() < target {
        assert!(
            log.offline_reason().is_none(),
            "log failed while waiting for durability"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "not durable up to {target} within 10 s (durable {})",
            log.durable_offset()
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

//! Record-batch fuzzing with an allocation bound: the counting global allocator of
//! `support/counting_alloc.rs` records the largest single allocation each thread asks for,
//! and every fuzz case must stay under its limit. A length or count read off the wire that
//! reaches an allocation shows up here as a clean test failure instead of an out-of-memory
//! abort of the whole process.
//!
//! A dedicated test binary, because the global allocator is process-wide.

#[path = "support/counting_alloc.rs"]
mod counting_alloc;

use bytes::Bytes;
use counting_alloc::{LIMIT, bounded, largest_allocation, offender};
use floe_protocol::fuzz;
use floe_protocol::kafka_protocol::records::{Compression, RecordBatchDecoder};
use floe_protocol::test_kit::{encode, record};

#[test]
fn allocator_sees_large_allocations() {
    let largest = largest_allocation(|| drop(std::hint::black_box(vec![0u8; LIMIT + 1])));
    assert!(largest > LIMIT);
    let trace = offender();
    assert!(
        trace.contains("allocator_sees_large_allocations"),
        "{trace}"
    );
}

/// Validation, iteration, timestamp search and decoding of mutated batches of every codec
/// (CRCs fixed up) stay within the allocation bound.
#[test]
fn record_batch_bodies_allocate_boundedly() {
    fuzz::run(
        "record_batch",
        fuzz::cases(50_000),
        &fuzz::batch_corpus(),
        fuzz::mutate_batch_input,
        bounded("record_batch", fuzz::record_batch),
    );
}

/// If `validate_batch` accepts a batch, the batch holds exactly `recordsCount` records and
/// `RecordBatchDecoder` decodes it to that many within the allocation bound.
///
/// This failed before validation counted the records of compressed batches: a compressed
/// batch whose `recordsCount` and `lastOffsetDelta` claimed more records than it held was
/// accepted, and with a claim near 2^31 `RecordBatchDecoder` reserved that many records.
#[test]
fn accepted_batches_hold_their_record_count() {
    fuzz::run(
        "record_batch_count",
        fuzz::cases(50_000),
        &fuzz::batch_corpus(),
        fuzz::mutate_batch_input,
        bounded("record_batch_count", fuzz::record_batch_count),
    );
}

/// A snappy batch with `payload` as its (compressed) records, CRC and length fixed.
fn snappy_batch(payload: &[u8], records: i32) -> Vec<u8> {
    let mut batch = fuzz::sample_batch(Compression::Snappy, 1, false);
    batch.truncate(61);
    batch.extend_from_slice(payload);
    let length = (batch.len() - 12) as i32;
    batch[8..12].copy_from_slice(&length.to_be_bytes());
    batch[57..61].copy_from_slice(&records.to_be_bytes());
    batch[23..27].copy_from_slice(&(records - 1).to_be_bytes());
    fuzz::fix_batch_crcs(&mut batch);
    batch
}

/// Found by `record_batch_bodies_allocate_boundedly`: a snappy block announces its
/// uncompressed length in a varint, and the decompressor zero-filled a buffer of that length
/// before decoding, so six bytes could make the broker allocate 4 GiB (ListOffsets by
/// timestamp and tableflow decompress stored batches).
#[test]
fn snappy_length_claims_are_refused_before_allocating() {
    let claim = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
    let mut xerial = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01".to_vec();
    xerial.extend_from_slice(&(claim.len() as u32).to_be_bytes());
    xerial.extend_from_slice(&claim);
    for payload in [&claim[..], &xerial[..]] {
        let batch = snappy_batch(payload, 1);
        // Produce validation decompresses (bounded) and refuses it; a batch like it already
        // in a log is refused by every later read without the allocation.
        let mut validated = None;
        let largest = largest_allocation(|| {
            validated = Some(floe_protocol::record_batch::validate_batch(&batch).is_err());
        });
        assert_eq!(validated, Some(true));
        assert!(largest <= LIMIT, "validation allocated {largest} bytes");
        let mut result = None;
        let largest = largest_allocation(|| {
            result = Some(floe_protocol::record_batch::record_timestamps(&batch).is_err());
        });
        assert_eq!(result, Some(true));
        assert!(
            largest <= LIMIT,
            "{largest} bytes allocated, at\n{}",
            offender()
        );
    }
}

/// The snappy length check leaves room for the densest real blocks.
#[test]
fn dense_snappy_batches_still_decode() {
    let records: Vec<_> = (0..4)
        .map(|i| record(i, 0, None, Some(Bytes::from(vec![0u8; 256 * 1024]))))
        .collect();
    let buf = encode(&records, Compression::Snappy);
    let decoded = RecordBatchDecoder::decode(&mut buf.freeze()).unwrap();
    assert_eq!(decoded.records.len(), 4);
}

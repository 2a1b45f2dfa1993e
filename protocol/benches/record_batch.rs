//! Produce-path batch validation (`validate_batches`: header, lengths, CRC32C, and for
//! uncompressed batches a walk over every record) on batches of 16 KiB and 1 MiB of 1 KiB
//! records, uncompressed and compressed. Compressed batches are validated without
//! decompressing (the CRC covers the compressed bytes), so their cost follows the wire size.
//!
//! Throughput is reported in record-value bytes (the uncompressed user data the batch
//! carries), so the codecs compare on what a producer sent.
//!
//! Run: `cargo bench -p floe-protocol --bench record_batch`.

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use floe_protocol::record_batch::{set_base_offset, validate_batches};
use floe_protocol::test_kit::{encode, record};
use kafka_protocol::records::Compression;

const RECORD_SIZE: usize = 1024;

/// Record values that compress about as well as log lines do: words from a small
/// vocabulary in a pseudo-random order, so neither all-zero nor incompressible.
fn value(seed: usize) -> Bytes {
    const WORDS: [&str; 16] = [
        "broker",
        "partition",
        "offset",
        "segment",
        "producer",
        "consumer",
        "fetch",
        "index",
        "commit",
        "durable",
        "record",
        "batch",
        "topic",
        "leader",
        "replica",
        "epoch",
    ];
    let mut state = seed as u64 ^ 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(RECORD_SIZE);
    while out.len() < RECORD_SIZE {
        // xorshift64: a cheap deterministic word order.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(WORDS[(state % 16) as usize].as_bytes());
        out.push(b' ');
    }
    out.truncate(RECORD_SIZE);
    Bytes::from(out)
}

/// One batch holding `data_bytes` of 1 KiB record values.
fn batch(data_bytes: usize, compression: Compression) -> BytesMut {
    let records: Vec<_> = (0..data_bytes / RECORD_SIZE)
        .map(|i| record(i as i64, 1_700_000_000_000 + i as i64, None, Some(value(i))))
        .collect();
    encode(&records, compression)
}

fn validation(c: &mut Criterion) {
    let mut group = c.benchmark_group("validate_batches");
    for (size_name, data_bytes) in [("16KiB", 16 << 10), ("1MiB", 1 << 20)] {
        for (codec_name, codec) in [
            ("none", Compression::None),
            ("lz4", Compression::Lz4),
            ("zstd", Compression::Zstd),
        ] {
            let buf = batch(data_bytes, codec);
            let headers = validate_batches(&buf).expect("benchmark batch is valid");
            assert_eq!(headers.len(), 1, "one batch per buffer");
            group.throughput(Throughput::Bytes(data_bytes as u64));
            group.bench_with_input(BenchmarkId::new(codec_name, size_name), &buf, |b, buf| {
                b.iter(|| validate_batches(std::hint::black_box(buf)))
            });
        }
    }
    group.finish();
}

fn offset_rewrite(c: &mut Criterion) {
    // The other produce-path step: assigning offsets by rewriting baseOffset in place.
    let mut buf = batch(16 << 10, Compression::None);
    let mut offset = 0i64;
    c.bench_function("set_base_offset", |b| {
        b.iter(|| {
            offset += 16;
            set_base_offset(std::hint::black_box(&mut buf), offset)
        })
    });
}

criterion_group!(benches, validation, offset_rewrite);
criterion_main!(benches);

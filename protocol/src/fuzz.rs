//! Fuzzing support: the bodies of the fuzz targets and a seeded mutation engine.
//!
//! Each body takes arbitrary bytes and checks what must hold for any input (no panic, no
//! unbounded allocation, and the stated properties). The same bodies run in two ways:
//!
//! - on stable Rust, inside the test suite, for a bounded number of cases: [`run`] mutates
//!   valid encodings (bit flips, interesting integers, truncation, insertion, splices from
//!   another valid input) with a seeded generator, because mutations of valid input get past
//!   the first length check far more often than random bytes do;
//! - as cargo-fuzz targets under `fuzz/` for long runs on a nightly toolchain.
//!
//! `FLOE_FUZZ_CASES` raises (or lowers) the number of cases of every stable run and
//! `FLOE_FUZZ_SEED` changes the generator's seed; see `docs/fuzzing.md`.
//!
//! Public for the fuzz crate and the other crates' fuzz tests only; not an API.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{
    Compression as Codec, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType,
};

use crate::frame::decode_frame;
use crate::record_batch::{
    BatchHeader, HEADER_SIZE, first_record_at_or_after, iter_batches, max_timestamp_record,
    record_timestamps, validate_batch, validate_batches,
};
use crate::request::parse_request;

/// Seed used when `FLOE_FUZZ_SEED` is not set, so the test suite is deterministic.
pub const DEFAULT_SEED: u64 = 0x466c_6f65_467a_7a31;

/// Number of cases for a stable run: `FLOE_FUZZ_CASES` if set, else `default`.
pub fn cases(default: usize) -> usize {
    std::env::var("FLOE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// Seed for a stable run: `FLOE_FUZZ_SEED` if set, else [`DEFAULT_SEED`].
pub fn seed() -> u64 {
    std::env::var("FLOE_FUZZ_SEED")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_SEED)
}

/// A small deterministic generator (SplitMix64): reproducible from its seed, no dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: usize, den: usize) -> bool {
        self.below(den) < num
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }

    /// An integer that often sits on a boundary: 0, ±1, the type's extremes, small values,
    /// or anything.
    pub fn interesting_i32(&mut self) -> i32 {
        match self.below(10) {
            0 => 0,
            1 => 1,
            2 => -1,
            3 => i32::MAX,
            4 => i32::MIN,
            5 => i32::MAX - 1,
            6 => self.below(64) as i32,
            7 => 0x7fff,
            8 => 1 << (self.below(31)),
            _ => self.next_u64() as i32,
        }
    }
}

/// One random edit of `buf`; `donor` is another valid input to splice from.
fn edit(rng: &mut Rng, buf: &mut Vec<u8>, donor: &[u8]) {
    let len = buf.len();
    let at = rng.below(len.max(1));
    match rng.below(11) {
        0 if len > 0 => buf[at] ^= 1 << rng.below(8),
        1 if len > 0 => buf[at] = *rng.pick(&[0u8, 1, 0x7f, 0x80, 0xfe, 0xff]),
        2 if len > 0 => buf[at] = buf[at].wrapping_add(*rng.pick(&[1u8, 2, 0xff, 0xfe])),
        3 if len >= 2 => {
            let at = rng.below(len - 1);
            let v = rng.interesting_i32() as i16;
            buf[at..at + 2].copy_from_slice(&v.to_be_bytes());
        }
        4 if len >= 4 => {
            let at = rng.below(len - 3);
            let v = rng.interesting_i32();
            buf[at..at + 4].copy_from_slice(&v.to_be_bytes());
        }
        5 => buf.truncate(rng.below(len + 1)),
        6 if len > 0 => {
            let n = 1 + rng.below((len - at).min(16));
            buf.drain(at..at + n);
        }
        7 => {
            let at = rng.below(len + 1);
            let n = 1 + rng.below(16);
            let bytes = rng.bytes(n);
            buf.splice(at..at, bytes);
        }
        8 if len > 0 => {
            let n = 1 + rng.below((len - at).min(64));
            let copy = buf[at..at + n].to_vec();
            let to = rng.below(len + 1);
            buf.splice(to..to, copy);
        }
        9 if !donor.is_empty() => {
            let from = rng.below(donor.len());
            buf.truncate(at);
            buf.extend_from_slice(&donor[from..]);
        }
        _ if len > 0 => buf[at] = rng.next_u64() as u8,
        _ => buf.push(rng.next_u64() as u8),
    }
}

/// A mutation of `input`: one to four random edits, `donor` being another valid input to
/// splice from.
pub fn mutate(rng: &mut Rng, input: &[u8], donor: &[u8]) -> Vec<u8> {
    mutate_up_to(rng, input, donor, 4)
}

/// A mutation of `input` by one to `max_edits` random edits.
pub fn mutate_up_to(rng: &mut Rng, input: &[u8], donor: &[u8], max_edits: usize) -> Vec<u8> {
    let mut buf = input.to_vec();
    for _ in 0..1 + rng.below(max_edits) {
        edit(rng, &mut buf, donor);
    }
    buf
}

/// Recomputes the CRC32C of every complete magic-2 batch in `buf`, so that mutated batches
/// get past the CRC check and reach the code behind it.
pub fn fix_batch_crcs(buf: &mut [u8]) {
    let mut position = 0usize;
    while let Some(rest) = buf.get(position..) {
        let Ok(header) = BatchHeader::parse(rest) else {
            return;
        };
        let end = position + header.total_size();
        if end > buf.len() || header.total_size() < HEADER_SIZE {
            return;
        }
        let crc = crc32c::crc32c(&buf[position + 21..end]);
        buf[position + 17..position + 21].copy_from_slice(&crc.to_be_bytes());
        position = end;
    }
}

/// A mutation of an input of [`record_batch`] (a mode byte, then batches): the batches are
/// mutated by [`mutate_batches`], the mode byte is kept.
pub fn mutate_batch_input(rng: &mut Rng, input: &[u8], donor: &[u8]) -> Vec<u8> {
    let (mode, batches) = input.split_first().unwrap_or((&0, &[]));
    let donor = donor.get(1..).unwrap_or_default();
    let mut out = vec![*mode];
    out.extend(mutate_batches(rng, batches, donor));
    out
}

/// A mutation of concatenated record batches that knows the header layout: besides the
/// generic edits it rewrites `recordsCount` and `lastOffsetDelta` consistently (so the batch
/// passes the count check), the attributes and `batchLength`, and it fixes the CRCs
/// afterwards most of the time.
pub fn mutate_batches(rng: &mut Rng, input: &[u8], donor: &[u8]) -> Vec<u8> {
    let mut buf = input.to_vec();
    for _ in 0..1 + rng.below(3) {
        // The header of the first batch, or of a later one.
        let starts: Vec<usize> = iter_batches(&buf)
            .map_while(Result::ok)
            .map(|(_, r)| r.start)
            .collect();
        let base = if starts.is_empty() {
            0
        } else {
            *rng.pick(&starts)
        };
        let put = |buf: &mut Vec<u8>, at: usize, bytes: &[u8]| {
            if let Some(dst) = buf.get_mut(base + at..base + at + bytes.len()) {
                dst.copy_from_slice(bytes);
            }
        };
        match rng.below(8) {
            0 | 1 => {
                let actual = buf
                    .get(base + 57..base + 61)
                    .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                    .unwrap_or(1);
                let count = match rng.below(4) {
                    0 => actual.wrapping_add(1),
                    1 => actual.wrapping_sub(1),
                    _ => rng.interesting_i32(),
                };
                put(&mut buf, 57, &count.to_be_bytes());
                if rng.chance(7, 8) {
                    put(&mut buf, 23, &count.wrapping_sub(1).to_be_bytes());
                }
            }
            2 => {
                let bits = rng.below(1 << 7) as i16;
                put(&mut buf, 21, &bits.to_be_bytes());
            }
            3 => {
                let length = match rng.below(3) {
                    0 => rng.interesting_i32(),
                    _ => {
                        let current = buf
                            .get(base + 8..base + 12)
                            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                            .unwrap_or(0);
                        current.wrapping_add(rng.below(9) as i32 - 4)
                    }
                };
                put(&mut buf, 8, &length.to_be_bytes());
            }
            4 => {
                // Edit only the records (the compressed payload for compressed batches).
                if buf.len() > base + HEADER_SIZE {
                    let at = base + HEADER_SIZE + rng.below(buf.len() - base - HEADER_SIZE);
                    buf[at] = rng.next_u64() as u8;
                }
            }
            _ => edit(rng, &mut buf, donor),
        }
    }
    if rng.chance(15, 16) {
        fix_batch_crcs(&mut buf);
    }
    buf
}

/// Runs `body` on `cases` mutations of inputs drawn from `corpus`, each produced by
/// `mutator`. When a case panics, prints what reproduces it (the target, the seed, the case
/// number and the input in hex) and fails with the original panic.
pub fn run(
    target: &str,
    cases: usize,
    corpus: &[Vec<u8>],
    mutator: fn(&mut Rng, &[u8], &[u8]) -> Vec<u8>,
    body: impl Fn(&[u8]),
) {
    assert!(!corpus.is_empty(), "fuzz target {target} has no corpus");
    let seed = seed();
    let mut rng = Rng::new(seed);
    for case in 0..cases {
        let input = rng.pick(corpus).clone();
        let donor = rng.pick(corpus).clone();
        // The seeds themselves first, so a failure on an unmutated seed is told apart.
        let data = if case < corpus.len() {
            corpus[case].clone()
        } else {
            mutator(&mut rng, &input, &donor)
        };
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| body(&data))) {
            eprintln!(
                "fuzz target {target} failed on case {case} of {cases} (FLOE_FUZZ_SEED={seed}); input ({} bytes): {}",
                data.len(),
                hex(&data)
            );
            resume_unwind(panic);
        }
    }
}

/// Lower-case hex of `data`, to paste a failing input into a regression test.
pub fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

/// Body of the `request_decode` target at the protocol level: the framing, the request
/// header, and the body decoder of whatever API and version the header names. None of them
/// may panic or allocate by a length read off the wire.
pub fn request_frame(data: &[u8]) {
    let mut stream = BytesMut::from(data);
    while let Ok(Some(frame)) = decode_frame(&mut stream, 1 << 20) {
        let _ = parse_request(frame.freeze());
    }
    if let Ok(frame) = parse_request(Bytes::copy_from_slice(data)) {
        let _ = frame.decode_body();
    }
}

/// Body of the `record_batch` target: the produce-path validation, the batch iterator and
/// the timestamp searches never panic on any bytes; a batch that validates and whose records
/// really number `recordsCount` decodes with `kafka-protocol`'s `RecordBatchDecoder` (what
/// tableflow uses) to exactly that many records.
///
/// The first byte chooses whether the CRCs are fixed up first (odd) so that mutations reach
/// past the CRC check; the rest is the batches.
pub fn record_batch(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut buf = rest.to_vec();
    if mode & 1 == 1 {
        fix_batch_crcs(&mut buf);
    }
    let _ = validate_batches(&buf);
    for (header, range) in iter_batches(&buf).map_while(Result::ok) {
        let batch = &buf[range];
        let timestamps = record_timestamps(batch);
        let _ = first_record_at_or_after(batch, header.base_timestamp);
        let _ = max_timestamp_record(batch);
        if validate_batch(batch).is_ok()
            && let Ok(records) = &timestamps
            && records.len() == header.records_count as usize
        {
            decode_and_count(batch, &header);
        }
    }
}

/// Body of the batch-count property (part of the `record_batch` cargo-fuzz target): if
/// `validate_batch` accepts a batch, the batch holds exactly `recordsCount` records, for
/// compressed batches too, so a decoder that trusts the count (tableflow's
/// `RecordBatchDecoder` reserves `recordsCount` records up front) never sees a lying one.
/// The count is taken with this crate's own record walker, which allocates by records
/// found, never by the count claimed; then the batch is decoded.
pub fn record_batch_count(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut buf = rest.to_vec();
    if mode & 1 == 1 {
        fix_batch_crcs(&mut buf);
    }
    for (_, range) in iter_batches(&buf).map_while(Result::ok) {
        let batch = &buf[range];
        let Ok(header) = validate_batch(batch) else {
            continue;
        };
        let found = record_timestamps(batch).map(|r| r.len());
        assert!(
            matches!(found, Ok(n) if n == header.records_count as usize),
            "validate_batch accepted a {:?} batch claiming {} records, but its records are {:?}",
            header.compression(),
            header.records_count,
            found.map_err(|e| e.to_string())
        );
        decode_and_count(batch, &header);
    }
}

/// Decodes one batch whose record count is known to be right, as tableflow does.
fn decode_and_count(batch: &[u8], header: &BatchHeader) {
    let mut bytes = Bytes::copy_from_slice(batch);
    if let Ok(set) = RecordBatchDecoder::decode(&mut bytes) {
        assert_eq!(
            set.records.len(),
            header.records_count as usize,
            "RecordBatchDecoder disagrees with recordsCount"
        );
    }
}

/// Inputs of [`record_batch`]: valid record batches of every codec, alone and
/// concatenated, after a mode byte of 0 ([`mutate_batch_input`] fixes the CRCs itself, and
/// leaves a few wrong so that the CRC check is exercised too).
pub fn batch_corpus() -> Vec<Vec<u8>> {
    let codecs = [
        Codec::None,
        Codec::Gzip,
        Codec::Snappy,
        Codec::Lz4,
        Codec::Zstd,
    ];
    let mut corpus = Vec::new();
    for (i, &codec) in codecs.iter().enumerate() {
        for count in [1usize, 3] {
            let mut data = vec![0u8];
            data.extend_from_slice(&sample_batch(codec, count, i % 2 == 1));
            corpus.push(data);
        }
    }
    let mut two = vec![0u8];
    two.extend_from_slice(&sample_batch(Codec::None, 2, false));
    two.extend_from_slice(&sample_batch(Codec::Zstd, 2, true));
    corpus.push(two);
    corpus
}

/// One valid batch of `count` records: keys (one null), values, a header, timestamps out of
/// order, an idempotent producer when `idempotent`.
pub fn sample_batch(codec: Codec, count: usize, idempotent: bool) -> Vec<u8> {
    let records: Vec<Record> = (0..count as i64)
        .map(|i| {
            let mut headers = IndexMap::new();
            headers.insert("h".to_owned().into(), Some(Bytes::from_static(b"v")));
            Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: if idempotent { 7 } else { -1 },
                producer_epoch: if idempotent { 1 } else { -1 },
                timestamp_type: TimestampType::Creation,
                offset: i,
                // The encoder starts a new batch when `offset - sequence` changes, so the
                // sequence follows the offset even without an idempotent producer.
                sequence: if idempotent { i as i32 } else { i as i32 - 1 },
                timestamp: 1_700_000_000_000 + (i * 37) % 5,
                key: (i != 1).then(|| Bytes::from(format!("key-{i}"))),
                value: Some(Bytes::from(vec![b'a' + i as u8; 40])),
                headers,
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: codec,
    };
    // Encoding fixed, valid records cannot fail; an empty buffer would only make the corpus
    // weaker, and the corpus test below checks every entry validates.
    if RecordBatchEncoder::encode(&mut buf, &records, &options).is_err() {
        return Vec::new();
    }
    buf.to_vec()
}

/// Checks the generator and the record-batch bodies; the bounded stable runs are here.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpus_batches_are_valid_and_pass_both_bodies() {
        for data in batch_corpus() {
            let headers = validate_batches(&data[1..]).unwrap();
            assert!(matches!(headers.len(), 1 | 2), "one batch per sample");
            record_batch(&data);
            record_batch_count(&data);
        }
    }

    /// A base offset near `i64::MAX` (not covered by the CRC) makes base + offset delta
    /// overflow: the decoder must wrap, not panic (vendor/README.md).
    #[test]
    fn record_offsets_past_i64_max_do_not_panic_the_decoder() {
        let mut data = sample_batch(Codec::None, 3, false);
        data[0..8].copy_from_slice(&i64::MAX.to_be_bytes());
        let set = RecordBatchDecoder::decode(&mut Bytes::from(data)).unwrap();
        assert_eq!(set.records.len(), 3);
        assert_eq!(set.records[0].offset, i64::MAX);
        assert_eq!(set.records[1].offset, i64::MIN);
    }

    #[test]
    fn fixing_crcs_makes_a_header_edit_pass_the_crc_check() {
        let mut data = sample_batch(Codec::Lz4, 3, false);
        data[57..61].copy_from_slice(&4i32.to_be_bytes());
        data[23..27].copy_from_slice(&3i32.to_be_bytes());
        let before = validate_batch(&data);
        assert!(
            matches!(
                before,
                Err(crate::record_batch::BatchError::CrcMismatch { .. })
            ),
            "{before:?}"
        );
        fix_batch_crcs(&mut data);
        // Past the CRC check now; what stops it is the record count, which validation
        // checks against the compressed content.
        assert!(matches!(
            validate_batch(&data),
            Err(crate::record_batch::BatchError::MalformedRecord { .. })
        ));
    }

    #[test]
    fn the_generator_is_reproducible() {
        let (mut a, mut b) = (Rng::new(5), Rng::new(5));
        let input = sample_batch(Codec::None, 2, false);
        for _ in 0..100 {
            assert_eq!(
                mutate_batches(&mut a, &input, &input),
                mutate_batches(&mut b, &input, &input)
            );
        }
    }

    /// The batch mutator reaches what validation must catch: compressed batches with a
    /// correct CRC whose `recordsCount` and `lastOffsetDelta` agree on a huge count.
    #[test]
    fn the_batch_mutator_makes_consistent_lying_counts() {
        let corpus = batch_corpus();
        let mut rng = Rng::new(1);
        let found = (0..20_000).any(|_| {
            let input = rng.pick(&corpus).clone();
            let data = mutate_batches(&mut rng, &input[1..], &input[1..]);
            BatchHeader::parse(&data).is_ok_and(|h| {
                h.total_size() == data.len()
                    && h.compression()
                        .is_ok_and(|c| c != crate::record_batch::Compression::None)
                    && h.records_count >= 1 << 30
                    && i64::from(h.records_count) == i64::from(h.last_offset_delta) + 1
                    && crc32c::crc32c(&data[21..]) == h.crc
            })
        });
        assert!(found);
    }

    /// Mutated batches of every codec through validation, iteration, timestamp search and
    /// (when the count is right) `RecordBatchDecoder`.
    #[test]
    fn fuzz_record_batches() {
        run(
            "record_batch",
            cases(100_000),
            &batch_corpus(),
            mutate_batch_input,
            record_batch,
        );
    }

    /// Frames that are not request frames at all (the request corpus lives with the
    /// broker's handler table, which knows what is advertised): random and mutated bytes
    /// through framing, header parsing and body decoding.
    #[test]
    fn fuzz_request_frames_from_scratch() {
        let corpus: Vec<Vec<u8>> = vec![
            vec![0, 3, 0, 1, 0, 0, 0, 1, 0, 0, 0xff, 0xff, 0xff, 0xff],
            vec![0, 18, 0, 3, 0, 0, 0, 1, 0, 0, 0, 0, 0],
            vec![0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        ];
        run(
            "request_frame",
            cases(50_000),
            &corpus,
            mutate,
            request_frame,
        );
    }
}

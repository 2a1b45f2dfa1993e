//! Bounded decompression of a record batch's records section.
//!
//! A compressed batch is untrusted input: a megabyte of gzip can expand to a gigabyte, and a
//! raw Snappy block announces its decompressed length in its first bytes. The codecs of the
//! `kafka-protocol` crate decompress whatever the input asks for (a raw Snappy header
//! claiming 4 GiB allocates 4 GiB), so the broker and tableflow decompress through this
//! module instead: every codec writes into a buffer that may not grow past a limit, and the
//! input is rejected with [`DecompressError::TooLarge`] as soon as it would.
//!
//! The framings are Kafka's: gzip streams (several members allowed, as Java's
//! `GZIPInputStream` reads them), Snappy in xerial framing (what the Java client writes) or
//! raw, the LZ4 frame format, and Zstandard frames.

use std::io::Read;

use crate::record_batch::Compression;

/// The smallest decompressed size a batch may always reach, whatever its compressed size.
pub const MIN_DECOMPRESSED_LIMIT: usize = 64 * 1024 * 1024;
/// Expansion allowed over the compressed size above [`MIN_DECOMPRESSED_LIMIT`].
pub const MAX_EXPANSION: usize = 16;

/// The decompressed-size limit for a records section of `compressed_len` bytes:
/// `max(64 MiB, 16 x compressed size)`. Producers size batches by their uncompressed bytes
/// (librdkafka's `batch.size` is 1 MB, Java's 16 KiB), so real batches stay far below it;
/// a decompression bomb is stopped there.
pub fn decompressed_limit(compressed_len: usize) -> usize {
    MIN_DECOMPRESSED_LIMIT.max(compressed_len.saturating_mul(MAX_EXPANSION))
}

/// Why a records section could not be decompressed.
#[derive(Debug, thiserror::Error)]
pub enum DecompressError {
    /// The decompressed records would exceed the limit.
    #[error("decompressed records exceed {limit} bytes")]
    TooLarge {
        /// The limit that was reached.
        limit: usize,
    },
    /// The codec rejected the input.
    #[error("{0}")]
    Codec(String),
}

/// Decompresses `input` (a batch's records section) with `codec` into at most `limit` bytes.
/// `Compression::None` returns a copy of the input (if it fits).
pub fn decompress(
    codec: Compression,
    input: &[u8],
    limit: usize,
) -> Result<Vec<u8>, DecompressError> {
    match codec {
        Compression::None => {
            if input.len() > limit {
                return Err(DecompressError::TooLarge { limit });
            }
            Ok(input.to_vec())
        }
        Compression::Gzip => read_bounded(flate2::read::MultiGzDecoder::new(input), limit),
        Compression::Lz4 => {
            let decoder = lz4::Decoder::new(input).map_err(codec_error)?;
            read_bounded(decoder, limit)
        }
        Compression::Zstd => {
            let decoder = zstd::stream::read::Decoder::new(input).map_err(codec_error)?;
            read_bounded(decoder, limit)
        }
        Compression::Snappy => snappy(input, limit),
    }
}

fn codec_error(e: impl std::fmt::Display) -> DecompressError {
    DecompressError::Codec(e.to_string())
}

/// Reads a streaming decoder to its end, growing the output only as bytes arrive and
/// failing once more than `limit` bytes come out.
fn read_bounded(reader: impl Read, limit: usize) -> Result<Vec<u8>, DecompressError> {
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(cap)
        .read_to_end(&mut out)
        .map_err(codec_error)?;
    if out.len() > limit {
        return Err(DecompressError::TooLarge { limit });
    }
    Ok(out)
}

/// The xerial Snappy stream header the Java client writes: magic, version 1, compatible 1.
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;

fn snappy(input: &[u8], limit: usize) -> Result<Vec<u8>, DecompressError> {
    let mut out = Vec::new();
    if input.len() >= XERIAL_HEADER_LEN && input.starts_with(XERIAL_MAGIC) {
        // Blocks of [u32 big-endian length][raw snappy block] after the 16-byte header.
        let mut rest = &input[XERIAL_HEADER_LEN..];
        while !rest.is_empty() {
            let Some((len, tail)) = rest.split_first_chunk::<4>() else {
                return Err(DecompressError::Codec(
                    "truncated xerial block length".into(),
                ));
            };
            let len = u32::from_be_bytes(*len) as usize;
            let Some(block) = tail.get(..len) else {
                return Err(DecompressError::Codec("truncated xerial block".into()));
            };
            snappy_block(block, limit, &mut out)?;
            rest = &tail[len..];
        }
    } else {
        snappy_block(input, limit, &mut out)?;
    }
    Ok(out)
}

/// Appends one raw Snappy block to `out`, checking its announced length before allocating.
fn snappy_block(block: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), DecompressError> {
    let len = snap::raw::decompress_len(block).map_err(codec_error)?;
    if len > limit.saturating_sub(out.len()) {
        return Err(DecompressError::TooLarge { limit });
    }
    let start = out.len();
    out.resize(start + len, 0);
    let n = snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(codec_error)?;
    out.truncate(start + n);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};

    fn compress(codec: Compression, data: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        let fill = |b: &mut BytesMut| -> anyhow::Result<()> {
            b.extend_from_slice(data);
            Ok(())
        };
        match codec {
            Compression::None => out.extend_from_slice(data),
            Compression::Gzip => Gzip::compress(&mut out, fill).unwrap(),
            Compression::Snappy => Snappy::compress(&mut out, fill).unwrap(),
            Compression::Lz4 => Lz4::compress(&mut out, fill).unwrap(),
            Compression::Zstd => Zstd::compress(&mut out, fill).unwrap(),
        }
        out.to_vec()
    }

    const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    #[test]
    fn every_codec_round_trips_what_kafka_protocol_compresses() {
        let data: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for codec in ALL {
            let packed = compress(codec, &data);
            assert_eq!(
                decompress(codec, &packed, data.len()).unwrap(),
                data,
                "{codec:?}"
            );
        }
    }

    #[test]
    fn output_past_the_limit_is_refused_for_every_codec() {
        let zeros = vec![0u8; 4 * 1024 * 1024];
        for codec in ALL {
            let packed = compress(codec, &zeros);
            let err = decompress(codec, &packed, 1024 * 1024).unwrap_err();
            assert!(
                matches!(err, DecompressError::TooLarge { limit } if limit == 1024 * 1024),
                "{codec:?}: {err}"
            );
        }
    }

    #[test]
    fn raw_snappy_claiming_four_gib_allocates_nothing() {
        // A raw block whose varint header announces 0xFFFF_FFFF bytes.
        let block = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
        let err = decompress(Compression::Snappy, &block, 1024).unwrap_err();
        assert!(matches!(err, DecompressError::TooLarge { .. }), "{err}");
    }

    #[test]
    fn garbage_is_a_codec_error_not_a_panic() {
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            for input in [
                &b""[..],
                b"\x00",
                b"not compressed at all",
                b"\x82SNAPPY\x00xxxxxxxx\xff",
            ] {
                let r = decompress(codec, input, 1024);
                assert!(
                    r.is_err() || r.as_ref().is_ok_and(|v| v.is_empty()),
                    "{codec:?} {input:?}: {r:?}"
                );
            }
        }
    }

    #[test]
    fn limit_grows_with_the_compressed_size() {
        assert_eq!(decompressed_limit(10), MIN_DECOMPRESSED_LIMIT);
        assert_eq!(decompressed_limit(100 << 20), 1600 << 20);
        assert_eq!(decompressed_limit(usize::MAX), usize::MAX);
    }
}

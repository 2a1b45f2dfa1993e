//! Length-prefixed framing: every Kafka request and response is a 4-byte big-endian size
//! followed by that many bytes. The size is checked against a limit before anything is
//! allocated, so a hostile prefix (say 2 GiB) costs nothing.
//!
//! A receive buffer grows as the bytes of a frame arrive, never to the size its prefix
//! announces: [`next_capacity`] allows at most twice what has arrived of the frame (and at
//! least [`MIN_BUFFER`]), so a connection that announces 100 MiB and sends ten bytes pins
//! 4 KiB, not 100 MiB.

use bytes::{Buf, BytesMut};

/// Kafka's default `socket.request.max.bytes` (100 MiB).
pub const DEFAULT_MAX_REQUEST_SIZE: usize = 100 * 1024 * 1024;

/// Size of the length prefix.
pub const PREFIX_SIZE: usize = 4;

/// Smallest receive buffer, and the most a buffer may hold beyond twice the bytes received
/// of the frame in it. A fresh buffer starts at this size and doubles from there, so small
/// requests are read with one small buffer and large ones with a few copies.
pub const MIN_BUFFER: usize = 4 * 1024;

/// Why a frame cannot be accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// The prefix announces more than the configured maximum.
    #[error("frame of {size} bytes exceeds the maximum request size of {max} bytes")]
    TooLarge {
        /// Announced size.
        size: u64,
        /// Configured maximum.
        max: usize,
    },
    /// The prefix is negative when read as Kafka's signed int32.
    #[error("negative frame size {0}")]
    Negative(i32),
}

/// Reads the announced size at the front of `buf` and checks it, without consuming anything.
/// Returns `Ok(None)` when fewer than four bytes are buffered.
pub fn peek_frame_size(buf: &[u8], max: usize) -> Result<Option<usize>, FrameError> {
    let Some(prefix) = buf.get(..PREFIX_SIZE) else {
        return Ok(None);
    };
    let size = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    if size < 0 {
        return Err(FrameError::Negative(size));
    }
    let size = size as usize;
    if size > max {
        return Err(FrameError::TooLarge {
            size: size as u64,
            max,
        });
    }
    Ok(Some(size))
}

/// Splits one complete frame (without its prefix) off the front of `buf`, if one is there.
/// Returns `Ok(None)` when the frame is incomplete, without reserving anything: the caller
/// grows the buffer as bytes arrive ([`next_capacity`], [`grow_to`]).
pub fn decode_frame(buf: &mut BytesMut, max: usize) -> Result<Option<BytesMut>, FrameError> {
    let Some(size) = peek_frame_size(buf, max)? else {
        return Ok(None);
    };
    if buf.len() < PREFIX_SIZE + size {
        return Ok(None);
    }
    buf.advance(PREFIX_SIZE);
    Ok(Some(buf.split_to(size)))
}

/// The capacity to grow `buf` to before the next read, or `None` while it still has room.
///
/// `buf` holds at most the start of one frame (complete frames were split off first). A
/// full buffer grows to at least [`MIN_BUFFER`], and otherwise to room for the rest of the
/// frame but never more than twice what has arrived of it: doubling keeps the copies of a
/// large request linear in its size while memory follows the bytes actually received. The
/// announced size is checked against `max` first. A returned capacity is always more than
/// `buf.len()`, so a read has room for at least one byte.
pub fn next_capacity(buf: &BytesMut, max: usize) -> Result<Option<usize>, FrameError> {
    let size = peek_frame_size(buf, max)?;
    let len = buf.len();
    if buf.capacity() > len {
        return Ok(None);
    }
    let wanted = match size {
        Some(size) if len < PREFIX_SIZE + size => (PREFIX_SIZE + size).min(len.saturating_mul(2)),
        // No complete prefix yet, or a complete frame the caller has not split off.
        _ => len.saturating_add(1),
    };
    Ok(Some(wanted.max(MIN_BUFFER)))
}

/// Makes `buf` able to hold `capacity` bytes without further allocation, moving its bytes
/// into a new buffer of exactly that capacity if it cannot already (`BytesMut::reserve`
/// may round up, and the caller accounts for what is allocated).
pub fn grow_to(buf: &mut BytesMut, capacity: usize) {
    if buf.capacity() >= capacity {
        return;
    }
    let mut grown = BytesMut::with_capacity(capacity);
    grown.extend_from_slice(buf);
    *buf = grown;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_prefix_and_body() {
        let mut buf = BytesMut::from(&[0u8, 0][..]);
        assert_eq!(decode_frame(&mut buf, 100), Ok(None));
        buf.extend_from_slice(&[0, 3, b'a', b'b']);
        assert_eq!(decode_frame(&mut buf, 100), Ok(None));
        buf.extend_from_slice(b"cX");
        let frame = decode_frame(&mut buf, 100).unwrap().unwrap();
        assert_eq!(&frame[..], b"abc");
        assert_eq!(&buf[..], b"X");
    }

    #[test]
    fn rejects_oversized_prefix_before_allocating() {
        let mut buf = BytesMut::from(&0x7fff_ffffu32.to_be_bytes()[..]);
        let err = decode_frame(&mut buf, DEFAULT_MAX_REQUEST_SIZE).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { .. }));
        assert!(buf.capacity() < 1024);
    }

    #[test]
    fn rejects_negative_prefix() {
        let mut buf = BytesMut::from(&0x8000_0000u32.to_be_bytes()[..]);
        assert_eq!(
            decode_frame(&mut buf, 100),
            Err(FrameError::Negative(i32::MIN))
        );
    }

    #[test]
    fn huge_prefix_with_few_bytes_allocates_the_smallest_buffer() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&(DEFAULT_MAX_REQUEST_SIZE as u32).to_be_bytes());
        buf.extend_from_slice(&[7u8; 10]);
        assert_eq!(decode_frame(&mut buf, DEFAULT_MAX_REQUEST_SIZE), Ok(None));
        assert!(buf.capacity() < 1024, "decode reserved {}", buf.capacity());
        let target = next_capacity(&buf, DEFAULT_MAX_REQUEST_SIZE).unwrap();
        // A buffer with room grows later; a full one to the smallest buffer.
        let target = target.unwrap_or(MIN_BUFFER);
        assert!(target <= MIN_BUFFER);
        let mut full = BytesMut::with_capacity(14);
        full.extend_from_slice(&buf);
        assert_eq!(
            next_capacity(&full, DEFAULT_MAX_REQUEST_SIZE),
            Ok(Some(MIN_BUFFER))
        );
        grow_to(&mut buf, target);
        assert_eq!(buf.capacity(), MIN_BUFFER);
        assert_eq!(buf.len(), 14);
    }

    /// Feeds a 100 MiB frame in uneven pieces, growing the buffer the way a connection does:
    /// the capacity never exceeds twice the bytes received (or the smallest buffer), and the
    /// frame comes out whole.
    #[test]
    fn buffer_grows_with_the_bytes_received() {
        let size = DEFAULT_MAX_REQUEST_SIZE;
        let mut buf = BytesMut::new();
        let mut sent = 0usize;
        let mut prefix = Some((size as u32).to_be_bytes());
        let mut grows = 0;
        let frame = loop {
            if let Some(frame) = decode_frame(&mut buf, size).unwrap() {
                break frame;
            }
            if let Some(target) = next_capacity(&buf, size).unwrap() {
                assert!(target > buf.len());
                assert!(
                    target <= MIN_BUFFER.max(2 * buf.len()),
                    "{target} for {}",
                    buf.len()
                );
                grows += 1;
                grow_to(&mut buf, target);
            }
            // A read fills at most the spare capacity; simulate 1 MiB reads.
            let room = (buf.capacity() - buf.len()).min(1 << 20);
            if let Some(p) = prefix.take() {
                buf.extend_from_slice(&p);
                continue;
            }
            let n = room.min(size - sent);
            buf.extend_from_slice(&vec![(sent % 251) as u8; n]);
            sent += n;
            assert!(buf.capacity() <= MIN_BUFFER.max(2 * buf.len()));
        };
        assert_eq!(frame.len(), size);
        assert!(buf.is_empty());
        // Doubling from the smallest buffer: 1 + log2(64 MiB / 4 KiB) + 1 allocations.
        assert!(grows <= 17, "{grows} reallocations");
    }

    #[test]
    fn next_capacity_checks_the_size_first() {
        let full = |bytes: &[u8]| {
            let mut buf = BytesMut::with_capacity(bytes.len());
            buf.extend_from_slice(bytes);
            buf
        };
        assert!(matches!(
            next_capacity(
                &full(&0x7fff_ffffu32.to_be_bytes()),
                DEFAULT_MAX_REQUEST_SIZE
            ),
            Err(FrameError::TooLarge { .. })
        ));
        assert_eq!(next_capacity(&BytesMut::new(), 100), Ok(Some(MIN_BUFFER)));
        assert_eq!(next_capacity(&full(&[0, 0]), 100), Ok(Some(MIN_BUFFER)));
        // A small frame: the smallest buffer also takes in the next requests.
        assert_eq!(
            next_capacity(&full(&[0, 0, 0, 9, 1]), 100),
            Ok(Some(MIN_BUFFER))
        );
        // Room left: no growth.
        assert_eq!(next_capacity(&BytesMut::with_capacity(8), 100), Ok(None));
    }

    #[test]
    fn empty_frame_is_a_frame() {
        let mut buf = BytesMut::from(&[0u8, 0, 0, 0][..]);
        assert_eq!(decode_frame(&mut buf, 100).unwrap().unwrap().len(), 0);
    }
}

//! Length-prefixed framing: every Kafka request and response is a 4-byte big-endian size
//! followed by that many bytes. The size is checked against a limit before anything is
//! allocated, so a hostile prefix (say 2 GiB) costs nothing.

use bytes::{Buf, BytesMut};

/// Kafka's default `socket.request.max.bytes` (100 MiB).
pub const DEFAULT_MAX_REQUEST_SIZE: usize = 100 * 1024 * 1024;

/// Size of the length prefix.
pub const PREFIX_SIZE: usize = 4;

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
/// When the frame is incomplete, reserves room for the rest of it (the size was already
/// checked against `max`) and returns `Ok(None)`.
pub fn decode_frame(buf: &mut BytesMut, max: usize) -> Result<Option<BytesMut>, FrameError> {
    let Some(size) = peek_frame_size(buf, max)? else {
        return Ok(None);
    };
    if buf.len() < PREFIX_SIZE + size {
        buf.reserve(PREFIX_SIZE + size - buf.len());
        return Ok(None);
    }
    buf.advance(PREFIX_SIZE);
    Ok(Some(buf.split_to(size)))
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
    fn empty_frame_is_a_frame() {
        let mut buf = BytesMut::from(&[0u8, 0, 0, 0][..]);
        assert_eq!(decode_frame(&mut buf, 100).unwrap().unwrap().len(), 0);
    }
}

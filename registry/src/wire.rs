//! Confluent's wire format of a record key or value: magic byte 0, the schema id as a
//! 4-byte big-endian integer, then the payload. Protobuf payloads start with the message
//! indexes: which message of the schema's file the payload is (a zigzag varint count, then
//! that many zigzag varint indexes; the single byte 0 stands for `[0]`, the first message).

/// The magic byte.
pub const MAGIC: u8 = 0;

/// Why bytes are not in the wire format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Shorter than the 5-byte header.
    #[error("{0} bytes: too short for the schema registry's 5-byte header")]
    TooShort(usize),
    /// The first byte is not 0.
    #[error("unknown magic byte {0} (the schema registry's wire format starts with 0)")]
    Magic(u8),
    /// The Protobuf message indexes are malformed.
    #[error("malformed Protobuf message indexes: {0}")]
    Indexes(&'static str),
}

/// The schema id and the rest of `bytes`.
pub fn split(bytes: &[u8]) -> Result<(i32, &[u8]), WireError> {
    if bytes.len() < 5 {
        return Err(WireError::TooShort(bytes.len()));
    }
    if bytes[0] != MAGIC {
        return Err(WireError::Magic(bytes[0]));
    }
    let id = i32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    Ok((id, &bytes[5..]))
}

/// Most message indexes accepted (nesting depth of the message in its file).
const MAX_INDEXES: i64 = 128;

/// The Protobuf message indexes at the start of `payload`, and the message after them.
pub fn split_indexes(payload: &[u8]) -> Result<(Vec<i32>, &[u8]), WireError> {
    let mut rest = payload;
    let count = zigzag(&mut rest)?;
    if count == 0 {
        return Ok((vec![0], rest));
    }
    if !(1..=MAX_INDEXES).contains(&count) {
        return Err(WireError::Indexes("count out of range"));
    }
    let mut indexes = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let i = zigzag(&mut rest)?;
        indexes.push(i32::try_from(i).map_err(|_| WireError::Indexes("index out of range"))?);
    }
    Ok((indexes, rest))
}

fn zigzag(bytes: &mut &[u8]) -> Result<i64, WireError> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes
            .split_first()
            .ok_or(WireError::Indexes("truncated varint"))?;
        *bytes = rest;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    Err(WireError::Indexes("varint longer than 10 bytes"))
}

/// Encodes a header (and Protobuf indexes when given), for tests and tools.
pub fn header(id: i32, indexes: Option<&[i32]>) -> Vec<u8> {
    let mut out = vec![MAGIC];
    out.extend_from_slice(&id.to_be_bytes());
    if let Some(indexes) = indexes {
        if indexes == [0] {
            out.push(0);
        } else {
            put_zigzag(&mut out, indexes.len() as i64);
            for &i in indexes {
                put_zigzag(&mut out, i64::from(i));
            }
        }
    }
    out
}

fn put_zigzag(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_bad_ones_are_refused() {
        let mut bytes = header(258, None);
        bytes.extend_from_slice(b"payload");
        assert_eq!(split(&bytes).unwrap(), (258, &b"payload"[..]));
        assert_eq!(split(b"\0\0\0"), Err(WireError::TooShort(3)));
        assert_eq!(split(b"{\"a\":1}"), Err(WireError::Magic(b'{')));

        for indexes in [vec![0], vec![1], vec![2, 0, 5], vec![300]] {
            let mut bytes = header(1, Some(&indexes));
            bytes.push(0x08);
            let (_, payload) = split(&bytes).unwrap();
            let (got, rest) = split_indexes(payload).unwrap();
            assert_eq!(got, indexes);
            assert_eq!(rest, [0x08]);
        }
        assert!(split_indexes(&[]).is_err());
        assert!(split_indexes(&[0xff; 12]).is_err());
        // A negative or huge count.
        assert!(split_indexes(&[0x01]).is_err());
        assert!(split_indexes(&[0xfe, 0x7f]).is_err());
    }
}

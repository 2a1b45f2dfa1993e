//! Response encoding: length prefix, response header (v0, or v1 with tagged fields for
//! flexible versions) and body.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::Encodable;

/// A response body that failed to encode (a broker bug: a field does not fit its version).
#[derive(Debug, thiserror::Error)]
#[error("cannot encode {api_key:?} v{api_version} response: {message}")]
pub struct EncodeError {
    /// API of the response.
    pub api_key: ApiKey,
    /// Version it was encoded at.
    pub api_version: i16,
    /// What the encoder reported.
    pub message: String,
}

/// Encodes a whole response frame, length prefix included.
pub fn encode_response(
    api_key: ApiKey,
    api_version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> Result<Bytes, EncodeError> {
    let err = |e: &dyn std::fmt::Display| EncodeError {
        api_key,
        api_version,
        message: e.to_string(),
    };
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i32(0); // length, patched below
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header
        .encode(&mut buf, api_key.response_header_version(api_version))
        .map_err(|e| err(&e))?;
    body.encode(&mut buf, api_version).map_err(|e| err(&e))?;
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::ApiVersionsResponse;

    #[test]
    fn api_versions_uses_header_v0_even_when_flexible() {
        let body = ResponseKind::ApiVersions(ApiVersionsResponse::default());
        let frame = encode_response(ApiKey::ApiVersions, 3, 7, &body).unwrap();
        let len = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
        assert_eq!(len, frame.len() - 4);
        assert_eq!(&frame[4..8], &7i32.to_be_bytes());
        // v3 body starts right after the correlation id: error code 0.
        assert_eq!(&frame[8..10], &[0, 0]);
    }
}

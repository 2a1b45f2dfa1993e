//! Request headers (v0–v2) and request bodies.
//!
//! The fixed prefix of every header (api key, api version, correlation id) is read by hand
//! first, so that even a request for an unknown API or version can be answered or logged with
//! its correlation id. The header version then follows from the API key and version as Kafka
//! defines it: v0 has no client id, v1 adds the nullable client id, v2 adds tagged fields.

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::{Decodable, StrBytes};

/// A request that could not be parsed. The connection that sent it is closed.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Fewer than the eight bytes every request header starts with.
    #[error("request of {0} bytes is too short for a request header")]
    TooShort(usize),
    /// An API key Kafka does not define.
    #[error("unknown api key {api_key} (correlation id {correlation_id})")]
    UnknownApiKey {
        /// The key that was sent.
        api_key: i16,
        /// Correlation id of the request.
        correlation_id: i32,
    },
    /// The header after the fixed prefix did not decode.
    #[error("malformed v{header_version} request header for {api_key:?} v{api_version}")]
    Header {
        /// API of the request.
        api_key: ApiKey,
        /// API version of the request.
        api_version: i16,
        /// Header version implied by the API and version.
        header_version: i16,
        /// What the decoder reported.
        #[source]
        source: anyhow_compat::DecodeError,
    },
    /// The body did not decode for its API and version.
    #[error("malformed {api_key:?} v{api_version} request body (correlation id {correlation_id})")]
    Body {
        /// API of the request.
        api_key: ApiKey,
        /// API version of the request.
        api_version: i16,
        /// Correlation id of the request.
        correlation_id: i32,
        /// What the decoder reported.
        #[source]
        source: anyhow_compat::DecodeError,
    },
}

/// The `kafka-protocol` crate reports decode failures as `anyhow::Error`; this wraps its
/// message in a concrete error type so this crate's errors stay `std::error::Error`.
pub mod anyhow_compat {
    /// A decode failure reported by the `kafka-protocol` crate.
    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    pub struct DecodeError(pub String);
}

fn decode_error(e: impl std::fmt::Display) -> anyhow_compat::DecodeError {
    anyhow_compat::DecodeError(e.to_string())
}

/// A parsed request header and the still-encoded body that follows it.
#[derive(Debug, Clone)]
pub struct RequestFrame {
    /// The API this request is for.
    pub api_key: ApiKey,
    /// The decoded header.
    pub header: RequestHeader,
    /// Header version used on the wire (0, 1 or 2).
    pub header_version: i16,
    /// The body, not yet decoded (it is decoded only for versions the broker serves).
    pub body: Bytes,
}

impl RequestFrame {
    /// The request's API version.
    pub fn api_version(&self) -> i16 {
        self.header.request_api_version
    }

    /// The request's correlation id.
    pub fn correlation_id(&self) -> i32 {
        self.header.correlation_id
    }

    /// Decodes the body for this frame's API and version.
    pub fn decode_body(&self) -> Result<RequestKind, RequestError> {
        let mut body = self.body.clone();
        RequestKind::decode(self.api_key, &mut body, self.api_version()).map_err(|e| {
            RequestError::Body {
                api_key: self.api_key,
                api_version: self.api_version(),
                correlation_id: self.correlation_id(),
                source: decode_error(e),
            }
        })
    }

    /// Decodes the body as one specific request type.
    pub fn decode_as<T: Decodable>(&self) -> Result<T, RequestError> {
        let mut body = self.body.clone();
        T::decode(&mut body, self.api_version()).map_err(|e| RequestError::Body {
            api_key: self.api_key,
            api_version: self.api_version(),
            correlation_id: self.correlation_id(),
            source: decode_error(e),
        })
    }
}

/// Parses the request header at the front of `frame` (a frame without its length prefix).
pub fn parse_request(mut frame: Bytes) -> Result<RequestFrame, RequestError> {
    if frame.len() < 8 {
        return Err(RequestError::TooShort(frame.len()));
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let api_version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api_key = ApiKey::try_from(raw_key).map_err(|_| RequestError::UnknownApiKey {
        api_key: raw_key,
        correlation_id,
    })?;
    // For versions outside the crate's known range this still gives the right answer: Kafka's
    // header version is a step function of the API version (flexible from some version on).
    let header_version = api_key.request_header_version(api_version);
    let header = if header_version == 0 {
        frame.advance(8);
        let mut header = RequestHeader::default();
        header.request_api_key = raw_key;
        header.request_api_version = api_version;
        header.correlation_id = correlation_id;
        header
    } else {
        RequestHeader::decode(&mut frame, header_version).map_err(|e| RequestError::Header {
            api_key,
            api_version,
            header_version,
            source: decode_error(e),
        })?
    };
    Ok(RequestFrame {
        api_key,
        header,
        header_version,
        body: frame,
    })
}

/// The client id of a header, or an empty string.
pub fn client_id(header: &RequestHeader) -> &str {
    header
        .client_id
        .as_ref()
        .map(StrBytes::as_str)
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest};
    use kafka_protocol::protocol::{Encodable, encode_request_header_into_buffer};

    fn encode<T: Encodable>(key: ApiKey, version: i16, body: &T) -> Bytes {
        let mut buf = BytesMut::new();
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(42)
            .with_client_id(Some(StrBytes::from_static_str("test")));
        encode_request_header_into_buffer(&mut buf, &header).unwrap();
        body.encode(&mut buf, version).unwrap();
        buf.freeze()
    }

    #[test]
    fn parses_flexible_and_non_flexible_headers() {
        for version in [0, 1, 4, 9, 12] {
            let frame = encode(ApiKey::Metadata, version, &MetadataRequest::default());
            let req = parse_request(frame).unwrap();
            assert_eq!(req.api_key, ApiKey::Metadata);
            assert_eq!(req.correlation_id(), 42);
            assert_eq!(client_id(&req.header), "test");
            assert_eq!(req.header_version, if version >= 9 { 2 } else { 1 });
            assert!(matches!(
                req.decode_body().unwrap(),
                RequestKind::Metadata(_)
            ));
        }
    }

    #[test]
    fn unknown_api_version_still_yields_the_header() {
        let frame = encode(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
        let mut raw = BytesMut::from(&frame[..]);
        raw[2..4].copy_from_slice(&99i16.to_be_bytes());
        let req = parse_request(raw.freeze()).unwrap();
        assert_eq!(req.api_version(), 99);
        assert_eq!(req.correlation_id(), 42);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(matches!(
            parse_request(Bytes::from_static(b"abc")),
            Err(RequestError::TooShort(3))
        ));
        assert!(matches!(
            parse_request(Bytes::from_static(&[0x7f, 0x7f, 0, 0, 0, 0, 0, 1])),
            Err(RequestError::UnknownApiKey { .. })
        ));
        // Metadata v1 header claiming a 32 KiB client id that is not there.
        let req = parse_request(Bytes::from_static(&[0, 3, 0, 1, 0, 0, 0, 1, 0x7f, 0xff]));
        assert!(matches!(req, Err(RequestError::Header { .. })));
    }

    #[test]
    fn huge_array_length_in_body_is_an_error() {
        // Metadata v1: topics array claiming i32::MAX entries with no data behind it.
        let mut raw = BytesMut::from(&encode(ApiKey::Metadata, 1, &MetadataRequest::default())[..]);
        let len = raw.len();
        raw.truncate(len - 4);
        raw.extend_from_slice(&i32::MAX.to_be_bytes());
        let req = parse_request(raw.freeze()).unwrap();
        assert!(matches!(req.decode_body(), Err(RequestError::Body { .. })));
    }
}

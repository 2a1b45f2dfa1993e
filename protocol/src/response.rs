//! Response encoding: length prefix, response header (v0, or v1 with tagged fields for
//! flexible versions) and body.

use bytes::{Bytes, BytesMut};

use crate::rope::{Part, Rope, SHARE_MIN};
use kafka_protocol::messages::{ApiKey, FetchResponse, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::Encodable;
use kafka_protocol::protocol::buf::ByteBufMut;

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

/// Encodes a whole response frame, length prefix included, as chunks to write in order
/// (one vectored write). The record batches of a Fetch response are chunks of their own,
/// the very buffers the log was read into: fetched data is never copied into the frame.
pub fn encode_response_chunks(
    api_key: ApiKey,
    api_version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> Result<Vec<Bytes>, EncodeError> {
    let err = |message: String| EncodeError {
        api_key,
        api_version,
        message,
    };
    let ResponseKind::Fetch(fetch) = body else {
        // Nothing worth sharing: one owned buffer.
        let mut buf = BytesMut::with_capacity(64);
        put_frame(&mut buf, api_key, api_version, correlation_id, |buf| {
            body.encode(buf, api_version).map_err(|e| e.to_string())
        })
        .map_err(err)?;
        return Ok(vec![buf.freeze()]);
    };
    let mut buf = Rope::new(shared_records(fetch));
    put_frame(&mut buf, api_key, api_version, correlation_id, |buf| {
        fetch.encode(buf, api_version).map_err(|e| e.to_string())
    })
    .map_err(err)?;
    Ok(buf.into_chunks())
}

/// Encodes a Fetch response whose record fields are stand-ins ([`crate::rope::StandIns`])
/// for bytes the writer sends from elsewhere: the frame as [`Part`]s, where each stand-in's
/// range is a [`Part::Stand`] naming its index in `stand_ins`. Record fields that are real
/// bytes are shared as in [`encode_response_chunks`].
pub fn encode_fetch_parts(
    api_version: i16,
    correlation_id: i32,
    fetch: &FetchResponse,
    stand_ins: Vec<Bytes>,
) -> Result<Vec<Part>, EncodeError> {
    let err = |message: String| EncodeError {
        api_key: ApiKey::Fetch,
        api_version,
        message,
    };
    let mut buf = Rope::with_stand_ins(shared_records(fetch), stand_ins);
    put_frame(
        &mut buf,
        ApiKey::Fetch,
        api_version,
        correlation_id,
        |buf| fetch.encode(buf, api_version).map_err(|e| e.to_string()),
    )
    .map_err(err)?;
    buf.into_parts()
        .ok_or_else(|| err("a stand-in was folded into the frame".into()))
}

/// The record fields of a Fetch response worth referencing rather than copying.
fn shared_records(fetch: &FetchResponse) -> Vec<Bytes> {
    fetch
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .filter_map(|p| p.records.clone())
        .filter(|r| r.len() >= SHARE_MIN)
        .collect()
}

/// Writes length prefix, response header and (through `body`) the body into `buf`.
fn put_frame<B: ByteBufMut>(
    buf: &mut B,
    api_key: ApiKey,
    api_version: i16,
    correlation_id: i32,
    body: impl FnOnce(&mut B) -> Result<(), String>,
) -> Result<(), String> {
    let start = buf.offset();
    buf.put_i32(0); // length, patched below
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(buf, api_key.response_header_version(api_version))
        .map_err(|e| e.to_string())?;
    body(buf)?;
    let len = i32::try_from(buf.offset() - start - 4).map_err(|e| e.to_string())?;
    buf.range(start..start + 4)
        .copy_from_slice(&len.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole frame as one buffer, to decode it back.
    fn encode_response(
        api_key: ApiKey,
        api_version: i16,
        correlation_id: i32,
        body: &ResponseKind,
    ) -> Result<Bytes, EncodeError> {
        let chunks = encode_response_chunks(api_key, api_version, correlation_id, body)?;
        if let [one] = &chunks[..] {
            return Ok(one.clone());
        }
        let mut all = BytesMut::with_capacity(chunks.iter().map(Bytes::len).sum());
        for chunk in &chunks {
            all.extend_from_slice(chunk);
        }
        Ok(all.freeze())
    }
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

    #[test]
    fn fetch_records_are_chunks_of_their_own_and_decode_back() {
        use kafka_protocol::messages::FetchResponse;
        use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
        use kafka_protocol::protocol::Decodable;
        let records: Vec<Bytes> = (0..3u8)
            .map(|i| Bytes::from(vec![i; 5000 + usize::from(i)]))
            .collect();
        let partitions = records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                PartitionData::default()
                    .with_partition_index(i as i32)
                    .with_high_watermark(10)
                    .with_records(Some(r.clone()))
            })
            .chain([PartitionData::default()
                .with_partition_index(3)
                .with_records(Some(Bytes::from_static(b"tiny")))])
            .collect();
        let body = ResponseKind::Fetch(FetchResponse::default().with_responses(vec![
            FetchableTopicResponse::default().with_partitions(partitions),
        ]));
        for version in [4, 12, 16] {
            let chunks = encode_response_chunks(ApiKey::Fetch, version, 9, &body).unwrap();
            for r in &records {
                assert!(
                    chunks
                        .iter()
                        .any(|c| c.as_ptr() == r.as_ptr() && c.len() == r.len()),
                    "v{version}: records shared, not copied"
                );
            }
            let frame = encode_response(ApiKey::Fetch, version, 9, &body).unwrap();
            let len = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
            assert_eq!(len, frame.len() - 4);
            let mut rest = frame.slice(4..);
            let header =
                ResponseHeader::decode(&mut rest, ApiKey::Fetch.response_header_version(version))
                    .unwrap();
            assert_eq!(header.correlation_id, 9);
            let decoded = FetchResponse::decode(&mut rest, version).unwrap();
            let ResponseKind::Fetch(original) = &body else {
                unreachable!()
            };
            assert_eq!(&decoded, original, "v{version}");
        }
    }

    /// Stand-ins become parts naming them; with their real bytes put back in their place
    /// the frame decodes to the response with the real records, at every version.
    #[test]
    fn fetch_stand_ins_become_parts_and_decode_back_with_their_bytes() {
        use crate::rope::StandIns;
        use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
        use kafka_protocol::protocol::Decodable;
        // Small and large, so stand-ins are recognised whatever their length.
        let real: Vec<Bytes> = [10usize, 5000, 70_000]
            .iter()
            .enumerate()
            .map(|(i, &n)| Bytes::from(vec![i as u8 + 1; n]))
            .collect();
        let shared = Bytes::from(vec![9u8; 6000]);
        for version in [4, 12, 16] {
            let mut stand_ins = StandIns::default();
            let mut partitions: Vec<PartitionData> = real
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    PartitionData::default()
                        .with_partition_index(i as i32)
                        .with_records(stand_ins.take(r.len()))
                })
                .collect();
            partitions.push(
                PartitionData::default()
                    .with_partition_index(3)
                    .with_records(Some(shared.clone())),
            );
            let fetch = FetchResponse::default().with_responses(vec![
                FetchableTopicResponse::default().with_partitions(partitions),
            ]);
            let parts = encode_fetch_parts(version, 5, &fetch, stand_ins.into_vec()).unwrap();
            let mut frame = BytesMut::new();
            let mut stands = 0;
            for part in &parts {
                match part {
                    Part::Bytes(b) => frame.extend_from_slice(b),
                    Part::Stand { index, offset, len } => {
                        stands += 1;
                        frame.extend_from_slice(&real[*index][*offset..offset + len]);
                    }
                }
            }
            assert_eq!(stands, 3, "v{version}: one part per stand-in");
            assert!(
                parts
                    .iter()
                    .any(|p| matches!(p, Part::Bytes(b) if b.as_ptr() == shared.as_ptr())),
                "v{version}: real records still shared"
            );
            let mut rest = frame.freeze().slice(4..);
            ResponseHeader::decode(&mut rest, ApiKey::Fetch.response_header_version(version))
                .unwrap();
            let decoded = FetchResponse::decode(&mut rest, version).unwrap();
            let records: Vec<Bytes> = decoded.responses[0]
                .partitions
                .iter()
                .map(|p| p.records.clone().unwrap())
                .collect();
            assert_eq!(&records[..3], &real[..], "v{version}");
            assert_eq!(records[3], shared);
        }
    }
}

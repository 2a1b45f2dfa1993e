//! A raw Kafka client connection for tests that control every frame: requests encoded and
//! responses decoded with the `kafka-protocol` crate over a blocking `TcpStream`.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::api_versions_request::ApiVersionsRequest;
use kafka_protocol::messages::api_versions_response::ApiVersionsResponse;
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};

use crate::Broker;

/// ApiVersions version `open` asks with (the newest `kafka-protocol` 0.18 knows).
const API_VERSIONS_VERSION: i16 = 3;

/// One client connection speaking raw frames. Reads time out after 30 s.
pub struct RawConn {
    pub stream: TcpStream,
    /// Correlation id of the last request sent.
    pub correlation_id: i32,
    /// api key -> (min, max) version as advertised by the broker; empty after `open_raw`.
    pub versions: HashMap<i16, (i16, i16)>,
    /// Client id in every request header (and the ApiVersions client software name).
    client_id: &'static str,
}

impl RawConn {
    /// Connect and learn the broker's API versions.
    pub fn open(broker: &Broker, client_id: &'static str) -> RawConn {
        let mut conn = RawConn::open_raw(broker, client_id);
        let resp: ApiVersionsResponse = conn.call_at(
            ApiKey::ApiVersions,
            API_VERSIONS_VERSION,
            &ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str(client_id))
                .with_client_software_version(StrBytes::from_static_str("1")),
        );
        assert_eq!(resp.error_code, 0, "ApiVersions v{API_VERSIONS_VERSION}");
        conn.versions = resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        conn
    }

    /// Connect without sending anything.
    pub fn open_raw(broker: &Broker, client_id: &'static str) -> RawConn {
        let stream = TcpStream::connect(broker.addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        RawConn {
            stream,
            correlation_id: 0,
            versions: HashMap::new(),
            client_id,
        }
    }

    /// The version to use for `key`: the broker's max capped at `ours`.
    pub fn version(&self, key: ApiKey, ours: i16) -> i16 {
        let &(min, max) = self
            .versions
            .get(&(key as i16))
            .unwrap_or_else(|| panic!("broker does not advertise {key:?}"));
        let v = max.min(ours);
        assert!(
            v >= min,
            "broker wants {key:?} v{min}..v{max}, we speak up to v{ours}"
        );
        v
    }

    /// Send one request at `version`; returns its correlation id.
    pub fn send<Req: Encodable + HeaderVersion>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &Req,
    ) -> i32 {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str(self.client_id)));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, Req::header_version(version))
            .unwrap();
        req.encode(&mut body, version).unwrap();
        let mut frame = (body.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        self.stream.write_all(&frame).unwrap();
        self.correlation_id
    }

    /// Read one response frame and check its correlation id; returns the body after the
    /// response header.
    pub fn recv_frame(&mut self, correlation_id: i32, header_version: i16) -> Bytes {
        let mut len = [0u8; 4];
        self.stream
            .read_exact(&mut len)
            .unwrap_or_else(|e| panic!("reading response {correlation_id}: {e}"));
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut body).unwrap();
        let mut body = Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, header_version).unwrap();
        assert_eq!(header.correlation_id, correlation_id, "correlation id");
        body
    }

    /// Send a request at `version` and decode its response.
    pub fn call_at<Req, Resp>(&mut self, key: ApiKey, version: i16, req: &Req) -> Resp
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable + HeaderVersion,
    {
        let id = self.send(key, version, req);
        let mut body = self.recv_frame(id, Resp::header_version(version));
        Resp::decode(&mut body, version)
            .unwrap_or_else(|e| panic!("decoding {key:?} v{version} response: {e}"))
    }

    /// [`RawConn::call_at`] at [`RawConn::version`]`(key, ours)`.
    pub fn call<Req, Resp>(&mut self, key: ApiKey, ours: i16, req: &Req) -> Resp
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable + HeaderVersion,
    {
        let version = self.version(key, ours);
        self.call_at(key, version, req)
    }

    /// The broker closed this connection: a read returns end of stream or a reset, not data
    /// and not a timeout.
    pub fn assert_closed(&mut self, what: &str) {
        let mut buf = [0u8; 64];
        match self.stream.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => panic!(
                "{what}: broker answered {n} bytes instead of closing: {:?}",
                &buf[..n]
            ),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("{what}: connection still open after 30 s")
            }
            Err(_) => {} // reset by peer: closed with our bytes unread
        }
    }
}

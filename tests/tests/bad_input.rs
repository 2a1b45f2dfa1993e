//! Malformed and invalid requests over raw TCP: the broker answers with the Kafka error code
//! when the request parses, closes only that connection when it does not, never allocates
//! what a length prefix claims before checking it, and keeps serving everyone else.
//!
//! Valid requests are encoded with the `kafka-protocol` crate; record batches with its
//! `RecordBatchEncoder`.

// Test helpers outside #[test] functions: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use floe_tests::raw::{self, PRODUCE_MAX, RawConn};
use floe_tests::{Broker, clients_dir, python, run_ok_with, wait_until};
use kafka_protocol::messages::api_versions_request::ApiVersionsRequest;
use kafka_protocol::messages::api_versions_response::ApiVersionsResponse;
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use kafka_protocol::records::Compression;

// Kafka error codes checked here (see Kafka's `Errors` class).
const NONE: i16 = 0;
const CORRUPT_MESSAGE: i16 = 2;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_REQUIRED_ACKS: i16 = 21;
const UNSUPPORTED_VERSION: i16 = 35;

/// Client id in the request headers of this file's connections.
const CLIENT_ID: &str = "floe-bad-input";

/// CreateTopics of one topic (replication factor 1); asserts it succeeded.
fn create_topic(conn: &mut RawConn, name: &str, partitions: i32) {
    assert_eq!(
        conn.create_topic(name, partitions),
        NONE,
        "CreateTopics({name})"
    );
}

fn produce(conn: &mut RawConn, name: &str, partition: i32, acks: i16, batch: Bytes) -> (i16, i64) {
    conn.produce(name, partition, acks, batch)
}

fn produce_v(
    conn: &mut RawConn,
    version: i16,
    name: &str,
    partition: i32,
    acks: i16,
    batch: Bytes,
) -> (i16, i64) {
    conn.produce_at(version, name, partition, acks, batch)
}

/// ListOffsets latest of one partition; asserts it succeeded.
fn latest_offset(conn: &mut RawConn, name: &str, partition: i32) -> i64 {
    let (error, offset) = conn.latest_offset(name, partition);
    assert_eq!(error, NONE, "ListOffsets({name}-{partition})");
    offset
}

/// A valid magic-2 record batch of `n` records.
fn batch(n: i64) -> Bytes {
    raw::batch(n, Compression::None)
}

/// Byte offset of the CRC in a magic-2 batch header (after baseOffset, batchLength,
/// partitionLeaderEpoch and magic).
const CRC_AT: usize = 8 + 4 + 4 + 1;

/// The broker still serves a fresh connection: ApiVersions answers.
fn assert_serves(broker: &Broker) {
    let conn = RawConn::open(broker, CLIENT_ID);
    assert!(!conn.versions.is_empty(), "ApiVersions lists no API");
}

/// The broker logged something about the connection `conn` (it logs why it closed one, with
/// the peer address).
fn assert_logged(broker: &Broker, conn: &RawConn, what: &str) {
    let peer = conn.stream.local_addr().unwrap().to_string();
    wait_until(
        Duration::from_secs(10),
        &format!("the broker log mentions {what} from {peer}"),
        || broker.log().contains(&peer),
    );
}

fn garbage_frame_closes_only_that_connection(broker: &Broker) {
    // A plausible length followed by bytes that are no request header (api key 0xdead).
    let mut conn = RawConn::open_raw(broker, CLIENT_ID);
    let mut frame = 16u32.to_be_bytes().to_vec();
    frame.extend(std::iter::repeat_n(0xde_u8, 8));
    frame.extend(std::iter::repeat_n(0xad_u8, 8));
    conn.stream.write_all(&frame).unwrap();
    conn.assert_closed("garbage frame");
    assert_logged(broker, &conn, "the garbage frame");

    // A frame too short to hold a request header.
    let mut conn = RawConn::open_raw(broker, CLIENT_ID);
    conn.stream.write_all(&[0, 0, 0, 2, 0, 18]).unwrap();
    conn.assert_closed("truncated header");
    assert_logged(broker, &conn, "the truncated header");

    assert_serves(broker);
}

/// Peak virtual memory of a process in KiB (`VmPeak` in /proc/PID/status).
fn vm_peak_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmPeak:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmPeak in /proc/PID/status")
}

fn huge_length_prefix_closes_without_allocating(broker: &Broker) {
    let peak_before = vm_peak_kib(broker.pid());
    for prefix in [
        0x7fff_ffff_u32,
        0x8000_0000,
        0xffff_ffff,
        100 * 1024 * 1024 + 1,
    ] {
        let mut conn = RawConn::open_raw(broker, CLIENT_ID);
        conn.stream.write_all(&prefix.to_be_bytes()).unwrap();
        // Some bytes of the promised body; the broker may close before reading them.
        let _ = conn.stream.write_all(&[0u8; 1024]);
        conn.assert_closed(&format!("length prefix {prefix:#x}"));
        assert_logged(broker, &conn, &format!("the length prefix {prefix:#x}"));
    }
    let peak_after = vm_peak_kib(broker.pid());
    // Allocating (even without touching) what a 2 GiB prefix claims would raise the peak by
    // 2 GiB; normal growth is far below 1 GiB.
    assert!(
        peak_after < peak_before + 1024 * 1024,
        "broker's peak virtual memory grew from {peak_before} KiB to {peak_after} KiB"
    );
    assert_serves(broker);
}

fn bad_crc_is_rejected_and_not_appended(broker: &Broker) {
    let mut conn = RawConn::open(broker, CLIENT_ID);
    create_topic(&mut conn, "bad-crc", 1);
    assert_eq!(
        produce(&mut conn, "bad-crc", 0, -1, batch(3)),
        (NONE, 0),
        "valid batch"
    );
    assert_eq!(latest_offset(&mut conn, "bad-crc", 0), 3);

    // At the oldest and the newest Produce version both sides speak (v3 and v9+ differ in
    // encoding: the latter is a flexible version).
    let (min, _) = conn.versions[&(ApiKey::Produce as i16)];
    let newest = conn.version(ApiKey::Produce, PRODUCE_MAX);
    for version in [min.max(3), newest] {
        let mut wrong_crc = BytesMut::from(&batch(2)[..]);
        wrong_crc[CRC_AT] ^= 0xff;
        let (error, _) = produce_v(&mut conn, version, "bad-crc", 0, -1, wrong_crc.freeze());
        assert_eq!(
            error, CORRUPT_MESSAGE,
            "Produce v{version}: batch with a wrong CRC field"
        );

        let mut flipped_payload = BytesMut::from(&batch(2)[..]);
        let last = flipped_payload.len() - 1;
        flipped_payload[last] ^= 0x01;
        let (error, _) = produce_v(
            &mut conn,
            version,
            "bad-crc",
            0,
            1,
            flipped_payload.freeze(),
        );
        assert_eq!(
            error, CORRUPT_MESSAGE,
            "Produce v{version}: batch with a flipped payload bit"
        );
    }

    assert_eq!(
        latest_offset(&mut conn, "bad-crc", 0),
        3,
        "corrupt batches were appended"
    );
    // The connection stays usable and the next valid batch goes right after the first one.
    assert_eq!(produce(&mut conn, "bad-crc", 0, -1, batch(1)), (NONE, 3));
}

/// Issue 9 item 1: a compressed batch whose `recordsCount` (and `lastOffsetDelta`, kept
/// consistent with it, CRC fixed) claims more records than it holds is refused as Kafka's
/// log validator refuses it, for every codec, whether it claims five or 2^31 - 1.
fn compressed_count_mismatch_is_rejected(broker: &Broker) {
    let mut conn = RawConn::open(broker, CLIENT_ID);
    create_topic(&mut conn, "lying-count", 1);
    for compression in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        for claim in [5i32, i32::MAX] {
            let mut lying = BytesMut::from(&raw::batch(1, compression)[..]);
            lying[23..27].copy_from_slice(&(claim - 1).to_be_bytes());
            lying[57..61].copy_from_slice(&claim.to_be_bytes());
            let crc = crc32c::crc32c(&lying[21..]);
            lying[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
            let (error, _) = produce(&mut conn, "lying-count", 0, -1, lying.freeze());
            assert_eq!(
                error, CORRUPT_MESSAGE,
                "{compression:?} batch of one record claiming {claim}"
            );
        }
    }
    assert_eq!(
        latest_offset(&mut conn, "lying-count", 0),
        0,
        "lying batches were appended"
    );
    assert_eq!(
        produce(
            &mut conn,
            "lying-count",
            0,
            -1,
            raw::batch(3, Compression::Gzip)
        ),
        (NONE, 0)
    );
}

fn unknown_partition_is_rejected(broker: &Broker) {
    let mut conn = RawConn::open(broker, CLIENT_ID);
    create_topic(&mut conn, "one-partition", 1);
    let (error, _) = produce(&mut conn, "one-partition", 99, -1, batch(1));
    assert_eq!(
        error, UNKNOWN_TOPIC_OR_PARTITION,
        "partition 99 of a 1-partition topic"
    );
    assert_eq!(latest_offset(&mut conn, "one-partition", 0), 0);
    assert_eq!(
        produce(&mut conn, "one-partition", 0, -1, batch(1)),
        (NONE, 0)
    );
}

fn invalid_acks_is_rejected(broker: &Broker) {
    let mut conn = RawConn::open(broker, CLIENT_ID);
    create_topic(&mut conn, "acks", 1);
    let (error, _) = produce(&mut conn, "acks", 0, 5, batch(1));
    assert_eq!(error, INVALID_REQUIRED_ACKS, "acks=5");
    assert_eq!(
        latest_offset(&mut conn, "acks", 0),
        0,
        "a batch with acks=5 was appended"
    );
    assert_eq!(produce(&mut conn, "acks", 0, 1, batch(1)), (NONE, 0));
}

fn unsupported_api_versions_version_gets_v0_answer(broker: &Broker) {
    // KIP-511: a client newer than the broker sends ApiVersions at a version the broker does
    // not know; the broker answers in v0 with UNSUPPORTED_VERSION and its API list, so the
    // client can retry with a version both know. The request is encoded like v3 (flexible
    // header and body), as such a client would send it.
    let mut conn = RawConn::open_raw(broker, CLIENT_ID);
    conn.correlation_id += 1;
    let id = conn.correlation_id;
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::ApiVersions as i16)
        .with_request_api_version(99)
        .with_correlation_id(id)
        .with_client_id(Some(StrBytes::from_static_str("floe-bad-input")));
    let mut body = BytesMut::new();
    header.encode(&mut body, 2).unwrap();
    ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("floe-bad-input"))
        .with_client_software_version(StrBytes::from_static_str("1"))
        .encode(&mut body, 3)
        .unwrap();
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    conn.stream.write_all(&frame).unwrap();

    let mut resp_body = conn.recv_frame(id, ApiVersionsResponse::header_version(0));
    let resp = ApiVersionsResponse::decode(&mut resp_body, 0).unwrap();
    assert_eq!(
        resp.error_code, UNSUPPORTED_VERSION,
        "ApiVersions v99: {resp:?}"
    );
    assert!(
        resp.api_keys
            .iter()
            .any(|k| k.api_key == ApiKey::ApiVersions as i16),
        "ApiVersions v99 answer lists no ApiVersions entry: {resp:?}"
    );
    assert!(
        resp.api_keys
            .iter()
            .any(|k| k.api_key == ApiKey::Produce as i16),
        "ApiVersions v99 answer lists no Produce entry: {resp:?}"
    );
}

#[test]
fn garbage_frame() {
    let broker = Broker::start();
    garbage_frame_closes_only_that_connection(&broker);
}

#[test]
fn huge_length_prefix() {
    let broker = Broker::start();
    huge_length_prefix_closes_without_allocating(&broker);
}

#[test]
fn bad_crc() {
    let broker = Broker::start();
    bad_crc_is_rejected_and_not_appended(&broker);
}

#[test]
fn compressed_count_mismatch() {
    let broker = Broker::start();
    compressed_count_mismatch_is_rejected(&broker);
}

#[test]
fn unknown_partition() {
    let broker = Broker::start();
    unknown_partition_is_rejected(&broker);
}

#[test]
fn invalid_acks() {
    let broker = Broker::start();
    invalid_acks_is_rejected(&broker);
}

#[test]
fn unsupported_api_versions_version() {
    let broker = Broker::start();
    unsupported_api_versions_version_gets_v0_answer(&broker);
}

/// Everything above against one broker, then a real client still produces and consumes.
#[test]
fn broker_keeps_serving_real_clients_after_bad_input() {
    let broker = Broker::start();
    garbage_frame_closes_only_that_connection(&broker);
    huge_length_prefix_closes_without_allocating(&broker);
    bad_crc_is_rejected_and_not_appended(&broker);
    compressed_count_mismatch_is_rejected(&broker);
    unknown_partition_is_rejected(&broker);
    invalid_acks_is_rejected(&broker);
    unsupported_api_versions_version_gets_v0_answer(&broker);

    let log = broker.log();
    assert!(
        !log.trim().is_empty(),
        "the broker logged nothing about the bad input"
    );

    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state.json");
    for args in [&["write", "after-bad-input", "50", "none"][..], &["verify"]] {
        run_ok_with(
            Command::new(python())
                .arg(clients_dir().join("python").join("durability_restart.py"))
                .arg(broker.bootstrap())
                .arg(&state)
                .args(args),
            b"",
            Duration::from_secs(240),
        );
    }
}

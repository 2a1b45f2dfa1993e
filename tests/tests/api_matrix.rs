//! Every (API, version) the broker advertises in ApiVersions answers a request of that
//! version: the response arrives, carries the request's correlation id, and decodes at that
//! version. This catches responses that set a field their version cannot carry (the encoder
//! refuses, and the broker would close the connection instead of answering).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use floe_tests::Broker;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes, encode_request_header_into_buffer};

/// A request of `key` with default contents, adjusted where the default is not a request a
/// client could send (acks=0 gets no answer; an empty group id is invalid).
fn default_request(key: ApiKey, version: i16) -> Option<RequestKind> {
    let group = || GroupId(StrBytes::from_static_str("matrix-group"));
    Some(match key {
        ApiKey::Produce => RequestKind::Produce(ProduceRequest::default().with_acks(1)),
        ApiKey::Fetch => RequestKind::Fetch(FetchRequest::default().with_max_wait_ms(0)),
        ApiKey::ListOffsets => RequestKind::ListOffsets(ListOffsetsRequest::default()),
        ApiKey::Metadata => RequestKind::Metadata(MetadataRequest::default()),
        ApiKey::ApiVersions => RequestKind::ApiVersions(ApiVersionsRequest::default()),
        ApiKey::CreateTopics => RequestKind::CreateTopics(CreateTopicsRequest::default()),
        ApiKey::DeleteTopics => RequestKind::DeleteTopics(DeleteTopicsRequest::default()),
        ApiKey::InitProducerId => RequestKind::InitProducerId(InitProducerIdRequest::default()),
        ApiKey::OffsetForLeaderEpoch => {
            RequestKind::OffsetForLeaderEpoch(OffsetForLeaderEpochRequest::default())
        }
        ApiKey::DescribeConfigs => RequestKind::DescribeConfigs(DescribeConfigsRequest::default()),
        ApiKey::CreatePartitions => {
            RequestKind::CreatePartitions(CreatePartitionsRequest::default())
        }
        ApiKey::DescribeCluster => RequestKind::DescribeCluster(DescribeClusterRequest::default()),
        ApiKey::DescribeLogDirs => RequestKind::DescribeLogDirs(DescribeLogDirsRequest::default()),
        ApiKey::AlterConfigs => RequestKind::AlterConfigs(AlterConfigsRequest::default()),
        ApiKey::IncrementalAlterConfigs => {
            RequestKind::IncrementalAlterConfigs(IncrementalAlterConfigsRequest::default())
        }
        // v4+ batches keys; before that one key.
        ApiKey::FindCoordinator if version >= 4 => RequestKind::FindCoordinator(
            FindCoordinatorRequest::default()
                .with_coordinator_keys(vec![StrBytes::from_static_str("matrix-group")]),
        ),
        ApiKey::FindCoordinator => RequestKind::FindCoordinator(
            FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("matrix-group")),
        ),
        ApiKey::ListGroups => RequestKind::ListGroups(ListGroupsRequest::default()),
        ApiKey::DescribeGroups => RequestKind::DescribeGroups(
            DescribeGroupsRequest::default()
                .with_groups(vec![GroupId(StrBytes::from_static_str("matrix-group"))]),
        ),
        ApiKey::DeleteGroups => RequestKind::DeleteGroups(
            DeleteGroupsRequest::default()
                .with_groups_names(vec![GroupId(StrBytes::from_static_str("matrix-group"))]),
        ),
        // v8+ asks for several groups at once.
        ApiKey::OffsetFetch if version >= 8 => {
            RequestKind::OffsetFetch(OffsetFetchRequest::default().with_groups(vec![
                offset_fetch_request::OffsetFetchRequestGroup::default().with_group_id(group()),
            ]))
        }
        ApiKey::OffsetFetch => {
            RequestKind::OffsetFetch(OffsetFetchRequest::default().with_group_id(group()))
        }
        ApiKey::Heartbeat => RequestKind::Heartbeat(
            HeartbeatRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("matrix-group"))),
        ),
        ApiKey::LeaveGroup => RequestKind::LeaveGroup(
            LeaveGroupRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("matrix-group"))),
        ),
        ApiKey::OffsetDelete => RequestKind::OffsetDelete(
            OffsetDeleteRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("matrix-group"))),
        ),
        ApiKey::OffsetCommit => RequestKind::OffsetCommit(
            OffsetCommitRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("matrix-group"))),
        ),
        ApiKey::SyncGroup => RequestKind::SyncGroup(
            SyncGroupRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("matrix-group"))),
        ),
        // Transactions: refusals of an unknown transactional id, and empty lists.
        ApiKey::AddPartitionsToTxn => {
            RequestKind::AddPartitionsToTxn(AddPartitionsToTxnRequest::default())
        }
        ApiKey::AddOffsetsToTxn => RequestKind::AddOffsetsToTxn(
            AddOffsetsToTxnRequest::default()
                .with_transactional_id(TransactionalId(StrBytes::from_static_str("matrix-txn")))
                .with_group_id(GroupId(StrBytes::from_static_str("matrix-group"))),
        ),
        ApiKey::EndTxn => RequestKind::EndTxn(
            EndTxnRequest::default()
                .with_transactional_id(TransactionalId(StrBytes::from_static_str("matrix-txn"))),
        ),
        ApiKey::TxnOffsetCommit => RequestKind::TxnOffsetCommit(
            TxnOffsetCommitRequest::default()
                .with_transactional_id(TransactionalId(StrBytes::from_static_str("matrix-txn")))
                .with_group_id(GroupId(StrBytes::from_static_str("matrix-group"))),
        ),
        ApiKey::DescribeProducers => {
            RequestKind::DescribeProducers(DescribeProducersRequest::default())
        }
        ApiKey::DescribeTransactions => RequestKind::DescribeTransactions(
            DescribeTransactionsRequest::default().with_transactional_ids(vec![TransactionalId(
                StrBytes::from_static_str("matrix-txn"),
            )]),
        ),
        ApiKey::ListTransactions => {
            RequestKind::ListTransactions(ListTransactionsRequest::default())
        }
        ApiKey::ElectLeaders => RequestKind::ElectLeaders(ElectLeadersRequest::default()),
        ApiKey::ListPartitionReassignments => {
            RequestKind::ListPartitionReassignments(ListPartitionReassignmentsRequest::default())
        }
        ApiKey::DescribeTopicPartitions => {
            RequestKind::DescribeTopicPartitions(DescribeTopicPartitionsRequest::default())
        }
        // JoinGroup parks the member until the rebalance completes; its own tests cover it.
        _ => return None,
    })
}

fn send(stream: &mut TcpStream, key: ApiKey, version: i16, id: i32, body: &RequestKind) {
    let mut buf = BytesMut::new();
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(id)
        .with_client_id(Some(StrBytes::from_static_str("api-matrix")));
    encode_request_header_into_buffer(&mut buf, &header).unwrap();
    body.encode(&mut buf, version).unwrap();
    let mut frame = (buf.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&buf);
    stream.write_all(&frame).unwrap();
}

fn receive(stream: &mut TcpStream) -> Option<Bytes> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).ok()?;
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).ok()?;
    Some(Bytes::from(body))
}

#[test]
fn every_advertised_api_version_answers() {
    let broker = Broker::start();
    let mut stream = TcpStream::connect(broker.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    send(
        &mut stream,
        ApiKey::ApiVersions,
        3,
        0,
        &RequestKind::ApiVersions(ApiVersionsRequest::default()),
    );
    let mut resp = receive(&mut stream).expect("ApiVersions answered");
    ResponseHeader::decode(&mut resp, 0).unwrap();
    let versions = ApiVersionsResponse::decode(&mut resp, 3).unwrap();
    assert_eq!(versions.error_code, 0);

    let mut checked = 0;
    let mut failures = Vec::new();
    for api in &versions.api_keys {
        let key = ApiKey::try_from(api.api_key).unwrap();
        for version in api.min_version..=api.max_version {
            let Some(body) = default_request(key, version) else {
                continue;
            };
            let id = 1000 + checked;
            // A fresh connection per request: a refused request closes only its own.
            let mut conn = TcpStream::connect(broker.addr()).unwrap();
            conn.set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            send(&mut conn, key, version, id, &body);
            checked += 1;
            let Some(mut frame) = receive(&mut conn) else {
                failures.push(format!(
                    "{key:?} v{version}: connection closed, no response"
                ));
                continue;
            };
            let header =
                ResponseHeader::decode(&mut frame, key.response_header_version(version)).unwrap();
            if header.correlation_id != id {
                failures.push(format!("{key:?} v{version}: wrong correlation id"));
                continue;
            }
            if let Err(e) = ResponseKind::decode(key, &mut frame, version) {
                failures.push(format!("{key:?} v{version}: response does not decode: {e}"));
            }
        }
    }
    assert!(checked > 50, "only {checked} api versions checked");
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
}

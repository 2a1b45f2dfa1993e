//! A full disk, for real (issue 9, item 6): the broker's data directory on a small tmpfs.
//! Producers get KAFKA_STORAGE_ERROR while it is full, reads keep working, DeleteTopics
//! frees space through Kafka, and the partitions take writes again by themselves, without
//! a restart. (The same refusal without a mount, through the storage fault injector, is
//! `full_disk_refuses_appends_without_taking_the_log_offline` in floe-storage.)
//!
//! Mounting needs root (CI runs as root); elsewhere the test says so and checks nothing.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use floe_tests::Broker;
use floe_tests::raw::{self, RawConn};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::TopicName;
use kafka_protocol::messages::delete_topics_request::{DeleteTopicState, DeleteTopicsRequest};
use kafka_protocol::messages::delete_topics_response::DeleteTopicsResponse;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

const CLIENT_ID: &str = "floe-disk-full";
const NONE: i16 = 0;
const KAFKA_STORAGE_ERROR: i16 = 56;

/// A tmpfs mounted for the test's lifetime.
struct Tmpfs {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .ok()?;
        status.success().then_some(Tmpfs { path, _dir: dir })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

fn delete_topic(conn: &mut RawConn, name: &str) -> i16 {
    let req = DeleteTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topic_names(vec![TopicName(StrBytes::from_string(name.to_string()))])
        .with_topics(vec![
            DeleteTopicState::default()
                .with_name(Some(TopicName(StrBytes::from_string(name.to_string())))),
        ]);
    let resp: DeleteTopicsResponse = conn.call(ApiKey::DeleteTopics, 6, &req);
    resp.responses[0].error_code
}

fn run(data_dir: &Path) {
    let data = data_dir.join("data");
    let data_arg = format!("data_dir={}", data.display());
    let broker = Broker::start_with(&["--set", &data_arg, "--set", "log_segment_bytes=1048576"]);
    let mut conn = RawConn::open(&broker, CLIENT_ID);
    assert_eq!(conn.create_topic("filler", 1), NONE);
    assert_eq!(conn.create_topic("events", 1), NONE);
    assert_eq!(
        conn.produce("events", 0, -1, raw::batch(10, Compression::None))
            .0,
        NONE
    );

    // Fill the file system through the broker: ~60 KB batches until refused, then
    // one-record batches until even those are refused (the last free pages).
    let mut acknowledged = 0i64;
    for records in [2000, 1] {
        let mut refused = 0;
        for _ in 0..20_000 {
            match conn
                .produce("filler", 0, -1, raw::batch(records, Compression::None))
                .0
            {
                NONE => acknowledged += records,
                KAFKA_STORAGE_ERROR => {
                    refused += 1;
                    if refused == 3 {
                        break;
                    }
                }
                other => panic!("produce answered {other}"),
            }
        }
        assert_eq!(refused, 3, "batches of {records} never refused");
    }
    assert!(acknowledged > 0);
    // Full: writes are refused everywhere, reads keep working.
    assert_eq!(
        conn.produce("events", 0, -1, raw::batch(2000, Compression::None))
            .0,
        KAFKA_STORAGE_ERROR
    );
    assert_eq!(conn.latest_offset("filler", 0), (NONE, acknowledged));
    assert_eq!(conn.latest_offset("events", 0), (NONE, 10));

    // Space is freed through Kafka, and the partition takes writes again by itself.
    assert_eq!(delete_topic(&mut conn, "filler"), NONE);
    assert_eq!(
        conn.produce("events", 0, -1, raw::batch(2000, Compression::None)),
        (NONE, 10)
    );
    assert_eq!(conn.latest_offset("events", 0), (NONE, 2010));
    assert!(
        broker
            .log()
            .contains("giving up the metadata space reserve"),
        "{}",
        broker.log()
    );
    drop(conn);
    drop(broker);
}

#[test]
fn full_disk_refuses_writes_and_recovers_without_restart() {
    let Some(fs) = Tmpfs::mount("24m") else {
        eprintln!("cannot mount a tmpfs here (not root?): the disk-full scenario needs one");
        return;
    };
    run(&fs.path);
}

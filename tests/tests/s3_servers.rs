//! The local S3 servers of `floe_tests::s3` themselves: each kind starts with an empty
//! bucket, lists what a real S3 client wrote, and behaves across a restart as documented
//! (s3s-fs keeps its objects, moto loses them). s3s-fs also refuses a conditional create of
//! an existing key, which the S3 tests rely on.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use floe_tests::s3::{S3Kind, S3Server};

/// Runs `code` with a boto3 client `s3` for `server` and `bucket` set; returns its stdout.
fn boto3(server: &S3Server, code: &str) -> String {
    server.boto3(&format!("bucket = args[0]\n{code}"), &[server.bucket()])
}

/// Puts two objects through boto3: `dir/a.bin` (1000 bytes) and `top.txt` (5 bytes).
fn put_two_objects(server: &S3Server) {
    boto3(
        server,
        r#"
s3.put_object(Bucket=bucket, Key="dir/a.bin", Body=b"x" * 1000)
s3.put_object(Bucket=bucket, Key="top.txt", Body=b"hello")
"#,
    );
}

fn both_objects() -> Vec<(String, u64)> {
    vec![("dir/a.bin".to_string(), 1000), ("top.txt".to_string(), 5)]
}

#[test]
fn moto_starts_with_an_empty_bucket_and_forgets_on_restart() {
    let mut s3 = S3Server::start(S3Kind::Moto, "warehouse");
    assert_eq!(s3.kind(), S3Kind::Moto);
    assert_eq!(s3.endpoint(), format!("http://127.0.0.1:{}", s3.port()));
    assert!(s3.list("").is_empty(), "log:\n{}", s3.log());

    put_two_objects(&s3);
    assert_eq!(s3.list(""), both_objects());
    assert_eq!(s3.list("dir/"), both_objects()[..1].to_vec());

    // moto keeps everything in memory: after a restart the bucket is there again (the
    // harness recreates it), empty.
    s3.stop();
    s3.restart();
    assert!(s3.list("").is_empty(), "log:\n{}", s3.log());
}

#[test]
fn s3s_fs_keeps_objects_across_restart_and_refuses_conditional_overwrite() {
    let mut s3 = S3Server::start(S3Kind::S3sFs, "warehouse");
    assert_eq!(s3.kind(), S3Kind::S3sFs);
    assert!(s3.list("").is_empty(), "log:\n{}", s3.log());
    // The bucket exists for a client too, not only as a directory.
    boto3(&s3, "s3.head_bucket(Bucket=bucket)");

    put_two_objects(&s3);
    assert_eq!(s3.list(""), both_objects());
    assert_eq!(s3.list("dir/"), both_objects()[..1].to_vec());

    // A create-only write (If-None-Match: *) of an existing key fails with 412 and leaves
    // the object alone; of a new key it succeeds.
    let out = boto3(
        &s3,
        r#"
from botocore.exceptions import ClientError
try:
    s3.put_object(Bucket=bucket, Key="top.txt", Body=b"overwritten", IfNoneMatch="*")
    print("overwrote")
except ClientError as e:
    print("refused", e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"])
s3.put_object(Bucket=bucket, Key="new.txt", Body=b"new", IfNoneMatch="*")
print(s3.get_object(Bucket=bucket, Key="top.txt")["Body"].read().decode())
"#,
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["refused 412 PreconditionFailed", "hello"],
        "log:\n{}",
        s3.log()
    );

    // Objects are files: they are listed while the server is down, and served again by the
    // restarted server on the same port.
    let before = s3.list("");
    assert_eq!(before.len(), 3, "{before:?}");
    s3.stop();
    assert!(!s3.is_running());
    assert_eq!(s3.list(""), before);
    s3.restart();
    let out = boto3(
        &s3,
        r#"
s3.head_bucket(Bucket=bucket)
print(s3.get_object(Bucket=bucket, Key="dir/a.bin")["ContentLength"])
"#,
    );
    assert_eq!(out.trim(), "1000", "log:\n{}", s3.log());
}

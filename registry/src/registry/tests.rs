//! The registry's operations against an in-memory log: Confluent's semantics for ids,
//! versions, compatibility, deletes, modes, and a restart (replay of what was written).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::memory::MemoryLog;
use super::*;

fn avro(text: &str) -> NewSchema {
    NewSchema {
        schema: text.to_string(),
        ..NewSchema::default()
    }
}

fn record(fields: &str) -> NewSchema {
    avro(&format!(
        r#"{{"type":"record","name":"R","namespace":"t","fields":[{fields}]}}"#
    ))
}

fn open() -> (Arc<MemoryLog>, Registry) {
    let log = Arc::new(MemoryLog::default());
    let registry = log.reopen(Settings::default());
    (log, registry)
}

#[tokio::test]
async fn ids_are_shared_by_equal_schemas_and_versions_count_per_subject() {
    let (_, r) = open();
    let a = r
        .register("a", record(r#"{"name":"x","type":"int"}"#))
        .await
        .unwrap();
    assert_eq!((a.schema.id, a.version), (1, 1));
    // The same schema, written differently, under the same subject: the same version.
    let again = r
        .register("a", record(r#"{"type":"int", "name":"x"}"#))
        .await
        .unwrap();
    assert_eq!((again.schema.id, again.version), (1, 1));
    // Under another subject: the same id, that subject's version 1.
    let b = r
        .register("b", record(r#"{"name":"x","type":"int"}"#))
        .await
        .unwrap();
    assert_eq!((b.schema.id, b.version), (1, 1));
    let a2 = r
        .register(
            "a",
            record(r#"{"name":"x","type":"int"},{"name":"y","type":"int","default":0}"#),
        )
        .await
        .unwrap();
    assert_eq!((a2.schema.id, a2.version), (2, 2));
    assert_eq!(r.versions("a", false).unwrap(), [1, 2]);
    assert_eq!(r.subjects("", false).unwrap(), ["a", "b"]);
    assert_eq!(
        r.id_versions(1, false).unwrap(),
        [("a".into(), 1), ("b".into(), 1)]
    );
    let found = r
        .lookup("a", &record(r#"{"name":"x","type":"int"}"#), false)
        .unwrap();
    assert_eq!(found.version, 1);
    assert_eq!(
        r.lookup("a", &record(r#"{"name":"z","type":"int"}"#), false)
            .unwrap_err()
            .code,
        40403
    );
    assert_eq!(
        r.lookup("nope", &avro("\"int\""), false).unwrap_err().code,
        40401
    );
}

#[tokio::test]
async fn incompatible_and_invalid_schemas_are_refused_and_change_nothing() {
    let (log, r) = open();
    r.register("s", record(r#"{"name":"x","type":"int"}"#))
        .await
        .unwrap();
    let written = log.records().len();
    let e = r
        .register(
            "s",
            record(r#"{"name":"x","type":"int"},{"name":"y","type":"int"}"#),
        )
        .await
        .unwrap_err();
    assert_eq!((e.code, e.status.as_u16()), (409, 409));
    assert!(e.message.contains('y'), "{}", e.message);
    let e = r.register("s", avro("{\"type\":")).await.unwrap_err();
    assert_eq!(e.code, 42201);
    assert_eq!(log.records().len(), written);
    // The check alone, against one version or the level's.
    let new = record(r#"{"name":"x","type":"long"}"#);
    assert!(r.compatibility_errors("s", None, &new).unwrap().is_empty());
    assert!(
        r.compatibility_errors(
            "s",
            Some(VersionSpec::Latest),
            &record(r#"{"name":"x","type":"string"}"#)
        )
        .unwrap()
        .len()
            == 1
    );
    // A subject level of NONE lets anything through.
    r.set_compatibility(Some("s"), Compatibility::None)
        .await
        .unwrap();
    r.register("s", record(r#"{"name":"q","type":"string"}"#))
        .await
        .unwrap();
    assert_eq!(
        r.compatibility(Some("s"), false).unwrap(),
        Compatibility::None
    );
    assert_eq!(
        r.compatibility(None, false).unwrap(),
        Compatibility::Backward
    );
    assert_eq!(
        r.compatibility(Some("other"), false).unwrap_err().code,
        40408
    );
    assert_eq!(
        r.compatibility(Some("other"), true).unwrap(),
        Compatibility::Backward
    );
}

#[tokio::test]
async fn deletes_follow_confluents_order_soft_then_permanent() {
    let (_, r) = open();
    r.register("d", avro("\"string\"")).await.unwrap();
    r.register("d", avro("[\"null\",\"string\"]"))
        .await
        .unwrap();
    let permanent_first = r.delete_version("d", VersionSpec::Number(1), true).await;
    assert_eq!(permanent_first.unwrap_err().code, 40407);
    assert_eq!(
        r.delete_version("d", VersionSpec::Number(1), false)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        r.delete_version("d", VersionSpec::Number(1), false)
            .await
            .unwrap_err()
            .code,
        40406
    );
    assert_eq!(r.versions("d", false).unwrap(), [2]);
    assert_eq!(r.versions("d", true).unwrap(), [1, 2]);
    // The soft-deleted schema is still served by id (old records need it).
    assert!(r.schema_by_id(1).is_ok());
    assert_eq!(r.delete_subject("d", true).await.unwrap_err().code, 40405);
    assert_eq!(r.delete_subject("d", false).await.unwrap(), [2]);
    assert_eq!(r.delete_subject("d", false).await.unwrap_err().code, 40404);
    assert!(r.subjects("", false).unwrap().is_empty());
    assert_eq!(r.subjects("", true).unwrap(), ["d"]);
    assert_eq!(r.delete_subject("d", true).await.unwrap(), [1, 2]);
    assert_eq!(r.delete_subject("d", false).await.unwrap_err().code, 40401);
    assert_eq!(r.schema_by_id(1).unwrap_err().code, 40403);
    // Registering again after a permanent delete starts at version 1; ids are never
    // handed out twice.
    let v = r.register("d", avro("\"bytes\"")).await.unwrap();
    assert_eq!((v.version, v.schema.id), (1, 3));
}

#[tokio::test]
async fn referenced_versions_cannot_be_deleted() {
    let (_, r) = open();
    r.register(
        "addr",
        avro(r#"{"type":"record","name":"Addr","fields":[{"name":"city","type":"string"}]}"#),
    )
    .await
    .unwrap();
    let user = NewSchema {
        schema: r#"{"type":"record","name":"User","fields":[{"name":"home","type":"Addr"}]}"#
            .into(),
        references: vec![Reference {
            name: "Addr".into(),
            subject: "addr".into(),
            version: 1,
        }],
        ..NewSchema::default()
    };
    let u = r.register("user", user).await.unwrap();
    assert_eq!(
        r.referenced_by("addr", VersionSpec::Number(1)).unwrap(),
        [u.schema.id]
    );
    assert_eq!(
        r.delete_subject("addr", false).await.unwrap_err().code,
        42206
    );
    // A reference to a version that does not exist is an invalid schema.
    let dangling = NewSchema {
        schema: r#"{"type":"record","name":"V","fields":[{"name":"a","type":"Addr"}]}"#.into(),
        references: vec![Reference {
            name: "Addr".into(),
            subject: "addr".into(),
            version: 7,
        }],
        ..NewSchema::default()
    };
    assert_eq!(r.register("v", dangling).await.unwrap_err().code, 42201);
}

#[tokio::test]
async fn a_restart_replays_exactly_what_was_written() {
    let (log, r) = open();
    r.register("a", record(r#"{"name":"x","type":"int"}"#))
        .await
        .unwrap();
    r.register("b", avro("\"string\"")).await.unwrap();
    r.register("b", avro("\"int\"")).await.unwrap_err();
    r.set_compatibility(Some("b"), Compatibility::Full)
        .await
        .unwrap();
    r.set_compatibility(None, Compatibility::Forward)
        .await
        .unwrap();
    r.set_mode(Some("a"), Mode::Readonly, false).await.unwrap();
    r.delete_version("b", VersionSpec::Latest, false)
        .await
        .unwrap();

    let again = log.reopen(Settings::default());
    assert_eq!(again.subjects("", true).unwrap(), ["a", "b"]);
    assert_eq!(again.subjects("", false).unwrap(), ["a"]);
    assert_eq!(
        again.compatibility(Some("b"), false).unwrap(),
        Compatibility::Full
    );
    assert_eq!(
        again.compatibility(None, false).unwrap(),
        Compatibility::Forward
    );
    assert_eq!(again.mode(Some("a"), false).unwrap(), Mode::Readonly);
    assert_eq!(again.schema_by_id(2).unwrap().schema, "\"string\"");
    // Read-only: writes to `a` are refused.
    let e = again.register("a", avro("\"long\"")).await.unwrap_err();
    assert_eq!(e.code, 42205);
    // The next id continues after the largest replayed one.
    let c = again.register("c", avro("\"long\"")).await.unwrap();
    assert_eq!(c.schema.id, 3);
}

#[tokio::test]
async fn a_failing_log_changes_nothing_and_answers_a_store_error() {
    let (log, r) = open();
    log.fail.store(true, Ordering::SeqCst);
    let e = r.register("a", avro("\"int\"")).await.unwrap_err();
    assert_eq!(e.code, 50001);
    assert_eq!(r.subjects("", true).unwrap(), Vec::<String>::new());
    log.fail.store(false, Ordering::SeqCst);
    assert_eq!(r.register("a", avro("\"int\"")).await.unwrap().schema.id, 1);
}

#[tokio::test]
async fn import_mode_takes_ids_and_versions_and_others_refuse_them() {
    let (_, r) = open();
    let with_id = NewSchema {
        id: Some(42),
        version: Some(3),
        ..avro("\"int\"")
    };
    assert_eq!(
        r.register("i", with_id.clone()).await.unwrap_err().code,
        42205
    );
    r.set_mode(None, Mode::Import, false).await.unwrap();
    let v = r.register("i", with_id).await.unwrap();
    assert_eq!((v.schema.id, v.version), (42, 3));
    let clash = NewSchema {
        id: Some(42),
        ..avro("\"long\"")
    };
    assert_eq!(r.register("j", clash).await.unwrap_err().code, 42205);
    r.set_mode(None, Mode::Readwrite, false).await.unwrap();
    // Back in READWRITE, new ids continue after the imported ones.
    assert_eq!(
        r.register("k", avro("\"long\"")).await.unwrap().schema.id,
        43
    );
    // IMPORT needs an empty registry unless forced.
    assert_eq!(
        r.set_mode(None, Mode::Import, false)
            .await
            .unwrap_err()
            .code,
        42205
    );
    r.set_mode(None, Mode::Import, true).await.unwrap();
}

#[tokio::test]
async fn an_unstarted_registry_answers_unavailable() {
    let r = Registry::new(Settings::default());
    assert_eq!(r.subjects("", false).unwrap_err().code, 50003);
    assert_eq!(
        r.register("a", avro("\"int\"")).await.unwrap_err().code,
        50003
    );
}

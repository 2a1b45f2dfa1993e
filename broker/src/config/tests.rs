use super::*;

#[test]
fn precedence_is_defaults_file_env_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("floe.toml");
    std::fs::write(
        &file,
        "num_partitions = 3\nlisten = \"127.0.0.1:1\"\n\"auto.create.topics.enable\" = false\n",
    )
    .unwrap();
    let env = vec![
        ("FLOE_LISTEN".to_string(), "127.0.0.1:2".to_string()),
        ("FLOE_BIN".to_string(), "/not/a/key".to_string()),
    ];
    let flags = vec![("data-dir".to_string(), "/tmp/x y".to_string())];
    let c = Config::load(Some(&file), env, &flags).unwrap();
    assert_eq!(c.num_partitions, 3);
    assert_eq!(c.listen, "127.0.0.1:2");
    assert!(!c.auto_create_topics_enable);
    assert_eq!(c.data_dir, PathBuf::from("/tmp/x y"));
    assert_eq!(c.message_max_bytes, 1_048_588);
}

#[test]
fn storage_io_from_file_env_and_flags() {
    use floe_storage::IoMode;
    assert_eq!(
        Config::load(None, vec![], &[]).unwrap().storage.io,
        IoMode::Auto
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("floe.toml");
    std::fs::write(&file, "[storage]\nio = \"std\"\n").unwrap();
    let c = Config::load(Some(&file), vec![], &[]).unwrap();
    assert_eq!(c.storage.io, IoMode::Std);
    std::fs::write(&file, "storage.io = \"uring\"\n").unwrap();
    let c = Config::load(Some(&file), vec![], &[]).unwrap();
    assert_eq!(c.storage.io, IoMode::Uring);
    let env = vec![("FLOE_STORAGE_IO".to_string(), "uring".to_string())];
    let c = Config::load(Some(&file), env.clone(), &[]).unwrap();
    assert_eq!(c.storage.io, IoMode::Uring);
    let flags = vec![("storage.io".to_string(), "std".to_string())];
    assert_eq!(
        Config::load(Some(&file), env, &flags).unwrap().storage.io,
        IoMode::Std
    );
    let err = Config::load(None, vec![], &[("storage.io".into(), "fast".into())]);
    assert!(err.unwrap_err().to_string().contains("fast"));
    let err = Config::load(None, vec![], &[("storage.nope".into(), "1".into())]);
    assert!(err.unwrap_err().to_string().contains("nope"));
}

#[test]
fn bad_values_are_clear_errors() {
    let err = Config::load(None, vec![], &[("num_partitions".into(), "0".into())]);
    assert!(err.unwrap_err().to_string().contains("num_partitions"));
    let err = Config::load(None, vec![], &[("no_such_key".into(), "1".into())]);
    assert!(err.unwrap_err().to_string().contains("no_such_key"));
    let err = Config::load(None, vec![], &[("num_partitions".into(), "many".into())]);
    assert!(err.is_err());
    let err = Config::load(
        None,
        vec![],
        &[("advertised_listener".into(), "nohost".into())],
    );
    assert!(err.is_err());
}

#[test]
fn queued_max_request_bytes() {
    let c = Config::load(None, vec![], &[]).unwrap();
    assert_eq!(c.request_budget_bytes(), Some(512 * 1024 * 1024));
    let set = |v: &str| {
        Config::load(
            None,
            vec![],
            &[("queued.max.request.bytes".into(), v.into())],
        )
    };
    assert_eq!(set("-1").unwrap().request_budget_bytes(), None);
    assert_eq!(
        set("1048576").unwrap().request_budget_bytes(),
        Some(1_048_576)
    );
    let env = vec![(
        "FLOE_QUEUED_MAX_REQUEST_BYTES".to_string(),
        "65536".to_string(),
    )];
    let c = Config::load(None, env, &[]).unwrap();
    assert_eq!(c.request_budget_bytes(), Some(65536));
    for bad in ["0", "-2", "1000", "2000000000000"] {
        let err = set(bad).unwrap_err().to_string();
        assert!(err.contains("queued_max_request_bytes"), "{bad}: {err}");
    }
    assert!(set("lots").is_err());
}

#[test]
fn connection_limits() {
    let c = Config::load(None, vec![], &[]).unwrap();
    assert_eq!(
        (c.max_connections, c.max_connections_per_ip),
        (10_000, i32::MAX)
    );
    let c = Config::load(
        None,
        vec![("FLOE_MAX_CONNECTIONS_PER_IP".to_string(), "3".to_string())],
        &[("max.connections".into(), "50".into())],
    )
    .unwrap();
    assert_eq!((c.max_connections, c.max_connections_per_ip), (50, 3));
    for key in ["max.connections", "max_connections_per_ip"] {
        let err = Config::load(None, vec![], &[(key.into(), "0".into())]).unwrap_err();
        assert!(
            err.to_string().contains(&key.replace('.', "_")),
            "{key}: {err}"
        );
    }
}

#[test]
fn connections_max_idle_ms() {
    use std::time::Duration;
    let c = Config::load(None, vec![], &[]).unwrap();
    assert_eq!(c.max_idle(), Some(Duration::from_secs(600)));
    let set = |v: &str| {
        Config::load(
            None,
            vec![],
            &[("connections.max.idle.ms".into(), v.into())],
        )
    };
    assert_eq!(set("-1").unwrap().max_idle(), None);
    assert_eq!(
        set("500").unwrap().max_idle(),
        Some(Duration::from_millis(500))
    );
    for bad in ["0", "-5"] {
        let err = set(bad).unwrap_err().to_string();
        assert!(err.contains("connections_max_idle_ms"), "{bad}: {err}");
    }
}

#[test]
fn secrets_stay_strings_from_the_environment() {
    let env = [
        (
            "FLOE_REMOTE_STORAGE_SECRET_ACCESS_KEY".to_string(),
            "12345".to_string(),
        ),
        (
            "FLOE_TABLEFLOW_S3_ACCESS_KEY_ID".to_string(),
            "true".to_string(),
        ),
        ("FLOE_HTTP_LISTEN".to_string(), "0.0.0.0:9644".to_string()),
        ("FLOE_LOG_FORMAT".to_string(), "json".to_string()),
    ];
    let c = Config::load(None, env, &[]).unwrap();
    assert_eq!(c.remote_storage_secret_access_key.as_deref(), Some("12345"));
    assert_eq!(c.tableflow_s3_access_key_id.as_deref(), Some("true"));
    assert_eq!(c.http_listen, "0.0.0.0:9644");
    assert_eq!(c.log_format, "json");
    let bad = Config::load(None, [("FLOE_LOG_FORMAT".into(), "xml".into())], &[]);
    assert!(bad.unwrap_err().to_string().contains("log_format"));
    let bad = Config::load(None, [("FLOE_HTTP_LISTEN".into(), "nohost".into())], &[]);
    assert!(bad.unwrap_err().to_string().contains("http_listen"));
}

#[test]
fn a_relative_data_dir_is_made_absolute() {
    // The default `floe-data` is relative; the embedded remote store's file:// URL and the
    // catalog's sqlite URI need an absolute path (a relative one stopped the broker).
    let c = Config::load(None, vec![], &[]).unwrap();
    assert!(c.data_dir.is_absolute(), "{}", c.data_dir.display());
    assert!(c.data_dir.ends_with("floe-data"));
    let remote = c.remote_storage();
    assert!(remote.url.starts_with("file:///"), "{}", remote.url);
}

#[test]
fn tableflow_table_defaults_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("floe.toml");
    std::fs::write(
        &path,
        "[tableflow_table_defaults]\n\"table.maintenance.interval.ms\" = \"300000\"\n",
    )
    .unwrap();
    let c = Config::load(Some(&path), vec![], &[]).unwrap();
    let s = c.tableflow_settings();
    assert_eq!(
        s.table_defaults
            .get("table.maintenance.interval.ms")
            .map(String::as_str),
        Some("300000")
    );
    assert_eq!(
        crate::topic_config::effective("table.maintenance.interval.ms", &Default::default(), &c),
        "300000"
    );
    for (body, why) in [
        ("\"table.maintenance.interval.ms\" = \"5\"", "interval"),
        ("\"table.nope\" = \"1\"", "not a table"),
        ("\"table.enable\" = \"true\"", "per topic"),
    ] {
        std::fs::write(&path, format!("[tableflow_table_defaults]\n{body}\n")).unwrap();
        let err = Config::load(Some(&path), vec![], &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains(why) || err.contains("table."), "{body}: {err}");
    }
}

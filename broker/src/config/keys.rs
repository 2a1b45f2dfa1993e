//! Which environment variables are config keys, and how a flat key and a raw value from
//! the environment or the command line become TOML.

use super::Config;

impl Config {
    pub(super) fn is_key(key: &str) -> bool {
        const KEYS: &[&str] = &[
            "storage_io",
            "storage_recovery",
            "storage_scrub_bytes_per_second",
            "storage_scrub_interval_ms",
            "storage_faults",
            "node_id",
            "listen",
            "advertised_listener",
            "data_dir",
            "socket_request_max_bytes",
            "queued_max_request_bytes",
            "connections_max_idle_ms",
            "max_connections",
            "max_connections_per_ip",
            "auto_create_topics_enable",
            "num_partitions",
            "max_partitions_per_topic",
            "max_partitions",
            "log_segment_bytes",
            "log_roll_ms",
            "message_max_bytes",
            "log_index_interval_bytes",
            "log_retention_ms",
            "log_retention_minutes",
            "log_retention_hours",
            "log_retention_check_interval_ms",
            "log_segment_delete_delay_ms",
            "log_cleaner_enable",
            "log_cleaner_dedupe_buffer_size",
            "log_cleaner_io_max_bytes_per_second",
            "log_cleaner_backoff_ms",
            "log_cleaner_min_cleanable_ratio",
            "log_cleaner_min_compaction_lag_ms",
            "log_cleaner_max_compaction_lag_ms",
            "log_cleaner_delete_retention_ms",
            "log_retention_bytes",
            "fetch_max_wait_cap_ms",
            "fetch_session_cache_slots",
            "group_initial_rebalance_delay_ms",
            "group_min_session_timeout_ms",
            "group_max_session_timeout_ms",
            "group_consumer_heartbeat_interval_ms",
            "group_consumer_session_timeout_ms",
            "group_consumer_max_size",
            "group_consumer_assignors",
            "offsets_topic_num_partitions",
            "offsets_topic_segment_bytes",
            "offsets_retention_minutes",
            "offsets_retention_check_interval_ms",
            "offset_metadata_max_bytes",
            "transaction_max_timeout_ms",
            "transaction_state_log_num_partitions",
            "transaction_state_log_segment_bytes",
            "transaction_abort_timed_out_transaction_cleanup_interval_ms",
            "transactional_id_expiration_ms",
            "tableflow_enable",
            "tableflow_catalog_name",
            "tableflow_catalog_uri",
            "tableflow_warehouse",
            "tableflow_namespace",
            "tableflow_target_file_size_bytes",
            "tableflow_s3_endpoint",
            "tableflow_s3_region",
            "tableflow_s3_access_key_id",
            "tableflow_s3_secret_access_key",
            "tableflow_rest_catalog_enable",
            "tableflow_rest_catalog_vend_credentials",
            "tableflow_table_defaults",
            "schema_registry_enable",
            "schema_registry_compatibility",
            "remote_storage_enable",
            "remote_storage_url",
            "remote_storage_endpoint",
            "remote_storage_region",
            "remote_storage_path_style",
            "remote_storage_access_key_id",
            "remote_storage_secret_access_key",
            "remote_storage_request_timeout_ms",
            "log_local_retention_ms",
            "log_local_retention_bytes",
            "log_local_hard_limit_bytes",
            "remote_log_manager_task_interval_ms",
            "remote_log_manager_upload_concurrency",
            "remote_log_manager_copy_max_bytes_per_second",
            "remote_log_reader_cache_bytes",
            "http_listen",
            "metrics_enable",
            "log_format",
            "shutdown_timeout_ms",
            "listeners",
            "advertised_listeners",
            "listener_security_protocol_map",
            "ssl_keystore_location",
            "ssl_key_location",
            "ssl_truststore_location",
            "ssl_client_auth",
            "ssl_principal_mapping_rules",
            "ssl_enabled_protocols",
            "ssl_reload_interval_ms",
            "sasl_enabled_mechanisms",
            "sasl_plain_users_file",
            "sasl_server_max_receive_size",
            "connections_max_reauth_ms",
            "connection_failed_authentication_delay_ms",
            "sasl_oauthbearer_jwks_endpoint_url",
            "sasl_oauthbearer_expected_audience",
            "sasl_oauthbearer_expected_issuer",
            "sasl_oauthbearer_sub_claim_name",
            "sasl_oauthbearer_clock_skew_seconds",
            "authorizer_class_name",
            "super_users",
            "allow_everyone_if_no_acl_found",
            "quota_window_num",
            "quota_window_size_seconds",
        ];
        KEYS.contains(&key)
    }
}

/// Puts a flat key (`storage_io`, from the environment or a flag) where the file would have
/// it: keys of nested tables go into their table (`[storage] io`).
pub(super) fn insert_key(table: &mut toml::Table, key: String, value: toml::Value) {
    if let Some(sub) = key.strip_prefix("storage_") {
        let storage = table
            .entry("storage")
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let toml::Value::Table(storage) = storage {
            storage.insert(sub.to_string(), value);
            return;
        }
    }
    table.insert(key, value);
}

/// Keys whose values are always strings, even when they look like numbers.
const STRING_KEYS: &[&str] = &[
    "listen",
    "http_listen",
    "log_format",
    "advertised_listener",
    "data_dir",
    "storage_io",
    "storage_recovery",
    "storage_faults",
    // Secrets may look like numbers or booleans; they are strings.
    "remote_storage_access_key_id",
    "remote_storage_secret_access_key",
    "tableflow_s3_access_key_id",
    "tableflow_s3_secret_access_key",
    "listeners",
    "advertised_listeners",
    "listener_security_protocol_map",
    "ssl_keystore_location",
    "ssl_key_location",
    "ssl_truststore_location",
    "ssl_client_auth",
    "ssl_principal_mapping_rules",
    "ssl_enabled_protocols",
    "sasl_enabled_mechanisms",
    "sasl_plain_users_file",
    "sasl_oauthbearer_jwks_endpoint_url",
    "sasl_oauthbearer_expected_audience",
    "sasl_oauthbearer_expected_issuer",
    "sasl_oauthbearer_sub_claim_name",
    "authorizer_class_name",
    "super_users",
];

pub(super) fn value_for(key: &str, raw: &str) -> toml::Value {
    if STRING_KEYS.contains(&key) {
        toml::Value::String(raw.to_string())
    } else {
        literal(raw)
    }
}

/// A value from the environment or the command line: a TOML literal if it parses as one
/// (`42`, `true`), otherwise the string itself (`127.0.0.1:9092`, `/var/lib/floe`).
fn literal(value: &str) -> toml::Value {
    format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()))
}

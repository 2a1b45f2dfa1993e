//! Tableflow's part of the broker config: the settings handed to the `tableflow` crate and
//! the REST catalog, and the check of `tableflow_table_defaults`.

use super::Config;

impl Config {
    /// Tableflow's settings: the embedded defaults under the data directory, overridden by
    /// the `tableflow_*` keys.
    pub fn tableflow_settings(&self) -> floe_tableflow::TableflowSettings {
        let mut s = floe_tableflow::TableflowSettings::embedded(&self.data_dir);
        s.enabled = self.tableflow_enable;
        s.catalog_name = self.tableflow_catalog_name.clone();
        if let Some(uri) = &self.tableflow_catalog_uri {
            s.catalog_uri = uri.clone();
        }
        if let Some(w) = &self.tableflow_warehouse {
            s.warehouse = w.clone();
        }
        s.namespace = self.tableflow_namespace.clone();
        s.target_file_size_bytes = self.tableflow_target_file_size_bytes;
        s.table_defaults = self.tableflow_table_defaults.clone();
        for (key, value) in [
            ("s3.endpoint", &self.tableflow_s3_endpoint),
            ("s3.region", &self.tableflow_s3_region),
            ("s3.access-key-id", &self.tableflow_s3_access_key_id),
            ("s3.secret-access-key", &self.tableflow_s3_secret_access_key),
        ] {
            if let Some(v) = value {
                s.storage_props.insert(key.to_string(), v.clone());
            }
        }
        if self.tableflow_s3_endpoint.is_some() {
            // Local S3 servers (moto, s3s-fs, MinIO) serve buckets by path, not by host name.
            s.storage_props
                .insert("s3.path-style-access".to_string(), "true".to_string());
        }
        s
    }

    /// The Iceberg REST catalog's settings (`tableflow_rest_catalog_*`).
    pub fn rest_catalog_options(&self) -> floe_tableflow::rest::RestCatalogOptions {
        floe_tableflow::rest::RestCatalogOptions {
            enabled: self.tableflow_rest_catalog_enable,
            vend_credentials: self.tableflow_rest_catalog_vend_credentials,
        }
    }

    /// `tableflow_table_defaults` holds only `table.*` configs that may be broker-wide, with
    /// valid values.
    pub(super) fn validate_tableflow(&self) -> Result<(), String> {
        for (key, value) in &self.tableflow_table_defaults {
            if !floe_tableflow::is_table_config(key) {
                return Err(format!(
                    "tableflow_table_defaults: {key} is not a table.* topic config"
                ));
            }
            // Per-topic by nature: a default would enable, name or type every topic's table.
            if [
                "table.enable",
                "table.name",
                "table.json.schema",
                "table.mode",
                "table.schema.subject",
            ]
            .contains(&key.as_str())
            {
                return Err(format!(
                    "tableflow_table_defaults: {key} can only be set per topic"
                ));
            }
            if let Err(e) = floe_tableflow::validate(key, value) {
                return Err(format!("tableflow_table_defaults: {e}"));
            }
        }
        Ok(())
    }
}

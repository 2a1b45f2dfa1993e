//! `GET /v1/config` and the storage settings engines need to read the warehouse: the
//! warehouse location and, for an S3 warehouse, its endpoint, region and addressing style;
//! the access keys only when the broker is told to vend them.

use std::collections::BTreeMap;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::error::{RestError, json_response};
use super::{Rest, request};

/// The endpoints this catalog serves, as `GET /v1/config` lists them. Writes are listed:
/// they are served, and refused with 403 (a client that finds an endpoint missing refuses
/// the call itself with a message that does not say why).
pub const ENDPOINTS: &[&str] = &[
    "GET /v1/{prefix}/namespaces",
    "POST /v1/{prefix}/namespaces",
    "GET /v1/{prefix}/namespaces/{namespace}",
    "HEAD /v1/{prefix}/namespaces/{namespace}",
    "DELETE /v1/{prefix}/namespaces/{namespace}",
    "POST /v1/{prefix}/namespaces/{namespace}/properties",
    "GET /v1/{prefix}/namespaces/{namespace}/tables",
    "POST /v1/{prefix}/namespaces/{namespace}/tables",
    "GET /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "HEAD /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "POST /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "DELETE /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "GET /v1/{prefix}/namespaces/{namespace}/tables/{table}/credentials",
    "POST /v1/{prefix}/namespaces/{namespace}/tables/{table}/metrics",
    "POST /v1/{prefix}/namespaces/{namespace}/register",
    "POST /v1/{prefix}/tables/rename",
    "POST /v1/{prefix}/transactions/commit",
    "GET /v1/{prefix}/namespaces/{namespace}/views",
    "POST /v1/{prefix}/namespaces/{namespace}/views",
    "GET /v1/{prefix}/namespaces/{namespace}/views/{view}",
    "HEAD /v1/{prefix}/namespaces/{namespace}/views/{view}",
    "POST /v1/{prefix}/namespaces/{namespace}/views/{view}",
    "DELETE /v1/{prefix}/namespaces/{namespace}/views/{view}",
    "POST /v1/{prefix}/views/rename",
];

/// Storage properties handed to engines (catalog defaults, a loaded table's `config`):
/// the S3 endpoint, region and path-style addressing of an S3 warehouse, plus its access
/// keys when `secrets` is set (see [`vends`]). Empty for a local warehouse.
pub fn storage_properties(rest: &Rest, secrets: bool) -> BTreeMap<String, String> {
    let settings = &rest.settings;
    let mut out = BTreeMap::new();
    if !is_s3(&settings.warehouse) {
        return out;
    }
    let props = &settings.storage_props;
    for key in ["s3.endpoint", "s3.region", "s3.path-style-access"] {
        if let Some(v) = props.get(key) {
            out.insert(key.to_string(), v.clone());
        }
    }
    if let Some(region) = props.get("s3.region") {
        // The Java S3FileIO's name for the region.
        out.insert("client.region".to_string(), region.clone());
    }
    if secrets {
        for key in [
            "s3.access-key-id",
            "s3.secret-access-key",
            "s3.session-token",
        ] {
            if let Some(v) = props.get(key) {
                out.insert(key.to_string(), v.clone());
            }
        }
    }
    out
}

/// Whether the warehouse is in S3 (or an S3-compatible store).
pub fn is_s3(warehouse: &str) -> bool {
    warehouse.starts_with("s3://") || warehouse.starts_with("s3a://")
}

/// Whether access keys are handed out with loaded tables: the broker allows it
/// (`tableflow_rest_catalog_vend_credentials`) and the warehouse is in S3 with keys set.
pub fn vends(rest: &Rest) -> bool {
    rest.options.vend_credentials
        && is_s3(&rest.settings.warehouse)
        && rest.settings.storage_props.contains_key("s3.access-key-id")
}

/// `GET /v1/config?warehouse=...`: the catalog's defaults and the endpoints it serves.
/// `warehouse` may be absent, the catalog's name or the warehouse location.
pub async fn get_config(State(rest): State<Rest>, RawQuery(raw): RawQuery) -> Response {
    let q = request::query(raw.as_deref());
    let settings = &rest.settings;
    if let Some(w) = q.get("warehouse").map(|w| w.trim_end_matches('/'))
        && !w.is_empty()
        && w != settings.catalog_name
        && w != settings.warehouse.trim_end_matches('/')
    {
        return axum::response::IntoResponse::into_response(RestError::bad_request(format!(
            "unknown warehouse {w:?}: this catalog serves warehouse {:?} (location {})",
            settings.catalog_name, settings.warehouse
        )));
    }
    // Never the keys here: those go only with a loaded table, when vending is on.
    let mut defaults = storage_properties(&rest, false);
    defaults.insert("warehouse".to_string(), settings.warehouse.clone());
    let body = serde_json::json!({
        "defaults": defaults,
        "overrides": {},
        "endpoints": ENDPOINTS,
    });
    json_response(StatusCode::OK, &body)
}

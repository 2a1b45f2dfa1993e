//! Tables: list, load (metadata location, metadata and the storage settings to read it),
//! exists, credentials, and the scan reports engines send after reading.

use std::collections::BTreeMap;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use iceberg::TableIdent;
use iceberg::table::Table;

use super::error::{RestError, from_iceberg, json_response, json_text_response};
use super::{Rest, config, namespaces, path_error, request, respond};

/// `GET /v1/namespaces/{namespace}/tables?pageToken=&pageSize=`.
pub async fn list(
    State(rest): State<Rest>,
    path: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> Response {
    respond(list_inner(rest, path, raw).await)
}

async fn list_inner(
    rest: Rest,
    path: Result<Path<String>, PathRejection>,
    raw: Option<String>,
) -> Result<Response, RestError> {
    let Path(segment) = path.map_err(path_error)?;
    let ns = request::namespace(&segment)?;
    let page = request::Page::from_query(&request::query(raw.as_deref()))?;
    namespaces::require(&rest, &ns).await?;
    let catalog = rest.catalog.get().await?;
    let tables = catalog
        .list_tables(&ns)
        .await
        .map_err(|e| from_iceberg("list tables", &e))?;
    let items = tables
        .into_iter()
        .map(|t| {
            let id = serde_json::json!({
                "namespace": t.namespace().as_ref(),
                "name": t.name(),
            });
            (t.name().to_string(), id)
        })
        .collect();
    let (identifiers, next) = page.apply(items);
    let mut body = serde_json::json!({ "identifiers": identifiers });
    if let Some(token) = next {
        body["next-page-token"] = token.into();
    }
    Ok(json_response(StatusCode::OK, &body))
}

/// Which snapshots a loaded table's metadata lists (`snapshots=all|refs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Snapshots {
    All,
    /// Only those a branch or tag points at: a table committed every few seconds keeps
    /// many snapshots that a reader of the current state does not need.
    Refs,
}

/// `GET /v1/namespaces/{namespace}/tables/{table}?snapshots=all|refs`.
pub async fn load(
    State(rest): State<Rest>,
    path: Result<Path<(String, String)>, PathRejection>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    respond(load_inner(rest, path, raw, headers).await)
}

async fn load_inner(
    rest: Rest,
    path: Result<Path<(String, String)>, PathRejection>,
    raw: Option<String>,
    headers: HeaderMap,
) -> Result<Response, RestError> {
    let Path((segment, name)) = path.map_err(path_error)?;
    let ident = request::table(&segment, &name)?;
    let q = request::query(raw.as_deref());
    let mode = match q.get("snapshots").map(String::as_str) {
        None | Some("") | Some("all") => Snapshots::All,
        Some("refs") => Snapshots::Refs,
        Some(other) => {
            return Err(RestError::bad_request(format!(
                "snapshots must be all or refs, not {other:?}"
            )));
        }
    };
    let table = load_table(&rest, &ident).await?;
    let location = table
        .metadata_location()
        .ok_or_else(|| RestError::internal(format!("table {ident} has no metadata location")))?
        .to_string();
    let etag = etag(&location, mode);
    if if_none_match(&headers, &etag) {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        insert_etag(&mut response, &etag);
        return Ok(response);
    }
    // The table's `config` carries the warehouse's settings only together with its keys:
    // engines such as DuckDB make a storage secret of whatever it holds, and one without
    // keys would shadow the credentials the user configured. Without vending, the
    // endpoint, region and addressing come from `GET /v1/config`'s defaults.
    let vend = config::vends(&rest);
    let storage = if vend {
        config::storage_properties(&rest, true)
    } else {
        BTreeMap::new()
    };
    let credentials = vend.then(|| {
        serde_json::json!([{
            "prefix": rest.settings.warehouse,
            "config": storage.clone(),
        }])
    });
    let metadata = table.metadata_ref();
    // A table's metadata grows with its snapshots: serialized off the runtime's workers.
    let text = tokio::task::spawn_blocking(move || -> Result<String, String> {
        let mut metadata = serde_json::to_value(&*metadata).map_err(|e| e.to_string())?;
        if mode == Snapshots::Refs {
            keep_referenced_snapshots(&mut metadata);
        }
        let mut body = serde_json::json!({
            "metadata-location": location,
            "metadata": metadata,
            "config": storage,
        });
        if let Some(credentials) = credentials {
            body["storage-credentials"] = credentials;
        }
        serde_json::to_string(&body).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| RestError::internal(format!("serializing table metadata failed: {e}")))?
    .map_err(|e| RestError::internal(format!("serializing table metadata: {e}")))?;
    let mut response = json_text_response(StatusCode::OK, text);
    insert_etag(&mut response, &etag);
    Ok(response)
}

async fn load_table(rest: &Rest, ident: &TableIdent) -> Result<Table, RestError> {
    let catalog = rest.catalog.get().await?;
    catalog.load_table(ident).await.map_err(|e| match e.kind() {
        iceberg::ErrorKind::TableNotFound => {
            RestError::no_such_table(ident.namespace(), ident.name())
        }
        _ => from_iceberg(&format!("load table {ident}"), &e),
    })
}

/// Drops the snapshots no branch or tag points at from serialized table metadata.
fn keep_referenced_snapshots(metadata: &mut serde_json::Value) {
    let mut keep: Vec<i64> = metadata
        .get("refs")
        .and_then(|r| r.as_object())
        .map(|refs| {
            refs.values()
                .filter_map(|r| r.get("snapshot-id").and_then(|id| id.as_i64()))
                .collect()
        })
        .unwrap_or_default();
    if let Some(id) = metadata
        .get("current-snapshot-id")
        .and_then(|id| id.as_i64())
    {
        keep.push(id);
    }
    if let Some(snapshots) = metadata.get_mut("snapshots").and_then(|s| s.as_array_mut()) {
        snapshots.retain(|s| {
            s.get("snapshot-id")
                .and_then(|id| id.as_i64())
                .is_some_and(|id| keep.contains(&id))
        });
    }
}

/// The entity tag of a load answer: a new metadata file is a new version of the table.
fn etag(location: &str, mode: Snapshots) -> String {
    // FNV-1a: stable across runs and builds, unlike std's hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in location.bytes().chain([mode as u8]) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("\"{h:016x}\"")
}

fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

fn insert_etag(response: &mut Response, etag: &str) {
    if let Ok(v) = HeaderValue::from_str(etag) {
        response.headers_mut().insert(header::ETAG, v);
    }
}

/// `HEAD /v1/namespaces/{namespace}/tables/{table}`: 204 if it exists, else 404.
pub async fn exists(
    State(rest): State<Rest>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    respond(exists_inner(rest, path).await)
}

async fn exists_inner(
    rest: Rest,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, RestError> {
    existing_table(&rest, path).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The table a request's path names, or the spec's 404 when it does not exist.
async fn existing_table(
    rest: &Rest,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<iceberg::TableIdent, RestError> {
    let Path((segment, name)) = path.map_err(path_error)?;
    let ident = request::table(&segment, &name)?;
    let catalog = rest.catalog.get().await?;
    if catalog
        .table_exists(&ident)
        .await
        .map_err(|e| from_iceberg("look up table", &e))?
    {
        Ok(ident)
    } else {
        Err(RestError::no_such_table(ident.namespace(), ident.name()))
    }
}

/// `GET /v1/namespaces/{namespace}/tables/{table}/credentials`: the warehouse's access keys
/// when vending is on, else none.
pub async fn credentials(
    State(rest): State<Rest>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    respond(credentials_inner(rest, path).await)
}

async fn credentials_inner(
    rest: Rest,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, RestError> {
    existing_table(&rest, path).await?;
    let credentials: Vec<serde_json::Value> = if config::vends(&rest) {
        let props: BTreeMap<String, String> = config::storage_properties(&rest, true);
        vec![serde_json::json!({ "prefix": rest.settings.warehouse, "config": props })]
    } else {
        Vec::new()
    };
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "storage-credentials": credentials }),
    ))
}

/// `POST /v1/namespaces/{namespace}/tables/{table}/metrics`: the scan and commit reports
/// engines send. Reading a table is not a write: accepted and dropped (the body is read,
/// so the connection stays usable for the client's next request, and not looked at).
pub async fn report_metrics(_body: axum::body::Bytes) -> Response {
    StatusCode::NO_CONTENT.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_mode_keeps_referenced_snapshots() {
        let mut m = serde_json::json!({
            "current-snapshot-id": 3,
            "refs": {"main": {"snapshot-id": 3, "type": "branch"}, "t": {"snapshot-id": 1, "type": "tag"}},
            "snapshots": [{"snapshot-id": 1}, {"snapshot-id": 2}, {"snapshot-id": 3}],
        });
        keep_referenced_snapshots(&mut m);
        assert_eq!(
            m["snapshots"],
            serde_json::json!([{"snapshot-id": 1}, {"snapshot-id": 3}])
        );
    }

    #[test]
    fn entity_tags() {
        let a = etag("file:///w/t/metadata/1.json", Snapshots::All);
        assert_eq!(a, etag("file:///w/t/metadata/1.json", Snapshots::All));
        assert_ne!(a, etag("file:///w/t/metadata/2.json", Snapshots::All));
        assert_ne!(a, etag("file:///w/t/metadata/1.json", Snapshots::Refs));
        let mut h = HeaderMap::new();
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_str(&format!("\"x\", W/{a}")).unwrap(),
        );
        assert!(if_none_match(&h, &a));
        assert!(!if_none_match(&HeaderMap::new(), &a));
    }
}

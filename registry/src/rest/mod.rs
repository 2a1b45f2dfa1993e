//! Confluent Schema Registry's REST API, as clients use it: confluent-kafka's
//! `SchemaRegistryClient` and serializers, the Java `CachedSchemaRegistryClient`, kafkajs'
//! registry package. The broker serves [`router`] at the root of its HTTP listener, so the
//! registry's URL is `http://<http_listen>` (`docs/schema-registry.md`).
//!
//! Routes by concept: [`subjects`] (subjects, versions, registration, lookup, deletes),
//! [`schemas`] (schemas by id, types, the listing), [`compatibility`] (checks without
//! registering), [`config`] (compatibility levels and modes). Errors are
//! [`crate::error::RegistryError`]s with Confluent's codes.

pub mod compatibility;
pub mod config;
pub mod schemas;
pub mod subjects;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::error::{CONTENT_TYPE, RegistryError};
use crate::registry::{NewSchema, Registry, SubjectVersion};
use crate::schema::{Parsed, Reference, SchemaType};
use crate::state::StoredSchema;

/// The registry's routes.
pub fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/schemas", get(schemas::list))
        .route("/schemas/types", get(schemas::types))
        .route("/schemas/ids/{id}", get(schemas::by_id))
        .route("/schemas/ids/{id}/schema", get(schemas::raw_by_id))
        .route("/schemas/ids/{id}/subjects", get(schemas::subjects_of_id))
        .route("/schemas/ids/{id}/versions", get(schemas::versions_of_id))
        .route("/subjects", get(subjects::list))
        .route(
            "/subjects/{subject}",
            post(subjects::lookup).delete(subjects::delete),
        )
        .route(
            "/subjects/{subject}/versions",
            get(subjects::versions).post(subjects::register),
        )
        .route(
            "/subjects/{subject}/versions/{version}",
            get(subjects::version).delete(subjects::delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(subjects::raw_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/referencedby",
            get(subjects::referenced_by),
        )
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(compatibility::against_all),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(compatibility::against_version),
        )
        .route(
            "/config",
            get(config::get_global)
                .put(config::put_global)
                .delete(config::delete_global),
        )
        .route(
            "/config/{subject}",
            get(config::get_subject)
                .put(config::put_subject)
                .delete(config::delete_subject),
        )
        .route(
            "/mode",
            get(config::get_global_mode).put(config::put_global_mode),
        )
        .route(
            "/mode/{subject}",
            get(config::get_subject_mode)
                .put(config::put_subject_mode)
                .delete(config::delete_subject_mode),
        )
        .route("/contexts", get(contexts))
        .with_state(registry)
}

/// The routes nested where the broker also serves its own paths: every path the registry
/// does not know answers a registry 404.
pub async fn not_found(uri: Uri) -> Response {
    RegistryError::no_route(uri.path()).into_response()
}

async fn root() -> Response {
    ok(serde_json::json!({}))
}

async fn contexts() -> Response {
    ok(serde_json::json!(["."]))
}

/// A JSON answer with the registry's media type.
pub fn ok(body: serde_json::Value) -> Response {
    let mut response = (StatusCode::OK, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

/// A schema text alone (the `/schema` endpoints).
pub fn raw(text: String) -> Response {
    let mut response = (StatusCode::OK, text).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

/// A handler's result.
pub type Answer = Result<Response, RegistryError>;

/// The query string's parameters.
pub fn query(raw: Option<&str>) -> HashMap<String, String> {
    raw.map(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    })
    .unwrap_or_default()
}

/// A boolean query parameter (absent: false).
pub fn flag(q: &HashMap<String, String>, name: &str) -> Result<bool, RegistryError> {
    match q.get(name).map(String::as_str) {
        None | Some("") => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(RegistryError::bad_request(format!(
            "query parameter {name} must be true or false, not {v:?}"
        ))),
    }
}

/// `offset` and `limit` of a listing applied to `items`.
pub fn page<T>(q: &HashMap<String, String>, items: Vec<T>) -> Result<Vec<T>, RegistryError> {
    let number = |name: &str, default: i64| -> Result<i64, RegistryError> {
        match q.get(name).map(String::as_str) {
            None | Some("") => Ok(default),
            Some(v) => v.parse::<i64>().map_err(|_| {
                RegistryError::bad_request(format!("query parameter {name} must be an integer"))
            }),
        }
    };
    let offset = usize::try_from(number("offset", 0)?.max(0)).unwrap_or(usize::MAX);
    let limit = number("limit", -1)?;
    let items = items.into_iter().skip(offset);
    Ok(if limit < 0 {
        items.collect()
    } else {
        items
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .collect()
    })
}

/// The body of a registration, lookup or compatibility check.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaBody {
    schema: Option<String>,
    schema_type: Option<String>,
    #[serde(default)]
    references: Option<Vec<Reference>>,
    id: Option<i32>,
    version: Option<i32>,
    metadata: Option<serde_json::Value>,
    rule_set: Option<serde_json::Value>,
}

/// Reads a schema request body.
pub fn schema_body(body: &[u8]) -> Result<NewSchema, RegistryError> {
    let body: SchemaBody = serde_json::from_slice(body)
        .map_err(|e| RegistryError::bad_request(format!("malformed request body: {e}")))?;
    let schema = body
        .schema
        .ok_or_else(|| RegistryError::invalid_schema("(the request has no \"schema\")"))?;
    let schema_type = match body.schema_type.as_deref() {
        None | Some("") => SchemaType::Avro,
        Some(t) => SchemaType::parse(t).ok_or_else(|| {
            RegistryError::invalid_schema(format!("type {t:?}: unknown schema type"))
        })?,
    };
    for (what, value) in [("metadata", &body.metadata), ("ruleSet", &body.rule_set)] {
        let empty = match value {
            None | Some(serde_json::Value::Null) => true,
            Some(serde_json::Value::Object(o)) => o.values().all(|v| {
                v.is_null()
                    || v.as_object().is_some_and(|o| o.is_empty())
                    || v.as_array().is_some_and(|a| a.is_empty())
            }),
            Some(_) => false,
        };
        if !empty {
            return Err(RegistryError::invalid_schema(format!(
                "with {what}: data contracts (metadata and rule sets) are not supported by this registry"
            )));
        }
    }
    Ok(NewSchema {
        schema,
        schema_type,
        references: body.references.unwrap_or_default(),
        id: body.id,
        version: body.version,
    })
}

/// The text of a schema as a request asks for it: Protobuf as `.proto` text, or with
/// `format=serialized` as a base64 `FileDescriptorProto`; other types as registered.
pub fn schema_text(
    registry: &Registry,
    stored: &StoredSchema,
    format: Option<&str>,
) -> Result<String, RegistryError> {
    if stored.schema_type != SchemaType::Protobuf {
        return Ok(stored.schema.clone());
    }
    let parsed = registry.parsed(stored.id)?;
    let Parsed::Protobuf(proto) = &*parsed else {
        return Ok(stored.schema.clone());
    };
    Ok(match format {
        Some(f) if f.eq_ignore_ascii_case("serialized") => proto.serialized(),
        _ => proto.text(),
    })
}

/// `schema`, `schemaType` (not for Avro) and `references` (when there are some) of a
/// stored schema into `out`.
pub fn schema_fields(
    registry: &Registry,
    stored: &StoredSchema,
    format: Option<&str>,
    out: &mut serde_json::Map<String, serde_json::Value>,
) -> Result<(), RegistryError> {
    if stored.schema_type != SchemaType::Avro {
        out.insert("schemaType".into(), stored.schema_type.as_str().into());
    }
    if !stored.references.is_empty() {
        out.insert(
            "references".into(),
            serde_json::to_value(&stored.references).unwrap_or_default(),
        );
    }
    out.insert(
        "schema".into(),
        schema_text(registry, stored, format)?.into(),
    );
    Ok(())
}

/// A subject's version as the API shows it.
pub fn version_json(
    registry: &Registry,
    v: &SubjectVersion,
    format: Option<&str>,
) -> Result<serde_json::Value, RegistryError> {
    let mut out = serde_json::Map::new();
    out.insert("subject".into(), v.subject.clone().into());
    out.insert("version".into(), v.version.into());
    out.insert("id".into(), v.schema.id.into());
    schema_fields(registry, &v.schema, format, &mut out)?;
    if v.deleted {
        out.insert("deleted".into(), true.into());
    }
    Ok(serde_json::Value::Object(out))
}

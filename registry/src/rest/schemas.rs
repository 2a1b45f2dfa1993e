//! `/schemas`: schemas by global id (what a deserializer asks for each new id it meets),
//! where an id is used, the supported types, and the listing of every version.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};

use super::{Answer, flag, ok, page, query, schema_fields, schema_text, version_json};
use crate::error::RegistryError;
use crate::registry::Registry;

fn id(text: &str) -> Result<i32, RegistryError> {
    text.parse::<i32>()
        .map_err(|_| RegistryError::schema_not_found(format!("{text:?}")))
}

/// `GET /schemas/types`.
pub async fn types() -> Answer {
    Ok(ok(serde_json::json!(["JSON", "PROTOBUF", "AVRO"])))
}

/// `GET /schemas?subjectPrefix=&deleted=&latestOnly=`.
pub async fn list(State(registry): State<Arc<Registry>>, RawQuery(raw): RawQuery) -> Answer {
    let q = query(raw.as_deref());
    let prefix = q.get("subjectPrefix").map(String::as_str).unwrap_or("");
    let versions = registry.all_versions(prefix, flag(&q, "deleted")?, flag(&q, "latestOnly")?)?;
    let items = versions
        .iter()
        .map(|v| version_json(&registry, v, None))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ok(page(&q, items)?.into()))
}

/// `GET /schemas/ids/{id}?format=`: `{schema, schemaType, references}`.
pub async fn by_id(
    State(registry): State<Arc<Registry>>,
    Path(text): Path<String>,
    RawQuery(raw): RawQuery,
) -> Answer {
    let q = query(raw.as_deref());
    let stored = registry.schema_by_id(id(&text)?)?;
    let mut out = serde_json::Map::new();
    schema_fields(
        &registry,
        &stored,
        q.get("format").map(String::as_str),
        &mut out,
    )?;
    Ok(ok(serde_json::Value::Object(out)))
}

/// `GET /schemas/ids/{id}/schema`: the schema text alone.
pub async fn raw_by_id(
    State(registry): State<Arc<Registry>>,
    Path(text): Path<String>,
    RawQuery(raw): RawQuery,
) -> Answer {
    let q = query(raw.as_deref());
    let stored = registry.schema_by_id(id(&text)?)?;
    Ok(super::raw(schema_text(
        &registry,
        &stored,
        q.get("format").map(String::as_str),
    )?))
}

/// `GET /schemas/ids/{id}/subjects?deleted=`.
pub async fn subjects_of_id(
    State(registry): State<Arc<Registry>>,
    Path(text): Path<String>,
    RawQuery(raw): RawQuery,
) -> Answer {
    let q = query(raw.as_deref());
    let mut subjects: Vec<String> = registry
        .id_versions(id(&text)?, flag(&q, "deleted")?)?
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    subjects.dedup();
    Ok(ok(page(&q, subjects)?.into()))
}

/// `GET /schemas/ids/{id}/versions?deleted=`: `[{subject, version}]`.
pub async fn versions_of_id(
    State(registry): State<Arc<Registry>>,
    Path(text): Path<String>,
    RawQuery(raw): RawQuery,
) -> Answer {
    let q = query(raw.as_deref());
    let items: Vec<serde_json::Value> = registry
        .id_versions(id(&text)?, flag(&q, "deleted")?)?
        .into_iter()
        .map(|(subject, version)| serde_json::json!({"subject": subject, "version": version}))
        .collect();
    Ok(ok(page(&q, items)?.into()))
}

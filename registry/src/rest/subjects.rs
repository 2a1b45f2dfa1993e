//! `/subjects`: listing, versions, registration (`POST /subjects/{s}/versions`), lookup
//! (`POST /subjects/{s}`), and soft and permanent deletes.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::IntoResponse;

use super::{Answer, flag, ok, page, query, schema_body, schema_text, version_json};
use crate::registry::{Registry, VersionSpec};

/// `GET /subjects?subjectPrefix=&deleted=`.
pub async fn list(State(registry): State<Arc<Registry>>, RawQuery(raw): RawQuery) -> Answer {
    let q = query(raw.as_deref());
    let prefix = q.get("subjectPrefix").map(String::as_str).unwrap_or("");
    let subjects = registry.subjects(prefix, flag(&q, "deleted")?)?;
    Ok(ok(page(&q, subjects)?.into()))
}

/// `GET /subjects/{s}/versions?deleted=`.
pub async fn versions(
    State(registry): State<Arc<Registry>>,
    Path(subject): Path<String>,
    RawQuery(raw): RawQuery,
) -> Answer {
    let q = query(raw.as_deref());
    let versions = registry.versions(&subject, flag(&q, "deleted")?)?;
    Ok(ok(page(&q, versions)?.into()))
}

/// `POST /subjects/{s}/versions`: `{"id": N}` of the registered (or already present)
/// schema.
pub async fn register(
    State(registry): State<Arc<Registry>>,
    Path(subject): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Answer {
    let q = query(raw.as_deref());
    // `normalize`: schemas are always compared by their canonical form.
    flag(&q, "normalize")?;
    let new = schema_body(&body)?;
    let v = registry.register(&subject, new).await?;
    Ok(ok(serde_json::json!({
        "id": v.schema.id,
        "version": v.version,
    })))
}

/// `POST /subjects/{s}?deleted=`: the version of the subject holding this schema.
pub async fn lookup(
    State(registry): State<Arc<Registry>>,
    Path(subject): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Answer {
    let q = query(raw.as_deref());
    flag(&q, "normalize")?;
    let new = schema_body(&body)?;
    let v = registry.lookup(&subject, &new, flag(&q, "deleted")?)?;
    Ok(ok(version_json(&registry, &v, None)?))
}

/// `DELETE /subjects/{s}?permanent=`: the versions deleted.
pub async fn delete(
    State(registry): State<Arc<Registry>>,
    Path(subject): Path<String>,
    RawQuery(raw): RawQuery,
) -> Answer {
    let q = query(raw.as_deref());
    let deleted = registry
        .delete_subject(&subject, flag(&q, "permanent")?)
        .await?;
    Ok(ok(deleted.into()))
}

/// `GET /subjects/{s}/versions/{v}?deleted=&format=`.
pub async fn version(
    State(registry): State<Arc<Registry>>,
    Path((subject, version)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Answer {
    let q = query(raw.as_deref());
    let spec = VersionSpec::parse(&version)?;
    let v = registry.version(&subject, spec, flag(&q, "deleted")?)?;
    Ok(ok(version_json(
        &registry,
        &v,
        q.get("format").map(String::as_str),
    )?))
}

/// `GET /subjects/{s}/versions/{v}/schema`: the schema text alone.
pub async fn raw_version(
    State(registry): State<Arc<Registry>>,
    Path((subject, version)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Answer {
    let q = query(raw.as_deref());
    let spec = VersionSpec::parse(&version)?;
    let v = registry.version(&subject, spec, flag(&q, "deleted")?)?;
    let text = schema_text(&registry, &v.schema, q.get("format").map(String::as_str))?;
    Ok(super::raw(text))
}

/// `GET /subjects/{s}/versions/{v}/referencedby`: ids of schemas referencing it.
pub async fn referenced_by(
    State(registry): State<Arc<Registry>>,
    Path((subject, version)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Answer {
    let q = query(raw.as_deref());
    let spec = VersionSpec::parse(&version)?;
    let ids = registry.referenced_by(&subject, spec)?;
    Ok(ok(page(&q, ids)?.into()))
}

/// `DELETE /subjects/{s}/versions/{v}?permanent=`: the version deleted.
pub async fn delete_version(
    State(registry): State<Arc<Registry>>,
    Path((subject, version)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Answer {
    let q = query(raw.as_deref());
    let spec = VersionSpec::parse(&version)?;
    let deleted = registry
        .delete_version(&subject, spec, flag(&q, "permanent")?)
        .await?;
    Ok(ok(deleted.into()).into_response())
}

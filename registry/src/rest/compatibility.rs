//! `/compatibility`: would a schema be accepted, without registering it.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};

use super::{Answer, flag, ok, query, schema_body};
use crate::registry::{Registry, VersionSpec};

fn answer(errors: Vec<String>, verbose: bool) -> Answer {
    let mut body = serde_json::json!({ "is_compatible": errors.is_empty() });
    if verbose {
        body["messages"] = errors.into();
    }
    Ok(ok(body))
}

/// `POST /compatibility/subjects/{s}/versions/{v}?verbose=`: against that one version.
pub async fn against_version(
    State(registry): State<Arc<Registry>>,
    Path((subject, version)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Answer {
    let q = query(raw.as_deref());
    let spec = VersionSpec::parse(&version)?;
    let new = schema_body(&body)?;
    let errors = registry.compatibility_errors(&subject, Some(spec), &new)?;
    answer(errors, flag(&q, "verbose")?)
}

/// `POST /compatibility/subjects/{s}/versions?verbose=`: against the versions the
/// subject's level checks (none for a new subject: compatible).
pub async fn against_all(
    State(registry): State<Arc<Registry>>,
    Path(subject): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Answer {
    let q = query(raw.as_deref());
    let new = schema_body(&body)?;
    let errors = registry.compatibility_errors(&subject, None, &new)?;
    answer(errors, flag(&q, "verbose")?)
}

//! `/config` (compatibility levels) and `/mode` (read-write, read-only, import), global and
//! per subject.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use serde::Deserialize;

use super::{Answer, flag, ok, query};
use crate::compat::{Compatibility, Mode};
use crate::error::RegistryError;
use crate::registry::Registry;

#[derive(Deserialize)]
struct ConfigBody {
    compatibility: Option<String>,
    #[serde(rename = "compatibilityLevel")]
    compatibility_level: Option<String>,
}

fn level_of(body: &[u8]) -> Result<Compatibility, RegistryError> {
    let body: ConfigBody = serde_json::from_slice(body)
        .map_err(|e| RegistryError::bad_request(format!("malformed request body: {e}")))?;
    let name = body
        .compatibility
        .or(body.compatibility_level)
        .ok_or_else(|| RegistryError::invalid_compatibility(""))?;
    Compatibility::parse(&name).ok_or_else(|| RegistryError::invalid_compatibility(&name))
}

#[derive(Deserialize)]
struct ModeBody {
    mode: Option<String>,
}

fn mode_of(body: &[u8]) -> Result<Mode, RegistryError> {
    let body: ModeBody = serde_json::from_slice(body)
        .map_err(|e| RegistryError::bad_request(format!("malformed request body: {e}")))?;
    let name = body.mode.unwrap_or_default();
    Mode::parse(&name).ok_or_else(|| RegistryError::invalid_mode(&name))
}

fn level_answer(level: Compatibility) -> Answer {
    Ok(ok(
        serde_json::json!({ "compatibilityLevel": level.as_str() }),
    ))
}

/// `GET /config`.
pub async fn get_global(State(registry): State<Arc<Registry>>) -> Answer {
    level_answer(registry.compatibility(None, true)?)
}

/// `PUT /config`: `{"compatibility": LEVEL}`.
pub async fn put_global(State(registry): State<Arc<Registry>>, body: Bytes) -> Answer {
    let level = level_of(&body)?;
    registry.set_compatibility(None, level).await?;
    Ok(ok(serde_json::json!({ "compatibility": level.as_str() })))
}

/// `DELETE /config`: back to the broker's default; answers the level removed.
pub async fn delete_global(State(registry): State<Arc<Registry>>) -> Answer {
    level_answer(registry.delete_compatibility(None).await?)
}

/// `GET /config/{s}?defaultToGlobal=`.
pub async fn get_subject(
    State(registry): State<Arc<Registry>>,
    Path(subject): Path<String>,
    RawQuery(raw): RawQuery,
) -> Answer {
    let q = query(raw.as_deref());
    level_answer(registry.compatibility(Some(&subject), flag(&q, "defaultToGlobal")?)?)
}

/// `PUT /config/{s}`.
pub async fn put_subject(
    State(registry): State<Arc<Registry>>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Answer {
    let level = level_of(&body)?;
    registry.set_compatibility(Some(&subject), level).await?;
    Ok(ok(serde_json::json!({ "compatibility": level.as_str() })))
}

/// `DELETE /config/{s}`: answers the level removed.
pub async fn delete_subject(
    State(registry): State<Arc<Registry>>,
    Path(subject): Path<String>,
) -> Answer {
    level_answer(registry.delete_compatibility(Some(&subject)).await?)
}

fn mode_answer(mode: Mode) -> Answer {
    Ok(ok(serde_json::json!({ "mode": mode.as_str() })))
}

/// `GET /mode`.
pub async fn get_global_mode(State(registry): State<Arc<Registry>>) -> Answer {
    mode_answer(registry.mode(None, true)?)
}

/// `PUT /mode?force=`.
pub async fn put_global_mode(
    State(registry): State<Arc<Registry>>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Answer {
    let q = query(raw.as_deref());
    let mode = mode_of(&body)?;
    registry.set_mode(None, mode, flag(&q, "force")?).await?;
    mode_answer(mode)
}

/// `GET /mode/{s}?defaultToGlobal=`.
pub async fn get_subject_mode(
    State(registry): State<Arc<Registry>>,
    Path(subject): Path<String>,
    RawQuery(raw): RawQuery,
) -> Answer {
    let q = query(raw.as_deref());
    mode_answer(registry.mode(Some(&subject), flag(&q, "defaultToGlobal")?)?)
}

/// `PUT /mode/{s}?force=`.
pub async fn put_subject_mode(
    State(registry): State<Arc<Registry>>,
    Path(subject): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Answer {
    let q = query(raw.as_deref());
    let mode = mode_of(&body)?;
    registry
        .set_mode(Some(&subject), mode, flag(&q, "force")?)
        .await?;
    mode_answer(mode)
}

/// `DELETE /mode/{s}`: answers the mode removed.
pub async fn delete_subject_mode(
    State(registry): State<Arc<Registry>>,
    Path(subject): Path<String>,
) -> Answer {
    mode_answer(registry.delete_mode(&subject).await?)
}

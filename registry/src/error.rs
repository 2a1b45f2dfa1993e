//! The registry's errors, with Confluent Schema Registry's error codes and HTTP statuses:
//! clients (confluent-kafka's `SchemaRegistryError.error_code`, the Java client's
//! `RestClientException.getErrorCode()`) branch on the code, so each is the one Confluent
//! answers in the same situation. The body is `{"error_code": N, "message": "..."}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (error {code})")]
pub struct RegistryError {
    /// HTTP status.
    pub status: StatusCode,
    /// Confluent's error code.
    pub code: i32,
    /// What went wrong.
    pub message: String,
}

impl RegistryError {
    fn new(status: StatusCode, code: i32, message: impl Into<String>) -> RegistryError {
        RegistryError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 40401.
    pub fn subject_not_found(subject: &str) -> RegistryError {
        RegistryError::new(
            StatusCode::NOT_FOUND,
            40401,
            format!("Subject '{subject}' not found."),
        )
    }

    /// 40402.
    pub fn version_not_found(version: impl std::fmt::Display) -> RegistryError {
        RegistryError::new(
            StatusCode::NOT_FOUND,
            40402,
            format!("Version {version} not found."),
        )
    }

    /// 40403.
    pub fn schema_not_found(what: impl std::fmt::Display) -> RegistryError {
        RegistryError::new(
            StatusCode::NOT_FOUND,
            40403,
            format!("Schema {what} not found"),
        )
    }

    /// 40404.
    pub fn subject_soft_deleted(subject: &str) -> RegistryError {
        RegistryError::new(
            StatusCode::NOT_FOUND,
            40404,
            format!(
                "Subject '{subject}' was soft deleted.Set permanent=true to delete permanently"
            ),
        )
    }

    /// 40405.
    pub fn subject_not_soft_deleted(subject: &str) -> RegistryError {
        RegistryError::new(
            StatusCode::NOT_FOUND,
            40405,
            format!("Subject '{subject}' was not deleted first before being permanently deleted"),
        )
    }

    /// 40406.
    pub fn version_soft_deleted(subject: &str, version: i32) -> RegistryError {
        RegistryError::new(
            StatusCode::NOT_FOUND,
            40406,
            format!(
                "Subject '{subject}' Version {version} was soft deleted.Set permanent=true to delete permanently"
            ),
        )
    }

    /// 40407.
    pub fn version_not_soft_deleted(subject: &str, version: i32) -> RegistryError {
        RegistryError::new(
            StatusCode::NOT_FOUND,
            40407,
            format!(
                "Subject '{subject}' Version {version} was not deleted first before being permanently deleted"
            ),
        )
    }

    /// 40408.
    pub fn subject_level_config_not_found(subject: &str) -> RegistryError {
        RegistryError::new(
            StatusCode::NOT_FOUND,
            40408,
            format!("Subject '{subject}' does not have subject-level compatibility configured"),
        )
    }

    /// 40409.
    pub fn subject_level_mode_not_found(subject: &str) -> RegistryError {
        RegistryError::new(
            StatusCode::NOT_FOUND,
            40409,
            format!("Subject '{subject}' does not have subject-level mode configured"),
        )
    }

    /// 404 for a path the registry does not serve.
    pub fn no_route(path: &str) -> RegistryError {
        RegistryError::new(
            StatusCode::NOT_FOUND,
            404,
            format!("HTTP 404 Not Found: {path}"),
        )
    }

    /// 409: incompatible with earlier versions.
    pub fn incompatible(subject: &str, errors: &[String]) -> RegistryError {
        RegistryError::new(
            StatusCode::CONFLICT,
            409,
            format!(
                "Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{}]",
                errors.join(", ")
            ),
        )
    }

    /// 42201.
    pub fn invalid_schema(message: impl std::fmt::Display) -> RegistryError {
        RegistryError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42201,
            format!("Invalid schema {message}"),
        )
    }

    /// 42202.
    pub fn invalid_version(version: &str) -> RegistryError {
        RegistryError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42202,
            format!(
                "The specified version '{version}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""
            ),
        )
    }

    /// 42203.
    pub fn invalid_compatibility(level: &str) -> RegistryError {
        RegistryError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42203,
            format!(
                "Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive (got '{level}')"
            ),
        )
    }

    /// 42204.
    pub fn invalid_mode(mode: &str) -> RegistryError {
        RegistryError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42204,
            format!(
                "Invalid mode. Valid values are READWRITE, READONLY, READONLY_OVERRIDE and IMPORT (got '{mode}')"
            ),
        )
    }

    /// 42205.
    pub fn not_permitted(message: impl Into<String>) -> RegistryError {
        RegistryError::new(StatusCode::UNPROCESSABLE_ENTITY, 42205, message)
    }

    /// 42206.
    pub fn reference_exists(subject: &str, version: i32, by: &[i32]) -> RegistryError {
        RegistryError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42206,
            format!(
                "One or more references exist to the schema {{subject={subject},version={version}}}: referenced by ids {by:?}"
            ),
        )
    }

    /// 400 (Confluent answers malformed bodies with a plain 400 or 422).
    pub fn bad_request(message: impl Into<String>) -> RegistryError {
        RegistryError::new(StatusCode::BAD_REQUEST, 400, message)
    }

    /// 50001: the `_schemas` topic could not be written.
    pub fn store(message: impl std::fmt::Display) -> RegistryError {
        RegistryError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            50001,
            format!("Error in the backend data store: {message}"),
        )
    }

    /// 50003: the registry is not serving yet (the broker is still starting).
    pub fn unavailable(message: impl Into<String>) -> RegistryError {
        RegistryError::new(StatusCode::SERVICE_UNAVAILABLE, 50003, message)
    }
}

/// The registry's media type.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error_code": self.code, "message": self.message });
        let mut response = (self.status, body.to_string()).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        response
    }
}

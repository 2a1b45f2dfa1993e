//! The REST catalog's errors, answered as the specification's `ErrorModel`:
//! `{"error": {"message": ..., "type": ..., "code": ...}}`. Clients pick their exception from
//! the status code and the `type` (Java's `NoSuchTableException`, pyiceberg's
//! `NoSuchTableError`, ...), so both follow the names the specification uses.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// An error answer of the REST catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestError {
    /// HTTP status (and the model's `code`).
    pub status: StatusCode,
    /// The model's `type`: the exception name clients map it to.
    pub kind: &'static str,
    /// What went wrong, for a person.
    pub message: String,
}

impl RestError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> RestError {
        RestError {
            status,
            kind,
            message: message.into(),
        }
    }

    /// 400: the request cannot be understood (a malformed namespace, page size, ...).
    pub fn bad_request(message: impl Into<String>) -> RestError {
        RestError::new(StatusCode::BAD_REQUEST, "BadRequestException", message)
    }

    /// 403: a write to a catalog whose tables Floe owns.
    pub fn forbidden(message: impl Into<String>) -> RestError {
        RestError::new(StatusCode::FORBIDDEN, "ForbiddenException", message)
    }

    /// 404: no such namespace.
    pub fn no_such_namespace(levels: &[String]) -> RestError {
        RestError::new(
            StatusCode::NOT_FOUND,
            "NoSuchNamespaceException",
            format!("Namespace does not exist: {}", levels.join(".")),
        )
    }

    /// 404: no such table.
    pub fn no_such_table(levels: &[String], table: &str) -> RestError {
        RestError::new(
            StatusCode::NOT_FOUND,
            "NoSuchTableException",
            format!("Table does not exist: {}.{table}", levels.join(".")),
        )
    }

    /// 404: no such view (Floe serves no views).
    pub fn no_such_view(levels: &[String], view: &str) -> RestError {
        RestError::new(
            StatusCode::NOT_FOUND,
            "NoSuchViewException",
            format!(
                "View does not exist: {}.{view} (this catalog serves no views)",
                levels.join(".")
            ),
        )
    }

    /// 404: a path this catalog does not serve.
    pub fn not_found(message: impl Into<String>) -> RestError {
        RestError::new(StatusCode::NOT_FOUND, "NotFoundException", message)
    }

    /// 406: an operation of the specification this catalog does not implement.
    pub fn unsupported(message: impl Into<String>) -> RestError {
        RestError::new(
            StatusCode::NOT_ACCEPTABLE,
            "UnsupportedOperationException",
            message,
        )
    }

    /// 503: the catalog behind the REST API cannot answer now (or tableflow is off).
    pub fn unavailable(message: impl Into<String>) -> RestError {
        RestError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailableException",
            message,
        )
    }

    /// 500: the catalog failed for another reason.
    pub fn internal(message: impl Into<String>) -> RestError {
        RestError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            message,
        )
    }

    /// The `ErrorModel` body.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "code": self.status.as_u16(),
            }
        })
    }
}

impl std::fmt::Display for RestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.kind,
            self.message
        )
    }
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = self.status.as_u16(), kind = self.kind, message = %self.message, "Iceberg REST catalog request failed");
        } else {
            tracing::debug!(status = self.status.as_u16(), kind = self.kind, message = %self.message, "Iceberg REST catalog request refused");
        }
        json_response(self.status, &self.body())
    }
}

/// A JSON answer with `status`.
pub fn json_response(status: StatusCode, value: &serde_json::Value) -> Response {
    json_text_response(status, value.to_string())
}

/// An already serialized JSON answer with `status`.
pub fn json_text_response(status: StatusCode, text: String) -> Response {
    let mut response = (status, text).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Maps an error of the catalog behind the API: the not-found kinds become the
/// specification's 404s, anything else a 500 naming what was being done.
pub fn from_iceberg(what: &str, e: &iceberg::Error) -> RestError {
    match e.kind() {
        iceberg::ErrorKind::NamespaceNotFound => RestError::new(
            StatusCode::NOT_FOUND,
            "NoSuchNamespaceException",
            e.message(),
        ),
        iceberg::ErrorKind::TableNotFound => {
            RestError::new(StatusCode::NOT_FOUND, "NoSuchTableException", e.message())
        }
        _ => RestError::internal(format!("{what}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_model_shape() {
        let e = RestError::no_such_table(&["default".to_string()], "orders");
        assert_eq!(
            e.body(),
            serde_json::json!({"error": {
                "message": "Table does not exist: default.orders",
                "type": "NoSuchTableException",
                "code": 404,
            }})
        );
        assert_eq!(RestError::forbidden("x").status, StatusCode::FORBIDDEN);
        assert_eq!(RestError::forbidden("x").kind, "ForbiddenException");
    }
}

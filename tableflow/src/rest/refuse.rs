//! What this read-only catalog refuses or does not serve: every write (Floe owns the tables
//! and commits them itself), server-side scan planning, views (there are none), and paths
//! outside the specification.

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::error::{RestError, json_response};
use super::{Rest, namespaces, path_error, request, respond};

/// The 403 of a write: which operation, and why no write is taken.
pub fn write_refused(operation: &str) -> Response {
    RestError::forbidden(format!(
        "{operation} refused: Floe owns the tables of this catalog and commits them itself from \
         their Kafka topics, so its Iceberg REST catalog is read-only. Produce to the topic to \
         add rows; change a table through its topic's table.* configs."
    ))
    .into_response()
}

/// A handler that refuses `operation` with 403. The request body is read (and dropped)
/// first: a body left unread makes the server close the connection after the answer, and a
/// client that reuses its pooled connection for the next request then finds it closed.
pub fn refuse(
    operation: &'static str,
) -> impl FnOnce(Bytes) -> std::future::Ready<Response> + Clone + Send + 'static {
    move |_body: Bytes| std::future::ready(write_refused(operation))
}

/// Methods a path does not serve: anything but a read is a write to a read-only catalog.
/// The body is read first, as in [`refuse`].
pub async fn other_method(method: Method, _body: Bytes) -> Response {
    write_refused(&format!("{method} on this catalog path"))
}

/// Paths outside the specification: 404 for reads, 403 for writes (a write is refused
/// whatever it names). The body is read first, as in [`refuse`].
pub async fn unknown_path(method: Method, _body: Bytes) -> Response {
    if method == Method::GET || method == Method::HEAD {
        RestError::not_found(
            "no such endpoint in this Iceberg REST catalog (GET /v1/config lists the endpoints)",
        )
        .into_response()
    } else {
        write_refused(&format!("{method} on an unknown path"))
    }
}

/// Server-side scan planning (`/plan`, `/tasks`): not implemented, and not advertised, so
/// engines plan scans themselves from the metadata.
pub async fn planning_unsupported() -> Response {
    RestError::unsupported(
        "server-side scan planning is not supported by this catalog: plan from the table metadata",
    )
    .into_response()
}

/// `GET /v1/namespaces/{namespace}/views`: Floe serves no views.
pub async fn list_views(
    State(rest): State<Rest>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    respond(
        async {
            let Path(segment) = path.map_err(path_error)?;
            let ns = request::namespace(&segment)?;
            namespaces::require(&rest, &ns).await?;
            Ok(json_response(
                StatusCode::OK,
                &serde_json::json!({ "identifiers": [] }),
            ))
        }
        .await,
    )
}

/// `GET` and `HEAD /v1/namespaces/{namespace}/views/{view}`: 404, there are no views.
pub async fn no_view(path: Result<Path<(String, String)>, PathRejection>) -> Response {
    let error = match path.map_err(path_error) {
        Ok(Path((segment, name))) => match request::table(&segment, &name) {
            Ok(ident) => RestError::no_such_view(ident.namespace(), ident.name()),
            Err(e) => e,
        },
        Err(e) => e,
    };
    error.into_response()
}

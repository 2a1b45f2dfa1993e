//! Namespaces: list (with `parent` and pages), get, exists. Floe's tables live in
//! single-level namespaces (`tableflow_namespace`, `table.namespace`), but the catalog
//! behind the API may hold nested ones, and they are listed level by level as the
//! specification says.

use std::collections::BTreeMap;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use iceberg::NamespaceIdent;

use super::error::{RestError, from_iceberg, json_response};
use super::{Rest, path_error, request, respond};

/// `GET /v1/namespaces?parent=&pageToken=&pageSize=`.
pub async fn list(State(rest): State<Rest>, RawQuery(raw): RawQuery) -> Response {
    respond(list_inner(rest, raw).await)
}

async fn list_inner(rest: Rest, raw: Option<String>) -> Result<Response, RestError> {
    let q = request::query(raw.as_deref());
    let page = request::Page::from_query(&q)?;
    let parent = match q.get("parent").map(String::as_str) {
        None | Some("") => None,
        Some(p) => Some(request::namespace(p)?),
    };
    let catalog = rest.catalog.get().await?;
    let children: Vec<Vec<String>> = match &parent {
        None => catalog
            .list_namespaces(None)
            .await
            .map_err(|e| from_iceberg("list namespaces", &e))?
            .into_iter()
            .map(NamespaceIdent::inner)
            .collect(),
        Some(parent) => {
            if !catalog
                .namespace_exists(parent)
                .await
                .map_err(|e| from_iceberg("look up namespace", &e))?
            {
                return Err(RestError::no_such_namespace(parent));
            }
            let below = catalog
                .list_namespaces(Some(parent))
                .await
                .map_err(|e| from_iceberg("list namespaces", &e))?;
            direct_children(parent, below.into_iter().map(NamespaceIdent::inner))
        }
    };
    let items = children
        .into_iter()
        .map(|levels| (request::sort_key(&levels), levels))
        .collect();
    let (namespaces, next) = page.apply(items);
    let mut body = serde_json::json!({ "namespaces": namespaces });
    if let Some(token) = next {
        body["next-page-token"] = token.into();
    }
    Ok(json_response(StatusCode::OK, &body))
}

/// The namespaces one level below `parent` among `below` (which may hold deeper
/// descendants, and names that merely start with the parent's text).
fn direct_children(
    parent: &[String],
    below: impl IntoIterator<Item = Vec<String>>,
) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = below
        .into_iter()
        .filter(|levels| levels.len() > parent.len() && levels.starts_with(parent))
        .map(|mut levels| {
            levels.truncate(parent.len() + 1);
            levels
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// `GET /v1/namespaces/{namespace}`: the namespace and its properties.
pub async fn get(State(rest): State<Rest>, path: Result<Path<String>, PathRejection>) -> Response {
    respond(get_inner(rest, path).await)
}

async fn get_inner(
    rest: Rest,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, RestError> {
    let Path(segment) = path.map_err(path_error)?;
    let ns = request::namespace(&segment)?;
    let catalog = rest.catalog.get().await?;
    if !catalog
        .namespace_exists(&ns)
        .await
        .map_err(|e| from_iceberg("look up namespace", &e))?
    {
        return Err(RestError::no_such_namespace(&ns));
    }
    let namespace = catalog
        .get_namespace(&ns)
        .await
        .map_err(|e| from_iceberg("load namespace", &e))?;
    // The SQL catalog's marker row of a namespace created without properties.
    let properties: BTreeMap<&String, &String> = namespace
        .properties()
        .iter()
        .filter(|(k, _)| k.as_str() != "exists")
        .collect();
    let body = serde_json::json!({
        "namespace": ns.as_ref(),
        "properties": properties,
    });
    Ok(json_response(StatusCode::OK, &body))
}

/// `HEAD /v1/namespaces/{namespace}`: 204 if it exists, else 404.
pub async fn exists(
    State(rest): State<Rest>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    respond(exists_inner(rest, path).await)
}

async fn exists_inner(
    rest: Rest,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, RestError> {
    let Path(segment) = path.map_err(path_error)?;
    let ns = request::namespace(&segment)?;
    let catalog = rest.catalog.get().await?;
    if catalog
        .namespace_exists(&ns)
        .await
        .map_err(|e| from_iceberg("look up namespace", &e))?
    {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(RestError::no_such_namespace(&ns))
    }
}

/// Checks that the namespace of a table or view request exists (404 otherwise).
pub async fn require(rest: &Rest, ns: &NamespaceIdent) -> Result<(), RestError> {
    let catalog = rest.catalog.get().await?;
    if catalog
        .namespace_exists(ns)
        .await
        .map_err(|e| from_iceberg("look up namespace", &e))?
    {
        Ok(())
    } else {
        Err(RestError::no_such_namespace(ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(s: &str) -> Vec<String> {
        s.split('.').map(str::to_string).collect()
    }

    #[test]
    fn children_are_one_level_down() {
        let below = ["a.b", "a.b.c", "a.d.e", "ab.x", "a"].map(ns);
        assert_eq!(direct_children(&ns("a"), below), vec![ns("a.b"), ns("a.d")]);
        assert!(direct_children(&ns("z"), [ns("a.b")]).is_empty());
    }
}

//! The Iceberg REST catalog Floe serves (the Apache Iceberg REST Catalog OpenAPI, 1.x), so
//! engines attach to its tables by URL: pyiceberg (`type=rest`), DuckDB (`ATTACH ... (TYPE
//! iceberg)`), Spark's and Trino's `RESTCatalog`. The broker nests [`router`] in its HTTP
//! admin listener under `/iceberg` (`docs/iceberg-rest.md`).
//!
//! It is a read-only view of the catalog tableflow commits to ([`catalog`]: the embedded SQL
//! catalog by default, opened on first use). Served: `GET /v1/config` ([`config`]),
//! namespaces ([`namespaces`]), tables with their metadata and the storage settings to read
//! them ([`tables`]). Every write (create, drop, rename, commit, register, namespace
//! changes, views, multi-table transactions) is refused with the specification's 403 error
//! ([`refuse`]): Floe owns these tables, and the offsets in their snapshot summaries are what
//! makes them exactly-once; a commit from elsewhere could break that. Errors are the
//! specification's `ErrorModel` ([`error`]). Access keys of an S3 warehouse are handed out
//! only when [`RestCatalogOptions::vend_credentials`] allows it.

pub mod catalog;
pub mod config;
pub mod error;
pub mod namespaces;
pub mod refuse;
pub mod request;
pub mod tables;

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any, get, post};

use crate::config::TableflowSettings;
use catalog::CatalogCell;
use error::RestError;
use refuse::refuse;

/// The broker's settings of the REST catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestCatalogOptions {
    /// Serve it at all (`tableflow_rest_catalog_enable`).
    pub enabled: bool,
    /// Hand the warehouse's S3 access keys to clients with each loaded table
    /// (`tableflow_rest_catalog_vend_credentials`). Off by default: a client then needs
    /// its own credentials for the warehouse.
    pub vend_credentials: bool,
}

impl Default for RestCatalogOptions {
    fn default() -> RestCatalogOptions {
        RestCatalogOptions {
            enabled: true,
            vend_credentials: false,
        }
    }
}

/// What every handler shares.
pub struct Shared {
    /// Tableflow's settings: the catalog and the warehouse served.
    pub settings: TableflowSettings,
    /// The REST catalog's own settings.
    pub options: RestCatalogOptions,
    /// The catalog behind the API.
    pub catalog: CatalogCell,
}

/// Handler state (cheap to clone).
#[derive(Clone)]
pub struct Rest(Arc<Shared>);

impl std::ops::Deref for Rest {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The REST catalog's routes (`/v1/...`), to nest under a prefix of the HTTP listener.
/// Nothing is opened until the first request. With tableflow off every path answers 503,
/// with the REST catalog off 404, each as an `ErrorModel` saying so.
pub fn router(settings: TableflowSettings, options: RestCatalogOptions) -> Router {
    if !settings.enabled {
        return refuse_all(RestError::unavailable(
            "tableflow is off on this broker (tableflow_enable = false): there are no tables to serve",
        ));
    }
    if !options.enabled {
        return refuse_all(RestError::not_found(
            "the Iceberg REST catalog is off on this broker (tableflow_rest_catalog_enable = false)",
        ));
    }
    let rest = Rest(Arc::new(Shared {
        catalog: CatalogCell::new(settings.clone()),
        settings,
        options,
    }));
    let ns = "/v1/namespaces/{namespace}";
    let table = "/v1/namespaces/{namespace}/tables/{table}";
    let view = "/v1/namespaces/{namespace}/views/{view}";
    Router::new()
        .route("/v1/config", read_only(get(config::get_config)))
        .route(
            "/v1/namespaces",
            read_only(get(namespaces::list).post(refuse("create namespace"))),
        )
        .route(
            ns,
            read_only(
                get(namespaces::get)
                    .head(namespaces::exists)
                    .delete(refuse("drop namespace")),
            ),
        )
        .route(
            &format!("{ns}/properties"),
            read_only(post(refuse("update namespace properties"))),
        )
        .route(
            &format!("{ns}/tables"),
            read_only(get(tables::list).post(refuse("create table"))),
        )
        .route(
            table,
            read_only(
                get(tables::load)
                    .head(tables::exists)
                    .post(refuse("commit to table"))
                    .delete(refuse("drop table")),
            ),
        )
        .route(
            &format!("{table}/credentials"),
            read_only(get(tables::credentials)),
        )
        .route(
            &format!("{table}/metrics"),
            read_only(post(tables::report_metrics)),
        )
        .route(&format!("{table}/plan"), any(refuse::planning_unsupported))
        .route(
            &format!("{table}/plan/{{plan}}"),
            any(refuse::planning_unsupported),
        )
        .route(&format!("{table}/tasks"), any(refuse::planning_unsupported))
        .route(
            &format!("{ns}/register"),
            read_only(post(refuse("register table"))),
        )
        .route(
            &format!("{ns}/register-view"),
            read_only(post(refuse("register view"))),
        )
        .route("/v1/tables/rename", read_only(post(refuse("rename table"))))
        .route(
            "/v1/transactions/commit",
            read_only(post(refuse("commit transaction"))),
        )
        .route(
            &format!("{ns}/views"),
            read_only(get(refuse::list_views).post(refuse("create view"))),
        )
        .route(
            view,
            read_only(
                get(refuse::no_view)
                    .head(refuse::no_view)
                    .post(refuse("replace view"))
                    .delete(refuse("drop view")),
            ),
        )
        .route("/v1/views/rename", read_only(post(refuse("rename view"))))
        .fallback(refuse::unknown_path)
        .with_state(rest)
}

/// A path's methods, with every other method refused as a write.
fn read_only(methods: MethodRouter<Rest>) -> MethodRouter<Rest> {
    methods.fallback(refuse::other_method)
}

/// A router answering every path with `error`.
fn refuse_all(error: RestError) -> Router {
    let answer = move || std::future::ready(error.clone().into_response());
    Router::new()
        .route("/", any(answer.clone()))
        .route("/{*path}", any(answer.clone()))
        .fallback(answer)
}

/// A path whose parameters do not decode (invalid UTF-8 after percent-decoding, ...): 400.
fn path_error(e: PathRejection) -> RestError {
    RestError::bad_request(format!("invalid path: {}", e.body_text()))
}

/// The answer of a handler's result.
fn respond(r: Result<Response, RestError>) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}

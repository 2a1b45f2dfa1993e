//! The HTTP admin listener (`http_listen`, default 127.0.0.1:9644): `/health`, `/ready`,
//! `/metrics`, and the Iceberg REST catalog under `/iceberg` (tableflow's
//! `floe_tableflow::rest`, `docs/iceberg-rest.md`). It binds before recovery starts, so
//! probes are answered while a large log recovers: `/health` always (the process is alive
//! and serving HTTP), `/ready` only once recovery is done, the metadata is loaded and the
//! Kafka listener is bound, and no longer once a shutdown has begun. The REST catalog reads
//! the tables' catalog, not the broker's state, so it answers from the start too. The schema
//! registry's API (`floe_registry::rest`, `docs/schema-registry.md`) is served at the root
//! (`/subjects`, `/schemas`, `/config`, `/mode`, `/compatibility`), as Confluent's registry
//! serves it; it answers 50003 until `_schemas` has been replayed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::state::Broker;
use crate::telemetry::Metrics;

/// Where the Iceberg REST catalog is served: its URI is `http://<http_listen>/iceberg`.
pub const ICEBERG_REST_PREFIX: &str = "/iceberg";

/// What the endpoints report on.
pub struct Admin {
    ready: AtomicBool,
    stopping: AtomicBool,
    broker: OnceLock<Arc<Broker>>,
    metrics: Option<Metrics>,
    registry: Arc<floe_registry::Registry>,
}

impl Admin {
    /// Not ready yet; `metrics` is `None` when they are off. `registry` is the schema
    /// registry the broker loads once its logs are recovered.
    pub fn new(metrics: Option<Metrics>, registry: Arc<floe_registry::Registry>) -> Arc<Admin> {
        Arc::new(Admin {
            ready: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            broker: OnceLock::new(),
            metrics,
            registry,
        })
    }

    /// The schema registry served.
    pub fn registry(&self) -> Arc<floe_registry::Registry> {
        Arc::clone(&self.registry)
    }

    /// The broker serves clients: `/ready` answers 200 from now on.
    pub fn set_ready(&self, broker: Arc<Broker>) {
        let _ = self.broker.set(broker);
        self.ready.store(true, Ordering::Release);
    }

    /// A shutdown began: `/ready` answers 503 again.
    pub fn set_stopping(&self) {
        self.stopping.store(true, Ordering::Release);
        self.ready.store(false, Ordering::Release);
    }
}

/// Binds the admin listener; serve it with [`spawn`].
pub async fn bind(addr: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (http_listen)"))
}

/// Serves the endpoints on `listener` until the process exits.
pub fn spawn(listener: TcpListener, admin: Arc<Admin>, config: &Config) {
    let iceberg =
        floe_tableflow::rest::router(config.tableflow_settings(), config.rest_catalog_options());
    let registry = config
        .schema_registry_enable
        .then(|| floe_registry::rest::router(admin.registry()));
    let mut app = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(admin)
        .nest(ICEBERG_REST_PREFIX, iceberg);
    if let Some(registry) = registry {
        app = app.merge(registry);
    }
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("the HTTP admin listener stopped: {e}");
        }
    });
}

async fn health() -> &'static str {
    "ok\n"
}

async fn ready(State(admin): State<Arc<Admin>>) -> Response {
    if admin.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n").into_response()
    } else if admin.stopping.load(Ordering::Acquire) {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "starting: recovering logs and loading metadata\n",
        )
            .into_response()
    }
}

async fn metrics(State(admin): State<Arc<Admin>>) -> Response {
    let Some(metrics) = admin.metrics.clone() else {
        return (
            StatusCode::NOT_FOUND,
            "metrics are off (metrics_enable = false)\n",
        )
            .into_response();
    };
    let broker = admin.broker.get().cloned();
    // Walks every partition and group: off the runtime's workers.
    match tokio::task::spawn_blocking(move || metrics.render(broker.as_deref())).await {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("rendering metrics failed: {e}\n"),
        )
            .into_response(),
    }
}

//! The listener: binds, accepts connections, and shuts the broker down cleanly on SIGTERM
//! or Ctrl-C: stop accepting, let every connection answer the requests it has read (for
//! at most `shutdown_timeout_ms`), commit pending table data, then sync and close every log
//! and write the clean-shutdown marker.

use std::sync::Arc;

use anyhow::Context;
use floe_storage::LogManager;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::log_limit::LogLimit;
use crate::metadata_store::FileMetadataStore;
use crate::state::{Broker, Endpoint};
use crate::telemetry;
use crate::topics::Topics;
use std::sync::atomic::Ordering;

/// Accept errors repeat every 50 ms while they last (out of file descriptors).
static ACCEPT_FAILED: LogLimit = LogLimit::new("accept failed", 1);

/// Connections refused for `max.connections` or `max.connections.per.ip`: a client that
/// retries in a loop would otherwise fill the log.
static REFUSED: LogLimit = LogLimit::new("connection refused by a connection limit", 10);

/// Opens the data directory, recovers every log, binds the listener and serves until a
/// shutdown signal arrives.
pub async fn run(config: Config) -> anyhow::Result<()> {
    // First: from here on SIGTERM means a clean shutdown (see `shutdown_signal`).
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    let config = Arc::new(config);
    // Before anything else touches `metrics`: the storage engine binds its handles to the
    // recorder installed when it first records.
    let metrics = if config.metrics_enable {
        Some(crate::telemetry::install()?)
    } else {
        None
    };
    if let Some(m) = &metrics {
        m.spawn_upkeep();
    }
    // The admin listener answers /health (and /ready = 503) while the logs recover.
    let registry = Arc::new(floe_registry::Registry::new(
        crate::schema_registry::settings(&config),
    ));
    let admin = crate::http::Admin::new(metrics, registry);
    if !config.http_listen.is_empty() {
        let http = crate::http::bind(&config.http_listen).await?;
        tracing::info!(http = %http.local_addr()?, "HTTP admin listener (/health, /ready, /metrics, /iceberg)");
        crate::http::spawn(http, admin.clone(), &config);
    }
    let open_file_limit = raise_open_file_limit();
    let data_dir = config.data_dir.clone();
    let io = floe_storage::Io::from_mode(config.storage.io)
        .with_context(|| format!("cannot start storage I/O backend {}", config.storage.io))?;
    tracing::info!(configured = %config.storage.io, backend = ?io.kind(), "storage I/O backend");
    #[cfg(feature = "faults")]
    let io = if config.storage.faults.trim().is_empty() {
        io
    } else {
        // Suspended while `<data_dir>/faults.off` exists (tests "free the disk" with it).
        let off = data_dir.join("faults.off");
        let faults = floe_storage::io::faults::Faults::from_spec(&config.storage.faults, Some(off))
            .map_err(anyhow::Error::msg)?;
        tracing::warn!(faults = %config.storage.faults, "storage fault injection is on");
        let faults = Arc::new(faults);
        floe_storage::io::install_process_faults(Arc::clone(&faults));
        io.with_fault_set(faults)
    };
    let logs = Arc::new(
        LogManager::open_with(&data_dir, io)
            .with_context(|| format!("cannot open data directory {}", data_dir.display()))?,
    );
    {
        // Before the partitions open: a tiered one is attached to (or rebuilt from) its
        // remote part as it opens.
        let (logs, remote) = (logs.clone(), config.remote_storage());
        let url = remote.url.clone();
        tokio::task::spawn_blocking(move || logs.start_remote(remote))
            .await
            .context("remote storage task failed")?
            .with_context(|| format!("cannot open the remote store {url}"))?;
    }
    let store = Box::new(FileMetadataStore::new(&data_dir));
    let topics = {
        let (config, logs) = (config.clone(), logs.clone());
        tokio::task::spawn_blocking(move || Topics::open(config, store, logs))
            .await
            .context("recovery task failed")?
            .context("cannot load topics")?
    };
    logs.start_scrubber(config.storage.scrub())
        .context("cannot start the segment scrubber")?;
    logs.start_retention(floe_storage::RetentionConfig {
        check_interval: std::time::Duration::from_millis(config.log_retention_check_interval_ms),
    })
    .context("cannot start the log retention thread")?;
    logs.start_cleaner(floe_storage::CleanerConfig {
        enabled: config.log_cleaner_enable,
        dedupe_buffer_bytes: usize::try_from(config.log_cleaner_dedupe_buffer_size)
            .unwrap_or(usize::MAX),
        io_max_bytes_per_second: config.log_cleaner_io_max_bytes_per_second,
        backoff: std::time::Duration::from_millis(config.log_cleaner_backoff_ms),
    })
    .context("cannot start the log cleaner")?;
    let specs = crate::security::listeners::parse(&config).map_err(anyhow::Error::msg)?;
    let tls = if specs.iter().any(|s| s.protocol.uses_tls()) {
        let c = config.clone();
        let tls = tokio::task::spawn_blocking(move || crate::security::tls::Tls::load(&c))
            .await
            .context("TLS loading task failed")?
            .map_err(anyhow::Error::msg)
            .context("cannot load the TLS certificate files")?;
        if let Some(tls) = &tls {
            tls.spawn_reloader(std::time::Duration::from_millis(
                config.ssl_reload_interval_ms,
            ));
        }
        tls
    } else {
        None
    };
    // The schema registry serves once `_schemas` is replayed, before clients can connect.
    let schemas_log = crate::schema_registry::load(&admin.registry(), &topics);
    let mut listeners = Vec::new();
    let mut endpoints = Vec::new();
    for spec in &specs {
        let socket = TcpListener::bind(&spec.bind)
            .await
            .with_context(|| format!("cannot listen on {} ({})", spec.bind, spec.name))?;
        let local = socket.local_addr()?;
        let (host, port) = spec
            .advertised
            .clone()
            .unwrap_or_else(|| (local.ip().to_string(), local.port()));
        let endpoint = Endpoint {
            node_id: config.node_id,
            host,
            port: i32::from(port),
        };
        tracing::info!(
            listener = %spec.name,
            protocol = %spec.protocol,
            listen = %local,
            advertised = %format!("{}:{}", endpoint.host, endpoint.port),
            "listening"
        );
        endpoints.push((spec.name.clone(), endpoint));
        let info = Arc::new(crate::connection::Listener {
            name: Arc::from(spec.name.as_str()),
            protocol: spec.protocol,
            tls: tls.clone().filter(|_| spec.protocol.uses_tls()),
        });
        listeners.push((socket, info));
    }
    let endpoint = endpoints[0].1.clone();
    // Three files per partition, plus sockets, the catalog and the runtime's own.
    let hosted: i64 = topics
        .list()
        .iter()
        .map(|t| i64::from(t.record.partitions))
        .sum();
    let needed = u64::try_from(hosted).unwrap_or(0) * 3 + 1024;
    match open_file_limit {
        Some(limit) if limit < needed => tracing::warn!(
            open_file_limit = limit,
            partitions = hosted,
            "the open-file limit is low for the partitions hosted; raise it (ulimit -n) or new partitions may fail to open"
        ),
        _ => {
            tracing::info!(open_file_limit = ?open_file_limit, partitions = hosted, "open-file limit")
        }
    }
    tracing::info!(
        listeners = specs.len(),
        data_dir = %data_dir.display(),
        cluster_id = %topics.cluster_id(),
        topics = topics.list().len(),
        "floe broker ready"
    );
    // Tableflow starts once every topic is loaded; it reads the logs, never the produce path.
    let tableflow = floe_tableflow::Tableflow::start(
        config.tableflow_settings(),
        logs.clone(),
        Some(admin.registry()),
    );
    topics.set_listener(Arc::new(tableflow.clone()));
    for t in topics.list() {
        tableflow.topic_changed(&t.name, t.record.partitions, &t.record.configs);
    }
    let security = crate::security::Security::new(&config, &topics.security())
        .map_err(anyhow::Error::msg)
        .context("cannot set up security")?;
    let broker = Arc::new(Broker {
        tableflow,
        listener_endpoints: endpoints,
        schemas: admin.registry(),
        ..Broker::new(config, endpoint, topics, security)
    });
    schemas_log.attach(&broker);
    // Transactions a previous run left half-ended are completed before they time out.
    crate::txn::TransactionCoordinator::start(&broker);

    admin.set_ready(broker.clone());

    let limits = broker.config.connection_limits();
    let shutdown = shutdown_signal(term);
    tokio::pin!(shutdown);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // One accept task per listener, feeding one queue.
    let (accepted_tx, mut accepted_rx) = tokio::sync::mpsc::channel(64);
    let mut acceptors = tokio::task::JoinSet::new();
    for (socket, info) in listeners {
        acceptors.spawn(accept_loop(socket, info, accepted_tx.clone()));
    }
    drop(accepted_tx);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            Some((stream, peer, info)) = accepted_rx.recv() => match limits.try_open(peer.ip()) {
                Ok(_) if broker.security.quotas.allow_connection(peer.ip(), std::time::Instant::now()).is_err() => {
                    // Kafka closes a connection over its address's connection_creation_rate.
                    telemetry::REFUSED.fetch_add(1, Ordering::Relaxed);
                    crate::warn_limited!(REFUSED, %peer, "closing connection: over the connection_creation_rate quota of its address");
                    drop(stream);
                }
                Ok(slot) => {
                    let (broker, stop) = (broker.clone(), stop_rx.clone());
                    telemetry::ACCEPTED.fetch_add(1, Ordering::Relaxed);
                    telemetry::CONNECTIONS.fetch_add(1, Ordering::Relaxed);
                    connections.spawn(async move {
                        crate::connection::serve(stream, peer, broker, stop, info).await;
                        telemetry::CONNECTIONS.fetch_sub(1, Ordering::Relaxed);
                        drop(slot);
                    });
                }
                Err(refused) => {
                    // Kafka closes it at once too; nothing was read from it.
                    telemetry::REFUSED.fetch_add(1, Ordering::Relaxed);
                    crate::warn_limited!(REFUSED, %peer, "closing connection: {refused}");
                    drop(stream);
                }
            },
            // Reaps finished connections (a JoinSet keeps their results until joined).
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = &mut shutdown => break,
        }
    }
    admin.set_stopping();
    acceptors.abort_all();
    while acceptors.join_next().await.is_some() {}
    let open = connections.len();
    tracing::info!(
        connections = open,
        "shutting down: answering the requests connections have read"
    );
    let _ = stop_tx.send(true);
    let drain = std::time::Duration::from_millis(broker.config.shutdown_timeout_ms);
    let drained = tokio::time::timeout(drain, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            timeout_ms = broker.config.shutdown_timeout_ms,
            "connections still busy at shutdown_timeout_ms; closing them without their answers"
        );
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
    tracing::info!("shutting down: syncing logs");
    // Commit what tables have pending while the logs are still open.
    if tokio::time::timeout(drain, broker.tableflow.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "tables did not commit within shutdown_timeout_ms; they resume from their last commit"
        );
    }
    let b = broker.clone();
    tokio::task::spawn_blocking(move || b.topics.shutdown())
        .await
        .context("shutdown task failed")?
        .context("clean shutdown failed")?;
    tracing::info!("shutdown complete");
    Ok(())
}

/// Accepts connections on one listener and queues them for the main loop, until the
/// queue closes (shutdown).
async fn accept_loop(
    socket: TcpListener,
    info: Arc<crate::connection::Listener>,
    accepted: tokio::sync::mpsc::Sender<(
        tokio::net::TcpStream,
        std::net::SocketAddr,
        Arc<crate::connection::Listener>,
    )>,
) {
    loop {
        match socket.accept().await {
            Ok((stream, peer)) => {
                if accepted.send((stream, peer, info.clone())).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                // Out of file descriptors and the like: keep serving existing clients.
                crate::warn_limited!(ACCEPT_FAILED, listener = %info.name, "accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Raises the soft open-file limit to the hard limit (every partition keeps three files
/// open; the common soft default of 1,024 ran out at ~340 partitions). Returns the limit.
fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current == limit.maximum {
        return limit.current;
    }
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => limit.maximum,
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open-file limit");
            limit.current
        }
    }
}

/// Resolves on SIGTERM (or Ctrl-C). `term` is registered before the listener binds, so a
/// SIGTERM that arrives as soon as the port accepts connections is a clean shutdown, not the
/// default action (death by the signal).
async fn shutdown_signal(term: std::io::Result<tokio::signal::unix::Signal>) {
    let mut term = match term {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot listen for SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

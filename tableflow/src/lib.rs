//! Tableflow: topics materialized as Apache Iceberg tables.
//!
//! Reads committed record batches from storage ([`floe_storage::PartitionLog::read`]),
//! never on the produce path, turns them into Arrow rows ([`convert`]), streams them into
//! Parquet files with the `iceberg` crate's writers and commits them with the next offset
//! of every partition in the snapshot summary ([`sink`]), so a restart resumes exactly where
//! the table ends: no row lost, none duplicated.
//!
//! Architecture invariants: tableflow depends on storage and protocol, never on the broker
//! (the broker tells it about topics through [`Tableflow::topic_changed`] and
//! [`Tableflow::topic_deleted`]); producing never waits for it.
//!
//! Entry point: [`Tableflow::start`]. One task per table-enabled topic ([`worker`]).

pub mod catalog;
pub mod config;
pub mod convert;
pub mod error;
pub mod faults;
pub mod lag;
pub mod maintenance;
pub mod rest;
pub mod schema;
pub mod sink;
pub mod typed;
mod worker;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use floe_storage::LogManager;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

pub use config::{
    InvalidTableConfig, TABLE_CONFIGS, TableConfig, TableflowSettings, is_table_config, validate,
    validate_topic_configs,
};
pub use error::TableflowError;
pub use lag::{PartitionLag, TableStatus};

enum Event {
    Changed {
        topic: String,
        partitions: i32,
        configs: BTreeMap<String, String>,
    },
    Deleted {
        topic: String,
    },
    Shutdown(oneshot::Sender<()>),
}

/// Handle to the tableflow service (cheap to clone).
#[derive(Clone)]
pub struct Tableflow {
    tx: Option<mpsc::UnboundedSender<Event>>,
    lag: Arc<lag::LagRegistry>,
    status: Arc<lag::StatusRegistry>,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl std::fmt::Debug for Tableflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tableflow")
            .field("enabled", &self.tx.is_some())
            .finish()
    }
}

impl Tableflow {
    /// A handle that ignores every topic (tableflow turned off).
    pub fn disabled() -> Tableflow {
        Tableflow {
            tx: None,
            lag: Arc::default(),
            status: Arc::default(),
            task: Arc::default(),
        }
    }

    /// Starts the service on the current tokio runtime. Topics are announced afterwards
    /// with [`Tableflow::topic_changed`]. `registry` serves the schemas of `table.mode=schema`
    /// tables (without one, such tables fail with an error saying so).
    pub fn start(
        settings: TableflowSettings,
        logs: Arc<LogManager>,
        registry: Option<Arc<floe_registry::Registry>>,
    ) -> Tableflow {
        if !settings.enabled {
            return Tableflow::disabled();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let lag = Arc::new(lag::LagRegistry::default());
        let status = Arc::new(lag::StatusRegistry::default());
        let manager = Manager {
            settings,
            logs,
            lag: lag.clone(),
            status: status.clone(),
            catalog: None,
            workers: HashMap::new(),
            registry,
        };
        let task = tokio::spawn(manager.run(rx));
        Tableflow {
            tx: Some(tx),
            lag,
            status,
            task: Arc::new(Mutex::new(Some(task))),
        }
    }

    /// A topic was created, its configs altered or its partitions added (or it exists at
    /// start): (re)start, stop or keep its table writer. Never blocks.
    pub fn topic_changed(&self, topic: &str, partitions: i32, configs: &BTreeMap<String, String>) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Event::Changed {
                topic: topic.to_string(),
                partitions,
                configs: configs.clone(),
            });
        }
    }

    /// A topic was deleted: stop its table writer (the table stays in the catalog).
    pub fn topic_deleted(&self, topic: &str) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Event::Deleted {
                topic: topic.to_string(),
            });
        }
    }

    /// Commits what is pending and stops every writer. Call before closing the logs.
    pub async fn shutdown(&self) {
        let Some(tx) = &self.tx else { return };
        let (done_tx, done_rx) = oneshot::channel();
        if tx.send(Event::Shutdown(done_tx)).is_ok() {
            let _ = done_rx.await;
        }
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// Lag of every materialized partition (also published as `metrics` gauges).
    pub fn lag(&self) -> Vec<PartitionLag> {
        self.lag.snapshot()
    }

    /// Health of every table writer: failed commits, and why a writer stopped if it did.
    pub fn status(&self) -> Vec<TableStatus> {
        self.status.snapshot()
    }
}

/// The runtime of every table's maintenance: one thread (`floe-maintenance`), started on
/// first use and kept for the life of the process. `None` if it cannot be started (the
/// caller then uses the current runtime).
fn maintenance_runtime() -> Option<tokio::runtime::Handle> {
    static RUNTIME: std::sync::OnceLock<Option<tokio::runtime::Handle>> =
        std::sync::OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            let started = std::thread::Builder::new()
                .name("floe-maintenance".into())
                .spawn(move || {
                    match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .thread_name("floe-maintenance")
                        .build()
                    {
                        Ok(rt) => {
                            let _ = tx.send(Some(rt.handle().clone()));
                            // Serves spawned maintenance tasks until the process exits.
                            rt.block_on(std::future::pending::<()>());
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot start the table maintenance runtime; maintenance shares the broker's");
                            let _ = tx.send(None);
                        }
                    }
                });
            match started {
                Ok(_) => rx.recv().ok().flatten(),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start the table maintenance thread; maintenance shares the broker's runtime");
                    None
                }
            }
        })
        .clone()
}

struct WorkerHandle {
    cfg: TableConfig,
    partitions: i32,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    maintenance: JoinHandle<()>,
}

impl WorkerHandle {
    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        let _ = self.maintenance.await;
    }
}

struct Manager {
    settings: TableflowSettings,
    logs: Arc<LogManager>,
    lag: Arc<lag::LagRegistry>,
    status: Arc<lag::StatusRegistry>,
    catalog: Option<Arc<catalog::FloeCatalog>>,
    workers: HashMap<String, WorkerHandle>,
    registry: Option<Arc<floe_registry::Registry>>,
}

impl Manager {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Event>) {
        // Topics announced while the catalog is unreachable wait here and are retried.
        let mut waiting: BTreeMap<String, (i32, BTreeMap<String, String>)> = BTreeMap::new();
        loop {
            let event = if waiting.is_empty() {
                rx.recv().await
            } else {
                match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
                    Ok(e) => e,
                    Err(_) => {
                        for (topic, (partitions, configs)) in std::mem::take(&mut waiting) {
                            self.changed(topic, partitions, configs, &mut waiting).await;
                        }
                        continue;
                    }
                }
            };
            match event {
                Some(Event::Changed {
                    topic,
                    partitions,
                    configs,
                }) => {
                    waiting.remove(&topic);
                    self.changed(topic, partitions, configs, &mut waiting).await;
                }
                Some(Event::Deleted { topic }) => {
                    waiting.remove(&topic);
                    if let Some(w) = self.workers.remove(&topic) {
                        w.stop().await;
                    }
                    self.lag.remove_topic(&topic);
                    self.status.remove_topic(&topic);
                }
                Some(Event::Shutdown(done)) => {
                    for (_, w) in self.workers.drain() {
                        w.stop().await;
                    }
                    let _ = done.send(());
                    return;
                }
                None => {
                    for (_, w) in self.workers.drain() {
                        w.stop().await;
                    }
                    return;
                }
            }
        }
    }

    async fn changed(
        &mut self,
        topic: String,
        partitions: i32,
        configs: BTreeMap<String, String>,
        waiting: &mut BTreeMap<String, (i32, BTreeMap<String, String>)>,
    ) {
        // Broker-wide defaults under the topic's own settings.
        let mut effective = self.settings.table_defaults.clone();
        effective.extend(configs.iter().map(|(k, v)| (k.clone(), v.clone())));
        let cfg = match TableConfig::from_topic(&topic, &effective, &self.settings.namespace) {
            Ok(cfg) => cfg,
            Err(e) => {
                tracing::warn!(topic = %topic, error = %e, "table configs unusable; tables off for this topic");
                None
            }
        };
        if let Some(w) = self.workers.get(&topic)
            && Some(&w.cfg) == cfg.as_ref()
            && w.partitions == partitions
        {
            return;
        }
        if let Some(w) = self.workers.remove(&topic) {
            w.stop().await;
            self.lag.remove_topic(&topic);
            self.status.remove_topic(&topic);
        }
        let Some(cfg) = cfg else { return };
        let catalog = match &self.catalog {
            Some(c) => c.clone(),
            None => match sink::open_floe_catalog(&self.settings).await {
                Ok(c) => {
                    tracing::info!(catalog = %self.settings.catalog_name, uri = %self.settings.catalog_uri, warehouse = %self.settings.warehouse, "tableflow catalog open");
                    self.catalog = Some(c.clone());
                    c
                }
                Err(e) => {
                    tracing::error!(error = %e, source = ?std::error::Error::source(&e), "cannot open the Iceberg catalog; retrying");
                    waiting.insert(topic, (partitions, configs));
                    return;
                }
            },
        };
        let (stop, stop_rx) = watch::channel(false);
        tracing::info!(topic = %topic, table = %format!("{}.{}", cfg.namespace, cfg.name), "materializing topic as an Iceberg table");
        let in_flight = maintenance::InFlight::default();
        let tables = [cfg.name.clone(), format!("{}_dlq", cfg.name)]
            .into_iter()
            .filter_map(|name| sink::table_ident(&cfg.namespace, &name).ok())
            .collect();
        let maintainer = maintenance::Maintainer {
            topic: topic.clone(),
            tables,
            cfg: cfg.maintenance.clone(),
            catalog: catalog.clone(),
            storage_props: self.settings.storage_props.clone(),
            in_flight: in_flight.clone(),
            stop: stop_rx.clone(),
        };
        let worker = worker::TopicWorker {
            topic: topic.clone(),
            partitions,
            cfg: cfg.clone(),
            logs: self.logs.clone(),
            catalog,
            settings: self.settings.clone(),
            lag: self.lag.clone(),
            status: self.status.clone(),
            stop: stop_rx,
            in_flight,
            registry: self.registry.clone(),
        };
        let task = tokio::spawn(worker.run());
        // Maintenance runs on its own thread: compaction's Parquet decoding and encoding is
        // long CPU work that would otherwise hold one of the runtime's workers, which serve
        // produce and fetch requests, for seconds at a time.
        let maintenance = match maintenance_runtime() {
            Some(rt) => rt.spawn(maintainer.run()),
            None => tokio::spawn(maintainer.run()),
        };
        self.workers.insert(
            topic,
            WorkerHandle {
                cfg,
                partitions,
                stop,
                task,
                maintenance,
            },
        );
    }
}

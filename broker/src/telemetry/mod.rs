//! Metrics, served in the Prometheus text format at `/metrics` (see `docs/metrics.md`).
//!
//! Two sources make up a scrape:
//! - what the broker counts itself, rendered by this module: requests per API
//!   ([`requests`]), and figures read off the broker's state at the scrape ([`collect`]:
//!   partitions, traffic per topic, group lag, tableflow lag, connections);
//! - what the storage and tableflow crates record through the `metrics` facade (fsync
//!   latency, group-commit size, tiered storage, table commits), rendered by
//!   `metrics-exporter-prometheus`.
//!
//! With `metrics_enable = false` no recorder is installed (the facade's calls do nothing)
//! and the request counters are skipped.

pub mod collect;
mod describe;
pub mod errors;
pub mod requests;
pub mod text;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::state::Broker;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Client connections open.
pub static CONNECTIONS: AtomicU64 = AtomicU64::new(0);
/// Client connections accepted since start.
pub static ACCEPTED: AtomicU64 = AtomicU64::new(0);
/// Client connections refused by a connection limit since start.
pub static REFUSED: AtomicU64 = AtomicU64::new(0);
/// SASL authentications that failed since start.
pub static AUTH_FAILURES: AtomicU64 = AtomicU64::new(0);
/// SASL re-authentications (KIP-368) that succeeded since start.
pub static REAUTHENTICATIONS: AtomicU64 = AtomicU64::new(0);
/// TLS handshakes that failed (or timed out) since start.
pub static TLS_HANDSHAKE_FAILURES: AtomicU64 = AtomicU64::new(0);
/// Bytes of responses ready and not yet written.
pub static QUEUED_RESPONSE_BYTES: AtomicU64 = AtomicU64::new(0);

/// Whether metrics are recorded.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The process's metrics: installs the Prometheus recorder behind the `metrics` facade.
/// Call once, before the storage engine starts (its metric handles bind to the recorder
/// installed when they are first used).
pub fn install() -> anyhow::Result<Metrics> {
    let seconds = requests::LATENCY_BUCKETS;
    let partitions = [
        1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
    ];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)?
        .set_buckets_for_metric(
            Matcher::Full("floe_group_commit_partitions".into()),
            &partitions,
        )?
        .install_recorder()?;
    describe::describe_all();
    ENABLED.store(true, Ordering::Relaxed);
    Ok(Metrics { handle })
}

/// The installed recorder.
#[derive(Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
}

impl Metrics {
    /// Keeps the recorder's histograms from growing between scrapes (call periodically).
    pub fn spawn_upkeep(&self) {
        let handle = self.handle.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                handle.run_upkeep();
            }
        });
    }

    /// The whole scrape: the broker's own families (once it is up), then the recorder's.
    pub fn render(&self, broker: Option<&Broker>) -> String {
        let mut out = String::with_capacity(64 * 1024);
        let mut info = text::Family::new(
            "floe_build_info",
            "The running build (value 1).",
            text::Kind::Gauge,
        );
        info.sample(&[("version", env!("CARGO_PKG_VERSION"))], 1.0);
        info.write(&mut out);
        requests::render(&mut out);
        if let Some(broker) = broker {
            collect::render(broker, &mut out);
        }
        out.push_str(&self.handle.render());
        out
    }
}

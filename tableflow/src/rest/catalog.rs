//! The catalog behind the REST API: the same catalog tableflow commits to (the embedded SQL
//! catalog by default), opened on the first request, kept, and opened again on a later
//! request if opening failed (the catalog database or warehouse may come up after the
//! broker).

use std::sync::Arc;
use std::time::{Duration, Instant};

use iceberg::Catalog;

use super::error::RestError;
use crate::config::TableflowSettings;

/// After a failed open, requests within this long are answered 503 without trying again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The lazily opened catalog.
pub struct CatalogCell {
    settings: TableflowSettings,
    slot: tokio::sync::Mutex<Slot>,
}

#[derive(Default)]
struct Slot {
    catalog: Option<Arc<dyn Catalog>>,
    failed: Option<(Instant, String)>,
}

impl CatalogCell {
    /// Nothing is opened until the first request.
    pub fn new(settings: TableflowSettings) -> CatalogCell {
        CatalogCell {
            settings,
            slot: tokio::sync::Mutex::new(Slot::default()),
        }
    }

    /// The catalog, opening it if needed; 503 while it cannot be opened.
    pub async fn get(&self) -> Result<Arc<dyn Catalog>, RestError> {
        let mut slot = self.slot.lock().await;
        if let Some(c) = &slot.catalog {
            return Ok(c.clone());
        }
        if let Some((at, why)) = &slot.failed
            && at.elapsed() < RETRY_AFTER
        {
            return Err(unavailable(&self.settings, why));
        }
        // Opening creates the catalog's and the warehouse's directories with std::fs: on
        // the blocking pool, never on a runtime worker.
        let settings = self.settings.clone();
        let runtime = tokio::runtime::Handle::current();
        let opened = tokio::task::spawn_blocking(move || {
            runtime.block_on(crate::sink::open_catalog(&settings))
        })
        .await;
        match opened {
            Ok(Ok(catalog)) => {
                tracing::info!(catalog = %self.settings.catalog_name, uri = %self.settings.catalog_uri, "Iceberg REST catalog: catalog open");
                slot.catalog = Some(catalog.clone());
                slot.failed = None;
                Ok(catalog)
            }
            Ok(Err(e)) => {
                let why = match std::error::Error::source(&e) {
                    Some(source) => format!("{e}: {source}"),
                    None => e.to_string(),
                };
                tracing::warn!(error = %why, "Iceberg REST catalog: cannot open the catalog; retrying on a later request");
                let err = unavailable(&self.settings, &why);
                slot.failed = Some((Instant::now(), why));
                Err(err)
            }
            Err(e) => Err(RestError::internal(format!(
                "opening the catalog failed: {e}"
            ))),
        }
    }
}

fn unavailable(settings: &TableflowSettings, why: &str) -> RestError {
    RestError::unavailable(format!(
        "the catalog {} ({}) cannot be opened now: {why}",
        settings.catalog_name, settings.catalog_uri
    ))
}

//! Crash points for tests of crash safety (feature `faults`, which the broker's `faults`
//! feature turns on): `FLOE_TABLEFLOW_CRASH_AT=<point>[@<n>]` aborts the process (no
//! destructor, no flush: as a kill -9 would) the `n`th time (default: first) execution
//! reaches `point`. Without the feature, [`crash_point`] compiles to nothing.
//!
//! Points: `sink.before_commit` (data files closed, not committed), `catalog.before_swap`
//! (new metadata file written, catalog row not swapped), `catalog.after_swap` (swapped, old
//! metadata files not deleted yet), `compact.after_rewrite` (compacted files written, no
//! manifest yet), `compact.before_commit` (manifests and manifest list written),
//! `expire.before_commit`, `orphans.mid_delete` (after the first orphan deleted).

/// Aborts the process here if `FLOE_TABLEFLOW_CRASH_AT` names `point` (feature `faults`).
#[cfg(feature = "faults")]
pub fn crash_point(point: &str) {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static SPEC: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static HITS: OnceLock<Mutex<HashMap<String, u64>>> = OnceLock::new();
    let spec = SPEC.get_or_init(|| {
        let v = std::env::var("FLOE_TABLEFLOW_CRASH_AT").ok()?;
        let (name, n) = match v.split_once('@') {
            Some((name, n)) => (name.to_string(), n.parse().unwrap_or(1)),
            None => (v, 1),
        };
        Some((name, n.max(1)))
    });
    let Some((name, n)) = spec else { return };
    if name != point {
        return;
    }
    let hits = HITS.get_or_init(Mutex::default);
    let mut hits = hits.lock().unwrap_or_else(|p| p.into_inner());
    let count = hits.entry(point.to_string()).or_insert(0);
    *count += 1;
    if *count == *n {
        eprintln!("floe: FLOE_TABLEFLOW_CRASH_AT={point}@{n}: aborting here");
        std::process::abort();
    }
}

/// Without the `faults` feature: nothing.
#[cfg(not(feature = "faults"))]
#[inline(always)]
pub fn crash_point(_point: &str) {}

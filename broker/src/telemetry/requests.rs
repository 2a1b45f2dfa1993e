//! Requests per API: how many, how long until their response was ready, and the error codes
//! they answered. Fixed tables of relaxed atomics indexed by API key and error code, so
//! counting costs a few atomic adds per request and no lock or map lookup; `/metrics`
//! renders them ([`render`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kafka_protocol::messages::ApiKey;

use super::text::{Family, Kind};

/// API keys below this are counted (Kafka's highest is under 100).
const APIS: usize = 128;
/// Error codes from -1 up to `CODES - 2` are counted; others as "unknown code".
const CODES: usize = 160;

/// Upper bounds (seconds) of the latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

struct ApiStats {
    requests: AtomicU64,
    /// Cumulative counts are computed at render; these are per bucket (+Inf last).
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
    /// Index `code + 1`; the last slot counts codes out of range.
    errors: [AtomicU64; CODES],
}

impl ApiStats {
    const fn new() -> ApiStats {
        ApiStats {
            requests: AtomicU64::new(0),
            buckets: [const { AtomicU64::new(0) }; LATENCY_BUCKETS.len() + 1],
            sum_nanos: AtomicU64::new(0),
            errors: [const { AtomicU64::new(0) }; CODES],
        }
    }
}

static STATS: [ApiStats; APIS] = [const { ApiStats::new() }; APIS];

fn stats(api: ApiKey) -> Option<&'static ApiStats> {
    usize::try_from(api as i16).ok().and_then(|i| STATS.get(i))
}

/// A request's response is ready after `elapsed`, with these error codes (0 included).
pub fn record(api: ApiKey, elapsed: Duration, codes: impl FnOnce(&mut dyn FnMut(i16))) {
    if !super::enabled() {
        return;
    }
    let Some(s) = stats(api) else { return };
    s.requests.fetch_add(1, Ordering::Relaxed);
    let secs = elapsed.as_secs_f64();
    let bucket = LATENCY_BUCKETS
        .iter()
        .position(|&b| secs <= b)
        .unwrap_or(LATENCY_BUCKETS.len());
    s.buckets[bucket].fetch_add(1, Ordering::Relaxed);
    s.sum_nanos.fetch_add(
        u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
    codes(&mut |code| {
        if code != 0 {
            let i = usize::try_from(i32::from(code) + 1)
                .ok()
                .filter(|&i| i < CODES - 1)
                .unwrap_or(CODES - 1);
            s.errors[i].fetch_add(1, Ordering::Relaxed);
        }
    });
}

/// The request families, for `/metrics`.
pub fn render(out: &mut String) {
    let mut requests = Family::new(
        "floe_requests_total",
        "Requests answered, by API.",
        Kind::Counter,
    );
    let mut errors = Family::new(
        "floe_request_errors_total",
        "Error codes in responses (per partition, group or resource they apply to), by API and Kafka error name.",
        Kind::Counter,
    );
    let mut latency = Family::new(
        "floe_request_seconds",
        "Time from a request's arrival to its response being ready (before it is written), by API.",
        Kind::Histogram,
    );
    for (key, s) in STATS.iter().enumerate() {
        let count = s.requests.load(Ordering::Relaxed);
        if count == 0 {
            continue;
        }
        let Some(name) = i16::try_from(key)
            .ok()
            .and_then(|k| ApiKey::try_from(k).ok())
        else {
            continue;
        };
        let api = format!("{name:?}");
        requests.sample(&[("api", &api)], count as f64);
        for (i, n) in s.errors.iter().enumerate() {
            let n = n.load(Ordering::Relaxed);
            if n > 0 {
                let error = if i == CODES - 1 {
                    "UNKNOWN_CODE".to_string()
                } else {
                    super::errors::error_name(i as i16 - 1)
                };
                errors.sample(&[("api", &api), ("error", &error)], n as f64);
            }
        }
        let counts: Vec<u64> = s
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let sum = s.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        latency.histogram(&[("api", &api)], &LATENCY_BUCKETS, &counts, sum);
    }
    requests.write(out);
    errors.write(out);
    latency.write(out);
}

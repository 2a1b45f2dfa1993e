//! Client quotas as Kafka enforces them: `producer_byte_rate`, `consumer_byte_rate` and
//! `request_percentage` per user and client id, and `connection_creation_rate` per client
//! address. Set with AlterClientQuotas (`handlers/alter_client_quotas.rs`), kept in the
//! metadata store (`SecurityMetadata::client_quotas`), handed to [`Quotas::set_records`].
//!
//! The connection layer records what each client does ([`Quotas::record_produce`], ...)
//! and gets back how long to throttle it: it puts that in the response's
//! `throttle_time_ms` and stops reading from the connection for that long, as Kafka mutes
//! the channel. A throttle is Kafka's: the time for the client's rate, measured over
//! `quota_window_num` windows of `quota_window_size_seconds` ([`rate`]), to come back
//! down to its quota if nothing more were recorded ([`rate::throttle_ms`]). Which quota
//! applies to a client, and which clients share a rate, follows Kafka's precedence of
//! entities ([`table`]).
//!
//! Bounded: at most [`MAX_SENSORS`] rates per kind of quota, idle ones dropped after an
//! hour ([`sensors`]); clients without a quota get no rate at all. With no quota of a kind
//! configured, recording it costs one atomic load.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::metadata_store::ClientQuotaRecord;

pub mod entity;
pub mod rate;
mod sensors;
pub mod table;

#[cfg(test)]
mod handler_tests;
#[cfg(test)]
mod tests;

use rate::{Rate, RateConfig};
use sensors::{INACTIVE_SENSOR_EXPIRY_MS, Sensors};
use table::{ClientQuotaTable, IpQuotaTable, SensorKey, Tables};

/// The most rate sensors kept for one kind of quota (each is a few hundred bytes).
pub const MAX_SENSORS: usize = 16_384;

/// One kind of user/client-id quota: its table, its sensors, how it is turned into a
/// throttle.
#[derive(Debug)]
struct ClientQuota {
    /// Whether any quota of this kind is configured: the lock-free fast path.
    active: AtomicBool,
    table: RwLock<ClientQuotaTable>,
    sensors: Sensors<SensorKey>,
    /// The longest throttle this kind hands out.
    max_throttle_ms: u64,
}

impl ClientQuota {
    fn new(max_throttle_ms: u64) -> ClientQuota {
        ClientQuota {
            active: AtomicBool::new(false),
            table: RwLock::new(ClientQuotaTable::default()),
            sensors: Sensors::new(MAX_SENSORS, INACTIVE_SENSOR_EXPIRY_MS),
            max_throttle_ms,
        }
    }

    fn install(&self, table: ClientQuotaTable) {
        let active = !table.is_empty();
        *self.table.write().unwrap_or_else(PoisonError::into_inner) = table;
        self.active.store(active, Ordering::Release);
        if !active {
            self.sensors.clear();
        }
    }

    /// The sensor and quota of (`user`, `client_id`), if a quota applies.
    fn resolve(&self, user: &str, client_id: &str) -> Option<(SensorKey, f64)> {
        if !self.active.load(Ordering::Acquire) {
            return None;
        }
        let table = self.table.read().unwrap_or_else(PoisonError::into_inner);
        let (scope, quota) = table.resolve(user, client_id)?;
        Some((SensorKey::new(scope, user, client_id), quota))
    }
}

/// Connection creation rate quotas by client address.
#[derive(Debug)]
struct ConnectionQuota {
    active: AtomicBool,
    table: RwLock<IpQuotaTable>,
    sensors: Sensors<IpAddr>,
    max_throttle_ms: u64,
}

/// Every client quota of the broker and the rates measured against them.
#[derive(Debug)]
pub struct Quotas {
    config: RateConfig,
    /// Time zero of the millisecond clock the rates run on.
    epoch: Instant,
    produce: ClientQuota,
    fetch: ClientQuota,
    request: ClientQuota,
    connections: ConnectionQuota,
}

impl Quotas {
    /// The quotas of the stored `records`, measured over the configured windows.
    pub fn new(config: &Config, records: &[ClientQuotaRecord]) -> Quotas {
        let rate = RateConfig::new(config.quota_window_size_seconds, config.quota_window_num);
        // Kafka bounds the request-time and connection throttles to one window. Byte-rate
        // throttles are bounded by the whole measured span: once that long has passed
        // without a record every sample has expired and the rate is zero, so a longer
        // wait could bring nothing further down.
        let quotas = Quotas {
            config: rate,
            epoch: Instant::now(),
            produce: ClientQuota::new(rate.span_ms()),
            fetch: ClientQuota::new(rate.span_ms()),
            request: ClientQuota::new(rate.window_ms),
            connections: ConnectionQuota {
                active: AtomicBool::new(false),
                table: RwLock::new(IpQuotaTable::default()),
                sensors: Sensors::new(MAX_SENSORS, INACTIVE_SENSOR_EXPIRY_MS),
                max_throttle_ms: rate.window_ms,
            },
        };
        quotas.set_records(records);
        quotas
    }

    /// Replaces the configured quotas (after AlterClientQuotas persisted them). Measured
    /// rates are kept: a client's history counts against its new quota, as in Kafka.
    pub fn set_records(&self, records: &[ClientQuotaRecord]) {
        let tables = Tables::build(records);
        self.produce.install(tables.produce);
        self.fetch.install(tables.fetch);
        self.request.install(tables.request);
        let connections_active = !tables.connections.is_empty();
        *self
            .connections
            .table
            .write()
            .unwrap_or_else(PoisonError::into_inner) = tables.connections;
        self.connections
            .active
            .store(connections_active, Ordering::Release);
        if !connections_active {
            self.connections.sensors.clear();
        }
    }

    /// Whether any quota is configured.
    pub fn enabled(&self) -> bool {
        [&self.produce, &self.fetch, &self.request]
            .iter()
            .any(|q| q.active.load(Ordering::Acquire))
            || self.connections.active.load(Ordering::Acquire)
    }

    /// Records the request bytes of a Produce against `producer_byte_rate`; returns how
    /// long to throttle the client (zero within its quota).
    pub fn record_produce(
        &self,
        user: &str,
        client_id: &str,
        bytes: u64,
        now: Instant,
    ) -> Duration {
        self.record(&self.produce, user, client_id, bytes as f64, now)
    }

    /// Records the response bytes of a consumer's Fetch against `consumer_byte_rate`;
    /// returns how long to throttle the client (zero within its quota). Kafka answers a
    /// fetch that is throttled with an empty response and takes its bytes back
    /// ([`Quotas::unrecord_fetch`]).
    pub fn record_fetch(&self, user: &str, client_id: &str, bytes: u64, now: Instant) -> Duration {
        self.record(&self.fetch, user, client_id, bytes as f64, now)
    }

    /// Takes back bytes [`Quotas::record_fetch`] recorded, for a fetch answered empty.
    pub fn unrecord_fetch(&self, user: &str, client_id: &str, bytes: u64, now: Instant) {
        let Some((key, _)) = self.fetch.resolve(user, client_id) else {
            return;
        };
        let now_ms = self.ms(now);
        self.fetch.sensors.with(key, now_ms, |rate| {
            rate.record(&self.config, -(bytes as f64), now_ms)
        });
    }

    /// The most bytes one fetch response may carry without being certain to exceed the
    /// client's `consumer_byte_rate` (Kafka's `maxValueInQuotaWindow`: the quota times the
    /// span of all windows but the current one); `None` without a quota.
    pub fn fetch_max_bytes(&self, user: &str, client_id: &str) -> Option<u64> {
        let (_, quota) = self.fetch.resolve(user, client_id)?;
        let span_ms = (self.config.samples - 1).saturating_mul(self.config.window_ms);
        let span_seconds = span_ms as f64 / 1000.0;
        Some((quota * span_seconds).min(u64::MAX as f64) as u64)
    }

    /// Records time a request of the client kept a handler busy against
    /// `request_percentage` (percent of one thread, measured per second, as Kafka does);
    /// returns how long to throttle the client, at most one window.
    pub fn record_request_time(
        &self,
        user: &str,
        client_id: &str,
        busy: Duration,
        now: Instant,
    ) -> Duration {
        // Kafka's NANOS_TO_PERCENTAGE_PER_SECOND: a second of thread time is 100 %.
        let percent_seconds = busy.as_secs_f64() * 100.0;
        self.record(&self.request, user, client_id, percent_seconds, now)
    }

    /// Counts a new connection from `ip` against its `connection_creation_rate`.
    /// `Err(wait)`: over the quota; the connection is not counted and should be refused
    /// (Kafka keeps it open without reading for `wait`, then closes it).
    pub fn allow_connection(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let connections = &self.connections;
        if !connections.active.load(Ordering::Acquire) {
            return Ok(());
        }
        let ip = ip.to_canonical();
        let quota = connections
            .table
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .resolve(ip);
        let Some(quota) = quota else { return Ok(()) };
        let now_ms = self.ms(now);
        let throttle = connections.sensors.with(ip, now_ms, |rate| {
            let throttle = self.measure_after(rate, 1.0, quota, now_ms);
            let throttle = to_duration(throttle, connections.max_throttle_ms);
            if !throttle.is_zero() {
                // Refused: it does not count.
                rate.record(&self.config, -1.0, now_ms);
            }
            throttle
        });
        if throttle.is_zero() {
            Ok(())
        } else {
            Err(throttle)
        }
    }

    fn record(
        &self,
        quota: &ClientQuota,
        user: &str,
        client_id: &str,
        value: f64,
        now: Instant,
    ) -> Duration {
        let Some((key, bound)) = quota.resolve(user, client_id) else {
            return Duration::ZERO;
        };
        let now_ms = self.ms(now);
        let throttle_ms = quota.sensors.with(key, now_ms, |rate| {
            self.measure_after(rate, value, bound, now_ms)
        });
        to_duration(throttle_ms, quota.max_throttle_ms)
    }

    /// Records `value` and returns the throttle (ms) the rate then calls for.
    fn measure_after(&self, rate: &mut Rate, value: f64, bound: f64, now_ms: u64) -> f64 {
        rate.record(&self.config, value, now_ms);
        let observed = rate.measure(&self.config, now_ms);
        if observed <= bound {
            return 0.0;
        }
        rate::throttle_ms(observed, bound, rate.window_size_ms(&self.config, now_ms))
    }

    /// `now` on the millisecond clock the rates run on.
    fn ms(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }
}

/// A throttle in milliseconds, rounded as Kafka rounds it, at most `max_ms`.
fn to_duration(throttle_ms: f64, max_ms: u64) -> Duration {
    if throttle_ms.is_nan() || throttle_ms < 0.5 {
        return Duration::ZERO;
    }
    let ms = throttle_ms.round();
    if ms >= max_ms as f64 {
        Duration::from_millis(max_ms)
    } else {
        Duration::from_millis(ms as u64)
    }
}

//! The rate sensors of one kind of quota, by entity: bounded and self-cleaning.
//!
//! Client ids and addresses are chosen by whoever connects, so the map must not grow with
//! them. A sensor idle for longer than its expiry (Kafka: one hour) is dropped the next
//! time its shard is swept (at most once a minute per shard, on access). A shard that is
//! full when a new entity arrives first drops its idle sensors and, if still full, the one
//! recorded into longest ago: an entity that loses its sensor starts again from an empty
//! rate, which only matters to someone with more live entities than the bound.
//!
//! The map is split into shards, each behind its own mutex, so that connections of
//! different clients rarely wait for one another; a lock is held only to update one rate.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::{Mutex, PoisonError};

use super::rate::Rate;

/// Kafka's `INACTIVE_SENSOR_EXPIRATION_TIME_SECONDS`, in milliseconds.
pub const INACTIVE_SENSOR_EXPIRY_MS: u64 = 3_600_000;

/// How often a shard looks for idle sensors when it is used.
const SWEEP_INTERVAL_MS: u64 = 60_000;

/// Number of shards.
const SHARDS: usize = 16;

/// One entity's rate and when it was last recorded into.
#[derive(Debug)]
struct Sensor {
    rate: Rate,
    last_record_ms: u64,
}

#[derive(Debug)]
struct Shard<K> {
    sensors: HashMap<K, Sensor, RandomState>,
    last_sweep_ms: u64,
}

impl<K: Hash + Eq + Clone> Shard<K> {
    fn sweep(&mut self, now_ms: u64, expiry_ms: u64) {
        self.sensors
            .retain(|_, s| now_ms.saturating_sub(s.last_record_ms) <= expiry_ms);
        self.last_sweep_ms = now_ms;
    }

    /// Frees a slot in a full shard: idle sensors first, else the least recently used.
    fn make_room(&mut self, now_ms: u64, expiry_ms: u64, capacity: usize) {
        self.sweep(now_ms, expiry_ms);
        while self.sensors.len() >= capacity {
            let oldest = self
                .sensors
                .iter()
                .min_by_key(|(_, s)| s.last_record_ms)
                .map(|(k, _)| k.clone());
            let Some(oldest) = oldest else { break };
            self.sensors.remove(&oldest);
        }
    }
}

/// Rate sensors by entity key, at most `capacity` of them.
#[derive(Debug)]
pub struct Sensors<K> {
    shards: Box<[Mutex<Shard<K>>]>,
    hasher: RandomState,
    shard_capacity: usize,
    expiry_ms: u64,
}

impl<K: Hash + Eq + Clone> Sensors<K> {
    /// A map of at most `capacity` sensors (rounded up to a multiple of the shard count),
    /// dropping sensors idle for longer than `expiry_ms`.
    pub fn new(capacity: usize, expiry_ms: u64) -> Sensors<K> {
        let hasher = RandomState::new();
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    sensors: HashMap::with_hasher(hasher.clone()),
                    last_sweep_ms: 0,
                })
            })
            .collect();
        Sensors {
            shards,
            hasher,
            shard_capacity: capacity.div_ceil(SHARDS).max(1),
            expiry_ms,
        }
    }

    fn shard(&self, key: &K) -> std::sync::MutexGuard<'_, Shard<K>> {
        let index = (self.hasher.hash_one(key) % SHARDS as u64) as usize;
        self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the rate of `key` (created empty if absent) at `now_ms`.
    pub fn with<R>(&self, key: K, now_ms: u64, f: impl FnOnce(&mut Rate) -> R) -> R {
        let mut shard = self.shard(&key);
        if now_ms.saturating_sub(shard.last_sweep_ms) >= SWEEP_INTERVAL_MS {
            shard.sweep(now_ms, self.expiry_ms);
        }
        if shard.sensors.len() >= self.shard_capacity && !shard.sensors.contains_key(&key) {
            shard.make_room(now_ms, self.expiry_ms, self.shard_capacity);
        }
        let sensor = shard.sensors.entry(key).or_insert_with(|| Sensor {
            rate: Rate::default(),
            last_record_ms: now_ms,
        });
        sensor.last_record_ms = sensor.last_record_ms.max(now_ms);
        f(&mut sensor.rate)
    }

    /// Drops every sensor (the quota kind was turned off).
    pub fn clear(&self) {
        for shard in self.shards.iter() {
            let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            shard.sensors = HashMap::with_hasher(self.hasher.clone());
        }
    }

    /// Drops the sensors idle at `now_ms` in every shard.
    #[cfg(test)]
    pub fn sweep(&self, now_ms: u64) {
        for shard in self.shards.iter() {
            shard
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .sweep(now_ms, self.expiry_ms);
        }
    }

    /// How many sensors exist.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .sensors
                    .len()
            })
            .sum()
    }

    /// The most sensors the map holds.
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.shard_capacity * SHARDS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::quota::rate::RateConfig;

    const CONFIG: RateConfig = RateConfig {
        window_ms: 1000,
        samples: 11,
    };

    #[test]
    fn idle_sensors_are_dropped_after_the_expiry() {
        let sensors: Sensors<String> = Sensors::new(1024, INACTIVE_SENSOR_EXPIRY_MS);
        sensors.with("a".into(), 0, |r| r.record(&CONFIG, 1.0, 0));
        sensors.with("b".into(), 1_000, |r| r.record(&CONFIG, 1.0, 1_000));
        assert_eq!(sensors.len(), 2);
        // "b" is used again within the hour, "a" is not.
        sensors.with("b".into(), 3_000_000, |r| r.record(&CONFIG, 1.0, 3_000_000));
        sensors.sweep(INACTIVE_SENSOR_EXPIRY_MS + 1);
        assert_eq!(sensors.len(), 1);
        // Sweeping also happens on use, without an explicit call: a new key in the shard
        // of "b" an hour after "b" was last used.
        let shard_of = |k: &str| sensors.hasher.hash_one(k) % SHARDS as u64;
        let neighbour = (0..)
            .map(|i| format!("c{i}"))
            .find(|k| shard_of(k) == shard_of("b"))
            .unwrap();
        let later = 3_000_000 + INACTIVE_SENSOR_EXPIRY_MS + SWEEP_INTERVAL_MS + 1;
        sensors.with(neighbour, later, |r| r.record(&CONFIG, 1.0, later));
        assert_eq!(sensors.len(), 1);
    }

    #[test]
    fn the_map_never_exceeds_its_capacity() {
        let sensors: Sensors<u32> = Sensors::new(64, INACTIVE_SENSOR_EXPIRY_MS);
        assert_eq!(sensors.capacity(), 64);
        for i in 0..10_000u32 {
            let now = u64::from(i);
            sensors.with(i, now, |r| r.record(&CONFIG, 1.0, now));
            assert!(sensors.len() <= 64);
        }
    }

    #[test]
    fn a_full_shard_drops_its_least_recently_used_sensor() {
        let sensors: Sensors<u32> = Sensors::new(1, INACTIVE_SENSOR_EXPIRY_MS);
        // One sensor per shard: find two keys that share a shard.
        let shard_of = |k: u32| sensors.hasher.hash_one(k) % SHARDS as u64;
        let a = 0u32;
        let b = (1..).find(|k| shard_of(*k) == shard_of(a)).unwrap();
        sensors.with(a, 0, |r| r.record(&CONFIG, 5.0, 0));
        sensors.with(b, 10, |r| r.record(&CONFIG, 5.0, 10));
        // `a` was evicted: its rate starts from nothing.
        let total = sensors.with(a, 20, |r| r.measure(&CONFIG, 20));
        assert_eq!(total, 0.0);
    }
}

//! The quota manager as the connection layer drives it: throttle times, who shares a
//! rate, bounded memory, connection creation rates.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::entity::{
    CLIENT_ID, CONNECTION_CREATION_RATE, CONSUMER_BYTE_RATE, IP, PRODUCER_BYTE_RATE,
    REQUEST_PERCENTAGE, USER,
};
use super::*;

fn record(entity: &[(&str, Option<&str>)], quotas: &[(&str, f64)]) -> ClientQuotaRecord {
    ClientQuotaRecord {
        entity: entity
            .iter()
            .map(|(t, n)| (t.to_string(), n.map(str::to_string)))
            .collect(),
        quotas: quotas.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
    }
}

/// Quotas over Kafka's default windows (11 of 1 s) and a start time after their epoch.
fn quotas(records: &[ClientQuotaRecord]) -> (Quotas, Instant) {
    let quotas = Quotas::new(&Config::default(), records);
    let start = quotas.epoch + Duration::from_secs(1);
    (quotas, start)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A producer that sends `chunk` bytes every `interval` unless throttled, and then waits
/// the throttle out before sending again (what clients do with `throttle_time_ms` and a
/// muted channel). Returns the bytes accepted in `duration` and the largest throttle.
fn closed_loop_producer(
    quotas: &Quotas,
    client_id: &str,
    start: Instant,
    chunk: u64,
    interval: Duration,
    duration: Duration,
) -> (u64, Duration) {
    let mut now = start;
    let mut sent = 0;
    let mut max_throttle = Duration::ZERO;
    while now < start + duration {
        sent += chunk;
        let throttle = quotas.record_produce("ANONYMOUS", client_id, chunk, now);
        max_throttle = max_throttle.max(throttle);
        now += interval.max(throttle);
    }
    (sent, max_throttle)
}

#[test]
fn a_producer_under_its_quota_is_never_throttled() {
    let (quotas, start) = quotas(&[record(
        &[(CLIENT_ID, Some("app"))],
        &[(PRODUCER_BYTE_RATE, 1000.0)],
    )]);
    // 500 B/s against 1000 B/s.
    let (_, max_throttle) =
        closed_loop_producer(&quotas, "app", start, 50, ms(100), Duration::from_secs(60));
    assert_eq!(max_throttle, Duration::ZERO);
}

#[test]
fn a_producer_at_twice_its_quota_is_brought_down_to_it() {
    let (quotas, start) = quotas(&[record(
        &[(CLIENT_ID, Some("app"))],
        &[(PRODUCER_BYTE_RATE, 1000.0)],
    )]);
    // Wants 2000 B/s. The first ten seconds' worth of quota is the burst Kafka's padded
    // windows allow; after that the throttles hold it at the quota.
    let duration = Duration::from_secs(300);
    let (sent, max_throttle) = closed_loop_producer(&quotas, "app", start, 200, ms(100), duration);
    assert!(max_throttle > Duration::ZERO);
    let achieved = sent as f64 / duration.as_secs_f64();
    assert!(
        (achieved - 1000.0).abs() < 1000.0 * 0.1,
        "achieved {achieved} B/s against a quota of 1000 B/s"
    );
}

#[test]
fn waiting_the_throttle_out_brings_the_rate_to_the_quota() {
    let (quotas, start) = quotas(&[record(
        &[(CLIENT_ID, Some("app"))],
        &[(PRODUCER_BYTE_RATE, 1000.0)],
    )]);
    // 1500 B/s for 20 s, ignoring throttles.
    let mut throttle = Duration::ZERO;
    let mut now = start;
    for _ in 0..200 {
        throttle = quotas.record_produce("u", "app", 150, now);
        now += ms(100);
    }
    let last = now - ms(100);
    // About 1500 B/s over a span of about 11 s: (1500 - 1000) / 1000 * 11 s.
    assert!(
        throttle > Duration::from_secs(5) && throttle < Duration::from_secs(6),
        "{throttle:?}"
    );
    // After the throttle, with nothing recorded, the rate is back within the quota.
    let key = SensorKey::new(table::Scope::ClientId, "u", "app");
    let at = quotas.ms(last + throttle);
    let rate = quotas
        .produce
        .sensors
        .with(key, at, |r| r.measure(&quotas.config, at));
    assert!(rate <= 1000.0 * 1.01, "{rate} B/s after the throttle");
}

#[test]
fn throttles_are_bounded_by_kind() {
    let (quotas, start) = quotas(&[record(
        &[(USER, None)],
        &[(PRODUCER_BYTE_RATE, 1.0), (REQUEST_PERCENTAGE, 1.0)],
    )]);
    // A gigabyte against one byte per second: at most the whole span (11 s).
    let throttle = quotas.record_produce("alice", "app", 1 << 30, start);
    assert_eq!(throttle, Duration::from_secs(11));
    // Request time is bounded to one window, as Kafka bounds it.
    let throttle = quotas.record_request_time("alice", "app", Duration::from_secs(5), start);
    assert_eq!(throttle, Duration::from_secs(1));
}

#[test]
fn request_percentage_is_percent_of_one_thread() {
    let (quotas, start) = quotas(&[record(
        &[(USER, Some("alice"))],
        &[(REQUEST_PERCENTAGE, 50.0)],
    )]);
    // 20 ms of handler time every 100 ms is 20 % of a thread: within 50 %.
    let mut now = start;
    for _ in 0..300 {
        let throttle = quotas.record_request_time("alice", "a", ms(20), now);
        assert_eq!(throttle, Duration::ZERO);
        now += ms(100);
    }
    // A thread kept busy all the time (100 %) is throttled once the padding is used up.
    let mut throttled = false;
    for _ in 0..300 {
        let throttle = quotas.record_request_time("alice", "a", ms(100), now);
        assert!(throttle <= Duration::from_secs(1));
        throttled |= throttle > Duration::ZERO;
        now += ms(100);
    }
    assert!(throttled);
}

#[test]
fn clients_at_the_user_level_share_one_rate() {
    let (quotas, start) = quotas(&[
        record(&[(USER, Some("alice"))], &[(PRODUCER_BYTE_RATE, 100.0)]),
        record(&[(CLIENT_ID, None)], &[(PRODUCER_BYTE_RATE, 100.0)]),
    ]);
    // 1000 bytes fill alice's padded span (100 B/s over 10 s), whichever client sends.
    assert_eq!(
        quotas.record_produce("alice", "one", 1000, start),
        Duration::ZERO
    );
    assert!(quotas.record_produce("alice", "two", 100, start) > Duration::ZERO);
    // Anonymous clients fall to the default client-id quota, one rate per client id.
    assert_eq!(
        quotas.record_produce("ANONYMOUS", "one", 1000, start),
        Duration::ZERO
    );
    assert_eq!(
        quotas.record_produce("ANONYMOUS", "two", 1000, start),
        Duration::ZERO
    );
    assert!(quotas.record_produce("ANONYMOUS", "two", 100, start) > Duration::ZERO);
}

#[test]
fn fetches_count_against_the_consumer_quota_only() {
    let (quotas, start) = quotas(&[record(
        &[(CLIENT_ID, Some("c"))],
        &[(CONSUMER_BYTE_RATE, 100.0)],
    )]);
    assert_eq!(
        quotas.record_produce("u", "c", 1 << 20, start),
        Duration::ZERO
    );
    assert!(quotas.record_fetch("u", "c", 2000, start) > Duration::ZERO);
    // Taken back (the throttled fetch was answered empty), the rate is as before.
    quotas.unrecord_fetch("u", "c", 2000, start);
    assert_eq!(quotas.record_fetch("u", "c", 900, start), Duration::ZERO);
    assert_eq!(quotas.fetch_max_bytes("u", "c"), Some(1000));
    assert_eq!(quotas.fetch_max_bytes("u", "other"), None);
}

#[test]
fn without_quotas_nothing_is_measured() {
    let (quotas, start) = quotas(&[]);
    assert!(!quotas.enabled());
    assert_eq!(
        quotas.record_produce("u", "c", u64::MAX, start),
        Duration::ZERO
    );
    assert_eq!(
        quotas.record_fetch("u", "c", u64::MAX, start),
        Duration::ZERO
    );
    assert_eq!(
        quotas.record_request_time("u", "c", Duration::MAX, start),
        Duration::ZERO
    );
    assert_eq!(
        quotas.allow_connection(IpAddr::from([10, 0, 0, 1]), start),
        Ok(())
    );
    assert_eq!(quotas.produce.sensors.len(), 0);
    assert_eq!(quotas.connections.sensors.len(), 0);
}

#[test]
fn clients_without_a_quota_get_no_sensor() {
    let (quotas, start) = quotas(&[record(
        &[(USER, Some("alice"))],
        &[(PRODUCER_BYTE_RATE, 100.0)],
    )]);
    assert!(quotas.enabled());
    for i in 0..100 {
        let client_id = format!("c{i}");
        assert_eq!(
            quotas.record_produce("bob", &client_id, 1 << 20, start),
            Duration::ZERO
        );
    }
    assert_eq!(quotas.produce.sensors.len(), 0);
}

#[test]
fn sensors_are_bounded_whatever_client_ids_arrive() {
    let (quotas, start) = quotas(&[record(&[(CLIENT_ID, None)], &[(PRODUCER_BYTE_RATE, 100.0)])]);
    for i in 0..(MAX_SENSORS * 2) {
        quotas.record_produce("ANONYMOUS", &format!("client-{i}"), 1, start);
    }
    assert!(quotas.produce.sensors.len() <= MAX_SENSORS);
}

#[test]
fn idle_sensors_expire_after_an_hour() {
    let (quotas, start) = quotas(&[record(&[(CLIENT_ID, None)], &[(PRODUCER_BYTE_RATE, 100.0)])]);
    for i in 0..50 {
        quotas.record_produce("ANONYMOUS", &format!("client-{i}"), 1, start);
    }
    assert_eq!(quotas.produce.sensors.len(), 50);
    let later = start + Duration::from_secs(3600) + Duration::from_secs(61);
    quotas.produce.sensors.sweep(quotas.ms(later));
    assert_eq!(quotas.produce.sensors.len(), 0);
}

#[test]
fn removing_every_quota_turns_measuring_off() {
    let (quotas, start) = quotas(&[record(&[(CLIENT_ID, None)], &[(PRODUCER_BYTE_RATE, 100.0)])]);
    quotas.record_produce("ANONYMOUS", "app", 1, start);
    assert_eq!(quotas.produce.sensors.len(), 1);
    quotas.set_records(&[]);
    assert!(!quotas.enabled());
    assert_eq!(quotas.produce.sensors.len(), 0);
}

#[test]
fn a_changed_quota_applies_to_the_rate_already_measured() {
    let (quotas, start) = quotas(&[record(
        &[(CLIENT_ID, Some("app"))],
        &[(PRODUCER_BYTE_RATE, 1000.0)],
    )]);
    assert_eq!(
        quotas.record_produce("u", "app", 5000, start),
        Duration::ZERO
    );
    quotas.set_records(&[record(
        &[(CLIENT_ID, Some("app"))],
        &[(PRODUCER_BYTE_RATE, 100.0)],
    )]);
    assert!(quotas.record_produce("u", "app", 1, start) > Duration::ZERO);
}

#[test]
fn connection_creation_rate_is_limited_per_address() {
    let (quotas, start) = quotas(&[
        record(&[(IP, None)], &[(CONNECTION_CREATION_RATE, 5.0)]),
        record(
            &[(IP, Some("10.0.0.9"))],
            &[(CONNECTION_CREATION_RATE, 100.0)],
        ),
    ]);
    let a = IpAddr::from([10, 0, 0, 1]);
    // 5 per second over the padded ten seconds: 50 connections at once are accepted.
    for _ in 0..50 {
        assert_eq!(quotas.allow_connection(a, start), Ok(()));
    }
    let wait = quotas.allow_connection(a, start).unwrap_err();
    // (5.1 - 5) / 5 * 10 s = 200 ms, and a refused connection does not count.
    assert_eq!(wait, ms(200));
    assert_eq!(quotas.allow_connection(a, start).unwrap_err(), ms(200));
    // Another address has its own rate; this one has its own quota.
    let b = IpAddr::from([10, 0, 0, 2]);
    assert_eq!(quotas.allow_connection(b, start), Ok(()));
    let special = IpAddr::from([10, 0, 0, 9]);
    for _ in 0..60 {
        assert_eq!(quotas.allow_connection(special, start), Ok(()));
    }
    // The same address over IPv6 (a dual-stack listener) shares the rate.
    let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
    assert!(quotas.allow_connection(mapped, start).is_err());
    // After the wait the next connection is accepted.
    assert_eq!(quotas.allow_connection(a, start + wait), Ok(()));
}

#[test]
fn connection_throttles_are_at_most_one_window() {
    let (quotas, start) = quotas(&[record(
        &[(IP, Some("10.0.0.1"))],
        &[(CONNECTION_CREATION_RATE, 1.0)],
    )]);
    let a = IpAddr::from([10, 0, 0, 1]);
    let mut refused = 0;
    for _ in 0..100 {
        if let Err(wait) = quotas.allow_connection(a, start) {
            assert!(wait <= Duration::from_secs(1));
            refused += 1;
        }
    }
    assert_eq!(refused, 90);
    // Addresses without a quota are not limited.
    assert_eq!(
        quotas.allow_connection(IpAddr::from([10, 0, 0, 2]), start),
        Ok(())
    );
}

#[test]
fn times_before_the_epoch_do_not_panic() {
    let (quotas, _) = quotas(&[record(&[(CLIENT_ID, None)], &[(PRODUCER_BYTE_RATE, 100.0)])]);
    let before = quotas.epoch.checked_sub(Duration::from_secs(10));
    if let Some(before) = before {
        quotas.record_produce("u", "c", 10, before);
    }
}

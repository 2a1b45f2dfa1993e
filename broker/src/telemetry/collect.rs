//! Metrics computed when `/metrics` is scraped, from the broker's state as it is: partition
//! logs, produce and fetch traffic, consumer group lag, tableflow lag, connections. Nothing
//! here is kept between scrapes, so a deleted topic or group simply stops being reported.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use super::text::{Family, Kind};
use crate::state::Broker;

/// Appends every family computed from `broker` to `out`.
pub fn render(broker: &Broker, out: &mut String) {
    connections(out);
    partitions(broker, out);
    groups(broker, out);
    tableflow(broker, out);
}

fn connections(out: &mut String) {
    let gauge = |name, help, value: u64, out: &mut String| {
        let mut f = Family::new(name, help, Kind::Gauge);
        f.sample(&[], value as f64);
        f.write(out);
    };
    gauge(
        "floe_connections",
        "Client connections open.",
        super::CONNECTIONS.load(Ordering::Relaxed),
        out,
    );
    let mut accepted = Family::new(
        "floe_connections_accepted_total",
        "Client connections accepted.",
        Kind::Counter,
    );
    accepted.sample(&[], super::ACCEPTED.load(Ordering::Relaxed) as f64);
    accepted.write(out);
    let mut refused = Family::new(
        "floe_connections_refused_total",
        "Client connections closed at once by max.connections or max.connections.per.ip.",
        Kind::Counter,
    );
    refused.sample(&[], super::REFUSED.load(Ordering::Relaxed) as f64);
    refused.write(out);
    for (name, help, value) in [
        (
            "floe_sasl_authentication_failures_total",
            "SASL authentications that failed (wrong credentials, malformed tokens).",
            &super::AUTH_FAILURES,
        ),
        (
            "floe_sasl_reauthentications_total",
            "SASL sessions renewed by re-authentication on their connection (KIP-368).",
            &super::REAUTHENTICATIONS,
        ),
        (
            "floe_tls_handshake_failures_total",
            "TLS handshakes that failed or timed out (plaintext clients on a TLS port included).",
            &super::TLS_HANDSHAKE_FAILURES,
        ),
    ] {
        let mut f = Family::new(name, help, Kind::Counter);
        f.sample(&[], value.load(Ordering::Relaxed) as f64);
        f.write(out);
    }
    gauge(
        "floe_response_queued_bytes",
        "Bytes of responses ready and not yet written to their sockets.",
        super::QUEUED_RESPONSE_BYTES.load(Ordering::Relaxed),
        out,
    );
    gauge(
        "floe_io_uring_in_flight",
        "Storage operations submitted to io_uring and not yet completed (0 on the std backend).",
        floe_storage::io::uring_in_flight(),
        out,
    );
}

fn partitions(broker: &Broker, out: &mut String) {
    let mut size = Family::new(
        "floe_log_size_bytes",
        "Bytes of a partition's segment files on local disk.",
        Kind::Gauge,
    );
    let mut segments = Family::new(
        "floe_log_segments",
        "Segments of a partition on local disk.",
        Kind::Gauge,
    );
    let mut start = Family::new(
        "floe_log_start_offset",
        "First offset of a partition's log.",
        Kind::Gauge,
    );
    let mut end = Family::new(
        "floe_log_end_offset",
        "Offset the next record of a partition will get (its high watermark).",
        Kind::Gauge,
    );
    let mut stable = Family::new(
        "floe_log_stable_offset",
        "Last stable offset of a partition (below it no transaction is open).",
        Kind::Gauge,
    );
    // Per topic: bytes in, records in, bytes out, records out.
    let mut traffic: BTreeMap<String, [u64; 4]> = BTreeMap::new();
    for topic in broker.topics.list() {
        let sums = traffic.entry(topic.name.clone()).or_default();
        for p in 0..topic.record.partitions {
            let Some(log) = broker.topics.partition(&topic.name, p) else {
                continue;
            };
            let partition = p.to_string();
            let labels = [("topic", topic.name.as_str()), ("partition", &partition)];
            size.sample(&labels, log.size_bytes() as f64);
            segments.sample(&labels, log.segment_count() as f64);
            start.sample(&labels, log.log_start_offset() as f64);
            end.sample(&labels, log.high_watermark() as f64);
            stable.sample(&labels, log.last_stable_offset() as f64);
            let t = log.traffic().snapshot();
            sums[0] += t.bytes_in;
            sums[1] += t.records_in;
            sums[2] += t.bytes_out;
            sums[3] += t.records_out;
        }
    }
    for f in [size, segments, start, end, stable] {
        f.write(out);
    }
    let families = [
        (
            "floe_topic_bytes_in_total",
            "Bytes of record batches producers appended to a topic.",
        ),
        (
            "floe_topic_records_in_total",
            "Records producers appended to a topic.",
        ),
        (
            "floe_topic_bytes_out_total",
            "Bytes of record batches sent to consumers of a topic.",
        ),
        (
            "floe_topic_records_out_total",
            "Offsets sent to consumers of a topic, counted from each fetch offset (records, and the control records of transactions).",
        ),
    ];
    for (i, (name, help)) in families.into_iter().enumerate() {
        let mut f = Family::new(name, help, Kind::Counter);
        for (topic, sums) in &traffic {
            f.sample(&[("topic", topic)], sums[i] as f64);
        }
        f.write(out);
    }
}

fn groups(broker: &Broker, out: &mut String) {
    let mut committed = Family::new(
        "floe_group_committed_offset",
        "Offset a consumer group committed for a partition.",
        Kind::Gauge,
    );
    let mut lag = Family::new(
        "floe_group_lag",
        "Records between a group's committed offset and the partition's high watermark.",
        Kind::Gauge,
    );
    for (group, topic, partition, offset) in broker.groups.committed_offsets() {
        let Some(log) = broker.topics.partition(&topic, partition) else {
            continue;
        };
        let p = partition.to_string();
        let labels = [
            ("group", group.as_str()),
            ("topic", &topic),
            ("partition", &p),
        ];
        committed.sample(&labels, offset as f64);
        lag.sample(&labels, (log.high_watermark() - offset).max(0) as f64);
    }
    committed.write(out);
    lag.write(out);
}

fn tableflow(broker: &Broker, out: &mut String) {
    let mut records = Family::new(
        "floe_tableflow_lag_records",
        "Records of a partition not yet committed to its Iceberg table.",
        Kind::Gauge,
    );
    let mut seconds = Family::new(
        "floe_tableflow_lag_seconds",
        "Seconds since the oldest record of a partition not yet in its table was appended (0 when caught up).",
        Kind::Gauge,
    );
    for lag in broker.tableflow.lag() {
        let p = lag.partition.to_string();
        let labels = [("table", lag.table.as_str()), ("partition", &p)];
        records.sample(&labels, lag.records as f64);
        seconds.sample(&labels, lag.seconds);
    }
    records.write(out);
    seconds.write(out);
}

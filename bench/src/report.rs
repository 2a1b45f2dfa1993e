//! The JSON report and the side-by-side table, with the targets of the storage issue
//! checked against the numbers of this run.

use std::fmt::Write as _;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::ceilings::Ceilings;
use crate::load::{Acks, Latency};
use crate::{BrokerReport, RunArgs};

#[derive(Debug, Serialize)]
pub struct Report {
    pub timestamp: String,
    pub git: Git,
    pub machine: Machine,
    pub config: RunArgs,
    pub ceilings: Ceilings,
    pub floe: BrokerReport,
    pub tansu: Option<BrokerReport>,
    pub targets: Vec<Target>,
}

#[derive(Debug, Serialize)]
pub struct Git {
    pub revision: String,
    /// Tracked files differ from the revision (the measured binary is the work tree).
    pub dirty: bool,
}

#[derive(Debug, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub kernel: String,
    pub cpu_model: String,
    pub mem_total_bytes: u64,
    pub load_average_at_start: String,
}

/// One target of the issue, judged on this run.
#[derive(Debug, Serialize)]
pub struct Target {
    pub name: String,
    pub met: bool,
    pub detail: String,
}

/// `YYYYMMDDTHHMMSSZ` in UTC.
pub fn timestamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (proleptic Gregorian, 400-year eras).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn git() -> Git {
    let out = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    Git {
        revision: out(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into()),
        dirty: out(&["status", "--porcelain", "--untracked-files=no"])
            .is_some_and(|s| !s.is_empty()),
    }
}

fn machine() -> Machine {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu_model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default();
    let mem_total_bytes = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024);
    Machine {
        nproc: std::thread::available_parallelism().map_or(0, usize::from),
        kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        cpu_model,
        mem_total_bytes,
        load_average_at_start: read("/proc/loadavg").trim().to_owned(),
    }
}

impl BrokerReport {
    fn produce_mb(&self, acks: Acks, partitions: i32) -> Option<f64> {
        self.produce
            .iter()
            .find(|r| r.acks == acks && r.partitions == partitions)
            .map(|r| r.result.mb_per_sec)
    }

    fn produce_rps(&self, acks: Acks, partitions: i32) -> Option<f64> {
        self.produce
            .iter()
            .find(|r| r.acks == acks && r.partitions == partitions)
            .map(|r| r.result.records_per_sec)
    }

    /// Broker and client CPU seconds per GB (1e9 bytes) moved, for a produce run.
    fn produce_cpu(&self, acks: Acks, partitions: i32) -> (Option<f64>, Option<f64>) {
        self.produce
            .iter()
            .find(|r| r.acks == acks && r.partitions == partitions)
            .map_or((None, None), |r| cpu_per_gb(&r.result))
    }

    fn consume_cpu(&self, partitions: i32) -> (Option<f64>, Option<f64>) {
        self.consume
            .iter()
            .find(|r| r.partitions == partitions)
            .map_or((None, None), |r| cpu_per_gb(&r.result))
    }

    fn consume_mb(&self, partitions: i32) -> Option<f64> {
        self.consume
            .iter()
            .find(|r| r.partitions == partitions)
            .map(|r| r.result.mb_per_sec)
    }

    /// A small-request run; `backend` is Floe's configured backend (`auto` is the default
    /// configuration) and is ignored for the peer, which has one.
    fn latency(&self, acks: Acks, partitions: i32, backend: &str) -> Option<&Latency> {
        self.latency
            .iter()
            .find(|r| {
                r.acks == acks
                    && r.partitions == partitions
                    && (r.backend.is_empty() || r.backend == backend)
            })
            .map(|r| &r.result)
    }
}

fn cpu_per_gb(t: &crate::load::Throughput) -> (Option<f64>, Option<f64>) {
    let gb = t.bytes as f64 / 1e9;
    let per = |cpu: Option<f64>| cpu.filter(|_| gb > 0.0).map(|c| c / gb);
    (per(t.broker_cpu_seconds), per(t.client_cpu_seconds))
}

const SCENARIOS: [(Acks, i32); 4] = [
    (Acks::Leader, 1),
    (Acks::Leader, 8),
    (Acks::All, 1),
    (Acks::All, 8),
];

fn acks_label(acks: Acks) -> &'static str {
    match acks {
        Acks::Leader => "acks=1",
        Acks::All => "acks=all",
    }
}

impl Report {
    pub fn new(
        config: &RunArgs,
        timestamp: String,
        ceilings: Ceilings,
        floe: BrokerReport,
        tansu: Option<BrokerReport>,
    ) -> Report {
        let mut report = Report {
            timestamp,
            git: git(),
            machine: machine(),
            config: config.clone(),
            ceilings,
            floe,
            tansu,
            targets: Vec::new(),
        };
        report.targets = report.judge();
        report
    }

    /// The produce ceiling for an acks level: the slower of the disk path it needs and the
    /// loopback network.
    fn produce_ceiling(&self, acks: Acks) -> f64 {
        let disk = match acks {
            Acks::Leader => self.ceilings.write_buffered_mb_per_sec,
            Acks::All => self.ceilings.write_fdatasync_mb_per_sec,
        };
        disk.min(self.ceilings.loopback_tcp_mb_per_sec)
    }

    fn judge(&self) -> Vec<Target> {
        let f = &self.floe;
        let t = self.tansu.as_ref();
        let mut targets = Vec::new();
        let mut push = |name: &str, checks: Vec<(String, Option<bool>)>| {
            let known: Vec<_> = checks.iter().filter_map(|(_, ok)| *ok).collect();
            let met = !known.is_empty() && known.len() == checks.len() && known.iter().all(|x| *x);
            let detail = checks
                .iter()
                .map(|(d, ok)| match ok {
                    Some(true) => format!("{d} ok"),
                    Some(false) => format!("{d} MISSED"),
                    None => format!("{d} n/a"),
                })
                .collect::<Vec<_>>()
                .join("; ");
            targets.push(Target {
                name: name.to_owned(),
                met,
                detail,
            });
        };

        push(
            "produce throughput >= 3x tansu",
            SCENARIOS
                .iter()
                .map(|&(acks, p)| {
                    let ratio = f
                        .produce_mb(acks, p)
                        .zip(t.and_then(|t| t.produce_mb(acks, p)))
                        .map(|(a, b)| a / b);
                    (
                        format!(
                            "{} p{p}: {}",
                            acks_label(acks),
                            ratio.map_or("-".into(), |r| format!("{r:.2}x"))
                        ),
                        ratio.map(|r| r >= 3.0),
                    )
                })
                .collect(),
        );
        push(
            "produce throughput >= 60% of the machine ceiling",
            SCENARIOS
                .iter()
                .map(|&(acks, p)| {
                    let pct = f
                        .produce_mb(acks, p)
                        .map(|mb| 100.0 * mb / self.produce_ceiling(acks));
                    (
                        format!(
                            "{} p{p}: {}",
                            acks_label(acks),
                            pct.map_or("-".into(), |v| format!("{v:.0}%"))
                        ),
                        pct.map(|v| v >= 60.0),
                    )
                })
                .collect(),
        );
        push(
            "produce p99 <= 1/3 of tansu's at the same fixed rate (1 partition)",
            [Acks::Leader, Acks::All]
                .iter()
                .map(|&acks| {
                    let ratio = f
                        .latency(acks, 1, "auto")
                        .zip(t.and_then(|t| t.latency(acks, 1, "auto")))
                        .map(|(a, b)| a.p99_us as f64 / b.p99_us as f64);
                    (
                        format!(
                            "{}: floe/tansu {}",
                            acks_label(acks),
                            ratio.map_or("-".into(), |r| format!("{r:.2}"))
                        ),
                        ratio.map(|r| r <= 1.0 / 3.0),
                    )
                })
                .collect(),
        );
        push(
            "acks=all throughput >= 50% of acks=1",
            [1, 8]
                .iter()
                .map(|&p| {
                    let pct = f
                        .produce_mb(Acks::All, p)
                        .zip(f.produce_mb(Acks::Leader, p))
                        .map(|(a, b)| 100.0 * a / b);
                    (
                        format!("p{p}: {}", pct.map_or("-".into(), |v| format!("{v:.0}%"))),
                        pct.map(|v| v >= 50.0),
                    )
                })
                .collect(),
        );
        // Group commit bounds what durability adds to a request: the sync in flight when it
        // arrives plus the one that covers it. The network and client share of the latency
        // is what acks=1 measures in the same run, so the target is judged on the p99 that
        // acks=all adds over acks=1.
        let two_syncs = 2 * self.ceilings.fdatasync_4k_p99_us;
        push(
            "acks=all p99 within two fsync times (added over acks=1)",
            vec![{
                let all = f.latency(Acks::All, 1, "auto").map(|l| l.p99_us);
                let one = f.latency(Acks::Leader, 1, "auto").map(|l| l.p99_us);
                let added = all.zip(one).map(|(a, o)| a.saturating_sub(o));
                let ms =
                    |v: Option<u64>| v.map_or("-".into(), |v| format!("{:.2} ms", v as f64 / 1e3));
                (
                    format!(
                        "p99 {} (acks=1 {}), added {} vs 2 x fdatasync p99 = {:.2} ms",
                        ms(all),
                        ms(one),
                        ms(added),
                        two_syncs as f64 / 1e3
                    ),
                    added.map(|v| v <= two_syncs),
                )
            }],
        );
        push(
            "consume from page cache >= 1 GB/s",
            [1, 8]
                .iter()
                .map(|&p| {
                    let mb = f.consume_mb(p);
                    (
                        format!(
                            "p{p}: {}",
                            mb.map_or("-".into(), |v| format!("{v:.0} MB/s"))
                        ),
                        mb.map(|v| v >= 1000.0),
                    )
                })
                .collect(),
        );
        push(
            "broker RSS <= 50 MB idle",
            vec![(
                format!("{:.1} MB", f.rss_idle_bytes as f64 / 1e6),
                (f.rss_idle_bytes > 0).then_some(f.rss_idle_bytes <= 50_000_000),
            )],
        );
        push(
            "restart with 10 GB of log ready in <= 2 s",
            vec![match &f.restart {
                Some(r) => {
                    let gb = r.log_bytes as f64 / 1e9;
                    let mut checks = format!(
                        "{gb:.1} GB: {:.0} ms after clean shutdown",
                        r.after_clean_shutdown.produce_ms
                    );
                    let mut ok = r.after_clean_shutdown.produce_ms <= 2000.0;
                    if let Some(k) = &r.after_kill {
                        let _ = write!(checks, ", {:.0} ms after kill -9", k.produce_ms);
                        ok &= k.produce_ms <= 2000.0;
                    }
                    if gb < 9.5 {
                        checks.push_str(" (smaller log than the target's 10 GB)");
                    }
                    (checks, Some(ok))
                }
                None => ("not measured".into(), None),
            }],
        );
        // The storage-boundary issue's small-request targets, on the default configuration.
        let rate = f64::from(self.config.latency_rate);
        push(
            "small requests acks=all 8 partitions: sustained at the offered rate, p99 <= 5 ms",
            vec![match f.latency(Acks::All, 8, "auto") {
                Some(l) => (
                    format!(
                        "{:.0}/s of {rate:.0}/s, p99 {:.2} ms",
                        l.sustained_per_sec,
                        l.p99_us as f64 / 1e3
                    ),
                    Some(l.sustained_per_sec >= 0.99 * rate && l.p99_us <= 5_000),
                ),
                None => ("not measured".into(), None),
            }],
        );
        push(
            "broker CPU per single-record acks=all request <= 25 us",
            [1, 8]
                .iter()
                .map(|&p| {
                    let us = f
                        .latency(Acks::All, p, "auto")
                        .and_then(|l| l.broker_cpu_us_per_request);
                    (
                        format!("p{p}: {}", us.map_or("-".into(), |v| format!("{v:.1} us"))),
                        us.map(|v| v <= 25.0),
                    )
                })
                .collect(),
        );
        if let Some(t) = &f.transactions {
            push(
                "transactional produce (commit every 100 ms, 8 partitions) >= 80 % of idempotent",
                vec![(
                    format!(
                        "{:.0} vs {:.0} MB/s = {:.0} %",
                        t.transactional.mb_per_sec,
                        t.idempotent.mb_per_sec,
                        t.share * 100.0
                    ),
                    Some(t.share >= 0.8),
                )],
            );
        }
        if let Some(m) = &f.metrics {
            push(
                "metrics on cost < 3 % of produce and consume throughput",
                vec![
                    (
                        format!(
                            "produce {:.0} vs {:.0} MB/s = {:.1} %",
                            m.on.produce_mb_per_sec, m.off.produce_mb_per_sec, m.produce_cost_pct
                        ),
                        Some(m.produce_cost_pct < 3.0),
                    ),
                    (
                        format!(
                            "consume {:.0} vs {:.0} MB/s = {:.1} %",
                            m.on.consume_mb_per_sec, m.off.consume_mb_per_sec, m.consume_cost_pct
                        ),
                        Some(m.consume_cost_pct < 3.0),
                    ),
                ],
            );
        }
        if let Some(x) = &f.security {
            push(
                "TLS produce and consume throughput >= 70 % of plaintext",
                vec![
                    (
                        format!(
                            "produce {:.0} vs {:.0} MB/s = {:.0} %",
                            x.tls.produce_mb_per_sec,
                            x.plaintext.produce_mb_per_sec,
                            x.produce_share_pct
                        ),
                        Some(x.produce_share_pct >= 70.0),
                    ),
                    (
                        format!(
                            "consume {:.0} vs {:.0} MB/s = {:.0} %",
                            x.tls.consume_mb_per_sec,
                            x.plaintext.consume_mb_per_sec,
                            x.consume_share_pct
                        ),
                        Some(x.consume_share_pct >= 70.0),
                    ),
                ],
            );
        }
        if let Some(t) = &f.tiered {
            let ratio = t.busy_mb_per_sec / t.idle_mb_per_sec.max(f64::MIN_POSITIVE);
            let added_ms = (t.busy_p99_us - t.idle_p99_us) / 1e3;
            push(
                "uploading costs producers <= 10 % throughput and <= 1 ms p99",
                vec![
                    (
                        format!(
                            "acks=all p1 {:.0} vs {:.0} MB/s = {:.0} % (mean of {} rounds)",
                            t.busy_mb_per_sec,
                            t.idle_mb_per_sec,
                            ratio * 100.0,
                            t.rounds.len()
                        ),
                        Some(ratio >= 0.9),
                    ),
                    (
                        format!(
                            "p99 {:.2} vs {:.2} ms ({:+.2} ms; {} of {} segments uploaded meanwhile)",
                            t.busy_p99_us / 1e3,
                            t.idle_p99_us / 1e3,
                            added_ms,
                            t.uploaded_meanwhile(),
                            t.uploaded_segments
                        ),
                        Some(added_ms <= 1.0),
                    ),
                ],
            );
        }
        if let Some(c) = &f.cleaner {
            let ratio =
                c.with.produce.mb_per_sec / c.without.produce.mb_per_sec.max(f64::MIN_POSITIVE);
            let added_ms = (c.with.latency.p99_us as f64 - c.without.latency.p99_us as f64) / 1e3;
            push(
                "a busy log cleaner costs producers <= 20 % throughput and <= 1 ms p99",
                vec![
                    (
                        format!(
                            "acks=all p1 {:.0} vs {:.0} MB/s = {:.0} %",
                            c.with.produce.mb_per_sec,
                            c.without.produce.mb_per_sec,
                            ratio * 100.0
                        ),
                        Some(ratio >= 0.8),
                    ),
                    (
                        format!(
                            "p99 {:.2} vs {:.2} ms ({:+.2} ms, {} cleans)",
                            c.with.latency.p99_us as f64 / 1e3,
                            c.without.latency.p99_us as f64 / 1e3,
                            added_ms,
                            c.with.cleans
                        ),
                        Some(added_ms <= 1.0 && c.with.cleans > 0),
                    ),
                ],
            );
        }
        push(
            "consume from page cache: broker CPU <= 0.15 s per GB",
            [1, 8]
                .iter()
                .map(|&p| {
                    let cpu = f.consume_cpu(p).0;
                    (
                        format!("p{p}: {}", cpu.map_or("-".into(), |v| format!("{v:.3} s"))),
                        cpu.map(|v| v <= 0.15),
                    )
                })
                .collect(),
        );
        targets
    }

    /// The side-by-side table printed at the end of a run.
    pub fn table(&self) -> String {
        let f = &self.floe;
        let t = self.tansu.as_ref();
        let c = &self.ceilings;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "Floe vs {} | {} | {} x {} | kernel {} | git {}{}",
            t.map_or("(no peer)".to_owned(), |t| format!(
                "tansu ({})",
                if t.version.is_empty() {
                    "?"
                } else {
                    &t.version
                }
            )),
            self.timestamp,
            self.machine.nproc,
            self.machine.cpu_model,
            self.machine.kernel,
            &self.git.revision[..self.git.revision.len().min(10)],
            if self.git.dirty { " (dirty)" } else { "" }
        );
        let _ = writeln!(
            s,
            "{} B records; client and broker share the machine; MB = 1e6 bytes of record values",
            self.config.record_size
        );
        let _ = writeln!(
            s,
            "\n{:<44} {:>11} {:>11} {:>11} {:>11}",
            "", "floe", "tansu", "floe/tansu", "floe/ceil"
        );
        let row = |s: &mut String,
                   name: &str,
                   a: Option<f64>,
                   b: Option<f64>,
                   ceil: Option<f64>,
                   prec: usize| {
            let fmt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.prec$}"));
            let ratio = a.zip(b).filter(|(_, b)| *b > 0.0).map(|(a, b)| a / b);
            let _ = writeln!(
                s,
                "{name:<44} {:>11} {:>11} {:>11} {:>11}",
                fmt(a),
                fmt(b),
                ratio.map_or("-".to_owned(), |r| format!("{r:.2}x")),
                a.zip(ceil)
                    .map_or("".to_owned(), |(a, c)| format!("{:.0}%", 100.0 * a / c)),
            );
        };
        // Broker and load-generator CPU per GB moved: who the run was bound by.
        type Cpu = (Option<f64>, Option<f64>);
        let cpu_rows = |s: &mut String, floe: Cpu, peer: Option<Cpu>| {
            let peer = peer.unwrap_or((None, None));
            row(s, "  broker CPU s per GB", floe.0, peer.0, None, 2);
            row(s, "  load generator CPU s per GB", floe.1, peer.1, None, 2);
        };
        for (acks, p) in SCENARIOS {
            let label = format!(
                "produce {} {p} partition{}",
                acks_label(acks),
                if p == 1 { "" } else { "s" }
            );
            row(
                &mut s,
                &format!("{label} MB/s"),
                f.produce_mb(acks, p),
                t.and_then(|t| t.produce_mb(acks, p)),
                Some(self.produce_ceiling(acks)),
                1,
            );
            row(
                &mut s,
                &format!("{label} rec/s"),
                f.produce_rps(acks, p),
                t.and_then(|t| t.produce_rps(acks, p)),
                None,
                0,
            );
            cpu_rows(
                &mut s,
                f.produce_cpu(acks, p),
                t.map(|t| t.produce_cpu(acks, p)),
            );
        }
        for p in [1, 8] {
            row(
                &mut s,
                &format!(
                    "consume from start {p} partition{} MB/s",
                    if p == 1 { "" } else { "s" }
                ),
                f.consume_mb(p),
                t.and_then(|t| t.consume_mb(p)),
                Some(c.loopback_tcp_mb_per_sec),
                1,
            );
            cpu_rows(&mut s, f.consume_cpu(p), t.map(|t| t.consume_cpu(p)));
        }
        let rate = self.config.latency_rate;
        for backend in ["auto", "std"] {
            for (acks, p) in SCENARIOS {
                let floe = f.latency(acks, p, backend);
                // The peer has one configuration: shown beside Floe's default.
                let peer = t
                    .filter(|_| backend == "auto")
                    .and_then(|t| t.latency(acks, p, backend));
                if floe.is_none() && peer.is_none() {
                    continue;
                }
                let label = format!("small {} p{p} @{rate}/s {backend}", acks_label(acks));
                row(
                    &mut s,
                    &format!("{label} acked/s"),
                    floe.map(|l| l.sustained_per_sec),
                    peer.map(|l| l.sustained_per_sec),
                    None,
                    0,
                );
                for (q, get) in [
                    ("p50", (|l: &Latency| l.p50_us) as fn(&Latency) -> u64),
                    ("p99", |l: &Latency| l.p99_us),
                    ("p999", |l: &Latency| l.p999_us),
                ] {
                    row(
                        &mut s,
                        &format!("  {q} ms"),
                        floe.map(|l| get(l) as f64 / 1e3),
                        peer.map(|l| get(l) as f64 / 1e3),
                        None,
                        2,
                    );
                }
                row(
                    &mut s,
                    "  broker CPU us per request",
                    floe.and_then(|l| l.broker_cpu_us_per_request),
                    peer.and_then(|l| l.broker_cpu_us_per_request),
                    None,
                    1,
                );
                row(
                    &mut s,
                    "  records per request",
                    floe.filter(|l| l.produce_requests > 0)
                        .map(|l| l.records as f64 / l.produce_requests as f64),
                    peer.filter(|l| l.produce_requests > 0)
                        .map(|l| l.records as f64 / l.produce_requests as f64),
                    None,
                    2,
                );
            }
        }
        let mb = |b: u64| (b > 0).then_some(b as f64 / 1e6);
        row(
            &mut s,
            "RSS idle MB",
            mb(f.rss_idle_bytes),
            t.and_then(|t| mb(t.rss_idle_bytes)),
            None,
            1,
        );
        row(
            &mut s,
            "RSS after load MB",
            mb(f.rss_after_load_bytes),
            t.and_then(|t| mb(t.rss_after_load_bytes)),
            None,
            1,
        );
        row(
            &mut s,
            "RSS peak MB",
            mb(f.rss_peak_bytes),
            t.and_then(|t| mb(t.rss_peak_bytes)),
            None,
            1,
        );
        row(
            &mut s,
            "start-up, empty data dir ms",
            Some(f.startup_empty_ms),
            t.map(|t| t.startup_empty_ms),
            None,
            0,
        );
        let gb = |r: &BrokerReport| r.restart.as_ref().map(|r| r.log_bytes as f64 / 1e9);
        row(
            &mut s,
            "restart: log on disk GB",
            gb(f),
            t.and_then(gb),
            None,
            2,
        );
        let ready = |r: &BrokerReport| {
            r.restart
                .as_ref()
                .map(|r| r.after_clean_shutdown.produce_ms)
        };
        row(
            &mut s,
            "restart after SIGTERM: ready ms",
            ready(f),
            t.and_then(ready),
            None,
            0,
        );
        let kill = |r: &BrokerReport| {
            r.restart
                .as_ref()
                .and_then(|r| r.after_kill.as_ref())
                .map(|k| k.produce_ms)
        };
        row(
            &mut s,
            "restart after kill -9: ready ms",
            kill(f),
            t.and_then(kill),
            None,
            0,
        );

        if let Some(t) = &f.transactions {
            let e = &t.end_to_end;
            let _ = writeln!(
                s,
                "transactions ({} partitions, commit every {} ms): idempotent {:.0} MB/s, \
                 transactional {:.0} MB/s ({:.0} %, {} commits); read_committed end to end \
                 at {}/s: p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms",
                t.partitions,
                t.commit_interval_ms,
                t.idempotent.mb_per_sec,
                t.transactional.mb_per_sec,
                t.share * 100.0,
                t.transactions,
                e.rate_per_sec,
                e.p50_us as f64 / 1e3,
                e.p99_us as f64 / 1e3,
                e.p999_us as f64 / 1e3,
            );
        }
        if let Some(m) = &f.metrics {
            let cpu = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}"));
            let _ = writeln!(
                s,
                "metrics ({} partitions, {} rounds, scrape every {} ms: {} scrapes, {:.1} ms, \
                 {} KB): produce {:.0} MB/s on / {:.0} MB/s off ({:.1} %), CPU s/GB {} / {}; \
                 consume {:.0} / {:.0} MB/s ({:.1} %), CPU s/GB {} / {}",
                m.partitions,
                m.rounds,
                m.scrape_interval_ms,
                m.scrapes,
                m.scrape_mean_ms,
                m.scrape_bytes / 1000,
                m.on.produce_mb_per_sec,
                m.off.produce_mb_per_sec,
                m.produce_cost_pct,
                cpu(m.on.produce_cpu_s_per_gb),
                cpu(m.off.produce_cpu_s_per_gb),
                m.on.consume_mb_per_sec,
                m.off.consume_mb_per_sec,
                m.consume_cost_pct,
                cpu(m.on.consume_cpu_s_per_gb),
                cpu(m.off.consume_cpu_s_per_gb),
            );
        }
        if let Some(x) = &f.security {
            let cpu = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}"));
            let _ = writeln!(
                s,
                "security ({} partitions, {} rounds, {} {} {}): produce acks=all {:.0} MB/s TLS / \
                 {:.0} MB/s plaintext ({:.0} %), broker CPU s/GB {} / {}, client {} / {}; \
                 consume {:.0} / {:.0} MB/s ({:.0} %), broker CPU s/GB {} / {}, client {} / {}",
                x.partitions,
                x.rounds,
                x.key,
                x.tls_version,
                x.tls_cipher_suite,
                x.tls.produce_mb_per_sec,
                x.plaintext.produce_mb_per_sec,
                x.produce_share_pct,
                cpu(x.tls.produce_cpu_s_per_gb),
                cpu(x.plaintext.produce_cpu_s_per_gb),
                cpu(x.tls.produce_client_cpu_s_per_gb),
                cpu(x.plaintext.produce_client_cpu_s_per_gb),
                x.tls.consume_mb_per_sec,
                x.plaintext.consume_mb_per_sec,
                x.consume_share_pct,
                cpu(x.tls.consume_cpu_s_per_gb),
                cpu(x.plaintext.consume_cpu_s_per_gb),
                cpu(x.tls.consume_client_cpu_s_per_gb),
                cpu(x.plaintext.consume_client_cpu_s_per_gb),
            );
            let _ = writeln!(
                s,
                "  connection set-ups (connect, TLS, ApiVersions, SCRAM-SHA-512 with {} \
                 iterations, Metadata, close; client PBKDF2 {:.1} ms):",
                x.scram_iterations, x.client_pbkdf2_ms
            );
            for r in &x.setups {
                let us = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0}"));
                let _ = writeln!(
                    s,
                    "    {:14} {} thread{}{:22} {:7.0}/s  p50 {:6.2} ms  p99 {:6.2} ms  \
                     (tls {:.2}, sasl {:.2} ms)  broker CPU {} us, client {} us per set-up",
                    r.listener.name(),
                    r.threads,
                    if r.threads == 1 { " " } else { "s" },
                    if r.client_pbkdf2_each_time {
                        ", PBKDF2 each time"
                    } else {
                        ""
                    },
                    r.setups_per_sec,
                    r.p50_ms,
                    r.p99_ms,
                    r.steps.tls_ms,
                    r.steps.sasl_ms,
                    us(r.broker_cpu_us_per_setup),
                    us(r.client_cpu_us_per_setup),
                );
            }
        }
        if let Some(t) = &f.tiered {
            let cpu = |x: &crate::load::Throughput| {
                crate::tiered::TieredRun::cpu_per_gb(x)
                    .map_or("-".into(), |v| format!("{v:.2} CPU s/GB"))
            };
            let _ = writeln!(
                s,
                "tiered ({}, {} MiB segments, upload quota {}): upload {:.0} MB/s ({:.1} GB in {:.1} s); \
                 consume local {:.0} MB/s ({}), remote {:.0} MB/s ({}); \
                 acks=all p1 {:.0} MB/s idle / {:.0} MB/s uploading, small p99 {:.2} / {:.2} ms \
                 (means of {} rounds: {}); S3 server CPU {:.1} s uploading, {:.1} s serving the remote consume",
                t.object_store,
                t.segment_bytes >> 20,
                t.copy_quota_mb_per_sec
                    .map_or("none".to_string(), |q| format!("{q} MB/s")),
                t.upload_mb_per_sec,
                t.uploaded_bytes as f64 / 1e9,
                t.upload_seconds,
                t.consume_local.mb_per_sec,
                cpu(&t.consume_local),
                t.consume_remote.mb_per_sec,
                cpu(&t.consume_remote),
                t.idle_mb_per_sec,
                t.busy_mb_per_sec,
                t.idle_p99_us / 1e3,
                t.busy_p99_us / 1e3,
                t.rounds.len(),
                t.rounds
                    .iter()
                    .map(|r| format!(
                        "{:.0}/{:.0} MB/s, {:.2}/{:.2} ms",
                        r.idle.produce.mb_per_sec,
                        r.busy.produce.mb_per_sec,
                        r.idle.latency.p99_us as f64 / 1e3,
                        r.busy.latency.p99_us as f64 / 1e3
                    ))
                    .collect::<Vec<_>>()
                    .join("; "),
                t.store_cpu_upload_seconds.unwrap_or(f64::NAN),
                t.store_cpu_consume_seconds.unwrap_or(f64::NAN),
            );
        }
        if let Some(c) = &f.cleaner {
            for side in [&c.without, &c.with] {
                let _ = writeln!(
                    s,
                    "cleaner {:3} (compacted topic written at the side): acks=all p1 {:.1} MB/s, \
                     small acks=all p1 p99 {:.2} ms, {} cleans",
                    if side.cleaner_enabled { "on" } else { "off" },
                    side.produce.mb_per_sec,
                    side.latency.p99_us as f64 / 1e3,
                    side.cleans
                );
            }
        }
        let _ = writeln!(
            s,
            "\nmachine ceilings: buffered write {:.0} MB/s, write+fdatasync (1 MiB) {:.0} MB/s, \
             4 KiB fdatasync p50 {:.2} ms / p99 {:.2} ms, loopback TCP {:.0} MB/s",
            c.write_buffered_mb_per_sec,
            c.write_fdatasync_mb_per_sec,
            c.fdatasync_4k_p50_us as f64 / 1e3,
            c.fdatasync_4k_p99_us as f64 / 1e3,
            c.loopback_tcp_mb_per_sec
        );
        let _ = writeln!(
            s,
            "floe/ceil: produce acks=1 vs min(buffered write, loopback); acks=all vs min(write+fdatasync, loopback); consume vs loopback"
        );
        let _ = writeln!(s, "\ntargets:");
        for target in &self.targets {
            let _ = writeln!(
                s,
                "  [{}] {}: {}",
                if target.met { "met   " } else { "missed" },
                target.name,
                target.detail
            );
        }
        for (name, r) in [("floe", Some(f)), ("tansu", t)] {
            if let Some(r) = r {
                for e in &r.errors {
                    let _ = writeln!(s, "  error ({name}): {e}");
                }
            }
        }
        s
    }
}

//! How many connections the broker serves at once, in all and per client address (Kafka's
//! `max.connections` and `max.connections.per.ip`). A connection over a limit is closed as
//! soon as it is accepted, before anything is read from it.
//!
//! Each connection costs a file descriptor, so `max.connections` must stay below the
//! process's open-file limit with room for the log segments; [`check_open_file_limit`]
//! warns at start when it does not.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// File descriptors left for segment files, the data directory lock, io_uring and the like
/// when comparing `max.connections` with the open-file limit.
const FD_HEADROOM: u64 = 1024;

/// Why a connection was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The broker serves `max.connections` connections already.
    #[error("the broker has max.connections ({max}) connections open")]
    Total {
        /// The limit.
        max: usize,
    },
    /// This address has `max.connections.per.ip` connections open already.
    #[error("{ip} has max.connections.per.ip ({max}) connections open")]
    PerIp {
        /// The client's address.
        ip: IpAddr,
        /// The limit.
        max: usize,
    },
}

/// Counts of open connections against the two limits.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    max_total: usize,
    max_per_ip: usize,
    counts: Arc<Mutex<Counts>>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

impl ConnectionLimits {
    /// Limits of `max_total` connections, `max_per_ip` of them from one address.
    pub fn new(max_total: usize, max_per_ip: usize) -> ConnectionLimits {
        ConnectionLimits {
            max_total,
            max_per_ip,
            counts: Arc::default(),
        }
    }

    /// Counts a new connection from `ip`, or says which limit it is over. The count is
    /// given back when the returned slot is dropped (when the connection ends).
    pub fn try_open(&self, ip: IpAddr) -> Result<ConnectionSlot, Refused> {
        // An IPv4 client on a dual-stack listener shows up as ::ffff:a.b.c.d.
        let ip = ip.to_canonical();
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if counts.total >= self.max_total {
            return Err(Refused::Total {
                max: self.max_total,
            });
        }
        let from_ip = counts.per_ip.get(&ip).copied().unwrap_or(0);
        if from_ip >= self.max_per_ip {
            return Err(Refused::PerIp {
                ip,
                max: self.max_per_ip,
            });
        }
        counts.total += 1;
        counts.per_ip.insert(ip, from_ip + 1);
        Ok(ConnectionSlot {
            counts: self.counts.clone(),
            ip,
        })
    }

    /// Connections open (from every address).
    pub fn open(&self) -> usize {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).total
    }
}

/// One counted connection; dropping it gives the count back.
#[derive(Debug)]
pub struct ConnectionSlot {
    counts: Arc<Mutex<Counts>>,
    ip: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_ip.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.per_ip.remove(&self.ip);
            }
        }
    }
}

/// Warns when the soft open-file limit (`ulimit -n`) cannot hold `max_connections`
/// connections plus the broker's own files: past it, accepts fail with "too many open
/// files" (logged, rate limited) before `max.connections` is reached. Reads
/// `/proc/self/limits`; elsewhere it says nothing. Blocking file I/O: call it before the
/// runtime starts.
pub fn check_open_file_limit(max_connections: usize) {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else {
        return;
    };
    let Some(soft) = soft_open_files(&limits) else {
        return;
    };
    let wanted = u64::try_from(max_connections)
        .unwrap_or(u64::MAX)
        .saturating_add(FD_HEADROOM);
    if soft < wanted {
        tracing::warn!(
            open_file_limit = soft,
            max_connections,
            "the open-file limit is below max.connections + {FD_HEADROOM}: raise it (ulimit -n, \
             systemd LimitNOFILE) or lower max.connections, or accepts will fail with \
             'too many open files' first"
        );
    }
}

/// The soft limit of the `Max open files` line of `/proc/<pid>/limits` (`None` for
/// "unlimited" or a line that does not parse).
fn soft_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn per_ip_limit_counts_each_address() {
        let limits = ConnectionLimits::new(10, 2);
        let a1 = limits.try_open(A).unwrap();
        let _a2 = limits.try_open(A).unwrap();
        assert_eq!(
            limits.try_open(A).unwrap_err(),
            Refused::PerIp { ip: A, max: 2 }
        );
        let _b1 = limits.try_open(B).unwrap();
        drop(a1);
        let _a3 = limits.try_open(A).unwrap();
        assert_eq!(limits.open(), 3);
    }

    #[test]
    fn total_limit_and_slots_given_back() {
        let limits = ConnectionLimits::new(2, 100);
        let a = limits.try_open(A).unwrap();
        let b = limits.try_open(B).unwrap();
        assert_eq!(limits.try_open(B).unwrap_err(), Refused::Total { max: 2 });
        drop((a, b));
        assert_eq!(limits.open(), 0);
        assert!(limits.counts.lock().unwrap().per_ip.is_empty());
        let _c = limits.try_open(A).unwrap();
    }

    #[test]
    fn ipv4_mapped_addresses_count_as_ipv4() {
        let limits = ConnectionLimits::new(10, 1);
        let _a = limits.try_open(A).unwrap();
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped());
        assert!(matches!(
            limits.try_open(mapped),
            Err(Refused::PerIp { .. })
        ));
    }

    #[test]
    fn parses_the_open_files_line() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             95681                95681                processes \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(soft_open_files(limits), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(soft_open_files(unlimited), None);
        assert_eq!(soft_open_files("nothing here"), None);
    }
}

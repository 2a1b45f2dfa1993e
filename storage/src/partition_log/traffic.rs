//! What clients moved in and out of a partition since its log was opened: counters the
//! broker bumps on produce and fetch and reads when `/metrics` is scraped. Relaxed atomics:
//! they order nothing, and a scrape that misses the latest increment sees it next time.

use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes and records produced to and fetched from one partition.
#[derive(Debug, Default)]
pub struct Traffic {
    bytes_in: AtomicU64,
    records_in: AtomicU64,
    bytes_out: AtomicU64,
    records_out: AtomicU64,
}

/// A reading of [`Traffic`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrafficSnapshot {
    /// Bytes of record batches appended by producers.
    pub bytes_in: u64,
    /// Records appended by producers.
    pub records_in: u64,
    /// Bytes of record batches sent to consumers.
    pub bytes_out: u64,
    /// Offsets sent to consumers (records, plus the control records of transactions).
    pub records_out: u64,
}

impl Traffic {
    /// A producer appended `records` records in `bytes` bytes of batches.
    pub fn produced(&self, bytes: u64, records: u64) {
        self.bytes_in.fetch_add(bytes, Ordering::Relaxed);
        self.records_in.fetch_add(records, Ordering::Relaxed);
    }

    /// A fetch sent `records` offsets in `bytes` bytes of batches.
    pub fn fetched(&self, bytes: u64, records: u64) {
        self.bytes_out.fetch_add(bytes, Ordering::Relaxed);
        self.records_out.fetch_add(records, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> TrafficSnapshot {
        TrafficSnapshot {
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            records_in: self.records_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            records_out: self.records_out.load(Ordering::Relaxed),
        }
    }
}

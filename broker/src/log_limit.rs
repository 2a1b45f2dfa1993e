//! Rate limits for log lines that a client can trigger at will (a bad frame, a refused
//! connection): without one, 17,000 bad connections wrote 2.9 MB of warnings.
//!
//! A [`LogLimit`] lets a few lines of one kind through per one-second window; the lines
//! beyond are counted, and the next line let through is preceded by a summary
//! ("suppressed K similar messages"). A kind is a `static`, so every connection shares its
//! budget:
//!
//! ```
//! use floe_broker::log_limit::LogLimit;
//! static BAD_FRAME: LogLimit = LogLimit::new("bad frame", 10);
//! if let Some(suppressed) = BAD_FRAME.check() {
//!     if suppressed > 0 {
//!         tracing::warn!(kind = BAD_FRAME.kind(), "suppressed {suppressed} similar messages");
//!     }
//!     tracing::warn!("closing connection: bad frame");
//! }
//! ```
//!
//! Inside the broker the [`warn_limited!`](crate::warn_limited) macro does both.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Length of the window in which at most `per_window` lines are let through.
const WINDOW: Duration = Duration::from_secs(1);

/// At most `per_window` lines of one kind per second; see the module docs.
#[derive(Debug)]
pub struct LogLimit {
    kind: &'static str,
    per_window: u32,
    state: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    /// Start of the current window; `None` before the first line.
    start: Option<Instant>,
    /// Lines let through in the current window.
    logged: u32,
    /// Lines suppressed since the last line let through.
    suppressed: u64,
}

impl LogLimit {
    /// A limit of `per_window` lines per second (0 suppresses every line, still counting)
    /// for lines of one `kind` (named in the summary of suppressed lines).
    pub const fn new(kind: &'static str, per_window: u32) -> LogLimit {
        LogLimit {
            kind,
            per_window,
            state: Mutex::new(Window {
                start: None,
                logged: 0,
                suppressed: 0,
            }),
        }
    }

    /// The kind of lines this limit counts.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Whether to log a line now: `Some(k)` to log it, `k` being the number of similar
    /// lines suppressed since the last one logged (to be reported with it); `None` to drop
    /// it (it is counted).
    pub fn check(&self) -> Option<u64> {
        self.check_at(Instant::now())
    }

    /// [`LogLimit::check`] at a given time (tests drive the clock).
    pub fn check_at(&self, now: Instant) -> Option<u64> {
        // A poisoned lock only means a panic elsewhere while counting: keep counting.
        let mut w = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let expired = w
            .start
            .is_none_or(|start| now.saturating_duration_since(start) >= WINDOW);
        if expired {
            w.start = Some(now);
            w.logged = 0;
        }
        if w.logged < self.per_window {
            w.logged += 1;
            Some(std::mem::take(&mut w.suppressed))
        } else {
            w.suppressed += 1;
            None
        }
    }
}

/// `tracing::warn!` through a [`LogLimit`]: logs the line if the limit lets it through,
/// preceded by a "suppressed K similar messages" line when lines were dropped before it.
#[macro_export]
macro_rules! warn_limited {
    ($limit:expr, $($arg:tt)+) => {
        if let Some(suppressed) = $limit.check() {
            if suppressed > 0 {
                tracing::warn!(kind = $limit.kind(), "suppressed {suppressed} similar messages");
            }
            tracing::warn!($($arg)+);
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lets_n_per_window_through_then_reports_the_suppressed() {
        let limit = LogLimit::new("test", 3);
        let t0 = Instant::now();
        let logged: Vec<Option<u64>> = (0..10)
            .map(|i| limit.check_at(t0 + Duration::from_millis(i * 10)))
            .collect();
        assert_eq!(
            logged,
            [
                Some(0),
                Some(0),
                Some(0),
                None,
                None,
                None,
                None,
                None,
                None,
                None
            ]
        );
        // The next window: the first line carries the count of the seven dropped.
        let t1 = t0 + WINDOW + Duration::from_millis(1);
        assert_eq!(limit.check_at(t1), Some(7));
        assert_eq!(limit.check_at(t1), Some(0));
        assert_eq!(limit.check_at(t1), Some(0));
        assert_eq!(limit.check_at(t1), None);
        assert_eq!(limit.check_at(t1 + WINDOW), Some(1));
    }

    #[test]
    fn the_window_starts_at_the_first_line_of_a_burst() {
        let limit = LogLimit::new("test", 1);
        let t0 = Instant::now();
        assert_eq!(limit.check_at(t0), Some(0));
        assert_eq!(limit.check_at(t0 + Duration::from_millis(999)), None);
        assert_eq!(limit.check_at(t0 + WINDOW), Some(1));
        // A line long after a quiet period is logged with nothing to report.
        assert_eq!(limit.check_at(t0 + 10 * WINDOW), Some(0));
    }

    #[test]
    fn zero_suppresses_everything_and_counts_it() {
        let limit = LogLimit::new("test", 0);
        let t0 = Instant::now();
        assert_eq!(limit.check_at(t0), None);
        assert_eq!(limit.check_at(t0 + 5 * WINDOW), None);
    }

    #[test]
    fn shared_between_threads() {
        static LIMIT: LogLimit = LogLimit::new("test", 5);
        let logged: u32 = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..100).filter(|_| LIMIT.check().is_some()).count()))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or(0) as u32)
                .sum()
        });
        // 400 lines within a second or two: at most a few windows' worth get through.
        assert!((5..=15).contains(&logged), "{logged} lines logged");
    }
}

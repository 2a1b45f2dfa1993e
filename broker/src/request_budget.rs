//! The broker-wide budget of request bytes being read (Kafka's `queued.max.request.bytes`).
//!
//! Every connection may use [`FREE_BYTES`] (64 KiB) of receive buffer freely, so small
//! requests never wait. A request larger than that takes its size beyond those 64 KiB out
//! of the budget, in one piece, before its buffer grows past them; the
//! piece is capped at the whole budget, so one request larger than the budget can still be
//! read (up to `socket.request.max.bytes`). A connection that cannot get its piece waits:
//! it stops reading its socket (TCP flow control pushes back on the client) until other
//! connections finish their requests or close. The buffer itself still grows only with the
//! bytes that arrive (`floe_protocol::frame`), so a prefix announcing 100 MiB followed by a
//! few bytes costs a 4 KiB buffer and no budget.
//!
//! Taking a request's whole piece at once, after giving back anything held, means no
//! connection ever waits for the budget while holding part of it: a connection that has
//! its piece needs nothing more to finish its request, so requests cannot wait on one
//! another for good (growing piecemeal with the buffer let several half-received large
//! requests hold the whole budget between them, each waiting for more). A connection paused
//! for the budget counts as idle, and `connections.max.idle.ms` closes it.
//!
//! Memory held by receive buffers is thus at most the larger of the budget and one
//! maximum-size request, plus 64 KiB per connection in the middle of a request.

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::log_limit::LogLimit;

/// Receive buffer a connection may use without the budget: requests up to this size
/// (Metadata, heartbeats, fetches, modest produce requests) never wait for it.
pub const FREE_BYTES: usize = 64 * 1024;

/// "reading paused" lines: the first of a burst says why; more add nothing.
static PAUSED: LogLimit = LogLimit::new("reading paused for queued.max.request.bytes", 1);

/// The shared budget (one per broker); see the module docs.
#[derive(Debug, Clone)]
pub struct RequestBudget {
    /// `None`: unbounded (`queued.max.request.bytes = -1`).
    permits: Option<Arc<Semaphore>>,
    total: usize,
}

impl RequestBudget {
    /// A budget of `total` bytes, or an unbounded one for `None`.
    pub fn new(total: Option<usize>) -> RequestBudget {
        match total {
            // Semaphore::new panics above MAX_PERMITS (2^61); config validation stays far
            // below, this only keeps a wild value from panicking.
            Some(total) => {
                let total = total.min(Semaphore::MAX_PERMITS);
                RequestBudget {
                    permits: Some(Arc::new(Semaphore::new(total))),
                    total,
                }
            }
            None => RequestBudget {
                permits: None,
                total: usize::MAX,
            },
        }
    }

    /// Bytes of the budget not held by any connection (`usize::MAX` when unbounded).
    pub fn available(&self) -> usize {
        self.permits
            .as_ref()
            .map_or(usize::MAX, |p| p.available_permits())
    }

    /// A connection's share, empty to begin with.
    pub fn hold(&self) -> BudgetHold {
        BudgetHold {
            budget: self.clone(),
            held: 0,
        }
    }
}

/// What one connection holds of the budget; given back when dropped.
#[derive(Debug)]
pub struct BudgetHold {
    budget: RequestBudget,
    held: usize,
}

impl BudgetHold {
    /// Bytes held.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Bytes of the budget that a request of `size` bytes (prefix included) takes.
    fn needed(&self, size: usize) -> usize {
        size.saturating_sub(FREE_BYTES).min(self.budget.total)
    }

    /// Makes this hold cover a receive buffer for a request of `size` bytes (prefix
    /// included; a buffer of at most [`FREE_BYTES`] needs nothing), waiting while the budget
    /// is spent. Gives back what it no longer needs; to take more, it first gives back
    /// everything, so it never waits while holding part of the budget.
    pub async fn cover(&mut self, size: usize) {
        let needed = self.needed(size);
        let Some(permits) = self.budget.permits.clone() else {
            return;
        };
        if needed <= self.held {
            self.shrink_to(needed);
            return;
        }
        self.release();
        // One acquisition takes at most u32::MAX permits; `needed` is at most one request
        // (below 2 GiB, see socket_request_max_bytes), so the fallback never happens.
        let want = u32::try_from(needed).unwrap_or(u32::MAX);
        let permit = match permits.try_acquire_many(want) {
            Ok(permit) => permit,
            Err(_) => {
                crate::warn_limited!(
                    PAUSED,
                    budget = self.budget.total,
                    available = permits.available_permits(),
                    wanted = want,
                    "reading paused: queued.max.request.bytes is in use by requests being received"
                );
                match permits.acquire_many(want).await {
                    Ok(permit) => permit,
                    // The semaphore is never closed.
                    Err(_) => return,
                }
            }
        };
        permit.forget();
        self.held = want as usize;
    }

    /// Gives back everything (the receive buffer was freed).
    pub fn release(&mut self) {
        self.shrink_to(0);
    }

    fn shrink_to(&mut self, bytes: usize) {
        if let Some(permits) = &self.budget.permits
            && self.held > bytes
        {
            permits.add_permits(self.held - bytes);
            self.held = bytes;
        }
    }
}

impl Drop for BudgetHold {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const MIB: usize = 1024 * 1024;

    #[tokio::test]
    async fn the_first_read_step_is_free_and_the_rest_is_counted() {
        let budget = RequestBudget::new(Some(4 * MIB));
        let mut hold = budget.hold();
        hold.cover(FREE_BYTES).await;
        assert_eq!(hold.held(), 0);
        hold.cover(FREE_BYTES + MIB).await;
        assert_eq!(hold.held(), MIB);
        assert_eq!(budget.available(), 3 * MIB);
        // A smaller next request gives back the difference.
        hold.cover(FREE_BYTES + 100).await;
        assert_eq!(budget.available(), 4 * MIB - 100);
        hold.release();
        assert_eq!(budget.available(), 4 * MIB);
        hold.cover(2 * MIB).await;
        drop(hold);
        assert_eq!(budget.available(), 4 * MIB);
    }

    #[tokio::test]
    async fn a_request_larger_than_the_budget_takes_all_of_it() {
        let budget = RequestBudget::new(Some(MIB));
        let mut hold = budget.hold();
        tokio::time::timeout(Duration::from_secs(5), hold.cover(100 * MIB))
            .await
            .expect("capped at the budget, so it does not wait");
        assert_eq!(hold.held(), MIB);
        assert_eq!(budget.available(), 0);
    }

    #[tokio::test]
    async fn a_request_waits_until_another_gives_back() {
        let budget = RequestBudget::new(Some(2 * MIB));
        let mut first = budget.hold();
        first.cover(FREE_BYTES + 2 * MIB).await;
        let mut second = budget.hold();
        // Within the free bytes: no wait even with the budget spent.
        second.cover(FREE_BYTES).await;
        let waiting = tokio::spawn(async move {
            second.cover(FREE_BYTES + MIB).await;
            second
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "the budget is spent: it must wait");
        first.cover(FREE_BYTES + MIB).await; // its next request is smaller: gives back 1 MiB
        let second = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("woken when memory is given back")
            .expect("task");
        assert_eq!(second.held(), MIB);
        assert_eq!(budget.available(), 0);
    }

    /// Two connections each holding part of the budget and both wanting more for a larger
    /// request: each gives back what it holds before waiting, so one of them gets its whole
    /// piece and neither waits for ever.
    #[tokio::test]
    async fn holders_wanting_more_do_not_wait_on_each_other() {
        let budget = RequestBudget::new(Some(4 * MIB));
        let mut a = budget.hold();
        let mut b = budget.hold();
        a.cover(FREE_BYTES + 2 * MIB).await;
        b.cover(FREE_BYTES + 2 * MIB).await;
        assert_eq!(budget.available(), 0);
        let mut a = tokio::spawn(async move {
            a.cover(FREE_BYTES + 3 * MIB).await;
            a
        });
        let mut b = tokio::spawn(async move {
            b.cover(FREE_BYTES + 3 * MIB).await;
            b
        });
        // One of them gets 3 MiB; the other waits until the first is done with it.
        let first = tokio::time::timeout(Duration::from_secs(5), async {
            tokio::select! {
                done = &mut a => (done.expect("task"), b),
                done = &mut b => (done.expect("task"), a),
            }
        })
        .await
        .expect("one of the two gets its piece");
        let (mut done, other) = first;
        assert_eq!(done.held(), 3 * MIB);
        done.release();
        let other = tokio::time::timeout(Duration::from_secs(5), other)
            .await
            .expect("the other gets its piece once the first gives it back")
            .expect("task");
        assert_eq!(other.held(), 3 * MIB);
    }

    #[tokio::test]
    async fn unbounded_never_waits() {
        let budget = RequestBudget::new(None);
        let mut hold = budget.hold();
        hold.cover(usize::MAX).await;
        assert_eq!(budget.available(), usize::MAX);
    }
}

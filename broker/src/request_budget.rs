//! The broker-wide budget of request bytes being read (Kafka's `queued.max.request.bytes`).
//!
//! Every connection's receive buffer is accounted here: the part of its capacity beyond one
//! read step ([`READ_STEP`], which every connection may use freely so that small requests
//! never wait), capped at the whole budget so that one request larger than the budget can
//! still be read (up to `socket.request.max.bytes`). A connection that needs to grow its
//! buffer while the budget is spent waits: it stops reading its socket until other
//! connections finish their requests or close, and TCP flow control pushes back on the
//! client. Memory held by receive buffers is thus at most the budget plus one read step
//! per connection that is in the middle of receiving a request.
//!
//! Connections grow their buffers with the bytes that arrive (`floe_protocol::frame`), so
//! a prefix announcing 100 MiB followed by a few bytes costs one read step, not budget.
//! A connection paused for the budget counts as idle: if it stays paused for
//! `connections.max.idle.ms` it is closed, which frees what it held (several big requests
//! received halfway can otherwise wait on each other for good).

use std::sync::Arc;

use floe_protocol::frame::READ_STEP;
use tokio::sync::Semaphore;

use crate::log_limit::LogLimit;

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

    /// Bytes of the budget that a receive buffer of `capacity` bytes takes.
    fn needed(&self, capacity: usize) -> usize {
        capacity.saturating_sub(READ_STEP).min(self.budget.total)
    }

    /// Makes this hold cover a receive buffer of `capacity` bytes, waiting while the budget
    /// is spent. Gives back the difference when the buffer shrinks.
    pub async fn cover(&mut self, capacity: usize) {
        let needed = self.needed(capacity);
        let Some(permits) = self.budget.permits.clone() else {
            return;
        };
        if needed <= self.held {
            self.shrink_to(needed);
            return;
        }
        while self.held < needed {
            // One acquisition takes at most u32::MAX permits; an increment is at most a
            // request (2 GiB), so this loops only in theory.
            let step = u32::try_from(needed - self.held).unwrap_or(u32::MAX);
            let permit = match permits.try_acquire_many(step) {
                Ok(permit) => permit,
                Err(_) => {
                    crate::warn_limited!(
                        PAUSED,
                        budget = self.budget.total,
                        available = permits.available_permits(),
                        wanted = step,
                        "reading paused: queued.max.request.bytes is in use by requests being received"
                    );
                    match permits.acquire_many(step).await {
                        Ok(permit) => permit,
                        // The semaphore is never closed.
                        Err(_) => return,
                    }
                }
            };
            permit.forget();
            self.held += step as usize;
        }
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
        hold.cover(READ_STEP).await;
        assert_eq!(hold.held(), 0);
        hold.cover(READ_STEP + MIB).await;
        assert_eq!(hold.held(), MIB);
        assert_eq!(budget.available(), 3 * MIB);
        hold.cover(READ_STEP + 100).await;
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
    async fn growing_waits_until_another_connection_gives_back() {
        let budget = RequestBudget::new(Some(2 * MIB));
        let mut first = budget.hold();
        first.cover(READ_STEP + 2 * MIB).await;
        let mut second = budget.hold();
        // Within the free read step: no wait even with the budget spent.
        second.cover(READ_STEP).await;
        let waiting = tokio::spawn(async move {
            second.cover(READ_STEP + MIB).await;
            second
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "the budget is spent: it must wait");
        first.cover(READ_STEP + MIB).await; // gives back 1 MiB
        let second = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("woken when memory is given back")
            .expect("task");
        assert_eq!(second.held(), MIB);
        assert_eq!(budget.available(), 0);
    }

    #[tokio::test]
    async fn unbounded_never_waits() {
        let budget = RequestBudget::new(None);
        let mut hold = budget.hold();
        hold.cover(usize::MAX).await;
        assert_eq!(budget.available(), usize::MAX);
    }
}

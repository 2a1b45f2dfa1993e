//! Retention holds: a reader that must see every record of a log (tableflow's table writer)
//! holds back the head of the log from the first offset it still needs, for a bounded time.
//!
//! A hold is an in-memory claim ([`RetentionHold`], released when dropped): nothing is
//! written to disk, so a restarted broker has no holds until their owners take them again.
//! It never changes what the rules condemn, only when condemned segments go:
//! - a condemned segment entirely below every hold's offset goes at once;
//! - a condemned segment holding records at or after a hold's offset stays until that hold's
//!   `max_hold_ms` has passed since retention first condemned it (for `retention.ms`, since
//!   its newest record expired, which survives restarts; for `retention.bytes`, since the
//!   first pass that condemned it), then goes anyway: the owner finds its records gone and
//!   counts them;
//! - what holds keep of a log on local disk never exceeds a byte bound (the broker's
//!   `log.local.hard.limit.bytes`): past it the oldest kept segments go anyway, so a hold
//!   never fills the disk;
//! - the log start offset moved by DeleteRecords is never held (an admin asked for it).
//!
//! Deletion stays a prefix of the log: a segment that may go waits behind an older one that
//! is kept.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

/// One holder's claim on a log: records at and after `offset` are still needed, for at
/// most `max_hold_ms` past the time retention condemned them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Claim {
    offset: i64,
    max_hold_ms: u64,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    claims: BTreeMap<u64, Claim>,
    /// Wall-clock ms at which a retention pass first condemned each segment it kept for a
    /// claim, by base offset; forgotten once the segment goes or is no longer condemned.
    condemned_since: BTreeMap<i64, i64>,
}

/// The holds on one log ([`super::PartitionLog::hold_retention`]).
#[derive(Debug, Default)]
pub(crate) struct Holds {
    state: Mutex<State>,
}

/// A claim on a log's head, taken with [`super::PartitionLog::hold_retention`]: retention
/// keeps the records at and after [`RetentionHold::offset`] for a bounded time (see the
/// module docs). Dropping it releases the claim at once.
#[derive(Debug)]
pub struct RetentionHold {
    holds: Arc<Holds>,
    id: u64,
}

impl RetentionHold {
    /// Moves the claim to `offset` (the first offset the holder still needs).
    pub fn set_offset(&self, offset: i64) {
        let mut state = self.holds.lock();
        if let Some(claim) = state.claims.get_mut(&self.id) {
            claim.offset = offset;
        }
    }

    /// The first offset the holder still needs.
    pub fn offset(&self) -> i64 {
        self.holds
            .lock()
            .claims
            .get(&self.id)
            .map_or(i64::MAX, |c| c.offset)
    }

    /// Whether this is a claim on `log` (and not on an earlier log of the same partition).
    pub fn is_on(&self, log: &super::PartitionLog) -> bool {
        Arc::ptr_eq(&self.holds, &log.retention_holds)
    }
}

impl Drop for RetentionHold {
    fn drop(&mut self) {
        let mut state = self.holds.lock();
        state.claims.remove(&self.id);
        if state.claims.is_empty() {
            state.condemned_since.clear();
        }
    }
}

/// A segment the retention rules condemned, as the holds see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Candidate {
    /// Its first offset.
    pub(crate) base: i64,
    /// The offset after its last record.
    pub(crate) next_offset: i64,
    /// Bytes it takes on local disk (0 for a segment of a tiered log's remote part).
    pub(crate) local_bytes: u64,
    /// When `retention.ms` condemned it (its newest record's time plus `retention.ms`),
    /// if `retention.ms` condemned it.
    pub(crate) expired_at_ms: Option<i64>,
}

/// Why segments holding records a hold still wanted were deleted anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ForcedBy {
    /// The hold's `max_hold_ms` passed.
    HoldExpired,
    /// Keeping them would exceed the byte bound on what holds keep.
    ByteBound,
}

/// Records a hold wanted that retention deletes anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Forced {
    /// The first such offset.
    pub(crate) from: i64,
    /// The offset after the last.
    pub(crate) to: i64,
    /// Why (the byte bound if it decided for any of them).
    pub(crate) by: ForcedBy,
}

/// What the holds let a retention pass delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Released {
    /// How many candidates, from the head, may go.
    pub(crate) count: usize,
    /// Candidates kept for a hold.
    pub(crate) kept: usize,
    /// Their bytes on local disk.
    pub(crate) kept_bytes: u64,
    /// Records a hold wanted among those that go.
    pub(crate) forced: Option<Forced>,
}

impl Holds {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Plain data, valid whatever a panicking holder was doing.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new claim from `offset` on.
    pub(crate) fn take(self: &Arc<Self>, offset: i64, max_hold_ms: u64) -> RetentionHold {
        let mut state = self.lock();
        let id = state.next_id;
        state.next_id += 1;
        state.claims.insert(
            id,
            Claim {
                offset,
                max_hold_ms,
            },
        );
        RetentionHold {
            holds: Arc::clone(self),
            id,
        }
    }

    /// Decides how many of `candidates` (the condemned segments, oldest first) a retention
    /// pass at `now_ms` may delete, keeping at most `max_kept_bytes` of local disk for the
    /// holds (see the module docs), and remembers when each kept one was first condemned.
    pub(crate) fn release(
        &self,
        candidates: &[Candidate],
        now_ms: i64,
        max_kept_bytes: Option<u64>,
    ) -> Released {
        let mut state = self.lock();
        let State {
            claims,
            condemned_since,
            ..
        } = &mut *state;
        // Segments gone or no longer condemned start afresh if condemned again.
        condemned_since.retain(|base, _| candidates.binary_search_by_key(base, |c| c.base).is_ok());
        if claims.is_empty() {
            condemned_since.clear();
            return Released {
                count: candidates.len(),
                ..Released::default()
            };
        }
        let mut count = candidates.len();
        let mut wanted_by_claim = Vec::with_capacity(candidates.len());
        for (i, c) in candidates.iter().enumerate() {
            let first_seen = *condemned_since.entry(c.base).or_insert(now_ms);
            let since = c.expired_at_ms.map_or(first_seen, |at| at.min(first_seen));
            let mut wanted = false;
            let mut kept = false;
            for claim in claims.values() {
                if c.next_offset > claim.offset {
                    wanted = true;
                    let max = i64::try_from(claim.max_hold_ms).unwrap_or(i64::MAX);
                    kept |= now_ms < since.saturating_add(max);
                }
            }
            if kept && count == candidates.len() {
                count = i;
            }
            wanted_by_claim.push(wanted);
        }
        let mut kept_bytes: u64 = candidates[count..].iter().map(|c| c.local_bytes).sum();
        let mut by = ForcedBy::HoldExpired;
        if let Some(limit) = max_kept_bytes {
            while kept_bytes > limit && count < candidates.len() {
                kept_bytes -= candidates[count].local_bytes;
                count += 1;
                by = ForcedBy::ByteBound;
            }
        }
        let lowest_claim = claims.values().map(|c| c.offset).min().unwrap_or(i64::MAX);
        let forced = candidates[..count]
            .iter()
            .zip(&wanted_by_claim)
            .filter(|(_, wanted)| **wanted)
            .map(|(c, _)| c)
            .fold(None, |acc: Option<Forced>, c| {
                let from = c.base.max(lowest_claim);
                Some(match acc {
                    Some(f) => Forced {
                        from: f.from.min(from),
                        to: f.to.max(c.next_offset),
                        by,
                    },
                    None => Forced {
                        from,
                        to: c.next_offset,
                        by,
                    },
                })
            });
        for c in &candidates[..count] {
            condemned_since.remove(&c.base);
        }
        Released {
            count,
            kept: candidates.len() - count,
            kept_bytes,
            forced,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ten segments of 10 offsets and 100 bytes, `[0, 10)`, `[10, 20)`, ...; the first
    /// `by_time` condemned by `retention.ms` at `expired_at`.
    fn segments(by_time: usize, expired_at: i64) -> Vec<Candidate> {
        (0..10)
            .map(|i| Candidate {
                base: i * 10,
                next_offset: i * 10 + 10,
                local_bytes: 100,
                expired_at_ms: (i < by_time as i64).then_some(expired_at),
            })
            .collect()
    }

    #[test]
    fn no_hold_releases_everything_condemned() {
        let holds = Arc::new(Holds::default());
        let released = holds.release(&segments(10, 0), 1_000, None);
        assert_eq!(released.count, 10);
        assert_eq!(released.forced, None);
        // A hold taken and dropped leaves nothing behind.
        drop(holds.take(0, 60_000));
        assert_eq!(holds.release(&segments(10, 0), 1_000, None).count, 10);
    }

    #[test]
    fn what_the_holder_has_is_released_the_rest_waits_for_the_bound() {
        let holds = Arc::new(Holds::default());
        let hold = holds.take(35, 10_000);
        // Expired by time at 1000: segments [0, 30) are below the hold and go; [30, 40)
        // holds offsets 35..40 the holder still needs.
        let c = segments(10, 1_000);
        let released = holds.release(&c, 2_000, None);
        assert_eq!(released.count, 3);
        assert_eq!(released.kept, 7);
        assert_eq!(released.kept_bytes, 700);
        assert_eq!(released.forced, None);
        // The holder catches up to 62: [30, 60) go.
        hold.set_offset(62);
        assert_eq!(hold.offset(), 62);
        let released = holds.release(&c[3..], 5_000, None);
        assert_eq!(released.count, 3);
        // The bound counts from the records' expiry (1000), not from the first pass: at
        // 10_999 [60, 70) is still kept, at 11_000 everything goes and the wanted records
        // are reported.
        let c = &c[6..];
        assert_eq!(holds.release(c, 10_999, None).count, 0);
        let released = holds.release(c, 11_000, None);
        assert_eq!(released.count, 4);
        assert_eq!(
            released.forced,
            Some(Forced {
                from: 62,
                to: 100,
                by: ForcedBy::HoldExpired
            })
        );
    }

    #[test]
    fn size_condemned_segments_count_from_the_first_pass_that_condemned_them() {
        let holds = Arc::new(Holds::default());
        let _hold = holds.take(0, 10_000);
        let c = segments(0, 0);
        assert_eq!(holds.release(&c[..2], 50_000, None).count, 0);
        // Later passes condemn more: each waits from the pass that first condemned it.
        assert_eq!(holds.release(&c[..4], 55_000, None).count, 0);
        assert_eq!(holds.release(&c[..4], 60_000, None).count, 2);
        assert_eq!(holds.release(&c[2..4], 64_999, None).count, 0);
        assert_eq!(holds.release(&c[2..4], 65_000, None).count, 2);
        // A segment no longer condemned (retention.bytes raised) starts afresh.
        let _ = holds.release(&c[4..6], 70_000, None);
        let _ = holds.release(&[], 71_000, None);
        assert_eq!(holds.release(&c[4..6], 79_000, None).count, 0);
        assert_eq!(holds.release(&c[4..6], 88_999, None).count, 0);
        assert_eq!(holds.release(&c[4..6], 89_000, None).count, 2);
    }

    #[test]
    fn the_byte_bound_releases_the_oldest_kept_segments() {
        let holds = Arc::new(Holds::default());
        let _hold = holds.take(15, 3_600_000);
        let released = holds.release(&segments(10, 0), 1_000, Some(450));
        // [0, 10) is free; of the 9 kept (900 bytes) the oldest 5 go to keep 400.
        assert_eq!(released.count, 6);
        assert_eq!(released.kept_bytes, 400);
        assert_eq!(
            released.forced,
            Some(Forced {
                from: 15,
                to: 60,
                by: ForcedBy::ByteBound
            })
        );
        // Remote segments (no local bytes) are not bounded.
        let remote: Vec<Candidate> = segments(10, 0)
            .into_iter()
            .map(|c| Candidate {
                local_bytes: 0,
                ..c
            })
            .collect();
        assert_eq!(holds.release(&remote, 1_000, Some(0)).count, 1);
    }

    #[test]
    fn several_holds_each_with_its_own_bound() {
        let holds = Arc::new(Holds::default());
        let short = holds.take(20, 1_000);
        let long = holds.take(40, 10_000);
        let c = segments(10, 0);
        // The lower claim keeps from 20 on until its bound; then the other's from 40 on.
        assert_eq!(holds.release(&c, 500, None).count, 2);
        assert_eq!(holds.release(&c, 1_000, None).count, 4);
        drop(long);
        assert_eq!(holds.release(&c, 1_000, None).count, 10);
        // A hold with no time at all keeps nothing.
        drop(short);
        let _none = holds.take(0, 0);
        assert_eq!(holds.release(&c, 0, None).count, 10);
    }

    #[test]
    fn deletion_stays_a_prefix() {
        let holds = Arc::new(Holds::default());
        let _hold = holds.take(5, 10_000);
        // [0, 10) is wanted and not yet expired; [10, 20) expired long ago by time but
        // waits behind it.
        let mut c = segments(0, 0);
        c[1].expired_at_ms = Some(-1_000_000);
        assert_eq!(holds.release(&c[..2], 1_000, None).count, 0);
    }
}

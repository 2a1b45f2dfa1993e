//! Incremental reconciliation of one member's assignment towards its target (KIP-848,
//! Kafka's `CurrentAssignmentBuilder`). A partition changes hands in two steps: its old
//! owner is first asked to revoke it (the member keeps its epoch until it reports, through
//! its owned partitions, that it let go), and only then may the new owner get it. A member
//! whose target holds partitions still owned by others moves to the target epoch with what
//! is free and gets the rest on later heartbeats, once they are released.

use std::collections::BTreeSet;

use uuid::Uuid;

use super::assignor::Assignment;

/// Where a member is in its reconciliation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// At its target epoch with everything it can have.
    Stable,
    /// Waiting for the member to revoke partitions.
    UnrevokedPartitions,
    /// At its target epoch, waiting for others to release partitions it should get.
    UnreleasedPartitions,
}

/// A member's assignment state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciliation {
    /// State.
    pub state: MemberState,
    /// Member epoch.
    pub member_epoch: i32,
    /// The epoch before the last bump (a heartbeat with it is still accepted if the
    /// response carrying the new one was lost).
    pub previous_epoch: i32,
    /// What the member may own now.
    pub assigned: Assignment,
    /// What it must give up before it moves on.
    pub pending_revocation: Assignment,
}

impl Reconciliation {
    /// A member that owns nothing, at epoch 0.
    pub fn joining() -> Reconciliation {
        Reconciliation {
            state: MemberState::Stable,
            member_epoch: 0,
            previous_epoch: 0,
            assigned: Assignment::new(),
            pending_revocation: Assignment::new(),
        }
    }

    /// The next step towards `target` (of `target_epoch`). `owned` is what the member
    /// reported in this heartbeat (None: not reported); `taken(topic, partition)` says
    /// whether another member still owns a partition.
    pub fn next(
        &self,
        target_epoch: i32,
        target: &Assignment,
        owned: Option<&Assignment>,
        taken: &dyn Fn(Uuid, i32) -> bool,
    ) -> Reconciliation {
        match self.state {
            MemberState::Stable | MemberState::UnreleasedPartitions => {
                if self.state == MemberState::Stable && self.member_epoch == target_epoch {
                    return self.clone();
                }
                self.compute(target_epoch, target, taken)
            }
            MemberState::UnrevokedPartitions => {
                // Without a report of what it owns, the member may still hold them: wait.
                match owned {
                    Some(owned) if !intersects(owned, &self.pending_revocation) => {
                        self.compute(target_epoch, target, taken)
                    }
                    _ => self.clone(),
                }
            }
        }
    }

    fn compute(
        &self,
        target_epoch: i32,
        target: &Assignment,
        taken: &dyn Fn(Uuid, i32) -> bool,
    ) -> Reconciliation {
        let mut assigned = Assignment::new();
        let mut revoke = Assignment::new();
        let mut to_assign = Assignment::new();
        let mut unreleased = false;
        let topics: BTreeSet<Uuid> = target.keys().chain(self.assigned.keys()).copied().collect();
        let empty = BTreeSet::new();
        for topic in topics {
            let want = target.get(&topic).unwrap_or(&empty);
            let have = self.assigned.get(&topic).unwrap_or(&empty);
            let keep: BTreeSet<i32> = have.intersection(want).copied().collect();
            let give_up: BTreeSet<i32> = have.difference(want).copied().collect();
            let mut add = BTreeSet::new();
            for &p in want.difference(have) {
                if taken(topic, p) {
                    unreleased = true;
                } else {
                    add.insert(p);
                }
            }
            if !keep.is_empty() {
                assigned.insert(topic, keep);
            }
            if !give_up.is_empty() {
                revoke.insert(topic, give_up);
            }
            if !add.is_empty() {
                to_assign.insert(topic, add);
            }
        }
        if !revoke.is_empty() {
            // Revoke first; the epoch stays until the member confirms.
            return Reconciliation {
                state: MemberState::UnrevokedPartitions,
                member_epoch: self.member_epoch,
                previous_epoch: self.previous_epoch,
                assigned,
                pending_revocation: revoke,
            };
        }
        for (topic, ps) in to_assign {
            assigned.entry(topic).or_default().extend(ps);
        }
        Reconciliation {
            state: if unreleased {
                MemberState::UnreleasedPartitions
            } else {
                MemberState::Stable
            },
            member_epoch: target_epoch,
            previous_epoch: if target_epoch == self.member_epoch {
                self.previous_epoch
            } else {
                self.member_epoch
            },
            assigned,
            pending_revocation: Assignment::new(),
        }
    }
}

/// Whether two assignments share a partition.
pub fn intersects(a: &Assignment, b: &Assignment) -> bool {
    a.iter()
        .any(|(t, ps)| b.get(t).is_some_and(|other| !ps.is_disjoint(other)))
}

/// Whether every partition of `a` is in `b`.
pub fn is_subset(a: &Assignment, b: &Assignment) -> bool {
    a.iter()
        .all(|(t, ps)| ps.is_empty() || b.get(t).is_some_and(|other| ps.is_subset(other)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> Uuid {
        Uuid::from_u128(7)
    }

    fn a(ps: &[i32]) -> Assignment {
        if ps.is_empty() {
            return Assignment::new();
        }
        Assignment::from([(t(), ps.iter().copied().collect())])
    }

    fn free(_: Uuid, _: i32) -> bool {
        false
    }

    #[test]
    fn joining_member_gets_free_partitions_and_the_target_epoch() {
        let r = Reconciliation::joining().next(3, &a(&[0, 1]), Some(&a(&[])), &free);
        assert_eq!(r.state, MemberState::Stable);
        assert_eq!((r.member_epoch, r.previous_epoch), (3, 0));
        assert_eq!(r.assigned, a(&[0, 1]));
    }

    #[test]
    fn partitions_owned_by_others_wait_until_released() {
        let taken = |_: Uuid, p: i32| p == 1;
        let r = Reconciliation::joining().next(3, &a(&[0, 1]), None, &taken);
        assert_eq!(r.state, MemberState::UnreleasedPartitions);
        assert_eq!(r.member_epoch, 3);
        assert_eq!(r.assigned, a(&[0]));
        // Still taken: nothing changes.
        assert_eq!(r.next(3, &a(&[0, 1]), None, &taken), r);
        // Released: the member gets it and is stable.
        let r = r.next(3, &a(&[0, 1]), None, &free);
        assert_eq!(r.state, MemberState::Stable);
        assert_eq!(r.assigned, a(&[0, 1]));
    }

    #[test]
    fn revocation_comes_first_and_keeps_the_epoch() {
        let mut m = Reconciliation::joining();
        m = m.next(1, &a(&[0, 1, 2]), None, &free);
        assert_eq!(m.member_epoch, 1);
        // New target: 0 and 3. 1 and 2 must be revoked before 3 is given.
        let r = m.next(2, &a(&[0, 3]), Some(&a(&[0, 1, 2])), &free);
        assert_eq!(r.state, MemberState::UnrevokedPartitions);
        assert_eq!(r.member_epoch, 1);
        assert_eq!(r.assigned, a(&[0]));
        assert_eq!(r.pending_revocation, a(&[1, 2]));
        // Still owns 2: wait. No report: wait.
        assert_eq!(r.next(2, &a(&[0, 3]), Some(&a(&[0, 2])), &free), r);
        assert_eq!(r.next(2, &a(&[0, 3]), None, &free), r);
        // Revoked: moves to epoch 2 with 0 and 3.
        let r = r.next(2, &a(&[0, 3]), Some(&a(&[0])), &free);
        assert_eq!(r.state, MemberState::Stable);
        assert_eq!((r.member_epoch, r.previous_epoch), (2, 1));
        assert_eq!(r.assigned, a(&[0, 3]));
    }

    #[test]
    fn stable_member_at_target_epoch_is_unchanged() {
        let m = Reconciliation::joining().next(4, &a(&[1]), None, &free);
        assert_eq!(m.next(4, &a(&[1]), Some(&a(&[1])), &free), m);
    }

    #[test]
    fn subset_and_intersection() {
        assert!(is_subset(&a(&[1]), &a(&[1, 2])));
        assert!(!is_subset(&a(&[3]), &a(&[1, 2])));
        assert!(is_subset(&a(&[]), &a(&[])));
        assert!(intersects(&a(&[1, 3]), &a(&[3])));
        assert!(!intersects(&a(&[1]), &a(&[2])));
    }
}

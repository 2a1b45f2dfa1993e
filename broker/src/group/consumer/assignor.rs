//! Server-side assignors of the consumer group protocol (KIP-848): given the members'
//! subscriptions, the subscribed topics' partition counts and the previous target
//! assignment, compute the next target assignment. Pure functions.
//!
//! - `uniform` (the default, as in Kafka): balanced (partition counts of any two members
//!   that could take each other's partitions differ by at most one) and sticky (a partition
//!   stays with its previous owner unless balance requires a move).
//! - `range`: per topic, the subscribed members sorted by id each get a contiguous range of
//!   partitions, the first `partitions % members` one more; members subscribed to topics
//!   with equal partition counts get the same partition numbers of each (co-partitioning).

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

/// Partitions by topic id.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// What an assignor sees.
#[derive(Debug, Clone, Default)]
pub struct AssignmentSpec {
    /// Members by id, with the ids of the topics they subscribe to (existing topics only).
    pub members: BTreeMap<String, BTreeSet<Uuid>>,
    /// Partition count of every subscribed topic.
    pub topics: BTreeMap<Uuid, i32>,
    /// The previous target assignment, by member id.
    pub previous: BTreeMap<String, Assignment>,
}

/// A server-side assignor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignor {
    /// Balanced and sticky.
    Uniform,
    /// Contiguous ranges per topic.
    Range,
}

impl Assignor {
    /// The name clients ask for (`group.remote.assignor`).
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Uniform => "uniform",
            Assignor::Range => "range",
        }
    }

    /// The assignor of this name.
    pub fn from_name(name: &str) -> Option<Assignor> {
        match name {
            "uniform" => Some(Assignor::Uniform),
            "range" => Some(Assignor::Range),
            _ => None,
        }
    }

    /// The target assignment: an entry for every member (maybe empty).
    pub fn assign(self, spec: &AssignmentSpec) -> BTreeMap<String, Assignment> {
        match self {
            Assignor::Uniform => uniform(spec),
            Assignor::Range => range(spec),
        }
    }
}

fn uniform(spec: &AssignmentSpec) -> BTreeMap<String, Assignment> {
    let mut owner: BTreeMap<(Uuid, i32), &str> = BTreeMap::new();
    let mut counts: BTreeMap<&str, usize> = spec.members.keys().map(|m| (m.as_str(), 0)).collect();
    // 1. Stickiness: keep every previous partition that is still valid for its member.
    for (member, subscribed) in &spec.members {
        let Some(previous) = spec.previous.get(member) else {
            continue;
        };
        for (topic, partitions) in previous {
            let Some(&count) = spec.topics.get(topic) else {
                continue;
            };
            if !subscribed.contains(topic) {
                continue;
            }
            for &p in partitions {
                if (0..count).contains(&p) && !owner.contains_key(&(*topic, p)) {
                    owner.insert((*topic, p), member.as_str());
                    *counts.entry(member.as_str()).or_default() += 1;
                }
            }
        }
    }
    let subscribers = |topic: Uuid| {
        spec.members
            .iter()
            .filter(move |(_, subs)| subs.contains(&topic))
            .map(|(m, _)| m.as_str())
    };
    // 2. Every partition without an owner goes to the least loaded member that subscribes.
    for (topic, &count) in &spec.topics {
        for p in 0..count {
            if owner.contains_key(&(*topic, p)) {
                continue;
            }
            let least = subscribers(*topic).min_by_key(|m| (counts.get(m).copied(), *m));
            if let Some(m) = least {
                owner.insert((*topic, p), m);
                *counts.entry(m).or_default() += 1;
            }
        }
    }
    // 3. Balance: move a partition to a subscriber holding at least two fewer. Each move
    // lowers the sum of squared counts, so this ends; only moves balance needs are made.
    loop {
        let mut moved = false;
        let keys: Vec<(Uuid, i32)> = owner.keys().copied().collect();
        for key in keys {
            let Some(&from) = owner.get(&key) else {
                continue;
            };
            let from_count = counts.get(from).copied().unwrap_or(0);
            let to = subscribers(key.0)
                .filter(|m| counts.get(m).copied().unwrap_or(0) + 1 < from_count)
                .min_by_key(|m| (counts.get(m).copied(), *m));
            if let Some(to) = to {
                owner.insert(key, to);
                *counts.entry(from).or_default() -= 1;
                *counts.entry(to).or_default() += 1;
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    let mut out: BTreeMap<String, Assignment> = spec
        .members
        .keys()
        .map(|m| (m.clone(), Assignment::new()))
        .collect();
    for ((topic, p), m) in owner {
        if let Some(a) = out.get_mut(m) {
            a.entry(topic).or_default().insert(p);
        }
    }
    out
}

fn range(spec: &AssignmentSpec) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = spec
        .members
        .keys()
        .map(|m| (m.clone(), Assignment::new()))
        .collect();
    for (topic, &count) in &spec.topics {
        let members: Vec<&String> = spec
            .members
            .iter()
            .filter(|(_, subs)| subs.contains(topic))
            .map(|(m, _)| m)
            .collect();
        if members.is_empty() || count <= 0 {
            continue;
        }
        let n = members.len() as i32;
        let (per, extra) = (count / n, count % n);
        let mut start = 0;
        for (i, m) in members.into_iter().enumerate() {
            let len = per + i32::from((i as i32) < extra);
            if len > 0
                && let Some(a) = out.get_mut(m)
            {
                a.insert(*topic, (start..start + len).collect());
            }
            start += len;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn spec(members: &[(&str, &[u128])], topics: &[(u128, i32)]) -> AssignmentSpec {
        AssignmentSpec {
            members: members
                .iter()
                .map(|(m, ts)| (m.to_string(), ts.iter().map(|t| topic(*t)).collect()))
                .collect(),
            topics: topics.iter().map(|(t, n)| (topic(*t), *n)).collect(),
            previous: BTreeMap::new(),
        }
    }

    fn counts(a: &BTreeMap<String, Assignment>) -> Vec<usize> {
        a.values()
            .map(|x| x.values().map(BTreeSet::len).sum())
            .collect()
    }

    /// Every partition of every topic assigned exactly once.
    fn assert_complete(spec: &AssignmentSpec, a: &BTreeMap<String, Assignment>) {
        let mut seen = BTreeSet::new();
        for (m, assignment) in a {
            for (t, ps) in assignment {
                assert!(spec.members[m].contains(t), "{m} got an unsubscribed topic");
                for p in ps {
                    assert!(seen.insert((*t, *p)), "{t}-{p} assigned twice");
                }
            }
        }
        let total: i32 = spec.topics.values().sum();
        assert_eq!(seen.len(), total as usize);
    }

    #[test]
    fn uniform_three_members_six_partitions_two_each() {
        let s = spec(&[("a", &[1]), ("b", &[1]), ("c", &[1])], &[(1, 6)]);
        let a = Assignor::Uniform.assign(&s);
        assert_complete(&s, &a);
        assert_eq!(counts(&a), vec![2, 2, 2]);
    }

    #[test]
    fn uniform_is_sticky_when_a_member_joins_and_leaves() {
        let mut s = spec(&[("a", &[1]), ("b", &[1])], &[(1, 6)]);
        let first = Assignor::Uniform.assign(&s);
        s.previous = first.clone();
        s.members.insert("c".into(), [topic(1)].into());
        let second = Assignor::Uniform.assign(&s);
        assert_complete(&s, &second);
        assert_eq!(counts(&second), vec![2, 2, 2]);
        // a and b only lost partitions: everything they keep they had before.
        for m in ["a", "b"] {
            let before = &first[m][&topic(1)];
            let after = &second[m][&topic(1)];
            assert!(after.is_subset(before), "{m}: {before:?} -> {after:?}");
        }
        // c leaves: a and b keep what they had and share c's partitions.
        s.previous = second.clone();
        s.members.remove("c");
        let third = Assignor::Uniform.assign(&s);
        assert_complete(&s, &third);
        assert_eq!(counts(&third), vec![3, 3]);
        for m in ["a", "b"] {
            assert!(second[m][&topic(1)].is_subset(&third[m][&topic(1)]));
        }
    }

    #[test]
    fn uniform_balances_mixed_subscriptions() {
        // a: t1, t2; b: t2 only. t1 has 4 partitions, t2 has 4: a must take all of t1.
        let s = spec(&[("a", &[1, 2]), ("b", &[2])], &[(1, 4), (2, 4)]);
        let a = Assignor::Uniform.assign(&s);
        assert_complete(&s, &a);
        assert_eq!(counts(&a), vec![4, 4]);
        assert_eq!(a["b"][&topic(2)].len(), 4);
    }

    #[test]
    fn uniform_drops_partitions_of_unsubscribed_or_shrunk_topics() {
        let mut s = spec(&[("a", &[1])], &[(1, 2)]);
        s.previous.insert(
            "a".into(),
            [(topic(1), [0, 1, 5].into()), (topic(9), [0].into())].into(),
        );
        let a = Assignor::Uniform.assign(&s);
        assert_eq!(a["a"], Assignment::from([(topic(1), [0, 1].into())]));
    }

    #[test]
    fn uniform_more_members_than_partitions() {
        let s = spec(&[("a", &[1]), ("b", &[1]), ("c", &[1])], &[(1, 2)]);
        let a = Assignor::Uniform.assign(&s);
        assert_complete(&s, &a);
        let mut c = counts(&a);
        c.sort();
        assert_eq!(c, vec![0, 1, 1]);
    }

    #[test]
    fn range_gives_contiguous_ranges_and_copartitions() {
        let s = spec(&[("a", &[1, 2]), ("b", &[1, 2])], &[(1, 5), (2, 5)]);
        let a = Assignor::Range.assign(&s);
        assert_complete(&s, &a);
        assert_eq!(a["a"][&topic(1)], [0, 1, 2].into());
        assert_eq!(a["b"][&topic(1)], [3, 4].into());
        assert_eq!(a["a"][&topic(2)], a["a"][&topic(1)]);
    }

    #[test]
    fn range_with_more_members_than_partitions() {
        let s = spec(&[("a", &[1]), ("b", &[1]), ("c", &[1])], &[(1, 2)]);
        let a = Assignor::Range.assign(&s);
        assert_complete(&s, &a);
        assert!(a["c"].is_empty());
    }

    #[test]
    fn names_round_trip() {
        for a in [Assignor::Uniform, Assignor::Range] {
            assert_eq!(Assignor::from_name(a.name()), Some(a));
        }
        assert_eq!(Assignor::from_name("sticky"), None);
    }
}

//! Incremental fetch sessions (KIP-227).
//!
//! A client that opens a session (session id 0, epoch 0) sends its full partition list once;
//! afterwards it sends only changes (new or moved partitions, and partitions to forget), and
//! the broker answers only for partitions with something new: records, an error, or a
//! changed high watermark, last stable offset or log start offset.
//!
//! The session also remembers what the last response said per partition, so the broker can
//! tell what is new. Sessions are evicted least-recently-used when the cache is full.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use kafka_protocol::ResponseError;
use uuid::Uuid;

/// One partition a fetch asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchTarget {
    /// Topic name (resolved from the id for v13+; empty if the id is unknown).
    pub topic: String,
    /// Topic id (nil before v13 unless known).
    pub topic_id: Uuid,
    /// Partition.
    pub partition: i32,
    /// Offset to read from.
    pub fetch_offset: i64,
    /// Most bytes to return for this partition.
    pub max_bytes: i32,
}

#[derive(Debug, Clone)]
struct CachedPartition {
    target: FetchTarget,
    /// What the last response reported: (high watermark, last stable, log start).
    last_reported: Option<(i64, i64, i64)>,
}

#[derive(Debug)]
struct Session {
    next_epoch: i32,
    partitions: Vec<CachedPartition>,
    last_used: Instant,
}

/// The state of the fetch session a request belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// No session: answer every requested partition.
    Sessionless,
    /// A full fetch that (re)created session `id`: answer every partition.
    Full(i32),
    /// An incremental fetch in session `id`: answer partitions with news.
    Incremental(i32),
}

impl SessionKind {
    /// Session id to put in the response.
    pub fn response_id(self) -> i32 {
        match self {
            SessionKind::Sessionless => 0,
            SessionKind::Full(id) | SessionKind::Incremental(id) => id,
        }
    }
}

/// The session cache.
pub struct FetchSessions {
    slots: usize,
    inner: Mutex<Inner>,
}

struct Inner {
    next_id: i32,
    sessions: HashMap<i32, Session>,
}

/// What a fetch request says about its session.
pub struct SessionRequest<'a> {
    /// `session_id` field.
    pub session_id: i32,
    /// `session_epoch` field.
    pub epoch: i32,
    /// Partitions in the request (all of them for a full fetch, changes otherwise).
    pub targets: Vec<FetchTarget>,
    /// Partitions to drop from the session: (topic name, topic id, partition).
    pub forgotten: &'a [(String, Uuid, i32)],
}

impl FetchSessions {
    /// A cache holding at most `slots` sessions.
    pub fn new(slots: usize) -> FetchSessions {
        FetchSessions {
            slots,
            inner: Mutex::new(Inner {
                next_id: 1,
                sessions: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies a request to the cache; returns the session kind and the partitions to read.
    pub fn begin(
        &self,
        req: SessionRequest<'_>,
    ) -> Result<(SessionKind, Vec<FetchTarget>), ResponseError> {
        const FINAL_EPOCH: i32 = -1;
        let mut inner = self.lock();
        match (req.session_id, req.epoch) {
            (0, FINAL_EPOCH) => Ok((SessionKind::Sessionless, req.targets)),
            (id, FINAL_EPOCH) => {
                inner.sessions.remove(&id);
                Ok((SessionKind::Sessionless, req.targets))
            }
            (id, 0) => {
                if id != 0 {
                    inner.sessions.remove(&id);
                }
                if self.slots == 0 {
                    return Ok((SessionKind::Sessionless, req.targets));
                }
                if inner.sessions.len() >= self.slots {
                    let oldest = inner
                        .sessions
                        .iter()
                        .min_by_key(|(_, s)| s.last_used)
                        .map(|(id, _)| *id);
                    if let Some(oldest) = oldest {
                        inner.sessions.remove(&oldest);
                    }
                }
                let new_id = loop {
                    let candidate = inner.next_id;
                    inner.next_id = inner.next_id.checked_add(1).filter(|n| *n > 0).unwrap_or(1);
                    if !inner.sessions.contains_key(&candidate) {
                        break candidate;
                    }
                };
                inner.sessions.insert(
                    new_id,
                    Session {
                        next_epoch: 1,
                        partitions: req
                            .targets
                            .iter()
                            .map(|t| CachedPartition {
                                target: t.clone(),
                                last_reported: None,
                            })
                            .collect(),
                        last_used: Instant::now(),
                    },
                );
                Ok((SessionKind::Full(new_id), req.targets))
            }
            (id, epoch) => {
                let session = inner
                    .sessions
                    .get_mut(&id)
                    .ok_or(ResponseError::FetchSessionIdNotFound)?;
                if epoch != session.next_epoch {
                    return Err(ResponseError::InvalidFetchSessionEpoch);
                }
                session.next_epoch = if epoch == i32::MAX { 1 } else { epoch + 1 };
                session.last_used = Instant::now();
                session.partitions.retain(|p| {
                    !req.forgotten.iter().any(|(name, tid, part)| {
                        *part == p.target.partition
                            && ((!name.is_empty() && *name == p.target.topic)
                                || (!tid.is_nil() && *tid == p.target.topic_id))
                    })
                });
                for t in req.targets {
                    match session.partitions.iter_mut().find(|p| {
                        p.target.partition == t.partition
                            && p.target.topic == t.topic
                            && p.target.topic_id == t.topic_id
                    }) {
                        Some(p) => p.target = t,
                        None => session.partitions.push(CachedPartition {
                            target: t,
                            last_reported: None,
                        }),
                    }
                }
                let targets = session
                    .partitions
                    .iter()
                    .map(|p| p.target.clone())
                    .collect();
                Ok((SessionKind::Incremental(id), targets))
            }
        }
    }

    /// Records what a response reports for a session's partition, and says whether an
    /// incremental response must include it (`has_news`: it carries records or an error).
    pub fn should_report(
        &self,
        kind: SessionKind,
        target: &FetchTarget,
        offsets: (i64, i64, i64),
        has_news: bool,
    ) -> bool {
        let (id, incremental) = match kind {
            SessionKind::Sessionless => return true,
            SessionKind::Full(id) => (id, false),
            SessionKind::Incremental(id) => (id, true),
        };
        let mut inner = self.lock();
        let Some(session) = inner.sessions.get_mut(&id) else {
            return true;
        };
        let Some(cached) = session.partitions.iter_mut().find(|p| {
            p.target.partition == target.partition
                && p.target.topic == target.topic
                && p.target.topic_id == target.topic_id
        }) else {
            return true;
        };
        let changed = cached.last_reported != Some(offsets);
        cached.last_reported = Some(offsets);
        !incremental || has_news || changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(p: i32, offset: i64) -> FetchTarget {
        FetchTarget {
            topic: "t".into(),
            topic_id: Uuid::nil(),
            partition: p,
            fetch_offset: offset,
            max_bytes: 1024,
        }
    }

    #[test]
    fn full_then_incremental_then_errors() {
        let s = FetchSessions::new(10);
        let (kind, targets) = s
            .begin(SessionRequest {
                session_id: 0,
                epoch: 0,
                targets: vec![target(0, 0), target(1, 0)],
                forgotten: &[],
            })
            .unwrap();
        let SessionKind::Full(id) = kind else {
            panic!("expected a new session")
        };
        assert_eq!(targets.len(), 2);
        for t in &targets {
            assert!(s.should_report(kind, t, (5, 5, 0), false));
        }
        // Incremental: partition 1 moved; partition 0 forgotten.
        let forgotten = [("t".to_string(), Uuid::nil(), 0)];
        let (kind, targets) = s
            .begin(SessionRequest {
                session_id: id,
                epoch: 1,
                targets: vec![target(1, 5)],
                forgotten: &forgotten,
            })
            .unwrap();
        assert_eq!(kind, SessionKind::Incremental(id));
        assert_eq!(targets, vec![target(1, 5)]);
        // Nothing new: not reported; a new high watermark: reported.
        assert!(!s.should_report(kind, &targets[0], (5, 5, 0), false));
        assert!(s.should_report(kind, &targets[0], (6, 6, 0), false));
        assert!(s.should_report(kind, &targets[0], (6, 6, 0), true));
        // Wrong epoch, unknown session.
        let bad_epoch = s.begin(SessionRequest {
            session_id: id,
            epoch: 7,
            targets: vec![],
            forgotten: &[],
        });
        assert_eq!(
            bad_epoch.unwrap_err(),
            ResponseError::InvalidFetchSessionEpoch
        );
        let unknown = s.begin(SessionRequest {
            session_id: id + 100,
            epoch: 1,
            targets: vec![],
            forgotten: &[],
        });
        assert_eq!(unknown.unwrap_err(), ResponseError::FetchSessionIdNotFound);
        // Closing the session.
        let (kind, _) = s
            .begin(SessionRequest {
                session_id: id,
                epoch: -1,
                targets: vec![],
                forgotten: &[],
            })
            .unwrap();
        assert_eq!(kind, SessionKind::Sessionless);
    }

    #[test]
    fn evicts_least_recently_used_when_full() {
        let s = FetchSessions::new(1);
        let new = |s: &FetchSessions| {
            s.begin(SessionRequest {
                session_id: 0,
                epoch: 0,
                targets: vec![target(0, 0)],
                forgotten: &[],
            })
            .unwrap()
            .0
            .response_id()
        };
        let first = new(&s);
        let second = new(&s);
        assert_ne!(first, second);
        let gone = s.begin(SessionRequest {
            session_id: first,
            epoch: 1,
            targets: vec![],
            forgotten: &[],
        });
        assert_eq!(gone.unwrap_err(), ResponseError::FetchSessionIdNotFound);
    }
}

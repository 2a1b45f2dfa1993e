//! A member of a classic group, and the answers a JoinGroup or SyncGroup waits for.

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::{Duration, Instant};

use super::GroupError;

/// What a JoinGroup is answered with once the join phase completes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResponse {
    /// The member's id.
    pub member_id: String,
    /// The new generation.
    pub generation: i32,
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The selected protocol.
    pub protocol_name: Option<String>,
    /// The leader's member id.
    pub leader: String,
    /// The leader may skip computing an assignment (a static leader rejoining a stable
    /// group; JoinGroup v9+).
    pub skip_assignment: bool,
    /// For the leader: every member with its metadata for the selected protocol.
    pub members: Vec<JoinedMember>,
}

/// A member as the leader sees it in its JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    /// Member id.
    pub member_id: String,
    /// Static instance id.
    pub group_instance_id: Option<String>,
    /// Metadata for the selected protocol (a consumer's subscription).
    pub metadata: Bytes,
}

/// A JoinGroup's outcome.
pub type JoinOutcome = Result<JoinResponse, GroupError>;

/// What a SyncGroup is answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResponse {
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The selected protocol.
    pub protocol_name: Option<String>,
    /// The member's assignment.
    pub assignment: Bytes,
}

/// A SyncGroup's outcome.
pub type SyncOutcome = Result<SyncResponse, GroupError>;

/// One member of a classic group.
#[derive(Debug)]
pub struct Member {
    /// Member id (`<client id or instance id>-<uuid>`).
    pub id: String,
    /// Static membership instance id.
    pub instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host, as Kafka shows it (`/127.0.0.1`).
    pub client_host: String,
    /// Without a heartbeat for this long the member is removed.
    pub session_timeout: Duration,
    /// How long the group waits for this member to rejoin in a rebalance.
    pub rebalance_timeout: Duration,
    /// Protocols the member supports, most preferred first, with their metadata.
    pub protocols: Vec<(String, Bytes)>,
    /// Assignment of the current generation.
    pub assignment: Bytes,
    /// The member's JoinGroup waiting for the join phase to complete.
    pub join_waiter: Option<oneshot::Sender<JoinOutcome>>,
    /// The member's SyncGroup waiting for the leader's assignment.
    pub sync_waiter: Option<oneshot::Sender<SyncOutcome>>,
    /// When the session expires unless a heartbeat (or join, sync, commit) comes first.
    pub session_deadline: Instant,
}

impl Member {
    /// Metadata the member sent for `protocol`.
    pub fn metadata_for(&self, protocol: &str) -> Option<&Bytes> {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m)
    }

    /// Whether the member sent exactly these protocols (names and metadata, same order).
    pub fn same_protocols(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    /// Pushes the session deadline out by one session timeout from `now`.
    pub fn touch(&mut self, now: Instant) {
        self.session_deadline = now + self.session_timeout;
    }

    /// Answers a waiting JoinGroup, if any.
    pub fn answer_join(&mut self, outcome: JoinOutcome) {
        if let Some(w) = self.join_waiter.take() {
            // The client may have gone; nothing waits for the answer then.
            let _ = w.send(outcome);
        }
    }

    /// Answers a waiting SyncGroup, if any.
    pub fn answer_sync(&mut self, outcome: SyncOutcome) {
        if let Some(w) = self.sync_waiter.take() {
            let _ = w.send(outcome);
        }
    }
}

/// A new member id, as Kafka makes them: the instance id (static members) or the client id,
/// a dash, a random UUID.
pub fn new_member_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

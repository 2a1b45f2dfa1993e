//! The group coordinator: consumer groups of the classic protocol (JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup, static membership) and committed offsets, for every group (this
//! single broker coordinates them all).
//!
//! - [`classic`]: one group and its rebalance state machine, Empty → PreparingRebalance →
//!   CompletingRebalance → Stable (→ Dead when deleted), as Kafka's `ClassicGroup` defines
//!   it. Pure state: no locks, no I/O; what must happen next (timers to arm, a group record
//!   to write, responses to release once it is durable) is returned as [`classic::Effects`].
//! - [`consumer`]: KIP-848 consumer groups (ConsumerGroupHeartbeat): group and member
//!   epochs, server-side assignors (`uniform`, `range`) and incremental reconciliation;
//!   pure state too. A consumer group is a [`classic::Group`] with its `consumer` state
//!   set, so offsets, listing, deletion and expiry are shared.
//! - [`coordinator`]: the shared [`GroupCoordinator`]: the groups behind one lock, timers
//!   (tokio), and persistence.
//! - [`records`]: the key and value formats of `__consumer_offsets`, Kafka's own.
//! - [`crate::internal_topic`]: how the coordinator reaches `__consumer_offsets` (an
//!   interface, so tests run against memory) and how it replays it on start; shared with the
//!   transaction coordinator.
//!
//! Durability: an OffsetCommit, a completed SyncGroup and a DeleteGroups are answered only
//! after their records are fdatasync'ed. Committed offsets are applied in memory when they
//! are appended (under the coordinator lock, so in log order), before the sync completes;
//! only the acknowledgement waits for the sync.

pub mod classic;
pub mod consumer;
pub mod coordinator;
pub mod member;
pub mod records;

pub use coordinator::GroupCoordinator;

use kafka_protocol::ResponseError;

/// The internal topic holding committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Why a group operation was refused; each is one Kafka error code ([`GroupError::code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// The group id is empty.
    #[error("invalid group id")]
    InvalidGroupId,
    /// The coordinator cannot serve the group (its log failed to load or to write).
    #[error("the coordinator is not available")]
    CoordinatorNotAvailable,
    /// The member is not (or no longer) in the group.
    #[error("unknown member id")]
    UnknownMemberId,
    /// A v4+ JoinGroup without a member id: rejoin with this one.
    #[error("member id required: {0}")]
    MemberIdRequired(String),
    /// The request's generation is not the group's.
    #[error("illegal generation")]
    IllegalGeneration,
    /// A rebalance is in progress; rejoin.
    #[error("rebalance in progress")]
    RebalanceInProgress,
    /// Protocol type or protocols do not match the group's.
    #[error("inconsistent group protocol")]
    InconsistentGroupProtocol,
    /// Session timeout outside the broker's allowed range.
    #[error("invalid session timeout")]
    InvalidSessionTimeout,
    /// Another member with the same `group.instance.id` replaced this one.
    #[error("fenced instance id")]
    FencedInstanceId,
    /// No such group.
    #[error("group id not found")]
    GroupIdNotFound,
    /// The group still has members.
    #[error("the group is not empty")]
    NonEmptyGroup,
    /// OffsetDelete of a topic the group's members subscribe to.
    #[error("the group is subscribed to the topic")]
    GroupSubscribedToTopic,
    /// Commit metadata larger than `offset_metadata_max_bytes`.
    #[error("offset metadata too large")]
    OffsetMetadataTooLarge,
    /// The commit does not fit in one record batch of `__consumer_offsets`.
    #[error("commit too large")]
    InvalidCommitOffsetSize,
    /// A request field is missing or malformed (KIP-848 heartbeats).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The server assignor asked for is not one the broker has.
    #[error("unsupported assignor {0}")]
    UnsupportedAssignor(String),
    /// The member's epoch is not the one the coordinator knows: it must rejoin.
    #[error("fenced member epoch")]
    FencedMemberEpoch,
    /// An offset request carries an older member epoch than the member's.
    #[error("stale member epoch")]
    StaleMemberEpoch,
    /// A static member's instance id is still used by a member that has not left.
    #[error("unreleased instance id")]
    UnreleasedInstanceId,
    /// The group has `group_consumer_max_size` members.
    #[error("group max size reached")]
    GroupMaxSizeReached,
    /// A KIP-848 member committing with a request version it must not use.
    #[error("unsupported version")]
    UnsupportedVersion,
    /// An offset commit for a topic or partition that does not exist.
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
}

impl GroupError {
    /// The Kafka error code clients expect for this failure.
    pub fn code(&self) -> ResponseError {
        match self {
            GroupError::InvalidGroupId => ResponseError::InvalidGroupId,
            GroupError::CoordinatorNotAvailable => ResponseError::CoordinatorNotAvailable,
            GroupError::UnknownMemberId => ResponseError::UnknownMemberId,
            GroupError::MemberIdRequired(_) => ResponseError::MemberIdRequired,
            GroupError::IllegalGeneration => ResponseError::IllegalGeneration,
            GroupError::RebalanceInProgress => ResponseError::RebalanceInProgress,
            GroupError::InconsistentGroupProtocol => ResponseError::InconsistentGroupProtocol,
            GroupError::InvalidSessionTimeout => ResponseError::InvalidSessionTimeout,
            GroupError::FencedInstanceId => ResponseError::FencedInstanceId,
            GroupError::GroupIdNotFound => ResponseError::GroupIdNotFound,
            GroupError::NonEmptyGroup => ResponseError::NonEmptyGroup,
            GroupError::GroupSubscribedToTopic => ResponseError::GroupSubscribedToTopic,
            GroupError::OffsetMetadataTooLarge => ResponseError::OffsetMetadataTooLarge,
            GroupError::InvalidCommitOffsetSize => ResponseError::InvalidCommitOffsetSize,
            GroupError::InvalidRequest(_) => ResponseError::InvalidRequest,
            GroupError::UnsupportedAssignor(_) => ResponseError::UnsupportedAssignor,
            GroupError::FencedMemberEpoch => ResponseError::FencedMemberEpoch,
            GroupError::StaleMemberEpoch => ResponseError::StaleMemberEpoch,
            GroupError::UnreleasedInstanceId => ResponseError::UnreleasedInstanceId,
            GroupError::GroupMaxSizeReached => ResponseError::GroupMaxSizeReached,
            GroupError::UnsupportedVersion => ResponseError::UnsupportedVersion,
            GroupError::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
        }
    }
}

/// The partition of `__consumer_offsets` that holds a group, as Kafka computes it
/// (`Utils.abs(groupId.hashCode) % partitions`, with Java's `String.hashCode`), so a data
/// directory keeps Kafka's layout.
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    let mut h: i32 = 0;
    for unit in group_id.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    (h & 0x7fff_ffff) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_the_ones_clients_expect() {
        let cases: &[(GroupError, i16)] = &[
            (GroupError::InvalidGroupId, 24),
            (GroupError::CoordinatorNotAvailable, 15),
            (GroupError::UnknownMemberId, 25),
            (GroupError::MemberIdRequired(String::new()), 79),
            (GroupError::IllegalGeneration, 22),
            (GroupError::RebalanceInProgress, 27),
            (GroupError::InconsistentGroupProtocol, 23),
            (GroupError::InvalidSessionTimeout, 26),
            (GroupError::FencedInstanceId, 82),
            (GroupError::GroupIdNotFound, 69),
            (GroupError::NonEmptyGroup, 68),
            (GroupError::GroupSubscribedToTopic, 86),
            (GroupError::OffsetMetadataTooLarge, 12),
            (GroupError::InvalidCommitOffsetSize, 28),
            (GroupError::InvalidRequest(String::new()), 42),
            (GroupError::UnsupportedAssignor(String::new()), 112),
            (GroupError::FencedMemberEpoch, 110),
            (GroupError::StaleMemberEpoch, 113),
            (GroupError::UnreleasedInstanceId, 111),
            (GroupError::GroupMaxSizeReached, 81),
            (GroupError::UnsupportedVersion, 35),
        ];
        for (e, code) in cases {
            assert_eq!(e.code().code(), *code, "{e:?}");
        }
    }

    #[test]
    fn partition_matches_java_string_hash() {
        // "abc".hashCode() == 96354; "".hashCode() == 0.
        assert_eq!(partition_for("abc", 50), 96354 % 50);
        assert_eq!(partition_for("", 50), 0);
        // A hash that overflows to a negative int: Kafka masks the sign bit.
        let h = "a-rather-long-consumer-group-name"
            .encode_utf16()
            .fold(0i32, |h, u| h.wrapping_mul(31).wrapping_add(i32::from(u)));
        assert_eq!(
            partition_for("a-rather-long-consumer-group-name", 50),
            (h & 0x7fff_ffff) % 50
        );
        assert_eq!(partition_for("x", 1), 0);
    }
}

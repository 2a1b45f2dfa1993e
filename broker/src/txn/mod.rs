//! The transaction coordinator: Kafka's transaction protocol for every transactional id
//! (this single broker coordinates them all), beside the group coordinator and over the same
//! internal-topic mechanism ([`crate::internal_topic`]).
//!
//! - [`state`]: one transactional id's state machine as pure functions returning the
//!   [`state::Step`]s that carry a request out.
//! - [`records`]: the key and value formats of `__transaction_state`, Kafka's own.
//! - [`coordinator`]: the shared [`TransactionCoordinator`]: the metadata of every
//!   transactional id, the execution of steps (records fdatasync'ed before a request is
//!   answered, markers written to every partition of a transaction and synced), replay on
//!   start, the completion of transactions a crash left half-ended, and the abort of
//!   transactions open past their timeout.
//!
//! Durability: a transaction's outcome is decided when its PrepareCommit or PrepareAbort
//! record is durable; the markers follow, each partition's made durable before the
//! CompleteCommit or CompleteAbort record is written. A broker that stops in between finds
//! the Prepare record on start and writes the markers still missing (a partition where the
//! producer has no open transaction already has its marker, so none is ever written twice).

pub mod coordinator;
pub mod records;
pub mod state;

pub use coordinator::TransactionCoordinator;

/// The internal topic holding the transaction coordinator's state.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

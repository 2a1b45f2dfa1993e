//! One transactional id's state machine, as Kafka's `TransactionMetadata` defines it, as
//! pure functions: each request is checked against the current metadata and answered with
//! the [`Step`]s that carry it out (records to make durable in `__transaction_state`,
//! markers to write), which the coordinator executes in order. No locks, no I/O.
//!
//! States: Empty → Ongoing (AddPartitionsToTxn/AddOffsetsToTxn) → PrepareCommit or
//! PrepareAbort (EndTxn; the decision is durable once this record is) → CompleteCommit or
//! CompleteAbort (after every partition has its marker) → Ongoing again with the next
//! transaction. InitProducerId bumps the epoch (fencing earlier producers with the same
//! transactional id) and aborts a transaction left open; a transaction open past its
//! timeout is aborted with a bumped epoch, which fences the producer that left it.

use std::collections::BTreeSet;

use floe_protocol::control::ControlType;
use kafka_protocol::ResponseError;

/// Kafka's transaction states (the `state` byte of the log value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnState {
    /// No transaction.
    Empty,
    /// A transaction with partitions is open.
    Ongoing,
    /// Committing: markers are being written.
    PrepareCommit,
    /// Aborting: markers are being written.
    PrepareAbort,
    /// The last transaction committed.
    CompleteCommit,
    /// The last transaction aborted.
    CompleteAbort,
    /// The transactional id expired.
    Dead,
    /// Fencing a producer (Kafka writes it before the abort it leads to).
    PrepareEpochFence,
}

impl TxnState {
    /// The state byte.
    pub fn code(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    /// From the state byte.
    pub fn from_code(code: i8) -> Option<TxnState> {
        Some(match code {
            0 => TxnState::Empty,
            1 => TxnState::Ongoing,
            2 => TxnState::PrepareCommit,
            3 => TxnState::PrepareAbort,
            4 => TxnState::CompleteCommit,
            5 => TxnState::CompleteAbort,
            6 => TxnState::Dead,
            7 => TxnState::PrepareEpochFence,
            _ => return None,
        })
    }

    /// The name DescribeTransactions and ListTransactions use.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }
}

/// What the coordinator knows about one transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    /// The transactional id.
    pub transactional_id: String,
    /// Its producer id.
    pub producer_id: i64,
    /// Its current epoch.
    pub producer_epoch: i16,
    /// `transaction.timeout.ms` of the producer.
    pub timeout_ms: i32,
    /// The state.
    pub state: TxnState,
    /// Partitions of the open (or ending) transaction.
    pub partitions: BTreeSet<(String, i32)>,
    /// When the metadata last changed.
    pub last_update_ms: i64,
    /// When the open transaction began (-1 if none).
    pub start_ms: i64,
}

impl TxnMetadata {
    /// The partitions grouped by topic.
    pub fn topics(&self) -> Vec<(String, Vec<i32>)> {
        let mut out: Vec<(String, Vec<i32>)> = Vec::new();
        for (topic, p) in &self.partitions {
            match out.last_mut() {
                Some((t, ps)) if t == topic => ps.push(*p),
                _ => out.push((topic.clone(), vec![*p])),
            }
        }
        out
    }

    fn with(&self, state: TxnState, now_ms: i64) -> TxnMetadata {
        TxnMetadata {
            state,
            last_update_ms: now_ms,
            ..self.clone()
        }
    }
}

/// One thing the coordinator does to carry out a request, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Write this metadata to `__transaction_state`, sync it, then make it the current one.
    Persist(TxnMetadata),
    /// End the producer's transaction in these partitions with markers of this epoch.
    Markers {
        /// The producer.
        producer_id: i64,
        /// The markers' epoch.
        producer_epoch: i16,
        /// Commit or abort.
        control: ControlType,
        /// The transaction's partitions.
        partitions: Vec<(String, i32)>,
    },
}

/// Why a transaction request was refused; each is one Kafka error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TxnError {
    /// `transaction.timeout.ms` above `transaction.max.timeout.ms` (or not positive).
    #[error("invalid transaction timeout")]
    InvalidTransactionTimeout,
    /// The previous transaction is still completing; retry.
    #[error("concurrent transactions")]
    ConcurrentTransactions,
    /// A newer producer with the same transactional id exists.
    #[error("producer fenced")]
    ProducerFenced,
    /// The producer id is not the transactional id's.
    #[error("invalid producer id mapping")]
    InvalidProducerIdMapping,
    /// The request does not fit the transaction's state.
    #[error("invalid transaction state")]
    InvalidTxnState,
    /// The coordinator cannot serve (its log failed to load or write).
    #[error("coordinator not available")]
    CoordinatorNotAvailable,
    /// A partition of the request does not exist.
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    /// The transactional id is empty.
    #[error("invalid transactional id")]
    InvalidTransactionalId,
    /// No such transactional id (DescribeTransactions).
    #[error("transactional id not found")]
    TransactionalIdNotFound,
}

impl TxnError {
    /// The Kafka error code.
    pub fn code(self) -> ResponseError {
        match self {
            TxnError::InvalidTransactionTimeout => ResponseError::InvalidTransactionTimeout,
            TxnError::ConcurrentTransactions => ResponseError::ConcurrentTransactions,
            TxnError::ProducerFenced => ResponseError::ProducerFenced,
            TxnError::InvalidProducerIdMapping => ResponseError::InvalidProducerIdMapping,
            TxnError::InvalidTxnState => ResponseError::InvalidTxnState,
            TxnError::CoordinatorNotAvailable => ResponseError::CoordinatorNotAvailable,
            TxnError::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
            TxnError::InvalidTransactionalId => ResponseError::InvalidRequest,
            TxnError::TransactionalIdNotFound => ResponseError::TransactionalIdNotFound,
        }
    }
}

/// The next (producer id, epoch) of a bump: the same id with epoch + 1, or a new id once the
/// epoch would reach `i16::MAX` (`new_id` is asked only then).
fn bump(
    producer_id: i64,
    epoch: i16,
    new_id: &mut dyn FnMut() -> Result<i64, TxnError>,
) -> Result<(i64, i16), TxnError> {
    if epoch < i16::MAX - 1 {
        Ok((producer_id, epoch + 1))
    } else {
        Ok((new_id()?, 0))
    }
}

/// Steps that end an open transaction with an abort at `epoch` (which may be a bumped one
/// that fences the producer).
fn abort_steps(m: &TxnMetadata, producer_id: i64, epoch: i16, now_ms: i64) -> Vec<Step> {
    let prepare = TxnMetadata {
        producer_epoch: epoch,
        ..m.with(TxnState::PrepareAbort, now_ms)
    };
    let complete = TxnMetadata {
        partitions: BTreeSet::new(),
        start_ms: -1,
        ..prepare.with(TxnState::CompleteAbort, now_ms)
    };
    vec![
        Step::Persist(prepare),
        Step::Markers {
            producer_id,
            producer_epoch: epoch,
            control: ControlType::Abort,
            partitions: m.partitions.iter().cloned().collect(),
        },
        Step::Persist(complete),
    ]
}

/// InitProducerId with a transactional id: the steps, and the producer id and epoch to
/// answer with. `expected` is the KIP-360 (id, epoch) the producer already has, if any.
pub fn init(
    current: Option<&TxnMetadata>,
    transactional_id: &str,
    timeout_ms: i32,
    expected: Option<(i64, i16)>,
    now_ms: i64,
    new_id: &mut dyn FnMut() -> Result<i64, TxnError>,
) -> Result<(Vec<Step>, i64, i16), TxnError> {
    let Some(m) = current.filter(|m| m.state != TxnState::Dead) else {
        let producer_id = new_id()?;
        let m = TxnMetadata {
            transactional_id: transactional_id.to_string(),
            producer_id,
            producer_epoch: 0,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            last_update_ms: now_ms,
            start_ms: -1,
        };
        return Ok((vec![Step::Persist(m)], producer_id, 0));
    };
    if let Some((id, epoch)) = expected
        && (id != m.producer_id || epoch != m.producer_epoch)
    {
        return Err(TxnError::ProducerFenced);
    }
    let mut steps = Vec::new();
    let (producer_id, epoch) = match m.state {
        TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => {
            return Err(TxnError::ConcurrentTransactions);
        }
        TxnState::Ongoing => {
            // Fence the producer that left it open and abort with the bumped epoch; the new
            // producer continues with that epoch.
            let (producer_id, epoch) = bump(m.producer_id, m.producer_epoch, new_id)?;
            if producer_id == m.producer_id {
                steps.extend(abort_steps(m, producer_id, epoch, now_ms));
            } else {
                // The epoch is exhausted: abort with the old one, and start over on a new id
                // (nothing can write with the old id any more).
                steps.extend(abort_steps(m, m.producer_id, m.producer_epoch, now_ms));
            }
            (producer_id, epoch)
        }
        _ => bump(m.producer_id, m.producer_epoch, new_id)?,
    };
    steps.push(Step::Persist(TxnMetadata {
        transactional_id: m.transactional_id.clone(),
        producer_id,
        producer_epoch: epoch,
        timeout_ms,
        state: TxnState::Empty,
        partitions: BTreeSet::new(),
        last_update_ms: now_ms,
        start_ms: -1,
    }));
    Ok((steps, producer_id, epoch))
}

/// Checks a request of producer `(producer_id, epoch)` against the metadata.
fn check_producer(m: &TxnMetadata, producer_id: i64, epoch: i16) -> Result<(), TxnError> {
    if producer_id != m.producer_id {
        return Err(TxnError::InvalidProducerIdMapping);
    }
    if epoch != m.producer_epoch {
        return Err(TxnError::ProducerFenced);
    }
    Ok(())
}

/// AddPartitionsToTxn (and AddOffsetsToTxn, with the group's `__consumer_offsets`
/// partition): the step that records new partitions, if any are new.
pub fn add_partitions(
    m: &TxnMetadata,
    producer_id: i64,
    epoch: i16,
    partitions: &[(String, i32)],
    now_ms: i64,
) -> Result<Option<Step>, TxnError> {
    check_producer(m, producer_id, epoch)?;
    match m.state {
        TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => {
            return Err(TxnError::ConcurrentTransactions);
        }
        TxnState::Dead => return Err(TxnError::InvalidTxnState),
        _ => {}
    }
    let ongoing = m.state == TxnState::Ongoing;
    if ongoing && partitions.iter().all(|p| m.partitions.contains(p)) {
        return Ok(None);
    }
    let mut next = m.with(TxnState::Ongoing, now_ms);
    if !ongoing {
        next.partitions.clear();
        next.start_ms = now_ms;
    }
    next.partitions.extend(partitions.iter().cloned());
    Ok(Some(Step::Persist(next)))
}

/// Whether a partition is part of the producer's open transaction (the Produce check, and
/// AddPartitionsToTxn's verify-only form).
pub fn verify(
    m: &TxnMetadata,
    producer_id: i64,
    epoch: i16,
    partition: &(String, i32),
) -> Result<(), TxnError> {
    check_producer(m, producer_id, epoch)?;
    if m.state == TxnState::Ongoing && m.partitions.contains(partition) {
        Ok(())
    } else {
        Err(TxnError::InvalidTxnState)
    }
}

/// EndTxn: the steps that commit or abort the open transaction (none for a retry of an
/// end that already completed).
pub fn end(
    m: &TxnMetadata,
    producer_id: i64,
    epoch: i16,
    commit: bool,
    now_ms: i64,
) -> Result<Vec<Step>, TxnError> {
    check_producer(m, producer_id, epoch)?;
    let (prepare, complete, control) = if commit {
        (
            TxnState::PrepareCommit,
            TxnState::CompleteCommit,
            ControlType::Commit,
        )
    } else {
        (
            TxnState::PrepareAbort,
            TxnState::CompleteAbort,
            ControlType::Abort,
        )
    };
    match m.state {
        TxnState::Ongoing => {
            let prepared = m.with(prepare, now_ms);
            let done = TxnMetadata {
                partitions: BTreeSet::new(),
                start_ms: -1,
                ..prepared.with(complete, now_ms)
            };
            Ok(vec![
                Step::Persist(prepared),
                Step::Markers {
                    producer_id,
                    producer_epoch: epoch,
                    control,
                    partitions: m.partitions.iter().cloned().collect(),
                },
                Step::Persist(done),
            ])
        }
        // A retry of the same end.
        s if s == complete => Ok(Vec::new()),
        s if s == prepare => Err(TxnError::ConcurrentTransactions),
        _ => Err(TxnError::InvalidTxnState),
    }
}

/// The steps that finish a transaction whose end was decided but not completed (after a
/// crash, or a failed marker write): the markers again (the coordinator writes them only
/// where the transaction is still open) and the completion.
pub fn resume(m: &TxnMetadata, now_ms: i64) -> Vec<Step> {
    let (complete, control) = match m.state {
        TxnState::PrepareCommit => (TxnState::CompleteCommit, ControlType::Commit),
        TxnState::PrepareAbort | TxnState::PrepareEpochFence => {
            (TxnState::CompleteAbort, ControlType::Abort)
        }
        _ => return Vec::new(),
    };
    vec![
        Step::Markers {
            producer_id: m.producer_id,
            producer_epoch: m.producer_epoch,
            control,
            partitions: m.partitions.iter().cloned().collect(),
        },
        Step::Persist(TxnMetadata {
            partitions: BTreeSet::new(),
            start_ms: -1,
            ..m.with(complete, now_ms)
        }),
    ]
}

/// The steps that abort a transaction open past its timeout, bumping the epoch so the
/// producer that left it is fenced (with the same epoch when it is exhausted).
pub fn expire(m: &TxnMetadata, now_ms: i64) -> Option<Vec<Step>> {
    if m.state != TxnState::Ongoing || now_ms.saturating_sub(m.start_ms) <= i64::from(m.timeout_ms)
    {
        return None;
    }
    let epoch = if m.producer_epoch < i16::MAX - 1 {
        m.producer_epoch + 1
    } else {
        m.producer_epoch
    };
    Some(abort_steps(m, m.producer_id, epoch, now_ms))
}

#[cfg(test)]
mod tests;

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
//!
//! Transactions V2 (KIP-890 part 2, EndTxn v5+): every end bumps the epoch, the markers are
//! written with the bumped epoch (so a late write of the ended transaction is fenced in
//! every partition) and the answer carries the producer id and epoch to use next; when the
//! epoch is exhausted the end moves to a new producer id (`next_producer_id` in the prepare
//! record, `previous_producer_id` after it). A retried end is recognised by its epoch being
//! one below the current one (or by the previous producer id after such a move).

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
    /// The producer id before the last move to a new one (transactions V2), or -1.
    pub previous_producer_id: i64,
    /// The producer id an ending transaction moves to (its epoch was exhausted), or -1.
    pub next_producer_id: i64,
    /// The transaction protocol version the producer used last (2: transactions V2).
    pub client_version: i16,
}

impl TxnMetadata {
    /// A transactional id's metadata with no transaction.
    pub fn new(
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        timeout_ms: i32,
        now_ms: i64,
    ) -> TxnMetadata {
        TxnMetadata {
            transactional_id: transactional_id.to_string(),
            producer_id,
            producer_epoch,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            last_update_ms: now_ms,
            start_ms: -1,
            previous_producer_id: -1,
            next_producer_id: -1,
            client_version: 0,
        }
    }

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
        next_producer_id: -1,
        ..m.with(TxnState::PrepareAbort, now_ms)
    };
    let complete = completed(&prepare, TxnState::CompleteAbort, now_ms);
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
        let m = TxnMetadata::new(transactional_id, producer_id, 0, timeout_ms, now_ms);
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
        previous_producer_id: if producer_id == m.producer_id {
            m.previous_producer_id
        } else {
            m.producer_id
        },
        ..TxnMetadata::new(&m.transactional_id, producer_id, epoch, timeout_ms, now_ms)
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
/// `client_version` is 2 for the implicit adds of transactions V2 (Produce v12+,
/// TxnOffsetCommit v5+), else 0.
pub fn add_partitions(
    m: &TxnMetadata,
    producer_id: i64,
    epoch: i16,
    partitions: &[(String, i32)],
    client_version: i16,
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
    next.client_version = client_version;
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

/// The states an end of `commit` goes through, and its markers' type.
fn end_states(commit: bool) -> (TxnState, TxnState, ControlType) {
    if commit {
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
    }
}

/// The metadata once the markers of the decided end `prepared` are all written: no
/// partitions, and on the new producer id if the end moved to one.
fn completed(prepared: &TxnMetadata, state: TxnState, now_ms: i64) -> TxnMetadata {
    let mut done = TxnMetadata {
        partitions: BTreeSet::new(),
        start_ms: -1,
        ..prepared.with(state, now_ms)
    };
    if prepared.next_producer_id >= 0 {
        done.previous_producer_id = prepared.producer_id;
        done.producer_id = prepared.next_producer_id;
        done.producer_epoch = 0;
        done.next_producer_id = -1;
    }
    done
}

/// The steps of an end decided as `prepared`: the prepare record (the decision), the
/// markers, the completion.
fn end_steps(
    m: &TxnMetadata,
    prepared: TxnMetadata,
    complete: TxnState,
    control: ControlType,
    now_ms: i64,
) -> Vec<Step> {
    let done = completed(&prepared, complete, now_ms);
    let markers = Step::Markers {
        producer_id: prepared.producer_id,
        producer_epoch: prepared.producer_epoch,
        control,
        partitions: m.partitions.iter().cloned().collect(),
    };
    vec![Step::Persist(prepared), markers, Step::Persist(done)]
}

/// EndTxn before v5 (transactions V1): the steps that commit or abort the open
/// transaction (none for a retry of an end that already completed). The epoch stays.
pub fn end(
    m: &TxnMetadata,
    producer_id: i64,
    epoch: i16,
    commit: bool,
    now_ms: i64,
) -> Result<Vec<Step>, TxnError> {
    check_producer(m, producer_id, epoch)?;
    let (prepare, complete, control) = end_states(commit);
    match m.state {
        TxnState::Ongoing => Ok(end_steps(
            m,
            m.with(prepare, now_ms),
            complete,
            control,
            now_ms,
        )),
        // A retry of the same end.
        s if s == complete => Ok(Vec::new()),
        s if s == prepare => Err(TxnError::ConcurrentTransactions),
        _ => Err(TxnError::InvalidTxnState),
    }
}

/// EndTxn v5+ (transactions V2): the steps, and the producer id and epoch the producer
/// goes on with. The end bumps the epoch (its markers carry the bumped one), moving to a
/// new producer id when the epoch is exhausted. As Kafka's coordinator: an abort with no
/// transaction open (nothing was produced since the last end) still bumps the epoch; a
/// retry (the epoch one below the current one, or the previous producer id's last epoch
/// after a move) of an end that completed is answered with the current id and epoch; any
/// other epoch is fenced.
pub fn end_v2(
    m: &TxnMetadata,
    producer_id: i64,
    epoch: i16,
    commit: bool,
    now_ms: i64,
    new_id: &mut dyn FnMut() -> Result<i64, TxnError>,
) -> Result<(Vec<Step>, i64, i16), TxnError> {
    let retry_on_bump =
        producer_id == m.producer_id && i32::from(m.producer_epoch) == i32::from(epoch) + 1;
    let retry_on_move = m.previous_producer_id == producer_id
        && producer_id != m.producer_id
        && epoch == i16::MAX - 1
        && m.producer_epoch == 0;
    if producer_id != m.producer_id && !retry_on_move {
        return Err(TxnError::InvalidProducerIdMapping);
    }
    let valid = match m.state {
        TxnState::Ongoing | TxnState::Empty | TxnState::Dead | TxnState::PrepareEpochFence => {
            epoch == m.producer_epoch
        }
        TxnState::PrepareCommit | TxnState::PrepareAbort => retry_on_bump,
        TxnState::CompleteCommit | TxnState::CompleteAbort => {
            retry_on_bump || retry_on_move || epoch == m.producer_epoch
        }
    };
    if !valid {
        return Err(TxnError::ProducerFenced);
    }
    let retry = retry_on_bump || retry_on_move;
    let (prepare, complete, control) = end_states(commit);
    let current = (Vec::new(), m.producer_id, m.producer_epoch);
    match (m.state, commit) {
        (TxnState::Ongoing, _)
        | (TxnState::Empty, false)
        | (TxnState::CompleteCommit | TxnState::CompleteAbort, false)
            if !retry =>
        {
            let next_producer_id = if m.producer_epoch >= i16::MAX - 1 {
                new_id()?
            } else {
                -1
            };
            let prepared = TxnMetadata {
                producer_epoch: m.producer_epoch.saturating_add(1),
                next_producer_id,
                client_version: 2,
                ..m.with(prepare, now_ms)
            };
            // The id and epoch the completion moves to (`end_steps` persists the same).
            let done = completed(&prepared, complete, now_ms);
            let (id, epoch) = (done.producer_id, done.producer_epoch);
            Ok((end_steps(m, prepared, complete, control, now_ms), id, epoch))
        }
        (s, _) if s == complete && retry => Ok(current),
        (s, _) if s == prepare => Err(TxnError::ConcurrentTransactions),
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
        Step::Persist(completed(m, complete, now_ms)),
    ]
}

/// The steps that abort a transaction open past its timeout, bumping the epoch so the
/// producer that left it is fenced (with the same epoch when it is exhausted).
pub fn expire(m: &TxnMetadata, now_ms: i64) -> Option<Vec<Step>> {
    if m.state != TxnState::Ongoing || now_ms.saturating_sub(m.start_ms) <= i64::from(m.timeout_ms)
    {
        return None;
    }
    // A transactions V2 producer retrying its end with the old epoch would pass for a
    // retry of this abort (one below the current epoch): bump twice, as Kafka's fence
    // followed by a V2 abort does, so it is fenced.
    let step = if m.client_version >= 2 { 2 } else { 1 };
    let epoch = if i32::from(m.producer_epoch) + step < i32::from(i16::MAX) {
        m.producer_epoch + step as i16
    } else {
        m.producer_epoch
    };
    Some(abort_steps(m, m.producer_id, epoch, now_ms))
}

#[cfg(test)]
mod tests;

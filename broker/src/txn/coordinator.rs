//! The shared transaction coordinator: every transactional id's metadata, the execution of
//! the state machine's steps, replay of `__transaction_state` on start, the completion of
//! half-ended transactions and the abort of expired ones.
//!
//! Locking and threads: each transactional id has a slot (a `std::sync::Mutex`) held for
//! the whole of a request's steps, so one id's requests run one at a time while other ids
//! proceed; steps block (appends, fdatasyncs, markers), so every entry point here runs on
//! the blocking pool or the coordinator's own task, never on a runtime worker. A read-only
//! copy of each id's metadata (`published`, updated after each durable step) serves the
//! Produce check and the describe/list APIs without waiting for a slot.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, Weak};
use std::time::Duration;

use floe_protocol::control::ControlType;

use super::TRANSACTION_STATE_TOPIC;
use super::records::{decode_key, decode_value, encode_key, encode_value};
use super::state::{self, Step, TxnError, TxnMetadata, TxnState};
use crate::config::Config;
use crate::group::{OFFSETS_TOPIC, partition_for};
use crate::internal_topic::{
    InternalLog, PersistError, Replayed, StorageInternalLog, encode_batch, replay,
};
use crate::state::Broker;
use crate::topics::{NewTopic, TopicError, Topics};

/// Coordinator settings, from the broker config.
#[derive(Debug, Clone)]
pub struct TxnConfig {
    /// `transaction.max.timeout.ms`.
    pub max_timeout_ms: i32,
    /// Partitions of `__transaction_state` when it is created.
    pub partitions: i32,
    /// Its `segment.bytes`.
    pub segment_bytes: u64,
    /// How often expired transactions are aborted.
    pub abort_interval: Duration,
    /// Idle transactional ids are forgotten after this long.
    pub id_expiration_ms: i64,
}

impl TxnConfig {
    /// From the broker's settings.
    pub fn from_config(config: &Config) -> TxnConfig {
        TxnConfig {
            max_timeout_ms: config.transaction_max_timeout_ms,
            partitions: config.transaction_state_log_num_partitions,
            segment_bytes: config.transaction_state_log_segment_bytes,
            abort_interval: Duration::from_millis(
                config.transaction_abort_timed_out_transaction_cleanup_interval_ms,
            ),
            id_expiration_ms: config.transactional_id_expiration_ms,
        }
    }
}

type Slot = Arc<Mutex<Option<TxnMetadata>>>;

/// The transaction coordinator.
pub struct TransactionCoordinator {
    config: TxnConfig,
    slots: Mutex<HashMap<String, Slot>>,
    /// The metadata as of the last durable step of each id.
    published: RwLock<BTreeMap<String, TxnMetadata>>,
    log: OnceLock<Arc<dyn InternalLog>>,
    /// Set when `__transaction_state` could not be loaded: transactions are not served.
    load_failure: Option<String>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl TransactionCoordinator {
    /// The coordinator for this broker: replays `__transaction_state` if it exists (it is
    /// created on first use). A load failure is logged and makes every transaction request
    /// answer COORDINATOR_NOT_AVAILABLE.
    pub fn open(config: &Config, topics: &Topics) -> TransactionCoordinator {
        let config = TxnConfig::from_config(config);
        let mut coordinator = TransactionCoordinator {
            config,
            slots: Mutex::new(HashMap::new()),
            published: RwLock::new(BTreeMap::new()),
            log: OnceLock::new(),
            load_failure: None,
        };
        let Some(info) = topics.get(TRANSACTION_STATE_TOPIC) else {
            return coordinator;
        };
        let loaded =
            StorageInternalLog::of(topics, TRANSACTION_STATE_TOPIC, info.record.partitions)
                .and_then(|log| load(log.as_ref()).map(|txns| (log, txns)));
        match loaded {
            Ok((log, txns)) => {
                tracing::info!(
                    transactional_ids = txns.len(),
                    "loaded transactions from {TRANSACTION_STATE_TOPIC}"
                );
                let _ = coordinator.log.set(log);
                coordinator.install(txns);
            }
            Err(e) => {
                tracing::error!(
                    "cannot load {TRANSACTION_STATE_TOPIC}; transactions are unavailable: {e}"
                );
                coordinator.load_failure = Some(e.to_string());
            }
        }
        coordinator
    }

    fn install(&self, txns: HashMap<String, TxnMetadata>) {
        let mut slots = lock(&self.slots);
        let mut published = self.published.write().unwrap_or_else(|p| p.into_inner());
        for (id, m) in txns {
            published.insert(id.clone(), m.clone());
            slots.insert(id, Arc::new(Mutex::new(Some(m))));
        }
    }

    /// Completes the transactions a previous run left half-ended and starts the task that
    /// aborts expired ones. Needs a tokio runtime.
    pub fn start(broker: &Arc<Broker>) {
        let weak = Arc::downgrade(broker);
        let interval = broker
            .txns
            .config
            .abort_interval
            .max(Duration::from_millis(10));
        tokio::spawn(async move {
            let recover = weak.clone();
            let _ = tokio::task::spawn_blocking(move || {
                if let Some(broker) = recover.upgrade() {
                    broker.txns.complete_prepared(&broker);
                }
            })
            .await;
            abort_expired_loop(weak, interval).await;
        });
    }

    /// Makes sure `__transaction_state` exists (creating it on first use). Blocking.
    pub fn ensure_ready(&self, topics: &Topics) -> Result<(), TxnError> {
        if self.load_failure.is_some() {
            return Err(TxnError::CoordinatorNotAvailable);
        }
        if self.log.get().is_some() {
            return Ok(());
        }
        let created = topics.create(NewTopic {
            name: TRANSACTION_STATE_TOPIC.to_string(),
            partitions: Some(self.config.partitions),
            replication_factor: None,
            configs: BTreeMap::from([
                ("cleanup.policy".to_string(), "compact".to_string()),
                (
                    "segment.bytes".to_string(),
                    self.config.segment_bytes.to_string(),
                ),
            ]),
        });
        let partitions = match created {
            Ok(info) => info.record.partitions,
            Err(TopicError::AlreadyExists(_)) => match topics.get(TRANSACTION_STATE_TOPIC) {
                Some(info) => info.record.partitions,
                None => return Err(TxnError::CoordinatorNotAvailable),
            },
            Err(e) => {
                tracing::error!("cannot create {TRANSACTION_STATE_TOPIC}: {e}");
                return Err(TxnError::CoordinatorNotAvailable);
            }
        };
        match StorageInternalLog::of(topics, TRANSACTION_STATE_TOPIC, partitions) {
            Ok(log) => {
                let _ = self.log.set(log);
                Ok(())
            }
            Err(e) => {
                tracing::error!("{e}");
                Err(TxnError::CoordinatorNotAvailable)
            }
        }
    }

    fn slot(&self, transactional_id: &str) -> Slot {
        Arc::clone(
            lock(&self.slots)
                .entry(transactional_id.to_string())
                .or_insert_with(|| Arc::new(Mutex::new(None))),
        )
    }

    /// Carries out `steps` for the id whose slot is `current` (held by the caller).
    fn run(
        &self,
        broker: &Broker,
        current: &mut Option<TxnMetadata>,
        steps: Vec<Step>,
    ) -> Result<(), TxnError> {
        for step in steps {
            match step {
                Step::Persist(m) => {
                    self.persist(&m).map_err(|e| {
                        tracing::error!(transactional_id = %m.transactional_id, "cannot write transaction state: {e}");
                        TxnError::CoordinatorNotAvailable
                    })?;
                    self.published
                        .write()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(m.transactional_id.clone(), m.clone());
                    *current = Some(m);
                }
                Step::Markers {
                    producer_id,
                    producer_epoch,
                    control,
                    partitions,
                } => {
                    write_markers(broker, producer_id, producer_epoch, control, &partitions)
                        .map_err(|e| {
                            tracing::error!(producer_id, "cannot write transaction markers: {e}");
                            TxnError::CoordinatorNotAvailable
                        })?;
                }
            }
        }
        Ok(())
    }

    /// Appends the record of `m` to its partition of `__transaction_state` and syncs it.
    fn persist(&self, m: &TxnMetadata) -> Result<(), PersistError> {
        let log = self.log.get().ok_or(PersistError::MissingPartition(-1))?;
        let partition = partition_for(&m.transactional_id, log.partition_count());
        let now = crate::handlers::now_ms();
        let batch = encode_batch(
            &[(encode_key(&m.transactional_id), Some(encode_value(m)))],
            now,
        )?;
        log.append(partition, batch, now)?;
        log.sync(partition)
    }

    /// The id's slot, once `__transaction_state` exists: created for InitProducerId
    /// (`create`), else only an existing one (an unknown id is INVALID_PRODUCER_ID_MAPPING,
    /// and leaves nothing behind).
    fn begin(
        &self,
        broker: &Broker,
        transactional_id: &str,
        create: bool,
    ) -> Result<(Slot, i64), TxnError> {
        if transactional_id.is_empty() {
            return Err(TxnError::InvalidTransactionalId);
        }
        self.ensure_ready(&broker.topics)?;
        let slot = if create {
            self.slot(transactional_id)
        } else {
            lock(&self.slots)
                .get(transactional_id)
                .cloned()
                .ok_or(TxnError::InvalidProducerIdMapping)?
        };
        Ok((slot, crate::handlers::now_ms()))
    }

    fn finish_prepared(
        &self,
        broker: &Broker,
        current: &mut Option<TxnMetadata>,
        now_ms: i64,
    ) -> Result<(), TxnError> {
        if let Some(m) = current.as_ref() {
            let steps = state::resume(m, now_ms);
            if !steps.is_empty() {
                self.run(broker, current, steps)?;
            }
        }
        Ok(())
    }

    /// InitProducerId with a transactional id. Blocking.
    pub fn init_producer_id(
        &self,
        broker: &Broker,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), TxnError> {
        if timeout_ms <= 0 || timeout_ms > self.config.max_timeout_ms {
            return Err(TxnError::InvalidTransactionTimeout);
        }
        let (slot, now) = self.begin(broker, transactional_id, true)?;
        let mut current = lock(&slot);
        self.finish_prepared(broker, &mut current, now)?;
        let mut new_id = || {
            broker.producer_ids.allocate(&broker.topics).map_err(|e| {
                tracing::error!("cannot allocate a producer id: {e}");
                TxnError::CoordinatorNotAvailable
            })
        };
        let planned = state::init(
            current.as_ref(),
            transactional_id,
            timeout_ms,
            expected,
            now,
            &mut new_id,
        );
        let result = planned.and_then(|(steps, producer_id, epoch)| {
            self.run(broker, &mut current, steps)?;
            Ok((producer_id, epoch))
        });
        let recorded = current.is_some();
        drop(current);
        drop(slot);
        if !recorded {
            // Nothing was recorded for a new id: no slot stays behind.
            self.drop_if_empty(transactional_id);
        }
        result
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn; `client_version` 0), and the implicit adds
    /// of transactions V2 (`client_version` 2). Blocking.
    pub fn add_partitions(
        &self,
        broker: &Broker,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
        client_version: i16,
    ) -> Result<(), TxnError> {
        let (slot, now) = self.begin(broker, transactional_id, false)?;
        let mut current = lock(&slot);
        self.finish_prepared(broker, &mut current, now)?;
        let Some(m) = current.as_ref() else {
            return Err(TxnError::InvalidProducerIdMapping);
        };
        if let Some(step) =
            state::add_partitions(m, producer_id, epoch, partitions, client_version, now)?
        {
            self.run(broker, &mut current, vec![step])?;
        }
        Ok(())
    }

    /// Whether the partition is in the producer's open transaction (Produce, and
    /// AddPartitionsToTxn v4+ verify-only). Does not block on a slot.
    pub fn verify(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partition: &(String, i32),
    ) -> Result<(), TxnError> {
        let published = self.published.read().unwrap_or_else(|p| p.into_inner());
        match published.get(transactional_id) {
            Some(m) => state::verify(m, producer_id, epoch, partition),
            None => Err(TxnError::InvalidProducerIdMapping),
        }
    }

    /// Transactions V2's implicit add (Produce v12+, TxnOffsetCommit v5+): the partition
    /// joins the producer's transaction, which this starts if none is open. The check that
    /// it already belongs is answered at once; an add runs on the blocking pool (it syncs
    /// `__transaction_state`).
    pub async fn join(
        broker: &Arc<Broker>,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partition: (String, i32),
    ) -> Result<(), TxnError> {
        match broker
            .txns
            .verify(transactional_id, producer_id, epoch, &partition)
        {
            Err(TxnError::InvalidTxnState) => {}
            done => return done,
        }
        let broker = Arc::clone(broker);
        let id = transactional_id.to_string();
        tokio::task::spawn_blocking(move || {
            broker
                .txns
                .add_partitions(&broker, &id, producer_id, epoch, &[partition], 2)
        })
        .await
        .unwrap_or(Err(TxnError::CoordinatorNotAvailable))
    }

    /// EndTxn. Blocking; answered once the markers are durable. `v2` for EndTxn v5+
    /// (transactions V2, [`state::end_v2`]): the answer is the producer id and epoch to go
    /// on with (-1 and -1 before v5).
    pub fn end_txn(
        &self,
        broker: &Broker,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        v2: bool,
    ) -> Result<(i64, i16), TxnError> {
        let (slot, now) = self.begin(broker, transactional_id, false)?;
        let mut current = lock(&slot);
        // A decided end finishing here is the same request retried, or a different one that
        // `end` then refuses.
        self.finish_prepared(broker, &mut current, now)?;
        let Some(m) = current.as_ref() else {
            return Err(TxnError::InvalidProducerIdMapping);
        };
        if !v2 {
            let steps = state::end(m, producer_id, epoch, commit, now)?;
            self.run(broker, &mut current, steps)?;
            return Ok((-1, -1));
        }
        let mut new_id = || {
            broker.producer_ids.allocate(&broker.topics).map_err(|e| {
                tracing::error!("cannot allocate a producer id: {e}");
                TxnError::CoordinatorNotAvailable
            })
        };
        let (steps, next_id, next_epoch) =
            state::end_v2(m, producer_id, epoch, commit, now, &mut new_id)?;
        self.run(broker, &mut current, steps)?;
        Ok((next_id, next_epoch))
    }

    /// The metadata of an id (DescribeTransactions).
    pub fn describe(&self, transactional_id: &str) -> Result<TxnMetadata, TxnError> {
        if self.load_failure.is_some() {
            return Err(TxnError::CoordinatorNotAvailable);
        }
        self.published
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(transactional_id)
            .filter(|m| m.state != TxnState::Dead)
            .cloned()
            .ok_or(TxnError::TransactionalIdNotFound)
    }

    /// Every id's metadata (ListTransactions filters it).
    pub fn list(&self) -> Result<Vec<TxnMetadata>, TxnError> {
        if self.load_failure.is_some() {
            return Err(TxnError::CoordinatorNotAvailable);
        }
        Ok(self
            .published
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|m| m.state != TxnState::Dead)
            .cloned()
            .collect())
    }

    /// Finishes every transaction whose end was decided but not completed (at start).
    pub fn complete_prepared(&self, broker: &Broker) {
        let now = crate::handlers::now_ms();
        for slot in self.all_slots() {
            let mut current = lock(&slot);
            let Some(m) = current.clone() else { continue };
            if let Err(e) = self.finish_prepared(broker, &mut current, now) {
                tracing::error!(transactional_id = %m.transactional_id, "cannot complete transaction: {e}");
            } else if m.state != current.as_ref().map_or(m.state, |c| c.state) {
                tracing::info!(transactional_id = %m.transactional_id, state = m.state.name(), "completed a transaction left half-ended");
            }
        }
    }

    /// Aborts transactions open past their timeout and forgets ids idle past
    /// `transactional.id.expiration.ms`. Blocking; skips ids with a request in progress.
    pub fn abort_expired(&self, broker: &Broker, now_ms: i64) {
        for slot in self.all_slots() {
            let Ok(mut current) = slot.try_lock() else {
                continue;
            };
            let Some(m) = current.clone() else { continue };
            if let Err(e) = self.finish_prepared(broker, &mut current, now_ms) {
                tracing::error!(transactional_id = %m.transactional_id, "cannot complete transaction: {e}");
                continue;
            }
            if let Some(steps) = state::expire(&m, now_ms) {
                tracing::info!(
                    transactional_id = %m.transactional_id,
                    producer_id = m.producer_id,
                    timeout_ms = m.timeout_ms,
                    "aborting a transaction open past its timeout"
                );
                if let Err(e) = self.run(broker, &mut current, steps) {
                    tracing::error!(transactional_id = %m.transactional_id, "cannot abort expired transaction: {e}");
                }
            } else if matches!(
                m.state,
                TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
            ) && now_ms.saturating_sub(m.last_update_ms) > self.config.id_expiration_ms
            {
                self.forget(&m.transactional_id, &mut current);
            }
        }
    }

    fn forget(&self, transactional_id: &str, current: &mut Option<TxnMetadata>) {
        let Some(log) = self.log.get() else { return };
        let partition = partition_for(transactional_id, log.partition_count());
        let now = crate::handlers::now_ms();
        let written = encode_batch(&[(encode_key(transactional_id), None)], now)
            .and_then(|batch| log.append(partition, batch, now))
            .and_then(|_| log.sync(partition));
        match written {
            Ok(()) => {
                tracing::info!(transactional_id, "transactional id expired");
                // (Its slot goes on the next pass, once no request holds it.)
                *current = None;
                self.published
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(transactional_id);
            }
            Err(e) => tracing::warn!(transactional_id, "cannot expire transactional id: {e}"),
        }
    }

    fn all_slots(&self) -> Vec<Slot> {
        let mut slots = lock(&self.slots);
        // Slots of forgotten ids that no request holds.
        slots.retain(|_, slot| {
            Arc::strong_count(slot) > 1 || slot.try_lock().map_or(true, |m| m.is_some())
        });
        slots.values().cloned().collect()
    }

    /// Removes the slot of an id that has no metadata, unless a request holds it.
    fn drop_if_empty(&self, transactional_id: &str) {
        let mut slots = lock(&self.slots);
        if let Some(slot) = slots.get(transactional_id)
            && Arc::strong_count(slot) == 1
            && slot.try_lock().is_ok_and(|m| m.is_none())
        {
            slots.remove(transactional_id);
        }
    }
}

async fn abort_expired_loop(weak: Weak<Broker>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(broker) = weak.upgrade() else { return };
        let _ = tokio::task::spawn_blocking(move || {
            broker
                .txns
                .abort_expired(&broker, crate::handlers::now_ms());
        })
        .await;
    }
}

/// Writes the markers of `producer_id`'s transaction to its partitions, one partition at a
/// time, each made durable before the next is written: data partitions through their logs,
/// `__consumer_offsets` partitions through the group coordinator (which applies or drops the
/// offsets the transaction committed there). A partition where the producer has no open
/// transaction gets no marker (it never got data, or already has its marker from a run that
/// stopped halfway), so a marker is never written twice.
fn write_markers(
    broker: &Broker,
    producer_id: i64,
    producer_epoch: i16,
    control: ControlType,
    partitions: &[(String, i32)],
) -> Result<(), String> {
    let now = crate::handlers::now_ms();
    for (topic, partition) in partitions {
        if topic == OFFSETS_TOPIC {
            broker
                .groups
                .end_txn_partition(*partition, producer_id, producer_epoch, control, now)
                .map_err(|e| format!("{topic}-{partition}: {e}"))?;
            continue;
        }
        let Some(log) = broker.topics.partition(topic, *partition) else {
            // Deleted since it joined the transaction: nothing to end there.
            continue;
        };
        if !log
            .open_transactions()
            .iter()
            .any(|(producer, _)| *producer == producer_id)
        {
            continue;
        }
        log.append_marker(producer_id, producer_epoch, 0, control, now)
            .map_err(|e| format!("{topic}-{partition}: {e}"))?;
        log.sync()
            .map_err(|e| format!("{topic}-{partition}: {e}"))?;
    }
    Ok(())
}

/// Replays every partition: the latest metadata per transactional id.
fn load(log: &dyn InternalLog) -> Result<HashMap<String, TxnMetadata>, PersistError> {
    let mut txns = HashMap::new();
    for partition in 0..log.partition_count() {
        replay(log, partition, |replayed| {
            let Replayed::Record { key, value, .. } = replayed else {
                return;
            };
            let id = match decode_key(key) {
                Ok(id) => id,
                Err(e) => {
                    tracing::warn!(
                        partition,
                        "skipping a transaction record with an unreadable key: {e}"
                    );
                    return;
                }
            };
            match value.map(|v| decode_value(&id, v)) {
                None => {
                    txns.remove(&id);
                }
                Some(Ok(m)) => {
                    txns.insert(id, m);
                }
                Some(Err(e)) => {
                    tracing::warn!(transactional_id = %id, "skipping an unreadable transaction record: {e}")
                }
            }
        })?;
    }
    Ok(txns)
}

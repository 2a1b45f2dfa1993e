//! Offsets committed inside transactions (TxnOffsetCommit): written to `__consumer_offsets`
//! as a transactional batch of the producer, held aside until the transaction coordinator
//! ends the transaction with a marker in the same partition
//! ([`GroupCoordinator::end_txn_partition`]),
//! then applied (commit) or dropped (abort). Replay does the same with the markers it finds.

use floe_protocol::control::ControlType;

use super::*;

impl GroupCoordinator {
    /// TxnOffsetCommit of `producer` (id, epoch); the answer comes once the records are
    /// durable. The offsets count only once the transaction commits.
    pub fn commit_txn_offsets(
        &self,
        args: CommitArgs,
        producer: (i64, i16),
    ) -> Pending<PartitionResults> {
        if args.group_id.is_empty() {
            return Pending::Now(args.fail_all(GroupError::InvalidGroupId));
        }
        let now = now();
        let mut groups = self.inner.lock();
        let group = groups
            .entry(args.group_id.clone())
            .or_insert_with(|| Group::new(&args.group_id, now.ms));
        // v3+ carries the consumer's generation and member id (KIP-447); a simple commit
        // (generation -1, no member) is not checked.
        if (args.generation >= 0 || !args.member_id.is_empty())
            && let Err(e) = offsets::validate_commit(group, &args, now)
        {
            return Pending::Now(args.fail_all(e));
        }
        let (results, records, accepted) = self.commit_records(&args, now.ms, -1);
        if records.is_empty() {
            return Pending::Now(results);
        }
        let partition = match self.append_as(&args.group_id, &records, Some(producer), now.ms) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(group = %args.group_id, "transactional offset commit not written: {e}");
                return Pending::Now(fail_ok(results, offsets::append_failure(&e)));
            }
        };
        self.inner
            .pending_txn_offsets()
            .entry(producer.0)
            .or_default()
            .extend(
                accepted
                    .into_iter()
                    .map(|((topic, p), v)| ((args.group_id.clone(), topic, p), v)),
            );
        drop(groups);
        self.answer_when_synced(partition, results, "transactional offset commit")
    }

    /// Ends `producer_id`'s transaction in `partition` of `__consumer_offsets`: writes the
    /// marker (with the transaction's final epoch) and applies or drops the offsets it
    /// committed there, under the group lock so the log order is the state order. Blocking
    /// (the marker is synced before this returns).
    pub fn end_txn_partition(
        &self,
        partition: i32,
        producer_id: i64,
        producer_epoch: i16,
        control: ControlType,
        now_ms: i64,
    ) -> Result<(), PersistError> {
        let log = self
            .inner
            .log
            .get()
            .cloned()
            .ok_or(PersistError::MissingPartition(-1))?;
        {
            let mut groups = self.inner.lock();
            let mut pending = self.inner.pending_txn_offsets();
            // Only where the transaction wrote (a retried end after a crash finds its marker
            // already there).
            if log.has_open_transaction(partition, producer_id) {
                log.append_marker(partition, producer_id, producer_epoch, control, now_ms)?;
            }
            // Offsets of this producer in other partitions of the topic wait for their own
            // markers.
            if let Some(offsets) = pending.get_mut(&producer_id) {
                let partitions = log.partition_count();
                let here: Vec<(String, String, i32)> = offsets
                    .keys()
                    .filter(|(g, _, _)| partition_for(g, partitions) == partition)
                    .cloned()
                    .collect();
                for key in here {
                    let Some(value) = offsets.remove(&key) else {
                        continue;
                    };
                    if control == ControlType::Commit {
                        let (group, topic, p) = key;
                        groups
                            .entry(group.clone())
                            .or_insert_with(|| Group::new(&group, now_ms))
                            .offsets
                            .insert((topic, p), value);
                    }
                }
                if offsets.is_empty() {
                    pending.remove(&producer_id);
                }
            }
        }
        log.sync(partition)
    }

    /// Whether a transaction that has not ended committed an offset for this partition of
    /// the group (OffsetFetch with `require_stable` answers UNSTABLE_OFFSET_COMMIT).
    pub fn has_pending_txn_offset(&self, group_id: &str, topic: &str, partition: i32) -> bool {
        let key = (group_id.to_string(), topic.to_string(), partition);
        self.inner
            .pending_txn_offsets()
            .values()
            .any(|offsets| offsets.contains_key(&key))
    }

    /// The `__consumer_offsets` partition of a group, if the topic exists.
    pub fn offsets_partition(&self, group_id: &str) -> Option<i32> {
        let log = self.inner.log.get()?;
        Some(partition_for(group_id, log.partition_count()))
    }
}

impl Inner {
    fn pending_txn_offsets(&self) -> MutexGuard<'_, PendingTxnOffsets> {
        self.txn_offsets.lock().unwrap_or_else(|p| p.into_inner())
    }
}

use super::*;

fn no_new_id() -> Result<i64, TxnError> {
    panic!("no new producer id expected")
}

fn meta(state: TxnState, epoch: i16) -> TxnMetadata {
    TxnMetadata {
        transactional_id: "app".into(),
        producer_id: 7,
        producer_epoch: epoch,
        timeout_ms: 1000,
        state,
        partitions: [("t".to_string(), 0), ("t".to_string(), 1)]
            .into_iter()
            .collect(),
        last_update_ms: 0,
        start_ms: 100,
        previous_producer_id: -1,
        next_producer_id: -1,
        client_version: 0,
    }
}

fn persisted(steps: &[Step]) -> Vec<(TxnState, i16)> {
    steps
        .iter()
        .filter_map(|s| match s {
            Step::Persist(m) => Some((m.state, m.producer_epoch)),
            Step::Markers { .. } => None,
        })
        .collect()
}

fn markers(steps: &[Step]) -> Vec<(ControlType, i16, usize)> {
    steps
        .iter()
        .filter_map(|s| match s {
            Step::Markers {
                control,
                producer_epoch,
                partitions,
                ..
            } => Some((*control, *producer_epoch, partitions.len())),
            Step::Persist(_) => None,
        })
        .collect()
}

#[test]
fn init_allocates_then_bumps_the_epoch() {
    let (steps, id, epoch) = init(None, "app", 1000, None, 5, &mut || Ok(42)).unwrap();
    assert_eq!((id, epoch), (42, 0));
    assert_eq!(persisted(&steps), vec![(TxnState::Empty, 0)]);

    let done = meta(TxnState::CompleteCommit, 3);
    let (steps, id, epoch) = init(Some(&done), "app", 2000, None, 5, &mut no_new_id).unwrap();
    assert_eq!((id, epoch), (7, 4));
    let Step::Persist(m) = &steps[0] else {
        panic!()
    };
    assert!(m.partitions.is_empty());
    assert_eq!(m.timeout_ms, 2000);

    // The epoch is exhausted: a new producer id.
    let old = meta(TxnState::Empty, i16::MAX - 1);
    let (_, id, epoch) = init(Some(&old), "app", 1000, None, 5, &mut || Ok(43)).unwrap();
    assert_eq!((id, epoch), (43, 0));
}

#[test]
fn init_fences_and_aborts_an_open_transaction() {
    let open = meta(TxnState::Ongoing, 3);
    let (steps, id, epoch) = init(Some(&open), "app", 1000, None, 5, &mut no_new_id).unwrap();
    assert_eq!((id, epoch), (7, 4));
    assert_eq!(
        persisted(&steps),
        vec![
            (TxnState::PrepareAbort, 4),
            (TxnState::CompleteAbort, 4),
            (TxnState::Empty, 4)
        ]
    );
    assert_eq!(markers(&steps), vec![(ControlType::Abort, 4, 2)]);
    // A transaction still ending: retry later.
    let ending = meta(TxnState::PrepareCommit, 3);
    assert_eq!(
        init(Some(&ending), "app", 1000, None, 5, &mut no_new_id).unwrap_err(),
        TxnError::ConcurrentTransactions
    );
    // KIP-360: a producer that knows an older epoch is fenced.
    let idle = meta(TxnState::CompleteAbort, 3);
    assert_eq!(
        init(Some(&idle), "app", 1000, Some((7, 2)), 5, &mut no_new_id).unwrap_err(),
        TxnError::ProducerFenced
    );
}

#[test]
fn add_partitions_opens_and_extends_a_transaction() {
    let idle = meta(TxnState::CompleteCommit, 3);
    let new = [("u".to_string(), 5)];
    assert_eq!(
        add_partitions(&idle, 8, 3, &new, 0, 50).unwrap_err(),
        TxnError::InvalidProducerIdMapping
    );
    assert_eq!(
        add_partitions(&idle, 7, 2, &new, 0, 50).unwrap_err(),
        TxnError::ProducerFenced
    );
    let Some(Step::Persist(open)) = add_partitions(&idle, 7, 3, &new, 0, 50).unwrap() else {
        panic!("a new transaction is recorded")
    };
    // The previous transaction's partitions are not carried over.
    assert_eq!(open.state, TxnState::Ongoing);
    assert_eq!(open.partitions.len(), 1);
    assert_eq!(open.start_ms, 50);
    assert_eq!(add_partitions(&open, 7, 3, &new, 0, 60).unwrap(), None);
    let Some(Step::Persist(more)) = add_partitions(&open, 7, 3, &[("t".into(), 0)], 0, 60).unwrap()
    else {
        panic!()
    };
    assert_eq!((more.partitions.len(), more.start_ms), (2, 50));
    assert_eq!(verify(&more, 7, 3, &("t".into(), 0)), Ok(()));
    assert_eq!(
        verify(&more, 7, 3, &("t".into(), 9)),
        Err(TxnError::InvalidTxnState)
    );
    assert_eq!(
        verify(&idle, 7, 3, &("t".into(), 0)),
        Err(TxnError::InvalidTxnState)
    );
}

#[test]
fn end_commits_or_aborts_and_retries_are_answered() {
    let open = meta(TxnState::Ongoing, 3);
    let steps = end(&open, 7, 3, true, 9).unwrap();
    assert_eq!(
        persisted(&steps),
        vec![(TxnState::PrepareCommit, 3), (TxnState::CompleteCommit, 3)]
    );
    assert_eq!(markers(&steps), vec![(ControlType::Commit, 3, 2)]);
    let committed = meta(TxnState::CompleteCommit, 3);
    assert_eq!(end(&committed, 7, 3, true, 9).unwrap(), Vec::new());
    assert_eq!(
        end(&committed, 7, 3, false, 9).unwrap_err(),
        TxnError::InvalidTxnState
    );
    assert_eq!(
        end(&meta(TxnState::Empty, 3), 7, 3, false, 9).unwrap_err(),
        TxnError::InvalidTxnState
    );
    assert_eq!(
        end(&open, 7, 2, true, 9).unwrap_err(),
        TxnError::ProducerFenced
    );
}

#[test]
fn a_decided_end_resumes_and_an_expired_transaction_aborts() {
    let prepared = meta(TxnState::PrepareCommit, 3);
    let steps = resume(&prepared, 9);
    assert_eq!(markers(&steps), vec![(ControlType::Commit, 3, 2)]);
    assert_eq!(persisted(&steps), vec![(TxnState::CompleteCommit, 3)]);
    assert!(resume(&meta(TxnState::Ongoing, 3), 9).is_empty());

    let open = meta(TxnState::Ongoing, 3);
    assert_eq!(expire(&open, 1100), None);
    let steps = expire(&open, 1101).unwrap();
    assert_eq!(markers(&steps), vec![(ControlType::Abort, 4, 2)]);
    assert_eq!(
        persisted(&steps),
        vec![(TxnState::PrepareAbort, 4), (TxnState::CompleteAbort, 4)]
    );
    assert_eq!(expire(&meta(TxnState::CompleteAbort, 3), i64::MAX), None);
}

/// Transactions V2: every end bumps the epoch, markers carry the bumped one, and the
/// answer is the id and epoch to go on with; Kafka's table of retries and fencing.
#[test]
fn v2_ends_bump_the_epoch_and_answer_retries() {
    let open = meta(TxnState::Ongoing, 3);
    let (steps, id, epoch) = end_v2(&open, 7, 3, true, 9, &mut no_new_id).unwrap();
    assert_eq!((id, epoch), (7, 4));
    assert_eq!(
        persisted(&steps),
        vec![(TxnState::PrepareCommit, 4), (TxnState::CompleteCommit, 4)]
    );
    assert_eq!(markers(&steps), vec![(ControlType::Commit, 4, 2)]);
    let Some(Step::Persist(done)) = steps.last() else {
        panic!()
    };
    assert_eq!(done.client_version, 2);
    assert!(done.partitions.is_empty());

    let committed = meta(TxnState::CompleteCommit, 4);
    // A retry (epoch one below) of the same end: the current id and epoch, nothing done.
    assert_eq!(
        end_v2(&committed, 7, 3, true, 9, &mut no_new_id).unwrap(),
        (Vec::new(), 7, 4)
    );
    // A retry of the other end, or a commit with nothing open: INVALID_TXN_STATE.
    for (epoch, commit) in [(3, false), (4, true)] {
        assert_eq!(
            end_v2(&committed, 7, epoch, commit, 9, &mut no_new_id).unwrap_err(),
            TxnError::InvalidTxnState,
            "{epoch} {commit}"
        );
    }
    // An abort with nothing open (nothing was produced): the epoch still moves, no markers.
    for state in [
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
        TxnState::Empty,
    ] {
        let (steps, id, epoch) = end_v2(&meta(state, 4), 7, 4, false, 9, &mut no_new_id).unwrap();
        assert_eq!((id, epoch), (7, 5), "{state:?}");
        assert_eq!(
            persisted(&steps),
            vec![(TxnState::PrepareAbort, 5), (TxnState::CompleteAbort, 5)]
        );
    }
    let aborted = meta(TxnState::CompleteAbort, 5);
    assert_eq!(
        end_v2(&aborted, 7, 4, false, 9, &mut no_new_id).unwrap(),
        (Vec::new(), 7, 5)
    );
    // Older epochs, and a retry against an open transaction, are fenced.
    assert_eq!(
        end_v2(&aborted, 7, 3, false, 9, &mut no_new_id).unwrap_err(),
        TxnError::ProducerFenced
    );
    assert_eq!(
        end_v2(&meta(TxnState::Empty, 4), 7, 3, false, 9, &mut no_new_id).unwrap_err(),
        TxnError::ProducerFenced
    );
    assert_eq!(
        end_v2(&open, 7, 2, true, 9, &mut no_new_id).unwrap_err(),
        TxnError::ProducerFenced
    );
    assert_eq!(
        end_v2(&open, 8, 3, true, 9, &mut no_new_id).unwrap_err(),
        TxnError::InvalidProducerIdMapping
    );
    assert_eq!(
        end_v2(
            &meta(TxnState::PrepareCommit, 4),
            7,
            3,
            true,
            9,
            &mut no_new_id
        )
        .unwrap_err(),
        TxnError::ConcurrentTransactions
    );
}

/// An exhausted epoch: the markers take the last epoch, the id moves to a new one (also
/// when the end is resumed after a crash), and a retry with the old id is recognised.
#[test]
fn v2_end_moves_to_a_new_id_when_the_epoch_is_exhausted() {
    let open = meta(TxnState::Ongoing, i16::MAX - 1);
    let (steps, id, epoch) = end_v2(&open, 7, i16::MAX - 1, true, 9, &mut || Ok(99)).unwrap();
    assert_eq!((id, epoch), (99, 0));
    assert_eq!(markers(&steps), vec![(ControlType::Commit, i16::MAX, 2)]);
    let Step::Persist(prepared) = &steps[0] else {
        panic!()
    };
    assert_eq!((prepared.producer_id, prepared.next_producer_id), (7, 99));
    let Some(Step::Persist(done)) = steps.last() else {
        panic!()
    };
    assert_eq!(
        (
            done.producer_id,
            done.producer_epoch,
            done.previous_producer_id,
            done.next_producer_id
        ),
        (99, 0, 7, -1)
    );
    // The crash case: the prepare record alone is resumed to the same completion.
    let resumed = resume(prepared, 9);
    assert_eq!(resumed.last(), Some(&Step::Persist(done.clone())));
    // A retry with the old id and epoch.
    assert_eq!(
        end_v2(done, 7, i16::MAX - 1, true, 9, &mut no_new_id).unwrap(),
        (Vec::new(), 99, 0)
    );
    // The old id otherwise is not the transactional id's.
    assert_eq!(
        end_v2(done, 7, 5, true, 9, &mut no_new_id).unwrap_err(),
        TxnError::InvalidProducerIdMapping
    );
}

/// A V2 producer's timed-out transaction is aborted two epochs up, so its own late end
/// (one epoch below the abort's would read as a retry) is fenced.
#[test]
fn v2_timeouts_fence_the_producer() {
    let open = TxnMetadata {
        client_version: 2,
        ..meta(TxnState::Ongoing, 3)
    };
    let steps = expire(&open, 1101).unwrap();
    assert_eq!(markers(&steps), vec![(ControlType::Abort, 5, 2)]);
    let Some(Step::Persist(done)) = steps.last() else {
        panic!()
    };
    assert_eq!(
        end_v2(done, 7, 3, false, 2000, &mut no_new_id).unwrap_err(),
        TxnError::ProducerFenced
    );
}

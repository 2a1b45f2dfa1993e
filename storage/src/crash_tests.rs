//! Property test of the durability contract over the fault-injecting I/O backend: random
//! appends, syncs (explicit and through `flush.messages`), clean restarts and machine crashes
//! (everything not synced is dropped, the last writes of each file possibly torn; see
//! `io::faults`). After every crash:
//! - every record that was durable (below `durable_offset`) when the crash hit is read back
//!   with the same offset and value;
//! - the log reads back exactly a prefix of what was appended (nothing reordered or invented);
//! - appends continue right after what survived, so an offset that was ever durable is never
//!   given to another record.
//!
//! Each case runs on both backends.

use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;

use crate::io::Io;
use crate::test_util::{all_backends, batch, decode, new_backend};
use crate::{LogConfig, LogManager, PartitionLog, TopicPartition};

#[derive(Debug, Clone)]
enum Op {
    Append { batches: usize, records: usize },
    Sync,
    Crash { seed: u64 },
    CleanRestart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..4, 1usize..6).prop_map(|(batches, records)| Op::Append { batches, records }),
        2 => Just(Op::Sync),
        2 => any::<u64>().prop_map(|seed| Op::Crash { seed }),
        1 => Just(Op::CleanRestart),
    ]
}

fn tp() -> TopicPartition {
    TopicPartition::new("crash", 0)
}

fn read_all(log: &PartitionLog) -> Vec<(i64, String)> {
    let mut out: Vec<(i64, String)> = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let records = decode(&log.read(offset, 1 << 20).unwrap().records);
        out.extend(records.into_iter().filter(|(o, _)| *o >= offset));
        offset = out.last().map_or(offset + 1, |l| l.0 + 1);
    }
    out
}

fn open(dir: &Path, io: &Io, config: &LogConfig) -> (LogManager, Arc<PartitionLog>) {
    let manager = LogManager::open_with(dir, io.clone()).unwrap();
    let log = manager.open_partition(&tp(), config.clone()).unwrap();
    (manager, log)
}

fn run(kind: crate::io::IoKind, flush_messages: u64, ops: &[Op]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let (io, faults) = new_backend(kind).with_faults();
    let config = LogConfig {
        segment_bytes: 700,
        index_interval_bytes: 120,
        flush_messages,
        ..LogConfig::default()
    };
    let (mut manager, mut log) = open(dir.path(), &io, &config);
    // Every record appended and not lost to a crash, in offset order.
    let mut model: Vec<(i64, String)> = Vec::new();
    // Records below this offset were durable at some point: they must survive everything.
    let mut durable = 0i64;
    let mut n = 0;
    for op in ops {
        match op {
            Op::Append { batches, records } => {
                for _ in 0..*batches {
                    let info = log
                        .append_now(batch(&format!("v{n}"), *records, n), 0)
                        .unwrap();
                    if info.flush_due {
                        // As the broker does: not answered before the sync it asked for.
                        crate::test_util::wait_durable(&log, info.last_offset + 1);
                    }
                    prop_assert_eq!(
                        info.base_offset,
                        model.len() as i64,
                        "offset reused or skipped"
                    );
                    for r in 0..*records {
                        model.push((info.base_offset + r as i64, format!("v{n}-{r}")));
                    }
                    n += 1;
                }
            }
            Op::Sync => {
                log.sync().unwrap();
                prop_assert_eq!(log.durable_offset(), model.len() as i64);
            }
            Op::Crash { seed } => {
                drop(log);
                drop(manager);
                faults.crash(*seed);
                (manager, log) = open(dir.path(), &io, &config);
                let end = log.log_end_offset();
                prop_assert!(
                    end >= durable,
                    "durable records lost: end {} < durable {}",
                    end,
                    durable
                );
                prop_assert!(end <= model.len() as i64, "records invented");
                model.truncate(end as usize);
                prop_assert_eq!(read_all(&log), model.clone());
            }
            Op::CleanRestart => {
                manager.shutdown().unwrap();
                drop(log);
                drop(manager);
                (manager, log) = open(dir.path(), &io, &config);
                prop_assert_eq!(log.log_end_offset(), model.len() as i64);
            }
        }
        durable = durable.max(log.durable_offset());
        if flush_messages != u64::MAX {
            // flush.messages: never more than that many records unsynced after an append.
            prop_assert!((log.log_end_offset() - log.durable_offset()) < flush_messages as i64);
        }
    }
    prop_assert_eq!(read_all(&log), model);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn synced_records_survive_crashes_and_offsets_are_never_reused(
        flush_messages in prop_oneof![Just(u64::MAX), 1u64..8],
        ops in proptest::collection::vec(op(), 1..40),
    ) {
        for kind in all_backends() {
            run(kind, flush_messages, &ops)?;
        }
    }
}

//! The scrubber: a background thread that re-reads the closed (rolled) segments of every
//! log at a bounded rate and checks each record batch's framing and CRC32C, so damage to
//! data at rest (a flipped bit, a bad sector, a file changed behind the broker's back) is
//! found before a consumer with `check.crcs=false` reads it as wrong data.
//!
//! A damaged segment takes its partition offline ([`PartitionLog::take_offline`]): appends
//! and reads are refused with the reason (the broker answers KAFKA_STORAGE_ERROR), and an
//! ERROR line names the file and byte position. Active segments are not scrubbed: their
//! tail is validated by recovery after a crash, and they are scrubbed once they roll.
//!
//! The thread reads through the log's own I/O handle, never on an async runtime's thread, at
//! most `bytes_per_second` on average (it sleeps between chunks), one pass over all closed
//! segments per `interval`, and it remembers which segments it has checked in this pass.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use floe_protocol::record_batch;

use crate::background::{Background, Stop, lock};
use crate::error::StorageError;
use crate::partition_log::PartitionLog;
use crate::segment::SegmentReader;

/// Bytes read per chunk.
const CHUNK: usize = 1 << 20;

/// How the scrubber runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScrubConfig {
    /// Average read rate; 0 turns the scrubber off.
    pub bytes_per_second: u64,
    /// Pause between the end of one pass over every closed segment and the next.
    pub interval: Duration,
}

impl Default for ScrubConfig {
    fn default() -> Self {
        ScrubConfig {
            bytes_per_second: 8 * 1024 * 1024,
            interval: Duration::from_secs(24 * 3600),
        }
    }
}

type Logs = Arc<Mutex<std::collections::HashMap<crate::TopicPartition, Arc<PartitionLog>>>>;

/// The scrubber thread; stopped and joined on drop.
#[derive(Debug)]
pub(crate) struct Scrubber {
    _thread: Option<Background>,
}

impl Scrubber {
    /// Starts the thread over the logs of a data directory (not at all when the rate is 0).
    pub(crate) fn start(logs: Logs, config: ScrubConfig) -> Result<Scrubber, StorageError> {
        let thread = if config.bytes_per_second == 0 {
            None
        } else {
            Some(Background::start("floe-scrubber", move |stop| {
                run(&logs, config, stop)
            })?)
        };
        Ok(Scrubber { _thread: thread })
    }
}

fn run(logs: &Logs, config: ScrubConfig, stop: &Stop) {
    // Segments checked in this pass: (partition directory, base offset).
    let mut checked: HashSet<(PathBuf, i64)> = HashSet::new();
    let mut pass_started = Instant::now();
    loop {
        let open: Vec<Arc<PartitionLog>> = lock(logs).values().cloned().collect();
        let mut next: Option<(Arc<PartitionLog>, SegmentReader)> = None;
        'find: for log in &open {
            if log.offline_reason().is_some() {
                continue;
            }
            for segment in log.closed_segments() {
                if !checked.contains(&(log.dir().to_owned(), segment.base_offset)) {
                    next = Some((Arc::clone(log), segment));
                    break 'find;
                }
            }
        }
        let Some((log, segment)) = next else {
            // Pass complete (or nothing to check yet): wait for the next one, but look
            // again soon for newly rolled segments.
            let wait = config
                .interval
                .saturating_sub(pass_started.elapsed())
                .min(Duration::from_secs(1));
            if pass_started.elapsed() >= config.interval {
                checked.clear();
                pass_started = Instant::now();
            }
            if stop.sleep(wait.max(Duration::from_millis(10))) {
                return;
            }
            continue;
        };
        checked.insert((log.dir().to_owned(), segment.base_offset));
        match check_segment(&segment, config.bytes_per_second, stop) {
            Ok(Check::Clean) => {
                tracing::debug!(file = %segment.log.path().display(), bytes = segment.size, "scrubbed segment");
            }
            Ok(Check::Stopped) => return,
            Ok(Check::Damaged { position, reason }) => {
                let reason = format!(
                    "scrubber found damage in {} at byte {position}: {reason}",
                    segment.log.path().display()
                );
                tracing::error!(partition = %log.topic_partition(), file = %segment.log.path().display(), position, "{reason}; taking the partition offline (restore the segment from a copy, or delete the topic)");
                log.take_offline(reason);
            }
            Err(e) => {
                // Deleted underneath us, or a read error: the read path reports read errors
                // to clients; the scrubber moves on.
                tracing::debug!(file = %segment.log.path().display(), error = %e, "scrubber could not read a segment");
            }
        }
    }
}

enum Check {
    Clean,
    Damaged { position: u64, reason: String },
    Stopped,
}

/// Reads the segment's `size` bytes in chunks, checking every batch's framing and CRC,
/// sleeping so the average rate stays at `rate` bytes per second.
fn check_segment(segment: &SegmentReader, rate: u64, stop: &Stop) -> Result<Check, StorageError> {
    let mut position = 0u64;
    while position < segment.size {
        let left = usize::try_from(segment.size - position).unwrap_or(usize::MAX);
        let started = Instant::now();
        let chunk = segment.log.read_vec(position, left.min(CHUNK))?;
        let mut consumed = 0usize;
        for item in record_batch::iter_batches(&chunk) {
            match item {
                Ok((header, range)) => {
                    if let Err(e) = record_batch::check_crc(&chunk[range.clone()], &header) {
                        return Ok(Check::Damaged {
                            position: position + range.start as u64,
                            reason: e.to_string(),
                        });
                    }
                    consumed = range.end;
                }
                Err(record_batch::BatchError::Truncated {
                    position: at,
                    needed,
                    ..
                }) => {
                    if chunk.len() == left {
                        return Ok(Check::Damaged {
                            position: position + at as u64,
                            reason: "record batch runs past the segment end".into(),
                        });
                    }
                    if at > 0 {
                        // The next chunk starts with this batch.
                        consumed = at;
                        break;
                    }
                    // One batch bigger than a chunk: read it whole.
                    if needed > left {
                        return Ok(Check::Damaged {
                            position,
                            reason: "record batch runs past the segment end".into(),
                        });
                    }
                    let whole = segment.log.read_vec(position, needed)?;
                    let checked = record_batch::BatchHeader::parse(&whole)
                        .and_then(|header| record_batch::check_crc(&whole, &header));
                    if let Err(e) = checked {
                        return Ok(Check::Damaged {
                            position,
                            reason: e.to_string(),
                        });
                    }
                    consumed = needed;
                    break;
                }
                Err(e) => {
                    return Ok(Check::Damaged {
                        position: position + consumed as u64,
                        reason: e.to_string(),
                    });
                }
            }
        }
        if consumed == 0 {
            return Ok(Check::Damaged {
                position,
                reason: "no record batch where one must start".into(),
            });
        }
        position += consumed as u64;
        // Pace: this chunk may take consumed / rate seconds.
        let budget = Duration::from_secs_f64(consumed as f64 / rate as f64);
        if let Some(pause) = budget.checked_sub(started.elapsed())
            && stop.sleep(pause)
        {
            return Ok(Check::Stopped);
        }
        if stop.is_set() {
            return Ok(Check::Stopped);
        }
    }
    Ok(Check::Clean)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::ScrubConfig;
    use crate::segment::{LOG_SUFFIX, segment_file};
    use crate::test_util::{batch, open_manager};
    use crate::{LogConfig, PartitionLog, ReadError, StorageError, TopicPartition};

    fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn fast() -> ScrubConfig {
        ScrubConfig {
            bytes_per_second: 64 * 1024 * 1024,
            interval: Duration::from_millis(50),
        }
    }

    fn fill(log: &std::sync::Arc<PartitionLog>, batches: usize) {
        for i in 0..batches {
            log.append_now(batch(&format!("v{i}"), 3, 0), 0).unwrap();
        }
        log.sync().unwrap();
    }

    fn damaged_closed_segment_takes_the_partition_offline() {
        let dir = tempfile::tempdir().unwrap();
        let manager = open_manager(dir.path());
        let config = LogConfig {
            segment_bytes: 1000,
            ..LogConfig::default()
        };
        let log = manager
            .open_partition(&TopicPartition::new("scrub", 0), config.clone())
            .unwrap();
        let healthy = manager
            .open_partition(&TopicPartition::new("scrub", 1), config)
            .unwrap();
        fill(&log, 40);
        fill(&healthy, 40);
        let closed = log.closed_segments();
        assert!(closed.len() >= 3, "expected rolled segments");
        // A clean pass finds nothing.
        manager.start_scrubber(fast()).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(log.offline_reason(), None);
        assert_eq!(healthy.offline_reason(), None);

        // A flipped byte in the second closed segment, as a bad sector would leave it.
        let base = closed[1].base_offset;
        let path = segment_file(log.dir(), base, LOG_SUFFIX);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[100] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        wait_until("the damage is found", || log.offline_reason().is_some());
        let reason = log.offline_reason().unwrap();
        assert!(reason.contains(&path.display().to_string()), "{reason}");
        // Reads of any offset and appends are refused; the other partition is untouched.
        assert!(matches!(
            log.read(0, 1 << 20),
            Err(ReadError::Storage(StorageError::Offline { .. }))
        ));
        assert!(log.append_now(batch("late", 1, 0), 0).is_err());
        assert_eq!(healthy.offline_reason(), None);
        healthy.append_now(batch("more", 1, 0), 0).unwrap();
    }

    fn scrubber_off_at_rate_zero() {
        let dir = tempfile::tempdir().unwrap();
        let manager = open_manager(dir.path());
        manager
            .start_scrubber(ScrubConfig {
                bytes_per_second: 0,
                interval: Duration::from_millis(1),
            })
            .unwrap();
        drop(manager);
    }

    crate::test_util::on_both_backends!(
        damaged_closed_segment_takes_the_partition_offline,
        scrubber_off_at_rate_zero,
    );
}

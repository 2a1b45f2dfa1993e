//! Fault injection in front of either backend ([`super::Io::with_faults`]), compiled into
//! storage's own tests and, with the `faults` cargo feature, into other crates' tests.
//!
//! - Failing syncs: every later `fdatasync` through the handle fails.
//! - A full disk: writes fail with ENOSPC until it is cleared.
//! - A crash model of the page cache: for every file opened through the handle the injector
//!   keeps the content it knows to be durable (what the file held when its last successful
//!   sync started, or its content when first opened). [`Faults::crash`] turns each file that
//!   was written since into what a machine crash may leave: its durable content plus a random
//!   prefix of the bytes appended after it (a torn last write, sometimes with its end zeroed,
//!   as when the file size reached the disk before the data). A file that was truncated or
//!   overwritten since is put back to its durable content.
//!
//! Files written by `write_atomic` are durable by construction and directory operations are
//! not modelled.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

#[derive(Debug)]
struct Model {
    durable: Vec<u8>,
    dirty: bool,
}

/// The fault injector of one [`super::Io`] handle.
#[derive(Debug, Default)]
pub struct Faults {
    fail_syncs: AtomicBool,
    disk_full: AtomicBool,
    /// Batches of fdatasyncs issued (one `sync_each` call each).
    sync_batches: AtomicU64,
    files: Mutex<HashMap<PathBuf, Model>>,
}

/// A small deterministic generator (xorshift), so a failing case replays from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

impl Faults {
    fn files(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Model>> {
        self.files
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes every later sync fail.
    pub fn fail_syncs(&self) {
        self.fail_syncs.store(true, Ordering::SeqCst);
    }

    /// Makes every later write fail with ENOSPC (`full`), or succeed again.
    pub fn set_disk_full(&self, full: bool) {
        self.disk_full.store(full, Ordering::SeqCst);
    }

    pub(super) fn disk_full(&self) -> bool {
        self.disk_full.load(Ordering::SeqCst)
    }

    /// How many batches of fdatasyncs went through the handle.
    pub fn sync_batches(&self) -> u64 {
        self.sync_batches.load(Ordering::SeqCst)
    }

    pub(super) fn count_sync_batch(&self) {
        self.sync_batches.fetch_add(1, Ordering::SeqCst);
    }

    pub(super) fn sync_fails(&self) -> bool {
        self.fail_syncs.load(Ordering::SeqCst)
    }

    pub(super) fn opened(&self, path: &Path, existed: bool) {
        self.files()
            .entry(path.to_owned())
            .or_insert_with(|| Model {
                durable: if existed {
                    fs::read(path).unwrap_or_default()
                } else {
                    Vec::new()
                },
                dirty: false,
            });
    }

    pub(super) fn written(&self, path: &Path) {
        if let Some(model) = self.files().get_mut(path) {
            model.dirty = true;
        }
    }

    pub(super) fn synced(&self, path: &Path, content: Vec<u8>) {
        if let Some(model) = self.files().get_mut(path) {
            model.durable = content;
        }
    }

    /// Simulates a machine crash (call it after the log manager is dropped, as the process
    /// would be gone): rewrites every file written since its last sync as described in the
    /// module docs. Afterwards the files on disk are the durable state, and tracking restarts.
    pub fn crash(&self, seed: u64) {
        let mut rng = Rng(seed | 1);
        let mut files = self.files();
        let mut paths: Vec<PathBuf> = files.keys().cloned().collect();
        paths.sort();
        for path in paths {
            let Some(model) = files.get(&path) else {
                continue;
            };
            if !model.dirty {
                continue;
            }
            let Ok(current) = fs::read(&path) else {
                continue; // removed since
            };
            let durable = &model.durable;
            let mut after = durable.clone();
            if current.len() >= durable.len() && current.starts_with(durable) {
                let unsynced = &current[durable.len()..];
                let keep = match rng.below(3) {
                    0 => 0,
                    1 => unsynced.len(),
                    _ => rng.below(unsynced.len() + 1),
                };
                after.extend_from_slice(&unsynced[..keep]);
                if keep > 0 && rng.below(4) == 0 {
                    let zeroed = rng.below(keep.min(64)) + 1;
                    let len = after.len();
                    after[len - zeroed..].fill(0);
                }
            }
            if let Err(e) = fs::write(&path, &after) {
                panic!("crash simulation cannot rewrite {}: {e}", path.display());
            }
        }
        files.clear();
    }
}

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
//!
//! Besides the switches tests flip directly, a fault set can be built from a spec string
//! ([`Faults::from_spec`]), which is how a broker built with the `faults` feature takes
//! faults from its `storage.faults` setting: rules separated by `;`, each `kind` or
//! `kind@substring` (the rule applies to files whose path contains the substring):
//!
//! - `sync_eio`: every fdatasync fails with an I/O error (the log goes offline);
//! - `disk_full`: every write fails with ENOSPC before writing anything;
//! - `short_write`: every write writes the first half of its bytes, then fails with ENOSPC;
//! - `slow_sync_ms=N`: every fdatasync first sleeps N milliseconds;
//! - `rename_eio`: every rename (of the source path) fails with an I/O error;
//! - `dir_sync_eio`: every fsync of a directory fails with an I/O error.
//!
//! Renames and directory syncs go through free functions of `io` with no handle; they see
//! the fault set installed for the whole process with [`super::install_process_faults`]
//! (the broker does that with the set it gives its handle).
//!
//! Rules built from a spec do not model crashes, and are suspended while the file named by
//! [`Faults::from_spec`]'s `off_switch` exists (tests create it to "free the disk").

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

/// What a rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// fdatasync fails with EIO.
    SyncEio,
    /// Writes fail with ENOSPC, writing nothing.
    DiskFull,
    /// Writes write half their bytes, then fail with ENOSPC.
    ShortWrite,
    /// fdatasync sleeps this many milliseconds first.
    SlowSyncMs(u64),
    /// Renames fail with EIO.
    RenameEio,
    /// Directory fsyncs fail with EIO.
    DirSyncEio,
}

/// One rule: a fault for the files whose path contains `path` (all files if empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRule {
    /// The fault.
    pub kind: FaultKind,
    /// Substring of the paths it applies to.
    pub path: String,
}

/// The fault injector of one [`super::Io`] handle.
#[derive(Debug, Default)]
pub struct Faults {
    fail_syncs: AtomicBool,
    disk_full: AtomicBool,
    /// Rules from a spec (see the module docs).
    rules: Vec<FaultRule>,
    /// While this file exists, the rules are suspended.
    off_switch: Option<PathBuf>,
    /// Whether files are tracked for [`Faults::crash`] (tests' handles only: it reads every
    /// file at each sync).
    model_crashes: bool,
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
    /// The crash-modelling injector of tests ([`super::Io::with_faults`]).
    pub(crate) fn modelling_crashes() -> Faults {
        Faults {
            model_crashes: true,
            ..Faults::default()
        }
    }

    /// Rules from a spec (module docs), suspended while `off_switch` exists.
    pub fn from_spec(spec: &str, off_switch: Option<PathBuf>) -> Result<Faults, String> {
        let mut rules = Vec::new();
        for item in spec.split(';').map(str::trim).filter(|i| !i.is_empty()) {
            let (kind, path) = item.split_once('@').unwrap_or((item, ""));
            let kind = match kind.trim() {
                "sync_eio" => FaultKind::SyncEio,
                "disk_full" => FaultKind::DiskFull,
                "short_write" => FaultKind::ShortWrite,
                "rename_eio" => FaultKind::RenameEio,
                "dir_sync_eio" => FaultKind::DirSyncEio,
                other => match other.strip_prefix("slow_sync_ms=") {
                    Some(ms) => FaultKind::SlowSyncMs(
                        ms.parse()
                            .map_err(|_| format!("bad milliseconds in fault {item:?}"))?,
                    ),
                    None => {
                        return Err(format!(
                            "unknown fault {other:?} (sync_eio, disk_full, short_write, slow_sync_ms=N, rename_eio, dir_sync_eio)"
                        ));
                    }
                },
            };
            rules.push(FaultRule {
                kind,
                path: path.trim().to_string(),
            });
        }
        Ok(Faults {
            rules,
            off_switch,
            ..Faults::default()
        })
    }

    /// The rules that apply to `path` now.
    fn rules_for<'a>(&'a self, path: &'a Path) -> impl Iterator<Item = FaultKind> + 'a {
        let active = !self.rules.is_empty()
            && self
                .off_switch
                .as_ref()
                .is_none_or(|off| fs::metadata(off).is_err());
        let text = path.to_string_lossy().into_owned();
        self.rules
            .iter()
            .filter(move |r| active && text.contains(&r.path))
            .map(|r| r.kind)
    }

    /// What a write to `path` must do: `Some(0)` fail at once, `Some(n)` write `n` bytes
    /// of `len` and then fail, `None` proceed.
    pub(super) fn write_fault(&self, path: &Path, len: usize) -> Option<usize> {
        if self.disk_full() {
            return Some(0);
        }
        self.rules_for(path).find_map(|k| match k {
            FaultKind::DiskFull => Some(0),
            FaultKind::ShortWrite => Some(len / 2),
            _ => None,
        })
    }

    /// Whether a sync of `path` must fail; sleeps first for `slow_sync_ms` rules.
    pub(super) fn sync_fault(&self, path: &Path) -> bool {
        let mut fail = self.sync_fails();
        for kind in self.rules_for(path) {
            match kind {
                FaultKind::SyncEio => fail = true,
                FaultKind::SlowSyncMs(ms) => {
                    std::thread::sleep(std::time::Duration::from_millis(ms))
                }
                _ => {}
            }
        }
        fail
    }

    /// Whether a rename of `from` must fail.
    pub(super) fn rename_fails(&self, from: &Path) -> bool {
        self.rules_for(from).any(|k| k == FaultKind::RenameEio)
    }

    /// Whether an fsync of directory `dir` must fail.
    pub(super) fn dir_sync_fails(&self, dir: &Path) -> bool {
        self.rules_for(dir).any(|k| k == FaultKind::DirSyncEio)
    }

    /// Whether files are tracked for [`Faults::crash`].
    pub(super) fn models_crashes(&self) -> bool {
        self.model_crashes
    }

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
        if !self.model_crashes {
            return;
        }
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

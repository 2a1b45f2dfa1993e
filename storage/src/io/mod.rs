//! All file I/O of the storage crate goes through this module, so that a second backend
//! (io_uring) can be added behind the same narrow interface and tests can inject faults here.
//!
//! The interface is positional: writes and reads name their file offset (`pwrite`/`pread`),
//! so a file handle can be shared between one appender and many readers without a cursor.
//! Durability primitives: [`File::sync_data`] (`fdatasync`), [`sync_dir`] (fsync of a
//! directory, needed after creating, renaming or removing entries), and [`write_atomic`]
//! (write a temporary file, fsync it, rename it over the target, fsync the directory), which
//! leaves either the old or the new content after a crash, never a mix.
//!
//! This is the portable std backend.

use std::fs;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{IoOp, StorageError};

type Result<T> = std::result::Result<T, StorageError>;

/// An open file, readable and writable at explicit positions.
#[derive(Debug)]
pub struct File {
    file: fs::File,
    path: PathBuf,
}

impl File {
    /// Opens an existing file for reading and writing.
    pub fn open(path: &Path) -> Result<File> {
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| StorageError::io(IoOp::Open, path, e))?;
        Ok(File {
            file,
            path: path.to_owned(),
        })
    }

    /// Opens a file for reading and writing, creating it empty if it does not exist.
    pub fn create(path: &Path) -> Result<File> {
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| StorageError::io(IoOp::Open, path, e))?;
        Ok(File {
            file,
            path: path.to_owned(),
        })
    }

    /// The path the file was opened with.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Current length of the file.
    pub fn size(&self) -> Result<u64> {
        self.file
            .metadata()
            .map(|m| m.len())
            .map_err(|e| StorageError::io(IoOp::Metadata, &self.path, e))
    }

    /// Writes all of `buf` at `position` (to the page cache; see [`File::sync_data`]).
    pub fn write_at(&self, position: u64, buf: &[u8]) -> Result<()> {
        self.file
            .write_all_at(buf, position)
            .map_err(|e| StorageError::io(IoOp::Write, &self.path, e))
    }

    /// Fills `buf` from `position`; reading past the end of the file is an error.
    pub fn read_exact_at(&self, position: u64, buf: &mut [u8]) -> Result<()> {
        self.file
            .read_exact_at(buf, position)
            .map_err(|e| StorageError::io(IoOp::Read, &self.path, e))
    }

    /// Reads `len` bytes from `position` into a new buffer.
    pub fn read_vec(&self, position: u64, len: usize) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        self.read_exact_at(position, &mut buf)?;
        Ok(buf)
    }

    /// `fdatasync`: everything written so far is on stable storage when this returns `Ok`.
    pub fn sync_data(&self) -> Result<()> {
        #[cfg(test)]
        if faults::sync_fails(&self.path) {
            return Err(StorageError::io(
                IoOp::Sync,
                &self.path,
                io::Error::other("injected fdatasync failure"),
            ));
        }
        self.file
            .sync_data()
            .map_err(|e| StorageError::io(IoOp::Sync, &self.path, e))
    }

    /// Truncates or extends the file to `len` bytes.
    pub fn set_len(&self, len: u64) -> Result<()> {
        self.file
            .set_len(len)
            .map_err(|e| StorageError::io(IoOp::Truncate, &self.path, e))
    }
}

/// Creates a directory and its parents.
pub fn create_dir_all(path: &Path) -> Result<()> {
    fs::create_dir_all(path).map_err(|e| StorageError::io(IoOp::CreateDir, path, e))
}

/// fsyncs a directory, making creations, renames and removals of its entries durable.
pub fn sync_dir(path: &Path) -> Result<()> {
    let dir = fs::File::open(path).map_err(|e| StorageError::io(IoOp::Open, path, e))?;
    dir.sync_all()
        .map_err(|e| StorageError::io(IoOp::Sync, path, e))
}

/// One directory entry.
#[derive(Debug, Clone)]
pub struct DirEntry {
    /// File name (entries whose names are not UTF-8 are skipped).
    pub name: String,
    /// Full path.
    pub path: PathBuf,
    /// Whether the entry is a directory.
    pub is_dir: bool,
}

/// Lists a directory, sorted by name.
pub fn list_dir(path: &Path) -> Result<Vec<DirEntry>> {
    let read = fs::read_dir(path).map_err(|e| StorageError::io(IoOp::ListDir, path, e))?;
    let mut out = Vec::new();
    for entry in read {
        let entry = entry.map_err(|e| StorageError::io(IoOp::ListDir, path, e))?;
        let file_type = entry
            .file_type()
            .map_err(|e| StorageError::io(IoOp::Metadata, entry.path(), e))?;
        if let Ok(name) = entry.file_name().into_string() {
            out.push(DirEntry {
                name,
                path: entry.path(),
                is_dir: file_type.is_dir(),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Whether a path exists (errors other than "not found" count as existing, so callers
/// go on to fail with a proper error when they touch it).
pub fn exists(path: &Path) -> bool {
    !matches!(fs::symlink_metadata(path), Err(e) if e.kind() == io::ErrorKind::NotFound)
}

/// Removes a file; a file that is already gone is not an error.
pub fn remove_file(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(StorageError::io(IoOp::Remove, path, e))
        }
        _ => Ok(()),
    }
}

/// Removes a directory tree; a directory that is already gone is not an error.
pub fn remove_dir_all(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(StorageError::io(IoOp::Remove, path, e))
        }
        _ => Ok(()),
    }
}

/// Renames `from` to `to` (not durable until the parent directory is synced).
pub fn rename(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).map_err(|e| StorageError::io(IoOp::Rename, from, e))
}

/// Reads a whole small file; `Ok(None)` if it does not exist.
pub fn read_file(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StorageError::io(IoOp::Read, path, e)),
    }
}

/// Suffix of temporary files written by [`write_atomic`]; recovery deletes leftovers.
pub const TMP_SUFFIX: &str = ".tmp";

/// Replaces `path` with `contents` atomically and durably: writes `<path>.tmp`, fsyncs it,
/// renames it over `path` and fsyncs the parent directory.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(TMP_SUFFIX);
    let tmp = PathBuf::from(tmp);
    {
        let file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| StorageError::io(IoOp::Open, &tmp, e))?;
        file.write_all_at(contents, 0)
            .map_err(|e| StorageError::io(IoOp::Write, &tmp, e))?;
        file.sync_all()
            .map_err(|e| StorageError::io(IoOp::Sync, &tmp, e))?;
    }
    rename(&tmp, path)?;
    if let Some(parent) = path.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Writes an empty marker file durably (used for the clean-shutdown marker).
pub fn create_marker(path: &Path) -> Result<()> {
    write_atomic(path, &[])
}

/// An exclusive advisory lock on a file, held until dropped.
#[derive(Debug)]
pub struct DirLock {
    _file: fs::File,
    path: PathBuf,
}

impl DirLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Takes an exclusive lock on `path` (created if missing) without waiting; fails with
/// [`StorageError::DirLocked`] if another process holds it.
pub fn lock_exclusive(path: &Path) -> Result<DirLock> {
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| StorageError::io(IoOp::Open, path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(DirLock {
            _file: file,
            path: path.to_owned(),
        }),
        Err(fs::TryLockError::WouldBlock) => Err(StorageError::DirLocked {
            path: path.to_owned(),
        }),
        Err(fs::TryLockError::Error(e)) => Err(StorageError::io(IoOp::Lock, path, e)),
    }
}

/// Test-only fault injection at the I/O edge. Faults are scoped to a directory so tests
/// running in parallel (each in its own temporary directory) do not see each other's.
#[cfg(test)]
pub(crate) mod faults {
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    static FAILING_SYNC_DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

    /// Makes every later `File::sync_data` of a file under `dir` fail.
    pub(crate) fn fail_syncs_under(dir: &Path) {
        FAILING_SYNC_DIRS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(dir.to_owned());
    }

    pub(super) fn sync_fails(path: &Path) -> bool {
        FAILING_SYNC_DIRS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .any(|dir| path.starts_with(dir))
    }
}

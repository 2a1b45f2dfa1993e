//! The background threads of a data directory (flusher, retention, cleaner, scrubber): each
//! is started with a name and a body that watches a [`Stop`], and is stopped and joined when
//! its [`Background`] handle is dropped.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use crate::error::{IoOp, StorageError};

/// A mutex's guard, also after a panic elsewhere poisoned it (the state the background
/// threads share stays consistent: it is changed only after every fallible step).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Tells a background thread to stop; its sleeps end at once when it does.
#[derive(Debug, Default)]
pub(crate) struct Stop {
    flag: Mutex<bool>,
    wake: Condvar,
}

impl Stop {
    fn lock(&self) -> MutexGuard<'_, bool> {
        self.flag.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the thread was told to stop.
    pub(crate) fn is_set(&self) -> bool {
        *self.lock()
    }

    /// Sleeps up to `d`; true if the thread was told to stop (before or meanwhile).
    pub(crate) fn sleep(&self, d: Duration) -> bool {
        let stopped = self.lock();
        if *stopped {
            return true;
        }
        let (stopped, _) = self
            .wake
            .wait_timeout(stopped, d)
            .unwrap_or_else(PoisonError::into_inner);
        *stopped
    }

    fn set(&self) {
        *self.lock() = true;
        self.wake.notify_all();
    }
}

/// A running background thread; dropping it stops and joins the thread.
#[derive(Debug)]
pub(crate) struct Background {
    name: &'static str,
    stop: Arc<Stop>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Background {
    /// Starts `body` on a thread named `name`.
    pub(crate) fn start(
        name: &'static str,
        body: impl FnOnce(&Stop) + Send + 'static,
    ) -> Result<Background, StorageError> {
        let stop = Arc::new(Stop::default());
        let thread = {
            let stop = Arc::clone(&stop);
            thread::Builder::new()
                .name(name.into())
                .spawn(move || body(&stop))
                .map_err(|e| StorageError::io(IoOp::Open, name, e))?
        };
        Ok(Background {
            name,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop.set();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!(thread = self.name, "background thread panicked");
        }
    }
}

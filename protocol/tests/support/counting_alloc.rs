//! A counting global allocator for the allocation-bounded fuzz test binaries
//! (`protocol/tests/fuzz_alloc.rs`, `broker/tests/fuzz_alloc.rs`, which include this file
//! as a module): it records the largest single allocation each thread asks for, and where
//! the first one over [`LIMIT`] was asked for.

// The counting allocator must implement `GlobalAlloc`, an unsafe trait; it only forwards
// to `System` and records sizes. Test-only: nothing in the shipped code is affected.
#![allow(unsafe_code)]
// Each including binary uses its own part of this file.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};

/// The largest single allocation a fuzz case may make. Mutated inputs of a few hundred
/// bytes have no business asking for more; the known failures ask for gigabytes.
pub const LIMIT: usize = 64 << 20;

struct Counting;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    /// Where the first allocation over the limit was asked for.
    static OFFENDER: RefCell<Option<String>> = const { RefCell::new(None) };
    static CAPTURING: Cell<bool> = const { Cell::new(false) };
}

fn note(size: usize) {
    // `try_with`: the slots are gone while the thread is being torn down.
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
    if size > LIMIT && CAPTURING.try_with(|c| !c.replace(true)).unwrap_or(false) {
        // Capturing allocates; the flag keeps those allocations from capturing again.
        let trace = std::backtrace::Backtrace::force_capture().to_string();
        let _ = OFFENDER.try_with(|o| {
            o.borrow_mut().get_or_insert(trace);
        });
        let _ = CAPTURING.try_with(|c| c.set(false));
    }
}

// SAFETY: every call is forwarded to `System` with the caller's arguments unchanged. The
// bookkeeping touches const-initialised thread-local cells; only for a request over the
// limit does it allocate (a backtrace, through this same allocator), and the `CAPTURING`
// flag keeps those nested allocations from capturing again.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded as is; the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (every allocation is).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: as for `dealloc`; the caller upholds `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `body` and returns the largest single allocation it made.
pub fn largest_allocation(body: impl FnOnce()) -> usize {
    LARGEST.with(|l| l.set(0));
    OFFENDER.with(|o| o.borrow_mut().take());
    body();
    LARGEST.with(|l| l.get())
}

/// The frames of the first over-limit allocation's backtrace that are not the standard
/// library's, innermost first.
pub fn offender() -> String {
    let trace = OFFENDER.with(|o| o.borrow_mut().take()).unwrap_or_default();
    trace
        .lines()
        .map(str::trim)
        .filter(|l| l.contains(": ") && !l.contains(": std::") && !l.contains(": core::"))
        .filter(|l| !l.contains(": alloc::") && !l.contains("__rust"))
        .take(12)
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn bounded(target: &'static str, body: fn(&[u8])) -> impl Fn(&[u8]) {
    move |data: &[u8]| {
        let largest = largest_allocation(|| body(data));
        assert!(
            largest <= LIMIT,
            "{target}: one allocation of {largest} bytes for an input of {} bytes, at\n{}",
            data.len(),
            offender()
        );
    }
}

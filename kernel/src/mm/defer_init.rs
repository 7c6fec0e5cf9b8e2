//! Where deferred struct-page init starts (Linux's `defer_init()` and
//! `pgdat->first_deferred_pfn`): decided by sparse init, obeyed by the
//! page allocator's boot hand-over, and finished by
//! [`crate::mm::deferred`]. On its own so that those three need not import
//! each other.

use core::sync::atomic::{AtomicU64, Ordering};

use mm::page::Pfn;

use crate::arch::time;

static FIRST_DEFERRED_PFN: AtomicU64 = AtomicU64::new(u64::MAX);
static MM_START_US: AtomicU64 = AtomicU64::new(0);

/// Sparse init asks where deferral starts for node 0's memory `ram`
/// ([`mm::deferred::first_deferred_pfn`]); this also marks the start of the
/// memory model's set-up ([`mm_start_us`]).
pub fn defer_from(ram: &[(Pfn, Pfn)]) -> Option<Pfn> {
    MM_START_US.store(time::uptime_us(), Ordering::Relaxed);
    let first = mm::deferred::first_deferred_pfn(ram);
    FIRST_DEFERRED_PFN.store(first.map_or(u64::MAX, Pfn::as_u64), Ordering::Relaxed);
    first
}

/// The first pfn left to deferred init, `None` when nothing was deferred.
pub fn first_deferred_pfn() -> Option<Pfn> {
    let pfn = FIRST_DEFERRED_PFN.load(Ordering::Relaxed);
    (pfn != u64::MAX).then_some(Pfn::new(pfn))
}

/// When the memory model's set-up began, µs since entry.
pub fn mm_start_us() -> u64 {
    MM_START_US.load(Ordering::Relaxed)
}

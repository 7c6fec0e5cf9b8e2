//! The `/proc/iomem` resource tree (Linux's `kernel/resource.c`): built
//! at boot from the E820 map, then changed in place by whoever owns a
//! range: RAM hotplug requests "System RAM" at add and releases it at
//! remove, the PMEM driver inserts each persistent range and its
//! namespace. The tree is state, not a view: nothing here imports the
//! drivers that write to it.
//!
//! Lock order: `IOMEM` is a leaf; callers may hold the hotplug lock.

use mm::e820::Entry;
use mm::iomem::{IoMem, IoMemError};
use spin::Mutex;

static IOMEM: Mutex<Option<IoMem>> = Mutex::new(None);

/// Builds the tree from the E820 map (`e820__reserve_resources`). Once.
pub fn init(e820: &[Entry]) {
    let mut t = IOMEM.lock();
    if t.is_none() {
        *t = Some(IoMem::from_e820(e820));
    }
}

fn with<T>(f: impl FnOnce(&mut IoMem) -> T) -> T {
    f(IOMEM.lock().get_or_insert_with(IoMem::new))
}

/// A copy of the tree as it stands now.
pub fn tree() -> IoMem {
    with(|t| t.clone())
}

/// `insert_resource`: `[start, end]` (inclusive, as Linux writes it) as a
/// resource named `name`, nesting under whatever contains it.
pub fn insert(start: u64, end: u64, name: &str) -> Result<(), IoMemError> {
    with(|t| t.insert(start, end, name))
}

/// `request_mem_region`: `[start, end]` as `name`, refused on a conflict.
pub fn request_region(start: u64, end: u64, name: &str) -> Result<(), IoMemError> {
    with(|t| t.request_region(start, end, name))
}

/// `release_mem_region_adjustable`: `[start, end]` leaves the System RAM
/// resource that holds it (trimmed or split). Whether one held it.
pub fn release_adjustable(start: u64, end: u64) -> bool {
    with(|t| t.release_adjustable(start, end))
}

/// `request_mem_region`'s conflict for `[start, end]`, if any: the
/// conflicting resource's range and name.
pub fn request_conflict(start: u64, end: u64) -> Option<(u64, u64, alloc::string::String)> {
    with(|t| t.request_conflict(start, end).map(|r| (r.start, r.end, r.name.clone())))
}

/// Whether a resource named `name` spans exactly `[start, end]`.
pub fn contains(start: u64, end: u64, name: &str) -> bool {
    with(|t| t.find(start, end, name).is_some())
}

/// Prints the tree, a line per resource.
pub fn print() {
    for line in tree().lines() {
        log::info!("{line}");
    }
}

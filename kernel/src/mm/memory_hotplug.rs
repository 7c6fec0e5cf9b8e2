//! `mem_hotplug_begin` / `mem_hotplug_done` (Linux's `mem_hotplug_lock`):
//! every operation that changes which memory exists or is online — a PMEM
//! region's add, remove or mode change, a memory block's add, online,
//! offline or remove — holds this one lock from its range check to its
//! last state change, so that it is one step for every other operation.
//! Inside it the operation updates the section table, the vmemmap and the
//! page allocator (under `SPARSE`), the zones, memblock and the resource
//! tree.
//!
//! The lock order, everywhere in the kernel (DESIGN.md §4a):
//!
//! ```text
//! MEM_HOTPLUG → PMEM | BLOCKS → SPARSE → ZONES, MEMBLOCK, IOMEM, PAGING (one at a time)
//!                PMEM → PUBLISHED   (the regions as the last finished operation left them)
//! HEAP → SPARSE                     (the heap grows from the page allocator)
//! ```
//!
//! and nothing allocates from the heap while it holds `SPARSE` (the heap
//! checks it in debug builds), so the heap can grow in the middle of a
//! hot-add: growth needs the page allocator, never this lock.

use spin::{Mutex, MutexGuard};

static MEM_HOTPLUG: Mutex<()> = Mutex::new(());

/// Held for one hotplug operation; [`mem_hotplug_done`] or drop ends it.
#[must_use = "the operation is serialized only while the guard lives"]
pub struct MemHotplug(#[expect(dead_code, reason = "held for its drop")] MutexGuard<'static, ()>);

/// Starts a hotplug operation: waits for the one in progress to finish.
pub fn mem_hotplug_begin() -> MemHotplug {
    MemHotplug(MEM_HOTPLUG.lock())
}

/// Ends the operation `guard` started.
pub fn mem_hotplug_done(guard: MemHotplug) {
    drop(guard);
}

/// Whether a hotplug operation is in progress (for checks and tests).
pub fn in_progress() -> bool {
    MEM_HOTPLUG.is_locked()
}

//! The page allocator after boot: memblock's free memory handed to the
//! buddy allocator (`memblock_free_all`), and the kernel's way to get and
//! give back pages.

use core::fmt::Write;
use core::sync::atomic::{AtomicU64, Ordering};

use mm::buddy::{BuddyError, NR_ORDERS};
use mm::page::{Pfn, ZoneType, phys_pfn};

use crate::mm::memblock::MEMBLOCK;
use crate::mm::sparse::SPARSE;

/// Zones with a free area, in Linux's order.
pub const ZONES: [ZoneType; 3] = [ZoneType::Dma, ZoneType::Dma32, ZoneType::Normal];

static READY_US: AtomicU64 = AtomicU64::new(0);
static HANDOFF_US: AtomicU64 = AtomicU64::new(0);

/// Microseconds from kernel entry until the page allocator was ready, and
/// how long the hand-over from memblock took (0, 0 before [`init`]).
pub fn ready_us() -> (u64, u64) {
    (READY_US.load(Ordering::Relaxed), HANDOFF_US.load(Ordering::Relaxed))
}

/// Hands every free memblock range below the deferred sections
/// ([`crate::mm::defer_init`]) to the page allocator; from now on the memory
/// model allocates from it. Prints `/proc/buddyinfo`-style lines and
/// Linux's `Memory:` line, whose figures, as Linux's, count only that
/// memory: the deferred pages follow after SMP bring-up.
pub fn init() {
    let start = crate::arch::time::uptime_us();
    let (free, total) = {
        let mb = MEMBLOCK.lock();
        (mb.free_ranges(), mb.memory.total())
    };
    let mut s = SPARSE.lock();
    let backend = &mut s.backend;
    backend.set_late();
    let mut freed = 0;
    let deferred = crate::mm::defer_init::first_deferred_pfn();
    for r in &free {
        // Whole pages only (PFN_UP, PFN_DOWN): a page partly reserved stays out.
        let (start, end) = (phys_pfn(r.base.next_multiple_of(4096)), phys_pfn(r.end()));
        let end = deferred.map_or(end, |d| end.min(d));
        if start < end {
            freed += backend.buddy.free_range(&mut backend.vmemmap, start, end);
        }
    }
    backend.seed_usage_pool();
    let now = crate::arch::time::uptime_us();
    let took = now - start;
    READY_US.store(now, Ordering::Relaxed);
    HANDOFF_US.store(took, Ordering::Relaxed);
    // The numbers under the lock, the text after it (no heap under SPARSE).
    let b = &backend.buddy;
    let counts = ZONES.map(|z| (z, b.managed(z), b.nr_free(z), b.free_counts(z)));
    drop(s);
    for (zone, managed, _, free) in counts {
        if managed == 0 {
            continue;
        }
        let mut line = alloc::string::String::new();
        let _ = write!(line, "Node 0, zone {:>8} ", zone.name());
        for n in free {
            let _ = write!(line, "{n:6} ");
        }
        log::info!("{}", line.trim_end());
    }
    for (zone, managed, nr_free, _) in counts {
        log::info!(
            "page_alloc: zone {:<6} {:>8} free pages, {:>8} managed",
            zone.name(),
            nr_free,
            managed
        );
    }
    let below = deferred.map_or(alloc::string::String::new(), |d| {
        alloc::format!(" (free memory below pfn {d:#x}; the rest is deferred)")
    });
    log::info!(
        "Memory: {}K/{}K available{below}, handed to the page allocator in {}.{:03} ms",
        freed * 4,
        total / 1024,
        took / 1000,
        took % 1000
    );
}

/// Deferred init's hand-over: the free blocks a section's own allocator
/// gathered ([`mm::deferred::deferred_init_section`]) join the page
/// allocator in front of its lists ([`mm::buddy::BuddyAllocator::splice`]);
/// called in pfn order. Returns the pages added.
pub fn splice_boot_pages(local: &mm::buddy::BuddyAllocator) -> u64 {
    let mut s = SPARSE.lock();
    let b = &mut s.backend;
    if let Err(e) = b.buddy.splice(&mut b.vmemmap, local) {
        panic!("page_alloc: deferred pages: {e}");
    }
    ZONES.iter().map(|&z| local.managed(z)).sum()
}

/// A block of 2^`order` pages for the heap, as a virtual address in the
/// physical-memory map. `None` before the page allocator runs and when
/// this CPU is inside it (the heap was called from there and must not
/// wait for itself); another CPU inside it is waited for.
pub fn alloc_for_heap(order: u32) -> Option<u64> {
    if SPARSE.held_by_this_cpu() {
        return None;
    }
    let mut s = SPARSE.lock();
    let b = &mut s.backend;
    if !b.late() {
        return None;
    }
    let pfn = b.buddy.alloc_pages(&mut b.vmemmap, order, ZoneType::Normal).ok()?;
    let offset = crate::boot::mappings()?.physical_memory_offset;
    Some(offset + mm::page::pfn_phys(pfn))
}

/// One page as a frame for a page table (or any kernel mapping), `None`
/// when memory is out.
pub fn alloc_frame() -> Option<x86_64::structures::paging::PhysFrame> {
    let phys = x86_64::PhysAddr::new(mm::page::pfn_phys(alloc_pages(0).ok()?));
    Some(x86_64::structures::paging::PhysFrame::containing_address(phys))
}

/// Allocates 2^`order` pages, Normal first, falling back to DMA32 and DMA.
pub fn alloc_pages(order: u32) -> Result<Pfn, BuddyError> {
    alloc_pages_zone(order, ZoneType::Normal)
}

/// Allocates 2^`order` pages from `highest` or a lower zone.
pub fn alloc_pages_zone(order: u32, highest: ZoneType) -> Result<Pfn, BuddyError> {
    let mut s = SPARSE.lock();
    let b = &mut s.backend;
    b.buddy.alloc_pages(&mut b.vmemmap, order, highest)
}

/// Frees 2^`order` pages from [`alloc_pages`].
pub fn free_pages(pfn: Pfn, order: u32) -> Result<(), BuddyError> {
    let mut s = SPARSE.lock();
    let b = &mut s.backend;
    b.buddy.free_pages(&mut b.vmemmap, pfn, order)
}

/// Free pages in `zone`.
pub fn nr_free(zone: ZoneType) -> u64 {
    SPARSE.lock().backend.buddy.nr_free(zone)
}

/// Free blocks per order in `zone`.
pub fn free_counts(zone: ZoneType) -> [u64; NR_ORDERS] {
    SPARSE.lock().backend.buddy.free_counts(zone)
}

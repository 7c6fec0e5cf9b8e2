//! Node 0's zones as `/proc/zoneinfo` shows them: each zone's span
//! (`zone_start_pfn`, `spanned_pages`) and `present_pages`, laid out at boot
//! from memblock as Linux's `free_area_init` does and moved by hotplug
//! (`move_pfn_range_to_zone`, `adjust_present_page_count`,
//! `remove_pfn_range_from_zone`); free and managed pages come from the
//! buddy allocator. The arithmetic and the text are `tessera-mm`'s
//! ([`mm::zone`]).
//!
//! Lock order: the memory blocks' lock, then `SPARSE`, then `ZONES`;
//! the page allocator's zone locks are taken and dropped before `ZONES`;
//! nothing here is called with `ZONES` held, and nothing here reads the
//! memory blocks (a zone knows its pages from the memory model alone).

use alloc::string::String;
use alloc::vec::Vec;

use mm::page::{Pfn, ZoneType, phys_pfn};
use mm::zone::{NR_ZONES, NodeZones, ZoneSpan, zone_type};
use spin::Mutex;

use crate::mm::memblock::MEMBLOCK;
use crate::mm::page_alloc;
use crate::mm::sparse::SPARSE;

static ZONES: Mutex<NodeZones> = Mutex::new(NodeZones { zones: [EMPTY; NR_ZONES] });
const EMPTY: ZoneSpan = ZoneSpan { zone_start_pfn: Pfn::ZERO, spanned_pages: 0, present_pages: 0 };

/// memblock.memory as pfn ranges (`for_each_mem_pfn_range`).
fn memory_pfns() -> Vec<(Pfn, Pfn)> {
    let mb = MEMBLOCK.lock();
    let ranges = mb.memory.regions().iter();
    let pfns = ranges.map(|r| (phys_pfn(r.base.next_multiple_of(4096)), phys_pfn(r.end())));
    pfns.filter(|(s, e)| s < e).collect()
}

/// `free_area_init` after sparse init: lays the zones out over memblock's
/// RAM and prints Linux's lines, `Zone ranges:` to `On node 0, zone ...:
/// N pages in unavailable ranges`.
pub fn init() {
    let memory = memory_pfns();
    for line in mm::zone::boot_lines(&memory) {
        log::info!("{line}");
    }
    *ZONES.lock() = NodeZones::boot(&memory);
}

/// A copy of `zone`'s span and present pages.
pub fn span(zone: ZoneType) -> ZoneSpan {
    *ZONES.lock().zone(zone)
}

/// A copy of every zone's span and present pages.
pub fn zones() -> NodeZones {
    *ZONES.lock()
}

/// [`NodeZones::move_pfn_range_to_zone`]: the zone's span takes in
/// `[start_pfn, start_pfn + nr_pages)` (onlined RAM, or device memory from
/// `memremap_pages`).
pub fn move_pfn_range_to_zone(zone: ZoneType, start_pfn: Pfn, nr_pages: u64) {
    ZONES.lock().move_pfn_range_to_zone(zone, start_pfn, nr_pages);
}

/// [`NodeZones::adjust_present_page_count`]: RAM onlined (positive) or
/// offlined (negative) in `zone`.
pub fn adjust_present_page_count(zone: ZoneType, nr_pages: i64) {
    ZONES.lock().adjust_present_page_count(zone, nr_pages);
}

/// [`NodeZones::remove_pfn_range_from_zone`] for pages that just went
/// offline (their sections marked offline): the span shrinks past them
/// when they were at its edge, down to the nearest page still online in
/// the memory model and of this zone. ZONE_DEVICE is never shrunk.
pub fn remove_pfn_range_from_zone(zone: ZoneType, start_pfn: Pfn, nr_pages: u64) {
    if zone == ZoneType::Device {
        return; // nothing to read or change: no lock
    }
    let s = SPARSE.lock();
    ZONES.lock().remove_pfn_range_from_zone(&s, zone, start_pfn, nr_pages);
}

/// Every zone's `/proc/zoneinfo` numbers: span and present pages, and the
/// page allocator's free (`NR_FREE_PAGES`: per-CPU lists not included, as
/// in Linux) and managed pages, each zone's read under its own lock.
pub fn snapshot() -> (NodeZones, [u64; NR_ZONES], [u64; NR_ZONES]) {
    let count = |f: &dyn Fn(ZoneType) -> u64| core::array::from_fn(|i| zone_type(i).map_or(0, f));
    let free = count(&|z| page_alloc::nr_free(z));
    let managed = count(&|z| page_alloc::managed(z));
    (*ZONES.lock(), free, managed)
}

/// `/proc/zoneinfo` for the fields Tessera has, one line per `\n`.
pub fn zoneinfo() -> String {
    let (zones, free, managed) = snapshot();
    mm::zone::zoneinfo(&zones, free, managed)
}

/// Prints [`zoneinfo`] to the log (the `zoneinfo` option).
pub fn print() {
    for line in zoneinfo().lines() {
        log::info!("{line}");
    }
}

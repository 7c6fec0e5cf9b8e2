//! The page allocator after boot: memblock's free memory handed to the
//! buddy allocator (`memblock_free_all`), and the kernel's way to get and
//! give back pages.
//!
//! Each zone (DMA, DMA32, Normal, Movable) has its own lock (Linux's `zone->lock`)
//! over its free lists and counters ([`mm::buddy::Zone`]), and each CPU
//! keeps per zone a short list of free order-0 pages (Linux's
//! `per_cpu_pages`, [`mm::pcp`]) under a lock of its own (`pcp->lock`,
//! which since Linux 6.0 lets another CPU drain the list directly). Order-0
//! allocations and frees go through this CPU's list: refilled from the
//! zone `batch` pages at a time when empty, `batch` pages given back when
//! it reaches `high`. Larger orders go straight to the zones. `batch` is
//! Linux's `zone_batchsize` of the zone's managed pages (63 for a zone of
//! 256 MiB or more, 1 for DMA), `high` is six batches (378; Linux derives
//! it from watermarks Tessera does not keep); both follow the zone's size
//! as memory comes and goes.
//!
//! Free counts are Linux's `NR_FREE_PAGES`: pages on the per-CPU lists are
//! not in them (Linux 6.1's `rmqueue_bulk` subtracts them when it fills a
//! list and `free_pcppages_bulk` adds them back), and not in the
//! `/proc/buddyinfo` lines either. Whoever compares free counts before and
//! after an operation drains first ([`drain_all_pages`]).
//!
//! Descriptors are reached without `SPARSE`: through the lock-free section
//! table ([`SECTIONS`]) inside a read-side section held for the whole
//! operation ([`PageMap`]). A buddy-merge candidate may lie in memory being
//! hot-removed, and stays mapped until the guard goes; pages the allocator
//! owns are never in a removed range (offline takes them out of the zone
//! first).
//!
//! Lock order: `SPARSE` → this CPU's (or a drained CPU's) list → zone
//! locks in DMA, DMA32, Normal order; the heap → a zone lock. Nothing
//! here takes `SPARSE` or `MEM_HOTPLUG`, and nothing allocates from the
//! heap while holding a zone or list lock. Interrupts are off while one is
//! held, so an interrupt on this CPU never waits for its own lock.

use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use mm::buddy::{self, BuddyAllocator, BuddyError, MAX_ORDER, NR_ORDERS, PerCpuPages, Zone};
use mm::page::{MemMap, Page, Pfn, ZoneType, phys_pfn};
use mm::pcp::{pcp_high, zone_batchsize};
use mm::sparse::{NR_CPUS, PAGES_PER_SUBSECTION, RcuGuard, pfn_to_section_nr};
use spin::Mutex;
use x86_64::instructions::interrupts;

use crate::mm::lock::CpuMutex;
use crate::mm::memblock::MEMBLOCK;
use crate::mm::sections::{SECTIONS, pfn_to_page, rcu_read_lock, this_cpu};

/// Zones with a free area, in Linux's order.
pub const ZONES: [ZoneType; 4] =
    [ZoneType::Dma, ZoneType::Dma32, ZoneType::Normal, ZoneType::Movable];

/// The zones every allocation but a movable one may use (Linux's
/// `GFP_KERNEL` zonelist): ZONE_MOVABLE holds only movable pages
/// ([`alloc_pages_movable`]), so that its blocks can always be offlined.
pub const KERNEL_ZONES: [ZoneType; 3] = [ZoneType::Dma, ZoneType::Dma32, ZoneType::Normal];

/// Each zone's free lists and counters, under its `zone->lock`.
static ZONE: [CpuMutex<Zone>; 4] = [
    CpuMutex::new(Zone::new(ZoneType::Dma)),
    CpuMutex::new(Zone::new(ZoneType::Dma32)),
    CpuMutex::new(Zone::new(ZoneType::Normal)),
    CpuMutex::new(Zone::new(ZoneType::Movable)),
];

/// Each zone's per-CPU `batch` (`zone->pageset_batch`); `high` is
/// [`pcp_high`] of it. Written under the zone's lock, read without.
static BATCH: [AtomicU64; 4] = [const { AtomicU64::new(1) }; 4];

/// One CPU's lists, one per zone, on a cache line of their own.
#[repr(align(64))]
struct CpuPages([Mutex<PerCpuPages>; 4]);

static PCP: [CpuPages; NR_CPUS] = [const {
    CpuPages([
        Mutex::new(PerCpuPages::new(ZoneType::Dma)),
        Mutex::new(PerCpuPages::new(ZoneType::Dma32)),
        Mutex::new(PerCpuPages::new(ZoneType::Normal)),
        Mutex::new(PerCpuPages::new(ZoneType::Movable)),
    ])
}; NR_CPUS];

/// The page allocator has taken over from memblock (set once, by [`init`]).
static RUNNING: AtomicBool = AtomicBool::new(false);

static READY_US: AtomicU64 = AtomicU64::new(0);
static HANDOFF_US: AtomicU64 = AtomicU64::new(0);

/// The page allocator's view of the memmap: a pfn's descriptor at
/// `VMEMMAP_START + memmap_offset(pfn)`, when `pfn_valid` holds inside
/// the read-side section `guard`, which keeps it mapped.
pub struct PageMap<'g> {
    guard: &'g RcuGuard<'static>,
}

impl PageMap<'_> {
    fn valid(&self, pfn: Pfn) -> bool {
        SECTIONS.pfn_valid_in(self.guard, pfn)
    }
}

impl MemMap for PageMap<'_> {
    fn page(&self, pfn: Pfn) -> Option<&Page> {
        // SAFETY: 1. `pfn_valid` held inside `guard`, so the descriptor is
        // mapped at its vmemmap address and stays mapped while the guard
        // (which outlives `self`) lives: a remove unmaps only after a grace
        // period; 2. it is a 64-byte aligned, initialized `Page`; 3. the
        // page allocator writes only descriptors it owns under the zone or
        // list lock its caller holds; another writer of this one (a hot-add
        // initializing pages not in the allocator, another zone's lock at a
        // zone edge) writes whole aligned words, the race Linux's
        // `page_is_buddy` has too: the reader sees a page that is not a
        // free buddy of its zone and leaves it alone.
        self.valid(pfn).then(|| unsafe { &*(pfn_to_page(pfn) as *const Page) })
    }

    fn page_mut(&mut self, pfn: Pfn) -> Option<&mut Page> {
        // SAFETY: as in `page`; the allocator writes only pages it owns
        // (free in its zone, on the list it holds, or handed to it by
        // their owner), so this is the only reference written through,
        // and `&mut self` keeps it unique on this CPU.
        self.valid(pfn).then(|| unsafe { &mut *(pfn_to_page(pfn) as *mut Page) })
    }

    fn pages_mut(&mut self, pfn: Pfn, nr: u64) -> Option<&mut [Page]> {
        let last = pfn + nr.checked_sub(1)?;
        if pfn_to_section_nr(last) != pfn_to_section_nr(pfn) {
            return None;
        }
        let mut sub = pfn.align_down(PAGES_PER_SUBSECTION);
        while sub <= last {
            if !self.valid(sub) {
                return None;
            }
            sub += PAGES_PER_SUBSECTION;
        }
        // SAFETY: as in `page_mut`, for every sub-section of the range
        // (all valid, so all mapped); they lie in one section, whose
        // memmap is virtually contiguous.
        Some(unsafe { core::slice::from_raw_parts_mut(pfn_to_page(pfn) as *mut Page, nr as usize) })
    }
}

/// Runs `f` with interrupts off and the memmap reachable for all of it.
fn with_mm<R>(f: impl FnOnce(&mut PageMap<'_>) -> R) -> R {
    interrupts::without_interrupts(|| {
        let guard = rcu_read_lock();
        f(&mut PageMap { guard: &guard })
    })
}

/// Sets `zone`'s per-CPU batch from its managed pages (`zone_pcp_update`),
/// under its lock.
fn zone_pcp_update(zone: &Zone) {
    BATCH[zone.zone_type() as usize].store(zone_batchsize(zone.managed_pages()), Ordering::Relaxed);
}

/// `zone`'s per-CPU `batch` and `high`.
pub fn pcp_batch_high(zone: ZoneType) -> (u64, u64) {
    let batch = BATCH[zone as usize].load(Ordering::Relaxed);
    (batch, pcp_high(batch))
}

/// Microseconds from kernel entry until the page allocator was ready, and
/// how long the hand-over from memblock took (0, 0 before [`init`]).
pub fn ready_us() -> (u64, u64) {
    (READY_US.load(Ordering::Relaxed), HANDOFF_US.load(Ordering::Relaxed))
}

/// Hands every free memblock range below the deferred sections
/// ([`crate::mm::defer_init`]) to the page allocator; from now on the heap
/// may grow from it (and the memory model allocates from it once told,
/// `sparse::page_allocator_ready`). Prints `/proc/buddyinfo`-style lines
/// and Linux's `Memory:` line, whose figures, as Linux's, count only that
/// memory: the deferred pages follow after SMP bring-up.
pub fn init() {
    let start = crate::arch::time::uptime_us();
    let (free, total) = {
        let mb = MEMBLOCK.lock();
        (mb.free_ranges(), mb.memory.total())
    };
    let deferred = crate::mm::defer_init::first_deferred_pfn();
    let mut freed = 0;
    for r in &free {
        // Whole pages only (PFN_UP, PFN_DOWN): a page partly reserved stays out.
        let (start, end) = (phys_pfn(r.base.next_multiple_of(4096)), phys_pfn(r.end()));
        let end = deferred.map_or(end, |d| end.min(d));
        if start < end {
            freed += free_range(start, end);
        }
    }
    RUNNING.store(true, Ordering::Release);
    let now = crate::arch::time::uptime_us();
    let took = now - start;
    READY_US.store(now, Ordering::Relaxed);
    HANDOFF_US.store(took, Ordering::Relaxed);
    for zone in ZONES {
        if managed(zone) == 0 {
            continue;
        }
        let mut line = alloc::string::String::new();
        let _ = write!(line, "Node 0, zone {:>8} ", zone.name());
        for n in free_counts(zone) {
            let _ = write!(line, "{n:6} ");
        }
        log::info!("{}", line.trim_end());
    }
    for zone in KERNEL_ZONES {
        log::info!(
            "page_alloc: zone {:<6} {:>8} free pages, {:>8} managed",
            zone.name(),
            nr_free(zone),
            managed(zone)
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
/// allocator in front of its lists ([`mm::buddy::Zone::splice`]), one zone
/// lock at a time; called in pfn order. Returns the pages added.
pub fn splice_boot_pages(local: &BuddyAllocator) -> u64 {
    with_mm(|mm| {
        for zone in ZONES {
            let Some(l) = local.zone(zone).filter(|l| l.managed_pages() > 0) else { continue };
            let mut z = ZONE[zone as usize].lock();
            if let Err(e) = z.splice(mm, l) {
                panic!("page_alloc: deferred pages: {e}");
            }
            zone_pcp_update(&z);
        }
    });
    ZONES.iter().map(|&z| local.managed(z)).sum()
}

/// Whether a heap allocation now would break the lock order: the page
/// allocator runs (so the heap grows from it, under a zone lock) and this
/// CPU holds a zone lock (another CPU holding one only makes the heap
/// wait).
pub fn heap_use_under_zone_lock() -> bool {
    RUNNING.load(Ordering::Acquire) && ZONE.iter().any(CpuMutex::held_by_this_cpu)
}

/// A block of 2^`order` pages for the heap, as a virtual address in the
/// physical-memory map: from Normal, else DMA32, else DMA, taking only
/// those zones' locks, one at a time (never `SPARSE` or `MEM_HOTPLUG`, so
/// the heap can grow in the middle of a hotplug operation). `None` before
/// the page allocator runs and when this CPU holds a zone lock (the heap
/// was called from inside the allocator and must not wait for itself);
/// another CPU holding one is waited for.
pub fn alloc_for_heap(order: u32) -> Option<u64> {
    if !RUNNING.load(Ordering::Acquire) || heap_use_under_zone_lock() {
        return None;
    }
    let offset = crate::boot::mappings()?.physical_memory_offset;
    with_mm(|mm| {
        KERNEL_ZONES.iter().rev().find_map(|&z| ZONE[z as usize].lock().alloc_pages(mm, order).ok())
    })
    .map(|pfn| offset + mm::page::pfn_phys(pfn))
}

/// One page as a frame for a page table (or any kernel mapping), `None`
/// when memory is out.
pub fn alloc_frame() -> Option<x86_64::structures::paging::PhysFrame> {
    let phys = x86_64::PhysAddr::new(mm::page::pfn_phys(alloc_pages(0).ok()?));
    Some(x86_64::structures::paging::PhysFrame::containing_address(phys))
}

/// Allocates 2^`order` pages, Normal first, falling back to DMA32 and DMA
/// (`GFP_KERNEL`): never ZONE_MOVABLE.
pub fn alloc_pages(order: u32) -> Result<Pfn, BuddyError> {
    alloc_pages_zone(order, ZoneType::Normal)
}

/// A movable allocation (`GFP_HIGHUSER_MOVABLE`): ZONE_MOVABLE first, then
/// Normal, DMA32, DMA. Only pages whose owner lets them be migrated may
/// come from here ([`crate::mm::migrate`]): offline moves them out of a
/// block instead of failing.
pub fn alloc_pages_movable(order: u32) -> Result<Pfn, BuddyError> {
    alloc_pages_zone(order, ZoneType::Movable)
}

/// `rmqueue_pcplist`: an order-0 page from this CPU's list of zone `z`,
/// refilled with a batch from the zone first when empty.
fn rmqueue_pcplist(mm: &mut PageMap<'_>, z: usize) -> Result<Option<Pfn>, BuddyError> {
    let mut pcp = PCP[this_cpu()].0[z].lock();
    if pcp.count() == 0 {
        let batch = BATCH[z].load(Ordering::Relaxed);
        ZONE[z].lock().rmqueue_bulk(mm, batch, &mut pcp)?;
    }
    pcp.alloc(mm)
}

/// Allocates 2^`order` pages from `highest` or a lower zone (Linux's
/// zonelist order); order 0 through this CPU's lists. ZONE_MOVABLE only
/// when `highest` is Movable ([`alloc_pages_movable`]).
pub fn alloc_pages_zone(order: u32, highest: ZoneType) -> Result<Pfn, BuddyError> {
    if order > MAX_ORDER {
        return Err(BuddyError::BadOrder { order });
    }
    let nr_zones = if highest == ZoneType::Device { 0 } else { highest as usize + 1 };
    with_mm(|mm| {
        for z in (0..nr_zones).rev() {
            let got = if order == 0 {
                rmqueue_pcplist(mm, z)?
            } else {
                match ZONE[z].lock().alloc_pages(mm, order) {
                    Err(BuddyError::NoMemory { .. }) => None,
                    r => Some(r?),
                }
            };
            if let Some(pfn) = got {
                return Ok(pfn);
            }
        }
        Err(BuddyError::NoMemory { order, zone: highest })
    })
}

/// Frees 2^`order` pages from [`alloc_pages`]; order 0 onto this CPU's
/// list (a batch goes back to the zone when it reaches `high`).
pub fn free_pages(pfn: Pfn, order: u32) -> Result<(), BuddyError> {
    with_mm(|mm| {
        let z = buddy::check_free(mm, pfn, order)? as usize;
        if order > 0 {
            return ZONE[z].lock().free_pages(mm, pfn, order);
        }
        let mut pcp = PCP[this_cpu()].0[z].lock();
        let count = pcp.free(mm, pfn)?;
        let batch = BATCH[z].load(Ordering::Relaxed);
        if count >= pcp_high(batch) {
            ZONE[z].lock().free_pcppages_bulk(mm, batch, &mut pcp)?;
        }
        Ok(())
    })
}

/// `drain_pages_zone`: every page on `cpu`'s list of zone `z` back to
/// the zone.
fn drain_pages_zone(mm: &mut PageMap<'_>, cpu: usize, z: usize) {
    let mut pcp = PCP[cpu].0[z].lock();
    if pcp.count() > 0
        && let Err(e) = ZONE[z].lock().free_pcppages_bulk(mm, u64::MAX, &mut pcp)
    {
        log::error!("page_alloc: draining CPU {cpu}'s {} list: {e}", ZONES[z].name());
    }
}

/// `drain_all_pages`: every CPU's per-CPU list of `zone` (of every zone
/// for `None`) back to the free lists. As Linux 6.1 does, the lists of
/// other CPUs are drained from here under their list locks, without
/// interrupting those CPUs. A page freed meanwhile on another CPU may
/// land on a list again: callers that need a range free retry
/// ([`take_free_range`]).
pub fn drain_all_pages(zone: Option<ZoneType>) {
    let zones = ZONES.iter().filter(|&&z| zone.is_none_or(|w| w == z));
    let zones: alloc::vec::Vec<usize> = zones.map(|&z| z as usize).collect();
    with_mm(|mm| {
        for cpu in 0..NR_CPUS {
            for &z in &zones {
                drain_pages_zone(mm, cpu, z);
            }
        }
    });
}

/// Hands `[start, end)` to the page allocator ([`buddy::free_range`]),
/// with every zone's lock held (in zone order). Returns the pages taken.
pub fn free_range(start: Pfn, end: Pfn) -> u64 {
    with_mm(|mm| {
        let mut guards = ZONE.each_ref().map(CpuMutex::lock);
        let mut zones = guards.each_mut().map(|g| &mut **g);
        let n = buddy::free_range(&mut zones, mm, start, end);
        zones.iter().for_each(|z| zone_pcp_update(z));
        n
    })
}

/// Takes `[start, end)` back from the page allocator, as `offline_pages`
/// does ([`Zone::take_free_range`] in the zone of `start`'s page): first
/// every CPU's list of that zone is drained, so that no free page of the
/// range hides on one; if a page still is not free (another CPU freed one
/// onto its list meanwhile), drained again and retried, twice at most.
pub fn take_free_range(start: Pfn, end: Pfn) -> Result<u64, BuddyError> {
    let zone = with_mm(|mm| mm.page(start).map(Page::zone));
    let Some(z) = zone.filter(|z| ZONES.contains(z)).map(|z| z as usize) else {
        return Err(BuddyError::Busy { pfn: start });
    };
    let mut attempt = 0;
    loop {
        drain_all_pages(Some(ZONES[z]));
        let r = with_mm(|mm| {
            let mut zone = ZONE[z].lock();
            let r = zone.take_free_range(mm, start, end);
            zone_pcp_update(&zone);
            r
        });
        match r {
            Err(BuddyError::Busy { .. }) if attempt < 2 => attempt += 1,
            r => return r,
        }
    }
}

/// Free pages in `zone` (`NR_FREE_PAGES`: not those on per-CPU lists).
pub fn nr_free(zone: ZoneType) -> u64 {
    with_zone(zone, Zone::nr_free_pages).unwrap_or(0)
}

/// Free blocks per order in `zone`.
pub fn free_counts(zone: ZoneType) -> [u64; NR_ORDERS] {
    with_zone(zone, Zone::free_counts).unwrap_or([0; NR_ORDERS])
}

/// Pages of `zone` handed to the allocator.
pub fn managed(zone: ZoneType) -> u64 {
    with_zone(zone, Zone::managed_pages).unwrap_or(0)
}

/// `has_unmovable_pages` for offline: the first page of `[start, end)`
/// (all in the zone of `start`'s page) that is in use and not one `movable`
/// says can be migrated; `None` when every page is free or movable. Every
/// CPU's list of the zone is drained first, so a free page on one is seen
/// free; the walk runs under the zone's lock, skipping free blocks whole.
/// A page allocated or freed after it returns is offline's retry's
/// business.
pub fn first_unmovable(start: Pfn, end: Pfn, movable: impl Fn(Pfn) -> bool) -> Option<Pfn> {
    let zone = with_mm(|mm| mm.page(start).map(Page::zone))?;
    let Some(z) = ZONES.iter().position(|&t| t == zone) else { return Some(start) };
    drain_all_pages(Some(zone));
    with_mm(|mm| {
        let _zone = ZONE[z].lock();
        let mut pfn = start;
        while pfn < end {
            if let Some((head, order)) = buddy::free_block_of(mm, pfn) {
                pfn = head + (1 << order);
            } else if movable(pfn) {
                pfn += 1;
            } else {
                return Some(pfn);
            }
        }
        None
    })
}

/// `f` of `zone`'s state, under its lock (`None` for ZONE_DEVICE).
pub fn with_zone<R>(zone: ZoneType, f: impl FnOnce(&Zone) -> R) -> Option<R> {
    let z = ZONE.get(zone as usize)?;
    Some(interrupts::without_interrupts(|| f(&z.lock())))
}

/// Pages on `cpu`'s list of `zone`.
pub fn pcp_count(cpu: usize, zone: ZoneType) -> u64 {
    let Some(l) = PCP.get(cpu).and_then(|c| c.0.get(zone as usize)) else { return 0 };
    interrupts::without_interrupts(|| l.lock().count())
}

/// Pages on every CPU's list of `zone`.
pub fn nr_pcp_pages(zone: ZoneType) -> u64 {
    (0..NR_CPUS).map(|cpu| pcp_count(cpu, zone)).sum()
}

/// Checks every zone's free lists ([`Zone::check`]) and every per-CPU
/// list ([`PerCpuPages::check`]), each under its lock.
pub fn check() -> Result<(), BuddyError> {
    with_mm(|mm| {
        for z in &ZONE {
            z.lock().check(mm)?;
        }
        for cpu in &PCP {
            for l in &cpu.0 {
                l.lock().check(mm)?;
            }
        }
        Ok(())
    })
}

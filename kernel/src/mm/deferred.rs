//! Deferred struct-page init on every CPU (Linux's `deferred_init_memmap`
//! with padata): sparse init leaves the descriptors of the sections from
//! `first_deferred_pfn` up uninitialised ([`mm::deferred`] says where and
//! why), the page allocator starts with the memory below, and after SMP
//! bring-up [`page_alloc_init_late`] initialises the rest and hands its
//! free memory over, the sections shared out among the online CPUs. The
//! result is the same whatever the number of CPUs (see
//! [`mm::buddy::BuddyAllocator::splice`]).
//!
//! Until then the deferred descriptors hold whatever the memory held
//! (`pfn_valid` is true for them, as in Linux): nothing may read them
//! before [`page_alloc_init_late`], and boot runs nothing that would (they
//! are in no free list, and hotplug starts later).

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use mm::buddy::BuddyAllocator;
use mm::page::{Page, Pfn, phys_pfn};
use mm::sparse::{PAGES_PER_SECTION, SparseBackend, pfn_to_section_nr, section_nr_to_pfn};
use spin::{Mutex, Once};

use crate::arch::parallel::{self, Chunks, Worker};
use crate::arch::{percpu, time};
use crate::mm::memblock::MEMBLOCK;
use crate::mm::page_alloc;
use crate::mm::sparse::SPARSE;

pub use crate::mm::defer_init::first_deferred_pfn;

/// What one run of deferred init did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deferred {
    /// Sections initialised.
    pub sections: u64,
    /// Pages handed to the page allocator.
    pub freed: u64,
    /// Workers asked (the caller included).
    pub workers: u32,
    /// CPUs that did at least one section.
    pub worked: u64,
    /// Microseconds it took.
    pub us: u64,
}

/// The boot's deferred init, with when the memory model's set-up began
/// and when all RAM was in the page allocator (µs since entry).
#[derive(Debug, Clone, Copy)]
pub struct Report {
    pub deferred: Deferred,
    pub mm_start_us: u64,
    pub mm_done_us: u64,
}

static REPORT: Once<Report> = Once::new();

/// What boot's deferred init did, once it ran.
pub fn report() -> Option<&'static Report> {
    REPORT.get()
}

/// Linux's `page_alloc_init_late` for node 0: the deferred sections on
/// every online CPU, then `node 0 deferred pages initialised in Nms`.
/// Once, after SMP bring-up; with one CPU (or `nosmp`) it runs on that one.
pub fn page_alloc_init_late() -> &'static Report {
    REPORT.call_once(|| {
        let mut d = Deferred::default();
        if let Some(first) = first_deferred_pfn() {
            let sections: Vec<u64> = {
                let s = SPARSE.lock();
                let from = pfn_to_section_nr(first);
                s.present_sections().map(|(nr, _)| nr).filter(|&nr| nr >= from).collect()
            };
            let free = free_pfn_ranges(first);
            d = deferred_init_sections(&sections, &free, percpu::online_mask());
            log::info!("node 0 deferred pages initialised in {}ms", d.us / 1000);
            log::info!(
                "page_alloc: deferred: {} sections from pfn {:#x} by {} of {} CPU{}, {}K more available",
                d.sections,
                first,
                d.worked.count_ones(),
                d.workers,
                if d.workers == 1 { "" } else { "s" },
                d.freed * 4
            );
        }
        Report {
            deferred: d,
            mm_start_us: crate::mm::defer_init::mm_start_us(),
            mm_done_us: time::uptime_us(),
        }
    })
}

/// memblock's free memory from `first` up, as whole pages (PFN_UP,
/// PFN_DOWN), ascending.
fn free_pfn_ranges(first: Pfn) -> Vec<(Pfn, Pfn)> {
    let free = MEMBLOCK.lock().free_ranges();
    free.iter()
        .map(|r| (phys_pfn(r.base.next_multiple_of(4096)).max(first), phys_pfn(r.end())))
        .filter(|(s, e)| s < e)
        .collect()
}

/// `deferred_init_memmap` over `sections` (present early sections with
/// a whole boot memmap, ascending, whose pages nothing uses: never
/// initialised, or taken back from the page allocator): every descriptor
/// initialised and the parts of `free` (ascending pfn ranges) in them
/// handed to the page allocator, sections taken one at a time by the
/// workers on `cpus` (and this CPU), then spliced in pfn order.
pub fn deferred_init_sections(sections: &[u64], free: &[(Pfn, Pfn)], cpus: u64) -> Deferred {
    let start = time::uptime_us();
    // Each section's descriptors, found under the lock; workers write them
    // without it (see the SAFETY below).
    let memmaps: Vec<Option<usize>> = {
        let mut s = SPARSE.lock();
        sections
            .iter()
            .map(|&nr| {
                let pfn = section_nr_to_pfn(nr);
                let early = s.section(nr).is_some_and(|ms| ms.early() && ms.valid());
                let pages = s.backend.memmap_mut(pfn, PAGES_PER_SECTION);
                pages.filter(|_| early).map(|p| p.as_mut_ptr().addr())
            })
            .collect()
    };
    let locals: Vec<Mutex<Option<BuddyAllocator>>> =
        sections.iter().map(|_| Mutex::new(None)).collect();
    let chunks = Chunks::new(sections.len() as u64, 1);
    let worked = AtomicU64::new(0);
    let workers = AtomicU64::new(1);
    let job = |w: Worker| {
        workers.fetch_max(w.count as u64, Ordering::Relaxed);
        while let Some((i, _)) = chunks.next() {
            let i = i as usize;
            let Some(addr) = memmaps[i] else { continue };
            // SAFETY: 1. `addr` is the start of section `sections[i]`'s
            // whole memmap, mapped at boot (memmap_mut found all of it
            // populated) and never unmapped while the section is early,
            // which hotplug alone changes and it does not run here;
            // 2. `Chunks` hands index `i` to this worker alone, so no other
            // reference to these descriptors exists; 3. nothing else reads
            // them meanwhile (module doc); any bytes are a valid `Page`.
            let pages = unsafe {
                core::slice::from_raw_parts_mut(addr as *mut Page, PAGES_PER_SECTION as usize)
            };
            let pfn = section_nr_to_pfn(sections[i]);
            *locals[i].lock() = Some(mm::deferred::deferred_init_section(pages, pfn, free, 0));
            worked.fetch_or(1 << w.cpu, Ordering::Relaxed);
        }
    };
    if let Err(e) = parallel::parallel(cpus, &job) {
        log::warn!("{e}");
    }
    let mut d = Deferred {
        workers: workers.load(Ordering::Relaxed) as u32,
        worked: worked.load(Ordering::Relaxed),
        ..Deferred::default()
    };
    for (local, &nr) in locals.iter().zip(sections) {
        match local.lock().take() {
            Some(l) => {
                d.freed += page_alloc::splice_boot_pages(&l);
                d.sections += 1;
            }
            None => log::error!("page_alloc: deferred: section {nr} has no boot memmap; left out"),
        }
    }
    d.us = time::uptime_us() - start;
    d
}

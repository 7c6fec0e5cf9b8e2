//! Fault injection: the harness boots this binary with `fail_sparse=N`
//! (one allocation of boot-time sparse init fails) and it checks the model
//! the kernel built anyway; then every allocation of a PMEM hot-add is made
//! to fail in turn, and each failure must leave exactly the state before
//! (sections, usages, free pages, and the reused boot memmap of early
//! sections). An add makes exactly the allocations its layout implies:
//! none for sub-sections of an early section, a usage, memmap pages and a
//! page table for a section of its own (`early-and-own`: one region of
//! both, so failures in the second section undo the first's sub-sections).
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

extern crate alloc;

use alloc::vec::Vec;

use kernel::boot;
use kernel::drivers::pmem::{self, Region, State};
use kernel::mm::memblock::MEMBLOCK;
use kernel::mm::page_alloc::ZONES;
use kernel::mm::sparse::{self, SPARSE};
use kernel::testing::{model_snapshot, quiet};
use mm::page::{MemMap, Page, phys_pfn};
use mm::sparse::{PAGES_PER_SECTION, PAGES_PER_SUBSECTION, pfn_to_section_nr, section_nr_to_pfn};

kernel::test_binary_entry!();

/// Sections touched by memblock's RAM.
fn ram_sections() -> Vec<u64> {
    let mut nrs: Vec<u64> = MEMBLOCK
        .lock()
        .memory
        .regions()
        .iter()
        .flat_map(|r| {
            pfn_to_section_nr(phys_pfn(r.base))..=pfn_to_section_nr(phys_pfn(r.end() - 1))
        })
        .collect();
    nrs.dedup();
    nrs
}

#[test_case]
fn a_failed_boot_allocation_leaves_out_only_what_it_was_for() {
    let n = boot::options().fail_sparse.expect("the harness boots this with fail_sparse=N");
    // The allocations boot makes first, in order (the harness's machines
    // name them): section 0's root, the boot usage chunk, the first 2 MiB
    // memmap block, the first vmemmap page table. A larger N lies past
    // boot's allocations and is used by the hot-add tests below.
    let want = match n {
        1 | 4 => Some((n, "a page")),
        2 => Some((n, "the boot usage maps")),
        3 => Some((n, "a 2 MiB block")),
        _ => None,
    };
    assert_eq!(sparse::boot_injection(), want, "fail_sparse={n}");
    let s = SPARSE.lock();
    let st = s.stats();
    let (mut lost, mut whole) = (Vec::new(), 0u64);
    for nr in ram_sections() {
        let ms = s.section_or_empty(nr);
        let pfn = section_nr_to_pfn(nr);
        if ms.raw() == 0 {
            // Left out: nothing of it is valid or handed out.
            for p in [pfn, pfn + PAGES_PER_SECTION / 2, pfn + PAGES_PER_SECTION - 1] {
                assert!(!s.pfn_valid(p) && s.pfn_to_online_page(p).is_none(), "pfn {p:#x}");
            }
            lost.push(nr);
        } else {
            assert!(ms.present() && ms.valid() && ms.early() && ms.online(), "section {nr}");
            assert!(s.has_usage(nr), "section {nr} has its usage");
            assert!(
                s.backend.page(pfn).is_some()
                    && s.backend.page(pfn + PAGES_PER_SECTION - 1).is_some()
            );
            whole += 1;
        }
    }
    assert_eq!(lost.len() as u64, st.lost_sections, "lost {lost:?}");
    // Left-out sections have no memmap (hot-added PMEM may add more).
    assert!(st.memmap_bytes >= whole * (PAGES_PER_SECTION * 64), "memmap of whole sections");
    assert!(kernel::mm::page_alloc::check().is_ok());
    // Every free page of memblock outside the lost sections was handed over.
    let handed: u64 = ZONES.iter().map(|&z| kernel::mm::page_alloc::managed(z)).sum();
    let expected: u64 = MEMBLOCK
        .lock()
        .free_ranges()
        .iter()
        .flat_map(|r| phys_pfn(r.base.next_multiple_of(4096))..phys_pfn(r.end()))
        .filter(|&p| !lost.contains(&pfn_to_section_nr(p)))
        .count() as u64;
    assert!(handed <= expected && expected - handed < 64, "managed {handed}, expected {expected}");
}

/// Bytes of memmap per sub-section, in 4 KiB pages.
const SUB_MEMMAP_PAGES: u64 = PAGES_PER_SUBSECTION * 64 / 4096;

/// How many allocations the memory model makes to add `r` (removed, after
/// an add/remove cycle left the upper vmemmap page tables in place): none
/// in an early section, whose boot memmap and usage are reused; in a
/// section of its own a usage and, unless the memmap is on the device
/// (altmap, 2 MiB pages), 8 memmap pages per sub-section and the page
/// table that maps them.
fn expected_allocations(r: &Region) -> u64 {
    let (start, end) = r.mapped();
    let (first, end) = (phys_pfn(start), phys_pfn(end));
    let s = SPARSE.lock();
    let mut n = 0;
    for nr in pfn_to_section_nr(first)..=pfn_to_section_nr(end - 1) {
        let ms = s.section_or_empty(nr);
        if ms.early() {
            continue;
        }
        assert!(ms.raw() == 0 && !s.has_usage(nr), "{r}: section {nr} used by another");
        let subs = (end.min(section_nr_to_pfn(nr + 1)) - first.max(section_nr_to_pfn(nr)))
            / PAGES_PER_SUBSECTION;
        n += 1;
        if !r.has_altmap() {
            n += subs * SUB_MEMMAP_PAGES + 1;
        }
    }
    n
}

/// The descriptors (first and last of each sub-section) of `r`'s pfns in
/// early sections: the boot memmap there is reused, so an add writes into
/// it and its undo must put back what was there.
fn early_descriptors(r: &Region) -> Vec<Option<Page>> {
    let (start, end) = r.mapped();
    let s = SPARSE.lock();
    (phys_pfn(start)..phys_pfn(end))
        .step_by(PAGES_PER_SUBSECTION as usize)
        .filter(|&p| s.section_or_empty(pfn_to_section_nr(p)).early())
        .flat_map(|p| [p, p + PAGES_PER_SUBSECTION - 1])
        .map(|p| s.backend.page(p).copied())
        .collect()
}

#[test_case]
fn every_failed_hot_add_allocation_leaves_exactly_the_state_before() {
    if SPARSE.lock().stats().usage_failed {
        // No RAM at all: the boot add failed and nothing can be added.
        for r in pmem::regions() {
            assert_eq!(r.state, State::Offline, "{r}");
            assert!(pmem::add(r.id, &mut quiet).is_err());
        }
        return;
    }
    let regions = pmem::regions();
    assert!(!regions.is_empty());
    for r in regions {
        assert_eq!(r.state, State::Added, "{r}");
        // One clean cycle first: page tables and heap made by an add stay.
        pmem::remove(r.id, &mut quiet).unwrap();
        pmem::add(r.id, &mut quiet).unwrap();
        let added = (model_snapshot(), early_descriptors(&r));
        pmem::remove(r.id, &mut quiet).unwrap();
        let before = (model_snapshot(), early_descriptors(&r));
        let expected = expected_allocations(&r);
        // Allocation n fails, for n up to the expected count (the first and
        // last 64 and every 7th in between, which meets every place of a
        // sub-section's 8 memmap pages), then n = expected + 1 must find no
        // allocation to fail: the add makes exactly `expected` of them (in
        // an early section none at all: an add there cannot run out of
        // memory).
        let mut failures = 0;
        for n in (1..=expected + 1).filter(|&n| n <= 64 || n + 64 > expected || n % 7 == 0) {
            sparse::fail_nth_allocation(n);
            let result = pmem::add(r.id, &mut quiet);
            if sparse::injection_pending() {
                sparse::fail_nth_allocation(0);
                result.unwrap_or_else(|e| panic!("{r}: {e} with no failure injected"));
                assert_eq!(n, expected + 1, "{r}: fewer than {n} allocations, {expected} expected");
                break;
            }
            assert!(n <= expected, "{r}: the add made more than {expected} allocations");
            let e = result.expect_err("an allocation failed, so must the add");
            assert_eq!(e.errno(), "ENOMEM", "{r}: allocation {n}: {e}");
            let after = (model_snapshot(), early_descriptors(&r));
            assert!(after == before, "{r}: allocation {n} failed: state changed");
            assert_eq!(pmem::regions()[r.id].state, State::Offline);
            failures += 1;
        }
        kernel::println!(
            "faults: {}: {failures} of its {expected} allocations made to fail ({} pages in early sections), each undone",
            r.name(),
            before.1.len() / 2 * PAGES_PER_SUBSECTION as usize
        );
        assert!((model_snapshot(), early_descriptors(&r)) == added, "{r}: not as a clean add");
        assert_eq!(pmem::regions()[r.id].state, State::Added);
    }
}

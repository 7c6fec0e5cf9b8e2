//! Fault injection: the harness boots this binary with `fail_sparse=N`
//! (one allocation of boot-time sparse init fails) and it checks the model
//! the kernel built anyway; then every allocation of a PMEM hot-add is made
//! to fail in turn, and each failure must leave exactly the state before.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

extern crate alloc;

use alloc::vec::Vec;

use kernel::init;
use kernel::mm::memblock::MEMBLOCK;
use kernel::mm::page_alloc::ZONES;
use kernel::mm::pmem::{self, State};
use kernel::mm::sparse::{self, SPARSE};
use kernel::testing::{model_snapshot, quiet};
use mm::page::{MemMap, phys_pfn};
use mm::sparse::{PAGES_PER_SECTION, pfn_to_section_nr, section_nr_to_pfn};

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
    assert!(init::options().fail_sparse.is_some(), "the harness boots this with fail_sparse=N");
    assert!(!sparse::injection_pending(), "the injected failure happened during boot");
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
            assert!(ms.usage().is_some(), "section {nr} has its usage");
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
    assert!(s.backend.buddy.check(&s.backend.vmemmap).is_ok());
    // Every free page of memblock outside the lost sections was handed over.
    let handed: u64 = ZONES.iter().map(|&z| s.backend.buddy.managed(z)).sum();
    let expected: u64 = MEMBLOCK
        .lock()
        .free_ranges()
        .iter()
        .flat_map(|r| phys_pfn(r.base.next_multiple_of(4096))..phys_pfn(r.end()))
        .filter(|&p| !lost.contains(&pfn_to_section_nr(p)))
        .count() as u64;
    assert!(handed <= expected && expected - handed < 64, "managed {handed}, expected {expected}");
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
        pmem::remove(r.id, &mut quiet).unwrap();
        let before = model_snapshot();
        let mut failures = 0;
        for n in 1.. {
            sparse::fail_nth_allocation(n);
            let result = pmem::add(r.id, &mut quiet);
            if sparse::injection_pending() {
                // The add made fewer than n allocations: it must succeed.
                sparse::fail_nth_allocation(0);
                result.unwrap_or_else(|e| panic!("{r}: {e} with no failure injected"));
                break;
            }
            let e = result.expect_err("an allocation failed, so must the add");
            assert_eq!(e.errno(), "ENOMEM", "{r}: allocation {n}: {e}");
            assert_eq!(model_snapshot(), before, "{r}: allocation {n} failed: state changed");
            assert_eq!(pmem::regions()[r.id].state, State::Offline);
            failures += 1;
        }
        // Sub-sections of an early section reuse its memmap and usage: such
        // an add allocates nothing. A region in sections of its own must.
        let early = SPARSE.lock().section_or_empty(pfn_to_section_nr(phys_pfn(r.start))).early();
        assert!(early || failures > 0, "{r}: the add made no allocation at all");
        kernel::println!("faults: {}: {failures} allocation failures, each undone", r.name());
        assert_eq!(pmem::regions()[r.id].state, State::Added);
    }
}

//! Stress: 10,000 random sub-section hot-adds and removes over the PMEM
//! range, mixed with page allocations and frees from the neighbouring RAM,
//! each checked against a model kept here. At the end the free pages, the
//! section table and the usage maps equal the starting ones, and the data
//! written into the persistent range before the stress is intact.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

extern crate alloc;

use alloc::vec::Vec;

use kernel::init;
use kernel::mm::page_alloc;
use kernel::mm::pmem;
use kernel::mm::sparse::SPARSE;
use kernel::println;
use kernel::testing::{Rng, model_snapshot, quiet};
use mm::page::{Pfn, phys_pfn};
use mm::sparse::{PAGES_PER_SUBSECTION, pfn_to_section_nr, subsection_map_index};

kernel::test_binary_entry!();

const OPS: u64 = 10_000;

/// A pattern word for physical address `a`.
fn pattern(a: u64) -> u64 {
    a.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5445_5353_4552_4121
}

#[test_case]
fn ten_thousand_random_sub_section_operations_lose_nothing() {
    let r = pmem::regions().into_iter().next().expect("a PMEM region");
    assert!(!r.has_altmap(), "sub-section stress needs a region without altmap");
    let offset = init::mappings().unwrap().physical_memory_offset;
    // Persistent data, written through the physical-memory map.
    let words = r.size / 8;
    for i in 0..words {
        let a = r.start + i * 8;
        // SAFETY: the region is RAM the firmware map keeps out of the page
        // allocator; this test owns it; it is mapped at `offset`.
        unsafe { ((offset + a) as *mut u64).write_volatile(pattern(a)) };
    }
    pmem::remove(r.id, &mut quiet).unwrap();
    let before = model_snapshot();
    let first: Pfn = phys_pfn(r.start);
    let subs = r.size / (2 << 20);
    let nr = pfn_to_section_nr(first);
    let section_map = || SPARSE.lock().section_or_empty(nr).subsection_map();
    let ram_bits = section_map();
    let bit = |i: u64| 1u64 << subsection_map_index(first + i * PAGES_PER_SUBSECTION);
    let (mut active, mut held): (u64, Vec<(Pfn, u32)>) = (0, Vec::new());
    let mut rng = Rng(0x7e55_e7a5_7e55_0001);
    let (mut adds, mut removes, mut refused, mut allocs) = (0, 0, 0, 0);
    for step in 0..OPS {
        let i = rng.below(subs);
        let pfn = first + i * PAGES_PER_SUBSECTION;
        match rng.below(4) {
            0 | 1 => {
                let res = SPARSE.lock().add_pages(
                    0,
                    pfn,
                    PAGES_PER_SUBSECTION,
                    PAGES_PER_SUBSECTION,
                    None,
                );
                if active & (1 << i) != 0 {
                    assert_eq!(res.unwrap_err().errno(), "EEXIST", "step {step}: add twice");
                    refused += 1;
                } else {
                    res.unwrap_or_else(|e| panic!("step {step}: add {pfn:#x}: {e}"));
                    active |= 1 << i;
                    adds += 1;
                }
            }
            2 => {
                let res = SPARSE.lock().remove_pages(pfn, PAGES_PER_SUBSECTION, None);
                if active & (1 << i) == 0 {
                    assert!(res.is_err(), "step {step}: removing an absent sub-section");
                    refused += 1;
                } else {
                    res.unwrap_or_else(|e| panic!("step {step}: remove {pfn:#x}: {e}"));
                    active &= !(1 << i);
                    removes += 1;
                }
            }
            _ if held.len() < 64 && rng.below(2) == 0 => {
                let order = rng.below(5) as u32;
                if let Ok(p) = page_alloc::alloc_pages(order) {
                    let end = p + (1 << order);
                    assert!(
                        end <= first || first + subs * PAGES_PER_SUBSECTION <= p,
                        "step {step}: allocation {p:#x} inside PMEM"
                    );
                    held.push((p, order));
                    allocs += 1;
                }
            }
            _ => {
                if !held.is_empty() {
                    let (p, order) = held.swap_remove(rng.below(held.len() as u64) as usize);
                    page_alloc::free_pages(p, order).unwrap();
                }
            }
        }
        // The model: RAM bits plus the active sub-sections, each valid
        // exactly when active.
        let want = (0..subs).filter(|&i| active & (1 << i) != 0).fold(ram_bits, |m, i| m | bit(i));
        assert_eq!(section_map(), want, "step {step}");
        let s = SPARSE.lock();
        // An early section's pfns are all valid, as on Linux.
        let early = s.section_or_empty(nr).early();
        for j in 0..subs {
            let p = first + j * PAGES_PER_SUBSECTION;
            let present = active & (1 << j) != 0 || ram_bits & bit(j) != 0;
            let ms = s.section_or_empty(nr);
            assert_eq!(ms.pfn_section_valid(p), present, "step {step}: pfn {p:#x}");
            assert_eq!(s.pfn_valid(p), early || present, "step {step}: pfn {p:#x}");
        }
        if step % 1000 == 999 {
            assert!(s.backend.buddy.check(&s.backend.vmemmap).is_ok(), "step {step}: free lists");
        }
    }
    for (p, order) in held.drain(..) {
        page_alloc::free_pages(p, order).unwrap();
    }
    for i in (0..subs).filter(|&i| active & (1 << i) != 0) {
        let pfn = first + i * PAGES_PER_SUBSECTION;
        SPARSE.lock().remove_pages(pfn, PAGES_PER_SUBSECTION, None).unwrap();
    }
    println!(
        "stress: {OPS} operations: {adds} adds, {removes} removes, {refused} refused, {allocs} allocations"
    );
    assert!(adds > 1000 && removes > 1000 && refused > 100 && allocs > 500);
    assert!(model_snapshot() == before, "the model after the stress differs from before it");
    pmem::add(r.id, &mut quiet).unwrap();
    for i in 0..words {
        let a = r.start + i * 8;
        // SAFETY: as above; the region is added again and still ours.
        let v = unsafe { ((offset + a) as *const u64).read_volatile() };
        assert_eq!(v, pattern(a), "persistent word at {a:#x}");
    }
}

//! Stress: 10,000 random sub-section hot-adds and removes over the PMEM
//! ranges, mixed with page allocations and frees from the neighbouring RAM,
//! each checked against a model kept here. The harness boots this binary
//! with `memmap=64M!0x3e000000 mem=1G`: the first 32 MiB are sub-sections
//! of an early (boot) section next to RAM, whose memmap is reused; the
//! other 32 MiB lie above `mem=`, in a section of their own, so that each
//! add there populates the vmemmap (4 KiB pages from the page allocator)
//! and each remove depopulates it. After every step the sub-section maps,
//! `pfn_valid`, the vmemmap's page tables, the free pages, the page-table
//! pages and the memmap/usage bytes equal what the model implies; at the
//! end everything equals the start, and the data written into the
//! persistent ranges before the stress is intact.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

extern crate alloc;

use alloc::vec::Vec;

use kernel::arch::paging::{self, MapSize};
use kernel::boot::{self, layout::VMEMMAP_START};
use kernel::drivers::pmem;
use kernel::mm::page_alloc::{self, ZONES};
use kernel::mm::sparse::SPARSE;
use kernel::println;
use kernel::testing::{model_snapshot, quiet};
use mm::page::{MemMap, PAGE_SIZE, Pfn, STRUCT_PAGE_SIZE, memmap_offset, phys_pfn};
use mm::sparse::{PAGES_PER_SUBSECTION, USAGE_SIZE, pfn_to_section_nr, subsection_map_index};
use rng::Rng;

kernel::test_binary_entry!();

const OPS: u64 = 10_000;
/// Bytes of memmap (4 KiB pages of it) per sub-section.
const SUB_MEMMAP: u64 = PAGES_PER_SUBSECTION * STRUCT_PAGE_SIZE;
const SUB_MEMMAP_PAGES: u64 = SUB_MEMMAP / PAGE_SIZE;

/// A pattern word for physical address `a`.
fn pattern(a: u64) -> u64 {
    a.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5445_5353_4552_4121
}

/// One section the stressed sub-sections lie in, as it was before.
struct Section {
    nr: u64,
    early: bool,
    /// Its sub-section map without the stressed sub-sections (RAM).
    ram_bits: u64,
    /// Its word (an early section's never changes).
    raw: u64,
}

/// One stressed sub-section: its first pfn and its section's index in
/// the list of sections.
#[derive(Clone, Copy)]
struct Sub {
    pfn: Pfn,
    sec: usize,
}

/// Where each 4 KiB page of `pfn`'s sub-section memmap is mapped.
fn memmap_mapping(pfn: Pfn) -> [Option<(u64, MapSize)>; SUB_MEMMAP_PAGES as usize] {
    let virt = VMEMMAP_START + memmap_offset(pfn);
    core::array::from_fn(|k| {
        let at = x86_64::VirtAddr::new(virt + k as u64 * PAGE_SIZE);
        paging::mapping(at).map(|(p, size)| (p.as_u64(), size))
    })
}

/// Pages nobody uses: free in a zone or waiting on a per-CPU list.
fn free_pages() -> u64 {
    ZONES.iter().map(|&z| page_alloc::nr_free(z) + page_alloc::nr_pcp_pages(z)).sum()
}

#[test_case]
fn ten_thousand_random_sub_section_operations_lose_nothing() {
    let regions = pmem::regions();
    assert!(!regions.is_empty(), "the harness boots this with memmap=!");
    let offset = boot::mappings().unwrap().physical_memory_offset;
    // Persistent data, written through the physical-memory map.
    for r in &regions {
        assert!(!r.has_altmap(), "sub-section stress needs regions without altmap");
        for a in (r.start..r.end()).step_by(8) {
            // SAFETY: the region is added (mapped in the physical-memory map
            // at `offset` by the driver), kept out of the page allocator by
            // the firmware map, and owned by this test.
            unsafe { ((offset + a) as *mut u64).write_volatile(pattern(a)) };
        }
        pmem::remove(r.id, &mut quiet).unwrap();
    }
    // The stressed sub-sections and their sections.
    let (mut subs, mut secs): (Vec<Sub>, Vec<Section>) = (Vec::new(), Vec::new());
    for r in &regions {
        for pfn in (phys_pfn(r.start)..phys_pfn(r.end())).step_by(PAGES_PER_SUBSECTION as usize) {
            let nr = pfn_to_section_nr(pfn);
            let sec = match secs.iter().position(|s| s.nr == nr) {
                Some(i) => i,
                None => {
                    let s = SPARSE.lock();
                    let ms = s.section_or_empty(nr);
                    let (early, ram_bits, raw) = (ms.early(), s.subsection_map(nr), ms.raw());
                    secs.push(Section { nr, early, ram_bits, raw });
                    secs.len() - 1
                }
            };
            subs.push(Sub { pfn, sec });
        }
    }
    let n = subs.len() as u64;
    assert!(n <= 64, "one bit per sub-section");
    // The machine gives both kinds; a non-early section here has no RAM,
    // so it is absent once its sub-sections are removed.
    assert!(secs.iter().any(|s| s.early) && secs.iter().any(|s| !s.early), "early and not");
    for s in secs.iter().filter(|s| !s.early) {
        assert_eq!((s.raw, s.ram_bits), (0, 0), "section {}: absent without PMEM", s.nr);
    }
    let bit = |p: Pfn| 1u64 << subsection_map_index(p);
    let early_maps: Vec<_> =
        subs.iter().map(|u| secs[u.sec].early.then(|| memmap_mapping(u.pfn))).collect();
    // Checks the page tables of sub-section `i`'s memmap: an early
    // section's stays as it was; a populated sub-section's is 4 KiB pages;
    // an absent one is not mapped at all.
    let check_vmemmap = |i: usize, present: bool, step: u64| {
        let now = memmap_mapping(subs[i].pfn);
        match &early_maps[i] {
            Some(was) => assert!(now == *was, "step {step}: early memmap of sub {i} changed"),
            None => {
                for (k, m) in now.iter().enumerate() {
                    match m {
                        Some((_, size)) => assert!(
                            present && *size == MapSize::Size4K,
                            "step {step}: sub {i} memmap page {k} mapped ({size:?}), present {present}"
                        ),
                        None => assert!(!present, "step {step}: sub {i} memmap page {k} unmapped"),
                    }
                }
            }
        }
    };
    // The regions' removal unmapped their memmap (outside early sections).
    for i in 0..subs.len() {
        check_vmemmap(i, false, 0);
    }
    // One clean cycle first, so that later heap use (a usage map) finds
    // room without taking pages.
    let warm = subs.iter().position(|u| !secs[u.sec].early).unwrap();
    let wp = subs[warm].pfn;
    SPARSE.lock().add_pages(0, wp, PAGES_PER_SUBSECTION, PAGES_PER_SUBSECTION, None).unwrap();
    SPARSE.lock().remove_pages(wp, PAGES_PER_SUBSECTION, None).unwrap();
    let mut held: Vec<(Pfn, u32)> = Vec::with_capacity(64);
    let before = model_snapshot();
    let (free0, tables0, st0) = {
        let s = SPARSE.lock();
        (free_pages(), s.backend.pgtable_pages, s.stats())
    };
    let in_pmem =
        |p: Pfn, end: Pfn| regions.iter().any(|r| p < phys_pfn(r.end()) && phys_pfn(r.start) < end);
    let (mut active, mut held_pages) = (0u64, 0u64);
    let mut rng = Rng::new(0x7e55_e7a5_7e55_0001);
    let (mut adds, mut removes, mut refused, mut allocs, mut late_adds) = (0, 0, 0, 0, 0);
    for step in 0..OPS {
        let i = rng.below(n) as usize;
        let pfn = subs[i].pfn;
        let mut touched = None;
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
                    late_adds += u64::from(!secs[subs[i].sec].early);
                }
                touched = Some(i);
            }
            2 => {
                let res = SPARSE.lock().remove_pages(pfn, PAGES_PER_SUBSECTION, None);
                if active & (1 << i) == 0 {
                    assert_eq!(
                        res.unwrap_err().errno(),
                        "EINVAL",
                        "step {step}: removing an absent sub-section"
                    );
                    refused += 1;
                } else {
                    res.unwrap_or_else(|e| panic!("step {step}: remove {pfn:#x}: {e}"));
                    active &= !(1 << i);
                    removes += 1;
                }
                touched = Some(i);
            }
            _ if held.len() < 64 && rng.below(2) == 0 => {
                let order = rng.below(5) as u32;
                if let Ok(p) = page_alloc::alloc_pages(order) {
                    assert!(
                        !in_pmem(p, p + (1 << order)),
                        "step {step}: allocation {p:#x} in PMEM"
                    );
                    held.push((p, order));
                    held_pages += 1 << order;
                    allocs += 1;
                }
            }
            _ => {
                if !held.is_empty() {
                    let (p, order) = held.swap_remove(rng.below(held.len() as u64) as usize);
                    page_alloc::free_pages(p, order).unwrap();
                    held_pages -= 1 << order;
                }
            }
        }
        let on = |j: usize| active & (1 << j) != 0;
        if let Some(j) = touched {
            check_vmemmap(j, on(j), step);
        }
        let s = SPARSE.lock();
        // The section table: RAM bits plus the active sub-sections; an
        // early section's word never changes; a section of its own is there
        // (with a usage) exactly while some sub-section is.
        let (mut late_subs, mut late_secs) = (0, 0);
        for (k, sec) in secs.iter().enumerate() {
            let want = (0..subs.len())
                .filter(|&j| subs[j].sec == k && on(j))
                .fold(sec.ram_bits, |m, j| m | bit(subs[j].pfn));
            let ms = s.section_or_empty(sec.nr);
            assert_eq!(s.subsection_map(sec.nr), want, "step {step}: section {}", sec.nr);
            if sec.early {
                assert_eq!(ms.raw(), sec.raw, "step {step}: early section {} changed", sec.nr);
            } else {
                let any = want != 0;
                assert_eq!(ms.raw() != 0, any, "step {step}: section {} word", sec.nr);
                assert_eq!(ms.valid(), any, "step {step}: section {} memmap", sec.nr);
                assert_eq!(s.has_usage(sec.nr), any, "step {step}: section {} usage", sec.nr);
                assert!(!ms.early() && !ms.online(), "step {step}: section {}", sec.nr);
                late_subs += want.count_ones() as u64;
                late_secs += u64::from(any);
            }
        }
        // Each sub-section valid exactly when active (an early section's
        // pfns are all valid, as on Linux), its descriptors readable
        // exactly then.
        for (j, u) in subs.iter().enumerate() {
            let early = secs[u.sec].early;
            for p in [u.pfn, u.pfn + PAGES_PER_SUBSECTION - 1] {
                assert_eq!(s.pfn_section_valid(p), on(j), "step {step}: pfn {p:#x}");
                assert_eq!(s.pfn_valid(p), early || on(j), "step {step}: pfn {p:#x}");
                assert_eq!(s.backend.page(p).is_some(), early || on(j), "step {step}: {p:#x}");
            }
        }
        // Nothing leaks: a populated sub-section holds its 8 memmap pages, a
        // section of its own one page table; everything else is free or
        // held by this test.
        assert_eq!(
            free_pages(),
            free0 - held_pages - late_subs * SUB_MEMMAP_PAGES - late_secs,
            "step {step}: free pages ({late_subs} populated sub-sections)"
        );
        assert_eq!(s.backend.pgtable_pages, tables0 + late_secs, "step {step}: page tables");
        let st = s.stats();
        assert_eq!(st.memmap_bytes, st0.memmap_bytes + late_subs * SUB_MEMMAP, "step {step}");
        assert_eq!(st.usage_bytes, st0.usage_bytes + late_secs * USAGE_SIZE, "step {step}");
        drop(s);
        if step % 500 == 499 {
            for j in 0..subs.len() {
                check_vmemmap(j, on(j), step);
            }
            assert!(page_alloc::check().is_ok(), "step {step}: free lists");
        }
    }
    for (p, order) in held.drain(..) {
        page_alloc::free_pages(p, order).unwrap();
    }
    for (i, u) in subs.iter().enumerate().filter(|&(i, _)| active & (1 << i) != 0) {
        SPARSE.lock().remove_pages(u.pfn, PAGES_PER_SUBSECTION, None).unwrap();
        check_vmemmap(i, false, OPS);
    }
    println!(
        "stress: {OPS} operations: {adds} adds ({late_adds} populating the vmemmap), {removes} removes, {refused} refused, {allocs} allocations"
    );
    assert!(adds > 1000 && late_adds > 500 && removes > 1000 && refused > 100 && allocs > 500);
    assert!(model_snapshot() == before, "the model after the stress differs from before it");
    assert_eq!(SPARSE.lock().backend.pgtable_pages, tables0, "page tables after the stress");
    for r in &regions {
        pmem::add(r.id, &mut quiet).unwrap();
        for a in (r.start..r.end()).step_by(8) {
            // SAFETY: as above; the region is added again and still ours.
            let v = unsafe { ((offset + a) as *const u64).read_volatile() };
            assert_eq!(v, pattern(a), "persistent word at {a:#x}");
        }
    }
}

/// Both regions as device-dax at 2 MiB alignment with the memmap in RAM:
/// region0 in the early section 7 (the boot memmap reused, every
/// descriptor written), region1 in section 8 of its own, where each 2 MiB
/// compound page gets one vmemmap page and its tails (and the pages before
/// the data) map shared read-only pages. Every pfn of the data is right
/// through the vmemmap; back to raw, the model is as before.
#[test_case]
fn devdax_memmap_in_ram_in_an_early_and_an_own_section() {
    use mm::nd_pfn::{Kind, PfnMode};
    let regions = pmem::regions();
    assert_eq!(
        regions.iter().map(|r| (r.start, r.size)).collect::<Vec<_>>(),
        [(0x3e00_0000, 32 << 20), (0x4000_0000, 32 << 20)]
    );
    let before = model_snapshot();
    let (bytes0, tables0) = {
        let s = SPARSE.lock();
        (s.stats().memmap_bytes, s.backend.pgtable_pages)
    };
    for r in &regions {
        pmem::remove(r.id, &mut quiet).unwrap();
        let b0 = SPARSE.lock().stats().memmap_bytes;
        let mode = Some((Kind::Devdax, PfnMode::Ram, 2 << 20));
        let d = pmem::set_mode(r.id, mode, &mut quiet).unwrap();
        let c = d.compound().expect("compound pages");
        let (ds, de) = d.data();
        assert_eq!((ds, de), (r.start + (2 << 20), r.end()), "{d}");
        let bytes = SPARSE.lock().stats().memmap_bytes - b0;
        if r.start < 0x4000_0000 {
            assert_eq!(bytes, 0, "the boot memmap is reused");
        } else {
            // 15 compound pages, one page each (a descriptor per page: 8).
            assert_eq!((bytes, d.memmap_bytes()), (15 * PAGE_SIZE, 15 * PAGE_SIZE));
        }
        for pfn in (phys_pfn(ds).as_u64()..phys_pfn(de).as_u64()).map(Pfn::new) {
            let page = kernel::testing::read_page_via_vmemmap(pfn);
            assert_eq!(page, c.descriptor(pfn, 0, d.pgmap()), "{pfn:#x}");
            let head = kernel::mm::sparse::page(page.compound_head(pfn)).unwrap();
            assert_eq!(head.pgmap, d.pgmap(), "head of {pfn:#x}");
        }
        println!("stress: {} as devdax, map=mem: {} KiB of memmap", d.name(), bytes >> 10);
    }
    for r in &regions {
        pmem::set_mode(r.id, None, &mut quiet).unwrap();
    }
    assert!(model_snapshot() == before, "the model after devdax and back differs");
    let s = SPARSE.lock();
    assert_eq!((s.stats().memmap_bytes, s.backend.pgtable_pages), (bytes0, tables0));
}

//! Measurements for `make bench`, each printed as `bench: NAME VALUE UNIT`
//! and gathered into a table by the harness; run as tests too, so they keep
//! working. Every number is measured in this boot; ratios compare two
//! measurements taken back to back.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

extern crate alloc;

use kernel::arch::time::uptime_us;
use kernel::boot;
use kernel::drivers::pmem;
use kernel::mm::memblock::MEMBLOCK;
use kernel::mm::page_alloc::{self, ZONES};
use kernel::mm::sparse::{self, SPARSE};
use kernel::println;
use kernel::testing::quiet;
use mm::page::phys_pfn;
use mm::page::{Page, pfn_phys};
use mm::sparse::{PAGES_PER_SECTION, PAGES_PER_SUBSECTION, memmap_init_pages, section_nr_to_pfn};

kernel::test_binary_entry!();

/// Rounds of 2 MiB (one section's memmap) per measurement.
const ROUNDS: u64 = 32;

fn report(name: &str, value: u64, unit: &str) {
    println!("bench: {name} {value} {unit}");
}

/// A ratio `a / b` with two decimals.
fn report_ratio(name: &str, a: u64, b: u64) {
    let x100 = a * 100 / b.max(1);
    println!("bench: {name} {}.{:02} ratio", x100 / 100, x100 % 100);
}

#[test_case]
fn boot_times() {
    let (ready, handoff) = page_alloc::ready_us();
    assert!(ready > 0 && handoff > 0);
    report("init_done", boot::init_us(), "us");
    report("allocator_ready", ready, "us");
    report("sparse_init", sparse::init_us(), "us");
    report("buddy_handoff", handoff, "us");
    let st = SPARSE.lock().stats();
    report("memmap_bytes", st.memmap_bytes, "B");
    report("usage_bytes", st.usage_bytes, "B");
}

#[test_case]
fn memmap_init_vs_memset() {
    // One order-9 block holds a section's memmap (2 MiB).
    let pfn = page_alloc::alloc_pages(9).expect("2 MiB block");
    let addr = boot::mappings().unwrap().physical_memory_offset + pfn_phys(pfn);
    let start = uptime_us();
    for _ in 0..ROUNDS {
        // SAFETY: the 2 MiB block is this test's alone until freed below.
        unsafe { core::ptr::write_bytes(addr as *mut u8, 0, 2 << 20) };
    }
    let memset = (uptime_us() - start).max(1);
    // The copy that memmap init is built from: the first MiB onto the second.
    let start = uptime_us();
    for _ in 0..ROUNDS {
        // SAFETY: both halves lie in the 2 MiB block this test owns and do
        // not overlap.
        unsafe {
            core::ptr::copy_nonoverlapping(
                addr as *const u8,
                (addr + (1 << 20)) as *mut u8,
                1 << 20,
            )
        };
    }
    let memcpy = (uptime_us() - start).max(1);
    // SAFETY: as above; 2 MiB holds exactly PAGES_PER_SECTION descriptors and
    // the block is 64-byte aligned; zeroed memory is a valid `Page`.
    let pages =
        unsafe { core::slice::from_raw_parts_mut(addr as *mut Page, PAGES_PER_SECTION as usize) };
    let start = uptime_us();
    for r in 0..ROUNDS {
        // Sections across the 16 MiB and 4 GiB zone limits, like boot.
        memmap_init_pages(pages, section_nr_to_pfn(r), 0);
    }
    let init = (uptime_us() - start).max(1);
    assert!(pages[0].is_reserved() && pages[PAGES_PER_SECTION as usize - 1].refcount == 1);
    page_alloc::free_pages(pfn, 9).unwrap();
    let mib = 2 * ROUNDS;
    report("memset", mib * 1_000_000 / memset, "MiB/s");
    report("memcpy", ROUNDS * 1_000_000 / memcpy, "MiB/s");
    report("memmap_init", mib * 1_000_000 / init, "MiB/s");
    // Throughput of memmap init over that of memset (1.00 = as fast).
    report_ratio("memmap_init_vs_memset", memset, init);
}

#[test_case]
fn pfn_valid_cost() {
    const N: u64 = 1_000_000;
    let c = sparse::pfn_valid_cost(N);
    // Some pfns are valid and some not (about half on a machine of RAM
    // alone, a tenth with the NVDIMM far up).
    assert!(c.valid > N / 20 && c.valid < N, "{}", c.valid);
    report("pfn_valid_hits", c.valid * 100 / N, "%");
    report("pfn_valid", c.ns_per_call(), "ns/call");
    report("pfn_valid_rng_baseline", c.baseline_us * 1000 / N, "ns/call");
    report_ratio("pfn_valid_vs_rng", c.with_lookup_us.saturating_sub(c.baseline_us), c.baseline_us);
}

const GIB: u64 = 1 << 30;

fn free_ram_pages() -> u64 {
    ZONES.iter().map(|&z| page_alloc::nr_free(z)).sum()
}

#[test_case]
fn metadata_per_gib_of_ram() {
    let st = sparse::boot_stats().expect("sparse init ran");
    let ram = MEMBLOCK.lock().memory.total();
    // The boot memmap and usage maps cover whole sections of RAM.
    report("ram_meta_per_gib", (st.memmap_bytes + st.usage_bytes) * GIB / ram, "B");
}

#[test_case]
fn pmem_add_remove_costs_and_metadata() {
    let Some(r) = pmem::regions().into_iter().next() else {
        println!("no persistent memory region to measure");
        return;
    };
    // The whole region, in its own mode (altmap when it is whole sections).
    pmem::remove(r.id, &mut quiet).unwrap();
    let (free0, st0) = (free_ram_pages(), SPARSE.lock().stats());
    let start = uptime_us();
    pmem::add(r.id, &mut quiet).unwrap();
    let add_us = uptime_us() - start;
    let (free1, st1) = (free_ram_pages(), SPARSE.lock().stats());
    report("pmem_region_size", r.size >> 20, "MiB");
    report("pmem_region_add", add_us, "us");
    let ram_per_gib = (free0 - free1) * 4096 * GIB / r.size;
    let dev_per_gib = (st1.memmap_bytes - st0.memmap_bytes) * GIB / r.size;
    if r.has_altmap() {
        report("pmem_ram_per_gib_altmap", ram_per_gib, "B");
        report("pmem_device_per_gib_altmap", dev_per_gib, "B");
    } else {
        report("pmem_ram_per_gib_region", ram_per_gib, "B");
    }
    // Sub-section by sub-section without an altmap, over at most one
    // section of the range: the memory model's own cost per 2 MiB.
    pmem::remove(r.id, &mut quiet).unwrap();
    let first = phys_pfn(r.start);
    let n = (r.size >> 21).min(64);
    let free0 = free_ram_pages();
    let start = uptime_us();
    for i in 0..n {
        let pfn = first + i * PAGES_PER_SUBSECTION;
        SPARSE.lock().add_pages(0, pfn, PAGES_PER_SUBSECTION, PAGES_PER_SUBSECTION, None).unwrap();
    }
    let add = uptime_us() - start;
    let ram = (free0 - free_ram_pages()) * 4096;
    let start = uptime_us();
    for i in (0..n).rev() {
        let pfn = first + i * PAGES_PER_SUBSECTION;
        SPARSE.lock().remove_pages(pfn, PAGES_PER_SUBSECTION, None).unwrap();
    }
    let remove = uptime_us() - start;
    pmem::add(r.id, &mut quiet).unwrap();
    report("subsection_add", add * 1000 / n, "ns");
    report("subsection_remove", remove * 1000 / n, "ns");
    report("pmem_ram_per_gib_no_altmap", ram * GIB / (n << 21), "B");
}

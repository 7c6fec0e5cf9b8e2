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
use kernel::init;
use kernel::mm::page_alloc;
use kernel::mm::sparse::{self, SPARSE};
use kernel::println;
use mm::page::{Page, pfn_phys};
use mm::sparse::{PAGES_PER_SECTION, memmap_init_pages};

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
    report("init_done", init::init_us(), "us");
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
    let addr = init::mappings().unwrap().physical_memory_offset + pfn_phys(pfn);
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
        memmap_init_pages(pages, r * PAGES_PER_SECTION, 0);
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
    // About half the range is RAM sections.
    assert!(c.valid > N / 4 && c.valid < N, "{}", c.valid);
    report("pfn_valid", c.ns_per_call(), "ns/call");
    report("pfn_valid_rng_baseline", c.baseline_us * 1000 / N, "ns/call");
    report_ratio("pfn_valid_vs_rng", c.with_lookup_us.saturating_sub(c.baseline_us), c.baseline_us);
}

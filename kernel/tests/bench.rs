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

use alloc::format;

use core::sync::atomic::{AtomicU64, Ordering};

use kernel::arch::percpu;
use kernel::arch::time::uptime_us;
use kernel::boot;
use kernel::drivers::pmem;
use kernel::mm::memblock::MEMBLOCK;
use kernel::mm::page_alloc::{self, ZONES};
use kernel::mm::sparse::{self, SPARSE};
use kernel::mm::{defer_init, deferred};
use kernel::println;
use kernel::smp::{self, Worker};
use kernel::testing::quiet;
use mm::page::phys_pfn;
use mm::page::{Page, Pfn, pfn_phys};
use mm::sparse::{PAGES_PER_SECTION, PAGES_PER_SUBSECTION, memmap_init_pages, section_nr_to_pfn};

kernel::test_binary_entry!();

/// Rounds of 2 MiB (one section's memmap) per measurement.
const ROUNDS: u64 = 8;

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

/// Memory bring-up: from the start of the memory model's set-up (sparse
/// init) until all RAM is in the page allocator, deferred init included
/// (SMP bring-up, which lies in between, too).
///
/// `bringup` is the span Linux's is measured over (see the harness's
/// `bench` module): the memory model's set-up until the page allocator is
/// ready, plus the deferred init's own duration; what lies between the two
/// phases (SMP bring-up and the rest of init) is left out, as for Linux.
#[test_case]
fn memory_bringup() {
    let r = deferred::report().expect("page_alloc_init_late ran");
    let (ready, _) = page_alloc::ready_us();
    let start = defer_init::mm_start_us();
    assert!(start > 0 && ready >= start, "mm start {start} us, allocator ready {ready} us");
    report("bringup", ready - start + r.deferred.us, "us");
    report("mm_bringup", r.mm_done_us - r.mm_start_us, "us");
    report("deferred_init", r.deferred.us, "us");
    report("deferred_init_cpus", u64::from(r.deferred.workers), "CPUs");
}

/// CPU masks of the first 1, 2 and 4 online CPUs (this one first), as far
/// as there are that many.
fn cpu_sets() -> impl Iterator<Item = (u32, u64)> {
    let online = percpu::online_mask();
    let me = percpu::this().mask();
    [1u32, 2, 4].into_iter().filter(move |&n| n <= online.count_ones()).map(move |n| {
        let mut mask = me;
        for cpu in 0..64 {
            if mask.count_ones() == n {
                break;
            }
            mask |= online & (1 << cpu);
        }
        (n, mask)
    })
}

/// `pfn_valid` (the public function, as any caller uses it) on `n` CPUs
/// at once: each worker times random pfns alone and with the lookup; the
/// per-call cost is the workers' mean.
#[test_case]
fn pfn_valid_on_several_cpus() {
    const N: u64 = 100_000;
    let top = {
        let s = SPARSE.lock();
        s.present_sections().last().map_or(1, |(nr, _)| (nr + 1) * PAGES_PER_SECTION) * 2
    };
    for (n, mask) in cpu_sets() {
        let ns = AtomicU64::new(0);
        let base = AtomicU64::new(0);
        let job = |w: Worker| {
            let mut rng = rng::Rng::new(0x9e37_79b9_7f4a_7c15 ^ w.index as u64);
            let start = uptime_us();
            let mut sum = 0u64;
            for _ in 0..N {
                sum = sum.wrapping_add(core::hint::black_box(rng.below(top)));
            }
            let baseline = uptime_us() - start;
            core::hint::black_box(sum);
            let start = uptime_us();
            for _ in 0..N {
                core::hint::black_box(sparse::pfn_valid(Pfn::new(rng.below(top))));
            }
            let with = uptime_us() - start;
            ns.fetch_add(with.saturating_sub(baseline) * 1000 / N, Ordering::Relaxed);
            base.fetch_add(baseline * 1000 / N, Ordering::Relaxed);
        };
        smp::parallel(mask, &job).unwrap();
        let n64 = u64::from(n);
        report(&format!("pfn_valid_cpus{n}"), ns.load(Ordering::Relaxed) / n64, "ns/call");
        report(&format!("pfn_valid_rng_cpus{n}"), base.load(Ordering::Relaxed) / n64, "ns/call");
    }
}

/// Order-0 allocation and free (`alloc_pages`, `free_pages`) on `n` CPUs
/// at once, 64 pages held at a time per CPU: pages per second, all
/// workers together, over the slowest worker's time.
#[test_case]
fn page_alloc_on_several_cpus() {
    const ROUNDS: u64 = 300;
    const BATCH: usize = 64;
    for (n, mask) in cpu_sets() {
        let slowest = AtomicU64::new(0);
        let job = |_: Worker| {
            let mut held = [Pfn::new(0); BATCH];
            let start = uptime_us();
            for _ in 0..ROUNDS {
                for p in held.iter_mut() {
                    *p = page_alloc::alloc_pages(0).expect("a page");
                }
                for &p in &held {
                    page_alloc::free_pages(p, 0).expect("free");
                }
            }
            slowest.fetch_max(uptime_us() - start, Ordering::Relaxed);
        };
        smp::parallel(mask, &job).unwrap();
        let pages = u64::from(n) * ROUNDS * BATCH as u64;
        let us = slowest.load(Ordering::Relaxed).max(1);
        report(&format!("page_alloc_cpus{n}"), pages * 1_000_000 / us, "pages/s");
    }
}

/// Repetitions of each of memset, memcpy and memmap init, interleaved;
/// the best of each counts. Under TCG one pass can be several times
/// slower than the next (the host busy, its first touch of guest memory),
/// and the best of interleaved passes compares like with like.
const REPS: u64 = 7;

#[test_case]
fn memmap_init_vs_memset() {
    // One order-9 block holds a section's memmap (2 MiB).
    let pfn = page_alloc::alloc_pages(9).expect("2 MiB block");
    let addr = boot::mappings().unwrap().physical_memory_offset + pfn_phys(pfn);
    let timed = |f: &mut dyn FnMut()| {
        let start = uptime_us();
        f();
        (uptime_us() - start).max(1)
    };
    // Every pass goes through `black_box`: the compiler must not merge
    // passes that write the same bytes (dead-store elimination made the
    // memset figure several times too high).
    let memset = || {
        let dst = core::hint::black_box(addr) as *mut u8;
        // SAFETY: the 2 MiB block is this test's alone until freed below.
        unsafe { core::ptr::write_bytes(dst, 0, 2 << 20) };
    };
    // The block written once before anything is timed: the host backs
    // guest memory on first touch, which is not what is measured here.
    memset();
    let (mut best_set, mut best_cpy, mut best_init) = (u64::MAX, u64::MAX, u64::MAX);
    for _ in 0..REPS {
        best_set = best_set.min(timed(&mut || (0..ROUNDS).for_each(|_| memset())));
        // A plain copy for scale: the first MiB onto the second.
        best_cpy = best_cpy.min(timed(&mut || {
            for _ in 0..ROUNDS {
                // SAFETY: both halves lie in the 2 MiB block this test owns
                // and do not overlap.
                unsafe {
                    core::ptr::copy_nonoverlapping(
                        core::hint::black_box(addr) as *const u8,
                        core::hint::black_box(addr + (1 << 20)) as *mut u8,
                        1 << 20,
                    )
                };
            }
        }));
        best_init = best_init.min(timed(&mut || {
            // SAFETY: as above; 2 MiB holds exactly PAGES_PER_SECTION
            // descriptors and the block is 64-byte aligned; any bytes are a
            // valid `Page`.
            let pages = unsafe {
                core::slice::from_raw_parts_mut(
                    core::hint::black_box(addr) as *mut Page,
                    PAGES_PER_SECTION as usize,
                )
            };
            for r in 0..ROUNDS {
                // Sections 0 (the 16 MiB limit) to 35 (above 4 GiB), as
                // boot sees them.
                memmap_init_pages(core::hint::black_box(&mut *pages), section_nr_to_pfn(r * 5), 0);
            }
        }));
    }
    // SAFETY: as above.
    let pages =
        unsafe { core::slice::from_raw_parts(addr as *const Page, PAGES_PER_SECTION as usize) };
    assert!(pages[0].is_reserved() && pages[PAGES_PER_SECTION as usize - 1].refcount == 1);
    // One deferred section's work (descriptors plus its own free lists),
    // on memory already touched: the one-pass init and its reference
    // (init, then free_range). A section of free RAM above 4 GiB with a
    // few reserved pages, into a local allocator nobody splices.
    let pfn40 = section_nr_to_pfn(40);
    let free = [(pfn40, pfn40 + 1000), (pfn40 + 1001, pfn40 + PAGES_PER_SECTION)];
    let (mut best_fast, mut best_ref) = (u64::MAX, u64::MAX);
    for _ in 0..REPS {
        for (best, f) in [
            (&mut best_fast, mm::deferred::deferred_init_section as fn(_, _, _, _) -> _),
            (&mut best_ref, mm::deferred::deferred_init_section_reference),
        ] {
            *best = (*best).min(timed(&mut || {
                // SAFETY: as above.
                let pages = unsafe {
                    core::slice::from_raw_parts_mut(
                        core::hint::black_box(addr) as *mut Page,
                        PAGES_PER_SECTION as usize,
                    )
                };
                core::hint::black_box(f(pages, pfn40, &free, 0));
            }));
        }
    }
    page_alloc::free_pages(pfn, 9).unwrap();
    let mib = 2 * ROUNDS;
    report("memset", mib * 1_000_000 / best_set, "MiB/s");
    report("memcpy", ROUNDS * 1_000_000 / best_cpy, "MiB/s");
    report("memmap_init", mib * 1_000_000 / best_init, "MiB/s");
    // Throughput of memmap init over that of memset (1.00 = as fast).
    report_ratio("memmap_init_vs_memset", best_set, best_init);
    report("deferred_section", best_fast, "us");
    report("deferred_section_reference", best_ref, "us");
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

/// Pages nobody uses: free in a zone or waiting on a per-CPU list.
fn free_ram_pages() -> u64 {
    ZONES.iter().map(|&z| page_alloc::nr_free(z) + page_alloc::nr_pcp_pages(z)).sum()
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
    // The same figure under the name the harness compares with Linux's
    // re-bind of an fsdax namespace.
    if r.mode() == "fsdax" {
        report("fsdax_add", add_us, "us");
    }
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

/// Device-dax at 2 MiB alignment: compound pages whose tails share one
/// vmemmap page. On a region of whole sections (the NVDIMM columns), with
/// the memmap on the device and then in RAM (where it fits the sixteenth
/// of RAM a namespace may take): memmap bytes and RAM taken (page tables
/// included) per GiB of the namespace, and the time of the add; then the
/// region's own mode back.
#[test_case]
fn devdax_metadata() {
    use mm::nd_pfn::{Kind, PfnMode};
    let Some(r) = pmem::regions().into_iter().next() else { return };
    let section = PAGES_PER_SECTION * 4096;
    if !r.start.is_multiple_of(section) || !r.end().is_multiple_of(section) {
        println!("no region of whole sections: devdax metadata not measured");
        return;
    }
    let own = r.layout.map(|l| (l.kind(), l.mode(), l.align()));
    for (map, suffix) in [(PfnMode::Pmem, ""), (PfnMode::Ram, "_mem")] {
        if pmem::regions()[r.id].state == pmem::State::Added {
            pmem::remove(r.id, &mut quiet).unwrap();
        }
        let (free0, bytes0) = (free_ram_pages(), SPARSE.lock().stats().memmap_bytes);
        let start = uptime_us();
        let d = match pmem::set_mode(r.id, Some((Kind::Devdax, map, 2 << 20)), &mut quiet) {
            Ok(d) => d,
            Err(e) => {
                println!("devdax{suffix} not measured: {e}");
                continue;
            }
        };
        let add_us = uptime_us() - start;
        let (free1, bytes1) = (free_ram_pages(), SPARSE.lock().stats().memmap_bytes);
        assert!(d.has_altmap() == (map == PfnMode::Pmem) && d.compound().is_some(), "{d}");
        let memmap = (bytes1 - bytes0) * GIB / r.size;
        let ram = (free0 - free1) * 4096 * GIB / r.size;
        if map == PfnMode::Pmem {
            report("pmem_device_per_gib_devdax", memmap, "B");
            report("pmem_ram_per_gib_devdax", ram, "B");
        } else {
            report("pmem_memmap_per_gib_devdax_mem", memmap, "B");
            report("pmem_ram_per_gib_devdax_mem", ram, "B");
        }
        report(&format!("devdax{suffix}_add"), add_us, "us");
    }
    pmem::set_mode(r.id, own, &mut quiet).unwrap();
}

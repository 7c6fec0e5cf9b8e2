//! Parallel memory bring-up: jobs on every CPU at once (`parallel`), and
//! deferred struct-page init, whose result must not depend on how many
//! CPUs did it. Boots on one CPU (bios, uefi) and on four (the smp
//! profiles); on one CPU both runs of the comparison use the one CPU.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

extern crate alloc;

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use kernel::arch::{ipi, percpu, time};
use kernel::mm::deferred;
use kernel::mm::memblock::MEMBLOCK;
use kernel::mm::page_alloc::{self, ZONES};
use kernel::mm::sparse::SPARSE;
use kernel::println;
use kernel::smp::{Worker, parallel};
use mm::buddy::{NR_ORDERS, Zone};
use mm::page::{MemMap, Pfn, phys_pfn};
use mm::sparse::{PAGES_PER_SECTION, SparseBackend, pfn_to_section_nr, section_nr_to_pfn};

kernel::test_binary_entry!();

#[test_case]
fn parallel_runs_on_every_online_cpu_once() {
    let online = percpu::online_mask();
    let seen = AtomicU64::new(0);
    let indices = AtomicU64::new(0);
    let runs = AtomicU64::new(0);
    let me = percpu::this().cpu;
    let job = |w: Worker| {
        assert_eq!(w.cpu, percpu::this().cpu);
        assert_eq!(w.count, online.count_ones() as usize);
        assert_eq!(w.index == 0, w.cpu == me, "the caller is worker 0");
        assert!(x86_64::instructions::interrupts::are_enabled(), "thread context");
        seen.fetch_or(1 << w.cpu, Ordering::Relaxed);
        indices.fetch_or(1 << w.index, Ordering::Relaxed);
        runs.fetch_add(1, Ordering::Relaxed);
    };
    parallel(u64::MAX, &job).unwrap();
    assert_eq!(seen.load(Ordering::Relaxed), online);
    assert_eq!(indices.load(Ordering::Relaxed), (1 << online.count_ones()) - 1);
    assert_eq!(runs.load(Ordering::Relaxed), u64::from(online.count_ones()));
    println!("parallel: job ran on CPUs {online:#x}");
    // Only some CPUs: the caller and the highest one.
    let top = 63 - online.leading_zeros();
    seen.store(0, Ordering::Relaxed);
    let job = |w: Worker| {
        seen.fetch_or(1 << w.cpu, Ordering::Relaxed);
    };
    parallel(1 << top, &job).unwrap();
    assert_eq!(seen.load(Ordering::Relaxed), (1 << top) | (1 << me));
}

/// Workers in a long job keep answering interrupts: while every worker
/// spins for 300 ms, the highest worker sends call-function requests to
/// all the others (the caller included) and each answers in its job.
#[test_case]
fn parallel_workers_answer_call_function_while_working() {
    let online = percpu::online_mask();
    let answered = AtomicU64::new(0);
    let job = |w: Worker| {
        let until = time::uptime_us() + 300_000;
        if w.index + 1 == w.count && w.count > 1 {
            let others = online & !(1 << w.cpu);
            for _ in 0..5 {
                let f = || {
                    answered.fetch_or(1 << percpu::this().cpu, Ordering::Relaxed);
                };
                ipi::call_function(others, &f).expect("every working CPU answers");
            }
        }
        while time::uptime_us() < until {
            core::hint::spin_loop();
        }
    };
    let start = time::uptime_us();
    parallel(u64::MAX, &job).unwrap();
    assert!(time::uptime_us() - start >= 300_000, "the caller waited for everyone");
    let others =
        if online.count_ones() > 1 { online & !(1 << (63 - online.leading_zeros())) } else { 0 };
    assert_eq!(answered.load(Ordering::Relaxed), others);
}

/// Boot's deferred init left every free memblock page in the page
/// allocator: the managed pages are exactly memblock's free pages.
#[test_case]
fn boot_deferred_init_handed_over_all_free_memory() {
    let r = deferred::report().expect("page_alloc_init_late ran");
    let first = deferred::first_deferred_pfn().expect("2 GiB defers");
    // Linux's boundary on QEMU's 2 GiB machine: 256 MiB.
    assert_eq!(first, Pfn::new(0x10000));
    let online = percpu::online_mask().count_ones();
    assert_eq!(r.deferred.workers, online);
    assert!(r.deferred.sections >= 14 && r.deferred.freed > 0, "{:?}", r.deferred);
    let free: u64 = MEMBLOCK
        .lock()
        .free_ranges()
        .iter()
        .map(|m| phys_pfn(m.end()).saturating_pages_since(phys_pfn(m.base.next_multiple_of(4096))))
        .sum();
    let managed: u64 = ZONES.iter().map(|&z| page_alloc::managed(z)).sum();
    assert_eq!(managed, free);
}

/// FNV-1a over bytes.
fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// The descriptors of `sections` byte for byte, every zone's managed
/// pages, span and free blocks per order, and the first blocks of every
/// free list with their links.
fn digest(sections: &[u64]) -> u64 {
    let s = SPARSE.lock();
    let mut h = 0xcbf2_9ce4_8422_2325;
    for &nr in sections {
        let pfn = section_nr_to_pfn(nr);
        for i in 0..PAGES_PER_SECTION {
            let p = s.backend.vmemmap.page(pfn + i).expect("boot memmap");
            let words = [p.flags, p.refcount as u64, p.next.as_u64(), p.prev.as_u64(), p.private];
            for w in words {
                h = fnv(h, &w.to_le_bytes());
            }
        }
    }
    for z in ZONES {
        let counts: [u64; NR_ORDERS] = page_alloc::free_counts(z);
        for c in counts {
            h = fnv(h, &c.to_le_bytes());
        }
        if let Some(zone) = page_alloc::with_zone(z, Zone::clone) {
            let span = [
                zone.managed_pages(),
                zone.zone_start_pfn().as_u64(),
                zone.zone_end_pfn().as_u64(),
            ];
            for w in span {
                h = fnv(h, &w.to_le_bytes());
            }
            for order in 0..NR_ORDERS as u32 {
                let mut pfn = zone.free_area(order).unwrap().head();
                for _ in 0..64 {
                    let Some(p) = s.backend.vmemmap.page(pfn) else { break };
                    h = fnv(h, &pfn.as_u64().to_le_bytes());
                    h = fnv(h, &p.prev.as_u64().to_le_bytes());
                    pfn = p.next;
                }
            }
        }
    }
    h
}

/// Takes `sections` back from the page allocator (every page free).
fn take_back(sections: &[u64]) {
    for &nr in sections {
        let pfn = section_nr_to_pfn(nr);
        page_alloc::take_free_range(pfn, pfn + PAGES_PER_SECTION).unwrap();
    }
}

/// Redoes deferred init over four sections of free RAM, first on this CPU
/// alone, then on every online CPU, and once more as boot without
/// deferral does it (one CPU, `free_range` over the ranges in pfn order,
/// straight into the page allocator): the memmap, the free lists and the
/// free pages per zone and order come out the same each time.
#[test_case]
fn deferred_init_gives_the_same_result_on_one_and_on_all_cpus() {
    let first = pfn_to_section_nr(deferred::first_deferred_pfn().unwrap());
    // Sections of free RAM only, above the boundary; the highest deferred
    // sections went to the free lists last, so allocations since boot
    // came from them: look from the bottom.
    let candidates: Vec<u64> = {
        let s = SPARSE.lock();
        s.present_sections().map(|(nr, _)| nr).filter(|&nr| nr >= first).collect()
    };
    // Taking them back is the state before each run: the free lists
    // without them, their pages reserved.
    let mut sections = Vec::new();
    for nr in candidates {
        if sections.len() == 4 {
            break;
        }
        let pfn = section_nr_to_pfn(nr);
        if page_alloc::take_free_range(pfn, pfn + PAGES_PER_SECTION).is_ok() {
            sections.push(nr);
        }
    }
    assert_eq!(sections.len(), 4, "four sections of free RAM above the boundary");
    let free: Vec<(Pfn, Pfn)> =
        sections.iter().map(|&nr| (section_nr_to_pfn(nr), section_nr_to_pfn(nr + 1))).collect();
    let me = percpu::this().mask();

    let one = deferred::deferred_init_sections(&sections, &free, me);
    assert_eq!((one.workers, one.sections, one.freed), (1, 4, 4 * PAGES_PER_SECTION));
    let d1 = digest(&sections);

    take_back(&sections);
    let t = time::uptime_us();
    let all = deferred::deferred_init_sections(&sections, &free, percpu::online_mask());
    let d_all = digest(&sections);
    println!(
        "deferred init of 4 sections: 1 CPU {} us, {} CPUs {} us ({} worked), digest {d1:#018x}",
        one.us,
        all.workers,
        time::uptime_us() - t,
        all.worked.count_ones()
    );
    assert_eq!(all.workers, percpu::online_mask().count_ones());
    assert_eq!(d_all, d1, "the same memmap and free lists on 1 and on {} CPUs", all.workers);

    // Boot without deferral: initialise, then free range by range under the lock.
    take_back(&sections);
    {
        let mut s = SPARSE.lock();
        for &nr in &sections {
            let pfn = section_nr_to_pfn(nr);
            let pages = s.backend.memmap_mut(pfn, PAGES_PER_SECTION).expect("boot memmap");
            mm::sparse::memmap_init_pages(pages, pfn, 0);
        }
        for &(a, e) in &free {
            page_alloc::free_range(a, e);
        }
    }
    assert_eq!(digest(&sections), d1, "the same as one CPU freeing in pfn order");
}

//! Every CPU the firmware lists is online, with its own APIC ID and its own
//! stacks; call-function runs a closure exactly on the CPUs asked; a TLB
//! shootdown makes a page another CPU has read fault there once it is
//! unmapped (and without the shootdown the stale mapping is still read,
//! which shows the check can fail); removing persistent memory shoots
//! down on every CPU. On a one-CPU machine the same tests check the boot
//! CPU alone. The harness boots this binary on 1 and on 4 CPUs.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

extern crate alloc;

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use kernel::arch::percpu::{self, Doing, MAX_CPUS};
use kernel::arch::{extable, ipi, paging, time};
use kernel::boot::layout::FIXMAP_START;
use kernel::drivers::pmem;
use kernel::mm::page_alloc::alloc_frame;
use kernel::println;
use kernel::testing::quiet;
use x86_64::VirtAddr;

kernel::test_binary_entry!();

fn rsp() -> u64 {
    let r: u64;
    // SAFETY: reads RSP; no memory access.
    unsafe { core::arch::asm!("mov {}, rsp", out(reg) r, options(nomem, nostack)) };
    r
}

fn online() -> Vec<&'static percpu::PerCpu> {
    percpu::all().filter(|c| percpu::online_mask() & c.mask() != 0).collect()
}

/// The machine's CPUs: the APIC IDs of the enabled processor entries in
/// the firmware's first MADT (QEMU's own, which a hostile second MADT
/// handed over with `-acpitable` does not change).
fn machine_apic_ids() -> Vec<u32> {
    use acpi::madt::{ENABLED, Entry};
    let t = kernel::acpi::get().and_then(|a| a.tables.as_ref()).expect("ACPI tables");
    let (m, _) = acpi::madt::parse(&t.find(*b"APIC").expect("a MADT").bytes).expect("parses");
    m.entries
        .iter()
        .filter_map(|e| match *e {
            Entry::LocalApic { apic_id, flags, .. } if flags & ENABLED != 0 => Some(apic_id.into()),
            Entry::LocalX2Apic { x2apic_id, flags, .. } if flags & ENABLED != 0 => Some(x2apic_id),
            _ => None,
        })
        .collect()
}

/// Every CPU the kernel took from its MADT is online exactly when the
/// machine has it: on a plain boot all of them; with a hostile MADT
/// (more entries than CPUs) those that do not exist are reported and left
/// out, and boot went on.
#[test_case]
fn every_listed_cpu_that_exists_is_online_with_its_own_apic_id() {
    let report = kernel::smp::report().expect("smp::init ran at boot");
    let machine = machine_apic_ids();
    let registered: Vec<_> = percpu::all().collect();
    assert!(registered.len() >= report.listed.min(MAX_CPUS).min(1));
    let mut missing = 0;
    for (i, c) in registered.iter().enumerate() {
        assert_eq!(c.cpu as usize, i, "CPUs are numbered in start-up order");
        assert!(
            registered[..i].iter().all(|o| o.apic_id != c.apic_id),
            "APIC ID {:#x} twice",
            c.apic_id
        );
        let online = percpu::online_mask() & c.mask() != 0;
        assert_eq!(online, machine.contains(&c.apic_id), "CPU {i} (APIC {:#x})", c.apic_id);
        if i > 0 && online {
            assert_eq!(c.doing(), Doing::Idle, "CPU {i} waits for work");
            let us = c.boot_us.load(Ordering::Relaxed);
            assert!(us > 0, "CPU {i}'s start-up time is recorded");
            let udelay = kernel::arch::smpboot::init_udelay();
            assert!(
                us >= udelay,
                "CPU {i} started in {us} us, before INIT's {udelay} us were over"
            );
        }
        if !online {
            missing += 1;
            assert_eq!(c.doing(), Doing::Offline);
        }
    }
    assert_eq!(report.failed.len(), missing, "every CPU left out was reported");
    let cpus = online();
    println!(
        "smp: {} CPUs online of {} listed, INIT delay {} us, APIC IDs {:?}, start-up times {:?} us",
        cpus.len(),
        report.listed,
        kernel::arch::smpboot::init_udelay(),
        cpus.iter().map(|c| c.apic_id).collect::<Vec<_>>(),
        cpus[1..].iter().map(|c| c.boot_us.load(Ordering::Relaxed)).collect::<Vec<_>>()
    );
}

#[test_case]
fn each_cpu_runs_on_its_own_stack() {
    let cpus = online();
    for (i, c) in cpus.iter().enumerate() {
        assert!(c.stack.0 < c.stack.1 && c.df_stack.0 < c.df_stack.1);
        for o in &cpus[..i] {
            assert!(c.stack.1 <= o.stack.0 || o.stack.1 <= c.stack.0, "stacks overlap");
            assert!(c.df_stack.1 <= o.df_stack.0 || o.df_stack.1 <= c.df_stack.0);
        }
        // The page below each AP's stack is a guard: not mapped.
        if c.cpu > 0 {
            assert!(paging::mapping(VirtAddr::new(c.stack.0 - 4096)).is_none(), "guard page");
            assert!(paging::mapping(VirtAddr::new(c.df_stack.0 - 4096)).is_none());
        }
    }
    let all = cpus.iter().fold(0, |m, c| m | c.mask());
    ipi::call_function(all, &|| percpu::this().last_rsp.store(rsp(), Ordering::Relaxed))
        .expect("every CPU answers");
    for c in &cpus {
        let r = c.last_rsp.load(Ordering::Relaxed);
        assert!(
            (c.stack.0..c.stack.1).contains(&r),
            "CPU {} ran at {r:#x}, not on its stack",
            c.cpu
        );
    }
}

#[test_case]
fn call_function_runs_exactly_on_the_cpus_asked() {
    static RAN: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(0) }; MAX_CPUS];
    let reset = || RAN.iter().for_each(|r| r.store(0, Ordering::Relaxed));
    let count = || {
        RAN[percpu::current() as usize].fetch_add(1, Ordering::Relaxed);
    };
    let cpus = online();
    for c in &cpus {
        reset();
        ipi::call_function(c.mask(), &count).expect("the CPU answers");
        for o in &cpus {
            let want = u32::from(o.cpu == c.cpu);
            assert_eq!(RAN[o.cpu as usize].load(Ordering::Relaxed), want, "asked CPU {}", c.cpu);
        }
    }
    reset();
    let all = cpus.iter().fold(0, |m, c| m | c.mask());
    ipi::call_function(all, &count).expect("every CPU answers");
    assert!(cpus.iter().all(|c| RAN[c.cpu as usize].load(Ordering::Relaxed) == 1));
    // A CPU that is not online is not waited for.
    let offline = 1u64 << (MAX_CPUS - 1);
    reset();
    ipi::call_function(offline, &count).expect("nothing to wait for");
    assert!(RAN.iter().all(|r| r.load(Ordering::Relaxed) == 0));
}

/// A page of its own at a test address, holding `magic`.
fn map_test_page(virt: u64, magic: u64) -> u64 {
    let frame = alloc_frame().expect("a page").start_address();
    // SAFETY: `virt` is an otherwise unused fixmap slot; the frame was just
    // allocated.
    unsafe { paging::map(VirtAddr::new(virt), frame, paging::MapSize::Size4K, &mut alloc_frame) }
        .expect("maps");
    // SAFETY: just mapped, ours.
    unsafe { (virt as *mut u64).write_volatile(magic) };
    frame.as_u64()
}

/// What each other CPU reads at `virt` (through the fault-tolerant probe).
fn read_on_others(virt: u64) -> Vec<(u32, Option<u64>)> {
    static SEEN: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
    const FAULT: u64 = u64::MAX;
    let others = percpu::online_mask() & !percpu::this().mask();
    ipi::call_function(others, &|| {
        // SAFETY: a test page of RAM; reading it has no side effect.
        let v = unsafe { extable::probe_read_u64(virt) }.unwrap_or(FAULT);
        SEEN[percpu::current() as usize].store(v, Ordering::Relaxed);
    })
    .expect("every CPU answers");
    online()
        .into_iter()
        .filter(|c| others & c.mask() != 0)
        .map(|c| {
            let v = SEEN[c.cpu as usize].load(Ordering::Relaxed);
            (c.cpu, (v != FAULT).then_some(v))
        })
        .collect()
}

const TEST_PAGE: u64 = FIXMAP_START + (1 << 20);

/// Maps a page, lets every CPU read it (so each caches the translation),
/// unmaps it and returns what each other CPU then reads, and whether this
/// CPU faults.
fn read_after_unmap(magic: u64) -> (Vec<(u32, Option<u64>)>, bool) {
    let frame = map_test_page(TEST_PAGE, magic);
    for (cpu, v) in read_on_others(TEST_PAGE) {
        assert_eq!(v, Some(magic), "CPU {cpu} reads the mapped page");
    }
    // SAFETY: the test page is ours; nothing references it.
    unsafe { paging::unmap(VirtAddr::new(TEST_PAGE)) }.expect("it was mapped");
    let after = read_on_others(TEST_PAGE);
    // SAFETY: probe of an unmapped test address.
    let here = unsafe { extable::probe_read_u64(TEST_PAGE) }.is_none();
    kernel::mm::page_alloc::free_pages(mm::page::phys_pfn(frame), 0).expect("frees");
    (after, here)
}

#[test_case]
fn a_cpu_that_read_a_page_faults_on_it_after_another_cpu_unmapped_it() {
    let faults_before: Vec<u64> =
        online().iter().map(|c| c.fixed_faults.load(Ordering::Relaxed)).collect();
    let (after, here) = read_after_unmap(0x7e55_e7a0_0000_0001);
    assert!(here, "the unmapping CPU faults");
    for (cpu, v) in &after {
        assert_eq!(*v, None, "CPU {cpu} still reads the unmapped page: no shootdown reached it");
    }
    for (c, before) in online().iter().zip(faults_before) {
        assert!(c.fixed_faults.load(Ordering::Relaxed) > before, "CPU {} took the fault", c.cpu);
    }
    println!("smp: after the shootdown {} other CPUs fault on the unmapped page", after.len());
}

/// The check above can fail: with the shootdown switched off, the CPUs
/// that read the page keep its translation and read it after the unmap.
#[test_case]
fn without_the_shootdown_the_other_cpus_still_read_the_unmapped_page() {
    ipi::set_skip_shootdown(true);
    let (after, here) = read_after_unmap(0x7e55_e7a0_0000_0002);
    ipi::set_skip_shootdown(false);
    assert!(here, "the local flush still happens");
    let stale = after.iter().filter(|(_, v)| v.is_some()).count();
    assert_eq!(stale, after.len(), "every other CPU kept the stale translation: {after:?}");
    println!("smp: without the shootdown {stale} other CPUs still read the unmapped page");
}

#[test_case]
fn removing_persistent_memory_shoots_down_on_every_cpu() {
    let r = pmem::regions().into_iter().next().expect("the default machine emulates PMEM");
    let flushes = || {
        online().iter().skip(1).map(|c| c.tlb_flushes.load(Ordering::Relaxed)).collect::<Vec<_>>()
    };
    let (before, sent) = (flushes(), ipi::shootdowns());
    pmem::remove(r.id, &mut quiet).expect("removes");
    pmem::add(r.id, &mut quiet).expect("adds again");
    let after = flushes();
    if percpu::num_online() > 1 {
        assert!(ipi::shootdowns() > sent, "the remove sent shootdowns");
        for (i, (b, a)) in before.iter().zip(&after).enumerate() {
            assert!(a > b, "CPU {} flushed nothing during the remove", i + 1);
        }
    }
    println!(
        "smp: a remove and re-add of {} sent {} shootdowns",
        r.name(),
        ipi::shootdowns() - sent
    );
}

/// The cost of a shootdown to 1 and to 3 other CPUs, in the same boot.
#[test_case]
fn shootdown_cost_to_one_and_to_three_cpus() {
    const ROUNDS: u64 = 200;
    let cpus = online();
    let me = percpu::this().mask();
    let flush = || ipi::flush_local(TEST_PAGE, TEST_PAGE + 4096);
    let mut line = alloc::string::String::from("smp: TLB shootdown");
    for n in [1usize, 3] {
        if cpus.len() < n + 1 {
            continue;
        }
        let mask = cpus.iter().filter(|c| c.mask() != me).take(n).fold(0, |m, c| m | c.mask());
        let mut times: Vec<u64> = (0..ROUNDS)
            .map(|_| {
                let t0 = time::uptime_us();
                ipi::call_function(mask, &flush).expect("answers");
                time::uptime_us() - t0
            })
            .collect();
        times.sort_unstable();
        let mean = times.iter().sum::<u64>() as f64 / ROUNDS as f64;
        let median = times[times.len() / 2];
        line += &alloc::format!(
            " to {n} other CPU{}: median {median} us, mean {mean:.1} us;",
            if n == 1 { "" } else { "s" }
        );
    }
    if cpus.len() == 1 {
        line += ": no other CPU online;";
    }
    println!("{line} ({ROUNDS} rounds each, {} CPUs online)", cpus.len());
}

/// Every online CPU allocates and frees at once (order 0 through its
/// per-CPU lists, some orders 1 to 3 from the zones): no page is handed to
/// two holders at a time (a shared bitmap of held pfns, and a mark in each
/// page checked before it is freed), and once every CPU's lists are
/// drained the free blocks per zone and order are what they were.
#[test_case]
fn pages_allocated_on_every_cpu_at_once_are_never_handed_out_twice() {
    use kernel::mm::page_alloc::{self, ZONES};
    use mm::page::{Pfn, ZoneType, pfn_phys};

    const OPS: u64 = 3000;
    const HOLD: usize = 48;
    let off = kernel::boot::mappings().unwrap().physical_memory_offset;
    let top = kernel::mm::memblock::MEMBLOCK.lock().memory.regions().last().map_or(0, |r| r.end());
    let held_bits: Vec<AtomicU64> =
        (0..(top >> 12).div_ceil(64)).map(|_| AtomicU64::new(0)).collect();
    let twice = AtomicU64::new(0);
    let allocs = AtomicU64::new(0);
    page_alloc::drain_all_pages(None);
    let before = ZONES.map(page_alloc::free_counts);
    let claim = |p: Pfn, order: u32, on: bool| {
        for q in p.as_u64()..p.as_u64() + (1 << order) {
            let (w, bit) = ((q / 64) as usize, 1u64 << (q % 64));
            let old = if on {
                held_bits[w].fetch_or(bit, Ordering::AcqRel)
            } else {
                held_bits[w].fetch_and(!bit, Ordering::AcqRel)
            };
            if (old & bit != 0) != !on {
                twice.fetch_add(1, Ordering::Relaxed);
            }
        }
    };
    let job = |w: kernel::smp::Worker| {
        let mut rng = rng::Rng::new(0x5eed_0000 + u64::from(w.cpu));
        let mut held: Vec<(Pfn, u32, u64)> = Vec::with_capacity(HOLD);
        let mark = |p: Pfn| (off + pfn_phys(p)) as *mut u64;
        for i in 0..OPS {
            if held.len() < HOLD && (held.is_empty() || rng.below(100) < 55) {
                let order = if rng.below(8) == 0 { 1 + rng.below(3) as u32 } else { 0 };
                let Ok(p) = page_alloc::alloc_pages(order) else { continue };
                claim(p, order, true);
                let tag = u64::from(w.cpu) << 48 | i;
                // SAFETY: the page allocator just handed this block to this
                // worker alone; RAM is mapped at the physical-memory offset.
                unsafe { mark(p).write_volatile(tag) };
                held.push((p, order, tag));
                allocs.fetch_add(1, Ordering::Relaxed);
            } else {
                let (p, order, tag) = held.swap_remove(rng.below(held.len() as u64) as usize);
                // SAFETY: as above: the block is still this worker's.
                if unsafe { mark(p).read_volatile() } != tag {
                    twice.fetch_add(1, Ordering::Relaxed);
                }
                claim(p, order, false);
                page_alloc::free_pages(p, order).expect("freeing a block this worker holds");
            }
        }
        for (p, order, _) in held {
            claim(p, order, false);
            page_alloc::free_pages(p, order).expect("freeing a block this worker holds");
        }
    };
    let cpus = percpu::online_mask();
    kernel::smp::parallel(cpus, &job).expect("every online CPU runs the job");
    assert_eq!(twice.load(Ordering::Relaxed), 0, "pages handed out twice");
    let on_lists: u64 = ZONES.iter().map(|&z| page_alloc::nr_pcp_pages(z)).sum();
    page_alloc::check().expect("free lists and per-CPU lists consistent");
    page_alloc::drain_all_pages(None);
    assert_eq!(ZONES.iter().map(|&z| page_alloc::nr_pcp_pages(z)).sum::<u64>(), 0);
    assert_eq!(ZONES.map(page_alloc::free_counts), before, "free blocks after draining");
    println!(
        "page_alloc: {} CPUs, {} allocations, {on_lists} pages on per-CPU lists before the drain (batch/high {:?})",
        cpus.count_ones(),
        allocs.load(Ordering::Relaxed),
        page_alloc::pcp_batch_high(ZoneType::Dma32)
    );
}

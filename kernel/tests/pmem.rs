//! Persistent memory after boot: every NFIT range became a region that the
//! driver hot-added into ZONE_DEVICE next to System RAM; remove and re-add
//! restore the model exactly. The harness boots this binary with the
//! default emulated range, with two `memmap=` ranges in one section, and
//! with a QEMU NVDIMM (firmware NFIT, `nopmem`).
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

extern crate alloc;

use alloc::vec::Vec;

use kernel::arch::paging;
use kernel::boot::{self, layout::VMEMMAP_START};
use kernel::drivers::pmem::{self, Origin, Region, State};
use kernel::mm::memblock::MEMBLOCK;
use kernel::mm::page_alloc::{self, ZONES};
use kernel::mm::sparse::{self, SPARSE};
use kernel::testing::{model_snapshot, quiet};
use mm::page::{Pfn, ZoneType, bytes_to_pages, memmap_offset, phys_pfn};
use mm::sparse::{flags, pfn_to_section_nr};

kernel::test_binary_entry!();

const SUB: u64 = 2 << 20;

fn regions() -> Vec<Region> {
    let r = pmem::regions();
    assert!(!r.is_empty(), "every machine of this binary has persistent memory");
    r
}

#[test_case]
fn every_region_is_added_into_zone_device() {
    for r in regions() {
        assert_eq!(r.state, State::Added, "{r}");
        for a in (r.start..r.end()).step_by(SUB as usize) {
            let pfn = phys_pfn(a);
            assert!(sparse::pfn_valid(pfn), "{a:#x}");
            assert_eq!(sparse::pfn_to_online_page(pfn), None, "device memory is not online RAM");
            let p = sparse::page(pfn + 5).unwrap();
            assert_eq!((p.zone(), p.pgmap), (ZoneType::Device, r.pgmap()), "{a:#x}");
        }
    }
}

#[test_case]
fn ram_next_to_a_region_stays_online_and_shared_sections_are_tainted() {
    let mb = MEMBLOCK.lock().clone();
    for r in regions() {
        for a in [r.start.wrapping_sub(4096), r.end()] {
            if mb.memory.overlaps(a, 4096) {
                assert!(sparse::pfn_to_online_page(phys_pfn(a)).is_some(), "RAM at {a:#x}");
            }
        }
        let nr = pfn_to_section_nr(phys_pfn(r.start));
        let s = SPARSE.lock();
        let ms = s.section(nr).unwrap();
        let shares = mb.memory.overlaps(nr << 27, 128 << 20);
        assert_eq!(ms.flags() & flags::TAINT_ZONE_DEVICE != 0, shares, "section {nr}");
        assert_eq!(ms.early(), shares, "section {nr}");
    }
}

#[test_case]
fn the_range_is_mapped_and_keeps_what_is_written() {
    let off = boot::mappings().unwrap().physical_memory_offset;
    for r in regions() {
        for (i, a) in [r.start, r.end() - 8].into_iter().enumerate() {
            assert_eq!(
                paging::mapping(x86_64::VirtAddr::new(off + a)).map(|m| m.0.as_u64()),
                Some(a),
                "{a:#x} mapped"
            );
            let p = (off + a) as *mut u64;
            let v = 0x7e55_e7a0_0000_0000 | (r.id as u64) << 8 | i as u64;
            // With an altmap, the first 2 MiB hold the memmap: skip them.
            if !(r.has_altmap() && i == 0) {
                // SAFETY: the region is device memory owned by the driver and
                // mapped at the physical-memory offset; nothing else uses it.
                // What was there is written back, so the device keeps its
                // data.
                unsafe {
                    let old = p.read_volatile();
                    p.write_volatile(v);
                    assert_eq!(p.read_volatile(), v);
                    p.write_volatile(old);
                    kernel::arch::cpu::flush_cache_range(p as u64, 8);
                }
            }
        }
    }
}

#[test_case]
fn remove_then_add_restores_the_model_exactly() {
    for r in regions() {
        // One cycle first: page tables made by the first add stay.
        let before = model_snapshot();
        let first = phys_pfn(r.start);
        let nr = pfn_to_section_nr(first);
        let early = SPARSE.lock().section(nr).is_some_and(|ms| ms.early());
        pmem::remove(r.id, &mut quiet).unwrap();
        assert_eq!(sparse::pfn_to_online_page(first), None);
        let map = SPARSE.lock().subsection_map(nr);
        let bits = mm::sparse::subsection_mask(first, bytes_to_pages(r.size.min(128 << 20)));
        assert_eq!(map & bits, 0, "section {nr}: bits cleared");
        // An early section keeps its memmap; a device-only one loses it.
        assert_eq!(sparse::pfn_valid(first), early, "section {nr}");
        assert_eq!(pmem::remove(r.id, &mut quiet).unwrap_err().errno(), "EINVAL", "removing twice");
        let mut lines = Vec::new();
        pmem::add(r.id, &mut |_, l| lines.push(alloc::string::String::from(l))).unwrap();
        let (start, end) = r.mapped();
        let steps = if r.has_altmap() { (end - start) >> 27 } else { (end - start) / SUB };
        assert_eq!(lines.len() as u64, steps, "one line per step");
        assert_eq!(model_snapshot(), before, "{r}");
    }
}

#[test_case]
fn a_namespace_whose_memmap_would_crowd_system_ram_is_refused() {
    let r = regions()[0].clone();
    // A raw 64 GiB NVDIMM needs 1 GiB of memmap in System RAM.
    let big = Region { size: 64 << 30, layout: None, ..r.clone() };
    let e = pmem::check_memmap_fits(&big).unwrap_err();
    let text = alloc::format!("{e}");
    assert_eq!(e.errno(), "ENOMEM");
    assert!(text.contains("need 1024 MiB of memmap in System RAM"), "{text}");
    assert!(text.contains("make it fsdax or devdax") && !text.contains('\n'), "{text}");
    assert!(pmem::check_memmap_fits(&r).is_ok(), "{r}");
}

#[test_case]
fn memremap_checks_refuse_bad_ranges() {
    use mm::memory_block::MemremapError as M;
    let r = &regions()[0];
    let check = |start, size| match pmem::check_range(start, size) {
        Err(pmem::PmemError::Memremap(m)) => Err(m),
        Err(e) => panic!("not a memremap refusal: {e}"),
        Ok(()) => Ok(()),
    };
    let before = model_snapshot();
    // Each range below would also fail every later check: the first
    // refusal Linux 6.1's pagemap_range makes is the one reported.
    // 1. Start or end inside a device mapping: ENOMEM.
    let e = check(r.start + 4096, 4096).unwrap_err();
    assert!(matches!(e, M::Conflict { .. }) && e.errno() == "ENOMEM", "{e}");
    let e = check(0x100_0000, r.start + SUB - 0x100_0000).unwrap_err();
    assert_eq!(e.errno(), "ENOMEM", "ends inside the region, starts in RAM: {e}");
    // 2. System RAM (all, or mixed): ENXIO.
    let e = check(0x100_0000 + 4096, 4096).unwrap_err();
    assert!(matches!(e, M::Ram { mixed: false, .. }) && e.errno() == "ENXIO", "{e}");
    let ram_end = MEMBLOCK.lock().memory.regions().last().unwrap().end();
    let e = check(ram_end - SUB, 1 << 47).unwrap_err();
    assert!(matches!(e, M::Ram { mixed: true, .. }), "{e}");
    // 3. Beyond MAX_PHYSMEM_BITS (mhp_range_allowed): EINVAL, the refusal
    //    the sparse model's ERANGE stands behind.
    for (start, size) in [(1 << 46, 4096), ((1 << 46) - SUB, 2 * SUB), (0x7000_0000_0000, SUB)] {
        let e = check(start, size).unwrap_err();
        assert!(matches!(e, M::Range { .. }) && e.errno() == "EINVAL", "{start:#x}: {e}");
    }
    assert!(matches!(check(0x3000_0000_0000, 0), Err(M::Range { .. })), "empty");
    // 4. Not whole sub-sections (check_pfn_span): EINVAL.
    for (start, size) in [(0x3000_0000_0000 + 4096, SUB), (0x3000_0000_0000, SUB + 4096)] {
        let e = check(start, size).unwrap_err();
        assert!(matches!(e, M::Misaligned { .. }) && e.errno() == "EINVAL", "{e}");
    }
    // 5. Around a region, both ends free: its sub-sections are active, EEXIST.
    //    (When RAM or another region borders it, that refusal comes first.)
    let around = (r.start - SUB, r.size + 2 * SUB);
    let ends_free = |a: u64| {
        !MEMBLOCK.lock().memory.overlaps(a, SUB)
            && !regions().iter().any(|o| o.start < a + SUB && a < o.end())
    };
    let e = check(around.0, around.1).unwrap_err();
    if ends_free(around.0) && ends_free(r.end()) {
        assert!(matches!(e, M::Exist { .. }) && e.errno() == "EEXIST", "{e}");
    } else {
        assert!(matches!(e, M::Ram { .. } | M::Conflict { .. }), "{e}");
    }
    // What passes every check; the last sub-section below 2^46 too.
    assert_eq!(check(0x3000_0000_0000, SUB), Ok(()));
    assert_eq!(check((1 << 46) - SUB, SUB), Ok(()));
    // The driver: an added region is busy; no region 99.
    assert_eq!(pmem::add(r.id, &mut quiet).unwrap_err().errno(), "EBUSY");
    assert_eq!(pmem::add(99, &mut quiet).unwrap_err().errno(), "ENODEV");
    assert!(model_snapshot() == before, "refusals change nothing");
}

/// The physical address of the descriptor of `pfn` (through the vmemmap).
fn memmap_phys(pfn: Pfn) -> u64 {
    let desc = VMEMMAP_START + memmap_offset(pfn);
    paging::mapping(x86_64::VirtAddr::new(desc)).expect("memmap mapped").0.as_u64()
}

#[test_case]
fn an_altmap_region_holds_its_memmap_between_info_block_and_dataoff() {
    for r in regions().into_iter().filter(|r| r.has_altmap()) {
        let l = r.layout.expect("an altmap comes from an info block");
        let (ms, me) = l.memmap_area().unwrap();
        assert_eq!(ms, r.start + 8192);
        for pfn in [phys_pfn(r.start), phys_pfn(r.end()) - 1] {
            let at = memmap_phys(pfn);
            assert!((ms..me).contains(&at), "{at:#x} not in [{ms:#x}, {me:#x}) for {r}");
        }
        // Where Linux puts it: one 2 MiB block per section, the first on
        // the first 2 MiB boundary after the 8 KiB reserve.
        assert_eq!(memmap_phys(phys_pfn(r.start)), ms.next_multiple_of(SUB), "{r}");
        // Linux's vmem_altmap (__nvdimm_setup_pfn): based at the range's
        // first pfn, the 8 KiB info-block area reserved, free up to dataoff.
        let (start, end) = r.mapped();
        assert_eq!(me, start + l.sb.dataoff, "{r}");
        let a = r.altmap().unwrap();
        let free = (l.sb.dataoff - 8192) / 4096;
        let want = mm::sparse::Altmap { base_pfn: phys_pfn(start), reserve: 2, free, alloc: 0 };
        assert_eq!(a, want, "{r}");
        // vmem_altmap_alloc: a 2 MiB block (512 pfns, 512-aligned) per
        // section, the first after `align` padding pfns; together they use
        // every free pfn up to dataoff.
        let sections = (end - start) / (128 << 20);
        let first = (start + 8192).next_multiple_of(SUB);
        let (align, alloc) = ((first - start - 8192) / 4096, sections * 512);
        assert_eq!(align + alloc, a.free, "{r}: align {align} + alloc {alloc}");
        for k in 0..sections {
            let pfn = phys_pfn(start) + k * mm::sparse::PAGES_PER_SECTION;
            let block = first + k * SUB;
            assert_eq!(memmap_phys(pfn), block, "{r}: section {k}");
            assert_eq!(memmap_phys(pfn + 32767), block + SUB - 64, "{r}: section {k}");
        }
        // The harness's fsdax NVDIMM as Linux 6.1 lays it out (256 MiB at
        // 4 GiB, dataoff 6 MiB): base_pfn 0x100000, reserve 2, free 1534 =
        // align 510 + alloc 1024.
        if (r.start, r.size) == (1 << 32, 256 << 20) {
            assert_eq!((a.base_pfn, l.sb.dataoff), (Pfn(0x10_0000), 0x60_0000));
            assert_eq!((a.free, align, alloc), (1534, 510, 1024));
        }
        // The memmap takes no System RAM: removing and adding the region
        // leaves the free pages as they were.
        let nr_free = || {
            ZONES.iter().map(|&z| page_alloc::nr_free(z) + page_alloc::nr_pcp_pages(z)).sum::<u64>()
        };
        pmem::remove(r.id, &mut quiet).unwrap();
        let before = nr_free();
        pmem::add(r.id, &mut quiet).unwrap();
        assert_eq!(nr_free(), before, "{r}: the add took System RAM");
    }
}

#[test_case]
fn a_namespace_without_altmap_keeps_its_memmap_in_system_ram() {
    let mb = MEMBLOCK.lock().clone();
    for r in regions().into_iter().filter(|r| !r.has_altmap()) {
        for pfn in [phys_pfn(r.start), phys_pfn(r.end()) - 1] {
            let at = memmap_phys(pfn);
            assert!(mb.memory.overlaps(at, 64), "{at:#x} is not System RAM ({r})");
            assert!(!(r.start..r.end()).contains(&at), "{at:#x} is on the device ({r})");
        }
    }
}

#[test_case]
fn regions_come_from_the_nfit_they_should() {
    let opts = boot::options();
    for r in regions() {
        match r.origin {
            // QEMU's NVDIMM: above RAM, whole sections; its memmap is on
            // the device exactly when an info block with map=dev says so.
            Origin::Firmware { spa } => {
                let dev = r.layout.is_some_and(|l| l.mode() == mm::nd_pfn::PfnMode::Pmem);
                assert!(r.has_altmap() == dev && r.start >= 1 << 32, "{r}");
                assert_eq!(spa, 2, "QEMU numbers its SPA range 2");
            }
            // memmap=nn!ss or the default range: type 12, inside a RAM section.
            Origin::Emulated { legacy, .. } => {
                assert!(!opts.nopmem, "no emulation with nopmem");
                // The default range comes from the RAM mem= leaves.
                if let Some(limit) = opts.mem_limit {
                    assert!(r.end() <= limit, "{r} above mem={limit:#x}");
                }
                assert!(legacy && !r.has_altmap(), "{r}");
            }
        }
    }
    if boot::cmdline().is_empty() {
        let r = &regions()[0];
        assert_eq!(r.size, mm::usermap::DEFAULT_PMEM_SIZE, "the default range");
        assert_eq!(r.start % (128 << 20), 32 << 20, "sub-sections 16..31 of its section");
    }
}

#[test_case]
fn every_nfit_is_listed_checksummed_and_describes_the_regions() {
    let a = kernel::acpi::get().expect("ACPI walked at boot");
    let t = a.tables.as_ref().expect("QEMU has ACPI tables");
    let nfits: Vec<_> = t.find_all(*b"NFIT").collect();
    assert!(!nfits.is_empty());
    for n in &nfits {
        assert!(acpi::sdt::checksum_ok(&n.bytes), "{n}");
        // The listed bytes are what memory holds at the listed address.
        let off = boot::mappings().unwrap().physical_memory_offset;
        // SAFETY: ACPI tables (and the emulated NFIT, in memblock-reserved
        // RAM) are mapped at the physical-memory offset and never freed.
        let mem =
            unsafe { core::slice::from_raw_parts((off + n.addr) as *const u8, n.bytes.len()) };
        assert_eq!(mem, &n.bytes[..]);
    }
    let emulated: Vec<_> = nfits.iter().filter(|n| n.bytes[10..16] == *b"TESSRA").collect();
    let want_emulated = regions().iter().any(|r| matches!(r.origin, Origin::Emulated { .. }));
    assert_eq!(emulated.len(), usize::from(want_emulated));
    if let Some(e) = emulated.first() {
        assert_eq!(Some(e.addr), a.emulated);
        assert!(MEMBLOCK.lock().reserved.overlaps(e.addr, e.bytes.len() as u64));
    }
    // Every region is exactly one accepted persistent SPA range.
    let spas: Vec<_> =
        a.nfit.spa_ranges().filter(|s| s.is_pmem()).map(|s| (s.base, s.length)).collect();
    for r in regions() {
        assert!(spas.contains(&(r.start, r.size)), "{r}");
    }
    assert_eq!(a.problems, 0, "QEMU's tables and ours are clean");
}

#[test_case]
fn iomem_shows_each_namespace_under_its_range() {
    let t = kernel::mm::iomem::tree();
    let text = alloc::format!("{t}");
    for r in regions() {
        let parent = match r.origin {
            Origin::Emulated { legacy: true, .. } => "Persistent Memory (legacy)",
            _ => "Persistent Memory",
        };
        let top = alloc::format!("{:08x}-{:08x} : {parent}", r.start, r.end() - 1);
        let child = alloc::format!("  {:08x}-{:08x} : {}", r.start, r.end() - 1, r.namespace());
        assert!(text.lines().any(|l| l == top), "{top} in\n{text}");
        assert!(text.lines().any(|l| l == child), "{child} in\n{text}");
    }
    assert!(text.lines().any(|l| l.ends_with(" : System RAM")));
}

/// The driver allocates nothing from the heap while it holds a zone lock,
/// so the heap can grow from the page allocator at any point of a hot-add
/// or remove (a grow under a zone lock would fail; DESIGN.md §4a).
#[test_case]
fn nothing_allocates_under_a_zone_lock_in_a_hot_add_or_remove() {
    use kernel::mm::heap;
    let under = heap::allocs_under_zone_lock();
    for r in regions() {
        pmem::remove(r.id, &mut |_, line| assert!(!line.is_empty())).unwrap();
        pmem::add(r.id, &mut |_, line| assert!(!line.is_empty())).unwrap();
    }
    assert_eq!(heap::allocs_under_zone_lock(), under, "heap allocations under a zone lock");
}

//! System RAM hotplug in memory blocks. The harness boots this binary on
//! a 4 GiB machine (3 GiB below 4 GiB, 1 GiB above) with `mem=3G`, so the
//! RAM above 4 GiB is withheld, and `memmap=64M!0x108000000` (given first,
//! while the range is still RAM), so section
//! 33 starts with 64 MiB of persistent memory and ends with 64 MiB of
//! withheld RAM.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

extern crate alloc;

use alloc::vec::Vec;

use kernel::arch::paging;
use kernel::init;
use kernel::mm::memblock::MEMBLOCK;
use kernel::mm::memory_hotplug::{self as hp, BlockState};
use kernel::mm::page_alloc;
use kernel::mm::pmem;
use kernel::mm::sparse::{self, SPARSE};
use kernel::testing::{model_snapshot, quiet};
use mm::page::{Pfn, ZoneType, pfn_phys, phys_pfn};
use mm::sparse::{PAGES_PER_SECTION, flags, pfn_to_section_nr};

kernel::test_binary_entry!();

const M: u64 = 1 << 20;
const G: u64 = 1 << 30;
/// Section 33's halves: persistent memory, then withheld RAM.
const PMEM: u64 = 0x1_0800_0000;
const RAM33: u64 = 0x1_0c00_0000;

fn section_word(nr: u64) -> (u64, u64) {
    let s = SPARSE.lock();
    let ms = s.section_or_empty(nr);
    (ms.flags(), ms.subsection_map())
}

fn normal() -> (u64, u64, Pfn, Pfn) {
    let s = SPARSE.lock();
    let b = &s.backend.buddy;
    let z = b.zone(ZoneType::Normal).unwrap();
    (b.managed(ZoneType::Normal), b.nr_free(ZoneType::Normal), z.zone_start_pfn(), z.zone_end_pfn())
}

fn mapped(addr: u64) -> bool {
    let off = init::mappings().unwrap().physical_memory_offset;
    paging::mapping(off, off + addr).is_some()
}

fn word(addr: u64) -> *mut u64 {
    (init::mappings().unwrap().physical_memory_offset + addr) as *mut u64
}

fn buddy_consistent() {
    let s = SPARSE.lock();
    s.backend.buddy.check(&s.backend.vmemmap).expect("free lists consistent");
}

#[test_case]
fn boot_memory_is_listed_in_128m_blocks_all_online() {
    assert_eq!(hp::block_size(), 128 * M);
    let blocks = hp::blocks();
    let mb = MEMBLOCK.lock();
    for r in mb.memory.regions() {
        for id in r.base / (128 * M)..r.end().div_ceil(128 * M) {
            let b = blocks.iter().find(|b| b.id == id).unwrap_or_else(|| panic!("memory{id}"));
            assert!(b.boot && b.state == BlockState::Online, "{b}");
        }
    }
    assert_eq!(blocks.len(), 24, "3 GiB of boot memory");
    assert!(blocks.iter().all(|b| b.id < 24), "nothing above mem=3G");
    assert_eq!(
        alloc::format!("{}", blocks[1]),
        "memory1 online  [mem 0x0000000008000000-0x000000000fffffff] DMA32 (boot)"
    );
}

#[test_case]
fn probe_refuses_what_is_not_withheld_ram_and_changes_nothing() {
    let before = model_snapshot();
    let e = |r: Result<hp::MemoryBlock, hp::HotplugError>| r.unwrap_err().errno();
    assert_eq!(e(hp::probe(2 * G)), "EEXIST", "boot RAM");
    assert_eq!(e(hp::probe(3 * G)), "EINVAL", "the PCI hole");
    assert_eq!(e(hp::probe(4 * G + 4096)), "EINVAL", "misaligned");
    assert_eq!(e(hp::probe(5 * G)), "EINVAL", "beyond RAM");
    assert_eq!(e(hp::probe(PMEM)), "EINVAL", "persistent memory is not RAM");
    assert_eq!(e(hp::add_memory(RAM33, 96 * M)), "EINVAL", "crosses into the next block");
    assert_eq!(e(hp::add_memory(RAM33 + M, 2 * M)), "EINVAL", "not whole sub-sections");
    assert_eq!(e(hp::online(32)), "ENODEV");
    assert_eq!(e(hp::offline(32)), "ENODEV");
    assert_eq!(e(hp::remove(5)), "EINVAL", "an online block is not removed");
    assert_eq!(e(hp::online(5)), "EINVAL", "already online");
    assert!(model_snapshot() == before);
}

#[test_case]
fn a_probed_block_onlines_offlines_and_is_removed_leaving_nothing() {
    let before = model_snapshot();
    let (managed0, _, _, _) = normal();
    assert_eq!(managed0, 0, "mem=3G: no ZONE_NORMAL at boot");
    assert!(!sparse::pfn_valid(phys_pfn(4 * G)), "withheld RAM has no memmap");
    let b = hp::probe(4 * G).unwrap();
    assert_eq!((b.id, b.state, b.boot), (32, BlockState::Offline, false));
    assert!(sparse::pfn_valid(phys_pfn(4 * G)) && mapped(4 * G));
    assert_eq!(sparse::pfn_to_online_page(phys_pfn(4 * G)), None, "offline");
    assert_eq!(section_word(32).0 & flags::ONLINE, 0);
    assert_eq!(hp::probe(4 * G).unwrap_err().errno(), "EEXIST");
    assert!(MEMBLOCK.lock().memory.overlaps(4 * G, 128 * M));

    hp::online(32).unwrap();
    let (managed, free, start, end) = normal();
    assert_eq!((managed, free), (PAGES_PER_SECTION, PAGES_PER_SECTION));
    assert_eq!((start, end), (phys_pfn(4 * G), phys_pfn(4 * G + 128 * M)), "zone span grown");
    assert_ne!(section_word(32).0 & flags::ONLINE, 0);
    assert!(sparse::pfn_to_online_page(phys_pfn(4 * G)).is_some());
    buddy_consistent();
    // Allocations from Normal come from the new block and hold data.
    let p = page_alloc::alloc_pages_zone(10, ZoneType::Normal).unwrap();
    assert_eq!(pfn_to_section_nr(p), 32);
    // SAFETY: the page allocator gave these pages to this test alone and
    // the block is mapped in the physical-memory map.
    unsafe {
        word(pfn_phys(p)).write_volatile(0x7e55_e7a0_0000_0032);
        assert_eq!(word(pfn_phys(p)).read_volatile(), 0x7e55_e7a0_0000_0032);
    }
    let held = model_snapshot();
    let err = hp::offline(32).unwrap_err();
    assert_eq!(err, hp::HotplugError::Busy { id: 32, pfn: p }, "{err}");
    assert!(model_snapshot() == held, "a refused offline changes nothing");
    page_alloc::free_pages(p, 10).unwrap();

    hp::offline(32).unwrap();
    assert_eq!(normal(), (0, 0, 0, 0), "pages taken back, span empty");
    assert_eq!(section_word(32).0 & flags::ONLINE, 0);
    assert_eq!(hp::block(32).unwrap().state, BlockState::Offline);
    buddy_consistent();
    hp::remove(32).unwrap();
    assert!(hp::block(32).is_none());
    assert!(!sparse::pfn_valid(phys_pfn(4 * G)) && !mapped(4 * G));
    assert!(!MEMBLOCK.lock().memory.overlaps(4 * G, 128 * M));
    assert!(model_snapshot() == before, "the model after remove differs from before probe");
}

#[test_case]
fn boot_blocks_with_holes_or_pages_in_use_are_not_offlined() {
    let before = model_snapshot();
    let e0 = hp::offline(0).unwrap_err();
    assert_eq!(alloc::format!("{e0}"), "EINVAL: memory0 has holes (not all of it is RAM)");
    // A block without holes holding a page in use.
    let mut held = Vec::new();
    let (p, id) = loop {
        let p = page_alloc::alloc_pages_zone(10, ZoneType::Dma32).unwrap();
        held.push(p);
        let id = pfn_phys(p) / (128 * M);
        // memory0 and memory23 have holes (the first MiB, the end of RAM).
        if (1..23).contains(&id) && hp::block(id).is_some() {
            break (p, id);
        }
    };
    let e = hp::offline(id).unwrap_err();
    assert_eq!(e.errno(), "EBUSY", "memory{id} (page {p:#x} allocated): {e}");
    for p in held {
        page_alloc::free_pages(p, 10).unwrap();
    }
    assert!(model_snapshot() == before, "refusals change nothing");
}

#[test_case]
fn the_last_free_boot_block_is_offlined_removed_and_probed_back() {
    // The highest boot block whose pages are all free.
    let id = (1..24).rev().find(|&id| hp::offline(id).is_ok()).expect("a free boot block");
    let b = hp::block(id).unwrap();
    assert_eq!(b.state, BlockState::Offline);
    let managed = SPARSE.lock().backend.buddy.managed(ZoneType::Dma32);
    hp::remove(id).unwrap();
    assert!(!sparse::pfn_valid(phys_pfn(b.start)) && !mapped(b.start));
    // Now withheld: it can be probed back like any other.
    let again = hp::probe(b.start).unwrap();
    assert_eq!((again.id, again.boot), (id, false));
    hp::online(id).unwrap();
    let s = SPARSE.lock();
    assert!(!s.section_or_empty(id).early(), "a re-added section is not early");
    let now = s.backend.buddy.managed(ZoneType::Dma32);
    assert!(now >= managed + PAGES_PER_SECTION, "the block's pages are back: {managed} -> {now}");
    s.backend.buddy.check(&s.backend.vmemmap).expect("free lists consistent");
}

#[test_case]
fn ram_and_pmem_share_a_new_section_and_either_goes_alone() {
    let r = pmem::regions().into_iter().find(|r| r.start == PMEM).expect("region at 0x108000000");
    assert_eq!(r.state, pmem::State::Added);
    let before = model_snapshot();
    let (f, map) = section_word(33);
    assert_eq!(map, 0xffff_ffff, "only the persistent half");
    assert_eq!(f & flags::EARLY, 0, "a new, non-early section");
    // SAFETY: the region is added and mapped; this test owns it.
    unsafe { word(PMEM + 8 * M).write_volatile(0x7e55_e7a0_0000_0033) };

    let b = hp::add_memory(RAM33, 64 * M).unwrap();
    assert_eq!((b.id, b.start, b.size), (33, RAM33, 64 * M));
    hp::online(33).unwrap();
    let (f, map) = section_word(33);
    assert_eq!(map, u64::MAX);
    assert_ne!(f & flags::ONLINE, 0);
    assert_ne!(f & flags::TAINT_ZONE_DEVICE, 0);
    assert!(sparse::pfn_to_online_page(phys_pfn(RAM33)).is_some(), "RAM online");
    assert_eq!(sparse::pfn_to_online_page(phys_pfn(PMEM)), None, "ZONE_DEVICE is never online");
    assert_eq!(sparse::page(phys_pfn(PMEM)).unwrap().zone(), ZoneType::Device);

    // The RAM goes; persistent memory and its data stay.
    hp::offline(33).unwrap();
    hp::remove(33).unwrap();
    let (f, map) = section_word(33);
    assert_eq!(map, 0xffff_ffff);
    assert_eq!(f & flags::ONLINE, 0);
    assert!(sparse::pfn_valid(phys_pfn(PMEM)) && !sparse::pfn_valid(phys_pfn(RAM33)));
    assert!(mapped(PMEM) && !mapped(RAM33));
    // SAFETY: as above; the region is still added and mapped.
    assert_eq!(unsafe { word(PMEM + 8 * M).read_volatile() }, 0x7e55_e7a0_0000_0033);

    // The RAM again; then persistent memory goes and the RAM keeps working.
    hp::add_memory(RAM33, 64 * M).unwrap();
    hp::online(33).unwrap();
    pmem::remove(r.id, &mut quiet).unwrap();
    let (f, map) = section_word(33);
    assert_eq!(map, 0xffff_ffff_0000_0000);
    assert_ne!(f & flags::ONLINE, 0);
    assert!(!sparse::pfn_valid(phys_pfn(PMEM)) && sparse::pfn_valid(phys_pfn(RAM33)));
    assert!(!mapped(PMEM) && mapped(RAM33));
    let p = page_alloc::alloc_pages_zone(9, ZoneType::Normal).unwrap();
    assert!(phys_pfn(RAM33) <= p && p < phys_pfn(RAM33 + 64 * M), "{p:#x}");
    // SAFETY: allocated to this test alone; mapped.
    unsafe { word(pfn_phys(p)).write_volatile(1) };
    page_alloc::free_pages(p, 9).unwrap();
    buddy_consistent();

    // Back to the start: RAM out, persistent memory in (its memmap then
    // comes from DMA32, as at boot, not from the RAM block).
    hp::offline(33).unwrap();
    hp::remove(33).unwrap();
    pmem::add(r.id, &mut quiet).unwrap();
    // SAFETY: as above; added and mapped again.
    assert_eq!(unsafe { word(PMEM + 8 * M).read_volatile() }, 0x7e55_e7a0_0000_0033);
    assert!(model_snapshot() == before, "the model after both differs from before");
    buddy_consistent();
}

#[test_case]
fn onlining_probed_blocks_grows_their_zone_and_offlining_shrinks_it() {
    use kernel::mm::zone;
    use mm::zone::ZoneSpan;
    const SEC: u64 = PAGES_PER_SECTION;
    let normal = || zone::span(ZoneType::Normal);
    let span = |start: Pfn, spanned, present| ZoneSpan {
        zone_start_pfn: start,
        spanned_pages: spanned,
        present_pages: present,
    };
    let dma32 = zone::span(ZoneType::Dma32);
    assert_eq!(normal(), ZoneSpan::default(), "mem=3G: no RAM above 4 GiB");
    hp::probe(4 * G).unwrap();
    hp::probe(4 * G + 256 * M).unwrap();
    assert_eq!(normal(), ZoneSpan::default(), "an offline block is in no zone");
    hp::online(32).unwrap();
    let first = phys_pfn(4 * G);
    assert_eq!(normal(), span(first, SEC, SEC));
    let text = zone::zoneinfo();
    let tail: Vec<&str> = text.lines().skip_while(|l| !l.ends_with("Normal")).take(6).collect();
    assert_eq!(
        tail[2..],
        [
            "        spanned  32768",
            "        present  32768",
            "        managed  32768",
            "  start_pfn:           1048576"
        ]
    );
    // Block 34 over the hole of section 33: spanned grows past present.
    hp::online(34).unwrap();
    assert_eq!(normal(), span(first, 3 * SEC, 2 * SEC));
    // The first block goes: the span starts at the next online page.
    hp::offline(32).unwrap();
    assert_eq!(normal(), span(first + 2 * SEC, SEC, SEC));
    hp::offline(34).unwrap();
    assert_eq!(normal(), span(0, 0, 0), "empty again, as Linux leaves it");
    hp::remove(32).unwrap();
    hp::remove(34).unwrap();
    assert_eq!(zone::span(ZoneType::Dma32), dma32);
    let s = SPARSE.lock();
    assert_eq!(s.backend.buddy.managed(ZoneType::Normal), 0);
}

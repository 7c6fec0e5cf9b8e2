//! System RAM hotplug in memory blocks, by Linux 6.1's rules. The harness
//! boots this binary on a 4 GiB machine (3 GiB below 4 GiB, 1 GiB above)
//! with `mem=2560M`, so the RAM from 2.5 GiB to 3 GiB (below 4 GiB, past
//! ZONE_DMA32's span) and above 4 GiB is withheld, and
//! `memmap=64M!0x108000000` (given first, while the range is still RAM), so
//! section 33 starts with 64 MiB of persistent memory and ends with 64 MiB
//! of withheld RAM, which Linux cannot add: RAM comes in whole 128 MiB
//! blocks.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

extern crate alloc;

use alloc::vec::Vec;

use kernel::arch::paging;
use kernel::boot;
use kernel::drivers::memory::{self as hp, BlockState, OnlineType};
use kernel::drivers::pmem;
use kernel::mm::memblock::MEMBLOCK;
use kernel::mm::page_alloc;
use kernel::mm::sparse::{self, SPARSE};
use kernel::testing::{model_snapshot, quiet};
use mm::page::{Pfn, ZoneType, pfn_phys, phys_pfn};
use mm::sparse::{MigrateType, PAGEBLOCK_NR_PAGES, PAGES_PER_SECTION, flags, pfn_to_section_nr};

kernel::test_binary_entry!();

const M: u64 = 1 << 20;
const G: u64 = 1 << 30;
/// Section 33's halves: persistent memory, then withheld RAM.
const PMEM: u64 = 0x1_0800_0000;
const RAM33: u64 = 0x1_0c00_0000;
/// `mem=2560M`: boot memory ends here, in ZONE_DMA32's address range.
const MEM_LIMIT: u64 = 2560 * M;
const BOOT_BLOCKS: u64 = MEM_LIMIT / (128 * M);

/// The migratetype of every pageblock of `[start, start + size)`.
fn migratetypes(start: u64, size: u64) -> Vec<Option<MigrateType>> {
    let s = SPARSE.lock();
    let pfns = (phys_pfn(start)..phys_pfn(start + size)).step_by(PAGEBLOCK_NR_PAGES as usize);
    pfns.map(|p| s.pageblock_migratetype(p)).collect()
}

/// The `/proc/iomem` lines naming System RAM.
fn iomem_ram() -> Vec<alloc::string::String> {
    kernel::mm::iomem::tree().lines().filter(|l| l.ends_with(": System RAM")).collect()
}

fn section_word(nr: u64) -> (u64, u64) {
    let s = SPARSE.lock();
    let ms = s.section_or_empty(nr);
    (ms.flags(), s.subsection_map(nr))
}

fn normal() -> (u64, u64, Pfn, Pfn) {
    page_alloc::with_zone(ZoneType::Normal, |z| {
        (z.managed_pages(), z.nr_free_pages(), z.zone_start_pfn(), z.zone_end_pfn())
    })
    .unwrap()
}

fn mapped(addr: u64) -> bool {
    let off = boot::mappings().unwrap().physical_memory_offset;
    paging::mapping(x86_64::VirtAddr::new(off + addr)).is_some()
}

fn word(addr: u64) -> *mut u64 {
    (boot::mappings().unwrap().physical_memory_offset + addr) as *mut u64
}

fn buddy_consistent() {
    page_alloc::check().expect("free lists and per-CPU lists consistent");
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
    assert_eq!(blocks.len() as u64, BOOT_BLOCKS, "2.5 GiB of boot memory");
    assert!(blocks.iter().all(|b| b.id < BOOT_BLOCKS), "nothing above mem=2560M");
    // As Linux's sysfs: memory0 spans DMA and DMA32, so its valid_zones is
    // "none"; the others are DMA32.
    assert_eq!(
        alloc::format!("{}", blocks[0]),
        "memory0 online  [mem 0x0000000000000000-0x0000000007ffffff] none (boot) phys_index \
         00000000 memmap_on_memory 0 dimm -"
    );
    assert_eq!(
        alloc::format!("{}", blocks[19]),
        "memory19 online  [mem 0x0000000098000000-0x000000009fffffff] DMA32 (boot) \
         phys_index 00000013 memmap_on_memory 0 dimm -"
    );
}

#[test_case]
fn probe_refuses_what_is_not_withheld_ram_and_changes_nothing() {
    let before = model_snapshot();
    let e = |r: Result<hp::MemoryBlock, hp::HotplugError>| r.unwrap_err().errno();
    // Linux: probe_store's alignment, then __add_memory: E2BIG beyond
    // MAX_PHYSMEM_BITS, EEXIST when "System RAM" conflicts in iomem, EINVAL
    // when not whole blocks. Then Tessera's own: only withheld RAM.
    assert_eq!(e(hp::probe(2 * G)), "EEXIST", "boot RAM");
    assert_eq!(e(hp::probe(4 * G + 4096)), "EINVAL", "misaligned");
    let big = hp::probe(1 << 46).unwrap_err();
    assert_eq!(
        alloc::format!("{big}"),
        "E2BIG: Hotplug memory [0x400000000000-0x400008000000] exceeds maximum addressable \
         range [0x0-0x3fffffffffff]"
    );
    assert_eq!(e(hp::probe(PMEM)), "EEXIST", "straddles the persistent memory resource");
    assert_eq!(e(hp::probe(3 * G)), "EINVAL", "the PCI hole: Tessera's refusal");
    assert_eq!(e(hp::probe(5 * G)), "EINVAL", "beyond RAM: Tessera's refusal");
    let half = hp::add_memory(RAM33, 64 * M).unwrap_err();
    assert_eq!(
        alloc::format!("{half}"),
        "EINVAL: Block size [0x8000000] unaligned hotplug range: start 0x10c000000, size 0x4000000"
    );
    assert_eq!(hp::add_memory(RAM33, 96 * M).unwrap_err().errno(), "EINVAL");
    let e2 = hp::add_memory(2 * G + M, 2 * M).unwrap_err();
    assert_eq!(e2.errno(), "EEXIST", "the conflict comes first");
    assert_eq!(e(hp::online(32)), "ENODEV");
    assert_eq!(e(hp::offline(32)), "ENODEV");
    let busy = hp::remove(5).unwrap_err();
    assert_eq!(
        alloc::format!("{busy}"),
        "EBUSY: removing memory fails, because memory [0x0000000028000000-0x000000002fffffff] \
         is onlined"
    );
    assert_eq!(e(hp::online(5)), "EINVAL", "already online");
    assert!(model_snapshot() == before);
}

#[test_case]
fn a_probed_block_onlines_offlines_and_is_removed_leaving_nothing() {
    let before = model_snapshot();
    let (managed0, _, _, _) = normal();
    assert_eq!(managed0, 0, "mem=2560M: no ZONE_NORMAL at boot");
    assert!(!sparse::pfn_valid(phys_pfn(4 * G)), "withheld RAM has no memmap");
    let ram_before = iomem_ram();
    let b = hp::probe(4 * G).unwrap();
    assert_eq!((b.id, b.state, b.boot), (32, BlockState::Offline, false));
    assert_eq!(
        alloc::format!("{b}"),
        "memory32 offline [mem 0x0000000100000000-0x0000000107ffffff] Normal Movable \
         phys_index 00000020 memmap_on_memory 0 dimm -"
    );
    assert_eq!(b.nr_vmemmap_pages, 0, "probe never puts the memmap on the block (MHP_NONE)");
    // register_memory_resource: the block is System RAM in /proc/iomem.
    let ram_added = iomem_ram();
    assert!(ram_added.contains(&"100000000-107ffffff : System RAM".into()), "{ram_added:?}");
    assert_eq!(ram_added.len(), ram_before.len() + 1);
    assert!(sparse::pfn_valid(phys_pfn(4 * G)) && mapped(4 * G));
    assert_eq!(sparse::pfn_to_online_page(phys_pfn(4 * G)), None, "offline");
    assert_eq!(section_word(32).0 & flags::ONLINE, 0);
    assert_eq!(hp::probe(4 * G).unwrap_err().errno(), "EEXIST");
    assert!(MEMBLOCK.lock().memory.overlaps(4 * G, 128 * M));

    let b = hp::online_type(32, OnlineType::OnlineKernel).unwrap();
    assert_eq!(b.zone, Some(ZoneType::Normal));
    assert!(
        alloc::format!("{b}").ends_with("] Normal phys_index 00000020 memmap_on_memory 0 dimm -"),
        "{b}"
    );
    // move_pfn_range_to_zone: every pageblock MIGRATE_MOVABLE.
    assert!(migratetypes(4 * G, 128 * M).iter().all(|&m| m == Some(MigrateType::Movable)));
    assert_eq!(hp::remove(32).unwrap_err().errno(), "EBUSY", "online");
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

    assert!(migratetypes(4 * G, 128 * M).iter().all(|&m| m == Some(MigrateType::Movable)));
    hp::offline(32).unwrap();
    assert_eq!(normal(), (0, 0, Pfn(0), Pfn(0)), "pages taken back, span empty");
    assert_eq!(section_word(32).0 & flags::ONLINE, 0);
    assert_eq!(hp::block(32).unwrap().state, BlockState::Offline);
    // Offlined pageblocks stay isolated.
    assert!(migratetypes(4 * G, 128 * M).iter().all(|&m| m == Some(MigrateType::Isolate)));
    buddy_consistent();
    hp::remove(32).unwrap();
    assert!(hp::block(32).is_none());
    assert_eq!(iomem_ram(), ram_before, "release_mem_region_adjustable");
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
        // memory0 has holes (the first MiB).
        if (1..BOOT_BLOCKS).contains(&id) && hp::block(id).is_some() {
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
    let ram0 = iomem_ram();
    let id = (1..BOOT_BLOCKS).rev().find(|&id| hp::offline(id).is_ok()).expect("a free block");
    let b = hp::block(id).unwrap();
    assert_eq!(b.state, BlockState::Offline);
    assert!(migratetypes(b.start, b.size).iter().all(|&m| m == Some(MigrateType::Isolate)));
    hp::remove(id).unwrap();
    assert!(!sparse::pfn_valid(phys_pfn(b.start)) && !mapped(b.start));
    // /proc/iomem: boot RAM loses the block (trimmed or split).
    let ram1 = iomem_ram();
    let (s0, e0) = (b.start, b.end() - 1);
    assert!(
        ram1.iter().all(|l| {
            let (a, z) = l.split_once(" : ").unwrap().0.split_once('-').unwrap();
            let (a, z) = (u64::from_str_radix(a, 16).unwrap(), u64::from_str_radix(z, 16).unwrap());
            z < s0 || a > e0
        }),
        "{ram1:?}"
    );
    assert!(ram1.len() >= ram0.len(), "{ram0:?} -> {ram1:?}");
    // Now withheld: it can be probed back like any other. Linux's zone for
    // it: DMA32 if DMA32's span (shrunk when the block was its end) still
    // meets it, else Normal, though it lies below 4 GiB.
    let dma32 = kernel::mm::zone::span(ZoneType::Dma32);
    let want =
        if dma32.zone_end_pfn() > phys_pfn(b.start) { ZoneType::Dma32 } else { ZoneType::Normal };
    let again = hp::probe(b.start).unwrap();
    assert_eq!((again.id, again.boot), (id, false));
    assert_eq!(alloc::format!("{}", again.valid_zones()), alloc::format!("{want} Movable"));
    assert!(iomem_ram().len() == ram1.len() + 1, "its own System RAM resource");
    let managed = page_alloc::managed(want);
    let on = hp::online(id).unwrap();
    assert_eq!(on.zone, Some(want));
    assert_eq!(sparse::page(phys_pfn(b.start)).unwrap().zone(), want);
    assert!(migratetypes(b.start, b.size).iter().all(|&m| m == Some(MigrateType::Movable)));
    let s = SPARSE.lock();
    assert!(!s.section_or_empty(id).early(), "a re-added section is not early");
    drop(s);
    let now = page_alloc::managed(want);
    assert!(now >= managed + PAGES_PER_SECTION, "the block's pages are back: {managed} -> {now}");
    buddy_consistent();
}

#[test_case]
fn a_block_above_mem_below_4g_goes_to_normal_as_in_linux() {
    // memory20 at 2.5 GiB: withheld by mem=2560M, below 4 GiB, past
    // ZONE_DMA32's span: default_kernel_zone_for_pfn gives Normal.
    let before = model_snapshot();
    let dma32 = kernel::mm::zone::span(ZoneType::Dma32);
    assert!(dma32.zone_end_pfn() <= phys_pfn(MEM_LIMIT), "{dma32:?}");
    let b = hp::probe(MEM_LIMIT).unwrap();
    assert_eq!(b.id, BOOT_BLOCKS);
    assert_eq!(alloc::format!("{}", b.valid_zones()), "Normal Movable");
    let dma32_managed = page_alloc::managed(ZoneType::Dma32);
    let b = hp::online(b.id).unwrap();
    assert_eq!(b.zone, Some(ZoneType::Normal));
    assert_eq!(alloc::format!("{}", b.valid_zones()), "Normal");
    assert_eq!(sparse::page(phys_pfn(MEM_LIMIT)).unwrap().zone(), ZoneType::Normal);
    assert_eq!(page_alloc::managed(ZoneType::Dma32), dma32_managed);
    // A Normal allocation comes from it, below 4 GiB; DMA32 ones never do.
    let p = page_alloc::alloc_pages_zone(10, ZoneType::Normal).unwrap();
    assert_eq!(sparse::page(p).unwrap().zone(), ZoneType::Normal, "{p:#x}");
    page_alloc::free_pages(p, 10).unwrap();
    buddy_consistent();
    hp::offline(b.id).unwrap();
    hp::remove(b.id).unwrap();
    assert!(model_snapshot() == before, "the model after remove differs from before probe");
}

#[test_case]
fn ram_cannot_join_pmem_in_its_section_as_in_linux() {
    // Section 33 is one 128 MiB block. Linux adds RAM in whole blocks, so
    // the 64 MiB of RAM beside the persistent memory is refused (EINVAL,
    // unaligned), and the whole block conflicts with the "Persistent Memory
    // (legacy)" resource (EEXIST), whether the region is added or not.
    let r = pmem::regions().into_iter().find(|r| r.start == PMEM).expect("region at 0x108000000");
    assert_eq!(r.state, pmem::State::Added);
    let before = model_snapshot();
    let (f, map) = section_word(33);
    assert_eq!(map, 0xffff_ffff, "only the persistent half");
    assert_eq!(f & flags::EARLY, 0, "a new, non-early section");
    // SAFETY: the region is added and mapped; this test owns it.
    unsafe { word(PMEM + 8 * M).write_volatile(0x7e55_e7a0_0000_0033) };

    assert_eq!(hp::add_memory(RAM33, 64 * M).unwrap_err().errno(), "EINVAL");
    assert_eq!(hp::probe(PMEM).unwrap_err().errno(), "EEXIST");
    assert!(hp::block(33).is_none());
    pmem::remove(r.id, &mut quiet).unwrap();
    let e = hp::probe(PMEM).unwrap_err();
    assert!(alloc::format!("{e}").contains("Persistent Memory (legacy)"), "{e}");
    assert_eq!(hp::add_memory(RAM33, 64 * M).unwrap_err().errno(), "EINVAL");
    assert_eq!(section_word(33).1, 0, "nothing left in section 33");
    pmem::add(r.id, &mut quiet).unwrap();
    // SAFETY: as above; added and mapped again; its data stayed.
    assert_eq!(unsafe { word(PMEM + 8 * M).read_volatile() }, 0x7e55_e7a0_0000_0033);
    assert!(model_snapshot() == before, "refusals change nothing");
    // The block after it is RAM alone: it comes and goes beside the
    // persistent section, which keeps its data.
    let b = hp::probe(PMEM + 128 * M).unwrap();
    hp::online(b.id).unwrap();
    assert_eq!(section_word(33).1, 0xffff_ffff);
    hp::offline(b.id).unwrap();
    hp::remove(b.id).unwrap();
    // SAFETY: as above.
    assert_eq!(unsafe { word(PMEM + 8 * M).read_volatile() }, 0x7e55_e7a0_0000_0033);
    assert!(model_snapshot() == before);
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
    assert_eq!(normal(), span(Pfn(0), 0, 0), "empty again, as Linux leaves it");
    hp::remove(32).unwrap();
    hp::remove(34).unwrap();
    assert_eq!(zone::span(ZoneType::Dma32), dma32);
    assert_eq!(page_alloc::managed(ZoneType::Normal), 0);
}

/// A block's whole life allocates nothing from the heap while a zone lock
/// is held, so the heap can grow at any step of it (DESIGN.md §4a).
#[test_case]
fn nothing_allocates_under_a_zone_lock_in_a_block_life() {
    let under = kernel::mm::heap::allocs_under_zone_lock();
    hp::probe(4 * G).unwrap();
    hp::online_type(32, OnlineType::OnlineKernel).unwrap();
    hp::offline(32).unwrap();
    hp::remove(32).unwrap();
    assert_eq!(
        kernel::mm::heap::allocs_under_zone_lock(),
        under,
        "heap allocations under a zone lock"
    );
}

/// Offlining drains every CPU's per-CPU page lists first, as Linux's
/// `__offline_pages` does (`drain_all_pages`): free pages of the block
/// that wait on a list are neither in the zone's free lists nor
/// allocated, and without the drain the offline would find them busy.
/// Afterwards no page of the block is handed out, from any list.
#[test_case]
fn offline_drains_the_per_cpu_lists_first() {
    let before = model_snapshot();
    hp::probe(4 * G).unwrap();
    hp::online(32).unwrap();
    // Normal has only the new block: an order-0 page comes from it, through
    // this CPU's list, which keeps the rest of the batch it took.
    let p = page_alloc::alloc_pages_zone(0, ZoneType::Normal).unwrap();
    assert_eq!(pfn_to_section_nr(p), 32);
    page_alloc::free_pages(p, 0).unwrap();
    let listed = page_alloc::nr_pcp_pages(ZoneType::Normal);
    let (batch, _) = page_alloc::pcp_batch_high(ZoneType::Normal);
    assert_eq!(listed, batch, "a batch of memory32's pages waits on this CPU's list");
    hp::offline(32).expect("the offline drains the lists, then finds every page free");
    assert_eq!(page_alloc::nr_pcp_pages(ZoneType::Normal), 0);
    assert_eq!(normal(), (0, 0, Pfn(0), Pfn(0)), "every page taken back");
    let q = page_alloc::alloc_pages_zone(0, ZoneType::Normal).unwrap();
    assert!(pfn_phys(q) < MEM_LIMIT, "{q:#x} comes from boot memory, not the offline block");
    page_alloc::free_pages(q, 0).unwrap();
    buddy_consistent();
    hp::remove(32).unwrap();
    assert!(model_snapshot() == before, "the model after remove differs from before probe");
}

/// memory34 and memory35: RAM above mem=, handed over as a DIMM would be.
const DIMM: u64 = 0x1_1000_0000;
const BLOCK: u64 = 128 * M;

fn block_pfns(start: u64) -> (Pfn, Pfn) {
    (phys_pfn(start), phys_pfn(start + BLOCK))
}

/// Free pages of the kernel zones, per-CPU lists drained.
fn kernel_free() -> u64 {
    page_alloc::drain_all_pages(None);
    page_alloc::KERNEL_ZONES.iter().map(|&z| page_alloc::nr_free(z)).sum()
}

/// `memory_hotplug.memmap_on_memory=1` (this boot's option): a one-block
/// DIMM's memmap is its own first 2 MiB. The vmemmap of its first page
/// maps into the block; the page allocator lost no 2 MiB for it; the 512
/// pages stay out of ZONE_MOVABLE's managed pages; and it goes away with
/// the block. A DIMM of two blocks keeps its memmap elsewhere (Linux 6.1).
#[test_case]
fn a_one_block_dimm_carries_its_memmap_on_itself() {
    assert!(hp::memmap_on_memory(), "this boot has memory_hotplug.memmap_on_memory=1");
    assert_eq!(hp::auto_online_blocks(), hp::OnlinePolicy::Offline, "Linux 6.1's default");
    let free = kernel_free();
    let added = hp::add_memory_dimm(DIMM, BLOCK, "MP00").unwrap();
    let b = added[0];
    assert_eq!((b.id, b.state, b.nr_vmemmap_pages), (34, BlockState::Offline, 512));
    assert_eq!(alloc::format!("{}", b.dimm.unwrap()), "MP00");
    let (first, end) = block_pfns(DIMM);
    let desc = kernel::mm::sections::pfn_to_page(first);
    let (phys, _) = paging::mapping(x86_64::VirtAddr::new(desc)).expect("vmemmap mapped");
    assert_eq!(phys.as_u64(), DIMM, "memory34's first descriptor lives at its own start");
    let last = kernel::mm::sections::pfn_to_page(end - 1);
    let (phys, _) = paging::mapping(x86_64::VirtAddr::new(last)).unwrap();
    assert!(phys.as_u64() < DIMM + 2 * M, "the whole memmap in the first 2 MiB: {phys:#x}");
    assert!(free - kernel_free() < 512, "no 2 MiB of memmap from the page allocator");
    let on = hp::online_type(34, OnlineType::OnlineMovable).unwrap();
    assert_eq!(on.zone, Some(ZoneType::Movable));
    assert!(
        alloc::format!("{on}")
            .ends_with("] Movable phys_index 00000022 memmap_on_memory 1 dimm MP00"),
        "{on}"
    );
    let managed = page_alloc::managed(ZoneType::Movable);
    assert_eq!(managed, PAGES_PER_SECTION - 512, "the memmap's pages are not the allocator's");
    assert_eq!(kernel::mm::zone::span(ZoneType::Movable).present_pages, PAGES_PER_SECTION);
    assert_eq!(migratetypes(DIMM, 2 * M), [Some(MigrateType::Unmovable)]);
    assert!(sparse::page(first).unwrap().is_reserved());
    buddy_consistent();
    let removed = hp::offline_and_remove_memory(DIMM, BLOCK).unwrap();
    assert_eq!(removed.len(), 1);
    assert!(hp::block(34).is_none() && !sparse::pfn_valid(first));
    assert_eq!(page_alloc::managed(ZoneType::Movable), 0);
    // Two blocks: Linux 6.1 puts the memmap on the memory only for one.
    let two = hp::add_memory_dimm(DIMM, 2 * BLOCK, "MP01").unwrap();
    assert!(two.iter().all(|b| b.nr_vmemmap_pages == 0), "{:?}", two[0]);
    hp::offline_and_remove_memory(DIMM, 2 * BLOCK).unwrap();
    // Linux's checks, without the mem= one: System RAM conflicts, unaligned.
    assert_eq!(hp::add_memory_dimm(G, BLOCK, "MP00").unwrap_err().errno(), "EEXIST");
    assert_eq!(hp::add_memory_dimm(DIMM, M, "MP00").unwrap_err().errno(), "EINVAL");
    assert_eq!(hp::add_memory_dimm(DIMM, BLOCK, "").unwrap_err().errno(), "EINVAL");
    buddy_consistent();
}

/// A movable workload in a ZONE_MOVABLE block: offline migrates every page
/// out, contents intact; a pinned page makes it EBUSY, nothing lost, the
/// block still online; `offline_and_remove_memory` onlines again what it
/// offlined when a later block refuses.
#[test_case]
fn offline_migrates_movable_pages_and_a_pinned_one_refuses() {
    use kernel::mm::migrate::workload;
    // memhp_default_state=online_movable (as sysfs auto_online_blocks).
    hp::set_auto_online_blocks(hp::OnlinePolicy::OnlineMovable);
    let added = hp::add_memory_dimm(DIMM + BLOCK, BLOCK, "MP02").unwrap();
    hp::set_auto_online_blocks(hp::OnlinePolicy::Offline);
    assert_eq!((added[0].state, added[0].zone), (BlockState::Online, Some(ZoneType::Movable)));
    hp::offline_and_remove_memory(DIMM + BLOCK, BLOCK).unwrap();
    let added = hp::add_memory_dimm(DIMM, 2 * BLOCK, "MP02").unwrap();
    assert!(added.iter().all(|b| b.state == BlockState::Offline), "offline by default");
    let (s34, e34) = block_pfns(DIMM);
    let (s35, e35) = block_pfns(DIMM + BLOCK);
    hp::online_type(34, OnlineType::OnlineMovable).unwrap();
    // Kernel allocations never land in ZONE_MOVABLE.
    let k = page_alloc::alloc_pages(0).unwrap();
    assert!(pfn_phys(k) < MEM_LIMIT, "{k:#x}");
    page_alloc::free_pages(k, 0).unwrap();
    assert_eq!(workload::fill(s34, e34, 300), Ok(300));
    hp::online_type(35, OnlineType::OnlineMovable).unwrap();
    assert_eq!(workload::fill(s35, e35, 10), Ok(310));
    assert_eq!(workload::count_in(s34, e34), 300);
    let c = workload::check();
    assert_eq!((c.pages, c.bad, c.got), (310, 0, c.want));
    let pinned = workload::pin(s34, e34).unwrap();
    let err = hp::offline(34).unwrap_err();
    assert_eq!(err, hp::HotplugError::Busy { id: 34, pfn: pinned }, "{err}");
    assert_eq!(hp::block(34).unwrap().state, BlockState::Online);
    assert_eq!(workload::count_in(s34, e34), 300, "nothing moved");
    assert_eq!(workload::unpin(), 1);
    let off = hp::offline(34).unwrap();
    assert_eq!(off.state, BlockState::Offline);
    assert_eq!(workload::count_in(s34, e34), 0, "every page migrated out");
    let c = workload::check();
    assert_eq!((c.pages, c.bad, c.got), (310, 0, c.want), "contents survived migration");
    hp::online_type(34, OnlineType::OnlineMovable).unwrap();
    // The eject path: memory34 offlines, memory35 refuses (a pinned
    // page): memory34 is onlined again, in ZONE_MOVABLE; nothing removed.
    workload::pin(s35, e35).unwrap();
    let err = hp::offline_and_remove_memory(DIMM, 2 * BLOCK).unwrap_err();
    assert_eq!(err.errno(), "EBUSY", "{err}");
    for id in [34, 35] {
        let b = hp::block(id).unwrap();
        assert_eq!((b.state, b.zone), (BlockState::Online, Some(ZoneType::Movable)), "{b}");
    }
    workload::unpin();
    let removed = hp::offline_and_remove_memory(DIMM, 2 * BLOCK).unwrap();
    assert_eq!(removed.iter().map(|b| b.id).collect::<Vec<_>>(), [34, 35]);
    let c = workload::check();
    assert_eq!((c.pages, c.bad, c.got), (310, 0, c.want), "contents survived the eject");
    assert_eq!(workload::release(), 310);
    assert_eq!(kernel::mm::migrate::nr_movable_pages(), 0);
    buddy_consistent();
}

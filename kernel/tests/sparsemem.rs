//! The memory model after boot, checked against memblock (an independent
//! record of the RAM the firmware gave): sections, sub-section maps, the
//! vmemmap, page descriptors and the page allocator. The harness boots this
//! binary on several machines (1 GiB with RAM ending mid-section, 2 GiB
//! with two `memmap=` ranges in one section, 5 GiB with RAM above 4 GiB).
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

extern crate alloc;

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use kernel::arch::paging::{self, MapSize};
use kernel::boot::{self, layout::VMEMMAP_START};
use kernel::drivers::pmem;
use kernel::mm::memblock::MEMBLOCK;
use kernel::mm::page_alloc::{self, ZONES};
use kernel::mm::sparse::{self, SPARSE};
use mm::buddy::MAX_ORDER;
use mm::memblock::Region;
use mm::page::{MemMap, Pfn, ZoneType, pfn_phys};
use mm::sparse::{
    NR_MEM_SECTIONS, PAGES_PER_SECTION, PAGES_PER_SUBSECTION, flags, pfn_to_section_nr,
    section_nr_to_pfn,
};

kernel::test_binary_entry!();

fn memory() -> Vec<Region> {
    MEMBLOCK.lock().memory.regions().to_vec()
}

/// The sub-section map each section should have from its RAM, computed
/// from memblock one 2 MiB block at a time.
fn expected_maps() -> BTreeMap<u64, u64> {
    maps_of(memory().iter().map(|r| (r.base, r.end())))
}

/// The persistent ranges the driver added at boot.
fn pmem() -> Vec<(u64, u64)> {
    pmem::regions().iter().map(|r| (r.start, r.end())).collect()
}

fn in_pmem(pa: u64) -> bool {
    pmem().iter().any(|&(s, e)| (s..e).contains(&pa))
}

fn maps_of(ranges: impl Iterator<Item = (u64, u64)>) -> BTreeMap<u64, u64> {
    let mut maps = BTreeMap::new();
    for r in ranges.map(|(base, end)| Region { base, size: end - base }) {
        let mut block = r.base & !((2 << 20) - 1);
        while block < r.end() {
            let pfn = block >> 12;
            let bit = (pfn % PAGES_PER_SECTION) / PAGES_PER_SUBSECTION;
            *maps.entry(pfn_to_section_nr(Pfn::new(pfn))).or_insert(0u64) |= 1 << bit;
            block += 2 << 20;
        }
    }
    maps
}

use rng::Rng;

#[test_case]
fn sections_touched_by_ram_are_present_early_online_with_their_bits() {
    let want = expected_maps();
    let device = maps_of(pmem().into_iter());
    let last = *want.keys().last().unwrap();
    let s = SPARSE.lock();
    for nr in 0..=last + 8 {
        match (want.get(&nr), s.section(nr)) {
            (Some(&map), Some(ms)) => {
                let dev = device.get(&nr).copied().unwrap_or(0);
                let taint = if dev != 0 { flags::TAINT_ZONE_DEVICE } else { 0 };
                let all = flags::PRESENT | flags::HAS_MEM_MAP | flags::ONLINE | flags::EARLY;
                assert_eq!(ms.flags(), all | taint, "section {nr}");
                assert_eq!(s.subsection_map(nr), map | dev, "section {nr}");
                let pfn = section_nr_to_pfn(nr) + 777;
                let desc = ms.mem_map_addr() + pfn.as_u64() * 64;
                assert_eq!(desc, s.pfn_to_page(pfn), "section {nr}");
            }
            (None, ms) => assert!(ms.is_none_or(|ms| ms.raw() == 0), "section {nr} not RAM"),
            (Some(_), None) => panic!("section {nr} has RAM but no root"),
        }
    }
    // Persistent memory outside RAM (`memmap=nn!ss` past the end of RAM,
    // as Linux allows) adds sections of its own, holding only its bits.
    let device_only: Vec<_> = device.iter().filter(|(nr, _)| !want.contains_key(nr)).collect();
    for &(&nr, &dev) in &device_only {
        let ms = s.section(nr).expect("an added device section");
        assert_eq!(s.subsection_map(nr), dev, "section {nr}");
        assert_eq!(ms.flags() & (flags::PRESENT | flags::EARLY), flags::PRESENT, "section {nr}");
    }
    assert_eq!(s.present_sections().count(), want.len() + device_only.len());
    assert!(s.section(NR_MEM_SECTIONS).is_none());
}

#[test_case]
fn pfn_valid_and_online_pages_follow_the_bits() {
    let want = expected_maps();
    let top = (*want.keys().last().unwrap() + 4) * PAGES_PER_SECTION;
    let mut rng = Rng::new(0x1234_5678_9abc_def1);
    for _ in 0..20_000 {
        let pfn = Pfn::new(rng.below(top));
        let nr = pfn_to_section_nr(pfn);
        let bit = (pfn.as_u64() % PAGES_PER_SECTION) / PAGES_PER_SUBSECTION;
        let present = want.contains_key(&nr);
        let set = want.get(&nr).is_some_and(|m| m & (1 << bit) != 0);
        assert_eq!(sparse::pfn_valid(pfn), present, "pfn {pfn:#x}");
        assert_eq!(sparse::pfn_to_online_page(pfn).is_some(), set, "pfn {pfn:#x}");
        if set {
            let desc = VMEMMAP_START + pfn.as_u64() * 64;
            assert_eq!(sparse::pfn_to_online_page(pfn), Some(desc));
        }
    }
    assert!(!sparse::pfn_valid(Pfn::new(u64::MAX)));
    assert!(!sparse::pfn_valid(Pfn::new(1 << 34)));
}

#[test_case]
fn the_vmemmap_uses_one_2m_page_per_early_section_from_reserved_memory() {
    let mut backing = Vec::new();
    for nr in expected_maps().keys() {
        let virt = VMEMMAP_START + nr * (2 << 20);
        let (phys, size) = paging::mapping(x86_64::VirtAddr::new(virt)).expect("memmap mapped");
        let phys = phys.as_u64();
        assert_eq!(size, MapSize::Size2M, "section {nr}");
        assert_eq!(phys % (2 << 20), 0);
        assert!(MEMBLOCK.lock().reserved.overlaps(phys, 2 << 20), "memmap at {phys:#x}");
        backing.push(phys);
    }
    backing.sort_unstable();
    assert!(backing.windows(2).all(|w| w[0] + (2 << 20) <= w[1]), "memmaps overlap");
    // Past the last section nothing is mapped.
    let after = VMEMMAP_START + (expected_maps().keys().last().unwrap() + 1) * (2 << 20);
    assert_eq!(paging::mapping(x86_64::VirtAddr::new(after)), None);
}

/// The zone of System RAM at physical address `pa` on x86_64 Linux,
/// written out here rather than taken from the kernel: ZONE_DMA below
/// 16 MiB, ZONE_DMA32 below 4 GiB, ZONE_NORMAL above.
fn linux_zone(pa: u64) -> ZoneType {
    match pa {
        0..0x100_0000 => ZoneType::Dma,
        0x100_0000..0x1_0000_0000 => ZoneType::Dma32,
        _ => ZoneType::Normal,
    }
}

#[test_case]
fn descriptors_carry_zone_node_and_reservation() {
    let mb = MEMBLOCK.lock().clone();
    let regions = pmem::regions();
    let s = SPARSE.lock();
    let mut zones_seen = [0u64; 5];
    for nr in expected_maps().keys() {
        let (start, end) = (section_nr_to_pfn(*nr), section_nr_to_pfn(nr + 1));
        // A sample, and the pages on each side of the zone boundaries.
        let edges = [0xfff, 0x1000, 0xf_ffff, 0x10_0000].map(Pfn::new).into_iter();
        for pfn in (start..end).step_by(61).chain(edges.filter(|p| (start..end).contains(p))) {
            let p = s.page(pfn).expect("early sections have every descriptor");
            let pa = pfn_phys(pfn);
            zones_seen[p.zone() as usize] += 1;
            if let Some(r) = regions.iter().find(|r| (r.start..r.end()).contains(&pa)) {
                assert_eq!((p.zone(), p.pgmap), (ZoneType::Device, r.pgmap()), "pfn {pfn:#x}");
                assert!(in_pmem(pa), "pfn {pfn:#x}: region {r} not in the firmware map");
                continue;
            }
            assert_eq!((p.zone(), p.nid(), p.pgmap), (linux_zone(pa), 0, 0), "pfn {pfn:#x}");
            let ram = mb.memory.overlaps(pa, 4096);
            if !ram || mb.reserved.overlaps(pa, 4096) {
                assert!(p.is_reserved(), "pfn {pfn:#x} is a hole or reserved");
                assert_eq!(p.refcount, 1);
            } else {
                assert!(!p.is_reserved(), "pfn {pfn:#x} is free RAM");
            }
        }
    }
    // Every machine has DMA and DMA32 pages; Normal ones exactly when RAM
    // reaches above 4 GiB; Device ones exactly with a region in RAM's
    // sections.
    let above_4g = mb.memory.regions().iter().any(|r| r.end() > 0x1_0000_0000);
    assert!(zones_seen[ZoneType::Dma as usize] > 0 && zones_seen[ZoneType::Dma32 as usize] > 0);
    assert_eq!(zones_seen[ZoneType::Normal as usize] > 0, above_4g, "{zones_seen:?}");
    let maps = expected_maps();
    let device = regions.iter().any(|r| {
        r.state == pmem::State::Added
            && maps.contains_key(&pfn_to_section_nr(Pfn::new(r.start >> 12)))
    });
    assert_eq!(zones_seen[ZoneType::Device as usize] > 0, device, "{zones_seen:?}");
}

#[test_case]
fn free_pages_are_what_memblock_left() {
    let mb = MEMBLOCK.lock().clone();
    // Whole pages of each free range (a page partly reserved stays out).
    let free_pages: u64 = mb
        .free_ranges()
        .iter()
        .map(|r| (r.end() / 4096).saturating_sub(r.base.div_ceil(4096)))
        .sum();
    let managed: u64 = ZONES.iter().map(|&z| page_alloc::managed(z)).sum();
    assert_eq!(managed, free_pages);
    for z in ZONES {
        let counted: u64 = page_alloc::free_counts(z).iter().enumerate().map(|(o, n)| n << o).sum();
        assert_eq!(counted, page_alloc::nr_free(z), "zone {z}");
    }
    page_alloc::check().expect("free lists and per-CPU lists consistent");
}

#[test_case]
fn every_order_allocates_usable_aligned_memory_and_frees_back() {
    // Free counts leave out the per-CPU lists: compare them drained.
    page_alloc::drain_all_pages(None);
    let before: Vec<_> = ZONES.iter().map(|&z| page_alloc::free_counts(z)).collect();
    let off = boot::mappings().unwrap().physical_memory_offset;
    let mut got = Vec::new();
    for order in 0..=MAX_ORDER {
        let pfn = page_alloc::alloc_pages(order).expect("memory for every order");
        assert_eq!(pfn.as_u64() % (1 << order), 0, "order {order}");
        let p = sparse::page(pfn).unwrap();
        assert_eq!((p.refcount, p.is_reserved(), p.is_buddy()), (1, false, false));
        let last = pfn + (1 << order) - 1;
        for (i, at) in [pfn, last].into_iter().enumerate() {
            let ptr = (off + pfn_phys(at)) as *mut u64;
            // SAFETY: the page allocator just handed these pages to this
            // test alone; RAM is mapped at the physical-memory offset.
            unsafe {
                ptr.write_volatile(0xabcd_0000 + i as u64);
                assert_eq!(ptr.read_volatile(), 0xabcd_0000 + i as u64);
            }
        }
        got.push((pfn, order));
    }
    // No two blocks overlap.
    let mut ranges: Vec<(Pfn, Pfn)> = got.iter().map(|&(p, o)| (p, p + (1 << o))).collect();
    ranges.sort_unstable();
    assert!(ranges.windows(2).all(|w| w[0].1 <= w[1].0));
    for (pfn, order) in got {
        page_alloc::free_pages(pfn, order).unwrap();
    }
    page_alloc::drain_all_pages(None);
    let after: Vec<_> = ZONES.iter().map(|&z| page_alloc::free_counts(z)).collect();
    assert_eq!(after, before, "freeing everything merges back");
}

#[test_case]
fn zone_limits_are_respected_and_bad_frees_refused() {
    let pfn = page_alloc::alloc_pages_zone(0, ZoneType::Dma).expect("DMA memory");
    assert!(pfn < Pfn::new((16 << 20) >> 12), "{pfn:#x}");
    page_alloc::free_pages(pfn, 0).unwrap();
    assert!(page_alloc::free_pages(pfn, 0).is_err(), "double free");
    let pfn32 = page_alloc::alloc_pages_zone(3, ZoneType::Dma32).unwrap();
    assert!(pfn32 < Pfn::new((4u64 << 30) >> 12));
    assert!(page_alloc::free_pages(pfn32 + 1, 0).is_err(), "not the head");
    assert!(page_alloc::free_pages(pfn32, 2).is_err(), "wrong order");
    page_alloc::free_pages(pfn32, 3).unwrap();
    assert!(page_alloc::free_pages(Pfn::new(0), 0).is_err(), "page 0 is reserved");
    page_alloc::check().expect("free lists and per-CPU lists consistent");
}

#[test_case]
fn boundaries_of_every_ram_range_and_sub_section() {
    let want = expected_maps();
    let sub = PAGES_PER_SUBSECTION;
    let mut probes = Vec::new();
    for r in memory() {
        let (first, end) = (r.base >> 12, r.end() >> 12);
        for edge in [first, end] {
            let sub_start = edge & !(sub - 1);
            let sec_start = edge & !(PAGES_PER_SECTION - 1);
            for p in [edge, sub_start, sub_start + sub, sec_start, sec_start + PAGES_PER_SECTION] {
                probes.extend([p.wrapping_sub(1), p, p + 1]);
            }
        }
    }
    for pfn in probes.into_iter().filter(|&p| p != u64::MAX).map(Pfn::new) {
        let nr = pfn_to_section_nr(pfn);
        let bit = (pfn.as_u64() % PAGES_PER_SECTION) / sub;
        let set = want.get(&nr).is_some_and(|m| m & (1 << bit) != 0);
        assert_eq!(sparse::pfn_valid(pfn), want.contains_key(&nr), "pfn_valid({pfn:#x})");
        assert_eq!(sparse::pfn_to_online_page(pfn).is_some(), set, "online({pfn:#x})");
    }
    // Where RAM ends inside a sub-section (1 GiB: 0x3ffe0000), the rest of
    // that sub-section is online memmap too, as on Linux, but reserved.
    let last = memory().last().unwrap().end();
    if !last.is_multiple_of(2 << 20) {
        let pfn = Pfn::new(last >> 12);
        assert!(sparse::pfn_to_online_page(pfn).is_some(), "{pfn:#x}");
        assert!(sparse::page(pfn).unwrap().is_reserved());
    }
}

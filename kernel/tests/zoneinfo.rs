//! The zones `/proc/zoneinfo` shows, against the state they describe. The
//! harness boots this binary on the default machine: 2 GiB, with the
//! emulated persistent range [0x72000000, 0x74000000) added into
//! ZONE_DEVICE at boot; Linux 6.1 with `memmap=32M!0x72000000` on the same
//! QEMU machine shows the same spans and present pages.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

use kernel::drivers::memory::{self as hp, BlockState};
use kernel::drivers::pmem::{self, State};
use kernel::mm::memblock::MEMBLOCK;
use kernel::mm::page_alloc;
use kernel::mm::sparse::{self, SPARSE};
use kernel::mm::zone;
use kernel::testing::quiet;
use mm::page::{MAX_DMA_PFN, MAX_DMA32_PFN, Pfn, ZoneType, phys_pfn};
use mm::sparse::PAGES_PER_SECTION;
use mm::zone::{NR_ZONES, NodeZones, ZONE_NAMES, ZoneSpan, zone_idx};

kernel::test_binary_entry!();

const PMEM: u64 = 0x7200_0000;
const PMEM_PAGES: u64 = 8192;

fn memory() -> Vec<(Pfn, Pfn)> {
    let mb = MEMBLOCK.lock();
    mb.memory.regions().iter().map(|r| (phys_pfn(r.base), phys_pfn(r.end()))).collect()
}

/// The numbers of one zone in `zoneinfo`'s text: pages free, spanned,
/// present, managed and start_pfn (`None` when not printed).
fn parse(text: &str, name: &str) -> ([u64; 4], Option<Pfn>) {
    let head = alloc::format!("Node 0, zone {name:>8}");
    let mut lines = text.lines().skip_while(|l| *l != head).skip(1);
    let mut field = |label: &str| {
        let l = lines.next().unwrap_or_else(|| panic!("{name}: no {label} line"));
        let v = l.strip_prefix(label).unwrap_or_else(|| panic!("{name}: {l:?}, not {label:?}"));
        v.trim().parse::<u64>().unwrap()
    };
    let nums = [
        field("  pages free     "),
        field("        spanned  "),
        field("        present  "),
        field("        managed  "),
    ];
    let start = text
        .lines()
        .skip_while(|l| *l != head)
        .nth(5)
        .and_then(|l| l.strip_prefix("  start_pfn:           "))
        .map(|v| Pfn::new(v.parse().unwrap()));
    (nums, start)
}

#[test_case]
fn boot_zones_are_memblock_laid_out_as_linux_does() {
    let mem = memory();
    let (node_start, node_end) = (mem[0].0, mem.last().unwrap().1);
    let present = |s: Pfn, e: Pfn| -> u64 {
        mem.iter().map(|&(a, b)| b.min(e).saturating_pages_since(a.max(s))).sum()
    };
    let (zones, _, _) = zone::snapshot();
    let dma = (node_start, MAX_DMA_PFN.min(node_end));
    let dma32 = (MAX_DMA_PFN, MAX_DMA32_PFN.min(node_end));
    for (ty, (s, e)) in [(ZoneType::Dma, dma), (ZoneType::Dma32, dma32)] {
        let want =
            ZoneSpan { zone_start_pfn: s, spanned_pages: e - s, present_pages: present(s, e) };
        assert_eq!(*zones.zone(ty), want, "{ty}");
    }
    assert!(zones.zone(ZoneType::Normal).is_empty(), "no RAM above 4 GiB");
    assert_eq!(zones.zones[mm::zone::ZONE_MOVABLE], ZoneSpan::default());
    // On SeaBIOS's map, what Linux 6.1 shows with memmap=32M!0x72000000.
    if mem == [(1, 0x9f), (0x100, 0x72000), (0x74000, 0x7ffe0)].map(|(s, e)| (Pfn(s), Pfn(e))) {
        assert_eq!((zones.zones[0].spanned_pages, zones.zones[0].present_pages), (4095, 3998));
        assert_eq!((zones.zones[1].spanned_pages, zones.zones[1].present_pages), (520160, 511968));
    }
}

#[test_case]
fn zoneinfo_prints_the_page_allocator_and_zone_state() {
    // The heap may take pages while the text is built: read until stable.
    let (text, free, managed) = (0..5)
        .find_map(|_| {
            let before = zone::snapshot();
            let text = zone::zoneinfo();
            (zone::snapshot() == before).then_some((text, before.1, before.2))
        })
        .expect("a stable snapshot");
    let (zones, _, _) = zone::snapshot();
    for ty in [ZoneType::Dma, ZoneType::Dma32, ZoneType::Normal, ZoneType::Device] {
        let i = zone_idx(ty);
        let z = zones.zones[i];
        let (nums, start) = parse(&text, ZONE_NAMES[i]);
        assert_eq!(nums, [free[i], z.spanned_pages, z.present_pages, managed[i]], "{ty}");
        assert_eq!(managed[i], page_alloc::managed(ty), "{ty}");
        assert_eq!(start, z.populated().then_some(z.zone_start_pfn), "{ty}");
    }
    assert!(free[0] > 0 && free[1] > 0 && managed[1] > free[1] / 2);
    assert_eq!(parse(&text, "Movable"), ([0; 4], None));
    let heads: Vec<&str> = text.lines().filter(|l| l.starts_with("Node 0, zone")).collect();
    assert_eq!(
        heads,
        [
            "Node 0, zone      DMA",
            "Node 0, zone    DMA32",
            "Node 0, zone   Normal",
            "Node 0, zone  Movable",
            "Node 0, zone   Device"
        ]
    );
    assert_eq!(text.lines().count(), 5 * NR_ZONES + 2, "start_pfn for DMA and DMA32 only");
}

#[test_case]
fn zone_device_spans_persistent_memory_and_keeps_its_span_on_remove() {
    let r = pmem::regions().into_iter().find(|r| r.start == PMEM).expect("region0");
    assert_eq!(r.state, State::Added);
    let boot = NodeZones::boot(&memory());
    assert!(boot.zone(ZoneType::Device).is_empty(), "boot lays ZONE_DEVICE out empty");
    let added =
        ZoneSpan { zone_start_pfn: phys_pfn(PMEM), spanned_pages: PMEM_PAGES, present_pages: 0 };
    assert_eq!(zone::span(ZoneType::Device), added, "grown by memremap_pages at boot");
    let text = zone::zoneinfo();
    assert_eq!(parse(&text, "Device"), ([0, PMEM_PAGES, 0, 0], None));
    // Linux 6.1's remove_pfn_range_from_zone never shrinks ZONE_DEVICE
    // (measured: unbinding namespace0.0 leaves "spanned 8192").
    pmem::remove(r.id, &mut quiet).unwrap();
    assert!(!SPARSE.lock().active_subsections(phys_pfn(PMEM), PMEM_PAGES).0, "removed");
    assert_eq!(zone::span(ZoneType::Device), added);
    let dma32 = zone::span(ZoneType::Dma32);
    pmem::add(r.id, &mut quiet).unwrap();
    assert_eq!(zone::span(ZoneType::Device), added, "re-added inside the span");
    assert_eq!(zone::span(ZoneType::Dma32), dma32, "RAM zones untouched");
    assert_eq!(sparse::page(phys_pfn(PMEM) + 7).unwrap().zone(), ZoneType::Device);
}

#[test_case]
fn offline_and_online_move_present_and_managed_pages() {
    // Free counts leave out the per-CPU lists, which the offline drains:
    // start from drained lists.
    page_alloc::drain_all_pages(None);
    let before = zone::snapshot();
    let id = (1..16).rev().find(|&id| hp::offline(id).is_ok()).expect("a free boot block");
    let b = hp::block(id).unwrap();
    assert_eq!(b.state, BlockState::Offline);
    let i = zone_idx(ZoneType::Dma32);
    let (zones, free, managed) = zone::snapshot();
    let z = zones.zones[i];
    assert_eq!(z.present_pages, before.0.zones[i].present_pages - PAGES_PER_SECTION);
    assert_eq!(managed[i], before.2[i] - PAGES_PER_SECTION, "every page was free");
    assert!(free[i] <= before.1[i] - PAGES_PER_SECTION);
    // Inside the zone: its span stays.
    assert_eq!(
        (z.zone_start_pfn, z.spanned_pages),
        (before.0.zones[i].zone_start_pfn, before.0.zones[i].spanned_pages)
    );
    let mut line = String::new();
    for l in zone::zoneinfo().lines().skip_while(|l| !l.ends_with("DMA32")).take(4) {
        line.push_str(l);
    }
    assert!(line.contains(&alloc::format!("present  {}", z.present_pages)), "{line}");
    hp::online(id).unwrap();
    let after = zone::snapshot();
    assert_eq!(after.0, before.0, "spans and present pages back");
    assert_eq!(after.2, before.2, "managed pages back");
}

//! Zones of node 0 as Linux's `free_area_init` lays them out at boot
//! (`zone_sizes_init`, `zone_spanned_pages_in_node`,
//! `zone_absent_pages_in_node`), how hotplug moves their spans
//! (`resize_zone_range`, `shrink_zone_span`), the boot lines Linux prints
//! about them (`Zone ranges:` ... `On node 0, zone DMA: 1 pages in
//! unavailable ranges`) and `/proc/zoneinfo`'s form.
//!
//! A zone's span is `[zone_start_pfn, zone_start_pfn + spanned_pages)`,
//! holes included; `present_pages` counts the RAM in it, `managed_pages`
//! what the page allocator has (kept by the buddy allocator). ZONE_DEVICE
//! spans persistent memory but has no present pages.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write};

use crate::e820::MemRange;
use crate::page::{MAX_DMA_PFN, MAX_DMA32_PFN, MemMap, Pfn, ZoneType, pfn_phys};
use crate::sparse::{
    PAGES_PER_SECTION, PAGES_PER_SUBSECTION, Sparse, SparseBackend, pfn_to_section_nr,
};

/// Linux's zones on x86_64, in its order (`enum zone_type`).
pub const NR_ZONES: usize = 5;
/// `zone_names`.
pub const ZONE_NAMES: [&str; NR_ZONES] = ["DMA", "DMA32", "Normal", "Movable", "Device"];
/// Index of ZONE_MOVABLE: empty at boot (no `kernelcore=` /
/// `movablecore=`), populated by blocks onlined `online_movable`.
pub const ZONE_MOVABLE: usize = 3;

/// The Linux zone index of `zone` (its [`ZoneType`] number).
pub const fn zone_idx(zone: ZoneType) -> usize {
    zone as usize
}

/// The [`ZoneType`] of a Linux zone index.
pub const fn zone_type(idx: usize) -> Option<ZoneType> {
    match idx {
        0 => Some(ZoneType::Dma),
        1 => Some(ZoneType::Dma32),
        2 => Some(ZoneType::Normal),
        3 => Some(ZoneType::Movable),
        4 => Some(ZoneType::Device),
        _ => None,
    }
}

/// A zone's span and present pages (the fields of `struct zone`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ZoneSpan {
    pub zone_start_pfn: Pfn,
    pub spanned_pages: u64,
    pub present_pages: u64,
}

impl ZoneSpan {
    /// `zone_end_pfn`.
    pub const fn zone_end_pfn(&self) -> Pfn {
        Pfn::new(self.zone_start_pfn.as_u64() + self.spanned_pages)
    }

    /// `zone_is_empty`: spans nothing.
    pub const fn is_empty(&self) -> bool {
        self.spanned_pages == 0
    }

    /// `populated_zone`: has present pages.
    pub const fn populated(&self) -> bool {
        self.present_pages != 0
    }

    /// `resize_zone_range` (from `move_pfn_range_to_zone`): the span grows
    /// to take in `[start_pfn, start_pfn + nr_pages)`; an empty zone starts
    /// there.
    pub fn resize_zone_range(&mut self, start_pfn: Pfn, nr_pages: u64) {
        let old_end = self.zone_end_pfn();
        if self.is_empty() || start_pfn < self.zone_start_pfn {
            self.zone_start_pfn = start_pfn;
        }
        self.spanned_pages = (start_pfn + nr_pages).max(old_end) - self.zone_start_pfn;
    }

    /// `shrink_zone_span` for `[start_pfn, end_pfn)` that just left the
    /// zone: when the range started the zone, the span starts at the first
    /// sub-section after it that still has an online page of the zone
    /// (`find_smallest_section_pfn`); when it ended the zone, the span ends
    /// after the last such page before it (`find_biggest_section_pfn`, a
    /// sub-section at a time downwards from `start_pfn - 1`). Nothing left:
    /// the zone is empty, starting at pfn 0. A range inside the span
    /// changes nothing. `online(pfn)`: `pfn` is an online page of this zone.
    pub fn shrink_zone_span(&mut self, start_pfn: Pfn, end_pfn: Pfn, online: impl Fn(Pfn) -> bool) {
        let zone_end = self.zone_end_pfn();
        if self.zone_start_pfn == start_pfn {
            let first =
                (end_pfn..zone_end).step_by(PAGES_PER_SUBSECTION as usize).find(|&p| online(p));
            match first {
                // Linux's 0 means "none found": pfn 0 is never online RAM here.
                Some(pfn) if pfn != Pfn::ZERO => {
                    self.spanned_pages = zone_end - pfn;
                    self.zone_start_pfn = pfn;
                }
                _ => (self.zone_start_pfn, self.spanned_pages) = (Pfn::ZERO, 0),
            }
        } else if zone_end == end_pfn {
            let start = self.zone_start_pfn;
            let last = (0..)
                .map(|i| start_pfn.checked_sub(1 + i * PAGES_PER_SUBSECTION))
                .take_while(|p| p.is_some_and(|p| p >= start))
                .flatten()
                .find(|&p| online(p));
            match last {
                Some(pfn) if pfn != Pfn::ZERO => self.spanned_pages = pfn - start + 1,
                _ => (self.zone_start_pfn, self.spanned_pages) = (Pfn::ZERO, 0),
            }
        }
    }
}

/// Where each zone may lie (`arch_zone_lowest_possible_pfn`,
/// `arch_zone_highest_possible_pfn`), as `free_area_init` derives them from
/// x86's `zone_sizes_init`: DMA below 16 MiB, DMA32 below 4 GiB, Normal up
/// to `max_pfn`, each starting where the one before ends, the first at the
/// start of memory; Movable and Device empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZoneRanges {
    pub lowest: [Pfn; NR_ZONES],
    pub highest: [Pfn; NR_ZONES],
}

impl ZoneRanges {
    /// For memory starting at `start_pfn` (`memblock_start_of_DRAM`) with
    /// RAM up to `max_pfn` (the end of the last RAM range).
    pub fn new(start_pfn: Pfn, max_pfn: Pfn) -> Self {
        let max_zone_pfn =
            [MAX_DMA_PFN.min(max_pfn), MAX_DMA32_PFN.min(max_pfn), max_pfn, Pfn::ZERO, Pfn::ZERO];
        let (mut lowest, mut highest) = ([Pfn::ZERO; NR_ZONES], [Pfn::ZERO; NR_ZONES]);
        let mut start = start_pfn;
        for zone in (0..NR_ZONES).filter(|&z| z != ZONE_MOVABLE) {
            let end = max_zone_pfn[zone].max(start);
            (lowest[zone], highest[zone]) = (start, end);
            start = end;
        }
        Self { lowest, highest }
    }
}

/// Node 0's zones: span and present pages of each, by Linux zone index.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeZones {
    pub zones: [ZoneSpan; NR_ZONES],
}

/// Pages of `memory` (sorted, disjoint pfn ranges) inside `[start, end)`.
fn present_in(memory: &[(Pfn, Pfn)], start: Pfn, end: Pfn) -> u64 {
    memory.iter().map(|&(s, e)| e.min(end).saturating_pages_since(s.max(start))).sum()
}

impl NodeZones {
    /// `free_area_init_node` for the RAM ranges `memory` (memblock.memory
    /// as pfns: sorted, disjoint, non-empty): each zone spans its part of
    /// the node `[first start, last end)`, holes included, and its present
    /// pages are its RAM.
    pub fn boot(memory: &[(Pfn, Pfn)]) -> Self {
        let mut node = Self::default();
        let (Some(first), Some(last)) = (memory.first(), memory.last()) else {
            return node;
        };
        let (node_start, node_end) = (first.0, last.1);
        let ranges = ZoneRanges::new(node_start, node_end);
        for (z, zone) in node.zones.iter_mut().enumerate() {
            let (low, high) = (ranges.lowest[z], ranges.highest[z]);
            let start = node_start.clamp(low, high);
            let end = node_end.clamp(low, high);
            if end > start {
                let present = present_in(memory, start, end);
                *zone = ZoneSpan {
                    zone_start_pfn: start,
                    spanned_pages: end - start,
                    present_pages: present,
                };
            }
        }
        node
    }

    /// The zone of a [`ZoneType`].
    pub fn zone(&self, zone: ZoneType) -> &ZoneSpan {
        &self.zones[zone_idx(zone)]
    }

    /// The zone of a [`ZoneType`], for update.
    pub fn zone_mut(&mut self, zone: ZoneType) -> &mut ZoneSpan {
        &mut self.zones[zone_idx(zone)]
    }

    /// `move_pfn_range_to_zone`'s span part: `zone` takes in `[start_pfn,
    /// start_pfn + nr_pages)` (onlined RAM, or device memory from
    /// `memremap_pages`).
    pub fn move_pfn_range_to_zone(&mut self, zone: ZoneType, start_pfn: Pfn, nr_pages: u64) {
        self.zone_mut(zone).resize_zone_range(start_pfn, nr_pages);
    }

    /// `adjust_present_page_count`: RAM onlined (positive) or offlined
    /// (negative) in `zone`.
    pub fn adjust_present_page_count(&mut self, zone: ZoneType, nr_pages: i64) {
        let present = &mut self.zone_mut(zone).present_pages;
        *present = present.saturating_add_signed(nr_pages);
    }

    /// `remove_pfn_range_from_zone` for pages of `zone` that just went
    /// offline: the span shrinks past them when they were at its edge
    /// ([`ZoneSpan::shrink_zone_span`]), down to the nearest page still
    /// online in the zone as the memory model `sparse` has it
    /// (`pfn_to_online_page`, and the page's zone). As in Linux,
    /// ZONE_DEVICE is never shrunk: its span keeps what persistent memory
    /// once covered.
    pub fn remove_pfn_range_from_zone<B: SparseBackend>(
        &mut self,
        sparse: &Sparse<B>,
        zone: ZoneType,
        start_pfn: Pfn,
        nr_pages: u64,
    ) {
        if zone == ZoneType::Device {
            return;
        }
        let in_zone = |pfn: Pfn| {
            sparse.pfn_to_online_page(pfn).is_some()
                && sparse.page(pfn).is_some_and(|p| p.zone() == zone)
        };
        self.zone_mut(zone).shrink_zone_span(start_pfn, start_pfn + nr_pages, in_zone);
    }
}

/// `memmap_init`'s holes: the pages between and after the RAM ranges that
/// have a memmap (their section has RAM, so boot gave it a whole memmap)
/// and are initialized as reserved, counted per call of
/// `init_unavailable_range` as Linux prints them: a hole before a range's
/// part in a zone belongs to that zone, the hole from the end of RAM to the
/// end of its section to the highest populated zone.
pub fn unavailable_ranges(memory: &[(Pfn, Pfn)], zones: &NodeZones) -> Vec<(usize, u64)> {
    // A section has a memmap at boot when RAM touches it (memblocks_present).
    let section_has_ram = |nr: u64| {
        memory.iter().any(|&(s, e)| pfn_to_section_nr(s) <= nr && nr <= pfn_to_section_nr(e - 1))
    };
    let count = |spfn: Pfn, epfn: Pfn| -> u64 {
        let mut n = 0;
        let mut pfn = spfn;
        while pfn < epfn {
            let next = (pfn + 1).next_multiple_of(PAGES_PER_SECTION).min(epfn);
            if section_has_ram(pfn_to_section_nr(pfn)) {
                n += next - pfn;
            }
            pfn = next;
        }
        n
    };
    let mut out = Vec::new();
    let (mut hole_pfn, mut zone_id, mut end_pfn) = (Pfn::ZERO, 0, Pfn::ZERO);
    for &(start, end) in memory {
        end_pfn = end;
        for (j, zone) in zones.zones.iter().enumerate().filter(|(_, z)| z.populated()) {
            let (zs, ze) = (zone.zone_start_pfn, zone.zone_end_pfn());
            let (s, e) = (start.clamp(zs, ze), end.clamp(zs, ze));
            zone_id = j;
            if s >= e {
                continue;
            }
            if hole_pfn < s {
                out.push((j, count(hole_pfn, s)));
            }
            hole_pfn = e;
        }
    }
    let end_pfn = end_pfn.next_multiple_of(PAGES_PER_SECTION);
    if hole_pfn < end_pfn {
        out.push((zone_id, count(hole_pfn, end_pfn)));
    }
    out.retain(|&(_, n)| n > 0);
    out
}

/// Linux's boot lines from `free_area_init` and `memmap_init` for the RAM
/// ranges `memory` of node 0 (`Zone ranges:` to the last `On node 0, zone
/// ...: N pages in unavailable ranges`), without a trailing newline.
pub fn boot_lines(memory: &[(Pfn, Pfn)]) -> Vec<String> {
    let mut out = Vec::new();
    let (Some(first), Some(last)) = (memory.first(), memory.last()) else {
        return out;
    };
    let ranges = ZoneRanges::new(first.0, last.1);
    out.push("Zone ranges:".into());
    for z in (0..NR_ZONES).filter(|&z| z != ZONE_MOVABLE) {
        let (lo, hi) = (ranges.lowest[z], ranges.highest[z]);
        let mut line = alloc::format!("  {:<8} ", ZONE_NAMES[z]);
        if lo == hi {
            line.push_str("empty");
        } else {
            let _ = write!(line, "{}", MemRange(pfn_phys(lo), pfn_phys(hi)));
        }
        out.push(line);
    }
    out.push("Movable zone start for each node".into());
    out.push("Early memory node ranges".into());
    for &(s, e) in memory {
        out.push(alloc::format!("  node {:>3}: {}", 0, MemRange(pfn_phys(s), pfn_phys(e))));
    }
    out.push(alloc::format!(
        "Initmem setup node 0 {}",
        MemRange(pfn_phys(first.0), pfn_phys(last.1))
    ));
    let zones = NodeZones::boot(memory);
    for (z, n) in unavailable_ranges(memory, &zones) {
        out.push(alloc::format!(
            "On node 0, zone {}: {n} pages in unavailable ranges",
            ZONE_NAMES[z]
        ));
    }
    out
}

/// What `/proc/zoneinfo` shows of one zone, for the fields Tessera has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ZoneInfo {
    /// Linux zone index (0 = DMA ... 4 = Device).
    pub idx: usize,
    /// Free pages in the buddy allocator (`NR_FREE_PAGES`).
    pub free: u64,
    pub span: ZoneSpan,
    /// Pages handed to the page allocator.
    pub managed: u64,
}

impl fmt::Display for ZoneInfo {
    /// `zoneinfo_show_print`'s lines for these fields, in its order and
    /// indentation; `start_pfn:` only for a populated zone. Every line ends
    /// with a newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Node 0, zone {:>8}", ZONE_NAMES[self.idx])?;
        writeln!(f, "  pages free     {}", self.free)?;
        writeln!(f, "        spanned  {}", self.span.spanned_pages)?;
        writeln!(f, "        present  {}", self.span.present_pages)?;
        writeln!(f, "        managed  {}", self.managed)?;
        if self.span.populated() {
            writeln!(f, "  start_pfn:           {}", self.span.zone_start_pfn)?;
        }
        Ok(())
    }
}

/// `/proc/zoneinfo` for node 0: every zone in Linux's order. `free` and
/// `managed` are the page allocator's counts by Linux zone index.
pub fn zoneinfo(zones: &NodeZones, free: [u64; NR_ZONES], managed: [u64; NR_ZONES]) -> String {
    let mut out = String::new();
    for info in zone_infos(zones, free, managed) {
        let _ = write!(out, "{info}");
    }
    out
}

/// Every zone's [`ZoneInfo`], in Linux's order.
fn zone_infos(
    zones: &NodeZones,
    free: [u64; NR_ZONES],
    managed: [u64; NR_ZONES],
) -> impl Iterator<Item = ZoneInfo> + '_ {
    let info = move |(idx, span): (usize, &ZoneSpan)| ZoneInfo {
        idx,
        free: free[idx],
        span: *span,
        managed: managed[idx],
    };
    zones.zones.iter().enumerate().map(info)
}

/// `zoneinfo --json`: `{"nodes":[{"node":0,"zones":[..]}]}`, each zone
/// with [`zoneinfo`]'s fields under `/proc/zoneinfo`'s names (`pages
/// free` as `pages_free`); `start_pfn` is `null` where the text has no
/// `start_pfn:` line (an unpopulated zone).
pub fn zoneinfo_json(zones: &NodeZones, free: [u64; NR_ZONES], managed: [u64; NR_ZONES]) -> String {
    json::object(|o| {
        o.array("nodes", |a| {
            a.object(|node| {
                node.field("node", 0u32).array("zones", |a| {
                    for z in zone_infos(zones, free, managed) {
                        a.object(|o| {
                            o.field("zone", ZONE_NAMES[z.idx])
                                .field("pages_free", z.free)
                                .field("spanned", z.span.spanned_pages)
                                .field("present", z.span.present_pages)
                                .field("managed", z.managed);
                            let start = z.span.populated().then_some(z.span.zone_start_pfn.0);
                            o.field("start_pfn", start);
                        });
                    }
                });
            });
        });
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn pfn(addr: u64) -> Pfn {
        Pfn(addr >> 12)
    }

    /// Pfn ranges from their numbers.
    fn ranges<const N: usize>(r: [(u64, u64); N]) -> [(Pfn, Pfn); N] {
        r.map(|(s, e)| (Pfn(s), Pfn(e)))
    }

    /// QEMU pc, `-m 2G`: memblock.memory as Linux 6.1 and Tessera have it.
    const RAM_2G: [(Pfn, Pfn); 2] = [(Pfn(1), Pfn(0x9f)), (Pfn(0x100), Pfn(0x7ffe0))];

    #[test]
    fn boot_lines_match_linux_2g() {
        let want = [
            "Zone ranges:",
            "  DMA      [mem 0x0000000000001000-0x0000000000ffffff]",
            "  DMA32    [mem 0x0000000001000000-0x000000007ffdffff]",
            "  Normal   empty",
            "  Device   empty",
            "Movable zone start for each node",
            "Early memory node ranges",
            "  node   0: [mem 0x0000000000001000-0x000000000009efff]",
            "  node   0: [mem 0x0000000000100000-0x000000007ffdffff]",
            "Initmem setup node 0 [mem 0x0000000000001000-0x000000007ffdffff]",
            "On node 0, zone DMA: 1 pages in unavailable ranges",
            "On node 0, zone DMA: 97 pages in unavailable ranges",
            "On node 0, zone DMA32: 32 pages in unavailable ranges",
        ];
        assert_eq!(boot_lines(&RAM_2G), want);
    }

    #[test]
    fn boot_lines_match_linux_5g() {
        // RAM above 4 GiB: Normal is populated, DMA32 spans up to 4 GiB and
        // the hole after the RAM below 4 GiB is counted for Normal (its
        // section 23 has a memmap; sections 24..31 have none).
        let ram = ranges([(1, 0x9f), (0x100, 0xbffe0), (0x100000, 0x180000)]);
        let lines = boot_lines(&ram);
        assert_eq!(lines[2], "  DMA32    [mem 0x0000000001000000-0x00000000ffffffff]");
        assert_eq!(lines[3], "  Normal   [mem 0x0000000100000000-0x000000017fffffff]");
        assert_eq!(lines[4], "  Device   empty");
        assert_eq!(lines[10], "Initmem setup node 0 [mem 0x0000000000001000-0x000000017fffffff]");
        assert_eq!(
            lines[11..],
            [
                "On node 0, zone DMA: 1 pages in unavailable ranges",
                "On node 0, zone DMA: 97 pages in unavailable ranges",
                "On node 0, zone Normal: 32 pages in unavailable ranges",
            ]
        );
        let z = NodeZones::boot(&ram);
        // Linux 6.1's /proc/zoneinfo on that machine.
        assert_eq!(
            z.zones[..3],
            [
                ZoneSpan { zone_start_pfn: Pfn(1), spanned_pages: 4095, present_pages: 3998 },
                ZoneSpan {
                    zone_start_pfn: Pfn(4096),
                    spanned_pages: 1044480,
                    present_pages: 782304
                },
                ZoneSpan {
                    zone_start_pfn: Pfn(1048576),
                    spanned_pages: 524288,
                    present_pages: 524288
                },
            ]
        );
        assert!(z.zones[3].is_empty() && z.zones[4].is_empty());
    }

    #[test]
    fn section_aligned_end_and_memmap_holes() {
        // mem=1G: RAM ends on a section boundary, no trailing hole.
        let ram = [(Pfn(1), Pfn(0x9f)), (Pfn(0x100), pfn(1 << 30))];
        assert_eq!(unavailable_ranges(&ram, &NodeZones::boot(&ram)), [(0, 1), (0, 97)]);
        // memmap=32M!0x72000000: the persistent range is a hole in DMA32.
        let ram = ranges([(1, 0x9f), (0x100, 0x72000), (0x74000, 0x7ffe0)]);
        let z = NodeZones::boot(&ram);
        assert_eq!(unavailable_ranges(&ram, &z), [(0, 1), (0, 97), (1, 8192), (1, 32)]);
        assert_eq!(
            z.zones[1],
            ZoneSpan { zone_start_pfn: Pfn(4096), spanned_pages: 520160, present_pages: 511968 }
        );
        // QEMU with an NVDIMM: RAM ends at 0x7ffdf000.
        let ram = ranges([(1, 0x9f), (0x100, 0x7ffdf)]);
        assert_eq!(unavailable_ranges(&ram, &NodeZones::boot(&ram))[2], (1, 33));
    }

    #[test]
    fn many_holes_count_as_linux_under_uefi() {
        // OVMF, -m 2G: Linux 6.1's "Early memory node ranges" and counts.
        let ram = ranges([
            (1, 0xa0),
            (0x100, 0x806),
            (0x808, 0x810),
            (0x900, 0x7eaa0),
            (0x7eba2, 0x7f4ec),
            (0x7f7fe, 0x7fef4),
        ]);
        let z = NodeZones::boot(&ram);
        let want = [(0, 1), (0, 96), (0, 2), (0, 240), (1, 258), (1, 786), (1, 268)];
        assert_eq!(unavailable_ranges(&ram, &z), want);
        assert_eq!(boot_lines(&ram)[2], "  DMA32    [mem 0x0000000001000000-0x000000007fef3fff]");
        let holes: u64 = want.iter().map(|w| w.1).sum::<u64>() - 1 - 268;
        assert_eq!(
            z.zones[0].present_pages + z.zones[1].present_pages,
            z.zones[0].spanned_pages + z.zones[1].spanned_pages - holes,
            "present = spanned - the holes inside the node"
        );
    }

    #[test]
    fn small_machines_leave_zones_empty() {
        // RAM below 16 MiB only: DMA32 and Normal are empty.
        let ram = ranges([(1, 0x9f), (0x100, 0xe00)]);
        let lines = boot_lines(&ram);
        assert_eq!(lines[1], "  DMA      [mem 0x0000000000001000-0x0000000000dfffff]");
        assert_eq!(lines[2], "  DMA32    empty");
        assert_eq!(lines[3], "  Normal   empty");
        let z = NodeZones::boot(&ram);
        assert_eq!(z.zones[0].spanned_pages, 0xdff);
        assert!(z.zones[1..].iter().all(ZoneSpan::is_empty));
        // The trailing hole goes to DMA, the highest populated zone.
        assert_eq!(unavailable_ranges(&ram, &z).last(), Some(&(0, 0x8000 - 0xe00)));
        assert!(boot_lines(&[]).is_empty());
        assert_eq!(NodeZones::boot(&[]), NodeZones::default());
    }

    #[test]
    fn resize_grows_and_shrink_follows_linux() {
        let mut z = ZoneSpan::default();
        z.resize_zone_range(Pfn(0x72000), 512);
        assert_eq!((z.zone_start_pfn, z.spanned_pages), (Pfn(0x72000), 512));
        z.resize_zone_range(Pfn(0x73e00), 512);
        assert_eq!((z.zone_start_pfn, z.zone_end_pfn()), (Pfn(0x72000), Pfn(0x74000)));
        z.resize_zone_range(Pfn(0x70000), 512);
        assert_eq!((z.zone_start_pfn, z.zone_end_pfn()), (Pfn(0x70000), Pfn(0x74000)));
        z.resize_zone_range(Pfn(0x71000), 512); // inside: no change
        assert_eq!((z.zone_start_pfn, z.zone_end_pfn()), (Pfn(0x70000), Pfn(0x74000)));

        // Online sub-sections of the zone: [0x70000, 0x70200) and
        // [0x72000, 0x74000).
        let online = |on: &[(Pfn, Pfn)]| {
            let on = on.to_vec();
            move |p: Pfn| on.iter().any(|&(s, e)| s <= p && p < e)
        };
        let mut a = z;
        // The first piece leaves: the span starts at the next online one.
        a.shrink_zone_span(Pfn(0x70000), Pfn(0x70200), online(&[(Pfn(0x72000), Pfn(0x74000))]));
        assert_eq!((a.zone_start_pfn, a.zone_end_pfn()), (Pfn(0x72000), Pfn(0x74000)));
        // The last sub-section leaves: the end comes down by one.
        a.shrink_zone_span(Pfn(0x73e00), Pfn(0x74000), online(&[(Pfn(0x72000), Pfn(0x73e00))]));
        assert_eq!((a.zone_start_pfn, a.zone_end_pfn()), (Pfn(0x72000), Pfn(0x73e00)));
        // A piece in the middle: no change.
        a.shrink_zone_span(
            Pfn(0x72200),
            Pfn(0x72400),
            online(&[(Pfn(0x72000), Pfn(0x72200)), (Pfn(0x72400), Pfn(0x73e00))]),
        );
        assert_eq!((a.zone_start_pfn, a.zone_end_pfn()), (Pfn(0x72000), Pfn(0x73e00)));
        // Everything gone: empty, at 0.
        a.shrink_zone_span(Pfn(0x72000), Pfn(0x73e00), online(&[]));
        assert_eq!((a.zone_start_pfn, a.spanned_pages), (Pfn(0), 0));
        // The end goes, nothing below is online: empty.
        let mut b = z;
        b.shrink_zone_span(Pfn(0x72000), Pfn(0x74000), online(&[]));
        assert_eq!((b.zone_start_pfn, b.spanned_pages), (Pfn(0), 0));
        // Grows again from empty.
        b.resize_zone_range(Pfn(0x80000), 0x8000);
        assert_eq!((b.zone_start_pfn, b.spanned_pages), (Pfn(0x80000), 0x8000));
    }

    #[test]
    fn shrink_end_steps_by_subsection_from_the_range_start() {
        // Linux's find_biggest_section_pfn looks at start_pfn - 1, then
        // 512 pages lower each time: the new end is the first hit + 1.
        let mut z =
            ZoneSpan { zone_start_pfn: Pfn(0x1000), spanned_pages: 0x7f000, present_pages: 0 };
        z.shrink_zone_span(Pfn(0x78000), Pfn(0x80000), |p| p < Pfn(0x70100));
        assert_eq!(z.zone_end_pfn(), Pfn(0x70000));
        let mut z =
            ZoneSpan { zone_start_pfn: Pfn(0x1000), spanned_pages: 0x7f000, present_pages: 0 };
        z.shrink_zone_span(Pfn(0x78000), Pfn(0x80000), |p| p < Pfn(0x77fff));
        assert_eq!(z.zone_end_pfn(), Pfn(0x77e00), "only pfns 0x77fff - k * 512 are looked at");
    }

    #[test]
    fn zoneinfo_has_linux_form() {
        let zones = NodeZones::boot(&RAM_2G);
        let text = zoneinfo(&zones, [3776, 489970, 0, 0, 0], [3840, 499760, 0, 0, 0]);
        let want = "\
Node 0, zone      DMA
  pages free     3776
        spanned  4095
        present  3998
        managed  3840
  start_pfn:           1
Node 0, zone    DMA32
  pages free     489970
        spanned  520160
        present  520160
        managed  499760
  start_pfn:           4096
Node 0, zone   Normal
  pages free     0
        spanned  0
        present  0
        managed  0
Node 0, zone  Movable
  pages free     0
        spanned  0
        present  0
        managed  0
Node 0, zone   Device
  pages free     0
        spanned  0
        present  0
        managed  0
";
        assert_eq!(text, want);
        // A spanning but unpopulated zone (ZONE_DEVICE) has no start_pfn line.
        let mut z = zones;
        z.zone_mut(ZoneType::Device).resize_zone_range(Pfn(0x72000), 8192);
        let text = zoneinfo(&z, [0; NR_ZONES], [0; NR_ZONES]);
        assert!(text.ends_with("zone   Device\n  pages free     0\n        spanned  8192\n        present  0\n        managed  0\n"));
    }

    /// The JSON has the text's numbers, zone by zone, under Linux's names.
    #[test]
    fn zoneinfo_json_matches_the_text() {
        let mut zones = NodeZones::boot(&RAM_2G);
        zones.zone_mut(ZoneType::Device).resize_zone_range(Pfn(0x72000), 8192);
        let (free, managed) = ([3776, 489970, 0, 0, 0], [3840, 499760, 0, 0, 0]);
        let v: serde_json::Value =
            serde_json::from_str(&zoneinfo_json(&zones, free, managed)).unwrap();
        let node = &v["nodes"][0];
        assert_eq!(node["node"], 0);
        // Render the JSON as the text and compare.
        let mut text = String::new();
        for z in node["zones"].as_array().unwrap() {
            let _ = writeln!(text, "Node 0, zone {:>8}", z["zone"].as_str().unwrap());
            let _ = writeln!(text, "  pages free     {}", z["pages_free"]);
            for f in ["spanned", "present", "managed"] {
                let _ = writeln!(text, "        {f:<8} {}", z[f]);
            }
            if let Some(pfn) = z["start_pfn"].as_u64() {
                let _ = writeln!(text, "  start_pfn:           {pfn}");
            }
        }
        assert_eq!(text, zoneinfo(&zones, free, managed));
        assert_eq!(node["zones"][4]["zone"], "Device");
        assert_eq!(node["zones"][4]["start_pfn"], serde_json::Value::Null);
        assert_eq!(node["zones"][1]["start_pfn"], 4096);
    }

    #[test]
    fn zone_indices_round_trip() {
        for t in
            [ZoneType::Dma, ZoneType::Dma32, ZoneType::Normal, ZoneType::Movable, ZoneType::Device]
        {
            assert_eq!(zone_type(zone_idx(t)), Some(t));
            assert_eq!(ZONE_NAMES[zone_idx(t)], t.name());
        }
        assert_eq!(zone_idx(ZoneType::Movable), ZONE_MOVABLE);
        assert_eq!(zone_type(5), None);
    }
}

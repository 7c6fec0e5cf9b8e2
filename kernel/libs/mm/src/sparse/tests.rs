use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;

use super::*;

const VMEMMAP: u64 = 0xffff_ea00_0000_0000;
const MIB: u64 = 1 << 20;
const SUB: u64 = PAGES_PER_SUBSECTION;

/// A backend over vectors: a section's memmap is a `Vec<Page>`, with a
/// mask of the populated sub-sections. Allocations can be made to fail.
#[derive(Default)]
pub(crate) struct TestBackend {
    memmap: BTreeMap<u64, (u64, Vec<Page>)>,
    /// Vmemmap pages (pfn / 64) that map a shared page: read from it,
    /// never written.
    shared: BTreeMap<u64, &'static SharedPage>,
    /// Fail the n-th populate from now (1 = the next).
    pub fail_populate_in: Option<u32>,
    pub fail_usage: bool,
    /// Fail the n-th root allocation from now (1 = the next).
    pub fail_root_in: Option<u32>,
    pub fail_early_usages: bool,
    pub usages_freed: u64,
    pub usages_allocated: u64,
    pub early_populates: u64,
    pub grace_periods: u64,
    /// The table the model under test publishes to, so that the backend
    /// can check what readers would see when memory comes and goes.
    pub table: Option<&'static SectionTable>,
    /// A grace period ended since the last memmap was populated or freed.
    grace_pending: bool,
}

impl TestBackend {
    /// Bits of `[pfn, pfn + nr_pages)` a lock-free reader would see.
    fn published(&self, pfn: Pfn, nr_pages: u64) -> u64 {
        let Some(t) = self.table else { return 0 };
        let g = t.read_lock(0);
        let map = t.usage(&g, pfn_to_section_nr(pfn)).map_or(0, MemSectionUsage::subsection_map);
        map & subsection_mask(pfn, nr_pages)
    }
}

impl TestBackend {
    fn populated(&self, nr: u64) -> u64 {
        self.memmap.get(&nr).map_or(0, |(m, _)| *m)
    }
}

impl TestBackend {
    /// Vmemmap pages of `[pfn, pfn + nr)` that are shared.
    pub(crate) fn shared_in(&self, pfn: Pfn, nr: u64) -> u64 {
        let first = pfn.as_u64() / DESCS_PER_VMEMMAP_PAGE;
        let last = (pfn.as_u64() + nr).div_ceil(DESCS_PER_VMEMMAP_PAGE);
        self.shared.range(first..last).count() as u64
    }
}

impl MemMap for TestBackend {
    fn page(&self, pfn: Pfn) -> Option<&Page> {
        let (mask, pages) = self.memmap.get(&pfn_to_section_nr(pfn))?;
        let i = pfn.offset_in(PAGES_PER_SECTION) as usize;
        if mask & (1 << subsection_map_index(pfn)) == 0 {
            return None;
        }
        match self.shared.get(&(pfn.as_u64() / DESCS_PER_VMEMMAP_PAGE)) {
            Some(page) => Some(&page.0[pfn.offset_in(DESCS_PER_VMEMMAP_PAGE) as usize]),
            None => Some(&pages[i]),
        }
    }

    fn page_mut(&mut self, pfn: Pfn) -> Option<&mut Page> {
        if self.shared_in(pfn, 1) != 0 {
            return None;
        }
        let (mask, pages) = self.memmap.get_mut(&pfn_to_section_nr(pfn))?;
        let i = pfn.offset_in(PAGES_PER_SECTION) as usize;
        (*mask & (1 << subsection_map_index(pfn)) != 0).then(|| &mut pages[i])
    }
}

impl SparseBackend for TestBackend {
    fn alloc_root(&mut self) -> Option<&'static mut SectionRoot> {
        if let Some(n) = self.fail_root_in.as_mut() {
            *n -= 1;
            if *n == 0 {
                self.fail_root_in = None;
                return None;
            }
        }
        Some(Box::leak(Box::new([const { MemSection::empty() }; SECTIONS_PER_ROOT])))
    }

    fn alloc_early_usages(&mut self, n: usize) -> Option<&'static mut [MemSectionUsage]> {
        if self.fail_early_usages {
            return None;
        }
        Some(Box::leak((0..n).map(|_| MemSectionUsage::default()).collect()))
    }

    fn alloc_usage(&mut self) -> Option<&'static mut MemSectionUsage> {
        if self.fail_usage {
            return None;
        }
        self.usages_allocated += 1;
        Some(Box::leak(Box::default()))
    }

    fn synchronize_rcu(&mut self, rcu: &MmRcu, cpu: usize) -> rcu::GracePeriod {
        self.grace_periods += 1;
        self.grace_pending = true;
        rcu.synchronize(cpu, |_| false).expect("no reader is left inside in these tests")
    }

    fn free_usage(&mut self, _usage: &'static mut MemSectionUsage) {
        assert!(self.grace_pending, "a usage freed without a grace period after its unpublish");
        self.usages_freed += 1;
    }

    fn populate_memmap(
        &mut self,
        pfn: Pfn,
        nr_pages: u64,
        altmap: Option<&mut Altmap>,
        early: bool,
        compound: Option<Compound>,
    ) -> bool {
        if let Some(n) = self.fail_populate_in.as_mut() {
            *n -= 1;
            if *n == 0 {
                self.fail_populate_in = None;
                return false;
            }
        }
        let first = pfn.as_u64() / DESCS_PER_VMEMMAP_PAGE;
        let pages = (nr_pages * 64).div_ceil(4096);
        let shared: Vec<(u64, &'static SharedPage)> = match compound {
            Some(c) => (first..first + pages)
                .filter_map(|v| {
                    Some((v, c.shared_vmemmap_page(Pfn(v * DESCS_PER_VMEMMAP_PAGE), 0)?))
                })
                .collect(),
            None => Vec::new(),
        };
        if let Some(a) = altmap {
            let need = pages - shared.len() as u64;
            if a.alloc_pages(need, 1).is_none() {
                return false;
            }
        }
        self.shared.extend(shared);
        self.early_populates += u64::from(early);
        self.grace_pending = false;
        assert_eq!(self.published(pfn, nr_pages), 0, "readers see {pfn:#x} before its memmap");
        let mask = subsection_mask(pfn, nr_pages);
        let (m, _) = self
            .memmap
            .entry(pfn_to_section_nr(pfn))
            .or_insert_with(|| (0, vec![Page::ZERO; PAGES_PER_SECTION as usize]));
        assert_eq!(*m & mask, 0, "memmap of pfn {pfn:#x}+{nr_pages:#x} populated twice");
        *m |= mask;
        true
    }

    fn depopulate_memmap(&mut self, pfn: Pfn, nr_pages: u64, _altmap: Option<&mut Altmap>) {
        let nr = pfn_to_section_nr(pfn);
        let mask = subsection_mask(pfn, nr_pages);
        assert_eq!(self.published(pfn, nr_pages), 0, "readers still see {pfn:#x}");
        assert!(self.grace_pending, "memmap of {pfn:#x} freed without a grace period");
        self.grace_pending = false;
        let (m, _) = self.memmap.get_mut(&nr).expect("depopulate of an unpopulated section");
        assert_eq!(
            *m & mask,
            mask,
            "depopulate of unpopulated sub-sections {pfn:#x}+{nr_pages:#x}"
        );
        *m &= !mask;
        if *m == 0 {
            self.memmap.remove(&nr);
        }
        let first = pfn.as_u64() / DESCS_PER_VMEMMAP_PAGE;
        let last = (pfn.as_u64() + nr_pages).div_ceil(DESCS_PER_VMEMMAP_PAGE);
        self.shared.retain(|&v, _| !(first..last).contains(&v));
    }

    fn memmap_bytes(&self, pfn: Pfn, nr_pages: u64) -> u64 {
        nr_pages * STRUCT_PAGE_SIZE - self.shared_in(pfn, nr_pages) * 4096
    }

    fn memmap_mut(&mut self, pfn: Pfn, nr_pages: u64) -> Option<&mut [Page]> {
        if self.shared_in(pfn, nr_pages) != 0 {
            return None;
        }
        let (m, pages) = self.memmap.get_mut(&pfn_to_section_nr(pfn))?;
        let mask = subsection_mask(pfn, nr_pages);
        let i = pfn.offset_in(PAGES_PER_SECTION) as usize;
        (*m & mask == mask).then(|| &mut pages[i..i + nr_pages as usize])
    }
}

fn pfn(addr: u64) -> Pfn {
    crate::page::phys_pfn(addr)
}

/// RAM of QEMU `-m 2G` with `memmap=32M!0x3a000000 memmap=32M!0x3c000000`.
fn ram_2g_two_pmem() -> Vec<(Pfn, Pfn)> {
    vec![
        (pfn(0x1000), pfn(0x9f000)),
        (pfn(0x10_0000), pfn(0x3a00_0000)),
        (pfn(0x3e00_0000), pfn(0x7ffe_0000)),
    ]
}

pub(crate) fn booted(ram: &[(Pfn, Pfn)]) -> Box<Sparse<TestBackend>> {
    let mut s = Box::new(Sparse::new(TestBackend::default(), VMEMMAP));
    s.backend.table = Some(s.table());
    s.init(ram, 0).expect("boot init");
    s
}

/// Everything observable: each present or used section's word and map,
/// populated memmap, counters.
fn snapshot(s: &Sparse<TestBackend>) -> Vec<(u64, u64, u64, u64)> {
    let mut v: Vec<_> = (0..64)
        .filter_map(|nr| s.section(nr).map(|ms| (nr, ms.raw(), ms.subsection_map(&s.guard()), 0)))
        .collect();
    for e in &mut v {
        e.3 = s.backend.populated(e.0);
    }
    v.push((u64::MAX, s.stats.memmap_bytes, s.stats.usage_bytes, s.stats.roots));
    v
}

#[test]
fn masks_cover_touched_sub_sections() {
    assert_eq!(subsection_mask(Pfn(0), 1), 1);
    assert_eq!(subsection_mask(Pfn(0), PAGES_PER_SECTION), u64::MAX);
    assert_eq!(subsection_mask(Pfn(SUB - 1), 2), 0b11);
    assert_eq!(subsection_mask(Pfn(PAGES_PER_SECTION - 1), 1), 1 << 63);
    assert_eq!(subsection_mask(Pfn(16 * SUB), 16 * SUB), 0xffff_0000);
    assert_eq!(subsection_mask(Pfn(5), 0), 0);
}

#[test]
fn boot_marks_touched_sections_early_with_their_sub_sections() {
    let s = booted(&ram_2g_two_pmem());
    let present: Vec<u64> = s.present_sections().map(|(nr, _)| nr).collect();
    assert_eq!(present, (0..16).collect::<Vec<_>>());
    for (nr, ms) in s.present_sections() {
        let want = flags::PRESENT | flags::HAS_MEM_MAP | flags::ONLINE | flags::EARLY;
        assert_eq!(ms.flags(), want, "section {nr}");
        let map = if nr == 7 { 0xffff_0000_0000_ffff } else { u64::MAX };
        assert_eq!(ms.subsection_map(&s.guard()), map, "section {nr}");
        assert_eq!(s.backend.populated(nr), u64::MAX, "whole memmap of early section {nr}");
        // The encoded memmap decodes to each pfn's own descriptor.
        let p = section_nr_to_pfn(nr) + 12345;
        assert_eq!(ms.mem_map_addr() + memmap_offset(p), s.pfn_to_page(p));
    }
    assert_eq!(
        s.section_line(7).to_string(),
        "section 7: flags=present|has_mem_map|online|early subsection_map=0xffff00000000ffff"
    );
    let st = s.stats();
    assert_eq!((st.roots, st.usage_bytes, st.memmap_bytes), (1, 16 * 40, 16 * 2 * MIB));
    assert_eq!(s.backend.early_populates, 16);
}

#[test]
fn boot_descriptors_carry_zone_and_holes_are_reserved() {
    let s = booted(&ram_2g_two_pmem());
    let page = |a: u64| s.backend.page(pfn(a)).copied().expect("populated");
    assert_eq!(page(0x0).zone(), ZoneType::Dma); // a hole below 4 KiB
    assert_eq!(page(0xff_f000).zone(), ZoneType::Dma);
    assert_eq!(page(0x100_0000).zone(), ZoneType::Dma32);
    for a in [0x0, 0xa_0000, 0x3a00_0000, 0x7fff_f000, 0x2000_0000] {
        let p = page(a);
        assert!(p.is_reserved() && p.has(crate::page::pg::INITIALIZED), "{a:#x}");
        assert_eq!((p.refcount, p.nid()), (1, 0));
    }
    let u = s.usage_snapshot(7).unwrap();
    assert_eq!(u.migratetype(0), MigrateType::Movable);
    assert_eq!(u.migratetype(16), MigrateType::Unmovable); // the PMEM hole
}

#[test]
fn pfn_valid_and_online_page_follow_linux() {
    let s = booted(&ram_2g_two_pmem());
    // An early section: every pfn is valid, holes included...
    assert!(s.pfn_valid(pfn(0x3a00_0000)));
    assert!(s.pfn_valid(pfn(0x0)));
    // ...but only RAM sub-sections have online pages.
    assert_eq!(s.pfn_to_online_page(pfn(0x3a00_0000)), None);
    assert_eq!(
        s.pfn_to_online_page(pfn(0x3800_0000)),
        Some(VMEMMAP + memmap_offset(pfn(0x3800_0000)))
    );
    // Absent sections, beyond MAX_PHYSMEM_BITS, and the root bound.
    assert!(!s.pfn_valid(pfn(0x8000_0000)));
    assert!(!s.pfn_valid(MAX_PFN));
    assert!(!s.pfn_valid(Pfn(u64::MAX)));
    assert!(s.section(NR_MEM_SECTIONS).is_none());
    assert_eq!(s.pfn_to_online_page(Pfn(u64::MAX)), None);
    assert_eq!(s.page_to_pfn(s.pfn_to_page(Pfn(0x12345))), Pfn(0x12345));
    assert_eq!(pfn_to_section_nr(section_nr_to_pfn(77)), 77);
}

#[test]
fn ram_beyond_max_physmem_bits_gets_no_section() {
    let top = MAX_PFN;
    let s = booted(&[(pfn(0x10_0000), pfn(0x800_0000)), (top - 2 * SUB, top + 4 * SUB)]);
    let present: Vec<u64> = s.present_sections().map(|(nr, _)| nr).collect();
    assert_eq!(present, [0, NR_MEM_SECTIONS - 1]);
    assert_eq!(s.subsection_map(NR_MEM_SECTIONS - 1), 0b11 << 62);
    assert_eq!(s.stats().beyond_max_pages, 4 * SUB);
    assert_eq!(s.stats().roots, 2);
}

#[test]
fn hot_add_into_an_early_hole_reuses_the_boot_memmap() {
    let mut s = booted(&ram_2g_two_pmem());
    let before = s.stats();
    let p = pfn(0x3a00_0000);
    s.add_pages(0, p, 16 * SUB, SUB, None).unwrap();
    let ms = s.section(7).unwrap();
    assert_eq!(ms.subsection_map(&s.guard()), 0xffff_0000_ffff_ffff);
    assert!(ms.early());
    assert_eq!(s.stats(), before, "no new usage or memmap");
    assert_eq!(
        s.add_pages(0, p + SUB, SUB, SUB, None),
        Err(SparseError::Exist { pfn: p + SUB, nr_pages: SUB })
    );
    s.remove_pages(p, 16 * SUB, None).unwrap();
    assert_eq!(s.subsection_map(7), 0xffff_0000_0000_ffff);
    assert_eq!(s.backend.populated(7), u64::MAX, "an early memmap is never partly freed");
    s.add_pages(0, p, 16 * SUB, SUB, None).unwrap();
}

#[test]
fn bad_ranges_are_refused_without_change() {
    let mut s = booted(&ram_2g_two_pmem());
    let snap = snapshot(&s);
    let p = pfn(0x3a00_0000);
    assert_eq!(
        s.add_pages(0, p + 1, SUB, SUB, None),
        Err(SparseError::Inval { pfn: p + 1, nr_pages: SUB })
    );
    assert_eq!(
        s.add_pages(0, p, SUB + 8, SUB, None),
        Err(SparseError::Inval { pfn: p, nr_pages: SUB + 8 })
    );
    assert_eq!(s.add_pages(0, p, 0, SUB, None), Err(SparseError::Inval { pfn: p, nr_pages: 0 }));
    assert_eq!(s.add_pages(0, p, SUB, PAGES_PER_SECTION, None).unwrap_err().errno(), "EINVAL");
    let r = s.add_pages(0, MAX_PFN - SUB, 2 * SUB, SUB, None);
    assert_eq!(r, Err(SparseError::Range { pfn: MAX_PFN - SUB, nr_pages: 2 * SUB }));
    // RAM already active: EEXIST; nothing active there: not removed.
    assert_eq!(s.add_pages(0, p - SUB, 2 * SUB, SUB, None).unwrap_err().errno(), "EEXIST");
    let r = s.remove_pages(p - SUB, 2 * SUB, None);
    assert_eq!(r, Err(SparseError::NotActive { pfn: p - SUB, nr_pages: 2 * SUB }));
    assert_eq!(s.remove_pages(pfn(0x1_0000_0000), SUB, None).unwrap_err().errno(), "EINVAL");
    assert_eq!(snapshot(&s), snap);
}

#[test]
fn hot_add_into_a_new_section_populates_exactly_the_range() {
    let mut s = booted(&ram_2g_two_pmem());
    let base = pfn(0x1_0000_0000) + 10 * SUB; // mid-section 32
    s.add_pages(0, base, 3 * SUB, SUB, None).unwrap();
    let ms = s.section(32).unwrap();
    assert_eq!(ms.flags(), flags::PRESENT | flags::HAS_MEM_MAP);
    assert_eq!(ms.subsection_map(&s.guard()), 0b111 << 10);
    // Realigned to the section start: base + pfn is pfn's descriptor.
    assert_eq!(ms.mem_map_addr() + memmap_offset(base), s.pfn_to_page(base));
    assert_eq!(s.backend.populated(32), 0b111 << 10);
    assert!(s.pfn_valid(base) && s.pfn_valid(base + 3 * SUB - 1));
    assert!(!s.pfn_valid(base - 1) && !s.pfn_valid(base + 3 * SUB));
    assert_eq!(s.pfn_to_online_page(base), None, "not online until onlined");
    s.set_section_flags(base, 3 * SUB, flags::ONLINE, true);
    assert!(s.pfn_to_online_page(base).is_some());
    assert_eq!(s.stats().memmap_bytes, 16 * 2 * MIB + 3 * 32 * 1024);
    assert_eq!(s.stats().roots, 1);
}

#[test]
fn device_pages_are_never_online_pages() {
    let mut s = booted(&ram_2g_two_pmem());
    let p = pfn(0x3a00_0000);
    s.add_pages(0, p, 2 * SUB, SUB, None).unwrap();
    s.memmap_init_range(p, 2 * SUB, ZoneType::Device, 0, 7);
    s.set_section_flags(p, 2 * SUB, flags::TAINT_ZONE_DEVICE, true);
    assert!(s.pfn_valid(p));
    assert_eq!(s.pfn_to_online_page(p), None);
    assert!(s.pfn_to_online_page(p - 1).is_some(), "RAM next to it stays online");
    assert_eq!(s.page(p).unwrap().pgmap, 7);
    assert!(s.section_line(7).to_string().contains("early|zone_device "));
}

#[test]
fn full_removal_resets_the_word_frees_hot_usage_and_keeps_boot_usage() {
    let mut s = booted(&ram_2g_two_pmem());
    let base = pfn(0x1_0000_0000);
    s.add_pages(0, base, 4 * SUB, SUB, None).unwrap();
    s.remove_pages(base, 4 * SUB, None).unwrap();
    let ms = s.section(32).unwrap();
    assert_eq!((ms.raw(), ms.usage(&s.guard()).is_none()), (0, true));
    assert_eq!((s.backend.usages_allocated, s.backend.usages_freed), (1, 1));
    assert_eq!(s.backend.populated(32), 0);
    assert!(!s.pfn_valid(base));

    // An early section emptied: word 0, boot memmap freed whole, usage kept.
    let p8 = section_nr_to_pfn(8);
    s.remove_pages(p8, PAGES_PER_SECTION, None).unwrap();
    let ms = s.section(8).unwrap();
    assert_eq!(ms.raw(), 0);
    assert!(ms.usage(&s.guard()).is_some());
    assert_eq!(s.backend.populated(8), 0);
    assert_eq!(s.backend.usages_freed, 1);
    // Re-added, it is an ordinary section that reuses the boot usage, and
    // emptying it again still never frees that usage.
    s.add_pages(0, p8, 2 * SUB, SUB, None).unwrap();
    assert!(!s.section(8).unwrap().early());
    assert_eq!(s.backend.populated(8), 0b11);
    assert_eq!(s.backend.usages_allocated, 1);
    s.remove_pages(p8, 2 * SUB, None).unwrap();
    assert_eq!(s.backend.usages_freed, 1);
}

#[test]
fn failed_hot_add_leaves_exactly_the_state_before() {
    let mut s = booted(&ram_2g_two_pmem());
    // Spans sections 32 (partial), 33 (whole) and 34 (partial); the memmap
    // of the third fails, so the first two must be undone.
    let base = pfn(0x1_0000_0000) + 60 * SUB;
    let nr = 4 * SUB + PAGES_PER_SECTION + 2 * SUB;
    let snap = snapshot(&s);
    s.backend.fail_populate_in = Some(3);
    assert_eq!(s.add_pages(0, base, nr, SUB, None), Err(SparseError::NoMem { what: "memmap" }));
    assert_eq!(snapshot(&s), snap);
    assert_eq!(s.backend.usages_allocated, s.backend.usages_freed);
    s.backend.fail_usage = true;
    assert_eq!(s.add_pages(0, base, nr, SUB, None), Err(SparseError::NoMem { what: "usage" }));
    assert_eq!(snapshot(&s), snap);
    s.backend.fail_usage = false;
    s.add_pages(0, base, nr, SUB, None).unwrap();
    assert_eq!(s.subsection_map(33), u64::MAX);
    s.remove_pages(base, nr, None).unwrap();
    // Roots stay; everything else is back.
    assert_eq!(snapshot(&s)[..snap.len() - 1], snap[..snap.len() - 1]);
}

#[test]
fn altmap_must_start_the_range_and_fit() {
    let mut s = booted(&ram_2g_two_pmem());
    let base = pfn(0x1_0000_0000);
    let snap = snapshot(&s);
    // Refused before anything is touched: the altmap untouched too (a
    // stale `alloc` stays), no usage allocated.
    let fits = Altmap { base_pfn: base, reserve: 2, free: 510, alloc: 7 };
    let mut a = Altmap { free: 2 * SUB, ..fits };
    let r = s.add_pages(0, base, SUB, SUB, Some(&mut a));
    assert_eq!(r, Err(SparseError::Inval { pfn: base, nr_pages: SUB }), "altmap larger than range");
    assert_eq!(a, Altmap { free: 2 * SUB, ..fits });
    let mut a = Altmap { base_pfn: base + SUB, ..fits };
    let r = s.add_pages(0, base, 4 * SUB, SUB, Some(&mut a));
    assert_eq!(r, Err(SparseError::Inval { pfn: base, nr_pages: 4 * SUB }), "altmap elsewhere");
    assert_eq!(a, Altmap { base_pfn: base + SUB, ..fits });
    // 7 free pages where the sub-section's memmap needs 8 (32 KiB):
    // populating it fails and the add is undone.
    let mut a = Altmap { free: 7, ..fits };
    let r = s.add_pages(0, base, SUB, SUB, Some(&mut a));
    assert_eq!(r, Err(SparseError::NoMem { what: "memmap" }), "altmap too small for the memmap");
    assert_eq!(a.alloc, 0, "the failed add took nothing from the altmap");
    assert_eq!(snapshot(&s), snap);
    assert_eq!((s.backend.usages_allocated, s.backend.usages_freed), (1, 1));
    // A whole section whose altmap holds its 2 MiB of memmap after the
    // reserve: the add takes all of it, the remove gives it back.
    let mut a = Altmap { base_pfn: base, reserve: 2, free: 512, alloc: 7 };
    s.add_pages(0, base, PAGES_PER_SECTION, SUB, Some(&mut a)).unwrap();
    assert_eq!(a.alloc, 512, "a whole section's memmap (2 MiB) came from the altmap");
    assert_eq!(s.subsection_map(32), u64::MAX);
    s.remove_pages(base, PAGES_PER_SECTION, Some(&mut a)).unwrap();
    assert_eq!(snapshot(&s), snap);
}

use proptest::strategy::Strategy;
use rng::Rng;

/// The sections the random walks hot-add to and remove from: 6 and 7 are
/// early (7 with a hole), 8 and 9 new.
const WALK_SECTIONS: core::ops::Range<u64> = 6..10;
/// Their sub-sections, numbered from the first of section 6.
const WALK_SUBS: u64 = 4 * SUBSECTIONS_PER_SECTION;

/// One step of a walk. `op` 0 adds the `n` sub-sections from `a`, 1
/// removes them, 2 removes the run of active ones (at most `n`) from the
/// first active one at or after `a`, so that sections empty (and their
/// usages go) as often as they fill. `probes` are pfn offsets into
/// sections 6..=9 that `pfn_valid` is asked about afterwards.
#[derive(Debug, Clone, Copy)]
struct Step {
    op: u64,
    a: u64,
    n: u64,
    probes: [u64; 4],
}

/// A booted section table, and the set of active sub-sections of
/// sections 6..=9 that it must match after every [`Step`].
struct Walk {
    s: Box<Sparse<TestBackend>>,
    active: Vec<bool>,
    adds: u64,
    removes: u64,
    /// Steps after which each section had no active sub-section.
    emptied: [u64; 4],
}

impl Walk {
    fn new() -> Self {
        let ram = [(pfn(0x1000), pfn(0x3a00_0000)), (pfn(0x3e00_0000), pfn(0x4000_0000))];
        let s = booted(&ram);
        let first = section_nr_to_pfn(WALK_SECTIONS.start);
        let active = (0..WALK_SUBS)
            .map(|i| {
                s.pfn_to_section(first + i * SUB)
                    .unwrap()
                    .pfn_section_valid(&s.guard(), first + i * SUB)
            })
            .collect();
        Walk { s, active, adds: 0, removes: 0, emptied: [0; 4] }
    }

    /// Runs `st` (the walk's step number `step`) and checks every section
    /// of the walk against the model.
    fn step(&mut self, step: usize, st: Step) {
        let (s, active) = (&mut self.s, &mut self.active);
        let first = section_nr_to_pfn(WALK_SECTIONS.start);
        let subs = WALK_SUBS;
        let n = st.n.clamp(1, subs - st.a);
        let (a, n) = match (st.op, (st.a..subs).find(|&i| active[i as usize])) {
            (2, Some(b)) => (b, (b..subs.min(b + n)).take_while(|&i| active[i as usize]).count()),
            _ => (st.a, n as usize),
        };
        let n = n as u64;
        let (p, nr) = (first + a * SUB, n * SUB);
        let range = a as usize..(a + n) as usize;
        if st.op == 0 {
            let r = s.add_pages(0, p, nr, SUB, None);
            if active[range.clone()].iter().any(|&b| b) {
                assert_eq!(r.unwrap_err().errno(), "EEXIST", "step {step}");
            } else {
                r.unwrap();
                active[range].iter_mut().for_each(|b| *b = true);
                self.adds += 1;
            }
        } else {
            let r = s.remove_pages(p, nr, None);
            if active[range.clone()].iter().all(|&b| b) {
                r.unwrap();
                active[range].iter_mut().for_each(|b| *b = false);
                self.removes += 1;
            } else {
                assert_eq!(r, Err(SparseError::NotActive { pfn: p, nr_pages: nr }), "step {step}");
            }
        }
        for (nr, probe) in WALK_SECTIONS.zip(st.probes) {
            let k = nr - WALK_SECTIONS.start;
            let ms = s.section(nr).unwrap();
            self.emptied[k as usize] += u64::from(ms.subsection_map(&s.guard()) == 0);
            let want: u64 =
                (0..64).filter(|&i| active[(k * 64 + i) as usize]).fold(0, |m, i| m | 1 << i);
            assert_eq!(ms.subsection_map(&s.guard()), want, "step {step} section {nr}");
            assert_eq!(ms.valid(), want != 0, "step {step} section {nr}");
            assert_eq!(ms.present(), want != 0, "step {step} section {nr}");
            if ms.early() {
                assert_eq!(s.backend.populated(nr), u64::MAX, "step {step}");
            } else {
                assert_eq!(s.backend.populated(nr), want, "step {step} section {nr}");
            }
            let probe = section_nr_to_pfn(nr) + probe % PAGES_PER_SECTION;
            let bit = active[((probe - first) / SUB) as usize];
            assert_eq!(s.pfn_valid(probe), bit || (ms.early() && ms.valid()), "step {step}");
        }
        // Usages: the boot sections keep their boot usage for ever, even
        // when emptied; the others hold one exactly while something is
        // active, and every hot usage allocated and not freed is one of
        // those (none leaked, none freed while in use, no boot usage freed).
        for nr in 6..8 {
            assert!(s.has_boot_usage(nr), "step {step}: section {nr}");
        }
        let mut live = 0;
        for nr in 8..10 {
            let ms = s.section(nr).unwrap();
            assert_eq!(
                ms.usage(&s.guard()).is_some(),
                ms.subsection_map(&s.guard()) != 0,
                "step {step}: {nr}"
            );
            assert!(!s.has_boot_usage(nr), "step {step}: {nr}");
            live += u64::from(ms.usage(&s.guard()).is_some());
        }
        let hot = s.backend.usages_allocated.checked_sub(s.backend.usages_freed);
        assert_eq!(hot, Some(live), "step {step}: hot usages allocated and not freed");
    }
}

/// Random hot-add/remove over sections 6..=9 (6, 7 early with a hole in 7,
/// 8 and 9 new), checked against a set of active sub-sections: 20,000
/// steps from one seed, long enough that every section fills and empties
/// many times.
#[test]
fn random_add_remove_matches_a_naive_model() {
    let mut w = Walk::new();
    let mut rng = Rng::new(0x2545_f491_4f6c_dd1d);
    for step in 0..20_000 {
        let a = rng.below(WALK_SUBS);
        let span = if rng.below(4) == 0 { 80 } else { 6 };
        let n = 1 + rng.below(span).min(WALK_SUBS - a - 1);
        let op = rng.below(3);
        let probes = [(); 4].map(|_| rng.below(PAGES_PER_SECTION));
        w.step(step, Step { op, a, n, probes });
    }
    let (adds, removes) = (w.adds, w.removes);
    assert!(adds > 1000 && removes > 1000, "{adds} adds, {removes} removes");
    // Every section was empty at times, the boot ones included.
    assert!(w.emptied.iter().all(|&e| e > 100), "steps with each section empty: {:?}", w.emptied);
    assert!(w.s.backend.usages_freed > 100, "{} usages freed", w.s.backend.usages_freed);
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config::with_cases(64))]

    /// The same walk from sequences proptest chooses: when one fails,
    /// proptest shrinks it (fewer steps, smaller numbers) and reports the
    /// shortest failing sequence it finds, instead of step 13,577 of 20,000.
    #[test]
    fn add_remove_sequences_match_a_naive_model(
        steps in proptest::collection::vec(
            (0..3u64, 0..WALK_SUBS, 1..=80u64, proptest::array::uniform4(0..PAGES_PER_SECTION))
                .prop_map(|(op, a, n, probes)| Step { op, a, n, probes }),
            1..300,
        )
    ) {
        let mut w = Walk::new();
        for (i, &st) in steps.iter().enumerate() {
            w.step(i, st);
        }
    }
}

/// Every boot-time allocation can fail: the section it was for is left
/// out (not present, no memmap, no usage), the others are whole, and the
/// loss is counted.
#[test]
fn failed_boot_allocations_leave_sections_out_and_the_rest_whole() {
    // RAM in sections 0..4 and in section 300 (a second root), which has
    // two ranges: the second retries the root.
    let s300 = section_nr_to_pfn(300);
    let ram = [
        (Pfn(0), section_nr_to_pfn(4)),
        (s300, s300 + SUB),
        (s300 + SUB, s300 + PAGES_PER_SECTION),
    ];
    let check_whole = |s: &Sparse<TestBackend>, lost: &[u64]| {
        for nr in [0, 1, 2, 3, 300] {
            let ms = s.section_or_empty(nr);
            if lost.contains(&nr) {
                assert_eq!(ms.raw(), 0, "section {nr} left out");
                assert!(!s.pfn_valid(section_nr_to_pfn(nr)));
            } else {
                assert!(ms.present() && ms.valid() && ms.early(), "section {nr}");
                assert_eq!(ms.subsection_map(&s.guard()), u64::MAX);
                assert!(s.pfn_valid(section_nr_to_pfn(nr) + 5));
            }
        }
    };
    // The second section's memmap.
    let mut s = Sparse::new(TestBackend { fail_populate_in: Some(2), ..Default::default() }, 0);
    let st = s.init(&ram, 0).expect("boot goes on");
    assert_eq!((st.lost_sections, st.usage_failed), (1, false));
    check_whole(&s, &[1]);
    // The second root, for section 300's first range; its second range
    // allocates it, so nothing is lost.
    let mut s = Sparse::new(TestBackend { fail_root_in: Some(2), ..Default::default() }, 0);
    let st = s.init(&ram, 0).expect("boot goes on");
    assert_eq!((st.lost_sections, st.roots), (0, 2));
    check_whole(&s, &[]);
    // RAM in section 300 as one range: the section is left out.
    let one = [ram[0], (s300, s300 + PAGES_PER_SECTION)];
    let mut s = Sparse::new(TestBackend { fail_root_in: Some(2), ..Default::default() }, 0);
    let st = s.init(&one, 0).expect("boot goes on");
    assert_eq!((st.lost_sections, st.roots), (1, 1));
    check_whole(&s, &[300]);
    // The usage chunk: every section.
    let mut s = Sparse::new(TestBackend { fail_early_usages: true, ..Default::default() }, 0);
    let st = s.init(&ram, 0).expect("boot goes on");
    assert_eq!((st.lost_sections, st.usage_failed, st.memmap_bytes), (5, true, 0));
    check_whole(&s, &[0, 1, 2, 3, 300]);
}

/// Checks every pfn of a device-dax range of `c` pages added with pgmap
/// `pgmap`: valid, a head where aligned and a tail elsewhere, each tail's
/// head found from its pfn and owning the pgmap, tails never writable.
fn check_compound_range(s: &mut Sparse<TestBackend>, first: Pfn, n: u64, c: Compound, pgmap: u64) {
    for pfn in (first.as_u64()..first.as_u64() + n).map(Pfn) {
        assert!(s.pfn_valid(pfn), "{pfn:#x}");
        let page = *s.page(pfn).unwrap_or_else(|| panic!("{pfn:#x} has no descriptor"));
        assert_eq!(page, c.descriptor(pfn, 0, pgmap), "{pfn:#x}");
        assert_eq!(page.zone(), ZoneType::Device);
        if pfn < c.start() {
            continue;
        }
        let head = page.compound_head(pfn);
        assert_eq!(head, pfn.align_down(1 << c.shift()), "{pfn:#x}");
        assert_eq!(page.compound_order(), c.shift());
        let hp = s.page(head).unwrap();
        assert!(hp.has(crate::page::pg::HEAD) && hp.pgmap == pgmap, "head of {pfn:#x}");
        // A tail on a shared vmemmap page is read-only.
        let v = pfn.align_down(DESCS_PER_VMEMMAP_PAGE);
        assert_eq!(s.backend.page_mut(pfn).is_none(), c.shares_vmemmap_page(v, 0), "{pfn:#x}");
    }
}

#[test]
fn devdax_compound_pages_share_their_tails_and_every_pfn_is_right() {
    let mut s = booted(&ram_2g_two_pmem());
    let before = snapshot(&s);
    let g = 1u64 << 30;
    let first = pfn(4 * g);
    let n = g / 4096;
    for shift in [9, 18] {
        // Memmap in RAM: sub-section by sub-section, as a raw-mapped add.
        let c = Compound::new(first, shift).unwrap();
        let bytes0 = s.stats.memmap_bytes;
        let init = DeviceInit { nid: 0, pgmap: 7, compound: Some(c) };
        for at in (0..n / SUB).map(|i| first + i * SUB) {
            s.add_device_pages(at, SUB, SUB, None, init).unwrap();
        }
        // One vmemmap page per compound page: 2 MiB per GiB at 2 MiB
        // (Linux: 4), 4 KiB per GiB at 1 GiB.
        let per_gib = s.stats.memmap_bytes - bytes0;
        assert_eq!(per_gib, (n >> shift) * 4096, "shift {shift}");
        assert_eq!(s.backend.shared_in(first, n), n / 64 - (n >> shift));
        check_compound_range(&mut s, first, n, c, 7);
        for at in (0..n / SUB).rev().map(|i| first + i * SUB) {
            s.remove_pages(at, SUB, None).unwrap();
        }
        assert_eq!(snapshot(&s), before, "shift {shift}: the remove undid the add");
        assert_eq!(s.backend.shared_in(first, n), 0);
    }
    // Memmap on the device: an altmap of 16 MiB (what a full memmap would
    // need, as the info block reserves), whole range at once; the compound
    // pages start after it. Only an eighth of it is used.
    let reserve = 2;
    let free = n * 64 / 4096;
    let data = (first + reserve + free).align_up(512);
    let c = Compound::new(data, 9).unwrap();
    let mut altmap = Altmap { base_pfn: first, reserve, free, alloc: 0 };
    let init = DeviceInit { nid: 0, pgmap: 9, compound: Some(c) };
    s.add_device_pages(first, n, SUB, Some(&mut altmap), init).unwrap();
    // Pages of their own only for the heads: the altmap's pages share one
    // page of reserved descriptors.
    let heads = (first + n - data) >> 9;
    assert_eq!(altmap.alloc, heads, "pages taken from the device");
    check_compound_range(&mut s, first, n, c, 9);
    s.remove_pages(first, n, Some(&mut altmap)).unwrap();
    assert_eq!(snapshot(&s), before);
    // A misaligned start or shift 0 is no compound range.
    assert!(Compound::new(first + 1, 9).is_none() && Compound::new(first, 0).is_none());
}

/// `fill_compound` writes, a run at a time, exactly what
/// `Compound::descriptor` says for each pfn, from any start and length.
#[test]
fn fill_compound_equals_a_descriptor_per_pfn() {
    let mut seed = 7u64;
    let mut below = |n: u64| {
        seed += 1;
        crate::splitmix64(seed) % n
    };
    for shift in [9, 18] {
        let c = Compound::new(Pfn(0x40_0000 + (3 << shift)), shift).unwrap();
        for _ in 0..200 {
            let start = Pfn(c.start().as_u64() - 2048 + below(8 << shift));
            let n = 1 + below(3 << 9);
            let mut pages = vec![Page::ZERO; n as usize];
            fill_compound(&mut pages, start, &c, 0, 5);
            for (i, p) in pages.iter().enumerate() {
                assert_eq!(*p, c.descriptor(start + i as u64, 0, 5), "{start:#x}+{i}");
            }
        }
    }
}

#[test]
fn device_pageblocks_are_movable_as_memmap_init_zone_device_marks_them() {
    let mut s = booted(&ram_2g_two_pmem());
    let first = pfn(4 << 30) + 4 * SUB;
    let init = DeviceInit { nid: 0, pgmap: 3, compound: None };
    s.add_device_pages(first, 2 * SUB, SUB, None, init).unwrap();
    for at in [first, first + SUB, first + 2 * SUB - 1] {
        assert_eq!(s.pageblock_migratetype(at), Some(MigrateType::Movable), "{at:#x}");
    }
    // The section's other pageblocks hold no memory and stay as they were.
    assert_eq!(s.pageblock_migratetype(first - SUB), Some(MigrateType::Unmovable));
    assert_eq!(s.pageblock_migratetype(first + 2 * SUB), Some(MigrateType::Unmovable));
}

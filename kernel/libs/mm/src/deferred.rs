//! Deferred struct-page initialisation, as Linux's
//! `CONFIG_DEFERRED_STRUCT_PAGE_INIT` (mm/page_alloc.c, v6.1): at boot only
//! the memory the kernel needs before the other CPUs run gets initialised
//! descriptors and goes to the page allocator; the rest of the node is done
//! after SMP bring-up, on every CPU at once (`deferred_init_memmap`).
//!
//! The boundary is Linux's `defer_init()`: every zone below the node's
//! highest zone is initialised at boot (address-constrained allocations
//! need them); in the highest zone the first section's worth of pages
//! (counted over memory, holes left out) is, and deferral starts at the
//! next section-aligned pfn after them, `first_deferred_pfn`. So on a
//! 2 GiB machine (RAM only below 4 GiB, DMA32 the highest zone) the first
//! 256 MiB are initialised at boot, on an 8 GiB one all of DMA and DMA32
//! and the first 128 MiB above 4 GiB.
//!
//! The deferred part is whole sections. Each is done on its own
//! ([`deferred_init_section`]): its descriptors initialised as boot
//! initialises an early section's (holes included, all reserved), then its
//! free memory handed to a buddy allocator of its own. A section's blocks
//! never merge with another section's (a section is 2^15 pages, the
//! largest block 2^10), so splicing the sections' allocators into the
//! page allocator in pfn order ([`BuddyAllocator::splice`]) gives exactly
//! the state one CPU freeing everything in pfn order would: the same
//! descriptors, byte for byte, and the same free lists.

use crate::buddy::{BuddyAllocator, taken_page};
use crate::page::{MAX_DMA_PFN, MAX_DMA32_PFN, MemMap, Page, Pfn, ZoneType};
use crate::sparse::{PAGES_PER_SECTION, fill_pages, for_each_zone_run, memmap_init_pages};

/// Linux's `defer_init()` for node 0 whose memory is `memory` (pfn
/// ranges, ascending, as `for_each_mem_pfn_range` gives them): the first
/// pfn whose descriptor is left for deferred init, `None` when nothing is
/// deferred (the highest zone holds no more than a section's worth of
/// pages before its last section boundary).
pub fn first_deferred_pfn(memory: &[(Pfn, Pfn)]) -> Option<Pfn> {
    let node_end = memory.iter().map(|&(_, e)| e).max()?;
    if node_end == Pfn::ZERO {
        return None;
    }
    // The node's highest zone: the only one whose end is the node's end.
    let zone_start = match ZoneType::for_pfn(node_end - 1) {
        ZoneType::Dma => Pfn::ZERO,
        ZoneType::Dma32 => MAX_DMA_PFN,
        _ => MAX_DMA32_PFN,
    };
    // nr_initialised counts the zone's pages in memory order; deferral
    // starts at the first section-aligned pfn once it exceeds a section.
    let mut nr = 0u64;
    for &(s, e) in memory {
        let (s, e) = (s.max(zone_start), e.min(node_end));
        if s >= e {
            continue;
        }
        let first_over = s + PAGES_PER_SECTION.saturating_sub(nr);
        let pfn = first_over.align_up(PAGES_PER_SECTION);
        if pfn < e {
            return Some(pfn);
        }
        nr += e - s;
    }
    None
}

/// One section's descriptors as a memmap of their own.
pub struct SectionMemMap<'a> {
    start: Pfn,
    pages: &'a mut [Page],
}

impl<'a> SectionMemMap<'a> {
    /// `pages` are the descriptors of `start`, `start + 1`, ...
    pub fn new(start: Pfn, pages: &'a mut [Page]) -> Self {
        Self { start, pages }
    }

    fn index(&self, pfn: Pfn) -> Option<usize> {
        let i = pfn.checked_pages_since(self.start)?;
        (i < self.pages.len() as u64).then_some(i as usize)
    }
}

impl MemMap for SectionMemMap<'_> {
    fn page(&self, pfn: Pfn) -> Option<&Page> {
        self.pages.get(self.index(pfn)?)
    }

    fn page_mut(&mut self, pfn: Pfn) -> Option<&mut Page> {
        let i = self.index(pfn)?;
        self.pages.get_mut(i)
    }

    fn pages_mut(&mut self, pfn: Pfn, nr: u64) -> Option<&mut [Page]> {
        let i = self.index(pfn)?;
        self.pages.get_mut(i..i.checked_add(nr as usize)?)
    }
}

/// `deferred_init_memmap_chunk` for one section: initialises all of its
/// descriptors (`pages`, the first being `start`'s) for node `nid` as
/// boot initialises an early section's, then frees the parts of `free`
/// (memblock's free pfn ranges, ascending) inside it, in order, to a
/// buddy allocator of its own, which it returns for
/// [`BuddyAllocator::splice`].
///
/// In one pass: each descriptor is written once, in its final state
/// ([`Page::init`] outside `free`, [`taken_page`] inside), and then only
/// the free blocks' first pages are touched, to list them
/// ([`BuddyAllocator::free_taken_range`]). The result is byte for byte
/// that of [`deferred_init_section_reference`] (initialise everything,
/// then [`BuddyAllocator::free_range`], which reads and rewrites every
/// free descriptor); free ranges that are not ascending and disjoint take
/// that path.
pub fn deferred_init_section(
    pages: &mut [Page],
    start: Pfn,
    free: &[(Pfn, Pfn)],
    nid: u16,
) -> BuddyAllocator {
    let end = start + pages.len() as u64;
    let ordered = free.windows(2).all(|w| w[0].1 <= w[1].0);
    if !ordered {
        return deferred_init_section_reference(pages, start, free, nid);
    }
    let clip = |&(s, e): &(Pfn, Pfn)| {
        let (s, e) = (s.max(start), e.min(end));
        (s < e).then_some((s, e))
    };
    // Each descriptor in its final state but for the free blocks' heads.
    let mut at = start;
    let offset = |pfn: Pfn| (pfn - start) as usize;
    for (s, e) in free.iter().filter_map(clip) {
        let (reserved, rest) = pages[offset(at)..].split_at_mut(offset(s) - offset(at));
        memmap_init_pages(reserved, at, nid);
        for_each_zone_run(&mut rest[..offset(e) - offset(s)], s, |run, zone| {
            fill_pages(run, &taken_page(zone, nid))
        });
        at = e;
    }
    memmap_init_pages(&mut pages[offset(at)..], at, nid);
    // The blocks, listed in pfn order as free_range lists them.
    let mut map = SectionMemMap::new(start, pages);
    let mut local = BuddyAllocator::new();
    for (s, e) in free.iter().filter_map(clip) {
        local.free_taken_range(&mut map, s, e);
    }
    local
}

/// [`deferred_init_section`] the plain way, its reference: every
/// descriptor initialised ([`memmap_init_pages`]), then the free ranges
/// handed over by [`BuddyAllocator::free_range`].
pub fn deferred_init_section_reference(
    pages: &mut [Page],
    start: Pfn,
    free: &[(Pfn, Pfn)],
    nid: u16,
) -> BuddyAllocator {
    memmap_init_pages(pages, start, nid);
    let end = start + pages.len() as u64;
    let mut map = SectionMemMap::new(start, pages);
    let mut local = BuddyAllocator::new();
    for &(s, e) in free {
        let (s, e) = (s.max(start), e.min(end));
        if s < e {
            local.free_range(&mut map, s, e);
        }
    }
    local
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    const S: u64 = PAGES_PER_SECTION;

    fn r(s: u64, e: u64) -> (Pfn, Pfn) {
        (Pfn(s), Pfn(e))
    }

    #[test]
    fn the_boundary_is_linux_defer_init() {
        // QEMU 2 GiB: DMA32 is the highest zone; a section's worth of pages
        // from 16 MiB ends at 0x9000, the next section starts at 256 MiB.
        let two_g = [r(1, 0x9f), r(0x100, 0x7ffdf)];
        assert_eq!(first_deferred_pfn(&two_g), Some(Pfn(0x10000)));
        // QEMU 8 GiB: DMA and DMA32 whole; Normal from 4 GiB, where the
        // count passes a section at 0x108000, itself a section boundary.
        let eight_g = [r(1, 0x9f), r(0x100, 0xbffdf), r(0x100000, 0x240000)];
        assert_eq!(first_deferred_pfn(&eight_g), Some(Pfn(0x108000)));
        // Holes do not count: the pages after the hole finish the section.
        let holed = [r(0x1000, 0x5000), r(0x20000, 0x80000)];
        assert_eq!(first_deferred_pfn(&holed), Some(Pfn(0x28000)));
        // Too little in the highest zone: nothing deferred.
        assert_eq!(first_deferred_pfn(&[r(0x100, 0x9000)]), None);
        assert_eq!(first_deferred_pfn(&[r(0x100, 0x10000)]), None);
        assert_eq!(first_deferred_pfn(&[r(0x100, 0x10001)]), Some(Pfn(0x10000)));
        assert_eq!(first_deferred_pfn(&[]), None);
        // RAM in DMA only (below 16 MiB): DMA is the highest zone.
        assert_eq!(first_deferred_pfn(&[r(0, 0x1000)]), None);
    }

    /// Deterministic pseudo-random numbers (splitmix64).
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 += 1;
            crate::splitmix64(self.0) % n
        }
    }

    /// Free ranges inside `[start, end)`: random gaps (reserved pages).
    fn random_free(rng: &mut Rng, start: u64, end: u64) -> Vec<(Pfn, Pfn)> {
        let mut out = Vec::new();
        let mut at = start;
        while at < end {
            let gap = if rng.below(3) == 0 { rng.below(5000) } else { 0 };
            let len = 1 + rng.below(40_000);
            let (s, e) = ((at + gap).min(end), (at + gap + len).min(end));
            if s < e {
                out.push(r(s, e));
            }
            at = e + 1 + rng.below(3);
        }
        out
    }

    /// One memmap over `[first, last)` sections, as a `Vec` per pfn.
    struct Flat(u64, Vec<Page>);
    impl MemMap for Flat {
        fn page(&self, pfn: Pfn) -> Option<&Page> {
            self.1.get(pfn.checked_pages_since(Pfn(self.0))? as usize)
        }
        fn page_mut(&mut self, pfn: Pfn) -> Option<&mut Page> {
            self.1.get_mut(pfn.checked_pages_since(Pfn(self.0))? as usize)
        }
    }

    /// Splicing sections done on their own, in pfn order, equals freeing
    /// everything on one allocator in pfn order: descriptors and lists,
    /// with blocks already in the allocator from lower memory, across the
    /// 4 GiB zone limit, and in any order the sections were worked on.
    #[test]
    fn sections_spliced_in_order_equal_one_cpu_freeing_in_order() {
        for seed in 0..6 {
            let mut rng = Rng(seed * 1000);
            // Sections 30..34 straddle 4 GiB (section 32).
            let (first, n) = (30 * S, 4 * S);
            let low = random_free(&mut rng, first, first + S);
            let deferred = random_free(&mut rng, first + S, first + n);
            let garbage = Page { flags: 0xdead, refcount: 7, ..Page::init(ZoneType::Normal, 3) };

            // One CPU: the boot part, then everything in pfn order.
            let mut mm = Flat(first, vec![garbage; n as usize]);
            memmap_init_pages(&mut mm.1[..S as usize], Pfn(first), 0);
            let mut one = BuddyAllocator::new();
            for &(s, e) in &low {
                one.free_range(&mut mm, s, e);
            }
            let mut split = Flat(first, mm.1.clone());
            let mut many = one.clone();
            for sec in 1..4 {
                let start = first + sec * S;
                let pages = &mut mm.1[(sec * S) as usize..((sec + 1) * S) as usize];
                memmap_init_pages(pages, Pfn(start), 0);
            }
            for &(s, e) in &deferred {
                one.free_range(&mut mm, s, e);
            }
            one.check(&mm).unwrap();

            // Several: each section on its own, in a shuffled order, then
            // spliced in pfn order.
            let mut order: Vec<u64> = (1..4).collect();
            order.swap(0, rng.below(3) as usize);
            let mut locals: Vec<Option<BuddyAllocator>> = vec![None, None, None, None];
            for &sec in &order {
                let start = first + sec * S;
                let pages = &mut split.1[(sec * S) as usize..((sec + 1) * S) as usize];
                locals[sec as usize] = Some(deferred_init_section(pages, Pfn(start), &deferred, 0));
            }
            for local in locals.iter().flatten() {
                many.splice(&mut split, local).unwrap();
            }
            many.check(&split).unwrap();
            assert_eq!(many, one, "seed {seed}");
            assert!(mm.1 == split.1, "seed {seed}: descriptors differ");
        }
    }

    /// Free ranges from `(gap, len)` pairs, starting `lead` pages before
    /// `start`: ascending, disjoint, adjacent where a gap is 0 (their
    /// blocks may then merge), some reaching outside the window.
    fn ranges_from(start: u64, lead: u64, steps: &[(u64, u64)]) -> Vec<(Pfn, Pfn)> {
        let mut at = start.saturating_sub(lead);
        let mut out = Vec::new();
        for &(gap, len) in steps {
            let s = at + gap;
            out.push(r(s, s + len));
            at = s + len;
        }
        out
    }

    /// Descriptors full of junk, as a memmap nobody initialised.
    fn junk(n: usize, seed: u64) -> Vec<Page> {
        (0..n as u64)
            .map(|i| {
                let w = core::array::from_fn(|k| crate::splitmix64(seed ^ (i * 8 + k as u64)));
                Page::from_words(w)
            })
            .collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(256))]

        /// The one-pass init gives exactly the descriptors and free lists
        /// of init then free_range, on random free ranges and holes, over
        /// windows across the 16 MiB and 4 GiB zone limits.
        #[test]
        fn one_pass_init_equals_init_then_free_range(
            start in proptest::prop_oneof![0u64..0x2000, 0xfd000u64..0x102000],
            len in 1usize..6000,
            lead in 0u64..200,
            steps in proptest::collection::vec((0u64..300, 1u64..3000), 0..12),
            zero_gaps in proptest::bool::ANY,
            nid in 0u16..4,
            seed in proptest::num::u64::ANY,
        ) {
            let steps: Vec<(u64, u64)> =
                steps.iter().map(|&(g, l)| (if zero_gaps && g < 150 { 0 } else { g }, l)).collect();
            let free = ranges_from(start, lead, &steps);
            let mut fast = junk(len, seed);
            let mut slow = junk(len, seed.wrapping_add(1));
            let a = deferred_init_section(&mut fast, Pfn(start), &free, nid);
            let b = deferred_init_section_reference(&mut slow, Pfn(start), &free, nid);
            proptest::prop_assert_eq!(&a, &b);
            proptest::prop_assert!(fast == slow, "descriptors differ");
            a.check(&SectionMemMap::new(Pfn(start), &mut fast)).unwrap();
        }
    }

    /// Whole sections, as boot runs it: section 0 (the 16 MiB limit),
    /// the last below 4 GiB and the first above.
    #[test]
    fn one_pass_init_equals_reference_on_whole_sections() {
        for (seed, sec) in [(1u64, 0u64), (2, 31), (3, 32), (4, 40)] {
            let mut rng = Rng(seed);
            let start = sec * S;
            let free = random_free(&mut rng, start.saturating_sub(100), start + S + 100);
            let mut fast = junk(S as usize, seed);
            let mut slow = fast.clone();
            let a = deferred_init_section(&mut fast, Pfn(start), &free, 0);
            let b = deferred_init_section_reference(&mut slow, Pfn(start), &free, 0);
            assert_eq!(a, b, "section {sec}");
            assert!(fast == slow, "section {sec}: descriptors differ");
            // All free: whole order-10 blocks.
            let a = deferred_init_section(&mut fast, Pfn(start), &[r(start, start + S)], 0);
            assert_eq!(
                a.nr_free(ZoneType::for_pfn(Pfn(start + S - 1))),
                S - if sec == 0 { 0x1000 } else { 0 }
            );
        }
        // Unordered ranges take the reference path.
        let free = [r(40 * S + 5000, 40 * S + 9000), r(40 * S + 10, 40 * S + 100)];
        let mut fast = junk(S as usize, 9);
        let mut slow = fast.clone();
        let a = deferred_init_section(&mut fast, Pfn(40 * S), &free, 0);
        let b = deferred_init_section_reference(&mut slow, Pfn(40 * S), &free, 0);
        assert!(a == b && fast == slow);
    }

    #[test]
    fn a_section_memmap_answers_only_for_its_pfns() {
        let mut pages = vec![Page::init(ZoneType::Dma32, 0); 8];
        let mut m = SectionMemMap::new(Pfn(0x1000), &mut pages);
        assert!(m.page(Pfn(0xfff)).is_none() && m.page(Pfn(0x1008)).is_none());
        assert!(m.page(Pfn(0x1007)).is_some());
        assert_eq!(m.pages_mut(Pfn(0x1004), 4).map(|p| p.len()), Some(4));
        assert!(m.pages_mut(Pfn(0x1004), 5).is_none());
    }
}

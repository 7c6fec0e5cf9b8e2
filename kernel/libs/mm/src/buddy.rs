//! The binary buddy page allocator, as Linux's `mm/page_alloc.c`: per zone,
//! free lists of naturally aligned blocks of 2^order pages (order
//! 0..=[`MAX_ORDER`]). Allocation takes the smallest sufficient block and
//! splits it (`expand`); freeing merges a block with its buddy
//! (`pfn ^ (1 << order)`) while that is free, of the same order and in the
//! same zone (`__free_one_page`).
//!
//! A page's life: `reserved --free_range--> free (buddy) <--alloc/free_pages--> allocated`.
//!
//! The allocator holds only per-zone bookkeeping (list heads, counters, span).
//! The lists run through the descriptors ([`Page::next`]/[`Page::prev`]),
//! reached through the [`MemMap`] passed into each call. Only the first page
//! of a free block has [`pg::BUDDY`] and `private = order`; all its pages have
//! refcount 0 and no [`pg::RESERVED`]. An allocated block's first page has
//! refcount 1, `private = order`, and [`pg::HEAD`] if order > 0; its other
//! pages have refcount 0.

use core::fmt;

use crate::page::{
    MAX_DMA_PFN, MAX_DMA32_PFN, MAX_NR_ZONES, MemMap, NO_PFN, Page, Pfn, ZoneType, pg,
};

/// Largest block order (Linux's `MAX_PAGE_ORDER`): 1024 pages, 4 MiB.
pub const MAX_ORDER: u32 = 10;
/// Number of free lists per zone.
pub const NR_ORDERS: usize = MAX_ORDER as usize + 1;

// Naturally aligned blocks then never straddle the 16 MiB / 4 GiB zone limits.
const _: () = assert!(
    MAX_DMA_PFN.is_multiple_of(1 << MAX_ORDER) && MAX_DMA32_PFN.is_multiple_of(1 << MAX_ORDER)
);

/// Why a buddy operation failed. Failed operations change nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuddyError {
    /// The order is above [`MAX_ORDER`].
    BadOrder { order: u32 },
    /// No free block of `order` in `zone` or any lower zone.
    NoMemory { order: u32, zone: ZoneType },
    /// `pfn` is not aligned to 2^`order` pages.
    Misaligned { pfn: Pfn, order: u32 },
    /// No page descriptor exists for `pfn`.
    NoMemmap { pfn: Pfn },
    /// `pfn` is ZONE_DEVICE memory, never in the page allocator.
    DeviceZone { pfn: Pfn },
    /// `pfn` is reserved: it was never handed to the allocator.
    Reserved { pfn: Pfn },
    /// `pfn` is not the first page of an allocated block (free, a tail page,
    /// or a reference count other than 1).
    NotAllocated { pfn: Pfn },
    /// `pfn` was allocated as order `allocated`, not `order`.
    WrongOrder { pfn: Pfn, order: u32, allocated: u64 },
    /// The free lists or descriptors are inconsistent.
    Corrupt { pfn: Pfn, what: &'static str },
    /// `pfn` is in use (allocated, reserved or not managed), so the range
    /// it is in cannot be taken back.
    Busy { pfn: Pfn },
}

impl fmt::Display for BuddyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::BadOrder { order } => write!(f, "buddy: order {order} above {MAX_ORDER}"),
            Self::NoMemory { order, zone } => {
                write!(f, "buddy: no free order-{order} block in zone {zone} or below")
            }
            Self::Misaligned { pfn, order } => {
                write!(f, "buddy: pfn {pfn:#x} not aligned to order {order}")
            }
            Self::NoMemmap { pfn } => write!(f, "buddy: pfn {pfn:#x} has no page descriptor"),
            Self::DeviceZone { pfn } => write!(f, "buddy: pfn {pfn:#x} is ZONE_DEVICE memory"),
            Self::Reserved { pfn } => write!(f, "buddy: pfn {pfn:#x} is reserved"),
            Self::NotAllocated { pfn } => write!(f, "buddy: pfn {pfn:#x} is not allocated"),
            Self::WrongOrder { pfn, order, allocated } => {
                write!(f, "buddy: pfn {pfn:#x} freed as order {order}, allocated {allocated}")
            }
            Self::Corrupt { pfn, what } => write!(f, "buddy: corrupt at pfn {pfn:#x}: {what}"),
            Self::Busy { pfn } => write!(f, "buddy: pfn {pfn:#x} is in use"),
        }
    }
}

/// One free list (`struct free_area`): blocks of one order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreeArea {
    head: Pfn,
    nr_free: u64,
}

impl FreeArea {
    const EMPTY: FreeArea = FreeArea { head: NO_PFN, nr_free: 0 };

    /// First block of the list, [`NO_PFN`] if empty.
    pub const fn head(&self) -> Pfn {
        self.head
    }

    /// Number of blocks in the list.
    pub const fn nr_free(&self) -> u64 {
        self.nr_free
    }
}

/// A zone's allocator state (`struct zone`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    zone_type: ZoneType,
    free_area: [FreeArea; NR_ORDERS],
    managed_pages: u64,
    start_pfn: Pfn,
    end_pfn: Pfn,
}

impl Zone {
    const fn new(zone_type: ZoneType) -> Self {
        Self {
            zone_type,
            free_area: [FreeArea::EMPTY; NR_ORDERS],
            managed_pages: 0,
            start_pfn: Pfn::ZERO,
            end_pfn: Pfn::ZERO,
        }
    }

    /// Which zone this is.
    pub const fn zone_type(&self) -> ZoneType {
        self.zone_type
    }

    /// The free list of `order`.
    pub fn free_area(&self, order: u32) -> Option<&FreeArea> {
        self.free_area.get(order as usize)
    }

    /// Pages handed to the allocator (free or allocated).
    pub const fn managed_pages(&self) -> u64 {
        self.managed_pages
    }

    /// First pfn of the span of managed pages (0 while empty).
    pub const fn zone_start_pfn(&self) -> Pfn {
        self.start_pfn
    }

    /// End (exclusive) of the span of managed pages.
    pub const fn zone_end_pfn(&self) -> Pfn {
        self.end_pfn
    }

    /// `spanned_pages`: size of the span, holes included.
    pub const fn spanned_pages(&self) -> u64 {
        self.end_pfn.as_u64() - self.start_pfn.as_u64()
    }

    /// Free pages over all orders.
    pub fn nr_free_pages(&self) -> u64 {
        self.free_area.iter().enumerate().map(|(o, a)| a.nr_free << o).sum()
    }
}

/// The page allocator: one [`Zone`] each for DMA, DMA32 and Normal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuddyAllocator {
    zones: [Zone; MAX_NR_ZONES],
}

impl Default for BuddyAllocator {
    fn default() -> Self {
        Self::new()
    }
}

type Res<T = ()> = Result<T, BuddyError>;

fn link<M: MemMap>(mm: &mut M, pfn: Pfn) -> Res<&mut Page> {
    mm.page_mut(pfn).ok_or(BuddyError::Corrupt { pfn, what: "listed page has no descriptor" })
}

fn ensure(ok: bool, pfn: Pfn, what: &'static str) -> Res {
    if ok { Ok(()) } else { Err(BuddyError::Corrupt { pfn, what }) }
}

/// The zone of a page [`BuddyAllocator::free_range`] may take: initialized,
/// reserved (so not yet managed), not free, not ZONE_DEVICE.
fn takeable(page: &Page) -> Option<ZoneType> {
    let ok = page.has(pg::INITIALIZED | pg::RESERVED) && !page.is_buddy();
    (ok && page.zone() != ZoneType::Device).then_some(page.zone())
}

impl BuddyAllocator {
    /// An allocator with no memory.
    pub const fn new() -> Self {
        Self {
            zones: [
                Zone::new(ZoneType::Dma),
                Zone::new(ZoneType::Dma32),
                Zone::new(ZoneType::Normal),
            ],
        }
    }

    /// The state of `zone` (`None` for [`ZoneType::Device`]).
    pub fn zone(&self, zone: ZoneType) -> Option<&Zone> {
        self.zones.get(zone as usize)
    }

    /// Free pages in `zone`.
    pub fn nr_free(&self, zone: ZoneType) -> u64 {
        self.zone(zone).map_or(0, Zone::nr_free_pages)
    }

    /// Pages of `zone` handed to the allocator.
    pub fn managed(&self, zone: ZoneType) -> u64 {
        self.zone(zone).map_or(0, Zone::managed_pages)
    }

    /// Free blocks per order in `zone`, as a `/proc/buddyinfo` line.
    pub fn free_counts(&self, zone: ZoneType) -> [u64; NR_ORDERS] {
        self.zone(zone).map_or([0; NR_ORDERS], |z| z.free_area.map(|a| a.nr_free))
    }

    /// Hands the pages of `[start_pfn, end_pfn)` to the allocator
    /// (`memblock_free_all` / `__free_pages_core`) in the largest naturally
    /// aligned blocks that fit, each within one zone, merging with free
    /// neighbours. Pages are taken only if their descriptor exists, is
    /// initialized and reserved, and is not ZONE_DEVICE; others (holes,
    /// pages already managed) are skipped. Returns the number of pages taken.
    pub fn free_range<M: MemMap>(&mut self, mm: &mut M, start_pfn: Pfn, end_pfn: Pfn) -> u64 {
        let (mut pfn, mut freed) = (start_pfn, 0);
        while pfn < end_pfn {
            let Some(zone) = mm.page(pfn).and_then(takeable) else {
                pfn += 1;
                continue;
            };
            let max = pfn.align_order().min(MAX_ORDER).min((end_pfn - pfn).ilog2());
            let take = |page: &mut Page| {
                page.set(pg::RESERVED | pg::BUDDY | pg::HEAD, false);
                (page.refcount, page.private, page.next, page.prev) = (0, 0, NO_PFN, NO_PFN);
            };
            let order = match mm.pages_mut(pfn, 1 << max) {
                // Fast path: the whole candidate block as one slice.
                Some(pages) => {
                    let run = pages.iter().position(|p| takeable(p) != Some(zone));
                    let order = max.min(run.unwrap_or(1 << max).ilog2());
                    pages[..1 << order].iter_mut().for_each(take);
                    order
                }
                None => {
                    let run = (1..1 << max)
                        .find(|&i| mm.page(pfn + i).and_then(takeable) != Some(zone))
                        .unwrap_or(1 << max);
                    let order = max.min(run.ilog2());
                    for p in pfn..pfn + (1 << order) {
                        if let Some(page) = mm.page_mut(p) {
                            take(page);
                        }
                    }
                    order
                }
            };
            let n = 1 << order;
            let z = &mut self.zones[zone as usize];
            if z.managed_pages == 0 {
                (z.start_pfn, z.end_pfn) = (pfn, pfn + n);
            }
            (z.start_pfn, z.end_pfn) = (z.start_pfn.min(pfn), z.end_pfn.max(pfn + n));
            z.managed_pages += n;
            if let Err(e) = self.free_one(mm, zone as usize, pfn, order) {
                panic!("free_range: {e}");
            }
            (pfn, freed) = (pfn + n, freed + n);
        }
        freed
    }

    /// Takes over `other`'s free blocks and managed pages: each of its free
    /// lists goes in front of this allocator's list of the same zone and
    /// order, and each zone's span takes in `other`'s. This is exactly the
    /// state [`free_range`](Self::free_range) of the same ranges on this
    /// allocator would leave, when `other` was filled by `free_range` over
    /// pages whose blocks cannot merge with any block here (pages of whole
    /// sections this allocator has none of: a section is 2^15 pages, more
    /// than a block of [`MAX_ORDER`]). Deferred struct-page init builds
    /// `other`s on several CPUs at once and splices them in pfn order, so
    /// the result does not depend on how many CPUs there were.
    pub fn splice<M: MemMap>(&mut self, mm: &mut M, other: &BuddyAllocator) -> Res {
        for (z, oz) in other.zones.iter().enumerate() {
            if oz.managed_pages == 0 {
                continue;
            }
            let zone = &mut self.zones[z];
            if zone.managed_pages == 0 {
                (zone.start_pfn, zone.end_pfn) = (oz.start_pfn, oz.end_pfn);
            }
            zone.start_pfn = zone.start_pfn.min(oz.start_pfn);
            zone.end_pfn = zone.end_pfn.max(oz.end_pfn);
            zone.managed_pages += oz.managed_pages;
            for (order, oa) in oz.free_area.iter().enumerate() {
                if oa.head == NO_PFN {
                    continue;
                }
                let mut tail = oa.head;
                loop {
                    let next = link(mm, tail)?.next;
                    if next == NO_PFN {
                        break;
                    }
                    tail = next;
                }
                let area = &mut self.zones[z].free_area[order];
                let old = area.head;
                if old != NO_PFN {
                    link(mm, old)?.prev = tail;
                }
                link(mm, tail)?.next = old;
                (area.head, area.nr_free) = (oa.head, area.nr_free + oa.nr_free);
            }
        }
        Ok(())
    }

    /// Allocates 2^`order` pages from `highest_zone`, falling back to lower
    /// zones (Normal → DMA32 → DMA) as Linux's zonelist does. Returns the
    /// first pfn. [`ZoneType::Device`] has no memory to give.
    pub fn alloc_pages<M: MemMap>(
        &mut self,
        mm: &mut M,
        order: u32,
        highest_zone: ZoneType,
    ) -> Res<Pfn> {
        if order > MAX_ORDER {
            return Err(BuddyError::BadOrder { order });
        }
        let nr_zones = if highest_zone == ZoneType::Device { 0 } else { highest_zone as usize + 1 };
        for z in (0..nr_zones).rev() {
            let area = &self.zones[z].free_area;
            let Some(cur) = (order..=MAX_ORDER).find(|&o| area[o as usize].head != NO_PFN) else {
                continue;
            };
            let pfn = area[cur as usize].head;
            self.del(mm, z, pfn, cur)?;
            for o in (order..cur).rev() {
                self.add(mm, z, pfn + (1 << o), o)?;
            }
            let page = link(mm, pfn)?;
            (page.refcount, page.private) = (1, order.into());
            page.set(pg::HEAD, order > 0);
            return Ok(pfn);
        }
        Err(BuddyError::NoMemory { order, zone: highest_zone })
    }

    /// Frees the block of 2^`order` pages at `pfn` allocated by
    /// [`alloc_pages`](Self::alloc_pages), merging it with free buddies.
    pub fn free_pages<M: MemMap>(&mut self, mm: &mut M, pfn: Pfn, order: u32) -> Res {
        if order > MAX_ORDER {
            return Err(BuddyError::BadOrder { order });
        }
        if !pfn.is_multiple_of(1 << order) {
            return Err(BuddyError::Misaligned { pfn, order });
        }
        let page = mm.page_mut(pfn).ok_or(BuddyError::NoMemmap { pfn })?;
        let zone = page.zone();
        if zone == ZoneType::Device {
            return Err(BuddyError::DeviceZone { pfn });
        } else if page.is_reserved() {
            return Err(BuddyError::Reserved { pfn });
        } else if page.is_buddy() || page.refcount != 1 {
            return Err(BuddyError::NotAllocated { pfn });
        } else if page.private != u64::from(order) {
            return Err(BuddyError::WrongOrder { pfn, order, allocated: page.private });
        }
        (page.refcount, page.private) = (0, 0);
        page.set(pg::HEAD, false);
        self.free_one(mm, zone as usize, pfn, order)
    }

    /// Takes the pages of `[start_pfn, end_pfn)` back from the allocator,
    /// as `offline_pages` does after isolating them: every page must be
    /// free, otherwise nothing changes and the first page in use is named.
    /// A free block that straddles an end of the range is split and the
    /// part outside stays free. The pages leave the zone's managed count,
    /// end up reserved, and the zone span shrinks when they were at its
    /// edge (`shrink_zone_span`). Returns the number of pages taken.
    pub fn take_free_range<M: MemMap>(
        &mut self,
        mm: &mut M,
        start_pfn: Pfn,
        end_pfn: Pfn,
    ) -> Res<u64> {
        let mut pfn = start_pfn;
        while pfn < end_pfn {
            let (head, order) = free_block_of(mm, pfn).ok_or(BuddyError::Busy { pfn })?;
            pfn = head + (1 << order);
        }
        let (mut pfn, mut taken) = (start_pfn, 0);
        while pfn < end_pfn {
            let (head, order) = free_block_of(mm, pfn).ok_or(BuddyError::Busy { pfn })?;
            let z = mm.page(head).ok_or(BuddyError::NoMemmap { pfn: head })?.zone() as usize;
            let block_end = head + (1 << order);
            self.del(mm, z, head, order)?;
            for (a, b) in [(head, start_pfn.max(head)), (end_pfn.min(block_end), block_end)] {
                self.add_aligned(mm, z, a, b)?;
            }
            let (a, b) = (head.max(start_pfn), block_end.min(end_pfn));
            for p in a..b {
                link(mm, p)?.set(pg::RESERVED, true);
            }
            self.zones[z].managed_pages -= b - a;
            self.shrink_zone_span(mm, z);
            (pfn, taken) = (block_end, taken + (b - a));
        }
        Ok(taken)
    }

    /// `shrink_zone_span`: moves each end of zone `z`'s span inwards past
    /// pages the zone does not manage (reserved, or without a descriptor:
    /// those are skipped a sub-section of 512 pages at a time, the memmap's
    /// smallest unit).
    fn shrink_zone_span<M: MemMap>(&mut self, mm: &M, z: usize) {
        let zone = &mut self.zones[z];
        let ty = zone.zone_type;
        if zone.managed_pages == 0 {
            (zone.start_pfn, zone.end_pfn) = (Pfn::ZERO, Pfn::ZERO);
            return;
        }
        // Whether the zone manages `p`; `None`: no descriptor.
        const SUB: u64 = 512;
        let managed = |p: Pfn| mm.page(p).map(|page| !page.is_reserved() && page.zone() == ty);
        while zone.start_pfn < zone.end_pfn {
            match managed(zone.start_pfn) {
                Some(true) => break,
                Some(false) => zone.start_pfn += 1,
                None => zone.start_pfn = (zone.start_pfn + 1).next_multiple_of(SUB),
            }
        }
        while zone.end_pfn > zone.start_pfn {
            match managed(zone.end_pfn - 1) {
                Some(true) => break,
                Some(false) => zone.end_pfn -= 1,
                None => zone.end_pfn = (zone.end_pfn - 1).align_down(SUB),
            }
        }
    }

    /// Lists `[a, b)` (all free pages of zone `z`) as the largest naturally
    /// aligned blocks that fit.
    fn add_aligned<M: MemMap>(&mut self, mm: &mut M, z: usize, mut a: Pfn, b: Pfn) -> Res {
        while a < b {
            let order = a.align_order().min(MAX_ORDER).min((b - a).ilog2());
            self.add(mm, z, a, order)?;
            a += 1 << order;
        }
        Ok(())
    }

    /// `__free_one_page`: merges upwards while the buddy is free, then lists.
    fn free_one<M: MemMap>(&mut self, mm: &mut M, z: usize, pfn: Pfn, order: u32) -> Res {
        let (mut pfn, mut order, zone) = (pfn, order, self.zones[z].zone_type);
        while order < MAX_ORDER {
            let buddy = buddy_pfn(pfn, order);
            let free = mm
                .page(buddy)
                .is_some_and(|b| b.is_buddy() && b.private == u64::from(order) && b.zone() == zone);
            if !free {
                break;
            }
            self.del(mm, z, buddy, order)?;
            (pfn, order) = (pfn.align_down(2 << order), order + 1);
        }
        self.add(mm, z, pfn, order)
    }

    fn add<M: MemMap>(&mut self, mm: &mut M, z: usize, pfn: Pfn, order: u32) -> Res {
        let area = &mut self.zones[z].free_area[order as usize];
        let page = link(mm, pfn)?;
        page.set(pg::BUDDY, true);
        (page.private, page.next, page.prev) = (order.into(), area.head, NO_PFN);
        if area.head != NO_PFN {
            link(mm, area.head)?.prev = pfn;
        }
        (area.head, area.nr_free) = (pfn, area.nr_free + 1);
        Ok(())
    }

    fn del<M: MemMap>(&mut self, mm: &mut M, z: usize, pfn: Pfn, order: u32) -> Res {
        let area = &mut self.zones[z].free_area[order as usize];
        let page = link(mm, pfn)?;
        let (next, prev) = (page.next, page.prev);
        ensure(prev != NO_PFN || area.head == pfn, pfn, "unlinked block is not the list head")?;
        ensure(area.nr_free > 0, pfn, "free count underflow")?;
        page.set(pg::BUDDY, false);
        (page.private, page.next, page.prev) = (0, NO_PFN, NO_PFN);
        if prev == NO_PFN {
            area.head = next;
        } else {
            link(mm, prev)?.next = next;
        }
        if next != NO_PFN {
            link(mm, next)?.prev = prev;
        }
        area.nr_free -= 1;
        Ok(())
    }

    /// Walks every free list: each entry is a [`pg::BUDDY`] page of the
    /// list's order and zone, aligned, inside the zone span, with consistent
    /// links; all pages of a free block are free and no other block starts
    /// inside it; list lengths match `nr_free`, and free ≤ managed.
    pub fn check<M: MemMap>(&self, mm: &M) -> Res {
        for zone in &self.zones {
            let mut free = 0;
            for (order, area) in zone.free_area.iter().enumerate() {
                let (mut pfn, mut prev, mut n) = (area.head, NO_PFN, 0u64);
                while pfn != NO_PFN {
                    n += 1;
                    ensure(n <= area.nr_free, pfn, "list longer than nr_free")?;
                    let page = mm.page(pfn).ok_or(BuddyError::NoMemmap { pfn })?;
                    ensure(page.is_buddy() && page.private == order as u64, pfn, "bad buddy")?;
                    ensure(page.prev == prev, pfn, "prev link mismatch")?;
                    ensure(pfn.is_multiple_of(1 << order), pfn, "misaligned free block")?;
                    let end = pfn + (1 << order);
                    ensure(zone.start_pfn <= pfn && end <= zone.end_pfn, pfn, "outside zone")?;
                    for p in pfn..end {
                        let t = mm.page(p).ok_or(BuddyError::NoMemmap { pfn: p })?;
                        let ok = t.refcount == 0 && !t.is_reserved() && t.zone() == zone.zone_type;
                        ensure(ok && (p == pfn || !t.is_buddy()), p, "free block page not free")?;
                    }
                    (prev, pfn) = (pfn, page.next);
                }
                ensure(n == area.nr_free, area.head, "nr_free does not match list")?;
                free += n << order;
            }
            ensure(free <= zone.managed_pages, zone.start_pfn, "more free than managed")?;
        }
        Ok(())
    }
}

/// `__find_buddy_pfn`: the block of 2^`order` pages that `pfn`'s block of
/// that order merges with (`pfn ^ (1 << order)`).
const fn buddy_pfn(pfn: Pfn, order: u32) -> Pfn {
    Pfn::new(pfn.as_u64() ^ (1 << order))
}

/// The free block containing `pfn`, as (head, order): its head is the
/// only page of a free block with [`pg::BUDDY`].
fn free_block_of<M: MemMap>(mm: &M, pfn: Pfn) -> Option<(Pfn, u32)> {
    (0..=MAX_ORDER).find_map(|order| {
        let head = pfn.align_down(1 << order);
        let page = mm.page(head)?;
        let free = page.is_buddy() && page.private == u64::from(order);
        (free && pfn < head + (1 << order)).then_some((head, order))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ZoneType::{Dma, Dma32, Normal};
    use alloc::collections::BTreeMap;
    use alloc::vec::Vec;

    /// Memmap chunks `(first pfn, descriptors)`; pfns outside are holes.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Map(Vec<(Pfn, Vec<Page>)>);

    impl Map {
        fn new(chunks: &[(Pfn, Pfn)]) -> Self {
            let init = |p| Page::init(ZoneType::for_pfn(p), 0);
            Map(chunks.iter().map(|&(s, e)| (s, (s..e).map(init).collect())).collect())
        }
    }

    impl MemMap for Map {
        fn page(&self, pfn: Pfn) -> Option<&Page> {
            self.0.iter().find_map(|(s, v)| v.get(pfn.checked_pages_since(*s)? as usize))
        }
        fn page_mut(&mut self, pfn: Pfn) -> Option<&mut Page> {
            self.0.iter_mut().find_map(|(s, v)| v.get_mut(pfn.checked_pages_since(*s)? as usize))
        }
    }

    fn counts(entries: &[(usize, u64)]) -> [u64; NR_ORDERS] {
        let mut c = [0; NR_ORDERS];
        entries.iter().for_each(|&(o, n)| c[o] = n);
        c
    }

    #[test]
    fn free_range_builds_largest_aligned_blocks() {
        let (mut mm, mut b) = (Map::new(&[(Pfn(0), Pfn(8192))]), BuddyAllocator::new());
        assert_eq!(b.free_range(&mut mm, Pfn(0), Pfn(8192)), 8192);
        assert_eq!(b.free_counts(Dma), counts(&[(10, 4)]));
        assert_eq!(b.free_counts(Dma32), counts(&[(10, 4)]));
        assert_eq!((b.managed(Dma), b.nr_free(Dma32), b.nr_free(Normal)), (4096, 4096, 0));
        b.check(&mm).unwrap();

        let (mut mm, mut b) = (Map::new(&[(Pfn(0), Pfn(4096))]), BuddyAllocator::new());
        assert_eq!(b.free_range(&mut mm, Pfn(5), Pfn(2050)), 2045);
        let odd: Vec<_> = (3..10).map(|o| (o, 1)).chain([(0, 1), (1, 2), (10, 1)]).collect();
        assert_eq!(b.free_counts(Dma), counts(&odd));
        assert_eq!(
            b.free_range(&mut mm, Pfn(0), Pfn(2050)),
            5,
            "managed pages are not taken twice"
        );
        assert_eq!(b.free_counts(Dma), counts(&[(1, 1), (10, 2)]));
        assert_eq!(b.free_range(&mut mm, Pfn(8192), Pfn(9000)), 0, "no memmap");
        let z = b.zone(Dma).unwrap();
        assert_eq!(
            (z.zone_start_pfn(), z.spanned_pages(), z.managed_pages()),
            (Pfn(0), 2050, 2050)
        );
        b.check(&mm).unwrap();
    }

    #[test]
    fn take_free_range_refuses_pages_in_use_and_splits_straddling_blocks() {
        // DMA32 pages 0x1000..0x3000, all free.
        let (mut mm, mut b) = (Map::new(&[(Pfn(0x1000), Pfn(0x3000))]), BuddyAllocator::new());
        assert_eq!(b.free_range(&mut mm, Pfn(0x1000), Pfn(0x3000)), 0x2000);
        let p = b.alloc_pages(&mut mm, 0, Dma32).unwrap();
        let (mm0, b0) = (mm.clone(), b.clone());
        // The allocated page is inside: refused, nothing changes.
        let e = b.take_free_range(&mut mm, Pfn(0x1000), Pfn(0x3000)).unwrap_err();
        assert_eq!(e, BuddyError::Busy { pfn: p });
        assert_eq!((&mm, &b), (&mm0, &b0));
        // A hole (no descriptor) is refused the same way.
        assert_eq!(
            b.take_free_range(&mut mm, Pfn(0xe00), Pfn(0x1200)),
            Err(BuddyError::Busy { pfn: Pfn(0xe00) })
        );
        assert_eq!((&mm, &b), (&mm0, &b0));
        b.free_pages(&mut mm, p, 0).unwrap();
        // 0x1a00..0x2200: splits two order-10 blocks; the rest stays free.
        let before = b.nr_free(Dma32);
        assert_eq!(b.take_free_range(&mut mm, Pfn(0x1a00), Pfn(0x2200)), Ok(0x800));
        assert_eq!(b.nr_free(Dma32), before - 0x800);
        assert_eq!(b.managed(Dma32), 0x2000 - 0x800);
        b.check(&mm).unwrap();
        assert!((Pfn(0x1a00)..Pfn(0x2200)).all(|p| mm.page(p).unwrap().is_reserved()));
        assert!(
            b.alloc_pages(&mut mm, 10, Dma32)
                .is_ok_and(|p| !(Pfn(0x1600)..Pfn(0x2200)).contains(&p))
        );
        // Taken at the zone's start: the span shrinks; given back: it grows.
        assert_eq!(b.take_free_range(&mut mm, Pfn(0x1000), Pfn(0x1a00)), Ok(0xa00));
        let z = b.zone(Dma32).unwrap();
        assert_eq!((z.zone_start_pfn(), z.zone_end_pfn()), (Pfn(0x2200), Pfn(0x3000)));
        assert_eq!(b.free_range(&mut mm, Pfn(0x1000), Pfn(0x2200)), 0x1200);
        let z = b.zone(Dma32).unwrap();
        assert_eq!(
            (z.zone_start_pfn(), z.zone_end_pfn(), z.managed_pages()),
            (Pfn(0x1000), Pfn(0x3000), 0x2000)
        );
        b.check(&mm).unwrap();
    }

    #[test]
    fn alloc_is_aligned_and_falls_back_to_lower_zones() {
        let mut mm = Map::new(&[(Pfn(2048), Pfn(6144)), (Pfn(0xffc00), Pfn(0x100800))]);
        let mut b = BuddyAllocator::new();
        b.free_range(&mut mm, Pfn(0), Pfn(0x100800));
        let initial = [Dma, Dma32, Normal].map(|z| b.free_counts(z));
        let mut got = Vec::new();
        for order in 0..=MAX_ORDER {
            for zone in [Dma, Dma32, Normal] {
                let pfn = b.alloc_pages(&mut mm, order, zone).unwrap();
                assert!(pfn.is_multiple_of(1 << order));
                assert_eq!(mm.page(pfn).unwrap().zone(), zone);
                assert_eq!(mm.page(pfn).unwrap().has(pg::HEAD), order > 0);
                got.push((pfn, order));
            }
        }
        b.check(&mm).unwrap();
        for (pfn, order) in got {
            b.free_pages(&mut mm, pfn, order).unwrap();
        }
        assert_eq!([Dma, Dma32, Normal].map(|z| b.free_counts(z)), initial);
        let zones: Vec<_> = (0..7)
            .map(|_| {
                let pfn = b.alloc_pages(&mut mm, 10, Normal).unwrap();
                mm.page(pfn).unwrap().zone()
            })
            .collect();
        assert_eq!(zones, [Normal, Normal, Dma32, Dma32, Dma32, Dma, Dma]);
        let err = BuddyError::NoMemory { order: 10, zone: Normal };
        assert_eq!(b.alloc_pages(&mut mm, 10, Normal), Err(err));
        let err = BuddyError::NoMemory { order: 0, zone: ZoneType::Device };
        assert_eq!(b.alloc_pages(&mut mm, 0, ZoneType::Device), Err(err));
        assert_eq!(b.alloc_pages(&mut mm, 11, Normal), Err(BuddyError::BadOrder { order: 11 }));
        b.check(&mm).unwrap();
    }

    #[test]
    fn split_then_free_restores_free_lists() {
        let (mut mm, mut b) = (Map::new(&[(Pfn(0), Pfn(4096))]), BuddyAllocator::new());
        b.free_range(&mut mm, Pfn(0), Pfn(4096));
        let initial = b.free_counts(Dma);
        let orders = [0, 3, 1, 0, 5, 2, 10, 0, 7, 9, 4, 1, 6, 8, 0];
        let got: Vec<_> =
            orders.iter().map(|&o| (b.alloc_pages(&mut mm, o, Dma).unwrap(), o)).collect();
        assert_eq!(b.nr_free(Dma), 4096 - orders.iter().map(|o| 1 << o).sum::<u64>());
        for i in [3, 0, 14, 7, 1, 9, 5, 12, 2, 10, 6, 13, 4, 11, 8] {
            b.free_pages(&mut mm, got[i].0, got[i].1).unwrap();
            b.check(&mm).unwrap();
        }
        assert_eq!(b.free_counts(Dma), initial);
    }

    #[test]
    fn no_merge_across_zones_holes_or_used_buddies() {
        // A zone boundary at 4088 (pages moved to DMA32).
        let (mut mm, mut b) = (Map::new(&[(Pfn(4080), Pfn(4104))]), BuddyAllocator::new());
        (Pfn(4088)..Pfn(4096)).for_each(|p| mm.page_mut(p).unwrap().set_zone(Dma32));
        assert_eq!(b.free_range(&mut mm, Pfn(4080), Pfn(4104)), 24);
        let want = [counts(&[(3, 1)]), counts(&[(3, 2)])];
        assert_eq!([Dma, Dma32].map(|z| b.free_counts(z)), want);
        let pages: Vec<_> = (0..16).map(|_| b.alloc_pages(&mut mm, 0, Dma32).unwrap()).collect();
        pages.iter().for_each(|&p| b.free_pages(&mut mm, p, 0).unwrap());
        assert_eq!([Dma, Dma32].map(|z| b.free_counts(z)), want, "4088 must not merge with 4080");
        b.check(&mm).unwrap();

        // A hole: pfns 0..8 have no descriptors.
        for (chunk, expect) in [((Pfn(8), Pfn(16)), (3, 1)), ((Pfn(0), Pfn(16)), (4, 1))] {
            let (mut mm, mut b) = (Map::new(&[chunk]), BuddyAllocator::new());
            b.free_range(&mut mm, Pfn(0), Pfn(16));
            assert_eq!(b.free_counts(Dma), counts(&[expect]));
        }

        // An allocated buddy.
        let (mut mm, mut b) = (Map::new(&[(Pfn(0), Pfn(16))]), BuddyAllocator::new());
        b.free_range(&mut mm, Pfn(0), Pfn(16));
        let mut pages: Vec<_> = (0..16).map(|_| b.alloc_pages(&mut mm, 0, Dma).unwrap()).collect();
        pages.sort_unstable_by_key(|&p| (p.as_u64() * 7) % 16);
        pages.iter().filter(|&&p| p != Pfn(5)).for_each(|&p| b.free_pages(&mut mm, p, 0).unwrap());
        assert_eq!(b.free_counts(Dma), counts(&[(0, 1), (1, 1), (2, 1), (3, 1)]));
        b.check(&mm).unwrap();
        b.free_pages(&mut mm, Pfn(5), 0).unwrap();
        assert_eq!(b.free_counts(Dma), counts(&[(4, 1)]));
    }

    #[test]
    fn bad_frees_are_refused_and_change_nothing() {
        let (mut mm, mut b) = (Map::new(&[(Pfn(0), Pfn(64))]), BuddyAllocator::new());
        b.free_range(&mut mm, Pfn(0), Pfn(60));
        mm.page_mut(Pfn(62)).unwrap().set_zone(ZoneType::Device);
        assert_eq!(b.free_range(&mut mm, Pfn(62), Pfn(63)), 0, "ZONE_DEVICE is never taken");
        let p = b.alloc_pages(&mut mm, 2, Dma).unwrap();
        let free_head = b.zone(Dma).unwrap().free_area(3).unwrap().head();
        let snapshot = (b.clone(), mm.clone());
        use BuddyError::*;
        for (pfn, order, err) in [
            (p + 1, 2, Misaligned { pfn: p + 1, order: 2 }),
            (p + 1, 0, NotAllocated { pfn: p + 1 }),
            (p, 1, WrongOrder { pfn: p, order: 1, allocated: 2 }),
            (p, 11, BadOrder { order: 11 }),
            (Pfn(60), 0, Reserved { pfn: Pfn(60) }),
            (Pfn(62), 0, DeviceZone { pfn: Pfn(62) }),
            (Pfn(100), 0, NoMemmap { pfn: Pfn(100) }),
            (free_head, 3, NotAllocated { pfn: free_head }),
        ] {
            assert_eq!(b.free_pages(&mut mm, pfn, order), Err(err));
            assert!(!err.to_string().is_empty() && !err.to_string().contains('\n'));
            assert_eq!((&b, &mm), (&snapshot.0, &snapshot.1));
            b.check(&mm).unwrap();
        }
        b.free_pages(&mut mm, p, 2).unwrap();
        let snapshot = (b.clone(), mm.clone());
        assert_eq!(b.free_pages(&mut mm, p, 2), Err(NotAllocated { pfn: p }), "double free");
        assert_eq!((&b, &mm), (&snapshot.0, &snapshot.1));
        b.check(&mm).unwrap();
        mm.page_mut(p).unwrap().private = 1;
        assert_eq!(b.check(&mm), Err(BuddyError::Corrupt { pfn: p, what: "bad buddy" }));
    }

    use rng::Rng;

    #[test]
    fn random_ops_match_model() {
        let mut mm = Map::new(&[(Pfn(3584), Pfn(6144)), (Pfn(0xfff00), Pfn(0x1003e8))]);
        let mut b = BuddyAllocator::new();
        let managed = b.free_range(&mut mm, Pfn(3584), Pfn(5000))
            + b.free_range(&mut mm, Pfn(5003), Pfn(6144))
            + b.free_range(&mut mm, Pfn(0xfff00), Pfn(0x1003e8));
        let zones = [Dma, Dma32, Normal];
        let initial = zones.map(|z| b.free_counts(z));
        let (mut rng, mut model, mut used) = (Rng::new(0x9e37_79b9_7f4a_7c15), BTreeMap::new(), 0);
        for step in 0..20_000 {
            if model.is_empty() || rng.below(100) < 55 {
                let order = (rng.next_u64() | 1 << MAX_ORDER).trailing_zeros();
                let highest = zones[rng.below(3) as usize];
                let expect = (0..=highest as usize)
                    .rev()
                    .find(|&z| b.free_counts(zones[z])[order as usize..].iter().any(|&n| n > 0));
                match b.alloc_pages(&mut mm, order, highest) {
                    Ok(pfn) => {
                        let end = pfn + (1 << order);
                        assert!(pfn.is_multiple_of(1 << order));
                        let zone = mm.page(pfn).unwrap().zone();
                        assert_eq!(Some(zone as usize), expect);
                        let managed =
                            |p| mm.page(p).is_some_and(|g| !g.is_reserved() && g.zone() == zone);
                        assert!((pfn..end).all(managed));
                        if let Some((&q, &o)) = model.range(..end).next_back() {
                            assert!(q + (1u64 << o) <= pfn, "{pfn:#x} overlaps {q:#x}");
                        }
                        model.insert(pfn, order);
                        used += 1 << order;
                    }
                    Err(e) => assert_eq!(
                        (e, expect),
                        (BuddyError::NoMemory { order, zone: highest }, None)
                    ),
                }
            } else {
                let i = rng.below(model.len() as u64) as usize;
                let (&pfn, &order) = model.iter().nth(i).unwrap();
                b.free_pages(&mut mm, pfn, order).unwrap();
                model.remove(&pfn);
                used -= 1 << order;
            }
            assert_eq!(zones.iter().map(|&z| b.nr_free(z)).sum::<u64>(), managed - used);
            if step % 128 == 0 {
                b.check(&mm).unwrap();
            }
        }
        for (pfn, order) in model {
            b.free_pages(&mut mm, pfn, order).unwrap();
        }
        assert_eq!(zones.map(|z| b.free_counts(z)), initial);
        b.check(&mm).unwrap();
    }
}

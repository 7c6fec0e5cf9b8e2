//! The binary buddy page allocator, as Linux's `mm/page_alloc.c`: per zone,
//! free lists of naturally aligned blocks of 2^order pages (order
//! 0..=[`MAX_ORDER`]). Allocation takes the smallest sufficient block and
//! splits it (`expand`); freeing merges a block with its buddy
//! (`pfn ^ (1 << order)`) while that is free, of the same order and in the
//! same zone (`__free_one_page`).
//!
//! A page's life: `reserved --free_range--> free (buddy) <--alloc/free_pages--> allocated`;
//! an order-0 page may also wait on a per-CPU list ([`PerCpuPages`]) between
//! the two: `free (buddy) --rmqueue_bulk--> per-CPU list --alloc--> allocated
//! --free--> per-CPU list --free_pcppages_bulk--> free (buddy)`.
//!
//! [`Zone`] is one zone's state and operations (the kernel keeps each under
//! a lock of its own); [`BuddyAllocator`] is the three zones together with
//! Linux's zonelist fallback.
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
pub use crate::pcp::PerCpuPages;

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
    /// `pfn` is in use (allocated, reserved, not managed, or on a per-CPU
    /// list), so the range it is in cannot be taken back.
    Busy { pfn: Pfn },
    /// `pfn`'s block belongs to another zone than `zone`, whose lock the
    /// caller holds.
    WrongZone { pfn: Pfn, zone: ZoneType },
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
            Self::WrongZone { pfn, zone } => {
                write!(f, "buddy: pfn {pfn:#x} is not in zone {zone}")
            }
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

/// A zone's allocator state (`struct zone`): its free lists, managed pages
/// and span. In the kernel each zone has a lock of its own (Linux's
/// `zone->lock`) and every method here runs under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    zone_type: ZoneType,
    free_area: [FreeArea; NR_ORDERS],
    managed_pages: u64,
    start_pfn: Pfn,
    end_pfn: Pfn,
}

type Res<T = ()> = Result<T, BuddyError>;

fn link<M: MemMap>(mm: &mut M, pfn: Pfn) -> Res<&mut Page> {
    mm.page_mut(pfn).ok_or(BuddyError::Corrupt { pfn, what: "listed page has no descriptor" })
}

fn ensure(ok: bool, pfn: Pfn, what: &'static str) -> Res {
    if ok { Ok(()) } else { Err(BuddyError::Corrupt { pfn, what }) }
}

/// The zone of a page [`free_range`] may take: initialized, reserved (so
/// not yet managed), not free, not ZONE_DEVICE.
fn takeable(page: &Page) -> Option<ZoneType> {
    let ok = page.has(pg::INITIALIZED | pg::RESERVED) && !page.is_buddy();
    (ok && page.zone() != ZoneType::Device).then_some(page.zone())
}

/// `free_pages_prepare`'s checks, reading only: `pfn` is the first page
/// of a block of 2^`order` pages allocated by the page allocator. Returns
/// its zone. The caller owns the block, so the answer holds until it
/// frees it.
pub fn check_free<M: MemMap>(mm: &M, pfn: Pfn, order: u32) -> Res<ZoneType> {
    if order > MAX_ORDER {
        return Err(BuddyError::BadOrder { order });
    }
    if !pfn.is_multiple_of(1 << order) {
        return Err(BuddyError::Misaligned { pfn, order });
    }
    let page = mm.page(pfn).ok_or(BuddyError::NoMemmap { pfn })?;
    let zone = page.zone();
    if zone == ZoneType::Device {
        Err(BuddyError::DeviceZone { pfn })
    } else if page.is_reserved() {
        Err(BuddyError::Reserved { pfn })
    } else if page.is_buddy() || page.refcount != 1 {
        Err(BuddyError::NotAllocated { pfn })
    } else if page.private != u64::from(order) {
        Err(BuddyError::WrongOrder { pfn, order, allocated: page.private })
    } else {
        Ok(zone)
    }
}

/// `prep_new_page`: the first page of a block just taken from the free
/// lists becomes an allocated block of 2^`order` pages.
fn prep_new_page<M: MemMap>(mm: &mut M, pfn: Pfn, order: u32) -> Res {
    let page = link(mm, pfn)?;
    (page.refcount, page.private) = (1, order.into());
    page.set(pg::HEAD, order > 0);
    Ok(())
}

/// Undoes [`prep_new_page`] on a block [`check_free`] accepted.
fn unprep_page<M: MemMap>(mm: &mut M, pfn: Pfn) -> Res {
    let page = link(mm, pfn)?;
    (page.refcount, page.private) = (0, 0);
    page.set(pg::HEAD, false);
    Ok(())
}

/// What [`free_range`] does to each page it takes before listing its
/// block: no longer reserved, reference count 0, in no list.
fn take(page: &mut Page) {
    page.set(pg::RESERVED | pg::BUDDY | pg::HEAD, false);
    (page.refcount, page.private, page.next, page.prev) = (0, 0, NO_PFN, NO_PFN);
}

/// The descriptor [`free_range`] leaves in a page of `zone`, node `nid`,
/// that it took from a freshly initialised one ([`Page::init`]), before
/// its block is listed: every page of a free block but the first has
/// exactly this, and [`free_taken_range`] expects it in all of them.
pub fn taken_page(zone: ZoneType, nid: u16) -> Page {
    let mut page = Page::init(zone, nid);
    take(&mut page);
    page
}

/// The second half of [`free_range`] for pages already in the state its
/// first half leaves ([`taken_page`] of their zone, written by whoever
/// initialised them, e.g. [`crate::deferred::deferred_init_section`]):
/// hands `[start_pfn, end_pfn)` to `zones` in the same blocks, in the same
/// order, merging with free neighbours, touching only the blocks' first
/// pages and their buddies. So initialising a range as [`taken_page`]s
/// and calling this leaves exactly what initialising it with
/// [`Page::init`] and calling [`free_range`] leaves, without reading and
/// rewriting every descriptor. The zone of each block is the zone of its
/// address ([`ZoneType::for_pfn`]; blocks never straddle a zone limit);
/// blocks of a zone not in `zones` are skipped. Returns the pages handed
/// over.
pub fn free_taken_range<M: MemMap>(
    zones: &mut [&mut Zone],
    mm: &mut M,
    start_pfn: Pfn,
    end_pfn: Pfn,
) -> u64 {
    let (mut pfn, mut freed) = (start_pfn, 0);
    while pfn < end_pfn {
        let order = pfn.align_order().min(MAX_ORDER).min((end_pfn - pfn).ilog2());
        let n = 1 << order;
        let zone = ZoneType::for_pfn(pfn);
        if let Some(z) = zones.iter_mut().find(|z| z.zone_type == zone) {
            z.grow(pfn, n);
            if let Err(e) = z.free_one(mm, pfn, order) {
                panic!("free_taken_range: {e}");
            }
            freed += n;
        }
        pfn += n;
    }
    freed
}

/// Hands the pages of `[start_pfn, end_pfn)` to the zones in `zones`
/// (`memblock_free_all` / `__free_pages_core`) in the largest naturally
/// aligned blocks that fit, each within one zone, merging with free
/// neighbours. Pages are taken only if their descriptor exists, is
/// initialized and reserved, is not ZONE_DEVICE, and its zone is one of
/// `zones`; others (holes, pages already managed) are skipped. Returns the
/// number of pages taken.
pub fn free_range<M: MemMap>(
    zones: &mut [&mut Zone],
    mm: &mut M,
    start_pfn: Pfn,
    end_pfn: Pfn,
) -> u64 {
    let mut types = [None; MAX_NR_ZONES];
    zones.iter().zip(&mut types).for_each(|(z, t)| *t = Some(z.zone_type));
    let ours = |p: &Page| takeable(p).filter(|z| types.contains(&Some(*z)));
    let (mut pfn, mut freed) = (start_pfn, 0);
    while pfn < end_pfn {
        let Some(zone) = mm.page(pfn).and_then(ours) else {
            pfn += 1;
            continue;
        };
        let max = pfn.align_order().min(MAX_ORDER).min((end_pfn - pfn).ilog2());
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
        let Some(z) = zones.iter_mut().find(|z| z.zone_type == zone) else {
            unreachable!("`ours` found the zone")
        };
        z.grow(pfn, n);
        if let Err(e) = z.free_one(mm, pfn, order) {
            panic!("free_range: {e}");
        }
        (pfn, freed) = (pfn + n, freed + n);
    }
    freed
}

impl Zone {
    /// An empty zone of `zone_type`.
    pub const fn new(zone_type: ZoneType) -> Self {
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

    /// Pages handed to the allocator (free, on per-CPU lists, or allocated).
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

    /// Free pages over all orders: Linux's `NR_FREE_PAGES`, which counts
    /// the free lists only (pages on per-CPU lists are not in it).
    pub fn nr_free_pages(&self) -> u64 {
        self.free_area.iter().enumerate().map(|(o, a)| a.nr_free << o).sum()
    }

    /// Free blocks per order, as a `/proc/buddyinfo` line.
    pub fn free_counts(&self) -> [u64; NR_ORDERS] {
        self.free_area.map(|a| a.nr_free)
    }

    /// `n` pages from `pfn` join the managed pages and the span.
    fn grow(&mut self, pfn: Pfn, n: u64) {
        if self.managed_pages == 0 {
            (self.start_pfn, self.end_pfn) = (pfn, pfn + n);
        }
        (self.start_pfn, self.end_pfn) = (self.start_pfn.min(pfn), self.end_pfn.max(pfn + n));
        self.managed_pages += n;
    }

    /// [`free_range`] for this zone alone.
    pub fn free_range<M: MemMap>(&mut self, mm: &mut M, start_pfn: Pfn, end_pfn: Pfn) -> u64 {
        free_range(&mut [self], mm, start_pfn, end_pfn)
    }

    /// Takes over `other`'s free blocks and managed pages (`other` is a
    /// zone of the same type): each of its free lists goes in front of this
    /// zone's list of the same order, and the span takes in `other`'s. See
    /// [`BuddyAllocator::splice`] for when this equals [`free_range`].
    pub fn splice<M: MemMap>(&mut self, mm: &mut M, other: &Zone) -> Res {
        ensure(other.zone_type == self.zone_type, other.start_pfn, "spliced zone of another type")?;
        if other.managed_pages == 0 {
            return Ok(());
        }
        if self.managed_pages == 0 {
            (self.start_pfn, self.end_pfn) = (other.start_pfn, other.end_pfn);
        }
        self.start_pfn = self.start_pfn.min(other.start_pfn);
        self.end_pfn = self.end_pfn.max(other.end_pfn);
        self.managed_pages += other.managed_pages;
        for (order, oa) in other.free_area.iter().enumerate() {
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
            let area = &mut self.free_area[order];
            let old = area.head;
            if old != NO_PFN {
                link(mm, old)?.prev = tail;
            }
            link(mm, tail)?.next = old;
            (area.head, area.nr_free) = (oa.head, area.nr_free + oa.nr_free);
        }
        Ok(())
    }

    /// `__rmqueue_smallest`: takes a free block of 2^`order` pages off the
    /// lists, splitting a larger one if needed (`expand`); the block stays
    /// unprepared (reference count 0). `None`: no block that large.
    fn rmqueue<M: MemMap>(&mut self, mm: &mut M, order: u32) -> Res<Option<Pfn>> {
        let area = &self.free_area;
        let Some(cur) = (order..=MAX_ORDER).find(|&o| area[o as usize].head != NO_PFN) else {
            return Ok(None);
        };
        let pfn = area[cur as usize].head;
        self.del(mm, pfn, cur)?;
        for o in (order..cur).rev() {
            self.add(mm, pfn + (1 << o), o)?;
        }
        Ok(Some(pfn))
    }

    /// Allocates 2^`order` pages from this zone alone; returns the first pfn.
    pub fn alloc_pages<M: MemMap>(&mut self, mm: &mut M, order: u32) -> Res<Pfn> {
        if order > MAX_ORDER {
            return Err(BuddyError::BadOrder { order });
        }
        let pfn =
            self.rmqueue(mm, order)?.ok_or(BuddyError::NoMemory { order, zone: self.zone_type })?;
        prep_new_page(mm, pfn, order)?;
        Ok(pfn)
    }

    /// Frees the block of 2^`order` pages at `pfn` allocated by
    /// [`alloc_pages`](Self::alloc_pages), merging it with free buddies.
    /// A block of another zone is refused ([`BuddyError::WrongZone`]).
    pub fn free_pages<M: MemMap>(&mut self, mm: &mut M, pfn: Pfn, order: u32) -> Res {
        let zone = check_free(mm, pfn, order)?;
        if zone != self.zone_type {
            return Err(BuddyError::WrongZone { pfn, zone: self.zone_type });
        }
        unprep_page(mm, pfn)?;
        self.free_one(mm, pfn, order)
    }

    /// `rmqueue_bulk`: moves up to `count` order-0 pages from the free
    /// lists to the tail of `pcp` (a per-CPU list of this zone). They stay
    /// unprepared and leave [`nr_free_pages`](Self::nr_free_pages), as
    /// Linux takes them out of `NR_FREE_PAGES`. Returns how many moved.
    pub fn rmqueue_bulk<M: MemMap>(
        &mut self,
        mm: &mut M,
        count: u64,
        pcp: &mut PerCpuPages,
    ) -> Res<u64> {
        ensure(pcp.zone() == self.zone_type, pcp.head(), "per-CPU list of another zone")?;
        let mut moved = 0;
        while moved < count {
            let Some(pfn) = self.rmqueue(mm, 0)? else { break };
            pcp.push_tail(mm, pfn)?;
            moved += 1;
        }
        Ok(moved)
    }

    /// `free_pcppages_bulk`: gives up to `count` pages from the tail of
    /// `pcp` (the coldest) back to the free lists. Returns how many went.
    pub fn free_pcppages_bulk<M: MemMap>(
        &mut self,
        mm: &mut M,
        count: u64,
        pcp: &mut PerCpuPages,
    ) -> Res<u64> {
        ensure(pcp.zone() == self.zone_type, pcp.head(), "per-CPU list of another zone")?;
        let mut freed = 0;
        while freed < count {
            let Some(pfn) = pcp.pop_tail(mm)? else { break };
            self.free_one(mm, pfn, 0)?;
            freed += 1;
        }
        Ok(freed)
    }

    /// Takes the pages of `[start_pfn, end_pfn)` back from this zone, as
    /// `offline_pages` does after isolating them: every page must be a
    /// free page of this zone (in its free lists: a page on a per-CPU list
    /// is not, so drain those first), otherwise nothing changes and the
    /// first page in use is named. A free block that straddles an end of
    /// the range is split and the part outside stays free. The pages leave
    /// the zone's managed count, end up reserved, and the zone span shrinks
    /// when they were at its edge (`shrink_zone_span`). Returns the number
    /// of pages taken.
    pub fn take_free_range<M: MemMap>(
        &mut self,
        mm: &mut M,
        start_pfn: Pfn,
        end_pfn: Pfn,
    ) -> Res<u64> {
        let zone = self.zone_type;
        let ours = |mm: &M, pfn: Pfn| {
            free_block_of(mm, pfn)
                .filter(|&(head, _)| mm.page(head).is_some_and(|p| p.zone() == zone))
                .ok_or(BuddyError::Busy { pfn })
        };
        let mut pfn = start_pfn;
        while pfn < end_pfn {
            let (head, order) = ours(mm, pfn)?;
            pfn = head + (1 << order);
        }
        let (mut pfn, mut taken) = (start_pfn, 0);
        while pfn < end_pfn {
            let (head, order) = ours(mm, pfn)?;
            let block_end = head + (1 << order);
            self.del(mm, head, order)?;
            for (a, b) in [(head, start_pfn.max(head)), (end_pfn.min(block_end), block_end)] {
                self.add_aligned(mm, a, b)?;
            }
            let (a, b) = (head.max(start_pfn), block_end.min(end_pfn));
            for p in a..b {
                link(mm, p)?.set(pg::RESERVED, true);
            }
            self.managed_pages -= b - a;
            self.shrink_zone_span(mm);
            (pfn, taken) = (block_end, taken + (b - a));
        }
        Ok(taken)
    }

    /// `shrink_zone_span`: moves each end of the span inwards past pages
    /// the zone does not manage (reserved, or without a descriptor: those
    /// are skipped a sub-section of 512 pages at a time, the memmap's
    /// smallest unit).
    fn shrink_zone_span<M: MemMap>(&mut self, mm: &M) {
        let ty = self.zone_type;
        if self.managed_pages == 0 {
            (self.start_pfn, self.end_pfn) = (Pfn::ZERO, Pfn::ZERO);
            return;
        }
        // Whether the zone manages `p`; `None`: no descriptor.
        const SUB: u64 = 512;
        let managed = |p: Pfn| mm.page(p).map(|page| !page.is_reserved() && page.zone() == ty);
        while self.start_pfn < self.end_pfn {
            match managed(self.start_pfn) {
                Some(true) => break,
                Some(false) => self.start_pfn += 1,
                None => self.start_pfn = (self.start_pfn + 1).next_multiple_of(SUB),
            }
        }
        while self.end_pfn > self.start_pfn {
            match managed(self.end_pfn - 1) {
                Some(true) => break,
                Some(false) => self.end_pfn -= 1,
                None => self.end_pfn = (self.end_pfn - 1).align_down(SUB),
            }
        }
    }

    /// Lists `[a, b)` (all free pages of this zone) as the largest
    /// naturally aligned blocks that fit.
    fn add_aligned<M: MemMap>(&mut self, mm: &mut M, mut a: Pfn, b: Pfn) -> Res {
        while a < b {
            let order = a.align_order().min(MAX_ORDER).min((b - a).ilog2());
            self.add(mm, a, order)?;
            a += 1 << order;
        }
        Ok(())
    }

    /// `__free_one_page`: merges upwards while the buddy is free, then lists.
    fn free_one<M: MemMap>(&mut self, mm: &mut M, pfn: Pfn, order: u32) -> Res {
        let (mut pfn, mut order, zone) = (pfn, order, self.zone_type);
        while order < MAX_ORDER {
            let buddy = buddy_pfn(pfn, order);
            let free = mm
                .page(buddy)
                .is_some_and(|b| b.is_buddy() && b.private == u64::from(order) && b.zone() == zone);
            if !free {
                break;
            }
            self.del(mm, buddy, order)?;
            (pfn, order) = (pfn.align_down(2 << order), order + 1);
        }
        self.add(mm, pfn, order)
    }

    fn add<M: MemMap>(&mut self, mm: &mut M, pfn: Pfn, order: u32) -> Res {
        let area = &mut self.free_area[order as usize];
        let page = link(mm, pfn)?;
        page.set(pg::BUDDY, true);
        (page.private, page.next, page.prev) = (order.into(), area.head, NO_PFN);
        if area.head != NO_PFN {
            link(mm, area.head)?.prev = pfn;
        }
        (area.head, area.nr_free) = (pfn, area.nr_free + 1);
        Ok(())
    }

    fn del<M: MemMap>(&mut self, mm: &mut M, pfn: Pfn, order: u32) -> Res {
        let area = &mut self.free_area[order as usize];
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
        let mut free = 0;
        for (order, area) in self.free_area.iter().enumerate() {
            let (mut pfn, mut prev, mut n) = (area.head, NO_PFN, 0u64);
            while pfn != NO_PFN {
                n += 1;
                ensure(n <= area.nr_free, pfn, "list longer than nr_free")?;
                let page = mm.page(pfn).ok_or(BuddyError::NoMemmap { pfn })?;
                ensure(page.is_buddy() && page.private == order as u64, pfn, "bad buddy")?;
                ensure(page.prev == prev, pfn, "prev link mismatch")?;
                ensure(pfn.is_multiple_of(1 << order), pfn, "misaligned free block")?;
                let end = pfn + (1 << order);
                ensure(self.start_pfn <= pfn && end <= self.end_pfn, pfn, "outside zone")?;
                for p in pfn..end {
                    let t = mm.page(p).ok_or(BuddyError::NoMemmap { pfn: p })?;
                    let ok = t.refcount == 0 && !t.is_reserved() && t.zone() == self.zone_type;
                    ensure(ok && (p == pfn || !t.is_buddy()), p, "free block page not free")?;
                }
                (prev, pfn) = (pfn, page.next);
            }
            ensure(n == area.nr_free, area.head, "nr_free does not match list")?;
            free += n << order;
        }
        ensure(free <= self.managed_pages, self.start_pfn, "more free than managed")
    }
}

/// The page allocator: one [`Zone`] each for DMA, DMA32 and Normal, with
/// Linux's zonelist fallback. The kernel keeps each zone under a lock of
/// its own instead; this whole form serves the host tests and deferred
/// init's per-section allocators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuddyAllocator {
    zones: [Zone; MAX_NR_ZONES],
}

impl Default for BuddyAllocator {
    fn default() -> Self {
        Self::new()
    }
}

impl BuddyAllocator {
    /// An allocator with no memory.
    pub const fn new() -> Self {
        Self {
            zones: [
                Zone::new(ZoneType::Dma),
                Zone::new(ZoneType::Dma32),
                Zone::new(ZoneType::Normal),
                Zone::new(ZoneType::Movable),
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
        self.zone(zone).map_or([0; NR_ORDERS], Zone::free_counts)
    }

    /// [`free_range`] over every zone.
    pub fn free_range<M: MemMap>(&mut self, mm: &mut M, start_pfn: Pfn, end_pfn: Pfn) -> u64 {
        free_range(&mut self.zones.each_mut(), mm, start_pfn, end_pfn)
    }

    /// [`free_taken_range`] over every zone.
    pub fn free_taken_range<M: MemMap>(&mut self, mm: &mut M, start_pfn: Pfn, end_pfn: Pfn) -> u64 {
        free_taken_range(&mut self.zones.each_mut(), mm, start_pfn, end_pfn)
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
        for (zone, oz) in self.zones.iter_mut().zip(&other.zones) {
            zone.splice(mm, oz)?;
        }
        Ok(())
    }

    /// Allocates 2^`order` pages from `highest_zone`, falling back to lower
    /// zones (Movable → Normal → DMA32 → DMA) as Linux's zonelist does.
    /// Only a movable request (`highest_zone` Movable, Linux's
    /// `GFP_HIGHUSER_MOVABLE`) may get ZONE_MOVABLE pages. Returns the
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
        for zone in self.zones[..nr_zones].iter_mut().rev() {
            match zone.alloc_pages(mm, order) {
                Err(BuddyError::NoMemory { .. }) => continue,
                r => return r,
            }
        }
        Err(BuddyError::NoMemory { order, zone: highest_zone })
    }

    /// Frees the block of 2^`order` pages at `pfn` allocated by
    /// [`alloc_pages`](Self::alloc_pages), merging it with free buddies.
    pub fn free_pages<M: MemMap>(&mut self, mm: &mut M, pfn: Pfn, order: u32) -> Res {
        let zone = check_free(mm, pfn, order)?;
        self.zones[zone as usize].free_pages(mm, pfn, order)
    }

    /// [`Zone::take_free_range`] in the zone of `start_pfn`'s page (a range
    /// over two zones is refused as busy where the other zone starts).
    pub fn take_free_range<M: MemMap>(
        &mut self,
        mm: &mut M,
        start_pfn: Pfn,
        end_pfn: Pfn,
    ) -> Res<u64> {
        let zone = mm.page(start_pfn).map(Page::zone);
        match zone.and_then(|z| self.zones.get_mut(z as usize)) {
            Some(z) => z.take_free_range(mm, start_pfn, end_pfn),
            None => Err(BuddyError::Busy { pfn: start_pfn }),
        }
    }

    /// [`Zone::check`] for every zone.
    pub fn check<M: MemMap>(&self, mm: &M) -> Res {
        self.zones.iter().try_for_each(|z| z.check(mm))
    }
}

/// `__find_buddy_pfn`: the block of 2^`order` pages that `pfn`'s block of
/// that order merges with (`pfn ^ (1 << order)`).
const fn buddy_pfn(pfn: Pfn, order: u32) -> Pfn {
    Pfn::new(pfn.as_u64() ^ (1 << order))
}

/// The free block containing `pfn`, as (head, order): its head is the
/// only page of a free block with [`pg::BUDDY`]. A page on a per-CPU list
/// is in none (drain those first). Read under the zone's lock.
pub fn free_block_of<M: MemMap>(mm: &M, pfn: Pfn) -> Option<(Pfn, u32)> {
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

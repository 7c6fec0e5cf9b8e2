//! Per-CPU page lists (Linux's `struct per_cpu_pages`): each CPU keeps a
//! short list of free order-0 pages per zone, so that most order-0
//! allocations and frees touch only that CPU's list, not the zone's lock.
//! The list is refilled from the zone's free lists `batch` pages at a time
//! when it runs empty ([`Zone::rmqueue_bulk`]), and gives `batch` pages
//! back when it reaches `high` ([`Zone::free_pcppages_bulk`]); draining
//! gives back all of it.
//!
//! Pages on a list are neither free in the buddy sense (no [`pg::BUDDY`],
//! never merged, not in [`Zone::nr_free_pages`]: Linux takes them out of
//! `NR_FREE_PAGES` in `rmqueue_bulk` and adds them back when they return to
//! the free lists) nor allocated (reference count 0, so a second free of
//! one is refused). The list runs through the descriptors' `next`/`prev`
//! as the free lists do; frees go to the head (the hottest page is reused
//! first), refills to the tail, and bulk frees take the tail (the coldest).

use crate::buddy::{BuddyError, Zone, check_free};
use crate::page::{MemMap, NO_PFN, Page, Pfn, ZoneType, pg};

type Res<T = ()> = Result<T, BuddyError>;

/// `zone_batchsize` (Linux 6.1): about a quarter of a thousandth of the
/// zone's managed pages, at most 64 before the clamp, then clamped to
/// 2^n - 1 (so that batches of different CPUs and zones do not keep
/// hitting the same cache colours), at least 1.
pub fn zone_batchsize(managed_pages: u64) -> u64 {
    let batch = (managed_pages >> 10).min((1 << 20) / 4096) / 4;
    let batch = batch.max(1);
    let clamped = (batch + batch / 2).checked_ilog2().map_or(0, |l| (1u64 << l) - 1);
    clamped.max(1)
}

/// The list length at which a free gives a batch back: six batches
/// (Linux's `pageset_set_batch` default before watermark-based `high`,
/// which needs watermarks Tessera does not keep).
pub fn pcp_high(batch: u64) -> u64 {
    6 * batch
}

/// One CPU's list of free order-0 pages of one zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PerCpuPages {
    zone: ZoneType,
    count: u64,
    head: Pfn,
    tail: Pfn,
}

fn link<M: MemMap>(mm: &mut M, pfn: Pfn) -> Res<&mut Page> {
    mm.page_mut(pfn).ok_or(BuddyError::Corrupt { pfn, what: "listed page has no descriptor" })
}

fn ensure(ok: bool, pfn: Pfn, what: &'static str) -> Res {
    if ok { Ok(()) } else { Err(BuddyError::Corrupt { pfn, what }) }
}

impl PerCpuPages {
    /// An empty list for pages of `zone`.
    pub const fn new(zone: ZoneType) -> Self {
        Self { zone, count: 0, head: NO_PFN, tail: NO_PFN }
    }

    /// The zone whose pages the list holds.
    pub const fn zone(&self) -> ZoneType {
        self.zone
    }

    /// Pages on the list (`pcp->count`).
    pub const fn count(&self) -> u64 {
        self.count
    }

    /// The first page, [`NO_PFN`] if empty.
    pub const fn head(&self) -> Pfn {
        self.head
    }

    /// Puts the free page `pfn` at the tail.
    pub(crate) fn push_tail<M: MemMap>(&mut self, mm: &mut M, pfn: Pfn) -> Res {
        let page = link(mm, pfn)?;
        (page.private, page.next, page.prev) = (0, NO_PFN, self.tail);
        if self.tail == NO_PFN {
            self.head = pfn;
        } else {
            link(mm, self.tail)?.next = pfn;
        }
        self.tail = pfn;
        self.count += 1;
        Ok(())
    }

    fn push_head<M: MemMap>(&mut self, mm: &mut M, pfn: Pfn) -> Res {
        let page = link(mm, pfn)?;
        (page.private, page.next, page.prev) = (0, self.head, NO_PFN);
        if self.head == NO_PFN {
            self.tail = pfn;
        } else {
            link(mm, self.head)?.prev = pfn;
        }
        self.head = pfn;
        self.count += 1;
        Ok(())
    }

    fn unlink<M: MemMap>(&mut self, mm: &mut M, pfn: Pfn) -> Res {
        let page = link(mm, pfn)?;
        let (next, prev) = (page.next, page.prev);
        (page.next, page.prev) = (NO_PFN, NO_PFN);
        ensure(self.count > 0, pfn, "per-CPU count underflow")?;
        if prev == NO_PFN {
            self.head = next;
        } else {
            link(mm, prev)?.next = next;
        }
        if next == NO_PFN {
            self.tail = prev;
        } else {
            link(mm, next)?.prev = prev;
        }
        self.count -= 1;
        Ok(())
    }

    /// Takes the last (coldest) page off the list, unprepared.
    pub(crate) fn pop_tail<M: MemMap>(&mut self, mm: &mut M) -> Res<Option<Pfn>> {
        let pfn = self.tail;
        if pfn == NO_PFN {
            return Ok(None);
        }
        self.unlink(mm, pfn)?;
        Ok(Some(pfn))
    }

    /// `__rmqueue_pcplist`'s take: the first (hottest) page, prepared as
    /// an allocated order-0 page (reference count 1). `None`: the list is
    /// empty; refill it from the zone ([`Zone::rmqueue_bulk`]).
    pub fn alloc<M: MemMap>(&mut self, mm: &mut M) -> Res<Option<Pfn>> {
        let pfn = self.head;
        if pfn == NO_PFN {
            return Ok(None);
        }
        self.unlink(mm, pfn)?;
        let page = link(mm, pfn)?;
        (page.refcount, page.private) = (1, 0);
        page.set(pg::HEAD, false);
        Ok(Some(pfn))
    }

    /// `free_unref_page_commit`: the order-0 page `pfn`, allocated by the
    /// page allocator, joins the head of the list. Refused, changing
    /// nothing, as [`Zone::free_pages`] refuses a bad free; a page of
    /// another zone gives [`BuddyError::WrongZone`]. Returns the list's
    /// length after it.
    pub fn free<M: MemMap>(&mut self, mm: &mut M, pfn: Pfn) -> Res<u64> {
        let zone = check_free(mm, pfn, 0)?;
        if zone != self.zone {
            return Err(BuddyError::WrongZone { pfn, zone: self.zone });
        }
        let page = link(mm, pfn)?;
        page.refcount = 0;
        self.push_head(mm, pfn)?;
        Ok(self.count)
    }

    /// Walks the list: every page is an order-0 page of the list's zone,
    /// neither free in the buddy sense, nor reserved, nor allocated, with
    /// consistent links, and the length is `count`.
    pub fn check<M: MemMap>(&self, mm: &M) -> Res {
        let (mut pfn, mut prev, mut n) = (self.head, NO_PFN, 0u64);
        while pfn != NO_PFN {
            n += 1;
            ensure(n <= self.count, pfn, "per-CPU list longer than its count")?;
            let page = mm.page(pfn).ok_or(BuddyError::NoMemmap { pfn })?;
            let ok = page.refcount == 0 && !page.is_buddy() && !page.is_reserved();
            ensure(ok && page.zone() == self.zone, pfn, "per-CPU page not free")?;
            ensure(page.prev == prev, pfn, "per-CPU prev link mismatch")?;
            (prev, pfn) = (pfn, page.next);
        }
        ensure(prev == self.tail, prev, "per-CPU tail mismatch")?;
        ensure(n == self.count, self.head, "per-CPU count does not match list")
    }
}

/// One CPU's order-0 allocation through its list of `zone`, refilling a
/// batch under the zone first when empty: what the kernel does with the
/// list and the zone under their locks, in one place for the host tests.
pub fn alloc_page<M: MemMap>(
    pcp: &mut PerCpuPages,
    zone: &mut Zone,
    mm: &mut M,
    batch: u64,
) -> Res<Option<Pfn>> {
    if pcp.count() == 0 {
        zone.rmqueue_bulk(mm, batch, pcp)?;
    }
    pcp.alloc(mm)
}

/// One CPU's order-0 free through its list; a batch goes back to the zone
/// when the list reaches `high`.
pub fn free_page<M: MemMap>(
    pcp: &mut PerCpuPages,
    zone: &mut Zone,
    mm: &mut M,
    pfn: Pfn,
    batch: u64,
    high: u64,
) -> Res {
    if pcp.free(mm, pfn)? >= high {
        zone.free_pcppages_bulk(mm, batch, pcp)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;

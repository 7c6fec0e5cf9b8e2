//! Movable pages: memory whose owner lets the kernel move it, so that a
//! memory block holding it can still be offlined (Linux's
//! `GFP_HIGHUSER_MOVABLE` pages, migrated by `do_migrate_range`).
//!
//! The interface, all an owner needs:
//!
//! - [`MovablePage::alloc`]: a zeroed 4 KiB page from
//!   [`page_alloc::alloc_pages_movable`] (ZONE_MOVABLE first), registered
//!   in the table of movable pages. The owner keeps the [`MovablePage`], a
//!   handle, never the pfn.
//! - [`MovablePage::with`]: the page's bytes, reached through the handle
//!   under the table's lock, so no migration runs meanwhile.
//! - [`MovablePage::pin`] / [`MovablePage::unpin`]: while pinned (Linux: a
//!   long-term pin), the page is unmovable and offline of its block fails
//!   with EBUSY.
//! - [`MovablePage::free`].
//!
//! [`do_migrate_range`] is memory offline's side: every movable page of a
//! range moves to a new page outside it (copied, the handle updated, the
//! old page freed). The bookkeeping and the migration loop are
//! `tessera-mm`'s [`mm::migrate`]; this applies it to real pages.
//!
//! Lock order: `MEM_HOTPLUG` → `BLOCKS` → `MOVABLE` → the page allocator's
//! per-CPU and zone locks. An owner's closure in [`MovablePage::with`]
//! runs under `MOVABLE`: it must not touch another movable page or start a
//! hotplug operation.

use alloc::vec::Vec;

use mm::buddy::BuddyError;
use mm::migrate::{Handle, MigrateBackend, MovablePages};
use mm::page::{PAGE_SIZE, Pfn, pfn_phys};
use spin::Mutex;

use crate::mm::page_alloc;

/// Every movable page, by handle and by pfn.
static MOVABLE: Mutex<MovablePages> = Mutex::new(MovablePages::new());

/// The physical-memory map's address of `pfn`'s page.
fn page_addr(pfn: Pfn) -> *mut u8 {
    let off = crate::boot::mappings().expect("booted").physical_memory_offset;
    (off + pfn_phys(pfn)) as *mut u8
}

/// An owner's movable page (not `Copy`: one owner). Dropping it without
/// [`MovablePage::free`] leaks the page, as forgetting a handle would.
#[derive(Debug, PartialEq, Eq)]
pub struct MovablePage(Handle);

impl MovablePage {
    /// A zeroed movable page (`alloc_pages(GFP_HIGHUSER_MOVABLE, 0)`).
    pub fn alloc() -> Result<Self, BuddyError> {
        let mut table = MOVABLE.lock();
        let pfn = page_alloc::alloc_pages_movable(0)?;
        Ok(Self::adopt(&mut table, pfn))
    }

    /// Zeroes and registers `pfn`, a page just allocated with
    /// [`page_alloc::alloc_pages_movable`] for the caller.
    fn adopt(table: &mut MovablePages, pfn: Pfn) -> Self {
        // SAFETY: the page allocator just handed this page to the caller:
        // nothing else references it; allocated memory is online, hence
        // mapped in the physical-memory map.
        unsafe { core::ptr::write_bytes(page_addr(pfn), 0, PAGE_SIZE as usize) };
        Self(table.insert(pfn))
    }

    /// Where the page is now (it may move at any time after this returns).
    pub fn pfn(&self) -> Pfn {
        MOVABLE.lock().get(self.0).expect("a live handle").pfn
    }

    /// Whether it is pinned.
    pub fn pinned(&self) -> bool {
        MOVABLE.lock().get(self.0).expect("a live handle").pinned
    }

    /// `f` on the page's 4 KiB, with migration held off.
    pub fn with<R>(&self, f: impl FnOnce(&mut [u8; PAGE_SIZE as usize]) -> R) -> R {
        let table = MOVABLE.lock();
        let pfn = table.get(self.0).expect("a live handle").pfn;
        // SAFETY: 1. the page belongs to this handle's owner (allocated for
        // it, not freed: the handle lives); 2. `MOVABLE` is held, so no
        // migration copies or frees it meanwhile, and no other `with` of
        // any page runs, so this is the only reference; 3. it is online
        // memory, mapped in the physical-memory map, 4 KiB aligned.
        let page = unsafe { &mut *page_addr(pfn).cast::<[u8; PAGE_SIZE as usize]>() };
        let r = f(page);
        drop(table);
        r
    }

    /// Pins the page: unmovable until [`MovablePage::unpin`].
    pub fn pin(&self) {
        MOVABLE.lock().set_pinned(self.0, true);
    }

    /// Lets the page move again.
    pub fn unpin(&self) {
        MOVABLE.lock().set_pinned(self.0, false);
    }

    /// Frees the page.
    pub fn free(self) {
        let mut table = MOVABLE.lock();
        let p = table.remove(self.0).expect("a live handle");
        if let Err(e) = page_alloc::free_pages(p.pfn, 0) {
            log::error!("migrate: freeing movable page {:#x}: {e}", p.pfn);
        }
    }
}

/// How many movable pages there are.
pub fn nr_movable_pages() -> usize {
    MOVABLE.lock().len()
}

/// Real pages for [`MovablePages::migrate_range`]: new pages from the
/// movable allocation, those that fall in the range set aside until the
/// migration ends (Linux isolates the range's pageblocks instead).
struct Pages {
    stash: Vec<Pfn>,
}

impl MigrateBackend for Pages {
    fn alloc_target(&mut self, avoid: (Pfn, Pfn)) -> Option<Pfn> {
        loop {
            let pfn = page_alloc::alloc_pages_movable(0).ok()?;
            if (avoid.0..avoid.1).contains(&pfn) {
                self.stash.push(pfn);
            } else {
                return Some(pfn);
            }
        }
    }

    fn copy_page(&mut self, from: Pfn, to: Pfn) {
        // SAFETY: `from` is a movable page whose table entry the caller
        // holds under `MOVABLE` (no owner reaches it meanwhile); `to` was
        // just allocated for it; both are online memory in the
        // physical-memory map, distinct pages.
        unsafe {
            core::ptr::copy_nonoverlapping(page_addr(from), page_addr(to), PAGE_SIZE as usize)
        };
    }

    fn free_page(&mut self, pfn: Pfn) {
        if let Err(e) = page_alloc::free_pages(pfn, 0) {
            log::error!("migrate: freeing migrated page {pfn:#x}: {e}");
        }
    }
}

/// `do_migrate_range` for offline of `[start, end)` (all in one zone):
/// first `has_unmovable_pages` (a page in use that is not a movable page,
/// or a pinned one, refuses it: `Err(pfn)`, nothing moved); then every
/// movable page moves out. Returns how many moved.
pub fn do_migrate_range(start: Pfn, end: Pfn) -> Result<u64, Pfn> {
    let mut table = MOVABLE.lock();
    let movable: Vec<Pfn> =
        table.in_range(start, end).filter(|(_, p)| !p.pinned).map(|(_, p)| p.pfn).collect();
    if let Some(pfn) =
        page_alloc::first_unmovable(start, end, |p| movable.binary_search(&p).is_ok())
    {
        return Err(pfn);
    }
    if movable.is_empty() {
        return Ok(0);
    }
    let mut pages = Pages { stash: Vec::new() };
    let r = table.migrate_range(start, end, &mut pages);
    for pfn in pages.stash {
        pages_free(pfn);
    }
    r.map_err(|e| e.pfn())
}

fn pages_free(pfn: Pfn) {
    if let Err(e) = page_alloc::free_pages(pfn, 0) {
        log::error!("migrate: freeing set-aside page {pfn:#x}: {e}");
    }
}

/// A workload of movable pages for the shell (`memory fill`, `pin`,
/// `check`): pages with known contents, placed in one block, whose
/// checksum shows whether migration kept them.
pub mod workload {
    use alloc::vec::Vec;

    use mm::page::Pfn;
    use mm::splitmix64;
    use spin::Mutex;

    use super::MovablePage;
    use crate::mm::page_alloc;

    /// The pages, each with the seed of its contents.
    static PAGES: Mutex<Vec<(MovablePage, u64)>> = Mutex::new(Vec::new());

    /// Why the workload could not be placed.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum FillError {
        /// Only `placed` pages could be put in the range.
        NoMemory { placed: u64 },
    }

    /// Page contents for `seed`: word `i` is `splitmix64(seed ^ i)`.
    fn word(seed: u64, i: u64) -> u64 {
        splitmix64(seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    fn sum_page(page: &[u8; 4096]) -> u64 {
        page.as_chunks::<8>().0.iter().fold(0u64, |acc, w| splitmix64(acc ^ u64::from_le_bytes(*w)))
    }

    /// Adds `n` movable pages in `[start, end)`, each filled from a seed of
    /// its own; pages the allocator gives outside the range are set aside
    /// and freed at the end (at most `n` plus two sections' worth of
    /// tries). Returns how many pages the workload now has.
    pub fn fill(start: Pfn, end: Pfn, n: u64) -> Result<usize, FillError> {
        let mut pages = PAGES.lock();
        let (mut placed, mut aside) = (0, Vec::new());
        let mut tries = n + 2 * mm::sparse::PAGES_PER_SECTION;
        while placed < n && tries > 0 {
            tries -= 1;
            let Ok(pfn) = page_alloc::alloc_pages_movable(0) else { break };
            if !(start..end).contains(&pfn) {
                aside.push(pfn);
                continue;
            }
            let p = MovablePage::adopt(&mut super::MOVABLE.lock(), pfn);
            let seed = splitmix64(pages.len() as u64 + 0x7e55_e7a0);
            p.with(|b| {
                for (i, w) in b.as_chunks_mut::<8>().0.iter_mut().enumerate() {
                    w.copy_from_slice(&word(seed, i as u64).to_le_bytes());
                }
            });
            pages.push((p, seed));
            placed += 1;
        }
        aside.into_iter().for_each(super::pages_free);
        if placed < n {
            return Err(FillError::NoMemory { placed });
        }
        Ok(pages.len())
    }

    /// Pins the first unpinned page in `[start, end)`; its pfn.
    pub fn pin(start: Pfn, end: Pfn) -> Option<Pfn> {
        let pages = PAGES.lock();
        let (p, _) = pages.iter().find(|(p, _)| !p.pinned() && (start..end).contains(&p.pfn()))?;
        p.pin();
        Some(p.pfn())
    }

    /// Unpins every page; how many were pinned.
    pub fn unpin() -> usize {
        let pages = PAGES.lock();
        let pinned = pages.iter().filter(|(p, _)| p.pinned()).count();
        pages.iter().for_each(|(p, _)| p.unpin());
        pinned
    }

    /// What [`check`] found.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Check {
        pub pages: usize,
        pub pinned: usize,
        /// The checksum of what the pages should hold, and of what they hold.
        pub want: u64,
        pub got: u64,
        /// Pages whose contents differ.
        pub bad: usize,
    }

    /// Reads every page back through its handle.
    pub fn check() -> Check {
        let pages = PAGES.lock();
        let (mut want, mut got, mut bad, mut pinned) = (0u64, 0u64, 0, 0);
        for (p, seed) in pages.iter() {
            let mut expect = [0u8; 4096];
            for (i, w) in expect.as_chunks_mut::<8>().0.iter_mut().enumerate() {
                w.copy_from_slice(&word(*seed, i as u64).to_le_bytes());
            }
            let (e, g) = (sum_page(&expect), p.with(|b| sum_page(b)));
            want = splitmix64(want ^ e);
            got = splitmix64(got ^ g);
            bad += usize::from(e != g);
            pinned += usize::from(p.pinned());
        }
        Check { pages: pages.len(), pinned, want, got, bad }
    }

    /// How many of the workload's pages lie in `[start, end)`.
    pub fn count_in(start: Pfn, end: Pfn) -> usize {
        PAGES.lock().iter().filter(|(p, _)| (start..end).contains(&p.pfn())).count()
    }

    /// Frees every page; how many.
    pub fn release() -> usize {
        let mut pages = PAGES.lock();
        let n = pages.len();
        pages.drain(..).for_each(|(p, _)| p.free());
        n
    }
}

//! Movable pages and their migration, as memory offline needs them
//! (Linux's `do_migrate_range` in `mm/memory_hotplug.c` calling
//! `migrate_pages` in `mm/migrate.c`).
//!
//! An owner of a movable page never keeps its pfn: it keeps a [`Handle`],
//! and reaches the page through the [`MovablePages`] table, which maps the
//! handle to where the page is now. Migration of a page is then: allocate
//! a new page outside the range being offlined, copy the contents, point
//! the handle at the new page, free the old one. A pinned page (Linux: a
//! long-term pin, e.g. for DMA) is unmovable while pinned: offline refuses
//! it with EBUSY before anything moves.
//!
//! A page's life: `(free) --alloc--> movable <--pin/unpin--> pinned`, and
//! `movable --migrate--> movable` (same handle, new pfn), `movable --free--> (free)`.

use alloc::collections::BTreeMap;
use core::fmt;

use crate::page::Pfn;

/// The owner's reference to a movable page: valid until the page is freed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Handle(pub u64);

/// Where a movable page is now, and whether it is pinned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MovablePage {
    pub pfn: Pfn,
    pub pinned: bool,
}

/// Why a range could not be migrated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrateError {
    /// A pinned page in the range: nothing was moved.
    Pinned { pfn: Pfn },
    /// No page outside the range for the page at `pfn`; the pages moved
    /// before it stay moved (their contents intact, their handles updated).
    NoMemory { pfn: Pfn },
}

impl MigrateError {
    /// The pfn of the page that did not move.
    pub fn pfn(&self) -> Pfn {
        match *self {
            Self::Pinned { pfn } | Self::NoMemory { pfn } => pfn,
        }
    }
}

impl fmt::Display for MigrateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pinned { pfn } => write!(f, "EBUSY: pfn {pfn:#x} is pinned"),
            Self::NoMemory { pfn } => write!(f, "ENOMEM: no page to migrate pfn {pfn:#x} to"),
        }
    }
}

/// What migration needs from the page allocator and the memory.
pub trait MigrateBackend {
    /// A new page (`alloc_migration_target` with `GFP_HIGHUSER_MOVABLE`)
    /// outside `[avoid.0, avoid.1)`; `None` when memory is out.
    fn alloc_target(&mut self, avoid: (Pfn, Pfn)) -> Option<Pfn>;
    /// Copies the 4 KiB page `from` to `to` (`folio_migrate_copy`).
    fn copy_page(&mut self, from: Pfn, to: Pfn);
    /// Frees the old page.
    fn free_page(&mut self, pfn: Pfn);
}

/// The movable pages, by handle and by pfn.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MovablePages {
    by_handle: BTreeMap<Handle, MovablePage>,
    by_pfn: BTreeMap<Pfn, Handle>,
    next: u64,
}

impl MovablePages {
    /// No pages.
    pub const fn new() -> Self {
        Self { by_handle: BTreeMap::new(), by_pfn: BTreeMap::new(), next: 1 }
    }

    /// Registers the page at `pfn` (just allocated, movable, unpinned).
    ///
    /// # Panics
    /// If `pfn` is registered already (the page allocator gave it twice).
    pub fn insert(&mut self, pfn: Pfn) -> Handle {
        let h = Handle(self.next);
        self.next += 1;
        assert!(self.by_pfn.insert(pfn, h).is_none(), "pfn {pfn:#x} registered twice");
        self.by_handle.insert(h, MovablePage { pfn, pinned: false });
        h
    }

    /// Forgets `h` (its page is being freed); returns where it was.
    pub fn remove(&mut self, h: Handle) -> Option<MovablePage> {
        let p = self.by_handle.remove(&h)?;
        self.by_pfn.remove(&p.pfn);
        Some(p)
    }

    /// Where `h`'s page is now.
    pub fn get(&self, h: Handle) -> Option<MovablePage> {
        self.by_handle.get(&h).copied()
    }

    /// Pins or unpins `h`'s page; false when there is no such page.
    pub fn set_pinned(&mut self, h: Handle, pinned: bool) -> bool {
        self.by_handle.get_mut(&h).map(|p| p.pinned = pinned).is_some()
    }

    /// How many pages.
    pub fn len(&self) -> usize {
        self.by_handle.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_handle.is_empty()
    }

    /// The page at `pfn`, if it is a movable page.
    pub fn at(&self, pfn: Pfn) -> Option<(Handle, MovablePage)> {
        let h = *self.by_pfn.get(&pfn)?;
        Some((h, self.by_handle[&h]))
    }

    /// The pages in `[start, end)`, by pfn.
    pub fn in_range(
        &self,
        start: Pfn,
        end: Pfn,
    ) -> impl Iterator<Item = (Handle, MovablePage)> + '_ {
        self.by_pfn.range(start..end).map(|(_, &h)| (h, self.by_handle[&h]))
    }

    /// `do_migrate_range`: every page in `[start, end)` moves to a page
    /// outside it, its contents copied, its handle following it, the old
    /// page freed. A pinned page in the range refuses it before anything
    /// moves. Returns how many pages moved.
    pub fn migrate_range(
        &mut self,
        start: Pfn,
        end: Pfn,
        b: &mut impl MigrateBackend,
    ) -> Result<u64, MigrateError> {
        if let Some((_, p)) = self.in_range(start, end).find(|(_, p)| p.pinned) {
            return Err(MigrateError::Pinned { pfn: p.pfn });
        }
        let pages: alloc::vec::Vec<(Handle, Pfn)> =
            self.in_range(start, end).map(|(h, p)| (h, p.pfn)).collect();
        let mut moved = 0;
        for (h, old) in pages {
            let new = b.alloc_target((start, end)).ok_or(MigrateError::NoMemory { pfn: old })?;
            debug_assert!(!(start..end).contains(&new), "the target is outside the range");
            b.copy_page(old, new);
            self.by_pfn.remove(&old);
            self.by_pfn.insert(new, h);
            self.by_handle.insert(h, MovablePage { pfn: new, pinned: false });
            b.free_page(old);
            moved += 1;
        }
        Ok(moved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeSet;
    use alloc::vec::Vec;

    /// Memory of `n` pages, each holding a u64; a free set.
    struct Mem {
        data: Vec<u64>,
        free: BTreeSet<u64>,
    }

    impl MigrateBackend for Mem {
        fn alloc_target(&mut self, avoid: (Pfn, Pfn)) -> Option<Pfn> {
            let p = *self.free.iter().find(|&&p| !(avoid.0.0..avoid.1.0).contains(&p))?;
            self.free.remove(&p);
            Some(Pfn(p))
        }
        fn copy_page(&mut self, from: Pfn, to: Pfn) {
            self.data[to.0 as usize] = self.data[from.0 as usize];
        }
        fn free_page(&mut self, pfn: Pfn) {
            self.data[pfn.0 as usize] = 0xdead;
            assert!(self.free.insert(pfn.0), "double free of {pfn:#x}");
        }
    }

    fn setup(used: &[u64], free: &[u64]) -> (Mem, MovablePages, Vec<Handle>) {
        let mut mem = Mem { data: alloc::vec![0; 64], free: free.iter().copied().collect() };
        let mut t = MovablePages::new();
        let hs = used
            .iter()
            .map(|&p| {
                mem.data[p as usize] = 1000 + p;
                t.insert(Pfn(p))
            })
            .collect();
        (mem, t, hs)
    }

    #[test]
    fn pages_leave_the_range_with_their_contents_and_handles() {
        let (mut mem, mut t, hs) = setup(&[3, 8, 9, 20], &[1, 10, 11, 30, 31]);
        let moved = t.migrate_range(Pfn(8), Pfn(16), &mut mem).unwrap();
        assert_eq!(moved, 2, "pfns 8 and 9; 3 and 20 stay");
        for (h, was) in hs.iter().zip([3u64, 8, 9, 20]) {
            let now = t.get(*h).unwrap().pfn;
            assert!(!(8..16).contains(&now.0), "{h:?} at {now:#x}");
            assert_eq!(mem.data[now.0 as usize], 1000 + was, "contents followed the handle");
        }
        assert_eq!(t.get(hs[0]).unwrap().pfn, Pfn(3));
        assert!(mem.free.contains(&8) && mem.free.contains(&9), "old pages freed");
        assert!(
            mem.free.contains(&10) && mem.free.contains(&11),
            "10, 11 (in the range) never chosen"
        );
        assert_eq!(t.in_range(Pfn(8), Pfn(16)).count(), 0);
        assert_eq!(t.at(t.get(hs[1]).unwrap().pfn).unwrap().0, hs[1]);
    }

    #[test]
    fn a_pinned_page_refuses_before_anything_moves() {
        let (mut mem, mut t, hs) = setup(&[8, 9], &[30, 31]);
        assert!(t.set_pinned(hs[1], true));
        let before = t.clone();
        assert_eq!(
            t.migrate_range(Pfn(8), Pfn(16), &mut mem),
            Err(MigrateError::Pinned { pfn: Pfn(9) })
        );
        assert_eq!(t, before);
        assert_eq!(mem.free.len(), 2);
        assert!(t.set_pinned(hs[1], false));
        assert_eq!(t.migrate_range(Pfn(8), Pfn(16), &mut mem), Ok(2));
    }

    #[test]
    fn out_of_memory_leaves_moved_pages_moved() {
        let (mut mem, mut t, hs) = setup(&[8, 9], &[30]);
        let e = t.migrate_range(Pfn(8), Pfn(16), &mut mem).unwrap_err();
        assert_eq!(e, MigrateError::NoMemory { pfn: Pfn(9) });
        assert_eq!(t.get(hs[0]).unwrap().pfn, Pfn(30));
        assert_eq!(mem.data[30], 1008);
        assert_eq!(t.get(hs[1]).unwrap().pfn, Pfn(9), "not moved, still there");
        assert_eq!(mem.data[9], 1009);
    }

    #[test]
    fn handles_are_never_reused() {
        let mut t = MovablePages::new();
        let a = t.insert(Pfn(1));
        assert_eq!(t.remove(a), Some(MovablePage { pfn: Pfn(1), pinned: false }));
        let b = t.insert(Pfn(1));
        assert_ne!(a, b);
        assert_eq!(t.get(a), None);
        assert!(!t.set_pinned(a, true));
        assert_eq!(t.len(), 1);
    }
}

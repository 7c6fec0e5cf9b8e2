//! memblock: the early physical memory manager, as in Linux's
//! `mm/memblock.c`. Two region lists, `memory` (what exists) and `reserved`
//! (what is in use), and an allocator that finds free, aligned ranges
//! top-down below a limit. Everything the memory model allocates at boot
//! comes from here, until the page allocator takes the free ranges over.

use alloc::vec::Vec;
use core::fmt;

use crate::e820::MemRange;

/// One region: `[base, base + size)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub base: u64,
    pub size: u64,
}

impl Region {
    pub const fn end(&self) -> u64 {
        self.base + self.size
    }
}

/// A sorted list of disjoint, non-adjacent regions (adjacent and
/// overlapping additions merge, as `memblock_add_range` does).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegionList {
    regions: Vec<Region>,
}

impl RegionList {
    pub const fn new() -> Self {
        Self { regions: Vec::new() }
    }

    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// Total bytes.
    pub fn total(&self) -> u64 {
        self.regions.iter().map(|r| r.size).sum()
    }

    /// Adds `[base, base + size)`, merging with neighbours. The end is
    /// clamped at the top of the address space.
    pub fn add(&mut self, base: u64, size: u64) {
        let end = base.saturating_add(size);
        if end <= base {
            return;
        }
        let (mut lo, mut hi) = (base, end);
        self.regions.retain(|r| {
            let touches = r.base <= hi && lo <= r.end();
            if touches {
                lo = lo.min(r.base);
                hi = hi.max(r.end());
            }
            !touches
        });
        let at = self.regions.partition_point(|r| r.base < lo);
        self.regions.insert(at, Region { base: lo, size: hi - lo });
    }

    /// Removes `[base, base + size)`, splitting regions as needed.
    pub fn remove(&mut self, base: u64, size: u64) {
        let end = base.saturating_add(size);
        let mut out = Vec::with_capacity(self.regions.len() + 1);
        for r in &self.regions {
            if r.end() <= base || r.base >= end {
                out.push(*r);
                continue;
            }
            if r.base < base {
                out.push(Region { base: r.base, size: base - r.base });
            }
            if r.end() > end {
                out.push(Region { base: end, size: r.end() - end });
            }
        }
        self.regions = out;
    }

    /// Whether any byte of `[base, base + size)` is in the list.
    pub fn overlaps(&self, base: u64, size: u64) -> bool {
        let end = base.saturating_add(size);
        self.regions.iter().any(|r| r.base < end && base < r.end())
    }
}

/// Why an early allocation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemblockError {
    /// Alignment is zero or not a power of two, or the size is zero.
    Invalid { size: u64, align: u64 },
    /// No free range of `size` bytes aligned to `align` in `[min, max)`.
    NoMemory { size: u64, align: u64, min: u64, max: u64 },
}

impl fmt::Display for MemblockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid { size, align } => {
                write!(f, "memblock: invalid request: size {size:#x} align {align:#x}")
            }
            Self::NoMemory { size, align, min, max } => write!(
                f,
                "memblock: no free {size:#x} bytes aligned to {align:#x} in {}",
                MemRange(*min, *max)
            ),
        }
    }
}

/// The early memory manager.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Memblock {
    pub memory: RegionList,
    pub reserved: RegionList,
}

impl Memblock {
    pub const fn new() -> Self {
        Self { memory: RegionList::new(), reserved: RegionList::new() }
    }

    /// The free ranges: memory minus reserved, in ascending order.
    pub fn free_ranges(&self) -> Vec<Region> {
        let mut free = self.memory.clone();
        for r in self.reserved.regions() {
            free.remove(r.base, r.size);
        }
        free.regions
    }

    /// Free bytes.
    pub fn free_bytes(&self) -> u64 {
        self.free_ranges().iter().map(|r| r.size).sum()
    }

    /// Allocates `size` bytes aligned to `align` from the highest free
    /// range inside `[min, max)` (Linux's top-down `memblock_phys_alloc_range`)
    /// and reserves them.
    pub fn alloc_range(
        &mut self,
        size: u64,
        align: u64,
        min: u64,
        max: u64,
    ) -> Result<u64, MemblockError> {
        if size == 0 || !align.is_power_of_two() {
            return Err(MemblockError::Invalid { size, align });
        }
        for r in self.free_ranges().iter().rev() {
            let lo = r.base.max(min);
            let hi = r.end().min(max);
            let Some(top) = hi.checked_sub(size) else { continue };
            let cand = top & !(align - 1);
            if hi > lo && cand >= lo {
                self.reserved.add(cand, size);
                return Ok(cand);
            }
        }
        Err(MemblockError::NoMemory { size, align, min, max })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(rs: &[(u64, u64)]) -> Vec<Region> {
        rs.iter().map(|&(base, size)| Region { base, size }).collect()
    }

    #[test]
    fn add_merges_adjacent_and_overlapping() {
        let mut l = RegionList::new();
        l.add(0x3000, 0x1000);
        l.add(0x1000, 0x1000);
        assert_eq!(l.regions(), list(&[(0x1000, 0x1000), (0x3000, 0x1000)]));
        l.add(0x2000, 0x1000); // fills the gap: one region
        assert_eq!(l.regions(), list(&[(0x1000, 0x3000)]));
        l.add(0x800, 0x5000); // swallows everything
        assert_eq!(l.regions(), list(&[(0x800, 0x5000)]));
        l.add(0x10000, 0); // empty: ignored
        assert_eq!(l.total(), 0x5000);
    }

    #[test]
    fn remove_splits() {
        let mut l = RegionList::new();
        l.add(0, 0x10000);
        l.remove(0x4000, 0x1000);
        assert_eq!(l.regions(), list(&[(0, 0x4000), (0x5000, 0xb000)]));
        l.remove(0, 0x100000);
        assert!(l.regions().is_empty());
    }

    fn machine() -> Memblock {
        let mut m = Memblock::new();
        m.memory.add(0x1000, 0x9e000);
        m.memory.add(0x100000, 0x7fee_0000);
        m.reserved.add(0, 0x100000);
        m.reserved.add(0x100000, 0x200000); // a kernel image
        m
    }

    #[test]
    fn allocations_are_top_down_aligned_and_within_limits() {
        let mut m = machine();
        let free0 = m.free_bytes();
        let a = m.alloc_range(0x1000, 0x1000, 0, u64::MAX).unwrap();
        assert_eq!(a, 0x7ffe_0000 - 0x1000);
        let b = m.alloc_range(0x200000, 0x200000, 0, u64::MAX).unwrap();
        assert_eq!(b % 0x200000, 0);
        assert!(b + 0x200000 <= a);
        let c = m.alloc_range(0x1000, 0x1000, 0, 0x1000_0000).unwrap();
        assert_eq!(c, 0x1000_0000 - 0x1000);
        assert_eq!(m.free_bytes(), free0 - 0x1000 - 0x200000 - 0x1000);
        // Never hands out reserved memory, nor memory that does not exist.
        let d = m.alloc_range(0x1000, 0x1000, 0, 0x300000).unwrap_err();
        assert_eq!(
            d,
            MemblockError::NoMemory { size: 0x1000, align: 0x1000, min: 0, max: 0x300000 }
        );
        assert!(matches!(m.alloc_range(0, 8, 0, 1), Err(MemblockError::Invalid { .. })));
        assert!(matches!(m.alloc_range(8, 3, 0, 1), Err(MemblockError::Invalid { .. })));
    }

    #[test]
    fn random_allocations_never_overlap_and_account_exactly() {
        let mut m = machine();
        let free0 = m.free_bytes();
        let mut rng = rng::Rng::new(0x1234_5678_9abc_def1);
        let mut got: Vec<(u64, u64)> = Vec::new();
        for _ in 0..500 {
            let seed = rng.next_u64();
            let size = ((seed % 64) + 1) * 0x1000;
            let align = 0x1000 << (seed >> 60 & 7);
            let max = if seed & 1 == 0 { u64::MAX } else { 0x4000_0000 };
            let Ok(a) = m.alloc_range(size, align, 0, max) else { continue };
            assert_eq!(a % align, 0);
            assert!(a + size <= max);
            assert!(m.memory.overlaps(a, size));
            assert!(got.iter().all(|&(b, s)| a + size <= b || b + s <= a), "overlap at {a:#x}");
            got.push((a, size));
        }
        let used: u64 = got.iter().map(|g| g.1).sum();
        assert_eq!(m.free_bytes(), free0 - used);
    }
}

//! Types that say what a number is, for the portable code: a physical
//! range `[start, end)` ([`PhysRange`]). A pair of `u64`s meant
//! `(start, end)` in some places and `(start, size)` in others; a range is
//! now one value with named ends.

use core::fmt;

use crate::e820::MemRange;
use crate::page::{PAGE_SIZE, Pfn, phys_pfn};

/// Physical addresses `[start, end)`. Printed as Linux prints a range,
/// `[mem 0x…-0x…]` with the end inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PhysRange {
    pub start: u64,
    pub end: u64,
}

impl PhysRange {
    /// `[start, end)`.
    pub const fn new(start: u64, end: u64) -> Self {
        Self { start, end }
    }

    /// `[start, start + size)`, `None` if it would pass 2^64.
    pub const fn from_size(start: u64, size: u64) -> Option<Self> {
        match start.checked_add(size) {
            Some(end) => Some(Self { start, end }),
            None => None,
        }
    }

    /// Bytes in the range (0 when `end <= start`).
    pub const fn size(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// No byte in it.
    pub const fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// `addr` is in it.
    pub const fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }

    /// The two share a byte.
    pub const fn overlaps(&self, other: &PhysRange) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// `other` lies inside it.
    pub const fn covers(&self, other: &PhysRange) -> bool {
        self.start <= other.start && other.end <= self.end
    }

    /// The whole pages inside it, `[PFN_UP(start), PFN_DOWN(end))`.
    pub const fn pfns(&self) -> (Pfn, Pfn) {
        (phys_pfn(self.start.next_multiple_of(PAGE_SIZE)), phys_pfn(self.end))
    }
}

impl fmt::Display for PhysRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        MemRange(self.start, self.end).fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn ends_sizes_and_overlaps() {
        let r = PhysRange::new(0x1000, 0x3000);
        assert_eq!((r.size(), r.is_empty()), (0x2000, false));
        assert!(r.contains(0x1000) && r.contains(0x2fff) && !r.contains(0x3000));
        assert!(r.overlaps(&PhysRange::new(0x2fff, 0x4000)));
        assert!(!r.overlaps(&PhysRange::new(0x3000, 0x4000)), "end is exclusive");
        assert!(r.covers(&PhysRange::new(0x1000, 0x3000)) && !r.covers(&PhysRange::new(0, 0x2000)));
        assert_eq!(PhysRange::from_size(0x1000, 0x2000), Some(r));
        assert_eq!(PhysRange::from_size(u64::MAX, 2), None);
        assert_eq!(PhysRange::new(0x1800, 0x3800).pfns(), (Pfn(2), Pfn(3)), "whole pages only");
        assert!(PhysRange::new(5, 5).is_empty() && PhysRange::new(6, 5).size() == 0);
        assert_eq!(format!("{r}"), "[mem 0x0000000000001000-0x0000000000002fff]");
    }
}

//! Page descriptors (`struct page`): 64 bytes per 4 KiB page frame, kept in
//! the virtually mapped memmap, plus the zones they belong to.
//!
//! The portable code reaches descriptors only through [`MemMap`], so the
//! same logic runs over the kernel's vmemmap and over a host test's
//! vectors.

use core::fmt;

/// log2 of the page size.
pub const PAGE_SHIFT: u32 = 12;
/// Bytes per page.
pub const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;

/// A page frame number: physical address >> [`PAGE_SHIFT`].
///
/// Its own type so that a pfn is not passed where an address, a size or a
/// page count is meant. The arithmetic is what a pfn means: a pfn plus or
/// minus a page count is a pfn, and the distance between two pfns is a page
/// count (`u64`). Whatever turns a pfn into something else (an address, a
/// section number, a descriptor offset) is a named function or an explicit
/// [`Pfn::as_u64`] where the meaning changes. Printed as its number, so
/// `{pfn:#x}` reads as before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct Pfn(pub u64);

impl Pfn {
    /// Pfn 0.
    pub const ZERO: Pfn = Pfn(0);

    /// The pfn numbered `pfn`.
    pub const fn new(pfn: u64) -> Self {
        Self(pfn)
    }

    /// The number, for arithmetic that leaves pfns (bit fields, indices).
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// Whether the pfn is a multiple of `pages` (aligned to them).
    pub const fn is_multiple_of(self, pages: u64) -> bool {
        self.0.is_multiple_of(pages)
    }

    /// The first pfn at or above this one that is a multiple of `pages`.
    pub const fn next_multiple_of(self, pages: u64) -> Self {
        Self(self.0.next_multiple_of(pages))
    }

    /// `ALIGN_DOWN(pfn, pages)`; `pages` is a power of two.
    pub const fn align_down(self, pages: u64) -> Self {
        debug_assert!(pages.is_power_of_two());
        Self(self.0 & !(pages - 1))
    }

    /// `ALIGN(pfn, pages)`; `pages` is a power of two.
    pub const fn align_up(self, pages: u64) -> Self {
        debug_assert!(pages.is_power_of_two());
        Self((self.0 + pages - 1) & !(pages - 1))
    }

    /// The largest order the pfn is aligned to: it is a multiple of
    /// 2^order pages (its trailing zero bits; 64 for pfn 0).
    pub const fn align_order(self) -> u32 {
        self.0.trailing_zeros()
    }

    /// The pfn's offset in its aligned block of `pages` (a power of two),
    /// in pages.
    pub const fn offset_in(self, pages: u64) -> u64 {
        debug_assert!(pages.is_power_of_two());
        self.0 & (pages - 1)
    }

    /// `pages` further, `None` past 2^64.
    pub const fn checked_add(self, pages: u64) -> Option<Self> {
        match self.0.checked_add(pages) {
            Some(p) => Some(Self(p)),
            None => None,
        }
    }

    /// `pages` further, at most the last pfn 2^64 - 1.
    pub const fn saturating_add(self, pages: u64) -> Self {
        Self(self.0.saturating_add(pages))
    }

    /// `pages` back, `None` below pfn 0.
    pub const fn checked_sub(self, pages: u64) -> Option<Self> {
        match self.0.checked_sub(pages) {
            Some(p) => Some(Self(p)),
            None => None,
        }
    }

    /// Pages from `earlier` to this pfn (`self - earlier`), `None` if
    /// `earlier` is above it.
    pub const fn checked_pages_since(self, earlier: Pfn) -> Option<u64> {
        self.0.checked_sub(earlier.0)
    }

    /// Pages from `earlier` to this pfn (`self - earlier`), 0 if `earlier`
    /// is above it.
    pub const fn saturating_pages_since(self, earlier: Pfn) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl core::ops::Add<u64> for Pfn {
    type Output = Pfn;
    fn add(self, pages: u64) -> Pfn {
        Pfn(self.0 + pages)
    }
}

impl core::ops::Sub<u64> for Pfn {
    type Output = Pfn;
    fn sub(self, pages: u64) -> Pfn {
        Pfn(self.0 - pages)
    }
}

/// The distance between two pfns: a page count.
impl core::ops::Sub for Pfn {
    type Output = u64;
    fn sub(self, earlier: Pfn) -> u64 {
        self.0 - earlier.0
    }
}

impl core::ops::AddAssign<u64> for Pfn {
    fn add_assign(&mut self, pages: u64) {
        self.0 += pages;
    }
}

impl core::ops::SubAssign<u64> for Pfn {
    fn sub_assign(&mut self, pages: u64) {
        self.0 -= pages;
    }
}

/// Ranges of pfns iterate: `(start..end).step_by(PAGES_PER_SECTION)`.
impl core::iter::Step for Pfn {
    fn steps_between(start: &Self, end: &Self) -> (usize, Option<usize>) {
        u64::steps_between(&start.0, &end.0)
    }

    fn forward_checked(start: Self, count: usize) -> Option<Self> {
        u64::forward_checked(start.0, count).map(Pfn)
    }

    fn forward_overflowing(start: Self, count: usize) -> (Self, bool) {
        let (pfn, overflow) = u64::forward_overflowing(start.0, count);
        (Pfn(pfn), overflow)
    }

    fn backward_checked(start: Self, count: usize) -> Option<Self> {
        u64::backward_checked(start.0, count).map(Pfn)
    }

    fn backward_overflowing(start: Self, count: usize) -> (Self, bool) {
        let (pfn, overflow) = u64::backward_overflowing(start.0, count);
        (Pfn(pfn), overflow)
    }
}

impl fmt::Display for Pfn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::LowerHex for Pfn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}

impl fmt::UpperHex for Pfn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::UpperHex::fmt(&self.0, f)
    }
}

/// `PFN_PHYS`.
pub const fn pfn_phys(pfn: Pfn) -> u64 {
    pfn.0 << PAGE_SHIFT
}

/// `PHYS_PFN`.
pub const fn phys_pfn(addr: u64) -> Pfn {
    Pfn(addr >> PAGE_SHIFT)
}

/// Whole pages in `bytes` (`bytes >> PAGE_SHIFT`): a page count, where
/// Linux writes `PHYS_PFN(size)` or `size >> PAGE_SHIFT`.
pub const fn bytes_to_pages(bytes: u64) -> u64 {
    bytes >> PAGE_SHIFT
}

/// Bytes in `pages` pages (`pages << PAGE_SHIFT`).
pub const fn pages_to_bytes(pages: u64) -> u64 {
    pages << PAGE_SHIFT
}

/// The zones of x86_64 Linux that Tessera uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum ZoneType {
    /// Below 16 MiB (ISA DMA).
    Dma = 0,
    /// Below 4 GiB (32-bit DMA).
    Dma32 = 1,
    /// Everything else the page allocator manages.
    Normal = 2,
    /// ZONE_MOVABLE: hot-added RAM onlined `online_movable`; only movable
    /// allocations ([`crate::buddy::BuddyAllocator::alloc_pages`] with
    /// `Movable` as the highest zone, Linux's `GFP_HIGHUSER_MOVABLE`) land
    /// there, so that it can always be offlined.
    Movable = 3,
    /// Device memory (persistent memory) from `memremap_pages`; never in
    /// the page allocator.
    Device = 4,
}

/// Zones with a buddy free area ([`ZoneType::Device`] has none).
pub const MAX_NR_ZONES: usize = 4;

/// First pfn above ZONE_DMA.
pub const MAX_DMA_PFN: Pfn = phys_pfn(16 << 20);
/// First pfn above ZONE_DMA32.
pub const MAX_DMA32_PFN: Pfn = phys_pfn(4 << 30);

impl ZoneType {
    /// The zone System RAM at `pfn` belongs to.
    pub const fn for_pfn(pfn: Pfn) -> Self {
        if pfn.0 < MAX_DMA_PFN.0 {
            Self::Dma
        } else if pfn.0 < MAX_DMA32_PFN.0 {
            Self::Dma32
        } else {
            Self::Normal
        }
    }

    /// Linux's zone name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Dma => "DMA",
            Self::Dma32 => "DMA32",
            Self::Normal => "Normal",
            Self::Movable => "Movable",
            Self::Device => "Device",
        }
    }

    const fn from_bits(bits: u64) -> Self {
        match bits & ZONES_MASK {
            0 => Self::Dma,
            1 => Self::Dma32,
            2 => Self::Normal,
            3 => Self::Movable,
            _ => Self::Device,
        }
    }
}

impl fmt::Display for ZoneType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Page flag bits (the low bits of [`Page::flags`]), named as Linux's
/// `PG_*` flags.
pub mod pg {
    /// Not managed by the page allocator (firmware, holes, boot allocations).
    pub const RESERVED: u64 = 1 << 0;
    /// Free in the buddy allocator; `private` holds the order. Only the
    /// first page of a free block carries it.
    pub const BUDDY: u64 = 1 << 1;
    /// First page of an allocated higher-order block.
    pub const HEAD: u64 = 1 << 2;
    /// The descriptor has been initialized (`__init_single_page` ran).
    pub const INITIALIZED: u64 = 1 << 3;
    /// A tail page of a ZONE_DEVICE compound page (`PageTail`); its
    /// `reserved[0]` holds the compound order, and its head is the pfn
    /// rounded down to that order (see [`super::Page::compound_tail`]).
    pub const TAIL: u64 = 1 << 4;
}

/// Zone number field of [`Page::flags`] (Linux's `ZONES_PGSHIFT`): three
/// bits, for five zones.
const ZONES_SHIFT: u32 = 61;
const ZONES_MASK: u64 = 7;
/// Node number field of [`Page::flags`] (Linux's `NODES_PGSHIFT`).
const NODES_SHIFT: u32 = 51;
const NODES_MASK: u64 = (1 << 10) - 1;

/// Marks an empty free-list link.
pub const NO_PFN: Pfn = Pfn(u64::MAX);

/// A page descriptor. 64 bytes, as Linux's `struct page` on x86_64, so a
/// section's memmap is 2 MiB and a sub-section's 32 KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct Page {
    /// `pg::*` bits, zone in bits 62..64, node in bits 52..62.
    pub flags: u64,
    /// `_refcount`: 1 for allocated or reserved pages, 0 when free.
    pub refcount: i32,
    /// `_mapcount`: -1 when not mapped into user space (always, here).
    pub mapcount: i32,
    /// Free-list links (`lru`), as pfns; [`NO_PFN`] ends a list.
    pub next: Pfn,
    /// See [`Page::next`].
    pub prev: Pfn,
    /// `private`: the order of a free buddy block's first page.
    pub private: u64,
    /// `pgmap`: which device mapping owns a ZONE_DEVICE page (0: none).
    pub pgmap: u64,
    /// `reserved[0]`: the compound order of a ZONE_DEVICE compound page's
    /// head and tails (`compound_order`); `reserved[1]`: padding.
    pub reserved: [u64; 2],
}

/// Bytes per page descriptor (`sizeof(struct page)`), the memmap's
/// stride: a section's memmap is `PAGES_PER_SECTION * STRUCT_PAGE_SIZE`.
pub const STRUCT_PAGE_SIZE: u64 = core::mem::size_of::<Page>() as u64;
const _: () = assert!(STRUCT_PAGE_SIZE == 64);

/// Where `pfn`'s descriptor lies in a memmap indexed from pfn 0 (the
/// vmemmap): `pfn * sizeof(struct page)` bytes from pfn 0's.
pub const fn memmap_offset(pfn: Pfn) -> u64 {
    pfn.0 * STRUCT_PAGE_SIZE
}
const _: () = assert!(core::mem::align_of::<Page>() == 64);

impl Page {
    /// A descriptor from its eight 64-bit words, in memory order (a copy
    /// read word by word).
    pub fn from_words(w: [u64; 8]) -> Self {
        Self {
            flags: w[0],
            refcount: w[1] as u32 as i32,
            mapcount: (w[1] >> 32) as u32 as i32,
            next: Pfn(w[2]),
            prev: Pfn(w[3]),
            private: w[4],
            pgmap: w[5],
            reserved: [w[6], w[7]],
        }
    }

    /// The descriptor's eight 64-bit words, in memory order.
    pub fn to_words(&self) -> [u64; 8] {
        let [a, b] = [self.refcount as u32 as u64, self.mapcount as u32 as u64];
        let (next, prev) = (self.next.0, self.prev.0);
        [
            self.flags,
            a | b << 32,
            next,
            prev,
            self.private,
            self.pgmap,
            self.reserved[0],
            self.reserved[1],
        ]
    }

    /// An uninitialized descriptor (all zero, as fresh memmap memory).
    pub const ZERO: Page = Page {
        flags: 0,
        refcount: 0,
        mapcount: 0,
        next: Pfn::ZERO,
        prev: Pfn::ZERO,
        private: 0,
        pgmap: 0,
        reserved: [0; 2],
    };

    /// `__init_single_page`: zone and node set, reference count 1, not in
    /// any list, reserved until the page allocator takes it.
    pub const fn init(zone: ZoneType, nid: u16) -> Page {
        Page {
            flags: pg::INITIALIZED
                | pg::RESERVED
                | ((zone as u64) << ZONES_SHIFT)
                | ((nid as u64 & NODES_MASK) << NODES_SHIFT),
            refcount: 1,
            mapcount: -1,
            next: NO_PFN,
            prev: NO_PFN,
            private: 0,
            pgmap: 0,
            reserved: [0; 2],
        }
    }

    /// `page_zonenum`.
    pub const fn zone(&self) -> ZoneType {
        ZoneType::from_bits(self.flags >> ZONES_SHIFT)
    }

    /// `page_to_nid`.
    pub const fn nid(&self) -> u16 {
        ((self.flags >> NODES_SHIFT) & NODES_MASK) as u16
    }

    /// The head of a ZONE_DEVICE compound page of 2^`order` pages
    /// (`prep_compound_head`): a device page of `pgmap`, [`pg::HEAD`], its
    /// order in `reserved[0]`.
    pub const fn compound_head_page(nid: u16, pgmap: u64, order: u32) -> Page {
        let mut p = Page::init(ZoneType::Device, nid);
        p.flags |= pg::HEAD;
        p.pgmap = pgmap;
        p.reserved[0] = order as u64;
        p
    }

    /// A tail of a ZONE_DEVICE compound page of 2^`order` pages
    /// (`prep_compound_tail`). Unlike Linux's, whose tails point at their
    /// head (`compound_head`), it says only that it is a tail and the
    /// order: the head is the pfn rounded down to the order, and the
    /// `dev_pagemap` is the head's. So every tail of every compound page
    /// of that order on node `nid` is the same 64 bytes, and the vmemmap
    /// pages that hold only tails can be one shared page
    /// (`SHARED_TAILS_2M` and `SHARED_TAILS_1G` in [`crate::sparse`]). Reference count 0, as Linux's
    /// tails.
    pub const fn compound_tail(nid: u16, order: u32) -> Page {
        let mut p = Page::init(ZoneType::Device, nid);
        p.flags |= pg::TAIL;
        p.refcount = 0;
        p.reserved[0] = order as u64;
        p
    }

    /// `PageTail`.
    pub const fn is_tail(&self) -> bool {
        self.has(pg::TAIL)
    }

    /// `compound_order`: of a compound page's head or tail, 0 otherwise.
    pub const fn compound_order(&self) -> u32 {
        if self.zone() as u64 == ZoneType::Device as u64 && self.flags & (pg::HEAD | pg::TAIL) != 0
        {
            self.reserved[0] as u32
        } else {
            0
        }
    }

    /// `compound_head` for `pfn`, whose descriptor this is: the pfn of its
    /// compound page's head (`pfn` itself when it is no tail).
    pub const fn compound_head(&self, pfn: Pfn) -> Pfn {
        if self.is_tail() { pfn.align_down(1 << self.compound_order()) } else { pfn }
    }

    /// Moves the page to another zone (`set_page_zone`).
    pub fn set_zone(&mut self, zone: ZoneType) {
        self.flags = (self.flags & !(ZONES_MASK << ZONES_SHIFT)) | ((zone as u64) << ZONES_SHIFT);
    }

    /// Whether all of `bits` are set.
    pub const fn has(&self, bits: u64) -> bool {
        self.flags & bits == bits
    }

    /// `PageReserved`.
    pub const fn is_reserved(&self) -> bool {
        self.has(pg::RESERVED)
    }

    /// `PageBuddy`: the first page of a free block.
    pub const fn is_buddy(&self) -> bool {
        self.has(pg::BUDDY)
    }

    /// Sets or clears `bits`.
    pub fn set(&mut self, bits: u64, on: bool) {
        if on {
            self.flags |= bits;
        } else {
            self.flags &= !bits;
        }
    }
}

/// Access to page descriptors by pfn. `None` where no memmap is populated.
pub trait MemMap {
    /// The descriptor of `pfn`.
    fn page(&self, pfn: Pfn) -> Option<&Page>;
    /// The descriptor of `pfn`, for update.
    fn page_mut(&mut self, pfn: Pfn) -> Option<&mut Page>;
    /// The descriptors of `[pfn, pfn + nr)` as one slice, where the memmap
    /// is contiguous and populated for all of them; `None` otherwise (then
    /// callers go page by page). A fast path only.
    fn pages_mut(&mut self, pfn: Pfn, nr: u64) -> Option<&mut [Page]> {
        let _ = (pfn, nr);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_encodes_zone_and_node() {
        for zone in
            [ZoneType::Dma, ZoneType::Dma32, ZoneType::Normal, ZoneType::Movable, ZoneType::Device]
        {
            for nid in [0, 1, 1023] {
                let p = Page::init(zone, nid);
                assert_eq!((p.zone(), p.nid()), (zone, nid));
                assert!(p.is_reserved() && !p.is_buddy());
                assert_eq!((p.refcount, p.mapcount), (1, -1));
            }
        }
        let mut p = Page::init(ZoneType::Normal, 5);
        p.set_zone(ZoneType::Device);
        assert_eq!((p.zone(), p.nid()), (ZoneType::Device, 5));
    }

    #[test]
    fn compound_tails_do_not_depend_on_their_head() {
        let head = Page::compound_head_page(0, 7, 9);
        assert!(head.has(pg::HEAD) && !head.is_tail() && head.pgmap == 7);
        assert_eq!((head.zone(), head.compound_order(), head.refcount), (ZoneType::Device, 9, 1));
        let tail = Page::compound_tail(0, 9);
        assert!(tail.is_tail() && !tail.has(pg::HEAD) && tail.is_reserved());
        assert_eq!(
            (tail.zone(), tail.compound_order(), tail.refcount, tail.pgmap),
            (ZoneType::Device, 9, 0, 0)
        );
        // The head is found from the pfn alone.
        assert_eq!(tail.compound_head(Pfn(0x4_0000_0123)), Pfn(0x4_0000_0000));
        assert_eq!(
            Page::compound_tail(0, 18).compound_head(Pfn(0x4_0003_ffff)),
            Pfn(0x4_0000_0000)
        );
        assert_eq!(head.compound_head(Pfn(0x200)), Pfn(0x200));
        // A RAM page has no compound order whatever its reserved word holds.
        let mut ram = Page::init(ZoneType::Normal, 0);
        ram.reserved[0] = 9;
        assert_eq!(ram.compound_order(), 0);
    }

    #[test]
    fn zones_split_at_16m_and_4g() {
        assert_eq!(ZoneType::for_pfn(Pfn(0)), ZoneType::Dma);
        assert_eq!(ZoneType::for_pfn(Pfn(0xfff)), ZoneType::Dma);
        assert_eq!(ZoneType::for_pfn(Pfn(0x1000)), ZoneType::Dma32);
        assert_eq!(ZoneType::for_pfn(Pfn(0xf_ffff)), ZoneType::Dma32);
        assert_eq!(ZoneType::for_pfn(Pfn(0x10_0000)), ZoneType::Normal);
    }

    #[test]
    fn words_follow_the_descriptor_layout() {
        use core::mem::offset_of;
        let offsets = [
            offset_of!(Page, flags),
            offset_of!(Page, refcount),
            offset_of!(Page, next),
            offset_of!(Page, prev),
            offset_of!(Page, private),
            offset_of!(Page, pgmap),
            offset_of!(Page, reserved),
        ];
        assert_eq!(offsets, [0, 8, 16, 24, 32, 40, 48]);
        assert_eq!(offset_of!(Page, mapcount), 12);
        let p = Page {
            flags: 1,
            refcount: -2,
            mapcount: -1,
            next: Pfn(3),
            prev: Pfn(4),
            private: 5,
            pgmap: 6,
            reserved: [7, 8],
        };
        let w = p.to_words();
        assert_eq!(w[1], 0xffff_ffff_ffff_fffe);
        assert_eq!(Page::from_words(w), p);
    }
}

//! SPARSEMEM with SPARSEMEM_EXTREME and SPARSEMEM_VMEMMAP, as Linux's
//! `mm/sparse.c` (v6.x): 128 MiB sections, each with a `mem_section_usage`
//! whose `subsection_map` tracks 2 MiB sub-sections, so that hot-add and
//! hot-remove work 2 MiB at a time next to boot memory.
//!
//! Life cycle of a section:
//!
//! ```text
//! absent -> present+early (boot, whole memmap) -> online
//! absent -> present (hot-add, memmap for the added sub-sections) -> online | zone_device
//! any -> deactivated (last sub-section removed: word reset to 0; boot usage kept)
//! ```
//!
//! and of a sub-section: `clear -> set (RAM at boot, or hot-add) -> clear
//! (hot-remove)`.
//!
//! Everything that needs memory or page tables goes through a
//! [`SparseBackend`]: the kernel's backs the memmap with the vmemmap, a host
//! test's with vectors. This module holds the rules; it has no `unsafe`.

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

use rcu::{GracePeriod, RcuPtr, ReadGuard, StaticPtr};

use crate::page::{
    MemMap, PAGE_SHIFT, PAGE_SIZE, Page, Pfn, STRUCT_PAGE_SIZE, ZoneType, memmap_offset,
};

/// log2 of the section size (128 MiB).
pub const SECTION_SIZE_BITS: u32 = 27;
/// `PFN_SECTION_SHIFT`.
pub const PFN_SECTION_SHIFT: u32 = SECTION_SIZE_BITS - PAGE_SHIFT;
/// Pages per section (32768).
pub const PAGES_PER_SECTION: u64 = 1 << PFN_SECTION_SHIFT;
/// log2 of the sub-section size (2 MiB).
pub const SUBSECTION_SHIFT: u32 = 21;
/// `PFN_SUBSECTION_SHIFT`.
pub const PFN_SUBSECTION_SHIFT: u32 = SUBSECTION_SHIFT - PAGE_SHIFT;
/// Pages per sub-section (512).
pub const PAGES_PER_SUBSECTION: u64 = 1 << PFN_SUBSECTION_SHIFT;
/// Bytes per sub-section (2 MiB): the unit of hot-add and remove. The one
/// definition; everything else that means a sub-section uses it.
pub const SUBSECTION_SIZE: u64 = 1 << SUBSECTION_SHIFT;
/// Sub-sections per section (64: one `u64` map).
pub const SUBSECTIONS_PER_SECTION: u64 = 1 << (SECTION_SIZE_BITS - SUBSECTION_SHIFT);
/// Physical address bits with 4-level paging.
pub const MAX_PHYSMEM_BITS: u32 = 46;
/// `SECTIONS_SHIFT`.
pub const SECTIONS_SHIFT: u32 = MAX_PHYSMEM_BITS - SECTION_SIZE_BITS;
/// Number of sections the address space holds (2^19).
pub const NR_MEM_SECTIONS: u64 = 1 << SECTIONS_SHIFT;
/// `mem_section`s per root: one 4 KiB page of 16-byte entries.
pub const SECTIONS_PER_ROOT: usize = 4096 / core::mem::size_of::<MemSection>();
/// Number of roots (2048).
pub const NR_SECTION_ROOTS: usize = (NR_MEM_SECTIONS as usize).div_ceil(SECTIONS_PER_ROOT);
/// A pageblock is a sub-section: order 9.
pub const PAGEBLOCK_ORDER: u32 = 9;
/// Pages per pageblock.
pub const PAGEBLOCK_NR_PAGES: u64 = 1 << PAGEBLOCK_ORDER;
/// Bits of pageblock flags per pageblock (a migratetype).
pub const NR_PAGEBLOCK_BITS: u64 = 4;
const PAGEBLOCK_WORDS: usize =
    (PAGES_PER_SECTION / PAGEBLOCK_NR_PAGES * NR_PAGEBLOCK_BITS / 64) as usize;
/// Bytes of memmap per section (2 MiB).
pub const SECTION_MEMMAP_BYTES: u64 = PAGES_PER_SECTION * core::mem::size_of::<Page>() as u64;
/// Descriptors in one 4 KiB page of the vmemmap.
pub const DESCS_PER_VMEMMAP_PAGE: u64 = PAGE_SIZE / STRUCT_PAGE_SIZE;

/// Compound pages in a ZONE_DEVICE range (Linux's `dev_pagemap`
/// `vmemmap_shift`, which device-dax sets from its alignment): from
/// `start` on, every 2^`shift` pages form one compound page. Pfns before
/// `start` (an info block, the altmap's own pages) belong to none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compound {
    start: Pfn,
    shift: u32,
}

impl Compound {
    /// Compound pages of 2^`shift` pages from `start`, which must be a
    /// multiple of them; `None` for `shift` 0 (base pages) or a misaligned
    /// start.
    pub const fn new(start: Pfn, shift: u32) -> Option<Self> {
        if shift == 0 || shift >= 32 || !start.is_multiple_of(1 << shift) {
            return None;
        }
        Some(Self { start, shift })
    }

    /// The order of each compound page.
    pub const fn shift(&self) -> u32 {
        self.shift
    }

    /// The first pfn of the first compound page.
    pub const fn start(&self) -> Pfn {
        self.start
    }

    /// What memmap init writes into `pfn`'s descriptor for node `nid` and
    /// `pgmap` (`memmap_init_zone_device`, `memmap_init_compound`): before
    /// [`Compound::start`] a reserved device page of no pgmap (the info
    /// block and the altmap's pages, never handed out; Linux leaves these
    /// uninitialized), else a head or a tail.
    pub const fn descriptor(&self, pfn: Pfn, nid: u16, pgmap: u64) -> Page {
        if pfn.0 < self.start.0 {
            Page::init(ZoneType::Device, nid)
        } else if pfn.is_multiple_of(1 << self.shift) {
            Page::compound_head_page(nid, pgmap, self.shift)
        } else {
            Page::compound_tail(nid, self.shift)
        }
    }

    /// Tessera's `vmemmap_can_optimize` for one vmemmap page, the one that
    /// begins with `pfn`'s descriptor (`pfn` a multiple of
    /// [`DESCS_PER_VMEMMAP_PAGE`]): the shared read-only page it maps
    /// instead of a page of its own, when all of its descriptors are alike
    /// on node 0. That is every vmemmap page of a compound page but its
    /// first (tails, [`shared_tails`], when there is a page for the order),
    /// and every one before [`Compound::start`] (reserved pages,
    /// [`SHARED_RESERVED`]: the altmap's own gigabyte of a large namespace
    /// would otherwise cost 16 MiB of memmap per GiB of it). Linux keeps
    /// two pages per compound page (its tails point at their head) and
    /// does this only when the memmap is in RAM; Tessera keeps one,
    /// wherever the memmap lives.
    pub fn shared_vmemmap_page(&self, pfn: Pfn, nid: u16) -> Option<&'static SharedPage> {
        debug_assert!(pfn.is_multiple_of(DESCS_PER_VMEMMAP_PAGE));
        if nid != 0 {
            None
        } else if pfn < self.start {
            Some(&SHARED_RESERVED)
        } else if pfn.is_multiple_of(1 << self.shift) {
            None
        } else {
            shared_tails(self.shift)
        }
    }

    /// Whether [`Compound::shared_vmemmap_page`] has a page for `pfn`.
    pub fn shares_vmemmap_page(&self, pfn: Pfn, nid: u16) -> bool {
        self.shared_vmemmap_page(pfn, nid).is_some()
    }
}

/// How a device range's descriptors start (`memmap_init_zone_device`'s
/// arguments): its node, its `dev_pagemap`, and its compound pages if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceInit {
    pub nid: u16,
    pub pgmap: u64,
    pub compound: Option<Compound>,
}

impl DeviceInit {
    /// Writes the initial descriptors of `pages`, the first being
    /// `start`'s.
    fn fill(&self, pages: &mut [Page], start: Pfn) {
        match &self.compound {
            Some(c) => fill_compound(pages, start, c, self.nid, self.pgmap),
            None => fill_pages(
                pages,
                &Page { pgmap: self.pgmap, ..Page::init(ZoneType::Device, self.nid) },
            ),
        }
    }
}

/// One vmemmap page of descriptors all alike, mapped read-only wherever
/// such a page is needed.
#[derive(Debug)]
#[repr(C, align(4096))]
pub struct SharedPage(pub [Page; DESCS_PER_VMEMMAP_PAGE as usize]);
const _: () = assert!(core::mem::size_of::<SharedPage>() == PAGE_SIZE as usize);

/// The shared tail pages, one per compound order device-dax uses with
/// tails enough to fill a vmemmap page (2 MiB and 1 GiB alignment), node
/// 0. Immutable statics: the kernel maps them read-only wherever a vmemmap
/// page of tails is needed, so a write to a tail faults.
static SHARED_TAILS_2M: SharedPage = SharedPage([Page::compound_tail(0, 9); 64]);
static SHARED_TAILS_1G: SharedPage = SharedPage([Page::compound_tail(0, 18); 64]);
/// The shared page of reserved device pages before a compound range's
/// first compound page ([`Compound::descriptor`]).
pub static SHARED_RESERVED: SharedPage = SharedPage([Page::init(ZoneType::Device, 0); 64]);

/// The shared page of tails of compound order `shift`, if there is one.
pub fn shared_tails(shift: u32) -> Option<&'static SharedPage> {
    match shift {
        9 => Some(&SHARED_TAILS_2M),
        18 => Some(&SHARED_TAILS_1G),
        _ => None,
    }
}

/// Every shared page, for a backend that must tell them from pages
/// of its own (never freed, never written).
pub fn all_shared_pages() -> [&'static SharedPage; 3] {
    [&SHARED_TAILS_2M, &SHARED_TAILS_1G, &SHARED_RESERVED]
}
/// The highest pfn + 1 the model accepts.
pub const MAX_PFN: Pfn = section_nr_to_pfn(NR_MEM_SECTIONS);

const _: () = assert!(SECTIONS_PER_ROOT == 256);
const _: () = assert!(NR_SECTION_ROOTS == 2048);
const _: () = assert!(SUBSECTIONS_PER_SECTION == 64);
const _: () = assert!(PAGEBLOCK_WORDS == 4);
const _: () = assert!(SECTION_MEMMAP_BYTES == 2 << 20);

/// CPUs the section table's readers may run on (`NR_CPUS`).
pub const NR_CPUS: usize = 64;
/// The grace-period scheme of the section table.
pub type MmRcu = rcu::Rcu<NR_CPUS>;
/// A read-side section of [`MmRcu`]: usages and memmap reached through the
/// section table stay valid while it lives.
pub type RcuGuard<'a> = ReadGuard<'a, NR_CPUS>;

/// What a freed usage map is filled with (Linux's `POISON_FREE` byte), so
/// that a reader that uses one after it was freed sees it.
pub const USAGE_POISON: u64 = 0x6b6b_6b6b_6b6b_6b6b;

/// `pfn_to_section_nr`.
pub const fn pfn_to_section_nr(pfn: Pfn) -> u64 {
    pfn.as_u64() >> PFN_SECTION_SHIFT
}

/// `section_nr_to_pfn`.
pub const fn section_nr_to_pfn(nr: u64) -> Pfn {
    Pfn::new(nr << PFN_SECTION_SHIFT)
}

/// `SECTION_ALIGN_UP`.
pub const fn section_align_up(pfn: Pfn) -> Pfn {
    pfn.align_up(PAGES_PER_SECTION)
}

/// `[pfn, pfn + nr_pages)` cut at section boundaries, as `(start, pages)`
/// pieces: the walk `__add_pages` and `__remove_pages` make.
pub fn section_chunks(pfn: Pfn, nr_pages: u64) -> impl Iterator<Item = (Pfn, u64)> {
    let end = pfn.saturating_add(nr_pages);
    let mut at = pfn;
    core::iter::from_fn(move || {
        (at < end).then(|| {
            let cur = (section_align_up(at + 1) - at).min(end - at);
            at += cur;
            (at - cur, cur)
        })
    })
}

/// `check_pfn_span`: a non-empty range aligned to `align` pages (EINVAL)
/// that ends within MAX_PHYSMEM_BITS (ERANGE). Returns its end.
fn check_pfn_span(pfn: Pfn, nr_pages: u64, align: u64) -> Result<Pfn, SparseError> {
    if nr_pages == 0 || !pfn.is_multiple_of(align) || !nr_pages.is_multiple_of(align) {
        return Err(SparseError::Inval { pfn, nr_pages });
    }
    let end = pfn.checked_add(nr_pages).filter(|&e| e <= MAX_PFN);
    end.ok_or(SparseError::Range { pfn, nr_pages })
}

/// `subsection_map_index`: the sub-section of `pfn` inside its section.
pub const fn subsection_map_index(pfn: Pfn) -> u32 {
    (pfn.offset_in(PAGES_PER_SECTION) >> PFN_SUBSECTION_SHIFT) as u32
}

/// The pageblock of `pfn` inside its section (`pfn_to_bitidx` in units of
/// pageblocks).
const fn pageblock_index(pfn: Pfn) -> u64 {
    pfn.offset_in(PAGES_PER_SECTION) / PAGEBLOCK_NR_PAGES
}

/// `subsection_mask_set`: the bits of the sub-sections that
/// `[pfn, pfn + nr_pages)` touches; the range must lie in one section.
pub const fn subsection_mask(pfn: Pfn, nr_pages: u64) -> u64 {
    if nr_pages == 0 {
        return 0;
    }
    let first = subsection_map_index(pfn);
    let last = subsection_map_index(Pfn::new(pfn.as_u64() + nr_pages - 1));
    let upto = if last == 63 { u64::MAX } else { (1u64 << (last + 1)) - 1 };
    upto & !((1u64 << first) - 1)
}

/// Section flag bits, kept in the low bits of `section_mem_map` as Linux
/// does (the memmap pointer is 64-byte aligned, so they are free).
pub mod flags {
    /// `SECTION_MARKED_PRESENT`.
    pub const PRESENT: u64 = 1 << 0;
    /// `SECTION_HAS_MEM_MAP`: the memmap and usage may be read.
    pub const HAS_MEM_MAP: u64 = 1 << 1;
    /// `SECTION_IS_ONLINE`.
    pub const ONLINE: u64 = 1 << 2;
    /// `SECTION_IS_EARLY`: present at boot, memmap fully populated.
    pub const EARLY: u64 = 1 << 3;
    /// `SECTION_TAINT_ZONE_DEVICE`: shares the section with device memory.
    pub const TAINT_ZONE_DEVICE: u64 = 1 << 4;
    /// `SECTION_MAP_MASK`: what is left is the encoded memmap pointer.
    pub const MAP_MASK: u64 = !((1 << 5) - 1);
    /// Names in the printed order.
    pub const NAMES: [(u64, &str); 5] = [
        (PRESENT, "present"),
        (HAS_MEM_MAP, "has_mem_map"),
        (ONLINE, "online"),
        (EARLY, "early"),
        (TAINT_ZONE_DEVICE, "zone_device"),
    ];

    /// The names of the flags set in `flags`, in the printed order.
    pub fn names(flags: u64) -> impl Iterator<Item = &'static str> {
        NAMES.iter().filter(move |(bit, _)| flags & bit != 0).map(|&(_, name)| name)
    }
}

/// A pageblock's migratetype (`enum migratetype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum MigrateType {
    Unmovable = 0,
    Movable = 1,
    Reclaimable = 2,
    HighAtomic = 3,
    Isolate = 5,
}

impl MigrateType {
    /// Every migratetype Tessera stores, in Linux's order.
    pub const ALL: [Self; 5] =
        [Self::Unmovable, Self::Movable, Self::Reclaimable, Self::HighAtomic, Self::Isolate];

    /// Linux's name (`migratetype_names`, as `/proc/pagetypeinfo` prints it).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Unmovable => "Unmovable",
            Self::Movable => "Movable",
            Self::Reclaimable => "Reclaimable",
            Self::HighAtomic => "HighAtomic",
            Self::Isolate => "Isolate",
        }
    }

    fn from_bits(bits: u64) -> Self {
        match bits {
            1 => Self::Movable,
            2 => Self::Reclaimable,
            3 => Self::HighAtomic,
            5 => Self::Isolate,
            _ => Self::Unmovable,
        }
    }
}

/// `struct mem_section_usage`: which sub-sections are active, and a
/// migratetype per pageblock. Atomic words: lock-free readers load the
/// sub-section map while the writer (under the section table's lock)
/// changes it. Orderings: a bit is set with Release after the memmap it
/// covers is populated, and loaded with Acquire, so a reader that sees the
/// bit sees the memmap; it is cleared before the memmap goes, which waits
/// for a grace period.
#[derive(Debug, Default)]
#[repr(C)]
pub struct MemSectionUsage {
    subsection_map: AtomicU64,
    pageblock_flags: [AtomicU64; PAGEBLOCK_WORDS],
}

/// A copy of a [`MemSectionUsage`]'s words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UsageSnapshot {
    pub subsection_map: u64,
    pub pageblock_flags: [u64; PAGEBLOCK_WORDS],
}

impl UsageSnapshot {
    /// The migratetype of pageblock `i` of the section.
    pub fn migratetype(&self, i: u64) -> MigrateType {
        let bit = i * NR_PAGEBLOCK_BITS;
        migratetype_at(self.pageblock_flags[(bit / 64) as usize], bit)
    }
}

/// The migratetype stored at flag bit `bit` (of the section's), whose word
/// is `word`.
fn migratetype_at(word: u64, bit: u64) -> MigrateType {
    MigrateType::from_bits((word >> (bit % 64)) & 0xf)
}

/// `mem_section_usage_size()`.
pub const USAGE_SIZE: u64 = core::mem::size_of::<MemSectionUsage>() as u64;

impl MemSectionUsage {
    /// The sub-section map (Acquire: the memmap of a set bit is populated).
    pub fn subsection_map(&self) -> u64 {
        self.subsection_map.load(Ordering::Acquire)
    }

    /// Publishes sub-sections whose memmap is ready.
    fn set_subsections(&self, mask: u64) {
        self.subsection_map.fetch_or(mask, Ordering::Release);
    }

    /// Unpublishes sub-sections; returns the map left.
    fn clear_subsections(&self, mask: u64) -> u64 {
        self.subsection_map.fetch_and(!mask, Ordering::AcqRel) & !mask
    }

    /// The migratetype of pageblock `i` of the section.
    pub fn migratetype(&self, i: u64) -> MigrateType {
        let bit = i * NR_PAGEBLOCK_BITS;
        migratetype_at(self.pageblock_flags[(bit / 64) as usize].load(Ordering::Relaxed), bit)
    }

    /// `set_pageblock_migratetype` for pageblock `i` of the section (the
    /// writer holds the section table's lock: no other writer).
    pub fn set_migratetype(&self, i: u64, mt: MigrateType) {
        let bit = i * NR_PAGEBLOCK_BITS;
        let w = &self.pageblock_flags[(bit / 64) as usize];
        let v = w.load(Ordering::Relaxed);
        w.store((v & !(0xf << (bit % 64))) | ((mt as u64) << (bit % 64)), Ordering::Relaxed);
    }

    /// A copy of every word.
    pub fn snapshot(&self) -> UsageSnapshot {
        UsageSnapshot {
            subsection_map: self.subsection_map(),
            pageblock_flags: core::array::from_fn(|i| {
                self.pageblock_flags[i].load(Ordering::Relaxed)
            }),
        }
    }

    /// Fills every word with `value` (zero for a fresh usage, the poison
    /// for a freed one).
    pub fn fill(&self, value: u64) {
        self.subsection_map.store(value, Ordering::Relaxed);
        for w in &self.pageblock_flags {
            w.store(value, Ordering::Relaxed);
        }
    }
}

/// `struct mem_section`: 16 bytes, the encoded memmap pointer with flags,
/// and the usage, both atomic so that `pfn_valid` and friends read them
/// without the section table's lock (Acquire loads; the writer stores with
/// Release). All-zero is an absent section.
#[derive(Debug, Default)]
#[repr(C)]
pub struct MemSection {
    section_mem_map: AtomicU64,
    usage: RcuPtr<MemSectionUsage>,
}

const _: () = assert!(core::mem::size_of::<MemSection>() == 16);

impl MemSection {
    /// An absent section.
    pub const fn empty() -> MemSection {
        MemSection { section_mem_map: AtomicU64::new(0), usage: RcuPtr::null() }
    }

    /// The raw `section_mem_map` word.
    pub fn raw(&self) -> u64 {
        self.section_mem_map.load(Ordering::Acquire)
    }

    fn set_raw(&self, word: u64) {
        self.section_mem_map.store(word, Ordering::Release);
    }

    /// The flag bits.
    pub fn flags(&self) -> u64 {
        self.raw() & !flags::MAP_MASK
    }

    /// `present_section`.
    pub fn present(&self) -> bool {
        self.raw() & flags::PRESENT != 0
    }

    /// `valid_section`: the memmap may be used.
    pub fn valid(&self) -> bool {
        self.raw() & flags::HAS_MEM_MAP != 0
    }

    /// `early_section`.
    pub fn early(&self) -> bool {
        self.raw() & flags::EARLY != 0
    }

    /// `online_section`.
    pub fn online(&self) -> bool {
        self.raw() & flags::ONLINE != 0
    }

    /// `online_device_section`.
    pub fn online_device(&self) -> bool {
        let both = flags::ONLINE | flags::TAINT_ZONE_DEVICE;
        self.raw() & both == both
    }

    /// `__section_mem_map_addr`: the decoded memmap base, the address of
    /// pfn 0's descriptor, so that `base + pfn * 64` is pfn's descriptor.
    pub fn mem_map_addr(&self) -> u64 {
        self.raw() & flags::MAP_MASK
    }

    /// The usage, when there is one (`READ_ONCE(ms->usage)`), valid while
    /// `guard` lives.
    /// Only guards of the table's own scheme reach here: the table's and
    /// [`Sparse`]'s methods take them from it.
    pub(crate) fn usage<'g>(&self, guard: &'g RcuGuard<'_>) -> Option<&'g MemSectionUsage> {
        self.usage.load(guard)
    }

    /// The sub-section map; a section without usage has none set.
    pub(crate) fn subsection_map(&self, guard: &RcuGuard<'_>) -> u64 {
        self.usage(guard).map_or(0, MemSectionUsage::subsection_map)
    }

    /// `pfn_section_valid`: the pfn's sub-section bit (false without usage).
    pub(crate) fn pfn_section_valid(&self, guard: &RcuGuard<'_>, pfn: Pfn) -> bool {
        self.subsection_map(guard) & (1 << subsection_map_index(pfn)) != 0
    }

    fn set_flags(&self, bits: u64, on: bool) {
        if on {
            self.section_mem_map.fetch_or(bits, Ordering::Release);
        } else {
            self.section_mem_map.fetch_and(!bits, Ordering::Release);
        }
    }
}

/// The section table as lock-free readers see it: the roots (set once,
/// never freed) and the grace-period scheme that keeps the usages and the
/// memmap they lead to alive while a reader holds a [`RcuGuard`]. The
/// writer ([`Sparse`]) changes it under its own lock.
pub struct SectionTable {
    roots: [StaticPtr<SectionRoot>; NR_SECTION_ROOTS],
    rcu: MmRcu,
}

impl Default for SectionTable {
    fn default() -> Self {
        Self::new()
    }
}

impl SectionTable {
    pub const fn new() -> Self {
        Self { roots: [const { StaticPtr::null() }; NR_SECTION_ROOTS], rcu: MmRcu::new() }
    }

    /// The grace-period scheme.
    pub fn rcu(&self) -> &MmRcu {
        &self.rcu
    }

    /// Enters a read-side section on `cpu` (`rcu_read_lock`).
    pub fn read_lock(&self, cpu: usize) -> RcuGuard<'_> {
        self.rcu.read_lock(cpu)
    }

    /// `__nr_to_section`, bounds-checked on the root index; no lock.
    pub fn section(&self, nr: u64) -> Option<&'static MemSection> {
        if nr >= NR_MEM_SECTIONS {
            return None;
        }
        let root = self.roots.get(nr as usize / SECTIONS_PER_ROOT)?.get()?;
        root.get(nr as usize % SECTIONS_PER_ROOT)
    }

    /// `pfn_valid` inside a read-side section: the pfn has an initialized
    /// descriptor, which stays mapped while `guard` lives. The section word
    /// first (HAS_MEM_MAP is cleared before the usage goes), then the usage
    /// (`NULL` when freed), then its bit.
    pub fn pfn_valid_in(&self, guard: &RcuGuard<'_>, pfn: Pfn) -> bool {
        assert!(guard.is_of(&self.rcu), "a read-side section of another table");
        if pfn >= MAX_PFN {
            return false;
        }
        match self.section(pfn_to_section_nr(pfn)) {
            Some(ms) if ms.valid() => ms.early() || ms.pfn_section_valid(guard, pfn),
            _ => false,
        }
    }

    /// Section `nr`'s usage inside a read-side section (`None`: no section,
    /// or no usage: never allocated, or freed).
    pub fn usage<'g>(&self, guard: &'g RcuGuard<'_>, nr: u64) -> Option<&'g MemSectionUsage> {
        assert!(guard.is_of(&self.rcu), "a read-side section of another table");
        self.section(nr)?.usage(guard)
    }

    /// `pfn_valid` on `cpu`, in a read-side section of its own.
    pub fn pfn_valid(&self, cpu: usize, pfn: Pfn) -> bool {
        self.pfn_valid_in(&self.read_lock(cpu), pfn)
    }

    /// The first half of `pfn_to_online_page`, inside a read-side section:
    /// whether `pfn` is online memory with a valid descriptor, and whether
    /// its section is shared with ZONE_DEVICE (then the caller must still
    /// check the descriptor's zone).
    pub fn online_pfn(&self, guard: &RcuGuard<'_>, pfn: Pfn) -> Option<bool> {
        assert!(guard.is_of(&self.rcu), "a read-side section of another table");
        if pfn >= MAX_PFN {
            return None;
        }
        let ms = self.section(pfn_to_section_nr(pfn))?;
        if !ms.online() || !ms.valid() || !ms.pfn_section_valid(guard, pfn) {
            return None;
        }
        Some(ms.online_device())
    }
}

/// What an absent section reads as.
static EMPTY_SECTION: MemSection = MemSection::empty();

/// The boot line of a section, by value (`Sparse::section_line`):
/// `section 7: flags=present|... subsection_map=0x...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SectionSummary {
    pub nr: u64,
    pub flags: u64,
    pub subsection_map: u64,
}

impl fmt::Display for SectionSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let SectionSummary { nr, flags: fl, subsection_map } = *self;
        write!(f, "section {nr}: flags=")?;
        let mut first = true;
        for name in flags::names(fl) {
            if !first {
                f.write_str("|")?;
            }
            f.write_str(name)?;
            first = false;
        }
        if first {
            f.write_str("none")?;
        }
        write!(f, " subsection_map=0x{subsection_map:016x}")
    }
}

impl SectionSummary {
    /// The section as `sections --json` shows it: what its line shows
    /// (the flags as an array of the same names, the sub-section map as
    /// the same hex string: a 64-bit bitmap does not survive JavaScript's
    /// numbers), `subsections`, the 64-character picture printed below the
    /// line, and its usage's pageblock flags: the four words as hex
    /// strings and how many of its 64 pageblocks have each migratetype
    /// (`/proc/pagetypeinfo`'s names); both `null` without a usage.
    pub fn write_json(
        &self,
        o: &mut json::Object<'_>,
        usage: Option<&UsageSnapshot>,
        subsections: &str,
    ) {
        o.field("section", self.nr).field("start_pfn", section_nr_to_pfn(self.nr).as_u64());
        o.array("flags", |a| {
            flags::names(self.flags).for_each(|n| {
                a.item(n);
            });
        });
        o.field("subsection_map", alloc::format!("0x{:016x}", self.subsection_map));
        o.field("subsections", subsections);
        match usage {
            Some(u) => {
                o.array("pageblock_flags", |a| {
                    for w in u.pageblock_flags {
                        a.item(alloc::format!("0x{w:016x}"));
                    }
                });
                o.object("pageblocks", |o| {
                    for mt in MigrateType::ALL {
                        let n = (0..PAGES_PER_SECTION / PAGEBLOCK_NR_PAGES)
                            .filter(|&i| u.migratetype(i) == mt)
                            .count();
                        o.field(mt.name(), n);
                    }
                });
            }
            None => {
                o.field("pageblock_flags", None::<u64>).field("pageblocks", None::<u64>);
            }
        }
    }
}

/// `struct vmem_altmap`: pages at the start of a device range that back
/// the range's own memmap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Altmap {
    /// First pfn of the device range.
    pub base_pfn: Pfn,
    /// Pages kept back for the driver (labels etc.) before the memmap.
    pub reserve: u64,
    /// Pages available for the memmap.
    pub free: u64,
    /// Pages handed out so far.
    pub alloc: u64,
}

impl Altmap {
    /// `vmem_altmap_offset`: pages of the range not usable as memory.
    pub fn offset(&self) -> u64 {
        self.reserve + self.free
    }

    /// `vmem_altmap_alloc`: `nr` pages aligned to `align` pages.
    pub fn alloc_pages(&mut self, nr: u64, align: u64) -> Option<Pfn> {
        let next = self.base_pfn + self.reserve + self.alloc;
        let pfn = next.next_multiple_of(align.max(1));
        let used = pfn - next + nr;
        if self.alloc + used > self.free {
            return None;
        }
        self.alloc += used;
        Some(pfn)
    }
}

/// Errors of the sparse model, with Linux's errno names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SparseError {
    /// `EINVAL`: not sub-section (or, for RAM, section) aligned, empty, or
    /// an altmap that does not fit the range.
    Inval { pfn: Pfn, nr_pages: u64 },
    /// `EEXIST`: some sub-section of the range is already active.
    Exist { pfn: Pfn, nr_pages: u64 },
    /// `ERANGE`: beyond MAX_PHYSMEM_BITS.
    Range { pfn: Pfn, nr_pages: u64 },
    /// `ENOMEM`: the backend could not allocate `what`.
    NoMem { what: &'static str },
    /// Hot-remove of sub-sections that are not all active
    /// ("section already deactivated").
    NotActive { pfn: Pfn, nr_pages: u64 },
}

impl SparseError {
    /// The Linux errno name.
    pub fn errno(&self) -> &'static str {
        match self {
            Self::Inval { .. } | Self::NotActive { .. } => "EINVAL",
            Self::Exist { .. } => "EEXIST",
            Self::Range { .. } => "ERANGE",
            Self::NoMem { .. } => "ENOMEM",
        }
    }
}

impl fmt::Display for SparseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.errno();
        match *self {
            Self::Inval { pfn, nr_pages } => {
                write!(f, "{e}: pfn {pfn:#x} + {nr_pages:#x} is not a sub-section aligned range")
            }
            Self::Exist { pfn, nr_pages } => {
                write!(f, "{e}: pfn {pfn:#x} + {nr_pages:#x} overlaps active sub-sections")
            }
            Self::Range { pfn, nr_pages } => {
                write!(f, "{e}: pfn {pfn:#x} + {nr_pages:#x} is beyond MAX_PHYSMEM_BITS")
            }
            Self::NoMem { what } => write!(f, "{e}: out of memory for {what}"),
            Self::NotActive { pfn, nr_pages } => {
                write!(f, "{e}: section already deactivated ({pfn:#x} + {nr_pages})")
            }
        }
    }
}

/// A root: one page of `mem_section`s.
pub type SectionRoot = [MemSection; SECTIONS_PER_ROOT];

/// What the model needs from the machine: memory for roots, usages and the
/// memmap, and access to the descriptors.
pub trait SparseBackend: MemMap {
    /// A zeroed root (`sparse_index_alloc`).
    fn alloc_root(&mut self) -> Option<&'static mut SectionRoot>;
    /// `n` zeroed usages in one piece, at boot (`sparse_early_usemaps_alloc`).
    fn alloc_early_usages(&mut self, n: usize) -> Option<&'static mut [MemSectionUsage]>;
    /// One zeroed usage, after boot (`kzalloc`).
    fn alloc_usage(&mut self) -> Option<&'static mut MemSectionUsage>;
    /// Ends a grace period of `rcu` from `cpu` (`synchronize_rcu`): every
    /// reader that might still use what was just unpublished has left.
    fn synchronize_rcu(&mut self, rcu: &MmRcu, cpu: usize) -> GracePeriod;
    /// Frees a usage from [`SparseBackend::alloc_usage`].
    fn free_usage(&mut self, usage: &'static mut MemSectionUsage);
    /// Maps memmap for `[pfn, pfn + nr_pages)` (within one section),
    /// backed by `altmap` pages when given. `early`: a whole boot section.
    /// With `compound`, every vmemmap page that
    /// [`Compound::shared_vmemmap_page`] names maps that page read-only
    /// (nothing allocated for it), the others as
    /// always (`vmemmap_populate_compound_pages`). All or nothing: on
    /// failure nothing stays mapped or allocated.
    fn populate_memmap(
        &mut self,
        pfn: Pfn,
        nr_pages: u64,
        altmap: Option<&mut Altmap>,
        early: bool,
        compound: Option<Compound>,
    ) -> bool;
    /// Bytes of memory of its own the populated memmap of `[pfn, pfn +
    /// nr_pages)` (within one section) takes: shared tail pages count
    /// nothing.
    fn memmap_bytes(&self, pfn: Pfn, nr_pages: u64) -> u64 {
        let _ = pfn;
        nr_pages * STRUCT_PAGE_SIZE
    }
    /// Unmaps and frees the memmap of `[pfn, pfn + nr_pages)`.
    fn depopulate_memmap(&mut self, pfn: Pfn, nr_pages: u64, altmap: Option<&mut Altmap>);
    /// The descriptors of `[pfn, pfn + nr_pages)` (within one section), for
    /// bulk initialization; `None` where not populated.
    fn memmap_mut(&mut self, pfn: Pfn, nr_pages: u64) -> Option<&mut [Page]>;
}

/// What boot-time sparse init did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SparseStats {
    /// Roots allocated.
    pub roots: u64,
    /// Bytes of usage maps allocated.
    pub usage_bytes: u64,
    /// Bytes of page descriptors populated.
    pub memmap_bytes: u64,
    /// RAM pages ignored because they lie beyond MAX_PHYSMEM_BITS.
    pub beyond_max_pages: u64,
    /// Boot sections left out because an allocation failed: no root
    /// (`memory_present`), no memmap (`sparse_init_nid`), or every section
    /// when the usage chunk could not be allocated. Their RAM is not used.
    pub lost_sections: u64,
    /// The boot usage chunk could not be allocated.
    pub usage_failed: bool,
}

/// The section table's writer side and its backend: every change to the
/// table goes through it, under one lock (the kernel's `SPARSE`), while
/// readers use the [`SectionTable`] directly.
pub struct Sparse<B> {
    table: &'static SectionTable,
    /// The CPU the caller runs on (the read-side slot to use).
    cpu: fn() -> usize,
    /// The machine side.
    pub backend: B,
    stats: SparseStats,
    vmemmap_base: u64,
    /// Address range of the boot-time usage chunk.
    boot_usages: (usize, usize),
}

impl<B: SparseBackend> Sparse<B> {
    /// An empty table of its own (leaked: tables live for ever) on one
    /// CPU, whose memmap lives at `vmemmap_base` (the virtual address of
    /// pfn 0's descriptor).
    pub fn new(backend: B, vmemmap_base: u64) -> Self {
        let table = alloc::boxed::Box::leak(alloc::boxed::Box::new(SectionTable::new()));
        Self::with_table(table, backend, vmemmap_base, || 0)
    }

    /// The writer of `table`; `cpu` tells which CPU a caller runs on.
    pub const fn with_table(
        table: &'static SectionTable,
        backend: B,
        vmemmap_base: u64,
        cpu: fn() -> usize,
    ) -> Self {
        assert!(
            vmemmap_base & !flags::MAP_MASK == 0,
            "the memmap base must leave the flag bits free"
        );
        Self { table, cpu, backend, stats: SEMPTY, vmemmap_base, boot_usages: (0, 0) }
    }

    /// Counters.
    pub fn stats(&self) -> SparseStats {
        self.stats
    }

    /// The table lock-free readers use.
    pub fn table(&self) -> &'static SectionTable {
        self.table
    }

    /// A read-side section on the caller's CPU.
    pub fn guard(&self) -> RcuGuard<'static> {
        self.table.read_lock((self.cpu)())
    }

    /// `__nr_to_section`, bounds-checked on the root index. Its words are
    /// atomic, so the writer changes them through this shared reference too.
    pub fn section(&self, nr: u64) -> Option<&'static MemSection> {
        self.table.section(nr)
    }

    /// Section `nr`'s sub-section map (0 without a section or usage).
    pub fn subsection_map(&self, nr: u64) -> u64 {
        self.section(nr).map_or(0, |ms| ms.subsection_map(&self.guard()))
    }

    /// A copy of section `nr`'s usage, when it has one.
    pub fn usage_snapshot(&self, nr: u64) -> Option<UsageSnapshot> {
        let g = self.guard();
        self.section(nr)?.usage(&g).map(MemSectionUsage::snapshot)
    }

    /// Whether section `nr` has a usage now.
    pub fn has_usage(&self, nr: u64) -> bool {
        self.section(nr).is_some_and(|ms| ms.usage.is_some())
    }

    /// `pfn_section_valid`: the pfn's sub-section bit.
    pub fn pfn_section_valid(&self, pfn: Pfn) -> bool {
        self.subsection_map(pfn_to_section_nr(pfn)) & (1 << subsection_map_index(pfn)) != 0
    }

    /// Whether section `nr`'s usage is one of the boot-time chunk.
    pub fn has_boot_usage(&self, nr: u64) -> bool {
        let g = self.guard();
        self.section(nr).and_then(|ms| ms.usage(&g)).is_some_and(|u| self.is_boot_usage(u))
    }

    /// Section `nr`'s boot line (an absent section's when it has none).
    pub fn section_line(&self, nr: u64) -> SectionSummary {
        let ms = self.section_or_empty(nr);
        SectionSummary { nr, flags: ms.flags(), subsection_map: ms.subsection_map(&self.guard()) }
    }

    /// Section `nr`, or an absent section's view when it has no root.
    pub fn section_or_empty(&self, nr: u64) -> &MemSection {
        self.section(nr).unwrap_or(&EMPTY_SECTION)
    }

    /// `__pfn_to_section`.
    pub fn pfn_to_section(&self, pfn: Pfn) -> Option<&MemSection> {
        self.section(pfn_to_section_nr(pfn))
    }

    /// Present sections in ascending order.
    pub fn present_sections(&self) -> impl Iterator<Item = (u64, &MemSection)> {
        self.table
            .roots
            .iter()
            .enumerate()
            .filter_map(|(r, root)| root.get().map(|s| (r, s)))
            .flat_map(|(r, root)| {
                root.iter()
                    .enumerate()
                    .filter(|(_, ms)| ms.present())
                    .map(move |(i, ms)| ((r * SECTIONS_PER_ROOT + i) as u64, ms))
            })
    }

    /// `sparse_index_init`: allocates the root of section `nr` on demand.
    fn sparse_index_init(&mut self, nr: u64) -> Result<(), SparseError> {
        let i = nr as usize / SECTIONS_PER_ROOT;
        if i >= NR_SECTION_ROOTS {
            return Err(SparseError::Range { pfn: section_nr_to_pfn(nr), nr_pages: 0 });
        }
        if self.table.roots[i].get().is_none() {
            let root =
                self.backend.alloc_root().ok_or(SparseError::NoMem { what: "section root" })?;
            assert!(self.table.roots[i].set(root), "one writer");
            self.stats.roots += 1;
        }
        Ok(())
    }

    /// `pfn_valid`: the pfn has an initialized descriptor.
    pub fn pfn_valid(&self, pfn: Pfn) -> bool {
        self.table.pfn_valid((self.cpu)(), pfn)
    }

    /// `pfn_to_online_page`: the descriptor address of an online System
    /// RAM page, never of ZONE_DEVICE memory.
    pub fn pfn_to_online_page(&self, pfn: Pfn) -> Option<u64> {
        let device = self.table.online_pfn(&self.guard(), pfn)?;
        if device && self.backend.page(pfn)?.zone() == ZoneType::Device {
            return None;
        }
        Some(self.pfn_to_page(pfn))
    }

    /// `pfn_to_page` (vmemmap: plain arithmetic).
    pub fn pfn_to_page(&self, pfn: Pfn) -> u64 {
        self.vmemmap_base + memmap_offset(pfn)
    }

    /// `page_to_pfn`.
    pub fn page_to_pfn(&self, page: u64) -> Pfn {
        Pfn::new((page - self.vmemmap_base) / STRUCT_PAGE_SIZE)
    }

    /// `sparse_init_one_section`: the memmap encoded relative to the
    /// section start (`sparse_encode_mem_map`), so that the decoded base
    /// plus any pfn of the section is that pfn's descriptor; HAS_MEM_MAP set.
    fn sparse_init_one_section(&mut self, nr: u64, extra: u64) {
        let start = section_nr_to_pfn(nr);
        let mem_map = self.pfn_to_page(start);
        let coded = mem_map - memmap_offset(start);
        if let Some(ms) = self.section(nr) {
            let word = ms.raw() & !flags::MAP_MASK;
            ms.set_raw(word | (coded & flags::MAP_MASK) | flags::HAS_MEM_MAP | extra);
        }
    }

    /// Whether `usage` is part of the boot-time chunk (never freed).
    fn is_boot_usage(&self, usage: &MemSectionUsage) -> bool {
        let a = core::ptr::from_ref(usage).addr();
        (self.boot_usages.0..self.boot_usages.1).contains(&a)
    }

    /// Boot: `memblocks_present`, `sparse_init`, `subsection_map_init` and
    /// `memmap_init` for the RAM ranges `[start_pfn, end_pfn)` (ascending,
    /// from memblock.memory). Every touched section becomes present, early
    /// and online with a whole memmap; every touched 2 MiB block gets its
    /// bit; all descriptors of those sections are initialized and reserved
    /// (the page allocator frees the free ones afterwards).
    pub fn init(&mut self, ram: &[(Pfn, Pfn)], nid: u16) -> Result<SparseStats, SparseError> {
        self.init_deferred(ram, nid, MAX_PFN)
    }

    /// [`Self::init`], leaving the descriptors of the sections at and above
    /// `first_deferred_pfn` (section aligned) uninitialised, as Linux's
    /// `memmap_init` stops at `defer_init()`: their memmap is populated,
    /// their contents are undefined until deferred init
    /// ([`crate::deferred`]) writes every one of them.
    pub fn init_deferred(
        &mut self,
        ram: &[(Pfn, Pfn)],
        nid: u16,
        first_deferred_pfn: Pfn,
    ) -> Result<SparseStats, SparseError> {
        // memory_present: a section whose root cannot be allocated is left
        // out (Linux panics here; losing its RAM is the safer choice).
        let mut no_root = alloc::vec::Vec::new();
        for &(start, end) in ram {
            let end_clamped = end.min(MAX_PFN);
            if end > end_clamped {
                self.stats.beyond_max_pages += end - start.max(MAX_PFN);
            }
            let mut pfn = start.align_down(PAGES_PER_SECTION);
            while pfn < end_clamped {
                let nr = pfn_to_section_nr(pfn);
                match self.sparse_index_init(nr) {
                    Err(SparseError::NoMem { .. }) => no_root.push(nr),
                    Err(e) => return Err(e),
                    Ok(()) => match self.section(nr) {
                        Some(ms) if !ms.present() => ms.set_flags(flags::PRESENT, true),
                        _ => {}
                    },
                }
                pfn += PAGES_PER_SECTION;
            }
        }
        // A later range in the same section may have allocated the root.
        no_root.dedup();
        self.stats.lost_sections +=
            no_root.iter().filter(|&&nr| !self.section_or_empty(nr).present()).count() as u64;
        // sparse_init_nid: one chunk of usages, then each section's memmap.
        let present: alloc::vec::Vec<u64> = self.present_sections().map(|(nr, _)| nr).collect();
        let Some(mut usages) = self.backend.alloc_early_usages(present.len()) else {
            // "usemap allocation failed": no section of the node is usable.
            for &nr in &present {
                if let Some(ms) = self.section(nr) {
                    ms.set_raw(0);
                }
            }
            self.stats.lost_sections += present.len() as u64;
            self.stats.usage_failed = true;
            return Ok(self.stats);
        };
        self.stats.usage_bytes += present.len() as u64 * USAGE_SIZE;
        let first = usages.as_ptr_range();
        self.boot_usages = (first.start.addr(), first.end.addr());
        for &nr in &present {
            let pfn = section_nr_to_pfn(nr);
            // Each section takes its own slot, used or not, so the chunk
            // stays in section order.
            let (usage, rest) = core::mem::take(&mut usages)
                .split_first_mut()
                .ok_or(SparseError::NoMem { what: "usage maps" })?;
            usages = rest;
            if !self.backend.populate_memmap(pfn, PAGES_PER_SECTION, None, true, None) {
                // sparse_init_nid: "memmap allocation failed"; the section
                // is left out (its word cleared: not present, no memmap).
                if let Some(ms) = self.section(nr) {
                    ms.set_raw(0);
                }
                self.stats.lost_sections += 1;
                continue;
            }
            self.stats.memmap_bytes += SECTION_MEMMAP_BYTES;
            if let Some(ms) = self.section(nr) {
                assert!(ms.usage.publish(usage), "a boot section has no usage yet");
            }
            self.sparse_init_one_section(nr, flags::EARLY | flags::ONLINE);
            // memmap_init: every descriptor of an early section, holes
            // included, is initialized and reserved.
            if pfn >= first_deferred_pfn {
                continue;
            }
            if let Some(pages) = self.backend.memmap_mut(pfn, PAGES_PER_SECTION) {
                memmap_init_pages(pages, pfn, nid);
            }
        }
        for &(start, end) in ram {
            self.subsection_map_init(start, end.min(MAX_PFN));
        }
        Ok(self.stats)
    }

    /// `subsection_map_init`: sets the bits of every 2 MiB block `[start,
    /// end)` touches, and marks those pageblocks movable.
    fn subsection_map_init(&mut self, start: Pfn, end: Pfn) {
        for (pfn, cur) in section_chunks(start, end.saturating_pages_since(start)) {
            let mask = subsection_mask(pfn, cur);
            let g = self.guard();
            let ms = self.section(pfn_to_section_nr(pfn));
            if let Some(usage) = ms.and_then(|ms| ms.usage(&g)) {
                usage.set_subsections(mask);
                for i in (0..64).filter(|i| mask & (1 << i) != 0) {
                    usage.set_migratetype(i, MigrateType::Movable);
                }
            }
        }
    }

    /// `__add_pages`: activates `[pfn, pfn + nr_pages)` section by section.
    /// `align` is the required alignment in pages (`PAGES_PER_SUBSECTION`
    /// for device memory, `PAGES_PER_SECTION` for RAM). On failure, what
    /// this call activated is deactivated again.
    pub fn add_pages(
        &mut self,
        nid: u16,
        pfn: Pfn,
        nr_pages: u64,
        align: u64,
        altmap: Option<&mut Altmap>,
    ) -> Result<(), SparseError> {
        self.add_pages_init(nid, pfn, nr_pages, align, altmap, None)
    }

    /// [`Sparse::add_pages`] for a ZONE_DEVICE range (`__add_pages` with a
    /// `dev_pagemap`, then `memmap_init_zone_device`): each section's
    /// descriptors are written as `init` says before its sub-sections are
    /// published, so no reader ever finds one uninitialized (Linux
    /// publishes first and initializes after). With compound pages the
    /// vmemmap pages of tails map the shared page
    /// ([`Compound::shared_vmemmap_page`]) where the memmap is populated
    /// here (not in an early section, whose boot memmap is reused).
    pub fn add_device_pages(
        &mut self,
        pfn: Pfn,
        nr_pages: u64,
        align: u64,
        altmap: Option<&mut Altmap>,
        init: DeviceInit,
    ) -> Result<(), SparseError> {
        self.add_pages_init(init.nid, pfn, nr_pages, align, altmap, Some(init))
    }

    fn add_pages_init(
        &mut self,
        nid: u16,
        pfn: Pfn,
        nr_pages: u64,
        align: u64,
        mut altmap: Option<&mut Altmap>,
        init: Option<DeviceInit>,
    ) -> Result<(), SparseError> {
        let _ = nid;
        let end = check_pfn_span(pfn, nr_pages, align)?;
        if let Some(a) = altmap.as_deref_mut() {
            if a.base_pfn != pfn || a.offset() > nr_pages {
                return Err(SparseError::Inval { pfn, nr_pages });
            }
            a.alloc = 0;
        }
        for (at, cur) in section_chunks(pfn, end - pfn) {
            if let Err(e) = self.sparse_add_section(at, cur, altmap.as_deref_mut(), init) {
                if at > pfn {
                    self.remove_pages(pfn, at - pfn, altmap.as_deref_mut())
                        .expect("undoing what this call added");
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// `sparse_add_section`.
    fn sparse_add_section(
        &mut self,
        pfn: Pfn,
        nr_pages: u64,
        altmap: Option<&mut Altmap>,
        init: Option<DeviceInit>,
    ) -> Result<(), SparseError> {
        let nr = pfn_to_section_nr(pfn);
        // Roots are never freed, as in Linux.
        self.sparse_index_init(nr)?;
        self.section_activate(pfn, nr_pages, altmap, init)?;
        let ms = self.section(nr).expect("root allocated above");
        ms.set_flags(flags::PRESENT, true);
        // The memmap word is encoded for the section start even when the
        // range starts mid-section.
        self.sparse_init_one_section(nr, 0);
        Ok(())
    }

    /// `section_activate`. Readers never see a sub-section before its
    /// memmap: the memmap is populated first, then the bits are published.
    /// Never inlined, so that a debugger can break in it by name (README,
    /// "Debugging with GDB"); it runs once per section of a hot-add.
    #[inline(never)]
    fn section_activate(
        &mut self,
        pfn: Pfn,
        nr_pages: u64,
        altmap: Option<&mut Altmap>,
        init: Option<DeviceInit>,
    ) -> Result<(), SparseError> {
        let nr = pfn_to_section_nr(pfn);
        let ms = self.section(nr).expect("root exists");
        let compound = init.and_then(|d| d.compound).filter(|_| init.is_some_and(|d| d.nid == 0));
        let mut new_usage = false;
        if !ms.usage.is_some() {
            let usage = self.backend.alloc_usage().ok_or(SparseError::NoMem { what: "usage" })?;
            usage.fill(0);
            assert!(ms.usage.publish(usage), "one writer");
            self.stats.usage_bytes += USAGE_SIZE;
            new_usage = true;
        }
        let mask = subsection_mask(pfn, nr_pages);
        let map = ms.subsection_map(&self.guard());
        let err = if mask == 0 {
            Some(SparseError::Inval { pfn, nr_pages })
        } else if map & mask != 0 {
            Some(SparseError::Exist { pfn, nr_pages })
        } else if !ms.early()
            && !self.backend.populate_memmap(pfn, nr_pages, altmap, false, compound)
        {
            Some(SparseError::NoMem { what: "memmap" })
        } else {
            None
        };
        if let Some(e) = err {
            if new_usage {
                self.free_usage_of(nr);
            }
            return Err(e);
        }
        if !ms.early() {
            self.stats.memmap_bytes += self.backend.memmap_bytes(pfn, nr_pages);
        }
        // The descriptors before the bits: a device range's as `init`
        // says; a new memmap (which holds whatever its memory held) zeroed.
        match init {
            Some(d) => self.fill_memmap(pfn, nr_pages, |pages, at| d.fill(pages, at)),
            None if !ms.early() => self.fill_memmap(pfn, nr_pages, |pages, _| {
                fill_pages(pages, &Page::ZERO);
            }),
            None => {}
        }
        // An early section's memmap is whole: it is reused.
        let g = self.guard();
        let usage = ms.usage(&g).expect("usage present");
        // Device pageblocks are movable, as `memmap_init_zone_device`
        // marks them (`__init_zone_device_page`).
        if init.is_some() {
            for i in (0..64).filter(|i| mask & (1 << i) != 0) {
                usage.set_migratetype(i, MigrateType::Movable);
            }
        }
        usage.set_subsections(mask);
        Ok(())
    }

    /// Unpublishes section `nr`'s usage and frees it after a grace period
    /// (`kfree_rcu(ms->usage)`; `WRITE_ONCE(ms->usage, NULL)`); nothing
    /// when it has none.
    fn free_usage_of(&mut self, nr: u64) {
        let ms = self.section(nr).expect("root exists");
        let Some(retired) = ms.usage.unpublish(self.table.rcu()) else { return };
        let gp = self.backend.synchronize_rcu(self.table.rcu(), (self.cpu)());
        let usage = retired.into_mut(gp).ok().expect("a grace period after the unpublish");
        self.backend.free_usage(usage);
        self.stats.usage_bytes -= USAGE_SIZE;
    }

    /// `__remove_pages`: deactivates `[pfn, pfn + nr_pages)` section by
    /// section. Every sub-section of the range must be active; otherwise
    /// nothing changes.
    pub fn remove_pages(
        &mut self,
        pfn: Pfn,
        nr_pages: u64,
        mut altmap: Option<&mut Altmap>,
    ) -> Result<(), SparseError> {
        let end = check_pfn_span(pfn, nr_pages, PAGES_PER_SUBSECTION)?;
        // Check first, so a bad call changes nothing.
        if self.active_subsections(pfn, end - pfn) != (true, true) {
            return Err(SparseError::NotActive { pfn, nr_pages });
        }
        for (at, cur) in section_chunks(pfn, end - pfn) {
            self.section_deactivate(at, cur, altmap.as_deref_mut())?;
        }
        Ok(())
    }

    /// `section_deactivate`, in Linux's order: the sub-section bits go
    /// first, then HAS_MEM_MAP when the section empties, then the usage is
    /// unpublished; the memmap and the usage are freed only after a grace
    /// period, when no reader can still be using them.
    fn section_deactivate(
        &mut self,
        pfn: Pfn,
        nr_pages: u64,
        altmap: Option<&mut Altmap>,
    ) -> Result<(), SparseError> {
        let nr = pfn_to_section_nr(pfn);
        let mask = subsection_mask(pfn, nr_pages);
        let boot_usage = self.has_boot_usage(nr);
        let ms = self.section(nr).ok_or(SparseError::NotActive { pfn, nr_pages })?;
        let early = ms.early();
        let left = {
            let g = self.guard();
            let Some(usage) = ms.usage(&g) else {
                return Err(SparseError::NotActive { pfn, nr_pages });
            };
            if mask == 0 || usage.subsection_map() & mask != mask {
                return Err(SparseError::NotActive { pfn, nr_pages });
            }
            usage.clear_subsections(mask)
        };
        let empty = left == 0;
        if empty {
            // Readers must stop using memmap and usage before they go.
            ms.set_flags(flags::HAS_MEM_MAP, false);
        }
        // A boot-time usage is never freed; it is reused when the section
        // is added again. The usage's grace period also covers the memmap,
        // whose bits went first.
        if empty && !boot_usage {
            self.free_usage_of(nr);
        } else if !early || empty {
            self.backend.synchronize_rcu(self.table.rcu(), (self.cpu)());
        }
        if !early {
            self.stats.memmap_bytes -= self.backend.memmap_bytes(pfn, nr_pages);
            self.backend.depopulate_memmap(pfn, nr_pages, altmap);
        } else if empty {
            // The whole boot memmap goes at once, never a part of it.
            let start = section_nr_to_pfn(nr);
            self.backend.depopulate_memmap(start, PAGES_PER_SECTION, None);
            self.stats.memmap_bytes -= SECTION_MEMMAP_BYTES;
        }
        if empty {
            // A fully deactivated section's word goes back to 0.
            ms.set_raw(0);
        }
        Ok(())
    }

    /// Whether any, and whether all, of the sub-sections `[pfn, pfn +
    /// nr_pages)` touches are active.
    pub fn active_subsections(&self, pfn: Pfn, nr_pages: u64) -> (bool, bool) {
        section_chunks(pfn, nr_pages).fold((false, true), |(any, all), (at, cur)| {
            let mask = subsection_mask(at, cur);
            let map = self.subsection_map(pfn_to_section_nr(at));
            (any || map & mask != 0, all && map & mask == mask)
        })
    }

    /// Sets or clears section flags on every section `[pfn, pfn + nr_pages)`
    /// touches (`online_mem_sections`, TAINT_ZONE_DEVICE).
    pub fn set_section_flags(&mut self, pfn: Pfn, nr_pages: u64, bits: u64, on: bool) {
        for (at, _) in section_chunks(pfn, nr_pages) {
            if let Some(ms) = self.section(pfn_to_section_nr(at)) {
                ms.set_flags(bits, on);
            }
        }
    }

    /// `set_pageblock_migratetype` for every pageblock `[pfn, pfn +
    /// nr_pages)` touches, in sections that have a usage.
    pub fn set_pageblock_migratetype(&mut self, pfn: Pfn, nr_pages: u64, mt: MigrateType) {
        for (at, cur) in section_chunks(pfn, nr_pages) {
            let g = self.guard();
            let ms = self.section(pfn_to_section_nr(at));
            if let Some(usage) = ms.and_then(|ms| ms.usage(&g)) {
                let (first, last) = (pageblock_index(at), pageblock_index(at + cur - 1));
                for i in first..=last {
                    usage.set_migratetype(i, mt);
                }
            }
        }
    }

    /// `get_pageblock_migratetype` of `pfn` (`None` without a usage).
    pub fn pageblock_migratetype(&self, pfn: Pfn) -> Option<MigrateType> {
        let g = self.guard();
        let usage = self.pfn_to_section(pfn)?.usage(&g)?;
        Some(usage.migratetype(pageblock_index(pfn)))
    }

    /// `memmap_init_zone_device` for `[pfn, pfn + nr_pages)` as `init`
    /// says (`memmap_init_compound` for compound pages): heads and tails
    /// are written where the memmap is a page of its own; a shared page
    /// already holds exactly what it must and is read-only.
    pub fn memmap_init_zone_device(&mut self, pfn: Pfn, nr_pages: u64, init: DeviceInit) {
        for (at, cur) in section_chunks(pfn, nr_pages) {
            self.fill_memmap(at, cur, |pages, start| init.fill(pages, start));
        }
    }

    /// Runs `fill` on the descriptors of `[pfn, pfn + nr_pages)` (within
    /// one section) that are writable: all at once where none is on a
    /// shared vmemmap page, else one vmemmap page at a time, skipping the
    /// shared (read-only) ones.
    fn fill_memmap(&mut self, pfn: Pfn, nr_pages: u64, mut fill: impl FnMut(&mut [Page], Pfn)) {
        if let Some(pages) = self.backend.memmap_mut(pfn, nr_pages) {
            return fill(pages, pfn);
        }
        let end = pfn + nr_pages;
        let mut g = pfn;
        while g < end {
            let next = (g.align_down(DESCS_PER_VMEMMAP_PAGE) + DESCS_PER_VMEMMAP_PAGE).min(end);
            if let Some(pages) = self.backend.memmap_mut(g, next - g) {
                fill(pages, g);
            }
            g = next;
        }
    }

    /// Initializes the descriptors of `[pfn, pfn + nr_pages)` for `zone`
    /// (`memmap_init_range`, `memmap_init_zone_device` with `pgmap`).
    pub fn memmap_init_range(
        &mut self,
        pfn: Pfn,
        nr_pages: u64,
        zone: ZoneType,
        nid: u16,
        pgmap: u64,
    ) {
        let page = Page { pgmap, ..Page::init(zone, nid) };
        for (at, cur) in section_chunks(pfn, nr_pages) {
            self.fill_memmap(at, cur, |pages, _| fill_pages(pages, &page));
        }
    }
}

/// [`Compound::descriptor`] into each descriptor of `pages`, the first
/// being `start`'s, a run of alike descriptors at a time ([`fill_pages`]).
fn fill_compound(pages: &mut [Page], start: Pfn, c: &Compound, nid: u16, pgmap: u64) {
    let end = start + pages.len() as u64;
    let size = 1u64 << c.shift();
    let mut pfn = start;
    while pfn < end {
        let run_end = if pfn < c.start() {
            c.start().min(end)
        } else if pfn.is_multiple_of(size) {
            pfn + 1
        } else {
            (pfn.align_down(size) + size).min(end)
        };
        let (i, j) = ((pfn - start) as usize, (run_end - start) as usize);
        fill_pages(&mut pages[i..j], &c.descriptor(pfn, nid, pgmap));
        pfn = run_end;
    }
}

/// `__init_single_page` for each descriptor of `pages`, the first being
/// `start_pfn`'s: zone by address, node `nid`, reserved.
pub fn memmap_init_pages(pages: &mut [Page], start_pfn: Pfn, nid: u16) {
    for_each_zone_run(pages, start_pfn, |run, zone| fill_pages(run, &Page::init(zone, nid)));
}

/// Calls `f` on each run of `pages` (the first being `start_pfn`'s) that
/// lies in one zone, with that zone ([`ZoneType::for_pfn`]): the zone
/// changes only at 16 MiB and 4 GiB.
pub fn for_each_zone_run(
    pages: &mut [Page],
    start_pfn: Pfn,
    mut f: impl FnMut(&mut [Page], ZoneType),
) {
    let mut pfn = start_pfn;
    let mut rest = pages;
    while !rest.is_empty() {
        let zone = ZoneType::for_pfn(pfn);
        let limit = match zone {
            ZoneType::Dma => crate::page::MAX_DMA_PFN,
            ZoneType::Dma32 => crate::page::MAX_DMA32_PFN,
            _ => Pfn(u64::MAX),
        };
        let n = (limit.saturating_pages_since(pfn)).min(rest.len() as u64) as usize;
        let (run, tail) = core::mem::take(&mut rest).split_at_mut(n);
        f(run, zone);
        rest = tail;
        pfn += n as u64;
    }
}

/// Writes `page` into every descriptor of `pages`.
///
/// As eight explicit 64-bit stores per descriptor, four descriptors a loop
/// round: on `x86_64-unknown-none` (no SSE) a 64-byte struct copy is a
/// `memcpy` call, and `memcpy`/`memset` are `rep movs`/`rep stos`, which
/// QEMU's TCG runs one element per pass through its translation loop;
/// straight-line stores run several times faster there, and no slower on
/// hardware (see `memmap_init_vs_memset` in the kernel's bench).
pub fn fill_pages(pages: &mut [Page], page: &Page) {
    let w = page.to_words();
    let store = |p: &mut Page| {
        p.flags = w[0];
        (p.refcount, p.mapcount) = (w[1] as u32 as i32, (w[1] >> 32) as u32 as i32);
        (p.next, p.prev) = (Pfn(w[2]), Pfn(w[3]));
        (p.private, p.pgmap) = (w[4], w[5]);
        p.reserved = [w[6], w[7]];
    };
    let (quads, rest) = pages.as_chunks_mut::<4>();
    for q in quads {
        q.iter_mut().for_each(store);
    }
    rest.iter_mut().for_each(store);
}

const SEMPTY: SparseStats = SparseStats {
    roots: 0,
    usage_bytes: 0,
    memmap_bytes: 0,
    beyond_max_pages: 0,
    lost_sections: 0,
    usage_failed: false,
};

impl<B: SparseBackend> MemMap for Sparse<B> {
    /// The descriptor of a valid pfn only.
    fn page(&self, pfn: Pfn) -> Option<&Page> {
        if self.pfn_valid(pfn) { self.backend.page(pfn) } else { None }
    }

    fn page_mut(&mut self, pfn: Pfn) -> Option<&mut Page> {
        if self.pfn_valid(pfn) { self.backend.page_mut(pfn) } else { None }
    }
}

#[cfg(test)]
pub(crate) mod tests;

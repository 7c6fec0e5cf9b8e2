//! The kernel side of SPARSEMEM: the section table of `tessera-mm` backed
//! by memblock at boot and by the page allocator afterwards, with the
//! memmap mapped at [`VMEMMAP_START`].
//!
//! [`SPARSE`] is the section table's writer lock; it covers the section
//! words, the usages and the vmemmap. The page allocator is not under it:
//! each zone has its own lock ([`crate::mm::page_alloc`]), and populating
//! a memmap takes pages from there while holding `SPARSE` (lock order
//! `SPARSE` → zone lock, never the other way). Lock-free readers use
//! [`SECTIONS`] inside [`rcu_read_lock`] (DESIGN.md §4a).

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};

use mm::page::{MemMap, PAGE_SIZE, Page, Pfn, ZoneType, memmap_offset, pfn_phys, phys_pfn};
use mm::sparse::{
    Altmap, Compound, DESCS_PER_VMEMMAP_PAGE, MemSectionUsage, MmRcu, NR_MEM_SECTIONS,
    PAGES_PER_SECTION, SectionRoot, SharedPage, Sparse, SparseBackend, SparseStats, USAGE_POISON,
    all_shared_pages, pfn_to_section_nr, subsection_map_index, subsection_mask,
};

use x86_64::structures::paging::PhysFrame;
use x86_64::{PhysAddr, VirtAddr};

use crate::arch::paging::{self, MapSize};
use crate::boot::layout::VMEMMAP_START;
use crate::mm::lock::CpuMutex;
use crate::mm::memblock::MEMBLOCK;
use crate::mm::page_alloc;
use crate::mm::sections::this_cpu;
pub use crate::mm::sections::{SECTIONS, pfn_to_page, pfn_valid, rcu_read_lock};

use mm::page::STRUCT_PAGE_SIZE as PAGE_DESC;
const SECTION_MEMMAP: u64 = PAGES_PER_SECTION * PAGE_DESC;

/// Where a piece of memmap memory came from, so it goes back there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
enum Source {
    Memblock = 1,
    Buddy = 2,
    /// The device range's own pages (`vmem_altmap`).
    Altmap = 3,
}

/// One section's populated memmap. All-zero is the empty map (it lives in
/// zeroed pages).
#[derive(Debug, Default, Clone, Copy)]
#[repr(C)]
struct SectionMap {
    /// Sub-sections whose descriptors are mapped and may be read.
    mask: u64,
    /// 0, or a 2 MiB page that backs the whole section's memmap: its
    /// physical address with its [`Source`] in the low bits. It stays until
    /// no sub-section uses it, as Linux's `vmemmap_free` keeps a partly
    /// used PMD.
    huge: u64,
    /// Sub-sections some of whose vmemmap pages map a shared tail page
    /// ([`shared_tail_phys`]), read-only.
    shared: u64,
    _pad: u64,
}

impl SectionMap {
    fn huge(&self) -> Option<(u64, Source)> {
        let source = match self.huge & 3 {
            1 => Source::Memblock,
            2 => Source::Buddy,
            3 => Source::Altmap,
            _ => return None,
        };
        Some((self.huge & !3, source))
    }

    fn set_huge(&mut self, phys: u64, source: Source) {
        debug_assert!(phys.is_multiple_of(4), "a 2 MiB page's address");
        self.huge = phys | source as u64;
    }
}

/// Section maps per leaf page of the vmemmap's bookkeeping radix.
const MAPS_PER_LEAF: usize = (PAGE_SIZE as usize) / core::mem::size_of::<SectionMap>();
/// Leaves that cover every section below MAX_PHYSMEM_BITS.
const LEAVES: usize = (NR_MEM_SECTIONS as usize).div_ceil(MAPS_PER_LEAF);
const _: () = assert!(MAPS_PER_LEAF * core::mem::size_of::<SectionMap>() == PAGE_SIZE as usize);

/// A leaf of the radix: a zeroed page of section maps. Kept for good once
/// made, as the section table's roots are (a remove gives back the memmap,
/// not the bookkeeping).
#[derive(Debug, Clone, Copy)]
struct Leaf {
    maps: NonNull<[SectionMap; MAPS_PER_LEAF]>,
}

/// The vmemmap: which descriptors are mapped. A two-level radix whose
/// leaves are pages from the backend (memblock, then the page allocator),
/// never the heap, so that it can change under [`SPARSE`].
pub struct Vmemmap {
    leaves: [Option<Leaf>; LEAVES],
}

// SAFETY: the leaf pages are owned by the Vmemmap (never shared) and
// reached only through it, under SPARSE.
unsafe impl Send for Vmemmap {}

impl Vmemmap {
    const fn new() -> Self {
        Self { leaves: [None; LEAVES] }
    }

    fn index(nr: u64) -> Option<(usize, usize)> {
        let nr = usize::try_from(nr).ok().filter(|&n| n < LEAVES * MAPS_PER_LEAF)?;
        Some((nr / MAPS_PER_LEAF, nr % MAPS_PER_LEAF))
    }

    /// Section `nr`'s map, if its leaf exists.
    fn get(&self, nr: u64) -> Option<&SectionMap> {
        let (leaf, slot) = Self::index(nr)?;
        // SAFETY: a leaf's page is a zeroed page the Vmemmap owns for good;
        // all-zero maps are valid; `&self` keeps it unchanged.
        self.leaves[leaf].map(|l| unsafe { &(*l.maps.as_ptr())[slot] })
    }

    fn get_mut(&mut self, nr: u64) -> Option<&mut SectionMap> {
        let (leaf, slot) = Self::index(nr)?;
        // SAFETY: as in `get`; `&mut self` makes this the only reference.
        self.leaves[leaf].map(|l| unsafe { &mut (*l.maps.as_ptr())[slot] })
    }

    /// Section `nr`'s map, which must exist (see [`Self::has_leaf`]).
    fn map_mut(&mut self, nr: u64) -> &mut SectionMap {
        self.get_mut(nr).expect("populate_memmap makes the leaf first")
    }

    fn has_leaf(&self, nr: u64) -> bool {
        Self::index(nr).is_some_and(|(leaf, _)| self.leaves[leaf].is_some())
    }

    fn mapped(&self, pfn: Pfn) -> bool {
        self.get(pfn_to_section_nr(pfn))
            .is_some_and(|s| s.mask & (1 << subsection_map_index(pfn)) != 0)
    }
}

fn desc_ptr(pfn: Pfn) -> *mut Page {
    (VMEMMAP_START + memmap_offset(pfn)) as *mut Page
}

/// The physical addresses of the shared pages (statics of the kernel
/// image, in its read-only data), in [`all_shared_pages`]' order, found
/// once.
fn shared_phys() -> &'static [u64; 3] {
    static PHYS: spin::Once<[u64; 3]> = spin::Once::new();
    PHYS.call_once(|| {
        all_shared_pages().map(|page| {
            let virt = VirtAddr::from_ptr(page);
            paging::translate(virt).expect("the kernel image is mapped").as_u64()
        })
    })
}

/// The physical address of a shared page.
fn tail_page_phys(page: &'static SharedPage) -> u64 {
    let i = all_shared_pages().iter().position(|p| core::ptr::eq(*p, page));
    shared_phys()[i.expect("one of the shared pages")]
}

/// Whether `phys` is one of the shared pages (never freed, never written).
fn is_shared_tail(phys: u64) -> bool {
    shared_phys().contains(&phys)
}

impl Vmemmap {
    /// The vmemmap pages holding descriptors of `[pfn, pfn + nr)` (within
    /// one section of map `s`) that map a shared page, by the first pfn
    /// each holds; none without a look at the page tables unless the
    /// range's sub-sections were populated with shared pages.
    fn shared_pages(s: &SectionMap, pfn: Pfn, nr: u64) -> impl Iterator<Item = u64> {
        let any = nr > 0 && s.shared & subsection_mask(pfn, nr) != 0;
        let first = pfn.align_down(DESCS_PER_VMEMMAP_PAGE).as_u64();
        let end = if any { pfn.as_u64() + nr } else { first };
        (first..end).step_by(DESCS_PER_VMEMMAP_PAGE as usize).filter(|&p| {
            let va = VirtAddr::new(VMEMMAP_START + memmap_offset(Pfn::new(p)));
            paging::translate(va).is_some_and(|phys| is_shared_tail(phys.as_u64()))
        })
    }

    /// Whether the vmemmap pages holding the descriptors of `[pfn, pfn +
    /// nr)` (within one section) are all pages of their own, writable:
    /// none of them a shared tail page.
    fn writable(&self, pfn: Pfn, nr: u64) -> bool {
        let Some(s) = self.get(pfn_to_section_nr(pfn)) else { return false };
        Self::shared_pages(s, pfn, nr).next().is_none()
    }
}

impl MemMap for Vmemmap {
    fn page(&self, pfn: Pfn) -> Option<&Page> {
        // SAFETY: `mapped` means this module mapped the descriptor's
        // sub-section writable at its vmemmap address and keeps it mapped
        // until the bit is cleared, which needs `&mut self`.
        self.mapped(pfn).then(|| unsafe { &*desc_ptr(pfn) })
    }

    fn page_mut(&mut self, pfn: Pfn) -> Option<&mut Page> {
        // SAFETY: as in `page`, and `writable` checked that the page is the
        // descriptor's own (not a shared, read-only tail page); `&mut self`
        // makes this the only reference.
        (self.mapped(pfn) && self.writable(pfn, 1)).then(|| unsafe { &mut *desc_ptr(pfn) })
    }

    fn pages_mut(&mut self, pfn: Pfn, nr: u64) -> Option<&mut [Page]> {
        let s = self.get(pfn_to_section_nr(pfn))?;
        let in_section = nr > 0 && pfn_to_section_nr(pfn + nr - 1) == pfn_to_section_nr(pfn);
        let mask = if in_section { subsection_mask(pfn, nr) } else { 0 };
        // SAFETY: every sub-section of the range is mapped (mask check),
        // each page of it the range's own (`writable`), and it lies in one
        // section, whose memmap is virtually contiguous;
        // `&mut self` makes this the only reference.
        // Shared tail pages are read-only and aliased: never in a slice.
        (mask != 0 && s.mask & mask == mask && self.writable(pfn, nr))
            .then(|| unsafe { core::slice::from_raw_parts_mut(desc_ptr(pfn), nr as usize) })
    }
}

/// Memory for the model: memblock until the page allocator takes over,
/// then the page allocator (its zone locks, taken under `SPARSE`).
pub struct KernelBackend {
    /// The mapped descriptors.
    pub vmemmap: Vmemmap,
    phys_offset: u64,
    /// The page allocator has taken over from memblock.
    late: bool,
    /// Page-table pages allocated for the vmemmap.
    pub pgtable_pages: u64,
    /// Free slots of the hot-plug usage-map pool, a list threaded through
    /// them.
    free_usages: Option<NonNull<FreeUsage>>,
}

/// A free slot of the usage-map pool: poisoned words, then the next free
/// slot in its last word (a reader that still follows a freed usage reads
/// the poison in its sub-section map).
#[repr(C)]
struct FreeUsage {
    poison: [u64; 4],
    next: Option<NonNull<FreeUsage>>,
}

const USAGES_PER_PAGE: usize = PAGE_SIZE as usize / core::mem::size_of::<MemSectionUsage>();
const _: () = assert!(core::mem::size_of::<FreeUsage>() == core::mem::size_of::<MemSectionUsage>());
const _: () =
    assert!(core::mem::align_of::<MemSectionUsage>() >= core::mem::align_of::<FreeUsage>());

// SAFETY: the backend's raw pointers (the vmemmap's leaves) point into
// pages it owns and reaches only under SPARSE.
unsafe impl Send for KernelBackend {}

/// Fault injection: the n-th backend allocation from the call to
/// [`fail_nth_allocation`] fails (0: none pending).
static FAIL_NTH: AtomicU64 = AtomicU64::new(0);
/// Backend allocations counted since [`fail_nth_allocation`].
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

/// Makes the `n`-th allocation of the section table's backend from now fail
/// (roots, the boot usage chunk, hot-plug usages, memmap blocks and pages,
/// vmemmap page tables); `0` turns injection off. The failure is logged.
pub fn fail_nth_allocation(n: u64) {
    ALLOCATIONS.store(0, Ordering::Relaxed);
    FAIL_NTH.store(n, Ordering::Relaxed);
}

/// Whether the failure asked for by [`fail_nth_allocation`] has not
/// happened yet (the operation made fewer allocations).
pub fn injection_pending() -> bool {
    FAIL_NTH.load(Ordering::Relaxed) != 0
}

/// The last injected failure: its number and what the allocation was for.
static LAST_INJECTED: spin::Mutex<Option<(u64, &'static str)>> = spin::Mutex::new(None);
/// The failure `fail_sparse=N` caused during boot, if it came.
static BOOT_INJECTED: spin::Once<Option<(u64, &'static str)>> = spin::Once::new();

/// Ends boot's fault injection: remembers which allocation failed, if one
/// did (see [`boot_injection`]), and turns injection off.
pub fn end_boot_injection() {
    BOOT_INJECTED.call_once(|| LAST_INJECTED.lock().take());
    fail_nth_allocation(0);
}

/// The allocation `fail_sparse=N` made fail during boot and what it was
/// for (`None`: boot made fewer than N allocations, or no injection).
pub fn boot_injection() -> Option<(u64, &'static str)> {
    BOOT_INJECTED.get().copied().flatten()
}

/// Counts one allocation; true when it is the one that must fail.
fn injected(what: &'static str) -> bool {
    let n = FAIL_NTH.load(Ordering::Relaxed);
    if n == 0 {
        return false;
    }
    let i = ALLOCATIONS.fetch_add(1, Ordering::Relaxed) + 1;
    if i != n {
        return false;
    }
    FAIL_NTH.store(0, Ordering::Relaxed);
    *LAST_INJECTED.lock() = Some((i, what));
    log::warn!("fault injection: allocation {i} ({what}) fails");
    true
}

impl KernelBackend {
    const fn new() -> Self {
        Self {
            vmemmap: Vmemmap::new(),
            free_usages: None,
            phys_offset: 0,
            late: false,
            pgtable_pages: 0,
        }
    }

    /// Whether the page allocator has taken over.
    pub fn late(&self) -> bool {
        self.late
    }

    /// The usage pool's first page, from the page allocator once it runs
    /// and before any hot-add: an add that is undone finds the page
    /// allocator as it was.
    fn seed_usage_pool(&mut self) {
        if self.free_usages.is_none() && !self.grow_usage_pool() {
            log::warn!("sparse: no page for the usage-map pool yet");
        }
    }

    fn set_late(&mut self) {
        self.late = true;
    }

    /// A zeroed-or-not block of `1 << order` pages from memblock or the
    /// page allocator.
    fn alloc_block(&mut self, order: u32) -> Option<(u64, Source)> {
        if injected(if order == 0 { "a page" } else { "a 2 MiB block" }) {
            return None;
        }
        self.take_block(order)
    }

    /// [`Self::alloc_block`] without counting it for fault injection.
    fn take_block(&mut self, order: u32) -> Option<(u64, Source)> {
        if self.late {
            let pfn = page_alloc::alloc_pages_zone(order, ZoneType::Normal).ok()?;
            Some((pfn_phys(pfn), Source::Buddy))
        } else {
            let size = PAGE_SIZE << order;
            let phys = MEMBLOCK.lock().alloc_range(size, size, 0, u64::MAX).ok()?;
            Some((phys, Source::Memblock))
        }
    }

    fn free_block(&mut self, phys: u64, order: u32, source: Source) {
        let pfn = phys_pfn(phys);
        match source {
            Source::Buddy => {
                if let Err(e) = page_alloc::free_pages(pfn, order) {
                    log::error!("sparse: freeing memmap page {pfn:#x}: {e}");
                }
            }
            Source::Memblock if self.late => {
                // Boot memory: its descriptors are reserved; hand them over.
                page_alloc::free_range(pfn, pfn + (1 << order));
            }
            Source::Memblock => MEMBLOCK.lock().reserved.remove(phys, PAGE_SIZE << order),
            Source::Altmap => {}
        }
    }

    /// A zeroed page through the physical-memory map.
    fn alloc_zeroed_page(&mut self) -> Option<NonNull<u8>> {
        let (phys, _) = self.alloc_block(0)?;
        self.zero_page(phys)
    }

    /// Zeroes the page at `phys`, just allocated for the caller, and
    /// returns its address in the physical-memory map.
    fn zero_page(&self, phys: u64) -> Option<NonNull<u8>> {
        let ptr = (self.phys_offset + phys) as *mut u8;
        // SAFETY: the page was just allocated for this caller alone and the
        // bootloader maps all RAM at `phys_offset`.
        unsafe { ptr.write_bytes(0, PAGE_SIZE as usize) };
        NonNull::new(ptr)
    }

    /// A zeroed page for the backend's own bookkeeping (vmemmap leaves,
    /// usage maps): not one of the memory model's counted allocations
    /// (`fail_sparse` does not reach it), and never from the heap.
    fn alloc_bookkeeping_page(&mut self) -> Option<NonNull<u8>> {
        let (phys, _) = self.take_block(0)?;
        self.zero_page(phys)
    }

    /// Fills freed memmap memory at `phys` with the poison, so that a reader
    /// that still used it would read poison rather than plausible values.
    fn poison(&self, phys: u64, size: u64) {
        let ptr = (self.phys_offset + phys) as *mut u8;
        // SAFETY: the memmap memory was just unmapped from the vmemmap
        // (after a grace period) and is being freed by its only owner; the
        // bootloader maps all RAM at `phys_offset`.
        unsafe { ptr.write_bytes(USAGE_POISON as u8, size as usize) };
    }

    /// Cuts a new page into usage-map slots; false when there is no page.
    fn grow_usage_pool(&mut self) -> bool {
        let Some(page) = self.alloc_bookkeeping_page() else { return false };
        for i in 0..USAGES_PER_PAGE {
            // SAFETY: slot `i` lies inside the page just allocated for the
            // pool, which owns it for good; slots are MemSectionUsage-sized
            // and aligned (the page is); nothing else reaches it yet.
            unsafe {
                let slot = page.cast::<MemSectionUsage>().add(i).cast::<FreeUsage>();
                slot.write(FreeUsage { poison: [USAGE_POISON; 4], next: self.free_usages });
                self.free_usages = Some(slot);
            }
        }
        true
    }

    /// Gives section `nr` a leaf in the vmemmap's radix; false when no page.
    fn add_leaf(&mut self, nr: u64) -> bool {
        let Some((i, _)) = Vmemmap::index(nr) else { return false };
        let Some(page) = self.alloc_bookkeeping_page() else { return false };
        self.vmemmap.leaves[i] = Some(Leaf { maps: page.cast() });
        true
    }

    /// Maps the shared tail page at `phys` read-only at `virt`.
    fn map_shared(&mut self, virt: u64, phys: u64) -> bool {
        self.map_with(virt, "shared tails", |virt, frames| {
            // SAFETY: `virt` is in the vmemmap, which only this module
            // maps, at a descriptor range no reference points into (its
            // bits are clear); `phys` is a shared tail page, immutable
            // kernel data.
            unsafe { paging::map_readonly(virt, PhysAddr::new(phys), frames) }
        })
    }

    fn map(&mut self, virt: u64, phys: u64, size: MapSize) -> bool {
        self.map_with(virt, "memmap", |virt, frames| {
            // SAFETY: `virt` is in the vmemmap, which only this module
            // maps, at a descriptor range no reference points into (its
            // bits are clear); `phys` was just allocated for it.
            unsafe { paging::map(virt, PhysAddr::new(phys), size, frames) }
        })
    }

    /// Runs `map` at `virt` with page-table frames from this backend
    /// (counted in `pgtable_pages`); false, logged with `what`, on failure.
    fn map_with(
        &mut self,
        virt: u64,
        what: &str,
        map: impl FnOnce(
            VirtAddr,
            &mut dyn FnMut() -> Option<PhysFrame>,
        ) -> Result<(), paging::MapError>,
    ) -> bool {
        let mut tables = 0;
        let mut frames = || {
            tables += 1;
            self.alloc_block(0).map(|(p, _)| PhysFrame::containing_address(PhysAddr::new(p)))
        };
        let r = map(VirtAddr::new(virt), &mut frames);
        self.pgtable_pages += tables;
        if let Err(e) = r {
            log::error!("sparse: mapping {what} at {virt:#x}: {e:?}");
        }
        r.is_ok()
    }

    /// Once a section's last 4 KiB memmap pages are gone, frees the page
    /// table that mapped them (`virt` in the section's memmap), so that a
    /// whole-section add can map one 2 MiB page there and a failed add
    /// leaves no table behind.
    fn free_empty_table(&mut self, virt: u64) {
        // SAFETY: the section's 2 MiB of vmemmap belong to this module,
        // which holds the section table's lock.
        if let Some(table) = unsafe { paging::free_empty_table(VirtAddr::new(virt)) } {
            self.free_block(table.start_address().as_u64(), 0, Source::Buddy);
            self.pgtable_pages -= 1;
        }
    }

    /// Unmaps 4 KiB memmap pages `[virt, end)` and frees their frames (to
    /// `altmap` when they came from it), then flushes the range from every
    /// CPU's TLB once.
    fn unmap_base_pages(&mut self, virt: u64, end: u64, mut altmap: Option<&mut Altmap>) {
        for va in (virt..end).step_by(PAGE_SIZE as usize) {
            // SAFETY: the descriptors in this page were made unreachable
            // (their bits cleared) and a grace period has passed since, so
            // no CPU reads them; the flush below comes before any populate
            // can map the range again (both under SPARSE).
            let Some((phys, _)) = (unsafe { paging::unmap_local(VirtAddr::new(va)) }) else {
                log::error!("sparse: memmap page {va:#x} was not mapped");
                continue;
            };
            let phys = phys.as_u64();
            if is_shared_tail(phys) {
                // Shared by every compound page: it stays.
                continue;
            }
            let pfn = phys_pfn(phys);
            match altmap.as_deref_mut() {
                Some(a) if (a.base_pfn..a.base_pfn + a.reserve + a.free).contains(&pfn) => {
                    a.alloc = a.alloc.saturating_sub(1);
                }
                _ => {
                    self.poison(phys, PAGE_SIZE);
                    self.free_block(phys, 0, Source::Buddy);
                }
            }
        }
        if virt < end {
            paging::flush_kernel_range(virt, end);
        }
    }
}

impl MemMap for KernelBackend {
    fn page(&self, pfn: Pfn) -> Option<&Page> {
        self.vmemmap.page(pfn)
    }

    fn page_mut(&mut self, pfn: Pfn) -> Option<&mut Page> {
        self.vmemmap.page_mut(pfn)
    }
}

impl SparseBackend for KernelBackend {
    fn alloc_root(&mut self) -> Option<&'static mut SectionRoot> {
        let ptr = self.alloc_zeroed_page()?.cast::<SectionRoot>();
        // SAFETY: a zeroed page owned from now on by the section table
        // (roots are never freed); all-zero is a valid root (no flags, no
        // usage: `Option<&mut _>` is guaranteed to be null for `None`), and
        // 4096 bytes hold exactly one root.
        Some(unsafe { &mut *ptr.as_ptr() })
    }

    fn alloc_early_usages(&mut self, n: usize) -> Option<&'static mut [MemSectionUsage]> {
        if injected("the boot usage maps") {
            return None;
        }
        let bytes = (n * core::mem::size_of::<MemSectionUsage>()).max(1) as u64;
        let phys = MEMBLOCK.lock().alloc_range(bytes, 64, 0, u64::MAX).ok()?;
        let ptr = (self.phys_offset + phys) as *mut MemSectionUsage;
        // SAFETY: 1. memblock reserved these bytes for this chunk, which the
        // section table owns for ever (boot usage is never freed); 2. they
        // are mapped at `phys_offset` and 64-byte aligned; 3. zero bytes are
        // a valid `MemSectionUsage` (plain integers).
        unsafe {
            ptr.write_bytes(0, n);
            Some(core::slice::from_raw_parts_mut(ptr, n))
        }
    }

    /// Hot-plug usage maps come from a pool of pages cut into slots (Linux
    /// kzallocs them; the kernel heap is not used under SPARSE). A free
    /// slot is reused; pool pages are kept, so a remove and re-add, or an
    /// add undone, leave the page allocator as it was.
    fn alloc_usage(&mut self) -> Option<&'static mut MemSectionUsage> {
        if injected("a usage map") {
            return None;
        }
        if self.free_usages.is_none() && !self.grow_usage_pool() {
            return None;
        }
        let slot = self.free_usages?;
        // SAFETY: a free slot of the pool holds the FreeUsage written by
        // `grow_usage_pool` or `free_usage`.
        self.free_usages = unsafe { slot.as_ref().next };
        let usage = slot.cast::<MemSectionUsage>();
        // SAFETY: the slot left the free list, so the model's reference is
        // its only one (a freed usage was retired after a grace period: no
        // reader holds it); a slot is MemSectionUsage-sized and aligned.
        unsafe {
            usage.write(MemSectionUsage::default());
            Some(&mut *usage.as_ptr())
        }
    }

    fn free_usage(&mut self, usage: &'static mut MemSectionUsage) {
        let slot = NonNull::from(usage).cast::<FreeUsage>();
        // SAFETY: hot-plug usages come only from `alloc_usage`, i.e. from
        // the pool (the model never frees boot usage), and the model gives
        // its reference up here, after a grace period: the slot is free.
        unsafe { slot.write(FreeUsage { poison: [USAGE_POISON; 4], next: self.free_usages }) };
        self.free_usages = Some(slot);
    }

    fn synchronize_rcu(&mut self, rcu: &MmRcu, cpu: usize) -> rcu::GracePeriod {
        synchronize(rcu, cpu)
    }

    fn populate_memmap(
        &mut self,
        pfn: Pfn,
        nr_pages: u64,
        mut altmap: Option<&mut Altmap>,
        _early: bool,
        compound: Option<Compound>,
    ) -> bool {
        let nr = pfn_to_section_nr(pfn);
        let mask = subsection_mask(pfn, nr_pages);
        let virt = VMEMMAP_START + memmap_offset(pfn);
        let bytes = nr_pages * PAGE_DESC;
        // The bookkeeping first, so that a failure here leaves nothing to undo.
        if !self.vmemmap.has_leaf(nr) && !self.add_leaf(nr) {
            return false;
        }
        let reuse = self.vmemmap.map_mut(nr).huge().is_some();
        // Compound pages map their tails' vmemmap pages one by one.
        if !reuse && nr_pages == PAGES_PER_SECTION && compound.is_none() {
            // A whole section: one 2 MiB page, from the altmap if given.
            let alloc_before = altmap.as_deref().map(|a| a.alloc);
            let block = match altmap.as_deref_mut() {
                Some(a) => a.alloc_pages(512, 512).map(|p| (pfn_phys(p), Source::Altmap)),
                None => self.alloc_block(9),
            };
            if let Some((phys, source)) = block {
                if self.map(virt, phys, MapSize::Size2M) {
                    self.vmemmap.map_mut(nr).set_huge(phys, source);
                } else if let (Source::Altmap, Some(a), Some(before)) =
                    (source, altmap.as_deref_mut(), alloc_before)
                {
                    // The block and the padding before it go back.
                    a.alloc = before;
                } else {
                    self.free_block(phys, 9, source);
                }
            }
        }
        let huge = self.vmemmap.map_mut(nr).huge().is_some();
        let mut shared = false;
        if !huge {
            let end = virt + bytes;
            let mut va = virt;
            while va < end {
                let first = Pfn::new((va - VMEMMAP_START) / PAGE_DESC);
                let tails =
                    compound.and_then(|c| c.shared_vmemmap_page(first, 0)).map(tail_page_phys);
                if let Some(phys) = tails {
                    if !self.map_shared(va, phys) {
                        self.unmap_base_pages(virt, va, altmap);
                        if self.vmemmap.map_mut(nr).mask == 0 {
                            self.free_empty_table(virt);
                        }
                        return false;
                    }
                    shared = true;
                    va += PAGE_SIZE;
                    continue;
                }
                let frame = match altmap.as_deref_mut() {
                    Some(a) => a.alloc_pages(1, 1).map(pfn_phys),
                    None => self.alloc_block(0).map(|(p, _)| p),
                };
                let ok = match frame {
                    Some(phys) => {
                        self.map(va, phys, MapSize::Size4K) || {
                            if altmap.is_none() {
                                self.free_block(phys, 0, Source::Buddy);
                            }
                            false
                        }
                    }
                    None => false,
                };
                if !ok {
                    self.unmap_base_pages(virt, va, altmap);
                    if self.vmemmap.map_mut(nr).mask == 0 {
                        self.free_empty_table(virt);
                    }
                    return false;
                }
                va += PAGE_SIZE;
            }
        }
        // The model writes every new descriptor (zero, or a device's
        // initial state) before it publishes the range: nothing to clear
        // here, early or not.
        let map = self.vmemmap.map_mut(nr);
        map.mask |= mask;
        if shared {
            map.shared |= mask;
        }
        true
    }

    fn memmap_bytes(&self, pfn: Pfn, nr_pages: u64) -> u64 {
        let all = nr_pages * PAGE_DESC;
        let Some(s) = self.vmemmap.get(pfn_to_section_nr(pfn)) else { return all };
        all - Vmemmap::shared_pages(s, pfn, nr_pages).count() as u64 * PAGE_SIZE
    }

    fn depopulate_memmap(&mut self, pfn: Pfn, nr_pages: u64, altmap: Option<&mut Altmap>) {
        let nr = pfn_to_section_nr(pfn);
        let Some(s) = self.vmemmap.get_mut(nr) else { return };
        s.mask &= !subsection_mask(pfn, nr_pages);
        s.shared &= !subsection_mask(pfn, nr_pages);
        let (mask, huge) = (s.mask, s.huge());
        if mask == 0 {
            *s = SectionMap::default();
        }
        let virt = VMEMMAP_START + memmap_offset(pfn);
        match huge {
            Some((phys, source)) if mask == 0 => {
                let base = virt & !(SECTION_MEMMAP - 1);
                // SAFETY: no sub-section of the section uses the page now.
                unsafe { paging::unmap(VirtAddr::new(base)) };
                match (source, altmap) {
                    (Source::Altmap, Some(a)) => a.alloc = a.alloc.saturating_sub(512),
                    (Source::Altmap, None) => {}
                    (source, _) => {
                        self.poison(phys, SECTION_MEMMAP);
                        self.free_block(phys, 9, source);
                    }
                }
            }
            Some(_) => {}
            None => {
                self.unmap_base_pages(virt, virt + nr_pages * PAGE_DESC, altmap);
                if mask == 0 {
                    self.free_empty_table(virt);
                }
            }
        }
    }

    fn memmap_mut(&mut self, pfn: Pfn, nr_pages: u64) -> Option<&mut [Page]> {
        self.vmemmap.pages_mut(pfn, nr_pages)
    }
}

static INIT_US: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
static BOOT_STATS: spin::Once<SparseStats> = spin::Once::new();

/// What boot-time sparse init built (System RAM only), once it ran.
pub fn boot_stats() -> Option<SparseStats> {
    BOOT_STATS.get().copied()
}

/// Microseconds boot-time sparse init took (memmap populated and initialized).
pub fn init_us() -> u64 {
    INIT_US.load(core::sync::atomic::Ordering::Relaxed)
}

/// The page allocator has taken over from memblock
/// ([`crate::mm::page_alloc::init`] ran): from now on the memory model
/// takes its pages from there, and the usage-map pool gets its first page.
pub fn page_allocator_ready() {
    let mut s = SPARSE.lock();
    s.backend.set_late();
    s.backend.seed_usage_pool();
}

/// The section table's writer side and the vmemmap.
pub static SPARSE: CpuMutex<Sparse<KernelBackend>> =
    CpuMutex::new(Sparse::with_table(&SECTIONS, KernelBackend::new(), VMEMMAP_START, this_cpu));

/// Grace periods that waited longer than this are reported (Linux's RCU
/// stall warning, much shorter: a reader here never sleeps).
const STALL_US: u64 = 1_000_000;

/// `synchronize_rcu` for the section table: waits until every CPU has left
/// the read-side sections it was in. A CPU that stays inside for a second
/// is reported once, as Linux's stall detector does, and waited for.
fn synchronize(rcu: &MmRcu, cpu: usize) -> rcu::GracePeriod {
    let start = crate::arch::time::uptime_us();
    let mut warned = false;
    let r = rcu.synchronize(cpu, |waiting| {
        if !warned && crate::arch::time::uptime_us() - start > STALL_US {
            warned = true;
            log::warn!(
                "rcu: INFO: detected stall on CPU {waiting} (in a read-side section for over 1 s)"
            );
        }
        core::hint::spin_loop();
        true
    });
    GRACE_US.fetch_add(crate::arch::time::uptime_us() - start, Ordering::Relaxed);
    match r {
        Ok(gp) => gp,
        Err(e) => panic!("rcu: synchronize_rcu from CPU {cpu}: {e:?}"),
    }
}

/// Microseconds spent waiting in [`synchronize`], all calls.
static GRACE_US: AtomicU64 = AtomicU64::new(0);

/// Microseconds spent waiting for grace periods so far.
pub fn grace_period_us() -> u64 {
    GRACE_US.load(Ordering::Relaxed)
}

/// Grace periods completed.
pub fn grace_periods() -> u64 {
    SECTIONS.rcu().completed()
}

/// Test only (`rcu_nogp`): grace periods end without waiting, so that the
/// stress test can show a use-after-free being caught.
pub fn set_no_grace_period(on: bool) {
    SECTIONS.rcu().set_no_wait(on);
}

/// Builds the section table for memblock's memory: every section touched
/// by RAM present and early with a whole memmap, then prints the sections
/// whose sub-section map is not full (all with `sparse_debug`) and a summary.
pub fn init(phys_offset: u64, sparse_debug: bool) -> SparseStats {
    let start = crate::arch::time::uptime_us();
    let ram: alloc::vec::Vec<(Pfn, Pfn)> = MEMBLOCK
        .lock()
        .memory
        .regions()
        .iter()
        .map(|r| (phys_pfn(r.base), phys_pfn(r.base + r.size)))
        .collect();
    let mut s = SPARSE.lock();
    s.backend.phys_offset = phys_offset;
    let first_deferred = crate::mm::defer_init::defer_from(&ram);
    let stats = match s.init_deferred(&ram, 0, first_deferred.unwrap_or(mm::sparse::MAX_PFN)) {
        Ok(st) => st,
        Err(e) => panic!("sparse: boot init failed: {e}"),
    };
    let took = crate::arch::time::uptime_us() - start;
    INIT_US.store(took, core::sync::atomic::Ordering::Relaxed);
    BOOT_STATS.call_once(|| stats);
    if stats.usage_failed {
        log::error!("sparse: no memory for the usage maps: every section left out");
    } else if stats.lost_sections > 0 {
        log::error!(
            "sparse: {} section(s) left out (allocation failed); their RAM is not used",
            stats.lost_sections
        );
    }
    if stats.beyond_max_pages > 0 {
        log::warn!(
            "sparse: ignoring {} pages of RAM beyond MAX_PHYSMEM_BITS",
            stats.beyond_max_pages
        );
    }
    let (mut present, mut early) = (0, 0);
    for (nr, ms) in s.present_sections() {
        present += 1;
        early += u64::from(ms.early());
        let line = s.section_line(nr);
        if sparse_debug || line.subsection_map != u64::MAX {
            log::info!("{line}");
        }
    }
    log::info!(
        "sparse: {present} present sections, {early} early, {} root(s), usage maps {} bytes, memmap {} KiB ({} page-table pages), {}.{:03} ms",
        stats.roots,
        stats.usage_bytes,
        stats.memmap_bytes / 1024,
        s.backend.pgtable_pages,
        took / 1000,
        took % 1000
    );
    stats
}

/// What [`pfn_valid_cost`] measured.
#[derive(Debug, Clone, Copy)]
pub struct PfnValidCost {
    /// Lookups made.
    pub calls: u64,
    /// How many pfns were valid.
    pub valid: u64,
    /// Microseconds for the random pfns alone.
    pub baseline_us: u64,
    /// Microseconds for the random pfns plus `pfn_valid`.
    pub with_lookup_us: u64,
}

impl PfnValidCost {
    /// Nanoseconds per lookup, the random numbers' own cost taken out.
    pub fn ns_per_call(&self) -> u64 {
        self.with_lookup_us.saturating_sub(self.baseline_us) * 1000 / self.calls.max(1)
    }
}

/// Times `calls` lookups of random pfns below twice the end of the last
/// present section (about half of them valid), and the same random
/// numbers without the lookup.
pub fn pfn_valid_cost(calls: u64) -> PfnValidCost {
    use crate::arch::time::uptime_us;
    let top =
        SPARSE.lock().present_sections().last().map_or(1, |(nr, _)| (nr + 1) * PAGES_PER_SECTION)
            * 2;
    let mut rng = rng::Rng::new(0x9e37_79b9_7f4a_7c15);
    let mut next = move || rng.below(top);
    let start = uptime_us();
    let mut sum = 0u64;
    for _ in 0..calls {
        sum = sum.wrapping_add(core::hint::black_box(next()));
    }
    let baseline_us = uptime_us() - start;
    core::hint::black_box(sum);
    let start = uptime_us();
    let mut valid = 0u64;
    for _ in 0..calls {
        valid += u64::from(pfn_valid(core::hint::black_box(Pfn::new(next()))));
    }
    PfnValidCost { calls, valid, baseline_us, with_lookup_us: uptime_us() - start }
}

/// Section `nr`, read without a lock: its `present()`, `valid()`,
/// `early()` and `online()` (`present_section` and friends) load the
/// section word with Acquire.
pub fn section(nr: u64) -> Option<&'static mm::sparse::MemSection> {
    SECTIONS.section(nr)
}

/// `page_to_pfn` (no lock).
pub fn page_to_pfn(page: u64) -> Pfn {
    Pfn::new((page - VMEMMAP_START) / PAGE_DESC)
}

/// `pfn_to_online_page` under the section table's lock: the descriptor's
/// address (see `memory_hotplug::OnlineMems::pfn_to_online_page` for the
/// lock-free form whose result cannot outlive the memory).
pub fn pfn_to_online_page(pfn: Pfn) -> Option<u64> {
    SPARSE.lock().pfn_to_online_page(pfn)
}

/// A copy of `pfn`'s descriptor, when its memmap is valid.
pub fn page(pfn: Pfn) -> Option<Page> {
    SPARSE.lock().page(pfn).copied()
}

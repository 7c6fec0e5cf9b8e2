//! Page-table walks through the bootloader's physical-memory mapping. The
//! boundary speaks the `x86_64` crate's types: virtual addresses are
//! [`VirtAddr`], physical ones [`PhysAddr`], page-table frames
//! [`PhysFrame`].

use spin::{Mutex, Once};
use x86_64::registers::control::Cr3;
use x86_64::structures::paging::mapper::{MapToError, MappedFrame, TranslateResult};
use x86_64::structures::paging::page_table::PageTableEntry;
use x86_64::structures::paging::{
    FrameAllocator, Mapper, OffsetPageTable, Page, PageTable, PageTableFlags, PhysFrame, Size2MiB,
    Size4KiB, Translate,
};
use x86_64::{PhysAddr, VirtAddr};

static PHYS_OFFSET: Once<VirtAddr> = Once::new();

/// Records where the bootloader mapped physical memory (the virtual
/// address of physical 0), through which the page tables are reached.
/// Once, at boot, before any other function here.
pub fn init(phys_offset: VirtAddr) {
    PHYS_OFFSET.call_once(|| phys_offset);
}

fn phys_offset() -> VirtAddr {
    *PHYS_OFFSET.get().expect("paging::init ran at boot")
}

/// The physical address `virt` maps to in the current page tables.
pub fn translate(virt: VirtAddr) -> Option<PhysAddr> {
    with_mapper(|pt| pt.translate_addr(virt))
}

/// Page sizes the kernel maps with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapSize {
    Size4K,
    Size2M,
}

impl MapSize {
    /// Bytes.
    pub const fn bytes(self) -> u64 {
        match self {
            Self::Size4K => 4096,
            Self::Size2M => 2 << 20,
        }
    }
}

/// Why a mapping could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// No frame for a page table.
    NoMemory,
    /// Something is already mapped there.
    AlreadyMapped { virt: VirtAddr },
    /// A huge page is in the way.
    HugePage { virt: VirtAddr },
}

/// Serializes changes to the kernel's page tables.
static PAGING: Mutex<()> = Mutex::new(());

struct Frames<'a>(&'a mut dyn FnMut() -> Option<PhysFrame>);

// SAFETY: the closure hands out frames its owner (memblock or the page
// allocator) has just taken out of circulation for this use; they are
// unused and 4 KiB aligned.
unsafe impl FrameAllocator<Size4KiB> for Frames<'_> {
    fn allocate_frame(&mut self) -> Option<PhysFrame> {
        (self.0)()
    }
}

fn with_mapper<R>(f: impl FnOnce(&mut OffsetPageTable<'_>) -> R) -> R {
    let phys_offset = phys_offset();
    let _guard = PAGING.lock();
    let (l4_frame, _) = Cr3::read();
    let l4 = (phys_offset + l4_frame.start_address().as_u64()).as_mut_ptr::<PageTable>();
    // SAFETY: 1. the bootloader maps all physical memory at `phys_offset`, so
    // the active level-4 table is reachable there; 2. PAGING is held, so this
    // is the only reference to the tables while `f` runs.
    let mut pt = unsafe { OffsetPageTable::new(&mut *l4, phys_offset) };
    f(&mut pt)
}

/// Kernel data: present, writable, not executable, global.
const KERNEL_DATA: PageTableFlags = PageTableFlags::PRESENT
    .union(PageTableFlags::WRITABLE)
    .union(PageTableFlags::NO_EXECUTE)
    .union(PageTableFlags::GLOBAL);

/// Maps `virt` to `phys` (one page of `size`), writable, not executable,
/// write-back cached, taking page-table frames from `frames`.
///
/// # Safety
///
/// `phys` must be memory (or a device range) that nothing else owns through
/// another writable alias the caller relies on, and `virt` must be a kernel
/// address no Rust reference points into (it is about to change meaning).
pub unsafe fn map(
    virt: VirtAddr,
    phys: PhysAddr,
    size: MapSize,
    frames: &mut dyn FnMut() -> Option<PhysFrame>,
) -> Result<(), MapError> {
    // SAFETY: forwarded from this function's contract.
    unsafe { map_with(virt, phys, size, KERNEL_DATA, frames) }
}

/// Whether `virt` is mapped writable (its leaf entry's WRITABLE bit).
pub fn is_writable(virt: VirtAddr) -> bool {
    with_mapper(|pt| {
        matches!(pt.translate(virt),
            TranslateResult::Mapped { flags, .. } if flags.contains(PageTableFlags::WRITABLE))
    })
}

/// Maps one 4 KiB page at `virt` to `phys` read-only (a write through it
/// faults), not executable, write-back cached: a page shared by many
/// virtual addresses whose content never changes.
///
/// # Safety
///
/// As for [`map`], except that `phys` may have other aliases: nothing
/// writes it while any read-only mapping of it exists.
pub unsafe fn map_readonly(
    virt: VirtAddr,
    phys: PhysAddr,
    frames: &mut dyn FnMut() -> Option<PhysFrame>,
) -> Result<(), MapError> {
    let flags = KERNEL_DATA.difference(PageTableFlags::WRITABLE);
    // SAFETY: forwarded from this function's contract.
    unsafe { map_with(virt, phys, MapSize::Size4K, flags, frames) }
}

/// Maps one 4 KiB page of device registers at `virt` (uncached: PCD and
/// PWT, so the access reaches the device whatever the MTRRs say).
///
/// # Safety
///
/// As for [`map`]; `phys` is a device's register page.
pub unsafe fn map_uncached(
    virt: VirtAddr,
    phys: PhysAddr,
    frames: &mut dyn FnMut() -> Option<PhysFrame>,
) -> Result<(), MapError> {
    let flags = KERNEL_DATA | PageTableFlags::NO_CACHE | PageTableFlags::WRITE_THROUGH;
    // SAFETY: forwarded from this function's contract.
    unsafe { map_with(virt, phys, MapSize::Size4K, flags, frames) }
}

unsafe fn map_with(
    virt: VirtAddr,
    phys: PhysAddr,
    size: MapSize,
    flags: PageTableFlags,
    frames: &mut dyn FnMut() -> Option<PhysFrame>,
) -> Result<(), MapError> {
    with_mapper(|pt| {
        let mut frames = Frames(frames);
        match size {
            MapSize::Size4K => {
                let page = Page::<Size4KiB>::containing_address(virt);
                let frame = PhysFrame::containing_address(phys);
                // SAFETY: forwarded from this function's contract.
                unsafe { pt.map_to(page, frame, flags, &mut frames) }
                    .map(|f| f.flush())
                    .map_err(|e| map_error(e, virt))
            }
            MapSize::Size2M => {
                let page = Page::<Size2MiB>::containing_address(virt);
                let frame = PhysFrame::<Size2MiB>::containing_address(phys);
                // SAFETY: forwarded from this function's contract.
                unsafe { pt.map_to(page, frame, flags, &mut frames) }
                    .map(|f| f.flush())
                    .map_err(|e| map_error(e, virt))
            }
        }
    })
}

fn map_error<S: x86_64::structures::paging::PageSize>(
    e: MapToError<S>,
    virt: VirtAddr,
) -> MapError {
    match e {
        MapToError::FrameAllocationFailed => MapError::NoMemory,
        MapToError::ParentEntryHugePage => MapError::HugePage { virt },
        MapToError::PageAlreadyMapped(_) => MapError::AlreadyMapped { virt },
    }
}

/// Takes the level-1 table that maps the 2 MiB around `virt` out of the
/// tables when none of its entries is in use, and returns its frame for the
/// caller to free; `None` (nothing changes) otherwise. A 2 MiB page can
/// then be mapped there again, as Linux's `remove_pagetable` frees empty
/// vmemmap tables.
///
/// # Safety
///
/// The caller must own the 2 MiB of address space at `virt` (no other
/// code maps pages into it meanwhile).
pub unsafe fn free_empty_table(virt: VirtAddr) -> Option<PhysFrame> {
    let phys_offset = phys_offset();
    let freed = with_mapper(|pt| {
        let entry = l2_entry_with_table(pt, virt)?;
        let l1 = (phys_offset + entry.addr().as_u64()).as_ptr::<PageTable>();
        // SAFETY: the entry points to a level-1 table, reachable through
        // the physical-memory map; PAGING is held by `with_mapper`.
        if !unsafe { (&*l1).iter().all(|e| e.is_unused()) } {
            return None;
        }
        let frame = PhysFrame::containing_address(entry.addr());
        entry.set_unused();
        // Drops the paging-structure caches' copy of the entry as well.
        x86_64::instructions::tlb::flush(virt);
        Some(frame)
    });
    if freed.is_some() {
        let base = virt.as_u64() & !(MapSize::Size2M.bytes() - 1);
        super::ipi::shootdown(base, base + MapSize::Size2M.bytes());
    }
    freed
}

/// Unmaps the page at `virt`, returning the physical address and size it
/// mapped. Page-table frames are kept.
///
/// # Safety
///
/// No Rust reference may point into the page any more.
pub unsafe fn unmap(virt: VirtAddr) -> Option<(PhysAddr, MapSize)> {
    let r = with_mapper(|pt| unmap_one(pt, virt));
    if let Some((_, size)) = r {
        let base = virt.as_u64() & !(size.bytes() - 1);
        super::ipi::shootdown(base, base + size.bytes());
    }
    r
}

/// Unmaps the page at `virt` and flushes it from this CPU's TLB only,
/// returning what it mapped: several unmaps then share one
/// [`flush_kernel_range`], as Linux's `remove_pagetable` frees the pages
/// of a range and flushes once at the end.
///
/// # Safety
///
/// No Rust reference may point into the page, no other CPU may use the
/// mapping any more (it may still hold it in its TLB until the flush), and
/// the caller must call [`flush_kernel_range`] over `virt` before the
/// address is mapped again.
pub unsafe fn unmap_local(virt: VirtAddr) -> Option<(PhysAddr, MapSize)> {
    with_mapper(|pt| unmap_one(pt, virt))
}

/// Flushes `[start, end)` from every CPU's TLB (`flush_tlb_kernel_range`).
pub fn flush_kernel_range(start: u64, end: u64) {
    super::ipi::shootdown(start, end);
}

/// Unmaps one page in `pt` and flushes it from this CPU's TLB only.
fn unmap_one(pt: &mut OffsetPageTable<'_>, v: VirtAddr) -> Option<(PhysAddr, MapSize)> {
    match pt.translate(v) {
        TranslateResult::Mapped { frame: MappedFrame::Size4KiB(_), .. } => {
            let (frame, flush) = pt.unmap(Page::<Size4KiB>::containing_address(v)).ok()?;
            flush.flush();
            Some((frame.start_address(), MapSize::Size4K))
        }
        TranslateResult::Mapped { frame: MappedFrame::Size2MiB(_), .. } => {
            let (frame, flush) = pt.unmap(Page::<Size2MiB>::containing_address(v)).ok()?;
            flush.flush();
            Some((frame.start_address(), MapSize::Size2M))
        }
        _ => None,
    }
}

/// Unmaps every page mapped in `[start, end)` (both 4 KiB aligned) and
/// then flushes the range from every CPU's TLB once, as Linux's
/// `flush_tlb_kernel_range` after an unmap of a range; returns the bytes
/// unmapped. Page-table frames are kept.
///
/// # Safety
///
/// As for [`unmap`], for the whole range.
pub unsafe fn unmap_range(start: VirtAddr, end: VirtAddr) -> u64 {
    let mut bytes = 0;
    let mut at = start.as_u64();
    while at < end.as_u64() {
        let step = with_mapper(|pt| match unmap_one(pt, VirtAddr::new(at)) {
            Some((_, size)) => {
                bytes += size.bytes();
                size.bytes() - at % size.bytes()
            }
            None => 4096,
        });
        // An unmapped 4 KiB slot inside a 2 MiB-mapped range cannot exist,
        // but a hole may span a whole table: skip to the next 2 MiB then.
        at += if step == 4096 && at.is_multiple_of(MapSize::Size2M.bytes()) && !has_table(at) {
            MapSize::Size2M.bytes()
        } else {
            step
        };
    }
    if bytes > 0 {
        super::ipi::shootdown(start.as_u64(), end.as_u64());
    }
    bytes
}

/// Whether a level-1 table maps the 2 MiB at `at` (so 4 KiB pages may
/// be there).
fn has_table(at: u64) -> bool {
    with_mapper(|pt| l2_entry_with_table(pt, VirtAddr::new(at)).is_some())
}

/// The level-2 entry for the 2 MiB around `v`, when it points to a
/// level-1 table (every level above present, none a huge page).
fn l2_entry_with_table<'a>(
    pt: &'a mut OffsetPageTable<'_>,
    v: VirtAddr,
) -> Option<&'a mut PageTableEntry> {
    use x86_64::structures::paging::PageTableFlags as F;
    let phys_offset = phys_offset();
    let table_at = |entry: &PageTableEntry| {
        let f = entry.flags();
        (f.contains(F::PRESENT) && !f.contains(F::HUGE_PAGE))
            .then(|| (phys_offset + entry.addr().as_u64()).as_mut_ptr::<PageTable>())
    };
    let l3 = table_at(&pt.level_4_table()[v.p4_index()])?;
    // SAFETY: a present, non-huge entry points to a page table, reachable
    // through the physical-memory map; the caller holds PAGING (through
    // `with_mapper`, which lent `pt`) for as long as the entry is borrowed.
    let l2 = table_at(unsafe { &(&*l3)[v.p3_index()] })?;
    // SAFETY: as above.
    let entry = unsafe { &mut (&mut *l2)[v.p2_index()] };
    table_at(entry)?;
    Some(entry)
}

/// The leaf entry's flags for `virt`, if mapped (the bootloader and this
/// module set permissions on the leaf; upper levels allow everything).
pub fn flags(virt: VirtAddr) -> Option<PageTableFlags> {
    with_mapper(|pt| match pt.translate(virt) {
        TranslateResult::Mapped { flags, .. } => Some(flags),
        _ => None,
    })
}

/// The physical address `virt` maps to and the page size, if mapped.
pub fn mapping(virt: VirtAddr) -> Option<(PhysAddr, MapSize)> {
    with_mapper(|pt| match pt.translate(virt) {
        TranslateResult::Mapped { frame: MappedFrame::Size4KiB(f), offset, .. } => {
            Some((f.start_address() + offset, MapSize::Size4K))
        }
        TranslateResult::Mapped { frame: MappedFrame::Size2MiB(f), offset, .. } => {
            Some((f.start_address() + offset, MapSize::Size2M))
        }
        _ => None,
    })
}

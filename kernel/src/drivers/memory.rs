//! System RAM hotplug in memory blocks (Linux's `mm/memory_hotplug.c` and
//! `drivers/base/memory.c`): RAM withheld at boot (`mem=`) is added back a
//! block at a time (`memory probe`), onlined into the page allocator,
//! offlined (its free pages taken back) and removed again. Boot memory is
//! listed in blocks too, all online.
//!
//! A block's life: `(absent) --add--> offline --online--> online
//! --offline--> offline --remove--> (absent)`. The blocks, their state and
//! every decision (which ranges may be added, in which order Linux refuses,
//! which zone a block goes to, `valid_zones`) are `tessera-mm`'s
//! [`mm::memory_hotplug::MemoryBlocks`]; this is the glue that applies them
//! to the kernel's memory model, takes the locks and logs.
//!
//! Lock order (DESIGN.md §4a): an operation takes `MEM_HOTPLUG`
//! (`mem_hotplug_begin`), then `BLOCKS`, once each, and holds them for
//! all of it (the change hook runs at its end, under both); each backend step takes what it needs under them, one at a
//! time: `SPARSE` (then `ZONES`, in `zone::remove_pfn_range_from_zone`),
//! the page allocator's zone locks, `ZONES`, `MEMBLOCK`, `IOMEM`. Nothing
//! takes `BLOCKS` while holding one of those.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::ops::Deref;

use mm::addr::PhysRange;
use mm::buddy::BuddyError;
use mm::e820::MemRange;
use mm::memory_block::ValidZones;
pub use mm::memory_block::{BlockState, OnlineType};
pub use mm::memory_hotplug::HotplugError;
use mm::memory_hotplug::{BlockLine, FirmwareMaps, HotplugBackend, MemoryBlocks};
use mm::page::{Pfn, ZoneType};
use mm::sparse::{MigrateType, PAGES_PER_SECTION, SparseError, flags};
use mm::zone::NodeZones;
use spin::Mutex;

use crate::mm::memblock::MEMBLOCK;
use crate::mm::memory_hotplug::mem_hotplug_begin;
use crate::mm::page_alloc;
use crate::mm::physmap;
use crate::mm::sparse::SPARSE;
use crate::mm::zone;

/// One memory block (`memoryN`) as it was when returned (see
/// [`mm::memory_hotplug::MemoryBlock`]); it prints and reports its
/// `valid_zones` from the zones as they are when asked, as sysfs does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryBlock(pub mm::memory_hotplug::MemoryBlock);

impl Deref for MemoryBlock {
    type Target = mm::memory_hotplug::MemoryBlock;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl MemoryBlock {
    /// Its sysfs `valid_zones`, from the zones' spans as they are now.
    pub fn valid_zones(&self) -> ValidZones {
        self.0.valid_zones(&zone::zones())
    }
}

/// `memory0 online  [mem 0x0000000000000000-0x0000000007ffffff] none (boot)
/// phys_index 00000000` ([`BlockLine`]).
impl fmt::Display for MemoryBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", BlockLine(&self.0, self.valid_zones()))
    }
}

/// The blocks and their state.
static BLOCKS: Mutex<MemoryBlocks> = Mutex::new(MemoryBlocks::new());

/// The kernel's memory model, as memory blocks change it.
struct Kernel;

impl HotplugBackend for Kernel {
    fn memblock_memory(&self) -> Vec<PhysRange> {
        MEMBLOCK.lock().memory.regions().iter().map(|r| PhysRange::new(r.base, r.end())).collect()
    }

    fn firmware_maps(&self) -> Option<FirmwareMaps<'_>> {
        let m = crate::mm::firmware::maps()?;
        Some(FirmwareMaps { bios: &m.bios, user: &m.user.map, in_use: &m.in_use })
    }

    fn zones(&self) -> NodeZones {
        zone::zones()
    }

    fn request_conflict(&self, start: u64, end: u64) -> Option<(u64, u64, String)> {
        crate::mm::iomem::request_conflict(start, end)
    }

    fn add_pages(&mut self, pfn: Pfn, nr: u64, zone: ZoneType) -> Result<(), SparseError> {
        let mut s = SPARSE.lock();
        s.add_pages(0, pfn, nr, PAGES_PER_SECTION, None)?;
        s.memmap_init_range(pfn, nr, zone, 0, 0);
        Ok(())
    }

    fn remove_pages(&mut self, pfn: Pfn, nr: u64) -> Result<(), SparseError> {
        SPARSE.lock().remove_pages(pfn, nr, None)
    }

    fn init_memory_mapping(&mut self, start: u64, size: u64) -> Result<(), u64> {
        physmap::map(start, size)
    }

    fn kernel_physical_mapping_remove(&mut self, start: u64, size: u64) {
        physmap::unmap(start, size);
    }

    fn memblock_add(&mut self, start: u64, size: u64) {
        MEMBLOCK.lock().memory.add(start, size);
    }

    fn memblock_remove(&mut self, start: u64, size: u64) {
        MEMBLOCK.lock().memory.remove(start, size);
    }

    fn register_memory_resource(&mut self, start: u64, size: u64) {
        if let Err(e) = crate::mm::iomem::request_region(start, start + size - 1, "System RAM") {
            log::warn!("iomem: {e}");
        }
    }

    fn release_mem_region_adjustable(&mut self, start: u64, size: u64) {
        crate::mm::iomem::release_adjustable(start, start + size - 1);
    }

    fn memmap_init_range(&mut self, pfn: Pfn, nr: u64, zone: ZoneType) {
        SPARSE.lock().memmap_init_range(pfn, nr, zone, 0, 0);
    }

    fn set_pageblock_migratetype(&mut self, pfn: Pfn, nr: u64, mt: MigrateType) {
        SPARSE.lock().set_pageblock_migratetype(pfn, nr, mt);
    }

    fn online_mem_sections(&mut self, start: Pfn, end: Pfn) {
        SPARSE.lock().set_section_flags(start, end - start, flags::ONLINE, true);
    }

    fn offline_mem_sections(&mut self, start: Pfn, end: Pfn) {
        SPARSE.lock().set_section_flags(start, end - start, flags::ONLINE, false);
    }

    fn free_range(&mut self, start: Pfn, end: Pfn) -> u64 {
        page_alloc::free_range(start, end)
    }

    /// Drains every CPU's per-CPU lists of the zone first, as Linux's
    /// `__offline_pages` does, so that no free page of the range hides
    /// on one ([`page_alloc::take_free_range`]).
    fn take_free_range(&mut self, start: Pfn, end: Pfn) -> Result<u64, BuddyError> {
        page_alloc::take_free_range(start, end)
    }

    fn move_pfn_range_to_zone(&mut self, zone: ZoneType, pfn: Pfn, nr: u64) {
        zone::move_pfn_range_to_zone(zone, pfn, nr);
    }

    fn adjust_present_page_count(&mut self, zone: ZoneType, nr: i64) {
        zone::adjust_present_page_count(zone, nr);
    }

    fn remove_pfn_range_from_zone(&mut self, zone: ZoneType, pfn: Pfn, nr: u64) {
        zone::remove_pfn_range_from_zone(zone, pfn, nr);
    }
}

/// The memory block size in bytes (0 before [`init`]).
pub fn block_size() -> u64 {
    BLOCKS.lock().block_size()
}

/// The blocks, by id.
pub fn blocks() -> Vec<MemoryBlock> {
    BLOCKS.lock().blocks().iter().copied().map(MemoryBlock).collect()
}

/// One block.
pub fn block(id: u64) -> Option<MemoryBlock> {
    BLOCKS.lock().block(id).copied().map(MemoryBlock)
}

/// Sizes blocks by the end of boot memory and lists boot memory in blocks,
/// all online (`memory_dev_init`). Call once the page allocator runs.
pub fn init() {
    let _hotplug = mem_hotplug_begin();
    let mut blocks = BLOCKS.lock();
    let boot_end = blocks.init(&mut Kernel);
    let size = blocks.block_size();
    log::info!("x86/mm: Memory block size: {}MB", size >> 20);
    log::info!(
        "memory: {} memory blocks of {} MiB (boot memory ends at {boot_end:#x})",
        blocks.blocks().len(),
        size >> 20
    );
}

/// `probe` (the sysfs file): hot-adds the block at `addr` from RAM
/// withheld at boot ([`MemoryBlocks::probe`]). The block is offline until
/// [`online`].
pub fn probe(addr: u64) -> Result<MemoryBlock, HotplugError> {
    let _hotplug = mem_hotplug_begin();
    let mut blocks = BLOCKS.lock();
    let b = blocks.probe(&mut Kernel, addr)?;
    super::changed(None);
    log::info!("memory: memory{} {} added", b.id, MemRange(b.start, b.end()));
    Ok(MemoryBlock(b))
}

/// `add_memory`: hot-adds `[start, start + size)`, one or more whole
/// blocks, offline ([`MemoryBlocks::add_memory`]). A failed add undoes all
/// it did.
pub fn add_memory(start: u64, size: u64) -> Result<Vec<MemoryBlock>, HotplugError> {
    let _hotplug = mem_hotplug_begin();
    let mut blocks = BLOCKS.lock();
    let added = blocks.add_memory(&mut Kernel, start, size)?;
    super::changed(None);
    for b in &added {
        log::info!("memory: memory{} {} added", b.id, MemRange(b.start, b.end()));
    }
    Ok(added.into_iter().map(MemoryBlock).collect())
}

/// `echo online > state`: [`online_type`] with `MMOP_ONLINE`.
pub fn online(id: u64) -> Result<MemoryBlock, HotplugError> {
    online_type(id, OnlineType::Online)
}

/// `memory_block_online` ([`MemoryBlocks::online_type`]): the block's
/// pages go to the page allocator in the zone Linux picks;
/// `online_movable` is refused (Tessera has no ZONE_MOVABLE).
pub fn online_type(id: u64, online_type: OnlineType) -> Result<MemoryBlock, HotplugError> {
    let _hotplug = mem_hotplug_begin();
    let mut blocks = BLOCKS.lock();
    let (b, freed) = blocks.online_type(&mut Kernel, id, online_type)?;
    super::changed(None);
    let zone = b.zone.map_or("none", ZoneType::name);
    log::info!(
        "memory: memory{id} online: {freed} pages to zone {zone} {}",
        MemRange(b.start, b.end())
    );
    Ok(MemoryBlock(b))
}

/// `offline_pages` ([`MemoryBlocks::offline`]): refused if the block has
/// holes, spans zones or holds a page in use (Tessera does not migrate);
/// otherwise every page leaves the page allocator.
pub fn offline(id: u64) -> Result<MemoryBlock, HotplugError> {
    let _hotplug = mem_hotplug_begin();
    let mut blocks = BLOCKS.lock();
    let (b, taken) = blocks.offline(&mut Kernel, id)?;
    super::changed(None);
    log::info!(
        "memory: memory{id} offline: {taken} pages taken back {}",
        MemRange(b.start, b.end())
    );
    Ok(MemoryBlock(b))
}

/// `remove_memory` ([`MemoryBlocks::remove`]): an offline block leaves the
/// memory model, memblock, the physical-memory map and `/proc/iomem`; an
/// online one is refused with EBUSY.
pub fn remove(id: u64) -> Result<MemoryBlock, HotplugError> {
    let _hotplug = mem_hotplug_begin();
    let mut blocks = BLOCKS.lock();
    let b = blocks.remove(&mut Kernel, id)?;
    super::changed(None);
    log::info!("memory: memory{id} {} removed", MemRange(b.start, b.end()));
    Ok(MemoryBlock(b))
}

// TEMPORARY until the DIMM path lands.
pub fn add_memory_dimm(
    start: u64,
    size: u64,
    _dimm: &str,
) -> Result<Vec<MemoryBlock>, HotplugError> {
    add_memory(start, size)
}
pub fn offline_and_remove_memory(start: u64, size: u64) -> Result<Vec<MemoryBlock>, HotplugError> {
    let _ = (start, size);
    Err(HotplugError::NoBlock { id: start / block_size().max(1) })
}

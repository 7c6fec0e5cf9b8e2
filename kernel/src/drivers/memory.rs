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

use core::sync::atomic::{AtomicU8, Ordering};

use mm::addr::PhysRange;
use mm::buddy::BuddyError;
use mm::e820::MemRange;
pub use mm::memory_block::{BlockState, OnlineType};
use mm::memory_block::{DimmName, ValidZones, memmap_pages};
pub use mm::memory_hotplug::HotplugError;
use mm::memory_hotplug::{BlockLine, FirmwareMaps, HotplugBackend, MemoryBlocks, mhp_altmap};
use mm::page::{Pfn, ZoneType, pages_to_bytes};
use mm::sparse::{MigrateType, PAGES_PER_SECTION, SparseError, flags};
use mm::zone::NodeZones;
pub use options::OnlinePolicy;
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

    /// With `memmap_on_memory`, the memmap comes from the range's first
    /// pages (`mhp_altmap`: `base_pfn` the range, `free` its memmap's
    /// pages), mapped into the vmemmap by one 2 MiB page per section.
    fn add_pages(
        &mut self,
        pfn: Pfn,
        nr: u64,
        zone: ZoneType,
        memmap_on_memory: bool,
    ) -> Result<(), SparseError> {
        let mut altmap = memmap_on_memory.then(|| mhp_altmap(pfn, nr, 0));
        let mut s = SPARSE.lock();
        s.add_pages(0, pfn, nr, PAGES_PER_SECTION, altmap.as_mut())?;
        s.memmap_init_range(pfn, nr, zone, 0, 0);
        Ok(())
    }

    fn remove_pages(
        &mut self,
        pfn: Pfn,
        nr: u64,
        memmap_on_memory: bool,
    ) -> Result<(), SparseError> {
        let mut altmap =
            memmap_on_memory.then(|| mhp_altmap(pfn, nr, memmap_pages(pages_to_bytes(nr))));
        SPARSE.lock().remove_pages(pfn, nr, altmap.as_mut())
    }

    fn do_migrate_range(&mut self, start: Pfn, end: Pfn) -> Result<u64, Pfn> {
        let moved = crate::mm::migrate::do_migrate_range(start, end)?;
        if moved > 0 {
            log::info!("memory: migrated {moved} movable pages out of {}", pfn_range(start, end));
        }
        Ok(moved)
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

/// The altmap of a block whose memmap is on itself (`mhp_altmap`), with
/// `alloc` of its pages in use.
fn pfn_range(start: Pfn, end: Pfn) -> MemRange {
    MemRange(mm::page::pfn_phys(start), mm::page::pfn_phys(end))
}

/// `auto_online_blocks` (`mhp_default_online_type`): what happens to a
/// block when it is hot-added, from `memhp_default_state=` at [`init`].
static AUTO_ONLINE: AtomicU8 = AtomicU8::new(0);

const POLICIES: [OnlinePolicy; 4] = [
    OnlinePolicy::Offline,
    OnlinePolicy::Online,
    OnlinePolicy::OnlineKernel,
    OnlinePolicy::OnlineMovable,
];

/// sysfs `auto_online_blocks`: how hot-added blocks are onlined.
pub fn auto_online_blocks() -> OnlinePolicy {
    POLICIES[usize::from(AUTO_ONLINE.load(Ordering::Relaxed)) % POLICIES.len()]
}

/// Writes sysfs `auto_online_blocks` (as Linux lets root change it at run
/// time).
pub fn set_auto_online_blocks(policy: OnlinePolicy) {
    let i = POLICIES.iter().position(|&p| p == policy).unwrap_or(0);
    AUTO_ONLINE.store(i as u8, Ordering::Relaxed);
}

/// `memory_hotplug.memmap_on_memory` (read-only after boot, as Linux's).
pub fn memmap_on_memory() -> bool {
    crate::boot::options().memmap_on_memory
}

/// The online type of a policy (`None`: leave offline).
fn online_type_of(policy: OnlinePolicy) -> Option<OnlineType> {
    match policy {
        OnlinePolicy::Offline => None,
        OnlinePolicy::Online => Some(OnlineType::Online),
        OnlinePolicy::OnlineKernel => Some(OnlineType::OnlineKernel),
        OnlinePolicy::OnlineMovable => Some(OnlineType::OnlineMovable),
    }
}

/// `add_memory_resource`'s last step: unless `auto_online_blocks` is
/// `offline`, each new block is onlined (`online_memory_block`); a block
/// that fails stays offline and the failure is logged (Linux ignores it).
/// Returns the blocks as they are now.
fn auto_online(
    blocks: &mut MemoryBlocks,
    added: Vec<mm::memory_hotplug::MemoryBlock>,
) -> Vec<MemoryBlock> {
    let Some(t) = online_type_of(auto_online_blocks()) else {
        return added.into_iter().map(MemoryBlock).collect();
    };
    added
        .into_iter()
        .map(|b| match blocks.online_type(&mut Kernel, b.id, t) {
            Ok((on, freed)) => {
                log_online(&on, freed);
                MemoryBlock(on)
            }
            Err(e) => {
                // Linux: pr_debug("online_pages [mem %#010llx-%#010llx] failed").
                log::warn!(
                    "online_pages [mem {:#010x}-{:#010x}] failed: memory{} stays offline: {e}",
                    b.start,
                    b.end() - 1,
                    b.id
                );
                MemoryBlock(b)
            }
        })
        .collect()
}

fn log_online(b: &mm::memory_hotplug::MemoryBlock, freed: u64) {
    let zone = b.zone.map_or("none", ZoneType::name);
    log::info!(
        "memory: memory{} online: {freed} pages to zone {zone} {}",
        b.id,
        MemRange(b.start, b.end())
    );
}

fn log_added(b: &mm::memory_hotplug::MemoryBlock) {
    let mut extra = alloc::string::String::new();
    if let Some(d) = b.dimm {
        extra = alloc::format!(" (dimm {d})");
    }
    if b.memmap_on_memory() {
        extra.push_str(" memmap on memory");
    }
    log::info!("memory: memory{} {} added{extra}", b.id, MemRange(b.start, b.end()));
}

/// Linux's `pr_debug("memory offlining [mem %#010llx-%#010llx] failed due
/// to %s")`, logged at info level so that it shows by default.
fn log_offline_failed(b: Option<MemoryBlock>, e: &HotplugError) {
    let Some(b) = b else { return };
    let reason = match e {
        HotplugError::Busy { .. } => "failure to isolate range",
        _ => return,
    };
    log::info!(
        "memory offlining [mem {:#010x}-{:#010x}] failed due to {reason}",
        b.start,
        b.end() - 1
    );
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
    set_auto_online_blocks(crate::boot::options().memhp_default_state);
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
/// withheld at boot ([`MemoryBlocks::probe`]), then onlines it as
/// [`auto_online_blocks`] says (as Linux's `probe_store`, through
/// `__add_memory`, does; offline by default). Like Linux's, probe never
/// puts the memmap on the block (`MHP_NONE`).
pub fn probe(addr: u64) -> Result<MemoryBlock, HotplugError> {
    let _hotplug = mem_hotplug_begin();
    let mut blocks = BLOCKS.lock();
    let b = blocks.probe(&mut Kernel, addr)?;
    log_added(&b);
    let b = auto_online(&mut blocks, alloc::vec![b]).remove(0);
    super::changed(None);
    Ok(b)
}

/// `add_memory`: hot-adds `[start, start + size)`, one or more whole
/// blocks of RAM withheld at boot ([`MemoryBlocks::add_memory`]), onlined
/// as [`auto_online_blocks`] says. A failed add undoes all it did.
pub fn add_memory(start: u64, size: u64) -> Result<Vec<MemoryBlock>, HotplugError> {
    let _hotplug = mem_hotplug_begin();
    let mut blocks = BLOCKS.lock();
    let added = blocks.add_memory(&mut Kernel, start, size)?;
    added.iter().for_each(log_added);
    let added = auto_online(&mut blocks, added);
    super::changed(None);
    Ok(added)
}

/// Linux's `__add_memory` from `acpi_memory_enable_device`:
/// [start, start+size) of a DIMM, whole blocks; Linux's checks (E2BIG,
/// EEXIST on an iomem conflict such as overlapping System RAM, EINVAL
/// unaligned) but not the `mem=` withheld check; memmap on the block when
/// `memory_hotplug.memmap_on_memory` is on (and, as in Linux 6.1, the
/// DIMM is one block); then each block onlined per `memhp_default_state`
/// ([`auto_online_blocks`]; an online failure leaves the block offline
/// and is logged). Every block remembers `dimm` (e.g. "MP00"; 1 to 8
/// printable characters, else EINVAL).
pub fn add_memory_dimm(
    start: u64,
    size: u64,
    dimm: &str,
) -> Result<Vec<MemoryBlock>, HotplugError> {
    let name = DimmName::new(dimm).ok_or(HotplugError::BadDimm)?;
    let _hotplug = mem_hotplug_begin();
    let mut blocks = BLOCKS.lock();
    let added = blocks.add_memory_dimm(&mut Kernel, start, size, name, memmap_on_memory())?;
    added.iter().for_each(log_added);
    let added = auto_online(&mut blocks, added);
    super::changed(None);
    Ok(added)
}

/// The eject path (Linux's `acpi_scan_try_to_offline` +
/// `acpi_memory_device_remove`, i.e. `offline_and_remove_memory`):
/// offline every online block of `[start, start + size)` (migrating
/// movable pages), and if any refuses, online again the ones this call
/// offlined and return the error (nothing changed); then remove all the
/// blocks. Returns the removed blocks.
pub fn offline_and_remove_memory(start: u64, size: u64) -> Result<Vec<MemoryBlock>, HotplugError> {
    let _hotplug = mem_hotplug_begin();
    let mut blocks = BLOCKS.lock();
    let before: Vec<_> = blocks.blocks().to_vec();
    let r = blocks.offline_and_remove_memory(&mut Kernel, start, size);
    super::changed(None);
    match r {
        Ok((removed, offlined)) => {
            for (id, taken) in offlined {
                if let Some(b) = removed.iter().find(|b| b.id == id) {
                    log::info!(
                        "memory: memory{id} offline: {taken} pages taken back {}",
                        MemRange(b.start, b.end())
                    );
                }
            }
            for b in &removed {
                log::info!("memory: memory{} {} removed", b.id, MemRange(b.start, b.end()));
            }
            Ok(removed.into_iter().map(MemoryBlock).collect())
        }
        Err(e) => {
            let failed = match e {
                HotplugError::Busy { id, .. } => before.iter().find(|b| b.id == id),
                _ => None,
            };
            log_offline_failed(failed.copied().map(MemoryBlock), &e);
            Err(e)
        }
    }
}

/// `echo online > state`: [`online_type`] with `MMOP_ONLINE`.
pub fn online(id: u64) -> Result<MemoryBlock, HotplugError> {
    online_type(id, OnlineType::Online)
}

/// `memory_block_online` ([`MemoryBlocks::online_type`]): the block's
/// pages go to the page allocator in the zone Linux picks
/// (`online_movable`: ZONE_MOVABLE, where only movable allocations go).
pub fn online_type(id: u64, online_type: OnlineType) -> Result<MemoryBlock, HotplugError> {
    let _hotplug = mem_hotplug_begin();
    let mut blocks = BLOCKS.lock();
    let (b, freed) = blocks.online_type(&mut Kernel, id, online_type)?;
    super::changed(None);
    log_online(&b, freed);
    Ok(MemoryBlock(b))
}

/// `offline_pages` ([`MemoryBlocks::offline`]): refused if the block has
/// holes, spans zones or holds a page in use that cannot be migrated
/// (EBUSY; the block stays online); movable pages are migrated out
/// ([`crate::mm::migrate`]), then every page leaves the page allocator.
pub fn offline(id: u64) -> Result<MemoryBlock, HotplugError> {
    let _hotplug = mem_hotplug_begin();
    let mut blocks = BLOCKS.lock();
    let r = blocks.offline(&mut Kernel, id);
    if let Err(e) = &r {
        log_offline_failed(blocks.block(id).copied().map(MemoryBlock), e);
    }
    let (b, taken) = r?;
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

//! System RAM hotplug in memory blocks (Linux's `mm/memory_hotplug.c` and
//! `drivers/base/memory.c`): RAM withheld at boot (`mem=`) is added back a
//! block at a time (`memory probe`), onlined into the page allocator,
//! offlined (its free pages taken back) and removed again. Boot memory is
//! listed in blocks too, all online.
//!
//! A block's life: `(absent) --add--> offline --online--> online
//! --offline--> offline --remove--> (absent)`. The decisions (which ranges
//! may be added, in which order Linux refuses, which zone a block goes to,
//! `valid_zones`) are `tessera-mm`'s [`mm::memory_block`]; this is the
//! driver that applies them to the memory model.

use alloc::vec::Vec;
use core::fmt;

use mm::addr::PhysRange;
use mm::buddy::BuddyError;
use mm::e820::MemRange;
use mm::memory_block::{
    self, AddError, OnlineZone, PhysIndex, ProbeError, StillOnline, ValidZones, ZoneSpans,
};
pub use mm::memory_block::{BlockState, OnlineType};
use mm::page::{Pfn, ZoneType, phys_pfn};
use mm::sparse::{
    MigrateType, PAGEBLOCK_NR_PAGES, PAGES_PER_SECTION, SparseError, flags, pfn_to_section_nr,
    section_nr_to_pfn,
};
use spin::Mutex;

use crate::mm::memblock::MEMBLOCK;
use crate::mm::physmap;
use crate::mm::sparse::SPARSE;

/// One memory block (`memoryN`): the RAM it holds is `[start, start +
/// size)`, the whole block for boot memory and probed blocks, or the part
/// given to [`add_memory`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryBlock {
    pub id: u64,
    pub start: u64,
    pub size: u64,
    pub state: BlockState,
    /// Present since boot.
    pub boot: bool,
    /// The zone of an online block (`mem->zone`): `None` while offline, and
    /// for a boot block that spans zones.
    pub zone: Option<ZoneType>,
}

impl MemoryBlock {
    pub fn end(&self) -> u64 {
        self.start + self.size
    }

    fn pfns(&self) -> (Pfn, Pfn) {
        (phys_pfn(self.start), phys_pfn(self.end()))
    }

    /// The zones its first and last page's addresses fall in.
    fn zones(&self) -> (ZoneType, ZoneType) {
        let (first, end) = self.pfns();
        (ZoneType::for_pfn(first), ZoneType::for_pfn(end - 1))
    }

    /// Its sysfs `valid_zones`, from the zones' spans as they are now.
    pub fn valid_zones(&self) -> ValidZones {
        let (pfn, end) = self.pfns();
        memory_block::valid_zones(self.state, self.zone, &zone_spans(), pfn, end - pfn)
    }

    /// Its one zone (`mem->zone`); offline refuses a block without one.
    fn zone(&self) -> Result<ZoneType, HotplugError> {
        self.zone.ok_or(HotplugError::SpansZones { id: self.id, zones: self.zones() })
    }
}

/// `memory0 online  [mem 0x0000000000000000-0x0000000007ffffff] none (boot)
/// phys_index 00000000`: the block's sysfs `state`, its range, its
/// `valid_zones` (the zone an online block is in, "none" when it spans
/// zones; the zones an offline one may go to, default first) and
/// `phys_index`, spelled as Linux's sysfs spells them.
impl fmt::Display for MemoryBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let range = MemRange(self.start, self.end());
        write!(f, "memory{} {:<7} {range} {}", self.id, self.state.name(), self.valid_zones())?;
        if self.boot {
            write!(f, " (boot)")?;
        }
        write!(f, " phys_index {}", PhysIndex(self.id))
    }
}

/// Why a hotplug operation was refused. A refused operation changes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HotplugError {
    /// No such block.
    NoBlock { id: u64 },
    /// The block exists already.
    Exist { id: u64 },
    /// Linux's `add_memory` refuses the range (E2BIG, EEXIST, EINVAL).
    Add(AddError),
    /// Tessera refuses the range: not withheld RAM, or in use.
    Probe(ProbeError),
    /// `remove_memory` of an online block (EBUSY).
    StillOnline(StillOnline),
    /// `online_movable`: Tessera has no ZONE_MOVABLE.
    NoMovable { id: u64 },
    /// The block is not in the state the operation needs.
    State { id: u64, state: BlockState },
    /// `online_pages` needs a pageblock-aligned start and a section-aligned
    /// end.
    Unaligned { id: u64 },
    /// Some of the block is not RAM.
    Holes { id: u64 },
    /// The block spans two zones.
    SpansZones { id: u64, zones: (ZoneType, ZoneType) },
    /// A page of the block is in use.
    Busy { id: u64, pfn: Pfn },
    /// The memory model refused or ran out of memory.
    Sparse(SparseError),
    /// The physical-memory map could not be extended.
    Map { addr: u64 },
    /// The page allocator found its lists inconsistent.
    Buddy(BuddyError),
}

impl HotplugError {
    /// The Linux errno name.
    pub fn errno(&self) -> &'static str {
        match self {
            Self::NoBlock { .. } => "ENODEV",
            Self::Exist { .. } => "EEXIST",
            Self::Add(e) => e.errno(),
            Self::Probe(e) => e.errno(),
            Self::StillOnline(_) => "EBUSY",
            Self::NoMovable { .. } => "EOPNOTSUPP",
            Self::Busy { .. } => "EBUSY",
            Self::Sparse(e) => e.errno(),
            Self::Map { .. } => "ENOMEM",
            Self::Buddy(_) => "EFAULT",
            _ => "EINVAL",
        }
    }
}

impl fmt::Display for HotplugError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.errno();
        match *self {
            Self::NoBlock { id } => write!(f, "{e}: no memory{id}"),
            Self::Exist { id } => write!(f, "{e}: memory{id} exists already"),
            Self::Add(ref a) => write!(f, "{a}"),
            Self::Probe(p) => write!(f, "{p}"),
            Self::StillOnline(s) => write!(f, "{s}"),
            Self::NoMovable { id } => {
                write!(f, "{e}: memory{id}: Tessera has no ZONE_MOVABLE; online_kernel or online")
            }
            Self::State { id, state } => write!(f, "{e}: memory{id} is {}", state.name()),
            Self::Unaligned { id } => write!(
                f,
                "{e}: memory{id}: online needs a pageblock-aligned start and a section-aligned end"
            ),
            Self::Holes { id } => write!(f, "{e}: memory{id} has holes (not all of it is RAM)"),
            Self::SpansZones { id, zones: (a, b) } => {
                write!(f, "{e}: memory{id} spans zones {a} and {b}")
            }
            Self::Busy { id, pfn } => write!(
                f,
                "{e}: memory{id}: pfn {pfn:#x} is in use (allocated or reserved); nothing taken"
            ),
            Self::Sparse(s) => write!(f, "{s}"),
            Self::Map { addr } => write!(f, "{e}: cannot map {addr:#x} in the kernel"),
            Self::Buddy(b) => write!(f, "{e}: {b}"),
        }
    }
}

struct Blocks {
    /// Bytes per block (`memory_block_size_bytes`).
    size: u64,
    /// By id.
    list: Vec<MemoryBlock>,
}

static BLOCKS: Mutex<Blocks> = Mutex::new(Blocks { size: 0, list: Vec::new() });

/// The memory block size in bytes (0 before [`init`]).
pub fn block_size() -> u64 {
    BLOCKS.lock().size
}

/// Node 0's zone spans as `zone_intersects` reads them.
fn zone_spans() -> ZoneSpans {
    let span = |z| {
        let s = crate::mm::zone::span(z);
        (s.zone_start_pfn, s.zone_end_pfn())
    };
    ZoneSpans {
        kernel: [span(ZoneType::Dma), span(ZoneType::Dma32), span(ZoneType::Normal)],
        movable: (0, 0),
    }
}

/// The blocks, by id.
pub fn blocks() -> Vec<MemoryBlock> {
    BLOCKS.lock().list.clone()
}

/// One block.
pub fn block(id: u64) -> Option<MemoryBlock> {
    BLOCKS.lock().list.iter().find(|b| b.id == id).copied()
}

/// Sizes blocks by the end of boot memory and lists boot memory in blocks,
/// all online (`memory_dev_init`). Call once the page allocator runs.
pub fn init() {
    let ram: Vec<(u64, u64)> =
        MEMBLOCK.lock().memory.regions().iter().map(|r| (r.base, r.end())).collect();
    let boot_end = ram.last().map_or(0, |r| r.1);
    let size = memory_block::memory_block_size(boot_end);
    // `early_node_zone_for_memory_block` looks at populated zones only.
    let mut spans = zone_spans();
    for (i, z) in [ZoneType::Dma, ZoneType::Dma32, ZoneType::Normal].into_iter().enumerate() {
        if !crate::mm::zone::span(z).populated() {
            spans.kernel[i] = (0, 0);
        }
    }
    let mut list: Vec<MemoryBlock> = Vec::new();
    for (start, end) in ram {
        for id in start / size..end.div_ceil(size) {
            if list.last().is_none_or(|b| b.id < id) {
                let start = id * size;
                let zone =
                    memory_block::early_zone_for_block(&spans, phys_pfn(start), phys_pfn(size));
                list.push(MemoryBlock {
                    id,
                    start,
                    size,
                    state: BlockState::Online,
                    boot: true,
                    zone,
                });
            }
        }
    }
    log::info!("x86/mm: Memory block size: {}MB", size >> 20);
    log::info!(
        "memory: {} memory blocks of {} MiB (boot memory ends at {boot_end:#x})",
        list.len(),
        size >> 20
    );
    *BLOCKS.lock() = Blocks { size, list };
}

/// `probe` (the sysfs file): hot-adds the block at `addr` from RAM
/// withheld at boot. An address that is not block-aligned is refused
/// first (EINVAL), then as [`add_memory`]. The block is offline until
/// [`online`].
pub fn probe(addr: u64) -> Result<MemoryBlock, HotplugError> {
    let size = block_size();
    if !addr.is_multiple_of(size) {
        return Err(HotplugError::Probe(ProbeError::Misaligned { start: addr, size, align: size }));
    }
    Ok(add_memory(addr, size)?[0])
}

/// `add_memory`: hot-adds `[start, start + size)`, one or more whole
/// blocks, offline. Linux's refusals come first and in its order
/// ([`memory_block::check_add_memory`]: E2BIG beyond MAX_PHYSMEM_BITS,
/// EEXIST when the "System RAM" resource conflicts in `/proc/iomem`,
/// EINVAL when not block-aligned); then Tessera's own: only RAM the
/// firmware reported and the kernel set aside (`mem=`) may be added, and
/// none of the bootloader's pieces. A failed add undoes all it did.
pub fn add_memory(start: u64, size: u64) -> Result<Vec<MemoryBlock>, HotplugError> {
    let bs = block_size();
    let iomem = crate::mm::iomem::tree();
    memory_block::check_add_memory(&iomem, start, size, bs).map_err(HotplugError::Add)?;
    let maps = crate::mm::firmware::maps().ok_or(HotplugError::Map { addr: start })?;
    let present: Vec<PhysRange> =
        MEMBLOCK.lock().memory.regions().iter().map(|r| PhysRange::new(r.base, r.end())).collect();
    memory_block::check_withheld(
        &maps.bios,
        &maps.user.map,
        &present,
        &maps.in_use,
        start,
        size,
        bs,
    )
    .map_err(HotplugError::Probe)?;
    let ids = start / bs..(start + size) / bs;
    if let Some(id) = ids.clone().find(|&id| block(id).is_some()) {
        return Err(HotplugError::Exist { id });
    }
    let (pfn, nr) = (phys_pfn(start), phys_pfn(size));
    {
        let mut s = SPARSE.lock();
        s.add_pages(0, pfn, nr, PAGES_PER_SECTION, None).map_err(HotplugError::Sparse)?;
        // Offline pages: initialized and reserved; online gives them their
        // zone.
        s.memmap_init_range(pfn, nr, ZoneType::for_pfn(pfn), 0, 0);
    }
    if let Err(addr) = physmap::map(start, size) {
        physmap::unmap(start, size);
        SPARSE.lock().remove_pages(pfn, nr, None).expect("added above");
        return Err(HotplugError::Map { addr });
    }
    MEMBLOCK.lock().memory.add(start, size);
    let mut blocks = BLOCKS.lock();
    if let Err(e) = crate::mm::iomem::request_region(start, start + size - 1, "System RAM") {
        log::warn!("iomem: {e}");
    }
    let mut added = Vec::new();
    for id in ids {
        let b = MemoryBlock {
            id,
            start: id * bs,
            size: bs,
            state: BlockState::Offline,
            boot: false,
            zone: None,
        };
        let at = blocks.list.partition_point(|x| x.id < id);
        blocks.list.insert(at, b);
        log::info!("memory: memory{id} {} added", MemRange(b.start, b.end()));
        added.push(b);
    }
    Ok(added)
}

/// Block `id`, if it is in state `want`.
fn block_in_state(id: u64, want: BlockState) -> Result<MemoryBlock, HotplugError> {
    let b = block(id).ok_or(HotplugError::NoBlock { id })?;
    if b.state != want {
        return Err(HotplugError::State { id, state: b.state });
    }
    Ok(b)
}

fn set_state(id: u64, state: BlockState, zone: Option<ZoneType>) -> MemoryBlock {
    let mut blocks = BLOCKS.lock();
    let b = blocks.list.iter_mut().find(|b| b.id == id).expect("checked by the caller");
    (b.state, b.zone) = (state, zone);
    *b
}

/// `echo online > state`: [`online_type`] with `MMOP_ONLINE`.
pub fn online(id: u64) -> Result<MemoryBlock, HotplugError> {
    online_type(id, OnlineType::Online)
}

/// `memory_block_online` and `online_pages`: the zone comes from
/// `zone_for_pfn_range` (the kernel zone whose span the block meets, else
/// Normal, whatever the address); the block's pages are initialized for
/// it with every pageblock MIGRATE_MOVABLE (`move_pfn_range_to_zone`,
/// `undo_isolate_page_range`), the sections are marked online, the pages
/// go to the page allocator and the zone's span grows to take them in.
/// `online_movable` is refused: Tessera has no ZONE_MOVABLE.
pub fn online_type(id: u64, online_type: OnlineType) -> Result<MemoryBlock, HotplugError> {
    let b = block_in_state(id, BlockState::Offline)?;
    let (pfn, end) = b.pfns();
    let zone = match memory_block::zone_for_pfn_range(online_type, &zone_spans(), pfn, end - pfn) {
        OnlineZone::Kernel(z) => z,
        OnlineZone::Movable => return Err(HotplugError::NoMovable { id }),
    };
    if !pfn.is_multiple_of(PAGEBLOCK_NR_PAGES) || !end.is_multiple_of(PAGES_PER_SECTION) {
        return Err(HotplugError::Unaligned { id });
    }
    let freed = {
        let mut s = SPARSE.lock();
        s.memmap_init_range(pfn, end - pfn, zone, 0, 0);
        s.set_pageblock_migratetype(pfn, end - pfn, MigrateType::Movable);
        s.set_section_flags(pfn, end - pfn, flags::ONLINE, true);
        let backend = &mut s.backend;
        backend.buddy.free_range(&mut backend.vmemmap, pfn, end)
    };
    log::info!(
        "memory: memory{id} online: {freed} pages to zone {zone} {}",
        MemRange(b.start, b.end())
    );
    crate::mm::zone::move_pfn_range_to_zone(zone, pfn, end - pfn);
    crate::mm::zone::adjust_present_page_count(zone, (end - pfn) as i64);
    Ok(set_state(id, BlockState::Online, Some(zone)))
}

/// `offline_pages`: refused if the block has holes, spans zones (it has no
/// `mem->zone`) or holds a page in use (Tessera does not migrate);
/// otherwise every page leaves the page allocator, its pageblocks stay
/// MIGRATE_ISOLATE (`start_isolate_page_range`), the zone span shrinks, and
/// sections no other online block shares lose their online mark. Unlike
/// Linux, a refused offline leaves the pageblocks as they were.
pub fn offline(id: u64) -> Result<MemoryBlock, HotplugError> {
    let b = block_in_state(id, BlockState::Online)?;
    let covered: u64 = MEMBLOCK
        .lock()
        .memory
        .regions()
        .iter()
        .map(|r| r.end().min(b.end()).saturating_sub(r.base.max(b.start)))
        .sum();
    if covered != b.size {
        return Err(HotplugError::Holes { id });
    }
    let zone = b.zone()?;
    let (pfn, end) = b.pfns();
    let others: Vec<MemoryBlock> =
        blocks().into_iter().filter(|o| o.id != id && o.state == BlockState::Online).collect();
    let taken = {
        let mut s = SPARSE.lock();
        let backend = &mut s.backend;
        let taken =
            backend.buddy.take_free_range(&mut backend.vmemmap, pfn, end).map_err(|e| match e {
                BuddyError::Busy { pfn } => HotplugError::Busy { id, pfn },
                other => HotplugError::Buddy(other),
            })?;
        for nr in pfn_to_section_nr(pfn)..=pfn_to_section_nr(end - 1) {
            let shared = others.iter().any(|o| {
                let (a, z) = o.pfns();
                pfn_to_section_nr(a) <= nr && nr <= pfn_to_section_nr(z - 1)
            });
            if !shared {
                s.set_section_flags(section_nr_to_pfn(nr), 1, flags::ONLINE, false);
            }
        }
        s.set_pageblock_migratetype(pfn, end - pfn, MigrateType::Isolate);
        taken
    };
    log::info!(
        "memory: memory{id} offline: {taken} pages taken back {}",
        MemRange(b.start, b.end())
    );
    let b = set_state(id, BlockState::Offline, None);
    crate::mm::zone::adjust_present_page_count(zone, -((end - pfn) as i64));
    let online: Vec<(Pfn, Pfn)> = blocks()
        .iter()
        .filter(|b| b.state == BlockState::Online)
        .map(|b| (phys_pfn(b.start), phys_pfn(b.end())))
        .collect();
    crate::mm::zone::remove_pfn_range_from_zone(zone, pfn, end - pfn, &online);
    Ok(b)
}

/// `remove_memory`: an offline block leaves the memory model (its
/// sub-sections deactivated, its memmap freed unless the section keeps
/// other memory), memblock, the physical-memory map and `/proc/iomem`
/// (`release_mem_region_adjustable`). An online block is refused with
/// EBUSY (`check_memblock_offlined_cb`).
pub fn remove(id: u64) -> Result<MemoryBlock, HotplugError> {
    let b = block(id).ok_or(HotplugError::NoBlock { id })?;
    memory_block::check_memblock_offlined(b.state, b.start, b.size)
        .map_err(HotplugError::StillOnline)?;
    let (pfn, end) = b.pfns();
    SPARSE.lock().remove_pages(pfn, end - pfn, None).map_err(HotplugError::Sparse)?;
    MEMBLOCK.lock().memory.remove(b.start, b.size);
    physmap::unmap(b.start, b.size);
    let mut blocks = BLOCKS.lock();
    blocks.list.retain(|x| x.id != id);
    crate::mm::iomem::release_adjustable(b.start, b.end() - 1);
    drop(blocks);
    log::info!("memory: memory{id} {} removed", MemRange(b.start, b.end()));
    Ok(b)
}

//! System RAM hotplug in memory blocks (Linux's `mm/memory_hotplug.c` and
//! `drivers/base/memory.c`): RAM withheld at boot (`mem=`) is added back a
//! block at a time (`memory probe`), onlined into the page allocator,
//! offlined (its free pages taken back) and removed again. Boot memory is
//! listed in blocks too, all online.
//!
//! A block's life: `(absent) --add--> offline --online--> online
//! --offline--> offline --remove--> (absent)`.

use alloc::vec::Vec;
use core::fmt;

use mm::buddy::BuddyError;
use mm::e820::MemRange;
use mm::memory_block::{self, ProbeError, SUBSECTION_SIZE};
use mm::page::{Pfn, ZoneType, phys_pfn};
use mm::sparse::{
    PAGEBLOCK_NR_PAGES, PAGES_PER_SECTION, PAGES_PER_SUBSECTION, SparseError, flags,
    pfn_to_section_nr, section_nr_to_pfn,
};
use spin::Mutex;

use crate::mm::memblock::MEMBLOCK;
use crate::mm::physmap;
use crate::mm::sparse::SPARSE;

/// A block's state (its sysfs `state` file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockState {
    Online,
    Offline,
}

impl BlockState {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::Offline => "offline",
        }
    }
}

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
}

impl MemoryBlock {
    pub fn end(&self) -> u64 {
        self.start + self.size
    }

    fn pfns(&self) -> (Pfn, Pfn) {
        (phys_pfn(self.start), phys_pfn(self.end()))
    }

    /// The zones of its first and last page.
    fn zones(&self) -> (ZoneType, ZoneType) {
        let (first, end) = self.pfns();
        (ZoneType::for_pfn(first), ZoneType::for_pfn(end - 1))
    }

    /// Its one zone; online and offline refuse a block spanning two.
    fn zone(&self) -> Result<ZoneType, HotplugError> {
        match self.zones() {
            (a, b) if a == b => Ok(a),
            zones => Err(HotplugError::SpansZones { id: self.id, zones }),
        }
    }
}

impl fmt::Display for MemoryBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (first, last) = self.zones();
        write!(
            f,
            "memory{} {:<7} {} {}",
            self.id,
            self.state.name(),
            MemRange(self.start, self.end()),
            first
        )?;
        if last != first {
            write!(f, " {last}")?;
        }
        if self.boot {
            write!(f, " (boot)")?;
        }
        Ok(())
    }
}

/// Why a hotplug operation was refused. A refused operation changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HotplugError {
    /// No such block.
    NoBlock { id: u64 },
    /// The block exists already.
    Exist { id: u64 },
    /// The range may not be added (alignment, not withheld RAM, in use).
    Probe(ProbeError),
    /// The range is not inside one block.
    Crosses { start: u64, size: u64 },
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
            Self::Probe(e) => e.errno(),
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
            Self::Probe(p) => write!(f, "{p}"),
            Self::Crosses { start, size } => write!(
                f,
                "{e}: {} crosses a memory block boundary",
                MemRange(start, start.saturating_add(size))
            ),
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
    let mut list: Vec<MemoryBlock> = Vec::new();
    for (start, end) in ram {
        for id in start / size..end.div_ceil(size) {
            if list.last().is_none_or(|b| b.id < id) {
                let start = id * size;
                list.push(MemoryBlock { id, start, size, state: BlockState::Online, boot: true });
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

/// `probe`: hot-adds the whole block at `addr` (block-aligned) from RAM
/// withheld at boot. The block is offline until [`online`].
pub fn probe(addr: u64) -> Result<MemoryBlock, HotplugError> {
    let size = block_size();
    add(addr, size, size)
}

/// `add_memory` for part of a block: `[start, start + size)`, in whole
/// sub-sections, inside one block that does not exist yet. Such a block
/// may share its section with persistent memory.
pub fn add_memory(start: u64, size: u64) -> Result<MemoryBlock, HotplugError> {
    add(start, size, SUBSECTION_SIZE)
}

fn add(start: u64, size: u64, align: u64) -> Result<MemoryBlock, HotplugError> {
    let bs = block_size();
    let maps = crate::mm::firmware::maps().ok_or(HotplugError::Map { addr: start })?;
    let present: Vec<(u64, u64)> =
        MEMBLOCK.lock().memory.regions().iter().map(|r| (r.base, r.end())).collect();
    memory_block::check_withheld(
        &maps.bios,
        &maps.user.map,
        &present,
        &maps.in_use,
        start,
        size,
        align,
    )
    .map_err(HotplugError::Probe)?;
    let id = start / bs;
    if (start + size - 1) / bs != id {
        return Err(HotplugError::Crosses { start, size });
    }
    if block(id).is_some() {
        return Err(HotplugError::Exist { id });
    }
    let (pfn, nr) = (phys_pfn(start), phys_pfn(size));
    let zone = ZoneType::for_pfn(pfn);
    {
        let mut s = SPARSE.lock();
        s.add_pages(0, pfn, nr, PAGES_PER_SUBSECTION, None).map_err(HotplugError::Sparse)?;
        // Offline pages: initialized, reserved, of the zone they will join.
        s.memmap_init_range(pfn, nr, zone, 0, 0);
    }
    if let Err(addr) = physmap::map(start, size) {
        physmap::unmap(start, size);
        SPARSE.lock().remove_pages(pfn, nr, None).expect("added above");
        return Err(HotplugError::Map { addr });
    }
    MEMBLOCK.lock().memory.add(start, size);
    let b = MemoryBlock { id, start, size, state: BlockState::Offline, boot: false };
    let mut blocks = BLOCKS.lock();
    let at = blocks.list.partition_point(|x| x.id < id);
    blocks.list.insert(at, b);
    log::info!("memory: memory{id} {} added", MemRange(start, start + size));
    Ok(b)
}

/// Block `id`, if it is in state `want`.
fn block_in_state(id: u64, want: BlockState) -> Result<MemoryBlock, HotplugError> {
    let b = block(id).ok_or(HotplugError::NoBlock { id })?;
    if b.state != want {
        return Err(HotplugError::State { id, state: b.state });
    }
    Ok(b)
}

fn set_state(id: u64, state: BlockState) -> MemoryBlock {
    let mut blocks = BLOCKS.lock();
    let b = blocks.list.iter_mut().find(|b| b.id == id).expect("checked by the caller");
    b.state = state;
    *b
}

/// `online_pages`: the block's pages join their zone (DMA32 below 4 GiB,
/// Normal above), the sections are marked online, and the zone's span
/// grows to take them in.
pub fn online(id: u64) -> Result<MemoryBlock, HotplugError> {
    let b = block_in_state(id, BlockState::Offline)?;
    let (pfn, end) = b.pfns();
    if !pfn.is_multiple_of(PAGEBLOCK_NR_PAGES) || !end.is_multiple_of(PAGES_PER_SECTION) {
        return Err(HotplugError::Unaligned { id });
    }
    let zone = b.zone()?;
    let freed = {
        let mut s = SPARSE.lock();
        s.memmap_init_range(pfn, end - pfn, zone, 0, 0);
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
    Ok(set_state(id, BlockState::Online))
}

/// `offline_pages`: refused if the block has holes, spans zones or holds a
/// page in use (Tessera does not migrate); otherwise every page leaves the
/// page allocator, the zone span shrinks, and sections no other online
/// block shares lose their online mark.
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
        taken
    };
    log::info!(
        "memory: memory{id} offline: {taken} pages taken back {}",
        MemRange(b.start, b.end())
    );
    let b = set_state(id, BlockState::Offline);
    crate::mm::zone::adjust_present_page_count(zone, -((end - pfn) as i64));
    crate::mm::zone::remove_pfn_range_from_zone(zone, pfn, end - pfn);
    Ok(b)
}

/// `remove_memory`: an offline block leaves the memory model (its
/// sub-sections deactivated, its memmap freed unless the section keeps
/// other memory), memblock and the physical-memory map.
pub fn remove(id: u64) -> Result<MemoryBlock, HotplugError> {
    let b = block_in_state(id, BlockState::Offline)?;
    let (pfn, end) = b.pfns();
    SPARSE.lock().remove_pages(pfn, end - pfn, None).map_err(HotplugError::Sparse)?;
    MEMBLOCK.lock().memory.remove(b.start, b.size);
    physmap::unmap(b.start, b.size);
    BLOCKS.lock().list.retain(|x| x.id != id);
    log::info!("memory: memory{id} {} removed", MemRange(b.start, b.end()));
    Ok(b)
}

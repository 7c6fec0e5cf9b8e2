//! System RAM hotplug in memory blocks (Linux's `mm/memory_hotplug.c` and
//! `drivers/base/memory.c`): the block list, its block size and each
//! block's state, with the operations that change them: boot memory listed
//! at init, `probe` and `add_memory`, `online` (`online_type`), `offline`
//! and `remove_memory`.
//!
//! A block's life:
//!
//! ```text
//! (absent) --add_memory--> offline --online--> online --offline--> offline --remove--> (absent)
//! ```
//!
//! and boot memory starts online. [`MemoryBlocks`] holds the rules and the
//! state; everything it does to the rest of the memory model (sections,
//! memmap, page allocator, zones, memblock, the physical-memory map,
//! `/proc/iomem`) goes through a [`HotplugBackend`]: the kernel's applies
//! it to the machine, a host test's to the portable models.
//!
//! Every operation is one call: it checks, in Linux's order, then changes.
//! A refused operation, or one whose backend step fails, changes nothing
//! (what the call did before the failure is undone).
//!
//! Node 0's zones stay behind the backend ([`HotplugBackend::zones`] and
//! the zone updates): `memremap_pages` moves ZONE_DEVICE's span and
//! `/proc/zoneinfo` reads them, so they belong to the memory model, not to
//! the memory blocks.

use crate::addr::PhysRange;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::buddy::BuddyError;
use crate::e820::{Entry, MemRange};
use crate::memory_block::{
    self, AddError, BlockState, DimmName, OnlineType, OnlineZone, PhysIndex, ProbeError,
    StillOnline, ValidZones, ZoneSpans,
};
use crate::page::{Pfn, ZoneType, bytes_to_pages, pages_to_bytes, phys_pfn};
use crate::sparse::{
    Altmap, MigrateType, PAGEBLOCK_NR_PAGES, PAGES_PER_SECTION, SparseError, pfn_to_section_nr,
    section_nr_to_pfn,
};
use crate::zone::NodeZones;

/// `mhp_altmap` with `memmap_on_memory`: the altmap of a hot-added range
/// of `nr_pages` from `start_pfn` whose memmap lives in its own first
/// pages (`free` [`memory_block::memmap_pages`] of them, `alloc` of those
/// in use), what [`HotplugBackend::add_pages`] (with `alloc` 0) and
/// [`HotplugBackend::remove_pages`] hand to sparse.
pub fn mhp_altmap(start_pfn: Pfn, nr_pages: u64, alloc: u64) -> Altmap {
    let free = memory_block::memmap_pages(pages_to_bytes(nr_pages));
    Altmap { base_pfn: start_pfn, reserve: 0, free, alloc }
}

/// One memory block (`memoryN`): the RAM it holds is `[start, start +
/// size)`, the whole block for boot memory and probed blocks, or the part
/// given to [`MemoryBlocks::add_memory`].
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
    /// The firmware memory device (ACPI PNP0C80 DIMM) the block came from
    /// ([`MemoryBlocks::add_memory_dimm`]); `None` for boot memory and
    /// probed or `mem=`-withheld RAM.
    pub dimm: Option<DimmName>,
    /// `nr_vmemmap_pages`: the block's first pages that hold its own
    /// memmap (`memory_hotplug.memmap_on_memory`), never given to the page
    /// allocator; 0 when its memmap lies elsewhere.
    pub nr_vmemmap_pages: u64,
}

impl MemoryBlock {
    pub fn end(&self) -> u64 {
        self.start + self.size
    }

    /// `[first pfn, end pfn)`.
    pub fn pfns(&self) -> (Pfn, Pfn) {
        (phys_pfn(self.start), phys_pfn(self.end()))
    }

    /// Whether the block carries its own memmap in its first pages.
    pub fn memmap_on_memory(&self) -> bool {
        self.nr_vmemmap_pages > 0
    }

    /// How Linux onlines it again after a failed `offline_and_remove_memory`
    /// (`try_offline_memory_block`): movable if it was in ZONE_MOVABLE,
    /// else into a kernel zone.
    pub fn reonline_type(&self) -> OnlineType {
        match self.zone {
            Some(ZoneType::Movable) => OnlineType::OnlineMovable,
            _ => OnlineType::OnlineKernel,
        }
    }

    /// The zones its first and last page's addresses fall in.
    fn zones(&self) -> (ZoneType, ZoneType) {
        let (first, end) = self.pfns();
        (ZoneType::for_pfn(first), ZoneType::for_pfn(end - 1))
    }

    /// Its sysfs `valid_zones`, from node 0's zones `zones` as they are now.
    pub fn valid_zones(&self, zones: &NodeZones) -> ValidZones {
        let (pfn, end) = self.pfns();
        memory_block::valid_zones(self.state, self.zone, &ZoneSpans::of(zones), pfn, end - pfn)
    }

    /// Its one zone (`mem->zone`); offline refuses a block without one.
    fn zone(&self) -> Result<ZoneType, HotplugError> {
        self.zone.ok_or(HotplugError::SpansZones { id: self.id, zones: self.zones() })
    }
}

/// A block's line with its `valid_zones`:
///
/// `memory0 online  [mem 0x0000000000000000-0x0000000007ffffff] none (boot) phys_index 00000000 memmap_on_memory 0 dimm -`
///
/// the block's sysfs `state`, its range, its `valid_zones` (the zone an
/// online block is in, "none" when it spans zones; the zones an offline one
/// may go to, default first) and `phys_index`, spelled as Linux's sysfs
/// spells them; then what sysfs does not show: whether its memmap is on
/// the block itself (`memmap_on_memory 1`, Linux's
/// `memory_hotplug.memmap_on_memory`) and the ACPI memory device it came
/// from (`dimm MP00`, `-` for none).
pub struct BlockLine<'a>(pub &'a MemoryBlock, pub ValidZones);

impl fmt::Display for BlockLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let BlockLine(b, valid_zones) = self;
        let range = MemRange(b.start, b.end());
        write!(f, "memory{} {:<7} {range} {valid_zones}", b.id, b.state.name())?;
        if b.boot {
            write!(f, " (boot)")?;
        }
        write!(f, " phys_index {}", PhysIndex(b.id))?;
        write!(f, " memmap_on_memory {}", u8::from(b.memmap_on_memory()))?;
        match b.dimm {
            Some(d) => write!(f, " dimm {d}"),
            None => write!(f, " dimm -"),
        }
    }
}

/// `memory --json`: the blocks as `lsmem -J --all -o
/// RANGE,SIZE,STATE,REMOVABLE,BLOCK,NODE,ZONES` prints them, one object
/// per block as the text has one line per block (lsmem without `--all`
/// merges neighbours of equal state, removability, node and zones into
/// one range: merge those yourself for its default view), then what only
/// Tessera shows in a `tessera` object per block: the range as numbers
/// (`end` inclusive, as in the text), `boot`, the sysfs `valid_zones`
/// and `phys_index` spelled as in the text, `zone` (an online block's zone,
/// `null` when offline or spanning zones), `memmap_on_memory` with
/// `nr_vmemmap_pages`, and `dimm` (the memory device's name, or `null`). `removable` is Linux 6.1's
/// (it reports 1 for every block when memory hot-remove is built in),
/// which lsmem shows for online blocks only: `false` for an offline one.
/// `block_size_bytes` is the block size in bytes (lsmem prints it in its
/// summary, not in its JSON).
pub fn memory_json(block_size: u64, blocks: &[(MemoryBlock, ValidZones)]) -> String {
    json::object(|o| {
        o.array("memory", |a| {
            for (b, valid_zones) in blocks {
                a.object(|o| {
                    let range = alloc::format!("0x{:016x}-0x{:016x}", b.start, b.end() - 1);
                    let online = b.state == BlockState::Online;
                    o.field("range", range)
                        .field("size", lsmem_size(b.size))
                        .field("state", b.state.name())
                        .field("removable", online)
                        .field("block", alloc::format!("{}", b.id))
                        .field("node", 0u32)
                        .field("zones", lsmem_zones(*valid_zones));
                    o.object("tessera", |t| {
                        t.field("start", b.start)
                            .field("end", b.end() - 1)
                            .field("boot", b.boot)
                            .field("valid_zones", alloc::format!("{valid_zones}"))
                            .field("phys_index", alloc::format!("{}", PhysIndex(b.id)))
                            .field("zone", b.zone.map(ZoneType::name))
                            .field("memmap_on_memory", b.memmap_on_memory())
                            .field("nr_vmemmap_pages", b.nr_vmemmap_pages)
                            .field("dimm", b.dimm.map(|d| String::from(d.as_str())));
                    });
                });
            }
        });
        o.field("block_size_bytes", block_size);
    })
}

/// lsmem's ZONES column: the sysfs `valid_zones` words joined by `/`,
/// `none` spelled `None`.
fn lsmem_zones(z: ValidZones) -> String {
    let Some(first) = z.first else { return String::from("None") };
    let mut out = String::from(first.name());
    for other in [z.kernel, z.movable].into_iter().flatten() {
        out.push('/');
        out.push_str(other.name());
    }
    out
}

/// util-linux's `size_to_human_string` with a one-letter suffix, as lsmem
/// prints SIZE: `128M`, `2G`, `1.5G` (one decimal, rounded half up, a
/// trailing zero dropped), `512B`.
pub fn lsmem_size(bytes: u64) -> String {
    let exp = (10..=60).step_by(10).find(|&shift| bytes < 1u64 << shift).unwrap_or(70) - 10;
    let suffix = b"BKMGTPE"[exp / 10] as char;
    let (mut dec, frac) =
        if exp == 0 { (bytes, 0) } else { (bytes >> exp, bytes & ((1 << exp) - 1)) };
    let mut tenths = 0;
    if frac != 0 {
        // Three digits after the point, then rounded to one.
        let milli = if frac >= u64::MAX / 1000 {
            frac / 1024 * 1000 / (1 << (exp - 10))
        } else {
            frac * 1000 / (1 << exp)
        };
        tenths = (milli + 50) / 100;
        if tenths == 10 {
            dec += 1;
            tenths = 0;
        }
    }
    match tenths {
        0 => alloc::format!("{dec}{suffix}"),
        t => alloc::format!("{dec}.{t}{suffix}"),
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
    /// No block of the range exists (`offline_and_remove_memory`).
    NoRange { start: u64, size: u64 },
    /// A memory device name that is not 1 to 8 printable characters.
    BadDimm,
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
            Self::NoRange { .. } => "ENODEV",
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
            Self::BadDimm => write!(f, "{e}: a DIMM name is 1 to 8 printable characters"),
            Self::NoRange { start, size } => write!(
                f,
                "{e}: {} is not all memory blocks",
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
                "{e}: memory{id}: pfn {pfn:#x} is in use and cannot be migrated (unmovable, \
                 pinned or reserved); nothing taken"
            ),
            Self::Sparse(s) => write!(f, "{s}"),
            Self::Map { addr } => write!(f, "{e}: cannot map {addr:#x} in the kernel"),
            Self::Buddy(b) => write!(f, "{e}: {b}"),
        }
    }
}

/// The firmware's and the user's memory maps that decide which RAM was
/// withheld at boot and may be added ([`memory_block::check_withheld`]).
#[derive(Debug, Clone, Copy)]
pub struct FirmwareMaps<'a> {
    /// The firmware's map, normalized.
    pub bios: &'a [Entry],
    /// The user map (`memmap=`, `mem=`).
    pub user: &'a [Entry],
    /// The bootloader's pieces: never System RAM to add.
    pub in_use: &'a [PhysRange],
}

/// What memory-block hotplug needs from the rest of the memory model. Each
/// method is one step of Linux's `add_memory`, `online_pages`,
/// `offline_pages` or `remove_memory`, named as there; ranges are `[start,
/// start + size)` in bytes or `[start_pfn, start_pfn + nr_pages)` /
/// `[start_pfn, end_pfn)` in pages. [`MemoryBlocks`] calls them only with
/// whole blocks, after its own checks.
pub trait HotplugBackend {
    /// memblock.memory: the RAM the kernel has, `(start, end)`, sorted.
    fn memblock_memory(&self) -> Vec<PhysRange>;
    /// The maps the kernel booted with (`None` before they are known).
    fn firmware_maps(&self) -> Option<FirmwareMaps<'_>>;
    /// Node 0's zones: spans and present pages.
    fn zones(&self) -> NodeZones;
    /// The resource a busy "System RAM" request for `[start, end]`
    /// (inclusive) would conflict with in `/proc/iomem`, as `(start, end,
    /// name)` (end inclusive); `None` when the request would succeed.
    fn request_conflict(&self, start: u64, end: u64) -> Option<(u64, u64, String)>;

    /// `__add_pages` for System RAM, whole sections: the sub-sections
    /// become active with a memmap, their descriptors initialized and
    /// reserved for `zone`. With `memmap_on_memory` (one block), the memmap
    /// comes from the range's own first pages (an altmap: `base_pfn`
    /// `start_pfn`, `free` [`memory_block::memmap_pages`] of it), not from
    /// other memory. All or nothing.
    fn add_pages(
        &mut self,
        start_pfn: Pfn,
        nr_pages: u64,
        zone: ZoneType,
        memmap_on_memory: bool,
    ) -> Result<(), SparseError>;
    /// `__remove_pages`: the sub-sections are deactivated and their memmap
    /// freed (given back to the range's altmap with `memmap_on_memory`).
    /// All or nothing.
    fn remove_pages(
        &mut self,
        start_pfn: Pfn,
        nr_pages: u64,
        memmap_on_memory: bool,
    ) -> Result<(), SparseError>;
    /// `init_memory_mapping` (x86's `arch_add_memory`): maps the range in
    /// the kernel's physical-memory map. On failure returns the address
    /// that could not be mapped; the caller undoes with
    /// [`HotplugBackend::kernel_physical_mapping_remove`].
    fn init_memory_mapping(&mut self, start: u64, size: u64) -> Result<(), u64>;
    /// `kernel_physical_mapping_remove` (x86's `arch_remove_memory`).
    fn kernel_physical_mapping_remove(&mut self, start: u64, size: u64);
    /// `memblock_add_node`: the range is RAM the kernel has.
    fn memblock_add(&mut self, start: u64, size: u64);
    /// `memblock_remove`.
    fn memblock_remove(&mut self, start: u64, size: u64);
    /// `register_memory_resource`: a busy "System RAM" resource in
    /// `/proc/iomem` (checked with [`HotplugBackend::request_conflict`]
    /// first).
    fn register_memory_resource(&mut self, start: u64, size: u64);
    /// `release_mem_region_adjustable`: "System RAM" loses the range.
    fn release_mem_region_adjustable(&mut self, start: u64, size: u64);

    /// `memmap_init_range`: the descriptors are initialized, reserved, for
    /// `zone`.
    fn memmap_init_range(&mut self, start_pfn: Pfn, nr_pages: u64, zone: ZoneType);
    /// `set_pageblock_migratetype` for every pageblock of the range.
    fn set_pageblock_migratetype(&mut self, start_pfn: Pfn, nr_pages: u64, mt: MigrateType);
    /// `online_mem_sections`: every section the range touches is online.
    fn online_mem_sections(&mut self, start_pfn: Pfn, end_pfn: Pfn);
    /// `offline_mem_sections`: every section the range touches is offline.
    fn offline_mem_sections(&mut self, start_pfn: Pfn, end_pfn: Pfn);
    /// The page allocator takes the range's reserved pages
    /// ([`crate::buddy::BuddyAllocator::free_range`], Linux's
    /// `online_pages_range`); returns how many.
    fn free_range(&mut self, start_pfn: Pfn, end_pfn: Pfn) -> u64;
    /// The page allocator gives every page of the range back, reserved
    /// ([`crate::buddy::BuddyAllocator::take_free_range`]); a page in use
    /// refuses it ([`BuddyError::Busy`]) and nothing changes. Returns how
    /// many pages it took.
    fn take_free_range(&mut self, start_pfn: Pfn, end_pfn: Pfn) -> Result<u64, BuddyError>;
    /// [`NodeZones::move_pfn_range_to_zone`].
    fn move_pfn_range_to_zone(&mut self, zone: ZoneType, start_pfn: Pfn, nr_pages: u64);
    /// [`NodeZones::adjust_present_page_count`].
    fn adjust_present_page_count(&mut self, zone: ZoneType, nr_pages: i64);
    /// [`NodeZones::remove_pfn_range_from_zone`], after the range's
    /// sections went offline.
    fn remove_pfn_range_from_zone(&mut self, zone: ZoneType, start_pfn: Pfn, nr_pages: u64);
    /// `do_migrate_range` (with `start_isolate_page_range`'s
    /// `has_unmovable_pages` first): every movable page in use in the
    /// range moves to a new page outside it (its owner's reference
    /// follows), so that offline can take the range back. A page in use
    /// that cannot move (unmovable, pinned) refuses it before anything
    /// moves: `Err(pfn)`. Returns how many pages moved. Without movable
    /// pages (the default) nothing moves.
    fn do_migrate_range(&mut self, start_pfn: Pfn, end_pfn: Pfn) -> Result<u64, Pfn> {
        let _ = (start_pfn, end_pfn);
        Ok(0)
    }
}

/// What `add_memory_resource` is asked to do beyond adding the range.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct AddOptions {
    /// Tessera's `mem=` check: only RAM withheld at boot (probe,
    /// `add_memory`); a firmware memory device hands over its own range.
    withheld: bool,
    /// `MHP_MEMMAP_ON_MEMORY`.
    memmap_on_memory: bool,
    dimm: Option<DimmName>,
}

/// The memory blocks: their size and list, each with its state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryBlocks {
    /// Bytes per block (`memory_block_size_bytes`); 0 before
    /// [`MemoryBlocks::init`].
    size: u64,
    /// By id.
    list: Vec<MemoryBlock>,
}

impl MemoryBlocks {
    /// No blocks, size 0, until [`MemoryBlocks::init`].
    pub const fn new() -> Self {
        Self { size: 0, list: Vec::new() }
    }

    /// The memory block size in bytes (0 before [`MemoryBlocks::init`]).
    pub fn block_size(&self) -> u64 {
        self.size
    }

    /// The blocks, by id.
    pub fn blocks(&self) -> &[MemoryBlock] {
        &self.list
    }

    /// One block.
    pub fn block(&self, id: u64) -> Option<&MemoryBlock> {
        self.list.iter().find(|b| b.id == id)
    }

    /// Block `id`, if it is in state `want`.
    fn block_in_state(&self, id: u64, want: BlockState) -> Result<MemoryBlock, HotplugError> {
        let b = *self.block(id).ok_or(HotplugError::NoBlock { id })?;
        if b.state != want {
            return Err(HotplugError::State { id, state: b.state });
        }
        Ok(b)
    }

    fn set_state(&mut self, id: u64, state: BlockState, zone: Option<ZoneType>) -> MemoryBlock {
        let b = self.list.iter_mut().find(|b| b.id == id).expect("checked by the caller");
        (b.state, b.zone) = (state, zone);
        *b
    }

    /// `memory_dev_init`: sizes blocks by the end of boot memory
    /// ([`memory_block::memory_block_size`]) and lists boot memory in
    /// blocks, all online, each with its zone when exactly one populated
    /// zone meets it (`early_node_zone_for_memory_block`). Replaces any
    /// list there was. Returns the end of boot memory.
    pub fn init(&mut self, b: &mut impl HotplugBackend) -> u64 {
        let ram = b.memblock_memory();
        let boot_end = ram.last().map_or(0, |r| r.end);
        let size = memory_block::memory_block_size(boot_end);
        let spans = ZoneSpans::populated(&b.zones());
        let mut list: Vec<MemoryBlock> = Vec::new();
        for PhysRange { start, end } in ram {
            for id in start / size..end.div_ceil(size) {
                if list.last().is_none_or(|b| b.id < id) {
                    let start = id * size;
                    let zone = memory_block::early_zone_for_block(
                        &spans,
                        phys_pfn(start),
                        bytes_to_pages(size),
                    );
                    let state = BlockState::Online;
                    list.push(MemoryBlock {
                        id,
                        start,
                        size,
                        state,
                        boot: true,
                        zone,
                        dimm: None,
                        nr_vmemmap_pages: 0,
                    });
                }
            }
        }
        *self = Self { size, list };
        boot_end
    }

    /// `probe` (the sysfs file): hot-adds the block at `addr` from RAM
    /// withheld at boot. An address that is not block-aligned is refused
    /// first (EINVAL), then as [`MemoryBlocks::add_memory`]. The block is
    /// offline until [`MemoryBlocks::online`].
    pub fn probe(
        &mut self,
        b: &mut impl HotplugBackend,
        addr: u64,
    ) -> Result<MemoryBlock, HotplugError> {
        let size = self.size;
        if !addr.is_multiple_of(size) {
            let e = ProbeError::Misaligned { start: addr, size, align: size };
            return Err(HotplugError::Probe(e));
        }
        Ok(self.add_memory(b, addr, size)?[0])
    }

    /// `add_memory`: hot-adds `[start, start + size)`, one or more whole
    /// blocks, offline. Linux's refusals come first and in its order
    /// ([`memory_block::check_add_memory`]: E2BIG beyond MAX_PHYSMEM_BITS,
    /// EEXIST when the "System RAM" resource conflicts in `/proc/iomem`,
    /// EINVAL when not block-aligned); then Tessera's own: only RAM the
    /// firmware reported and the kernel set aside (`mem=`) may be added,
    /// and none of the bootloader's pieces. Then the memory model takes the
    /// range (`__add_pages`; the pages initialized, reserved, in the zone
    /// of their address), the physical-memory map, memblock and
    /// `/proc/iomem`. A failed add undoes all it did. Returns the new
    /// blocks.
    pub fn add_memory(
        &mut self,
        b: &mut impl HotplugBackend,
        start: u64,
        size: u64,
    ) -> Result<Vec<MemoryBlock>, HotplugError> {
        let opts = AddOptions { withheld: true, ..AddOptions::default() };
        self.add_memory_resource(b, start, size, opts)
    }

    /// `__add_memory` from `acpi_memory_enable_device`: hot-adds `[start,
    /// start + size)`, the range a firmware memory device (an ACPI PNP0C80
    /// DIMM named `dimm`) hands over, one or more whole blocks, offline.
    /// Linux's refusals as [`MemoryBlocks::add_memory`] (E2BIG, EEXIST on
    /// an iomem conflict such as System RAM already there, EINVAL when not
    /// whole blocks) but not Tessera's `mem=` check: the memory is the
    /// device's. With `memmap_on_memory` (the option) and a range Linux
    /// 6.1 allows it for ([`memory_block::mhp_supports_memmap_on_memory`]:
    /// exactly one block), the block's memmap lives in its own first pages
    /// (`nr_vmemmap_pages`). Every block remembers `dimm`. A failed add
    /// undoes all it did. Onlining (`memhp_default_state`) is the caller's.
    pub fn add_memory_dimm(
        &mut self,
        b: &mut impl HotplugBackend,
        start: u64,
        size: u64,
        dimm: DimmName,
        memmap_on_memory: bool,
    ) -> Result<Vec<MemoryBlock>, HotplugError> {
        let memmap_on_memory =
            memmap_on_memory && memory_block::mhp_supports_memmap_on_memory(size, self.size);
        let opts = AddOptions { withheld: false, memmap_on_memory, dimm: Some(dimm) };
        self.add_memory_resource(b, start, size, opts)
    }

    /// `add_memory_resource`: the checks, then the memory model, the
    /// physical-memory map, memblock and `/proc/iomem`, then the blocks.
    fn add_memory_resource(
        &mut self,
        b: &mut impl HotplugBackend,
        start: u64,
        size: u64,
        opts: AddOptions,
    ) -> Result<Vec<MemoryBlock>, HotplugError> {
        let bs = self.size;
        let conflict = |s, e| b.request_conflict(s, e);
        memory_block::check_add_memory_with(conflict, start, size, bs)
            .map_err(HotplugError::Add)?;
        if opts.withheld {
            let maps = b.firmware_maps().ok_or(HotplugError::Map { addr: start })?;
            let present = b.memblock_memory();
            memory_block::check_withheld(
                maps.bios,
                maps.user,
                &present,
                maps.in_use,
                start,
                size,
                bs,
            )
            .map_err(HotplugError::Probe)?;
        }
        let ids = start / bs..(start + size) / bs;
        if let Some(id) = ids.clone().find(|&id| self.block(id).is_some()) {
            return Err(HotplugError::Exist { id });
        }
        let (pfn, nr) = (phys_pfn(start), bytes_to_pages(size));
        let mom = opts.memmap_on_memory;
        b.add_pages(pfn, nr, ZoneType::for_pfn(pfn), mom).map_err(HotplugError::Sparse)?;
        if let Err(addr) = b.init_memory_mapping(start, size) {
            b.kernel_physical_mapping_remove(start, size);
            b.remove_pages(pfn, nr, mom).expect("added above");
            return Err(HotplugError::Map { addr });
        }
        b.memblock_add(start, size);
        b.register_memory_resource(start, size);
        let nr_vmemmap_pages = if mom { memory_block::memmap_pages(bs) } else { 0 };
        let mut added = Vec::new();
        for id in ids {
            let block = MemoryBlock {
                id,
                start: id * bs,
                size: bs,
                state: BlockState::Offline,
                boot: false,
                zone: None,
                dimm: opts.dimm,
                nr_vmemmap_pages,
            };
            let at = self.list.partition_point(|x| x.id < id);
            self.list.insert(at, block);
            added.push(block);
        }
        Ok(added)
    }

    /// `echo online > state`: [`MemoryBlocks::online_type`] with
    /// `MMOP_ONLINE`.
    pub fn online(
        &mut self,
        b: &mut impl HotplugBackend,
        id: u64,
    ) -> Result<(MemoryBlock, u64), HotplugError> {
        self.online_type(b, id, OnlineType::Online)
    }

    /// `memory_block_online` and `online_pages`: the zone comes from
    /// `zone_for_pfn_range` (`online_kernel`: the kernel zone whose span
    /// the block meets, else Normal, whatever the address;
    /// `online_movable`: ZONE_MOVABLE; `online`: ZONE_MOVABLE only when
    /// the block meets its span and no kernel zone's); the block's pages
    /// are initialized for it with every pageblock MIGRATE_MOVABLE
    /// (`move_pfn_range_to_zone`, `undo_isolate_page_range`), the sections
    /// are marked online, the pages go to the page allocator and the zone's
    /// span and present pages grow to take them in. A block with its
    /// memmap on itself (`mhp_init_memmap_on_memory`) keeps its first
    /// `nr_vmemmap_pages` out of the page allocator, their pageblock
    /// MIGRATE_UNMOVABLE, but counts them present in the zone. Returns the
    /// block and the pages the page allocator took.
    pub fn online_type(
        &mut self,
        b: &mut impl HotplugBackend,
        id: u64,
        online_type: OnlineType,
    ) -> Result<(MemoryBlock, u64), HotplugError> {
        let block = self.block_in_state(id, BlockState::Offline)?;
        let (pfn, end) = block.pfns();
        let spans = ZoneSpans::of(&b.zones());
        let zone = memory_block::zone_for_pfn_range(online_type, &spans, pfn, end - pfn);
        let zone = OnlineZone::zone_type(zone);
        let first = pfn + block.nr_vmemmap_pages;
        if !first.is_multiple_of(PAGEBLOCK_NR_PAGES)
            || !end.is_multiple_of(PAGES_PER_SECTION)
            || first >= end
        {
            return Err(HotplugError::Unaligned { id });
        }
        b.memmap_init_range(pfn, end - pfn, zone);
        if first > pfn {
            b.set_pageblock_migratetype(pfn, first - pfn, MigrateType::Unmovable);
        }
        b.set_pageblock_migratetype(first, end - first, MigrateType::Movable);
        b.online_mem_sections(pfn, end);
        let freed = b.free_range(first, end);
        b.move_pfn_range_to_zone(zone, pfn, end - pfn);
        b.adjust_present_page_count(zone, (end - pfn) as i64);
        Ok((self.set_state(id, BlockState::Online, Some(zone)), freed))
    }

    /// `offline_pages`: refused if the block has holes, spans zones (it
    /// has no `mem->zone`) or holds a page in use that cannot be migrated
    /// (EBUSY, the block stays online); movable pages in use are migrated
    /// out of it first ([`HotplugBackend::do_migrate_range`]; a page
    /// allocated meanwhile is migrated on the next of three rounds, as
    /// Linux's loop retries). Then every page leaves the page allocator,
    /// sections no other online block shares lose their online mark, the
    /// pageblocks stay MIGRATE_ISOLATE (`start_isolate_page_range`), and
    /// the zone's present pages and span shrink. A block with its memmap on
    /// itself takes back all but its first `nr_vmemmap_pages`, which stay
    /// (`mhp_deinit_memmap_on_memory` at remove). Unlike Linux, a refused
    /// offline leaves the pageblocks as they were. Returns the block and
    /// the pages taken from the page allocator.
    pub fn offline(
        &mut self,
        b: &mut impl HotplugBackend,
        id: u64,
    ) -> Result<(MemoryBlock, u64), HotplugError> {
        let block = self.block_in_state(id, BlockState::Online)?;
        let covered: u64 = b
            .memblock_memory()
            .iter()
            .map(|r| r.end.min(block.end()).saturating_sub(r.start.max(block.start)))
            .sum();
        if covered != block.size {
            return Err(HotplugError::Holes { id });
        }
        let zone = block.zone()?;
        let (pfn, end) = block.pfns();
        let first = pfn + block.nr_vmemmap_pages;
        let mut attempt = 0;
        let taken = loop {
            b.do_migrate_range(first, end).map_err(|pfn| HotplugError::Busy { id, pfn })?;
            match b.take_free_range(first, end) {
                Ok(n) => break n,
                Err(BuddyError::Busy { .. }) if attempt < 2 => attempt += 1,
                Err(BuddyError::Busy { pfn }) => return Err(HotplugError::Busy { id, pfn }),
                Err(other) => return Err(HotplugError::Buddy(other)),
            }
        };
        for nr in pfn_to_section_nr(pfn)..=pfn_to_section_nr(end - 1) {
            let shared = self.list.iter().any(|o| {
                let (a, z) = o.pfns();
                o.id != id
                    && o.state == BlockState::Online
                    && pfn_to_section_nr(a) <= nr
                    && nr <= pfn_to_section_nr(z - 1)
            });
            if !shared {
                b.offline_mem_sections(section_nr_to_pfn(nr), section_nr_to_pfn(nr) + 1);
            }
        }
        b.set_pageblock_migratetype(pfn, end - pfn, MigrateType::Isolate);
        b.adjust_present_page_count(zone, -((end - pfn) as i64));
        b.remove_pfn_range_from_zone(zone, pfn, end - pfn);
        Ok((self.set_state(id, BlockState::Offline, None), taken))
    }

    /// `remove_memory`: an offline block leaves the memory model (its
    /// sub-sections deactivated, its memmap freed unless the section keeps
    /// other memory), memblock, the physical-memory map and `/proc/iomem`
    /// (`release_mem_region_adjustable`). An online block is refused with
    /// EBUSY (`check_memblock_offlined_cb`).
    pub fn remove(
        &mut self,
        b: &mut impl HotplugBackend,
        id: u64,
    ) -> Result<MemoryBlock, HotplugError> {
        let block = *self.block(id).ok_or(HotplugError::NoBlock { id })?;
        memory_block::check_memblock_offlined(block.state, block.start, block.size)
            .map_err(HotplugError::StillOnline)?;
        let (pfn, end) = block.pfns();
        let mom = block.memmap_on_memory();
        b.remove_pages(pfn, end - pfn, mom).map_err(HotplugError::Sparse)?;
        b.memblock_remove(block.start, block.size);
        b.kernel_physical_mapping_remove(block.start, block.size);
        b.release_mem_region_adjustable(block.start, block.size);
        self.list.retain(|x| x.id != id);
        Ok(block)
    }
}

impl MemoryBlocks {
    /// Linux's `offline_and_remove_memory` (the eject path of an ACPI
    /// memory device: `acpi_scan_try_to_offline`, then
    /// `acpi_memory_device_remove`): every block of `[start, start +
    /// size)` must exist (else ENODEV, EINVAL when not whole blocks);
    /// every online one is offlined in turn ([`MemoryBlocks::offline`],
    /// migrating movable pages), and if one refuses, the ones this call
    /// offlined are onlined again as they were (movable or kernel zone)
    /// and its error returned: nothing changed. Then every block is
    /// removed. Returns the removed blocks, and for each block this call
    /// offlined, the pages taken back.
    #[allow(clippy::type_complexity)]
    pub fn offline_and_remove_memory(
        &mut self,
        b: &mut impl HotplugBackend,
        start: u64,
        size: u64,
    ) -> Result<(Vec<MemoryBlock>, Vec<(u64, u64)>), HotplugError> {
        let bs = self.size;
        if bs == 0 || size == 0 || !start.is_multiple_of(bs) || !size.is_multiple_of(bs) {
            let e = AddError::Unaligned { start, size, block_size: bs };
            return Err(HotplugError::Add(e));
        }
        let ids = start / bs..(start + size) / bs;
        if ids.clone().any(|id| self.block(id).is_none()) {
            return Err(HotplugError::NoRange { start, size });
        }
        let mut offlined: Vec<(MemoryBlock, u64)> = Vec::new();
        for id in ids.clone() {
            let block = *self.block(id).expect("checked above");
            if block.state != BlockState::Online {
                continue;
            }
            match self.offline(b, id) {
                Ok((_, taken)) => offlined.push((block, taken)),
                Err(e) => {
                    for (was, _) in offlined.iter().rev() {
                        // Onlining what was just offlined fails only if the
                        // memory model broke; then the block stays offline.
                        let _ = self.online_type(b, was.id, was.reonline_type());
                    }
                    return Err(e);
                }
            }
        }
        let mut removed = Vec::new();
        for id in ids {
            removed.push(self.remove(b, id)?);
        }
        Ok((removed, offlined.iter().map(|(blk, n)| (blk.id, *n)).collect()))
    }
}

#[cfg(test)]
mod tests;

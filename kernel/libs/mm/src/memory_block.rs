//! Memory blocks, the unit in which System RAM is hot-added, onlined,
//! offlined and removed (Linux's `drivers/base/memory.c`): their size, and
//! which ranges may be probed.

use core::fmt;

use crate::addr::PhysRange;
use crate::e820::{E820Type, Entry, MemRange};
use crate::page::{Pfn, ZoneType};
use crate::sparse::{MAX_PHYSMEM_BITS, SECTION_SIZE_BITS};
use crate::zone::{NodeZones, ZONE_MOVABLE, ZoneSpan};

/// The smallest block: one section (`MIN_MEMORY_BLOCK_SIZE`).
pub const MIN_MEMORY_BLOCK_SIZE: u64 = 1 << SECTION_SIZE_BITS;
/// Boot memory from which x86 uses larger blocks (`MEM_SIZE_FOR_LARGE_BLOCK`).
pub const MEM_SIZE_FOR_LARGE_BLOCK: u64 = 64 << 30;
/// The largest block x86 uses (`MAX_BLOCK_SIZE`).
pub const MAX_BLOCK_SIZE: u64 = 2 << 30;
/// Smallest piece of RAM the memory model hot-adds: a sub-section.
pub use crate::sparse::SUBSECTION_SIZE;

/// x86's `probe_memory_block_size` for a machine whose boot memory ends at
/// `boot_mem_end`: one section below 64 GiB; above, the largest power of
/// two up to 2 GiB that the end of boot memory is aligned to (so the last
/// boot block is whole), as under a hypervisor.
pub fn memory_block_size(boot_mem_end: u64) -> u64 {
    if boot_mem_end < MEM_SIZE_FOR_LARGE_BLOCK {
        return MIN_MEMORY_BLOCK_SIZE;
    }
    let mut bz = MAX_BLOCK_SIZE;
    while bz > MIN_MEMORY_BLOCK_SIZE && !boot_mem_end.is_multiple_of(bz) {
        bz >>= 1;
    }
    bz
}

/// Why a range may not be hot-added as System RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeError {
    /// Not aligned to `align` bytes, empty, or past the end of the
    /// address space.
    Misaligned { start: u64, size: u64, align: u64 },
    /// Some of it is not RAM in the firmware's map (`at` is the first such
    /// address).
    NotRam { start: u64, size: u64, at: u64 },
    /// Some of it is System RAM the kernel has already.
    InUse { start: u64, size: u64 },
    /// Some of it holds the kernel or the bootloader's data.
    Bootloader { start: u64, size: u64, piece: PhysRange },
}

impl ProbeError {
    /// The Linux errno name.
    pub fn errno(&self) -> &'static str {
        match self {
            Self::InUse { .. } => "EEXIST",
            Self::Bootloader { .. } => "EBUSY",
            _ => "EINVAL",
        }
    }
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.errno();
        match *self {
            Self::Misaligned { start, size, align } => write!(
                f,
                "{e}: {start:#x} size {size:#x} is not a whole number of {} MiB units",
                align >> 20
            ),
            Self::NotRam { start, size, at } => write!(
                f,
                "{e}: {} is not all System RAM in the firmware map (not from {at:#x})",
                MemRange(start, start.saturating_add(size))
            ),
            Self::InUse { start, size } => write!(
                f,
                "{e}: {} is (partly) System RAM the kernel already has",
                MemRange(start, start + size)
            ),
            Self::Bootloader { start, size, piece } => write!(
                f,
                "{e}: {} holds the kernel or bootloader data at {}",
                MemRange(start, start + size),
                piece
            ),
        }
    }
}

/// Whether `[start, start + size)` may be hot-added as System RAM: aligned
/// to `align`, wholly RAM in the firmware map `firmware`, none of it given
/// another type by the user map `user` (`memmap=`; what `mem=` dropped has
/// no entry there), none of it in `present` (the kernel's RAM
/// ranges) and none of it in `in_use` (the bootloader's pieces).
pub fn check_withheld(
    firmware: &[Entry],
    user: &[Entry],
    present: &[PhysRange],
    in_use: &[PhysRange],
    start: u64,
    size: u64,
    align: u64,
) -> Result<(), ProbeError> {
    let end = start.checked_add(size).filter(|_| size > 0 && (start | size).is_multiple_of(align));
    let end = end.ok_or(ProbeError::Misaligned { start, size, align })?;
    let range = PhysRange::new(start, end);
    if present.iter().any(|p| p.overlaps(&range)) {
        return Err(ProbeError::InUse { start, size });
    }
    // The firmware map is sorted and disjoint: walk the RAM entries.
    let mut at = start;
    for e in firmware.iter().filter(|e| e.ty == E820Type::RAM) {
        if e.start <= at && at < e.end {
            at = e.end;
        }
    }
    if at < end {
        return Err(ProbeError::NotRam { start, size, at });
    }
    let claimed = user.iter().find(|e| e.ty != E820Type::RAM && e.start < end && start < e.end);
    if let Some(e) = claimed {
        return Err(ProbeError::NotRam { start, size, at: e.start.max(start) });
    }
    if let Some(&piece) = in_use.iter().find(|p| p.overlaps(&range)) {
        return Err(ProbeError::Bootloader { start, size, piece });
    }
    Ok(())
}

/// A memory block's state (its sysfs `state` file). A block's life:
/// `(absent) --add--> offline --online--> online --offline--> offline
/// --remove--> (absent)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockState {
    Online,
    Offline,
}

impl BlockState {
    /// As sysfs spells it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::Offline => "offline",
        }
    }
}

/// A block's sysfs `phys_index`: its id as `%08lx`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhysIndex(pub u64);

impl fmt::Display for PhysIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

/// The highest physical address memory may be hot-added at on x86_64 with
/// 4-level paging: `mhp_get_pluggable_range(true)` is `[0, MAX_PHYS]`
/// (`arch_get_mappable_range` is all of it, cut at MAX_PHYSMEM_BITS).
pub const MAX_PHYS: u64 = (1 << MAX_PHYSMEM_BITS) - 1;

/// Linux's `mhp_range_allowed(start, size, true)`: non-empty, not wrapping,
/// and ending at or below [`MAX_PHYS`].
pub const fn mhp_range_allowed(start: u64, size: u64) -> bool {
    let end = start.wrapping_add(size);
    start < end && end - 1 <= MAX_PHYS
}

/// Why `add_memory` refuses a range, for the checks Linux makes before
/// touching anything (`__add_memory`: `register_memory_resource`, then
/// `add_memory_resource`'s `check_hotplug_memory_range`), in that order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddError {
    /// `E2BIG`: beyond the pluggable range (`mhp_range_allowed`).
    TooBig { start: u64, size: u64 },
    /// `EEXIST`: the "System RAM" resource cannot be requested, because
    /// the range overlaps a busy resource or straddles one
    /// (`__request_region` failed).
    Exist { start: u64, size: u64, with: (u64, u64, alloc::string::String) },
    /// `EINVAL`: start or size not a multiple of the block size, or empty
    /// (`check_hotplug_memory_range`).
    Unaligned { start: u64, size: u64, block_size: u64 },
}

impl AddError {
    /// The Linux errno name.
    pub fn errno(&self) -> &'static str {
        match self {
            Self::TooBig { .. } => "E2BIG",
            Self::Exist { .. } => "EEXIST",
            Self::Unaligned { .. } => "EINVAL",
        }
    }
}

impl fmt::Display for AddError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.errno();
        match self {
            // Linux: "Hotplug memory [%#llx-%#llx] exceeds maximum
            // addressable range [%#llx-%#llx]".
            Self::TooBig { start, size } => write!(
                f,
                "{e}: Hotplug memory [{start:#x}-{:#x}] exceeds maximum addressable range \
                 [0x0-{MAX_PHYS:#x}]",
                start.wrapping_add(*size)
            ),
            Self::Exist { start, size, with: (ws, we, wn) } => write!(
                f,
                "{e}: System RAM resource {} cannot be added: it conflicts with \"{wn}\" {}",
                MemRange(*start, start.saturating_add(*size)),
                MemRange(*ws, we.saturating_add(1))
            ),
            // Linux: "Block size [%#lx] unaligned hotplug range: start
            // %#llx, size %#llx".
            Self::Unaligned { start, size, block_size } => write!(
                f,
                "{e}: Block size [{block_size:#x}] unaligned hotplug range: start {start:#x}, \
                 size {size:#x}"
            ),
        }
    }
}

/// `__add_memory`'s refusals in Linux's order: [`mhp_range_allowed`]
/// (E2BIG), requesting a busy "System RAM" resource in `iomem` (EEXIST),
/// then `check_hotplug_memory_range` (EINVAL: start and size multiples of
/// `block_size`). `iomem` is not changed.
pub fn check_add_memory(
    iomem: &crate::iomem::IoMem,
    start: u64,
    size: u64,
    block_size: u64,
) -> Result<(), AddError> {
    let conflict = |s, e| iomem.request_conflict(s, e).map(|r| (r.start, r.end, r.name.clone()));
    check_add_memory_with(conflict, start, size, block_size)
}

/// [`check_add_memory`] with the resource tree asked through `conflict`:
/// for `[start, end]` (inclusive), the resource `__request_region` would
/// fail on, as `(start, end, name)`.
pub fn check_add_memory_with(
    conflict: impl FnOnce(u64, u64) -> Option<(u64, u64, alloc::string::String)>,
    start: u64,
    size: u64,
    block_size: u64,
) -> Result<(), AddError> {
    if !mhp_range_allowed(start, size) {
        return Err(AddError::TooBig { start, size });
    }
    if let Some(with) = conflict(start, start + size - 1) {
        return Err(AddError::Exist { start, size, with });
    }
    if size == 0 || !start.is_multiple_of(block_size) || !size.is_multiple_of(block_size) {
        return Err(AddError::Unaligned { start, size, block_size });
    }
    Ok(())
}

/// `remove_memory` of an online block: `try_remove_memory`'s
/// `check_memblock_offlined_cb` refuses with EBUSY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StillOnline {
    pub start: u64,
    pub size: u64,
}

impl fmt::Display for StillOnline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Linux: "removing memory fails, because memory [%pa-%pa] is
        // onlined" (%pa: 0x and 16 hex digits).
        write!(
            f,
            "EBUSY: removing memory fails, because memory [{:#018x}-{:#018x}] is onlined",
            self.start,
            self.start + self.size - 1
        )
    }
}

/// `check_memblock_offlined_cb` for a block `[start, start + size)`.
pub fn check_memblock_offlined(
    state: BlockState,
    start: u64,
    size: u64,
) -> Result<(), StillOnline> {
    match state {
        BlockState::Offline => Ok(()),
        BlockState::Online => Err(StillOnline { start, size }),
    }
}

/// How a block is onlined (`MMOP_ONLINE`, `MMOP_ONLINE_KERNEL`,
/// `MMOP_ONLINE_MOVABLE`: the words written to its `state` file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnlineType {
    Online,
    OnlineKernel,
    OnlineMovable,
}

impl OnlineType {
    /// `mhp_online_type_from_str` (without `offline`).
    pub fn from_word(word: &str) -> Option<Self> {
        match word {
            "online" => Some(Self::Online),
            "online_kernel" => Some(Self::OnlineKernel),
            "online_movable" => Some(Self::OnlineMovable),
            _ => None,
        }
    }

    /// The word.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::OnlineKernel => "online_kernel",
            Self::OnlineMovable => "online_movable",
        }
    }
}

/// A zone System RAM can be onlined to: a kernel zone or ZONE_MOVABLE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnlineZone {
    Kernel(ZoneType),
    Movable,
}

impl OnlineZone {
    /// The zone an online block of zone `zone` is in.
    pub const fn of(zone: ZoneType) -> Self {
        match zone {
            ZoneType::Movable => Self::Movable,
            z => Self::Kernel(z),
        }
    }

    /// Its [`ZoneType`] (the page descriptors' and the page allocator's).
    pub const fn zone_type(self) -> ZoneType {
        match self {
            Self::Kernel(z) => z,
            Self::Movable => ZoneType::Movable,
        }
    }

    /// Linux's zone name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Kernel(z) => z.name(),
            Self::Movable => "Movable",
        }
    }
}

impl fmt::Display for OnlineZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The spans `[start_pfn, end_pfn)` of node 0's zones that hotplug
/// decisions read (an empty span is `start >= end`). ZONE_MOVABLE spans
/// the blocks onlined `online_movable`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ZoneSpans {
    /// DMA, DMA32, Normal, by [`ZoneType`] index.
    pub kernel: [(Pfn, Pfn); 3],
    pub movable: (Pfn, Pfn),
}

impl ZoneSpans {
    /// The spans of node 0's zones `zones` (`zone_intersects` reads every
    /// zone's span, populated or not).
    pub fn of(zones: &NodeZones) -> Self {
        let span = |z: &ZoneSpan| (z.zone_start_pfn, z.zone_end_pfn());
        let kernel =
            [ZoneType::Dma, ZoneType::Dma32, ZoneType::Normal].map(|t| span(zones.zone(t)));
        Self { kernel, movable: span(&zones.zones[ZONE_MOVABLE]) }
    }

    /// The spans of the populated zones only (those with present pages),
    /// the others empty: what `early_node_zone_for_memory_block` looks at.
    pub fn populated(zones: &NodeZones) -> Self {
        let mut spans = Self::of(zones);
        for (i, t) in [ZoneType::Dma, ZoneType::Dma32, ZoneType::Normal].into_iter().enumerate() {
            if !zones.zone(t).populated() {
                spans.kernel[i] = (Pfn::ZERO, Pfn::ZERO);
            }
        }
        if !zones.zones[ZONE_MOVABLE].populated() {
            spans.movable = (Pfn::ZERO, Pfn::ZERO);
        }
        spans
    }

    fn span(&self, zone: OnlineZone) -> (Pfn, Pfn) {
        match zone {
            OnlineZone::Kernel(z) => {
                self.kernel.get(z as usize).copied().unwrap_or((Pfn::ZERO, Pfn::ZERO))
            }
            OnlineZone::Movable => self.movable,
        }
    }
}

/// `zone_intersects`: an empty zone intersects nothing.
pub const fn zone_intersects(span: (Pfn, Pfn), start_pfn: Pfn, nr_pages: u64) -> bool {
    let (start, end) = span;
    let (start, end, start_pfn) = (start.as_u64(), end.as_u64(), start_pfn.as_u64());
    start < end && start_pfn < end && start_pfn + nr_pages > start
}

/// `default_kernel_zone_for_pfn`: the first of DMA, DMA32 whose span the
/// range intersects, else Normal (whatever the address: a block above a
/// `mem=` limit below 4 GiB goes to Normal).
pub fn default_kernel_zone_for_pfn(spans: &ZoneSpans, start_pfn: Pfn, nr_pages: u64) -> ZoneType {
    [ZoneType::Dma, ZoneType::Dma32]
        .into_iter()
        .find(|&z| zone_intersects(spans.span(OnlineZone::Kernel(z)), start_pfn, nr_pages))
        .unwrap_or(ZoneType::Normal)
}

/// `default_zone_for_pfn` (with `movable_node` off, as Tessera has it):
/// the kernel zone or ZONE_MOVABLE when exactly one of them intersects the
/// range, else the kernel zone.
pub fn default_zone_for_pfn(spans: &ZoneSpans, start_pfn: Pfn, nr_pages: u64) -> OnlineZone {
    let kernel = OnlineZone::Kernel(default_kernel_zone_for_pfn(spans, start_pfn, nr_pages));
    let in_kernel = zone_intersects(spans.span(kernel), start_pfn, nr_pages);
    let in_movable = zone_intersects(spans.movable, start_pfn, nr_pages);
    if in_movable && !in_kernel { OnlineZone::Movable } else { kernel }
}

/// `zone_for_pfn_range` with the default online policy
/// (`memory_hotplug.online_policy=contig-zones`).
pub fn zone_for_pfn_range(
    online_type: OnlineType,
    spans: &ZoneSpans,
    start_pfn: Pfn,
    nr_pages: u64,
) -> OnlineZone {
    match online_type {
        OnlineType::OnlineKernel => {
            OnlineZone::Kernel(default_kernel_zone_for_pfn(spans, start_pfn, nr_pages))
        }
        OnlineType::OnlineMovable => OnlineZone::Movable,
        OnlineType::Online => default_zone_for_pfn(spans, start_pfn, nr_pages),
    }
}

/// `early_node_zone_for_memory_block`: the zone of a boot block, if
/// exactly one populated zone (here: one with a non-empty span)
/// intersects it; `None` (sysfs "none") when it spans several.
pub fn early_zone_for_block(spans: &ZoneSpans, start_pfn: Pfn, nr_pages: u64) -> Option<ZoneType> {
    let mut hit = [ZoneType::Dma, ZoneType::Dma32, ZoneType::Normal]
        .into_iter()
        .filter(|&z| zone_intersects(spans.span(OnlineZone::Kernel(z)), start_pfn, nr_pages));
    match (hit.next(), hit.next()) {
        (Some(z), None) => Some(z),
        _ => None,
    }
}

/// A block's sysfs `valid_zones`: for an online block its zone, or "none"
/// when it spans zones; for an offline block the default zone first, then
/// the other zones `online_kernel` and `online_movable` would pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidZones {
    /// `None`: an online block spanning zones.
    pub first: Option<OnlineZone>,
    pub kernel: Option<OnlineZone>,
    pub movable: Option<OnlineZone>,
}

/// `valid_zones_show` for a block of `nr_pages` at `start_pfn` in `state`;
/// `zone` is the zone of an online block (`mem->zone`).
pub fn valid_zones(
    state: BlockState,
    zone: Option<ZoneType>,
    spans: &ZoneSpans,
    start_pfn: Pfn,
    nr_pages: u64,
) -> ValidZones {
    if state == BlockState::Online {
        let first = zone.map(OnlineZone::of);
        return ValidZones { first, kernel: None, movable: None };
    }
    let default = zone_for_pfn_range(OnlineType::Online, spans, start_pfn, nr_pages);
    let other =
        |t| Some(zone_for_pfn_range(t, spans, start_pfn, nr_pages)).filter(|&z| z != default);
    ValidZones {
        first: Some(default),
        kernel: other(OnlineType::OnlineKernel),
        movable: other(OnlineType::OnlineMovable),
    }
}

impl fmt::Display for ValidZones {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(first) = self.first else {
            return f.write_str("none");
        };
        write!(f, "{first}")?;
        for z in [self.kernel, self.movable].into_iter().flatten() {
            write!(f, " {z}")?;
        }
        Ok(())
    }
}

/// Pages of memmap a block of `size` bytes needs (64-byte descriptors).
pub const fn memmap_pages(size: u64) -> u64 {
    let bytes =
        (size >> crate::page::PAGE_SHIFT) * core::mem::size_of::<crate::page::Page>() as u64;
    bytes >> crate::page::PAGE_SHIFT
}

/// Linux 6.1's `mhp_supports_memmap_on_memory(size)`, with
/// `memory_hotplug.memmap_on_memory` on: the range is exactly one memory
/// block, its memmap a whole number of PMDs (2 MiB, mapped by one huge
/// page) and what is left a whole number of pageblocks. A 128 MiB block
/// qualifies (2 MiB of memmap, one pageblock); a DIMM of two blocks does
/// not (Linux 6.1 puts the memmap on the memory only for single-block
/// additions).
pub const fn mhp_supports_memmap_on_memory(size: u64, block_size: u64) -> bool {
    const PMD_SIZE: u64 = 2 << 20;
    let vmemmap_size = memmap_pages(size) << crate::page::PAGE_SHIFT;
    let remaining = size - vmemmap_size;
    let pageblock = crate::sparse::PAGEBLOCK_NR_PAGES << crate::page::PAGE_SHIFT;
    size == block_size
        && vmemmap_size > 0
        && vmemmap_size.is_multiple_of(PMD_SIZE)
        && remaining.is_multiple_of(pageblock)
}

/// The name of the firmware device (an ACPI PNP0C80 memory device, e.g.
/// QEMU's `MP00`) a block came from: up to 8 ASCII bytes, kept inline so
/// that a block stays `Copy`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DimmName {
    len: u8,
    bytes: [u8; 8],
}

impl DimmName {
    /// `name`, if it is 1 to 8 printable ASCII bytes without spaces.
    pub fn new(name: &str) -> Option<Self> {
        let ok = (1..=8).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_graphic());
        ok.then(|| {
            let mut bytes = [0; 8];
            bytes[..name.len()].copy_from_slice(name.as_bytes());
            Self { len: name.len() as u8, bytes }
        })
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("?")
    }
}

impl fmt::Display for DimmName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for DimmName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// Why `memremap_pages` refuses device memory `[start, start + size)`, in
/// the order Linux 6.1's `pagemap_range` and the `__add_pages` it calls
/// check (`mm/memremap.c`, `mm/memory_hotplug.c`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemremapError {
    /// `ENOMEM`: the first or last pfn already belongs to a device mapping
    /// (`get_dev_pagemap`; Linux warns "Conflicting mapping in same
    /// section"). `with` is that mapping's `[start, end)`.
    Conflict { start: u64, size: u64, with: (u64, u64) },
    /// `ENXIO`: the range is (`mixed`: partly) System RAM
    /// (`region_intersects(..., IORESOURCE_SYSTEM_RAM, ...)`).
    Ram { start: u64, size: u64, mixed: bool },
    /// `EINVAL`: beyond the pluggable range (`mhp_range_allowed`).
    Range { start: u64, size: u64 },
    /// `EINVAL`: not whole sub-sections (`check_pfn_span`).
    Misaligned { start: u64, size: u64 },
    /// `EEXIST`: a sub-section of the range is already active
    /// (`section_activate`), e.g. around another device mapping.
    Exist { start: u64, size: u64 },
}

impl MemremapError {
    /// The Linux errno name.
    pub fn errno(&self) -> &'static str {
        match self {
            Self::Conflict { .. } => "ENOMEM",
            Self::Ram { .. } => "ENXIO",
            Self::Range { .. } | Self::Misaligned { .. } => "EINVAL",
            Self::Exist { .. } => "EEXIST",
        }
    }
}

impl fmt::Display for MemremapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.errno();
        let range = |s: u64, n: u64| MemRange(s, s.saturating_add(n));
        match *self {
            Self::Conflict { start, size, with } => write!(
                f,
                "{e}: {}: Conflicting mapping in same section (device memory {})",
                range(start, size),
                MemRange(with.0, with.1)
            ),
            Self::Ram { start, size, mixed } => write!(
                f,
                "{e}: memremap_pages attempted on {} region {}",
                if mixed { "mixed" } else { "ram" },
                range(start, size)
            ),
            Self::Range { start, size } => {
                write!(f, "{}", AddError::TooBig { start, size })?;
                f.write_str(" (EINVAL from memremap_pages)")
            }
            Self::Misaligned { start, size } => write!(
                f,
                "{e}: Misaligned __add_pages start: {:#x} end: #{:#x} (not whole 2 MiB \
                 sub-sections)",
                start >> crate::page::PAGE_SHIFT,
                (start.saturating_add(size) >> crate::page::PAGE_SHIFT).wrapping_sub(1)
            ),
            Self::Exist { start, size } => {
                write!(f, "{e}: {} overlaps active sub-sections", range(start, size))
            }
        }
    }
}

/// `memremap_pages`' refusals for `[start, start + size)`, in Linux's
/// order. `pgmaps` are the device mappings in place and `ram` the System
/// RAM ranges, both as `[start, end)`; `active(start, size)` says whether a
/// sub-section of the range is already active.
pub fn check_memremap(
    start: u64,
    size: u64,
    pgmaps: &[(u64, u64)],
    ram: &[(u64, u64)],
    active: impl Fn(u64, u64) -> bool,
) -> Result<(), MemremapError> {
    let last = start.saturating_add(size.max(1) - 1);
    for at in [start, last] {
        let page = at & !(crate::page::PAGE_SIZE - 1);
        if let Some(&with) = pgmaps.iter().find(|&&(s, e)| s <= page && page < e) {
            return Err(MemremapError::Conflict { start, size, with });
        }
    }
    let end = start.saturating_add(size);
    let covered: u64 = ram.iter().map(|&(s, e)| e.min(end).saturating_sub(s.max(start))).sum();
    if covered > 0 {
        return Err(MemremapError::Ram { start, size, mixed: covered < size });
    }
    if !mhp_range_allowed(start, size) {
        return Err(MemremapError::Range { start, size });
    }
    if !(start | size).is_multiple_of(SUBSECTION_SIZE) {
        return Err(MemremapError::Misaligned { start, size });
    }
    if active(start, size) {
        return Err(MemremapError::Exist { start, size });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: u64 = 1 << 20;
    const G: u64 = 1 << 30;

    #[test]
    fn block_size_follows_x86() {
        assert_eq!(memory_block_size(2 * G), 128 * M);
        assert_eq!(memory_block_size(64 * G - 1), 128 * M);
        assert_eq!(memory_block_size(64 * G), 2 * G);
        assert_eq!(memory_block_size(65 * G), G);
        assert_eq!(memory_block_size(64 * G + 128 * M), 128 * M);
        assert_eq!(memory_block_size(64 * G + 512 * M), 512 * M);
    }

    /// Pfn of a byte address.
    const fn pfn(addr: u64) -> Pfn {
        crate::page::phys_pfn(addr)
    }

    /// Pages per memory block.
    const BLOCK: u64 = crate::page::bytes_to_pages(128 * M);

    /// Node 0 after booting 4 GiB with `mem=` at `limit` (below 4 GiB).
    fn spans(limit: u64) -> ZoneSpans {
        let empty = (Pfn::ZERO, Pfn::ZERO);
        ZoneSpans {
            kernel: [(Pfn(1), pfn(16 * M)), (pfn(16 * M), pfn(limit)), empty],
            movable: empty,
        }
    }

    #[test]
    fn add_memory_refuses_in_linux_order() {
        use crate::iomem::IoMem;
        let io = IoMem::from_e820(&[
            Entry::new(M, 3 * G, E820Type::RAM),
            Entry::new(4 * G + 128 * M, 4 * G + 192 * M, E820Type::PRAM),
        ]);
        let check = |s, n| check_add_memory(&io, s, n, 128 * M);
        assert_eq!(check(4 * G, 128 * M), Ok(()));
        assert_eq!(check(4 * G, 512 * M).unwrap_err().errno(), "EEXIST", "straddles pmem");
        // Beyond MAX_PHYSMEM_BITS comes first, even unaligned.
        let e = check(1 << 46, 4096).unwrap_err();
        assert_eq!(e.errno(), "E2BIG");
        assert_eq!(
            e.to_string(),
            "E2BIG: Hotplug memory [0x400000000000-0x400000001000] exceeds maximum addressable \
             range [0x0-0x3fffffffffff]"
        );
        assert_eq!(check((1 << 46) - 128 * M, 128 * M), Ok(()), "the last block fits");
        assert_eq!(check(u64::MAX - M, 2 * M).unwrap_err().errno(), "E2BIG", "wraps");
        assert_eq!(check(4 * G, 0).unwrap_err().errno(), "E2BIG", "empty: start < end fails");
        // A conflict before the block-size check: boot RAM, unaligned.
        assert_eq!(check(2 * G + M, 2 * M).unwrap_err().errno(), "EEXIST");
        // Then alignment: half a block next to persistent memory.
        let e = check(4 * G + 192 * M, 64 * M).unwrap_err();
        assert_eq!(
            e.to_string(),
            "EINVAL: Block size [0x8000000] unaligned hotplug range: start 0x10c000000, size \
             0x4000000"
        );
        assert_eq!(check(6 * G + M, 128 * M).unwrap_err().errno(), "EINVAL");
        assert_eq!(check(6 * G, 256 * M), Ok(()), "several blocks at once");
    }

    #[test]
    fn memremap_refuses_in_linux_order() {
        let pmem = (4 * G, 4 * G + 256 * M);
        let pgmaps = [pmem];
        let ram = [(M, 3 * G)];
        // Sub-sections active: the mapping's own, as the sparse model has them.
        let active = |s: u64, n: u64| s < pmem.1 && pmem.0 < s + n;
        let check = |s, n| check_memremap(s, n, &pgmaps, &ram, active);
        let errno = |s, n| check(s, n).unwrap_err().errno();
        assert_eq!(check(8 * G, 256 * M), Ok(()));
        // 1. Start or end inside a device mapping: ENOMEM, before all else
        //    (even unaligned, even overlapping RAM elsewhere).
        assert_eq!(errno(4 * G + 4096, 4096), "ENOMEM");
        assert_eq!(errno(2 * G, 2 * G + 2 * M), "ENOMEM", "ends inside it");
        // 2. System RAM: ENXIO, whole or mixed, before alignment.
        assert_eq!(
            check(2 * G + 4096, 4096),
            Err(MemremapError::Ram { start: 2 * G + 4096, size: 4096, mixed: false })
        );
        let e = check(3 * G - 2 * M, 4 * M).unwrap_err();
        assert_eq!(e, MemremapError::Ram { start: 3 * G - 2 * M, size: 4 * M, mixed: true });
        assert!(e.to_string().starts_with("ENXIO: memremap_pages attempted on mixed region"));
        // 3. Beyond MAX_PHYSMEM_BITS: EINVAL (mhp_range_allowed), before
        //    alignment; empty and wrapping ranges too.
        let e = check(1 << 46, 4096).unwrap_err();
        assert_eq!(e, MemremapError::Range { start: 1 << 46, size: 4096 });
        assert!(e.to_string().contains("exceeds maximum addressable range"), "{e}");
        assert_eq!(errno((1 << 46) - 2 * M, 4 * M), "EINVAL");
        assert_eq!(check(8 * G, 0), Err(MemremapError::Range { start: 8 * G, size: 0 }));
        assert_eq!(check((1 << 46) - 2 * M, 2 * M), Ok(()), "the last sub-section fits");
        // 4. Not whole sub-sections: EINVAL (check_pfn_span).
        let e = check(8 * G + 4096, 2 * M).unwrap_err();
        assert_eq!(e, MemremapError::Misaligned { start: 8 * G + 4096, size: 2 * M });
        assert_eq!(errno(8 * G, 2 * M + 4096), "EINVAL");
        // 5. Around a mapping (start and end outside it): EEXIST.
        assert_eq!(errno(4 * G - 2 * M, 260 * M), "EEXIST");
    }

    #[test]
    fn remove_refuses_an_online_block_with_ebusy() {
        assert_eq!(check_memblock_offlined(BlockState::Offline, 4 * G, 128 * M), Ok(()));
        let e = check_memblock_offlined(BlockState::Online, 4 * G, 128 * M).unwrap_err();
        assert_eq!(
            e.to_string(),
            "EBUSY: removing memory fails, because memory \
             [0x0000000100000000-0x0000000107ffffff] is onlined"
        );
    }

    #[test]
    fn zone_intersects_as_linux() {
        assert!(!zone_intersects((Pfn(0), Pfn(0)), Pfn(0), 10), "an empty zone");
        assert!(!zone_intersects((Pfn(5), Pfn(5)), Pfn(0), 10), "an empty zone");
        assert!(zone_intersects((Pfn(10), Pfn(20)), Pfn(19), 1));
        assert!(!zone_intersects((Pfn(10), Pfn(20)), Pfn(20), 5));
        assert!(!zone_intersects((Pfn(10), Pfn(20)), Pfn(5), 5));
        assert!(zone_intersects((Pfn(10), Pfn(20)), Pfn(5), 6));
        assert!(zone_intersects((Pfn(10), Pfn(20)), Pfn(0), 100), "covering");
    }

    #[test]
    fn online_picks_the_kernel_zone_whose_span_the_block_meets_else_normal() {
        // mem=3G: a block above 4 GiB, and one in the PCI hole.
        let s = spans(3 * G);
        for addr in [4 * G, 3 * G] {
            let z = zone_for_pfn_range(OnlineType::Online, &s, pfn(addr), BLOCK);
            assert_eq!(z, OnlineZone::Kernel(ZoneType::Normal), "{addr:#x}");
        }
        // mem=2560M: a block at 2.5 GiB is below 4 GiB but past DMA32's
        // span, so Normal (not DMA32 by address).
        let s = spans(2560 * M);
        let z = zone_for_pfn_range(OnlineType::Online, &s, pfn(2560 * M), BLOCK);
        assert_eq!(z, OnlineZone::Kernel(ZoneType::Normal));
        // Inside DMA32's span (a boot block offlined in its middle).
        let z = zone_for_pfn_range(OnlineType::Online, &s, pfn(G), BLOCK);
        assert_eq!(z, OnlineZone::Kernel(ZoneType::Dma32));
        // Straddling DMA's end: DMA comes first.
        assert_eq!(default_kernel_zone_for_pfn(&s, Pfn(0), BLOCK), ZoneType::Dma);
        // online_kernel and online_movable.
        let z = zone_for_pfn_range(OnlineType::OnlineKernel, &s, pfn(G), BLOCK);
        assert_eq!(z, OnlineZone::Kernel(ZoneType::Dma32));
        let z = zone_for_pfn_range(OnlineType::OnlineMovable, &s, pfn(G), BLOCK);
        assert_eq!(z, OnlineZone::Movable);
        // Once Normal spans a block, the next one below it stays Normal
        // only if it meets the span; a populated ZONE_MOVABLE alone wins.
        let mut s = spans(2560 * M);
        s.kernel[2] = (pfn(4 * G), pfn(4 * G) + BLOCK);
        s.movable = (pfn(5 * G), pfn(5 * G) + BLOCK);
        let z = zone_for_pfn_range(OnlineType::Online, &s, pfn(5 * G), BLOCK);
        assert_eq!(z, OnlineZone::Movable, "in Movable only");
        s.kernel[2] = (pfn(4 * G), pfn(6 * G));
        let z = zone_for_pfn_range(OnlineType::Online, &s, pfn(5 * G), BLOCK);
        assert_eq!(z, OnlineZone::Kernel(ZoneType::Normal), "in both: the kernel zone");
    }

    #[test]
    fn valid_zones_print_as_sysfs() {
        let s = spans(3 * G);
        let show = |state, zone, addr| valid_zones(state, zone, &s, pfn(addr), BLOCK).to_string();
        // Boot blocks: memory0 spans DMA and DMA32.
        assert_eq!(early_zone_for_block(&s, Pfn(0), BLOCK), None);
        assert_eq!(early_zone_for_block(&s, pfn(128 * M), BLOCK), Some(ZoneType::Dma32));
        assert_eq!(show(BlockState::Online, None, 0), "none");
        assert_eq!(show(BlockState::Online, Some(ZoneType::Dma32), 128 * M), "DMA32");
        // Offline: the default zone, then the others.
        assert_eq!(show(BlockState::Offline, None, 4 * G), "Normal Movable");
        assert_eq!(show(BlockState::Offline, None, G), "DMA32 Movable");
        assert_eq!(show(BlockState::Online, Some(ZoneType::Normal), 4 * G), "Normal");
        let mut m = s;
        m.movable = (pfn(4 * G), pfn(4 * G) + BLOCK);
        let z = valid_zones(BlockState::Offline, None, &m, pfn(4 * G), BLOCK);
        assert_eq!(z.to_string(), "Movable Normal");
        assert_eq!(PhysIndex(33).to_string(), "00000021");
    }

    #[test]
    fn online_words_parse_as_sysfs() {
        for t in [OnlineType::Online, OnlineType::OnlineKernel, OnlineType::OnlineMovable] {
            assert_eq!(OnlineType::from_word(t.name()), Some(t));
        }
        assert_eq!(OnlineType::from_word("offline"), None);
        assert_eq!(BlockState::Online.name(), "online");
    }

    #[test]
    fn only_withheld_firmware_ram_may_be_probed() {
        // RAM 0-3 GiB and 4-5 GiB; mem=3G kept the first; the bootloader
        // sits at 4 GiB + 900 MiB.
        let fw = [
            Entry::new(0, 3 * G, E820Type::RAM),
            Entry::new(3 * G, 4 * G, E820Type::RESERVED),
            Entry::new(4 * G, 4 * G + 512 * M, E820Type::RAM),
            Entry::new(4 * G + 512 * M, 5 * G, E820Type::RAM),
        ];
        let present = [PhysRange::new(M, 3 * G)];
        let used = [PhysRange::new(4 * G + 900 * M, 4 * G + 901 * M)];
        // memmap=64M!4G+768M in the user map; mem=3G dropped the rest.
        let user = [
            Entry::new(0, 3 * G, E820Type::RAM),
            Entry::new(3 * G, 4 * G, E820Type::RESERVED),
            Entry::new(4 * G + 768 * M, 4 * G + 832 * M, E820Type::PRAM),
        ];
        let check = |s, n| check_withheld(&fw, &user, &present, &used, s, n, 128 * M);
        assert_eq!(check(4 * G, 128 * M), Ok(()));
        assert_eq!(check(4 * G + 384 * M, 256 * M), Ok(()), "across two adjacent RAM entries");
        assert_eq!(check(4 * G, 64 * M).unwrap_err().errno(), "EINVAL");
        assert_eq!(check(6 * G + M, 128 * M).unwrap_err().errno(), "EINVAL");
        assert_eq!(check(u64::MAX - 128 * M + 1, 128 * M).unwrap_err().errno(), "EINVAL");
        assert_eq!(check(4 * G, 0).unwrap_err().errno(), "EINVAL");
        assert_eq!(
            check(3 * G - 128 * M, 256 * M),
            Err(ProbeError::InUse { start: 3 * G - 128 * M, size: 256 * M })
        );
        assert_eq!(
            check(3 * G, 128 * M),
            Err(ProbeError::NotRam { start: 3 * G, size: 128 * M, at: 3 * G })
        );
        assert_eq!(
            check(5 * G - 128 * M, 256 * M),
            Err(ProbeError::NotRam { start: 5 * G - 128 * M, size: 256 * M, at: 5 * G })
        );
        let e = check(4 * G + 896 * M, 128 * M).unwrap_err();
        assert_eq!(e.errno(), "EBUSY");
        assert!(format!("{e}").contains("[mem 0x0000000138400000-0x00000001384fffff]"), "{e}");
        assert_eq!(
            check_withheld(&fw, &user, &present, &used, 4 * G, 2 * M, SUBSECTION_SIZE),
            Ok(())
        );
        assert_eq!(
            check(4 * G + 640 * M, 256 * M),
            Err(ProbeError::NotRam { start: 4 * G + 640 * M, size: 256 * M, at: 4 * G + 768 * M }),
            "persistent memory from memmap= is not RAM to probe"
        );
    }
}

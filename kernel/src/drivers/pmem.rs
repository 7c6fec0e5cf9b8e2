//! Persistent-memory regions and their driver: each NFIT persistent range
//! is a region (`region0`) with one namespace (`namespace0.0`) covering it,
//! hot-added into ZONE_DEVICE through a `memremap_pages`-like path, one
//! 2 MiB sub-section at a time, next to System RAM in the same section.
//!
//! A region's life: `offline --add--> added (ZONE_DEVICE) --remove--> offline`.
//!
//! A namespace is `raw` (no info block: its memmap lives in System RAM and
//! the kernel writes nothing to the device), `fsdax` or `devdax` (Linux's
//! info block at offset 4 KiB, [`mm::nd_pfn`]; with `map=dev` the memmap
//! lives on the device between the info block and `dataoff`). The info
//! block is probed once at boot ([`probe`]) and written by [`set_mode`].

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use mm::e820::MemRange;
use mm::memory_block::{self, MemremapError};
use mm::nd_pfn::{self, INFO_OFFSET, INFO_SIZE, Kind, Layout, PfnMode};
use mm::page::{PAGE_SHIFT, Pfn, ZoneType, pfn_phys, phys_pfn};
use mm::sparse::{
    Altmap, MemSection, PAGES_PER_SECTION, PAGES_PER_SUBSECTION, SectionLine, SparseError, flags,
    pfn_to_section_nr,
};
use spin::Mutex;

use crate::mm::memblock::MEMBLOCK;
use crate::mm::physmap;
use crate::mm::sparse::SPARSE;

const SUBSECTION: u64 = PAGES_PER_SUBSECTION << PAGE_SHIFT;

/// Where a region was described.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A firmware NFIT SPA range (e.g. a QEMU `nvdimm`).
    Firmware { spa: u16 },
    /// Tessera's own NFIT for a `memmap=nn!ss` (E820 type 12) or E820
    /// type 7 range.
    Emulated { spa: u16, legacy: bool },
}

/// Whether a region's range is in ZONE_DEVICE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Offline,
    Added,
}

/// A persistent-memory region and its one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    /// `regionN`.
    pub id: usize,
    pub start: u64,
    pub size: u64,
    pub origin: Origin,
    pub state: State,
    /// The namespace's info block, when it has one Tessera honours
    /// (`None`: raw).
    pub layout: Option<Layout>,
}

impl Region {
    /// `regionN`.
    pub fn name(&self) -> String {
        alloc::format!("region{}", self.id)
    }

    /// `namespaceN.0`.
    pub fn namespace(&self) -> String {
        alloc::format!("namespace{}.0", self.id)
    }

    /// The end (exclusive); `MemRange` prints it inclusive, as Linux does.
    pub fn end(&self) -> u64 {
        self.start + self.size
    }

    /// The `dev_pagemap` id its pages point to.
    pub fn pgmap(&self) -> u64 {
        self.id as u64 + 1
    }

    /// ndctl's mode: `raw`, `fsdax` or `devdax`.
    pub fn mode(&self) -> &'static str {
        self.layout.map_or("raw", |l| l.kind().name())
    }

    /// The range handed to `memremap_pages`: the namespace, less an info
    /// block's `start_pad` and `end_trunc`.
    pub fn mapped(&self) -> (u64, u64) {
        self.layout.map_or((self.start, self.end()), |l| l.range())
    }

    /// The data area: the whole namespace when raw, else from `dataoff`.
    pub fn data(&self) -> (u64, u64) {
        self.layout.map_or((self.start, self.end()), |l| l.data())
    }

    /// The altmap that puts the memmap on the device: an info block with
    /// `map=dev` on a namespace of whole sections (Linux, too, maps less
    /// than a section's memmap from System RAM).
    pub fn altmap(&self) -> Option<Altmap> {
        let l = self.layout?;
        nd_pfn::altmap_need(l.range())?;
        l.altmap()
    }

    /// The altmap as a whole add leaves it (every free page handed out),
    /// for a remove or the undo of an add to give pages back to.
    fn altmap_as_added(&self) -> Option<Altmap> {
        self.altmap().map(|a| Altmap { alloc: a.free, ..a })
    }

    /// Whether the memmap lives on the device.
    pub fn has_altmap(&self) -> bool {
        self.altmap().is_some()
    }

    /// Linux's device name for the namespace's personality: `pfn0.0`,
    /// `dax0.0`, or the namespace itself when raw.
    pub fn device(&self) -> String {
        match self.layout.map(|l| l.kind()) {
            Some(Kind::Fsdax) => alloc::format!("pfn{}.0", self.id),
            Some(Kind::Devdax) => alloc::format!("dax{}.0", self.id),
            None => self.namespace(),
        }
    }

    /// The region, its range, where it was described and its namespace:
    /// what is known before the namespace's info block is probed.
    pub fn heading(&self) -> String {
        let origin = match self.origin {
            Origin::Firmware { spa } => alloc::format!("firmware NFIT spa {spa}"),
            Origin::Emulated { spa, legacy: true } => {
                alloc::format!("emulated NFIT spa {spa}, memmap=!")
            }
            Origin::Emulated { spa, legacy: false } => {
                alloc::format!("emulated NFIT spa {spa}, e820")
            }
        };
        alloc::format!(
            "{}: {} {} MiB ({origin}) {}",
            self.name(),
            MemRange(self.start, self.end()),
            self.size >> 20,
            self.namespace()
        )
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}{}",
            self.heading(),
            self.mode(),
            if self.state == State::Added { "added" } else { "offline" },
            if self.has_altmap() { ", altmap" } else { "" }
        )
    }
}

/// Why the driver refused or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PmemError {
    /// No such region.
    NoRegion { id: usize },
    /// `memremap_pages` refuses the range (ENOMEM, ENXIO, EINVAL, EEXIST).
    Memremap(MemremapError),
    /// `EBUSY`: the region is added already (Linux's `pmem_attach_disk`
    /// cannot request its range again).
    Busy { id: usize },
    /// The region is not added (for remove).
    NotAdded { id: usize },
    /// The memory model refused or ran out of memory.
    Sparse(SparseError),
    /// The kernel's mapping of the range could not be made.
    Map { addr: u64 },
    /// `ENOMEM`: a namespace whose memmap would live in System RAM and take
    /// too much of it.
    MemmapInRam { id: usize, memmap: u64, ram: u64 },
    /// No layout can be made for the asked mode.
    Layout(nd_pfn::LayoutError),
    /// `EINVAL`: `pmem read`/`write` outside the data area.
    Bounds { offset: u64, len: u64, size: u64 },
    /// `EPERM`: a `memmap=` range over memory the firmware did not report
    /// as RAM or persistent memory (firmware tables, nothing at all), or
    /// over the kernel's own boot memory: the driver never writes there.
    NotBacked { id: usize, start: u64, end: u64 },
}

impl PmemError {
    /// The Linux errno name.
    pub fn errno(&self) -> &'static str {
        match self {
            Self::NoRegion { .. } => "ENODEV",
            Self::NotAdded { .. } => "EINVAL",
            Self::Memremap(m) => m.errno(),
            Self::Busy { .. } => "EBUSY",
            Self::Sparse(e) => e.errno(),
            Self::Map { .. } | Self::MemmapInRam { .. } => "ENOMEM",
            Self::Layout(l) => l.errno(),
            Self::Bounds { .. } => "EINVAL",
            Self::NotBacked { .. } => "EPERM",
        }
    }
}

impl fmt::Display for PmemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.errno();
        match *self {
            Self::NoRegion { id } => write!(f, "{e}: no region{id}"),
            Self::Memremap(m) => write!(f, "{m}"),
            Self::Busy { id } => write!(f, "{e}: region{id} is already added"),
            Self::NotAdded { id } => write!(f, "{e}: region{id} is not added"),
            Self::Sparse(s) => write!(f, "{s}"),
            Self::Map { addr } => write!(f, "{e}: cannot map {addr:#x} in the kernel"),
            Self::MemmapInRam { id, memmap, ram } => write!(
                f,
                "{e}: namespace{id}.0 would need {} MiB of memmap in System RAM ({} MiB): \
                 not added; make it fsdax or devdax (pmem mode region{id} fsdax) to keep its \
                 memmap on the device",
                memmap >> 20,
                ram >> 20
            ),
            Self::Layout(l) => write!(f, "{l}"),
            Self::Bounds { offset, len, size } => {
                write!(f, "{e}: {offset:#x} + {len:#x} is outside the {size:#x}-byte data area")
            }
            Self::NotBacked { id, start, end } => write!(
                f,
                "{e}: region{id}: {} is not RAM or persistent memory in the firmware map \
                 (or holds the kernel's boot memory): raw only, nothing is written there",
                MemRange(start, end)
            ),
        }
    }
}

static REGIONS: Mutex<Vec<Region>> = Mutex::new(Vec::new());

/// The regions, in id order.
pub fn regions() -> Vec<Region> {
    REGIONS.lock().clone()
}

/// Registers one region per persistent range and lists them, as the NFIT
/// bus does at boot.
pub fn register(ranges: &[crate::acpi::PmemRange]) {
    use crate::acpi::Described;
    let mut regions = REGIONS.lock();
    for r in ranges {
        let (start, size, spa) = (r.start, r.size, r.spa);
        let origin = match r.described {
            Described::Firmware => Origin::Firmware { spa },
            Described::Emulated { legacy } => Origin::Emulated { spa, legacy },
        };
        let id = regions.len();
        regions.push(Region { id, start, size, origin, state: State::Offline, layout: None });
    }
    for r in regions.iter() {
        // /proc/iomem: the range (unless E820 already named it, as
        // `memmap=nn!ss` does), the namespace under it.
        let end = r.end() - 1;
        let legacy = crate::mm::iomem::contains(r.start, end, "Persistent Memory (legacy)");
        let range = if legacy {
            Ok(())
        } else {
            crate::mm::iomem::insert(r.start, end, "Persistent Memory")
        };
        if let Err(e) = range.and_then(|()| crate::mm::iomem::insert(r.start, end, &r.namespace()))
        {
            log::warn!("iomem: {e}");
        }
        // Its mode is known once its info block is probed, before the add.
        log::info!("pmem: {}", r.heading());
        if !backed(r) {
            log::warn!("pmem: {}", PmemError::NotBacked { id: r.id, start: r.start, end: r.end() });
        }
        // Offline ranges are not in the kernel's map (the bootloader maps
        // an emulated range with the rest of RAM).
        physmap::unmap(r.start, r.size);
    }
}

/// The section line of the section holding `pfn`.
fn section_line(nr: u64) -> String {
    let line = SectionLine(nr, SPARSE.lock().section_or_empty(nr)).summary();
    alloc::format!("{line}")
}

/// Hot-adds region `id`: `memremap_pages` for its namespace. `step` is
/// called after each sub-section (each section with an altmap) with the
/// section's line, so a caller can show the bits filling in.
pub fn add(id: usize, step: &mut dyn FnMut(u64, &str)) -> Result<Region, PmemError> {
    let r = region(id)?;
    if r.state == State::Added {
        return Err(PmemError::Busy { id });
    }
    let (start, end) = r.mapped();
    let size = end - start;
    check_range(start, size)?;
    check_memmap_fits(&r)?;
    let (first, nr_pages) = (phys_pfn(start), phys_pfn(size));
    let t0 = crate::arch::time::uptime_us();
    if let Some(mut altmap) = r.altmap() {
        // One call: the altmap must start the range it serves.
        SPARSE
            .lock()
            .add_pages(0, first, nr_pages, PAGES_PER_SUBSECTION, Some(&mut altmap))
            .map_err(PmemError::Sparse)?;
        init_device_pages(first, nr_pages, r.pgmap());
        taint_partial_sections(first, nr_pages, first);
        taint_partial_sections(first, nr_pages, first + nr_pages - 1);
        for pfn in (first..first + nr_pages).step_by(PAGES_PER_SECTION as usize) {
            let nr = pfn_to_section_nr(pfn);
            step(nr, &section_line(nr));
        }
    } else {
        for pfn in (first..first + nr_pages).step_by(PAGES_PER_SUBSECTION as usize) {
            let added =
                SPARSE.lock().add_pages(0, pfn, PAGES_PER_SUBSECTION, PAGES_PER_SUBSECTION, None);
            if let Err(e) = added {
                undo(&r, pfn - first);
                return Err(PmemError::Sparse(e));
            }
            init_device_pages(pfn, PAGES_PER_SUBSECTION, r.pgmap());
            taint_partial_sections(first, nr_pages, pfn);
            let nr = pfn_to_section_nr(pfn);
            step(nr, &section_line(nr));
        }
    }
    if let Err(addr) = physmap::map(start, size) {
        undo(&r, nr_pages);
        return Err(PmemError::Map { addr });
    }
    crate::mm::zone::move_pfn_range_to_zone(ZoneType::Device, first, nr_pages);
    let sections = pfn_to_section_nr(first + nr_pages - 1) - pfn_to_section_nr(first) + 1;
    let took = crate::arch::time::uptime_us() - t0;
    log::info!(
        "pmem: {} {} added: {} sub-sections in {} section{}, {}{} ({}.{:03} ms)",
        r.name(),
        MemRange(start, start + size),
        nr_pages / PAGES_PER_SUBSECTION,
        sections,
        if sections == 1 { "" } else { "s" },
        r.mode(),
        if r.has_altmap() { ", memmap on the device" } else { ", memmap in System RAM" },
        took / 1000,
        took % 1000
    );
    let mut regions = REGIONS.lock();
    regions[id].state = State::Added;
    Ok(regions[id].clone())
}

/// Hot-removes region `id` (`memunmap_pages`), sub-section by sub-section,
/// calling `step` with the section line after each.
pub fn remove(id: usize, step: &mut dyn FnMut(u64, &str)) -> Result<Region, PmemError> {
    let r = region(id)?;
    if r.state != State::Added {
        return Err(PmemError::NotAdded { id });
    }
    let (start, end) = r.mapped();
    let (first, nr_pages) = (phys_pfn(start), phys_pfn(end - start));
    let mut altmap = r.altmap_as_added();
    let stride = if altmap.is_some() { PAGES_PER_SECTION } else { PAGES_PER_SUBSECTION };
    for pfn in (0..nr_pages / stride).rev().map(|i| first + i * stride) {
        release_pages(pfn, stride);
        let mut s = SPARSE.lock();
        s.remove_pages(pfn, stride, altmap.as_mut()).map_err(PmemError::Sparse)?;
        drop(s);
        physmap::unmap(pfn_phys(pfn), pfn_phys(stride));
        let nr = pfn_to_section_nr(pfn);
        step(nr, &section_line(nr));
    }
    // Linux leaves ZONE_DEVICE's span as it was (a no-op, kept for the picture).
    crate::mm::zone::remove_pfn_range_from_zone(ZoneType::Device, first, nr_pages);
    log::info!("pmem: {} {} removed", r.name(), MemRange(start, end));
    let mut regions = REGIONS.lock();
    regions[id].state = State::Offline;
    Ok(regions[id].clone())
}

/// `memremap_pages`' refusals in Linux 6.1's order
/// ([`memory_block::check_memremap`]): start or end inside an added
/// region (ENOMEM), System RAM (ENXIO), beyond MAX_PHYSMEM_BITS (EINVAL),
/// not whole 2 MiB sub-sections (EINVAL), sub-sections already active
/// (EEXIST).
pub fn check_range(start: u64, size: u64) -> Result<(), PmemError> {
    let regions = REGIONS.lock();
    let added = regions.iter().filter(|r| r.state == State::Added).map(Region::mapped);
    let pgmaps: Vec<(u64, u64)> = added.collect();
    drop(regions);
    let mb = MEMBLOCK.lock();
    let ram: Vec<(u64, u64)> = mb.memory.regions().iter().map(|r| (r.base, r.end())).collect();
    drop(mb);
    let active = |s: u64, n: u64| SPARSE.lock().active_subsections(phys_pfn(s), phys_pfn(n)).0;
    memory_block::check_memremap(start, size, &pgmaps, &ram, active).map_err(PmemError::Memremap)
}

/// A memmap that is not on the device (raw, `map=mem`, less than whole
/// sections) lives in System RAM: refuse a namespace whose memmap would
/// take more than a sixteenth of it.
pub fn check_memmap_fits(r: &Region) -> Result<(), PmemError> {
    if r.has_altmap() {
        return Ok(());
    }
    let memmap = phys_pfn(r.size) * core::mem::size_of::<mm::page::Page>() as u64;
    let ram = MEMBLOCK.lock().memory.total();
    if memmap > ram / 16 {
        return Err(PmemError::MemmapInRam { id: r.id, memmap, ram });
    }
    Ok(())
}

fn region(id: usize) -> Result<Region, PmemError> {
    REGIONS.lock().get(id).cloned().ok_or(PmemError::NoRegion { id })
}

/// The physical-memory map's address of `phys`.
fn virt(phys: u64) -> u64 {
    crate::boot::mappings().expect("recorded at boot").physical_memory_offset + phys
}

/// Runs `f` on the info block's 4 KiB of `r` in the physical-memory map,
/// mapping the namespace's first 2 MiB for the time of the call when the
/// region is not added.
fn with_info_block<T>(
    r: &Region,
    f: impl FnOnce(&mut [u8; INFO_SIZE]) -> T,
) -> Result<T, PmemError> {
    physmap::map(r.start, SUBSECTION).map_err(|addr| PmemError::Map { addr })?;
    let at = virt(r.start + INFO_OFFSET);
    // SAFETY: `[at, at + 4 KiB)` lies in the namespace's first 2 MiB, mapped
    // just above; the region belongs to this driver and nothing else holds
    // a reference into its info-block area (the memmap starts at 8 KiB).
    let block = unsafe { &mut *(at as *mut [u8; INFO_SIZE]) };
    let t = f(block);
    // SAFETY: the 4 KiB were mapped above.
    unsafe { crate::arch::cpu::flush_cache_range(at, INFO_SIZE as u64) };
    if r.state != State::Added {
        physmap::unmap(r.start, SUBSECTION);
    }
    Ok(t)
}

/// `nd_pfn_probe`: reads namespace `id`'s info block and adopts its layout
/// when it is valid; otherwise the namespace is raw. Writes nothing.
pub fn probe(id: usize) -> Result<Option<Layout>, PmemError> {
    let r = region(id)?;
    let block = with_info_block(&r, |b| *b)?;
    let ns = r.namespace();
    let layout = match nd_pfn::validate(&block, r.start, r.size) {
        Ok(Some(l)) => {
            log::info!("pmem: {ns}: {}", Described(&l));
            Some(l)
        }
        Ok(None) => {
            log::info!("pmem: {ns}: no info block at offset 0x1000: raw");
            None
        }
        Err(e) => {
            log::warn!("pmem: {ns}: bad info block at offset 0x1000: {e}; raw, nothing written");
            None
        }
    };
    REGIONS.lock()[id].layout = layout;
    Ok(layout)
}

/// One line for an info block's layout.
struct Described<'a>(&'a Layout);

impl fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = self.0;
        let (ds, de) = l.data();
        write!(
            f,
            "{} info block v{}.{}: map {}, align {:#x}, dataoff {:#x}, npfns {}, data {} ({} bytes)",
            l.kind().name(),
            l.sb.version_major,
            l.sb.version_minor,
            l.mode().map_name(),
            l.align(),
            l.sb.dataoff,
            l.sb.npfns,
            MemRange(ds, de),
            de - ds
        )
    }
}

/// A namespace personality for [`set_mode`]: `None` is raw.
pub type Mode = Option<(Kind, PfnMode, u64)>;

/// A fresh uuid for a new info block of `r`.
fn uuid_for(r: &Region) -> [u8; 16] {
    nd_pfn::uuid_v4(crate::arch::time::uptime_us() ^ r.start.rotate_left(17))
}

/// `ndctl create-namespace -f -e namespaceN.0 -m MODE`: removes region
/// `id` if it is added, writes its new info block (for raw, clears an info
/// block that is there; a namespace without one is not written at all),
/// then adds it again in the new mode, calling `step` as [`add`] and
/// [`remove`] do. Refusals (no region, a layout that cannot be made, a
/// memmap that would not fit) come before anything changes.
pub fn set_mode(
    id: usize,
    mode: Mode,
    step: &mut dyn FnMut(u64, &str),
) -> Result<Region, PmemError> {
    let r = region(id)?;
    check_backed(&r)?;
    let layout = match mode {
        Some((kind, map, align)) => Some(
            nd_pfn::init(kind, map, r.start, r.size, align, uuid_for(&r))
                .map_err(PmemError::Layout)?,
        ),
        None => None,
    };
    check_memmap_fits(&Region { layout, ..r.clone() })?;
    if r.state == State::Added {
        remove(id, step)?;
    }
    let ns = r.namespace();
    let r = region(id)?;
    with_info_block(&r, |block| match layout {
        Some(l) => {
            *block = l.sb.to_bytes();
            log::info!("pmem: {ns}: wrote {}", Described(&l));
        }
        None if nd_pfn::validate(block, r.start, r.size) != Ok(None) => {
            block.fill(0);
            log::info!("pmem: {ns}: cleared the info block at offset 0x1000: raw");
        }
        None => log::info!("pmem: {ns}: no info block to clear: raw, nothing written"),
    })?;
    REGIONS.lock()[id].layout = layout;
    add(id, step)
}

/// Refuses to write a region that Linux's `memmap=` semantics placed over
/// memory that is not the firmware's RAM or persistent memory (e.g.
/// `memmap=32M!0x7ff00000` on 2 GiB claims ACPI tables and a hole), or
/// over the bootloader's pieces (the kernel, its page tables and stack).
/// Firmware NFIT ranges are the device itself.
fn check_backed(r: &Region) -> Result<(), PmemError> {
    if backed(r) {
        Ok(())
    } else {
        Err(PmemError::NotBacked { id: r.id, start: r.start, end: r.end() })
    }
}

/// See [`check_backed`].
fn backed(r: &Region) -> bool {
    match (r.origin, crate::mm::firmware::maps()) {
        (Origin::Firmware { .. }, _) | (_, None) => true,
        (Origin::Emulated { .. }, Some(m)) => {
            mm::usermap::is_backed(&m.bios, &m.in_use, mm::addr::PhysRange::new(r.start, r.end()))
        }
    }
}

/// Checks `[offset, offset + len)` against region `id`'s data area and
/// returns its physical address; the region must be added.
fn data_at(id: usize, offset: u64, len: u64) -> Result<u64, PmemError> {
    let r = region(id)?;
    check_backed(&r)?;
    if r.state != State::Added {
        return Err(PmemError::NotAdded { id });
    }
    let (ds, de) = r.data();
    let size = de - ds;
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(ds + offset),
        _ => Err(PmemError::Bounds { offset, len, size }),
    }
}

/// `len` bytes of region `id`'s data area from `offset`.
pub fn read(id: usize, offset: u64, len: u64) -> Result<Vec<u8>, PmemError> {
    let phys = data_at(id, offset, len)?;
    let mut out = alloc::vec![0u8; len as usize];
    // SAFETY: `data_at` checked that the bytes lie in an added region's
    // data area, which the driver keeps mapped while the region is added.
    unsafe { core::ptr::copy_nonoverlapping(virt(phys) as *const u8, out.as_mut_ptr(), out.len()) };
    Ok(out)
}

/// Writes `bytes` to region `id`'s data area at `offset` and flushes them
/// to the device.
pub fn write(id: usize, offset: u64, bytes: &[u8]) -> Result<(), PmemError> {
    let phys = data_at(id, offset, bytes.len() as u64)?;
    // SAFETY: as in `read`; the data area holds no kernel structure (the
    // memmap is below `dataoff`), so writing it breaks no invariant.
    unsafe {
        core::ptr::copy_nonoverlapping(bytes.as_ptr(), virt(phys) as *mut u8, bytes.len());
        crate::arch::cpu::flush_cache_range(virt(phys), bytes.len() as u64);
    }
    Ok(())
}

/// `memmap_init_zone_device`: the pages join ZONE_DEVICE with their pgmap.
fn init_device_pages(pfn: Pfn, nr_pages: u64, pgmap: u64) {
    SPARSE.lock().memmap_init_range(pfn, nr_pages, ZoneType::Device, 0, pgmap);
}

/// Before removal: in an early section the memmap stays, so the pages go
/// back to being reserved holes of their RAM zone.
fn release_pages(pfn: Pfn, nr_pages: u64) {
    let mut s = SPARSE.lock();
    if s.pfn_to_section(pfn).is_some_and(MemSection::early) {
        let zone = ZoneType::for_pfn(pfn);
        s.memmap_init_range(pfn, nr_pages, zone, 0, 0);
    }
}

/// Linux's rule in `move_pfn_range_to_zone`: a device range that starts or
/// ends inside a section taints that section (it shares it with something
/// else, usually System RAM). Applied to the section of `pfn` as soon as a
/// step reaches it, so the flag shows in that step's line.
fn taint_partial_sections(first: Pfn, nr_pages: u64, pfn: Pfn) {
    let end = first + nr_pages;
    let nr = pfn_to_section_nr(pfn);
    let starts_inside = !first.is_multiple_of(PAGES_PER_SECTION) && pfn_to_section_nr(first) == nr;
    let ends_inside = !end.is_multiple_of(PAGES_PER_SECTION) && pfn_to_section_nr(end - 1) == nr;
    if starts_inside || ends_inside {
        SPARSE.lock().set_section_flags(pfn, 1, flags::TAINT_ZONE_DEVICE, true);
    }
}

/// Undoes the first `nr_pages` of an add of `r` that failed part way.
fn undo(r: &Region, nr_pages: u64) {
    if nr_pages == 0 {
        return;
    }
    let first = phys_pfn(r.mapped().0);
    physmap::unmap(pfn_phys(first), pfn_phys(nr_pages));
    release_pages(first, nr_pages);
    let mut altmap = r.altmap_as_added();
    if let Err(e) = SPARSE.lock().remove_pages(first, nr_pages, altmap.as_mut()) {
        log::error!("pmem: undoing a failed add: {e}");
    }
}

/// What a faulting address in the physical-memory map hit, if it is a
/// persistent-memory region: for the page-fault report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PmemFault {
    pub id: usize,
    pub start: u64,
    pub end: u64,
    pub state: State,
}

impl fmt::Display for PmemFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is persistent memory region{} (namespace{}.0), {}",
            MemRange(self.start, self.end),
            self.id,
            self.id,
            match self.state {
                State::Offline => "not added: removed ranges are unmapped",
                State::Added => "added (or being added or removed)",
            }
        )
    }
}

/// The fault handler's describer (registered by `init`): names the
/// persistent-memory region a faulting address is in.
pub fn describe_fault(virt: u64) -> Option<crate::arch::idt::FaultNote> {
    fault_at(virt).map(|f| crate::arch::idt::FaultNote::new(format_args!("{f}")))
}

/// The region whose physical-memory-map address `virt` is, for the page
/// fault handler. Never waits: if the region list is busy (the fault came
/// from inside the driver) the answer is `None`.
pub fn fault_at(virt: u64) -> Option<PmemFault> {
    let off = crate::boot::mappings()?.physical_memory_offset;
    let phys = virt.checked_sub(off)?;
    let regions = REGIONS.try_lock()?;
    let r = regions.iter().find(|r| r.start <= phys && phys < r.end())?;
    Some(PmemFault { id: r.id, start: r.start, end: r.end(), state: r.state })
}

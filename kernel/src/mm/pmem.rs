//! Persistent-memory regions and their driver: each NFIT persistent range
//! is a region (`region0`) with one namespace (`namespace0.0`) covering it,
//! hot-added into ZONE_DEVICE through a `memremap_pages`-like path, one
//! 2 MiB sub-section at a time, next to System RAM in the same section.
//!
//! A region's life: `offline --add--> added (ZONE_DEVICE) --remove--> offline`.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use mm::e820::MemRange;
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
const SECTION: u64 = PAGES_PER_SECTION << PAGE_SHIFT;

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
    /// The range's own memmap lives at its start (whole sections only).
    pub altmap: bool,
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

    fn whole_sections(&self) -> bool {
        self.start.is_multiple_of(SECTION) && self.size.is_multiple_of(SECTION)
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let origin = match self.origin {
            Origin::Firmware { spa } => alloc::format!("firmware NFIT spa {spa}"),
            Origin::Emulated { spa, legacy: true } => {
                alloc::format!("emulated NFIT spa {spa}, memmap=!")
            }
            Origin::Emulated { spa, legacy: false } => {
                alloc::format!("emulated NFIT spa {spa}, e820")
            }
        };
        write!(
            f,
            "{}: {} {} MiB ({origin}) {}{}{}",
            self.name(),
            MemRange(self.start, self.end()),
            self.size >> 20,
            self.namespace(),
            if self.state == State::Added { " added" } else { " offline" },
            if self.altmap { ", altmap" } else { "" }
        )
    }
}

/// Why the driver refused or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PmemError {
    /// No such region.
    NoRegion { id: usize },
    /// `EINVAL`: not 2 MiB aligned.
    Inval { start: u64, size: u64 },
    /// `EEXIST`: some sub-section of the range is already active.
    Exist { start: u64, size: u64 },
    /// `ENXIO`: the range intersects System RAM.
    Nxio { start: u64, size: u64 },
    /// The region is not added (for remove).
    NotAdded { id: usize },
    /// The memory model refused or ran out of memory.
    Sparse(SparseError),
    /// The kernel's mapping of the range could not be made.
    Map { addr: u64 },
}

impl PmemError {
    /// The Linux errno name.
    pub fn errno(&self) -> &'static str {
        match self {
            Self::NoRegion { .. } => "ENODEV",
            Self::Inval { .. } | Self::NotAdded { .. } => "EINVAL",
            Self::Exist { .. } => "EEXIST",
            Self::Nxio { .. } => "ENXIO",
            Self::Sparse(e) => e.errno(),
            Self::Map { .. } => "ENOMEM",
        }
    }
}

impl fmt::Display for PmemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.errno();
        match *self {
            Self::NoRegion { id } => write!(f, "{e}: no region{id}"),
            Self::Inval { start, size } => {
                write!(f, "{e}: {} is not 2 MiB aligned", MemRange(start, start + size))
            }
            Self::Exist { start, size } => {
                write!(f, "{e}: {} is already (partly) added", MemRange(start, start + size))
            }
            Self::Nxio { start, size } => {
                write!(f, "{e}: {} intersects System RAM", MemRange(start, start + size))
            }
            Self::NotAdded { id } => write!(f, "{e}: region{id} is not added"),
            Self::Sparse(s) => write!(f, "{s}"),
            Self::Map { addr } => write!(f, "{e}: cannot map {addr:#x} in the kernel"),
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
pub fn register(ranges: &[(u64, u64, Origin)]) {
    let mut regions = REGIONS.lock();
    for &(start, size, origin) in ranges {
        let id = regions.len();
        let r = Region { id, start, size, origin, state: State::Offline, altmap: false };
        let altmap = r.whole_sections();
        regions.push(Region { altmap, ..r });
    }
    for r in regions.iter() {
        log::info!("pmem: {r}");
        // Offline ranges are not in the kernel's map (the bootloader maps
        // an emulated range with the rest of RAM).
        physmap::unmap(r.start, r.size);
    }
}

/// The section line of the section holding `pfn`.
fn section_line(nr: u64) -> String {
    alloc::format!("{}", SectionLine(nr, SPARSE.lock().section_or_empty(nr)))
}

/// Hot-adds region `id`: `memremap_pages` for its namespace. `step` is
/// called after each sub-section (each section with an altmap) with the
/// section's line, so a caller can show the bits filling in.
pub fn add(id: usize, step: &mut dyn FnMut(u64, &str)) -> Result<Region, PmemError> {
    let r = REGIONS.lock().get(id).cloned().ok_or(PmemError::NoRegion { id })?;
    let (start, size) = (r.start, r.size);
    check_range(start, size)?;
    let (first, nr_pages) = (phys_pfn(start), phys_pfn(size));
    let t0 = crate::arch::time::uptime_us();
    if r.altmap {
        // One call: the altmap must start the range it serves.
        let mut altmap = altmap_for(first, nr_pages);
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
                undo(first, pfn - first, r.altmap);
                return Err(PmemError::Sparse(e));
            }
            init_device_pages(pfn, PAGES_PER_SUBSECTION, r.pgmap());
            taint_partial_sections(first, nr_pages, pfn);
            let nr = pfn_to_section_nr(pfn);
            step(nr, &section_line(nr));
        }
    }
    if let Err(addr) = physmap::map(start, size) {
        undo(first, nr_pages, r.altmap);
        return Err(PmemError::Map { addr });
    }
    let sections = pfn_to_section_nr(first + nr_pages - 1) - pfn_to_section_nr(first) + 1;
    let took = crate::arch::time::uptime_us() - t0;
    log::info!(
        "pmem: {} {} added: {} sub-sections in {} section{}{} ({}.{:03} ms)",
        r.name(),
        MemRange(start, start + size),
        nr_pages / PAGES_PER_SUBSECTION,
        sections,
        if sections == 1 { "" } else { "s" },
        if r.altmap { ", memmap in altmap" } else { "" },
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
    let r = REGIONS.lock().get(id).cloned().ok_or(PmemError::NoRegion { id })?;
    if r.state != State::Added {
        return Err(PmemError::NotAdded { id });
    }
    let (first, nr_pages) = (phys_pfn(r.start), phys_pfn(r.size));
    let stride = if r.altmap { PAGES_PER_SECTION } else { PAGES_PER_SUBSECTION };
    let mut altmap = altmap_for(first, nr_pages);
    altmap.alloc = altmap.free;
    for pfn in (0..nr_pages / stride).rev().map(|i| first + i * stride) {
        release_pages(pfn, stride);
        let mut s = SPARSE.lock();
        s.remove_pages(pfn, stride, r.altmap.then_some(&mut altmap)).map_err(PmemError::Sparse)?;
        drop(s);
        physmap::unmap(pfn_phys(pfn), pfn_phys(stride));
        let nr = pfn_to_section_nr(pfn);
        step(nr, &section_line(nr));
    }
    log::info!("pmem: {} {} removed", r.name(), MemRange(r.start, r.end()));
    let mut regions = REGIONS.lock();
    regions[id].state = State::Offline;
    Ok(regions[id].clone())
}

/// `memremap_pages`' checks, in its order: 2 MiB alignment (EINVAL),
/// System RAM (ENXIO), sub-sections already active (EEXIST).
pub fn check_range(start: u64, size: u64) -> Result<(), PmemError> {
    if !(start | size).is_multiple_of(SUBSECTION) || size == 0 {
        return Err(PmemError::Inval { start, size });
    }
    if start.checked_add(size).is_none() {
        return Err(PmemError::Inval { start, size });
    }
    if MEMBLOCK.lock().memory.overlaps(start, size) {
        return Err(PmemError::Nxio { start, size });
    }
    if SPARSE.lock().active_subsections(phys_pfn(start), phys_pfn(size)).0 {
        return Err(PmemError::Exist { start, size });
    }
    Ok(())
}

/// The altmap for a range of whole sections: its first pages, enough for
/// its memmap, in whole 2 MiB pieces.
fn altmap_for(first: Pfn, nr_pages: u64) -> Altmap {
    let memmap_pages = (nr_pages * 64).div_ceil(4096).next_multiple_of(PAGES_PER_SUBSECTION);
    Altmap { base_pfn: first, reserve: 0, free: memmap_pages, alloc: 0 }
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

/// Undoes the first `nr_pages` of an add that failed part way.
fn undo(first: Pfn, nr_pages: u64, altmap: bool) {
    if nr_pages == 0 {
        return;
    }
    physmap::unmap(pfn_phys(first), pfn_phys(nr_pages));
    release_pages(first, nr_pages);
    let mut a = altmap_for(first, nr_pages);
    a.alloc = a.free;
    if let Err(e) = SPARSE.lock().remove_pages(first, nr_pages, altmap.then_some(&mut a)) {
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

/// The region whose physical-memory-map address `virt` is, for the page
/// fault handler. Never waits: if the region list is busy (the fault came
/// from inside the driver) the answer is `None`.
pub fn fault_at(virt: u64) -> Option<PmemFault> {
    let off = crate::init::mappings()?.physical_memory_offset;
    let phys = virt.checked_sub(off)?;
    let regions = REGIONS.try_lock()?;
    let r = regions.iter().find(|r| r.start <= phys && phys < r.end())?;
    Some(PmemFault { id: r.id, start: r.start, end: r.end(), state: r.state })
}

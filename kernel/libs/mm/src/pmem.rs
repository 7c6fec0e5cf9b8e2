//! Persistent-memory regions and their namespaces: the policy of Linux's
//! NFIT bus and pmem driver (`drivers/nvdimm/`: `region_devs.c`,
//! `namespace_devs.c`, `pmem.c`'s `pmem_attach_disk`), without the machine.
//! Each NFIT persistent range is a region (`region0`) with one namespace
//! (`namespace0.0`) covering it, hot-added into ZONE_DEVICE through a
//! `memremap_pages`-like path, one 2 MiB sub-section at a time, next to
//! System RAM in the same section.
//!
//! A region's life, every arrow one call of [`Pmem`] that either completes
//! or changes nothing:
//!
//! ```text
//! (registered) offline --add--> added --remove--> offline
//! offline|added --set_mode--> added (removed, info block written, added again)
//! ```
//!
//! A namespace is `raw` (no info block: its memmap lives in System RAM and
//! nothing is written to the device), `fsdax` or `devdax` (Linux's info
//! block at offset 4 KiB, [`crate::nd_pfn`]; with `map=dev` the memmap lives
//! on the device between the info block and `dataoff`). The info block is
//! read by [`Pmem::probe`] and written only by [`Pmem::set_mode`].
//!
//! Everything that touches the machine (the section table, the kernel's
//! page tables, the media, zones, the clock, the log) goes through a
//! [`PmemBackend`]: the kernel's does it for real, a host test's over
//! vectors and the sparse model. This module holds the rules.

use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt::{self, Write};

use crate::e820::MemRange;
use crate::memory_block::{self, MemremapError};
use crate::nd_pfn::{self, INFO_OFFSET, INFO_SIZE, Kind, Layout, PfnMode};
use crate::page::{
    PAGE_SHIFT, PAGE_SIZE, Pfn, STRUCT_PAGE_SIZE, ZoneType, bytes_to_pages, pages_to_bytes,
    pfn_phys, phys_pfn,
};
use crate::sparse::{
    Altmap, Compound, DESCS_PER_VMEMMAP_PAGE, DeviceInit, MemSection, PAGES_PER_SECTION,
    PAGES_PER_SUBSECTION, SectionSummary, Sparse, SparseBackend, SparseError, flags,
    pfn_to_section_nr, section_chunks,
};

/// A sub-section in bytes: the unit the kernel maps a range in.
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

    /// The compound pages of a device-dax namespace (Linux's
    /// `dev_dax_probe` sets `vmemmap_shift` from the alignment): 2^shift
    /// pages from the data area's start, `None` for other modes and 4 KiB
    /// alignment.
    pub fn compound(&self) -> Option<Compound> {
        let l = self.layout.filter(|l| l.kind() == Kind::Devdax)?;
        let shift = bytes_to_pages(l.align()).checked_ilog2()?;
        Compound::new(phys_pfn(l.data().0), shift)
    }

    /// Bytes of memmap the namespace's pages take: a descriptor per page,
    /// less the vmemmap pages of compound tails, which share one page
    /// ([`Compound::shares_vmemmap_page`]).
    pub fn memmap_bytes(&self) -> u64 {
        let Some(c) = self.compound() else { return bytes_to_pages(self.size) * STRUCT_PAGE_SIZE };
        let (start, end) = self.mapped();
        let (first, n) = (phys_pfn(start), bytes_to_pages(end - start));
        let all = n * STRUCT_PAGE_SIZE;
        let per = DESCS_PER_VMEMMAP_PAGE;
        let vpages = first.as_u64() / per..(first.as_u64() + n).div_ceil(per);
        let shared = vpages.filter(|&v| c.shares_vmemmap_page(Pfn::new(v * per), 0)).count();
        all.saturating_sub(shared as u64 * PAGE_SIZE)
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

    /// Whether the info block's 2 MiB are mapped while the region is
    /// added (they are part of the range `memremap_pages` mapped).
    fn info_block_mapped(&self) -> bool {
        self.state == State::Added && self.mapped().0 == self.start
    }

    /// The namespace's uuid (from its info block), as `uuid_unparse`
    /// writes it.
    fn uuid(&self) -> Option<String> {
        let u = self.layout?.sb.uuid;
        let mut out = String::new();
        for (i, b) in u.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                out.push('-');
            }
            let _ = write!(out, "{b:02x}");
        }
        Some(out)
    }

    /// Where the namespace's memmap is: on the device (`[start, end)`), in
    /// System RAM with `[start, end)` reserved for it on the device (less
    /// than whole sections), or in System RAM.
    fn memmap(&self) -> Memmap {
        match (self.layout, self.has_altmap()) {
            (Some(l), true) => l.memmap_area().map_or(Memmap::Ram, |(s, e)| Memmap::Device(s, e)),
            (Some(l), false) => {
                l.memmap_area().map_or(Memmap::Ram, |(s, e)| Memmap::Reserved(s, e))
            }
            (None, _) => Memmap::Ram,
        }
    }

    /// The namespace as `ndctl list` describes it, then the ranges of its
    /// info block, memmap and data: the `pmem` command's lines below the
    /// region's.
    pub fn namespace_lines(&self) -> Vec<String> {
        let (ds, de) = self.data();
        let mut out = Vec::new();
        let mut head = alloc::format!("{}: mode {}", self.namespace(), self.mode());
        match self.layout {
            Some(l) => {
                let uuid = self.uuid().unwrap_or_default();
                let _ = write!(
                    head,
                    ", map {}, size {}, align {}, uuid {uuid}, {}",
                    l.mode().map_name(),
                    de - ds,
                    l.align(),
                    self.device()
                );
                if l.kind() == Kind::Fsdax {
                    let _ = write!(head, " (blockdev pmem{})", self.id);
                }
                out.push(head);
                let info = self.start + INFO_OFFSET;
                out.push(alloc::format!("info block {}", MemRange(info, info + INFO_SIZE as u64)));
                out.push(match self.memmap() {
                    Memmap::Device(ms, me) => alloc::format!("memmap     {}", MemRange(ms, me)),
                    Memmap::Reserved(ms, me) => alloc::format!(
                        "memmap     {} reserved; the memmap is in System RAM (less than whole sections)",
                        MemRange(ms, me)
                    ),
                    Memmap::Ram => String::from("memmap     in System RAM (map mem)"),
                });
            }
            None => {
                let _ = write!(head, ", size {}, blockdev pmem{}", de - ds, self.id);
                out.push(head);
                out.push(String::from("memmap     in System RAM (no info block: nothing written)"));
            }
        }
        out.push(alloc::format!("data       {} ({} bytes)", MemRange(ds, de), de - ds));
        out
    }

    /// ndctl's `persistence_domain` for the region: `cpu_cache` or
    /// `memory_controller` from the NFIT's platform capabilities
    /// (`platform_cap`, masked to its valid bits: bit 0 CPU cache flush,
    /// bit 1 memory controller flush), for a firmware NFIT's region as
    /// Linux's `acpi_nfit` sets it; `unknown` without them, and for an
    /// emulated region, which Linux's `nd_e820` registers with none.
    pub fn persistence_domain(&self, platform_cap: u32) -> &'static str {
        match self.origin {
            Origin::Firmware { .. } if platform_cap & 1 != 0 => "cpu_cache",
            Origin::Firmware { .. } if platform_cap & 2 != 0 => "memory_controller",
            _ => "unknown",
        }
    }

    /// Linux's default region `align` (`default_align` in
    /// `drivers/nvdimm/region_devs.c`, one mapping): 16 MiB
    /// (`MEMREMAP_COMPAT_ALIGN_MAX`), or a page for a smaller region.
    pub fn align(&self) -> u64 {
        if self.size < 16 << 20 { PAGE_SIZE } else { 16 << 20 }
    }

    /// The region as `ndctl list -RN` prints it (its fields, in its order;
    /// `available_size` and `max_available_extent` are 0: the one
    /// label-less namespace covers the region), its namespace likewise,
    /// and what only Tessera has in a `tessera` object in each: the same
    /// facts as the `pmem` command's lines. `end`s are inclusive, as in
    /// the text's `[mem start-end]`.
    ///
    /// The namespace's fields follow ndctl's `util_namespace_to_json`:
    /// `map`, `uuid` and `align` with an info block, `sector_size` 512
    /// except for devdax, `blockdev` (raw, fsdax) or `chardev` (devdax)
    /// while the region is added, `"state":"disabled"` while it is not
    /// (ndctl shows a disabled namespace only with `-i`).
    pub fn write_json(&self, o: &mut json::Object<'_>, platform_cap: u32) {
        o.field("dev", self.name())
            .field("size", self.size)
            .field("align", self.align())
            .field("available_size", 0u64)
            .field("max_available_extent", 0u64)
            .field("type", "pmem")
            .field("persistence_domain", self.persistence_domain(platform_cap));
        let added = self.state == State::Added;
        o.object("tessera", |t| {
            let (spa, nfit, e820_type) = match self.origin {
                Origin::Firmware { spa } => (spa, "firmware", None),
                Origin::Emulated { spa, legacy } => {
                    (spa, "emulated", Some(if legacy { 12 } else { 7 }))
                }
            };
            let (ms, me) = self.mapped();
            t.field("start", self.start)
                .field("end", self.end() - 1)
                .field("nfit", nfit)
                .field("spa_index", spa)
                .field("e820_type", e820_type)
                .field("state", if added { "added" } else { "offline" })
                .field("altmap", self.has_altmap())
                .field("subsections_added", if added { (me - ms) / SUBSECTION } else { 0 });
        });
        o.array("namespaces", |a| {
            a.object(|ns| self.write_namespace_json(ns, added));
        });
    }

    fn write_namespace_json(&self, ns: &mut json::Object<'_>, added: bool) {
        let (ds, de) = self.data();
        let kind = self.layout.map(|l| l.kind());
        ns.field("dev", self.namespace()).field("mode", self.mode());
        if let Some(l) = self.layout {
            ns.field("map", l.mode().map_name());
        }
        ns.field("size", de - ds);
        if let Some(uuid) = self.uuid() {
            ns.field("uuid", uuid);
        }
        if kind != Some(Kind::Devdax) {
            ns.field("sector_size", 512u32);
        }
        if let Some(l) = self.layout {
            ns.field("align", l.align());
        }
        match (kind, added) {
            (Some(Kind::Devdax), true) => {
                ns.field("chardev", self.device());
            }
            (_, true) => {
                ns.field("blockdev", alloc::format!("pmem{}", self.id));
            }
            (_, false) => {
                ns.field("state", "disabled");
            }
        }
        ns.object("tessera", |t| {
            let range = |o: &mut json::Object<'_>, (s, e): (u64, u64)| {
                o.field("start", s).field("end", e - 1);
            };
            match self.layout {
                Some(_) => {
                    let info = self.start + INFO_OFFSET;
                    t.object("info_block", |o| range(o, (info, info + INFO_SIZE as u64)));
                }
                None => {
                    t.field("info_block", None::<u64>);
                }
            }
            t.object("memmap", |o| match self.memmap() {
                Memmap::Device(s, e) => {
                    o.field("location", "device");
                    range(o, (s, e));
                }
                Memmap::Reserved(s, e) => {
                    o.field("location", "system_ram");
                    o.object("reserved", |o| range(o, (s, e)));
                }
                Memmap::Ram => {
                    o.field("location", "system_ram");
                }
            });
            t.object("data", |o| range(o, (ds, de)));
            t.field("device", self.device());
        });
    }
}

/// Where a namespace's memmap lives ([`Region::memmap`]).
enum Memmap {
    Device(u64, u64),
    Reserved(u64, u64),
    Ram,
}

/// `pmem --json`: `{"regions":[..]}` as `ndctl list -RN`
/// ([`Region::write_json`]); `platform_cap` is the NFIT's platform
/// capabilities (0 without).
pub fn pmem_json(regions: &[Region], platform_cap: u32) -> String {
    json::object(|o| {
        o.array("regions", |a| {
            for r in regions {
                a.object(|o| r.write_json(o, platform_cap));
            }
        });
    })
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
    /// cannot request its range again, nor `nd_pfn_probe` run on a bound
    /// namespace).
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

/// The region of `regions` that physical address `phys` lies in.
pub fn fault_in(regions: &[Region], phys: u64) -> Option<PmemFault> {
    let r = regions.iter().find(|r| r.start <= phys && phys < r.end())?;
    Some(PmemFault { id: r.id, start: r.start, end: r.end(), state: r.state })
}

/// A namespace personality for [`Pmem::set_mode`]: `None` is raw.
pub type Mode = Option<(Kind, PfnMode, u64)>;

/// How loud a [`PmemBackend::log`] line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// What the policy needs from the machine. The kernel's caller holds the
/// region lock (after `mem_hotplug_begin`) for a whole operation; its
/// backend takes the section table's lock per [`PmemBackend::sparse`] call,
/// so the order is always: regions, then the section table.
pub trait PmemBackend {
    /// The section table's own backend.
    type Memmap: SparseBackend;

    /// Runs `f` on the section table under its lock: `__add_pages`,
    /// `__remove_pages`, `memmap_init_zone_device`, section flags. One call
    /// is one lock; `f` allocates nothing on the heap (the kernel forbids
    /// it under that lock).
    fn sparse<T>(&mut self, f: impl FnOnce(&mut Sparse<Self::Memmap>) -> T) -> T;

    /// System RAM, `[start, end)` in ascending order (memblock.memory, what
    /// `region_intersects(..., IORESOURCE_SYSTEM_RAM)` looks at).
    fn system_ram(&self) -> Vec<(u64, u64)>;

    /// `usermap::is_backed`: whether the firmware reports all of `[start,
    /// end)` as RAM or persistent memory and none of it holds the boot
    /// loader's pieces (true when there is no firmware map to ask).
    fn is_backed(&self, start: u64, end: u64) -> bool;

    /// `arch_add_memory`'s `init_memory_mapping`: maps `[start, start +
    /// size)` in the physical-memory map. Pieces already mapped stay as
    /// they are; page tables are kept after an unmap, so mapping a range
    /// again that was mapped before allocates nothing and cannot fail. On
    /// failure, returns the address that could not be mapped; what the
    /// call mapped stays mapped (the caller unmaps the whole range).
    fn init_memory_mapping(&mut self, start: u64, size: u64) -> Result<(), u64>;

    /// `arch_remove_memory`'s `kernel_physical_mapping_remove`: takes
    /// `[start, start + size)` out of the physical-memory map.
    fn kernel_physical_mapping_remove(&mut self, start: u64, size: u64);

    /// `read_pmem`: copies media bytes from physical address `phys`. The
    /// policy asks only for bytes of a region it has mapped.
    fn read_pmem(&mut self, phys: u64, buf: &mut [u8]);

    /// `write_pmem`: copies `bytes` to the media at `phys` and flushes them
    /// (`memcpy_flushcache`). The policy writes only a region's data area
    /// (asked by a user) or its info block (a mode change), mapped.
    fn write_pmem(&mut self, phys: u64, bytes: &[u8]);

    /// `move_pfn_range_to_zone(ZONE_DEVICE, ...)`: the zone spans the pages.
    fn move_pfn_range_to_zone(&mut self, start_pfn: Pfn, nr_pages: u64);

    /// `remove_pfn_range_from_zone(ZONE_DEVICE, ...)`.
    fn remove_pfn_range_from_zone(&mut self, start_pfn: Pfn, nr_pages: u64);

    /// Microseconds since boot (`ktime_get`): for timing lines and as the
    /// seed of new uuids.
    fn ktime_get_us(&mut self) -> u64;

    /// One line of the driver's log (the kernel prefixes `pmem: `).
    fn log(&mut self, level: Level, msg: fmt::Arguments<'_>);
}

/// The section line of section `nr`, as a step shows it: copied under the
/// section table's lock, formatted after it (the kernel allocates nothing
/// on the heap under that lock).
fn section_line<M: SparseBackend>(s: &Sparse<M>, nr: u64) -> SectionSummary {
    s.section_line(nr)
}

/// Linux's rule in `move_pfn_range_to_zone`: a device range of `nr_pages`
/// from `first` that starts or ends inside a section taints that section
/// (it shares it with something else, usually System RAM). Applied to the
/// section of `pfn` as soon as a step reaches it, so the flag shows in that
/// step's line.
fn taint_partial_sections<M: SparseBackend>(
    s: &mut Sparse<M>,
    first: Pfn,
    nr_pages: u64,
    pfn: Pfn,
) {
    let end = first + nr_pages;
    let nr = pfn_to_section_nr(pfn);
    let starts_inside = !first.is_multiple_of(PAGES_PER_SECTION) && pfn_to_section_nr(first) == nr;
    let ends_inside = !end.is_multiple_of(PAGES_PER_SECTION) && pfn_to_section_nr(end - 1) == nr;
    if starts_inside || ends_inside {
        s.set_section_flags(pfn, 1, flags::TAINT_ZONE_DEVICE, true);
    }
}

/// Before removal: in an early section the memmap stays, so the pages go
/// back to being reserved holes of their RAM zone.
fn release_pages<M: SparseBackend>(s: &mut Sparse<M>, pfn: Pfn, nr_pages: u64) {
    for (at, cur) in section_chunks(pfn, nr_pages) {
        if s.pfn_to_section(at).is_some_and(MemSection::early) {
            s.memmap_init_range(at, cur, ZoneType::for_pfn(at), 0, 0);
        }
    }
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

/// The regions and their namespaces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pmem {
    regions: Vec<Region>,
}

impl Pmem {
    /// No regions.
    pub const fn new() -> Self {
        Self { regions: Vec::new() }
    }

    /// The regions, in id order.
    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// Region `id` (`ENODEV` when there is none).
    pub fn region(&self, id: usize) -> Result<&Region, PmemError> {
        self.regions.get(id).ok_or(PmemError::NoRegion { id })
    }

    /// The region whose range holds physical address `phys`.
    pub fn fault_at(&self, phys: u64) -> Option<PmemFault> {
        fault_in(&self.regions, phys)
    }

    /// Registers one region per persistent range and lists them, as the
    /// NFIT bus does at boot. A new region is offline and raw until its
    /// info block is probed, and not in the kernel's map.
    pub fn register(&mut self, b: &mut impl PmemBackend, ranges: &[(u64, u64, Origin)]) {
        let first = self.regions.len();
        for &(start, size, origin) in ranges {
            let id = self.regions.len();
            self.regions.push(Region {
                id,
                start,
                size,
                origin,
                state: State::Offline,
                layout: None,
            });
        }
        for r in &self.regions[first..] {
            // Its mode is known once its info block is probed, before the add.
            b.log(Level::Info, format_args!("{}", r.heading()));
            if let Err(e) = check_backed(b, r) {
                b.log(Level::Warn, format_args!("{e}"));
            }
            // Offline ranges are not in the kernel's map (the bootloader
            // maps an emulated range with the rest of RAM).
            b.kernel_physical_mapping_remove(r.start, r.size);
        }
    }

    /// `nd_pfn_probe`: reads namespace `id`'s info block and adopts its
    /// layout when it is valid; otherwise the namespace is raw. Writes
    /// nothing. An added namespace is busy (its layout is in use).
    pub fn probe(
        &mut self,
        b: &mut impl PmemBackend,
        id: usize,
    ) -> Result<Option<Layout>, PmemError> {
        let r = self.region(id)?.clone();
        if r.state == State::Added {
            return Err(PmemError::Busy { id });
        }
        let block = read_info_block(b, &r)?;
        let ns = r.namespace();
        let layout = match nd_pfn::validate(&block, r.start, r.size) {
            Ok(Some(l)) => {
                b.log(Level::Info, format_args!("{ns}: {}", Described(&l)));
                Some(l)
            }
            Ok(None) => {
                b.log(Level::Info, format_args!("{ns}: no info block at offset 0x1000: raw"));
                None
            }
            Err(e) => {
                b.log(
                    Level::Warn,
                    format_args!(
                        "{ns}: bad info block at offset 0x1000: {e}; raw, nothing written"
                    ),
                );
                None
            }
        };
        self.regions[id].layout = layout;
        Ok(layout)
    }

    /// Hot-adds region `id`: `memremap_pages` for its namespace. `step` is
    /// called after each sub-section (each section with an altmap) with the
    /// section's number and line, so a caller can show the bits filling
    /// in. Checks first; on any failure what was done is undone and the
    /// region stays offline.
    pub fn add(
        &mut self,
        b: &mut impl PmemBackend,
        id: usize,
        step: &mut dyn FnMut(u64, &str),
    ) -> Result<Region, PmemError> {
        let r = self.region(id)?.clone();
        if r.state == State::Added {
            return Err(PmemError::Busy { id });
        }
        let (start, end) = r.mapped();
        self.check_memremap(b, start, end - start, None)?;
        Self::check_memmap_fits(b, &r)?;
        memremap_pages(b, &r, step)?;
        self.regions[id].state = State::Added;
        Ok(self.regions[id].clone())
    }

    /// Hot-removes region `id` (`memunmap_pages`), sub-section by
    /// sub-section (section by section with an altmap), calling `step`
    /// with the section line after each.
    pub fn remove(
        &mut self,
        b: &mut impl PmemBackend,
        id: usize,
        step: &mut dyn FnMut(u64, &str),
    ) -> Result<Region, PmemError> {
        let r = self.region(id)?.clone();
        if r.state != State::Added {
            return Err(PmemError::NotAdded { id });
        }
        check_active(b, &r)?;
        memunmap_pages(b, &r, step)?;
        self.regions[id].state = State::Offline;
        Ok(self.regions[id].clone())
    }

    /// `ndctl create-namespace -f -e namespaceN.0 -m MODE`: removes region
    /// `id` if it is added, writes its new info block (for raw, clears an
    /// info block that is there; a namespace without one is not written at
    /// all), then adds it again in the new mode, calling `step` as
    /// [`Pmem::add`] and [`Pmem::remove`] do.
    ///
    /// Refusals (no region, a range not backed by the firmware, a layout
    /// that cannot be made, a memmap that would not fit, a range
    /// `memremap_pages` would refuse) come before anything changes. When
    /// the add in the new mode fails (out of memory), the old info block
    /// is written back and the region added again as it was; only if that
    /// add fails too is the region left offline (in its old mode, the
    /// media as before), which the log says.
    pub fn set_mode(
        &mut self,
        b: &mut impl PmemBackend,
        id: usize,
        mode: Mode,
        step: &mut dyn FnMut(u64, &str),
    ) -> Result<Region, PmemError> {
        let old = self.region(id)?.clone();
        check_backed(b, &old)?;
        let layout = match mode {
            Some((kind, map, align)) => {
                let uuid = nd_pfn::uuid_v4(b.ktime_get_us() ^ old.start.rotate_left(17));
                Some(
                    nd_pfn::init(kind, map, old.start, old.size, align, uuid)
                        .map_err(PmemError::Layout)?,
                )
            }
            None => None,
        };
        let new = Region { layout, state: State::Offline, ..old.clone() };
        Self::check_memmap_fits(b, &new)?;
        let (start, end) = new.mapped();
        self.check_memremap(b, start, end - start, Some(&old))?;
        if old.state == State::Added {
            check_active(b, &old)?;
        }
        // The block as it is, to be put back if the new mode cannot be added.
        let saved = read_info_block(b, &old)?;
        if old.state == State::Added {
            memunmap_pages(b, &old, step)?;
        }
        let ns = old.namespace();
        let block = match layout {
            Some(l) => Some(l.sb.to_bytes()),
            None if nd_pfn::validate(&saved, old.start, old.size) != Ok(None) => {
                Some([0; INFO_SIZE])
            }
            None => None,
        };
        if let Some(bytes) = &block {
            // Mapped before, so mapping it again cannot fail; if it did,
            // nothing was written and the old mode comes back.
            if let Err(e) = write_info_block(b, &new, bytes) {
                self.restore(b, &old, None, &e, step);
                return Err(e);
            }
        }
        match &layout {
            Some(l) => b.log(Level::Info, format_args!("{ns}: wrote {}", Described(l))),
            None if block.is_some() => b.log(
                Level::Info,
                format_args!("{ns}: cleared the info block at offset 0x1000: raw"),
            ),
            None => b.log(
                Level::Info,
                format_args!("{ns}: no info block to clear: raw, nothing written"),
            ),
        }
        if let Err(e) = memremap_pages(b, &new, step) {
            self.restore(b, &old, block.is_some().then_some(&saved), &e, step);
            return Err(e);
        }
        self.regions[id] = Region { state: State::Added, ..new };
        Ok(self.regions[id].clone())
    }

    /// Puts region `old` back as it was after [`Pmem::set_mode`] failed
    /// with `why` once it had removed the region: `saved` back on the media
    /// when the info block was rewritten, then the add in the old mode.
    fn restore(
        &mut self,
        b: &mut impl PmemBackend,
        old: &Region,
        saved: Option<&[u8; INFO_SIZE]>,
        why: &PmemError,
        step: &mut dyn FnMut(u64, &str),
    ) {
        let ns = old.namespace();
        b.log(Level::Warn, format_args!("{ns}: {why}; putting back its {} mode", old.mode()));
        if let Some(bytes) = saved {
            let offline = Region { state: State::Offline, ..old.clone() };
            if let Err(e) = write_info_block(b, &offline, bytes) {
                b.log(Level::Error, format_args!("{ns}: cannot write its info block back: {e}"));
            }
        }
        if old.state == State::Added
            && let Err(e) = memremap_pages(b, old, step)
        {
            b.log(
                Level::Error,
                format_args!("{}: cannot add it back: {e}; left offline", old.name()),
            );
            self.regions[old.id].state = State::Offline;
        }
    }

    /// `memremap_pages`' refusals in Linux 6.1's order
    /// ([`memory_block::check_memremap`]): start or end inside an added
    /// region (ENOMEM), System RAM (ENXIO), beyond MAX_PHYSMEM_BITS
    /// (EINVAL), not whole 2 MiB sub-sections (EINVAL), sub-sections already
    /// active (EEXIST).
    pub fn check_range(
        &self,
        b: &mut impl PmemBackend,
        start: u64,
        size: u64,
    ) -> Result<(), PmemError> {
        self.check_memremap(b, start, size, None)
    }

    /// [`Pmem::check_range`] as it will be once `except` is removed (for a
    /// mode change): its device mapping and its active sub-sections do not
    /// count.
    fn check_memremap(
        &self,
        b: &mut impl PmemBackend,
        start: u64,
        size: u64,
        except: Option<&Region>,
    ) -> Result<(), PmemError> {
        let others = self.regions.iter().filter(|r| except.is_none_or(|x| x.id != r.id));
        let pgmaps: Vec<(u64, u64)> =
            others.filter(|r| r.state == State::Added).map(Region::mapped).collect();
        let ram = b.system_ram();
        let own = except.filter(|r| r.state == State::Added).map(Region::mapped);
        let b = RefCell::new(b);
        let active = |s: u64, n: u64| {
            let e = s.saturating_add(n);
            // The pieces of [s, e) outside the region's own mapped range.
            let pieces = match own {
                Some((os, oe)) => [(s, e.min(os)), (s.max(oe), e)],
                None => [(s, e), (e, e)],
            };
            pieces.iter().filter(|(ps, pe)| ps < pe).any(|&(ps, pe)| {
                let (pfn, nr) = (phys_pfn(ps), bytes_to_pages(pe - ps));
                b.borrow_mut().sparse(|sp| sp.active_subsections(pfn, nr).0)
            })
        };
        memory_block::check_memremap(start, size, &pgmaps, &ram, active)
            .map_err(PmemError::Memremap)
    }

    /// A memmap that is not on the device (raw, `map=mem`, less than whole
    /// sections) lives in System RAM: refuse a namespace whose memmap would
    /// take more than a sixteenth of it.
    pub fn check_memmap_fits(b: &mut impl PmemBackend, r: &Region) -> Result<(), PmemError> {
        if r.has_altmap() {
            return Ok(());
        }
        let memmap = r.memmap_bytes();
        let ram: u64 = b.system_ram().iter().map(|&(s, e)| e - s).sum();
        if memmap > ram / 16 {
            return Err(PmemError::MemmapInRam { id: r.id, memmap, ram });
        }
        Ok(())
    }

    /// Checks `[offset, offset + len)` against region `id`'s data area and
    /// returns its physical address; the region must be added.
    fn data_at(
        &self,
        b: &mut impl PmemBackend,
        id: usize,
        offset: u64,
        len: u64,
    ) -> Result<u64, PmemError> {
        let r = self.region(id)?;
        check_backed(b, r)?;
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
    pub fn read(
        &self,
        b: &mut impl PmemBackend,
        id: usize,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, PmemError> {
        let phys = self.data_at(b, id, offset, len)?;
        let mut out = alloc::vec![0u8; len as usize];
        b.read_pmem(phys, &mut out);
        Ok(out)
    }

    /// Writes `bytes` to region `id`'s data area at `offset` and flushes
    /// them to the device.
    pub fn write(
        &mut self,
        b: &mut impl PmemBackend,
        id: usize,
        offset: u64,
        bytes: &[u8],
    ) -> Result<(), PmemError> {
        let phys = self.data_at(b, id, offset, bytes.len() as u64)?;
        b.write_pmem(phys, bytes);
        Ok(())
    }
}

/// Refuses to write a region that Linux's `memmap=` semantics placed over
/// memory that is not the firmware's RAM or persistent memory (e.g.
/// `memmap=32M!0x7ff00000` on 2 GiB claims ACPI tables and a hole), or
/// over the bootloader's pieces (the kernel, its page tables and stack).
/// Firmware NFIT ranges are the device itself.
fn check_backed(b: &impl PmemBackend, r: &Region) -> Result<(), PmemError> {
    match r.origin {
        Origin::Emulated { .. } if !b.is_backed(r.start, r.end()) => {
            Err(PmemError::NotBacked { id: r.id, start: r.start, end: r.end() })
        }
        _ => Ok(()),
    }
}

/// Every sub-section of an added region's range must be active before it
/// is removed (otherwise `__remove_pages` would stop half way).
fn check_active(b: &mut impl PmemBackend, r: &Region) -> Result<(), PmemError> {
    let (start, end) = r.mapped();
    let (pfn, nr_pages) = (phys_pfn(start), bytes_to_pages(end - start));
    if b.sparse(|s| s.active_subsections(pfn, nr_pages).1) {
        Ok(())
    } else {
        Err(PmemError::Sparse(SparseError::NotActive { pfn, nr_pages }))
    }
}

/// The info block's 4 KiB of `r`, its first 2 MiB mapped for the time of
/// the call unless the region is added.
fn read_info_block(b: &mut impl PmemBackend, r: &Region) -> Result<[u8; INFO_SIZE], PmemError> {
    b.init_memory_mapping(r.start, SUBSECTION).map_err(|addr| PmemError::Map { addr })?;
    let mut block = [0; INFO_SIZE];
    b.read_pmem(r.start + INFO_OFFSET, &mut block);
    if !r.info_block_mapped() {
        b.kernel_physical_mapping_remove(r.start, SUBSECTION);
    }
    Ok(block)
}

/// Writes `bytes` as `r`'s info block, mapped as in [`read_info_block`].
fn write_info_block(
    b: &mut impl PmemBackend,
    r: &Region,
    bytes: &[u8; INFO_SIZE],
) -> Result<(), PmemError> {
    b.init_memory_mapping(r.start, SUBSECTION).map_err(|addr| PmemError::Map { addr })?;
    b.write_pmem(r.start + INFO_OFFSET, bytes);
    if !r.info_block_mapped() {
        b.kernel_physical_mapping_remove(r.start, SUBSECTION);
    }
    Ok(())
}

/// `memremap_pages` for `r`'s mapped range: the sections (one lock per
/// sub-section, or one for the whole range with an altmap, which must
/// start the range it serves), the device pages, the kernel's mapping and
/// the zone. On failure, what this call did is undone.
fn memremap_pages(
    b: &mut impl PmemBackend,
    r: &Region,
    step: &mut dyn FnMut(u64, &str),
) -> Result<(), PmemError> {
    let (start, end) = r.mapped();
    let size = end - start;
    let (first, nr_pages) = (phys_pfn(start), bytes_to_pages(size));
    let init = DeviceInit { nid: 0, pgmap: r.pgmap(), compound: r.compound() };
    let t0 = b.ktime_get_us();
    if let Some(mut altmap) = r.altmap() {
        b.sparse(|s| {
            let align = PAGES_PER_SUBSECTION;
            s.add_device_pages(first, nr_pages, align, Some(&mut altmap), init)?;
            taint_partial_sections(s, first, nr_pages, first);
            taint_partial_sections(s, first, nr_pages, first + nr_pages - 1);
            Ok(())
        })
        .map_err(PmemError::Sparse)?;
        for pfn in (first..first + nr_pages).step_by(PAGES_PER_SECTION as usize) {
            let nr = pfn_to_section_nr(pfn);
            let line = b.sparse(|s| section_line(s, nr));
            step(nr, &alloc::format!("{line}"));
        }
    } else {
        for pfn in (first..first + nr_pages).step_by(PAGES_PER_SUBSECTION as usize) {
            let nr = pfn_to_section_nr(pfn);
            let added = b.sparse(|s| {
                let n = PAGES_PER_SUBSECTION;
                s.add_device_pages(pfn, n, n, None, init)?;
                taint_partial_sections(s, first, nr_pages, pfn);
                Ok(section_line(s, nr))
            });
            match added {
                Ok(line) => step(nr, &alloc::format!("{line}")),
                Err(e) => {
                    undo(b, r, pfn - first);
                    return Err(PmemError::Sparse(e));
                }
            }
        }
    }
    if let Err(addr) = b.init_memory_mapping(start, size) {
        undo(b, r, nr_pages);
        return Err(PmemError::Map { addr });
    }
    b.move_pfn_range_to_zone(first, nr_pages);
    let sections = pfn_to_section_nr(first + nr_pages - 1) - pfn_to_section_nr(first) + 1;
    let took = b.ktime_get_us().saturating_sub(t0);
    b.log(
        Level::Info,
        format_args!(
            "{} {} added: {} sub-sections in {} section{}, {}{} ({}.{:03} ms)",
            r.name(),
            MemRange(start, end),
            nr_pages / PAGES_PER_SUBSECTION,
            sections,
            if sections == 1 { "" } else { "s" },
            r.mode(),
            if r.has_altmap() { ", memmap on the device" } else { ", memmap in System RAM" },
            took / 1000,
            took % 1000
        ),
    );
    Ok(())
}

/// Undoes the first `nr_pages` of an add of `r` that failed part way.
fn undo(b: &mut impl PmemBackend, r: &Region, nr_pages: u64) {
    if nr_pages == 0 {
        return;
    }
    let first = phys_pfn(r.mapped().0);
    b.kernel_physical_mapping_remove(pfn_phys(first), pages_to_bytes(nr_pages));
    let mut altmap = r.altmap_as_added();
    let removed = b.sparse(|s| {
        release_pages(s, first, nr_pages);
        s.remove_pages(first, nr_pages, altmap.as_mut())
    });
    if let Err(e) = removed {
        b.log(Level::Error, format_args!("undoing a failed add: {e}"));
    }
}

/// `memunmap_pages` for an added `r` whose sub-sections are all active
/// ([`check_active`]), last step first.
fn memunmap_pages(
    b: &mut impl PmemBackend,
    r: &Region,
    step: &mut dyn FnMut(u64, &str),
) -> Result<(), PmemError> {
    let (start, end) = r.mapped();
    let (first, nr_pages) = (phys_pfn(start), bytes_to_pages(end - start));
    let mut altmap = r.altmap_as_added();
    let stride = if altmap.is_some() { PAGES_PER_SECTION } else { PAGES_PER_SUBSECTION };
    for pfn in (0..nr_pages / stride).rev().map(|i| first + i * stride) {
        let nr = pfn_to_section_nr(pfn);
        let line = b
            .sparse(|s| {
                release_pages(s, pfn, stride);
                s.remove_pages(pfn, stride, altmap.as_mut())?;
                Ok(section_line(s, nr))
            })
            .map_err(PmemError::Sparse)?;
        b.kernel_physical_mapping_remove(pfn_phys(pfn), pages_to_bytes(stride));
        step(nr, &alloc::format!("{line}"));
    }
    // Linux leaves ZONE_DEVICE's span as it was (a no-op, kept for the picture).
    b.remove_pfn_range_from_zone(first, nr_pages);
    b.log(Level::Info, format_args!("{} {} removed", r.name(), MemRange(start, end)));
    Ok(())
}

#[cfg(test)]
mod tests;

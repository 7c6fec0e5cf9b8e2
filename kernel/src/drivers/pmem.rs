//! The persistent-memory driver's kernel side. The regions, their
//! namespaces and every rule about them are [`mm::pmem`]'s; this module
//! gives that policy the machine (`KernelPmem`: the section table, the
//! physical-memory map, the media, the zones, the clock, the log) and runs
//! one operation at a time.
//!
//! Locks, always in this order (DESIGN.md §4a):
//! 1. `MEM_HOTPLUG` ([`mem_hotplug_begin`]) for an operation that maps or
//!    unmaps memory (register, probe, add, remove, mode change);
//! 2. `PMEM`, the regions: taken once per operation and held for all of
//!    it (checks, every sub-section, the info block, the state change);
//!    `read` and `write` take only this one;
//! 3. [`SPARSE`], taken by the backend for each call into the section
//!    table (once per sub-section of an add or remove; nothing is
//!    formatted on the heap under it), then `ZONES`, `MEMBLOCK`, `IOMEM`
//!    and the page tables, one at a time;
//! 4. `PUBLISHED`, the regions as the last finished operation left them,
//!    written at the end of each operation. Readers ([`regions`],
//!    [`fault_at`], the shell's pictures, a step callback) take only this
//!    one: they never wait for an operation and never see half of one.

use alloc::vec::Vec;
use core::fmt;

use mm::addr::PhysRange;
use mm::page::{Pfn, ZoneType};
use mm::pmem::{Level, Pmem, PmemBackend};
use mm::sparse::Sparse;
use spin::Mutex;
use x86_64::VirtAddr;

pub use mm::pmem::{Mode, Origin, PmemError, PmemFault, Region, State};

use crate::arch::paging;
use crate::mm::memblock::MEMBLOCK;
use crate::mm::memory_hotplug::mem_hotplug_begin;
use crate::mm::physmap;
use crate::mm::sparse::{KernelBackend, SPARSE};

/// The regions and their namespaces; see the lock order above.
static PMEM: Mutex<Pmem> = Mutex::new(Pmem::new());

/// What readers see: [`PMEM`]'s regions after the last operation.
static PUBLISHED: Mutex<Vec<Region>> = Mutex::new(Vec::new());

/// The machine for [`mm::pmem`].
struct KernelPmem;

/// The physical-memory map's offset (recorded at boot).
fn phys_offset() -> u64 {
    crate::boot::mappings().expect("recorded at boot").physical_memory_offset
}

/// The physical-memory map's address of `[phys, phys + len)`, after
/// checking that the bytes lie in one persistent-memory region and are
/// mapped there. The policy asks only for such bytes; anything else is a
/// bug that must not become a write to memory the kernel uses.
fn media(phys: u64, len: u64) -> u64 {
    let end = phys.checked_add(len).expect("media range overflows");
    let in_region = PUBLISHED.lock().iter().any(|r| r.start <= phys && end <= r.end());
    assert!(in_region, "pmem: {phys:#x}+{len:#x} is not persistent memory");
    let off = phys_offset();
    let mut at = phys;
    while at < end {
        let Some((to, size)) = paging::mapping(VirtAddr::new(off + at)) else {
            panic!("pmem: {at:#x} is not mapped");
        };
        assert_eq!(to.as_u64(), at, "pmem: the physical-memory map is not linear at {at:#x}");
        at = (at | (size.bytes() - 1)) + 1;
    }
    off + phys
}

impl PmemBackend for KernelPmem {
    type Memmap = KernelBackend;

    fn sparse<T>(&mut self, f: impl FnOnce(&mut Sparse<KernelBackend>) -> T) -> T {
        f(&mut SPARSE.lock())
    }

    fn system_ram(&self) -> Vec<(u64, u64)> {
        MEMBLOCK.lock().memory.regions().iter().map(|r| (r.base, r.end())).collect()
    }

    fn is_backed(&self, start: u64, end: u64) -> bool {
        crate::mm::firmware::maps()
            .is_none_or(|m| mm::usermap::is_backed(&m.bios, &m.in_use, PhysRange::new(start, end)))
    }

    fn init_memory_mapping(&mut self, start: u64, size: u64) -> Result<(), u64> {
        physmap::map(start, size)
    }

    fn kernel_physical_mapping_remove(&mut self, start: u64, size: u64) {
        physmap::unmap(start, size);
    }

    fn read_pmem(&mut self, phys: u64, buf: &mut [u8]) {
        let virt = media(phys, buf.len() as u64);
        // SAFETY: `media` checked that the bytes are persistent memory of
        // one region, mapped at `virt`; the driver holds the region lock,
        // so no remove unmaps them meanwhile, and the kernel keeps no Rust
        // reference into a region's media.
        unsafe { core::ptr::copy_nonoverlapping(virt as *const u8, buf.as_mut_ptr(), buf.len()) };
    }

    fn write_pmem(&mut self, phys: u64, bytes: &[u8]) {
        let virt = media(phys, bytes.len() as u64);
        // SAFETY: as in `read_pmem`; the policy writes a data area or an
        // info block, which hold no kernel structure (a memmap on the
        // device lies between them), so writing them breaks no invariant.
        unsafe {
            core::ptr::copy_nonoverlapping(bytes.as_ptr(), virt as *mut u8, bytes.len());
            crate::arch::cpu::flush_cache_range(virt, bytes.len() as u64);
        }
    }

    fn move_pfn_range_to_zone(&mut self, start_pfn: Pfn, nr_pages: u64) {
        crate::mm::zone::move_pfn_range_to_zone(ZoneType::Device, start_pfn, nr_pages);
    }

    fn remove_pfn_range_from_zone(&mut self, start_pfn: Pfn, nr_pages: u64) {
        crate::mm::zone::remove_pfn_range_from_zone(ZoneType::Device, start_pfn, nr_pages);
    }

    fn ktime_get_us(&mut self) -> u64 {
        crate::arch::time::uptime_us()
    }

    fn log(&mut self, level: Level, msg: fmt::Arguments<'_>) {
        match level {
            Level::Info => log::info!("pmem: {msg}"),
            Level::Warn => log::warn!("pmem: {msg}"),
            Level::Error => log::error!("pmem: {msg}"),
        }
    }
}

/// Runs one operation under [`PMEM`], then publishes the regions.
fn operation<T>(f: impl FnOnce(&mut Pmem, &mut KernelPmem) -> T) -> T {
    let mut pmem = PMEM.lock();
    let t = f(&mut pmem, &mut KernelPmem);
    *PUBLISHED.lock() = pmem.regions().to_vec();
    t
}

/// [`operation`] for one that maps or unmaps memory: `MEM_HOTPLUG` first;
/// the change hook after it.
fn hotplug<T>(f: impl FnOnce(&mut Pmem, &mut KernelPmem) -> T) -> T {
    let _hotplug = mem_hotplug_begin();
    let t = operation(f);
    super::changed(None);
    t
}

/// `step` with the change hook for the section first (SPARSE is not held
/// while the policy calls a step).
fn with_hook(step: &mut dyn FnMut(u64, &str)) -> impl FnMut(u64, &str) + '_ {
    move |nr, line| {
        super::changed(Some(nr));
        step(nr, line);
    }
}

/// The regions, in id order, as the last finished operation left them.
pub fn regions() -> Vec<Region> {
    PUBLISHED.lock().clone()
}

/// Registers one region per persistent range and lists them, as the NFIT
/// bus does at boot; each range and its namespace go into /proc/iomem.
pub fn register(ranges: &[crate::acpi::PmemRange]) {
    use crate::acpi::Described;
    hotplug(|p, b| {
        for r in ranges {
            let spa = r.spa;
            let origin = match r.described {
                Described::Firmware => Origin::Firmware { spa },
                Described::Emulated { legacy } => Origin::Emulated { spa, legacy },
            };
            // /proc/iomem: the range (unless E820 already named it, as
            // `memmap=nn!ss` does), the namespace under it.
            let id = p.regions().len();
            let region = Region {
                id,
                start: r.start,
                size: r.size,
                origin,
                state: State::Offline,
                layout: None,
            };
            let end = region.end() - 1;
            let legacy = crate::mm::iomem::contains(r.start, end, "Persistent Memory (legacy)");
            let range = if legacy {
                Ok(())
            } else {
                crate::mm::iomem::insert(r.start, end, "Persistent Memory")
            };
            let namespace = region.namespace();
            if let Err(e) = range.and_then(|()| crate::mm::iomem::insert(r.start, end, &namespace))
            {
                log::warn!("iomem: {e}");
            }
            p.register(b, &[(r.start, r.size, origin)]);
        }
    });
}

/// `nd_pfn_probe` for namespace `id` ([`Pmem::probe`]).
pub fn probe(id: usize) -> Result<Option<mm::nd_pfn::Layout>, PmemError> {
    hotplug(|p, b| p.probe(b, id))
}

/// Hot-adds region `id` ([`Pmem::add`]). `step` is called after each
/// sub-section (each section with an altmap) with the section's line, so
/// a caller can show the bits filling in; it may call [`regions`], which
/// shows the regions as they were before the add.
pub fn add(id: usize, step: &mut dyn FnMut(u64, &str)) -> Result<Region, PmemError> {
    hotplug(|p, b| p.add(b, id, &mut with_hook(step)))
}

/// Hot-removes region `id` ([`Pmem::remove`]), calling `step` as [`add`]
/// does.
pub fn remove(id: usize, step: &mut dyn FnMut(u64, &str)) -> Result<Region, PmemError> {
    hotplug(|p, b| p.remove(b, id, &mut with_hook(step)))
}

/// Changes namespace `id`'s mode ([`Pmem::set_mode`]), calling `step` as
/// [`add`] and [`remove`] do.
pub fn set_mode(
    id: usize,
    mode: Mode,
    step: &mut dyn FnMut(u64, &str),
) -> Result<Region, PmemError> {
    hotplug(|p, b| p.set_mode(b, id, mode, &mut with_hook(step)))
}

/// `len` bytes of region `id`'s data area from `offset`.
pub fn read(id: usize, offset: u64, len: u64) -> Result<Vec<u8>, PmemError> {
    operation(|p, b| p.read(b, id, offset, len))
}

/// Writes `bytes` to region `id`'s data area at `offset` and flushes them
/// to the device.
pub fn write(id: usize, offset: u64, bytes: &[u8]) -> Result<(), PmemError> {
    operation(|p, b| p.write(b, id, offset, bytes))
}

/// `memremap_pages`' refusals for `[start, start + size)` as the regions
/// stand ([`Pmem::check_range`]).
pub fn check_range(start: u64, size: u64) -> Result<(), PmemError> {
    PMEM.lock().check_range(&mut KernelPmem, start, size)
}

/// Whether `r`'s memmap would fit in System RAM
/// ([`Pmem::check_memmap_fits`]).
pub fn check_memmap_fits(r: &Region) -> Result<(), PmemError> {
    Pmem::check_memmap_fits(&mut KernelPmem, r)
}

/// The fault handler's describer (registered by `init`): names the
/// persistent-memory region a faulting address is in.
pub fn describe_fault(virt: u64) -> Option<crate::arch::idt::FaultNote> {
    fault_at(virt).map(|f| crate::arch::idt::FaultNote::new(format_args!("{f}")))
}

/// The region whose physical-memory-map address `virt` is, for the page
/// fault handler. Never waits: if the published regions are busy the
/// answer is `None`.
pub fn fault_at(virt: u64) -> Option<PmemFault> {
    let off = crate::boot::mappings()?.physical_memory_offset;
    let phys = virt.checked_sub(off)?;
    mm::pmem::fault_in(&PUBLISHED.try_lock()?, phys)
}

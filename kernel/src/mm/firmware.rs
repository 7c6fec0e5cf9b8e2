//! The firmware memory map, reconstructed from the bootloader's regions,
//! and the user-defined map from `memmap=`/`mem=`.

use alloc::vec::Vec;
use bootloader_api::info::{MemoryRegion, MemoryRegionKind};
use mm::addr::PhysRange;
use mm::e820::{self, E820Type, Entry, Line};
use mm::usermap::{self, UserMap};
use options::{Memmap, MemmapKind, Opt};
use spin::Once;

/// Which firmware produced the map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    Bios,
    Uefi,
}

/// The firmware's E820 type for one bootloader region. The bootloader's
/// own pieces (its allocations, the kernel image, the ramdisk) were usable
/// RAM to the firmware; UEFI types are converted as Linux's EFI stub does,
/// which leaves types it does not know out of the map (`None`).
pub fn e820_type(kind: MemoryRegionKind) -> Option<E820Type> {
    match kind {
        MemoryRegionKind::Usable | MemoryRegionKind::Bootloader => Some(E820Type::RAM),
        MemoryRegionKind::UnknownBios(t) => Some(E820Type(t)),
        MemoryRegionKind::UnknownUefi(t) => e820::from_efi(t),
        // A kind this kernel does not know: treat as reserved, never as RAM.
        _ => Some(E820Type::RESERVED),
    }
}

/// Converts the bootloader's regions to the firmware's normalized map.
pub fn firmware_map(regions: &[MemoryRegion]) -> (Firmware, Vec<Entry>) {
    let fw = if regions.iter().any(|r| matches!(r.kind, MemoryRegionKind::UnknownUefi(_))) {
        Firmware::Uefi
    } else {
        Firmware::Bios
    };
    let entries: Vec<Entry> = regions
        .iter()
        .filter_map(|r| Some(Entry::new(r.start, r.end, e820_type(r.kind)?)))
        .collect();
    (fw, e820::normalize(&entries))
}

/// The maps the kernel booted with.
pub struct Maps {
    pub firmware: Firmware,
    /// The firmware's view, normalized (`BIOS-e820:` lines).
    pub bios: Vec<Entry>,
    /// After `memmap=`/`mem=` (equal to `bios` without such options).
    pub user: UserMap,
    /// The table the kernel uses: the user map after Linux's
    /// `trim_bios_range` (page 0 reserved, no RAM in 640 KiB - 1 MiB).
    pub e820: Vec<Entry>,
    /// The bootloader's pieces (page tables, boot info, kernel image,
    /// stack, ramdisk): never System RAM to hand out.
    pub in_use: Vec<PhysRange>,
}

static MAPS: Once<Maps> = Once::new();

/// The maps, once [`init`] has run.
pub fn maps() -> Option<&'static Maps> {
    MAPS.get()
}

/// The emulated persistent range when no option names one (see
/// [`usermap::default_pmem_range`] for the rule), as the `memmap=` option
/// that would ask for it; `nopmem` when no section qualifies. `map` is the
/// user map after the other options (`mem=`, `memmap=`), so the range comes
/// from the RAM that remains.
fn default_pmem(map: &[Entry], in_use: &[PhysRange], mem: Option<u64>) -> Opt {
    let limit = mem.map_or(alloc::string::String::new(), |m| alloc::format!(" below mem={m:#x}"));
    match usermap::default_pmem_range(map, in_use) {
        Some(r) => {
            log::info!(
                "pmem: no memmap=nn!ss option: emulating {r} ({} MiB) as persistent memory, \
                 in the highest 128 MiB section of free RAM{limit}; nopmem turns this off",
                r.size() >> 20
            );
            Opt::Memmap(Memmap::Add {
                size: r.size(),
                start: r.start,
                kind: MemmapKind::Persistent,
            })
        }
        None => {
            log::info!(
                "pmem: no memmap=nn!ss option and no 128 MiB section of free RAM{limit}: \
                 no persistent memory emulated"
            );
            Opt::NoPmem
        }
    }
}

/// Builds, prints and records the firmware and user maps.
pub fn init(regions: &[MemoryRegion], cmdline: &str) -> &'static Maps {
    MAPS.call_once(|| {
        let (firmware, bios) = firmware_map(regions);
        log::info!("BIOS-provided physical RAM map:");
        for e in &bios {
            log::info!("{}", Line("BIOS-e820", e));
        }
        let mut opts: Vec<Opt> = options::parse(cmdline).filter_map(Result::ok).collect();
        let in_use: Vec<PhysRange> = regions
            .iter()
            .filter(|r| r.kind == MemoryRegionKind::Bootloader)
            .map(|r| PhysRange::new(r.start, r.end))
            .collect();
        if !opts.iter().any(Opt::names_pmem) {
            // Where the other options leave RAM, without their messages
            // (the real pass below prints them once).
            let trial = usermap::apply(&bios, opts.clone(), |_| {});
            let mem = opts.iter().rev().find_map(|o| match o {
                Opt::Mem(m) | Opt::Memmap(Memmap::Limit(m)) => Some(*m),
                _ => None,
            });
            opts.push(default_pmem(&trial.map, &in_use, mem));
        }
        let user = usermap::apply(&bios, opts, |e| log::warn!("{e}"));
        for c in &user.changes {
            log::debug!("{c}");
        }
        if user.userdef {
            log::info!("user-defined physical RAM map:");
            for e in &user.map {
                log::info!("{}", Line("user", e));
            }
        }
        let (e820, trims) = usermap::trim_bios_range(&user.map);
        for t in trims {
            log::debug!("{t}");
        }
        Maps { firmware, bios, user, e820, in_use }
    })
}

//! The kernel's memblock: System RAM from the user map, with the first
//! MiB, the bootloader's pieces (page tables, boot info, kernel image,
//! stack, ramdisk) and the framebuffer reserved.

use alloc::vec::Vec;
use bootloader_api::info::{MemoryRegion, MemoryRegionKind};
use mm::e820::{E820Type, Entry, MemRange};
use mm::memblock::{Memblock, Region, RegionList};
use spin::Mutex;

use mm::page::PAGE_SIZE;
/// Linux on x86 always reserves the first MiB (BIOS data, EBDA, real-mode
/// trampolines).
const LOW_RESERVE: u64 = 1 << 20;

/// The early allocator, until the page allocator takes over.
pub static MEMBLOCK: Mutex<Memblock> = Mutex::new(Memblock::new());

/// Fills memblock: memory from the usable entries of `map` (trimmed to
/// whole pages, as `memblock_trim_memory` does), reservations from the
/// bootloader's regions, the first MiB and `framebuffer` (physical range).
///
/// Usable RAM that `memmap=nn@ss` (or `%..+1`) declared where the firmware
/// (`firmware`) has none is left out with a warning: Linux would use it
/// and crash on memory that is not there, or overwrite firmware tables.
pub fn init(
    map: &[Entry],
    firmware: &[Entry],
    regions: &[MemoryRegion],
    framebuffer: Option<(u64, u64)>,
) {
    let mut ram = Vec::new();
    for e in map.iter().filter(|e| e.ty == E820Type::RAM) {
        let mut at = e.start;
        for f in
            firmware.iter().filter(|f| f.ty == E820Type::RAM && f.end > e.start && f.start < e.end)
        {
            let (lo, hi) = (f.start.max(e.start), f.end.min(e.end));
            if lo > at {
                log::warn!(
                    "memblock: {} is not RAM in the firmware map: not used",
                    MemRange(at, lo)
                );
            }
            ram.push(Entry::new(lo, hi, E820Type::RAM));
            at = hi;
        }
        if at < e.end {
            log::warn!(
                "memblock: {} is not RAM in the firmware map: not used",
                MemRange(at, e.end)
            );
        }
    }
    let mut mb = MEMBLOCK.lock();
    fill(&mut mb, &ram, regions, framebuffer);
    log::info!(
        "memblock: memory {:#x} bytes in {} regions, reserved {:#x} bytes in {} regions, free {:#x} bytes",
        mb.memory.total(),
        mb.memory.regions().len(),
        mb.reserved.total(),
        mb.reserved.regions().len(),
        mb.free_bytes()
    );
    log::debug!("MEMBLOCK configuration:");
    log::debug!(
        " memory size = {:#018x} reserved size = {:#018x}",
        mb.memory.total(),
        mb.reserved.total()
    );
    dump("memory", &mb.memory);
    dump("reserved", &mb.reserved);
}

/// [`init`]'s work on any memblock.
fn fill(mb: &mut Memblock, map: &[Entry], regions: &[MemoryRegion], fb: Option<(u64, u64)>) {
    for e in map.iter().filter(|e| e.ty == E820Type::RAM) {
        let start = e.start.next_multiple_of(PAGE_SIZE);
        let end = e.end & !(PAGE_SIZE - 1);
        if end > start {
            mb.memory.add(start, end - start);
        }
    }
    mb.reserved.add(0, LOW_RESERVE);
    for r in regions.iter().filter(|r| r.kind == MemoryRegionKind::Bootloader) {
        mb.reserved.add(r.start, r.end - r.start);
    }
    if let Some((base, size)) = fb {
        mb.reserved.add(base, size);
    }
}

/// Linux's `memblock_dump` lines.
fn dump(name: &str, list: &RegionList) {
    log::debug!(" {name}.cnt  = {:#x}", list.regions().len());
    for (i, Region { base, size }) in list.regions().iter().enumerate() {
        log::debug!(
            " {name}[{i:#x}]\t[{base:#018x}-{:#018x}], {size:#018x} bytes flags: 0x0",
            base + size - 1
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::firmware::firmware_map;
    use alloc::vec::Vec;

    /// A firmware with far more than 100 regions (real UEFI machines have
    /// hundreds): 150 RAM pieces, each cut in two EFI types that both mean
    /// RAM, separated by 150 reserved pages, and 20 bootloader pieces.
    #[test_case]
    fn hundreds_of_firmware_regions() {
        const MIB: u64 = 1 << 20;
        let mut regions = Vec::new();
        for i in 0..150u64 {
            let base = (16 + 2 * i) * MIB;
            let kind = |t| MemoryRegionKind::UnknownUefi(t);
            // EFI boot-services data (4) and conventional memory (7): RAM.
            // The bootloader's pieces are cut out of the first 20 of them.
            let start = if i < 20 { base + 4096 } else { base };
            regions.push(MemoryRegion { start, end: base + MIB / 2, kind: kind(4) });
            regions.push(MemoryRegion { start: base + MIB / 2, end: base + MIB, kind: kind(7) });
            // Runtime-services data (6): reserved.
            regions.push(MemoryRegion { start: base + MIB, end: base + MIB + 4096, kind: kind(6) });
        }
        for i in 0..20u64 {
            let start = (16 + 2 * i) * MIB;
            let piece =
                MemoryRegion { start, end: start + 4096, kind: MemoryRegionKind::Bootloader };
            regions.insert(4 * i as usize, piece);
        }
        assert_eq!(regions.len(), 470);
        let (_, map) = firmware_map(&regions);
        let ram = map.iter().filter(|e| e.ty == E820Type::RAM).count();
        assert_eq!((map.len(), ram), (300, 150), "{map:?}");
        let mut mb = Memblock::new();
        fill(&mut mb, &map, &regions, None);
        assert_eq!(mb.memory.regions().len(), 150);
        assert_eq!(mb.memory.total(), 150 * MIB);
        // The first MiB and the 20 bootloader pages.
        assert_eq!(mb.reserved.regions().len(), 21);
        assert_eq!(mb.free_bytes(), 150 * MIB - 20 * 4096);
    }
}

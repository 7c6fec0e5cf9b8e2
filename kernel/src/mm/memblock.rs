//! The kernel's memblock: System RAM from the user map, with the first
//! MiB, the bootloader's pieces (page tables, boot info, kernel image,
//! stack, ramdisk) and the framebuffer reserved.

use bootloader_api::info::{MemoryRegion, MemoryRegionKind};
use mm::e820::{E820Type, Entry};
use mm::memblock::{Memblock, Region, RegionList};
use spin::Mutex;

const PAGE_SIZE: u64 = 4096;
/// Linux on x86 always reserves the first MiB (BIOS data, EBDA, real-mode
/// trampolines).
const LOW_RESERVE: u64 = 1 << 20;

/// The early allocator, until the page allocator takes over.
pub static MEMBLOCK: Mutex<Memblock> = Mutex::new(Memblock::new());

/// Fills memblock: memory from the usable entries of `map` (trimmed to
/// whole pages, as `memblock_trim_memory` does), reservations from the
/// bootloader's regions, the first MiB and `framebuffer` (physical range).
pub fn init(map: &[Entry], regions: &[MemoryRegion], framebuffer: Option<(u64, u64)>) {
    let mut mb = MEMBLOCK.lock();
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
    if let Some((base, size)) = framebuffer {
        mb.reserved.add(base, size);
    }
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

//! Page-table walks through the bootloader's physical-memory mapping.

use x86_64::VirtAddr;
use x86_64::registers::control::Cr3;
use x86_64::structures::paging::{OffsetPageTable, PageTable, Translate};

/// The physical address `virt` maps to in the current page tables, given
/// the virtual address of physical 0 (`phys_offset`).
pub fn translate(phys_offset: u64, virt: u64) -> Option<u64> {
    let (l4_frame, _) = Cr3::read();
    let l4 = (phys_offset + l4_frame.start_address().as_u64()) as *mut PageTable;
    // SAFETY: the bootloader maps all physical memory at `phys_offset`
    // (BOOTLOADER_CONFIG asks for it), so the active level-4 table is
    // reachable there; the walk only reads it and nothing else changes the
    // page tables concurrently during boot.
    let pt = unsafe { OffsetPageTable::new(&mut *l4, VirtAddr::new(phys_offset)) };
    pt.translate_addr(VirtAddr::new(virt)).map(|p| p.as_u64())
}

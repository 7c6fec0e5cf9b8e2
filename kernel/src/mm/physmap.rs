//! The kernel's own part of the physical-memory map for hot-plugged
//! ranges: `arch_add_memory` maps a range before it is used and
//! `arch_remove_memory` unmaps it, so a stray access to memory that is not
//! added faults instead of reaching whatever is there.
//!
//! Both the bootloader and [`map`] map physical memory in 2 MiB pages, the
//! size of a sub-section, the smallest unit ranges are added in.

use mm::sparse::SUBSECTION_SIZE as SUBSECTION;

use x86_64::{PhysAddr, VirtAddr};

use crate::arch::paging::{self, MapSize};

const _: () = assert!(MapSize::Size2M.bytes() == SUBSECTION, "one 2 MiB page per sub-section");

fn offset() -> Option<u64> {
    crate::boot::mappings().map(|m| m.physical_memory_offset)
}

/// Maps `[start, start + size)` (2 MiB aligned) write-back in the
/// physical-memory map, page tables coming from the page allocator. Pieces
/// already mapped are left as they are. On failure, returns the address
/// that could not be mapped; what this call mapped stays mapped (the
/// caller's undo unmaps the whole range).
pub fn map(start: u64, size: u64) -> Result<(), u64> {
    let off = offset().ok_or(start)?;
    let mut at = start;
    while at < start + size {
        let virt = VirtAddr::new(off + at);
        if paging::mapping(virt).is_none() {
            let mut frames = crate::mm::page_alloc::alloc_frame;
            // SAFETY: `off + at` is the physical-memory map's address of a
            // range being hot-added, which nothing maps or references yet;
            // the caller owns the range.
            unsafe { paging::map(virt, PhysAddr::new(at), MapSize::Size2M, &mut frames) }
                .map_err(|_| at)?;
        }
        at += SUBSECTION;
    }
    Ok(())
}

/// Takes `[start, start + size)` out of the physical-memory map.
/// Page-table pages stay, so mapping the range again allocates nothing. A
/// 4 KiB mapping found inside is taken out page by page.
pub fn unmap(start: u64, size: u64) {
    let Some(off) = offset() else { return };
    // SAFETY: the caller owns the range and is taking it out of use: it is
    // offline or being removed, and the kernel keeps no reference into it
    // (memmaps live in the vmemmap, a separate mapping). One TLB shootdown
    // covers the whole range.
    unsafe { paging::unmap_range(VirtAddr::new(off + start), VirtAddr::new(off + start + size)) };
}

//! The section table as lock-free readers see it (`mem_section[]`), and
//! its read-side sections: below both the memory model's writer
//! ([`crate::mm::sparse`], which changes it under `SPARSE`) and the page
//! allocator ([`crate::mm::page_alloc`], which reaches page descriptors
//! through it without `SPARSE`), so that the writer can allocate pages and
//! the allocator can check pfns without either importing the other.

use mm::page::{Pfn, memmap_offset};
use mm::sparse::{RcuGuard, SectionTable};

use crate::arch::percpu;
use crate::boot::layout::VMEMMAP_START;

/// The section table as lock-free readers see it.
pub static SECTIONS: SectionTable = SectionTable::new();

/// This CPU's number, as the section table's read-side sections count CPUs.
pub fn this_cpu() -> usize {
    percpu::current() as usize
}

/// Enters a read-side section of the section table on this CPU
/// (`rcu_read_lock`): usages and memmap reached through [`SECTIONS`] stay
/// allocated and mapped while it lives. Never wait inside one for anything
/// a hotplug operation holds across a grace period (the zone locks are
/// fine: nobody holds one while waiting for a grace period).
pub fn rcu_read_lock() -> RcuGuard<'static> {
    SECTIONS.read_lock(this_cpu())
}

/// `pfn_valid`, without a lock: a read-side section of its own.
pub fn pfn_valid(pfn: Pfn) -> bool {
    SECTIONS.pfn_valid(this_cpu(), pfn)
}

/// `pfn_to_page` (vmemmap: arithmetic only; no lock).
pub fn pfn_to_page(pfn: Pfn) -> u64 {
    VMEMMAP_START + memmap_offset(pfn)
}

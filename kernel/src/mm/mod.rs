//! The physical memory model, built at boot from the firmware's map.
//! The portable logic (E820 normalization, the user map) lives in the
//! `tessera-mm` crate; this module feeds it the bootloader's regions and
//! prints the results as Linux does.

pub mod defer_init;
pub mod deferred;
pub mod firmware;
pub mod heap;
pub mod iomem;
pub mod lock;
pub mod memblock;
pub mod memory_hotplug;
pub mod migrate;
pub mod page_alloc;
pub mod physmap;
pub mod sections;
pub mod sparse;
pub mod zone;

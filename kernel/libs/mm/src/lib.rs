//! Tessera's portable memory-model logic: the firmware memory map (E820
//! types, normalization, Linux's printed form) and the user-defined map
//! from `memmap=`/`mem=` options. No hardware access, no `unsafe`: it builds
//! and is tested on the host.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod buddy;
pub mod e820;
pub mod iomem;
pub mod memblock;
pub mod memory_block;
pub mod nd_pfn;
pub mod page;
pub mod sparse;
pub mod usermap;
pub mod zone;

/// splitmix64's output function: a well-mixed 64-bit value for each input
/// (uuids, test patterns).
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

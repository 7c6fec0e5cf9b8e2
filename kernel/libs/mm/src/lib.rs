//! Tessera's portable memory model and its policies, the part of the kernel
//! that needs no hardware: it builds for the kernel (`no_std` + `alloc`) and
//! is tested on the host with plain `cargo test`. No `unsafe`.
//!
//! - Maps: the firmware's E820 map ([`e820`]: types, normalization, Linux's
//!   printed form), the user map from `memmap=`/`mem=` ([`usermap`]),
//!   memblock ([`memblock`]), the `/proc/iomem` tree ([`iomem`]).
//! - The model: page descriptors ([`page`]), SPARSEMEM sections with
//!   sub-section hot-add and remove behind [`sparse::SparseBackend`]
//!   ([`sparse`]), the buddy allocator ([`buddy`]) and its per-CPU page lists
//!   ([`pcp`]), zones and
//!   `/proc/zoneinfo` ([`zone`]), deferred struct-page init ([`deferred`]).
//! - Policy, each behind a backend trait the kernel implements: memory
//!   blocks and their add/online/offline/remove state machine
//!   ([`memory_hotplug`], with the rules in [`memory_block`] and movable
//!   pages' migration in [`migrate`]), persistent
//!   memory regions and namespaces ([`pmem`], with the fsdax/devdax info
//!   block of [`nd_pfn`]).
//! - Types that say what a number is: [`page::Pfn`], [`addr::PhysRange`].
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![feature(step_trait)]

extern crate alloc;

pub mod addr;
pub mod buddy;
pub mod deferred;
pub mod e820;
pub mod iomem;
pub mod memblock;
pub mod memory_block;
pub mod memory_hotplug;
pub mod migrate;
pub mod nd_pfn;
pub mod page;
pub mod pcp;
pub mod pmem;
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

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
pub mod page;
pub mod sparse;
pub mod usermap;

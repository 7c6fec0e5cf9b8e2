//! Tessera: a small x86_64 kernel whose physical memory model is Linux's
//! SPARSEMEM with 2 MiB sub-sections.
//!
//! This crate is the kernel library: everything the kernel binary and the
//! in-kernel test binaries (`kernel/tests/`) share. Hardware access lives in
//! [`arch`]; portable logic lives in the crates under `kernel/libs/`.
#![no_std]
#![cfg_attr(test, no_main)]
#![feature(custom_test_frameworks)]
#![feature(abi_x86_interrupt)]
#![test_runner(crate::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

extern crate alloc;

// The layers, bottom to top (DESIGN.md §4a): each imports only those
// above it in this list; `qemu/tests/layers.rs` checks it.
pub mod acpi;
pub mod arch;
pub mod boot;
pub mod console;
pub mod drivers;
pub mod init;
pub mod mm;
pub mod mosaic;
pub mod panic;
pub mod shell;
pub mod smp;
pub mod stress;
pub mod testing;

pub use boot::BOOTLOADER_CONFIG;
pub use bootloader_api;

#[cfg(test)]
test_binary_entry!();

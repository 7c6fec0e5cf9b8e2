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

pub mod acpi;
pub mod arch;
pub mod console;
pub mod heap;
pub mod init;
pub mod mm;
pub mod panic;
pub mod power;
pub mod shell;
pub mod testing;

pub use bootloader_api;
pub use init::BOOTLOADER_CONFIG;

#[cfg(test)]
test_binary_entry!();

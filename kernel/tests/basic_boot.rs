//! The kernel comes up as a whole: console, heap, clock, descriptor tables,
//! QEMU detection and the options handed over by the runner.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

extern crate alloc;

use bootloader_api::{BootInfo, entry_point};
use kernel::arch::{gdt, qemu, time};
use kernel::{BOOTLOADER_CONFIG, init, testing};

entry_point!(main, config = &BOOTLOADER_CONFIG);

fn main(boot_info: &'static mut BootInfo) -> ! {
    init::init(boot_info);
    test_main();
    testing::finish()
}

#[test_case]
fn runs_under_qemu() {
    assert!(qemu::under_qemu());
}

#[test_case]
fn heap_works_after_init() {
    let v: alloc::vec::Vec<u64> = (0..1000).collect();
    assert_eq!(v[999], 999);
}

#[test_case]
fn clock_measures_a_busy_millisecond() {
    let start = time::uptime_us();
    while time::uptime_us() - start < 1000 {}
    let took = time::uptime_us() - start;
    assert!((1000..50_000).contains(&took), "{took} us");
}

#[test_case]
fn tss_points_at_the_double_fault_stack() {
    let (lo, hi) = gdt::double_fault_stack();
    assert_eq!(hi - lo, gdt::DOUBLE_FAULT_STACK_SIZE as u64);
    assert_eq!(hi % 16, 0);
}

#[test_case]
fn fw_cfg_has_no_cmdline_for_tests() {
    // The harness boots test binaries without options.
    let mut buf = [0u8; 16];
    assert_eq!(qemu::fw_cfg_file(init::FW_CFG_CMDLINE, &mut buf), None);
    assert_eq!(init::cmdline(), "");
    assert!(!init::options().poweroff);
}

#[test_case]
fn fw_cfg_finds_a_standard_file() {
    // QEMU always provides etc/e820 on the pc machine.
    let mut buf = [0u8; 20];
    let size = qemu::fw_cfg_file("etc/e820", &mut buf).expect("etc/e820 exists");
    assert!(size >= 20 && size % 20 == 0, "size {size}");
}

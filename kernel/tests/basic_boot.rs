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

#[test_case]
fn bootloader_mappings_stay_in_the_dynamic_range() {
    use init::layout::{DYNAMIC_END, DYNAMIC_START};
    let m = init::mappings().expect("recorded by init");
    let rsp = {
        let marker = 0u8;
        &marker as *const u8 as u64
    };
    let mut addrs = [m.physical_memory_offset, m.kernel_image, m.boot_info, rsp, 0];
    addrs[4] = m.framebuffer.unwrap_or(DYNAMIC_START);
    for a in addrs {
        assert!((DYNAMIC_START..DYNAMIC_END).contains(&a), "{a:#x} outside the dynamic range");
    }
    // The physical-memory map really maps physical memory: a static read
    // through it, at the physical address the page tables give, is intact.
    static PROBE: u64 = 0x5445_5353_4552_4121;
    let phys = physical_address_of(m.physical_memory_offset, &raw const PROBE as u64);
    // SAFETY: `phys` is the frame backing PROBE, mapped at the offset.
    let via_phys =
        unsafe { core::ptr::read_volatile((m.physical_memory_offset + phys) as *const u64) };
    assert_eq!(via_phys, PROBE);
}

fn physical_address_of(offset: u64, virt: u64) -> u64 {
    use x86_64::registers::control::Cr3;
    use x86_64::structures::paging::{OffsetPageTable, PageTable, Translate};
    let (l4_frame, _) = Cr3::read();
    let l4 = (offset + l4_frame.start_address().as_u64()) as *mut PageTable;
    // SAFETY: the bootloader maps all physical memory at `offset`, so the
    // level-4 table is reachable there; it is only read (translate).
    let pt = unsafe { OffsetPageTable::new(&mut *l4, x86_64::VirtAddr::new(offset)) };
    pt.translate_addr(x86_64::VirtAddr::new(virt)).expect("a static is mapped").as_u64()
}

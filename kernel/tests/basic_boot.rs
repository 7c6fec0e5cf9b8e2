//! The kernel comes up as a whole: console, heap, clock, descriptor tables,
//! QEMU detection and the options handed over by the runner.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

extern crate alloc;

use kernel::arch::{qemu, time};
use kernel::boot;

kernel::test_binary_entry!();

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
fn fw_cfg_has_no_cmdline_for_tests() {
    // The harness boots test binaries without options.
    let mut buf = [0u8; 16];
    assert_eq!(qemu::fw_cfg_file(boot::FW_CFG_CMDLINE, &mut buf), None);
    assert_eq!(boot::cmdline(), "");
    assert!(!boot::options().poweroff);
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
    use boot::layout::{DYNAMIC_END, DYNAMIC_START};
    let m = boot::mappings().expect("recorded by init");
    let rsp = {
        let marker = 0u8;
        &marker as *const u8 as u64
    };
    let mut addrs = [m.physical_memory_offset, m.kernel_image, m.boot_info, rsp, 0];
    addrs[4] = m.framebuffer.map_or(DYNAMIC_START, |(virt, _)| virt);
    for a in addrs {
        assert!((DYNAMIC_START..DYNAMIC_END).contains(&a), "{a:#x} outside the dynamic range");
    }
    // The physical-memory map really maps physical memory: a static read
    // through it, at the physical address the page tables give, is intact.
    static PROBE: u64 = 0x5445_5353_4552_4121;
    let phys = physical_address_of(&raw const PROBE as u64);
    // SAFETY: `phys` is the frame backing PROBE, mapped at the offset.
    let via_phys =
        unsafe { core::ptr::read_volatile((m.physical_memory_offset + phys) as *const u64) };
    assert_eq!(via_phys, PROBE);
}

fn physical_address_of(virt: u64) -> u64 {
    kernel::arch::paging::translate(x86_64::VirtAddr::new(virt))
        .expect("a static is mapped")
        .as_u64()
}

#[test_case]
fn memblock_reserves_what_the_kernel_stands_on() {
    use kernel::mm::memblock::MEMBLOCK;
    static PROBE: u8 = 7;
    let image = physical_address_of(&raw const PROBE as u64);
    let stack = {
        let marker = 0u8;
        physical_address_of(&raw const marker as u64)
    };
    let mb = MEMBLOCK.lock();
    for (what, pa) in [("kernel image", image), ("kernel stack", stack), ("page 0", 0)] {
        assert!(mb.reserved.overlaps(pa, 1), "{what} at {pa:#x} is not reserved");
    }
    // Memory is exactly the page-trimmed usable RAM of the final table,
    // which starts above page 0, as on Linux.
    assert_eq!(mb.memory.regions()[0].base, 0x1000);
    let ram = kernel::mm::firmware::maps().unwrap().e820.iter();
    let ram: u64 = ram
        .filter(|e| e.ty == mm::e820::E820Type::RAM)
        .map(|e| (e.end & !0xfff).saturating_sub(e.start.next_multiple_of(0x1000)))
        .sum();
    assert_eq!(mb.memory.total(), ram);
}

#[test_case]
fn memblock_allocations_come_from_free_ram() {
    // memblock is kept after the page allocator took over, as a record of
    // boot; allocate from a copy so the page allocator's memory is untouched.
    let before = kernel::mm::memblock::MEMBLOCK.lock().clone();
    let mut mb = before.clone();
    let free = mb.free_bytes();
    let pa = mb.alloc_range(0x20_0000, 0x20_0000, 0, 1 << 32).expect("2 MiB below 4 GiB");
    assert_eq!(pa % 0x20_0000, 0);
    assert!(pa + 0x20_0000 <= 1 << 32);
    assert!(!before.reserved.overlaps(pa, 0x20_0000));
    assert!(before.free_ranges().iter().any(|r| r.base <= pa && pa + 0x20_0000 <= r.end()));
    assert_eq!(mb.free_bytes(), free - 0x20_0000);
    // Top-down: nothing free above it below 4 GiB.
    assert!(mb.alloc_range(0x20_0000, 0x20_0000, pa, 1 << 32).is_err());
}

/// The power-off path has what it needs from QEMU's tables: a PM1a control
/// port and a `\_S5_` package in the DSDT (the USB boot test powers off
/// through it without QEMU's exit device).
#[test_case]
fn acpi_s5_is_found() {
    use acpi::sleep::{Pm1Control, s5_sleep_type};
    let t = kernel::acpi::get().and_then(|a| a.tables.as_ref()).expect("ACPI tables");
    let fadt = t.find(*b"FACP").expect("a FADT");
    let pm = Pm1Control::from_fadt(&fadt.bytes).expect("PM1a control block");
    assert_ne!(pm.pm1a_cnt, 0);
    let dsdt = t.find(*b"DSDT").expect("a DSDT");
    let s5 = s5_sleep_type(&dsdt.bytes);
    assert!(s5.is_ok(), "{s5:?}");
}

/// Boot allocated nothing from the heap while it held `SPARSE` after the
/// page allocator took over (the lock order of DESIGN.md §4a).
#[test_case]
fn boot_allocates_nothing_under_sparse() {
    assert_eq!(kernel::mm::heap::allocs_under_zone_lock(), 0);
}

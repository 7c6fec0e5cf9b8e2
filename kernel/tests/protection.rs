//! Memory protection: the kernel image is mapped W^X (code executable and
//! read-only, data and read-only data not executable), and page
//! descriptors, the heap and physical memory are never executable, and
//! both stacks (the kernel's and the double-fault IST stack) have an
//! unmapped guard page below them. `stack_overflow` runs into the first.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

extern crate alloc;

use alloc::boxed::Box;
use core::sync::atomic::{AtomicU64, Ordering};

use kernel::arch::paging;
use kernel::boot::{self, layout::VMEMMAP_START};
use x86_64::structures::paging::PageTableFlags as F;

kernel::test_binary_entry!();

static DATA: AtomicU64 = AtomicU64::new(1);
static RODATA: [u8; 16] = *b"tessera rodata..";

/// A function of the kernel image's code.
#[inline(never)]
fn code_marker() -> u64 {
    DATA.load(Ordering::Relaxed)
}

fn flags(virt: u64) -> F {
    paging::flags(x86_64::VirtAddr::new(virt)).unwrap_or_else(|| panic!("{virt:#x} is not mapped"))
}

fn writable(f: F) -> bool {
    f.contains(F::WRITABLE)
}

fn executable(f: F) -> bool {
    !f.contains(F::NO_EXECUTE)
}

#[test_case]
fn kernel_code_is_executable_and_read_only() {
    let f = flags(code_marker as *const () as usize as u64);
    assert!(executable(f) && !writable(f), "text: {f:?}");
}

#[test_case]
fn kernel_data_and_rodata_are_not_executable() {
    DATA.fetch_add(code_marker(), Ordering::Relaxed);
    let f = flags(&DATA as *const _ as u64);
    assert!(writable(f) && !executable(f), "data: {f:?}");
    let f = flags(RODATA.as_ptr() as u64);
    assert!(!writable(f) && !executable(f), "rodata: {f:?}");
}

#[test_case]
fn every_page_of_the_kernel_image_is_w_xor_x() {
    // From the lowest to the highest of code, read-only data and data.
    let marks = [
        code_marker as *const () as usize as u64,
        RODATA.as_ptr() as u64,
        &DATA as *const _ as u64,
    ];
    let (lo, hi) = (marks.iter().min().unwrap() & !0xfff, *marks.iter().max().unwrap());
    let mut pages = 0;
    for page in (lo..=hi).step_by(4096) {
        if let Some(f) = paging::flags(x86_64::VirtAddr::new(page)) {
            assert!(!(writable(f) && executable(f)), "{page:#x}: {f:?}");
            pages += 1;
        }
    }
    assert!(pages >= 3, "{pages} pages checked");
}

#[test_case]
fn heap_memmap_and_physical_memory_are_not_executable() {
    let b = Box::new(0u64);
    let f = flags(&*b as *const u64 as u64);
    assert!(writable(f) && !executable(f), "heap: {f:?}");
    let f = flags(VMEMMAP_START);
    assert!(writable(f) && !executable(f), "vmemmap: {f:?}");
    let off = boot::mappings().unwrap().physical_memory_offset;
    let f = flags(off + (1 << 20));
    assert!(!executable(f), "physical-memory map: {f:?}");
}

#[test_case]
fn both_stacks_have_an_unmapped_guard_page_below_them() {
    use kernel::arch::gdt;
    let off = boot::mappings().unwrap().physical_memory_offset;
    let (lo, hi) = gdt::double_fault_stack();
    for page in (lo..hi).step_by(4096) {
        let f = flags(page);
        assert!(writable(f) && !executable(f), "double-fault stack {page:#x}: {f:?}");
    }
    assert_eq!(gdt::double_fault_guard(), lo - 4096);
    assert_eq!(paging::mapping(x86_64::VirtAddr::new(lo - 4096)), None, "double-fault guard page");
    // The kernel stack: mapped from here down to its lowest page, which is
    // at most the configured size below, and the page under that is not.
    let rsp = &off as *const u64 as u64 & !0xfff;
    let mut low = rsp;
    while paging::mapping(x86_64::VirtAddr::new(low - 4096)).is_some() {
        low -= 4096;
        assert!(rsp - low <= boot::KERNEL_STACK_SIZE, "no guard within the stack size");
    }
    assert!(rsp - low < boot::KERNEL_STACK_SIZE, "{:#x} bytes below rsp", rsp - low);
    assert!(!executable(flags(low)) && writable(flags(low)), "the stack's lowest page");
}

//! Unbounded recursion runs into the guard page below the kernel stack; the
//! page fault cannot push its frame there, so the CPU raises a double fault,
//! which must arrive on its IST stack. The test checks the vector, the stack
//! the handler runs on, and that CR2 lies just below the kernel stack.
#![no_std]
#![no_main]

use bootloader_api::{BootInfo, entry_point};
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::arch::{gdt, idt};
use kernel::boot::KERNEL_STACK_SIZE;
use kernel::{BOOTLOADER_CONFIG, init, println, testing};
use x86_64::registers::control::Cr2;

entry_point!(main, config = &BOOTLOADER_CONFIG);

const NAME: &str = "stack_overflow::overflow_is_caught_on_the_ist_stack";

/// RSP near the top of the kernel stack, recorded at entry.
static ENTRY_RSP: AtomicU64 = AtomicU64::new(0);

fn main(boot_info: &'static mut BootInfo) -> ! {
    let marker = 0u8;
    ENTRY_RSP.store(&marker as *const u8 as u64, Ordering::SeqCst);
    init::init(boot_info);
    testing::single_test(NAME);
    idt::set_fault_hook(on_fault);
    recurse(0);
    println!("test {NAME} ... FAILED");
    println!("note: recursion returned");
    testing::fail()
}

#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let buf = core::hint::black_box([depth; 32]);
    recurse(depth + 1) + buf[3]
}

fn on_fault(info: &idt::ExceptionInfo) -> ! {
    let (lo, hi) = gdt::double_fault_stack();
    let cr2 = Cr2::read_raw();
    let top = ENTRY_RSP.load(Ordering::SeqCst);
    let checks = [
        (info.vector == 8, "vector is 8 (double fault)"),
        (info.handler_rsp > lo && info.handler_rsp <= hi, "handler runs on the IST stack"),
        (cr2 < top && top - cr2 <= KERNEL_STACK_SIZE + 4096, "CR2 is in the guard page"),
    ];
    testing::conclude(NAME, &checks, format_args!("{info} CR2={cr2:#x} stack top {top:#x}"))
}

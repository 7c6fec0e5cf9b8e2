//! An application processor's stack has a guard page and its TSS its own
//! double-fault stack: unbounded recursion on CPU 1 runs into the guard
//! page, and the double fault arrives on CPU 1's IST stack, not the boot
//! CPU's. Booted on the multi-CPU profiles only.
#![no_std]
#![no_main]

use bootloader_api::{BootInfo, entry_point};
use kernel::arch::{idt, ipi, percpu};
use kernel::{BOOTLOADER_CONFIG, init, println, testing};
use x86_64::registers::control::Cr2;

entry_point!(main, config = &BOOTLOADER_CONFIG);

const NAME: &str = "smp_stack_overflow::overflow_on_cpu_1_is_caught_on_its_own_ist_stack";

fn main(boot_info: &'static mut BootInfo) -> ! {
    init::init(boot_info);
    testing::single_test(NAME);
    let cpu1 = percpu::cpu(1).filter(|c| percpu::online_mask() & c.mask() != 0);
    let Some(cpu1) = cpu1 else {
        println!("test {NAME} ... FAILED");
        println!("note: this test needs a second CPU online");
        testing::fail()
    };
    idt::set_fault_hook(on_fault);
    let _ = ipi::call_function(cpu1.mask(), &|| {
        recurse(0);
    });
    println!("test {NAME} ... FAILED");
    println!("note: the recursion on CPU 1 returned");
    testing::fail()
}

#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let buf = core::hint::black_box([depth; 32]);
    recurse(depth + 1) + buf[3]
}

fn on_fault(info: &idt::ExceptionInfo) -> ! {
    let me = percpu::this();
    let (lo, hi) = me.df_stack;
    let cr2 = Cr2::read_raw();
    let checks = [
        (me.cpu == 1, "the fault is on CPU 1"),
        (info.vector == 8, "vector is 8 (double fault)"),
        (info.handler_rsp > lo && info.handler_rsp <= hi, "handler runs on CPU 1's IST stack"),
        (cr2 >= me.stack.0 - 4096 && cr2 < me.stack.0, "CR2 is in CPU 1's guard page"),
    ];
    testing::conclude(NAME, &checks, format_args!("{info} CR2={cr2:#x} on CPU {}", me.cpu))
}

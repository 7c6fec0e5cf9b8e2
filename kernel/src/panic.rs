//! The panic handler: prints the message and location over serial and on
//! the framebuffer, then fails: under QEMU it exits with the failure code,
//! on real hardware it halts with the message on screen.

use core::panic::PanicInfo;

use core::sync::atomic::{AtomicU32, Ordering};

use crate::arch::{cpu, ipi, percpu, qemu, serial, time};
use crate::console::{Timestamp, framebuffer};
use crate::{println, testing};

/// The CPU that panicked first (`u32::MAX`: none).
static PANICKING: AtomicU32 = AtomicU32::new(u32::MAX);

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    x86_64::instructions::interrupts::disable();
    // Only the first CPU to panic reports; the others stop here (they are
    // about to be stopped anyway).
    let me = percpu::current();
    if PANICKING.compare_exchange(u32::MAX, me, Ordering::SeqCst, Ordering::SeqCst).is_err() {
        if percpu::installed() {
            percpu::this().set_doing(percpu::Doing::Panicked);
        }
        cpu::halt_loop_irqs_off();
    }
    let others = percpu::num_online().saturating_sub(1);
    let stopped = ipi::stop_others();
    if percpu::installed() {
        percpu::this().set_doing(percpu::Doing::Panicked);
    }
    // SAFETY: interrupts are off and this path never returns, so whatever
    // context held the console locks will never run again.
    unsafe {
        serial::force_unlock();
        framebuffer::force_unlock();
    }
    let ts = Timestamp(time::uptime_us());
    if others > 0 || me != 0 {
        let apic = if percpu::installed() { percpu::this().apic_id } else { 0 };
        println!(
            "{ts}smp: CPU {me} (APIC {apic:#x}) panicked; stopped {stopped} of {others} other CPUs"
        );
    }
    if testing::panic_expected() {
        testing::expected_panic_happened(me, others, stopped);
    }
    testing::report_panic_in_test();
    match info.location() {
        Some(loc) => println!("{ts}panic: {} (at {loc})", info.message()),
        None => println!("{ts}panic: {}", info.message()),
    }
    qemu::exit(qemu::ExitCode::Failure);
    // Real hardware: keep the message on screen.
    println!("System halted.");
    cpu::halt_loop()
}

//! The panic handler: prints the message and location over serial and on
//! the framebuffer, then fails: under QEMU it exits with the failure code,
//! on real hardware it halts with the message on screen.

use core::panic::PanicInfo;

use crate::arch::{cpu, qemu, serial, time};
use crate::console::{Timestamp, framebuffer};
use crate::{println, testing};

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    x86_64::instructions::interrupts::disable();
    // SAFETY: interrupts are off and this path never returns, so whatever
    // context held the console locks will never run again.
    unsafe {
        serial::force_unlock();
        framebuffer::force_unlock();
    }
    if testing::panic_expected() {
        testing::expected_panic_happened();
    }
    testing::report_panic_in_test();
    let ts = Timestamp(time::uptime_us());
    match info.location() {
        Some(loc) => println!("{ts}panic: {} (at {loc})", info.message()),
        None => println!("{ts}panic: {}", info.message()),
    }
    qemu::exit(qemu::ExitCode::Failure);
    // Real hardware: keep the message on screen.
    println!("System halted.");
    cpu::halt_loop()
}

//! Switching the machine off.

use crate::arch::{cpu, qemu};

/// Powers the machine off: QEMU's exit device when running under QEMU with
/// it attached (a test's verdict), else ACPI S5, else a halt with a message.
pub fn poweroff() -> ! {
    log::info!("reboot: Power down");
    qemu::exit(qemu::ExitCode::Success);
    let why = crate::acpi::enter_s5();
    log::warn!("poweroff: {why}; halted, it is safe to switch the machine off");
    cpu::halt_loop()
}

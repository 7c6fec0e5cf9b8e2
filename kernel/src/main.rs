//! The Tessera kernel binary.
#![no_std]
#![no_main]

use bootloader_api::{BootInfo, entry_point};
use kernel::arch::{cpu, qemu};
use kernel::{BOOTLOADER_CONFIG, init};

entry_point!(kernel_main, config = &BOOTLOADER_CONFIG);

fn kernel_main(boot_info: &'static mut BootInfo) -> ! {
    init::init(boot_info);
    log::info!("tessera: initialization complete");
    if init::options().poweroff {
        log::info!("reboot: Power down");
        qemu::exit(qemu::ExitCode::Success);
        log::warn!("poweroff: no QEMU exit device; halting");
        cpu::halt_loop()
    }
    kernel::shell::run()
}

//! The Tessera kernel binary.
#![no_std]
#![no_main]

use bootloader_api::{BootInfo, entry_point};
use kernel::{BOOTLOADER_CONFIG, boot, init};

entry_point!(kernel_main, config = &BOOTLOADER_CONFIG);

fn kernel_main(boot_info: &'static mut BootInfo) -> ! {
    init::init(boot_info);
    log::info!("{}", options::contract::INIT_COMPLETE);
    if boot::options().poweroff {
        kernel::drivers::power::poweroff()
    }
    init::acpi_events();
    kernel::shell::run()
}

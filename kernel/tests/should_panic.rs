//! A test that must panic: a failed assertion inside a test ends the binary
//! through the panic handler, which, armed by `should_panic`, reports ok.
#![no_std]
#![no_main]

use bootloader_api::{BootInfo, entry_point};
use kernel::{BOOTLOADER_CONFIG, init, testing};

entry_point!(main, config = &BOOTLOADER_CONFIG);

fn main(boot_info: &'static mut BootInfo) -> ! {
    init::init(boot_info);
    testing::should_panic("should_panic::failed_assertion_panics", || {
        let x = core::hint::black_box(1);
        assert_eq!(x, 2, "1 is not 2");
    })
}

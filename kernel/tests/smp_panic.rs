//! A panic on an application processor stops every other CPU (an NMI
//! each) and names the CPU that panicked; the test passes only if the
//! panic happened on CPU 1 and all other online CPUs stopped. Booted on
//! the multi-CPU profiles only.
#![no_std]
#![no_main]

use bootloader_api::{BootInfo, entry_point};
use kernel::arch::{ipi, percpu};
use kernel::{BOOTLOADER_CONFIG, init, testing};

entry_point!(main, config = &BOOTLOADER_CONFIG);

fn main(boot_info: &'static mut BootInfo) -> ! {
    init::init(boot_info);
    testing::should_panic_on("smp_panic::a_panic_on_cpu_1_stops_the_others", 1, || {
        let cpu1 = percpu::cpu(1).filter(|c| percpu::online_mask() & c.mask() != 0);
        let cpu1 = cpu1.expect("this test needs a second CPU online");
        // The call never returns: CPU 1 panics and stops this CPU.
        let _ =
            ipi::call_function(cpu1.mask(), &|| panic!("on purpose, on CPU {}", percpu::current()));
    })
}

//! The order in which the kernel brings itself up. This module only
//! sequences: it records the boot facts ([`crate::boot`]), then starts each
//! layer from the bottom (`arch`, console, `mm`, `acpi`, drivers). Nothing
//! in the kernel imports it; the kernel's and the test binaries' entry
//! points call [`init`].

use alloc::string::String;
use bootloader_api::BootInfo;
use options::Options;

use crate::arch::{gdt, idt, qemu, serial, time};
use crate::boot::{self, BootMappings, FW_CFG_CMDLINE, RAMDISK_CMDLINE_MAGIC};
use crate::mm::heap;
use crate::{console, drivers};

fn gather_cmdline(boot_info: &BootInfo) -> String {
    let mut line = String::new();
    if let Some(addr) = boot_info.ramdisk_addr.into_option() {
        // SAFETY: the bootloader maps the ramdisk at `ramdisk_addr` for
        // `ramdisk_len` bytes and never unmaps it; it is only read here.
        let disk = unsafe {
            core::slice::from_raw_parts(addr as *const u8, boot_info.ramdisk_len as usize)
        };
        if let Some(rest) = disk.strip_prefix(RAMDISK_CMDLINE_MAGIC) {
            line.push_str(&String::from_utf8_lossy(rest));
        }
    }
    let mut buf = [0u8; options::COMMAND_LINE_SIZE];
    if let Some(size) = qemu::fw_cfg_file(FW_CFG_CMDLINE, &mut buf) {
        let n = size.min(buf.len());
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    line.trim().into()
}

/// The framebuffer's physical range, found through the page tables.
fn framebuffer_phys() -> Option<(u64, u64)> {
    let m = boot::mappings()?;
    let (virt, len) = m.framebuffer?;
    let phys = crate::arch::paging::translate(x86_64::VirtAddr::new(virt))?;
    Some((phys.as_u64(), len as u64))
}

/// The boot CPU's stack `[start, end)`: the bootloader's kernel stack of
/// [`boot::KERNEL_STACK_SIZE`] bytes, whose top is the page boundary
/// above the stack pointer at entry.
fn boot_stack() -> (u64, u64) {
    let rsp: u64;
    // SAFETY: reads RSP; no memory access.
    unsafe { core::arch::asm!("mov {}, rsp", out(reg) rsp, options(nomem, nostack)) };
    let top = (rsp + 0xfff) & !0xfff;
    (top - boot::KERNEL_STACK_SIZE, top)
}

/// Brings the kernel up: serial, clock, heap, options, console, descriptor
/// tables. Everything later builds on this.
pub fn init(boot_info: &'static mut BootInfo) {
    serial::init();
    // Per-CPU data first: everything after may ask which CPU it runs on.
    crate::smp::init_boot_cpu(boot_stack());
    let tsc_khz = time::init();
    heap::init();
    console::init(7);
    gdt::init();
    idt::init();
    // The fault path reaches the layers above `arch` only through hooks.
    idt::set_unlock_hook(console::framebuffer::force_unlock);
    idt::set_fault_describer(drivers::pmem::describe_fault);
    // The drivers tell the mosaic (the shell's layer) what changed.
    drivers::set_change_hook(crate::mosaic::changed);
    let m = boot::set_mappings(BootMappings {
        physical_memory_offset: boot_info
            .physical_memory_offset
            .into_option()
            .expect("BOOTLOADER_CONFIG asks for the physical-memory mapping"),
        kernel_image: boot_info.kernel_image_offset,
        boot_info: &raw const *boot_info as u64,
        framebuffer: boot_info
            .framebuffer
            .as_ref()
            .map(|fb| (fb.buffer().as_ptr() as u64, fb.buffer().len())),
    });
    crate::arch::paging::init(x86_64::VirtAddr::new(m.physical_memory_offset));
    gdt::guard_double_fault_stack();
    // Options first, so `console=` decides where even the first line goes.
    let mut refused = alloc::vec::Vec::new();
    let (line, opts) = boot::set_cmdline(
        || gather_cmdline(boot_info),
        |line| Options::from_line(line, |e| refused.push(e)),
    );
    console::set_serial(opts.console.serial);
    if let Some(fb) = boot_info.framebuffer.take()
        && opts.console.framebuffer
    {
        console::framebuffer::init(fb);
    }
    console::init(opts.loglevel);
    log::info!("Tessera version {}", env!("CARGO_PKG_VERSION"));
    log::info!("Command line: {line}");
    // Where a debugger finds the kernel's symbols: the ELF is linked at 0
    // and the bootloader placed it in its dynamic range.
    log::debug!(
        "{}{:#x} from 0x0 (relocation range: {:#x}-{:#x})",
        options::contract::KERNEL_OFFSET,
        m.kernel_image,
        boot::layout::DYNAMIC_START,
        boot::layout::DYNAMIC_END - 1
    );
    log::debug!(
        "kernel: ELF file [mem {:#018x}-{:#018x}]",
        boot_info.kernel_addr,
        boot_info.kernel_addr + boot_info.kernel_len - 1
    );
    for e in refused {
        log::warn!("cmdline: {e}; ignored");
    }
    log::info!("tsc: Detected {}.{:03} MHz processor", tsc_khz / 1000, tsc_khz % 1000);
    let maps = crate::mm::firmware::init(&boot_info.memory_regions, line);
    let fb = framebuffer_phys();
    crate::mm::memblock::init(&maps.e820, &maps.bios, &boot_info.memory_regions, fb);
    crate::smp::reserve_trampoline(&boot_info.memory_regions);
    crate::mm::iomem::init(&maps.e820);
    let phys_offset = m.physical_memory_offset;
    let rsdp = boot_info.rsdp_addr.into_option();
    let pmem =
        crate::acpi::init(rsdp, phys_offset, &maps.e820, opts.nopmem, opts.acpi_apic_instance);
    drivers::pmem::register(&pmem);
    if let Some(n) = opts.fail_sparse {
        crate::mm::sparse::fail_nth_allocation(n);
    }
    crate::mm::sparse::init(phys_offset, opts.sparse_debug);
    crate::mm::sparse::end_boot_injection();
    crate::mm::zone::init();
    crate::mm::page_alloc::init();
    crate::mm::sparse::page_allocator_ready();
    crate::smp::init(!opts.nox2apic, opts.nosmp, opts.cpu_init_udelay);
    crate::mm::deferred::page_alloc_init_late();
    drivers::memory::init();
    for r in drivers::pmem::regions() {
        // The namespace's info block decides its mode and where its memmap
        // goes; a namespace that cannot be read is not added.
        if let Err(e) = drivers::pmem::probe(r.id) {
            log::error!("pmem: {}: {e}", r.name());
            continue;
        }
        if let Err(e) = drivers::pmem::add(r.id, &mut |_, line| log::info!("{line}")) {
            log::error!("pmem: {}: {e}", r.name());
        }
    }
    if opts.iomem {
        crate::mm::iomem::print();
    }
    if opts.zoneinfo {
        crate::mm::zone::print();
    }
    boot::set_init_done(time::uptime_us());
    if let Some(n) = opts.hotplug_stress {
        crate::stress::run_and_print(n, opts.hotplug_stress_nogp);
    }
}

/// The firmware's run-time events (after `initialization complete`, for
/// the kernel that runs the shell): the AML interpreter with the DSDT and
/// SSDTs, the SCI and the GPEs, the drivers' notify handlers, and the
/// memory devices already present (`-device pc-dimm`). Test kernels and
/// `poweroff` boots do without: loading the DSDT costs 10 to 150 ms of a
/// boot under TCG.
pub fn acpi_events() {
    drivers::acpi_events::register_notify_handler("PNP0C80", drivers::acpi_memhotplug::notify);
    drivers::acpi_events::register_notify_handler("ACPI0012", drivers::acpi_nfit::notify);
    drivers::acpi_events::init();
    drivers::acpi_memhotplug::scan();
}

/// Defines the entry point of an in-kernel test binary that uses the
/// custom test framework: boot, run every selected test, exit.
/// The binary must declare `#![reexport_test_harness_main = "test_main"]`.
#[macro_export]
macro_rules! test_binary_entry {
    () => {
        $crate::bootloader_api::entry_point!(
            __tessera_test_main,
            config = &$crate::BOOTLOADER_CONFIG
        );

        fn __tessera_test_main(boot_info: &'static mut $crate::bootloader_api::BootInfo) -> ! {
            $crate::init::init(boot_info);
            test_main();
            $crate::testing::finish()
        }
    };
}

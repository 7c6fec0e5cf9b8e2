//! Boot: the bootloader configuration and the order in which the kernel
//! brings itself up.

use alloc::string::String;
use bootloader_api::BootInfo;
use bootloader_api::config::{BootloaderConfig, Mapping};
use options::Options;
use spin::Once;

use crate::arch::{gdt, idt, qemu, serial, time};
use crate::{console, heap};

/// Size of the kernel stack the bootloader sets up (with an unmapped guard
/// page below it).
pub const KERNEL_STACK_SIZE: u64 = 128 * 1024;

/// Virtual address space layout (4-level paging). The bootloader places its
/// dynamic mappings (kernel image, stack, boot info, framebuffer, ramdisk,
/// the physical-memory map) in `[DYNAMIC_START, DYNAMIC_END)`; everything
/// above `DYNAMIC_END` in the upper half is the kernel's own.
pub mod layout {
    /// Start of the bootloader's dynamic range (the upper half).
    pub const DYNAMIC_START: u64 = 0xffff_8000_0000_0000;
    /// End of the bootloader's dynamic range (64 TiB above its start).
    pub const DYNAMIC_END: u64 = 0xffff_c000_0000_0000;
    /// Base of the virtually mapped memory map, as on Linux x86_64.
    pub const VMEMMAP_START: u64 = 0xffff_ea00_0000_0000;
}

/// How the bootloader must set up the machine for Tessera.
pub const BOOTLOADER_CONFIG: BootloaderConfig = {
    let mut config = BootloaderConfig::new_default();
    config.mappings.physical_memory = Some(Mapping::Dynamic);
    config.mappings.dynamic_range_start = Some(layout::DYNAMIC_START);
    config.mappings.dynamic_range_end = Some(layout::DYNAMIC_END);
    config.kernel_stack_size = KERNEL_STACK_SIZE;
    config
};

/// Marks image-embedded options in the ramdisk (see the `boot` tool).
pub const RAMDISK_CMDLINE_MAGIC: &[u8] = options::contract::RAMDISK_CMDLINE_MAGIC.as_bytes();
/// fw_cfg file that carries options from the QEMU runner.
pub const FW_CFG_CMDLINE: &str = options::contract::FW_CFG_CMDLINE;

/// Where the bootloader put things in the virtual address space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootMappings {
    /// Virtual address of physical address 0.
    pub physical_memory_offset: u64,
    /// Virtual address of the kernel image (its ELF offset 0).
    pub kernel_image: u64,
    /// Virtual address of the boot information.
    pub boot_info: u64,
    /// Virtual address and length of the framebuffer, if there is one.
    pub framebuffer: Option<(u64, usize)>,
}

static MAPPINGS: Once<BootMappings> = Once::new();

/// The bootloader's mappings, recorded by [`init`].
pub fn mappings() -> Option<BootMappings> {
    MAPPINGS.get().copied()
}

static CMDLINE: Once<String> = Once::new();
static OPTIONS: Once<Options> = Once::new();

/// The kernel command line (image options, then fw_cfg options).
pub fn cmdline() -> &'static str {
    CMDLINE.get().map_or("", String::as_str)
}

/// The parsed options (defaults before [`init`]).
pub fn options() -> Options {
    OPTIONS.get().copied().unwrap_or_default()
}

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
    let m = mappings()?;
    let (virt, len) = m.framebuffer?;
    let phys = crate::arch::paging::translate(m.physical_memory_offset, virt)?;
    Some((phys, len as u64))
}

/// Brings the kernel up: serial, clock, heap, options, console, descriptor
/// tables. Everything later builds on this.
pub fn init(boot_info: &'static mut BootInfo) {
    serial::init();
    let tsc_khz = time::init();
    heap::init();
    console::init(7);
    gdt::init();
    idt::init();
    MAPPINGS.call_once(|| BootMappings {
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
    gdt::guard_double_fault_stack(mappings().expect("recorded above").physical_memory_offset);
    // Options first, so `console=` decides where even the first line goes.
    let line = CMDLINE.call_once(|| gather_cmdline(boot_info));
    let mut refused = alloc::vec::Vec::new();
    let opts = *OPTIONS.call_once(|| Options::from_line(line, |e| refused.push(e)));
    console::set_serial(opts.console.serial);
    if let Some(fb) = boot_info.framebuffer.take()
        && opts.console.framebuffer
    {
        console::framebuffer::init(fb);
    }
    console::init(opts.loglevel);
    log::info!("Tessera version {}", env!("CARGO_PKG_VERSION"));
    log::info!("Command line: {line}");
    for e in refused {
        log::warn!("cmdline: {e}; ignored");
    }
    log::info!("tsc: Detected {}.{:03} MHz processor", tsc_khz / 1000, tsc_khz % 1000);
    let maps = crate::mm::firmware::init(&boot_info.memory_regions, line);
    let fb = framebuffer_phys();
    crate::mm::memblock::init(&maps.e820, &maps.bios, &boot_info.memory_regions, fb);
    let phys_offset = mappings().expect("recorded above").physical_memory_offset;
    let rsdp = boot_info.rsdp_addr.into_option();
    let pmem = crate::acpi::init(rsdp, phys_offset, &maps.e820, opts.nopmem);
    crate::mm::pmem::register(&pmem);
    if let Some(n) = opts.fail_sparse {
        crate::mm::sparse::fail_nth_allocation(n);
    }
    crate::mm::sparse::init(phys_offset, opts.sparse_debug);
    crate::mm::sparse::end_boot_injection();
    crate::mm::zone::init();
    crate::mm::page_alloc::init();
    crate::mm::memory_hotplug::init();
    for r in crate::mm::pmem::regions() {
        // The namespace's info block decides its mode and where its memmap
        // goes; a namespace that cannot be read is not added.
        if let Err(e) = crate::mm::pmem::probe(r.id) {
            log::error!("pmem: {}: {e}", r.name());
            continue;
        }
        if let Err(e) = crate::mm::pmem::add(r.id, &mut |_, line| log::info!("{line}")) {
            log::error!("pmem: {}: {e}", r.name());
        }
    }
    if opts.iomem {
        crate::mm::iomem::print();
    }
    if opts.zoneinfo {
        crate::mm::zone::print();
    }
    INIT_US.store(time::uptime_us(), core::sync::atomic::Ordering::Relaxed);
}

static INIT_US: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Microseconds from boot to the end of [`init`] (0 before).
pub fn init_us() -> u64 {
    INIT_US.load(core::sync::atomic::Ordering::Relaxed)
}

//! Boot facts: what the bootloader set up and what the command line
//! asked for, recorded once by `init` and read by every layer above
//! `arch` (the virtual layout, the bootloader's mappings, the options).
//! A leaf: it imports nothing from the kernel but `arch`-free types.

use alloc::string::String;
use bootloader_api::config::{BootloaderConfig, Mapping};
use core::sync::atomic::{AtomicU64, Ordering};
use options::Options;
use spin::Once;

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
    /// Fixed mappings of device registers: the local APIC's page first.
    pub const FIXMAP_START: u64 = 0xffff_c700_0000_0000;
    /// The I/O APIC's page, after the local APIC's.
    pub const FIXMAP_IOAPIC: u64 = FIXMAP_START + 0x1000;
    /// The application processors' stacks: one [`CPU_SLOT`] per CPU
    /// number, each a guard page, the kernel stack, a guard page and the
    /// double-fault stack.
    pub const CPU_STACKS_START: u64 = 0xffff_c800_0000_0000;
    /// Address space per CPU in [`CPU_STACKS_START`].
    pub const CPU_SLOT: u64 = 1 << 20;
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

/// The bootloader's mappings, recorded by `init` ([`set_mappings`]).
pub fn mappings() -> Option<BootMappings> {
    MAPPINGS.get().copied()
}

static CMDLINE: Once<String> = Once::new();
static OPTIONS: Once<Options> = Once::new();

/// The kernel command line (image options, then fw_cfg options).
pub fn cmdline() -> &'static str {
    CMDLINE.get().map_or("", String::as_str)
}

/// The parsed options (defaults before `init` records them).
pub fn options() -> Options {
    OPTIONS.get().copied().unwrap_or_default()
}

/// Records the bootloader's mappings (once; later calls change nothing).
pub fn set_mappings(m: BootMappings) -> BootMappings {
    *MAPPINGS.call_once(|| m)
}

/// Records the command line and its parsed options (once); returns them.
pub fn set_cmdline(
    line: impl FnOnce() -> String,
    parse: impl FnOnce(&'static str) -> Options,
) -> (&'static str, Options) {
    let line = CMDLINE.call_once(line);
    (line.as_str(), *OPTIONS.call_once(|| parse(line)))
}

/// The virtual address at which physical address `phys` is mapped (the
/// bootloader's physical-memory map), once [`set_mappings`] ran.
pub fn phys_to_virt(phys: u64) -> Option<u64> {
    mappings().map(|m| m.physical_memory_offset + phys)
}

static INIT_US: AtomicU64 = AtomicU64::new(0);

/// Records the end of boot (microseconds since kernel entry).
pub fn set_init_done(us: u64) {
    INIT_US.store(us, Ordering::Relaxed);
}

/// Microseconds from kernel entry to the end of `init` (0 before).
pub fn init_us() -> u64 {
    INIT_US.load(Ordering::Relaxed)
}

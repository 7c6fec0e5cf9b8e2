//! CPU identification and halting.

use raw_cpuid::CpuId;
pub use raw_cpuid::Hypervisor;

/// The hypervisor named by CPUID leaf 0x4000_0000, if CPUID says one is
/// present (leaf 1, ECX bit 31) and its leaf answers. Real hardware has none.
pub fn hypervisor() -> Option<Hypervisor> {
    CpuId::new().get_hypervisor_info().map(|h| h.identify())
}

/// Halts forever, with interrupts enabled so that a future interrupt
/// handler could still run.
pub fn halt_loop() -> ! {
    loop {
        x86_64::instructions::hlt();
    }
}

/// Halts forever with interrupts off (NMIs aside): a CPU that has
/// nothing left to do, such as a second CPU panicking.
pub fn halt_loop_irqs_off() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

/// Writes the cache lines of `[virt, virt + len)` back to memory
/// (`clflush` each line, then `sfence`), so that stores to persistent
/// memory reach the device before the caller goes on, as Linux's
/// `arch_wb_cache_pmem` does.
///
/// # Safety
///
/// `[virt, virt + len)` must be mapped.
pub unsafe fn flush_cache_range(virt: u64, len: u64) {
    const LINE: u64 = 64;
    let mut at = virt & !(LINE - 1);
    while at < virt + len {
        // SAFETY: the caller guarantees the range is mapped; clflush only
        // writes a line back, it changes no data.
        unsafe { core::arch::x86_64::_mm_clflush(at as *const u8) };
        at += LINE;
    }
    // SAFETY: sfence has no memory operands.
    unsafe { core::arch::x86_64::_mm_sfence() };
}

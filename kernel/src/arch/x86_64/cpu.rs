//! CPU identification and halting.

use core::arch::x86_64::__cpuid;

/// The hypervisor vendor string (CPUID leaf 0x4000_0000), if CPUID says a
/// hypervisor is present (leaf 1, ECX bit 31). Real hardware has none.
pub fn hypervisor_vendor() -> Option<[u8; 12]> {
    let leaf1 = __cpuid(1);
    if leaf1.ecx & (1 << 31) == 0 {
        return None;
    }
    let r = __cpuid(0x4000_0000);
    let mut v = [0u8; 12];
    v[0..4].copy_from_slice(&r.ebx.to_le_bytes());
    v[4..8].copy_from_slice(&r.ecx.to_le_bytes());
    v[8..12].copy_from_slice(&r.edx.to_le_bytes());
    Some(v)
}

/// Halts forever, with interrupts enabled so that a future interrupt
/// handler could still run.
pub fn halt_loop() -> ! {
    loop {
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

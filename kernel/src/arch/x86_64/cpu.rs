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

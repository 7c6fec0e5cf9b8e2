//! Reads that may fault, as Linux's `copy_from_kernel_nofault` with its
//! exception table: [`probe_read_u64`] reads through one known
//! instruction, and the page-fault handler, finding that instruction at
//! the faulting RIP, resumes at its fixup instead of failing the kernel.
//! A test uses it to see that a CPU can no longer reach an unmapped page.

use core::sync::atomic::{AtomicU64, Ordering};

use super::percpu;

core::arch::global_asm!(
    ".pushsection .text.tessera_probe, \"ax\"",
    ".global tessera_probe_read_u64",
    "tessera_probe_read_u64:",
    ".global tessera_probe_insn",
    "tessera_probe_insn:",
    "    mov rax, qword ptr [rdi]",
    "    mov qword ptr [rsi], rax",
    "    xor eax, eax",
    "    ret",
    ".global tessera_probe_fixup",
    "tessera_probe_fixup:",
    "    mov eax, 1",
    "    ret",
    ".popsection",
);

unsafe extern "sysv64" {
    fn tessera_probe_read_u64(addr: u64, out: *mut u64) -> u64;
}

fn probe_addresses() -> (u64, u64) {
    let (insn, fixup): (u64, u64);
    // SAFETY: computes two labels' addresses; no memory access.
    unsafe {
        core::arch::asm!(
            "lea {0}, [rip + tessera_probe_insn]",
            "lea {1}, [rip + tessera_probe_fixup]",
            out(reg) insn, out(reg) fixup,
            options(nomem, nostack, preserves_flags)
        )
    };
    (insn, fixup)
}

/// Where to resume after a page fault at `rip`, if `rip` is a probe.
pub fn fixup(rip: u64) -> Option<u64> {
    let (insn, fixup) = probe_addresses();
    (rip == insn).then_some(fixup)
}

/// The last address a probe faulted on.
static LAST_FAULT: AtomicU64 = AtomicU64::new(0);

/// Counts a recovered fault (on this CPU) and remembers its address.
pub fn record_fault(addr: u64) {
    LAST_FAULT.store(addr, Ordering::Relaxed);
    if percpu::installed() {
        percpu::this().fixed_faults.fetch_add(1, Ordering::Relaxed);
    }
}

/// Reads the `u64` at `addr`, or `None` if that page faults (not mapped
/// on this CPU, as its TLB and the page tables see it).
///
/// # Safety
///
/// If `addr` is mapped, reading it must be harmless (no device side
/// effects, no data race the caller relies on).
pub unsafe fn probe_read_u64(addr: u64) -> Option<u64> {
    let mut v = 0u64;
    // SAFETY: the probe reads `addr` (harmless, per the caller) and writes
    // `v`, a local; a page fault on the read resumes at the fixup.
    let faulted = unsafe { tessera_probe_read_u64(addr, &mut v) };
    (faulted == 0).then_some(v)
}

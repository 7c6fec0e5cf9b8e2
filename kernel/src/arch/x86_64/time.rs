//! A monotonic clock: the TSC, calibrated against the PIT at boot.

use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::instructions::port::Port;

/// PIT input clock, Hz.
const PIT_HZ: u64 = 1_193_182;
/// Calibration window, ms.
const CALIBRATE_MS: u64 = 10;

static BOOT_TSC: AtomicU64 = AtomicU64::new(0);
/// TSC ticks per microsecond; 0 until calibrated.
static TSC_PER_US: AtomicU64 = AtomicU64::new(0);

fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects and exists on every x86_64 CPU.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Records the boot TSC and calibrates the TSC against PIT channel 2.
/// Returns the measured TSC frequency in kHz.
pub fn init() -> u64 {
    BOOT_TSC.store(rdtsc(), Ordering::Relaxed);
    let mut ctl = Port::<u8>::new(0x61);
    let mut mode = Port::<u8>::new(0x43);
    let mut ch2 = Port::<u8>::new(0x42);
    let count = PIT_HZ * CALIBRATE_MS / 1000;
    // SAFETY: ports 0x42, 0x43 and 0x61 are the PIT's channel 2 and the
    // speaker gate on every PC; the speaker output stays disabled (bit 1 = 0)
    // and nothing else in the kernel uses channel 2.
    let ticks = unsafe {
        let gate = ctl.read() & !0x02;
        ctl.write(gate & !0x01);
        mode.write(0xb0); // channel 2, lobyte/hibyte, mode 0, binary
        ch2.write((count & 0xff) as u8);
        ch2.write((count >> 8) as u8);
        ctl.write(gate | 0x01); // gate high: counting starts
        let start = rdtsc();
        let mut spins = 0u64;
        // OUT2 (bit 5) goes high when the count reaches zero.
        while ctl.read() & 0x20 == 0 && spins < 100_000_000 {
            spins += 1;
        }
        let end = rdtsc();
        ctl.write(gate & !0x01);
        end - start
    };
    let per_us = (ticks / (CALIBRATE_MS * 1000)).max(1);
    TSC_PER_US.store(per_us, Ordering::Relaxed);
    ticks / CALIBRATE_MS
}

/// Microseconds since [`init`] (0 before calibration).
pub fn uptime_us() -> u64 {
    let per_us = TSC_PER_US.load(Ordering::Relaxed);
    if per_us == 0 {
        return 0;
    }
    rdtsc().saturating_sub(BOOT_TSC.load(Ordering::Relaxed)) / per_us
}

/// Waits `us` microseconds (busy, on the TSC; at least the calibration's
/// precision). Before calibration it waits nothing.
pub fn delay_us(us: u64) {
    let per_us = TSC_PER_US.load(Ordering::Relaxed);
    let end = rdtsc().saturating_add(us.saturating_mul(per_us));
    while rdtsc() < end {
        core::hint::spin_loop();
    }
}

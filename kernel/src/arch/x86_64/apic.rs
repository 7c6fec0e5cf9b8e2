//! The local APIC: xAPIC through its MMIO page, or x2APIC through MSRs when
//! CPUID offers it (and `nox2apic` does not forbid it). Interprocessor
//! interrupts (fixed, NMI, INIT, SIPI), end of interrupt, and the APIC
//! timer calibrated against the TSC. The legacy 8259 PIC is masked once
//! the APIC takes over.
//!
//! Register offsets are the xAPIC ones; in x2APIC mode register `off` is
//! MSR `0x800 + off / 16`, and the interrupt command register is one
//! 64-bit MSR with the destination in its upper half (SDM vol. 3, 11.12).

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use raw_cpuid::CpuId;
use x86_64::instructions::port::Port;
use x86_64::registers::model_specific::Msr;

/// IA32_APIC_BASE: the APIC's physical base, global enable (bit 11) and
/// x2APIC enable (bit 10).
const IA32_APIC_BASE: u32 = 0x1b;
const APIC_BASE_ENABLE: u64 = 1 << 11;
const APIC_BASE_X2APIC: u64 = 1 << 10;

const ID: u32 = 0x20;
const VERSION: u32 = 0x30;
const TPR: u32 = 0x80;
const EOI: u32 = 0xb0;
const SVR: u32 = 0xf0;
const ESR: u32 = 0x280;
const ICR_LOW: u32 = 0x300;
const ICR_HIGH: u32 = 0x310;
const LVT_TIMER: u32 = 0x320;
const LVT_LINT0: u32 = 0x350;
const LVT_LINT1: u32 = 0x360;
const LVT_ERROR: u32 = 0x370;
const TIMER_INITIAL: u32 = 0x380;
const TIMER_CURRENT: u32 = 0x390;
const TIMER_DIVIDE: u32 = 0x3e0;

const LVT_MASKED: u32 = 1 << 16;
const SVR_ENABLE: u32 = 1 << 8;
/// ICR delivery modes and bits.
const DM_FIXED: u32 = 0 << 8;
const DM_NMI: u32 = 4 << 8;
const DM_INIT: u32 = 5 << 8;
const DM_STARTUP: u32 = 6 << 8;
const ICR_BUSY: u32 = 1 << 12;
const ICR_ASSERT: u32 = 1 << 14;
const ICR_LEVEL: u32 = 1 << 15;
/// Destination shorthand "all excluding self".
const ICR_ALL_BUT_SELF: u32 = 3 << 18;

/// The vector spurious interrupts arrive on (its low 4 bits all set, as
/// the older APICs require).
pub const SPURIOUS_VECTOR: u8 = 0xff;
/// The vector of the APIC's error interrupt.
pub const ERROR_VECTOR: u8 = 0xfe;
/// The local timer's vector: it only wakes a CPU from [`sleep_us`].
pub const TIMER_VECTOR: u8 = 0xef;

static X2APIC: AtomicBool = AtomicBool::new(false);
/// Virtual address of the xAPIC page (0 in x2APIC mode or before init).
static MMIO: AtomicU64 = AtomicU64::new(0);
/// APIC timer ticks per millisecond (divide by 16); 0 until calibrated.
static TIMER_PER_MS: AtomicU32 = AtomicU32::new(0);

/// How the APIC is driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    XApic,
    X2Apic,
}

/// Whether CPUID offers x2APIC (leaf 1, ECX bit 21).
pub fn x2apic_available() -> bool {
    CpuId::new().get_feature_info().is_some_and(|f| f.has_x2apic())
}

/// Whether this CPU has a local APIC at all (CPUID leaf 1, EDX bit 9).
pub fn present() -> bool {
    CpuId::new().get_feature_info().is_some_and(|f| f.has_apic())
}

/// The physical address of the xAPIC page, from IA32_APIC_BASE.
pub fn base_phys() -> u64 {
    // SAFETY: IA32_APIC_BASE exists on every CPU with an APIC (checked by
    // the caller through `present`); reading it has no side effects.
    unsafe { Msr::new(IA32_APIC_BASE).read() & 0x000f_ffff_ffff_f000 }
}

/// The mode the boot CPU chose; every AP follows it.
pub fn mode() -> Mode {
    if X2APIC.load(Ordering::Relaxed) { Mode::X2Apic } else { Mode::XApic }
}

fn read(reg: u32) -> u32 {
    if X2APIC.load(Ordering::Relaxed) {
        // SAFETY: x2APIC mode is on (this CPU switched in `enable`), so
        // the MSR range 0x800.. is the APIC's registers; `reg` is one of the
        // readable register offsets above.
        unsafe { Msr::new(0x800 + reg / 16).read() as u32 }
    } else {
        let base = MMIO.load(Ordering::Relaxed);
        debug_assert!(base != 0, "apic::init_bsp maps the xAPIC page first");
        // SAFETY: `base` maps the xAPIC page uncached (`init_bsp`); `reg`
        // is a 16-byte-aligned register offset inside it; APIC registers
        // are read with 32-bit accesses.
        unsafe { core::ptr::read_volatile((base + reg as u64) as *const u32) }
    }
}

fn write(reg: u32, value: u32) {
    if X2APIC.load(Ordering::Relaxed) {
        // SAFETY: as in `read`; the caller writes a value valid for `reg`.
        unsafe { Msr::new(0x800 + reg / 16).write(value as u64) }
    } else {
        let base = MMIO.load(Ordering::Relaxed);
        debug_assert!(base != 0, "apic::init_bsp maps the xAPIC page first");
        // SAFETY: as in `read`.
        unsafe { core::ptr::write_volatile((base + reg as u64) as *mut u32, value) }
    }
}

/// This CPU's APIC ID (8 bits in xAPIC mode, 32 in x2APIC mode).
pub fn id() -> u32 {
    if X2APIC.load(Ordering::Relaxed) { read(ID) } else { read(ID) >> 24 }
}

/// This CPU's APIC ID before the APIC is set up: CPUID leaf 1's initial
/// APIC ID (the x2APIC ID from leaf 0xb when present).
pub fn initial_id() -> u32 {
    let cpuid = CpuId::new();
    if let Some(mut topo) = cpuid.get_extended_topology_info()
        && let Some(level) = topo.next()
    {
        return level.x2apic_id();
    }
    cpuid.get_feature_info().map_or(0, |f| f.initial_local_apic_id() as u32)
}

/// The APIC's version register (version in bits 0..8, max LVT in 16..24).
pub fn version() -> u32 {
    read(VERSION)
}

/// Masks every line of both 8259 PICs (after remapping them away from
/// the exception vectors, so that a stray edge that was latched before
/// the mask arrives as a spurious vector 0x20..0x2f, not as a fault).
pub fn mask_legacy_pic() {
    let (mut m_cmd, mut m_data) = (Port::<u8>::new(0x20), Port::<u8>::new(0x21));
    let (mut s_cmd, mut s_data) = (Port::<u8>::new(0xa0), Port::<u8>::new(0xa1));
    // SAFETY: 0x20/0x21 and 0xa0/0xa1 are the master and slave 8259 on
    // every PC; this is the standard ICW1..ICW4 sequence followed by a mask
    // of all lines. Nothing else in the kernel drives the PIC.
    unsafe {
        m_cmd.write(0x11);
        s_cmd.write(0x11);
        m_data.write(0x20);
        s_data.write(0x28);
        m_data.write(4);
        s_data.write(2);
        m_data.write(1);
        s_data.write(1);
        m_data.write(0xff);
        s_data.write(0xff);
    }
}

/// Sets the boot CPU's APIC up: x2APIC mode when offered and `x2apic`
/// allows it, otherwise xAPIC through `mmio_virt`, which the caller has
/// mapped uncached to [`base_phys`]. Masks the legacy PIC.
pub fn init_bsp(mmio_virt: u64, x2apic: bool) -> Mode {
    mask_legacy_pic();
    X2APIC.store(x2apic && x2apic_available(), Ordering::Relaxed);
    MMIO.store(mmio_virt, Ordering::Relaxed);
    enable();
    mode()
}

/// Sets an application processor's APIC up in the boot CPU's mode.
pub fn init_ap() {
    enable();
}

fn enable() {
    let msr = Msr::new(IA32_APIC_BASE);
    // SAFETY: IA32_APIC_BASE exists (the kernel only runs this on CPUs with
    // an APIC); setting the global-enable bit, and the x2APIC bit when
    // CPUID offers it, is the documented way to switch modes (xAPIC to
    // x2APIC is allowed; the base address stays).
    unsafe {
        let mut msr = msr;
        let mut v = msr.read() | APIC_BASE_ENABLE;
        if X2APIC.load(Ordering::Relaxed) {
            v |= APIC_BASE_X2APIC;
        }
        msr.write(v);
    }
    write(TPR, 0);
    write(LVT_TIMER, LVT_MASKED);
    write(LVT_LINT0, LVT_MASKED);
    // LINT1 is the NMI line on PCs (the MADT's LAPIC_NMI entries say so);
    // leave it delivering NMIs.
    write(LVT_LINT1, 4 << 8);
    write(LVT_ERROR, ERROR_VECTOR as u32);
    // The ESR is cleared by a write before reading it (SDM 11.5.3).
    write(ESR, 0);
    write(ESR, 0);
    write(SVR, SVR_ENABLE | SPURIOUS_VECTOR as u32);
    eoi();
}

/// Signals the end of the interrupt being handled.
pub fn eoi() {
    write(EOI, 0);
}

/// Where an interprocessor interrupt goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// One CPU, by APIC ID.
    One(u32),
    /// Every CPU but the sender.
    AllButSelf,
}

fn send(dest: Dest, low: u32) {
    let (shorthand, id) = match dest {
        Dest::One(id) => (0, id),
        Dest::AllButSelf => (ICR_ALL_BUT_SELF, 0),
    };
    let low = low | shorthand;
    if X2APIC.load(Ordering::Relaxed) {
        // SAFETY: x2APIC mode is on; MSR 0x830 is the ICR, written as one
        // 64-bit value with the destination in bits 32..64.
        unsafe { Msr::new(0x830).write(((id as u64) << 32) | low as u64) };
    } else {
        wait_icr_idle();
        write(ICR_HIGH, id << 24);
        write(ICR_LOW, low);
        wait_icr_idle();
    }
}

/// Waits (a bounded time) until the xAPIC has sent the previous IPI.
fn wait_icr_idle() {
    for _ in 0..1_000_000 {
        if read(ICR_LOW) & ICR_BUSY == 0 {
            return;
        }
        core::hint::spin_loop();
    }
}

/// A fixed interrupt on `vector`.
pub fn send_ipi(dest: Dest, vector: u8) {
    send(dest, DM_FIXED | ICR_ASSERT | vector as u32);
}

/// A non-maskable interrupt.
pub fn send_nmi(dest: Dest) {
    send(dest, DM_NMI | ICR_ASSERT);
}

/// INIT asserted (level-triggered, as the MP specification asks).
pub fn send_init_assert(apic_id: u32) {
    send(Dest::One(apic_id), DM_INIT | ICR_LEVEL | ICR_ASSERT);
}

/// INIT de-asserted (newer CPUs ignore it).
pub fn send_init_deassert(apic_id: u32) {
    send(Dest::One(apic_id), DM_INIT | ICR_LEVEL);
}

/// INIT, asserted then de-asserted at once: puts a CPU back into
/// wait-for-SIPI.
pub fn send_init(apic_id: u32) {
    send_init_assert(apic_id);
    send_init_deassert(apic_id);
}

/// A start-up IPI: the CPU starts in real mode at `page << 12`.
pub fn send_startup(apic_id: u32, page: u8) {
    send(Dest::One(apic_id), DM_STARTUP | ICR_ASSERT | page as u32);
}

/// The error status register's bits since the last read (cleared).
pub fn error_status() -> u32 {
    write(ESR, 0);
    read(ESR)
}

/// Calibrates the APIC timer (divide by 16, one-shot, masked) against
/// the TSC over `ms` milliseconds; returns the timer's frequency in Hz.
pub fn calibrate_timer(ms: u64) -> u64 {
    write(TIMER_DIVIDE, 0b0011); // divide by 16
    write(LVT_TIMER, LVT_MASKED);
    write(TIMER_INITIAL, u32::MAX);
    super::time::delay_us(ms * 1000);
    let elapsed = u32::MAX - read(TIMER_CURRENT);
    write(TIMER_INITIAL, 0);
    let per_ms = elapsed as u64 / ms.max(1);
    TIMER_PER_MS.store(per_ms as u32, Ordering::Relaxed);
    per_ms * 1000 * 16
}

/// Halts this CPU for about `us` microseconds (or until another
/// interrupt comes first), leaving its host thread idle under a
/// hypervisor: a one-shot of the local timer wakes it. Needs interrupts
/// enabled and a calibrated timer; returns at once otherwise.
pub fn sleep_us(us: u64) {
    let ticks = u64::from(timer_per_ms()) * us / 1000;
    if ticks == 0 || !x86_64::instructions::interrupts::are_enabled() {
        return;
    }
    write(TIMER_DIVIDE, 0b0011);
    write(LVT_TIMER, u32::from(TIMER_VECTOR));
    write(TIMER_INITIAL, ticks.min(u64::from(u32::MAX)) as u32);
    // `sti; hlt` is one step here (interrupts are on already): the
    // timer's interrupt wakes the halt even if it came at once.
    x86_64::instructions::hlt();
    write(TIMER_INITIAL, 0);
}

/// The calibrated timer's ticks per millisecond (divide by 16).
pub fn timer_per_ms() -> u32 {
    TIMER_PER_MS.load(Ordering::Relaxed)
}

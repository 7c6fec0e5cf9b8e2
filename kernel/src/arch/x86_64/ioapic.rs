//! The I/O APIC (82093AA datasheet; SDM vol. 3, 11.1): routes a global
//! system interrupt (GSI) to a vector on one CPU. Tessera routes one line
//! through it, the ACPI SCI; every other redirection entry stays masked as
//! the firmware left it or as [`init`] masks it.
//!
//! The registers are two 32-bit windows in one page: `IOREGSEL` (+0x00)
//! selects a register and `IOWIN` (+0x10) reads or writes it. Register 1 is
//! the version (bits 16..24: the highest redirection entry); the entry of
//! line `n` is registers `0x10 + 2n` (low half: vector, delivery mode,
//! polarity, trigger mode, mask) and `0x11 + 2n` (high half: the
//! destination APIC ID in bits 24..32).
//!
//! An interrupt on a routed vector calls the hook registered for it
//! ([`set_hook`]), so `arch` imports no driver.

use core::sync::atomic::{AtomicU64, Ordering};

use spin::{Mutex, Once};
use x86_64::{PhysAddr, VirtAddr};

use super::paging;

/// The vector the SCI arrives on (above the legacy PIC's, below the APIC's
/// own).
pub const SCI_VECTOR: u8 = 0x30;

/// Polarity of a line, as the MADT's MPS INTI flags give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Polarity {
    High,
    Low,
}

/// Trigger mode of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Edge,
    Level,
}

struct IoApic {
    /// Virtual address of the register page.
    base: u64,
    /// The first GSI this I/O APIC serves.
    gsi_base: u32,
    /// Its number of redirection entries.
    entries: u32,
}

impl IoApic {
    fn read(&self, reg: u32) -> u32 {
        // SAFETY: `base` maps the I/O APIC's register page uncached
        // ([`init`]); IOREGSEL and IOWIN are 32-bit registers at +0 and
        // +0x10, and the lock around `IOAPIC` keeps the select-then-access
        // pair from interleaving with another.
        unsafe {
            core::ptr::write_volatile(self.base as *mut u32, reg);
            core::ptr::read_volatile((self.base + 0x10) as *const u32)
        }
    }

    fn write(&self, reg: u32, value: u32) {
        // SAFETY: as in `read`.
        unsafe {
            core::ptr::write_volatile(self.base as *mut u32, reg);
            core::ptr::write_volatile((self.base + 0x10) as *mut u32, value);
        }
    }
}

static IOAPIC: Mutex<Option<IoApic>> = Mutex::new(None);

/// Maps the I/O APIC at `phys` (its MADT entry) at `virt`, a page reserved
/// for it, and masks every line. Returns the number of lines.
///
/// # Safety
///
/// `virt` is a page of the kernel's fixed-map range that nothing else
/// maps; `phys` is the I/O APIC's register page.
pub unsafe fn init(
    virt: u64,
    phys: u64,
    gsi_base: u32,
    alloc: &mut impl FnMut() -> Option<x86_64::structures::paging::PhysFrame>,
) -> Result<u32, &'static str> {
    // SAFETY: the caller's contract.
    unsafe { paging::map_uncached(VirtAddr::new(virt), PhysAddr::new(phys), alloc) }
        .map_err(|_| "cannot map the I/O APIC's registers")?;
    let mut io = IoApic { base: virt, gsi_base, entries: 0 };
    io.entries = ((io.read(1) >> 16) & 0xff) + 1;
    for n in 0..io.entries {
        io.write(0x10 + 2 * n, 1 << 16);
    }
    let entries = io.entries;
    *IOAPIC.lock() = Some(io);
    Ok(entries)
}

/// Routes `gsi` to `vector` on the CPU with APIC ID `dest` (fixed delivery,
/// physical destination) and unmasks it.
pub fn route(
    gsi: u32,
    vector: u8,
    polarity: Polarity,
    trigger: Trigger,
    dest: u32,
) -> Result<(), &'static str> {
    let guard = IOAPIC.lock();
    let io = guard.as_ref().ok_or("no I/O APIC")?;
    let n = gsi
        .checked_sub(io.gsi_base)
        .filter(|&n| n < io.entries)
        .ok_or("GSI not on the I/O APIC")?;
    let mut low = u32::from(vector);
    if polarity == Polarity::Low {
        low |= 1 << 13;
    }
    if trigger == Trigger::Level {
        low |= 1 << 15;
    }
    io.write(0x11 + 2 * n, dest << 24);
    io.write(0x10 + 2 * n, low);
    Ok(())
}

/// What an interrupt on [`SCI_VECTOR`] runs, in interrupt context.
pub type Hook = fn();

static SCI_HOOK: Once<Hook> = Once::new();
static SCI_COUNT: AtomicU64 = AtomicU64::new(0);

/// Registers the SCI's handler (once).
pub fn set_hook(hook: Hook) {
    SCI_HOOK.call_once(|| hook);
}

/// SCIs taken since boot.
pub fn sci_count() -> u64 {
    SCI_COUNT.load(Ordering::Relaxed)
}

/// The SCI's interrupt: the registered hook, then the EOI (the hook has
/// quieted the source, so the level-triggered line is low again).
pub(super) fn sci() {
    SCI_COUNT.fetch_add(1, Ordering::Relaxed);
    if let Some(hook) = SCI_HOOK.get() {
        hook();
    }
    super::apic::eoi();
}

//! Work sent to other CPUs: call-function (run a closure on some CPUs and
//! wait for all of them), the TLB shootdown every unmap of kernel memory
//! uses, and the stop-all of the panic path (an NMI, which gets through
//! even to a CPU that runs with interrupts off).
//!
//! Rules, as Linux's `smp_call_function_many`: the closure runs in
//! interrupt context on the other CPUs, so it must not wait for a lock
//! the interrupted code may hold (it only flushes, counts or reads), must
//! not allocate (the interrupted code may hold the heap) and must not send
//! a request itself (nor unmap kernel memory, which sends a shootdown), and
//! an initiator must have interrupts enabled while it waits (two
//! initiators are serialized by one lock, spun on with interrupts
//! enabled, so each can still answer the other's request).

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use spin::Mutex;
use x86_64::VirtAddr;

use super::apic::{self, Dest};
use super::percpu::{self, Doing};
use super::time;

/// The vector of call-function requests.
pub const CALL_FUNCTION_VECTOR: u8 = 0xf0;

/// How long an initiator waits for the other CPUs before it gives up, µs.
pub const CALL_TIMEOUT_US: u64 = 1_000_000;

/// A closure on the initiator's stack; only dereferenced while the
/// initiator waits (see [`call_function`]).
#[derive(Clone, Copy)]
struct Request(*const (dyn Fn() + Sync));

// SAFETY: the pointee is `Sync`, and the initiator keeps it alive until no
// CPU can still reach it (it clears the request and waits for RUNNING).
unsafe impl Send for Request {}

/// Serializes initiators.
static CALL: Mutex<()> = Mutex::new(());
/// The current request, and the CPUs that have not taken it yet.
static REQUEST: Mutex<(Option<Request>, u64)> = Mutex::new((None, 0));
/// CPUs that took the request and have not finished it.
static RUNNING: AtomicU64 = AtomicU64::new(0);
/// CPUs that finished the request.
static DONE: AtomicU64 = AtomicU64::new(0);

/// Runs `f` on every online CPU in `mask` (this one included if its bit
/// is set: first the others are sent the request, then this CPU runs it)
/// and returns when all of them have finished. Returns the mask of CPUs
/// that did not answer within [`CALL_TIMEOUT_US`] as an error; none of
/// them will run `f` afterwards.
pub fn call_function(mask: u64, f: &(dyn Fn() + Sync)) -> Result<(), u64> {
    let me = percpu::this();
    let others = mask & percpu::online_mask() & !me.mask();
    let _serial = CALL.lock();
    if others != 0 {
        // SAFETY of the lifetime: `f` outlives this call; the pointer is
        // withdrawn below before we return, and RUNNING drained.
        let erased: *const (dyn Fn() + Sync) = f;
        // SAFETY: only the lifetime is erased; see above.
        let erased: *const (dyn Fn() + Sync + 'static) = unsafe { core::mem::transmute(erased) };
        DONE.store(0, Ordering::Release);
        // Interrupts off while REQUEST is held here: a late request
        // interrupt on this CPU would otherwise spin on it forever.
        x86_64::instructions::interrupts::without_interrupts(|| {
            *REQUEST.lock() = (Some(Request(erased)), others);
        });
        if others == percpu::online_mask() & !me.mask() {
            apic::send_ipi(Dest::AllButSelf, CALL_FUNCTION_VECTOR);
        } else {
            for c in percpu::all().filter(|c| others & c.mask() != 0) {
                apic::send_ipi(Dest::One(c.apic_id), CALL_FUNCTION_VECTOR);
            }
        }
    }
    if mask & me.mask() != 0 {
        f();
    }
    if others == 0 {
        return Ok(());
    }
    let start = time::uptime_us();
    while DONE.load(Ordering::Acquire) & others != others {
        if time::uptime_us().saturating_sub(start) > CALL_TIMEOUT_US {
            break;
        }
        core::hint::spin_loop();
    }
    let missing = x86_64::instructions::interrupts::without_interrupts(|| {
        let mut r = REQUEST.lock();
        let missing = r.1;
        *r = (None, 0);
        missing
    });
    // Those that took the request finish it before `f` goes away.
    while RUNNING.load(Ordering::Acquire) != 0 {
        core::hint::spin_loop();
    }
    if missing == 0 { Ok(()) } else { Err(missing) }
}

/// The call-function interrupt.
pub fn handle_call_function() {
    let me = percpu::this();
    me.ipis.fetch_add(1, Ordering::Relaxed);
    let taken = {
        let mut r = REQUEST.lock();
        match r.0 {
            Some(req) if r.1 & me.mask() != 0 => {
                r.1 &= !me.mask();
                RUNNING.fetch_or(me.mask(), Ordering::AcqRel);
                Some(req)
            }
            _ => None,
        }
    };
    if let Some(Request(f)) = taken {
        let before = me.doing();
        me.set_doing(Doing::CallFunction);
        // SAFETY: the initiator keeps `f` alive until RUNNING has no bit
        // of ours (cleared just below).
        unsafe { (*f)() };
        me.set_doing(before);
        DONE.fetch_or(me.mask(), Ordering::AcqRel);
        RUNNING.fetch_and(!me.mask(), Ordering::AcqRel);
    }
}

/// More pages than this are flushed with a whole TLB flush (Linux's
/// `tlb_single_page_flush_ceiling`).
const FLUSH_CEILING: u64 = 33;

/// Set by a test to show that the shootdown test can fail: unmaps then
/// flush only the local TLB.
static SKIP_SHOOTDOWN: AtomicBool = AtomicBool::new(false);
/// Shootdowns sent (each to every other online CPU).
static SHOOTDOWNS: AtomicU64 = AtomicU64::new(0);

/// Flushes `[start, end)` from this CPU's TLB (kernel mappings are
/// global, so a whole flush toggles CR4.PGE rather than reloading CR3).
pub fn flush_local(start: u64, end: u64) {
    let pages = end.saturating_sub(start).div_ceil(4096);
    if pages > FLUSH_CEILING {
        x86_64::instructions::tlb::flush_all();
        flush_global();
    } else {
        let mut at = start & !0xfff;
        while at < end {
            x86_64::instructions::tlb::flush(VirtAddr::new(at));
            at += 4096;
        }
    }
}

fn flush_global() {
    use x86_64::registers::control::{Cr4, Cr4Flags};
    let cr4 = Cr4::read();
    if cr4.contains(Cr4Flags::PAGE_GLOBAL) {
        // SAFETY: clearing and restoring PGE only flushes the TLB's global
        // entries (SDM 4.10.4.1); nothing else changes.
        unsafe {
            Cr4::write(cr4 - Cr4Flags::PAGE_GLOBAL);
            Cr4::write(cr4);
        }
    }
}

/// Flushes `[start, end)` of kernel address space from every other online
/// CPU's TLB and waits until they have (Linux's `flush_tlb_kernel_range`;
/// the caller flushed its own). Called by every unmap of kernel memory
/// before the frames behind it can be reused. A CPU that does not answer
/// may still use the old mapping, so that is a panic, not a warning.
pub fn shootdown(start: u64, end: u64) {
    if percpu::num_online() <= 1 || !percpu::installed() {
        return;
    }
    if SKIP_SHOOTDOWN.load(Ordering::Relaxed) {
        return;
    }
    SHOOTDOWNS.fetch_add(1, Ordering::Relaxed);
    let flush = move || {
        flush_local(start, end);
        percpu::this().tlb_flushes.fetch_add(1, Ordering::Relaxed);
    };
    let others = percpu::online_mask() & !percpu::this().mask();
    let t0 = super::time::uptime_us();
    if let Err(missing) = call_function(others, &flush) {
        panic!("smp: CPUs {missing:#x} did not answer a TLB shootdown of {start:#x}-{end:#x}");
    }
    SHOOTDOWN_US.fetch_add(super::time::uptime_us() - t0, Ordering::Relaxed);
}

/// Microseconds shootdowns waited for the other CPUs, since boot.
static SHOOTDOWN_US: AtomicU64 = AtomicU64::new(0);

/// Microseconds shootdowns waited for the other CPUs, since boot.
pub fn shootdown_us() -> u64 {
    SHOOTDOWN_US.load(Ordering::Relaxed)
}

/// Test only: unmaps stop telling the other CPUs (`true`), to show that a
/// stale TLB entry is caught; `false` restores the shootdown.
pub fn set_skip_shootdown(skip: bool) {
    SKIP_SHOOTDOWN.store(skip, Ordering::Relaxed);
}

/// Shootdowns sent since boot.
pub fn shootdowns() -> u64 {
    SHOOTDOWNS.load(Ordering::Relaxed)
}

/// Set once a CPU asked the others to stop.
static STOP: AtomicBool = AtomicBool::new(false);
/// CPUs that stopped.
static STOPPED: AtomicU32 = AtomicU32::new(0);

/// Stops every other CPU with an NMI and waits (at most 100 ms) until
/// they say so; returns how many stopped. The panic path calls this
/// before it prints, so nothing else runs while it does.
pub fn stop_others() -> u32 {
    if !percpu::installed() {
        return 0;
    }
    let others = percpu::online_mask() & !percpu::this().mask();
    if others == 0 {
        return 0;
    }
    STOP.store(true, Ordering::SeqCst);
    apic::send_nmi(Dest::AllButSelf);
    let start = time::uptime_us();
    let want = others.count_ones();
    while STOPPED.load(Ordering::Acquire) < want
        && time::uptime_us().saturating_sub(start) < 100_000
    {
        core::hint::spin_loop();
    }
    STOPPED.load(Ordering::Acquire)
}

/// Whether a stop was requested: the NMI handler then calls [`stop_self`].
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Stops this CPU for good (the NMI of [`stop_others`]).
pub fn stop_self() -> ! {
    x86_64::instructions::interrupts::disable();
    if percpu::installed() {
        let me = percpu::this();
        me.set_doing(Doing::Stopped);
        percpu::set_online(me.cpu, false);
    }
    STOPPED.fetch_add(1, Ordering::AcqRel);
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

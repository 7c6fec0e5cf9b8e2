//! Per-CPU data, reached through the GS base: each CPU's `IA32_GS_BASE`
//! holds the address of its [`PerCpu`], whose first word points to itself,
//! so `mov rax, gs:[0]` finds it without knowing which CPU is asking. The
//! kernel runs in ring 0 only, so GS is never swapped.
//!
//! CPUs are numbered in the order they were brought up (the boot CPU is
//! 0), as Linux numbers them; [`cpu`] looks one up by number.

use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicU32, AtomicU64, Ordering};

use x86_64::registers::model_specific::Msr;

/// The most CPUs the kernel brings up (CPU masks are one `u64`).
pub const MAX_CPUS: usize = 64;

const IA32_GS_BASE: u32 = 0xc000_0101;

/// What a CPU is doing, as `cpus` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Doing {
    /// Not started, or did not answer.
    Offline = 0,
    /// Between INIT and its first instruction in the kernel.
    Booting = 1,
    /// Halted, waiting for an interrupt.
    Idle = 2,
    /// Running the kernel's main thread (the boot CPU: boot, tests, shell).
    Running = 3,
    /// Running a call-function request.
    CallFunction = 4,
    /// Stopped by another CPU's panic.
    Stopped = 5,
    /// Panicked.
    Panicked = 6,
    /// Running a share of a parallel job (`parallel`), interrupts on.
    Working = 7,
}

impl Doing {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Booting,
            2 => Self::Idle,
            3 => Self::Running,
            4 => Self::CallFunction,
            5 => Self::Stopped,
            6 => Self::Panicked,
            7 => Self::Working,
            _ => Self::Offline,
        }
    }

    /// The word `cpus` prints.
    pub fn name(self) -> &'static str {
        match self {
            Self::Offline => "offline",
            Self::Booting => "booting",
            Self::Idle => "idle",
            Self::Running => "running",
            Self::CallFunction => "call-function",
            Self::Stopped => "stopped",
            Self::Panicked => "panicked",
            Self::Working => "working",
        }
    }
}

/// One CPU's own data. Only atomics change after start-up, so a shared
/// reference to another CPU's `PerCpu` is fine.
#[repr(C)]
pub struct PerCpu {
    /// Points to this struct: `gs:[0]` (must stay the first field).
    self_ptr: u64,
    /// The CPU's number (0 = the boot CPU).
    pub cpu: u32,
    /// Its APIC ID, from the MADT (checked against the APIC on arrival).
    pub apic_id: u32,
    /// Its ACPI processor UID.
    pub acpi_id: u32,
    doing: AtomicU8,
    /// The kernel stack `[start, end)` (a guard page below `start`).
    pub stack: (u64, u64),
    /// The double-fault IST stack `[start, end)` (a guard page below).
    pub df_stack: (u64, u64),
    /// Microseconds from INIT to the CPU's arrival in the kernel.
    pub boot_us: AtomicU64,
    /// Interprocessor interrupts this CPU has handled.
    pub ipis: AtomicU64,
    /// TLB flushes it did for other CPUs.
    pub tlb_flushes: AtomicU64,
    /// Faults it recovered from through a fixup (see `extable`).
    pub fixed_faults: AtomicU64,
    /// The stack pointer it last reported (a call-function test reads it).
    pub last_rsp: AtomicU64,
}

impl PerCpu {
    /// A CPU's data, not yet linked to itself (see [`install`]).
    pub const fn new(cpu: u32, apic_id: u32, acpi_id: u32, stack: (u64, u64)) -> Self {
        Self {
            self_ptr: 0,
            cpu,
            apic_id,
            acpi_id,
            doing: AtomicU8::new(Doing::Offline as u8),
            stack,
            df_stack: (0, 0),
            boot_us: AtomicU64::new(0),
            ipis: AtomicU64::new(0),
            tlb_flushes: AtomicU64::new(0),
            fixed_faults: AtomicU64::new(0),
            last_rsp: AtomicU64::new(0),
        }
    }

    /// What the CPU is doing.
    pub fn doing(&self) -> Doing {
        Doing::from_u8(self.doing.load(Ordering::Acquire))
    }

    /// Records what the CPU is doing.
    pub fn set_doing(&self, d: Doing) {
        self.doing.store(d as u8, Ordering::Release);
    }

    /// This CPU's bit in a CPU mask.
    pub fn mask(&self) -> u64 {
        1 << self.cpu
    }
}

static CPUS: [AtomicPtr<PerCpu>; MAX_CPUS] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_CPUS];
/// CPUs registered (started or being started).
static NR: AtomicU32 = AtomicU32::new(0);
/// Bit `n`: CPU `n` is online (answers interprocessor interrupts).
static ONLINE: AtomicU64 = AtomicU64::new(0);

/// Registers `pc` as the next CPU number; returns it, or `None` when
/// [`MAX_CPUS`] are registered. `pc.cpu` must be that number
/// ([`next_number`]).
pub fn register(pc: &'static mut PerCpu) -> Option<&'static PerCpu> {
    let n = pc.cpu as usize;
    if n >= MAX_CPUS || n != NR.load(Ordering::Acquire) as usize {
        return None;
    }
    pc.self_ptr = &raw const *pc as u64;
    CPUS[n].store(pc, Ordering::Release);
    NR.store(n as u32 + 1, Ordering::Release);
    Some(pc)
}

/// The number the next registered CPU gets.
pub fn next_number() -> u32 {
    NR.load(Ordering::Acquire)
}

/// Points this CPU's GS base at `pc` (already registered).
pub fn install(pc: &'static PerCpu) {
    // SAFETY: IA32_GS_BASE exists on every x86_64 CPU; `pc` is a
    // registered, 'static PerCpu whose first word points to itself, which
    // is what `this` reads through GS.
    unsafe { Msr::new(IA32_GS_BASE).write(pc.self_ptr) };
    INSTALLED.store(true, Ordering::Release);
}

/// Set by the first [`install`], the boot CPU's, first thing in `init`.
/// Every other CPU installs its own before it runs any code that asks
/// (`smpboot::ap_entry`), so from then on every running CPU has one.
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Whether this CPU's GS base points to a `PerCpu` yet. A load, not a
/// read of IA32_GS_BASE: [`current`] asks on every lock and allocation,
/// and an MSR read is a trip out of the guest under a hypervisor and a
/// helper call under QEMU's TCG.
pub fn installed() -> bool {
    INSTALLED.load(Ordering::Acquire)
}

/// This CPU's data. Only after [`install`] ran on this CPU (the boot CPU
/// installs first thing in `init`).
pub fn this() -> &'static PerCpu {
    let p: u64;
    // SAFETY: GS base points to this CPU's PerCpu (`install`), whose first
    // word is its own address; the read has no other effect.
    unsafe {
        core::arch::asm!("mov {}, gs:[0]", out(reg) p, options(nostack, readonly, preserves_flags))
    };
    // SAFETY: `p` is the address of a registered 'static PerCpu.
    unsafe { &*(p as *const PerCpu) }
}

/// This CPU's number, 0 before per-CPU data exists.
pub fn current() -> u32 {
    if installed() { this().cpu } else { 0 }
}

/// CPU number `n`, if registered.
pub fn cpu(n: u32) -> Option<&'static PerCpu> {
    let p = CPUS.get(n as usize)?.load(Ordering::Acquire);
    // SAFETY: registered pointers are 'static PerCpus (`register`).
    (!p.is_null()).then(|| unsafe { &*p })
}

/// Every registered CPU, by number.
pub fn all() -> impl Iterator<Item = &'static PerCpu> {
    (0..NR.load(Ordering::Acquire)).filter_map(cpu)
}

/// Marks CPU `n` online or offline.
pub fn set_online(n: u32, online: bool) {
    if online {
        ONLINE.fetch_or(1 << n, Ordering::AcqRel);
    } else {
        ONLINE.fetch_and(!(1 << n), Ordering::AcqRel);
    }
}

/// The online CPUs as a mask.
pub fn online_mask() -> u64 {
    ONLINE.load(Ordering::Acquire)
}

/// How many CPUs are online.
pub fn num_online() -> u32 {
    online_mask().count_ones()
}

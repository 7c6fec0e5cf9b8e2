//! Starting an application processor (AP): a real-mode trampoline in four
//! pages below 1 MiB, INIT-SIPI-SIPI with the MP specification's delays
//! (the 10 ms INIT delay dropped on processors that do not need it, as
//! Linux drops it; `cpu_init_udelay=N` sets it), and the AP's first Rust
//! function.
//!
//! The trampoline page (physical `T`, the SIPI vector is `T >> 12`) holds
//! a header the boot CPU fills before each start, then the code:
//!
//! | offset | what |
//! |---|---|
//! | 0 | `jmp` over the header |
//! | 8 | GDTR (limit u16, base u32) of the trampoline's GDT |
//! | 16 | far pointer (offset u32, selector u16) to the 64-bit code |
//! | 24 | CR3 (u32): the trampoline's own level-4 table, below 1 MiB |
//! | 32, 40, 48 | the AP's stack top, its `PerCpu`, the Rust entry |
//! | 56 | the GDT: null, 64-bit code (0x08), data (0x10) |
//!
//! The next three pages are page tables: a level-4 table whose upper half
//! is the kernel's (copied before each start) and whose entry 0 maps the
//! first 2 MiB one to one, so the instruction after the switch to long mode
//! is still where the CPU fetches it. Real mode goes straight to long mode
//! (PAE, LME and NXE, then PE and PG together), jumps to the kernel's
//! address of the Rust entry, which loads the kernel's CR3 first.

use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::PhysAddr;
use x86_64::registers::control::{Cr0, Cr3, Cr4};
use x86_64::registers::model_specific::Efer;
use x86_64::structures::paging::PhysFrame;

use super::percpu::{self, Doing, PerCpu};
use super::{apic, gdt, idt, time};

/// Pages the trampoline needs below 1 MiB: code, level-4, level-3 and
/// level-2 tables.
pub const TRAMPOLINE_PAGES: u64 = 4;
/// The highest address the trampoline may end at (real mode reaches 1 MiB).
pub const TRAMPOLINE_LIMIT: u64 = 1 << 20;

const HDR_GDTR: usize = 8;
const HDR_FAR: usize = 16;
const HDR_CR3: usize = 24;
const HDR_STACK: usize = 32;
const HDR_ARG: usize = 40;
const HDR_ENTRY: usize = 48;

core::arch::global_asm!(
    ".pushsection .text.tessera_trampoline, \"ax\"",
    ".code16",
    ".global tessera_trampoline_start",
    "tessera_trampoline_start:",
    "    jmp 2f",
    ".balign 8",
    // 8: GDTR, 16: far pointer, 24: CR3, 32..56: stack, arg, entry.
    "    .word 23",
    "    .long 0",
    "    .word 0",
    "    .long 0",
    "    .word 0x08",
    "    .word 0",
    "    .long 0",
    "    .long 0",
    "    .quad 0",
    "    .quad 0",
    "    .quad 0",
    // 56: the GDT.
    "    .quad 0",
    "    .quad 0x00af9a000000ffff",
    "    .quad 0x00cf92000000ffff",
    "2:",
    "    cli",
    "    cld",
    "    mov ax, cs",
    "    mov ds, ax",
    "    mov es, ax",
    "    mov ss, ax",
    "    lgdt [8]",
    "    mov eax, cr4",
    "    or eax, 0xa0", // PAE | PGE
    "    mov cr4, eax",
    "    mov eax, dword ptr [24]",
    "    mov cr3, eax",
    "    mov ecx, 0xc0000080", // EFER
    "    rdmsr",
    "    or eax, 0x900", // LME | NXE
    "    wrmsr",
    "    mov eax, cr0",
    "    or eax, 0x80010001", // PG | WP | PE
    "    mov cr0, eax",
    // o32 jmp far [16]: to the 64-bit code below, selector 0x08.
    "    .byte 0x66, 0xff, 0x2e, 0x10, 0x00",
    ".code64",
    ".global tessera_trampoline_long",
    "tessera_trampoline_long:",
    "    mov ax, 0x10",
    "    mov ds, ax",
    "    mov es, ax",
    "    mov ss, ax",
    "    mov rsp, qword ptr [rip + tessera_trampoline_start + 32]",
    "    mov rdi, qword ptr [rip + tessera_trampoline_start + 40]",
    "    mov rax, qword ptr [rip + tessera_trampoline_start + 48]",
    "    call rax",
    "3:  cli",
    "    hlt",
    "    jmp 3b",
    ".global tessera_trampoline_end",
    "tessera_trampoline_end:",
    ".popsection",
);

fn symbol_offsets() -> (u64, u64, u64) {
    let (start, long, end): (u64, u64, u64);
    // SAFETY: only computes the addresses of three labels of the
    // trampoline above (rip-relative `lea`), no memory is accessed.
    unsafe {
        core::arch::asm!(
            "lea {0}, [rip + tessera_trampoline_start]",
            "lea {1}, [rip + tessera_trampoline_long]",
            "lea {2}, [rip + tessera_trampoline_end]",
            out(reg) start, out(reg) long, out(reg) end,
            options(nomem, nostack, preserves_flags)
        )
    };
    (start, long - start, end - start)
}

/// The boot CPU's control registers, which every AP copies, and the
/// kernel's level-4 table.
static BSP_CR3: AtomicU64 = AtomicU64::new(0);
static BSP_CR4: AtomicU64 = AtomicU64::new(0);
static BSP_CR0: AtomicU64 = AtomicU64::new(0);
static BSP_EFER: AtomicU64 = AtomicU64::new(0);

/// The trampoline, installed in its reserved pages.
pub struct Trampoline {
    phys: u64,
    /// Where physical memory is mapped (to write the pages).
    phys_offset: u64,
}

/// Why an AP did not come up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartError {
    /// It did not reach the kernel within the timeout.
    NoAnswer,
    /// A CPU with another APIC ID answered (firmware tables wrong).
    WrongCpu { found: u32 },
}

impl Trampoline {
    /// Copies the trampoline into the pages at `phys` (page aligned, all
    /// four below [`TRAMPOLINE_LIMIT`], reserved by the caller for this
    /// use for good) and records the boot CPU's registers for the APs.
    ///
    /// # Safety
    ///
    /// `[phys, phys + 4 pages)` is RAM nothing else uses, mapped at
    /// `phys_offset + phys`.
    pub unsafe fn install(phys: u64, phys_offset: u64) -> Self {
        assert!(phys % 4096 == 0 && phys + TRAMPOLINE_PAGES * 4096 <= TRAMPOLINE_LIMIT);
        let (start, long, len) = symbol_offsets();
        assert!(len <= 4096, "the trampoline fits one page");
        let dst = (phys_offset + phys) as *mut u8;
        // SAFETY: the caller owns the four pages (mapped at `dst`); the
        // source is the trampoline's `len` bytes in the kernel image.
        unsafe {
            dst.write_bytes(0, (TRAMPOLINE_PAGES * 4096) as usize);
            core::ptr::copy_nonoverlapping(start as *const u8, dst, len as usize);
        }
        let t = Self { phys, phys_offset };
        t.put_u32(HDR_GDTR + 2, (phys + 56) as u32);
        t.put_u32(HDR_FAR, (phys + long) as u32);
        t.put_u32(HDR_CR3, (phys + 4096) as u32);
        let (frame, _) = Cr3::read();
        BSP_CR3.store(frame.start_address().as_u64(), Ordering::Relaxed);
        BSP_CR0.store(Cr0::read_raw(), Ordering::Relaxed);
        BSP_CR4.store(Cr4::read_raw(), Ordering::Relaxed);
        BSP_EFER.store(Efer::read_raw(), Ordering::Relaxed);
        t
    }

    /// The physical address of the trampoline page.
    pub fn phys(&self) -> u64 {
        self.phys
    }

    fn put_u32(&self, off: usize, v: u32) {
        // SAFETY: `off` is inside the trampoline's first page (a header
        // field), which `install`'s caller gave to the trampoline.
        unsafe { ((self.phys_offset + self.phys + off as u64) as *mut u32).write_unaligned(v) }
    }

    fn put_u64(&self, page: u64, off: usize, v: u64) {
        // SAFETY: as in `put_u32`, for any of the four pages.
        unsafe {
            ((self.phys_offset + self.phys + page * 4096 + off as u64) as *mut u64)
                .write_unaligned(v)
        }
    }

    /// Fills the page tables: the kernel's upper half, and the first
    /// 2 MiB mapped one to one.
    fn fill_tables(&self) {
        const PRESENT_WRITABLE: u64 = 0x3;
        const HUGE: u64 = 0x80;
        let kernel = BSP_CR3.load(Ordering::Relaxed);
        for i in 256..512 {
            // SAFETY: the kernel's level-4 table is a page of RAM, mapped at
            // `phys_offset`; entries are read, not changed.
            let e = unsafe { ((self.phys_offset + kernel + i * 8) as *const u64).read_volatile() };
            self.put_u64(1, i as usize * 8, e);
        }
        self.put_u64(1, 0, (self.phys + 2 * 4096) | PRESENT_WRITABLE);
        self.put_u64(2, 0, (self.phys + 3 * 4096) | PRESENT_WRITABLE);
        self.put_u64(3, 0, HUGE | PRESENT_WRITABLE);
    }

    /// Starts the AP `pc` (registered, its stack mapped in the kernel's
    /// tables) and waits up to `timeout_us` for it to reach the kernel;
    /// returns the microseconds from INIT to its arrival. An AP that does
    /// not answer is sent INIT again, which parks it (it waits for a SIPI
    /// that will not come), so it never runs on a stack given to another.
    pub fn start(&self, pc: &'static PerCpu, timeout_us: u64) -> Result<u64, StartError> {
        self.fill_tables();
        self.put_u64(0, HDR_STACK, pc.stack.1);
        self.put_u64(0, HDR_ARG, &raw const *pc as u64);
        self.put_u64(0, HDR_ENTRY, ap_entry as *const () as u64);
        pc.set_doing(Doing::Booting);
        let t0 = time::uptime_us();
        let page = (self.phys >> 12) as u8;
        // Linux's `wakeup_secondary_cpu_via_init`: INIT held for
        // `init_udelay`, then two SIPIs, each followed by 300 + 200 µs
        // (10 + 10 µs when the INIT delay is 0).
        let init_udelay = INIT_UDELAY.load(Ordering::Relaxed);
        let (before, after) = if init_udelay == 0 { (10, 10) } else { (300, 200) };
        apic::send_init_assert(pc.apic_id);
        time::delay_us(init_udelay);
        apic::send_init_deassert(pc.apic_id);
        for _ in 0..2 {
            apic::send_startup(pc.apic_id, page);
            time::delay_us(before);
            time::delay_us(after);
            if arrived(pc) {
                break;
            }
        }
        while !arrived(pc) && time::uptime_us().saturating_sub(t0) < timeout_us {
            core::hint::spin_loop();
        }
        let us = time::uptime_us().saturating_sub(t0);
        match pc.doing() {
            Doing::Idle => {
                pc.boot_us.store(us, Ordering::Relaxed);
                Ok(us)
            }
            Doing::Panicked => {
                Err(StartError::WrongCpu { found: WRONG_APIC.load(Ordering::Relaxed) as u32 })
            }
            _ => {
                apic::send_init(pc.apic_id);
                pc.set_doing(Doing::Offline);
                Err(StartError::NoAnswer)
            }
        }
    }
}

/// The MP specification's INIT delay, µs.
pub const UDELAY_10MS_DEFAULT: u64 = 10_000;

/// How long INIT is held before the SIPIs, µs (see [`set_init_udelay`]).
static INIT_UDELAY: AtomicU64 = AtomicU64::new(UDELAY_10MS_DEFAULT);

/// Sets the INIT delay as Linux's `smp_quirk_init_udelay` does:
/// `cpu_init_udelay=N` when given; otherwise none on processors that do
/// not need it (Intel family 6, AMD family 0xf and later, Hygon 0x18 and
/// later), the MP specification's 10 ms on others. Returns the delay.
pub fn set_init_udelay(option: Option<u64>) -> u64 {
    let delay = option.unwrap_or_else(|| {
        let cpuid = raw_cpuid::CpuId::new();
        let vendor = cpuid.get_vendor_info();
        let family = cpuid.get_feature_info().map_or(0, |f| f.family_id());
        let modern = match vendor.as_ref().map(|v| v.as_str()) {
            Some("GenuineIntel") => family == 6,
            Some("AuthenticAMD") => family >= 0xf,
            Some("HygonGenuine") => family >= 0x18,
            _ => false,
        };
        if modern { 0 } else { UDELAY_10MS_DEFAULT }
    });
    INIT_UDELAY.store(delay, Ordering::Relaxed);
    delay
}

/// The INIT delay in use, µs.
pub fn init_udelay() -> u64 {
    INIT_UDELAY.load(Ordering::Relaxed)
}

fn arrived(pc: &PerCpu) -> bool {
    matches!(pc.doing(), Doing::Idle | Doing::Panicked)
}

static WRONG_APIC: AtomicU64 = AtomicU64::new(0);

/// The AP's first Rust code, on its own stack: the kernel's page tables,
/// the boot CPU's control registers, its per-CPU data, GDT and TSS, the
/// shared IDT, its APIC; then it is online and idles until an
/// interrupt asks it for work.
extern "sysv64" fn ap_entry(pc: &'static PerCpu) -> ! {
    let frame = PhysFrame::containing_address(PhysAddr::new(BSP_CR3.load(Ordering::Relaxed)));
    // SAFETY: the kernel's level-4 table maps everything this CPU runs on
    // (the kernel image, this stack) exactly as the trampoline's copy of
    // its upper half did; CR0/CR4/EFER are the boot CPU's, valid on the
    // same processor model and consistent with those tables.
    unsafe {
        Cr3::write(frame, x86_64::registers::control::Cr3Flags::empty());
        core::arch::asm!("mov cr4, {}", in(reg) BSP_CR4.load(Ordering::Relaxed), options(nostack));
        core::arch::asm!("mov cr0, {}", in(reg) BSP_CR0.load(Ordering::Relaxed), options(nostack));
        x86_64::registers::model_specific::Msr::new(0xc000_0080)
            .write(BSP_EFER.load(Ordering::Relaxed));
    }
    percpu::install(pc);
    gdt::init_ap(pc.df_stack.1);
    idt::load();
    apic::init_ap();
    let id = apic::id();
    if id != pc.apic_id {
        WRONG_APIC.store(id as u64, Ordering::Relaxed);
        pc.set_doing(Doing::Panicked);
        loop {
            x86_64::instructions::interrupts::disable();
            x86_64::instructions::hlt();
        }
    }
    percpu::set_online(pc.cpu, true);
    pc.set_doing(Doing::Idle);
    idle()
}

/// Idles with interrupts on: each interrupt (a call-function request, a
/// shootdown) runs, then the CPU halts again; a parallel job published
/// for this CPU ([`super::parallel`]) runs in between, interrupts on.
/// The check runs with interrupts off and `sti; hlt` follows it, so a
/// kick that arrives after the check still ends the halt.
pub fn idle() -> ! {
    use x86_64::instructions::interrupts;
    loop {
        interrupts::disable();
        if super::parallel::pending_here() {
            interrupts::enable();
            super::parallel::run_pending();
        } else {
            interrupts::enable_and_hlt();
        }
    }
}

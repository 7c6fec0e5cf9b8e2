//! Every CPU online: which CPUs the firmware lists (the MADT, through
//! [`crate::acpi`]), their stacks, and their start-up one after the other,
//! printed as Linux prints it:
//!
//! ```text
//! smp: Bringing up secondary CPUs ...
//! x86: Booting SMP configuration:
//! .... node  #0, CPUs:      #1 #2 #3
//! smp: Brought up 1 node, 4 CPUs
//! ```
//!
//! The hardware side (APIC, trampoline, per-CPU data, interprocessor
//! interrupts) is in `arch`; this module decides and allocates. Jobs on
//! several CPUs at once ([`parallel()`]) are `arch`'s too, so that `mm`
//! can use them (deferred struct-page init).

pub use crate::arch::parallel::{Chunks, NotStarted, Worker, parallel, parallel_timeout};

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt::Write;

use bootloader_api::info::{MemoryRegion, MemoryRegionKind};
use mm::page::PAGE_SIZE;
use spin::Once;
use x86_64::{PhysAddr, VirtAddr};

use crate::arch::gdt::DOUBLE_FAULT_STACK_SIZE;
use crate::arch::percpu::{self, Doing, MAX_CPUS, PerCpu};
use crate::arch::smpboot::{StartError, TRAMPOLINE_LIMIT, TRAMPOLINE_PAGES, Trampoline};
use crate::arch::{apic, paging};
use crate::boot::KERNEL_STACK_SIZE;
use crate::boot::layout::{CPU_SLOT, CPU_STACKS_START, FIXMAP_START};
use crate::mm::memblock::MEMBLOCK;
use crate::mm::page_alloc::alloc_frame;

/// How long an AP may take from INIT to the kernel, µs (Linux waits 10 s;
/// a CPU that answers at all does so in milliseconds).
pub const AP_TIMEOUT_US: u64 = 1_000_000;

static TRAMPOLINE: Once<u64> = Once::new();

/// Picks and reserves the trampoline's pages: the highest four pages of
/// usable RAM below 1 MiB (Linux's `reserve_real_mode`). Memblock keeps
/// the whole first MiB out of the page allocator already; the explicit
/// reservation records why these pages are used.
pub fn reserve_trampoline(regions: &[MemoryRegion]) -> Option<u64> {
    let size = TRAMPOLINE_PAGES * PAGE_SIZE;
    let found = regions
        .iter()
        .filter(|r| r.kind == MemoryRegionKind::Usable)
        .filter_map(|r| {
            let lo = r.start.next_multiple_of(PAGE_SIZE).max(PAGE_SIZE);
            let hi = r.end.min(TRAMPOLINE_LIMIT) & !(PAGE_SIZE - 1);
            (hi >= lo + size).then(|| hi - size)
        })
        .max();
    match found {
        Some(t) => {
            MEMBLOCK.lock().reserved.add(t, size);
            log::debug!("smpboot: trampoline at [mem {:#018x}-{:#018x}]", t, t + size - 1);
            TRAMPOLINE.call_once(|| t);
        }
        None => log::warn!("smpboot: no usable RAM below 1 MiB for the trampoline"),
    }
    found
}

/// Maps `pages` fresh pages at `virt` from the page allocator.
fn map_pages(virt: u64, pages: u64) -> Result<(), &'static str> {
    for i in 0..pages {
        let page = alloc_frame().ok_or("out of memory")?;
        let v = VirtAddr::new(virt + i * PAGE_SIZE);
        // SAFETY: `v` is in the CPU-stack area, which only this module
        // maps, at a slot no CPU uses yet; the frame was just allocated.
        unsafe { paging::map(v, page.start_address(), paging::MapSize::Size4K, &mut alloc_frame) }
            .map_err(|_| "cannot map")?;
    }
    Ok(())
}

/// An address range `[start, end)`.
type Range = (u64, u64);

/// The stacks of CPU `n`: kernel stack and double-fault stack, each above
/// an unmapped guard page.
fn stacks(n: u32) -> Result<(Range, Range), &'static str> {
    let slot = CPU_STACKS_START + n as u64 * CPU_SLOT;
    let stack = (slot + PAGE_SIZE, slot + PAGE_SIZE + KERNEL_STACK_SIZE);
    let df = (stack.1 + PAGE_SIZE, stack.1 + PAGE_SIZE + DOUBLE_FAULT_STACK_SIZE as u64);
    map_pages(stack.0, KERNEL_STACK_SIZE / PAGE_SIZE)?;
    map_pages(df.0, DOUBLE_FAULT_STACK_SIZE as u64 / PAGE_SIZE)?;
    Ok((stack, df))
}

/// The boot CPU's per-CPU data, installed first thing at boot.
static mut BSP: PerCpu = PerCpu::new(0, 0, 0, (0, 0));

/// Gives the boot CPU its per-CPU data (GS base) as CPU 0, with the APIC
/// ID CPUID reports. First thing in `init`: everything after may ask
/// which CPU it runs on.
pub fn init_boot_cpu(stack: (u64, u64)) {
    // SAFETY: runs once, on the boot CPU, before any other CPU runs and
    // before anything reads BSP; afterwards BSP is only reached through
    // the shared reference `register` returns.
    let bsp = &raw mut BSP;
    // SAFETY: as above.
    let bsp = unsafe { &mut *bsp };
    *bsp = PerCpu::new(0, apic::initial_id(), 0, stack);
    bsp.df_stack = crate::arch::gdt::double_fault_stack();
    if let Some(pc) = percpu::register(bsp) {
        percpu::install(pc);
        pc.set_doing(Doing::Running);
        percpu::set_online(0, true);
    }
}

/// What [`init`] found and did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// CPUs the firmware listed (after the policy's checks).
    pub listed: usize,
    /// APs that did not, with the reason.
    pub failed: Vec<(u32, StartError)>,
}

static REPORT: Once<Report> = Once::new();

/// What bring-up did, once it ran.
pub fn report() -> Option<&'static Report> {
    REPORT.get()
}

/// Sets the boot CPU's APIC up and starts every other CPU the MADT lists
/// (by [`crate::acpi::possible_cpus`]'s rules), one after the other.
/// `x2apic`: whether x2APIC mode may be used (`nox2apic` says no).
/// `nosmp`: the APIC is set up, no other CPU starts. `init_udelay`:
/// `cpu_init_udelay=N`.
pub fn init(x2apic: bool, nosmp: bool, init_udelay: Option<u64>) -> &'static Report {
    REPORT.call_once(|| bring_up(x2apic, nosmp, init_udelay))
}

fn bring_up(x2apic: bool, nosmp: bool, init_udelay: Option<u64>) -> Report {
    let mut report = Report::default();
    if !apic::present() {
        log::warn!("APIC: no local APIC (CPUID): running on the boot CPU only");
        return report;
    }
    let phys = apic::base_phys();
    if let Some(m) = crate::acpi::madt()
        && m.local_apic_address() != phys
    {
        // The MSR is what the CPU decodes; the MADT only describes it.
        log::warn!(
            "APIC: the MADT says the APIC is at {:#x}, IA32_APIC_BASE {phys:#x}: using the MSR's",
            m.local_apic_address()
        );
    }
    // SAFETY: FIXMAP_START is reserved for the APIC's page (boot::layout)
    // and nothing else maps there; `phys` is the APIC's register page.
    let mapped = unsafe {
        paging::map_uncached(VirtAddr::new(FIXMAP_START), PhysAddr::new(phys), &mut alloc_frame)
    };
    if mapped.is_err() && !(x2apic && apic::x2apic_available()) {
        log::warn!("APIC: cannot map the APIC page: running on the boot CPU only");
        return report;
    }
    let mode = apic::init_bsp(FIXMAP_START, x2apic);
    match mode {
        apic::Mode::X2Apic => log::info!("x2apic enabled"),
        apic::Mode::XApic => log::info!("APIC: xAPIC mode, registers at {phys:#x}"),
    }
    let bsp = percpu::this();
    let id = apic::id();
    if id != bsp.apic_id {
        log::warn!("APIC: boot CPU's APIC ID {id:#x} differs from CPUID's {:#x}", bsp.apic_id);
    }
    let hz = apic::calibrate_timer(10);
    log::info!(
        "APIC: timer runs at {}.{:03} MHz (calibrated against the TSC)",
        hz / 1_000_000,
        hz / 1000 % 1000
    );
    // Interrupts on: this CPU answers call-function requests and
    // shootdowns from the others from now on.
    x86_64::instructions::interrupts::enable();
    let cpus = crate::acpi::possible_cpus(id, mode == apic::Mode::X2Apic, MAX_CPUS);
    // Only enabled CPUs start; online-capable ones would be hot-added.
    let cpus: Vec<_> = cpus.into_iter().filter(|c| c.enabled).collect();
    report.listed = cpus.len();
    let aps: Vec<_> = cpus.iter().copied().filter(|c| c.apic_id != id).collect();
    if nosmp && !aps.is_empty() {
        log::info!("smp: nosmp: {} other CPUs left offline", aps.len());
        report.listed = 1;
    }
    if aps.is_empty() || nosmp {
        log::info!("smp: Bringing up secondary CPUs ...");
        log::info!("smp: Brought up 1 node, 1 CPU");
        return report;
    }
    let Some(&tphys) = TRAMPOLINE.get() else {
        log::warn!("smp: no trampoline below 1 MiB: running on the boot CPU only");
        return report;
    };
    let offset = crate::boot::mappings().map_or(0, |m| m.physical_memory_offset);
    // SAFETY: `reserve_trampoline` reserved these pages for good; they are
    // RAM mapped by the bootloader's physical-memory map.
    let tramp = unsafe { Trampoline::install(tphys, offset) };
    let udelay = crate::arch::smpboot::set_init_udelay(init_udelay);
    log::debug!("smpboot: INIT held {udelay} us before the start-up IPIs");
    log::info!("smp: Bringing up secondary CPUs ...");
    log::info!("x86: Booting SMP configuration:");
    // Linux pads for the widest CPU number: `.... node  #0, CPUs:      #1`
    // with fewer than 10 CPUs (measured), then ` #2`, ` #3`.
    let digits = |n: usize| n.checked_ilog10().unwrap_or(0) as usize + 1;
    let width = digits(cpus.len().saturating_sub(1).max(1));
    let mut line = alloc::format!(".... node  #0, CPUs:{:1$}", "", 4 + width);
    for c in aps {
        let n = percpu::next_number();
        if n as usize >= MAX_CPUS {
            log::warn!(
                "APIC: NR_CPUS/possible_cpus limit of {MAX_CPUS} reached. Processor {}/{:#x} ignored.",
                c.acpi_id,
                c.apic_id
            );
            continue;
        }
        let (stack, df) = match stacks(n) {
            Ok(s) => s,
            Err(e) => {
                log::error!("smpboot: CPU#{n}: no stack ({e}); left out");
                break;
            }
        };
        let mut pc = Box::new(PerCpu::new(n, c.apic_id, c.acpi_id, stack));
        pc.df_stack = df;
        let Some(pc) = percpu::register(Box::leak(pc)) else { break };
        match tramp.start(pc, AP_TIMEOUT_US) {
            Ok(_) => {
                let pad = width.saturating_sub(digits(n as usize)).max(1);
                let _ = write!(line, "{:pad$}#{n}", "");
            }
            Err(e) => {
                match e {
                    StartError::NoAnswer => {
                        log::error!("smpboot: do_boot_cpu failed(-1) to wakeup CPU#{n}")
                    }
                    StartError::WrongCpu { found } => log::error!(
                        "smpboot: CPU#{n}: APIC ID {found:#x} answered for {:#x}; left out",
                        c.apic_id
                    ),
                }
                report.failed.push((n, e));
            }
        }
    }
    log::info!("{line}");
    let online = percpu::num_online();
    log::info!("smp: Brought up 1 node, {online} CPU{}", if online == 1 { "" } else { "s" });
    for c in percpu::all().filter(|c| c.cpu > 0 && percpu::online_mask() & c.mask() != 0) {
        let us = c.boot_us.load(core::sync::atomic::Ordering::Relaxed);
        log::debug!("smpboot: CPU#{} started in {us} us", c.cpu);
    }
    report
}

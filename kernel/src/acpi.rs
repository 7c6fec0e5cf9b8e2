//! ACPI at boot: the firmware's tables, checked and listed as Linux lists
//! them, plus Tessera's own NFIT (OEM ID `TESSRA`) for persistent ranges no
//! firmware NFIT describes. Every NFIT, firmware or emulated, goes through
//! the same parser and validation; several combine in table order (first
//! one wins on a duplicate SPA index or an overlap).
//!
//! The MADT is found through the same walk: the one `acpi_apic_instance=N`
//! names when the firmware gives several (Linux's `check_multiple_madt`),
//! its entries listed with Linux 6.1's lines (local APIC, x2APIC and I/O
//! APIC lines at debug level, as Linux prints them with `pr_debug`), and
//! kept for SMP start-up: [`madt()`], [`possible_cpus`].

use alloc::vec::Vec;

use acpi::madt::{self, Madt};
use acpi::nfit::{self, Nfit, SpaRange};
use acpi::sdt::{self, PhysMem, SdtHeader, TableEntry, Tables};
use mm::e820::{E820Type, Entry};
use mm::sparse::MAX_PHYSMEM_BITS;
use spin::Once;

use crate::arch::paging;
use crate::mm::memblock::MEMBLOCK;

/// What the kernel found.
pub struct Acpi {
    /// The firmware's tables (with the emulated NFIT appended), if the walk
    /// succeeded.
    pub tables: Option<Tables>,
    /// Every NFIT's structures, combined.
    pub nfit: Nfit,
    /// Problems reported (tables skipped, structures refused).
    pub problems: usize,
    /// The physical address of the emulated NFIT, if one was made.
    pub emulated: Option<u64>,
    /// SPA indexes above this one are the emulated NFIT's.
    pub firmware_max_index: u16,
    /// The MADT used, with its physical address: `None` without one (or
    /// when `acpi_apic_instance=N` names none, or it is unreadable).
    pub madt: Option<(u64, Madt)>,
}

static ACPI: Once<Acpi> = Once::new();

/// The ACPI state after [`init`].
pub fn get() -> Option<&'static Acpi> {
    ACPI.get()
}

/// Reads physical memory through the bootloader's map, page by page
/// checked, so a bad pointer in a table reads as "unreadable", never faults.
struct KernelPhys(u64);

impl PhysMem for KernelPhys {
    fn read(&self, phys: u64, buf: &mut [u8]) -> bool {
        let Some(end) = phys.checked_add(buf.len() as u64) else { return false };
        if buf.is_empty() {
            return true;
        }
        let mut page = phys & !0xfff;
        while page < end {
            let Some(virt) = self.0.checked_add(page) else { return false };
            let mapped = paging::mapping(x86_64::VirtAddr::new(virt)).map(|(p, _)| p.as_u64());
            if mapped != Some(page) {
                return false;
            }
            page += 4096;
        }
        // SAFETY: every page of [phys, end) is mapped at `offset + phys`
        // (checked above) by the bootloader's physical-memory map; the copy
        // only reads, into a buffer that does not overlap it.
        unsafe {
            core::ptr::copy_nonoverlapping(
                (self.0 + phys) as *const u8,
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        true
    }
}

const NFIT: [u8; 4] = *b"NFIT";

/// Who wrote the NFIT SPA range of a persistent range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Described {
    /// The firmware's NFIT (e.g. a QEMU `nvdimm`).
    Firmware,
    /// Tessera's own NFIT for a `memmap=nn!ss` (E820 type 12, `legacy`) or
    /// an E820 type 7 range.
    Emulated { legacy: bool },
}

/// A persistent-memory range the NFIT describes: `[start, start + size)`,
/// its SPA range index, and whose table it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PmemRange {
    pub start: u64,
    pub size: u64,
    pub spa: u16,
    pub described: Described,
}

/// Walks the tables from `rsdp`, lists them, adds an emulated NFIT for the
/// persistent ranges of `e820` (types 12 and 7) that no firmware NFIT
/// describes (none with `nopmem`), and returns the accepted persistent
/// ranges with where they came from.
/// `apic_instance` is `acpi_apic_instance=N` (see `find_madt`).
pub fn init(
    rsdp: Option<u64>,
    phys_offset: u64,
    e820: &[Entry],
    nopmem: bool,
    apic_instance: Option<u32>,
) -> Vec<PmemRange> {
    let mem = KernelPhys(phys_offset);
    let mut problems = 0;
    let mut tables = match rsdp.map(|a| sdt::walk(&mem, a)) {
        Some(Ok(t)) => Some(t),
        Some(Err(e)) => {
            log::warn!("ACPI: {e}; no ACPI tables used");
            problems += 1;
            None
        }
        None => {
            log::warn!("ACPI: no RSDP from the firmware");
            None
        }
    };
    if let Some(t) = &tables {
        if let Some(e) = &t.xsdt_error {
            log::warn!("ACPI: {e}; using the RSDT");
            problems += 1;
        }
        for line in t.lines() {
            log::info!("ACPI: {line}");
        }
        for bad in t.entries.iter().filter(|e| e.problem.is_some()) {
            log::warn!("ACPI: {bad}");
            problems += 1;
        }
    }
    let madt = find_madt(tables.as_ref(), apic_instance, &mut problems);
    let firmware: Vec<Vec<u8>> = tables
        .as_ref()
        .map(|t| t.find_all(NFIT).map(|e| e.bytes.clone()).collect())
        .unwrap_or_default();
    let slices: Vec<&[u8]> = firmware.iter().map(Vec::as_slice).collect();
    let (fw_nfit, _) = nfit::combine(&slices);
    let firmware_max_index = fw_nfit.spa_ranges().map(|s| s.index).max().unwrap_or(0);
    let ram: Vec<(u64, u64)> =
        MEMBLOCK.lock().memory.regions().iter().map(|r| (r.base, r.end())).collect();
    // Only a firmware range that will be used stops emulation of its E820
    // range: one the firmware gets wrong must not take the range with it.
    let (fw_usable, _) = nfit::validate(fw_nfit.spa_ranges(), &ram, MAX_PHYSMEM_BITS);
    let described = |start: u64, end: u64| {
        fw_usable.iter().any(|s| s.is_pmem() && s.base < end && start < s.base + s.length)
    };
    let wanted: Vec<(u64, u64)> = e820
        .iter()
        .filter(|e| e.ty.is_persistent() && !described(e.start, e.end))
        .map(|e| (e.start, e.end - e.start))
        .collect();
    let mut all = firmware;
    let mut emulated = None;
    if nopmem && !wanted.is_empty() {
        log::info!(
            "ACPI: nopmem: no NFIT for {} persistent range(s) of the E820 map",
            wanted.len()
        );
    } else if !wanted.is_empty() {
        let bytes = nfit::build_nfit(
            &wanted,
            nfit::TESSERA_OEM_ID,
            *b"TESSERA ",
            1,
            firmware_max_index.saturating_add(1),
        );
        match register(&bytes, phys_offset) {
            Some(entry) => {
                log::info!("ACPI: {entry} (emulated)");
                emulated = Some(entry.addr);
                all.push(entry.bytes.clone());
                if let Some(t) = tables.as_mut() {
                    t.entries.push(entry);
                }
            }
            None => log::error!("ACPI: no memory for the emulated NFIT"),
        }
    }
    let slices: Vec<&[u8]> = all.iter().map(Vec::as_slice).collect();
    let (nfit, errors) = nfit::combine(&slices);
    for e in &errors {
        log::warn!("nfit: {e}");
    }
    problems += errors.len();
    for s in &nfit.structures {
        log::info!("nfit: {s}");
    }
    let (accepted, refused) = nfit::validate(nfit.spa_ranges(), &ram, MAX_PHYSMEM_BITS);
    for e in &refused {
        log::warn!("nfit: {e}");
    }
    problems += refused.len();
    let ranges = accepted
        .iter()
        .filter(|s| s.is_pmem())
        .map(|s: &SpaRange| {
            let origin = if s.index > firmware_max_index {
                let legacy = e820.iter().any(|e| e.ty == E820Type::PRAM && e.start == s.base);
                Described::Emulated { legacy }
            } else {
                Described::Firmware
            };
            PmemRange { start: s.base, size: s.length, spa: s.index, described: origin }
        })
        .collect();
    ACPI.call_once(|| Acpi { tables, nfit, problems, emulated, firmware_max_index, madt });
    ranges
}

/// Chooses the MADT as Linux does (`acpi_apic_instance=N`, 0 when not
/// given: 0 and 1 the first, 2 the second; ignored with a single MADT;
/// with several, Linux's `BIOS bug` warning, and an instance beyond them
/// means none), parses it and prints its entries and problems.
fn find_madt(
    tables: Option<&Tables>,
    instance: Option<u32>,
    problems: &mut usize,
) -> Option<(u64, Madt)> {
    if let Some(n) = instance {
        log::info!("ACPI: Shall use APIC/MADT table {n}");
    }
    let all: Vec<&TableEntry> =
        tables.map(|t| t.find_all(madt::SIGNATURE).collect()).unwrap_or_default();
    let chosen = madt::select_instance(all.len(), instance.unwrap_or(0), &mut |line| {
        log::warn!("ACPI: {line}")
    });
    let parsed = chosen.map(|i| (all[i].addr, madt::parse(&all[i].bytes)));
    let (addr, m) = match parsed {
        Some((addr, Ok((m, errors)))) => {
            for e in &m.entries {
                if e.linux_debug() {
                    log::debug!("ACPI: {e}");
                } else {
                    log::info!("ACPI: {e}");
                }
                if let Some(bits) = e.reserved_flags() {
                    log::info!("ACPI: INT_SRC_OVR unexpected reserved flags: 0x{bits:x}");
                }
            }
            for e in &errors {
                log::warn!("ACPI: {e}");
            }
            *problems += errors.len();
            (addr, m)
        }
        Some((_, Err(e))) => {
            log::warn!("ACPI: {e}");
            *problems += 1;
            log::info!("APIC: ACPI MADT or MP tables are not detected");
            return None;
        }
        None => {
            // Linux's line (apic_intr_mode_select) when neither a MADT nor
            // an MP table is used: Tessera never reads MP tables.
            log::info!("APIC: ACPI MADT or MP tables are not detected");
            return None;
        }
    };
    let lapic = m
        .entries
        .iter()
        .any(|e| matches!(e, madt::Entry::LocalApic { .. } | madt::Entry::LocalX2Apic { .. }));
    if lapic && m.io_apics().next().is_some() {
        log::info!("ACPI: Using ACPI (MADT) for SMP configuration information");
    } else if lapic {
        log::info!("ACPI: Using ACPI for processor (LAPIC) configuration information");
    }
    Some((addr, m))
}

/// The MADT in use, after [`init`].
pub fn madt() -> Option<&'static Madt> {
    get()?.madt.as_ref().map(|(_, m)| m)
}

/// The possible CPUs (boot CPU first) by [`acpi::madt::possible_cpus`]'s
/// rules, its lines printed; only the boot CPU, silently, without a MADT
/// (its absence was said at boot). The caller
/// reads `boot_apic_id` from the boot CPU's own APIC and says whether
/// x2APIC mode is on; at most `max_cpus` are returned.
pub fn possible_cpus(boot_apic_id: u32, x2apic: bool, max_cpus: usize) -> Vec<madt::Cpu> {
    let mut report = |line: core::fmt::Arguments<'_>| log::info!("{line}");
    match madt() {
        Some(m) => madt::possible_cpus(m, boot_apic_id, x2apic, max_cpus, &mut report),
        None => alloc::vec![madt::Cpu {
            apic_id: boot_apic_id,
            acpi_id: 0,
            enabled: true,
            online_capable: false,
        }],
    }
}

/// Places a synthesized table in memory reserved from memblock, where
/// firmware tables would be, and checks it as the walker checks theirs.
fn register(bytes: &[u8], phys_offset: u64) -> Option<TableEntry> {
    let addr = MEMBLOCK.lock().alloc_range(bytes.len() as u64, 16, 0, 1 << 32).ok()?;
    // SAFETY: memblock just reserved these bytes for the table, for good;
    // they are RAM below 4 GiB, mapped at `phys_offset`.
    unsafe {
        core::ptr::copy_nonoverlapping(bytes.as_ptr(), (phys_offset + addr) as *mut u8, bytes.len())
    };
    let mut copy = alloc::vec![0; bytes.len()];
    if !KernelPhys(phys_offset).read(addr, &mut copy) || !sdt::checksum_ok(&copy) {
        return None;
    }
    let header = SdtHeader::parse(&copy).ok();
    Some(TableEntry { addr, header, bytes: copy, problem: None })
}

/// The RSDP's bytes as the firmware left them (20 bytes for revision 0,
/// `Length` for revision 2 and later).
pub fn rsdp_bytes() -> Option<(u64, Vec<u8>)> {
    let (addr, rsdp) = get()?.tables.as_ref()?.rsdp;
    let offset = crate::boot::mappings()?.physical_memory_offset;
    let mut buf = alloc::vec![0u8; rsdp.length as usize];
    KernelPhys(offset).read(addr, &mut buf).then_some((addr, buf))
}

/// Enters S5 (soft-off) the way the FADT and the DSDT's `\_S5_` say, as
/// Linux's `acpi_enter_sleep_state(ACPI_STATE_S5)` does: ACPI mode on (SMI
/// command) if the firmware left it off, then `SLP_TYP` and `SLP_EN` into
/// PM1a (and PM1b). Returns why the machine is still running.
pub fn enter_s5() -> alloc::string::String {
    use acpi::sleep::{Pm1Control, SCI_EN, SleepType, s5_sleep_type};
    use alloc::string::ToString;
    use x86_64::instructions::port::Port;

    let Some(t) = get().and_then(|a| a.tables.as_ref()) else {
        return "no ACPI tables".into();
    };
    let usable = |sig: [u8; 4]| t.find_all(sig).find(|e| e.problem.is_none());
    let Some(pm) = usable(*b"FACP").and_then(|f| Pm1Control::from_fadt(&f.bytes)) else {
        return "no FADT with a PM1a control block".into();
    };
    let typ = match usable(*b"DSDT").map(|d| s5_sleep_type(&d.bytes)) {
        None => return "no DSDT".into(),
        Some(Err(e)) => return e.to_string(),
        Some(Ok(t)) => t,
    };
    log::info!("ACPI: Preparing to enter system sleep state S5");
    x86_64::instructions::interrupts::disable();
    let mut pm1a = Port::<u16>::new(pm.pm1a_cnt);
    // SAFETY: the FADT names `pm1a_cnt` as the PM1a control register; it is
    // only read here.
    let enabled = unsafe { pm1a.read() } & SCI_EN != 0;
    if let Ok(port) = u16::try_from(pm.smi_cmd)
        && !enabled
        && port != 0
        && pm.acpi_enable != 0
    {
        // SAFETY: the FADT names this port as the SMI command port and
        // ACPI_ENABLE as the value that hands the machine to the OS.
        unsafe { Port::<u8>::new(port).write(pm.acpi_enable) };
        // The firmware sets SCI_EN when done; give it ~100 ms worth of reads.
        for _ in 0..100_000 {
            // SAFETY: as above, a read of the PM1a control register.
            if unsafe { pm1a.read() } & SCI_EN != 0 {
                break;
            }
        }
    }
    let blocks = [(pm.pm1a_cnt, typ.a)].into_iter().chain(pm.pm1b_cnt.map(|p| (p, typ.b)));
    for (port, slp_typ) in blocks {
        let mut cnt = Port::<u16>::new(port);
        // SAFETY: the FADT names `port` as a PM1 control register. Writing
        // SLP_TYP, then SLP_TYP with SLP_EN, powers the machine off, which is
        // what the caller asked for.
        unsafe {
            let v = SleepType::control(slp_typ, cnt.read());
            cnt.write(v & !acpi::sleep::SLP_EN);
            cnt.write(v);
        }
    }
    for _ in 0..10_000_000 {
        core::hint::spin_loop();
    }
    "the machine is still running after the S5 write".into()
}

//! The kernel shell: a prompt on serial and the PS/2 keyboard once
//! initialization is done, with commands to look at and change the memory
//! model while it runs. Parsing and line editing are in `tessera-shell`.

use alloc::string::String;
use alloc::vec::Vec;

use mm::e820::{Line, MemRange};
use mm::nd_pfn::{Kind, PfnMode};
use mm::page::{MemMap, PAGE_SHIFT, Pfn, pfn_phys, phys_pfn};
use mm::sparse::{
    PAGES_PER_SUBSECTION, SUBSECTIONS_PER_SECTION, SectionSummary, pfn_to_section_nr,
    section_nr_to_pfn, subsection_map_index,
};
use shell::command::{self, BlockAction, Command, MapArg, NsMode, PfnArg, SectionsArg};
use shell::line::{Edit, LineEditor};

use crate::arch::{keyboard, serial};
use crate::drivers::memory;
use crate::drivers::pmem::{self, State};
use crate::mm::memblock::MEMBLOCK;
use crate::mm::page_alloc::{self, ZONES};
use crate::mm::sparse::SPARSE;
use crate::{print, println};

const PROMPT: &str = options::contract::SHELL_PROMPT;

/// `cpus`: one line per CPU the kernel knows, then the totals.
fn cpus() {
    use crate::arch::{apic, ipi, percpu};
    let online = percpu::online_mask();
    println!(
        "CPU  APIC ID  ACPI ID  state    doing          start-up  IPIs     TLB flushes  stack"
    );
    for c in percpu::all() {
        let state = if online & c.mask() != 0 { "online" } else { "offline" };
        let boot = match c.boot_us.load(core::sync::atomic::Ordering::Relaxed) {
            0 => String::from("boot CPU"),
            us => alloc::format!("{}.{} ms", us / 1000, us % 1000 / 100),
        };
        println!(
            "{:>3}  {:#7x}  {:#7x}  {:<7}  {:<13}  {:>8}  {:<7}  {:<11}  [{:#x}-{:#x}]",
            c.cpu,
            c.apic_id,
            c.acpi_id,
            state,
            c.doing().name(),
            boot,
            c.ipis.load(core::sync::atomic::Ordering::Relaxed),
            c.tlb_flushes.load(core::sync::atomic::Ordering::Relaxed),
            c.stack.0,
            c.stack.1 - 1,
        );
    }
    let mode = match apic::mode() {
        apic::Mode::X2Apic => "x2APIC",
        apic::Mode::XApic => "xAPIC",
    };
    println!(
        "{} of {} CPUs online ({mode}); {} TLB shootdowns sent",
        percpu::num_online(),
        percpu::all().count(),
        ipi::shootdowns()
    );
    if let Some(r) = crate::smp::report() {
        for (n, e) in &r.failed {
            println!("CPU {n} did not start: {e:?}");
        }
    }
}

/// The next byte from serial or the keyboard, if any.
fn try_read() -> Option<u8> {
    serial::try_read().or_else(keyboard::try_read)
}

/// Waits for a key on either input.
fn wait_key() -> u8 {
    loop {
        if let Some(b) = try_read() {
            return b;
        }
        core::hint::spin_loop();
    }
}

/// Runs the shell for ever.
pub fn run() -> ! {
    let mut editor = LineEditor::new(16);
    println!("Tessera shell: type help");
    print!("{PROMPT}");
    loop {
        let Some(byte) = try_read() else {
            core::hint::spin_loop();
            continue;
        };
        match editor.feed(byte) {
            Edit::None => {}
            Edit::Echo(bytes) => print!("{}", String::from_utf8_lossy(&bytes)),
            Edit::Cancel => print!("^C\n{PROMPT}"),
            Edit::Line(line) => {
                println!();
                execute(&line);
                print!("{PROMPT}");
            }
        }
    }
}

/// Parses and runs one command line, printing its answer.
pub fn execute(line: &str) {
    match command::parse(line) {
        Ok(None) => {}
        Ok(Some(cmd)) => run_command(cmd),
        Err(e) => println!("{e}"),
    }
}

fn run_command(cmd: Command) {
    match cmd {
        Command::Help(topic) => match command::help_lines(topic.as_deref()) {
            Ok(lines) => lines.iter().for_each(|l| println!("{l}")),
            Err(e) => println!("{e}"),
        },
        Command::Mem => mem(),
        Command::Sections(arg) => sections(arg),
        Command::Pfn(arg) => pfn(arg),
        Command::Iomem => {
            for l in crate::mm::iomem::tree().lines() {
                println!("{l}");
            }
        }
        Command::Zoneinfo => {
            for l in crate::mm::zone::zoneinfo().lines() {
                println!("{l}");
            }
        }
        Command::Cpus => cpus(),
        Command::Acpi => acpi(),
        Command::Nfit => nfit(),
        Command::AcpiDump(sig) => acpidump(sig.as_deref()),
        Command::Pmem => {
            for r in pmem::regions() {
                println!("{r}");
                for l in namespace_lines(&r) {
                    println!("  {l}");
                }
            }
            if pmem::regions().is_empty() {
                println!("no persistent memory regions");
            }
        }
        Command::PmemRemove { region } => {
            match pmem::remove(region, &mut |nr, l| println!("{l}\n  {}", picture(nr))) {
                Ok(r) => println!("{r}"),
                Err(e) => println!("pmem remove: {e}"),
            }
        }
        Command::PmemAdd { region, step } => {
            let mut each = |nr: u64, l: &str| {
                println!("{l}\n  {}", picture(nr));
                if step {
                    print!("{}", options::contract::STEP_PROMPT);
                    wait_key();
                    println!();
                }
            };
            match pmem::add(region, &mut each) {
                Ok(r) => println!("{r}"),
                Err(e) => println!("pmem add: {e}"),
            }
        }
        Command::PmemMode { region, mode, align, map } => {
            let want = match mode {
                NsMode::Raw => None,
                NsMode::Fsdax | NsMode::Devdax => Some((
                    if mode == NsMode::Fsdax { Kind::Fsdax } else { Kind::Devdax },
                    if map == Some(MapArg::Mem) { PfnMode::Ram } else { PfnMode::Pmem },
                    align.unwrap_or(2 << 20),
                )),
            };
            match pmem::set_mode(region, want, &mut |nr, l| println!("{l}\n  {}", picture(nr))) {
                Ok(r) => {
                    println!("{r}");
                    namespace_lines(&r).iter().for_each(|l| println!("  {l}"));
                }
                Err(e) => println!("pmem mode: {e}"),
            }
        }
        Command::PmemRead { region, offset, len } => match pmem::read(region, offset, len) {
            Ok(bytes) => {
                for (i, row) in bytes.chunks(16).enumerate() {
                    println!("{}", xxd_line(offset + i as u64 * 16, row));
                }
            }
            Err(e) => println!("pmem read: {e}"),
        },
        Command::PmemWrite { region, offset, text } => {
            match pmem::write(region, offset, text.as_bytes()) {
                Ok(()) => println!("pmem write: {} bytes at data offset {offset:#x}", text.len()),
                Err(e) => println!("pmem write: {e}"),
            }
        }
        Command::Memory => {
            println!("block size {} MiB", memory::block_size() >> 20);
            for b in memory::blocks() {
                println!("{b}");
            }
        }
        Command::MemoryProbe { addr } => match memory::probe(addr) {
            Ok(b) => println!("{b}"),
            Err(e) => println!("memory probe: {e}"),
        },
        Command::MemoryState { action, block } => {
            let (name, result) = match action {
                BlockAction::Online => ("online", memory::online(block)),
                BlockAction::Offline => ("offline", memory::offline(block)),
                BlockAction::Remove => ("remove", memory::remove(block)),
            };
            match result {
                Ok(b) if action == BlockAction::Remove => println!("memory{} removed", b.id),
                Ok(b) => println!("{b}"),
                Err(e) => println!("memory {name}: {e}"),
            }
        }
        Command::Bench => bench(),
        Command::Stress { ops } => {
            crate::stress::run_and_print(ops, false);
        }
        Command::Reboot => {
            println!("reboot: Restarting system");
            keyboard::reset_cpu();
            println!("reboot: the keyboard controller did not reset the machine");
        }
        Command::Poweroff => crate::drivers::power::poweroff(),
    }
}

fn mem() {
    if let Some(m) = crate::mm::firmware::maps() {
        println!("BIOS-provided physical RAM map:");
        for e in &m.bios {
            println!("{}", Line("BIOS-e820", e));
        }
        if m.user.userdef {
            println!("user-defined physical RAM map:");
            for e in &m.user.map {
                println!("{}", Line("user", e));
            }
        }
    }
    let mb = MEMBLOCK.lock().clone();
    println!(
        "memblock: memory {:#x} bytes in {} regions, reserved {:#x} bytes in {} regions",
        mb.memory.total(),
        mb.memory.regions().len(),
        mb.reserved.total(),
        mb.reserved.regions().len()
    );
    for z in ZONES {
        println!("zone {:<6} {:>8} free pages", z.name(), page_alloc::nr_free(z));
    }
}

/// The namespace of region `r` as `ndctl list` describes it, then the
/// ranges of its info block, memmap and data.
fn namespace_lines(r: &pmem::Region) -> Vec<String> {
    let (ds, de) = r.data();
    let mut out = Vec::new();
    let mut head = alloc::format!("{}: mode {}", r.namespace(), r.mode());
    match r.layout {
        Some(l) => {
            let u = l.sb.uuid;
            head += &alloc::format!(
                ", map {}, size {}, align {}, uuid {:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}, {}",
                l.mode().map_name(),
                de - ds,
                l.align(),
                u[0],
                u[1],
                u[2],
                u[3],
                u[4],
                u[5],
                u[6],
                u[7],
                u[8],
                u[9],
                u[10],
                u[11],
                u[12],
                u[13],
                u[14],
                u[15],
                r.device()
            );
            if l.kind() == Kind::Fsdax {
                head += &alloc::format!(" (blockdev pmem{})", r.id);
            }
            out.push(head);
            let info = r.start + mm::nd_pfn::INFO_OFFSET;
            out.push(alloc::format!("info block {}", MemRange(info, info + 4096)));
            match (r.has_altmap(), l.memmap_area()) {
                (true, Some((ms, me))) => out.push(alloc::format!("memmap     {}", MemRange(ms, me))),
                (false, Some((ms, me))) => out.push(alloc::format!(
                    "memmap     {} reserved; the memmap is in System RAM (less than whole sections)",
                    MemRange(ms, me)
                )),
                _ => out.push(String::from("memmap     in System RAM (map mem)")),
            }
        }
        None => {
            head += &alloc::format!(", size {}, blockdev pmem{}", de - ds, r.id);
            out.push(head);
            out.push(String::from("memmap     in System RAM (no info block: nothing written)"));
        }
    }
    out.push(alloc::format!("data       {} ({} bytes)", MemRange(ds, de), de - ds));
    out
}

/// One `xxd` line: offset, 16 bytes in hex pairs, their ASCII.
fn xxd_line(offset: u64, row: &[u8]) -> String {
    let mut hex = String::new();
    for (i, b) in row.iter().enumerate() {
        hex += &alloc::format!("{b:02x}");
        if i % 2 == 1 {
            hex.push(' ');
        }
    }
    let ascii: String = row
        .iter()
        .map(|&b| if b.is_ascii_graphic() || b == b' ' { b as char } else { '.' })
        .collect();
    alloc::format!("{offset:08x}: {hex:<40} {ascii}")
}

/// One character per 2 MiB sub-section of section `nr`: `R` System RAM,
/// `P` persistent memory in ZONE_DEVICE, `p` a region not added, `h` an
/// active sub-section only partly RAM (a hole), `.` absent.
pub fn picture(nr: u64) -> String {
    let mb = MEMBLOCK.lock().clone();
    let regions = pmem::regions();
    let map = SPARSE.lock().subsection_map(nr);
    (0..SUBSECTIONS_PER_SECTION)
        .map(|i| {
            let pfn = section_nr_to_pfn(nr) + i * PAGES_PER_SUBSECTION;
            let (start, size) = (pfn_phys(pfn), PAGES_PER_SUBSECTION << PAGE_SHIFT);
            let region = regions.iter().find(|r| r.start <= start && start < r.end());
            let ram =
                mb.memory.regions().iter().any(|r| r.base <= start && start + size <= r.end());
            match (map & (1 << i) != 0, region) {
                (true, Some(_)) => 'P',
                (true, None) if ram => 'R',
                (true, None) => 'h',
                (false, Some(r)) if r.state == State::Offline => 'p',
                _ => '.',
            }
        })
        .collect()
}

fn sections(arg: SectionsArg) {
    if let SectionsArg::One(nr) = arg
        && nr >= mm::sparse::NR_MEM_SECTIONS
    {
        println!(
            "sections: {nr} is beyond the last section ({}, MAX_PHYSMEM_BITS {})",
            mm::sparse::NR_MEM_SECTIONS - 1,
            mm::sparse::MAX_PHYSMEM_BITS
        );
        return;
    }
    // Room first, copies under the lock, text after it: nothing allocates
    // under SPARSE (DESIGN.md §4a).
    let n = SPARSE.lock().present_sections().count();
    let mut lines: Vec<(u64, SectionSummary)> = Vec::with_capacity(n.max(1));
    {
        let s = SPARSE.lock();
        match arg {
            SectionsArg::One(nr) => {
                lines.push((nr, s.section_line(nr)));
            }
            SectionsArg::All | SectionsArg::NotFull => lines.extend(
                s.present_sections()
                    .map(|(nr, _)| (nr, s.section_line(nr)))
                    .filter(|(_, l)| arg == SectionsArg::All || l.subsection_map != u64::MAX)
                    .take(n),
            ),
        }
    }
    for (nr, line) in &lines {
        println!("{line}");
        println!("  {}", picture(*nr));
    }
    if lines.is_empty() {
        println!("every present section is full (sections all: list them)");
    }
    println!("  (R System RAM, P persistent memory added, p not added, h hole, . absent)");
}

fn pfn(arg: PfnArg) {
    let pfn: Pfn = match arg {
        PfnArg::Addr(a) => phys_pfn(a),
        PfnArg::Pfn(p) => Pfn::new(p),
    };
    let nr = pfn_to_section_nr(pfn);
    // A pfn of 2^52 or more has no 64-bit physical address.
    let range = match pfn.as_u64().checked_mul(1 << PAGE_SHIFT) {
        Some(start) => alloc::format!("{}", MemRange(start, start.saturating_add(1 << PAGE_SHIFT))),
        None => "beyond 64-bit physical addresses".into(),
    };
    println!("pfn {pfn:#x} ({range}), section {nr}, sub-section {}", subsection_map_index(pfn));
    let s = SPARSE.lock();
    match s.section(nr) {
        Some(_) => println!("{}", s.section_line(nr)),
        None => println!("section {nr}: no root (absent)"),
    }
    println!("pfn_valid: {}", s.pfn_valid(pfn));
    match s.pfn_to_online_page(pfn) {
        Some(page) => println!("pfn_to_online_page: {page:#x}"),
        None => println!("pfn_to_online_page: NULL"),
    }
    match s.page(pfn) {
        Some(p) => println!(
            "page: zone {} node {} flags {:#x}{}{} refcount {} mapcount {} private {} pgmap {}",
            p.zone(),
            p.nid(),
            p.flags & 0xffff,
            if p.is_reserved() { " reserved" } else { "" },
            if p.is_buddy() { " buddy" } else { "" },
            p.refcount,
            p.mapcount,
            p.private,
            p.pgmap
        ),
        None => println!("page: no descriptor"),
    }
    // A compound page's head, found from the pfn (Linux's dump_page line).
    if let Some(p) = s.page(pfn).filter(|p| p.compound_order() > 0) {
        let head = p.compound_head(pfn);
        let pgmap = s.page(head).map_or(0, |h| h.pgmap);
        let order = p.compound_order();
        if p.is_tail() {
            println!("compound: tail of head pfn {head:#x}, order {order}, pgmap {pgmap}");
        } else {
            println!("compound: head, order {order}, pgmap {pgmap}");
        }
    }
}

fn acpi() {
    match crate::acpi::get().and_then(|a| a.tables.as_ref()) {
        Some(t) => {
            for l in t.lines() {
                println!("ACPI: {l}");
            }
        }
        None => println!("no ACPI tables"),
    }
}

fn acpidump(only: Option<&str>) {
    let Some(t) = crate::acpi::get().and_then(|a| a.tables.as_ref()) else {
        println!("no ACPI tables");
        return;
    };
    let mut shown = 0;
    let rsdp = crate::acpi::rsdp_bytes().filter(|_| only.is_none_or(|s| s == "RSDP"));
    let tables = t.entries.iter().filter(|e| !e.bytes.is_empty()).filter_map(|e| {
        let sig: String = core::str::from_utf8(&e.signature()?).ok()?.into();
        only.is_none_or(|s| s == sig).then(|| (sig, e.addr, e.bytes.clone()))
    });
    for (sig, addr, bytes) in
        rsdp.map(|(a, b)| (String::from("RSDP"), a, b)).into_iter().chain(tables)
    {
        for l in acpi::sdt::dump_lines(&sig, addr, &bytes) {
            println!("{l}");
        }
        shown += 1;
    }
    if shown == 0 {
        println!("acpidump: no table {}", only.unwrap_or("at all"));
    }
}

fn nfit() {
    match crate::acpi::get() {
        Some(a) if !a.nfit.structures.is_empty() => {
            for s in &a.nfit.structures {
                println!("nfit: {s}");
            }
        }
        _ => println!("no NFIT"),
    }
}

fn bench() {
    let (ready, handoff) = page_alloc::ready_us();
    println!("allocator ready {} us after entry (hand-over {handoff} us)", ready);
    println!("sparse init {} us", crate::mm::sparse::init_us());
    let c = crate::mm::sparse::pfn_valid_cost(100_000);
    println!(
        "pfn_valid: {} ns per call over {} random pfns ({} valid)",
        c.ns_per_call(),
        c.calls,
        c.valid
    );
}

//! The kernel shell: a prompt on serial and the PS/2 keyboard once
//! initialization is done, with commands to look at and change the memory
//! model while it runs. Parsing and line editing are in `tessera-shell`.

use alloc::string::String;
use alloc::vec::Vec;

use mm::e820::{Line, MemRange};
use mm::nd_pfn::{Kind, PfnMode};
use mm::page::{MemMap, PAGE_SHIFT, Pfn, pfn_phys, phys_pfn};
use mm::sparse::{
    PAGES_PER_SUBSECTION, SUBSECTIONS_PER_SECTION, SectionSummary, UsageSnapshot,
    pfn_to_section_nr, section_nr_to_pfn, subsection_map_index,
};
use shell::command::{self, BlockAction, Command, Listing, MapArg, NsMode, PfnArg, SectionsArg};
use shell::line::{Edit, LineEditor};

use crate::arch::{keyboard, serial};
use crate::drivers::memory;
use crate::drivers::pmem::{self, State};
use crate::mm::memblock::MEMBLOCK;
use crate::mm::migrate::workload;
use crate::mm::page_alloc::{self, ZONES};
use crate::mm::sparse::SPARSE;
use crate::{print, println};

const PROMPT: &str = options::contract::SHELL_PROMPT;

/// `cpus`: one line per CPU the kernel knows, then the totals (or all of
/// it as one line of JSON).
fn cpus(json: bool) {
    use crate::arch::{apic, ipi, percpu};
    use core::sync::atomic::Ordering::Relaxed;
    let online = percpu::online_mask();
    let rows = percpu::all().map(|c| shell::cpus::CpuRow {
        cpu: c.cpu,
        apic_id: c.apic_id,
        acpi_id: c.acpi_id,
        online: online & c.mask() != 0,
        doing: c.doing().name(),
        boot_us: c.boot_us.load(Relaxed),
        ipis: c.ipis.load(Relaxed),
        tlb_flushes: c.tlb_flushes.load(Relaxed),
        stack: c.stack,
    });
    let failed = crate::smp::report().map(|r| &r.failed[..]).unwrap_or_default();
    let cpus = shell::cpus::Cpus {
        rows: rows.collect(),
        apic_mode: match apic::mode() {
            apic::Mode::X2Apic => "x2APIC",
            apic::Mode::XApic => "xAPIC",
        },
        shootdowns: ipi::shootdowns(),
        failed: failed.iter().map(|(n, e)| (*n, alloc::format!("{e:?}"))).collect(),
    };
    if json {
        println!("{}", cpus.json());
    } else {
        cpus.lines().iter().for_each(|l| println!("{l}"));
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
    crate::mosaic::start();
    println!("Tessera shell: type help");
    print!("{PROMPT}");
    loop {
        let Some(byte) = try_read() else {
            crate::drivers::acpi_events::poll();
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
        Command::Sections(arg) => listing(Listing::Sections(arg), false),
        Command::Pfn(arg) => pfn(arg),
        Command::Iomem => listing(Listing::Iomem, false),
        Command::Zoneinfo => listing(Listing::Zoneinfo, false),
        Command::Cpus => listing(Listing::Cpus, false),
        Command::Acpi => acpi(),
        Command::AcpiEvents => acpi_events(),
        Command::AcpiEval { path, args } => acpi_eval(&path, &args),
        Command::AcpiNotify { path, value } => {
            crate::drivers::acpi_events::notify(&path, value);
        }
        Command::Nfit => listing(Listing::Nfit, false),
        Command::AcpiDump(sig) => acpidump(sig.as_deref()),
        Command::Pmem => listing(Listing::Pmem, false),
        Command::Json(l) => listing(l, true),
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
                    r.namespace_lines().iter().for_each(|l| println!("  {l}"));
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
        Command::Memory => listing(Listing::Memory, false),
        Command::MemoryProbe { addr } => match memory::probe(addr) {
            Ok(b) => println!("{b}"),
            Err(e) => println!("memory probe: {e}"),
        },
        Command::MemoryState { action, block } => {
            let (name, result) = match action {
                BlockAction::Online => ("online", memory::online(block)),
                BlockAction::OnlineKernel => {
                    ("online_kernel", memory::online_type(block, memory::OnlineType::OnlineKernel))
                }
                BlockAction::OnlineMovable => (
                    "online_movable",
                    memory::online_type(block, memory::OnlineType::OnlineMovable),
                ),
                BlockAction::Offline => ("offline", memory::offline(block)),
                BlockAction::Remove => ("remove", memory::remove(block)),
            };
            match result {
                Ok(b) if action == BlockAction::Remove => println!("memory{} removed", b.id),
                Ok(b) => println!("{b}"),
                Err(e) => println!("memory {name}: {e}"),
            }
        }
        Command::MemoryFill { block, pages } => match memory::block(block) {
            None => println!("memory fill: ENODEV: no memory{block}"),
            Some(b) if b.state != memory::BlockState::Online => {
                println!("memory fill: EINVAL: memory{block} is offline")
            }
            Some(b) => {
                let (s, e) = b.pfns();
                match workload::fill(s, e, pages) {
                    Ok(total) => println!(
                        "memory fill: {pages} movable pages in memory{block} (workload: {total} pages)"
                    ),
                    Err(workload::FillError::NoMemory { placed }) => println!(
                        "memory fill: ENOMEM: only {placed} of {pages} pages placed in memory{block}"
                    ),
                }
            }
        },
        Command::MemoryPin { block } => match memory::block(block) {
            None => println!("memory pin: ENODEV: no memory{block}"),
            Some(b) => match workload::pin(b.pfns().0, b.pfns().1) {
                Some(pfn) => println!("memory pin: pfn {pfn:#x} in memory{block} pinned"),
                None => println!("memory pin: ENOENT: no unpinned workload page in memory{block}"),
            },
        },
        Command::MemoryUnpin => println!("memory unpin: {} pages unpinned", workload::unpin()),
        Command::MemoryCheck => {
            let c = workload::check();
            let verdict = if c.bad == 0 { "ok" } else { "MISMATCH" };
            let mut where_ = String::new();
            for b in memory::blocks() {
                let (s, e) = b.pfns();
                let n = workload::count_in(s, e);
                if n > 0 {
                    where_ += &alloc::format!(" memory{}:{n}", b.id);
                }
            }
            println!(
                "memory check: {} pages ({} pinned), checksum {:#018x}, expected {:#018x}: {verdict}{}",
                c.pages,
                c.pinned,
                c.got,
                c.want,
                if where_.is_empty() { String::new() } else { alloc::format!(";{where_}") }
            );
        }
        Command::MemoryRelease => println!("memory release: {} pages freed", workload::release()),
        Command::Mosaic(arg) => match crate::mosaic::command(arg) {
            Ok(status) => println!("{status}"),
            Err(e) => println!("mosaic: {e}"),
        },
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

/// A listing's answer: its text, or (`json`) one line of JSON built from
/// the same data.
fn listing(l: Listing, json: bool) {
    match l {
        Listing::Sections(arg) => sections(arg, json),
        Listing::Cpus => cpus(json),
        Listing::Iomem => {
            let tree = crate::mm::iomem::tree();
            if json {
                println!("{}", tree.json());
            } else {
                tree.lines().for_each(|l| println!("{l}"));
            }
        }
        Listing::Zoneinfo => {
            let (zones, free, managed) = crate::mm::zone::snapshot();
            if json {
                println!("{}", mm::zone::zoneinfo_json(&zones, free, managed));
            } else {
                mm::zone::zoneinfo(&zones, free, managed).lines().for_each(|l| println!("{l}"));
            }
        }
        Listing::Nfit => {
            let nfit = crate::acpi::get().map(|a| &a.nfit);
            match nfit {
                _ if json => println!("{}", nfit.cloned().unwrap_or_default().json()),
                Some(n) if !n.structures.is_empty() => {
                    n.structures.iter().for_each(|s| println!("nfit: {s}"));
                }
                _ => println!("no NFIT"),
            }
        }
        Listing::Pmem => {
            let regions = pmem::regions();
            if json {
                let cap = crate::acpi::get().map_or(0, |a| a.nfit.platform_cap());
                println!("{}", mm::pmem::pmem_json(&regions, cap));
                return;
            }
            for r in &regions {
                println!("{r}");
                r.namespace_lines().iter().for_each(|l| println!("  {l}"));
            }
            if regions.is_empty() {
                println!("no persistent memory regions");
            }
        }
        Listing::Memory => {
            let size = memory::block_size();
            let blocks: Vec<_> = memory::blocks().iter().map(|b| (b.0, b.valid_zones())).collect();
            if json {
                println!("{}", mm::memory_hotplug::memory_json(size, &blocks));
                return;
            }
            println!("block size {} MiB", size >> 20);
            for (b, valid_zones) in &blocks {
                println!("{}", mm::memory_hotplug::BlockLine(b, *valid_zones));
            }
        }
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

/// What the pictures' characters mean ([`picture`]).
const PICTURE_LEGEND: [(char, &str); 5] = [
    ('R', "System RAM"),
    ('P', "persistent memory added"),
    ('p', "not added"),
    ('h', "hole"),
    ('.', "absent"),
];

fn sections(arg: SectionsArg, json: bool) {
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
    let mut lines: Vec<(u64, SectionSummary, Option<UsageSnapshot>)> = Vec::with_capacity(n.max(1));
    {
        let s = SPARSE.lock();
        let line = |nr| (nr, s.section_line(nr), s.usage_snapshot(nr));
        match arg {
            SectionsArg::One(nr) => {
                lines.push(line(nr));
            }
            SectionsArg::All | SectionsArg::NotFull => lines.extend(
                s.present_sections()
                    .map(|(nr, _)| line(nr))
                    .filter(|(_, l, _)| arg == SectionsArg::All || l.subsection_map != u64::MAX)
                    .take(n),
            ),
        }
    }
    if json {
        let out = ::json::object(|o| {
            o.array("sections", |a| {
                for (nr, line, usage) in &lines {
                    a.object(|o| line.write_json(o, usage.as_ref(), &picture(*nr)));
                }
            });
            o.object("legend", |o| {
                for (c, meaning) in PICTURE_LEGEND {
                    o.field(c.encode_utf8(&mut [0; 4]), meaning);
                }
            });
        });
        println!("{out}");
        return;
    }
    for (nr, line, _) in &lines {
        println!("{line}");
        println!("  {}", picture(*nr));
    }
    if lines.is_empty() {
        println!("every present section is full (sections all: list them)");
    }
    let legend: Vec<String> =
        PICTURE_LEGEND.iter().map(|(c, m)| alloc::format!("{c} {m}")).collect();
    println!("  ({})", legend.join(", "));
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

fn acpi_events() {
    use crate::drivers::{acpi_events, acpi_memhotplug};
    println!("{}", acpi_events::summary());
    for d in acpi_memhotplug::dimms() {
        println!("acpi: DIMM {}", acpi_memhotplug::describe(&d));
    }
}

fn acpi_eval(path: &str, args: &[u64]) {
    use crate::drivers::acpi_events;
    let args = args.iter().map(|&v| acpi_events::int(v)).collect();
    match acpi_events::evaluate(path, args) {
        Ok(v) => match v.as_buffer() {
            Ok(b) => println!("{path} = Buffer({}) {b:02x?}", b.len()),
            Err(_) => println!("{path} = {}", *v),
        },
        Err(e) => println!("acpi eval: {e}"),
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

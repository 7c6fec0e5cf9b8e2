//! `make linux-diff`: Tessera and Debian's Linux on the same QEMU machine
//! with the same options, their memory views side by side.
//!
//! Both kernels boot with the same `-m`, QEMU arguments and options. Linux
//! runs a script that prints its kernel log, `/proc/iomem`,
//! `/proc/zoneinfo`, its memory blocks and its nd devices; Tessera's shell
//! is driven over serial (`iomem`, `zoneinfo`, `memory`, `pmem`). Each
//! kernel's output is reduced to the same views (firmware map, user map,
//! iomem, zones, memory blocks, persistent memory in use), compared line by
//! line, and every difference is either on the short list of intended
//! ones ([`INTENDED`], with the reason) or makes the comparison fail.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use options::contract::SHELL_PROMPT;

use crate::cli::Flags;
use crate::machine::{self, Machine, Step};
use crate::progress::Progress;
use crate::{cargo, linux, plan, profile, report};

/// What Linux prints for the comparison, each part after a `== part NAME`
/// line: the kernel log, `/proc/iomem`, `/proc/zoneinfo`, memory blocks
/// (`memoryN state valid_zones phys_index`) and nd regions and namespaces.
pub const LINUX_SCRIPT: &str = r#"echo '== part dmesg'
dmesg
echo '== part iomem'
cat /proc/iomem
echo '== part zoneinfo'
cat /proc/zoneinfo
echo '== part memory'
for b in /sys/devices/system/memory/memory*; do
    [ -d "$b" ] || continue
    echo "${b##*/} $(cat $b/state) $(cat $b/valid_zones 2>/dev/null) $(cat $b/phys_index)"
done
echo '== part nd'
for d in /sys/bus/nd/devices/*; do
    [ -e "$d" ] || continue
    n=${d##*/}
    drv=$(readlink $d/driver 2>/dev/null)
    line="$n driver=${drv##*/}"
    for a in size resource mode align; do
        [ -r $d/$a ] && line="$line $a=$(cat $d/$a 2>/dev/null)"
    done
    echo "$line"
done
echo '== part end'
"#;

/// Tessera's shell commands, in the order their answers are read.
const TESSERA_COMMANDS: [&str; 4] = ["iomem", "zoneinfo", "memory", "pmem"];

/// The differences that are Tessera's by design, each with its reason.
/// A difference not matched here fails the comparison.
pub const INTENDED: &[(&str, &str)] = &[
    (
        "managed",
        "zoneinfo `managed` counts what each kernel left to its page allocator after its own \
         image, page tables and boot allocations; the kernels differ in size",
    ),
    (
        "unusable-pmem",
        "Linux registers an nd region and namespace for a persistent range it cannot map (not \
         2 MiB aligned, or over firmware memory) and fails the namespace's probe; Tessera \
         refuses such a range at its NFIT with a warning. Neither puts it to use",
    ),
    (
        "kernel-image",
        "Linux makes RAM again whatever part of the map covers its own image (\
         `.text .data .bss are not marked as E820_TYPE_RAM!`, e820_add_kernel_range); the \
         kernels lie at different addresses (Linux under OVMF at 0x1600000), so an option \
         over one kernel's image differs there",
    ),
    (
        "raw-nvdimm-pages",
        "Tessera gives a raw NVDIMM namespace struct pages in ZONE_DEVICE (memmap in RAM) so \
         that every persistent range is hot-added sub-section by sub-section; Linux maps a raw \
         NFIT namespace without struct pages (no ND_REGION_PAGEMAP), so its Device zone does \
         not grow",
    ),
];

/// One side's output reduced to the compared views.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Views {
    /// `BIOS-e820: [mem ...] type`.
    pub firmware: Vec<String>,
    /// `user: [mem ...] type` (empty without memory options).
    pub user: Vec<String>,
    /// The zone and node lines of `free_area_init` and x86's memory block
    /// size line, as printed at boot.
    pub boot_lines: Vec<String>,
    /// `/proc/iomem` lines named System RAM, Reserved or Persistent Memory.
    pub iomem: Vec<String>,
    /// `zone NAME start_pfn N spanned N present N`, one per zone.
    pub zones: Vec<String>,
    /// `zone NAME managed N`.
    pub managed: Vec<String>,
    /// `memoryN state valid_zones`.
    pub blocks: Vec<String>,
    /// `[mem ...] MODE`: the persistent ranges in use (Linux: a namespace,
    /// pfn or dax device bound to a driver; Tessera: an added region).
    pub pmem: Vec<String>,
    /// `[mem ...]`: the persistent ranges known but not in use.
    pub pmem_unused: Vec<String>,
    /// Memory bring-up in milliseconds, and how it was measured.
    pub bringup: Option<(f64, String)>,
    /// Tessera added a firmware (NFIT) namespace in raw mode, with struct
    /// pages in ZONE_DEVICE.
    pub raw_nfit_pages: bool,
    /// Linux found its own image over memory the options took from RAM
    /// and made it RAM again (`e820_add_kernel_range`): `[start, end]`.
    pub kernel_readded: Option<(u64, u64)>,
}

/// Drops a `[ 12.345678] ` timestamp.
pub(crate) fn untimed(line: &str) -> &str {
    match line.strip_prefix('[').and_then(|r| r.split_once("] ")) {
        Some((t, rest)) if t.trim().parse::<f64>().is_ok() => rest,
        _ => line,
    }
}

/// The timestamp of a `[ 12.345678] ...` line, in seconds.
fn stamp(line: &str) -> Option<f64> {
    line.strip_prefix('[')?.split_once(']')?.0.trim().parse().ok()
}

/// The lines of a serial log after `from` up to the next line starting
/// with `until`.
pub(crate) fn part<'a>(log: &'a str, from: &str, until: &str) -> Vec<&'a str> {
    log.lines()
        .skip_while(|l| l.trim_end() != from)
        .skip(1)
        .take_while(|l| !l.starts_with(until))
        .collect()
}

/// Whether a boot log line (timestamp dropped) is one of Linux's memory
/// set-up lines that both kernels print.
fn is_zone_boot_line(l: &str) -> bool {
    const STARTS: [&str; 12] = [
        "Zone ranges:",
        "  DMA ",
        "  DMA32 ",
        "  Normal ",
        "  Device ",
        "Movable zone start for each node",
        "Early memory node ranges",
        "  node   0: [mem ",
        "Initmem setup node 0 ",
        "On node 0, zone ",
        "x86/mm: Memory block size: ",
        "  Movable ",
    ];
    STARTS.iter().any(|p| l.starts_with(p))
}

/// `/proc/iomem` lines whose name is a memory type, indented by how many
/// such lines contain them (Linux nests a range above RAM under its `PCI
/// Bus` window, which Tessera does not model).
pub(crate) fn iomem_lines<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<String> {
    const NAMES: [&str; 5] = [
        "System RAM",
        "Reserved",
        "Persistent Memory",
        "Persistent Memory (legacy)",
        "Soft Reserved",
    ];
    // Whether each open ancestor (by indentation level) is kept.
    let mut open: Vec<bool> = Vec::new();
    let mut out = Vec::new();
    for l in lines {
        let Some((range, name)) = l.split_once(" : ") else { continue };
        let level = (range.len() - range.trim_start().len()) / 2;
        open.truncate(level);
        let keep = NAMES.contains(&name.trim());
        if keep {
            let depth = open.iter().filter(|k| **k).count();
            out.push(format!("{:w$}{} : {}", "", range.trim(), name.trim(), w = depth * 2));
        }
        open.push(keep);
    }
    out
}

/// `/proc/zoneinfo` reduced to the fields both kernels have.
pub(crate) fn zone_lines<'a>(lines: impl Iterator<Item = &'a str>) -> (Vec<String>, Vec<String>) {
    let (mut zones, mut managed) = (Vec::new(), Vec::new());
    let mut cur: Option<(String, [Option<u64>; 4])> = None;
    let mut flush = |cur: &mut Option<(String, [Option<u64>; 4])>| {
        if let Some((name, [start, spanned, present, man])) = cur.take() {
            let num = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
            zones.push(format!(
                "zone {name:7} start_pfn {:>8} spanned {:>8} present {:>8}",
                num(start),
                num(spanned),
                num(present)
            ));
            managed.push(format!("zone {name:7} managed {:>8}", num(man)));
        }
    };
    for l in lines {
        let t = l.trim();
        if let Some(rest) = t.strip_prefix("Node 0, zone") {
            flush(&mut cur);
            cur = Some((rest.trim().to_string(), [None; 4]));
            continue;
        }
        let Some((_, f)) = cur.as_mut() else { continue };
        let mut words = t.split_whitespace();
        let (Some(key), Some(v)) = (words.next(), words.next()) else { continue };
        let Ok(v) = v.parse::<u64>() else { continue };
        match key {
            "start_pfn:" => f[0] = Some(v),
            "spanned" => f[1] = Some(v),
            "present" => f[2] = Some(v),
            "managed" => f[3] = Some(v),
            _ => {}
        }
    }
    flush(&mut cur);
    (zones, managed)
}

/// Zone names as sysfs spells them.
const ZONE_NAMES: [&str; 6] = ["DMA", "DMA32", "Normal", "Movable", "Device", "none"];

/// `memoryN state zones...` lines, numerically sorted. Tessera's `memory`
/// lines carry more (the range, `(boot)`); only the block number, the
/// state and the zone names count.
pub(crate) fn block_lines<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<(u64, String)> = lines
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let id: u64 = w.next()?.strip_prefix("memory")?.parse().ok()?;
            let state = w.next()?;
            if !matches!(state, "online" | "offline" | "going-offline") {
                return None;
            }
            let zones: Vec<&str> = w.filter(|z| ZONE_NAMES.contains(z)).collect();
            Some((id, format!("memory{id} {state} {}", zones.join(" "))))
        })
        .collect();
    out.sort();
    out.into_iter().map(|(_, s)| s).collect()
}

/// `[mem 0x...-0x...]` for a start and a size.
fn mem_range(start: u64, size: u64) -> String {
    format!("[mem {start:#018x}-{:#018x}]", start + size - 1)
}

fn hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).ok()
}

/// Linux's nd devices: for each region, whether a namespace, pfn or dax
/// device of it is bound to a driver, and as what.
fn linux_pmem(lines: &[&str]) -> (Vec<String>, Vec<String>) {
    let attr =
        |l: &str, k: &str| l.split_whitespace().find_map(|w| w.strip_prefix(k).map(str::to_string));
    let (mut used, mut unused) = (Vec::new(), Vec::new());
    for l in lines.iter().filter(|l| l.starts_with("region")) {
        let name = l.split_whitespace().next().unwrap_or("");
        let n = name.trim_start_matches("region");
        let (Some(start), Some(size)) = (
            attr(l, "resource=").and_then(|v| hex(&v)),
            attr(l, "size=").and_then(|v| v.parse::<u64>().ok()),
        ) else {
            continue;
        };
        let bound = |prefix: &str| {
            lines.iter().any(|d| {
                d.starts_with(&format!("{prefix}{n}."))
                    && attr(d, "driver=").is_some_and(|v| !v.is_empty())
            })
        };
        let mode = if bound("pfn") {
            Some("fsdax")
        } else if bound("dax") {
            Some("devdax")
        } else if bound("namespace") {
            Some("raw")
        } else {
            None
        };
        match mode {
            Some(m) => used.push(format!("{} {m}", mem_range(start, size))),
            None => unused.push(mem_range(start, size)),
        }
    }
    used.sort();
    unused.sort();
    (used, unused)
}

/// Tessera's `pmem` listing: `regionN: [mem A-B] ... MODE added|offline`.
fn tessera_pmem(lines: &[&str]) -> (Vec<String>, Vec<String>) {
    let (mut used, mut unused) = (Vec::new(), Vec::new());
    for l in lines.iter().filter(|l| l.starts_with("region")) {
        let Some(range) = l.split_once("[mem ").and_then(|(_, r)| r.split_once(']')) else {
            continue;
        };
        let range = format!("[mem {}]", range.0);
        let words: Vec<&str> =
            l.trim_end().trim_end_matches(", altmap").split_whitespace().collect();
        match words.as_slice() {
            [.., mode, "added"] => used.push(format!("{range} {mode}")),
            _ => unused.push(range),
        }
    }
    used.sort();
    unused.sort();
    (used, unused)
}

/// The views both kernels print in their boot log, timestamps dropped:
/// the firmware map (`BIOS-e820:`), the user map (`user:`) and the zone
/// boot lines.
fn boot_log_views<'a>(
    log: impl Iterator<Item = &'a str>,
) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (mut firmware, mut user, mut zone) = (Vec::new(), Vec::new(), Vec::new());
    for l in log.map(|l| untimed(l).trim_end()) {
        let to = if l.starts_with("BIOS-e820: ") {
            &mut firmware
        } else if l.starts_with("user: ") {
            &mut user
        } else if is_zone_boot_line(l) {
            &mut zone
        } else {
            continue;
        };
        to.push(l.to_string());
    }
    (firmware, user, zone)
}

/// Reduces Linux's serial output (see [`LINUX_SCRIPT`]).
pub fn linux_views(out: &str) -> Views {
    let dmesg: Vec<&str> = part(out, "== part dmesg", "== part ").into_iter().collect();
    let (zones, managed) = zone_lines(part(out, "== part zoneinfo", "== part ").into_iter());
    let nd = part(out, "== part nd", "== part ");
    let (pmem, pmem_unused) = linux_pmem(&nd);
    // From `Zone ranges:` (memblock done, zones sized) to `Memory:` (all
    // early memory freed to the buddy allocator), plus the deferred
    // struct-page initialisation that finishes the job later.
    let at = |p: &str| dmesg.iter().find(|l| untimed(l).starts_with(p)).and_then(|l| stamp(l));
    let deferred = dmesg.iter().find_map(|l| {
        let rest = untimed(l).strip_prefix("node 0 deferred pages initialised in ")?;
        rest.trim_end_matches("ms").trim().parse::<f64>().ok()
    });
    let kernel_readded = dmesg
        .iter()
        .map(|l| untimed(l))
        .skip_while(|l| !l.starts_with(".text .data .bss are not marked as E820_TYPE_RAM!"))
        .find_map(|l| l.strip_prefix("e820: remove [mem "))
        .and_then(|r| r.split_once(']'))
        .and_then(|(r, _)| r.split_once('-'))
        .and_then(|(a, b)| Some((hex(a)?, hex(b)?)));
    let bringup = match (at("Zone ranges:"), at("Memory:")) {
        // Before its clock runs (early TSC calibration can fail on a busy
        // host) Linux stamps every line 0.
        (Some(a), Some(b)) if b > 0.0 => Some((
            (b - a) * 1000.0 + deferred.unwrap_or(0.0),
            format!(
                "`Zone ranges:` to `Memory:` {:.1} ms + deferred pages {} ms",
                (b - a) * 1000.0,
                deferred.map_or("-".into(), |d| d.to_string())
            ),
        )),
        _ => None,
    };
    let (firmware, user, boot_lines) = boot_log_views(dmesg.iter().copied());
    Views {
        firmware,
        user,
        boot_lines,
        iomem: iomem_lines(part(out, "== part iomem", "== part ").into_iter()),
        zones,
        managed,
        blocks: block_lines(part(out, "== part memory", "== part ").into_iter()),
        pmem,
        pmem_unused,
        bringup,
        raw_nfit_pages: false,
        kernel_readded,
    }
}

/// Reduces Tessera's serial log: the boot log, then the answers to
/// [`TESSERA_COMMANDS`] between shell prompts.
pub fn tessera_views(log: &str) -> Views {
    let mut answers = log.split(SHELL_PROMPT);
    let boot = answers.next().unwrap_or("");
    let answer: Vec<Vec<&str>> = answers.map(|a| a.lines().skip(1).collect()).collect();
    let get = |i: usize| answer.get(i).cloned().unwrap_or_default();
    let (zones, managed) = zone_lines(get(1).into_iter());
    let (pmem, pmem_unused) = tessera_pmem(&get(3));
    let raw_nfit_pages = get(3).iter().any(|l| {
        l.starts_with("region") && l.contains("(firmware NFIT") && l.ends_with("raw added")
    });
    // From the first memblock line (the map is read) to `Memory:` (the
    // memory below the deferred sections in the buddy allocator), plus
    // Tessera's deferred struct-page init, printed as Linux prints it.
    let at = |p: &str| boot.lines().find(|l| untimed(l).starts_with(p)).and_then(stamp);
    let deferred = boot.lines().find_map(|l| {
        let rest = untimed(l).strip_prefix("node 0 deferred pages initialised in ")?;
        rest.trim_end_matches("ms").trim().parse::<f64>().ok()
    });
    let bringup = match (at("memblock: "), at("Memory: ")) {
        (Some(a), Some(b)) => Some((
            (b - a) * 1000.0 + deferred.unwrap_or(0.0),
            format!(
                "`memblock:` to `Memory:` {:.1} ms + deferred pages {} ms",
                (b - a) * 1000.0,
                deferred.map_or("-".into(), |d| d.to_string())
            ),
        )),
        _ => None,
    };
    let (firmware, user, boot_lines) = boot_log_views(boot.lines());
    Views {
        firmware,
        user,
        boot_lines,
        iomem: iomem_lines(get(0).into_iter()),
        zones,
        managed,
        blocks: block_lines(get(2).into_iter()),
        pmem,
        pmem_unused,
        bringup,
        raw_nfit_pages,
        kernel_readded: None,
    }
}

/// One line of a compared view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Row {
    Same(String),
    /// Only Linux has it; the intended difference, if one explains it.
    Linux(String, Option<&'static str>),
    Tessera(String, Option<&'static str>),
}

impl Row {
    /// On one side only, and no intended difference explains it.
    pub fn unexplained(&self) -> bool {
        matches!(self, Row::Linux(_, None) | Row::Tessera(_, None))
    }
}

/// A longest-common-subsequence diff of two line lists.
pub(crate) fn diff(linux: &[String], tessera: &[String]) -> Vec<Row> {
    let (n, m) = (linux.len(), tessera.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if linux[i] == tessera[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut rows) = (0, 0, Vec::new());
    while i < n || j < m {
        if i < n && j < m && linux[i] == tessera[j] {
            rows.push(Row::Same(linux[i].clone()));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            rows.push(Row::Tessera(tessera[j].clone(), None));
            j += 1;
        } else {
            rows.push(Row::Linux(linux[i].clone(), None));
            i += 1;
        }
    }
    rows
}

/// One compared view.
pub struct Section {
    pub name: &'static str,
    pub rows: Vec<Row>,
}

impl Section {
    /// Lines on one side only that no intended difference explains.
    pub fn unexplained(&self) -> usize {
        self.rows.iter().filter(|r| r.unexplained()).count()
    }

    /// `== {prefix}{name} (N of M lines agree)`, then each row: `= line`
    /// (both), `- linux line`, `+ tessera line`, with the intended
    /// difference that explains it.
    pub fn write_report(&self, s: &mut String, prefix: &str) {
        let same = self.rows.iter().filter(|r| matches!(r, Row::Same(_))).count();
        let _ = writeln!(s, "== {prefix}{} ({same} of {} lines agree)", self.name, self.rows.len());
        for r in &self.rows {
            let _ = match r {
                Row::Same(l) => writeln!(s, "  = {l}"),
                Row::Linux(l, why) => writeln!(s, "  - linux   {l}{}", tag(*why)),
                Row::Tessera(l, why) => writeln!(s, "  + tessera {l}{}", tag(*why)),
            };
        }
    }
}

/// The whole comparison.
pub struct Comparison {
    pub sections: Vec<Section>,
    pub bringup: [Option<(f64, String)>; 2],
}

impl Comparison {
    /// Differences no intended one explains.
    pub fn unexplained(&self) -> usize {
        self.sections.iter().map(Section::unexplained).sum()
    }

    /// The report: each view with `=` (same), `-` (Linux only), `+`
    /// (Tessera only) and the intended difference that explains a line.
    pub fn report(&self) -> String {
        let mut s = String::new();
        for sec in &self.sections {
            sec.write_report(&mut s, "");
        }
        let _ = writeln!(s, "== memory bring-up");
        for (who, b) in ["linux", "tessera"].iter().zip(&self.bringup) {
            let _ = match b {
                Some((ms, how)) => writeln!(s, "  {who:8} {ms:8.1} ms ({how})"),
                None => writeln!(s, "  {who:8} not found in the log"),
            };
        }
        s
    }
}

pub(crate) fn tag(why: Option<&str>) -> String {
    why.map_or(String::new(), |w| format!("   [intended: {w}]"))
}

/// The first `A-B` or `[mem A-B]` range of a row, inclusive.
fn row_range(line: &str) -> Option<(u64, u64)> {
    let l = line.trim_start();
    let l = l.split_once("[mem ").map_or(l, |(_, r)| r);
    let (a, rest) = l.split_once('-')?;
    let rest = rest.trim_start_matches("0x");
    let b: String = rest.chars().take_while(char::is_ascii_hexdigit).collect();
    Some((hex(a)?, hex(&b)?))
}

/// Whether a zone (by its zoneinfo row) can hold `[a, b]`.
fn zone_meets(line: &str, (a, _): (u64, u64)) -> bool {
    let zone = line.split_whitespace().nth(1).unwrap_or("");
    match zone {
        "DMA" => a < 16 << 20,
        "DMA32" => a < 1 << 32,
        "Normal" => true,
        _ => false,
    }
}

/// Marks the rows an intended difference explains.
fn explain(name: &str, rows: &mut [Row], raw_nfit_pages: bool, kernel: Option<(u64, u64)>) {
    for r in rows.iter_mut() {
        let (line, why) = match r {
            Row::Same(_) => continue,
            Row::Linux(l, w) | Row::Tessera(l, w) => (l, w),
        };
        let over_kernel =
            kernel.is_some_and(|(ka, kb)| row_range(line).is_some_and(|(a, b)| a <= kb && ka <= b));
        *why = match name {
            "zoneinfo managed" => Some("managed"),
            "iomem" | "persistent memory in use" | "persistent memory not in use"
                if over_kernel =>
            {
                Some("kernel-image")
            }
            "persistent memory not in use" => Some("unusable-pmem"),
            "zoneinfo" if kernel.is_some_and(|k| zone_meets(line, k)) => Some("kernel-image"),
            // Its node ranges and hole counts follow the RAM it re-added.
            "zone boot lines" if kernel.is_some() && (over_kernel || row_range(line).is_none()) => {
                Some("kernel-image")
            }
            "zoneinfo" if raw_nfit_pages && line.starts_with("zone Device ") => {
                Some("raw-nvdimm-pages")
            }
            _ => None,
        };
    }
}

/// Compares the two kernels' views.
pub fn compare(linux: &Views, tessera: &Views) -> Comparison {
    let views: [(&'static str, &Vec<String>, &Vec<String>); 9] = [
        ("firmware map", &linux.firmware, &tessera.firmware),
        ("user map", &linux.user, &tessera.user),
        ("zone boot lines", &linux.boot_lines, &tessera.boot_lines),
        ("iomem", &linux.iomem, &tessera.iomem),
        ("zoneinfo", &linux.zones, &tessera.zones),
        ("zoneinfo managed", &linux.managed, &tessera.managed),
        ("memory blocks", &linux.blocks, &tessera.blocks),
        ("persistent memory in use", &linux.pmem, &tessera.pmem),
        ("persistent memory not in use", &linux.pmem_unused, &tessera.pmem_unused),
    ];
    let sections = views
        .into_iter()
        .map(|(name, l, t)| {
            let mut rows = diff(l, t);
            explain(name, &mut rows, tessera.raw_nfit_pages, linux.kernel_readded);
            Section { name, rows }
        })
        .collect();
    Comparison { sections, bringup: [linux.bringup.clone(), tessera.bringup.clone()] }
}

/// Tessera's options for a Linux command line: `nopmem` added when none
/// names persistent memory, since Linux emulates none by default; words
/// Tessera does not know (Linux's own) left out; `poweroff` removed (the
/// shell must answer).
pub fn tessera_cmdline(cmdline: &str) -> String {
    let mut words: Vec<&str> = cmdline
        .split_whitespace()
        .filter(|w| *w != "poweroff" && options::parse(w).all(|r| r.is_ok()))
        .collect();
    if !options::parse(cmdline).filter_map(Result::ok).any(|o| o.names_pmem()) {
        words.push("nopmem");
    }
    words.join(" ")
}

/// Boots both kernels (at once when `parallel`) and compares them:
/// Tessera on `tessera`, Linux on `linux` (the same machine, each with its
/// own files).
pub fn run(
    tessera: &Machine,
    linux: &Machine,
    parallel: bool,
) -> Result<(Comparison, Views, Views), String> {
    let kit = linux::kit()?;
    let tessera = || -> Result<String, String> {
        let mut steps: Vec<Step> =
            TESSERA_COMMANDS.iter().map(|c| Step::Type(c.to_string())).collect();
        steps.push(Step::Type("poweroff".into()));
        let b = machine::boot_captured(tessera, false, &steps)?;
        if b.log.matches(SHELL_PROMPT).count() < TESSERA_COMMANDS.len() + 1 {
            return Err(format!(
                "Tessera ({}) did not answer its shell; serial log in {}",
                tessera.tag,
                tessera.log_path().display()
            ));
        }
        Ok(b.log)
    };
    let linux = || linux::boot(&kit, linux, LINUX_SCRIPT);
    let (l, ts) = if parallel {
        std::thread::scope(|s| {
            let h = s.spawn(linux);
            let ts = tessera();
            (h.join().unwrap_or_else(|_| Err("Linux boot thread panicked".into())), ts)
        })
    } else {
        (linux(), tessera())
    };
    let (lv, tv) = (linux_views(&l?), tessera_views(&ts?));
    Ok((compare(&lv, &tv), lv, tv))
}

/// The two machines of a comparison named `tag`: Tessera's (`kernel`,
/// options through [`tessera_cmdline`], tag `TAG-tessera`) and Linux's
/// (the options as given, tag `TAG-linux`), each with its own NVDIMM file.
fn pair(tessera: Machine, tag: &str) -> (Machine, Machine) {
    let retag = |mut m: Machine, side: &str| {
        m.tag = format!("{tag}-{side}");
        if let Some((_, file)) = &mut m.nvdimm {
            *file = machine::nvdimm_file(&m.tag);
        }
        m
    };
    let linux = retag(tessera.clone(), "linux");
    let mut tessera = retag(tessera, "tessera");
    tessera.cmdline = tessera_cmdline(&tessera.cmdline);
    (tessera, linux)
}

/// Boots Linux alone and prints its serial output (`qemu linux`).
pub fn linux_only(m: &Machine) -> Result<bool, String> {
    let kit = linux::kit()?;
    let out = linux::boot(&kit, m, LINUX_SCRIPT)?;
    print!("{out}");
    Ok(true)
}

/// `qemu linux`: boots Debian's Linux on the machine `make run` would use
/// and prints what `make linux-diff` compares.
pub fn cmd_linux(f: Flags) -> Result<bool, String> {
    let mut m = Machine::new(f.profile()?, Path::new(""), "linux").timeout(f.timeout()?);
    m.mem = f.mem();
    m.cmdline = f.cmdline.clone();
    m.qemu_args = f.qemu_args.clone();
    linux_only(&m)
}

/// `make linux-diff`: Tessera and Linux on the machine `make run` would
/// use, compared; fails on a difference that is not an intended one.
pub fn cmd_linux_diff(f: Flags) -> Result<bool, String> {
    let profile = f.profile()?;
    if profile.usb {
        return Err(
            "linux-diff boots Linux from QEMU's -kernel: use FIRMWARE=bios or uefi without USB"
                .into(),
        );
    }
    // Words only Linux knows go to Linux alone (see tessera_cmdline); a
    // line Tessera cannot read at all is refused.
    options::check_line(&f.cmdline).map_err(|e| format!("CMDLINE: {e}"))?;
    machine::check_host(profile)?;
    let kernel = match &f.kernel {
        Some(k) => k.clone(),
        None => cargo::build_kernel(false)?,
    };
    let mut m = Machine::new(profile, &kernel, "linux-diff").timeout(f.timeout()?);
    m.mem = f.mem();
    m.cmdline = f.cmdline.clone();
    m.qemu_args = f.qemu_args.clone();
    let (tessera, linux) = pair(m, "linux-diff");
    // A backing file (an NVDIMM's) is shared: one kernel at a time.
    let parallel = !f.qemu_args.iter().any(|a| a.contains("mem-path="));
    println!(
        "linux-diff: {} -m {} options '{}' {}; Tessera with '{}'",
        profile.name,
        linux.mem,
        linux.cmdline,
        f.qemu_args.join(" "),
        tessera.cmdline
    );
    let (c, _, _) = run(&tessera, &linux, parallel)?;
    print!("{}", c.report());
    let bad = c.unexplained();
    println!("== intended differences");
    for (name, why) in INTENDED {
        println!("  {name}: {why}");
    }
    if bad == 0 {
        println!("linux-diff: the kernels agree, apart from intended differences");
    } else {
        println!("linux-diff: {bad} lines differ that no intended difference explains");
    }
    Ok(bad == 0)
}

/// Whether `filter` picks the conformance case `test`.
fn picked(test: &str, filter: Option<&str>) -> bool {
    filter.is_none_or(|f| test.contains(f) || f.starts_with(test))
}

/// The `[k/N]` step of conformance machine `name`.
fn step_name(name: &str) -> String {
    format!("conformance {name}")
}

/// The steps of the [`plan::CONFORMANCE`] machines `filter` picks.
pub fn suite_steps(filter: Option<&str>) -> impl Iterator<Item = String> {
    plan::CONFORMANCE
        .iter()
        .filter(move |(name, _, _)| picked(&format!("conformance::{name}"), filter))
        .map(|(name, _, _)| step_name(name))
}

/// Boots every [`plan::CONFORMANCE`] machine on both kernels (each pair at
/// once) and prints one test line per view. A `filter`
/// (`conformance::NAME`) picks machines.
pub fn suite(
    kernel: &Path,
    filter: Option<&str>,
    timeout: Duration,
    progress: &mut Progress,
) -> (usize, usize) {
    let (mut passed, mut failed) = (0, 0);
    let start = std::time::Instant::now();
    for (name, profile, shape) in plan::CONFORMANCE {
        let test = format!("conformance::{name}");
        if !picked(&test, filter) {
            continue;
        }
        progress.step(&step_name(name));
        let tag = format!("conformance-{name}");
        let t0 = std::time::Instant::now();
        let result = profile::find(profile).and_then(|p| {
            let m = Machine::new(p, kernel, &tag).shape(shape).timeout(timeout);
            let (tessera, linux) = pair(m, &tag);
            for m in [&tessera, &linux] {
                m.prepare_nvdimm()?;
            }
            run(&tessera, &linux, true)
        });
        match result {
            Ok((c, _, _)) => {
                for s in &c.sections {
                    let bad: Vec<&Row> = s.rows.iter().filter(|r| r.unexplained()).collect();
                    let ok = bad.is_empty();
                    let name = format!("{test}::{}", s.name.replace(' ', "_"));
                    println!("test {name} ... {}", report::outcome(&name, ok));
                    if ok {
                        passed += 1;
                    } else {
                        failed += 1;
                        for r in bad {
                            match r {
                                Row::Linux(l, _) => println!("  - linux   {l}"),
                                Row::Tessera(l, _) => println!("  + tessera {l}"),
                                Row::Same(_) => {}
                            }
                        }
                    }
                }
            }
            Err(e) => {
                println!(
                    "test {test} ... {}\n  {e}",
                    report::outcome(&format!("{test}: {e}"), false)
                );
                failed += 1;
            }
        }
        println!("== {test}: {:.1} s", t0.elapsed().as_secs_f64());
    }
    println!(
        "== conformance: {passed} passed, {failed} failed ({:.1} s)",
        start.elapsed().as_secs_f64()
    );
    (passed, failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINUX: &str = "\
== linux script begin
== part dmesg
[    0.000000] BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable
[    0.000000] user: [mem 0x0000000080000000-0x0000000081efffff] persistent (type 12)
[    0.046560] Zone ranges:
[    0.171347] Memory: 260860K/2096632K available
[    1.156876] node 0 deferred pages initialised in 104ms
== part iomem
00000000-00000fff : Reserved
00100000-7fefffff : System RAM
  41c00000-42a01d31 : Kernel code
80000000-febfffff : PCI Bus 0000:00
  80000000-81efffff : Persistent Memory (legacy)
== part zoneinfo
Node 0, zone      DMA
  pages free     3776
        spanned  4095
        present  3998
        managed  3840
  start_pfn:           1
Node 0, zone   Device
  pages free     0
        spanned  0
        present  0
        managed  0
== part memory
memory10 online DMA32 0000000a
memory0 online none 00000000
== part nd
namespace0.0 driver= size=917504 resource=0x7ff00000 mode=memory
namespace1.0 driver=nd_pmem size=33554432 resource=0x3a000000 mode=memory
pfn1.0 driver= size= resource= mode=none align=2097152
region0 driver=nd_region size=917504 resource=0x7ff00000 align=0x1000
region1 driver=nd_region size=33554432 resource=0x3a000000 align=0x1000000
== part end
== linux script end rc=0
";

    #[test]
    fn linux_output_reduces_to_views() {
        let v = linux_views(LINUX);
        assert_eq!(v.firmware, ["BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable"]);
        assert_eq!(v.user.len(), 1);
        // Kernel code and the PCI window go; what they held moves up.
        assert_eq!(
            v.iomem,
            [
                "00000000-00000fff : Reserved",
                "00100000-7fefffff : System RAM",
                "80000000-81efffff : Persistent Memory (legacy)",
            ]
        );
        assert_eq!(
            v.zones,
            [
                "zone DMA     start_pfn        1 spanned     4095 present     3998",
                "zone Device  start_pfn        - spanned        0 present        0",
            ]
        );
        assert_eq!(v.managed[0], "zone DMA     managed     3840");
        assert_eq!(v.blocks, ["memory0 online none", "memory10 online DMA32"]);
        assert_eq!(v.pmem, ["[mem 0x000000003a000000-0x000000003bffffff] raw"]);
        assert_eq!(v.pmem_unused, ["[mem 0x000000007ff00000-0x000000007ffdffff]"]);
        let (ms, _) = v.bringup.unwrap();
        assert!((ms - (124.787 + 104.0)).abs() < 0.01, "{ms}");
    }

    #[test]
    fn tessera_answers_reduce_to_the_same_views() {
        let log = "\
[    0.010000] BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable
[    0.020000] memblock: memory 0x7af7e000 bytes
[    0.200000] Zone ranges:
[    0.320000] Memory: 1965664K/2014712K available
tessera> iomem
00000000-00000fff : Reserved
00100000-7fefffff : System RAM
80000000-81efffff : Persistent Memory (legacy)
tessera> zoneinfo
Node 0, zone      DMA
  pages free     3776
        spanned  4095
        present  3998
        managed  3000
  start_pfn:           1
Node 0, zone   Device
  pages free     0
        spanned  16384
        present  0
        managed  0
tessera> memory
memory0  online  [mem 0x0000000000000000-0x0000000007ffffff] none (boot)
memory10 online  [mem 0x0000000050000000-0x0000000057ffffff] DMA32 (boot)
tessera> pmem
region0: [mem 0x000000003a000000-0x000000003bffffff] 32 MiB (firmware NFIT spa 2) namespace0.0 raw added
  namespace0.0: mode raw, size 33554432, blockdev pmem0
tessera> poweroff
";
        let t = tessera_views(log);
        let l = linux_views(LINUX);
        assert_eq!(t.iomem, l.iomem);
        assert_eq!(t.blocks, l.blocks);
        assert_eq!(t.pmem, l.pmem);
        assert!(t.raw_nfit_pages);
        let c = compare(&l, &t);
        // Device's span (raw NVDIMM pages) and managed are intended; the
        // user map Tessera did not print is not.
        let find = |n: &str| c.sections.iter().find(|s| s.name == n).unwrap();
        assert_eq!(find("zoneinfo").unexplained(), 0);
        assert!(
            find("zoneinfo managed")
                .rows
                .iter()
                .any(|r| matches!(r, Row::Tessera(_, Some("managed"))))
        );
        assert_eq!(find("user map").rows, [Row::Linux(l.user[0].clone(), None)]);
        assert_eq!(find("persistent memory not in use").rows.len(), 1);
        assert_eq!(c.unexplained(), 1);
        assert!(
            c.report().contains("  - linux   user: [mem 0x0000000080000000-0x0000000081efffff]")
        );
    }

    #[test]
    fn linux_readding_its_own_image_explains_what_overlaps_it() {
        let out = "\
== part dmesg
[    0.001853] .text .data .bss are not marked as E820_TYPE_RAM!
[    0.001928] e820: remove [mem 0x01600000-0x04a2ffff] 
== part iomem
00900000-1fffffff : System RAM
20000000-23ffffff : Persistent Memory (legacy)
== part end
";
        let l = linux_views(out);
        assert_eq!(l.kernel_readded, Some((0x160_0000, 0x4a2_ffff)));
        let t = Views {
            iomem: vec![
                "00900000-03ffffff : System RAM".into(),
                "04000000-040fffff : Persistent Memory (legacy)".into(),
                "04400000-1fffffff : System RAM".into(),
                "20000000-23ffffff : Persistent Memory (legacy)".into(),
            ],
            ..Views::default()
        };
        let c = compare(&l, &t);
        assert_eq!(c.unexplained(), 0, "{}", c.report());
        // A difference away from the image is still one.
        let mut t2 = t.clone();
        t2.iomem[3] = "20000000-21ffffff : Persistent Memory (legacy)".into();
        assert_eq!(compare(&l, &t2).unexplained(), 2);
        assert_eq!(
            row_range("  [mem 0x0000000004000000-0x00000000040fffff] raw"),
            Some((0x400_0000, 0x40f_ffff))
        );
    }

    #[test]
    fn diff_keeps_order_and_marks_each_side() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let rows = diff(&s(&["a", "b", "c"]), &s(&["a", "x", "c", "d"]));
        assert_eq!(
            rows,
            [
                Row::Same("a".into()),
                Row::Tessera("x".into(), None),
                Row::Linux("b".into(), None),
                Row::Same("c".into()),
                Row::Tessera("d".into(), None),
            ]
        );
    }

    #[test]
    fn tessera_options_follow_linux_but_add_nopmem_when_none_is_named() {
        assert_eq!(tessera_cmdline(""), "nopmem");
        assert_eq!(tessera_cmdline("mem=1G poweroff"), "mem=1G nopmem");
        assert_eq!(tessera_cmdline("memmap=32M!1G"), "memmap=32M!1G");
        assert_eq!(tessera_cmdline("memmap=2M%1G-1+12"), "memmap=2M%1G-1+12");
        // Linux's own words are Linux's only.
        assert_eq!(tessera_cmdline("memmap=32M!1G nokaslr"), "memmap=32M!1G");
    }
}

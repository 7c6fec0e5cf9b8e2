//! `qemu debug` (`make debug`): the kernel in QEMU, halted before the
//! firmware's first instruction with QEMU's GDB stub listening, and a GDB
//! script (`target/tessera.gdb`, which `make gdb` runs) that attaches,
//! loads the kernel's symbols where the bootloader put the kernel, stops at
//! the kernel's entry with a hardware breakpoint and checks there that the
//! symbols are right. [`check`] is the scripted session `qemu test` runs.
//!
//! Where the kernel is: the kernel is a position-independent ELF linked at
//! 0, and the bootloader (0.11, ASLR off, the default) maps it at the first
//! free level-4 slot of its dynamic range, so the offset depends only on
//! the image and the bootloader's configuration, not on the boot. It is
//! learnt from a probe boot of the same image on the same machine with
//! `loglevel=8 poweroff`, whose kernel prints it (`Kernel Offset: 0x...`),
//! and kept in `target/qemu/images/<profile>-offset.txt` with a hash of the
//! kernel ELF and the machine, so that the next `make debug` of the same
//! kernel skips the probe. The script does not take it on trust: at the
//! kernel's entry it compares the offset the bootloader handed the kernel
//! (`BootInfo::kernel_image_offset`, in `rdi`) with the one it loaded the
//! symbols at, and says which.
//!
//! Hardware breakpoints (`hbreak`): when GDB attaches, the kernel is not in
//! memory yet; a software breakpoint is an `int3` written into memory that
//! the bootloader then overwrites (under KVM; QEMU's TCG keeps breakpoints
//! outside guest memory, but the script works the same on both).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mm::sparse::{SectionSummary, flags};
use options::contract::KERNEL_OFFSET;

use crate::cargo;
use crate::cli::{self, Flags};
use crate::machine::{self, Machine};
use crate::profile::Profile;
use crate::report::{self, Ending, Verdict};

/// Where `make debug` writes the script `make gdb` runs.
pub const SCRIPT: &str = "target/tessera.gdb";

/// The GDB stub's port when `--gdb-port` is not given (QEMU's `-s`).
pub const DEFAULT_PORT: u16 = 1234;

/// `VMEMMAP_START`: every section's decoded memmap base (the address of
/// pfn 0's descriptor) with a virtually mapped memmap.
const VMEMMAP_START: u64 = 0xffff_ea00_0000_0000;

/// The kernel's `Kernel Offset:` line in a boot log.
pub fn parse_offset(log: &str) -> Option<u64> {
    log.lines().find_map(|l| {
        let rest = &l[l.find(KERNEL_OFFSET)? + KERNEL_OFFSET.len()..];
        let hex = rest.split_whitespace().next()?.strip_prefix("0x")?;
        u64::from_str_radix(hex, 16).ok()
    })
}

/// FNV-1a over `bytes`, continuing from `h`.
fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// What the offset may depend on: the kernel ELF (its code and its
/// bootloader configuration) and the machine it boots on.
fn offset_key(m: &Machine) -> Result<u64, String> {
    let elf =
        std::fs::read(&m.kernel).map_err(|e| format!("cannot read {}: {e}", m.kernel.display()))?;
    let machine = format!("{} {} {} {}", m.profile.name, m.mem, m.cpus, m.device_args().join(" "));
    Ok(fnv1a(fnv1a(0xcbf2_9ce4_8422_2325, &elf), machine.as_bytes()))
}

/// Offsets kept per profile.
const CACHED: usize = 8;

/// Where the offsets learnt on `profile` are kept: a line `KEY OFFSET` (in
/// hex) per kernel and machine, the last [`CACHED`].
fn cache_path(profile: &Profile) -> PathBuf {
    PathBuf::from(format!("target/qemu/images/{}-offset.txt", profile.name))
}

/// How the offset was found.
#[derive(Debug, Clone, PartialEq)]
pub enum Learnt {
    /// From the cache, written by the probe boot of an identical kernel
    /// on the same machine.
    Cached(PathBuf),
    /// From a probe boot just now (its serial log, seconds).
    Probed(PathBuf, f64),
}

/// The kernel image offset of `m`'s kernel on `m`'s machine: from the
/// cache, or from a probe boot (`loglevel=8 poweroff`, stopped once the
/// kernel has printed it) that is then cached.
pub fn kernel_offset(m: &Machine, timeout: Duration) -> Result<(u64, Learnt), String> {
    let key = offset_key(m)?;
    let cache = cache_path(m.profile);
    let kept = std::fs::read_to_string(&cache).unwrap_or_default();
    let cached = kept.lines().find_map(|l| {
        let (k, off) = l.split_once(' ')?;
        let k = u64::from_str_radix(k, 16).ok()?;
        (k == key).then(|| u64::from_str_radix(off.trim_start_matches("0x"), 16).ok())?
    });
    if let Some(off) = cached {
        return Ok((off, Learnt::Cached(cache)));
    }
    let mut probe = m.clone();
    probe.tag = format!("{}-offset-probe", m.profile.name);
    probe.cmdline = "loglevel=8 poweroff".into();
    probe.image_cmdline = String::new();
    probe.timeout = Some(timeout);
    // The line comes early in the kernel's init: no need to boot on.
    probe.stop_when = Some(|log| log.find(KERNEL_OFFSET).is_some_and(|i| log[i..].contains('\n')));
    let b = machine::boot_captured(&probe, false, &[])?;
    let log = probe.log_path();
    let Some(off) = parse_offset(&b.log) else {
        return Err(format!(
            "the probe boot printed no '{KERNEL_OFFSET}' line ({}); see {}",
            report::verdict(b.ending, &b.log, &b.stderr),
            log.display()
        ));
    };
    let _ = std::fs::create_dir_all(cache.parent().expect("has a parent"));
    // The last few kernels and machines: make debug and make test boot
    // different ones.
    let mut lines: Vec<&str> = kept.lines().collect();
    let line = format!("{key:016x} {off:#x}");
    lines.push(&line);
    let keep = lines[lines.len().saturating_sub(CACHED)..].join("\n") + "\n";
    std::fs::write(&cache, keep).map_err(|e| format!("cannot write {}: {e}", cache.display()))?;
    Ok((off, Learnt::Probed(log, b.elapsed.as_secs_f64())))
}

/// The GDB script: attach to the stub at `port`, load `kernel`'s symbols at
/// `offset`, run to the kernel's entry on a hardware breakpoint and check
/// the offset there; `tessera-section N` prints section N's words.
/// `learnt` says where the offset came from, in a comment.
pub fn script(kernel: &Path, offset: u64, port: u16, learnt: &str) -> String {
    let quoted = gdb_quote(kernel);
    let kernel = kernel.display();
    format!(
        r#"# Written by `make debug` (qemu/src/debug.rs); `make gdb` runs it.
# Kernel: {kernel}
# Kernel image offset {offset:#x}: {learnt}.
set pagination off
set confirm off
# The ELF is linked at 0; the bootloader mapped it at {offset:#x}.
symbol-file -o {offset:#x} {quoted}
echo tessera.gdb: attaching to QEMU's GDB stub at 127.0.0.1:{port} (make debug)\n
target remote 127.0.0.1:{port}
# A hardware breakpoint: the kernel is not in memory yet.
thbreak *_start
continue
# At the entry rdi holds the boot info the bootloader handed over. (The
# Rust expressions below need GDB's Rust language; `_start` needs C.)
set language rust
set $tessera_offset = (*($rdi as *mut bootloader_api::info::BootInfo)).kernel_image_offset
set language auto
if $tessera_offset != {offset:#x}
  printf "tessera.gdb: WRONG OFFSET: symbols loaded at {offset:#x}, the bootloader says %#lx: run make debug again\n", $tessera_offset
  quit 1
end
printf "tessera.gdb: stopped at the kernel's entry _start (%#lx); BootInfo::kernel_image_offset %#lx is the symbols' offset\n", $pc, $tessera_offset

# tessera-section N: section N's mem_section word (flags in its low 5
# bits: present 1, has_mem_map 2, online 4, early 8, zone_device 0x10;
# the rest is the encoded memmap base) and its usage's sub-section map.
define tessera-section
  set language rust
  set $tessera_nr = ($arg0) as u64
  set $tessera_root = *((&kernel::mm::sections::SECTIONS.roots[$tessera_nr / 256]) as *mut u64)
  if $tessera_root == 0
    printf "section %lu: no root\n", $tessera_nr
  else
    set $tessera_ms = &(*($tessera_root as *mut [tessera_mm::sparse::MemSection; 256]))[$tessera_nr % 256]
    set $tessera_word = *((&(*$tessera_ms).section_mem_map) as *mut u64)
    set $tessera_usage = *((&(*$tessera_ms).usage) as *mut u64)
    if $tessera_usage == 0
      printf "section %lu: section_mem_map=%#018lx (flags %#lx, mem_map %#lx) usage=NULL\n", $tessera_nr, $tessera_word, $tessera_word & 0x1f, $tessera_word & !0x1f
    else
      set $tessera_map = *((&(*($tessera_usage as *mut tessera_mm::sparse::MemSectionUsage)).subsection_map) as *mut u64)
      printf "section %lu: section_mem_map=%#018lx (flags %#lx, mem_map %#lx) usage=%#lx subsection_map=%#018lx\n", $tessera_nr, $tessera_word, $tessera_word & 0x1f, $tessera_word & !0x1f, $tessera_usage, $tessera_map
    end
  end
  set language auto
end
document tessera-section
tessera-section N: section N's section_mem_map word and its usage's subsection_map.
end
echo tessera.gdb: now e.g.  hbreak section_activate  and  continue  (README: Debugging with GDB)\n
"#
    )
}

/// `path` as one argument of a GDB command: in double quotes, a quote or
/// backslash in it escaped (GDB splits an unquoted file name at spaces).
fn gdb_quote(path: &Path) -> String {
    let mut q = String::from('"');
    for c in path.to_string_lossy().chars() {
        if matches!(c, '"' | '\\') {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

/// What [`check`]'s session does after [`script`]: a hardware breakpoint
/// at `section_activate`'s entry, its first two hits (the first two
/// sub-sections of the first hot-add), the section's words read at each,
/// then it lets the kernel run on (detach).
///
/// The entry, not `hbreak section_activate`: GDB puts that breakpoint
/// after the prologue, and in a build without incremental compilation
/// (`CARGO_INCREMENTAL=0`, as CI builds) that spot is the first
/// instruction of the inlined `pfn_to_section_nr`, where GDB shows the
/// inlined function's frame and `nr_pages` is not in scope. `info line`
/// leaves the function's first address in `$_`. A stop is taken as a hit
/// only when the pc is that address; any other stop (a signal, a stale
/// trap) is printed with where it was and the session continues, at most
/// [`MAX_STOPS`] times in all, so the arguments are never read in another
/// function's frame.
fn test_steps() -> String {
    format!(
        r#"
info line section_activate
set $tessera_bp = $_
hbreak *$tessera_bp
set $tessera_hits = 0
set $tessera_stops = 0
while $tessera_hits < 2 && $tessera_stops < {MAX_STOPS}
  continue
  set $tessera_stops = $tessera_stops + 1
  set language c
  set $tessera_at = (unsigned long)$pc == (unsigned long)$tessera_bp
  set language auto
  if $tessera_at
    printf "tessera.gdb: section_activate pfn=%#lx nr_pages=%#lx\n", pfn.0, nr_pages
    if $tessera_hits == 0
      set $tessera_first = pfn.0 >> 15
    end
    tessera-section $tessera_first
    set $tessera_hits = $tessera_hits + 1
  else
    printf "{STRAY_STOP}%lx, not at section_activate's breakpoint %#lx; continuing\n", $pc, $tessera_bp
    info symbol $pc
  end
end
delete
detach
"#
    )
}

/// The most stops [`test_steps`] waits through for its two hits.
const MAX_STOPS: usize = 16;

/// How [`test_steps`] starts the line of a stop it waits through (the pc
/// follows in hex); [`judge`] counts them.
const STRAY_STOP: &str = "tessera.gdb: stopped at 0x";

/// The GDB stub's QEMU arguments: halted at the first instruction, the
/// stub on `port` of the loopback interface only.
fn stub_args(port: u16) -> Vec<String> {
    vec!["-S".into(), "-gdb".into(), format!("tcp:127.0.0.1:{port}")]
}

/// Fails with a one-line instruction when GDB is missing.
pub fn check_gdb() -> Result<(), String> {
    let found = Command::new("gdb")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        Ok(())
    } else {
        Err("gdb not found: run `make setup` (as root: apt-get install -y gdb)".into())
    }
}

fn learnt_text(l: &Learnt) -> String {
    match l {
        Learnt::Cached(p) => {
            format!("learnt by an earlier probe boot of this kernel, {}", p.display())
        }
        Learnt::Probed(log, secs) => {
            format!(
                "learnt by a probe boot with loglevel=8 just now, {secs:.1} s, {}",
                log.display()
            )
        }
    }
}

/// `qemu debug`: the machine `qemu run` would boot, halted with QEMU's GDB
/// stub on `--gdb-port` (default [`DEFAULT_PORT`]), serial and QEMU's
/// monitor on this terminal; writes [`SCRIPT`] first.
pub fn cmd_debug(f: Flags) -> Result<bool, String> {
    let profile = f.profile()?;
    cli::check_cmdline(&f.cmdline)?;
    machine::check_host(profile)?;
    let port = f.gdb_port.unwrap_or(DEFAULT_PORT);
    // Before anything is built or written: QEMU would fail only after.
    if let Err(e) = std::net::TcpListener::bind(("127.0.0.1", port)) {
        return Err(format!("GDB_PORT {port}: {e} (another make debug?); choose another port"));
    }
    let kernel = match &f.kernel {
        Some(k) => k.clone(),
        None => cargo::build_kernel(f.release)?,
    };
    let kernel =
        std::fs::canonicalize(&kernel).map_err(|e| format!("kernel {}: {e}", kernel.display()))?;
    let mut m = Machine::new(profile, &kernel, &format!("debug-{}", profile.name));
    m.mem = f.mem();
    m.cpus = f.cpus(profile);
    m.cmdline = f.cmdline.clone();
    m.qemu_args = f.qemu_args.clone();
    let (offset, learnt) = kernel_offset(&m, f.timeout()?)?;
    std::fs::write(SCRIPT, script(&kernel, offset, port, &learnt_text(&learnt)))
        .map_err(|e| format!("cannot write {SCRIPT}: {e}"))?;
    m.qemu_args.extend(stub_args(port));
    m.timeout = f.timeout.map(Duration::from_secs);
    eprintln!(
        "qemu: profile {} ({}, {}) halted before the firmware, GDB stub on 127.0.0.1:{port}",
        profile.name,
        profile.about,
        Profile::cpus_text(m.cpus)
    );
    eprintln!("qemu: kernel image offset {offset:#x} ({})", learnt_text(&learnt));
    eprintln!("qemu: {SCRIPT} written: run `make gdb` in another terminal; Ctrl-A X quits QEMU");
    let b = machine::boot_interactive(&m, std::env::var_os("DISPLAY").is_some())?;
    let log = m.log_path();
    match report::verdict(b.ending, &b.log, &b.stderr) {
        Verdict::Pass => eprintln!("qemu: kernel powered off; serial log in {}", log.display()),
        _ if b.ending == Ending::Code(0) => {
            eprintln!("qemu: QEMU exited; serial log in {}", log.display())
        }
        Verdict::Fail(why) => {
            eprint!("{}", b.stderr);
            eprintln!("qemu: FAILED: {why}; serial log in {}", log.display());
            return Ok(false);
        }
    }
    Ok(true)
}

/// A free TCP port on the loopback interface (for the test's stub, so
/// that two test runs on one host do not meet).
fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// Runs `gdb -batch` on `script`; kills it after `timeout`. Returns its
/// output (stdout then stderr) and whether it finished in time.
fn run_gdb(script: &Path, timeout: Duration) -> Result<(String, bool), String> {
    let mut child = Command::new("gdb")
        .args(["-q", "-nx", "-batch", "-x"])
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start gdb: {e}"))?;
    let out = machine::collect(child.stdout.take().expect("piped"));
    let err = machine::collect(child.stderr.take().expect("piped"));
    let ending = machine::wait(&mut child, Some(timeout), || false)?;
    let in_time = !matches!(ending, Ending::Timeout(_));
    let text = out.join().unwrap_or_default() + &err.join().unwrap_or_default();
    Ok((text, in_time))
}

/// One `section_activate` hit as the session printed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Hit {
    pfn: u64,
    nr_pages: u64,
}

/// A `tessera-section` answer: the section's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Words {
    nr: u64,
    word: u64,
    subsection_map: u64,
}

fn hex_after(line: &str, key: &str) -> Option<u64> {
    let rest = &line[line.find(key)? + key.len()..];
    let hex = rest.strip_prefix("0x")?;
    let end = hex.find(|c: char| !c.is_ascii_hexdigit()).unwrap_or(hex.len());
    u64::from_str_radix(&hex[..end], 16).ok()
}

fn hits(out: &str) -> Vec<Hit> {
    out.lines()
        .filter(|l| l.starts_with("tessera.gdb: section_activate "))
        .filter_map(|l| {
            Some(Hit { pfn: hex_after(l, "pfn=")?, nr_pages: hex_after(l, "nr_pages=")? })
        })
        .collect()
}

fn words(out: &str) -> Vec<Words> {
    out.lines()
        .filter_map(|l| {
            let nr = l.strip_prefix("section ")?.split(':').next()?.parse().ok()?;
            let word = hex_after(l, "section_mem_map=")?;
            Some(Words { nr, word, subsection_map: hex_after(l, "subsection_map=")? })
        })
        .collect()
}

/// The start of the first region the kernel hot-added
/// (`pmem: region0 [mem 0x...-0x...] added: ...`).
fn first_region_start(log: &str) -> Option<u64> {
    log.lines()
        .filter(|l| l.contains("] added: "))
        .find_map(|l| hex_after(l, "pmem: region0 [mem "))
}

/// Where GDB last reported the guest stopped in `out`: its breakpoint or
/// signal line, shortened to the function and the place.
fn last_stop(out: &str) -> Option<String> {
    let line = out.lines().rev().find(|l| {
        l.starts_with("Breakpoint ")
            || l.starts_with("Temporary breakpoint ")
            || l.contains(" received signal ")
            || l.starts_with(STRAY_STOP)
    })?;
    // `Breakpoint 2, FUNCTION (ARGS) at FILE:LINE`: the arguments are long.
    let short = match (line.find(" ("), line.rfind(") at ")) {
        (Some(a), Some(b)) if a < b => format!("{}{}", &line[..a], &line[b + 1..]),
        _ => line.to_string(),
    };
    Some(short.trim().to_string())
}

/// Judges a scripted session: `out` is GDB's output, `log` the kernel's
/// serial log, `offset` the offset the symbols were loaded at. Returns
/// what was checked, or why it failed.
fn judge(out: &str, log: &str, offset: u64) -> Result<String, String> {
    // A command of the script GDB refused: its error is the reason.
    if let Some(i) = out.find("Error in sourced command file:") {
        let error = out[i..].lines().nth(1).unwrap_or("").trim();
        let at = match last_stop(&out[..i]) {
            Some(stop) => format!(" (its last stop: {stop})"),
            None => String::new(),
        };
        return Err(format!("GDB stopped the script: {error}{at}"));
    }
    if !out.contains("tessera.gdb: stopped at the kernel's entry") {
        let why = if out.contains("WRONG OFFSET") {
            "the boot info's offset is not the symbols'"
        } else {
            "the hardware breakpoint at _start was never hit: wrong kernel offset?"
        };
        return Err(format!("{why} (symbols at {offset:#x})"));
    }
    match parse_offset(log) {
        Some(o) if o == offset => {}
        o => {
            return Err(format!(
                "the kernel printed offset {o:x?}, the symbols are at {offset:#x}"
            ));
        }
    }
    let region = first_region_start(log).ok_or("the kernel hot-added no region0")?;
    let (h, w) = (hits(out), words(out));
    // Stops elsewhere the session waited through (see `test_steps`).
    let stray = out.lines().filter(|l| l.starts_with(STRAY_STOP)).count();
    let [first, second] = h[..] else {
        return Err(format!(
            "section_activate was hit {} time(s), not twice ({stray} other stop(s))",
            h.len()
        ));
    };
    let want = Hit { pfn: region >> 12, nr_pages: 512 };
    if first != want {
        return Err(format!(
            "first hit {first:x?}, expected {want:x?} (region0's first sub-section)"
        ));
    }
    if second.pfn != first.pfn + 512 {
        return Err(format!("second hit {second:x?}: not the next sub-section"));
    }
    let [before, after] = w[..] else {
        return Err(format!("{} section reading(s), not two", w.len()));
    };
    let nr = first.pfn >> 15;
    let bit = 1u64 << ((first.pfn >> 9) & 63);
    if before.nr != nr || before.subsection_map & bit != 0 {
        return Err(format!(
            "before the add, section {nr}'s map was {before:x?}: bit {bit:#x} already set"
        ));
    }
    if after.word & flags::MAP_MASK != VMEMMAP_START {
        return Err(format!("section_mem_map {:#x}: memmap base is not VMEMMAP_START", after.word));
    }
    let line = SectionSummary {
        nr,
        flags: after.word & !flags::MAP_MASK,
        subsection_map: after.subsection_map,
    }
    .to_string();
    // The kernel prints the section after each sub-section it adds: its
    // first line with this sub-section's bit is the state after the add.
    let printed = log
        .lines()
        .filter_map(|l| l.find(&format!("section {nr}: ")).map(|i| &l[i..]))
        .find(|l| hex_after(l, "subsection_map=").is_some_and(|m| m & bit != 0));
    match printed {
        Some(p) if p.trim_end() == line => {
            let stray = match stray {
                0 => String::new(),
                n => format!(" ({n} other stop(s) waited through, in GDB's log)"),
            };
            Ok(format!(
                "hit at pfn {:#x}, read {line:?} as the kernel printed it{stray}",
                first.pfn
            ))
        }
        p => Err(format!("GDB read {line:?}, the kernel printed {p:?}")),
    }
}

/// Whether `qemu test` runs [`check`] on `p` under `filter`: on the first
/// profile only (the stub and the symbols do not depend on the firmware).
pub fn tested(p: &Profile, filter: Option<&str>) -> bool {
    p.name == "bios" && filter.is_none_or(|flt| format!("gdb::{}", p.name).contains(flt))
}

/// `gdb::PROFILE` in `qemu test`: the real kernel halted with the stub on
/// the default machine (its emulated region0 is hot-added at boot), a
/// batch GDB session with [`script`] and [`test_steps`], judged by
/// [`judge`] against what the kernel printed.
pub fn check(
    kernel: &Path,
    p: &'static Profile,
    timeout: Duration,
) -> Result<(usize, usize), String> {
    let start = Instant::now();
    println!("== {} gdb: a scripted GDB session on the real kernel", p.name);
    let name = format!("gdb::{}", p.name);
    let fail = |why: String| {
        println!("test {name} ... {}\n  {why}", report::outcome(&format!("{name}: {why}"), false));
        Ok((0, 1))
    };
    let kernel = std::fs::canonicalize(kernel).map_err(|e| format!("{}: {e}", kernel.display()))?;
    let mut m = Machine::new(p, &kernel, &format!("{}-gdb", p.name));
    let (offset, learnt) = match kernel_offset(&m, timeout) {
        Ok(o) => o,
        Err(e) => return fail(e),
    };
    let port = free_port()?;
    let path = PathBuf::from(format!("target/qemu/{}-gdb.gdb", p.name));
    let text = script(&kernel, offset, port, &learnt_text(&learnt)) + &test_steps();
    std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    m.cmdline = "loglevel=8 poweroff".into();
    m.qemu_args.extend(stub_args(port));
    m.timeout = Some(timeout);
    let qemu = std::thread::spawn(move || {
        let b = machine::boot_captured(&m, false, &[]);
        (m, b)
    });
    let (out, in_time) = run_gdb(&path, timeout)?;
    let (m, b) = qemu.join().map_err(|_| "the QEMU thread panicked".to_string())?;
    let b = b?;
    let gdb_log = m.log_path().with_extension("gdb.log");
    let _ = std::fs::write(&gdb_log, &out);
    let mut verdict = judge(&out, &b.log, offset);
    if !in_time {
        verdict = Err(format!("gdb did not finish in {} s", timeout.as_secs()));
    }
    if let (Ok(_), v @ Verdict::Fail(_)) = (&verdict, report::verdict(b.ending, &b.log, &b.stderr))
    {
        verdict = Err(format!("the kernel after the session: {v}"));
    }
    let secs = start.elapsed().as_secs_f64();
    let logs = format!("GDB {}, serial {}", gdb_log.display(), m.log_path().display());
    match verdict {
        Ok(what) => {
            println!("test {name} ... ok");
            println!(
                "== {} gdb: {what}; offset {offset:#x} ({}) ({secs:.1} s; {logs})",
                p.name,
                learnt_text(&learnt)
            );
            Ok((1, 0))
        }
        Err(why) => fail(format!("{why} ({secs:.1} s; {logs})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFF: u64 = 0xffff_8000_0000_0000;

    /// What the session and the kernel print (from a real run, shortened).
    const OUT: &str = "\
tessera.gdb: stopped at the kernel's entry _start (0xffff80000002d620); BootInfo::kernel_image_offset 0xffff800000000000 is the symbols' offset
tessera.gdb: section_activate pfn=0x72000 nr_pages=0x200
section 14: section_mem_map=0xffffea000000000f (flags 0xf, mem_map 0xffffea0000000000) usage=0xffff81807ffdff30 subsection_map=0xffffffff0000ffff
tessera.gdb: section_activate pfn=0x72200 nr_pages=0x200
section 14: section_mem_map=0xffffea000000001f (flags 0x1f, mem_map 0xffffea0000000000) usage=0xffff81807ffdff30 subsection_map=0xffffffff0001ffff
";
    const LOG: &str = "\
[    0.029083] Kernel Offset: 0xffff800000000000 from 0x0 (relocation range: 0xffff800000000000-0xffffbfffffffffff)
[    0.123653] section 14: flags=present|has_mem_map|online|early subsection_map=0xffffffff0000ffff
[    0.194882] section 14: flags=present|has_mem_map|online|early|zone_device subsection_map=0xffffffff0001ffff
[    0.208710] section 14: flags=present|has_mem_map|online|early|zone_device subsection_map=0xffffffff0003ffff
[    0.337347] pmem: region0 [mem 0x0000000072000000-0x0000000073ffffff] added: 16 sub-sections in 1 section, raw, memmap in System RAM (64.827 ms)
";

    #[test]
    fn the_offset_line_is_read() {
        assert_eq!(parse_offset(LOG), Some(OFF));
        assert_eq!(parse_offset("Kernel Offset: 0x1000 from 0x0"), Some(0x1000));
        assert_eq!(parse_offset("Kernel Offset: junk"), None);
        assert_eq!(parse_offset(""), None);
    }

    #[test]
    fn the_script_loads_symbols_at_the_offset_and_uses_hardware_breakpoints() {
        let s = script(Path::new("/k/kernel"), OFF, 4321, "probed");
        assert!(s.contains("symbol-file -o 0xffff800000000000 \"/k/kernel\"\n"), "{s}");
        assert!(s.contains("target remote 127.0.0.1:4321\n"));
        assert!(s.contains("thbreak *_start\n"));
        assert!(s.contains("if $tessera_offset != 0xffff800000000000\n"));
        assert!(
            test_steps().contains(
                "info line section_activate\nset $tessera_bp = $_\nhbreak *$tessera_bp\n"
            )
        );
        assert!(!(s.clone() + &test_steps()).lines().any(|l| l.starts_with("break ")));
    }

    #[test]
    fn a_kernel_path_with_spaces_or_quotes_stays_one_argument() {
        let s = script(Path::new("/ci work/a\"b\\c/kernel"), OFF, 4321, "probed");
        assert!(
            s.contains("symbol-file -o 0xffff800000000000 \"/ci work/a\\\"b\\\\c/kernel\"\n"),
            "{s}"
        );
    }

    #[test]
    fn a_script_error_is_the_reason() {
        let out = "target/qemu/bios-gdb.gdb:7: Error in sourced command file:\nUnrecognized argument \"ace/kernel\"\n";
        assert_eq!(
            judge(out, LOG, OFF).unwrap_err(),
            "GDB stopped the script: Unrecognized argument \"ace/kernel\""
        );
    }

    #[test]
    fn a_script_error_says_where_the_guest_last_stopped() {
        let out = "\
Breakpoint 2, tessera_mm::sparse::Sparse<K>::section_activate<K> (self=0x1, pfn=..., nr_pages=512) at kernel/libs/mm/src/sparse.rs:1227
1227\t        let nr = pfn_to_section_nr(pfn);
Program received signal SIGTRAP, Trace/breakpoint trap.
target/qemu/bios-gdb.gdb:40: Error in sourced command file:
No symbol 'nr_pages' in current context
";
        assert_eq!(
            judge(out, LOG, OFF).unwrap_err(),
            "GDB stopped the script: No symbol 'nr_pages' in current context \
             (its last stop: Program received signal SIGTRAP, Trace/breakpoint trap.)"
        );
        let (bp, _) = out.split_once("Program").unwrap();
        assert_eq!(
            last_stop(bp).unwrap(),
            "Breakpoint 2, tessera_mm::sparse::Sparse<K>::section_activate<K> at kernel/libs/mm/src/sparse.rs:1227"
        );
    }

    #[test]
    fn the_session_reads_arguments_only_at_the_breakpoint_and_waits_through_other_stops() {
        let steps = test_steps();
        // The arguments are read only inside the branch the pc check opens.
        let check = steps.find("(unsigned long)$pc == (unsigned long)$tessera_bp").unwrap();
        let read = steps.find("pfn.0, nr_pages").unwrap();
        let other = steps.find("not at section_activate's breakpoint").unwrap();
        assert!(check < read && read < other, "{steps}");
        assert!(steps.contains(&format!("$tessera_stops < {MAX_STOPS}\n")));
        // A stray stop in between passes, and says so.
        let (head, tail) = OUT.split_once("tessera.gdb: section_activate pfn=0x72200").unwrap();
        let out = format!(
            "{head}tessera.gdb: stopped at 0xffff800000047dc5, not at section_activate's breakpoint 0xffff8000000b8893; continuing\ntessera.gdb: section_activate pfn=0x72200{tail}"
        );
        let ok = judge(&out, LOG, OFF).unwrap();
        assert!(ok.ends_with("(1 other stop(s) waited through, in GDB's log)"), "{ok}");
        // Stray stops only: not a pass.
        let stray = "tessera.gdb: stopped at 0x1000, not at section_activate's breakpoint 0x2000; continuing\n";
        let (first, _) = OUT.split_once("tessera.gdb: section_activate").unwrap();
        let e = judge(&format!("{first}{}", stray.repeat(MAX_STOPS)), LOG, OFF).unwrap_err();
        assert!(e.contains("hit 0 time(s), not twice (16 other stop(s))"), "{e}");
    }

    #[test]
    fn a_session_that_read_what_the_kernel_printed_passes() {
        let ok = judge(OUT, LOG, OFF).unwrap();
        assert!(ok.contains("section 14: flags=present|has_mem_map|online|early|zone_device subsection_map=0xffffffff0001ffff"), "{ok}");
    }

    #[test]
    fn a_wrong_offset_or_reading_fails() {
        // The breakpoint at the entry never hit: the script stopped there.
        let (_, rest) = OUT.split_once('\n').unwrap();
        let e = judge(rest, LOG, OFF).unwrap_err();
        assert!(e.contains("never hit"), "{e}");
        let e = judge(OUT, LOG, OFF + 0x1000).unwrap_err();
        assert!(e.contains("the kernel printed offset"), "{e}");
        // GDB read another map than the kernel printed.
        let out =
            OUT.replace("subsection_map=0xffffffff0001ffff", "subsection_map=0xffffffff0003ffff");
        let e = judge(&out, LOG, OFF).unwrap_err();
        assert!(e.starts_with("GDB read"), "{e}");
        // Other flags.
        let out =
            OUT.replace("section_mem_map=0xffffea000000001f", "section_mem_map=0xffffea000000000f");
        assert!(judge(&out, LOG, OFF).unwrap_err().starts_with("GDB read"));
        // A memmap base that is not VMEMMAP_START.
        let out =
            OUT.replace("section_mem_map=0xffffea000000001f", "section_mem_map=0xffffeb000000001f");
        assert!(judge(&out, LOG, OFF).unwrap_err().contains("VMEMMAP_START"));
        // Hit elsewhere than region0's first sub-section.
        let out = OUT.replace("pfn=0x72000", "pfn=0x74000");
        assert!(judge(&out, LOG, OFF).unwrap_err().starts_with("first hit"));
        // One hit only.
        let one: String = OUT.lines().take(3).map(|l| format!("{l}\n")).collect();
        assert!(judge(&one, LOG, OFF).unwrap_err().contains("hit 1 time(s)"));
    }
}

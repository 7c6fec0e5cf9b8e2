//! The Tessera QEMU runner and test harness.
//!
//! ```text
//! qemu run [--profile P | --firmware bios|uefi [--usb]] [--mem M] [--cmdline S]
//!          [--qemu-args S] [--timeout SECS] [--kernel ELF] [--release]
//! qemu test [--filter F] [--timeout SECS] [--profiles P,P,..] [--no-host]
//! qemu runner ELF [FILTER]     (cargo's runner; TESSERA_PROFILE picks the profile)
//! qemu bench [--timeout SECS]
//! qemu screenshot [--firmware bios|uefi [--usb]] [--mem M] [--cmdline S]
//! qemu fuzz [--time SECS]      (every fuzz target; new inputs kept in kernel/fuzz/corpus)
//! qemu fuzz-seeds              (corpus seeds from what the kernel reads in QEMU)
//! qemu profiles
//! qemu linux [--firmware bios|uefi] [--mem M] [--cmdline S] [--qemu-args S]
//! qemu linux-diff [--firmware bios|uefi] [--mem M] [--cmdline S] [--qemu-args S]
//! ```
#![forbid(unsafe_code)]

mod bench;
mod cargo;
mod device;
mod fuzz;
mod linux;
mod linuxdiff;
mod machine;
mod malformed;
mod persist;
mod profile;
mod report;
mod screen;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use machine::Step;
use profile::{Machine, Profile};
use report::{Ending, Verdict};

const DEFAULT_TIMEOUT: u64 = 60;
const DEFAULT_MEM: &str = "2G";
/// Seconds per fuzz target in `qemu test` (`make fuzz` runs longer).
const FUZZ_TEST_SECONDS: u64 = 10;

const USAGE: &str = "usage: qemu run|test|bench|screenshot|fuzz|fuzz-seeds|runner|profiles|linux|linux-diff [options] (see qemu/src/main.rs)";

/// Command-line flags shared by the subcommands.
#[derive(Debug, Default)]
struct Flags {
    profile: Option<String>,
    firmware: Option<String>,
    usb: bool,
    mem: Option<String>,
    cmdline: String,
    qemu_args: Vec<String>,
    timeout: Option<u64>,
    kernel: Option<PathBuf>,
    release: bool,
    filter: Option<String>,
    profiles: Option<Vec<String>>,
    no_host: bool,
    /// Seconds per fuzz target.
    fuzz_time: Option<u64>,
    free: Vec<String>,
}

fn parse_flags(args: impl Iterator<Item = String>) -> Result<Flags, String> {
    let mut f = Flags::default();
    let mut args = args.peekable();
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--profile" => f.profile = Some(value()?),
            "--firmware" => f.firmware = Some(value()?),
            "--usb" => f.usb = true,
            "--mem" => f.mem = Some(value()?).filter(|m| !m.is_empty()),
            "--cmdline" => f.cmdline = value()?.trim().to_string(),
            "--qemu-args" => f.qemu_args = value()?.split_whitespace().map(String::from).collect(),
            "--timeout" => {
                let v = value()?;
                let secs = v.parse().ok().filter(|&s| s > 0);
                f.timeout = Some(secs.ok_or(format!("--timeout '{v}': give whole seconds > 0"))?);
            }
            "--kernel" => f.kernel = Some(value()?.into()),
            "--release" => f.release = true,
            "--filter" => f.filter = Some(value()?).filter(|s| !s.is_empty()),
            "--profiles" => f.profiles = Some(value()?.split(',').map(String::from).collect()),
            "--no-host" => f.no_host = true,
            "--time" => {
                let v = value()?;
                let secs = v.parse().ok().filter(|&s| s > 0);
                f.fuzz_time = Some(secs.ok_or(format!("--time '{v}': give whole seconds > 0"))?);
            }
            s if s.starts_with("--") => return Err(format!("unknown flag '{s}'; {USAGE}")),
            _ => f.free.push(a),
        }
    }
    Ok(f)
}

/// Refuses a command line the kernel would not understand.
fn check_cmdline(cmdline: &str) -> Result<(), String> {
    options::validate(cmdline).map_err(|e| format!("CMDLINE: {e}"))
}

fn timeout(f: &Flags) -> Result<Duration, String> {
    let secs = match (f.timeout, std::env::var("TESSERA_TIMEOUT")) {
        (Some(s), _) => s,
        (None, Ok(v)) if !v.is_empty() => v
            .parse()
            .ok()
            .filter(|&s| s > 0)
            .ok_or(format!("TESSERA_TIMEOUT='{v}': give whole seconds > 0"))?,
        _ => DEFAULT_TIMEOUT,
    };
    Ok(Duration::from_secs(secs))
}

/// Builds the disk image; `cmdline` is built into it (as on a real PC).
/// The image carries the kernel without its debug sections (see
/// [`strip_debug`]).
pub(crate) fn image_for(
    kernel: &Path,
    profile: &Profile,
    tag: &str,
    cmdline: &str,
) -> Result<PathBuf, String> {
    let dir = PathBuf::from("target/qemu/images");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let out = dir.join(format!("{tag}-{}.img", profile.firmware.name()));
    let elf = strip_debug(kernel, &dir.join(format!("{tag}.elf")));
    boot::build_image(&elf, profile.firmware, cmdline, &out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// The toolchain's `llvm-objcopy` (rustup's `llvm-tools`, which the
/// bootloader's build needs anyway), if it is there.
fn objcopy() -> Option<&'static Path> {
    static OBJCOPY: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    OBJCOPY
        .get_or_init(|| {
            let out = Command::new("rustc").args(["--print", "sysroot"]).output().ok()?;
            let sysroot = String::from_utf8(out.stdout).ok()?;
            let host = Command::new("rustc").args(["-vV"]).output().ok()?;
            let host = String::from_utf8(host.stdout).ok()?;
            let triple = host.lines().find_map(|l| l.strip_prefix("host: "))?.to_string();
            let p =
                Path::new(sysroot.trim()).join("lib/rustlib").join(triple).join("bin/llvm-objcopy");
            p.exists().then_some(p)
        })
        .as_deref()
}

/// A copy of `kernel` without debug sections at `out`: the BIOS and UEFI
/// loaders read the whole file from the disk image, and a debug build's
/// 10 MiB of DWARF costs about 7 s per boot under TCG (measured: 9.6 s
/// against 2.2 s to power off). The code is the same. Without
/// `llvm-objcopy` the kernel is used as it is.
fn strip_debug(kernel: &Path, out: &Path) -> PathBuf {
    let Some(objcopy) = objcopy() else { return kernel.to_path_buf() };
    let ok = Command::new(objcopy)
        .arg("--strip-debug")
        .arg(kernel)
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok { out.to_path_buf() } else { kernel.to_path_buf() }
}

fn pick_profile(f: &Flags) -> Result<&'static Profile, String> {
    match (&f.profile, &f.firmware) {
        (Some(_), Some(_)) => Err("give either a profile or a firmware, not both".into()),
        (Some(p), None) => profile::find(p),
        (None, fw) => profile::for_firmware(fw.as_deref().unwrap_or("bios"), f.usb),
    }
}

fn cmd_run(f: Flags) -> Result<bool, String> {
    let profile = pick_profile(&f)?;
    check_cmdline(&f.cmdline)?;
    machine::check_host(profile)?;
    let kernel = match &f.kernel {
        Some(k) => k.clone(),
        None => cargo::build_kernel(f.release)?,
    };
    let image = image_for(&kernel, profile, "run", "")?;
    let m = Machine {
        image,
        mem: f.mem.clone().unwrap_or(DEFAULT_MEM.into()),
        cmdline: f.cmdline.clone(),
        extra: f.qemu_args.clone(),
        ..Default::default()
    };
    let display = std::env::var_os("DISPLAY").is_some();
    let tag = format!("run-{}", profile.name);
    eprintln!("qemu: booting profile {} ({}); Ctrl-A X quits", profile.name, profile.about);
    let b =
        machine::boot_interactive(profile, m, &tag, f.timeout.map(Duration::from_secs), display)?;
    if b.ending != Ending::Code(1) {
        // Warnings; a start error is part of the verdict below.
        eprint!("{}", b.stderr);
    }
    let log = machine::paths(&tag).0;
    match report::verdict(b.ending, &b.log, &b.stderr) {
        Verdict::Pass => {
            eprintln!(
                "qemu: kernel powered off ({:.1} s); serial log in {}",
                b.elapsed.as_secs_f64(),
                log.display()
            );
            Ok(true)
        }
        // Quitting with Ctrl-A X (or an ACPI power-off) ends QEMU with 0.
        _ if b.ending == Ending::Code(0) => {
            eprintln!("qemu: QEMU exited; serial log in {}", log.display());
            Ok(true)
        }
        Verdict::Fail(why) => {
            eprintln!("qemu: FAILED: {why}; serial log in {}", log.display());
            Ok(false)
        }
    }
}

/// The machine a test binary needs: memory size and kernel options.
/// Binaries not listed boot with 2 GiB and no options.
/// QEMU arguments for a 256 MiB NVDIMM backed by a file (`{file}` is
/// replaced by a path under `target/qemu/`); its memory size must be given
/// with slots and maxmem, e.g. `2G,slots=2,maxmem=8G`.
pub(crate) const NVDIMM_ARGS: &str = "-machine pc,nvdimm=on -object memory-backend-file,id=nv0,share=on,mem-path={file},size=256M -device nvdimm,id=nvdimm0,memdev=nv0";

/// A machine a test binary boots on: a name (empty: the binary's own),
/// QEMU `-m`, kernel options, extra QEMU arguments.
type TestMachine = (&'static str, &'static str, &'static str, &'static str);

/// QEMU arguments for a 64 GiB NVDIMM at 256 GiB, backed by a sparse file
/// (only what the kernel writes, its memmap, takes disk space).
pub(crate) const BIG_NVDIMM_ARGS: &str = "-machine pc,nvdimm=on -object memory-backend-file,id=nv0,share=on,mem-path={file},size=64G -device nvdimm,id=nvdimm0,memdev=nv0,addr=0x4000000000";
/// The memory of the machine [`BIG_NVDIMM_ARGS`] goes with.
pub(crate) const BIG_NVDIMM_MEM: &str = "2G,slots=4,maxmem=512G";

/// The NVDIMM backing file of the boot `tag`.
pub(crate) fn nvdimm_file(tag: &str) -> PathBuf {
    PathBuf::from(format!("target/qemu/{tag}-nvdimm.img"))
}

/// A machine's extra QEMU arguments, split into words, with `{file}` (an
/// NVDIMM's backing file) made a file of its own for the boot `tag`.
pub(crate) fn extra_args(extra: &str, tag: &str) -> Vec<String> {
    args_with_file(extra, &nvdimm_file(tag))
}

/// A machine's extra QEMU arguments, split into words, with `{file}` made
/// `file` (several boots sharing one NVDIMM file).
pub(crate) fn args_with_file(extra: &str, file: &Path) -> Vec<String> {
    extra.replace("{file}", &file.to_string_lossy()).split_whitespace().map(String::from).collect()
}

/// Several machines boot the same binary when it checks properties that
/// must hold everywhere; each is named `binary@name` in the output.
fn test_machines(binary: &str) -> &'static [TestMachine] {
    const TWO_PMEM: &str = "memmap=32M!0x3a000000 memmap=32M!0x3c000000";
    match binary {
        "memmap_2g" => &[("", "2G", TWO_PMEM, "")],
        // 1 GiB: RAM ends mid-section (0x3ffe0000); 2 GiB: two persistent
        // ranges in section 7; 5 GiB: RAM above 4 GiB (ZONE_NORMAL).
        "sparsemem" => {
            &[("1G", "1G", "", ""), ("2G-pmem", "2G", TWO_PMEM, ""), ("5G", "5G", "", "")]
        }
        // The default emulated range; two memmap= ranges in one section;
        // a QEMU NVDIMM (firmware NFIT) with emulation off.
        "pmem" => &[
            ("default", "2G", "", ""),
            ("2G-pmem", "2G", TWO_PMEM, ""),
            ("nvdimm", "2G,slots=2,maxmem=8G", "nopmem", NVDIMM_ARGS),
            ("nvdimm-fsdax", "2G,slots=2,maxmem=8G", "nopmem", NVDIMM_ARGS),
        ],
        // An emulated range in RAM (the bootloader mapped it) and a QEMU
        // NVDIMM with an altmap (only ever mapped by the driver).
        "pmem_unmapped" => {
            &[("default", "2G", "", ""), ("nvdimm", "2G,slots=2,maxmem=8G", "nopmem", NVDIMM_ARGS)]
        }
        // 3 GiB below 4 GiB and 1 GiB above, withheld by mem=3G; section
        // 33 = 64 MiB of persistent memory, then 64 MiB of withheld RAM.
        "memory_hotplug" => &[("", "4G", "memmap=64M!0x108000000 mem=2560M", "")],
        // A small RAM and a large, sparse NVDIMM far up the address space.
        "scale" => &[("", BIG_NVDIMM_MEM, "nopmem", BIG_NVDIMM_ARGS)],
        // 32 MiB of persistent memory in an early section (RAM below), 32
        // MiB above mem= in a section of their own (vmemmap populated).
        "stress" => &[("", "2G", "memmap=64M!0x3e000000 mem=1G", "")],
        // Boot-time allocation failures: a root (section 0, retried by the
        // next range), the usage chunk (every section), a 2 MiB memmap
        // block (4 KiB fallback), a vmemmap page table; hot-add failures on
        // each machine, on a raw NVDIMM (memmap in RAM) and an fsdax one
        // (memmap on the device, altmap).
        "faults" => &[
            ("root", "2G", "fail_sparse=1", ""),
            ("usage", "2G", "fail_sparse=2", ""),
            ("memmap-block", "2G", "fail_sparse=3", ""),
            ("page-table", "2G", "fail_sparse=4", ""),
            ("nvdimm", "2G,slots=2,maxmem=8G", "nopmem fail_sparse=40", NVDIMM_ARGS),
            ("nvdimm-fsdax", "2G,slots=2,maxmem=8G", "nopmem fail_sparse=40", NVDIMM_ARGS),
            // One region: 32 MiB in early section 7, then all of section 8.
            ("early-and-own", "2G", "memmap=160M!0x3e000000 fail_sparse=40", ""),
        ],
        _ => &[("", DEFAULT_MEM, "", "")],
    }
}

/// Boots one kernel executable on each of its machines and counts its test
/// lines.
fn boot_and_count(
    kernel: &Path,
    name: &str,
    profile: &Profile,
    filter: Option<&str>,
    timeout: Duration,
) -> Result<(usize, usize), String> {
    let (mut passed, mut failed) = (0, 0);
    let mut runs: Vec<TestRun> = test_machines(name)
        .iter()
        .map(|&(variant, mem, cmdline, extra)| TestRun {
            variant: variant.into(),
            mem,
            cmdline,
            extra: extra.into(),
            expect: &[],
        })
        .collect();
    // The hostile firmware and option cases boot the model checks (BIOS only:
    // the tables reach the kernel the same way under both firmwares).
    if name == "sparsemem" && profile.name == "bios" {
        runs.extend(hostile_runs()?);
    }
    // mem= alone: the default emulated range comes from the RAM that
    // remains, and says why it is there.
    if name == "pmem" {
        runs.push(TestRun {
            variant: "mem1G".into(),
            mem: "2G",
            cmdline: "mem=1G",
            extra: String::new(),
            expect: &[
                "pmem: no memmap=nn!ss option: emulating [mem 0x000000003a000000-0x000000003bffffff] (32 MiB) as persistent memory, in the highest 128 MiB section of free RAM below mem=0x40000000; nopmem turns this off",
            ],
        });
    }
    // Damaged info blocks: each reported in one line, the namespace raw and
    // the device untouched (the run's device check), the model checks pass.
    if name == "pmem" && profile.name == "bios" {
        runs.extend(device::Corruption::ALL.iter().map(|c| TestRun {
            variant: format!("nvdimm-{}", c.name()),
            mem: "2G,slots=2,maxmem=8G",
            cmdline: "nopmem",
            extra: NVDIMM_ARGS.into(),
            expect: &[],
        }));
    }
    for run in runs {
        let name = if run.variant.is_empty() {
            name.to_string()
        } else {
            format!("{name}@{}", run.variant)
        };
        let tag = format!("{}-{name}", profile.name);
        let image = image_for(kernel, profile, &tag, "")?;
        let extra = extra_args(run.extra.as_ref(), &tag);
        // An NVDIMM's file gets a known pattern (and info block) first.
        let device = match device::for_machine(&run.extra, &run.variant) {
            Some((base, size, format)) => {
                let path = nvdimm_file(&tag);
                Some((device::create(&path, base, size, format)?, path, format))
            }
            None => None,
        };
        let m = Machine {
            image,
            mem: run.mem.into(),
            cmdline: run.cmdline.into(),
            extra,
            test_filter: filter.map(String::from),
            ..Default::default()
        };
        println!("== {} {name}: booting {} (-m {})", profile.name, kernel.display(), run.mem);
        let b = machine::boot_captured(profile, m, &tag, timeout, true, &[])?;
        let v = report::verdict(b.ending, &b.log, &b.stderr);
        let (mut p, mut f) = report::count(&report::test_lines(&b.log), &v);
        // The one line each hostile case must cause.
        for want in run.expect {
            let seen = b.log.lines().any(|l| l.contains(want));
            println!("test {name}::reports {want:?} ... {}", if seen { "ok" } else { "FAILED" });
            if seen { p += 1 } else { f += 1 }
        }
        if let Some((dev, path, format)) = &device {
            let want = device::probe_line(*format);
            let seen = b.log.lines().any(|l| l.contains(&want));
            println!("test {name}::probes {want:?} ... {}", if seen { "ok" } else { "FAILED" });
            let kept = device::check_line(&name, path, dev);
            for ok in [seen, kept] {
                if ok { p += 1 } else { f += 1 }
            }
        }
        let log = machine::paths(&tag).0;
        let not_run = match report::announced(&b.log) {
            Some(n) if n > p + f => format!(", {} not run", n - p - f),
            _ => String::new(),
        };
        println!(
            "== {} {name}: {p} passed, {f} failed{not_run} ({:.1} s) {v}; log {}",
            profile.name,
            b.elapsed.as_secs_f64(),
            log.display()
        );
        passed += p;
        failed += f;
    }
    Ok((passed, failed))
}

/// One boot of a test binary: machine, options, and lines it must print.
struct TestRun {
    variant: String,
    mem: &'static str,
    cmdline: &'static str,
    extra: String,
    expect: &'static [&'static str],
}

/// The [`malformed::CASES`] as boots, with their tables written to
/// `target/qemu/acpi/` for `-acpitable`.
fn hostile_runs() -> Result<Vec<TestRun>, String> {
    let dir = PathBuf::from("target/qemu/acpi");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut runs = Vec::new();
    for c in malformed::CASES {
        let extra = match c.table() {
            Some(t) => {
                let path = dir.join(format!("{}.dat", c.name));
                std::fs::write(&path, t).map_err(|e| format!("{}: {e}", path.display()))?;
                format!("-acpitable file={}", path.display())
            }
            None => String::new(),
        };
        runs.push(TestRun {
            variant: format!("hostile-{}", c.name),
            mem: DEFAULT_MEM,
            cmdline: c.cmdline,
            extra,
            expect: c.expect,
        });
    }
    Ok(runs)
}

fn cmd_runner(f: Flags) -> Result<bool, String> {
    let mut free = f.free.iter();
    let kernel = PathBuf::from(free.next().ok_or("runner: no kernel executable given")?);
    let filter = free.find(|a| !a.starts_with('-')).cloned();
    let name = std::env::var("TESSERA_PROFILE").unwrap_or("bios".into());
    let profile = profile::find(&name)?;
    let file = kernel.file_name().map_or("kernel".into(), |s| s.to_string_lossy().into_owned());
    // Cargo names test executables NAME-HASH.
    let stem = match file.rsplit_once('-') {
        Some((n, h)) if h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()) => n.to_string(),
        _ => file,
    };
    let (_, failed) = boot_and_count(&kernel, &stem, profile, filter.as_deref(), timeout(&f)?)?;
    Ok(failed == 0)
}

/// Runs `cargo test` for the host crates and counts its tests.
fn host_tests(filter: Option<&str>) -> (usize, usize) {
    println!("== host: cargo test");
    let mut cmd = Command::new("cargo");
    cmd.args(["test", "--workspace", "--exclude", "kernel"]);
    if let Some(f) = filter {
        cmd.args(["--", f]);
    }
    let out = match cmd.stderr(Stdio::inherit()).output() {
        Ok(o) => o,
        Err(e) => {
            println!("== host: FAILED: cannot run cargo: {e}");
            return (0, 1);
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    print!("{text}");
    let (p, mut failed) = report::cargo_test_counts(&text);
    if !out.status.success() && failed == 0 {
        failed = 1;
        println!("== host: FAILED: cargo test exited with {}", out.status);
    }
    println!("== host: {p} passed, {failed} failed");
    (p, failed)
}

fn cmd_test(f: Flags) -> Result<bool, String> {
    let timeout = timeout(&f)?;
    let filter = f.filter.as_deref();
    let profiles: Vec<&Profile> = match &f.profiles {
        Some(names) => names.iter().map(|n| profile::find(n)).collect::<Result<_, _>>()?,
        None => profile::PROFILES.iter().collect(),
    };
    for p in &profiles {
        machine::check_host(p)?;
    }
    let mut summary: Vec<(String, usize, usize)> = Vec::new();
    if !f.no_host {
        let (p, fl) = host_tests(filter);
        summary.push(("host".into(), p, fl));
        if filter.is_none_or(|flt| "fuzz::".contains(flt) || flt.starts_with("fuzz::")) {
            let secs = f.fuzz_time.unwrap_or(FUZZ_TEST_SECONDS);
            let (p, fl) = match fuzz::run(secs, false) {
                Ok(o) => (o.iter().filter(|o| o.ok).count(), o.iter().filter(|o| !o.ok).count()),
                Err(e) => {
                    println!("== fuzz: FAILED: {e}");
                    (0, 1)
                }
            };
            summary.push(("fuzz".into(), p, fl));
        }
    }
    let built = cargo::build_kernel_tests().and_then(|t| Ok((t, cargo::build_kernel(false)?)));
    let (tests, kernel) = match built {
        Ok(b) => b,
        Err(e) => {
            println!("== kernel: FAILED: {e}");
            summary.push(("kernel build".into(), 0, 1));
            (Vec::new(), PathBuf::new())
        }
    };
    for p in profiles.iter().filter(|_| !kernel.as_os_str().is_empty()) {
        let (mut passed, mut failed) = (0, 0);
        // The in-kernel tests run on the plain profiles; every profile boots
        // the real kernel to the end of initialization.
        if !p.usb {
            // A filter naming a binary (`binary::...`) boots only that one.
            let named = filter.and_then(|f| f.split_once("::")).map(|(bin, _)| bin);
            for t in tests.iter().filter(|t| named.is_none_or(|bin| bin == t.name)) {
                let (a, b) = boot_and_count(&t.path, &t.name, p, filter, timeout)?;
                passed += a;
                failed += b;
            }
        }
        let boot_name = format!("boot::{}", p.name);
        if filter.is_none_or(|flt| boot_name.contains(flt)) {
            let (a, b) = boot_check(&kernel, p, timeout)?;
            passed += a;
            failed += b;
        }
        if filter.is_none_or(|flt| format!("shell::{}", p.name).contains(flt)) {
            let (a, b) = shell_check(&kernel, p, timeout)?;
            passed += a;
            failed += b;
        }
        if !p.usb && filter.is_none_or(|flt| format!("persist::{}", p.name).contains(flt)) {
            let (a, b) = persist::run(&kernel, p, timeout)?;
            passed += a;
            failed += b;
        }
        summary.push((format!("profile {}", p.name), passed, failed));
    }
    if !kernel.as_os_str().is_empty()
        && filter
            .is_none_or(|flt| flt.starts_with("conformance::") || "conformance::".contains(flt))
    {
        let (p, fl) = linuxdiff::suite(&kernel, filter, timeout);
        summary.push(("conformance (Linux side by side)".into(), p, fl));
    }
    println!();
    for (what, p, fl) in &summary {
        println!("{what}: {p} passed, {fl} failed");
    }
    let (p, fl) = summary.iter().fold((0, 0), |(a, b), (_, p, f)| (a + p, b + f));
    println!("{p} passed, {fl} failed");
    Ok(fl == 0)
}

/// Boots Debian's Linux on the machine `make run` would use and prints
/// what `make linux-diff` compares.
fn cmd_linux(f: Flags) -> Result<bool, String> {
    let profile = pick_profile(&f)?;
    let mem = f.mem.clone().unwrap_or(DEFAULT_MEM.into());
    linuxdiff::linux_only(profile.firmware, &mem, &f.qemu_args, &f.cmdline, timeout(&f)?)
}

/// `make linux-diff`: Tessera and Linux on the machine `make run` would
/// use, compared; fails on a difference that is not an intended one.
fn cmd_linux_diff(f: Flags) -> Result<bool, String> {
    let profile = pick_profile(&f)?;
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
    let target = linuxdiff::Target {
        profile,
        mem: f.mem.clone().unwrap_or(DEFAULT_MEM.into()),
        cmdline: f.cmdline.clone(),
        linux_args: f.qemu_args.clone(),
        tessera_args: f.qemu_args.clone(),
    };
    // A backing file (an NVDIMM's) is shared: one kernel at a time.
    let parallel = !f.qemu_args.iter().any(|a| a.contains("mem-path="));
    println!(
        "linux-diff: {} -m {} options '{}' {}; Tessera with '{}'",
        profile.name,
        target.mem,
        target.cmdline,
        f.qemu_args.join(" "),
        linuxdiff::tessera_cmdline(&target.cmdline)
    );
    let (c, _, _) = linuxdiff::run(&kernel, &target, "linux-diff", timeout(&f)?, parallel)?;
    print!("{}", c.report());
    let bad = c.unexplained();
    println!("== intended differences");
    for (name, why) in linuxdiff::INTENDED {
        println!("  {name}: {why}");
    }
    if bad == 0 {
        println!("linux-diff: the kernels agree, apart from intended differences");
    } else {
        println!("linux-diff: {bad} lines differ that no intended difference explains");
    }
    Ok(bad == 0)
}

/// Boots the kernel, waits for the shell, saves the framebuffer as
/// `target/screenshot.png` through QEMU's monitor, and powers off.
fn cmd_screenshot(f: Flags) -> Result<bool, String> {
    let profile = pick_profile(&f)?;
    machine::check_host(profile)?;
    let kernel = cargo::build_kernel(false)?;
    let tag = format!("screenshot-{}", profile.name);
    let image = image_for(&kernel, profile, &tag, "")?;
    let mem = f.mem.clone().unwrap_or(DEFAULT_MEM.into());
    let m = Machine { image, mem, cmdline: f.cmdline.clone(), ..Default::default() };
    let out = "target/screenshot.png";
    let _ = std::fs::remove_file(out);
    let steps = [Step::Monitor(format!("screendump {out} -f png")), Step::Type("poweroff".into())];
    let b = machine::boot_captured(profile, m, &tag, timeout(&f)?, false, &steps)?;
    let ok = std::path::Path::new(out).exists();
    match report::verdict(b.ending, &b.log, &b.stderr) {
        Verdict::Pass if ok => println!("{out}: the console after boot ({})", profile.name),
        v => println!("screenshot: FAILED: {v}; {out} {}", if ok { "written" } else { "missing" }),
    }
    Ok(ok)
}

/// What the shell test types, and what each answer must contain.
const SHELL_SCRIPT: &[(&str, &[&str])] = &[
    ("help", &["sections [N|all]", "pmem add REGION [--step]", "poweroff"]),
    ("frobnicate", &["unknown command: frobnicate (try help)"]),
    (
        "memory",
        &[
            "block size 128 MiB",
            "memory0 online  [mem 0x0000000000000000-0x0000000007ffffff] none (boot)",
            "memory15 online  [mem 0x0000000078000000-0x000000007fffffff] DMA32 (boot)",
        ],
    ),
    ("memory offline memory0", &["memory offline: EINVAL: memory0 has holes"]),
    (
        "memory probe 0x80000000",
        &[
            "memory probe: EINVAL: [mem 0x0000000080000000-0x0000000087ffffff] is not all System RAM",
        ],
    ),
    ("memory online 99", &["memory online: ENODEV: no memory99"]),
    (
        "mem",
        &[
            "BIOS-e820: [mem 0x",
            "user: [mem 0x0000000072000000-0x0000000073ffffff] persistent (type 12)",
            "free pages",
        ],
    ),
    ("sections", &["every present section is full"]),
    (
        "sections 14",
        &[
            "section 14: flags=present|has_mem_map|online|early|zone_device subsection_map=0xffffffffffffffff",
            "RRRRRRRRRRRRRRRRPPPPPPPPPPPPPPPPRRRR",
        ],
    ),
    ("sections 99", &["section 99: flags=none subsection_map=0x0000000000000000", "....."]),
    (
        "sections all",
        &["section 0: flags=present|has_mem_map|online|early subsection_map=0xffffffffffffffff"],
    ),
    ("sections x", &["sections: bad argument 'x'"]),
    ("sections 524288", &["beyond the last section (524287, MAX_PHYSMEM_BITS 46)"]),
    (
        "pfn 0x72000000",
        &["section 14", "pfn_valid: true", "pfn_to_online_page: NULL", "zone Device"],
    ),
    ("pfn 0x1000000", &["pfn_to_online_page: 0xffffea", "zone DMA32"]),
    ("pfn", &["pfn: missing argument"]),
    (
        "pfn #0xffffffffffffffff",
        &[
            "(beyond 64-bit physical addresses)",
            "pfn_valid: false",
            "pfn_to_online_page: NULL",
            "no descriptor",
        ],
    ),
    ("pfn #0x1000", &["pfn 0x1000", "zone DMA32"]),
    ("zoneinfo", &["spanned  4095", "start_pfn:           4096", "spanned  8192"]),
    ("pmem", &["region0: [mem 0x0000000072000000-0x0000000073ffffff]", "added"]),
    (
        "pmem remove region0",
        &[
            "RRRRRRRRRRRRRRRRP...............RRRR",
            "RRRRRRRRRRRRRRRR................RRRR",
            "offline",
        ],
    ),
    ("sections 14", &["subsection_map=0xffffffff0000ffff", "RRRRRRRRRRRRRRRRppppppppppppppppRRRR"]),
    ("pmem remove region0", &["EINVAL"]),
    ("pmem read region0 0 16", &["pmem read: EINVAL: region0 is not added"]),
    (
        "pmem add region0",
        &["subsection_map=0xffffffff0001ffff", "added: 16 sub-sections in 1 section"],
    ),
    ("pmem remove region0", &["RRRRRRRRRRRRRRRR................RRRR", "offline"]),
    // On the PS/2 keyboard: the command, then a key after each sub-section.
    (
        "ps2: pmem add region0 --step",
        &[
            "RRRRRRRRRRRRRRRRPpppppppppppppppRRRR",
            "-- press a key --",
            "RRRRRRRRRRRRRRRRPPPPPPPPPPPPPPPPRRRR",
            "added: 16 sub-sections in 1 section",
        ],
    ),
    ("ps2: sections #14", &["sections: bad argument '#14'"]),
    // Namespace modes on a legacy (memmap=!) range, and its data area.
    ("pmem write region0 0x10 hello tessera", &["pmem write: 13 bytes at data offset 0x10"]),
    ("pmem read region0 0x10 13", &["00000010: 6865 6c6c 6f20 7465 7373 6572 61", "hello tessera"]),
    (
        "pmem read region0 0x1fffff8 16",
        &["pmem read: EINVAL: 0x1fffff8 + 0x10 is outside the 0x2000000-byte data area"],
    ),
    (
        "pmem mode region0 fsdax --align 1G",
        &["pmem mode: ENXIO: a 0x2000000-byte namespace leaves no data at align 0x40000000"],
    ),
    ("pmem mode region0 sector", &["pmem mode: bad argument 'sector'"]),
    (
        "pmem mode region0 devdax",
        &[
            "wrote devdax info block v1.4: map dev, align 0x200000, dataoff 0x200000, npfns 7680",
            "added: 16 sub-sections in 1 section, devdax, memmap in System RAM",
            "namespace0.0: mode devdax, map dev, size 31457280, align 2097152",
            "memmap     [mem 0x0000000072002000-0x00000000721fffff] reserved; the memmap is in System RAM",
            "data       [mem 0x0000000072200000-0x0000000073ffffff] (31457280 bytes)",
        ],
    ),
    (
        "pmem mode region0 raw",
        &[
            "cleared the info block at offset 0x1000: raw",
            "added: 16 sub-sections in 1 section, raw, memmap in System RAM",
        ],
    ),
    // The mode changes wrote only the info block: the text is still there.
    ("pmem read region0 0x10 13", &["hello tessera"]),
    ("pmem add region9", &["ENODEV"]),
    ("pmem frob", &["pmem: unknown subcommand 'frob'"]),
    (
        "iomem",
        &["72000000-73ffffff : Persistent Memory (legacy)", "  72000000-73ffffff : namespace0.0"],
    ),
    ("acpi", &["ACPI: RSDP 0x", "ACPI: NFIT 0x", "TESSRA"]),
    ("acpidump NFIT", &["NFIT @ 0x00000000", "    0000: 4E 46 49 54 60 00 00 00 01", "NFIT`"]),
    ("acpidump XXXX", &["acpidump: no table XXXX"]),
    (
        "nfit",
        &[
            "nfit: spa 1: flags 0x0 proximity 0 type pmem [mem 0x0000000072000000-0x0000000073ffffff]",
        ],
    ),
    ("poweroff", &["reboot: Power down"]),
];

/// Boots the real kernel without options and drives its shell over serial:
/// every command of [`SHELL_SCRIPT`], good and bad, then `poweroff`.
fn shell_check(kernel: &Path, p: &Profile, timeout: Duration) -> Result<(usize, usize), String> {
    let tag = format!("{}-shell", p.name);
    let image = image_for(kernel, p, &tag, "")?;
    let m = Machine { image, mem: DEFAULT_MEM.into(), ..Default::default() };
    println!("== {} shell: typing {} commands", p.name, SHELL_SCRIPT.len());
    let mut input = Vec::new();
    for (cmd, _) in SHELL_SCRIPT {
        input.push(match cmd.strip_prefix("ps2: ") {
            Some(keys) => Step::Keys(keys.into()),
            None => Step::Type(cmd.to_string()),
        });
        if cmd.ends_with("--step") {
            input.push(Step::PressWhile("-- press a key --".into()));
        }
    }
    // After `help` has answered, read the framebuffer back.
    let ppm = format!("target/qemu/{tag}.ppm");
    let _ = std::fs::remove_file(&ppm);
    input.insert(1, Step::Monitor(format!("screendump {ppm}")));
    let b = machine::boot_captured(p, m, &tag, timeout, false, &input)?;
    let v = report::verdict(b.ending, &b.log, &b.stderr);
    // Answer i lies between prompt i+1 and the next one.
    let answers: Vec<&str> = b.log.split(machine::PROMPT).skip(1).collect();
    let (mut passed, mut failed) = (0, 0);
    for (i, (cmd, wants)) in SHELL_SCRIPT.iter().enumerate() {
        let answer = answers.get(i).copied().unwrap_or("");
        let missing: Vec<&&str> = wants.iter().filter(|w| !answer.contains(**w)).collect();
        let ok = missing.is_empty() && (i + 1 < SHELL_SCRIPT.len() || v == Verdict::Pass);
        println!("test shell::{}::{cmd:?} ... {}", p.name, if ok { "ok" } else { "FAILED" });
        if !ok {
            println!("  missing {missing:?} in answer:\n{answer}");
            failed += 1;
        } else {
            passed += 1;
        }
    }
    // The prompt and help's answer are drawn on the screen in the console font.
    let screen =
        std::fs::read(&ppm).map_err(|e| format!("{ppm}: {e}")).and_then(|b| screen::parse_ppm(&b));
    let drawn = screen.map(|img| {
        ["tessera>", "sections [N|all]"].iter().all(|t| screen::find_text(&img, t).is_some())
    });
    let ok = drawn == Ok(true);
    println!("test shell::{}::screen ... {}", p.name, if ok { "ok" } else { "FAILED" });
    if ok {
        passed += 1;
    } else {
        println!("  framebuffer read-back: {drawn:?} (screendump {ppm})");
        failed += 1;
    }
    println!(
        "== {} shell: {passed} passed, {failed} failed ({:.1} s) {v}",
        p.name,
        b.elapsed.as_secs_f64()
    );
    Ok((passed, failed))
}

/// Boots the real kernel with `poweroff` and checks it got to the end.
/// USB sticks carry the option inside the image, as on a real PC, and boot
/// without QEMU's exit device, so the kernel must switch off through ACPI
/// S5 (QEMU exits 0); the other profiles hand the option over through
/// fw_cfg and exit through the device.
fn boot_check(kernel: &Path, p: &Profile, timeout: Duration) -> Result<(usize, usize), String> {
    const S5: &str = "ACPI: Preparing to enter system sleep state S5";
    let tag = format!("{}-boot", p.name);
    let (in_image, fw_cfg) = if p.usb { ("poweroff", "") } else { ("", "poweroff") };
    let image = image_for(kernel, p, &tag, in_image)?;
    let m = Machine {
        image,
        mem: DEFAULT_MEM.into(),
        cmdline: fw_cfg.into(),
        no_exit_device: p.usb,
        ..Default::default()
    };
    let via = if p.usb { "built into the image, no exit device" } else { "through fw_cfg" };
    println!("== {} boot: booting the kernel with poweroff {via}", p.name);
    let b = machine::boot_captured(p, m, &tag, timeout, true, &[])?;
    let mut v = match (p.usb, b.ending) {
        (true, report::Ending::Code(0)) if b.log.contains(S5) => Verdict::Pass,
        (true, report::Ending::Code(0)) => Verdict::Fail(format!("QEMU exited 0 without '{S5}'")),
        (true, e) => Verdict::Fail(format!(
            "expected an ACPI power-off (QEMU exit 0), got {e:?}: {}",
            report::verdict(e, &b.log, &b.stderr)
        )),
        (false, e) => report::verdict(e, &b.log, &b.stderr),
    };
    for want in ["Command line: poweroff", "tessera: initialization complete"] {
        if v == Verdict::Pass && !b.log.contains(want) {
            v = Verdict::Fail(format!("exited without '{want}' in the log"));
        }
    }
    let ok = v == Verdict::Pass;
    println!("test boot::{} ... {}", p.name, if ok { "ok" } else { "FAILED" });
    println!("== {} boot: {v} ({:.1} s)", p.name, b.elapsed.as_secs_f64());
    Ok(if ok { (1, 0) } else { (0, 1) })
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let cmd = args.next().unwrap_or_default();
    let result = parse_flags(args).and_then(|f| match cmd.as_str() {
        "run" => cmd_run(f),
        "test" => cmd_test(f),
        "runner" => cmd_runner(f),
        "bench" => timeout(&f).and_then(bench::run),
        "screenshot" => cmd_screenshot(f),
        "linux" => cmd_linux(f),
        "linux-diff" => cmd_linux_diff(f),
        "fuzz" => fuzz::run(f.fuzz_time.unwrap_or(60), true).map(|outcomes| {
            for o in &outcomes {
                let rate = o.runs / o.seconds.max(1);
                let verdict = if o.ok { "ok" } else { "FAILED" };
                println!(
                    "fuzz: {:8} {:>10} executions in {:>3} s ({rate}/s) {verdict}",
                    o.target, o.runs, o.seconds
                );
            }
            outcomes.iter().all(|o| o.ok)
        }),
        "fuzz-seeds" => timeout(&f).and_then(|t| {
            fuzz::seeds(&cargo::build_kernel(false)?, t)?;
            Ok(true)
        }),
        "profiles" => {
            for p in profile::PROFILES {
                println!("{:10} {}", p.name, p.about);
            }
            Ok(true)
        }
        "" => Err(USAGE.into()),
        c => Err(format!("unknown command '{c}'; {USAGE}")),
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("qemu: error: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(s: &str) -> Result<Flags, String> {
        parse_flags(s.split_whitespace().map(String::from))
    }

    #[test]
    fn flags_parse_and_reject() {
        let f = flags("--firmware uefi --usb --mem 4G --timeout 5 x").unwrap();
        assert_eq!(pick_profile(&f).unwrap().name, "usb-uefi");
        assert_eq!(f.mem.as_deref(), Some("4G"));
        assert_eq!(f.timeout, Some(5));
        assert_eq!(f.free, ["x"]);
        assert_eq!(flags("--timeout 0").unwrap_err(), "--timeout '0': give whole seconds > 0");
        assert_eq!(flags("--mem").unwrap_err(), "--mem needs a value");
        assert!(flags("--bogus").unwrap_err().starts_with("unknown flag '--bogus'"));
        let f = flags("--profile bios --firmware uefi").unwrap();
        assert!(pick_profile(&f).is_err());
        assert_eq!(pick_profile(&flags("").unwrap()).unwrap().name, "bios");
    }

    #[test]
    fn bad_cmdlines_are_refused_in_one_line() {
        assert!(check_cmdline("poweroff loglevel=3").is_ok());
        let e = check_cmdline("poweroff frob").unwrap_err();
        assert!(e.starts_with("CMDLINE: unknown option 'frob'"), "{e}");
        assert!(!e.contains('\n'));
    }
}

//! `qemu test` and `qemu runner`: the host tests and fuzz targets, then on
//! each profile every kernel test binary cargo built, on each of its
//! machines ([`crate::plan`]), the real kernel's boot and shell checks
//! ([`crate::golden`]), a scripted GDB session on BIOS ([`crate::debug`])
//! and the persistence checks ([`crate::persist`]),
//! then the Linux conformance suite and the runtime-hotplug sequence
//! ([`crate::hotplug`]); one `N passed, N failed` line at the end.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::accel;
use crate::cli::Flags;
use crate::machine::{self, Machine};
use crate::plan::{self, TestBoot};
use crate::profile::{self, Profile};
use crate::progress::{self, Progress};
use crate::{cargo, debug, device, fuzz, golden, hotplug, linuxdiff, persist, report};

/// Seconds per fuzz target in `qemu test` (`make fuzz` runs longer).
const FUZZ_TEST_SECONDS: u64 = 10;

/// How many failures `qemu test` lists above its totals.
const FAILURES_LISTED: usize = 8;

/// Boots one kernel test executable, `binary`, on each of its machines on
/// `profile` and counts its test lines.
fn run_binary(
    kernel: &Path,
    binary: &str,
    profile: &'static Profile,
    filter: Option<&str>,
    timeout: Duration,
    mut progress: Option<&mut Progress>,
) -> Result<(usize, usize), String> {
    let (mut passed, mut failed) = (0, 0);
    for run in plan::test_boots(binary, profile) {
        if let Some(p) = progress.as_deref_mut() {
            p.step(&step_name(profile, &run.name));
        }
        let (p, f) = boot_one(kernel, &run, profile, filter, timeout)?;
        passed += p;
        failed += f;
    }
    Ok((passed, failed))
}

/// A hostile case's ACPI table, written to `target/qemu/acpi/` for
/// `-acpitable`.
fn acpi_table_args(name: &str, table: &[u8]) -> Result<Vec<String>, String> {
    let dir = PathBuf::from("target/qemu/acpi");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join(format!("{name}.dat"));
    std::fs::write(&path, table).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(vec!["-acpitable".into(), format!("file={}", path.display())])
}

/// One boot of a test binary: its test lines, the lines the run expects,
/// and an NVDIMM's probe line and untouched data.
fn boot_one(
    kernel: &Path,
    run: &TestBoot,
    profile: &'static Profile,
    filter: Option<&str>,
    timeout: Duration,
) -> Result<(usize, usize), String> {
    let name = &run.name;
    let mut m = Machine::new(profile, kernel, &format!("{}-{name}", profile.name))
        .shape(&run.shape)
        .timeout(timeout);
    m.test_filter = filter.map(String::from);
    if let Some((stem, table)) = &run.acpi_table {
        m.qemu_args.extend(acpi_table_args(stem, table)?);
    }
    // An NVDIMM's file gets a known pattern (and info block) first.
    let device = m.prepare_nvdimm()?;
    println!("== {} {name}: booting {} (-m {})", profile.name, kernel.display(), m.mem);
    let b = machine::boot_captured(&m, true, &[])?;
    let v = report::verdict(b.ending, &b.log, &b.stderr);
    let lines = report::test_lines(&b.log);
    let (mut p, mut f) = report::count(&lines, &v);
    report::note_boot_failures(&format!("{} {name}", profile.name), &lines, &v);
    // The one line each hostile case must cause.
    for want in run.expect {
        let seen = b.log.lines().any(|l| l.contains(want));
        let what = format!("{} {name}: reports {want:?}", profile.name);
        println!("test {name}::reports {want:?} ... {}", report::outcome(&what, seen));
        if seen { p += 1 } else { f += 1 }
    }
    if let (Some(dev), Some((nv, path))) = (&device, &m.nvdimm) {
        let format = nv.format.expect("a prepared device has a format");
        let want = device::probe_line(format);
        let seen = b.log.lines().any(|l| l.contains(&want));
        let what = format!("{} {name}: probes {want:?}", profile.name);
        println!("test {name}::probes {want:?} ... {}", report::outcome(&what, seen));
        let kept = device::check_line(name, path, dev);
        for ok in [seen, kept] {
            if ok { p += 1 } else { f += 1 }
        }
    }
    let not_run = match report::announced(&b.log) {
        Some(n) if n > p + f => format!(", {} not run", n - p - f),
        _ => String::new(),
    };
    println!(
        "== {} {name}: {p} passed, {f} failed{not_run} ({:.1} s) {v}; log {}",
        profile.name,
        b.elapsed.as_secs_f64(),
        m.log_path().display()
    );
    Ok((p, f))
}

/// `qemu runner ELF [FILTER]`: cargo's runner for a kernel test executable;
/// `TESSERA_PROFILE` picks the profile (default bios).
pub fn cmd_runner(f: Flags) -> Result<bool, String> {
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
    let (_, failed) = run_binary(&kernel, &stem, profile, filter.as_deref(), f.timeout()?, None)?;
    Ok(failed == 0)
}

/// The accelerator every boot runs on ([`accel::resolve`] chose it), and
/// whether the probe guest really runs and exits on it: one test line.
fn accel_probe() -> bool {
    let a = accel::current();
    println!("== accel: every boot runs on {} ({})", a.name(), accel::reason());
    // `ACCEL=auto` has run it on the accelerator it chose.
    let r = accel::probed().map_or_else(|| accel::probe(a, Duration::from_secs(30)), Ok);
    let name = a.name().to_lowercase();
    match r {
        Ok(t) => {
            println!("test accel::probe::{name} ... ok ({} ms)", t.as_millis());
            true
        }
        Err(e) => {
            let what = format!("accel::probe::{name}: {e}");
            println!("test accel::probe::{name} ... {}\n  {e}", report::outcome(&what, false));
            false
        }
    }
}

/// One kind of step of a profile in `qemu test`.
enum Job<'a> {
    /// A kernel test binary on each of its machines.
    Binary(&'a cargo::Artifact),
    Boot,
    Shell,
    /// The scripted GDB session.
    Gdb,
    Persist,
}

impl Job<'_> {
    /// The names its boots have in `[k/N]` lines.
    fn steps(&self, p: &Profile) -> Vec<String> {
        match self {
            Job::Binary(t) => {
                plan::test_boots(&t.name, p).iter().map(|r| step_name(p, &r.name)).collect()
            }
            job => job.word().map(|w| step_name(p, w)).into_iter().collect(),
        }
    }

    /// The name of a one-boot step (a binary's boots are named by [`plan`]).
    fn word(&self) -> Option<&'static str> {
        match self {
            Job::Binary(_) => None,
            Job::Boot => Some("boot"),
            Job::Shell => Some("shell"),
            Job::Gdb => Some("gdb"),
            Job::Persist => Some("persist"),
        }
    }
}

/// A step's name in `[k/N]` lines and in [`progress::TIMES`].
fn step_name(p: &Profile, what: &str) -> String {
    format!("{} {what}", p.name)
}

/// Runs `cargo test` for the host crates and counts its tests.
fn host_tests(filter: Option<&str>) -> (usize, usize) {
    println!("== host: cargo test");
    let mut cmd = Command::new("cargo");
    cmd.args(["test", "--workspace", "--exclude", "kernel"]);
    if let Some(f) = filter {
        cmd.args(["--", f]);
    }
    let out = match cargo::output(cmd.stdin(Stdio::null())) {
        Ok(o) => o,
        Err(e) => {
            println!("== host: FAILED: {e}");
            report::note_failure(format!("host: {e}"));
            return (0, 1);
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    print!("{text}");
    let (p, mut failed) = report::cargo_test_counts(&text);
    for t in report::test_lines(&text).iter().filter(|t| !t.ok) {
        report::note_failure(format!("host: {}", t.name));
    }
    if !out.status.success() && failed == 0 {
        failed = 1;
        println!("== host: FAILED: cargo test exited with {}", out.status);
        report::note_failure(format!("host: cargo test exited with {}", out.status));
    }
    println!("== host: {p} passed, {failed} failed");
    (p, failed)
}

/// `qemu test`: everything, or what `--filter` and `--profiles` pick.
pub fn cmd_test(f: Flags) -> Result<bool, String> {
    let timeout = f.timeout()?;
    let filter = f.filter.as_deref();
    let profiles: Vec<&'static Profile> = match &f.profiles {
        Some(names) => names.iter().map(|n| profile::find(n)).collect::<Result<_, _>>()?,
        None => plan::PROFILES.iter().collect(),
    };
    for p in &profiles {
        machine::check_host(p)?;
        if debug::tested(p, filter) {
            debug::check_gdb()?;
        }
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
                    report::note_failure(format!("fuzz: {e}"));
                    (0, 1)
                }
            };
            summary.push(("fuzz".into(), p, fl));
        }
    }
    if filter.is_none_or(|flt| "accel::probe".contains(flt) || flt.starts_with("accel::")) {
        let ok = accel_probe();
        summary.push(("accelerator".into(), usize::from(ok), usize::from(!ok)));
    }
    let built = cargo::build_kernel_tests().and_then(|t| Ok((t, cargo::build_kernel(false)?)));
    let (tests, kernel) = match built {
        Ok(b) => b,
        Err(e) => {
            println!("== kernel: FAILED: {e}");
            report::note_failure(format!("kernel build: {e}"));
            summary.push(("kernel build".into(), 0, 1));
            (Vec::new(), PathBuf::new())
        }
    };
    let kernel_built = !kernel.as_os_str().is_empty();
    // What boots, in order, before anything does: `[k/N]` counts it.
    let named = filter.and_then(|f| f.split_once("::")).map(|(bin, _)| bin);
    let picked = |what: String| filter.is_none_or(|flt| what.contains(flt));
    let mut jobs: Vec<(&'static Profile, Job)> = Vec::new();
    for &p in profiles.iter().filter(|_| kernel_built) {
        // The test binaries cargo built, each on its machines (none on a
        // profile without test binaries). A filter naming a binary
        // (`binary::...`) boots only that one.
        for t in tests.iter().filter(|t| named.is_none_or(|bin| bin == t.name)) {
            jobs.push((p, Job::Binary(t)));
        }
        // Every profile boots the real kernel to the end of initialization.
        if picked(format!("boot::{}", p.name)) {
            jobs.push((p, Job::Boot));
        }
        if picked(format!("shell::{}", p.name)) {
            jobs.push((p, Job::Shell));
        }
        if debug::tested(p, filter) {
            jobs.push((p, Job::Gdb));
        }
        if p.persist && picked(format!("persist::{}", p.name)) {
            jobs.push((p, Job::Persist));
        }
    }
    let conformance = kernel_built
        && filter
            .is_none_or(|flt| flt.starts_with("conformance::") || "conformance::".contains(flt));
    let hotplug = kernel_built
        && filter.is_none_or(|flt| flt.starts_with("hotplug::") || "hotplug::".contains(flt));
    let mut steps: Vec<String> = jobs.iter().flat_map(|(p, j)| j.steps(p)).collect();
    if conformance {
        steps.extend(linuxdiff::suite_steps(filter));
    }
    if hotplug {
        steps.push(hotplug::STEP.into());
    }
    let mut progress = Progress::new(steps, Path::new(progress::TIMES));
    let mut totals: Vec<(&'static Profile, usize, usize)> =
        profiles.iter().filter(|_| kernel_built).map(|&p| (p, 0, 0)).collect();
    for (p, job) in jobs {
        if let Some(w) = job.word() {
            progress.step(&step_name(p, w));
        }
        let (a, b) = match job {
            Job::Binary(t) => {
                run_binary(&t.path, &t.name, p, filter, timeout, Some(&mut progress))?
            }
            Job::Boot => golden::boot_check(&kernel, p, timeout)?,
            Job::Shell => golden::shell_check(&kernel, p, timeout)?,
            Job::Gdb => debug::check(&kernel, p, timeout)?,
            Job::Persist => persist::run(&kernel, p, timeout)?,
        };
        if let Some((_, passed, failed)) = totals.iter_mut().find(|(q, _, _)| q.name == p.name) {
            *passed += a;
            *failed += b;
        }
    }
    for (p, passed, failed) in totals {
        summary.push((format!("profile {}", p.name), passed, failed));
    }
    if conformance {
        let (p, fl) = linuxdiff::suite(&kernel, filter, timeout, &mut progress);
        summary.push(("conformance (Linux side by side)".into(), p, fl));
    }
    if hotplug {
        progress.step(hotplug::STEP);
        let (p, fl) = hotplug::suite(&kernel, timeout, filter);
        summary.push(("hotplug (QEMU monitor, Linux reference)".into(), p, fl));
    }
    if let Err(e) = progress.save(Path::new(progress::TIMES)) {
        println!("== progress: cannot keep the step times: {e}");
    }
    println!();
    // The first few, so that the list and the totals fit in the last
    // two dozen lines of a log.
    let failures = report::failures();
    if !failures.is_empty() {
        println!("failed:");
        failures.iter().take(FAILURES_LISTED).for_each(|l| println!("  {l}"));
        if let Some(more) = failures.len().checked_sub(FAILURES_LISTED).filter(|&n| n > 0) {
            println!("  ... and {more} more (the FAILED lines above)");
        }
    }
    for (what, p, fl) in &summary {
        println!("{what}: {p} passed, {fl} failed");
    }
    let (p, fl) = summary.iter().fold((0, 0), |(a, b), (_, p, f)| (a + p, b + f));
    println!("{p} passed, {fl} failed");
    Ok(fl == 0)
}

//! `qemu fuzz`: runs each cargo-fuzz target (libFuzzer) for a bounded time
//! over its corpus in `kernel/fuzz/corpus/TARGET` and its seeds in
//! `kernel/fuzz/seeds/TARGET`, and `qemu fuzz-seeds`: boots
//! the kernel and turns what it reads from QEMU's firmware (ACPI tables,
//! the memory map, command lines) into corpus seeds.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::machine::{self, Machine, Step};
use crate::{cargo, plan, profile, report};

/// The fuzz crate (cargo-fuzz's `--fuzz-dir`).
pub const FUZZ_DIR: &str = "kernel/fuzz";

/// The fuzz targets (`kernel/fuzz/fuzz_targets/*.rs`).
pub const TARGETS: &[&str] = &["nfit", "sdt", "e820", "cmdline", "madt"];

/// One target's run: executions and whether it found nothing.
pub struct Outcome {
    pub target: &'static str,
    pub runs: u64,
    pub seconds: u64,
    pub ok: bool,
}

/// `qemu fuzz`: every target for `seconds`, new inputs kept; one line
/// each.
pub fn cmd_fuzz(seconds: u64) -> Result<bool, String> {
    let outcomes = run(seconds, true)?;
    for o in &outcomes {
        let rate = o.runs / o.seconds.max(1);
        let verdict = if o.ok { "ok" } else { "FAILED" };
        println!(
            "fuzz: {:8} {:>10} executions in {:>3} s ({rate}/s) {verdict}",
            o.target, o.runs, o.seconds
        );
    }
    Ok(outcomes.iter().all(|o| o.ok))
}

/// "Done N runs in S second(s)" from libFuzzer's last lines.
pub fn parse_done(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().rev().find(|l| l.starts_with("Done "))?;
    let mut w = line.split_whitespace();
    let runs = w.nth(1)?.parse().ok()?;
    let secs = w.nth(2)?.parse().ok()?;
    Some((runs, secs))
}

/// Builds the targets once (release, debug assertions and overflow checks
/// on, AddressSanitizer).
fn build() -> Result<(), String> {
    let mut cmd = Command::new("cargo");
    cmd.args(["fuzz", "build", "--fuzz-dir", FUZZ_DIR, "-O", "-a"]);
    let status =
        cargo::status(&mut cmd).map_err(|e| format!("{e} (make setup installs cargo-fuzz)"))?;
    status.success().then_some(()).ok_or(format!("cargo fuzz build failed: {status}"))
}

/// Runs every target for `seconds`. With `keep`, new inputs go into the
/// repository's corpus (then minimized); without, into `target/fuzz-corpus`
/// and the repository's corpus is only read.
pub fn run(seconds: u64, keep: bool) -> Result<Vec<Outcome>, String> {
    build()?;
    let mut out = Vec::new();
    for &target in TARGETS {
        let repo = PathBuf::from("kernel/fuzz/corpus").join(target);
        let seeds = PathBuf::from("kernel/fuzz/seeds").join(target);
        let scratch = PathBuf::from("target/fuzz-corpus").join(target);
        let artifacts = PathBuf::from("target/fuzz-artifacts").join(target);
        for d in [&repo, &seeds, &scratch, &artifacts] {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        // libFuzzer writes new inputs into the first directory only.
        let dirs: Vec<&Path> =
            if keep { vec![&repo, &seeds] } else { vec![&scratch, &repo, &seeds] };
        let mut cmd = Command::new("cargo");
        cmd.args(["fuzz", "run", "--fuzz-dir", FUZZ_DIR, "-O", "-a", target]);
        cmd.args(dirs.iter().map(|d| d.as_os_str()));
        cmd.arg("--");
        cmd.arg(format!("-max_total_time={seconds}"));
        cmd.arg(format!("-artifact_prefix={}/", artifacts.display()));
        // A unit slower than this is a hang; inputs are kept small.
        cmd.args(["-timeout=10", "-max_len=8192", "-rss_limit_mb=2048"]);
        println!("== fuzz {target}: {seconds} s over {}", repo.display());
        let result = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).output();
        let o = result.map_err(|e| format!("cannot run cargo fuzz: {e}"))?;
        let text = String::from_utf8_lossy(&o.stderr);
        let (runs, secs) = parse_done(&text).unwrap_or((0, 0));
        let ok = o.status.success() && runs > 0;
        println!(
            "test fuzz::{target} ... {} ({runs} executions in {secs} s)",
            report::outcome(&format!("fuzz::{target}"), ok)
        );
        if !ok {
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            for l in tail.into_iter().rev() {
                println!("  {l}");
            }
        }
        if keep && ok {
            let _ = Command::new("cargo")
                .args(["fuzz", "cmin", "--fuzz-dir", FUZZ_DIR, "-O", "-a", target])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        out.push(Outcome { target, runs, seconds: secs, ok });
    }
    Ok(out)
}

/// `BIOS-e820: [mem 0xSTART-0xLAST] TYPE` lines as the `e820` target's
/// 17-byte records (start, size, type selector as in the target).
pub fn e820_records(log: &str) -> Vec<u8> {
    const TYPES: &[&str] =
        &["usable", "reserved", "ACPI data", "ACPI NVS", "unusable", "persistent (type 7)"];
    let mut out = Vec::new();
    for l in log.lines() {
        let Some(rest) = l.split("BIOS-e820: [mem 0x").nth(1) else { continue };
        let Some((range, ty)) = rest.split_once("] ") else { continue };
        let Some((a, b)) = range.split_once("-0x") else { continue };
        let (Ok(a), Ok(b)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) else {
            continue;
        };
        let sel = TYPES.iter().position(|t| ty.trim() == *t).unwrap_or(1);
        out.extend(a.to_le_bytes());
        out.extend((b - a + 1).to_le_bytes());
        out.push(sel as u8);
    }
    out
}

/// The `sdt` target's input for a dump: base, then memory from the base
/// with the RSDP at it and every table at its own address. `None` when
/// the tables are too spread out for a small image.
pub fn sdt_image(tables: &[(String, u64, Vec<u8>)]) -> Option<Vec<u8>> {
    let (_, _, rsdp) = tables.iter().find(|t| t.0 == "RSDP")?;
    let others: Vec<_> = tables.iter().filter(|t| t.0 != "RSDP").collect();
    let low = others.iter().map(|t| t.1).min()?;
    let high = others.iter().map(|t| t.1 + t.2.len() as u64).max()?;
    let base = (low.checked_sub(64)?) & !0xf;
    let size = usize::try_from(high - base).ok().filter(|&s| s <= 1 << 20)?;
    let mut mem = vec![0u8; size];
    mem[..rsdp.len()].copy_from_slice(rsdp);
    for (_, addr, bytes) in others {
        let off = (addr - base) as usize;
        mem[off..off + bytes.len()].copy_from_slice(bytes);
    }
    let mut out = base.to_le_bytes().to_vec();
    out.extend(mem);
    Some(out)
}

/// The `madt` target's input for a table: a first byte with the policy's
/// knobs (0x20: boot APIC ID 0, at most 4 CPUs, no x2APIC), then the table.
pub fn madt_seed(table: &[u8]) -> Vec<u8> {
    let mut out = vec![0x20];
    out.extend_from_slice(table);
    out
}

/// `qemu fuzz-seeds`: [`seeds`] from the kernel `make run` boots.
pub fn cmd_seeds(timeout: Duration) -> Result<bool, String> {
    seeds(&cargo::build_kernel(false)?, timeout)?;
    Ok(true)
}

/// Boots the kernel on the machines of [`plan::SEEDS`] (with and without
/// an NVDIMM), types
/// `acpidump` and `mem`, and writes the tables, the maps and the command
/// lines into `kernel/fuzz/seeds/TARGET/` (read by every run, never minimized).
pub fn seeds(kernel: &Path, timeout: Duration) -> Result<(), String> {
    let p = profile::find("bios")?;
    for (name, shape) in plan::SEEDS {
        let m = Machine::new(p, kernel, &format!("seed-{name}")).shape(shape).timeout(timeout);
        m.prepare_nvdimm()?;
        let cmdline = shape.cmdline;
        let steps = ["acpidump", "mem", "poweroff"].map(|c| Step::Type(c.into()));
        let b = machine::boot_captured(&m, false, &steps)?;
        let v = report::verdict(b.ending, &b.log, &b.stderr);
        if v != report::Verdict::Pass {
            return Err(format!("{name}: {v}"));
        }
        let tables = acpi::sdt::parse_dump(&b.log);
        let write = |target: &str, file: String, bytes: &[u8]| -> Result<(), String> {
            let dir = PathBuf::from("kernel/fuzz/seeds").join(target);
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            let path = dir.join(file);
            std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
            println!("{}: {} bytes", path.display(), bytes.len());
            Ok(())
        };
        for (sig, addr, bytes) in tables.iter().filter(|t| t.0 == "NFIT") {
            write("nfit", format!("seed-{name}-{sig}-{addr:x}"), bytes)?;
        }
        for (_, addr, bytes) in tables.iter().filter(|t| t.0 == "APIC") {
            write("madt", format!("seed-{name}-APIC-{addr:x}"), &madt_seed(bytes))?;
        }
        match sdt_image(&tables) {
            Some(img) => write("sdt", format!("seed-{name}"), &img)?,
            None => println!("{name}: tables too spread out for an sdt seed"),
        }
        write("e820", format!("seed-{name}"), &e820_records(&b.log))?;
        let line = format!("{cmdline} poweroff loglevel=8 console=ttyS0 iomem");
        write("cmdline", format!("seed-{name}"), line.trim().as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn madt_seed_is_knobs_then_table() {
        assert_eq!(madt_seed(b"APIC"), b"\x20APIC");
    }

    #[test]
    fn reads_libfuzzer_totals() {
        let text = "#123 pulse\nstat::x\nDone 1213003 runs in 16 second(s)\n";
        assert_eq!(parse_done(text), Some((1_213_003, 16)));
        assert_eq!(parse_done("crash\n"), None);
    }

    #[test]
    fn e820_lines_become_records() {
        let log = "[ 0.1] BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable\n\
                   BIOS-e820: [mem 0x00000000000f0000-0x00000000000fffff] reserved\n";
        let r = e820_records(log);
        assert_eq!(r.len(), 34);
        assert_eq!(u64::from_le_bytes(r[8..16].try_into().unwrap()), 0x9fc00);
        assert_eq!((r[16], r[33]), (0, 1));
    }

    #[test]
    fn sdt_image_puts_tables_at_their_addresses() {
        let t = vec![
            ("RSDP".to_string(), 0xf59d0, vec![1u8; 20]),
            ("RSDT".to_string(), 0x7ffe_1000, vec![2u8; 8]),
            ("NFIT".to_string(), 0x7ffe_1100, vec![3u8; 4]),
        ];
        let img = sdt_image(&t).unwrap();
        let base = u64::from_le_bytes(img[..8].try_into().unwrap());
        assert_eq!(base, 0x7ffe_1000 - 64);
        let mem = &img[8..];
        assert_eq!(&mem[..20], &[1u8; 20]);
        assert_eq!(&mem[64..72], &[2u8; 8]);
        assert_eq!(&mem[0x140..0x144], &[3u8; 4]);
    }
}

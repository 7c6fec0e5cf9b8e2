//! Data on persistent memory across boots and kernels, on a 256 MiB QEMU
//! NVDIMM whose backing file the host filled with a known pattern:
//!
//! - Tessera writes an fsdax (then devdax) info block with `pmem mode`
//!   and text with `pmem write`; the info block has Linux's layout and every
//!   byte outside the info block, the memmap area and the text is what the
//!   host wrote. A second boot finds the block, keeps its memmap below
//!   `dataoff` and reads the text back. `pmem mode raw` clears the block.
//! - Debian's Linux 6.1 boots on the file Tessera wrote: it binds `pfn0.0`
//!   (`dax0.0`) with the data range Tessera reported and reads Tessera's text.
//! - Linux configures fsdax (devdax) through sysfs and writes; Tessera boots
//!   on that file, reports the same data range and reads Linux's text.

use std::path::Path;
use std::time::Duration;

use mm::nd_pfn::{self, INFO_OFFSET, INFO_SIZE, Kind};

use options::contract::SHELL_PROMPT;

use crate::device::{self, Device, Format, NVDIMM_BASE};
use crate::linux;
use crate::machine::{self, Machine, Step};
use crate::plan;
use crate::profile::{self, Profile};
use crate::report::{self, Verdict};

/// The NVDIMM's size ([`plan::NVDIMM`]).
const SIZE: u64 = 256 << 20;
/// What Linux 6.1 computes for this device (measured, DESIGN.md 4c).
const DATAOFF: u64 = 6 << 20;
const DATA: (u64, u64) = (NVDIMM_BASE + DATAOFF, NVDIMM_BASE + SIZE);
const LINUX_TIMEOUT: Duration = Duration::from_secs(120);

/// Counts checks and prints one test line each.
struct Tally<'a> {
    prefix: &'a str,
    passed: usize,
    failed: usize,
}

impl Tally<'_> {
    fn check(&mut self, name: &str, ok: bool, detail: &str) -> bool {
        let d = if detail.is_empty() { String::new() } else { format!(" ({detail})") };
        let full = format!("{}::{name}", self.prefix);
        println!("test {full} ... {}{d}", report::outcome(&format!("{full}{d}"), ok));
        if ok {
            self.passed += 1
        } else {
            self.failed += 1
        }
        ok
    }
}

/// The machine of every boot here: [`plan::NVDIMM`] on `p`, its backing
/// file `file` (prepared once and shared by the boots of one check).
fn on_file(p: &'static Profile, kernel: &Path, tag: &str, file: &Path) -> Machine {
    let mut m = Machine::new(p, kernel, tag).shape(&plan::NVDIMM);
    if let Some((_, f)) = &mut m.nvdimm {
        *f = file.to_path_buf();
    }
    m
}

/// Debian's Linux on the same file, on BIOS and without options, whatever
/// the profile: it only has to read and write the device (its kernel and
/// initramfs come from the kit).
fn linux_on(tag: &str, file: &Path) -> Result<Machine, String> {
    let mut m = on_file(profile::find("bios")?, Path::new(""), tag, file).timeout(LINUX_TIMEOUT);
    m.cmdline.clear();
    Ok(m)
}

/// Boots Tessera on the NVDIMM `file`, types `commands` into its shell,
/// then `poweroff`. Returns the log and each command's answer.
fn tessera(
    kernel: &Path,
    p: &'static Profile,
    tag: &str,
    file: &Path,
    commands: &[&str],
    timeout: Duration,
) -> Result<(String, Vec<String>, Verdict), String> {
    let m = on_file(p, kernel, tag, file).timeout(timeout);
    let mut steps: Vec<Step> = commands.iter().map(|c| Step::Type(c.to_string())).collect();
    steps.push(Step::Type("poweroff".into()));
    let b = machine::boot_captured(&m, false, &steps)?;
    let v = report::verdict(b.ending, &b.log, &b.stderr);
    let answers = b.log.split(SHELL_PROMPT).skip(1).map(String::from).collect();
    // Every boot on the device is also clean: no error line.
    let error = b.log.lines().find(|l| l.contains("] error: ")).unwrap_or_default().to_string();
    let v = match (v, error.is_empty()) {
        (Verdict::Pass, false) => Verdict::Fail(format!("logged {error:?}")),
        (v, _) => v,
    };
    Ok((b.log, answers, v))
}

/// The ASCII column of `pmem read`'s dump, joined.
fn dumped_text(answer: &str) -> String {
    answer.lines().filter(|l| l.len() > 51 && l.as_bytes()[8] == b':').map(|l| &l[51..]).collect()
}

/// `start` and `end` (exclusive) of the first `data [mem A-B]` after `key`.
fn data_range(log: &str, key: &str) -> Option<(u64, u64)> {
    let line = log.lines().find(|l| l.contains(key))?;
    let rest = &line[line.find("data [mem 0x")? + 12..];
    let (a, rest) = rest.split_once("-0x")?;
    let b = &rest[..rest.find(']')?];
    let a = u64::from_str_radix(a, 16).ok()?;
    let b = u64::from_str_radix(b, 16).ok()?;
    Some((a, b + 1))
}

/// `NAME=VALUE` printed by a Linux script.
fn linux_value(log: &str, name: &str) -> Option<u64> {
    let key = format!("{name}=");
    let v = log.lines().find_map(|l| l.trim().strip_prefix(&key))?.trim();
    match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    }
}

/// Device offsets the kernel may have written after `pmem mode` and
/// `pmem write TEXT`: the info block, the memmap area, the text.
fn mode_writes(text: &str) -> Vec<(u64, u64)> {
    vec![(INFO_OFFSET, DATAOFF), (DATAOFF, DATAOFF + text.len() as u64)]
}

fn compare_line(t: &mut Tally, name: &str, file: &Path, dev: &Device, allowed: &[(u64, u64)]) {
    match device::compare(file, dev, allowed) {
        Ok(d) => {
            let detail = format!(
                "{} bytes changed outside the info block, memmap area and written data{}; {} inside",
                d.changed,
                d.first.map_or(String::new(), |o| format!(", first at {o:#x}")),
                d.allowed_changed
            );
            t.check(name, d.changed == 0, &detail);
        }
        Err(e) => {
            t.check(name, false, &e);
        }
    }
}

/// Tessera writes `kind`, reboots and reads; Linux reads what Tessera
/// wrote; for devdax, `pmem mode raw` clears the block.
fn tessera_first(
    kernel: &Path,
    p: &'static Profile,
    kind: Kind,
    kit: &Result<linux::Kit, String>,
    timeout: Duration,
    t: &mut Tally,
) -> Result<(), String> {
    let k = kind.name();
    let base = format!("{}-persist-{k}", p.name);
    let file = machine::nvdimm_file(&base);
    let mut dev = device::create(&file, NVDIMM_BASE, SIZE, Format::Raw)?;
    let text = format!("hello from tessera {k}");
    let write = format!("pmem write region0 0 {text}");
    let mode = format!("pmem mode region0 {k}");
    let (log, answers, v) =
        tessera(kernel, p, &format!("{base}-1"), &file, &[&mode, &write, "pmem"], timeout)?;
    t.check(&format!("{k}::first_boot_passes"), v == Verdict::Pass, &v.to_string());
    let wrote = format!(
        "pmem: namespace0.0: wrote {k} info block v1.4: map dev, align 0x200000, dataoff 0x600000, npfns 64000, data [mem 0x0000000100600000-0x000000010fffffff] (262144000 bytes)"
    );
    t.check(&format!("{k}::writes_linux_layout"), log.contains(&wrote), &wrote);
    let block: [u8; INFO_SIZE] = device::info_block(&file)?;
    let layout = nd_pfn::validate(&block, NVDIMM_BASE, SIZE);
    let ok = matches!(layout, Ok(Some(l)) if l.kind() == kind && l.sb.dataoff == DATAOFF && l.sb.npfns == 64000);
    let detail = match layout {
        Ok(Some(l)) => {
            format!("{} dataoff {:#x} npfns {}", l.kind().name(), l.sb.dataoff, l.sb.npfns)
        }
        other => format!("{other:?}"),
    };
    t.check(&format!("{k}::info_block_on_the_media"), ok, &detail);
    let on_media = device::read_at(&file, DATAOFF, text.len())?;
    t.check(&format!("{k}::text_at_dataoff"), on_media == text.as_bytes(), "");
    compare_line(
        t,
        &format!("{k}::first_boot_writes_nothing_else"),
        &file,
        &dev,
        &mode_writes(&text),
    );
    let listed = answers.get(2).map_or("", String::as_str);
    let want = [
        "info block [mem 0x0000000100001000-0x0000000100001fff]",
        "memmap     [mem 0x0000000100002000-0x00000001005fffff]",
        "data       [mem 0x0000000100600000-0x000000010fffffff] (262144000 bytes)",
    ];
    let missing: Vec<_> = want.iter().filter(|w| !listed.contains(**w)).collect();
    t.check(&format!("{k}::pmem_lists_the_layout"), missing.is_empty(), &format!("{missing:?}"));
    // From now on the device holds the info block and the text.
    dev.overlays.push((INFO_OFFSET, block.to_vec()));
    dev.overlays.push((DATAOFF, text.clone().into_bytes()));
    let memmap = [(INFO_OFFSET + INFO_SIZE as u64, DATAOFF)];

    let read = format!("pmem read region0 0 {}", text.len());
    let (log, answers, v) = tessera(kernel, p, &format!("{base}-2"), &file, &[&read], timeout)?;
    t.check(&format!("{k}::second_boot_passes"), v == Verdict::Pass, &v.to_string());
    let probed = format!(
        "pmem: namespace0.0: {k} info block v1.4: map dev, align 0x200000, dataoff 0x600000"
    );
    t.check(&format!("{k}::second_boot_finds_the_block"), log.contains(&probed), &probed);
    let got = dumped_text(answers.first().map_or("", String::as_str));
    t.check(&format!("{k}::second_boot_reads_the_text"), got.contains(&text), &got);
    compare_line(t, &format!("{k}::second_boot_writes_only_memmap"), &file, &dev, &memmap);

    // Linux on the same file: the same data range, the same bytes.
    match kit {
        Ok(kit) => {
            let script = match kind {
                // The pfn device Linux binds at boot is pfn0.0 or pfn0.1
                // (its seed races the probe): the one with a driver.
                Kind::Fsdax => format!(
                    "for d in /sys/bus/nd/devices/pfn0.*; do [ -e $d/driver ] && break; done\n\
                     for a in align resource size; do echo \"$a=$(cat $d/$a)\"; done\n\
                     echo \"text=$(dd if=/dev/pmem0 bs={} count=1 2>/dev/null)\"\n",
                    text.len()
                ),
                Kind::Devdax => "d=/sys/bus/dax/devices/dax0.0\n\
                     for a in align resource size; do echo \"$a=$(cat $d/$a)\"; done\n"
                    .to_string(),
            };
            let tag = format!("{base}-linux");
            match linux_on(&tag, &file).and_then(|m| linux::boot(kit, &m, &script)) {
                Ok(out) => {
                    let (rs, re) = data_range(&log, &probed).unwrap_or_default();
                    let got = (
                        linux_value(&out, "align"),
                        linux_value(&out, "resource"),
                        linux_value(&out, "size"),
                    );
                    let want = (Some(2 << 20), Some(rs), Some(re - rs));
                    t.check(
                        &format!("{k}::linux_binds_tessera_layout"),
                        got == want && (rs, re) == DATA,
                        &format!("Linux align/resource/size {got:?}, Tessera {want:?}"),
                    );
                    if kind == Kind::Fsdax {
                        let seen = out.contains(&format!("text={text}"));
                        t.check("fsdax::linux_reads_tessera_text", seen, "");
                    }
                    compare_line(
                        t,
                        &format!("{k}::linux_writes_only_memmap"),
                        &file,
                        &dev,
                        &memmap,
                    );
                }
                Err(e) => {
                    t.check(&format!("{k}::linux_binds_tessera_layout"), false, &e);
                }
            }
        }
        Err(e) => {
            t.check(&format!("{k}::linux_binds_tessera_layout"), false, e);
        }
    }

    if kind == Kind::Devdax {
        let (log, answers, v) = tessera(
            kernel,
            p,
            &format!("{base}-3"),
            &file,
            &["pmem mode region0 raw", "pmem"],
            timeout,
        )?;
        t.check("raw::third_boot_passes", v == Verdict::Pass, &v.to_string());
        let cleared = "pmem: namespace0.0: cleared the info block at offset 0x1000: raw";
        t.check("raw::clears_the_info_block", log.contains(cleared), cleared);
        let listed = answers.get(1).map_or("", String::as_str);
        t.check("raw::pmem_lists_raw", listed.contains("namespace0.0: mode raw"), "");
        dev.overlays.push((INFO_OFFSET, vec![0; INFO_SIZE]));
        compare_line(t, "raw::clearing_writes_only_the_block", &file, &dev, &memmap);
    }
    Ok(())
}

/// Linux writes `kind` and data through sysfs; Tessera boots on the file.
fn linux_first(
    kernel: &Path,
    p: &'static Profile,
    kind: Kind,
    kit: &linux::Kit,
    timeout: Duration,
    t: &mut Tally,
) -> Result<(), String> {
    let k = kind.name();
    let base = format!("{}-linux-{k}", p.name);
    let file = machine::nvdimm_file(&base);
    device::create(&file, NVDIMM_BASE, SIZE, Format::Raw)?;
    let text = "hello from linux";
    let (seed, driver, data) = match kind {
        Kind::Fsdax => (
            "pfn_seed",
            "nd_pmem",
            format!("echo -n '{text}' | dd of=/dev/pmem0 bs=512 conv=notrunc 2>/dev/null\nsync\n"),
        ),
        Kind::Devdax => ("dax_seed", "dax_pmem", String::new()),
    };
    let script = format!(
        "N=/sys/bus/nd/devices\n\
         echo namespace0.0 > /sys/bus/nd/drivers/nd_pmem/unbind\n\
         d=$(cat $N/region0/{seed})\n\
         echo namespace0.0 > $N/$d/namespace\n\
         echo pmem > $N/$d/mode\n\
         echo 2097152 > $N/$d/align\n\
         echo 12345678-1234-1234-1234-123456789abc > $N/$d/uuid\n\
         echo $d > /sys/bus/nd/drivers/{driver}/bind\n\
         for a in align resource size; do echo \"$a=$(cat $N/$d/$a)\"; done\n\
         {data}"
    );
    let out = linux_on(&format!("{base}-linux"), &file).and_then(|m| linux::boot(kit, &m, &script));
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            t.check(&format!("{k}::linux_configures"), false, &e);
            return Ok(());
        }
    };
    let (res, size) = (linux_value(&out, "resource"), linux_value(&out, "size"));
    let ok = t.check(
        &format!("{k}::linux_configures"),
        res.is_some() && size.is_some(),
        &format!("resource {res:?} size {size:?}"),
    );
    if !ok {
        return Ok(());
    }
    let mut commands = vec!["pmem"];
    let read = format!("pmem read region0 0 {}", text.len());
    if kind == Kind::Fsdax {
        commands.push(&read);
    }
    let (log, answers, v) =
        tessera(kernel, p, &format!("{base}-tessera"), &file, &commands, timeout)?;
    t.check(&format!("{k}::tessera_boots_on_linux_device"), v == Verdict::Pass, &v.to_string());
    let probed = format!("pmem: namespace0.0: {k} info block v1.4: map dev, align 0x200000");
    let range = data_range(&log, &probed);
    let want = res.zip(size).map(|(r, s)| (r, r + s));
    t.check(
        &format!("{k}::tessera_finds_linux_layout"),
        range.is_some() && range == want,
        &format!("Tessera data {range:x?}, Linux {want:x?}"),
    );
    if kind == Kind::Fsdax {
        let got = dumped_text(answers.get(1).map_or("", String::as_str));
        t.check("fsdax::tessera_reads_linux_text", got.contains(text), &got);
    }
    Ok(())
}

/// Every persistence and Linux interop check on profile `p`.
pub fn run(
    kernel: &Path,
    p: &'static Profile,
    timeout: Duration,
) -> Result<(usize, usize), String> {
    let prefix = format!("persist::{}", p.name);
    let mut t = Tally { prefix: &prefix, passed: 0, failed: 0 };
    println!("== {} persist: Tessera and Debian's Linux on one NVDIMM file", p.name);
    let kit = linux::kit();
    if let Ok(k) = &kit {
        println!(
            "== {} persist: Linux {} from Debian ({})",
            p.name,
            k.version,
            k.vmlinuz.display()
        );
    }
    for kind in [Kind::Fsdax, Kind::Devdax] {
        tessera_first(kernel, p, kind, &kit, timeout, &mut t)?;
    }
    match &kit {
        Ok(kit) => {
            for kind in [Kind::Fsdax, Kind::Devdax] {
                linux_first(kernel, p, kind, kit, timeout, &mut t)?;
            }
        }
        Err(e) => {
            t.check("linux_kit", false, e);
        }
    }
    println!("== {} persist: {} passed, {} failed", p.name, t.passed, t.failed);
    Ok((t.passed, t.failed))
}

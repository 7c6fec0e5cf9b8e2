//! `qemu bench`: boots the `bench` kernel binary on each machine of
//! [`plan::BENCH`] and prints its `bench: NAME VALUE UNIT` lines as one
//! table, a column per machine; on the columns marked `linux` it also boots
//! Debian's Linux 6.1 ([`crate::linux`]) on the same QEMU machine (`-m`,
//! CPUs, NVDIMM prepared the same way) and adds Linux's figures and the
//! ratios Tessera / Linux. Every value comes from that run; all of them go
//! to `target/bench.json` too, as `{column: {row: number}}`.
//!
//! Both kernels boot `quiet` (Linux through [`crate::linux`], Tessera
//! through [`tessera_cmdline`]): neither draws its boot log on a console,
//! so neither figure includes that. Both also boot with their System RAM
//! preallocated by QEMU
//! ([`prealloc_args`], `prealloc=on`): on these machines the
//! host backs guest RAM lazily, and a first write to a 2 MiB piece of it
//! costs 6 to 13 ms (nested virtualisation), or nothing when the host
//! happens to hand out memory it backed before; a memmap is written into
//! fresh memory, so without it one boot's bring-up varies fivefold from
//! the next (2 GiB: deferred init 20 to 107 ms for the same kernel), on
//! both sides. With it the figures are the kernels' own work.
//!
//! Memory bring-up, the same span on both sides, in µs:
//!
//! - Tessera's `bringup`: from the start of the memory model's set-up
//!   (`defer_init::mm_start_us`, where sparse init begins) until the page
//!   allocator is ready (`page_alloc::ready_us`), plus the deferred init's
//!   own duration (`deferred::report().deferred.us`). What lies between the
//!   two phases (SMP bring-up, the rest of init) is left out.
//!   (`mm_bringup`, from the same start until deferred init ends, keeps it.)
//! - Linux's `linux_bringup`: phase 1 is the kernel-log timestamp of the
//!   `Memory:` line (`mem_init`, all early memory in the buddy allocator)
//!   minus that of `NODE_DATA(0) allocated`, the last line Linux prints
//!   before `sparse_init()` (setup_arch, paging_init); phase 2 is N from
//!   `node 0 deferred pages initialised in Nms`, which Linux prints in whole
//!   milliseconds, so phase 2 has millisecond resolution. Both phases are
//!   printed too (`linux_bringup_early`, `linux_deferred_init`).
//!   Under TCG Linux's quick PIT calibration of the TSC often fails, and
//!   then every early line is stamped 0.000000: Linux is booted with
//!   `tsc_early_khz=` set to the host's TSC frequency (under TCG the guest
//!   reads the host's TSC): the host kernel's, from `/proc/cpuinfo`
//!   ([`host_tsc_khz`]; this crate forbids `unsafe`, so it cannot time
//!   `rdtsc` itself), else what Tessera's boot of the same column
//!   calibrated ([`guest_tsc_khz`]). A column whose stamps are still 0
//!   fails with one line.
//!
//! Adding an fsdax namespace, in µs:
//!
//! - Tessera's `fsdax_add`: `pmem_region_add` (the first region's
//!   `pmem::add`, memmap on the device) when that region is fsdax.
//! - Linux's `linux_fsdax_add`: the script unbinds the pfn device that
//!   `nd_pmem` bound at boot (`pfn0.*`), writes a marker line to `/dev/kmsg`,
//!   binds it again, writes a second marker, and checks that `/dev/pmem0`
//!   is back; the figure is the difference of the markers' kernel-log
//!   timestamps.
//!
//! Device-dax memmap at 2 MiB alignment, bytes per GiB of namespace, on
//! the NVDIMM columns:
//!
//! - Tessera's `pmem_device_per_gib_devdax` (memmap on the device) and
//!   `pmem_ram_per_gib_devdax_mem` (memmap in RAM, page tables included;
//!   measured where it fits the sixteenth of RAM a namespace may take):
//!   the bench binary re-makes the region devdax both ways.
//! - Linux's, from one more boot with a raw NVDIMM of the column's size
//!   ([`crate::linux_devdax`]): `linux_ram_per_gib_devdax_mem`, the free
//!   pages (per-CPU lists included) a `map=mem` rebind of `dax0.0` takes,
//!   and `linux_device_per_gib_devdax`, `npfns` times 64 of the `map=dev`
//!   info block Linux wrote (the memmap it lays on the device).
//!
//! `bringup_vs_linux`, `fsdax_add_vs_linux`, `devdax_mem_vs_linux` and
//! `devdax_device_vs_linux` are Tessera's figure over Linux's, with two
//! decimals (below 1: Tessera is faster or smaller).
//!
//! A Tessera boot that fails stops the run; a Linux boot or reading that
//! fails is reported in one line (`bench COLUMN: Linux FAILED: ...`), its
//! rows stay `-`, and `make bench` fails after the table and the JSON are
//! written. Linux boots get at least 300 s. Under TCG on a busy host the
//! figures of one run vary by tens of percent from the next; compare
//! columns of the same run.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::machine::{self, Machine};
use crate::{cargo, linux, linux_devdax, plan, profile, report};

/// Where the figures go as JSON.
pub const JSON_PATH: &str = "target/bench.json";

/// Tessera's command line in the bench: the column's, plus `quiet`
/// (errors only on the console, `loglevel=4`), the option Linux boots with
/// here, so that neither kernel's figures include drawing its boot log.
pub fn tessera_cmdline(cmdline: &str) -> String {
    let mut words: Vec<&str> = cmdline.split_whitespace().collect();
    if !words.contains(&"quiet") {
        words.push("quiet");
    }
    words.join(" ")
}

/// QEMU arguments that back all of the guest's System RAM before the guest
/// runs (see the module doc), given to both kernels' boots: the RAM as a
/// backend of its own with `prealloc=on` (`-mem-prealloc` would preallocate
/// every memory backend, the NVDIMM's sparse file too). `mem` is QEMU's
/// `-m` value.
pub fn prealloc_args(mem: &str) -> Vec<String> {
    let size = mem.split(',').next().unwrap_or(mem);
    vec![
        "-object".into(),
        format!("memory-backend-ram,id=bench-ram,size={size},prealloc=on"),
        "-machine".into(),
        "memory-backend=bench-ram".into(),
    ]
}

/// A column's rows: name, value, unit, in the order printed.
pub type Rows = Vec<(String, String, String)>;

/// `bench: NAME VALUE UNIT` lines of a serial log.
pub fn parse(log: &str) -> Rows {
    log.lines()
        .filter_map(|l| l.split_once("bench: ").map(|(_, rest)| rest))
        .filter_map(|rest| {
            let mut w = rest.split_whitespace();
            Some((w.next()?.into(), w.next()?.into(), w.next().unwrap_or("").into()))
        })
        .collect()
}

/// The host's TSC frequency in kHz, from the host kernel's
/// `/proc/cpuinfo` text: its `cpu MHz` is the frequency Linux calibrated
/// the TSC at (`cpu_khz`) when the CPU has a constant TSC and no
/// APERF/MPERF (with those, it is the current core clock instead, and this
/// gives `None`). (This crate forbids `unsafe`, so it cannot time `rdtsc`
/// itself.)
pub fn host_tsc_khz(cpuinfo: &str) -> Option<u64> {
    let field = |name: &str| {
        cpuinfo.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == name).then(|| v.trim())
        })
    };
    let flags: Vec<&str> = field("flags")?.split_whitespace().collect();
    if !flags.contains(&"constant_tsc") || flags.contains(&"aperfmperf") {
        return None;
    }
    let mhz: f64 = field("cpu MHz")?.parse().ok()?;
    Some((mhz * 1000.0).round() as u64).filter(|&k| k > 0)
}

/// The TSC frequency in kHz a Tessera boot calibrated (against the PIT),
/// from its `tsc: Detected A.B MHz processor` line: the fallback when the
/// host's is unknown (under TCG the guest reads the host's TSC).
pub fn guest_tsc_khz(log: &str) -> Option<u64> {
    log.lines().find_map(|l| {
        let rest = l.split_once("tsc: Detected ")?.1.strip_suffix(" MHz processor")?;
        let (mhz, frac) = rest.split_once('.')?;
        Some(mhz.parse::<u64>().ok()? * 1000 + frac.parse::<u64>().ok()?)
    })
}

/// Linux's script, after a line setting `want_pfn` (see [`linux_script`]):
/// re-binds the fsdax namespace's pfn device when there is one (timed by
/// two `/dev/kmsg` markers), then prints dmesg. libnvdimm registers its
/// devices asynchronously, so the script may start before `nd_pmem` has
/// bound the pfn device (seconds for a 64 GiB namespace, whose memmap it
/// initializes; the `driver` link appears when the probe starts, the disk
/// when it ends): with `want_pfn=1` it waits for both, up to 240 s.
const LINUX_SCRIPT: &str = r#"p=
n=0
while :; do
    for d in /sys/bus/nd/devices/pfn*; do
        drv=$(readlink $d/driver 2>/dev/null)
        [ "${drv##*/}" = nd_pmem ] && p=${d##*/}
    done
    [ -n "$p" ] && [ -b /dev/pmem0 ] && break
    [ "$want_pfn" != 1 ] || [ $n -ge 240 ] && break
    n=$((n + 1))
    sleep 1
done
if [ -n "$p" ] && [ -b /dev/pmem0 ]; then
    echo "== bench pfn $p"
    echo $p > /sys/bus/nd/drivers/nd_pmem/unbind || echo "== bench unbind failed"
    echo "tessera-bench: bind begin" > /dev/kmsg
    echo $p > /sys/bus/nd/drivers/nd_pmem/bind || echo "== bench bind failed"
    echo "tessera-bench: bind end" > /dev/kmsg
    if [ -b /dev/pmem0 ]; then echo "== bench pmem0 back"; else echo "== bench pmem0 missing"; fi
elif [ -n "$p" ]; then
    echo "== bench no /dev/pmem0 for $p"
else
    echo "== bench no pfn device bound to nd_pmem"
fi
echo '== bench dmesg'
dmesg
echo '== bench end'
"#;

/// Linux's script for a machine with (`nvdimm`) or without an NVDIMM.
pub fn linux_script(nvdimm: bool) -> String {
    format!("want_pfn={}\n{LINUX_SCRIPT}", u8::from(nvdimm))
}

/// The kernel-log lines of Linux's output (between the script's markers).
fn dmesg(out: &str) -> impl Iterator<Item = &str> {
    out.lines()
        .skip_while(|l| l.trim_end() != "== bench dmesg")
        .skip(1)
        .take_while(|l| !l.starts_with("== bench end"))
}

/// Linux's memory bring-up, read from its kernel log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinuxBringup {
    /// `Memory:` minus `NODE_DATA(0) allocated`, µs.
    pub early_us: u64,
    /// `node 0 deferred pages initialised in Nms`: N.
    pub deferred_ms: u64,
}

impl LinuxBringup {
    /// Both phases, µs (the deferred one at ms resolution).
    pub fn us(&self) -> u64 {
        self.early_us + self.deferred_ms * 1000
    }
}

/// Linux's bring-up from the dmesg part of its output; one-line errors.
pub fn linux_bringup(out: &str) -> Result<LinuxBringup, String> {
    let at = |prefix: &str| {
        dmesg(out)
            .filter_map(linux::stamped)
            .find(|(_, text)| text.starts_with(prefix))
            .map(|(t, _)| t)
            .ok_or(format!("no `{prefix}` line in Linux's dmesg"))
    };
    let (start, end) = (at("NODE_DATA(0) allocated")?, at("Memory:")?);
    if start == 0 {
        return Err(format!(
            "Linux's early kernel-log timestamps are 0 (`NODE_DATA(0) allocated` at 0.000000,              `Memory:` at {}.{:06}): its early TSC clock did not run",
            end / 1_000_000,
            end % 1_000_000
        ));
    }
    if end < start {
        return Err(format!("Linux's `Memory:` ({end} us) precedes `NODE_DATA(0)` ({start} us)"));
    }
    let deferred_ms = dmesg(out)
        .filter_map(linux::stamped)
        .find_map(|(_, text)| {
            text.strip_prefix("node 0 deferred pages initialised in ")?
                .strip_suffix("ms")?
                .trim()
                .parse()
                .ok()
        })
        .ok_or("no `node 0 deferred pages initialised in Nms` line in Linux's dmesg")?;
    Ok(LinuxBringup { early_us: end - start, deferred_ms })
}

/// Linux's re-bind of the fsdax pfn device, µs between the script's
/// `/dev/kmsg` markers; fails unless `/dev/pmem0` came back.
pub fn linux_fsdax_add(out: &str) -> Result<u64, String> {
    let said = |s: &str| out.lines().any(|l| l.trim_end() == s);
    if said("== bench no pfn device bound to nd_pmem") {
        return Err("no pfn device bound to nd_pmem after Linux booted".into());
    }
    if let Some(l) = out.lines().find(|l| l.starts_with("== bench no /dev/pmem0 for ")) {
        return Err(format!("{} after Linux booted", l.trim_start_matches("== bench ")));
    }
    for fail in ["unbind", "bind"] {
        if said(&format!("== bench {fail} failed")) {
            return Err(format!("Linux: writing the pfn device to nd_pmem/{fail} failed"));
        }
    }
    if !said("== bench pmem0 back") {
        return Err("/dev/pmem0 missing after re-binding the pfn device".into());
    }
    let at = |marker: &str| {
        dmesg(out)
            .filter_map(linux::stamped)
            .find(|(_, text)| text.trim_end() == marker)
            .map(|(t, _)| t)
            .ok_or(format!("no `{marker}` line in Linux's dmesg"))
    };
    let (begin, end) = (at("tessera-bench: bind begin")?, at("tessera-bench: bind end")?);
    if end <= begin {
        return Err(format!("Linux's bind markers are not in order ({begin} us, {end} us)"));
    }
    Ok(end - begin)
}

/// `a / b` with two decimals (`None` when `b` is 0).
pub fn ratio(a: f64, b: f64) -> Option<String> {
    (b > 0.0).then(|| format!("{:.2}", a / b))
}

/// A JSON string literal.
fn json_str(s: &str) -> String {
    let mut o = String::from('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// `{column: {row: number}}`, columns and rows in table order; values that
/// are not numbers are left out.
pub fn to_json(columns: &[(&str, Rows)]) -> String {
    let mut o = String::from("{");
    for (i, (name, rows)) in columns.iter().enumerate() {
        let _ = write!(o, "{}\n  {}: {{", if i > 0 { "," } else { "" }, json_str(name));
        let nums = rows.iter().filter_map(|(r, v, _)| Some((r, v.parse::<f64>().ok()?)));
        for (j, (row, v)) in nums.filter(|(_, v)| v.is_finite()).enumerate() {
            let _ = write!(o, "{}\n    {}: {v}", if j > 0 { "," } else { "" }, json_str(row));
        }
        o.push_str("\n  }");
    }
    o.push_str("\n}\n");
    o
}

/// The value of row `row` in `rows`.
fn value(rows: &Rows, row: &str) -> Option<f64> {
    rows.iter().find(|(n, ..)| n == row)?.1.parse().ok()
}

/// Boots Linux on `col`'s machine and adds its rows and the ratios to
/// `rows`; one-line errors.
fn linux_column(
    kit: &linux::Kit,
    profile: &'static profile::Profile,
    col: &plan::BenchColumn,
    tsc_khz: Option<u64>,
    timeout: Duration,
    rows: &mut Rows,
) -> Result<(), String> {
    let mut m = Machine::new(profile, Path::new(""), &format!("bench-{}-linux", col.name))
        .shape(&col.shape)
        .timeout(timeout);
    m.cpus = col.cpus;
    m.qemu_args.extend(prealloc_args(&m.mem));
    // Tessera's own option stays out; the early TSC clock runs from the
    // start with the host's frequency (see the module doc).
    let mut words: Vec<String> =
        col.shape.cmdline.split_whitespace().filter(|w| *w != "nopmem").map(String::from).collect();
    words.extend(tsc_khz.map(|k| format!("tsc_early_khz={k}")));
    m.cmdline = words.join(" ");
    m.prepare_nvdimm()?;
    eprintln!(
        "bench: booting Linux on {} (-m {}, {})",
        col.name,
        m.mem,
        profile::Profile::cpus_text(m.cpus)
    );
    let out = linux::boot(kit, &m, &linux_script(col.shape.nvdimm.is_some()))?;
    let log = format!("serial log in {}", m.log_path().display());
    let b = linux_bringup(&out).map_err(|e| format!("{e}; {log}"))?;
    let mut push = |n: &str, v: String, u: &str| rows.push((n.into(), v, u.into()));
    push("linux_bringup", b.us().to_string(), "us");
    push("linux_bringup_early", b.early_us.to_string(), "us");
    push("linux_deferred_init", (b.deferred_ms * 1000).to_string(), "us");
    let fsdax = if col.shape.nvdimm.is_some() {
        let us = linux_fsdax_add(&out).map_err(|e| format!("{e}; {log}"))?;
        push("linux_fsdax_add", us.to_string(), "us");
        Some(us)
    } else {
        None
    };
    if let Some(r) = value(rows, "bringup").and_then(|t| ratio(t, b.us() as f64)) {
        rows.push(("bringup_vs_linux".into(), r, "ratio".into()));
    }
    if let Some(r) = fsdax.zip(value(rows, "fsdax_add")).and_then(|(l, t)| ratio(t, l as f64)) {
        rows.push(("fsdax_add_vs_linux".into(), r, "ratio".into()));
    }
    if let Some(nv) = col.shape.nvdimm {
        linux_devdax_rows(kit, nv.size, timeout, rows)?;
    }
    Ok(())
}

/// Linux's device-dax memmap at 2 MiB alignment on a `size`-byte NVDIMM
/// (one more boot, [`linux_devdax::devdax_memmap`]): RAM per GiB with
/// `map=mem` and the memmap it lays on the device per GiB with `map=dev`,
/// with Tessera's figures over them.
fn linux_devdax_rows(
    kit: &linux::Kit,
    size: u64,
    timeout: Duration,
    rows: &mut Rows,
) -> Result<(), String> {
    eprintln!("bench: booting Linux for device-dax on a {} MiB NVDIMM", size >> 20);
    let d = linux_devdax::devdax_memmap(kit, size, timeout)?;
    let mem = d.ram_per_gib_map_mem.max(0) as u64;
    let dev = d.memmap_per_gib_map_dev;
    rows.push(("linux_ram_per_gib_devdax_mem".into(), mem.to_string(), "B".into()));
    rows.push(("linux_device_per_gib_devdax".into(), dev.to_string(), "B".into()));
    let pairs = [
        ("pmem_ram_per_gib_devdax_mem", mem, "devdax_mem_vs_linux"),
        ("pmem_device_per_gib_devdax", dev, "devdax_device_vs_linux"),
    ];
    for (ours, theirs, name) in pairs {
        if let Some(r) = value(rows, ours).and_then(|t| ratio(t, theirs as f64)) {
            rows.push((name.into(), r, "ratio".into()));
        }
    }
    Ok(())
}

pub fn run(timeout: Duration) -> Result<bool, String> {
    let profile = profile::find(plan::BENCH_PROFILE)?;
    machine::check_host(profile)?;
    let tests = cargo::build_kernel_tests()?;
    let exe = tests.iter().find(|t| t.name == "bench").ok_or("no bench test binary")?;
    let kit = linux::kit()?;
    let host_tsc = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|c| host_tsc_khz(&c));
    match host_tsc {
        Some(k) => eprintln!("bench: host TSC {k} kHz (/proc/cpuinfo), Linux's tsc_early_khz"),
        None => eprintln!("bench: host TSC frequency unknown; Linux gets Tessera's calibration"),
    }
    // A Linux boot under TCG takes 10-60 s, longer on several vCPUs of a
    // busy host.
    let linux_timeout = timeout.max(Duration::from_secs(300));
    let mut ok = true;
    let mut columns: Vec<(&str, Rows)> = Vec::new();
    for col in plan::BENCH {
        let name = col.name;
        let mut m = Machine::new(profile, &exe.path, &format!("bench-{name}"))
            .shape(&col.shape)
            .timeout(timeout);
        m.cpus = col.cpus;
        m.qemu_args.extend(prealloc_args(&m.mem));
        // Linux boots `quiet` (crate::linux); so does Tessera.
        m.cmdline = tessera_cmdline(&m.cmdline);
        // The NVDIMMs are formatted fsdax first, as in the scale test.
        m.prepare_nvdimm()?;
        eprintln!("bench: booting {name} (-m {}, {})", m.mem, profile::Profile::cpus_text(m.cpus));
        let b = machine::boot_captured(&m, false, &[])?;
        let v = report::verdict(b.ending, &b.log, &b.stderr);
        if v != report::Verdict::Pass {
            println!("bench {name}: FAILED: {v}");
            return Ok(false);
        }
        let mut rows = parse(&b.log);
        if col.linux {
            let tsc_khz = host_tsc.or_else(|| guest_tsc_khz(&b.log));
            if let Err(e) = linux_column(&kit, profile, col, tsc_khz, linux_timeout, &mut rows) {
                println!("bench {name}: Linux FAILED: {e}");
                ok = false;
            }
        }
        columns.push((name, rows));
    }
    // Every row any machine reported, in the order first seen.
    let mut rows: Vec<(String, String)> = Vec::new();
    for (n, _, u) in columns.iter().flat_map(|(_, vals)| vals) {
        if !rows.iter().any(|(r, _)| r == n) {
            rows.push((n.clone(), u.clone()));
        }
    }
    let accel = crate::accel::current().name();
    print!("{:<34}", format!("bench {}/{accel}, a boot per column", profile.name));
    for (name, _) in &columns {
        print!("{name:>12}");
    }
    println!();
    for (row, unit) in rows {
        print!("{:<34}", format!("{row} ({unit})"));
        for (_, vals) in &columns {
            let v = vals.iter().find(|(n, ..)| *n == row).map_or("-", |(_, v, _)| v.as_str());
            print!("{v:>12}");
        }
        println!();
    }
    let col = |name: &str, row: &str| value(&columns.iter().find(|(n, _)| *n == name)?.1, row);
    if let (Some(fb), Some(serial)) = (col("2G", "init_done"), col("2G-serial", "init_done")) {
        println!("{:<34}{:>12.2}", "init_done 2G / 2G-serial (ratio)", fb / serial.max(1.0));
    }
    std::fs::write(JSON_PATH, to_json(&columns))
        .map_err(|e| format!("cannot write {JSON_PATH}: {e}"))?;
    println!("bench: every figure in {JSON_PATH}");
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bench_lines_only() {
        let log = "[ 0.1] sparse: 16 present\nbench: pfn_valid 42 ns/call\nbench: r 1.25 ratio\n";
        let got = super::parse(log);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], ("pfn_valid".into(), "42".into(), "ns/call".into()));
        assert_eq!(got[1].1, "1.25");
    }

    /// Linux's output around its dmesg, as the script prints it.
    fn output(dmesg: &str, before: &str) -> String {
        format!(
            "== linux script begin\n{before}== bench dmesg\n{dmesg}== bench end\n== linux script end rc=0\n"
        )
    }

    /// Lines of a real Linux 6.1 boot (2 GiB, `memmap=1536M`, one vCPU,
    /// TCG) whose early TSC clock ran.
    const TIMED: &str = "\
[    0.084684] Faking a node at [mem 0x0000000000000000-0x000000005fffffff]
[    0.085847] NODE_DATA(0) allocated [mem 0x5fd31000-0x5fd5bfff]
[    0.100689] Zone ranges:
[    0.250997] Memory: 260860K/1572472K available (14343K kernel code, 2338K rwdata, 9132K rodata, 2824K init, 17344K bss, 84788K reserved, 0K cma-reserved)
[    1.211654] node 0 deferred pages initialised in 60ms
";

    /// The same lines of a boot whose quick PIT calibration failed
    /// (`tsc: Unable to calibrate against PIT`): every early stamp is 0.
    const UNTIMED: &str = "\
[    0.000000] NODE_DATA(0) allocated [mem 0x7fd01000-0x7fd2bfff]
[    0.000000] Zone ranges:
[    0.000000] Memory: 260860K/2096628K available (14343K kernel code, 2338K rwdata, 9132K rodata, 2824K init, 17344K bss, 159284K reserved, 0K cma-reserved)
[    0.040000] tsc: Unable to calibrate against PIT
[    0.804349] node 0 deferred pages initialised in 92ms
";

    #[test]
    fn linux_bringup_from_its_log() {
        let b = linux_bringup(&output(TIMED, "")).unwrap();
        assert_eq!(b, LinuxBringup { early_us: 250_997 - 85_847, deferred_ms: 60 });
        assert_eq!(b.us(), 165_150 + 60_000);
        // Lines outside the dmesg part do not count.
        let out = format!("[    9.000000] Memory: on the console\n{}", output(TIMED, ""));
        assert_eq!(linux_bringup(&out).unwrap(), b);
    }

    #[test]
    fn linux_bringup_fails_on_zero_stamps_or_missing_lines() {
        let e = linux_bringup(&output(UNTIMED, "")).unwrap_err();
        assert!(e.contains("timestamps are 0") && !e.contains('\n'), "{e}");
        let no_deferred: String =
            TIMED.lines().filter(|l| !l.contains("deferred")).map(|l| format!("{l}\n")).collect();
        let e = linux_bringup(&output(&no_deferred, "")).unwrap_err();
        assert!(e.contains("deferred pages"), "{e}");
        let e = linux_bringup(&output("", "")).unwrap_err();
        assert!(e.contains("NODE_DATA(0) allocated"), "{e}");
    }

    /// The dmesg lines of the script's re-bind, from a real run (Linux
    /// 6.1, 256 MiB fsdax NVDIMM, one vCPU, TCG): `nd_pmem` prints nothing
    /// in between.
    const BIND: &str = "\
[    7.738441] tessera-bench: bind begin
[    7.797861] tessera-bench: bind end
";

    #[test]
    fn fsdax_rebind_timed_between_markers() {
        let ok = "== bench pfn pfn0.0\n== bench pmem0 back\n";
        assert_eq!(linux_fsdax_add(&output(BIND, ok)), Ok(7_797_861 - 7_738_441));
        let gone = "== bench pfn pfn0.0\n== bench pmem0 missing\n";
        assert!(linux_fsdax_add(&output(BIND, gone)).unwrap_err().contains("/dev/pmem0"));
        let none = "== bench no pfn device bound to nd_pmem\n";
        assert!(linux_fsdax_add(&output("", none)).unwrap_err().contains("no pfn device"));
        let no_disk = "== bench no /dev/pmem0 for pfn0.1\n";
        assert!(linux_fsdax_add(&output("", no_disk)).unwrap_err().contains("pfn0.1"));
        let failed = "== bench pfn pfn0.1\n== bench bind failed\n== bench pmem0 back\n";
        assert!(linux_fsdax_add(&output(BIND, failed)).unwrap_err().contains("nd_pmem/bind"));
        let no_end: String = BIND.lines().take(1).map(|l| format!("{l}\n")).collect();
        assert!(linux_fsdax_add(&output(&no_end, ok)).unwrap_err().contains("bind end"));
    }

    #[test]
    fn script_waits_for_the_pfn_device_only_with_an_nvdimm() {
        assert!(linux_script(true).starts_with("want_pfn=1\n"));
        assert!(linux_script(false).starts_with("want_pfn=0\n"));
        assert!(linux_script(false).ends_with("echo '== bench end'\n"));
    }

    #[test]
    fn stamps_are_exact_microseconds() {
        assert_eq!(linux::stamped("[   14.101925] x y"), Some((14_101_925, "x y")));
        assert_eq!(linux::stamped("[    0.000000] Memory:"), Some((0, "Memory:")));
        assert_eq!(linux::stamped("[ 0.1] short fraction"), None);
        assert_eq!(linux::stamped("bench: no stamp"), None);
    }

    #[test]
    fn tessera_boots_quiet_as_linux_does() {
        assert_eq!(tessera_cmdline(""), "quiet");
        assert_eq!(tessera_cmdline("console=ttyS0"), "console=ttyS0 quiet");
        assert_eq!(tessera_cmdline("nopmem quiet"), "nopmem quiet");
    }

    #[test]
    fn prealloc_backs_the_ram_only() {
        assert_eq!(
            prealloc_args("2G,slots=4,maxmem=512G").join(" "),
            "-object memory-backend-ram,id=bench-ram,size=2G,prealloc=on -machine memory-backend=bench-ram"
        );
        assert_eq!(prealloc_args("8G")[1], "memory-backend-ram,id=bench-ram,size=8G,prealloc=on");
    }

    #[test]
    fn ratios_have_two_decimals() {
        assert_eq!(ratio(45_000.0, 225_150.0).as_deref(), Some("0.20"));
        assert_eq!(ratio(3.0, 2.0).as_deref(), Some("1.50"));
        assert_eq!(ratio(1.0, 3.0).as_deref(), Some("0.33"));
        assert_eq!(ratio(1.0, 0.0), None);
    }

    #[test]
    fn tsc_frequency_from_cpuinfo_or_tessera() {
        let vm = "model name\t: Intel(R) Xeon(R) Processor\ncpu MHz\t\t: 2299.998\nflags\t\t: fpu tsc constant_tsc nonstop_tsc tsc_known_freq hypervisor\n";
        assert_eq!(host_tsc_khz(vm), Some(2_299_998));
        // With APERF/MPERF `cpu MHz` is the core's current clock.
        let metal = vm.replace("hypervisor", "aperfmperf");
        assert_eq!(host_tsc_khz(&metal), None);
        assert_eq!(host_tsc_khz(&vm.replace("constant_tsc", "")), None);
        let log = "[    0.018211] tsc: Detected 2304.318 MHz processor\n";
        assert_eq!(guest_tsc_khz(log), Some(2_304_318));
        assert_eq!(guest_tsc_khz("nothing"), None);
    }

    #[test]
    fn json_holds_every_numeric_figure_in_order() {
        let row = |n: &str, v: &str, u: &str| (n.to_string(), v.to_string(), u.to_string());
        let columns = vec![
            ("2G", vec![row("bringup", "45000", "us"), row("bringup_vs_linux", "0.20", "ratio")]),
            ("odd \"name\"", vec![row("x", "not-a-number", ""), row("y", "-1.5", "us")]),
            ("empty", vec![]),
        ];
        let text = to_json(&columns);
        let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        let obj = v.as_object().unwrap();
        assert_eq!(obj.len(), 3);
        assert_eq!(v["2G"]["bringup"].as_f64(), Some(45000.0));
        assert_eq!(v["2G"]["bringup_vs_linux"].as_f64(), Some(0.2));
        assert_eq!(v["odd \"name\""].as_object().unwrap().len(), 1);
        assert_eq!(v["odd \"name\""]["y"].as_f64(), Some(-1.5));
        assert!(v["empty"].as_object().unwrap().is_empty());
        // Columns in table order.
        assert!(text.find("\"2G\"").unwrap() < text.find("\"empty\"").unwrap());
    }
}

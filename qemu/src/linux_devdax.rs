//! What Debian's Linux 6.1 spends on the memmap of a device-dax namespace
//! at 2 MiB alignment, measured on the bench's NVDIMM machine (2 GiB of
//! RAM, `-m 2G,slots=4,maxmem=512G`, the NVDIMM at 256 GiB), so Tessera's
//! figures can be put next to Linux's.
//!
//! One boot ([`devdax_memmap`]) on a raw NVDIMM. The script configures the
//! region's dax seed through sysfs, first `mode=ram` (`map=mem`: the
//! memmap in System RAM, where 6.1 reuses the vmemmap pages of tail
//! descriptors, `vmemmap_populate_compound_pages`), then `mode=pmem`
//! (`map=dev`: the memmap on the device through an altmap, not optimised).
//! For each it binds the seed to `dax_pmem` (which writes the info block
//! and creates `dax0.0`, bound to `device_dax`: `memremap_pages`), then
//! unbinds and rebinds `dax0.0` from `device_dax` a few times. Around each
//! step it folds the per-CPU counters (`/proc/sys/vm/stat_refresh`) and
//! reads `nr_free_pages` from `/proc/vmstat` plus the pages on the per-CPU
//! free lists (`/proc/zoneinfo`): the pages a bind takes are the memmap
//! and its page tables. Markers written to `/dev/kmsg` before
//! and after each bind give its time from `dmesg`'s timestamps. The
//! `map=dev` info block Linux wrote is read back from the file afterwards:
//! its `dataoff` is what the device gives up for the memmap.

use std::path::Path;
use std::time::Duration;

use mm::nd_pfn::{self, Kind, PfnMode};

use crate::device::{self, Format};
use crate::linux::{self, Kit};
use crate::machine::{self, Machine};
use crate::plan::{self, Nvdimm};
use crate::profile;

const GIB: u64 = 1 << 30;
const PAGE: u64 = 4096;
/// Unbind/bind cycles of `dax0.0` per map mode, to see the noise.
const CYCLES: usize = 3;
/// Where the bench's big NVDIMM sits ([`plan::BIG_NVDIMM`]).
const ADDR: u64 = 0x40_0000_0000;

/// One map mode's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModeFigures {
    /// `/sys/bus/dax/devices/dax0.0/size`: the data the namespace offers.
    pub dax_size: u64,
    /// System RAM taken by the first bind (`dax_pmem`: info block, dax
    /// region, `dax0.0` and its memmap), bytes.
    pub first_bind_ram: i64,
    /// System RAM each `device_dax` rebind of `dax0.0` took, bytes.
    pub rebind_ram: Vec<i64>,
    /// System RAM each `device_dax` unbind gave back, bytes.
    pub unbind_ram: Vec<i64>,
    /// The first bind's time (`dmesg` timestamps around the `echo`), µs.
    pub first_bind_us: u64,
    /// Each rebind's time, µs.
    pub rebind_us: Vec<u64>,
}

impl ModeFigures {
    /// The median RAM a rebind took, bytes.
    pub fn ram(&self) -> i64 {
        median(&self.rebind_ram)
    }

    /// The median rebind time, µs.
    pub fn bind_us(&self) -> u64 {
        let v: Vec<i64> = self.rebind_us.iter().map(|&u| u as i64).collect();
        median(&v) as u64
    }
}

/// What [`devdax_memmap`] measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DevdaxFigures {
    /// The Linux release, `uname -r`.
    pub version: String,
    /// The namespace's size, bytes.
    pub namespace: u64,
    pub map_mem: ModeFigures,
    pub map_dev: ModeFigures,
    /// System RAM a `map=mem` rebind took per GiB of namespace (median),
    /// bytes: the memmap (compound pages, tail vmemmap reused) and its
    /// page tables.
    pub ram_per_gib_map_mem: i64,
    /// The same for `map=dev`: page tables only, the memmap is on the
    /// device.
    pub ram_per_gib_map_dev: i64,
    /// `dataoff` of the `map=dev` info block Linux wrote, per GiB of
    /// namespace, bytes: the info block area and the memmap reserve.
    pub device_per_gib_map_dev: u64,
    /// That block's `npfns` times 64 (one `struct page` each) per GiB.
    pub memmap_per_gib_map_dev: u64,
    /// `dataoff` and `npfns` of that block.
    pub dataoff_map_dev: u64,
    pub npfns_map_dev: u64,
    /// `dataoff` of the harness's own `map=dev` block for the same
    /// namespace (`Format::Pfn(Kind::Devdax)`), to compare.
    pub harness_dataoff_map_dev: u64,
    /// The median rebind time of `dax0.0`, µs.
    pub bind_us_map_mem: u64,
    pub bind_us_map_dev: u64,
}

fn median(v: &[i64]) -> i64 {
    let mut s = v.to_vec();
    s.sort_unstable();
    s.get(s.len() / 2).copied().unwrap_or(0)
}

/// `bytes` per GiB of `of`.
fn per_gib(bytes: i64, of: u64) -> i64 {
    (i128::from(bytes) * i128::from(GIB) / i128::from(of.max(1))) as i64
}

/// The script: both modes, each a first bind and [`CYCLES`] rebinds.
fn script() -> String {
    let phase = |mode: &str, sysfs_mode: &str, uuid: &str| {
        format!(
            "echo {sysfs_mode} > $N/$d/mode || echo '== dd error mode {mode}'\n\
             echo 2097152 > $N/$d/align || echo '== dd error align {mode}'\n\
             echo {uuid} > $N/$d/uuid || echo '== dd error uuid {mode}'\n\
             sleep 1; snap {mode}-first-before\n\
             mark {mode}-first-start; echo $d > $P/bind; mark {mode}-first-end\n\
             snap {mode}-first-after\n\
             for a in mode align resource size; do echo \"== dd {mode} $a=$(cat $N/$d/$a)\"; done\n\
             x=$(ls /sys/bus/dax/devices | head -n 1)\n\
             echo \"== dd {mode} dax=$x dax_size=$(cat /sys/bus/dax/devices/$x/size)\"\n\
             for i in {cycles}; do\n\
             sleep 1; snap {mode}-unbind$i-before\n\
             echo $x > $X/unbind; snap {mode}-unbind$i-after\n\
             sleep 1; snap {mode}-bind$i-before\n\
             mark {mode}-bind$i-start; echo $x > $X/bind; mark {mode}-bind$i-end\n\
             snap {mode}-bind$i-after\n\
             done\n\
             echo $d > $P/unbind\n",
            cycles = (1..=CYCLES).map(|i| i.to_string()).collect::<Vec<_>>().join(" "),
        )
    };
    format!(
        "N=/sys/bus/nd/devices\n\
         P=/sys/bus/nd/drivers/dax_pmem\n\
         X=/sys/bus/dax/drivers/device_dax\n\
         mark() {{ echo \"devdax-mark $1\" > /dev/kmsg; }}\n\
         snap() {{ echo 1 > /proc/sys/vm/stat_refresh; \
         echo \"== dd snap $1 $(grep '^nr_free_pages ' /proc/vmstat) pcp \
         $(awk '$1 == \"count:\" {{ n += $2 }} END {{ print n }}' /proc/zoneinfo)\"; }}\n\
         echo \"== dd uname $(cat /proc/sys/kernel/osrelease)\"\n\
         echo namespace0.0 > /sys/bus/nd/drivers/nd_pmem/unbind || exit 1\n\
         d=$(cat $N/region0/dax_seed)\n\
         echo \"== dd seed $d\"\n\
         echo namespace0.0 > $N/$d/namespace || exit 1\n\
         {}{}\
         dmesg | grep -E 'devdax-mark|dax|pfn|nd_pmem|memmap|vmemmap'\n",
        phase("mem", "ram", "11111111-2222-4333-8444-555555555555"),
        phase("dev", "pmem", "66666666-7777-4888-8999-aaaaaaaaaaaa"),
    )
}

/// `== dd snap LABEL nr_free_pages N pcp M` lines: label and free bytes,
/// the buddy allocator's and those on the per-CPU lists (`count:` in
/// `/proc/zoneinfo`, not in `nr_free_pages`: an unbind's 8000 freed
/// memmap pages stay there, and a bind takes them back from there).
fn snaps(out: &str) -> Vec<(String, u64)> {
    out.lines()
        .filter_map(|l| l.strip_prefix("== dd snap "))
        .filter_map(|r| {
            let mut w = r.split_whitespace();
            let label = w.next()?.to_string();
            (w.next()? == "nr_free_pages").then_some(())?;
            let free = w.next()?.parse::<u64>().ok()?;
            (w.next()? == "pcp").then_some(())?;
            let pcp = w.next()?.parse::<u64>().ok()?;
            Some((label, (free + pcp) * PAGE))
        })
        .collect()
}

/// `[ secs.micros] devdax-mark LABEL` lines of `dmesg`: label and µs.
fn marks(out: &str) -> Vec<(String, u64)> {
    // A line may carry the kernel's `<level>` prefix (as /dev/kmsg gives).
    out.lines()
        .map(|l| l.strip_prefix('<').and_then(|r| r.split_once('>')).map_or(l, |(_, rest)| rest))
        .filter_map(linux::stamped)
        .filter_map(|(us, text)| Some((text.strip_prefix("devdax-mark ")?.trim().to_string(), us)))
        .collect()
}

/// `== dd MODE KEY=VALUE` values (the first of each).
fn value(out: &str, mode: &str, key: &str) -> Option<String> {
    let prefix = format!("== dd {mode} ");
    out.lines().filter_map(|l| l.strip_prefix(&prefix)).find_map(|r| {
        r.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=').map(String::from))
    })
}

/// One mode's figures from the script's output.
fn mode_figures(out: &str, mode: &str) -> Result<ModeFigures, String> {
    let s = snaps(out);
    let m = marks(out);
    let snap = |l: &str| {
        let l = format!("{mode}-{l}");
        s.iter().find(|(n, _)| *n == l).map(|x| x.1).ok_or(format!("no snapshot {l}"))
    };
    let mark = |l: &str| {
        let l = format!("{mode}-{l}");
        m.iter().find(|(n, _)| *n == l).map(|x| x.1).ok_or(format!("no dmesg marker {l}"))
    };
    let taken = |before: &str, after: &str| -> Result<i64, String> {
        Ok(snap(before)? as i64 - snap(after)? as i64)
    };
    let span = |l: &str| -> Result<u64, String> {
        Ok(mark(&format!("{l}-end"))?.saturating_sub(mark(&format!("{l}-start"))?))
    };
    let dax_size = value(out, mode, "dax_size")
        .and_then(|v| v.parse().ok())
        .ok_or(format!("no dax0.0 size for map={mode}"))?;
    let mut f = ModeFigures {
        dax_size,
        first_bind_ram: taken("first-before", "first-after")?,
        first_bind_us: span("first")?,
        ..ModeFigures::default()
    };
    for i in 1..=CYCLES {
        f.unbind_ram.push(-taken(&format!("unbind{i}-before"), &format!("unbind{i}-after"))?);
        f.rebind_ram.push(taken(&format!("bind{i}-before"), &format!("bind{i}-after"))?);
        f.rebind_us.push(span(&format!("bind{i}"))?);
    }
    Ok(f)
}

/// The figures of a boot's output, `map=dev`'s info block and the
/// namespace's size.
fn figures(out: &str, dev_block: &nd_pfn::Layout, namespace: u64) -> Result<DevdaxFigures, String> {
    let (map_mem, map_dev) = (mode_figures(out, "mem")?, mode_figures(out, "dev")?);
    let sb = &dev_block.sb;
    Ok(DevdaxFigures {
        version: out
            .lines()
            .find_map(|l| l.strip_prefix("== dd uname "))
            .unwrap_or("")
            .trim()
            .to_string(),
        namespace,
        ram_per_gib_map_mem: per_gib(map_mem.ram(), namespace),
        ram_per_gib_map_dev: per_gib(map_dev.ram(), namespace),
        device_per_gib_map_dev: per_gib(sb.dataoff as i64, namespace) as u64,
        memmap_per_gib_map_dev: per_gib((sb.npfns * 64) as i64, namespace) as u64,
        dataoff_map_dev: sb.dataoff,
        npfns_map_dev: sb.npfns,
        harness_dataoff_map_dev: device::layout(Kind::Devdax, dev_block.start, namespace)
            .sb
            .dataoff,
        bind_us_map_mem: map_mem.bind_us(),
        bind_us_map_dev: map_dev.bind_us(),
        map_mem,
        map_dev,
    })
}

/// The bench's NVDIMM machine ([`plan::BIG_NVDIMM`]: 2 GiB of RAM,
/// `-m 2G,slots=4,maxmem=512G`, the NVDIMM at 256 GiB) with a raw,
/// sparse NVDIMM of `size` bytes, on the `bios` profile, files named by
/// `tag`.
pub fn machine(tag: &str, size: u64, timeout: Duration) -> Result<Machine, String> {
    let mut m = Machine::new(profile::find("bios")?, Path::new(""), tag)
        .shape(&plan::BIG_NVDIMM)
        .timeout(timeout);
    m.cmdline.clear();
    let nv = Nvdimm { size, addr: Some(ADDR), format: Some(Format::Raw) };
    m.nvdimm = Some((nv, machine::nvdimm_file(tag)));
    Ok(m)
}

/// Boots Linux once on [`machine()`] with a `size`-byte raw NVDIMM (a
/// multiple of 2 MiB; 8 GiB fits 2 GiB of RAM even unoptimised) and
/// measures its device-dax memmap cost at 2 MiB alignment in both map
/// modes (see the module's documentation). The serial log is
/// `target/qemu/linux-devdax-memmap.log`.
pub fn devdax_memmap(kit: &Kit, size: u64, timeout: Duration) -> Result<DevdaxFigures, String> {
    let tag = "linux-devdax-memmap";
    let m = machine(tag, size, timeout)?;
    m.prepare_nvdimm()?;
    let out = linux::boot(kit, &m, &script())?;
    let file = machine::nvdimm_file(tag);
    let block = device::info_block(&file)?;
    let layout = nd_pfn::validate(&block, ADDR, size)
        .map_err(|e| format!("Linux's map=dev info block: {e}"))?
        .ok_or("no info block on the device after the map=dev bind")?;
    if layout.mode() != PfnMode::Pmem {
        return Err("the info block on the device is not map=dev".into());
    }
    let f = figures(&out, &layout, size);
    let _ = std::fs::remove_file(&file);
    f.map_err(|e| format!("{e}; serial log in target/qemu/{tag}.log"))
}

/// `qemu linux-devdax [--mem SIZE_GIB]`: [`devdax_memmap`] on an 8 GiB
/// namespace (or `--mem` GiB), printed.
pub fn cmd(f: crate::cli::Flags) -> Result<bool, String> {
    let gib = match f.mem.as_deref() {
        Some(s) => s.trim_end_matches('G').parse::<u64>().map_err(|e| format!("--mem {s}: {e}"))?,
        None => 8,
    };
    let kit = linux::kit()?;
    let timeout = f.timeout()?;
    let d = devdax_memmap(&kit, gib * GIB, timeout)?;
    println!("{}", report(&d));
    Ok(true)
}

/// The figures as text.
pub fn report(d: &DevdaxFigures) -> String {
    let mib = |b: i64| b as f64 / (1 << 20) as f64;
    let mut s = format!(
        "Linux {} device-dax memmap, {} GiB namespace at 2 MiB alignment\n",
        d.version,
        d.namespace / GIB
    );
    for (name, m) in [("map=mem", &d.map_mem), ("map=dev", &d.map_dev)] {
        s += &format!(
            "{name}: dax0.0 {} bytes; first bind {:.3} MiB in {} us; rebinds {:?} bytes in {:?} us; unbinds gave back {:?} bytes\n",
            m.dax_size,
            mib(m.first_bind_ram),
            m.first_bind_us,
            m.rebind_ram,
            m.rebind_us,
            m.unbind_ram
        );
    }
    s += &format!(
        "RAM per GiB: map=mem {:.3} MiB, map=dev {:.3} MiB\n\
         device per GiB (map=dev dataoff {:#x}, npfns {}; the harness's dataoff {:#x}): {:.3} MiB (npfns*64: {:.3} MiB)\n\
         bind (median): map=mem {} us, map=dev {} us",
        mib(d.ram_per_gib_map_mem),
        mib(d.ram_per_gib_map_dev),
        d.dataoff_map_dev,
        d.npfns_map_dev,
        d.harness_dataoff_map_dev,
        mib(d.device_per_gib_map_dev as i64),
        mib(d.memmap_per_gib_map_dev as i64),
        d.bind_us_map_mem,
        d.bind_us_map_dev
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A boot's output as the script prints it, `map=mem` pages taken
    /// `mem_pages` per bind, `map=dev` 8.
    fn output(mem_pages: u64) -> String {
        let mut o = String::from("== linux script begin\n== dd uname 6.1.0-57-amd64\n");
        let mut free = 480_000u64;
        let mut ts = 4_000_000u64;
        for (mode, pages, size) in [("mem", mem_pages, 8587837440u64), ("dev", 8, 8453619712)] {
            let mut step = |o: &mut String, l: &str, take: i64, us: u64| {
                let snap = |o: &mut String, when: &str, free: u64| {
                    // Some pages on the per-CPU lists, counted too.
                    let (buddy, pcp) = (free - 300, 300);
                    o.push_str(&format!(
                        "== dd snap {mode}-{l}-{when} nr_free_pages {buddy} pcp {pcp}\n"
                    ));
                };
                let mark = |o: &mut String, when: &str, ts: u64| {
                    let (s, us) = (ts / 1_000_000, ts % 1_000_000);
                    o.push_str(&format!("[ {s:5}.{us:06}] devdax-mark {mode}-{l}-{when}\n"));
                };
                snap(o, "before", free);
                if us > 0 {
                    mark(o, "start", ts);
                    ts += us;
                    mark(o, "end", ts);
                }
                free = (free as i64 - take) as u64;
                snap(o, "after", free);
            };
            step(&mut o, "first", pages as i64 + 5, 1_200_000);
            o.push_str(&format!("== dd {mode} mode=x\n== dd {mode} dax=dax0.0 dax_size={size}\n"));
            for i in 1..=CYCLES {
                step(&mut o, &format!("unbind{i}"), -(pages as i64), 0);
                step(&mut o, &format!("bind{i}"), pages as i64 + i as i64 - 2, 100_000 + i as u64);
            }
        }
        o
    }

    #[test]
    fn parses_snapshots_marks_and_values() {
        let o = "== dd snap mem-first-before nr_free_pages 10 pcp 2\n\
                 == dd snap broken nr_free_pages x pcp 1\n\
                 [    4.462098] devdax-mark mem-first-start\n\
                 <5>[   12.000001] devdax-mark dev-bind1-end\n\
                 == dd mem dax=dax0.0 dax_size=8587837440\n";
        assert_eq!(snaps(o), [("mem-first-before".to_string(), 12 * 4096)]);
        assert_eq!(
            marks(o),
            [("mem-first-start".to_string(), 4_462_098), ("dev-bind1-end".to_string(), 12_000_001)]
        );
        assert_eq!(value(o, "mem", "dax_size").as_deref(), Some("8587837440"));
        assert_eq!(value(o, "mem", "dax"), Some("dax0.0".into()));
        assert_eq!(value(o, "dev", "dax_size"), None);
    }

    #[test]
    fn figures_per_gib_and_medians() {
        let size = 8 << 30;
        let l = device::layout(Kind::Devdax, ADDR, size);
        let f = figures(&output(8265), &l, size).unwrap();
        assert_eq!(f.version, "6.1.0-57-amd64");
        // Rebinds took 8264, 8265, 8266 pages: the median per GiB.
        assert_eq!(f.map_mem.rebind_ram, [8264 * 4096, 8265 * 4096, 8266 * 4096]);
        assert_eq!(f.map_mem.unbind_ram, [8265 * 4096; 3]);
        assert_eq!(f.ram_per_gib_map_mem, 8265 * 4096 / 8);
        assert_eq!(f.map_mem.first_bind_ram, 8270 * 4096);
        assert_eq!(f.map_dev.ram(), 8 * 4096);
        assert_eq!((f.map_mem.first_bind_us, f.bind_us_map_mem), (1_200_000, 100_002));
        assert_eq!(f.map_dev.dax_size, 8453619712);
        assert_eq!(f.dataoff_map_dev, l.sb.dataoff);
        assert_eq!(f.device_per_gib_map_dev, l.sb.dataoff / 8);
        assert_eq!(f.harness_dataoff_map_dev, l.sb.dataoff);
        assert!(report(&f).contains("RAM per GiB: map=mem 4.036 MiB"));
    }

    #[test]
    fn a_missing_step_is_an_error() {
        let o = output(8265).replace("mem-bind2-end", "mem-bind2-ended");
        let l = device::layout(Kind::Devdax, ADDR, 8 << 30);
        let e = figures(&o, &l, 8 << 30).unwrap_err();
        assert_eq!(e, "no dmesg marker mem-bind2-end");
    }

    #[test]
    fn the_script_configures_both_modes() {
        let s = script();
        for want in ["echo ram > $N/$d/mode", "echo pmem > $N/$d/mode", "mark dev-bind$i-end"] {
            assert!(s.contains(want), "{want}");
        }
    }
}

//! Memory hotplug at run time, driven from QEMU's monitor as on a real
//! server: DIMMs plugged and unplugged (`device_add pc-dimm`,
//! `device_del`) and an NVDIMM plugged (`device_add nvdimm`) while the
//! kernel runs. Debian's Linux 6.1 goes through the [`SEQUENCE`] first and
//! is the reference (`make linux-hotplug` prints its transcripts); Tessera
//! goes through the same sequence on the same machine and its memory
//! blocks, zones and iomem after each step are compared with Linux's
//! ([`compare`]).
//!
//! Linux's side: a busybox script ([`linux_script`]) prints `== hotplug
//! ready STEP`, polls sysfs (memory blocks online, blocks gone, a
//! `/dev/pmem` device) until the step's change has happened (or a
//! timeout), prints `== hotplug STEP: done in N ms` and a snapshot of its
//! memory blocks, zones, `/proc/iomem`, nd devices and new kernel
//! messages. The harness sends the step's monitor commands when it sees
//! the ready line and times `device_add` to the done line
//! ([`Step::Await`]).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use options::contract::SHELL_PROMPT;

use crate::cli::Flags;
use crate::linuxdiff::{self, Row, Section};
use crate::machine::{self, Machine, Step, StepLog, Waited};
use crate::plan::{self, Shape};
use crate::{cargo, linux, profile, report};

/// `make test`'s `[k/N]` step.
pub const STEP: &str = "hotplug";

/// QEMU's `-m` of every hotplug machine: 2 GiB at boot, four DIMM slots,
/// room for 8 GiB more.
pub const MEM: &str = "2G,slots=4,maxmem=10G";

/// Where QEMU puts the first DIMM or NVDIMM: its device-memory area starts
/// at 4 GiB when all boot RAM is below 4 GiB. Only memory from here up is
/// compared step by step (the boot memory is `make linux-diff`'s).
pub const HOTPLUG_BASE: u64 = 1 << 32;

/// A Linux configuration the sequence runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variant {
    pub name: &'static str,
    /// Linux's `memhp_default_state=` (Tessera takes the same option).
    pub policy: &'static str,
    /// `-machine pc,nvdimm=on`: the NVDIMM root device (ACPI0012) exists
    /// and the NVDIMM step runs.
    pub nvdimm: bool,
}

impl Variant {
    /// The machine's shape.
    pub fn shape(&self) -> Shape {
        Shape {
            mem: MEM,
            cmdline: self.cmdline(),
            nvdimm: None,
            qemu_args: if self.nvdimm { "-machine pc,nvdimm=on" } else { "" },
        }
    }

    fn cmdline(&self) -> &'static str {
        match self.policy {
            "online" => "memhp_default_state=online",
            "online_kernel" => "memhp_default_state=online_kernel",
            "offline" => "memhp_default_state=offline",
            _ => "memhp_default_state=online_movable",
        }
    }

    /// The steps of [`SEQUENCE`] this machine runs.
    pub fn steps(&self) -> impl Iterator<Item = &'static HpStep> + '_ {
        SEQUENCE.iter().filter(|s| self.nvdimm || !s.needs_nvdimm)
    }
}

/// The Linux configurations of `make linux-hotplug`; `make test` runs the
/// first ([`plan::HOTPLUG`]).
///
/// - `movable`: every block onlined into ZONE_MOVABLE, so the 128 MiB
///   DIMM can be offlined and ejected.
/// - `online`: blocks onlined into ZONE_NORMAL (Linux's `online` picks the
///   kernel zone); the kernel's own allocations land there (a slab page at
///   the DIMM's first pfn), offlining fails (`memory memory32: Offline
///   failed.`), Linux reports the failure through `_OST` and QEMU keeps
///   the DIMM: the unplug step is not done.
/// - `dimm-only`: no `nvdimm=on` (no NVDIMM root device), DIMMs only.
pub const VARIANTS: &[Variant] = &[
    Variant { name: "movable", policy: "online_movable", nvdimm: true },
    Variant { name: "online", policy: "online", nvdimm: true },
    Variant { name: "dimm-only", policy: "online_movable", nvdimm: false },
];

/// What Linux's script waits for after a step's monitor commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// This many more memory blocks online.
    Online(u32),
    /// This many fewer memory blocks.
    Removed(u32),
    /// One more `/dev/pmem*` block device (an nd namespace bound).
    Pmem,
}

/// One step of the hotplug sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HpStep {
    pub name: &'static str,
    /// Monitor commands, in order (`{nv1}`: the NVDIMM's backing file).
    /// The last one starts the change and is what the step is timed from.
    pub send: &'static [&'static str],
    /// Monitor commands once the kernel is done (or gave up).
    pub after: &'static [&'static str],
    /// What Linux's script waits for.
    pub until: Until,
    /// Seconds Linux's script waits before it gives up.
    pub timeout: u32,
    /// What the wait is called in reports (`device_add dimm1 -> online`).
    pub done_name: &'static str,
    /// Tessera's line (a piece of it) that says the step is done. These
    /// name the blocks and ranges Linux shows for the step.
    pub tessera_done: &'static str,
    /// Only on a machine with `nvdimm=on`.
    pub needs_nvdimm: bool,
}

/// Plug a 128 MiB DIMM, plug a 1 GiB DIMM, unplug the 128 MiB one, plug a
/// 256 MiB NVDIMM.
pub const SEQUENCE: &[HpStep] = &[
    HpStep {
        name: "plug-128M",
        send: &[
            "object_add memory-backend-ram,id=mem1,size=128M",
            "device_add pc-dimm,id=dimm1,memdev=mem1",
        ],
        after: &[],
        until: Until::Online(1),
        timeout: 20,
        done_name: "device_add dimm1 -> online",
        tessera_done: "memory: memory32 online",
        needs_nvdimm: false,
    },
    HpStep {
        name: "plug-1G",
        send: &[
            "object_add memory-backend-ram,id=mem2,size=1G",
            "device_add pc-dimm,id=dimm2,memdev=mem2",
        ],
        after: &[],
        until: Until::Online(8),
        timeout: 20,
        done_name: "device_add dimm2 -> online",
        tessera_done: "memory: memory40 online",
        needs_nvdimm: false,
    },
    HpStep {
        name: "unplug-128M",
        send: &["device_del dimm1"],
        // QEMU lets the backend go only once the guest has ejected the DIMM.
        after: &["info memory-devices", "object_del mem1"],
        until: Until::Removed(1),
        timeout: 10,
        done_name: "device_del dimm1 -> removed",
        tessera_done: "memory: memory32 [mem 0x0000000100000000-0x0000000107ffffff] removed",
        needs_nvdimm: false,
    },
    HpStep {
        name: "plug-nvdimm",
        send: &[
            "object_add memory-backend-file,id=nv1,share=on,mem-path={nv1},size=256M",
            "device_add nvdimm,id=nvdimm1,memdev=nv1",
        ],
        after: &[],
        until: Until::Pmem,
        timeout: 20,
        done_name: "device_add nvdimm1 -> pmem",
        tessera_done: "pmem: region0 [mem 0x0000000148000000-0x0000000157ffffff] added",
        needs_nvdimm: true,
    },
];

/// The backing file of a boot's hot-plugged NVDIMM.
pub fn nv1_file(tag: &str) -> PathBuf {
    PathBuf::from(format!("target/qemu/{tag}-nv1.img"))
}

/// A step's monitor command for the boot `tag`.
fn command(cmd: &str, tag: &str) -> String {
    cmd.replace("{nv1}", &nv1_file(tag).to_string_lossy())
}

/// Printed by Linux's script before a step's change.
fn ready_line(step: &str) -> String {
    format!("== hotplug ready {step}")
}

/// The start of the line Linux's script prints when a step is done
/// (`done in N ms`) or when it gave up (`not done after N s`).
fn result_prefix(step: &str) -> String {
    format!("== hotplug {step}: ")
}

/// The busybox script: a snapshot at boot, then for each step the ready
/// line, a poll of sysfs until the step's change (with builtins only:
/// a fork costs milliseconds under TCG), the result line and a snapshot.
pub fn linux_script(v: &Variant) -> String {
    let mut s = String::from(
        r#"# When: $NOW, centiseconds since boot.
now() { read up rest < /proc/uptime; NOW=${up%.*}${up#*.}; NOW=${NOW#0}; }
# Memory blocks, those online, /dev/pmem devices.
count() {
    NB=0; NON=0; NP=0
    for b in /sys/devices/system/memory/memory*; do
        [ -d "$b" ] || continue
        NB=$((NB+1)); read st < $b/state; [ "$st" = online ] && NON=$((NON+1))
    done
    for d in /dev/pmem*; do [ -e "$d" ] && NP=$((NP+1)); done
}
snap() {
    echo "== hotplug state $1"
    echo '== part memory'
    for b in /sys/devices/system/memory/memory*; do
        [ -d "$b" ] || continue
        read st < $b/state; read z < $b/valid_zones; read i < $b/phys_index
        echo "${b##*/} $st $z $i"
    done
    echo '== part zoneinfo'
    grep -E '^Node|^ +(spanned|present|managed) |start_pfn' /proc/zoneinfo
    echo '== part iomem'
    cat /proc/iomem
    echo '== part nd'
    for d in /sys/bus/nd/devices/*; do
        [ -e "$d" ] || continue
        drv=$(readlink $d/driver 2>/dev/null)
        line="${d##*/} driver=${drv##*/}"
        for a in size resource mode; do
            [ -r $d/$a ] && line="$line $a=$(cat $d/$a 2>/dev/null)"
        done
        echo "$line"
    done
    echo '== part dmesg'
    dmesg -c
    echo '== part end'
}
# step NAME online+N|blocks-N|pmem+1 TIMEOUT_S
step() {
    count; B0=$NB; O0=$NON; P0=$NP
    now; T0=$NOW
    echo "== hotplug ready $1"
    while :; do
        count
        case $2 in
            online+*) [ $NON -ge $((O0+${2#online+})) ] && break;;
            blocks-*) [ $NB -le $((B0-${2#blocks-})) ] && break;;
            pmem+*) [ $NP -ge $((P0+${2#pmem+})) ] && break;;
        esac
        now
        if [ $((NOW-T0)) -ge $(($3*100)) ]; then
            echo "== hotplug $1: not done after $3 s"; snap $1; return
        fi
        sleep 0.02
    done
    now; echo "== hotplug $1: done in $(((NOW-T0)*10)) ms"
    snap $1
}
dmesg -c > /dev/null
snap boot
"#,
    );
    for st in v.steps() {
        let until = match st.until {
            Until::Online(n) => format!("online+{n}"),
            Until::Removed(n) => format!("blocks-{n}"),
            Until::Pmem => "pmem+1".into(),
        };
        let _ = writeln!(s, "step {} {until} {}", st.name, st.timeout);
    }
    s
}

/// The harness's steps for Linux's boot `tag`: at each ready line the
/// step's monitor commands, then the wait for the result line, then the
/// commands after it and `info memory-devices` (QEMU's view).
pub fn linux_steps(v: &Variant, tag: &str, boot_timeout: Duration) -> Vec<Step> {
    let mut steps = Vec::new();
    for st in v.steps() {
        steps.push(Step::wait_for(
            &format!("{} ready", st.name),
            &ready_line(st.name),
            boot_timeout,
        ));
        steps.extend(st.send.iter().map(|c| Step::MonitorNow(command(c, tag))));
        // The script gives up first and says so.
        let limit = Duration::from_secs(u64::from(st.timeout) + 30);
        steps.push(Step::wait_for(st.done_name, &result_prefix(st.name), limit));
        let mut after: Vec<&str> = st.after.to_vec();
        if !after.contains(&"info memory-devices") {
            after.insert(0, "info memory-devices");
        }
        steps.extend(after.iter().map(|c| Step::MonitorNow(command(c, tag))));
    }
    steps
}

/// The harness's steps for Tessera's boot `tag`: for each step the
/// monitor commands (the first once the shell prompt is there), the wait
/// for the step's line ([`HpStep::tessera_done`]), then `memory`,
/// `zoneinfo` and `iomem` typed, and the commands after it; `poweroff` at
/// the end.
pub fn tessera_steps(v: &Variant, tag: &str, wait: Duration) -> Vec<Step> {
    let mut steps = vec![Step::Type("memory".into())];
    for st in v.steps() {
        for (i, c) in st.send.iter().enumerate() {
            let c = command(c, tag);
            steps.push(if i == 0 { Step::Monitor(c) } else { Step::MonitorNow(c) });
        }
        steps.push(Step::wait_for(st.done_name, st.tessera_done, wait));
        steps.extend(TESSERA_COMMANDS.iter().map(|c| Step::Type(c.to_string())));
        steps.extend(st.after.iter().map(|c| Step::MonitorNow(command(c, tag))));
    }
    steps.push(Step::Type("poweroff".into()));
    steps
}

/// What Tessera is asked after each step, in this order.
const TESSERA_COMMANDS: [&str; 3] = ["memory", "zoneinfo", "iomem"];

/// One kernel's state after one step, reduced to what is compared.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepViews {
    /// `memoryN state zone` for the blocks from [`HOTPLUG_BASE`] up.
    pub blocks: Vec<String>,
    /// Normal and Movable: `zone NAME start_pfn N spanned N present N`.
    pub zones: Vec<String>,
    /// Normal and Movable: `zone NAME managed N`.
    pub managed: Vec<String>,
    /// `/proc/iomem` memory lines from [`HOTPLUG_BASE`] up, but
    /// `Reserved` (QEMU's, far above: Tessera does not list it).
    pub iomem: Vec<String>,
}

/// What Linux showed after one step.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinuxStep {
    pub name: String,
    /// `done in N ms` (Linux's own count, from the ready line) or `not
    /// done after N s`.
    pub result: String,
    pub views: StepViews,
    /// `/sys/bus/nd/devices/*` lines.
    pub nd: Vec<String>,
    /// The kernel's messages since the step before.
    pub dmesg: Vec<String>,
    /// The raw snapshot lines (memory blocks, zoneinfo, iomem).
    pub raw: Vec<String>,
}

impl LinuxStep {
    pub fn done(&self) -> bool {
        self.result.starts_with("done")
    }
}

fn at_or_above_base(line: &str) -> bool {
    let range = line.trim_start();
    let start = range.split(['-', ' ']).next().unwrap_or("");
    u64::from_str_radix(start, 16).is_ok_and(|a| a >= HOTPLUG_BASE)
}

fn block_at_or_above_base(line: &str) -> bool {
    let id = line.split_whitespace().next().and_then(|w| w.strip_prefix("memory"));
    id.and_then(|n| n.parse::<u64>().ok()).is_some_and(|n| n << 27 >= HOTPLUG_BASE)
}

/// Reduces a memory listing, zoneinfo and iomem (either kernel's) to the
/// compared views.
pub fn views<'a>(
    memory: impl Iterator<Item = &'a str>,
    zoneinfo: impl Iterator<Item = &'a str>,
    iomem: impl Iterator<Item = &'a str>,
) -> StepViews {
    let (zones, managed) = linuxdiff::zone_lines(zoneinfo);
    let keep = |l: &String| {
        let name = l.split_whitespace().nth(1).unwrap_or("");
        matches!(name, "Normal" | "Movable")
    };
    StepViews {
        blocks: linuxdiff::block_lines(memory)
            .into_iter()
            .filter(|l| block_at_or_above_base(l))
            .collect(),
        zones: zones.into_iter().filter(keep).collect(),
        managed: managed.into_iter().filter(keep).collect(),
        iomem: linuxdiff::iomem_lines(iomem)
            .into_iter()
            .filter(|l| at_or_above_base(l) && !l.ends_with(": Reserved"))
            .map(|l| l.trim_start().to_string())
            .collect(),
    }
}

/// Splits Linux's serial output into its snapshots: `boot`, then one per
/// step.
pub fn linux_steps_of(out: &str) -> Vec<LinuxStep> {
    let mut steps = Vec::new();
    let mut lines = out.lines().peekable();
    let mut result = String::new();
    while let Some(l) = lines.next() {
        if let Some(rest) = l.strip_prefix("== hotplug ")
            && let Some((_, r)) = rest.split_once(": ")
        {
            result = r.trim().to_string();
            continue;
        }
        let Some(name) = l.strip_prefix("== hotplug state ") else { continue };
        let mut chunk = Vec::new();
        for l in lines.by_ref() {
            if l == "== part end" {
                break;
            }
            chunk.push(l);
        }
        let text = chunk.join("\n");
        let part = |p: &str| linuxdiff::part(&text, &format!("== part {p}"), "== part ");
        let raw: Vec<String> = ["memory", "zoneinfo", "iomem"]
            .iter()
            .flat_map(|p| part(p))
            .map(String::from)
            .collect();
        steps.push(LinuxStep {
            name: name.trim().to_string(),
            result: if name.trim() == "boot" { String::new() } else { std::mem::take(&mut result) },
            views: views(
                part("memory").into_iter(),
                part("zoneinfo").into_iter(),
                part("iomem").into_iter(),
            ),
            nd: part("nd").iter().map(|l| l.to_string()).collect(),
            dmesg: part("dmesg").iter().map(|l| linuxdiff::untimed(l).to_string()).collect(),
            raw,
        });
    }
    steps
}

/// Tessera's answers after each step: the serial log split at its shell
/// prompts, the answers to [`tessera_steps`]' typed commands taken in
/// order (the first `memory` is before any step).
pub fn tessera_steps_of(log: &str, names: &[&str]) -> Vec<(String, StepViews)> {
    let answers: Vec<Vec<&str>> =
        log.split(SHELL_PROMPT).skip(1).map(|a| a.lines().skip(1).collect()).collect();
    let mut out = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let at = 1 + i * TESSERA_COMMANDS.len();
        let get = |k: usize| answers.get(at + k).cloned().unwrap_or_default();
        let (m, z, io) = (get(0), get(1), get(2));
        if m.is_empty() && z.is_empty() {
            break;
        }
        out.push((name.to_string(), views(m.into_iter(), z.into_iter(), io.into_iter())));
    }
    out
}

/// One step compared: each view's rows.
pub struct StepDiff {
    pub step: String,
    pub sections: Vec<Section>,
}

impl StepDiff {
    pub fn differences(&self) -> usize {
        self.sections.iter().map(Section::unexplained).sum()
    }

    /// Each view as [`Section::write_report`] writes it, headed with the
    /// step.
    pub fn report(&self) -> String {
        let mut s = String::new();
        for sec in &self.sections {
            sec.write_report(&mut s, &format!("{} ", self.step));
        }
        s
    }
}

/// Compares Tessera's views after a step with Linux's after the same step,
/// line by line: memory blocks (ids, state, zone), the Normal and Movable
/// zones (start, span, present pages; managed pages on their own) and the
/// iomem lines of the hot-plugged ranges.
pub fn compare(step: &str, linux: &StepViews, tessera: &StepViews) -> StepDiff {
    let views: [(&'static str, &Vec<String>, &Vec<String>); 4] = [
        ("memory blocks", &linux.blocks, &tessera.blocks),
        ("zones", &linux.zones, &tessera.zones),
        ("zone managed", &linux.managed, &tessera.managed),
        ("iomem", &linux.iomem, &tessera.iomem),
    ];
    let sections = views
        .into_iter()
        .map(|(name, l, t)| Section { name, rows: linuxdiff::diff(l, t) })
        .collect();
    StepDiff { step: step.to_string(), sections }
}

/// Linux's transcript of a run: per step the monitor commands, the time
/// from the last one to Linux's done line, what QEMU lists, and Linux's
/// hot-plugged blocks, zones, iomem, nd devices and kernel messages.
pub fn transcript(v: &Variant, steps: &[LinuxStep], log: &StepLog, tag: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "== linux-hotplug {}: Linux 6.1, -m {MEM}{}, {}",
        v.name,
        if v.nvdimm { " -machine pc,nvdimm=on" } else { "" },
        v.cmdline()
    );
    for ls in steps {
        let _ = writeln!(
            s,
            "-- {}{}",
            ls.name,
            if ls.result.is_empty() { String::new() } else { format!(": {}", ls.result) }
        );
        if let Some(st) = SEQUENCE.iter().find(|st| st.name == ls.name) {
            for c in st.send {
                let _ = writeln!(s, "   (qemu) {}", command(c, tag));
            }
            match log.waits.iter().find(|w| w.name == st.done_name) {
                Some(w) if ls.done() => {
                    let _ = writeln!(s, "   time: {}", w.line());
                }
                _ => {
                    let _ = writeln!(s, "   time: {}: not done", st.done_name);
                }
            }
        }
        let lines = |s: &mut String, title: &str, v: &[String]| {
            let _ = writeln!(s, "   {title}:");
            for l in v {
                let _ = writeln!(s, "     {l}");
            }
        };
        lines(&mut s, "memory blocks (from 4 GiB)", &ls.views.blocks);
        let zones: Vec<String> = ls
            .views
            .zones
            .iter()
            .zip(&ls.views.managed)
            .map(|(z, m)| format!("{z} managed {:>8}", m.rsplit(' ').next().unwrap_or("")))
            .collect();
        lines(&mut s, "zones", &zones);
        lines(&mut s, "iomem (from 4 GiB)", &ls.views.iomem);
        if !ls.nd.is_empty() {
            lines(&mut s, "nd devices", &ls.nd);
        }
        if !ls.dmesg.is_empty() {
            lines(&mut s, "kernel messages", &ls.dmesg);
        }
        if let Some(st) = SEQUENCE.iter().find(|st| st.name == ls.name) {
            // QEMU's answers to the commands after the step.
            let mut after = log
                .monitor
                .iter()
                .skip_while(|(c, _)| *c != command(st.send[st.send.len() - 1], tag))
                .skip(1)
                .take_while(|(c, _)| !c.starts_with("object_add") && !c.starts_with("device_"));
            for (c, answer) in after.by_ref() {
                if c == "info memory-devices" {
                    let ids: Vec<&str> = answer
                        .lines()
                        .filter_map(|l| {
                            l.split_once("]: \"").map(|(_, id)| id.trim_end_matches('"'))
                        })
                        .collect();
                    let _ = writeln!(s, "   qemu info memory-devices: {}", ids.join(" "));
                } else {
                    let said = if answer.is_empty() { "ok" } else { answer.as_str() };
                    let _ = writeln!(s, "   (qemu) {c}: {said}");
                }
            }
        }
    }
    s
}

/// One Linux run of `v`: the output's snapshots, the step log.
pub fn run_linux(
    kit: &linux::Kit,
    v: &Variant,
    tag: &str,
    timeout: Duration,
) -> Result<(Vec<LinuxStep>, StepLog), String> {
    let p = profile::find("bios")?;
    let m = Machine::new(p, Path::new(""), tag).shape(&v.shape()).timeout(timeout);
    let _ = std::fs::remove_file(nv1_file(tag));
    let script = linux_script(v);
    let (out, log) = linux::boot_steps(kit, &m, &script, &linux_steps(v, tag, timeout))?;
    let _ = std::fs::remove_file(nv1_file(tag));
    Ok((linux_steps_of(&out), log))
}

/// One Tessera run of `v` (the kernel `kernel`): its views after each
/// step and the step log; the views stop where the steps did.
pub fn run_tessera(
    kernel: &Path,
    v: &Variant,
    tag: &str,
    timeout: Duration,
) -> Result<(Vec<(String, StepViews)>, StepLog), String> {
    let p = profile::find("bios")?;
    let mut m = Machine::new(p, kernel, tag).shape(&v.shape()).timeout(timeout);
    m.cmdline = linuxdiff::tessera_cmdline(&format!("nopmem {}", m.cmdline));
    let _ = std::fs::remove_file(nv1_file(tag));
    let b = machine::boot_captured(&m, false, &tessera_steps(v, tag, Duration::from_secs(20)))?;
    let _ = std::fs::remove_file(nv1_file(tag));
    let names: Vec<&str> = v.steps().map(|s| s.name).collect();
    Ok((tessera_steps_of(&b.log, &names), b.steps))
}

/// The expected Linux views (the `movable` variant) after each step:
/// `make test` checks that the harness still drives Linux to them.
pub const LINUX_MOVABLE: &[(&str, &[&str])] = &[
    (
        "plug-128M",
        &[
            "memory32 online Movable",
            "zone Normal  start_pfn        - spanned        0 present        0",
            "zone Movable start_pfn  1048576 spanned    32768 present    32768",
            "zone Normal  managed        0",
            "zone Movable managed    32768",
            "100000000-107ffffff : System RAM",
        ],
    ),
    (
        "plug-1G",
        &[
            "memory32 online Movable",
            "memory33 online Movable",
            "memory34 online Movable",
            "memory35 online Movable",
            "memory36 online Movable",
            "memory37 online Movable",
            "memory38 online Movable",
            "memory39 online Movable",
            "memory40 online Movable",
            "zone Normal  start_pfn        - spanned        0 present        0",
            "zone Movable start_pfn  1048576 spanned   294912 present   294912",
            "zone Normal  managed        0",
            "zone Movable managed   294912",
            "100000000-107ffffff : System RAM",
            "108000000-147ffffff : System RAM",
        ],
    ),
    (
        "unplug-128M",
        &[
            "memory33 online Movable",
            "memory34 online Movable",
            "memory35 online Movable",
            "memory36 online Movable",
            "memory37 online Movable",
            "memory38 online Movable",
            "memory39 online Movable",
            "memory40 online Movable",
            "zone Normal  start_pfn        - spanned        0 present        0",
            "zone Movable start_pfn  1081344 spanned   262144 present   262144",
            "zone Normal  managed        0",
            "zone Movable managed   262144",
            "108000000-147ffffff : System RAM",
        ],
    ),
    (
        "plug-nvdimm",
        &[
            "memory33 online Movable",
            "memory34 online Movable",
            "memory35 online Movable",
            "memory36 online Movable",
            "memory37 online Movable",
            "memory38 online Movable",
            "memory39 online Movable",
            "memory40 online Movable",
            "zone Normal  start_pfn        - spanned        0 present        0",
            "zone Movable start_pfn  1081344 spanned   262144 present   262144",
            "zone Normal  managed        0",
            "zone Movable managed   262144",
            "108000000-147ffffff : System RAM",
            "148000000-157ffffff : Persistent Memory",
        ],
    ),
];

impl StepViews {
    /// Every line, in the order of [`LINUX_MOVABLE`].
    pub fn lines(&self) -> Vec<String> {
        [&self.blocks, &self.zones, &self.managed, &self.iomem]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }
}

/// `make test`'s hotplug step: Linux through the sequence on
/// [`plan::HOTPLUG`]'s variant, each step a test (done, and its views as
/// [`LINUX_MOVABLE`] says), its `device_add -> online` times printed;
/// with [`plan::HOTPLUG`]`.tessera`, Tessera too, compared step by step.
pub fn suite(kernel: &Path, timeout: Duration, filter: Option<&str>) -> (usize, usize) {
    let (mut passed, mut failed) = (0, 0);
    let mut check = |name: String, problems: Vec<String>, note: String| {
        let note = if note.is_empty() { note } else { format!(" ({note})") };
        let first = problems.first().map_or(String::new(), |p| format!(": {p}"));
        let verdict =
            format!("{}{note}", report::outcome(&format!("{name}{first}"), problems.is_empty()));
        println!("test {name} ... {verdict}");
        for p in &problems {
            println!("  {p}");
        }
        if problems.is_empty() { passed += 1 } else { failed += 1 }
    };
    let hp = &plan::HOTPLUG;
    let Some(v) = VARIANTS.iter().find(|v| v.name == hp.variant) else {
        check("hotplug::plan".into(), vec![format!("no variant {}", hp.variant)], String::new());
        return (passed, failed);
    };
    let start = std::time::Instant::now();
    let tessera = hp.tessera
        && filter
            .is_none_or(|f| "hotplug::tessera::".contains(f) || f.starts_with("hotplug::tessera"));
    let kit = match linux::kit() {
        Ok(k) => k,
        Err(e) => {
            check("hotplug::linux".into(), vec![e], String::new());
            return (passed, failed);
        }
    };
    let events = hp.tessera
        && filter
            .is_none_or(|f| "hotplug::events::".contains(f) || f.starts_with("hotplug::events"));
    let (l, t, ev) = std::thread::scope(|s| {
        let h = s.spawn(|| run_linux(&kit, v, "hotplug-linux", timeout));
        let e = s.spawn(|| events.then(|| crate::hotplug_events::run(kernel, timeout)));
        let t = tessera.then(|| run_tessera(kernel, v, "hotplug-tessera", timeout));
        let l = h.join().unwrap_or_else(|_| Err("Linux boot thread panicked".into()));
        (l, t, e.join().unwrap_or_default())
    });
    for (name, result, note) in ev.unwrap_or_default() {
        check(name, result.err().into_iter().collect(), note);
    }
    let linux_steps = match l {
        Ok((steps, log)) => {
            let text = transcript(v, &steps, &log, "hotplug-linux");
            let path = "target/qemu/hotplug-linux.txt";
            let _ = std::fs::write(path, &text);
            for st in v.steps() {
                let got = steps.iter().find(|s| s.name == st.name);
                let want = LINUX_MOVABLE.iter().find(|(n, _)| *n == st.name).map(|(_, w)| *w);
                let mut problems = Vec::new();
                match got {
                    None => problems.push(format!("no snapshot after {} (see {path})", st.name)),
                    Some(g) if !g.done() => problems.push(format!("Linux: {}", g.result)),
                    Some(g) => {
                        if let (Some(want), true) = (want, v.name == "movable") {
                            let lines = g.views.lines();
                            let (a, b): (Vec<String>, Vec<String>) =
                                (want.iter().map(|s| s.to_string()).collect(), lines);
                            for r in linuxdiff::diff(&a, &b) {
                                match r {
                                    Row::Linux(l, _) => problems.push(format!("expected {l:?}")),
                                    Row::Tessera(l, _) => {
                                        problems.push(format!("unexpected {l:?}"))
                                    }
                                    Row::Same(_) => {}
                                }
                            }
                        }
                    }
                }
                let time = log
                    .waits
                    .iter()
                    .find(|w| w.name == st.done_name)
                    .map(Waited::line)
                    .unwrap_or_default();
                let name = format!("hotplug::linux::{}", st.name);
                check(name, problems, time);
            }
            println!("== hotplug: Linux's transcript in {path}");
            Some(steps)
        }
        Err(e) => {
            check("hotplug::linux".into(), vec![e], String::new());
            None
        }
    };
    if let Some(t) = t {
        match (t, &linux_steps) {
            (Err(e), _) => check("hotplug::tessera".into(), vec![e], String::new()),
            (Ok((tsteps, tlog)), linux_steps) => {
                for w in &tlog.waits {
                    println!("== hotplug: tessera {}", w.line());
                }
                for st in v.steps() {
                    let name = format!("hotplug::tessera::{}", st.name);
                    let lv =
                        linux_steps.as_ref().and_then(|l| l.iter().find(|s| s.name == st.name));
                    let tv = tsteps.iter().find(|(n, _)| n == st.name);
                    let problems = match (lv, tv) {
                        (None, _) => vec!["no Linux reference for this step".into()],
                        (_, None) => {
                            let why =
                                tlog.failed.as_deref().unwrap_or("no answers after this step");
                            // The step where they stopped says why; the others that they
                            // did not reach it.
                            let here = tlog.waits.last().is_some_and(|w| w.name == st.done_name);
                            vec![if here { why.to_string() } else { "not reached".into() }]
                        }
                        (Some(l), Some((_, t))) => {
                            let d = compare(st.name, &l.views, t);
                            if d.differences() == 0 {
                                vec![]
                            } else {
                                d.report().lines().map(String::from).collect()
                            }
                        }
                    };
                    let time = tlog
                        .waits
                        .iter()
                        .find(|w| w.name == st.done_name && w.elapsed.is_ok())
                        .map(Waited::line)
                        .unwrap_or_default();
                    check(name, problems, time);
                }
            }
        }
    }
    println!("== hotplug: {:.1} s", start.elapsed().as_secs_f64());
    (passed, failed)
}

/// `qemu linux-hotplug [VARIANT..]`: Linux through the sequence on each
/// variant (two at a time), each transcript printed and saved as
/// `target/qemu/linux-hotplug-VARIANT.txt`.
pub fn cmd_linux_hotplug(f: Flags) -> Result<bool, String> {
    let picked: Vec<&Variant> = if f.free.is_empty() {
        VARIANTS.iter().collect()
    } else {
        f.free
            .iter()
            .map(|n| {
                VARIANTS.iter().find(|v| v.name == n).ok_or_else(|| {
                    let names: Vec<&str> = VARIANTS.iter().map(|v| v.name).collect();
                    format!("no hotplug variant '{n}' (there are {})", names.join(", "))
                })
            })
            .collect::<Result<_, _>>()?
    };
    machine::check_host(profile::find("bios")?)?;
    let kit = linux::kit()?;
    let timeout = f.timeout.map_or(Duration::from_secs(180), Duration::from_secs);
    let mut ok = true;
    for pair in picked.chunks(2) {
        let results: Vec<_> = std::thread::scope(|s| {
            let hs: Vec<_> = pair
                .iter()
                .map(|v| {
                    let tag = format!("linux-hotplug-{}", v.name);
                    let kit = &kit;
                    s.spawn(move || run_linux(kit, v, &tag, timeout).map(|r| (tag, r)))
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err("boot thread panicked".into())))
                .collect()
        });
        for (v, r) in pair.iter().zip(results) {
            match r {
                Ok((tag, (steps, log))) => {
                    let text = transcript(v, &steps, &log, &tag);
                    let path = format!("target/qemu/{tag}.txt");
                    std::fs::write(&path, &text)
                        .map_err(|e| format!("cannot write {path}: {e}"))?;
                    print!("{text}");
                    println!("(saved in {path}; serial log target/qemu/{tag}.log)\n");
                }
                Err(e) => {
                    println!("== linux-hotplug {}: FAILED: {e}", v.name);
                    ok = false;
                }
            }
        }
    }
    Ok(ok)
}

/// `qemu hotplug-diff`: Tessera (`--kernel`, or the debug build) and Linux
/// through the sequence on the `movable` variant at once, compared step by
/// step; fails on any difference.
pub fn cmd_hotplug_diff(f: Flags) -> Result<bool, String> {
    let v = &VARIANTS[0];
    machine::check_host(profile::find("bios")?)?;
    let kernel = match &f.kernel {
        Some(k) => k.clone(),
        None => cargo::build_kernel(false)?,
    };
    let kit = linux::kit()?;
    let timeout = f.timeout.map_or(Duration::from_secs(180), Duration::from_secs);
    let (l, t) = std::thread::scope(|s| {
        let h = s.spawn(|| run_linux(&kit, v, "hotplug-diff-linux", timeout));
        let t = run_tessera(&kernel, v, "hotplug-diff-tessera", timeout);
        (h.join().unwrap_or_else(|_| Err("Linux boot thread panicked".into())), t)
    });
    let (lsteps, llog) = l?;
    let (tsteps, tlog) = t?;
    let mut bad = 0;
    for st in v.steps() {
        let lw = llog.waits.iter().find(|w| w.name == st.done_name).map(Waited::line);
        let tw = tlog.waits.iter().find(|w| w.name == st.done_name).map(Waited::line);
        println!(
            "== {}: linux {} | tessera {}",
            st.name,
            lw.unwrap_or("-".into()),
            tw.unwrap_or("-".into())
        );
        let lv = lsteps.iter().find(|s| s.name == st.name);
        let tv = tsteps.iter().find(|(n, _)| n == st.name);
        match (lv, tv) {
            (Some(l), Some((_, t))) => {
                let d = compare(st.name, &l.views, t);
                bad += d.differences();
                print!("{}", d.report());
            }
            (None, _) => {
                println!("  no Linux snapshot");
                bad += 1;
            }
            (_, None) => {
                println!(
                    "  no Tessera answers: {}",
                    tlog.failed.as_deref().unwrap_or("its steps stopped")
                );
                bad += 1;
            }
        }
    }
    println!("== tessera's monitor commands");
    for (c, answer) in &tlog.monitor {
        println!("  (qemu) {c}: {}", if answer.is_empty() { "ok" } else { answer });
    }
    println!("hotplug-diff: {bad} lines differ");
    Ok(bad == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINUX: &str = "\
== linux script begin
== hotplug state boot
== part memory
memory15 online DMA32 0000000f
== part zoneinfo
Node 0, zone    DMA32
        spanned  520159
        present  520159
        managed  483183
  start_pfn:           4096
Node 0, zone   Normal
        spanned  0
        present  0
        managed  0
== part iomem
00100000-7ffdefff : System RAM
fd00000000-ffffffffff : Reserved
== part nd
== part dmesg
== part end
== hotplug ready plug-128M
== hotplug plug-128M: done in 50 ms
== hotplug state plug-128M
== part memory
memory15 online DMA32 0000000f
memory32 online Movable 00000020
== part zoneinfo
Node 0, zone   Normal
        spanned  0
        present  0
        managed  0
Node 0, zone  Movable
        spanned  32768
        present  32768
        managed  32768
  start_pfn:           1048576
== part iomem
00100000-7ffdefff : System RAM
100000000-107ffffff : System RAM
400000000-47fffffff : PCI Bus 0000:00
  400000000-40fffffff : Persistent Memory
    400000000-40fffffff : namespace0.0
fd00000000-ffffffffff : Reserved
== part nd
region0 driver=nd_region size=268435456 resource=0x400000000
== part dmesg
[   28.815681] Built 1 zonelists, mobility grouping on.  Total pages: 502898
== part end
== hotplug ready unplug-128M
== hotplug unplug-128M: not done after 10 s
== hotplug state unplug-128M
== part memory
memory32 online Movable 00000020
== part zoneinfo
== part iomem
== part nd
== part dmesg
[    8.978001] memory memory32: Offline failed.
== part end
== linux script end rc=0
";

    #[test]
    fn linux_output_splits_into_step_views() {
        let steps = linux_steps_of(LINUX);
        let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["boot", "plug-128M", "unplug-128M"]);
        assert_eq!(steps[0].views.blocks, Vec::<String>::new());
        assert_eq!(
            steps[0].views.zones,
            ["zone Normal  start_pfn        - spanned        0 present        0"]
        );
        let s = &steps[1];
        assert!(s.done());
        assert_eq!(s.result, "done in 50 ms");
        // Blocks and ranges below 4 GiB, DMA32 and QEMU's Reserved go;
        // a range under the PCI window moves up; namespace0.0 goes.
        assert_eq!(
            s.views.lines(),
            [
                "memory32 online Movable",
                "zone Normal  start_pfn        - spanned        0 present        0",
                "zone Movable start_pfn  1048576 spanned    32768 present    32768",
                "zone Normal  managed        0",
                "zone Movable managed    32768",
                "100000000-107ffffff : System RAM",
                "400000000-40fffffff : Persistent Memory",
            ]
        );
        assert_eq!(s.nd.len(), 1);
        assert_eq!(s.dmesg, ["Built 1 zonelists, mobility grouping on.  Total pages: 502898"]);
        assert!(!steps[2].done());
        assert_eq!(steps[2].result, "not done after 10 s");
        assert_eq!(steps[2].dmesg, ["memory memory32: Offline failed."]);
    }

    #[test]
    fn tessera_answers_compare_with_linux_line_by_line() {
        let log = "\
boot lines
tessera> memory
memory0  online  [mem 0x0000000000000000-0x0000000007ffffff] none (boot)
tessera> [    5.1] memory: memory32 online: 32768 pages to zone Movable
memory
memory0  online  [mem 0x0000000000000000-0x0000000007ffffff] none (boot)
memory32 online  [mem 0x0000000100000000-0x0000000107ffffff] Movable
tessera> zoneinfo
Node 0, zone   Normal
        spanned  0
        present  0
        managed  0
Node 0, zone  Movable
        spanned  32768
        present  32768
        managed  32256
  start_pfn:           1048576
tessera> iomem
00100000-7ffdefff : System RAM
100000000-107ffffff : System RAM
tessera> poweroff
";
        let t = tessera_steps_of(log, &["plug-128M", "plug-1G"]);
        assert_eq!(t.len(), 1, "{t:?}");
        let l = &linux_steps_of(LINUX)[1];
        let d = compare("plug-128M", &l.views, &t[0].1);
        // Only Movable's managed pages (say, a memmap on the block) and
        // the persistent range differ.
        assert_eq!(d.differences(), 3, "{}", d.report());
        let r = d.report();
        assert!(
            r.contains(
                "== plug-128M memory blocks (1 of 1 lines agree)\n  = memory32 online Movable"
            ),
            "{r}"
        );
        assert!(r.contains("  - linux   zone Movable managed    32768\n"), "{r}");
        assert!(r.contains("  + tessera zone Movable managed    32256\n"), "{r}");
        assert!(r.contains("  - linux   400000000-40fffffff : Persistent Memory\n"), "{r}");
        assert_eq!(compare("x", &l.views, &l.views).differences(), 0);
    }

    #[test]
    fn steps_wait_for_linux_then_send_and_time() {
        let v = &VARIANTS[0];
        let steps = linux_steps(v, "t", Duration::from_secs(60));
        assert_eq!(
            steps[0],
            Step::wait_for(
                "plug-128M ready",
                "== hotplug ready plug-128M",
                Duration::from_secs(60)
            )
        );
        assert_eq!(
            steps[1],
            Step::MonitorNow("object_add memory-backend-ram,id=mem1,size=128M".into())
        );
        assert_eq!(steps[2], Step::MonitorNow("device_add pc-dimm,id=dimm1,memdev=mem1".into()));
        assert_eq!(
            steps[3],
            Step::wait_for(
                "device_add dimm1 -> online",
                "== hotplug plug-128M: ",
                Duration::from_secs(50)
            )
        );
        assert_eq!(steps[4], Step::MonitorNow("info memory-devices".into()));
        let sent: Vec<&Step> = steps.iter().filter(|s| matches!(s, Step::MonitorNow(_))).collect();
        assert!(sent.contains(&&Step::MonitorNow(
            "object_add memory-backend-file,id=nv1,share=on,mem-path=target/qemu/t-nv1.img,size=256M".into()
        )));
        // Every step's wait line is in the script, in the same order.
        let script = linux_script(v);
        assert!(script.ends_with(
            "step plug-128M online+1 20\nstep plug-1G online+8 20\nstep unplug-128M blocks-1 10\nstep plug-nvdimm pmem+1 20\n"
        ));
        let dimms = VARIANTS.iter().find(|v| v.name == "dimm-only").unwrap();
        assert!(!linux_script(dimms).contains("plug-nvdimm"));
        assert_eq!(dimms.shape().qemu_args, "");
        assert_eq!(v.shape().cmdline, "memhp_default_state=online_movable");
        // Tessera: the first command once the prompt is there, the wait
        // for its own line, then its three listings.
        let t = tessera_steps(v, "t", Duration::from_secs(20));
        assert_eq!(t[0], Step::Type("memory".into()));
        assert_eq!(t[1], Step::Monitor("object_add memory-backend-ram,id=mem1,size=128M".into()));
        assert_eq!(
            t[3],
            Step::wait_for(
                "device_add dimm1 -> online",
                "memory: memory32 online",
                Duration::from_secs(20)
            )
        );
        assert_eq!(t[4..7], ["memory", "zoneinfo", "iomem"].map(|c| Step::Type(c.into())));
        assert_eq!(t.last(), Some(&Step::Type("poweroff".into())));
    }

    /// The expected Linux views name every step of the sequence.
    #[test]
    fn the_reference_covers_the_sequence() {
        let names: Vec<&str> = SEQUENCE.iter().map(|s| s.name).collect();
        let expected: Vec<&str> = LINUX_MOVABLE.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, expected);
        assert!(VARIANTS.iter().any(|v| v.name == plan::HOTPLUG.variant));
    }
}

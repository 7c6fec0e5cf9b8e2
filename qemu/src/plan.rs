//! The harness as data: the machine profiles, the machines (memory,
//! options, devices) each kernel test binary boots on, the hostile and
//! damaged-device runs, and the machines of `qemu bench`, the Linux
//! conformance suite and `qemu fuzz-seeds`. The code that boots them is
//! elsewhere ([`crate::test`], [`crate::bench`], [`crate::linuxdiff`],
//! [`crate::fuzz`]); each turns an entry into one
//! [`crate::machine::Machine`].
//!
//! A Rust table rather than a data file, for three reasons: it names what
//! it means directly (an NVDIMM's [`Format`], the hostile cases of
//! [`crate::malformed`], the damaged info blocks of [`Corruption`]) and the
//! compiler checks every name; it needs no parser and no new dependency;
//! and `cargo test -p qemu` checks the rest (every binary named here
//! exists in `kernel/tests/`, boot names are unique).
//!
//! Test binaries are found, not listed: `qemu test` boots whatever cargo
//! built from `kernel/tests/*.rs` (and the kernel library's unit tests,
//! named `kernel`). A binary without an entry in [`BINARIES`] boots once on
//! [`DEFAULT`] on every profile that runs test binaries, so adding one
//! needs no harness edit; an entry is only needed for other machines.

use std::path::Path;

use mm::nd_pfn::Kind;

use crate::device::{Corruption, Format};
use crate::madt_cases::MADT_CASES;
use crate::malformed;
use crate::profile::Profile;
use boot::Firmware;

/// Every profile, in the order `make test` runs them.
///
/// `bios` and `uefi` run everything on one CPU. `bios-smp` and `uefi-smp`
/// boot every test binary again on 4 CPUs (parallel vCPU threads; these
/// hosts have 2 cores, so the vCPUs time-share), but only its first plain
/// boot ([`Profile::first_boot_only`]): all 30 plain boots of each took
/// 2.6 min (BIOS) and 5 min (UEFI) here while another build ran, 7.7 min
/// on top of a cold `make test` of 16.5 min, too close to its 25-minute
/// limit with AP start-up and the hostile MADTs still to come; the 17
/// first boots took 1.1 and 3.4 min (boot and shell checks included) on
/// a quiet host. Families ([`Boots::Hostile`],
/// [`Boots::DamagedInfoBlocks`]) stay on `bios`, unless a family names an
/// smp profile ([`Boots::HostileMadt`]). The real kernel's boot and shell
/// checks run here too, the persistence checks do not (the NVDIMM file
/// does not care how many CPUs wrote it, and they boot Linux four times).
pub const PROFILES: &[Profile] = &[
    Profile {
        name: "bios",
        firmware: Firmware::Bios,
        usb: false,
        cpus: 1,
        about: "SeaBIOS, IDE disk",
        test_binaries: true,
        first_boot_only: false,
        persist: true,
    },
    Profile {
        name: "uefi",
        firmware: Firmware::Uefi,
        usb: false,
        cpus: 1,
        about: "OVMF, IDE disk",
        test_binaries: true,
        first_boot_only: false,
        persist: true,
    },
    Profile {
        name: "bios-smp",
        firmware: Firmware::Bios,
        usb: false,
        cpus: SMP_CPUS,
        about: "SeaBIOS, IDE disk",
        test_binaries: true,
        first_boot_only: true,
        persist: false,
    },
    Profile {
        name: "uefi-smp",
        firmware: Firmware::Uefi,
        usb: false,
        cpus: SMP_CPUS,
        about: "OVMF, IDE disk",
        test_binaries: true,
        first_boot_only: true,
        persist: false,
    },
    // A stick boots the real kernel (to the end of initialization, then the
    // shell), as on a PC; the in-kernel tests gain nothing from another
    // disk controller.
    Profile {
        name: "usb-bios",
        firmware: Firmware::Bios,
        usb: true,
        cpus: 1,
        about: "SeaBIOS, USB stick on xHCI",
        test_binaries: false,
        first_boot_only: false,
        persist: false,
    },
    Profile {
        name: "usb-uefi",
        firmware: Firmware::Uefi,
        usb: true,
        cpus: 1,
        about: "OVMF, USB stick on xHCI",
        test_binaries: false,
        first_boot_only: false,
        persist: false,
    },
];

/// The CPU count of the smp profiles.
pub const SMP_CPUS: u32 = 4;

/// A QEMU NVDIMM backed by a file (one per boot, under `target/qemu/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nvdimm {
    pub size: u64,
    /// Its guest-physical address (`addr=`); `None`: QEMU's device-memory
    /// base, 4 GiB on the 2 GiB machines that use it.
    pub addr: Option<u64>,
    /// How the host prepares the file before the boot: a known pattern,
    /// plus an info block for [`Format::Pfn`] or a damaged one for
    /// [`Format::Corrupt`] (and compares it afterwards). `None`: the file is
    /// removed and QEMU creates it full of zeros.
    pub format: Option<Format>,
}

/// A 256 MiB NVDIMM at QEMU's device-memory base.
pub const NVDIMM_256M: Nvdimm = Nvdimm { size: 256 << 20, addr: None, format: Some(Format::Raw) };

/// The shape of a machine: everything but firmware, disk and kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// QEMU `-m`, verbatim. A machine with an NVDIMM needs slots and maxmem.
    pub mem: &'static str,
    /// Kernel options, handed over through fw_cfg.
    pub cmdline: &'static str,
    pub nvdimm: Option<Nvdimm>,
    /// More QEMU arguments, split at whitespace.
    pub qemu_args: &'static str,
}

/// The machine of `make run` and of every test binary without an entry:
/// 2 GiB of RAM, no options (so the kernel emulates 32 MiB of PMEM).
pub const DEFAULT: Shape = Shape { mem: "2G", cmdline: "", nvdimm: None, qemu_args: "" };

const fn shape(mem: &'static str, cmdline: &'static str) -> Shape {
    Shape { mem, cmdline, ..DEFAULT }
}

/// Two legacy persistent ranges in section 7 (RAM on both sides).
const TWO_PMEM: &str = "memmap=32M!0x3a000000 memmap=32M!0x3c000000";
/// QEMU's `-m` with room for an NVDIMM.
const NVDIMM_MEM: &str = "2G,slots=2,maxmem=8G";

/// 2 GiB of RAM and a 256 MiB NVDIMM in `format`, with emulation off.
pub const fn nvdimm(format: Format, cmdline: &'static str) -> Shape {
    Shape {
        mem: NVDIMM_MEM,
        cmdline,
        nvdimm: Some(Nvdimm { format: Some(format), ..NVDIMM_256M }),
        qemu_args: "",
    }
}

/// The machine of the persistence checks: a raw 256 MiB NVDIMM (the checks
/// prepare and share its file across boots themselves).
pub const NVDIMM: Shape = nvdimm(Format::Raw, "nopmem");

/// A small RAM and a large, sparse NVDIMM far up the address space: 2 GiB
/// and a 64 GiB NVDIMM at 256 GiB, formatted fsdax first (its memmap would
/// not fit in System RAM), backed by a sparse file.
pub const BIG_NVDIMM: Shape = Shape {
    mem: "2G,slots=4,maxmem=512G",
    cmdline: "nopmem",
    nvdimm: Some(BIG_NVDIMM_DEVICE),
    qemu_args: "",
};

/// [`BIG_NVDIMM`]'s device.
const BIG_NVDIMM_DEVICE: Nvdimm =
    Nvdimm { size: 64 << 30, addr: Some(0x40_0000_0000), format: Some(Format::Pfn(Kind::Fsdax)) };

/// One boot of a test binary.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    /// Names the boot `binary@variant` (empty: just `binary`).
    pub variant: &'static str,
    pub shape: Shape,
    /// Only on this profile, or on every multi-CPU one ([`MULTI_CPU`]) (`None`: every profile that runs test binaries).
    pub only: Option<&'static str>,
    /// A piece of each line the kernel must print; each is a test.
    pub expect: &'static [&'static str],
}

const fn run(variant: &'static str, shape: Shape) -> Boots {
    Boots::One(Run { variant, shape, only: None, expect: &[] })
}

/// A test binary's boots: one, or a family generated from a list.
#[derive(Debug, Clone, Copy)]
pub enum Boots {
    One(Run),
    /// One boot per case of [`malformed::CASES`] (`hostile-NAME`): a
    /// hostile NFIT through `-acpitable` and/or absurd memory options, each
    /// reported in its lines.
    Hostile {
        only: &'static str,
    },
    /// One boot per [`Corruption`] (`nvdimm-NAME`): an NVDIMM whose info
    /// block the host damaged; the namespace must stay raw and the device
    /// untouched.
    DamagedInfoBlocks {
        only: &'static str,
    },
    /// One boot per case of [`MADT_CASES`] (`hostile-madt-NAME`): a hostile
    /// MADT through `-acpitable` and the case's options, each reported in
    /// its lines.
    HostileMadt {
        only: &'static str,
    },
}

/// A kernel test binary (`kernel/tests/NAME.rs`) and where it boots.
#[derive(Debug, Clone, Copy)]
pub struct Binary {
    pub name: &'static str,
    pub boots: &'static [Boots],
}

/// Test binaries with needs of their own. Every other binary cargo builds
/// boots once on [`DEFAULT`].
pub const BINARIES: &[Binary] = &[
    // Single-test binaries whose one test must end the machine in a panic,
    // a double fault on a guard page or a page fault: the default machine,
    // listed so that nobody gives them a second boot by accident.
    Binary { name: "should_panic", boots: &[run("", DEFAULT)] },
    Binary { name: "stack_overflow", boots: &[run("", DEFAULT)] },
    Binary { name: "page_fault", boots: &[run("", DEFAULT)] },
    // What `make bench` boots (see BENCH); as a test it checks that each
    // measurement runs, on the default machine.
    Binary { name: "bench", boots: &[run("", DEFAULT)] },
    Binary { name: "memmap_2g", boots: &[run("", shape("2G", TWO_PMEM))] },
    // 1 GiB: RAM ends mid-section (0x3ffe0000); 2 GiB: two persistent
    // ranges in section 7; 5 GiB: RAM above 4 GiB (ZONE_NORMAL). Then the
    // hostile firmware and option cases (BIOS only: the tables reach the
    // kernel the same way under both firmwares).
    Binary {
        name: "sparsemem",
        boots: &[
            run("1G", shape("1G", "")),
            run("2G-pmem", shape("2G", TWO_PMEM)),
            run("5G", shape("5G", "")),
            Boots::Hostile { only: "bios" },
        ],
    },
    // The default emulated range; two memmap= ranges in one section; a
    // QEMU NVDIMM (firmware NFIT) with emulation off, raw and formatted
    // fsdax by the host; mem= alone (the default range comes from the RAM
    // that remains, and says why it is there); damaged info blocks, each
    // reported in one line, the namespace raw and the device untouched.
    Binary {
        name: "pmem",
        boots: &[
            run("default", DEFAULT),
            run("2G-pmem", shape("2G", TWO_PMEM)),
            run("nvdimm", nvdimm(Format::Raw, "nopmem")),
            run("nvdimm-fsdax", nvdimm(Format::Pfn(Kind::Fsdax), "nopmem")),
            Boots::One(Run {
                variant: "mem1G",
                shape: shape("2G", "mem=1G"),
                only: None,
                expect: &[
                    "pmem: no memmap=nn!ss option: emulating [mem 0x000000003a000000-0x000000003bffffff] (32 MiB) as persistent memory, in the highest 128 MiB section of free RAM below mem=0x40000000; nopmem turns this off",
                ],
            }),
            Boots::DamagedInfoBlocks { only: "bios" },
        ],
    },
    // An emulated range in RAM (the bootloader mapped it) and a QEMU NVDIMM
    // with an altmap (only ever mapped by the driver).
    Binary {
        name: "pmem_unmapped",
        boots: &[run("default", DEFAULT), run("nvdimm", nvdimm(Format::Raw, "nopmem"))],
    },
    // 3 GiB below 4 GiB and 1 GiB above, withheld by mem=; section 33 = 64
    // MiB of persistent memory, then 64 MiB of withheld RAM. A one-block
    // DIMM's memmap on itself (probe never does that, as in Linux).
    Binary {
        name: "memory_hotplug",
        boots: &[run(
            "",
            shape("4G", "memmap=64M!0x108000000 mem=2560M memory_hotplug.memmap_on_memory=1"),
        )],
    },
    Binary { name: "scale", boots: &[run("", BIG_NVDIMM)] },
    // The same NVDIMM formatted devdax: compound pages sharing their tails'
    // vmemmap (the 4-CPU BIOS profile only: the firmware changes nothing
    // here, and the shared pages' read-only mappings meet other CPUs' TLBs).
    Binary {
        name: "devdax",
        boots: &[Boots::One(Run {
            variant: "",
            shape: Shape {
                nvdimm: Some(Nvdimm {
                    format: Some(Format::Pfn(Kind::Devdax)),
                    ..BIG_NVDIMM_DEVICE
                }),
                ..BIG_NVDIMM
            },
            only: Some("bios-smp"),
            expect: &[],
        })],
    },
    // 32 MiB of persistent memory in an early section (RAM below), 32 MiB
    // above mem= in a section of their own (vmemmap populated).
    Binary { name: "stress", boots: &[run("", shape("2G", "memmap=64M!0x3e000000 mem=1G"))] },
    // Boot-time allocation failures: a root (section 0, retried by the next
    // range), the usage chunk (every section), a 2 MiB memmap block (4 KiB
    // fallback), a vmemmap page table; hot-add failures on each machine, on
    // a raw NVDIMM (memmap in RAM) and an fsdax one (memmap on the device,
    // altmap); one region across 32 MiB of early section 7 and all of
    // section 8.
    Binary {
        name: "faults",
        boots: &[
            run("root", shape("2G", "fail_sparse=1")),
            run("usage", shape("2G", "fail_sparse=2")),
            run("memmap-block", shape("2G", "fail_sparse=3")),
            run("page-table", shape("2G", "fail_sparse=4")),
            run("nvdimm", nvdimm(Format::Raw, "nopmem fail_sparse=40")),
            run("nvdimm-fsdax", nvdimm(Format::Pfn(Kind::Fsdax), "nopmem fail_sparse=40")),
            run("early-and-own", shape("2G", "memmap=160M!0x3e000000 fail_sparse=40")),
        ],
    },
    // Several CPUs: the default machine on every profile (one CPU on bios
    // and uefi, four on the smp profiles), then the hostile MADTs on
    // bios-smp.
    // With the MP specification's 10 ms INIT delay that Linux drops on
    // processors that do not need it (QEMU's qemu64 is one).
    Binary {
        name: "smp",
        boots: &[
            run("", DEFAULT),
            Boots::One(Run {
                variant: "init-udelay",
                shape: shape("2G", "cpu_init_udelay=10000"),
                only: Some(MULTI_CPU),
                expect: &[],
            }),
            Boots::HostileMadt { only: "bios-smp" },
        ],
    },
    // Hotplug on one CPU while the others read, and the same with grace
    // periods that do not wait (which must be caught): 4 CPUs, BIOS only
    // (the firmware changes nothing here, and 20,000 operations take
    // about a minute).
    Binary {
        name: "hotplug_stress",
        boots: &[
            Boots::One(Run {
                variant: "",
                shape: shape("2G", "memmap=64M!0x3e000000 mem=1G"),
                only: Some("bios-smp"),
                expect: &["stress: 20000 hotplug operations", ", 0 faults, model unchanged"],
            }),
            Boots::One(Run {
                variant: "nogp",
                shape: shape("2G", "memmap=64M!0x3e000000 mem=1G hotplug_stress_nogp"),
                only: Some("bios-smp"),
                expect: &[],
            }),
        ],
    },
    // A panic on CPU 1 and a stack overflow on CPU 1 need a CPU 1: the
    // multi-CPU profiles only.
    Binary {
        name: "smp_panic",
        boots: &[Boots::One(Run {
            variant: "",
            shape: DEFAULT,
            only: Some(MULTI_CPU),
            expect: &["smp: CPU 1 (APIC 0x1) panicked; stopped 3 of 3 other CPUs"],
        })],
    },
    Binary {
        name: "smp_stack_overflow",
        boots: &[Boots::One(Run {
            variant: "",
            shape: DEFAULT,
            only: Some(MULTI_CPU),
            expect: &[],
        })],
    },
];

/// As [`Run::only`]: every profile with more than one CPU.
pub const MULTI_CPU: &str = "multi-cpu";

/// What a binary without an entry in [`BINARIES`] boots on.
const DEFAULT_BOOTS: &[Boots] = &[run("", DEFAULT)];

/// One boot of a test binary on one profile, families expanded.
#[derive(Debug, Clone)]
pub struct TestBoot {
    /// `binary` or `binary@variant`: the boot's name in the output.
    pub name: String,
    pub shape: Shape,
    /// An ACPI table handed to QEMU with `-acpitable`: file stem and bytes.
    pub acpi_table: Option<(String, Vec<u8>)>,
    pub expect: &'static [&'static str],
}

/// The boots of test binary `binary` on `profile`, in order (none on a
/// profile that runs no test binaries).
pub fn test_boots(binary: &str, profile: &Profile) -> Vec<TestBoot> {
    if !profile.test_binaries {
        return Vec::new();
    }
    let boots = BINARIES.iter().find(|b| b.name == binary).map_or(DEFAULT_BOOTS, |b| b.boots);
    let on = |only: Option<&str>| {
        only.is_none_or(|p| p == profile.name || (p == MULTI_CPU && profile.cpus > 1))
    };
    let boot = |variant: &str, shape, acpi_table, expect| TestBoot {
        name: if variant.is_empty() { binary.to_string() } else { format!("{binary}@{variant}") },
        shape,
        acpi_table,
        expect,
    };
    let mut out = Vec::new();
    let mut plain = 0;
    for b in boots {
        match *b {
            // A boot named for this profile (or all multi-CPU ones) runs
            // even where only the first plain boot does.
            Boots::One(r)
                if on(r.only) && !(profile.first_boot_only && plain > 0 && r.only.is_none()) =>
            {
                plain += usize::from(r.only.is_none());
                out.push(boot(r.variant, r.shape, None, r.expect))
            }
            Boots::One(_) => {}
            Boots::Hostile { only } if on(Some(only)) => {
                out.extend(malformed::CASES.iter().map(|c| {
                    let table = c.table().map(|t| (c.name.to_string(), t));
                    boot(
                        &format!("hostile-{}", c.name),
                        shape(DEFAULT.mem, c.cmdline),
                        table,
                        c.expect,
                    )
                }))
            }
            Boots::DamagedInfoBlocks { only } if on(Some(only)) => {
                out.extend(Corruption::ALL.iter().map(|&c| {
                    let shape = nvdimm(Format::Corrupt(c), "nopmem");
                    boot(&format!("nvdimm-{}", c.name()), shape, None, &[])
                }))
            }
            Boots::HostileMadt { only } if on(Some(only)) => {
                out.extend(MADT_CASES.iter().map(|c| {
                    let table = Some((format!("madt-{}", c.name), (c.table)()));
                    boot(
                        &format!("hostile-madt-{}", c.name),
                        shape(DEFAULT.mem, c.cmdline),
                        table,
                        c.expect,
                    )
                }))
            }
            Boots::Hostile { .. } | Boots::DamagedInfoBlocks { .. } => {}
            Boots::HostileMadt { .. } => {}
        }
    }
    out
}

/// The test binaries of `kernel/tests/*.rs` (their file stems) and the
/// library's unit tests (`kernel`): what cargo builds, found without
/// building, for `qemu plan`.
pub fn binaries_in(kernel_dir: &Path) -> Result<Vec<String>, String> {
    let dir = kernel_dir.join("tests");
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut names: Vec<String> = entries
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".rs").map(String::from)
        })
        .collect();
    names.sort();
    names.insert(0, "kernel".into());
    Ok(names)
}

/// `qemu plan`: every boot of `qemu test`'s test binaries, profile by
/// profile, without booting anything.
pub fn cmd_plan() -> Result<bool, String> {
    let binaries = binaries_in(Path::new("kernel"))?;
    for p in PROFILES {
        let first = if p.first_boot_only { ", each binary's first boot" } else { "" };
        println!("{} ({}, {}{first}):", p.name, p.about, Profile::cpus_text(p.cpus));
        for b in binaries.iter().flat_map(|b| test_boots(b, p)) {
            let s = &b.shape;
            let mut what = format!("-m {}", s.mem);
            if !s.cmdline.is_empty() {
                what += &format!(" options '{}'", s.cmdline);
            }
            if let Some(nv) = s.nvdimm {
                let format = nv.format.map_or("zeros".into(), |f| format!("{f:?}"));
                what += &format!(" nvdimm {} MiB {format}", nv.size >> 20);
            }
            if let Some((name, _)) = &b.acpi_table {
                what += &format!(" -acpitable {name}");
            }
            println!("  {:40} {what}", b.name);
        }
        let gdb = if crate::debug::tested(p, None) {
            format!(", gdb::{}", p.name)
        } else {
            String::new()
        };
        println!(
            "  boot::{0}, shell::{0}{gdb}{1}",
            p.name,
            if p.persist { ", persist" } else { "" }
        );
    }
    let hp = crate::hotplug::VARIANTS.iter().find(|v| v.name == HOTPLUG.variant);
    if let Some(v) = hp {
        println!(
            "hotplug (bios, -m {} {}, {}): Linux through the monitor's sequence{}",
            crate::hotplug::MEM,
            v.shape().qemu_args,
            v.shape().cmdline,
            if HOTPLUG.tessera { ", Tessera beside it, compared" } else { "" }
        );
    }
    Ok(true)
}

/// One column of `qemu bench`: a machine, its CPU count, and whether
/// Debian's Linux boots on it too (for its bring-up and, with an NVDIMM,
/// its fsdax re-bind, set against Tessera's).
#[derive(Debug, Clone, Copy)]
pub struct BenchColumn {
    pub name: &'static str,
    pub shape: Shape,
    pub cpus: u32,
    pub linux: bool,
}

const fn column(name: &'static str, shape: Shape, cpus: u32, linux: bool) -> BenchColumn {
    BenchColumn { name, shape, cpus, linux }
}

/// The machines `qemu bench` boots the `bench` binary on (BIOS), one
/// column each, with their CPU count. `2G-serial` is `2G` without the
/// framebuffer console, to show its cost (Linux is not booted on it: its
/// console is the serial port everywhere); `256M-fsdax` is 2 GiB and a
/// 256 MiB NVDIMM formatted fsdax by the host; `64G-nvdimm` is
/// [`BIG_NVDIMM`], as in the scale test; `-2cpu` and `-4cpu` are the same
/// machine on more CPUs (parallel vCPU threads), for memory bring-up and
/// the rows measured on several CPUs at once.
pub const BENCH: &[BenchColumn] = &[
    column("2G", DEFAULT, 1, true),
    column("2G-2cpu", DEFAULT, 2, true),
    column("2G-4cpu", DEFAULT, 4, true),
    column("2G-serial", shape("2G", "console=ttyS0"), 1, false),
    column("8G", shape("8G", ""), 1, true),
    column("8G-2cpu", shape("8G", ""), 2, true),
    column("8G-4cpu", shape("8G", ""), 4, true),
    column("256M-fsdax", nvdimm(Format::Pfn(Kind::Fsdax), "nopmem"), 1, true),
    column("64G-nvdimm", BIG_NVDIMM, 1, true),
];

/// The profile `qemu bench` boots on.
pub const BENCH_PROFILE: &str = "bios";

/// A 256 MiB NVDIMM whose file QEMU creates (zeros), for the conformance
/// suite: both kernels find the same empty device.
const FRESH_NVDIMM: Nvdimm = Nvdimm { format: None, ..NVDIMM_256M };

/// The Linux conformance suite's machines (`conformance::NAME`): name,
/// profile, shape. Tessera and Linux boot each with the same `-m`, QEMU
/// arguments and options (Tessera adds `nopmem` when no option names
/// persistent memory, see [`crate::linuxdiff::tessera_cmdline`]).
pub const CONFORMANCE: &[(&str, &str, Shape)] = &[
    ("comma-list", "bios", shape("2G", "memmap=64M!0x20000000,16M$0x30000000")),
    (
        "exactmap",
        "bios",
        shape(
            "2G",
            "memmap=exactmap memmap=0x9f000@0 memmap=0x7fee0000@0x100000 memmap=16M#0x30000000 memmap=2M%0x31000000-1+2 memmap=32M!0x3a000000",
        ),
    ),
    ("bare-memmap-nn", "bios", shape("2G", "memmap=1536M")),
    ("overlapping", "bios", shape("2G", "memmap=4M!64M memmap=2M!65M")),
    ("across-and-outside-ram", "bios", shape("2G", "memmap=32M!0x7ff00000 memmap=64M!0x200000000")),
    // The range crosses the limit: one entry each side of it, as in Linux.
    ("mem-small-first", "bios", shape("2G", "mem=1G memmap=64M!0x3e000000")),
    ("mem-large-last", "bios", shape("2G", "memmap=32M!0x10000000 mem=8G")),
    ("two-in-one-section", "bios", shape("2G", TWO_PMEM)),
    ("above-4g-whole-sections", "bios", shape("6G", "memmap=256M!0x140000000")),
    ("misaligned", "bios", shape("2G", "memmap=3M!0x20100000")),
    (
        "nvdimm",
        "bios",
        Shape { mem: NVDIMM_MEM, cmdline: "", nvdimm: Some(FRESH_NVDIMM), qemu_args: "" },
    ),
    ("uefi", "uefi", shape("2G", "memmap=32M!0x3a000000")),
];

/// `make test`'s runtime-hotplug step ([`crate::hotplug::suite`]): one
/// Linux boot through the whole monitor sequence (plug 128 MiB, plug
/// 1 GiB, unplug the 128 MiB, plug an NVDIMM) on this variant of
/// [`crate::hotplug::VARIANTS`], each step checked; with `tessera`, a
/// Tessera boot beside it through the same sequence, compared with Linux
/// after every step.
#[derive(Debug, Clone, Copy)]
pub struct Hotplug {
    pub variant: &'static str,
    /// Boot Tessera too and compare (once it handles `device_add`).
    pub tessera: bool,
}

pub const HOTPLUG: Hotplug = Hotplug { variant: "movable", tessera: true };

/// The machines `qemu fuzz-seeds` reads ACPI tables and memory maps from
/// (BIOS).
pub const SEEDS: &[(&str, Shape)] = &[
    ("qemu-2g", DEFAULT),
    (
        "qemu-nvdimm",
        Shape { mem: NVDIMM_MEM, cmdline: "nopmem", nvdimm: Some(FRESH_NVDIMM), qemu_args: "" },
    ),
    ("qemu-5g-memmap", shape("5G", "memmap=32M!0x3a000000 memmap=64M!5G")),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Binaries that boot only where there is more than one CPU.
    const MULTI_CPU_ONLY: &[&str] = &["smp_panic", "smp_stack_overflow"];
    /// Binaries that boot only on the 4-CPU BIOS profile.
    const BIOS_SMP_ONLY: &[&str] = &["hotplug_stress", "devdax"];
    use crate::profile;

    fn test_files() -> Vec<String> {
        binaries_in(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernel")).unwrap()
    }

    /// A typo or a renamed test file would silently fall back to the
    /// default machine: every entry must name a real binary, once.
    #[test]
    fn the_table_names_real_binaries_once_and_boot_names_are_unique() {
        let files = test_files();
        for (i, b) in BINARIES.iter().enumerate() {
            assert!(files.iter().any(|f| f == b.name), "{}: no kernel/tests/{}.rs", b.name, b.name);
            assert!(BINARIES[..i].iter().all(|o| o.name != b.name), "{} listed twice", b.name);
        }
        for p in PROFILES {
            for f in files.iter().map(String::as_str).chain(["new_binary"]) {
                let boots = test_boots(f, p);
                let runs = p.test_binaries
                    && (p.cpus > 1 || !MULTI_CPU_ONLY.contains(&f))
                    && (p.name == "bios-smp" || !BIOS_SMP_ONLY.contains(&f));
                assert_eq!(boots.is_empty(), !runs, "{f} on {}", p.name);
                for (i, b) in boots.iter().enumerate() {
                    assert!(boots[..i].iter().all(|o| o.name != b.name), "{} twice", b.name);
                }
            }
        }
        let bios = profile::find("bios").unwrap();
        let uefi = profile::find("uefi").unwrap();
        let names = |b: &str, p| test_boots(b, p).into_iter().map(|t| t.name).collect::<Vec<_>>();
        assert_eq!(names("new_binary", uefi), ["new_binary"]);
        assert_eq!(names("sparsemem", uefi), ["sparsemem@1G", "sparsemem@2G-pmem", "sparsemem@5G"]);
        assert_eq!(names("sparsemem", bios).len(), 3 + malformed::CASES.len());
        assert_eq!(names("pmem", bios).len(), 5 + Corruption::ALL.len());
        assert_eq!(names("pmem", uefi).len(), 5);
    }

    /// Bench columns: unique names; Linux boots on every one but the
    /// framebuffer comparison; every NVDIMM column is fsdax (its Tessera
    /// `fsdax_add` is set against Linux's re-bind).
    #[test]
    fn bench_columns() {
        for (i, c) in BENCH.iter().enumerate() {
            assert!(BENCH[..i].iter().all(|o| o.name != c.name), "{} twice", c.name);
            assert_eq!(c.linux, c.name != "2G-serial", "{}", c.name);
            if let Some(nv) = c.shape.nvdimm {
                assert_eq!(nv.format, Some(Format::Pfn(Kind::Fsdax)), "{}", c.name);
            }
        }
        let fsdax = BENCH.iter().find(|c| c.name == "256M-fsdax").unwrap();
        assert_eq!((fsdax.shape.nvdimm.unwrap().size, fsdax.cpus), (256 << 20, 1));
    }

    /// The smp profiles boot every test binary (and a new one) on several
    /// CPUs, with the first plain boot it has on one CPU; the families stay
    /// where they are named.
    #[test]
    fn every_binary_boots_on_the_smp_profiles() {
        let names = |b: &str, p| test_boots(b, p).into_iter().map(|t| t.name).collect::<Vec<_>>();
        let smp: Vec<&Profile> = PROFILES.iter().filter(|p| p.cpus > 1).collect();
        let smp_names: Vec<&str> = smp.iter().map(|p| p.name).collect();
        assert_eq!(smp_names, ["bios-smp", "uefi-smp"]);
        for p in PROFILES.iter().filter(|p| ["bios", "uefi"].contains(&p.name)) {
            assert_eq!(p.cpus, 1, "{}", p.name);
        }
        let uefi = profile::find("uefi").unwrap();
        for p in &smp {
            assert!(p.test_binaries && p.first_boot_only && !p.persist, "{}", p.name);
            assert_eq!(p.cpus, SMP_CPUS);
            for f in test_files().iter().map(String::as_str).chain(["new_binary"]) {
                if BIOS_SMP_ONLY.contains(&f) && p.name != "bios-smp" {
                    continue;
                }
                let boots = names(f, p);
                assert!(!boots.is_empty(), "{f} does not boot on {}", p.name);
                if f != "smp" && !MULTI_CPU_ONLY.contains(&f) && !BIOS_SMP_ONLY.contains(&f) {
                    assert_eq!(boots, names(f, uefi)[..1], "{f} on {}", p.name);
                }
            }
        }
        let (bios_smp, uefi_smp) = (smp[0], smp[1]);
        assert_eq!(names("smp", bios_smp).len(), 2 + MADT_CASES.len());
        assert_eq!(names("smp", uefi_smp), ["smp", "smp@init-udelay"]);
        assert_eq!(names("smp", profile::find("bios").unwrap()), ["smp"]);
        assert_eq!(names("sparsemem", bios_smp), ["sparsemem@1G"]);
        assert_eq!(names("hotplug_stress", bios_smp), ["hotplug_stress", "hotplug_stress@nogp"]);
        assert_eq!(names("pmem", uefi_smp), ["pmem@default"]);
        for (c, b) in MADT_CASES.iter().zip(&test_boots("smp", bios_smp)[2..]) {
            assert_eq!(b.name, format!("smp@hostile-madt-{}", c.name));
            assert!(b.acpi_table.is_some());
        }
    }
}

//! Shell commands: parsing a line into a [`Command`], and one-line help.
//!
//! Numbers are in C syntax (`0x` hex, leading `0` octal, else decimal) with
//! an optional K, M or G suffix, as in Linux's `memparse`. `pfn` takes a
//! physical address; a `#` in front gives a page frame number instead
//! (`pfn 0x3a000000` and `pfn #0x3a000` name the same page).
//!
//! The listings (`sections`, `pmem`, `memory`, `zoneinfo`, `iomem`, `nfit`,
//! `cpus`) take `--json` anywhere after the command word, with the same
//! arguments otherwise: [`Command::Json`].

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use options::memparse;

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `help [COMMAND]`: all commands, or one (a known command name).
    Help(Option<String>),
    /// `mem`: memory summary.
    Mem,
    /// `sections [N|all]`: sub-section maps.
    Sections(SectionsArg),
    /// `pfn ADDR|#PFN`: one page frame.
    Pfn(PfnArg),
    /// `iomem`: the physical address map.
    Iomem,
    /// `zoneinfo`: the zones' spans and page counts.
    Zoneinfo,
    /// `cpus`: every CPU, its APIC ID, state and what it is doing.
    Cpus,
    /// `acpi`: ACPI tables.
    Acpi,
    /// `acpi events`: the SCI, GPE and notify counts, and the DIMMs added.
    AcpiEvents,
    /// `acpi eval PATH [INT...]`: evaluates an AML object or method.
    AcpiEval {
        /// The absolute AML path.
        path: String,
        /// Integer arguments.
        args: Vec<u64>,
    },
    /// `acpi notify PATH VALUE`: handles `Notify(PATH, VALUE)` as if the
    /// firmware's AML had made it.
    AcpiNotify {
        /// The absolute AML path.
        path: String,
        /// The notify value.
        value: u64,
    },
    /// `nfit`: the NVDIMM firmware interface table.
    Nfit,
    /// `acpidump [SIG]`: the tables' bytes, as Linux's `acpidump` prints
    /// them (all, or those with signature SIG).
    AcpiDump(Option<String>),
    /// `pmem`: persistent-memory regions.
    Pmem,
    /// `pmem remove REGION`: hot-remove a region.
    PmemRemove {
        /// The region number (`regionN` or `N`).
        region: usize,
    },
    /// `pmem add REGION [--step]`: hot-add a region.
    PmemAdd {
        /// The region number (`regionN` or `N`).
        region: usize,
        /// Print each section's line as its sub-sections are added.
        step: bool,
    },
    /// `pmem mode REGION raw|fsdax|devdax [--align A] [--map mem|dev]`:
    /// rewrite the namespace's info block and add it again in that mode
    /// (`ndctl create-namespace -f -e namespaceN.0 -m MODE`).
    PmemMode {
        region: usize,
        mode: NsMode,
        /// `--align` (fsdax and devdax; default 2M).
        align: Option<u64>,
        /// `--map` (fsdax and devdax; default dev).
        map: Option<MapArg>,
    },
    /// `pmem read REGION OFFSET LEN`: a hex and ASCII dump of the data area.
    PmemRead { region: usize, offset: u64, len: u64 },
    /// `pmem write REGION OFFSET TEXT`: write TEXT (its words joined by one
    /// space) to the data area.
    PmemWrite { region: usize, offset: u64, text: String },
    /// `memory`: the memory blocks and their state.
    Memory,
    /// `memory probe ADDR`: hot-add the memory block at ADDR (RAM withheld
    /// at boot), offline, as Linux's `memory/probe`.
    MemoryProbe {
        /// The block's physical address.
        addr: u64,
    },
    /// `memory online|online_kernel|online_movable|offline|remove BLOCK`:
    /// change a block's state.
    MemoryState {
        /// What to do.
        action: BlockAction,
        /// The block number (`memoryN` or `N`).
        block: u64,
    },
    /// `memory fill BLOCK PAGES`: a workload of PAGES movable pages with
    /// known contents, placed in BLOCK.
    MemoryFill { block: u64, pages: u64 },
    /// `memory pin BLOCK`: pin one workload page in BLOCK (unmovable).
    MemoryPin { block: u64 },
    /// `memory unpin`: unpin every workload page.
    MemoryUnpin,
    /// `memory check`: read the workload back, compare its checksum.
    MemoryCheck,
    /// `memory release`: free the workload.
    MemoryRelease,
    /// `mosaic [on|off|all|N]`: the sections' tiles above the log.
    Mosaic(MosaicArg),
    /// `bench`: the built-in benchmarks.
    Bench,
    /// `stress N`: N hotplug operations on this CPU while the others read.
    Stress { ops: u64 },
    /// `reboot`: reset the machine.
    Reboot,
    /// `poweroff`: power the machine off.
    Poweroff,
    /// A listing with `--json`: its answer as one line of JSON.
    Json(Listing),
}

/// A command that can answer in JSON, with its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    Sections(SectionsArg),
    Pmem,
    Memory,
    Zoneinfo,
    Iomem,
    Nfit,
    Cpus,
}

/// The commands that take `--json`, in the order errors name them.
pub const JSON_COMMANDS: [&str; 7] =
    ["sections", "pmem", "memory", "zoneinfo", "iomem", "nfit", "cpus"];

impl Listing {
    /// The listing a command is, if it is one.
    pub fn of(cmd: &Command) -> Option<Self> {
        Some(match *cmd {
            Command::Sections(arg) => Self::Sections(arg),
            Command::Pmem => Self::Pmem,
            Command::Memory => Self::Memory,
            Command::Zoneinfo => Self::Zoneinfo,
            Command::Iomem => Self::Iomem,
            Command::Nfit => Self::Nfit,
            Command::Cpus => Self::Cpus,
            _ => return None,
        })
    }
}

/// A namespace mode, as ndctl names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NsMode {
    Raw,
    Fsdax,
    Devdax,
}

/// Where an fsdax or devdax namespace keeps its memmap (ndctl `--map`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapArg {
    /// In System RAM.
    Mem,
    /// On the device, below the data.
    Dev,
}

/// The most `pmem read` dumps at once.
pub const PMEM_READ_MAX: u64 = 4096;

/// What `memory` does to a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockAction {
    /// `online_pages`: hand its pages to the page allocator (the zone
    /// Linux's `online` picks).
    Online,
    /// `online_kernel`: into a kernel zone.
    OnlineKernel,
    /// `online_movable`: into ZONE_MOVABLE.
    OnlineMovable,
    /// `offline_pages`: take its free pages back.
    Offline,
    /// `remove_memory`: take an offline block out of the memory model.
    Remove,
}

/// Which sections `sections` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectionsArg {
    /// No argument: present sections whose sub-section map is not full.
    NotFull,
    /// `all`: every present section.
    All,
    /// `N`: section number N.
    One(u64),
}

/// What `mosaic` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MosaicArg {
    /// No argument: hide it if shown, else show it.
    Toggle,
    /// `on`: show it (as it was last shown).
    On,
    /// `off`: hide it; the log takes the whole screen.
    Off,
    /// `all`: every section, several a row when they do not all fit.
    All,
    /// `N`: one section a row, from section N on.
    From(u64),
}

/// The page frame `pfn` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PfnArg {
    /// A physical address: the frame holding it.
    Addr(u64),
    /// `#PFN`: a page frame number.
    Pfn(u64),
}

/// Why a line is not a command. Messages are one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError<'a> {
    /// The first word is no command.
    Unknown {
        /// The word.
        name: &'a str,
    },
    /// A command without arguments was given some.
    NoArguments {
        /// The command.
        command: &'static str,
    },
    /// An argument beyond the last one the command takes.
    Extra {
        /// The command (with its subcommand).
        command: &'static str,
        /// The first extra argument.
        arg: &'a str,
    },
    /// A required argument is missing.
    Missing {
        /// The command (with its subcommand).
        command: &'static str,
        /// What the argument should be.
        expected: &'static str,
    },
    /// An argument that does not parse.
    BadArgument {
        /// The command (with its subcommand).
        command: &'static str,
        /// The argument.
        arg: &'a str,
        /// What it should be.
        expected: &'static str,
    },
    /// An unknown subcommand.
    UnknownSubcommand {
        /// The command.
        command: &'static str,
        /// The subcommand given.
        arg: &'a str,
        /// The subcommands known.
        expected: &'static str,
    },
    /// A region name that is neither `regionN` nor `N`.
    BadRegion {
        /// The command with its subcommand.
        command: &'static str,
        /// The name given.
        arg: &'a str,
    },
    /// A block name that is neither `memoryN` nor `N`.
    BadBlock {
        /// The command with its subcommand.
        command: &'static str,
        /// The name given.
        arg: &'a str,
    },
    /// `help` about a command that does not exist.
    NoHelpTopic {
        /// The topic given.
        topic: &'a str,
    },
    /// `--json` on a command without a JSON answer.
    NoJson {
        /// The command.
        command: &'static str,
    },
    /// `--json` on a subcommand of a listing (`pmem add 0 --json`).
    JsonListingOnly {
        /// The command.
        command: &'static str,
        /// The subcommand given.
        sub: &'a str,
    },
}

impl fmt::Display for CommandError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown { name } => write!(f, "unknown command: {name} (try help)"),
            Self::NoArguments { command } => write!(f, "{command}: takes no arguments"),
            Self::Extra { command, arg } => write!(f, "{command}: unexpected argument '{arg}'"),
            Self::Missing { command, expected } => {
                write!(f, "{command}: missing argument: {expected}")
            }
            Self::BadArgument { command, arg, expected } => {
                write!(f, "{command}: bad argument '{arg}': expected {expected}")
            }
            Self::UnknownSubcommand { command, arg, expected } => {
                write!(f, "{command}: unknown subcommand '{arg}': expected {expected}")
            }
            Self::BadRegion { command, arg } => {
                write!(f, "{command}: bad region '{arg}': expected regionN")
            }
            Self::BadBlock { command, arg } => {
                write!(f, "{command}: bad block '{arg}': expected memoryN")
            }
            Self::NoHelpTopic { topic } => write!(f, "help: no command '{topic}'"),
            Self::NoJson { command } => {
                write!(f, "{command}: no --json answer (")?;
                let n = JSON_COMMANDS.len();
                for (i, c) in JSON_COMMANDS.iter().enumerate() {
                    let sep = match n - i {
                        1 => "",
                        2 => " and ",
                        _ => ", ",
                    };
                    write!(f, "{c}{sep}")?;
                }
                write!(f, " have one)")
            }
            Self::JsonListingOnly { command, sub } => {
                write!(
                    f,
                    "{command}: --json goes with the listing only ('{command} --json'), not '{sub}'"
                )
            }
        }
    }
}

/// One command's help. A command with several forms has one line per form
/// in both `usage` and `help`, separated by `\n` and paired in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandInfo {
    /// The command word.
    pub name: &'static str,
    /// Its syntax.
    pub usage: &'static str,
    /// What it does.
    pub help: &'static str,
}

const fn info(name: &'static str, usage: &'static str, help: &'static str) -> CommandInfo {
    CommandInfo { name, usage, help }
}

/// Every command, in the order `help` lists them.
pub const COMMANDS: &[CommandInfo] = &[
    info("help", "help [COMMAND]", "list the commands, or show one command's usage"),
    info("mem", "mem", "memory summary: RAM, zones and free pages"),
    info(
        "sections",
        "sections [N|all] [--json]",
        "sub-section maps of present sections, with a 64-character picture",
    ),
    info(
        "pfn",
        "pfn ADDR|#PFN",
        "the page at physical address ADDR; with '#', page frame number PFN",
    ),
    info("iomem", "iomem [--json]", "the physical address map, as in /proc/iomem"),
    info("zoneinfo", "zoneinfo [--json]", "each zone's span and pages, as in /proc/zoneinfo"),
    info(
        "cpus",
        "cpus [--json]",
        "every CPU: APIC ID, state, what it is doing, start-up time, IPIs",
    ),
    info(
        "acpi",
        "acpi\nacpi events\nacpi eval PATH [INT...]\nacpi notify PATH VALUE",
        "ACPI tables found at boot\nSCI, GPE and notify counts; the DIMMs added\n\
         evaluate an AML object or method\nhandle Notify(PATH, VALUE) as if the firmware made it",
    ),
    info(
        "acpidump",
        "acpidump [SIG]",
        "hex dump of every ACPI table (or those named SIG), as acpidump",
    ),
    info("nfit", "nfit [--json]", "the NFIT: persistent-memory ranges described by firmware"),
    info(
        "pmem",
        "pmem [--json]\npmem remove REGION\npmem add REGION [--step]\npmem mode REGION MODE\n\
         pmem read REG OFF LEN\npmem write REG OFF TEXT",
        "regions and namespaces as ndctl list: mode, map, size, layout\n\
         hot-remove a region (REGION: regionN or N)\n\
         hot-add a region; --step prints each section's map as it fills in\n\
         re-add REGION as raw|fsdax|devdax [--align 4K|2M|1G] [--map mem|dev]\n\
         hex dump of the data area (OFF from its start, LEN up to 4096)\n\
         write TEXT to the data area of an added region",
    ),
    info(
        "memory",
        "memory [--json]\nmemory probe ADDR\nmemory online BLOCK\n\
         memory online_kernel N\nmemory online_movable N\nmemory offline BLOCK\n\
         memory remove BLOCK\nmemory fill BLOCK PAGES\nmemory pin BLOCK\nmemory unpin\n\
         memory check\nmemory release",
        "memory blocks of System RAM: state, zones, memmap_on_memory, DIMM\n\
         hot-add the block at ADDR from RAM withheld at boot (mem=)\n\
         give a block's pages to the page allocator (BLOCK: memoryN or N)\n\
         online block N into a kernel zone (DMA32 or Normal)\n\
         online block N into ZONE_MOVABLE (only movable allocations go there)\n\
         take a block's pages back, migrating movable ones out\n\
         take an offline block out of the memory model\n\
         allocate PAGES movable pages of known contents in BLOCK\n\
         pin one of them in BLOCK: offline of BLOCK then fails (EBUSY)\n\
         unpin every pinned page of the workload\n\
         read the workload back and compare its checksum\n\
         free the workload's pages",
    ),
    info(
        "mosaic",
        "mosaic [on|off]\nmosaic all\nmosaic N",
        "show or hide each section's 64 tiles above the log (shown at start)\n\
         every section; if too many, 2^k a row, a tile the state of most of it\n\
         one section a row from section N (to scroll through many)",
    ),
    info("bench", "bench", "run the built-in benchmarks"),
    info(
        "stress",
        "stress N",
        "N hotplug operations here while the other CPUs read the memory model",
    ),
    info("reboot", "reboot", "reset the machine"),
    info("poweroff", "poweroff", "power the machine off"),
];

fn find(name: &str) -> Option<&'static CommandInfo> {
    COMMANDS.iter().find(|c| c.name == name)
}

/// Help lines, two spaces in, the usage and help columns aligned: every
/// command, or only `topic`.
pub fn help_lines(topic: Option<&str>) -> Result<Vec<String>, CommandError<'_>> {
    let width = COMMANDS.iter().flat_map(|c| c.usage.lines()).map(str::len).max().unwrap_or(0);
    let chosen = match topic {
        None => COMMANDS,
        Some(t) => core::slice::from_ref(find(t).ok_or(CommandError::NoHelpTopic { topic: t })?),
    };
    Ok(chosen
        .iter()
        .flat_map(|c| c.usage.lines().zip(c.help.lines()))
        .map(|(usage, help)| format!("  {usage:width$}   {help}"))
        .collect())
}

/// Parses one line. An empty or blank line is `Ok(None)`.
pub fn parse(line: &str) -> Result<Option<Command>, CommandError<'_>> {
    use CommandError::*;
    let mut words = line.split_ascii_whitespace();
    let Some(name) = words.next() else { return Ok(None) };
    let command = find(name).ok_or(Unknown { name })?.name;
    let mut args: Vec<&str> = words.collect();
    let json = args.iter().filter(|&&a| a == "--json").count();
    match json {
        0 => {}
        _ if !JSON_COMMANDS.contains(&command) => return Err(NoJson { command }),
        1 => args.retain(|&a| a != "--json"),
        _ => return Err(BadArgument { command, arg: "--json", expected: "each option once" }),
    }
    let cmd = match (command, args.as_slice()) {
        ("help", []) => Command::Help(None),
        ("help", [topic]) => {
            Command::Help(Some(find(topic).ok_or(NoHelpTopic { topic })?.name.into()))
        }
        ("sections", []) => Command::Sections(SectionsArg::NotFull),
        ("sections", ["all"]) => Command::Sections(SectionsArg::All),
        ("sections", [arg]) => {
            Command::Sections(SectionsArg::One(memparse(arg).ok_or(BadArgument {
                command,
                arg,
                expected: "a section number or 'all'",
            })?))
        }
        ("pfn", []) => return Err(Missing { command, expected: "ADDR or #PFN" }),
        ("pfn", [arg]) => {
            let bad = BadArgument { command, arg, expected: "ADDR or #PFN" };
            Command::Pfn(match arg.strip_prefix('#') {
                Some(pfn) => PfnArg::Pfn(memparse(pfn).ok_or(bad)?),
                None => PfnArg::Addr(memparse(arg).ok_or(bad)?),
            })
        }
        ("acpi", ["events"]) => Command::AcpiEvents,
        ("acpi", ["events", arg, ..]) => return Err(Extra { command: "acpi events", arg }),
        ("acpi", ["eval", rest @ ..]) => {
            let command = "acpi eval";
            let [path, ints @ ..] = rest else {
                return Err(Missing { command, expected: "PATH [INT...]" });
            };
            if ints.len() > 7 {
                return Err(Extra { command, arg: ints[7] });
            }
            let mut args = Vec::new();
            for arg in ints {
                args.push(memparse(arg).ok_or(BadArgument {
                    command,
                    arg,
                    expected: "an integer",
                })?);
            }
            Command::AcpiEval { path: aml_path(command, path)?, args }
        }
        ("acpi", ["notify", rest @ ..]) => {
            let command = "acpi notify";
            match rest {
                [path, value] => Command::AcpiNotify {
                    path: aml_path(command, path)?,
                    value: memparse(value).filter(|&v| v <= 0xff).ok_or(BadArgument {
                        command,
                        arg: value,
                        expected: "a notify value 0..0xff",
                    })?,
                },
                [_, _, arg, ..] => return Err(Extra { command, arg }),
                _ => return Err(Missing { command, expected: "PATH VALUE" }),
            }
        }
        ("acpi", [arg, ..]) => {
            return Err(UnknownSubcommand { command, arg, expected: "events, eval or notify" });
        }
        ("acpidump", []) => Command::AcpiDump(None),
        ("acpidump", [sig]) => {
            let ok = sig.len() == 4 && sig.bytes().all(|b| b.is_ascii_graphic());
            if !ok {
                return Err(BadArgument { command, arg: sig, expected: "a 4-character signature" });
            }
            Command::AcpiDump(Some((*sig).into()))
        }
        ("pmem", []) => Command::Pmem,
        ("pmem", ["remove", rest @ ..]) => {
            let command = "pmem remove";
            Command::PmemRemove { region: region(command, only_arg(command, "REGION", rest)?)? }
        }
        ("pmem", ["add", rest @ ..]) => pmem_add(rest)?,
        ("pmem", ["mode", rest @ ..]) => pmem_mode(rest)?,
        ("pmem", ["read", rest @ ..]) => {
            let command = "pmem read";
            match rest {
                [r, off, len] => {
                    let len = memparse(len)
                        .filter(|&l| (1..=PMEM_READ_MAX).contains(&l))
                        .ok_or(BadArgument { command, arg: len, expected: "LEN from 1 to 4096" })?;
                    Command::PmemRead {
                        region: region(command, r)?,
                        offset: offset(command, off)?,
                        len,
                    }
                }
                [_, _, _, arg, ..] => return Err(Extra { command, arg }),
                _ => return Err(Missing { command, expected: "REGION OFFSET LEN" }),
            }
        }
        ("pmem", ["write", rest @ ..]) => {
            let command = "pmem write";
            match rest {
                [r, off, text @ ..] if !text.is_empty() => Command::PmemWrite {
                    region: region(command, r)?,
                    offset: offset(command, off)?,
                    text: text.join(" "),
                },
                _ => return Err(Missing { command, expected: "REGION OFFSET TEXT" }),
            }
        }
        ("mosaic", []) => Command::Mosaic(MosaicArg::Toggle),
        ("mosaic", [arg]) => Command::Mosaic(match *arg {
            "on" => MosaicArg::On,
            "off" => MosaicArg::Off,
            "all" => MosaicArg::All,
            _ => MosaicArg::From(memparse(arg).ok_or(BadArgument {
                command,
                arg,
                expected: "on, off, all or a section number",
            })?),
        }),
        ("memory", []) => Command::Memory,
        ("memory", ["probe", rest @ ..]) => {
            let command = "memory probe";
            let arg = only_arg(command, "ADDR", rest)?;
            Command::MemoryProbe {
                addr: memparse(arg).ok_or(BadArgument { command, arg, expected: "ADDR" })?,
            }
        }
        (
            "memory",
            [
                sub @ ("online" | "online_kernel" | "online_movable" | "offline" | "remove"),
                rest @ ..,
            ],
        ) => {
            let (command, action) = match *sub {
                "online" => ("memory online", BlockAction::Online),
                "online_kernel" => ("memory online_kernel", BlockAction::OnlineKernel),
                "online_movable" => ("memory online_movable", BlockAction::OnlineMovable),
                "offline" => ("memory offline", BlockAction::Offline),
                _ => ("memory remove", BlockAction::Remove),
            };
            Command::MemoryState {
                action,
                block: block(command, only_arg(command, "BLOCK", rest)?)?,
            }
        }
        ("stress", rest) => {
            let arg = only_arg(command, "N", rest)?;
            match memparse(arg) {
                Some(ops @ 1..=100_000_000) => Command::Stress { ops },
                _ => {
                    return Err(BadArgument {
                        command,
                        arg,
                        expected: "N: operations 1..100000000",
                    });
                }
            }
        }
        ("memory", ["fill", rest @ ..]) => {
            let command = "memory fill";
            match *rest {
                [] | [_] => return Err(Missing { command, expected: "BLOCK PAGES" }),
                [b, n] => Command::MemoryFill {
                    block: block(command, b)?,
                    pages: match memparse(n) {
                        Some(p @ 1..=65536) => p,
                        _ => {
                            return Err(BadArgument {
                                command,
                                arg: n,
                                expected: "PAGES: 1..65536",
                            });
                        }
                    },
                },
                [_, _, arg, ..] => return Err(Extra { command, arg }),
            }
        }
        ("memory", ["pin", rest @ ..]) => {
            let command = "memory pin";
            Command::MemoryPin { block: block(command, only_arg(command, "BLOCK", rest)?)? }
        }
        ("memory", [sub @ ("unpin" | "check" | "release"), rest @ ..]) => {
            let (command, cmd) = match *sub {
                "unpin" => ("memory unpin", Command::MemoryUnpin),
                "check" => ("memory check", Command::MemoryCheck),
                _ => ("memory release", Command::MemoryRelease),
            };
            if let [arg, ..] = *rest {
                return Err(Extra { command, arg });
            }
            cmd
        }
        ("memory", [arg, ..]) => {
            return Err(UnknownSubcommand {
                command,
                arg,
                expected: "probe, online, online_kernel, online_movable, offline, remove, fill, \
                           pin, unpin, check or release",
            });
        }
        ("pmem", [arg, ..]) => {
            return Err(UnknownSubcommand {
                command,
                arg,
                expected: "remove, add, mode, read or write",
            });
        }
        ("help" | "sections" | "pfn" | "acpidump" | "mosaic", [_, arg, ..]) => {
            return Err(Extra { command, arg });
        }
        (_, [_, ..]) => return Err(NoArguments { command }),
        ("mem", []) => Command::Mem,
        ("iomem", []) => Command::Iomem,
        ("cpus", []) => Command::Cpus,
        ("zoneinfo", []) => Command::Zoneinfo,
        ("acpi", []) => Command::Acpi,
        ("nfit", []) => Command::Nfit,
        ("bench", []) => Command::Bench,
        ("reboot", []) => Command::Reboot,
        ("poweroff", []) => Command::Poweroff,
        (_, []) => unreachable!("{command} is in COMMANDS but not parsed"),
    };
    if json == 0 {
        return Ok(Some(cmd));
    }
    match Listing::of(&cmd) {
        Some(listing) => Ok(Some(Command::Json(listing))),
        None => Err(JsonListingOnly { command, sub: args.first().copied().unwrap_or_default() }),
    }
}

/// `pmem add` arguments: one region, and `--step` before or after it.
fn pmem_add<'a>(args: &[&'a str]) -> Result<Command, CommandError<'a>> {
    let command = "pmem add";
    let (mut found, mut step) = (None, false);
    for &arg in args {
        match arg {
            "--step" if !step => step = true,
            _ if arg.starts_with('-') => {
                return Err(CommandError::BadArgument { command, arg, expected: "--step" });
            }
            _ if found.is_none() => found = Some(region(command, arg)?),
            _ => return Err(CommandError::Extra { command, arg }),
        }
    }
    let region = found.ok_or(CommandError::Missing { command, expected: "REGION" })?;
    Ok(Command::PmemAdd { region, step })
}

fn offset<'a>(command: &'static str, arg: &'a str) -> Result<u64, CommandError<'a>> {
    memparse(arg).ok_or(CommandError::BadArgument { command, arg, expected: "OFFSET" })
}

/// `pmem mode` arguments: a region, a mode, then `--align A` and `--map
/// mem|dev` in any order (fsdax and devdax only).
fn pmem_mode<'a>(args: &[&'a str]) -> Result<Command, CommandError<'a>> {
    use CommandError::*;
    let command = "pmem mode";
    let (r, m, rest) = match args {
        [r, m, rest @ ..] => (r, m, rest),
        _ => return Err(Missing { command, expected: "REGION raw|fsdax|devdax" }),
    };
    let region = region(command, r)?;
    let mode = match *m {
        "raw" => NsMode::Raw,
        "fsdax" => NsMode::Fsdax,
        "devdax" => NsMode::Devdax,
        _ => return Err(BadArgument { command, arg: m, expected: "raw, fsdax or devdax" }),
    };
    let (mut align, mut map) = (None, None);
    let mut it = rest.iter();
    while let Some(&flag) = it.next() {
        let expected = match flag {
            "--align" => "4K, 2M or 1G",
            "--map" => "mem or dev",
            _ => return Err(BadArgument { command, arg: flag, expected: "--align or --map" }),
        };
        if mode == NsMode::Raw {
            return Err(BadArgument { command, arg: flag, expected: "no option for raw" });
        }
        let &value = it.next().ok_or(Missing { command, expected })?;
        let bad = BadArgument { command, arg: value, expected };
        match flag {
            "--align" if align.is_none() => {
                align = Some(memparse(value).filter(|&a| a > 0).ok_or(bad)?);
            }
            "--map" if map.is_none() => {
                map = Some(match value {
                    "mem" => MapArg::Mem,
                    "dev" => MapArg::Dev,
                    _ => return Err(bad),
                });
            }
            _ => return Err(BadArgument { command, arg: flag, expected: "each option once" }),
        }
    }
    Ok(Command::PmemMode { region, mode, align, map })
}

/// The one argument of a subcommand that takes exactly one (`expected`
/// names it when it is missing).
/// An absolute AML path (`\\_SB.PCI0.MHPD.MP00`): a backslash, then
/// dot-separated segments of one to four of `A-Z`, `0-9`, `_`.
fn aml_path<'a>(command: &'static str, arg: &'a str) -> Result<String, CommandError<'a>> {
    let bad = CommandError::BadArgument {
        command,
        arg,
        expected: "an absolute AML path like \\_SB.MHPC.MP00",
    };
    let body = arg.strip_prefix('\\').ok_or(bad.clone())?;
    let seg_ok = |s: &str| {
        (1..=4).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            && !s.as_bytes()[0].is_ascii_digit()
    };
    if body.is_empty() || arg.len() > 200 || !body.split('.').all(seg_ok) {
        return Err(bad);
    }
    Ok(arg.into())
}

fn only_arg<'a>(
    command: &'static str,
    expected: &'static str,
    args: &[&'a str],
) -> Result<&'a str, CommandError<'a>> {
    match *args {
        [] => Err(CommandError::Missing { command, expected }),
        [arg] => Ok(arg),
        [_, arg, ..] => Err(CommandError::Extra { command, arg }),
    }
}

/// `<prefix>N` or `N`, N decimal.
fn numbered<T: core::str::FromStr>(prefix: &str, arg: &str) -> Option<T> {
    let n = arg.strip_prefix(prefix).unwrap_or(arg);
    let ok = !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| n.parse().ok()).flatten()
}

/// `regionN` or `N`.
fn region<'a>(command: &'static str, arg: &'a str) -> Result<usize, CommandError<'a>> {
    numbered("region", arg).ok_or(CommandError::BadRegion { command, arg })
}

/// `memoryN` or `N`.
fn block<'a>(command: &'static str, arg: &'a str) -> Result<u64, CommandError<'a>> {
    numbered("memory", arg).ok_or(CommandError::BadBlock { command, arg })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn parse_commands() {
        use Command::*;
        let table: &[(&str, Command)] = &[
            ("help", Help(None)),
            ("  help   pmem ", Help(Some("pmem".into()))),
            ("acpidump", AcpiDump(None)),
            ("acpidump NFIT", AcpiDump(Some("NFIT".into()))),
            ("mem", Mem),
            ("sections", Sections(SectionsArg::NotFull)),
            ("sections all", Sections(SectionsArg::All)),
            ("sections 12", Sections(SectionsArg::One(12))),
            ("sections 0x20", Sections(SectionsArg::One(32))),
            ("pfn 0x3a000000", Pfn(PfnArg::Addr(0x3a00_0000))),
            ("pfn 4G", Pfn(PfnArg::Addr(4 << 30))),
            ("pfn 239616", Pfn(PfnArg::Addr(239_616))),
            ("pfn #0x3a000", Pfn(PfnArg::Pfn(0x3a000))),
            ("pfn #239616", Pfn(PfnArg::Pfn(239_616))),
            ("iomem", Iomem),
            ("zoneinfo", Zoneinfo),
            ("cpus", Cpus),
            ("acpi", Acpi),
            ("acpi events", AcpiEvents),
            (
                "acpi eval \\_SB.MHPC.MP00._STA",
                AcpiEval { path: "\\_SB.MHPC.MP00._STA".into(), args: vec![] },
            ),
            (
                "acpi eval \\_SB.MHPC.MCRS 0 0x10",
                AcpiEval { path: "\\_SB.MHPC.MCRS".into(), args: vec![0, 16] },
            ),
            (
                "acpi notify \\_SB.MHPC.MP01 3",
                AcpiNotify { path: "\\_SB.MHPC.MP01".into(), value: 3 },
            ),
            ("nfit", Nfit),
            ("pmem", Pmem),
            ("pmem remove region0", PmemRemove { region: 0 }),
            ("pmem remove 3", PmemRemove { region: 3 }),
            ("pmem add region1", PmemAdd { region: 1, step: false }),
            ("pmem add region1 --step", PmemAdd { region: 1, step: true }),
            ("pmem add --step 2", PmemAdd { region: 2, step: true }),
            (
                "pmem mode region0 fsdax",
                PmemMode { region: 0, mode: NsMode::Fsdax, align: None, map: None },
            ),
            (
                "pmem mode 1 devdax --map mem --align 1G",
                PmemMode {
                    region: 1,
                    mode: NsMode::Devdax,
                    align: Some(1 << 30),
                    map: Some(MapArg::Mem),
                },
            ),
            ("pmem mode 0 raw", PmemMode { region: 0, mode: NsMode::Raw, align: None, map: None }),
            ("pmem read region0 0 64", PmemRead { region: 0, offset: 0, len: 64 }),
            ("pmem read 0 0x1000 4096", PmemRead { region: 0, offset: 4096, len: 4096 }),
            (
                "pmem write region0 16 hello   from tessera",
                PmemWrite { region: 0, offset: 16, text: "hello from tessera".into() },
            ),
            ("memory", Memory),
            ("memory probe 0x100000000", MemoryProbe { addr: 1 << 32 }),
            ("memory probe 4G", MemoryProbe { addr: 1 << 32 }),
            ("memory online memory32", MemoryState { action: BlockAction::Online, block: 32 }),
            ("memory offline 32", MemoryState { action: BlockAction::Offline, block: 32 }),
            ("memory remove memory7", MemoryState { action: BlockAction::Remove, block: 7 }),
            (
                "memory online_movable 34",
                MemoryState { action: BlockAction::OnlineMovable, block: 34 },
            ),
            (
                "memory online_kernel memory2",
                MemoryState { action: BlockAction::OnlineKernel, block: 2 },
            ),
            ("memory fill memory34 300", MemoryFill { block: 34, pages: 300 }),
            ("memory fill 34 0x10", MemoryFill { block: 34, pages: 16 }),
            ("memory pin 34", MemoryPin { block: 34 }),
            ("memory unpin", MemoryUnpin),
            ("memory check", MemoryCheck),
            ("memory release", MemoryRelease),
            ("mosaic", Mosaic(MosaicArg::Toggle)),
            ("mosaic on", Mosaic(MosaicArg::On)),
            ("mosaic off", Mosaic(MosaicArg::Off)),
            ("mosaic all", Mosaic(MosaicArg::All)),
            ("mosaic 14", Mosaic(MosaicArg::From(14))),
            ("mosaic 0x800", Mosaic(MosaicArg::From(2048))),
            ("bench", Bench),
            ("stress 20000", Stress { ops: 20000 }),
            ("reboot", Reboot),
            ("\tpoweroff\t", Poweroff),
            ("sections --json", Json(Listing::Sections(SectionsArg::NotFull))),
            ("sections all --json", Json(Listing::Sections(SectionsArg::All))),
            ("sections --json 14", Json(Listing::Sections(SectionsArg::One(14)))),
            ("pmem --json", Json(Listing::Pmem)),
            ("memory  --json ", Json(Listing::Memory)),
            ("zoneinfo --json", Json(Listing::Zoneinfo)),
            ("iomem --json", Json(Listing::Iomem)),
            ("nfit --json", Json(Listing::Nfit)),
            ("cpus --json", Json(Listing::Cpus)),
        ];
        for (line, want) in table {
            assert_eq!(parse(line), Ok(Some(want.clone())), "{line:?}");
        }
        for line in ["", "   ", "\t \t"] {
            assert_eq!(parse(line), Ok(None));
        }
        // Every command in the table parses, and `help NAME` works for each.
        for c in COMMANDS {
            assert!(table.iter().any(|(l, _)| l.split_whitespace().next() == Some(c.name)));
            let line = format!("help {}", c.name);
            assert_eq!(parse(&line), Ok(Some(Help(Some(c.name.into())))));
        }
    }

    #[test]
    fn parse_errors() {
        let table = [
            ("frob", "unknown command: frob (try help)"),
            ("acpidump NFI", "acpidump: bad argument 'NFI': expected a 4-character signature"),
            ("acpidump NFIT DSDT", "acpidump: unexpected argument 'DSDT'"),
            ("Mem", "unknown command: Mem (try help)"),
            ("help foo", "help: no command 'foo'"),
            ("help mem pfn", "help: unexpected argument 'pfn'"),
            ("mem x", "mem: takes no arguments"),
            ("iomem 1", "iomem: takes no arguments"),
            ("zoneinfo DMA", "zoneinfo: takes no arguments"),
            ("acpi 1", "acpi: unknown subcommand '1': expected events, eval or notify"),
            ("acpi events 1", "acpi events: unexpected argument '1'"),
            ("acpi eval", "acpi eval: missing argument: PATH [INT...]"),
            (
                "acpi eval _SB.X",
                "acpi eval: bad argument '_SB.X': expected an absolute AML path like \\_SB.MHPC.MP00",
            ),
            (
                "acpi eval \\_SB.toolong",
                "acpi eval: bad argument '\\_SB.toolong': expected an absolute AML path like \\_SB.MHPC.MP00",
            ),
            (
                "acpi eval \\_SB..X",
                "acpi eval: bad argument '\\_SB..X': expected an absolute AML path like \\_SB.MHPC.MP00",
            ),
            ("acpi eval \\_SB.X y", "acpi eval: bad argument 'y': expected an integer"),
            ("acpi notify \\_SB.X", "acpi notify: missing argument: PATH VALUE"),
            (
                "acpi notify \\_SB.X 0x100",
                "acpi notify: bad argument '0x100': expected a notify value 0..0xff",
            ),
            ("acpi notify \\_SB.X 1 2", "acpi notify: unexpected argument '2'"),
            ("nfit 1", "nfit: takes no arguments"),
            ("bench 1", "bench: takes no arguments"),
            ("reboot now", "reboot: takes no arguments"),
            ("poweroff now", "poweroff: takes no arguments"),
            ("sections x", "sections: bad argument 'x': expected a section number or 'all'"),
            ("sections 1 2", "sections: unexpected argument '2'"),
            ("pfn", "pfn: missing argument: ADDR or #PFN"),
            ("pfn 0xzz", "pfn: bad argument '0xzz': expected ADDR or #PFN"),
            ("pfn #", "pfn: bad argument '#': expected ADDR or #PFN"),
            ("pfn 1 2", "pfn: unexpected argument '2'"),
            (
                "pmem foo",
                "pmem: unknown subcommand 'foo': expected remove, add, mode, read or write",
            ),
            ("pmem mode", "pmem mode: missing argument: REGION raw|fsdax|devdax"),
            (
                "pmem mode 0 sector",
                "pmem mode: bad argument 'sector': expected raw, fsdax or devdax",
            ),
            (
                "pmem mode 0 raw --align 2M",
                "pmem mode: bad argument '--align': expected no option for raw",
            ),
            ("pmem mode 0 fsdax --align", "pmem mode: missing argument: 4K, 2M or 1G"),
            ("pmem mode 0 fsdax --align x", "pmem mode: bad argument 'x': expected 4K, 2M or 1G"),
            ("pmem mode 0 fsdax --map ram", "pmem mode: bad argument 'ram': expected mem or dev"),
            (
                "pmem mode 0 fsdax --map mem --map dev",
                "pmem mode: bad argument '--map': expected each option once",
            ),
            ("pmem mode 0 fsdax 2M", "pmem mode: bad argument '2M': expected --align or --map"),
            ("pmem read 0 0", "pmem read: missing argument: REGION OFFSET LEN"),
            ("pmem read 0 0 0", "pmem read: bad argument '0': expected LEN from 1 to 4096"),
            ("pmem read 0 0 4097", "pmem read: bad argument '4097': expected LEN from 1 to 4096"),
            ("pmem read 0 x 16", "pmem read: bad argument 'x': expected OFFSET"),
            ("pmem read 0 0 16 1", "pmem read: unexpected argument '1'"),
            ("pmem write 0 0", "pmem write: missing argument: REGION OFFSET TEXT"),
            ("pmem write r 0 hi", "pmem write: bad region 'r': expected regionN"),
            ("pmem remove", "pmem remove: missing argument: REGION"),
            ("pmem remove regionx", "pmem remove: bad region 'regionx': expected regionN"),
            ("pmem remove region", "pmem remove: bad region 'region': expected regionN"),
            ("pmem remove +1", "pmem remove: bad region '+1': expected regionN"),
            ("pmem remove region0 1", "pmem remove: unexpected argument '1'"),
            ("pmem add", "pmem add: missing argument: REGION"),
            ("pmem add --step", "pmem add: missing argument: REGION"),
            ("pmem add r0", "pmem add: bad region 'r0': expected regionN"),
            ("pmem add 0 --fast", "pmem add: bad argument '--fast': expected --step"),
            (
                "memory foo",
                "memory: unknown subcommand 'foo': expected probe, online, online_kernel, \
                 online_movable, offline, remove, fill, pin, unpin, check or release",
            ),
            ("memory probe", "memory probe: missing argument: ADDR"),
            ("memory probe 0xq", "memory probe: bad argument '0xq': expected ADDR"),
            ("memory probe 1 2", "memory probe: unexpected argument '2'"),
            ("memory online", "memory online: missing argument: BLOCK"),
            ("memory offline mem3", "memory offline: bad block 'mem3': expected memoryN"),
            ("memory remove memory", "memory remove: bad block 'memory': expected memoryN"),
            ("memory remove 1 2", "memory remove: unexpected argument '2'"),
            ("memory fill 34", "memory fill: missing argument: BLOCK PAGES"),
            ("memory fill 34 0", "memory fill: bad argument '0': expected PAGES: 1..65536"),
            ("memory fill x 1", "memory fill: bad block 'x': expected memoryN"),
            ("memory fill 1 2 3", "memory fill: unexpected argument '3'"),
            ("memory pin", "memory pin: missing argument: BLOCK"),
            ("memory check now", "memory check: unexpected argument 'now'"),
            ("pmem add 0 --step --step", "pmem add: bad argument '--step': expected --step"),
            ("pmem add 0 1", "pmem add: unexpected argument '1'"),
            (
                "acpi --json",
                "acpi: no --json answer (sections, pmem, memory, zoneinfo, iomem, nfit and cpus \
                 have one)",
            ),
            (
                "help pmem --json",
                "help: no --json answer (sections, pmem, memory, zoneinfo, iomem, nfit and cpus have one)",
            ),
            (
                "sections --json --json",
                "sections: bad argument '--json': expected each option once",
            ),
            ("sections x --json", "sections: bad argument 'x': expected a section number or 'all'"),
            ("sections 1 2 --json", "sections: unexpected argument '2'"),
            ("iomem --json 1", "iomem: takes no arguments"),
            ("cpus --JSON", "cpus: takes no arguments"),
            (
                "pmem --json foo",
                "pmem: unknown subcommand 'foo': expected remove, add, mode, read or write",
            ),
            (
                "pmem add 0 --json",
                "pmem: --json goes with the listing only ('pmem --json'), not 'add'",
            ),
            (
                "memory --json probe 4G",
                "memory: --json goes with the listing only ('memory --json'), not 'probe'",
            ),
            (
                "mosaic frob",
                "mosaic: bad argument 'frob': expected on, off, all or a section number",
            ),
            ("mosaic on off", "mosaic: unexpected argument 'off'"),
        ];
        for (line, want) in table {
            assert_eq!(parse(line).map_err(|e| e.to_string()), Err(want.into()), "{line:?}");
        }
    }

    #[test]
    fn help() {
        let all = help_lines(None).unwrap();
        // pmem has 6 forms, memory 12, mosaic 3, acpi 4.
        assert_eq!(all.len(), COMMANDS.len() + 5 + 11 + 2 + 3);
        let column = all[0].find("list").unwrap();
        for line in &all {
            assert!(line.starts_with("  ") && line.len() <= 100, "{line}");
            assert!(line.as_bytes()[column - 1] == b' ' && line.as_bytes()[column] != b' ');
        }
        for c in COMMANDS {
            assert_eq!(c.usage.lines().count(), c.help.lines().count(), "{}", c.name);
            assert!(c.usage.lines().all(|u| u.starts_with(c.name)));
            let lines = help_lines(Some(c.name)).unwrap();
            assert!(!lines.is_empty() && lines.iter().all(|l| all.contains(l)));
        }
        assert_eq!(help_lines(Some("pmem")).unwrap().len(), 6);
        assert!(help_lines(Some("sections")).unwrap()[0].starts_with(
            "  sections [N|all] [--json]   sub-section maps of present sections, with a 64-character"
        ));
        assert_eq!(help_lines(Some("x")).unwrap_err().to_string(), "help: no command 'x'");
    }

    #[test]
    fn random_lines() {
        const WORDS: &[&str] = &[
            "help",
            "mem",
            "sections",
            "all",
            "pfn",
            "pmem",
            "remove",
            "add",
            "--step",
            "region",
            "region1",
            "#",
            "0x",
            "12",
            "4G",
            "99999999999999999999",
            "-",
            "#0x3a000",
            "reboot",
            "--json",
            "memory",
            "cpus",
        ];
        let mut rng = rng::Rng::new(0x9e37_79b9_7f4a_7c15);
        for _ in 0..20_000 {
            let mut line = String::new();
            for _ in 0..rng.below(5) {
                match rng.below(3) {
                    0 => line.push((0x20 + rng.below(0x5f)) as u8 as char),
                    _ => line.push_str(WORDS[rng.next_u64() as usize % WORDS.len()]),
                }
                if rng.below(4) != 0 {
                    line.push(' ');
                }
            }
            if let Err(e) = parse(&line) {
                assert!(!e.to_string().contains('\n'));
            }
        }
    }
}

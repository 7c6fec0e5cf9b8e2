//! Kernel command-line options, in Linux syntax: words separated by
//! whitespace, each either `name` or `name=value`.
//!
//! The same parser runs in the kernel (options from fw_cfg or the boot
//! image) and in the host runner, which refuses a command line the kernel
//! would not understand before booting anything. [`contract`] holds the
//! other things both sides spell the same way (fw_cfg names, the ramdisk
//! magic, exit codes, the shell prompt).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use core::fmt;

pub mod contract;

/// Longest command line accepted (Linux's `COMMAND_LINE_SIZE` on x86).
pub const COMMAND_LINE_SIZE: usize = 2048;

/// One recognised option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opt {
    /// Shut the machine down once initialization is complete.
    Poweroff,
    /// Console log level, Linux numbering (`loglevel=N`): messages whose
    /// priority is below N are printed (3 error, 4 warning, 6 info, 7 debug).
    LogLevel(u8),
    /// Same as `loglevel=10`: everything.
    Debug,
    /// Same as `loglevel=4`: errors only.
    Quiet,
    /// One piece of a `memmap=` option (a comma list gives one each), as
    /// Linux's `parse_memmap_one` reads it.
    Memmap(Memmap),
    /// `mem=nn[KMG]`: RAM above this address is ignored.
    Mem(u64),
    /// Print every present section at boot.
    SparseDebug,
    /// No persistent-memory emulation: only firmware-described PMEM.
    NoPmem,
    /// Print the `/proc/iomem` view at boot.
    IoMem,
    /// Print the `/proc/zoneinfo` view at boot.
    ZoneInfo,
    /// `fail_sparse=N`: fault injection, the N-th allocation of boot-time
    /// sparse init fails (N >= 1).
    FailSparse(u64),
    /// `console=ttyS0` / `console=tty0`: log to this console. As on Linux,
    /// the first `console=` replaces the default (both) and later ones add.
    Console(Console),
    /// `acpi_apic_instance=N`: which MADT to use when the firmware gives
    /// several (Linux's option: 0 and 1 mean the first, 2 the second; with
    /// a single MADT it is ignored).
    AcpiApicInstance(u32),
    /// `nox2apic`: keep the local APIC in xAPIC mode even when the CPU
    /// offers x2APIC (Linux's option).
    NoX2Apic,
    /// `nosmp`: start no other CPU (Linux's option).
    NoSmp,
    /// `cpu_init_udelay=N`: hold INIT N µs before the start-up IPIs
    /// (Linux's option; the default depends on the processor).
    CpuInitUdelay(u64),
    /// `hotplug_stress=N`: after boot, N hotplug operations on one CPU
    /// while every other CPU reads the memory model (N >= 1).
    HotplugStress(u64),
    /// `hotplug_stress_nogp`: test only: the stress's grace periods end
    /// without waiting for readers, to show that a use after free is seen.
    HotplugStressNoGp,
    /// `memhp_default_state=offline|online|online_kernel|online_movable`:
    /// how memory blocks are onlined when they are hot-added (Linux's
    /// option; `offline` by default, as Debian's Linux 6.1, built without
    /// `CONFIG_MEMORY_HOTPLUG_DEFAULT_ONLINE`).
    MemhpDefaultState(OnlinePolicy),
    /// `memory_hotplug.memmap_on_memory=1`: a hot-added block of System
    /// RAM carries its own memmap (Linux's module parameter, a boolean
    /// read as `kstrtobool`; off by default).
    MemmapOnMemory(bool),
}

/// What `memhp_default_state` (and sysfs `auto_online_blocks`) says to do
/// with a hot-added block (`mhp_online_type_from_str`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnlinePolicy {
    /// Leave it offline (`MMOP_OFFLINE`).
    Offline,
    /// `MMOP_ONLINE`: the zone `zone_for_pfn_range` picks.
    Online,
    /// `MMOP_ONLINE_KERNEL`.
    OnlineKernel,
    /// `MMOP_ONLINE_MOVABLE`.
    OnlineMovable,
}

impl OnlinePolicy {
    /// `mhp_online_type_from_str`.
    pub fn from_word(word: &str) -> Option<Self> {
        match word {
            "offline" => Some(Self::Offline),
            "online" => Some(Self::Online),
            "online_kernel" => Some(Self::OnlineKernel),
            "online_movable" => Some(Self::OnlineMovable),
            _ => None,
        }
    }

    /// The word (`online_type_to_str`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Offline => "offline",
            Self::Online => "online",
            Self::OnlineKernel => "online_kernel",
            Self::OnlineMovable => "online_movable",
        }
    }
}

/// Linux's `kstrtobool`: `y`, `Y`, `1`, `on` are true; `n`, `N`, `0`,
/// `off` false (only the first one or two characters count).
pub fn kstrtobool(s: &str) -> Option<bool> {
    let b = s.as_bytes();
    match (b.first()?, b.get(1)) {
        (b'y' | b'Y' | b'1', _) => Some(true),
        (b'n' | b'N' | b'0', _) => Some(false),
        (b'o' | b'O', Some(b'n' | b'N')) => Some(true),
        (b'o' | b'O', Some(b'f' | b'F')) => Some(false),
        _ => None,
    }
}

impl Opt {
    /// Whether the option settles persistent memory itself: `nopmem`, or a
    /// `memmap=` piece that makes a range legacy persistent memory (`!`, or
    /// `%` with `+12`). Without one, Tessera emulates a default range.
    pub fn names_pmem(&self) -> bool {
        match *self {
            Self::NoPmem => true,
            Self::Memmap(Memmap::Add { kind, .. }) => kind == MemmapKind::Persistent,
            Self::Memmap(Memmap::Update { to, .. }) => to == MemmapKind::Persistent.e820_type(),
            _ => false,
        }
    }
}

/// A console the log can go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Console {
    /// `ttyS0`: the first serial port.
    Serial,
    /// `tty0`: the framebuffer.
    Framebuffer,
}

/// The consoles the log goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Consoles {
    pub serial: bool,
    pub framebuffer: bool,
    /// Set by the first `console=`: later ones add to it.
    pub chosen: bool,
}

/// The E820 type a `memmap=nn<c>ss` piece gives its range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemmapKind {
    /// `@`: usable RAM (type 1).
    Ram,
    /// `#`: ACPI data (type 3).
    Acpi,
    /// `$`: reserved (type 2).
    Reserved,
    /// `!`: legacy persistent memory (type 12).
    Persistent,
}

impl MemmapKind {
    /// The character between size and start.
    pub const fn sign(self) -> char {
        match self {
            Self::Ram => '@',
            Self::Acpi => '#',
            Self::Reserved => '$',
            Self::Persistent => '!',
        }
    }

    /// The E820 type number.
    pub const fn e820_type(self) -> u32 {
        match self {
            Self::Ram => 1,
            Self::Acpi => 3,
            Self::Reserved => 2,
            Self::Persistent => 12,
        }
    }
}

/// One piece of `memmap=`, with Linux's meaning (arch/x86/kernel/e820.c).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Memmap {
    /// `exactmap`: the firmware's map is dropped; later pieces build the
    /// map from nothing.
    Exactmap,
    /// `nn@ss`, `nn#ss`, `nn$ss`, `nn!ss`: `e820__range_add` of that type,
    /// whatever was there.
    Add { size: u64, start: u64, kind: MemmapKind },
    /// `nn%ss-t+n`: entries of type `from` in the range become type `to`
    /// (`e820__range_update`); with only `+n` the range is added as `n`,
    /// with only `-t` the parts of type `t` are removed, with neither
    /// everything in the range is removed. 0 means not given.
    Update { size: u64, start: u64, from: u32, to: u32 },
    /// A bare `nn`: RAM above `nn` is removed, as `mem=nn` does.
    Limit(u64),
}

impl fmt::Display for Memmap {
    /// The piece as it would be written on the command line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Exactmap => write!(f, "exactmap"),
            Self::Add { size, start, kind } => write!(f, "{size:#x}{}{start:#x}", kind.sign()),
            Self::Update { size, start, from, to } => {
                write!(f, "{size:#x}%{start:#x}")?;
                if from != 0 {
                    write!(f, "-{from}")?;
                }
                if to != 0 {
                    write!(f, "+{to}")?;
                }
                Ok(())
            }
            Self::Limit(n) => write!(f, "{n:#x}"),
        }
    }
}

/// Linux's `memparse`: a number in C syntax (`0x` hex, leading `0` octal,
/// else decimal) with an optional K, M, G, T, P or E suffix (any case).
/// Returns `None` on anything else, including overflow.
pub fn memparse(s: &str) -> Option<u64> {
    let (digits, shift) = match s.as_bytes().last()?.to_ascii_uppercase() {
        b'K' => (&s[..s.len() - 1], 10),
        b'M' => (&s[..s.len() - 1], 20),
        b'G' => (&s[..s.len() - 1], 30),
        b'T' => (&s[..s.len() - 1], 40),
        b'P' => (&s[..s.len() - 1], 50),
        b'E' => (&s[..s.len() - 1], 60),
        _ => (s, 0),
    };
    let n = c_number(digits)?;
    if n.leading_zeros() < shift {
        return None;
    }
    Some(n << shift)
}

const MEMMAP_SYNTAX: &str =
    "exactmap, nn[KMG], or nn[KMG] then @ # $ ! ss[KMG], or nn[KMG]%ss[KMG][-t][+n] (nn > 0)";

/// A number in C syntax without suffix: `0x` hex, a leading `0` octal,
/// else decimal (Linux's `simple_strtoull(.., 0)`, whole string only).
fn c_number(s: &str) -> Option<u64> {
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()
    } else if s.len() > 1 && s.starts_with('0') {
        u64::from_str_radix(&s[1..], 8).ok()
    } else if s.starts_with('+') {
        None
    } else {
        s.parse().ok()
    }
}

/// One piece of a `memmap=` value (Linux's `parse_memmap_one`), stricter
/// than Linux in one way: a piece with anything left over is refused as a
/// whole, where Linux applies what it read before the rest.
fn parse_memmap(v: &str) -> Option<Memmap> {
    if v == "exactmap" {
        return Some(Memmap::Exactmap);
    }
    let Some(at) = v.find(['@', '#', '$', '!', '%']) else {
        return memparse(v).filter(|&n| n > 0).map(Memmap::Limit);
    };
    let size = memparse(&v[..at]).filter(|&n| n > 0)?;
    let rest = &v[at + 1..];
    let kind = match v.as_bytes()[at] {
        b'@' => MemmapKind::Ram,
        b'#' => MemmapKind::Acpi,
        b'$' => MemmapKind::Reserved,
        b'!' => MemmapKind::Persistent,
        _ => {
            let (rest, to) = match rest.rsplit_once('+') {
                Some((r, n)) => (r, u32::try_from(c_number(n)?).ok().filter(|&n| n > 0)?),
                None => (rest, 0),
            };
            let (start, from) = match rest.split_once('-') {
                Some((s, t)) => (s, u32::try_from(c_number(t)?).ok().filter(|&t| t > 0)?),
                None => (rest, 0),
            };
            let start = memparse(start)?;
            // Linux BUG()s on a type changed into itself.
            if (from != 0 && from == to) || start.checked_add(size).is_none() {
                return None;
            }
            return Some(Memmap::Update { size, start, from, to });
        }
    };
    let start = memparse(rest)?;
    start.checked_add(size).is_some().then_some(Memmap::Add { size, start, kind })
}

/// Why a word of the command line was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionError<'a> {
    /// The whole command line is longer than [`COMMAND_LINE_SIZE`].
    TooLong { len: usize },
    /// A byte that is neither printable ASCII nor whitespace.
    BadByte { offset: usize, byte: u8 },
    /// The option name is not known.
    Unknown { word: &'a str },
    /// A known option that needs a value was given none.
    MissingValue { name: &'a str },
    /// A known option that takes no value was given one.
    UnexpectedValue { word: &'a str },
    /// The value could not be understood.
    BadValue { word: &'a str, expected: &'static str },
    /// One piece of a `memmap=` comma list could not be understood.
    BadMemmap { piece: &'a str },
}

impl fmt::Display for OptionError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong { len } => {
                write!(f, "command line is {len} bytes, at most {COMMAND_LINE_SIZE} are allowed")
            }
            Self::BadByte { offset, byte } => {
                write!(f, "byte 0x{byte:02x} at offset {offset} is not printable ASCII")
            }
            Self::Unknown { word } => write!(f, "unknown option '{word}' (known: {KNOWN})"),
            Self::MissingValue { name } => write!(f, "option '{name}' needs a value ({name}=...)"),
            Self::UnexpectedValue { word } => write!(f, "option '{word}' takes no value"),
            Self::BadValue { word, expected } => {
                write!(f, "option '{word}': expected {expected}")
            }
            Self::BadMemmap { piece } => {
                write!(f, "option 'memmap={piece}': expected {MEMMAP_SYNTAX}")
            }
        }
    }
}

/// The option names, for error messages and help.
pub const KNOWN: &str = "poweroff, loglevel=0..15, debug, quiet, memmap=nn[KMG]!ss[KMG] (and exactmap, nn, @ # $ %, comma lists), mem=nn[KMG], sparse_debug, nopmem, iomem, zoneinfo, console=ttyS0|tty0, fail_sparse=N, acpi_apic_instance=N, nox2apic, nosmp, cpu_init_udelay=N, hotplug_stress=N, hotplug_stress_nogp, memhp_default_state=offline|online|online_kernel|online_movable, memory_hotplug.memmap_on_memory=0|1";

/// Checks the command line as a whole (length, bytes).
pub fn check_line(line: &str) -> Result<(), OptionError<'_>> {
    if line.len() > COMMAND_LINE_SIZE {
        return Err(OptionError::TooLong { len: line.len() });
    }
    match line.bytes().enumerate().find(|(_, b)| !(b.is_ascii_graphic() || b.is_ascii_whitespace()))
    {
        Some((offset, byte)) => Err(OptionError::BadByte { offset, byte }),
        None => Ok(()),
    }
}

/// The first problem with a command line as a whole or any of its words:
/// what a host tool checks before handing the line to the kernel.
pub fn validate(line: &str) -> Result<(), OptionError<'_>> {
    check_line(line)?;
    parse(line).find_map(Result::err).map_or(Ok(()), Err)
}

/// Parses one whitespace-free word.
pub fn parse_word(word: &str) -> Result<Opt, OptionError<'_>> {
    let (name, value) = match word.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (word, None),
    };
    let flag = |opt: Opt| match value {
        None => Ok(opt),
        Some(_) => Err(OptionError::UnexpectedValue { word }),
    };
    match name {
        "poweroff" => flag(Opt::Poweroff),
        "debug" => flag(Opt::Debug),
        "quiet" => flag(Opt::Quiet),
        "sparse_debug" => flag(Opt::SparseDebug),
        "nopmem" => flag(Opt::NoPmem),
        "iomem" => flag(Opt::IoMem),
        "zoneinfo" => flag(Opt::ZoneInfo),
        "nox2apic" => flag(Opt::NoX2Apic),
        "nosmp" => flag(Opt::NoSmp),
        "hotplug_stress_nogp" => flag(Opt::HotplugStressNoGp),
        "hotplug_stress" => {
            let v = value.ok_or(OptionError::MissingValue { name })?;
            match c_number(v) {
                Some(n) if (1..=100_000_000).contains(&n) => Ok(Opt::HotplugStress(n)),
                _ => Err(OptionError::BadValue { word, expected: "operations 1..100000000" }),
            }
        }
        "cpu_init_udelay" => {
            let v = value.ok_or(OptionError::MissingValue { name })?;
            match c_number(v) {
                Some(n) if n <= 1_000_000 => Ok(Opt::CpuInitUdelay(n)),
                _ => Err(OptionError::BadValue { word, expected: "microseconds 0..1000000" }),
            }
        }
        "memmap" => {
            let v = value.ok_or(OptionError::MissingValue { name })?;
            parse_memmap(v).map(Opt::Memmap).ok_or(OptionError::BadMemmap { piece: v })
        }
        "mem" => {
            let v = value.ok_or(OptionError::MissingValue { name })?;
            match memparse(v) {
                Some(n) if n > 0 => Ok(Opt::Mem(n)),
                _ => Err(OptionError::BadValue { word, expected: "a size nn[KMG] > 0" }),
            }
        }
        // Linux's `ttyS0,115200n8` carries line settings; the UART's are fixed.
        "console" => match value.map(|v| v.split(',').next().unwrap_or(v)) {
            Some("ttyS0") => Ok(Opt::Console(Console::Serial)),
            Some("tty0") if value == Some("tty0") => Ok(Opt::Console(Console::Framebuffer)),
            Some(_) => Err(OptionError::BadValue { word, expected: "ttyS0 or tty0" }),
            None => Err(OptionError::MissingValue { name }),
        },
        "fail_sparse" => {
            let v = value.ok_or(OptionError::MissingValue { name })?;
            match memparse(v) {
                Some(n) if n > 0 => Ok(Opt::FailSparse(n)),
                _ => Err(OptionError::BadValue { word, expected: "an allocation number >= 1" }),
            }
        }
        // Linux reads it with `kstrtoint(.., 0)`: C syntax. A negative
        // instance names no table at all; refused here instead.
        "acpi_apic_instance" => {
            let v = value.ok_or(OptionError::MissingValue { name })?;
            match c_number(v).map(u32::try_from) {
                Some(Ok(n)) => Ok(Opt::AcpiApicInstance(n)),
                _ => Err(OptionError::BadValue { word, expected: "a table number 0, 1, 2, ..." }),
            }
        }
        "memhp_default_state" => {
            let v = value.ok_or(OptionError::MissingValue { name })?;
            OnlinePolicy::from_word(v).map(Opt::MemhpDefaultState).ok_or(OptionError::BadValue {
                word,
                expected: "offline, online, online_kernel or online_movable",
            })
        }
        // A boolean module parameter: alone, it means on.
        "memory_hotplug.memmap_on_memory" => match value {
            None => Ok(Opt::MemmapOnMemory(true)),
            Some(v) => kstrtobool(v)
                .map(Opt::MemmapOnMemory)
                .ok_or(OptionError::BadValue { word, expected: "a boolean (1, 0, y, n, on, off)" }),
        },
        "loglevel" => {
            let v = value.ok_or(OptionError::MissingValue { name })?;
            match v.parse::<u8>() {
                Ok(n) if n <= 15 => Ok(Opt::LogLevel(n)),
                _ => Err(OptionError::BadValue { word, expected: "a number 0..15" }),
            }
        }
        _ => Err(OptionError::Unknown { word }),
    }
}

/// Iterates over the words of `line`, parsing each; a `memmap=` comma
/// list gives one item per piece, as Linux's `parse_memmap_opt` splits it.
/// A bad word or piece yields its error and iteration goes on with the
/// next, as Linux does.
pub fn parse(line: &str) -> impl Iterator<Item = Result<Opt, OptionError<'_>>> {
    let mut words = line.split_ascii_whitespace();
    let mut pieces: Option<core::str::Split<'_, char>> = None;
    core::iter::from_fn(move || {
        loop {
            if let Some(p) = pieces.as_mut().and_then(Iterator::next) {
                return Some(parse_word_piece(p));
            }
            pieces = None;
            let word = words.next()?;
            match word.strip_prefix("memmap=") {
                Some(v) if v.contains(',') => pieces = Some(v.split(',')),
                _ => return Some(parse_word(word)),
            }
        }
    })
}

/// One piece of a `memmap=` list.
fn parse_word_piece(piece: &str) -> Result<Opt, OptionError<'_>> {
    parse_memmap(piece).map(Opt::Memmap).ok_or(OptionError::BadMemmap { piece })
}

/// The options that matter to the kernel, gathered from a command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub poweroff: bool,
    /// Linux console log level: messages with a level below it are printed.
    pub loglevel: u8,
    /// `mem=`: the last one given.
    pub mem_limit: Option<u64>,
    pub sparse_debug: bool,
    /// `nopmem`: no emulated persistent memory.
    pub nopmem: bool,
    /// `iomem`: print the resource tree at boot.
    pub iomem: bool,
    /// `zoneinfo`: print the zones at boot.
    pub zoneinfo: bool,
    /// `console=`: where the log goes (both without the option).
    pub console: Consoles,
    /// `fail_sparse=N`: the allocation of boot-time sparse init to fail.
    pub fail_sparse: Option<u64>,
    /// `acpi_apic_instance=N`: the last one given.
    pub acpi_apic_instance: Option<u32>,
    /// `nox2apic`: xAPIC mode only.
    pub nox2apic: bool,
    /// `nosmp`: the boot CPU only.
    pub nosmp: bool,
    /// `cpu_init_udelay=N`, µs.
    pub cpu_init_udelay: Option<u64>,
    /// `hotplug_stress=N`.
    pub hotplug_stress: Option<u64>,
    /// `hotplug_stress_nogp` (test only).
    pub hotplug_stress_nogp: bool,
    /// `memhp_default_state=`: the last one given.
    pub memhp_default_state: OnlinePolicy,
    /// `memory_hotplug.memmap_on_memory=`.
    pub memmap_on_memory: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            poweroff: false,
            loglevel: 7,
            mem_limit: None,
            sparse_debug: false,
            nopmem: false,
            iomem: false,
            zoneinfo: false,
            console: Consoles { serial: true, framebuffer: true, chosen: false },
            fail_sparse: None,
            acpi_apic_instance: None,
            nox2apic: false,
            nosmp: false,
            cpu_init_udelay: None,
            hotplug_stress: None,
            hotplug_stress_nogp: false,
            memhp_default_state: OnlinePolicy::Offline,
            memmap_on_memory: false,
        }
    }
}

impl Options {
    /// Applies one option; later options override earlier ones.
    pub fn apply(&mut self, opt: Opt) {
        match opt {
            Opt::Poweroff => self.poweroff = true,
            Opt::LogLevel(n) => self.loglevel = n,
            Opt::Debug => self.loglevel = 10,
            Opt::Quiet => self.loglevel = 4,
            Opt::Mem(n) => self.mem_limit = Some(n),
            Opt::SparseDebug => self.sparse_debug = true,
            Opt::NoPmem => self.nopmem = true,
            Opt::IoMem => self.iomem = true,
            Opt::ZoneInfo => self.zoneinfo = true,
            Opt::FailSparse(n) => self.fail_sparse = Some(n),
            Opt::AcpiApicInstance(n) => self.acpi_apic_instance = Some(n),
            Opt::NoX2Apic => self.nox2apic = true,
            Opt::NoSmp => self.nosmp = true,
            Opt::HotplugStress(n) => self.hotplug_stress = Some(n),
            Opt::HotplugStressNoGp => self.hotplug_stress_nogp = true,
            Opt::CpuInitUdelay(n) => self.cpu_init_udelay = Some(n),
            Opt::MemhpDefaultState(p) => self.memhp_default_state = p,
            Opt::MemmapOnMemory(on) => self.memmap_on_memory = on,
            Opt::Console(c) => {
                if !self.console.chosen {
                    self.console = Consoles { serial: false, framebuffer: false, chosen: true };
                }
                match c {
                    Console::Serial => self.console.serial = true,
                    Console::Framebuffer => self.console.framebuffer = true,
                }
            }
            // Ranges are collected by the memory map code, in order.
            Opt::Memmap(_) => {}
        }
    }

    /// Parses a whole line, calling `report` for every refused word.
    pub fn from_line<'a>(line: &'a str, mut report: impl FnMut(OptionError<'a>)) -> Self {
        let mut opts = Self::default();
        if let Err(e) = check_line(line) {
            report(e);
            return opts;
        }
        for r in parse(line) {
            match r {
                Ok(o) => opts.apply(o),
                Err(e) => report(e),
            }
        }
        opts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(line: &str) -> Vec<String> {
        let mut out = Vec::new();
        Options::from_line(line, |e| out.push(e.to_string()));
        out
    }

    #[test]
    fn empty_line_gives_defaults() {
        assert_eq!(Options::from_line("", |_| panic!()), Options::default());
        assert_eq!(Options::from_line("  \t ", |_| panic!()), Options::default());
    }

    #[test]
    fn flags_and_values() {
        let o = Options::from_line("poweroff  loglevel=3", |e| panic!("{e}"));
        assert!(o.poweroff);
        assert_eq!(o.loglevel, 3);
        assert_eq!(Options::from_line("loglevel=3 debug", |_| panic!()).loglevel, 10);
        assert_eq!(Options::from_line("debug quiet", |_| panic!()).loglevel, 4);
    }

    #[test]
    fn table_of_bad_words() {
        let cases: &[(&str, OptionError)] = &[
            ("bogus", OptionError::Unknown { word: "bogus" }),
            ("poweroff=1", OptionError::UnexpectedValue { word: "poweroff=1" }),
            ("loglevel", OptionError::MissingValue { name: "loglevel" }),
            (
                "loglevel=16",
                OptionError::BadValue { word: "loglevel=16", expected: "a number 0..15" },
            ),
            (
                "loglevel=x",
                OptionError::BadValue { word: "loglevel=x", expected: "a number 0..15" },
            ),
            ("loglevel=", OptionError::BadValue { word: "loglevel=", expected: "a number 0..15" }),
            ("=3", OptionError::Unknown { word: "=3" }),
        ];
        for (word, want) in cases {
            assert_eq!(parse_word(word), Err(*want), "{word}");
        }
    }

    #[test]
    fn bad_words_are_reported_and_the_rest_is_used() {
        let mut seen = Vec::new();
        let o = Options::from_line("bogus poweroff loglevel=99", |e| seen.push(e));
        assert!(o.poweroff);
        assert_eq!(o.loglevel, 7);
        assert_eq!(seen.len(), 2);
        assert_eq!(errors("bogus")[0], format!("unknown option 'bogus' (known: {KNOWN})"));
        assert!(KNOWN.contains("memmap=nn[KMG]!ss[KMG]"));
    }

    #[test]
    fn memory_hotplug_options() {
        fn o(line: &str) -> Options {
            Options::from_line(line, |e| panic!("{e}"))
        }
        assert_eq!(o("").memhp_default_state, OnlinePolicy::Offline);
        assert!(!o("").memmap_on_memory);
        for p in [
            OnlinePolicy::Offline,
            OnlinePolicy::Online,
            OnlinePolicy::OnlineKernel,
            OnlinePolicy::OnlineMovable,
        ] {
            let line = format!("memhp_default_state={}", p.name());
            assert_eq!(o(&line).memhp_default_state, p);
        }
        assert!(o("memory_hotplug.memmap_on_memory=1").memmap_on_memory);
        assert!(o("memory_hotplug.memmap_on_memory").memmap_on_memory);
        assert!(o("memory_hotplug.memmap_on_memory=on").memmap_on_memory);
        assert!(
            !o("memory_hotplug.memmap_on_memory=1 memory_hotplug.memmap_on_memory=off")
                .memmap_on_memory
        );
        assert_eq!(
            errors("memhp_default_state=movable"),
            ["option 'memhp_default_state=movable': expected offline, online, online_kernel or \
              online_movable"]
        );
        assert_eq!(errors("memhp_default_state").len(), 1);
        assert_eq!(
            errors("memory_hotplug.memmap_on_memory=2"),
            [
                "option 'memory_hotplug.memmap_on_memory=2': expected a boolean (1, 0, y, n, on, off)"
            ]
        );
        assert_eq!(kstrtobool("Yes"), Some(true));
        assert_eq!(kstrtobool("oFf"), Some(false));
        assert_eq!(kstrtobool("o"), None);
        assert_eq!(kstrtobool(""), None);
    }

    #[test]
    fn console_replaces_the_default_then_adds() {
        let c = |line| Options::from_line(line, |e| panic!("{e}")).console;
        let both = Consoles { serial: true, framebuffer: true, chosen: false };
        assert_eq!(c(""), both);
        assert_eq!(c("console=ttyS0"), Consoles { serial: true, framebuffer: false, chosen: true });
        assert_eq!(c("console=tty0"), Consoles { serial: false, framebuffer: true, chosen: true });
        assert_eq!(c("console=ttyS0,115200n8"), c("console=ttyS0"));
        assert_eq!(c("console=tty0 console=ttyS0"), Consoles { chosen: true, ..both });
        assert_eq!(errors("console=ttyS1 console console=tty0,9600").len(), 3);
        let o = Options::from_line("fail_sparse=3", |e| panic!("{e}"));
        assert_eq!(o.fail_sparse, Some(3));
        assert_eq!(errors("fail_sparse=0 fail_sparse").len(), 2);
        assert!(errors("console=lp0")[0].contains("ttyS0 or tty0"), "{:?}", errors("console=lp0"));
    }

    #[test]
    fn acpi_apic_instance() {
        let o = |line| Options::from_line(line, |e| panic!("{e}")).acpi_apic_instance;
        assert_eq!(o(""), None);
        assert_eq!(o("acpi_apic_instance=2"), Some(2));
        assert_eq!(o("acpi_apic_instance=0x2 acpi_apic_instance=0"), Some(0));
        for bad in ["acpi_apic_instance=-1", "acpi_apic_instance=two", "acpi_apic_instance="] {
            assert_eq!(
                errors(bad),
                [format!("option '{bad}': expected a table number 0, 1, 2, ...")],
                "{bad}"
            );
        }
        assert_eq!(
            errors("acpi_apic_instance"),
            ["option 'acpi_apic_instance' needs a value (acpi_apic_instance=...)"]
        );
        assert!(KNOWN.contains("acpi_apic_instance=N"));
        let o = |line| Options::from_line(line, |e| panic!("{e}"));
        assert!(o("nox2apic").nox2apic && !o("").nox2apic);
        assert!(o("nosmp").nosmp && !o("nox2apic").nosmp);
        let mut errors = Vec::new();
        Options::from_line("nosmp=1", |e| errors.push(format!("{e}")));
        assert_eq!(errors.len(), 1, "a flag takes no value: {errors:?}");
        assert_eq!(o("cpu_init_udelay=10000").cpu_init_udelay, Some(10_000));
        assert_eq!(o("cpu_init_udelay=0").cpu_init_udelay, Some(0));
        assert_eq!(o("").cpu_init_udelay, None);
        for bad in ["cpu_init_udelay=", "cpu_init_udelay=-1", "cpu_init_udelay=2000000"] {
            let mut errors = Vec::new();
            Options::from_line(bad, |e| errors.push(format!("{e}")));
            assert_eq!(errors.len(), 1, "{bad}: {errors:?}");
        }
    }

    #[test]
    fn memparse_follows_linux() {
        let cases: &[(&str, Option<u64>)] = &[
            ("0", Some(0)),
            ("4096", Some(4096)),
            ("32M", Some(32 << 20)),
            ("32m", Some(32 << 20)),
            ("2G", Some(2 << 30)),
            ("1k", Some(1024)),
            ("1T", Some(1 << 40)),
            ("0x3a000000", Some(0x3a00_0000)),
            ("0X10k", Some(16 << 10)),
            ("010", Some(8)),
            ("16E", None),
            ("0x", None),
            ("", None),
            ("G", None),
            ("12Q", None),
            ("-1", None),
            ("+1", None),
            ("99999999999999999999", None),
            ("08", None),
        ];
        for (s, want) in cases {
            assert_eq!(memparse(s), *want, "{s:?}");
        }
    }

    fn memmap(v: &str) -> Result<Opt, OptionError<'_>> {
        parse_word_piece(v)
    }

    #[test]
    fn memmap_and_mem_options() {
        use MemmapKind::*;
        let add = |size, start, kind| Ok(Opt::Memmap(Memmap::Add { size, start, kind }));
        let upd = |size, start, from, to| Ok(Opt::Memmap(Memmap::Update { size, start, from, to }));
        assert_eq!(parse_word("memmap=32M!0x3a000000"), add(32 << 20, 0x3a00_0000, Persistent));
        assert_eq!(parse_word("memmap=4k$1G"), add(4096, 1 << 30, Reserved));
        assert_eq!(memmap("64M@0x100000"), add(64 << 20, 0x10_0000, Ram));
        assert_eq!(memmap("16M#0x30000000"), add(16 << 20, 0x3000_0000, Acpi));
        assert_eq!(memmap("2M%0x31000000-1+12"), upd(2 << 20, 0x3100_0000, 1, 12));
        assert_eq!(memmap("2M%0x31000000+0xc"), upd(2 << 20, 0x3100_0000, 0, 12));
        assert_eq!(memmap("2M%0x31000000-01"), upd(2 << 20, 0x3100_0000, 1, 0));
        assert_eq!(memmap("2M%64M"), upd(2 << 20, 64 << 20, 0, 0));
        assert_eq!(memmap("exactmap"), Ok(Opt::Memmap(Memmap::Exactmap)));
        assert_eq!(memmap("1536M"), Ok(Opt::Memmap(Memmap::Limit(1536 << 20))));
        assert_eq!(parse_word("mem=1G"), Ok(Opt::Mem(1 << 30)));
        assert_eq!(parse_word("sparse_debug"), Ok(Opt::SparseDebug));
        for bad in [
            "0!1G",
            "0",
            "x!1G",
            "32M!",
            "32M!1Gx",
            "16E!0",
            "1G!0xffffffffffffffff",
            "2M%1G-1+1",
            "2M%1G+0",
            "2M%1G-x",
            "2M%1G+4294967296",
            "2M%1G-1-2",
            "exactmapx",
        ] {
            assert_eq!(memmap(bad), Err(OptionError::BadMemmap { piece: bad }), "{bad}");
        }
        for bad in ["mem=0", "mem=lots"] {
            assert!(matches!(parse_word(bad), Err(OptionError::BadValue { .. })), "{bad}");
        }
        assert_eq!(parse_word("mem"), Err(OptionError::MissingValue { name: "mem" }));
        let o = Options::from_line("mem=1G sparse_debug mem=2G", |e| panic!("{e}"));
        assert_eq!((o.mem_limit, o.sparse_debug), (Some(2 << 30), true));
        let o = Options::from_line("nopmem iomem", |e| panic!("{e}"));
        assert!(o.nopmem && o.iomem && !o.sparse_debug && !o.zoneinfo);
        let o = Options::from_line("zoneinfo", |e| panic!("{e}"));
        assert!(o.zoneinfo && !o.iomem);
        assert!(
            Options::from_line("zoneinfo=1", |_| {}) == Options::default(),
            "a flag takes no value"
        );
        assert!(parse_word("nopmem=1").is_err());
    }

    #[test]
    fn options_that_settle_persistent_memory() {
        let names = |w| parse(w).all(|o| o.unwrap().names_pmem());
        assert!(names("nopmem") && names("memmap=32M!1G") && names("memmap=2M%1G-1+12"));
        assert!(!names("memmap=32M$1G") && !names("memmap=2M%1G-12+1") && !names("mem=1G"));
    }

    #[test]
    fn memmap_comma_lists_give_one_item_per_piece() {
        let items: Vec<_> = parse("quiet memmap=64M!0x20000000,16M$0x30000000,exactmap poweroff")
            .map(|r| r.map(|o| alloc_free_name(&o)))
            .collect();
        assert_eq!(
            items,
            [
                Ok("Quiet"),
                Ok("0x4000000!0x20000000"),
                Ok("0x1000000$0x30000000"),
                Ok("exactmap"),
                Ok("Poweroff")
            ]
            .map(|r: Result<&str, OptionError>| r.map(String::from))
        );
        // A bad piece is reported alone; the pieces around it still count.
        let r: Vec<_> = parse("memmap=1G!4G,bogus,,2M$1G").collect();
        assert_eq!(r.len(), 4);
        assert_eq!(r[1], Err(OptionError::BadMemmap { piece: "bogus" }));
        assert_eq!(r[2], Err(OptionError::BadMemmap { piece: "" }));
        assert!(r[0].is_ok() && r[3].is_ok());
        assert_eq!(
            r[1].unwrap_err().to_string(),
            format!("option 'memmap=bogus': expected {MEMMAP_SYNTAX}")
        );
        assert_eq!(validate("memmap=64M!0x20000000,16M$0x30000000"), Ok(()));
    }

    fn alloc_free_name(o: &Opt) -> String {
        match o {
            Opt::Memmap(m) => m.to_string(),
            o => format!("{o:?}"),
        }
    }

    #[test]
    fn validate_reports_the_first_problem() {
        assert_eq!(validate("poweroff mem=1G"), Ok(()));
        assert_eq!(validate("bogus quiet=1"), Err(OptionError::Unknown { word: "bogus" }));
        assert_eq!(validate("a\u{1}"), Err(OptionError::BadByte { offset: 1, byte: 1 }));
    }

    #[test]
    fn whole_line_checks() {
        let long = "quiet ".repeat(COMMAND_LINE_SIZE / 6 + 1);
        assert_eq!(check_line(&long), Err(OptionError::TooLong { len: long.len() }));
        assert_eq!(check_line("a\u{7f}b"), Err(OptionError::BadByte { offset: 1, byte: 0x7f }));
        assert_eq!(check_line("poweroff é"), Err(OptionError::BadByte { offset: 9, byte: 0xc3 }));
        // A bad line is refused as a whole: nothing of it is applied.
        assert!(!Options::from_line("poweroff \u{1}", |_| {}).poweroff);
    }
}

//! The command line: flags shared by the subcommands, and what they pick
//! (a profile, a timeout, a kernel command line the kernel understands).

use std::path::PathBuf;
use std::time::Duration;

use crate::profile::{self, Profile};

/// A boot's hard limit when none is given (`--timeout`, `TESSERA_TIMEOUT`).
const DEFAULT_TIMEOUT: u64 = 60;

pub const USAGE: &str = "usage: qemu run|debug|test|bench|screenshot|fuzz|fuzz-seeds|runner|profiles|plan|linux|linux-diff|linux-hotplug|hotplug-diff [options] (see qemu/src/main.rs)";

/// Command-line flags shared by the subcommands.
#[derive(Debug, Default)]
pub struct Flags {
    pub profile: Option<String>,
    pub firmware: Option<String>,
    pub usb: bool,
    pub mem: Option<String>,
    /// `--smp N`: the boot's CPU count instead of the profile's.
    pub cpus: Option<u32>,
    pub cmdline: String,
    pub qemu_args: Vec<String>,
    pub timeout: Option<u64>,
    pub kernel: Option<PathBuf>,
    pub release: bool,
    pub filter: Option<String>,
    pub profiles: Option<Vec<String>>,
    pub no_host: bool,
    /// `--gdb-port N`: the GDB stub's port of `qemu debug`.
    pub gdb_port: Option<u16>,
    /// Seconds per fuzz target.
    pub fuzz_time: Option<u64>,
    /// `--type 'CMD; CMD'`: shell commands `screenshot` types first.
    pub typed: Vec<String>,
    pub free: Vec<String>,
}

pub fn parse_flags(args: impl Iterator<Item = String>) -> Result<Flags, String> {
    let mut f = Flags::default();
    let mut args = args.peekable();
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--profile" => f.profile = Some(value()?),
            "--firmware" => f.firmware = Some(value()?),
            "--usb" => f.usb = true,
            "--mem" => f.mem = Some(value()?).filter(|m| !m.is_empty()),
            "--smp" => {
                let v = value()?;
                f.cpus = if v.is_empty() { None } else { Some(profile::parse_cpus(&v)?) };
            }
            "--cmdline" => f.cmdline = value()?.trim().to_string(),
            "--qemu-args" => f.qemu_args = value()?.split_whitespace().map(String::from).collect(),
            "--timeout" => {
                let v = value()?;
                let secs = v.parse().ok().filter(|&s| s > 0);
                f.timeout = Some(secs.ok_or(format!("--timeout '{v}': give whole seconds > 0"))?);
            }
            "--kernel" => f.kernel = Some(value()?.into()),
            "--type" => {
                let v = value()?;
                f.typed = v
                    .split(';')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(String::from)
                    .collect();
            }
            "--release" => f.release = true,
            "--filter" => f.filter = Some(value()?).filter(|s| !s.is_empty()),
            "--profiles" => f.profiles = Some(value()?.split(',').map(String::from).collect()),
            "--no-host" => f.no_host = true,
            "--gdb-port" => {
                let v = value()?;
                let port = v.parse().ok().filter(|&p| p > 0);
                f.gdb_port = Some(port.ok_or(format!("GDB_PORT '{v}': give a TCP port 1..65535"))?);
            }
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

impl Flags {
    /// One boot's hard limit: `--timeout`, else `TESSERA_TIMEOUT`, else 60 s.
    pub fn timeout(&self) -> Result<Duration, String> {
        let secs = match (self.timeout, std::env::var("TESSERA_TIMEOUT")) {
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

    /// `--profile`, or the profile of `--firmware` and `--usb` (default
    /// bios).
    pub fn profile(&self) -> Result<&'static Profile, String> {
        match (&self.profile, &self.firmware) {
            (Some(_), Some(_)) => Err("give either a profile or a firmware, not both".into()),
            (Some(p), None) => profile::find(p),
            (None, fw) => profile::for_firmware(fw.as_deref().unwrap_or("bios"), self.usb),
        }
    }

    /// `--smp`, else the profile's CPU count.
    pub fn cpus(&self, profile: &Profile) -> u32 {
        self.cpus.unwrap_or(profile.cpus)
    }

    /// `--mem`, else the default machine's.
    pub fn mem(&self) -> String {
        self.mem.clone().unwrap_or(crate::plan::DEFAULT.mem.into())
    }
}

/// Refuses a command line the kernel would not understand.
pub fn check_cmdline(cmdline: &str) -> Result<(), String> {
    options::validate(cmdline).map_err(|e| format!("CMDLINE: {e}"))
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
        assert_eq!(f.profile().unwrap().name, "usb-uefi");
        assert_eq!(f.mem.as_deref(), Some("4G"));
        assert_eq!(f.timeout, Some(5));
        assert_eq!(f.free, ["x"]);
        let f = parse_flags(
            ["--type", " pmem remove region0;; mosaic 13 "].map(String::from).into_iter(),
        );
        assert_eq!(f.unwrap().typed, ["pmem remove region0", "mosaic 13"]);
        assert_eq!(flags("--timeout 0").unwrap_err(), "--timeout '0': give whole seconds > 0");
        assert_eq!(flags("--mem").unwrap_err(), "--mem needs a value");
        assert!(flags("--bogus").unwrap_err().starts_with("unknown flag '--bogus'"));
        let f = flags("--profile bios --firmware uefi").unwrap();
        assert!(f.profile().is_err());
        assert_eq!(flags("").unwrap().profile().unwrap().name, "bios");
        let f = flags("--smp 4").unwrap();
        assert_eq!(f.cpus(f.profile().unwrap()), 4);
        let f = flags("--profile uefi-smp").unwrap();
        assert_eq!(f.cpus(f.profile().unwrap()), 4);
        assert_eq!(flags("").unwrap().cpus(f.profile().unwrap()), 4);
        assert!(flags("--smp 0").unwrap_err().starts_with("SMP='0': give a number of CPUs"));
        assert_eq!(flags("--gdb-port 4321").unwrap().gdb_port, Some(4321));
        for bad in ["0", "65536", "x"] {
            let e = flags(&format!("--gdb-port {bad}")).unwrap_err();
            assert_eq!(e, format!("GDB_PORT '{bad}': give a TCP port 1..65535"));
        }
    }

    #[test]
    fn bad_cmdlines_are_refused_in_one_line() {
        assert!(check_cmdline("poweroff loglevel=3").is_ok());
        let e = check_cmdline("poweroff frob").unwrap_err();
        assert!(e.starts_with("CMDLINE: unknown option 'frob'"), "{e}");
        assert!(!e.contains('\n'));
    }
}

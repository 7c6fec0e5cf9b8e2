//! The accelerator every boot runs on: `ACCEL=auto|kvm|tcg` (the
//! environment; `make` passes its variable through).
//!
//! - `tcg`: QEMU's translator, on every host.
//! - `kvm`: the host's hypervisor; `/dev/kvm` must open read-write, or the
//!   command stops with a one-line error.
//! - `auto` (the default): KVM when `/dev/kvm` opens and a probe guest
//!   ([`probe_sector`]) really runs on it, and faster than on TCG; otherwise TCG,
//!   with the reason printed once. The probe matters: a `/dev/kvm` can open
//!   and still run guests far slower than TCG (on the hosts this was built
//!   on, a nested KVM runs the probe's 10 million-round loop in more than
//!   5 s, and Tessera's boot in 100 s instead of 3 s under TCG).
//!
//! Every command that boots resolves the choice once ([`resolve`]);
//! [`current`] then gives it to [`crate::machine::Machine::new`] and to the
//! Linux boots.

use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::machine::{self, QEMU};
use crate::report::Ending;

/// What runs the guests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    /// QEMU's `-accel` argument for `cpus` vCPUs (and the CPU model under
    /// KVM). One CPU on TCG keeps QEMU's defaults; several get one host
    /// thread each, so they really run in parallel. KVM always runs a
    /// thread per vCPU, and gets the host's CPU model.
    pub fn args(self, cpus: u32) -> Vec<String> {
        let a: Vec<&str> = match (self, cpus) {
            (Accel::Tcg, 0..=1) => vec!["-accel", "tcg"],
            (Accel::Tcg, _) => vec!["-accel", "tcg,thread=multi"],
            (Accel::Kvm, _) => vec!["-accel", "kvm", "-cpu", "host"],
        };
        let mut a: Vec<String> = a.into_iter().map(String::from).collect();
        if cpus > 1 {
            a.extend(["-smp".to_string(), cpus.to_string()]);
        }
        a
    }

    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "KVM",
            Accel::Tcg => "TCG",
        }
    }
}

/// `ACCEL`'s value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    Auto,
    Kvm,
    Tcg,
}

/// Reads `ACCEL` (empty: `auto`).
pub fn parse(v: &str) -> Result<Choice, String> {
    match v.trim() {
        "" | "auto" => Ok(Choice::Auto),
        "kvm" => Ok(Choice::Kvm),
        "tcg" => Ok(Choice::Tcg),
        v => Err(format!("ACCEL='{v}': give auto, kvm or tcg")),
    }
}

/// What [`resolve`] decided.
struct Chosen {
    accel: Accel,
    /// Why, in a few words.
    why: String,
    /// How long the probe guest took on `accel`, when `auto` ran it there.
    probed: Option<Duration>,
}

static CHOSEN: OnceLock<Chosen> = OnceLock::new();

/// The accelerator of this run: [`resolve`]'s answer, TCG before it (the
/// unit tests, and commands that only print).
pub fn current() -> Accel {
    CHOSEN.get().map_or(Accel::Tcg, |c| c.accel)
}

/// Why [`current`] runs, in a few words (`ACCEL=auto: ...`).
pub fn reason() -> String {
    CHOSEN.get().map_or("not resolved".into(), |c| c.why.clone())
}

/// How long the probe guest took on [`current`], if `auto` ran it there
/// already.
pub fn probed() -> Option<Duration> {
    CHOSEN.get().and_then(|c| c.probed)
}

/// Decides once from `ACCEL`, prints the decision on stderr, and returns
/// it; an impossible explicit choice is an error.
pub fn resolve() -> Result<Accel, String> {
    if let Some(c) = CHOSEN.get() {
        return Ok(c.accel);
    }
    let choice = parse(&std::env::var("ACCEL").unwrap_or_default())?;
    let chosen = match choice {
        Choice::Tcg => Chosen { accel: Accel::Tcg, why: "ACCEL=tcg".into(), probed: None },
        Choice::Kvm => {
            open_kvm().map_err(|e| format!("ACCEL=kvm: {e}"))?;
            Chosen { accel: Accel::Kvm, why: "ACCEL=kvm".into(), probed: None }
        }
        Choice::Auto => auto(),
    };
    eprintln!("accel: {} ({})", chosen.accel.name(), chosen.why);
    let _ = CHOSEN.set(chosen);
    Ok(current())
}

/// `/dev/kvm` opened read-write, as QEMU opens it.
fn open_kvm() -> Result<(), String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map(drop)
        .map_err(|e| format!("/dev/kvm: {e}"))
}

/// The probe's time limit on KVM: more than the host needs to start QEMU
/// and run the probe natively many times over.
const KVM_PROBE_LIMIT: Duration = Duration::from_secs(4);

fn auto() -> Chosen {
    let tcg_because = |why: String, probed| Chosen { accel: Accel::Tcg, why, probed };
    if let Err(e) = open_kvm() {
        return tcg_because(format!("ACCEL=auto: {e}"), None);
    }
    let tcg = match probe(Accel::Tcg, Duration::from_secs(30)) {
        Ok(t) => t,
        // TCG is the fallback; its own failure shows on the first boot.
        Err(e) => {
            return tcg_because(format!("ACCEL=auto: the probe failed on TCG too: {e}"), None);
        }
    };
    let ms = |d: Duration| d.as_millis();
    match probe(Accel::Kvm, KVM_PROBE_LIMIT) {
        Ok(kvm) if kvm <= tcg => Chosen {
            accel: Accel::Kvm,
            why: format!(
                "ACCEL=auto: the probe guest ran in {} ms on KVM, {} ms on TCG",
                ms(kvm),
                ms(tcg)
            ),
            probed: Some(kvm),
        },
        Ok(kvm) => tcg_because(
            format!(
                "ACCEL=auto: /dev/kvm runs guests, but slower: the probe guest took {} ms on KVM, {} ms on TCG",
                ms(kvm),
                ms(tcg)
            ),
            Some(tcg),
        ),
        Err(e) => tcg_because(
            format!("ACCEL=auto: /dev/kvm opens, but {e} (TCG: {} ms)", ms(tcg)),
            Some(tcg),
        ),
    }
}

/// The probe's exit code through `isa-debug-exit` (QEMU exits with
/// `code << 1 | 1`).
const PROBE_CODE: u8 = 0x21;

/// The probe guest: a BIOS boot sector (real mode, loaded at 0x7c00) that
/// does what a kernel does, in miniature: 1,000 port writes (each a VM exit
/// under KVM), a first write to 128 pages of fresh memory, 10 million
/// rounds of a loop, then the exit device.
pub fn probe_sector() -> [u8; 512] {
    let mut c: Vec<u8> = Vec::new();
    c.push(0xfa); // cli
    c.extend([0xba, 0x80, 0x00]); // mov dx, 0x80 (the POST port)
    c.extend([0xb9, 0xe8, 0x03]); // mov cx, 1000
    c.extend([0xee, 0xe2, 0xfd]); // 1: out dx, al; loop 1b
    c.extend([0xb8, 0x00, 0x10]); // mov ax, 0x1000
    let touch = c.len();
    c.extend([0x8e, 0xc0]); // 2: mov es, ax
    c.extend([0x26, 0xa3, 0x00, 0x00]); // mov es:[0], ax
    c.extend([0x05, 0x00, 0x01]); // add ax, 0x100 (the next 4 KiB page)
    c.extend([0x3d, 0x00, 0x90]); // cmp ax, 0x9000
    let back = touch as i64 - (c.len() as i64 + 2);
    c.extend([0x72, back as u8]); // jb 2b
    c.extend([0x66, 0xb9]); // mov ecx, 10,000,000
    c.extend(10_000_000u32.to_le_bytes());
    c.extend([0x66, 0x49, 0x75, 0xfc]); // 3: dec ecx; jnz 3b
    c.extend([0xb0, PROBE_CODE]); // mov al, PROBE_CODE
    c.extend([0xe6, options::contract::DEBUG_EXIT_IOBASE as u8]); // out DEBUG_EXIT, al
    c.extend([0xf4, 0xeb, 0xfe]); // hlt; jmp $
    let mut s = [0u8; 512];
    s[..c.len()].copy_from_slice(&c);
    s[510] = 0x55;
    s[511] = 0xaa;
    s
}

/// Boots the probe on `accel` and returns how long QEMU ran, or why it
/// did not end as the probe ends within `limit`.
pub fn probe(accel: Accel, limit: Duration) -> Result<Duration, String> {
    let dir = std::path::PathBuf::from("target/qemu");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let img = dir.join("accel-probe.img");
    std::fs::write(&img, probe_sector()).map_err(|e| format!("{}: {e}", img.display()))?;
    let exit = format!(
        "isa-debug-exit,iobase={:#x},iosize={:#04x}",
        options::contract::DEBUG_EXIT_IOBASE,
        options::contract::DEBUG_EXIT_IOSIZE
    );
    let drive = format!("format=raw,snapshot=on,file={}", img.display());
    let start = Instant::now();
    let mut child = Command::new(QEMU)
        .args(accel.args(1))
        .args(["-display", "none", "-serial", "none", "-monitor", "none", "-no-reboot"])
        .args(["-m", "32M", "-device", &exit, "-drive", &drive])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{QEMU}: {e}"))?;
    let want = i32::from(PROBE_CODE) << 1 | 1;
    match machine::wait(&mut child, Some(limit), || false)? {
        Ending::Code(c) if c == want => Ok(start.elapsed()),
        Ending::Timeout(s) => Err(format!("the probe guest did not finish in {s} s")),
        e => Err(format!("the probe guest ended with {e:?}, not exit code {want}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accel_values_parse_and_bad_ones_are_refused() {
        assert_eq!(parse(""), Ok(Choice::Auto));
        assert_eq!(parse("auto"), Ok(Choice::Auto));
        assert_eq!(parse("kvm"), Ok(Choice::Kvm));
        assert_eq!(parse("tcg"), Ok(Choice::Tcg));
        assert_eq!(parse("hvf").unwrap_err(), "ACCEL='hvf': give auto, kvm or tcg");
    }

    #[test]
    fn accelerators_give_qemu_arguments() {
        let j = |a: Accel, n| a.args(n).join(" ");
        assert_eq!(j(Accel::Tcg, 1), "-accel tcg");
        assert_eq!(j(Accel::Tcg, 4), "-accel tcg,thread=multi -smp 4");
        assert_eq!(j(Accel::Kvm, 1), "-accel kvm -cpu host");
        assert_eq!(j(Accel::Kvm, 2), "-accel kvm -cpu host -smp 2");
    }

    #[test]
    fn the_probe_is_a_boot_sector_that_exits() {
        let s = probe_sector();
        assert_eq!(&s[510..], &[0x55, 0xaa]);
        // It ends writing PROBE_CODE to the exit device, then halts.
        let end = s[..510].iter().rposition(|&b| b != 0).unwrap();
        assert_eq!(s[end - 6..=end], [0xb0, PROBE_CODE, 0xe6, 0xf4, 0xf4, 0xeb, 0xfe]);
    }
}

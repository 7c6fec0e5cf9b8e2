//! `boot KERNEL [--firmware bios|uefi|all] [--cmdline "OPTIONS"] [--out-dir DIR]`
//!
//! Writes `DIR/tessera-bios.img` and/or `DIR/tessera-uefi.img` (DIR defaults
//! to `target`).

use std::path::PathBuf;
use std::process::ExitCode;

use boot::{Firmware, build_image};

const USAGE: &str =
    "usage: boot KERNEL_ELF [--firmware bios|uefi|all] [--cmdline \"OPTIONS\"] [--out-dir DIR]";

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let mut kernel = None;
    let mut firmware = Firmware::ALL.to_vec();
    let mut cmdline = String::new();
    let mut out_dir = PathBuf::from("target");
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value; {USAGE}"));
        match a.as_str() {
            "--firmware" => {
                let v = value("--firmware")?;
                firmware = match v.as_str() {
                    "all" => Firmware::ALL.to_vec(),
                    f => vec![
                        Firmware::parse(f)
                            .ok_or(format!("unknown firmware '{f}': use bios, uefi or all"))?,
                    ],
                };
            }
            "--cmdline" => cmdline = value("--cmdline")?,
            "--out-dir" => out_dir = value("--out-dir")?.into(),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            s if s.starts_with('-') => return Err(format!("unknown flag '{s}'; {USAGE}")),
            s if kernel.is_none() => kernel = Some(PathBuf::from(s)),
            s => return Err(format!("unexpected argument '{s}'; {USAGE}")),
        }
    }
    let kernel = kernel.ok_or(USAGE.to_string())?;
    std::fs::create_dir_all(&out_dir)
        .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    for f in firmware {
        let out = out_dir.join(format!("tessera-{}.img", f.name()));
        build_image(&kernel, f, &cmdline, &out).map_err(|e| e.to_string())?;
        println!("{}", out.display());
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("boot: {e}");
            ExitCode::from(2)
        }
    }
}

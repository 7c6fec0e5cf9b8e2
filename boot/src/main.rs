//! `boot KERNEL [--firmware bios|uefi|all] [--cmdline "OPTIONS"] [--out-dir DIR]`
//!
//! Writes `DIR/tessera-bios.img` and/or `DIR/tessera-uefi.img` (DIR defaults
//! to `target`).
//!
//! `boot usb --dev /dev/sdX [IMAGE]`: checks the device (whole disk,
//! removable or on USB, not mounted); with an IMAGE, asks for `yes` and
//! writes it, then syncs.

use std::path::PathBuf;
use std::process::ExitCode;

use boot::{Firmware, build_image};

const USAGE: &str =
    "usage: boot KERNEL_ELF [--firmware bios|uefi|all] [--cmdline \"OPTIONS\"] [--out-dir DIR]";

fn usb(mut args: impl Iterator<Item = String>) -> Result<(), String> {
    let (mut dev, mut image) = (None, None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--dev" => dev = Some(args.next().unwrap_or_default()),
            s if s.starts_with('-') => return Err(format!("unknown flag '{s}'")),
            s => image = Some(PathBuf::from(s)),
        }
    }
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let disk =
        boot::usb::inspect(std::path::Path::new("/sys"), &mounts, dev.as_deref().unwrap_or(""))
            .map_err(|e| e.to_string())?;
    let Some(image) = image else {
        println!(
            "{}: {} ({} MB), removable, not mounted",
            disk.dev.display(),
            disk.model,
            disk.size_bytes / 1_000_000
        );
        return Ok(());
    };
    if !boot::usb::confirm(&disk, &image, &mut std::io::stdin(), &mut std::io::stdout()) {
        return Err(boot::usb::UsbError::NotConfirmed.to_string());
    }
    let n = boot::usb::write(&disk, &image).map_err(|e| e.to_string())?;
    println!("wrote {n} bytes to {} and synced; it can be unplugged", disk.dev.display());
    Ok(())
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().is_some_and(|a| a == "usb") {
        args.next();
        return usb(args);
    }
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

//! `qemu run` (the kernel on this terminal) and `qemu screenshot` (the
//! console after boot, saved as a PNG).

use std::path::Path;

use crate::cargo;
use crate::cli::{self, Flags};
use crate::machine::{self, Machine, Step};
use crate::profile::Profile;
use crate::report::{self, Ending, Verdict};

/// `qemu run`: boots the kernel on the machine the flags describe, serial
/// and QEMU's monitor on this terminal.
pub fn cmd_run(f: Flags) -> Result<bool, String> {
    let profile = f.profile()?;
    cli::check_cmdline(&f.cmdline)?;
    machine::check_host(profile)?;
    let kernel = match &f.kernel {
        Some(k) => k.clone(),
        None => cargo::build_kernel(f.release)?,
    };
    let mut m = Machine::new(profile, &kernel, &format!("run-{}", profile.name));
    m.mem = f.mem();
    m.cpus = f.cpus(profile);
    m.cmdline = f.cmdline.clone();
    m.qemu_args = f.qemu_args.clone();
    m.timeout = f.timeout.map(std::time::Duration::from_secs);
    let display = std::env::var_os("DISPLAY").is_some();
    eprintln!(
        "qemu: booting profile {} ({}, {}) on {}; Ctrl-A X quits",
        profile.name,
        profile.about,
        Profile::cpus_text(m.cpus),
        m.accel.name()
    );
    let b = machine::boot_interactive(&m, display)?;
    if b.ending != Ending::Code(1) {
        // Warnings; a start error is part of the verdict below.
        eprint!("{}", b.stderr);
    }
    let log = m.log_path();
    match report::verdict(b.ending, &b.log, &b.stderr) {
        Verdict::Pass => {
            eprintln!(
                "qemu: kernel powered off ({:.1} s); serial log in {}",
                b.elapsed.as_secs_f64(),
                log.display()
            );
            Ok(true)
        }
        // Quitting with Ctrl-A X (or an ACPI power-off) ends QEMU with 0.
        _ if b.ending == Ending::Code(0) => {
            eprintln!("qemu: QEMU exited; serial log in {}", log.display());
            Ok(true)
        }
        Verdict::Fail(why) => {
            eprintln!("qemu: FAILED: {why}; serial log in {}", log.display());
            Ok(false)
        }
    }
}

/// `qemu screenshot`: boots the kernel, waits for the shell, types the
/// `--type` commands, saves the framebuffer as `target/screenshot.png`
/// through QEMU's monitor, and powers off.
pub fn cmd_screenshot(f: Flags) -> Result<bool, String> {
    let profile = f.profile()?;
    machine::check_host(profile)?;
    let kernel = cargo::build_kernel(false)?;
    let mut m = Machine::new(profile, &kernel, &format!("screenshot-{}", profile.name))
        .timeout(f.timeout()?);
    m.mem = f.mem();
    m.cpus = f.cpus(profile);
    m.cmdline = f.cmdline.clone();
    let out = "target/screenshot.png";
    let _ = std::fs::remove_file(out);
    let mut steps: Vec<Step> = f.typed.iter().map(|c| Step::Type(c.clone())).collect();
    steps.push(Step::Monitor(format!("screendump {out} -f png")));
    steps.push(Step::Type("poweroff".into()));
    let b = machine::boot_captured(&m, false, &steps)?;
    let ok = Path::new(out).exists();
    match report::verdict(b.ending, &b.log, &b.stderr) {
        Verdict::Pass if ok => println!(
            "{out}: the console after boot{} ({}, {})",
            if f.typed.is_empty() {
                String::new()
            } else {
                format!(" and {:?}", f.typed.join("; "))
            },
            profile.name,
            Profile::cpus_text(m.cpus)
        ),
        v => println!("screenshot: FAILED: {v}; {out} {}", if ok { "written" } else { "missing" }),
    }
    Ok(ok)
}

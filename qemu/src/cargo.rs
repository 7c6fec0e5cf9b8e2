//! Building the kernel and its test binaries with cargo, and finding the
//! test binaries in cargo's output; every cargo the harness runs shows
//! progress.
//!
//! A cold build spends minutes in the bootloader's build script (it
//! compiles the BIOS and UEFI stages), silent but for one `Compiling`
//! line. On a terminal cargo draws its own progress bar, which passes
//! through untouched. Otherwise (CI, a log file) cargo's lines pass through
//! as they come, and after [`HEARTBEAT`] without one a line says how long
//! cargo has run and what it was building, so neither a person nor a CI
//! log watcher stares at silence; no carriage returns.

use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const KERNEL_TARGET: &str = "x86_64-unknown-none";

/// How long cargo may be silent before a progress line.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// A kernel executable cargo built.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// Short name: `kernel` for the library's unit tests, else the test
    /// file's stem (`kernel/tests/NAME.rs`).
    pub name: String,
    pub path: PathBuf,
}

/// What a cargo status line says is being built, if it says so
/// (`Compiling bootloader v0.11.16` → `bootloader v0.11.16`).
pub fn building(line: &str) -> Option<&str> {
    let line = line.trim();
    ["Compiling ", "Building ", "Checking ", "Installing "]
        .iter()
        .find_map(|verb| line.strip_prefix(verb))
        .map(|what| what.split(" (").next().unwrap_or(what))
}

/// The progress line after `elapsed` of a cargo that last said it was
/// building `what`.
pub fn heartbeat(elapsed: Duration, what: Option<&str>) -> String {
    let secs = elapsed.as_secs();
    let time =
        if secs >= 60 { format!("{}m{:02}s", secs / 60, secs % 60) } else { format!("{secs}s") };
    match what {
        Some(w) if w.starts_with("bootloader ") => format!(
            "cargo: still building after {time}: {w} (its build script compiles the BIOS and UEFI stages; a cold build takes a few minutes)"
        ),
        Some(w) => format!("cargo: still building after {time}: {w}"),
        None => format!("cargo: still working after {time}"),
    }
}

/// Runs `cmd` (a cargo command) with its stdout captured and its error
/// output shown as progress (see the module doc).
pub fn output(cmd: &mut Command) -> Result<Output, String> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let err = |e: std::io::Error| format!("cannot run {program}: {e}");
    if std::io::stderr().is_terminal() {
        return cmd.stderr(Stdio::inherit()).output().map_err(err);
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().map_err(err)?;
    let stderr = child.stderr.take().expect("piped");
    let mut stdout = child.stdout.take().expect("piped");
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stdout, &mut v);
        v
    });
    // Lines from cargo, and their end, reach this thread through a channel
    // so that silence can be timed.
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let start = Instant::now();
    let mut what: Option<String> = None;
    loop {
        match rx.recv_timeout(HEARTBEAT) {
            Ok(line) => {
                if let Some(w) = building(&line) {
                    what = Some(w.to_string());
                }
                eprintln!("{line}");
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                eprintln!("{}", heartbeat(start.elapsed(), what.as_deref()));
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        let _ = std::io::stderr().flush();
    }
    let _ = reader.join();
    let stdout = out.join().unwrap_or_default();
    let status = child.wait().map_err(err)?;
    Ok(Output { status, stdout, stderr: Vec::new() })
}

/// Runs `cmd` (a cargo command) with its output shown, as [`output`] does.
pub fn status(cmd: &mut Command) -> Result<ExitStatus, String> {
    if std::io::stderr().is_terminal() {
        let program = cmd.get_program().to_string_lossy().into_owned();
        return cmd.status().map_err(|e| format!("cannot run {program}: {e}"));
    }
    let o = output(cmd)?;
    std::io::stdout().write_all(&o.stdout).map_err(|e| e.to_string())?;
    Ok(o.status)
}

fn run_json(args: &[&str]) -> Result<Vec<serde_json::Value>, String> {
    let out = output(
        Command::new("cargo")
            .args(args)
            .args(["--message-format=json-render-diagnostics"])
            .stdin(Stdio::null()),
    )?;
    if !out.status.success() {
        return Err(format!("`cargo {}` failed", args.join(" ")));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

fn executables(msgs: &[serde_json::Value], want_tests: bool) -> Vec<Artifact> {
    msgs.iter()
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| want_tests == (m["profile"]["test"] == true))
        .filter_map(|m| {
            let path = m["executable"].as_str()?;
            let name = m["target"]["name"].as_str()?;
            Some(Artifact { name: name.into(), path: path.into() })
        })
        .collect()
}

/// Builds the kernel binary; `release` picks the release profile.
pub fn build_kernel(release: bool) -> Result<PathBuf, String> {
    let mut args = vec!["build", "-p", "kernel", "--bin", "kernel", "--target", KERNEL_TARGET];
    if release {
        args.push("--release");
    }
    executables(&run_json(&args)?, false)
        .into_iter()
        .next()
        .map(|a| a.path)
        .ok_or("cargo built no kernel executable".into())
}

/// Builds every in-kernel test binary (library unit tests and
/// `kernel/tests/`) and returns what cargo built: the test binaries are
/// found here, not listed anywhere.
pub fn build_kernel_tests() -> Result<Vec<Artifact>, String> {
    let args = ["test", "-p", "kernel", "--target", KERNEL_TARGET, "--no-run"];
    Ok(executables(&run_json(&args)?, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_name_what_cargo_builds() {
        assert_eq!(building("   Compiling bootloader v0.11.16"), Some("bootloader v0.11.16"));
        assert_eq!(building("   Compiling qemu v0.1.0 (/w/qemu)"), Some("qemu v0.1.0"));
        assert_eq!(building("    Finished `dev` profile"), None);
        let line = heartbeat(Duration::from_secs(135), Some("bootloader v0.11.16"));
        assert!(line.starts_with("cargo: still building after 2m15s: bootloader v0.11.16 ("));
        assert_eq!(heartbeat(Duration::from_secs(15), None), "cargo: still working after 15s");
        assert!(!line.contains('\r'));
    }
}

//! Building the kernel and its test binaries with cargo.

use std::path::PathBuf;
use std::process::{Command, Stdio};

pub const KERNEL_TARGET: &str = "x86_64-unknown-none";

/// A kernel executable cargo built.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// Short name: `kernel` for the library's unit tests, else the file name.
    pub name: String,
    pub path: PathBuf,
}

fn run_json(args: &[&str]) -> Result<Vec<serde_json::Value>, String> {
    let out = Command::new("cargo")
        .args(args)
        .args(["--message-format=json-render-diagnostics"])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
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

/// Builds every in-kernel test binary (library unit tests and `kernel/tests/`).
pub fn build_kernel_tests() -> Result<Vec<Artifact>, String> {
    let args = ["test", "-p", "kernel", "--target", KERNEL_TARGET, "--no-run"];
    Ok(executables(&run_json(&args)?, true))
}

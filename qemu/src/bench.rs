//! `qemu bench`: boots the `bench` kernel binary on each machine of
//! [`plan::BENCH`] and prints its `bench: NAME VALUE UNIT` lines as one
//! table, a column per machine. Every value comes from that run.

use std::time::Duration;

use crate::machine::{self, Machine};
use crate::{cargo, plan, profile, report};

/// `bench: NAME VALUE UNIT` lines of a serial log.
pub fn parse(log: &str) -> Vec<(String, String, String)> {
    log.lines()
        .filter_map(|l| l.split_once("bench: ").map(|(_, rest)| rest))
        .filter_map(|rest| {
            let mut w = rest.split_whitespace();
            Some((w.next()?.into(), w.next()?.into(), w.next().unwrap_or("").into()))
        })
        .collect()
}

pub fn run(timeout: Duration) -> Result<bool, String> {
    let profile = profile::find(plan::BENCH_PROFILE)?;
    machine::check_host(profile)?;
    let tests = cargo::build_kernel_tests()?;
    let exe = tests.iter().find(|t| t.name == "bench").ok_or("no bench test binary")?;
    let mut columns = Vec::new();
    for (name, shape, cpus) in plan::BENCH {
        let mut m = Machine::new(profile, &exe.path, &format!("bench-{name}"))
            .shape(shape)
            .timeout(timeout);
        m.cpus = *cpus;
        // The 64 GiB NVDIMM is formatted fsdax first, as in the scale test.
        m.prepare_nvdimm()?;
        eprintln!("bench: booting {name} (-m {}, {})", m.mem, profile::Profile::cpus_text(m.cpus));
        let b = machine::boot_captured(&m, false, &[])?;
        let v = report::verdict(b.ending, &b.log, &b.stderr);
        if v != report::Verdict::Pass {
            println!("bench {name}: FAILED: {v}");
            return Ok(false);
        }
        columns.push((*name, parse(&b.log)));
    }
    // Every row any machine reported, in the order first seen.
    let mut rows: Vec<(String, String)> = Vec::new();
    for (n, _, u) in columns.iter().flat_map(|(_, vals)| vals) {
        if !rows.iter().any(|(r, _)| r == n) {
            rows.push((n.clone(), u.clone()));
        }
    }
    print!("{:<34}", format!("bench ({}, one boot per column)", profile.name));
    for (name, _) in &columns {
        print!("{name:>12}");
    }
    println!();
    for (row, unit) in rows {
        print!("{:<34}", format!("{row} ({unit})"));
        for (_, vals) in &columns {
            let v = vals.iter().find(|(n, ..)| *n == row).map_or("-", |(_, v, _)| v.as_str());
            print!("{v:>12}");
        }
        println!();
    }
    let value = |col: &str, row: &str| -> Option<f64> {
        let (_, vals) = columns.iter().find(|(n, _)| *n == col)?;
        vals.iter().find(|(n, ..)| n == row)?.1.parse().ok()
    };
    if let (Some(fb), Some(serial)) = (value("2G", "init_done"), value("2G-serial", "init_done")) {
        println!("{:<34}{:>12.2}", "init_done 2G / 2G-serial (ratio)", fb / serial.max(1.0));
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_bench_lines_only() {
        let log = "[ 0.1] sparse: 16 present\nbench: pfn_valid 42 ns/call\nbench: r 1.25 ratio\n";
        let got = super::parse(log);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], ("pfn_valid".into(), "42".into(), "ns/call".into()));
        assert_eq!(got[1].1, "1.25");
    }
}

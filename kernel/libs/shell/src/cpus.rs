//! What the `cpus` command shows, gathered once by the kernel and written
//! as text lines or as one line of JSON, so the two cannot differ.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// One CPU the kernel knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuRow {
    /// The CPU's number (0 = the boot CPU).
    pub cpu: u32,
    pub apic_id: u32,
    /// Its ACPI processor UID.
    pub acpi_id: u32,
    pub online: bool,
    /// What it is doing (`running`, `idle`, ...).
    pub doing: &'static str,
    /// Microseconds from INIT to its arrival in the kernel; 0 for the boot
    /// CPU.
    pub boot_us: u64,
    /// Interprocessor interrupts it handled.
    pub ipis: u64,
    /// TLB flushes it did for other CPUs.
    pub tlb_flushes: u64,
    /// Its kernel stack `[start, end)`.
    pub stack: (u64, u64),
}

/// Every CPU and the totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cpus {
    pub rows: Vec<CpuRow>,
    /// `x2APIC` or `xAPIC`.
    pub apic_mode: &'static str,
    /// TLB shootdowns sent.
    pub shootdowns: u64,
    /// CPUs that did not start, with the reason.
    pub failed: Vec<(u32, String)>,
}

impl Cpus {
    /// How many rows are online.
    pub fn online(&self) -> usize {
        self.rows.iter().filter(|c| c.online).count()
    }

    /// The table, the totals line, and a line per CPU that did not start.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(self.rows.len() + 2 + self.failed.len());
        out.push(String::from(
            "CPU  APIC ID  ACPI ID  state    doing          start-up  IPIs     TLB flushes  stack",
        ));
        for c in &self.rows {
            let boot = match c.boot_us {
                0 => String::from("boot CPU"),
                us => format!("{}.{} ms", us / 1000, us % 1000 / 100),
            };
            out.push(format!(
                "{:>3}  {:#7x}  {:#7x}  {:<7}  {:<13}  {:>8}  {:<7}  {:<11}  [{:#x}-{:#x}]",
                c.cpu,
                c.apic_id,
                c.acpi_id,
                if c.online { "online" } else { "offline" },
                c.doing,
                boot,
                c.ipis,
                c.tlb_flushes,
                c.stack.0,
                c.stack.1 - 1,
            ));
        }
        out.push(format!(
            "{} of {} CPUs online ({}); {} TLB shootdowns sent",
            self.online(),
            self.rows.len(),
            self.apic_mode,
            self.shootdowns
        ));
        for (n, e) in &self.failed {
            out.push(format!("CPU {n} did not start: {e}"));
        }
        out
    }

    /// `cpus --json`: `{"cpus":[..],"online":N,"possible":N,"apic_mode":..,
    /// "tlb_shootdowns":N,"failed":[..]}`, each CPU with its line's fields
    /// under Linux's names where it has them (`apicid` as in
    /// `/proc/cpuinfo`, `online` a boolean as `lscpu -J` gives it);
    /// `startup_us` is `null` for the boot CPU; the stack's addresses are
    /// hex strings as in the text (kernel virtual addresses are above
    /// 2^53, where JavaScript's numbers lose bits), its `end` inclusive.
    pub fn json(&self) -> String {
        json::object(|o| {
            o.array("cpus", |a| {
                for c in &self.rows {
                    a.object(|o| {
                        o.field("cpu", c.cpu)
                            .field("apicid", c.apic_id)
                            .field("acpi_id", c.acpi_id)
                            .field("online", c.online)
                            .field("doing", c.doing)
                            .field("startup_us", (c.boot_us != 0).then_some(c.boot_us))
                            .field("ipis", c.ipis)
                            .field("tlb_flushes", c.tlb_flushes);
                        o.object("stack", |s| {
                            s.field("start", format!("{:#x}", c.stack.0))
                                .field("end", format!("{:#x}", c.stack.1 - 1));
                        });
                    });
                }
            });
            o.field("online", self.online())
                .field("possible", self.rows.len())
                .field("apic_mode", self.apic_mode)
                .field("tlb_shootdowns", self.shootdowns);
            o.array("failed", |a| {
                for (n, e) in &self.failed {
                    a.object(|o| {
                        o.field("cpu", *n).field("error", e);
                    });
                }
            });
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Cpus {
        let row = |cpu, online, boot_us| CpuRow {
            cpu,
            apic_id: cpu * 2,
            acpi_id: cpu,
            online,
            doing: if cpu == 0 { "running" } else { "idle" },
            boot_us,
            ipis: 3 * u64::from(cpu),
            tlb_flushes: 7,
            stack: (0xffff_8080_0000_1000 + u64::from(cpu) * 0x21000, 0xffff_8080_0002_1000),
        };
        Cpus {
            rows: vec![row(0, true, 0), row(1, true, 12_345), row(2, false, 0)],
            apic_mode: "xAPIC",
            shootdowns: 5,
            failed: vec![(3, String::from("no \"answer\" to INIT"))],
        }
    }

    #[test]
    fn lines_as_the_shell_prints_them() {
        let lines = sample().lines();
        assert_eq!(
            lines[1],
            "  0      0x0      0x0  online   running        boot CPU  0        7            \
             [0xffff808000001000-0xffff808000020fff]"
        );
        assert!(
            lines[2].starts_with("  1      0x2      0x1  online   idle            12.3 ms  3 ")
        );
        assert_eq!(lines[4], "2 of 3 CPUs online (xAPIC); 5 TLB shootdowns sent");
        assert_eq!(lines[5], "CPU 3 did not start: no \"answer\" to INIT");
    }

    /// The JSON says what the lines say: each row's line comes back from
    /// its object, and the totals are the totals.
    #[test]
    fn json_matches_the_lines() {
        let hex = |v: &serde_json::Value| {
            u64::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
        };
        let c = sample();
        let text = c.json();
        assert!(!text.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let rows = v["cpus"].as_array().unwrap();
        let back = Cpus {
            rows: rows
                .iter()
                .map(|r| CpuRow {
                    cpu: r["cpu"].as_u64().unwrap() as u32,
                    apic_id: r["apicid"].as_u64().unwrap() as u32,
                    acpi_id: r["acpi_id"].as_u64().unwrap() as u32,
                    online: r["online"].as_bool().unwrap(),
                    doing: if r["doing"] == "running" { "running" } else { "idle" },
                    boot_us: r["startup_us"].as_u64().unwrap_or(0),
                    ipis: r["ipis"].as_u64().unwrap(),
                    tlb_flushes: r["tlb_flushes"].as_u64().unwrap(),
                    stack: (hex(&r["stack"]["start"]), hex(&r["stack"]["end"]) + 1),
                })
                .collect(),
            apic_mode: "xAPIC",
            shootdowns: v["tlb_shootdowns"].as_u64().unwrap(),
            failed: vec![(3, v["failed"][0]["error"].as_str().unwrap().into())],
        };
        assert_eq!(back.lines(), c.lines());
        assert_eq!(
            (&v["online"], &v["possible"], &v["apic_mode"]),
            (&2.into(), &3.into(), &"xAPIC".into())
        );
        assert_eq!(v["cpus"][0]["startup_us"], serde_json::Value::Null);
        assert_eq!(v["failed"][0]["cpu"], 3);
        assert_eq!(v["cpus"][0]["stack"]["end"], "0xffff808000020fff");
    }
}

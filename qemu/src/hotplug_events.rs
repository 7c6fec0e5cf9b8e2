//! Runtime hotplug on Tessera alone, driven from QEMU's monitor (`make
//! test`, `hotplug::events::*`): what the Linux comparison
//! ([`crate::hotplug`]) does not reach.
//!
//! One boot (`-machine pc,nvdimm=on`, 4 DIMM slots, the hostile SSDT of
//! `qemu/acpi/hostile-memdev.asl` added, `memhp_default_state=online_movable
//! memory_hotplug.memmap_on_memory=1`) goes through the [`checks`] in
//! order; each check is some shell commands and monitor commands, then the
//! lines its log must show, in order. A check passes when all its lines
//! are there after the previous check's.
//!
//! - `plug-unplug-N`: a 128 MiB and a 1 GiB DIMM plugged, movable pages
//!   of known contents put in both (`memory fill`: in the 128 MiB one
//!   before the 1 GiB one is there, then in the 1 GiB one's last block,
//!   where the page allocator takes from first), both unplugged (the pages migrate to
//!   boot memory, the blocks go offline and away, `_EJ0`), the contents
//!   checked; three rounds.
//! - `pinned`: a page pinned in a DIMM's block: the eject request fails
//!   (EBUSY), the firmware hears `_OST` "device busy", QEMU keeps the DIMM
//!   and nothing is lost; unpinned, the next `device_del` ejects it.
//! - `nvdimm`: a 256 MiB NVDIMM plugged: `_FIT` names it, its sections
//!   fill in sub-section by sub-section.
//! - `hostile-crs`: the SSDT's memory device claims boot RAM: refused at
//!   boot and on a device check (EEXIST), `_OST` reports the failure
//!   (status 1), nothing changes; its eject request ends "Eject
//!   incomplete" (status 0x82).
//! - `no-device`, `empty-slot`: a notify for a path that does not exist,
//!   and for a slot without a DIMM: one line each, nothing done.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::machine::{self, Machine, Step};
use crate::plan::Shape;
use crate::profile;

/// The hostile SSDT (its source is the `.asl` beside it).
pub fn hostile_ssdt() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("acpi/hostile-memdev.aml")
}

/// One check: what is done, then what the log must show, in order.
pub struct Check {
    pub name: String,
    pub steps: Vec<Step>,
    pub expect: Vec<String>,
}

fn typed(c: &str) -> Step {
    Step::Type(c.into())
}

fn mon(c: &str) -> Step {
    Step::MonitorNow(c.into())
}

fn wait(name: &str, pattern: &str) -> Step {
    Step::wait_for(name, pattern, Duration::from_secs(30))
}

/// The checks, in the order they run (see the module docs).
pub fn checks(nv1: &Path) -> Vec<Check> {
    let mut out = Vec::new();
    for round in 1..=3 {
        let (a, b) = (format!("r{round}a"), format!("r{round}b"));
        out.push(Check {
            name: format!("plug-unplug-{round}"),
            steps: vec![
                Step::Monitor(format!("object_add memory-backend-ram,id=m{a},size=128M")),
                mon(&format!("device_add pc-dimm,id={a},memdev=m{a}")),
                wait(&format!("device_add {a} -> online"), "memory: memory32 online"),
                typed("memory fill 32 200"),
                Step::Monitor(format!("object_add memory-backend-ram,id=m{b},size=1G")),
                mon(&format!("device_add pc-dimm,id={b},memdev=m{b}")),
                wait(&format!("device_add {b} -> online"), "memory: memory40 online"),
                typed("memory fill 40 300"),
                typed("memory"),
                Step::Monitor(format!("device_del {a}")),
                wait(&format!("device_del {a} -> ejected"), "MP00: ejected"),
                mon(&format!("device_del {b}")),
                wait(&format!("device_del {b} -> ejected"), "MP01: ejected"),
                mon(&format!("object_del m{a}")),
                mon(&format!("object_del m{b}")),
                typed("memory check"),
                typed("memory release"),
            ],
            expect: [
                // memmap_on_memory: the 128 MiB DIMM (one block) keeps its
                // memmap in its first 2 MiB, the 1 GiB one (8 blocks) does
                // not, as in Linux 6.1.
                "memory: memory32 [mem 0x0000000100000000-0x0000000107ffffff] added (dimm MP00) memmap on memory",
                "memory: memory32 online: 32256 pages to zone Movable",
                "memory fill: 200 movable pages in memory32",
                "memory: memory40 online: 32768 pages to zone Movable",
                "memory fill: 300 movable pages in memory40",
                "memory32 online  [mem 0x0000000100000000-0x0000000107ffffff] Movable phys_index 00000020 memmap_on_memory 1 dimm MP00",
                "memory40 online  [mem 0x0000000140000000-0x0000000147ffffff] Movable phys_index 00000028 memmap_on_memory 0 dimm MP01",
                "acpi \\_SB_.MHPC.MP00: eject request (Notify 0x3)",
                "memory: migrated 200 movable pages out of [mem 0x0000000100200000-0x0000000107ffffff]",
                "memory: memory32 [mem 0x0000000100000000-0x0000000107ffffff] removed",
                "acpi \\_SB_.MHPC.MP00: ejected",
                "memory: migrated",
                "memory: memory40 [mem 0x0000000140000000-0x0000000147ffffff] removed",
                "acpi \\_SB_.MHPC.MP01: ejected",
                "memory check: 500 pages (0 pinned)",
                ": ok;",
            ]
            .map(String::from)
            .to_vec(),
        });
    }
    out.push(Check {
        name: "pinned".into(),
        steps: vec![
            Step::Monitor("object_add memory-backend-ram,id=mp,size=128M".into()),
            mon("device_add pc-dimm,id=p1,memdev=mp"),
            wait("device_add p1 -> online", "memory: memory32 online"),
            typed("memory fill 32 100"),
            typed("memory pin 32"),
            Step::Monitor("device_del p1".into()),
            wait("device_del p1 -> refused", "DIMM MP00 stays"),
            typed("acpi events"),
            Step::Monitor("info memory-devices".into()),
            typed("memory unpin"),
            Step::Monitor("device_del p1".into()),
            wait("device_del p1 -> ejected", "MP00: ejected"),
            mon("object_del mp"),
            typed("memory check"),
            typed("memory release"),
        ],
        expect: [
            "memory pin: pfn",
            "memory offlining [mem 0x100000000-0x107ffffff] failed due to failure to isolate range",
            "acpi \\_SB_.MHPC.MP00: Offline failed: [mem 0x0000000100000000-0x0000000107ffffff] EBUSY",
            "DIMM MP00 stays",
            "acpi: DIMM MP00 \\_SB_.MHPC.MP00 [mem 0x0000000100000000-0x0000000107ffffff]",
            "memory unpin: 1 pages unpinned",
            "memory: migrated 100 movable pages out of [mem 0x0000000100200000-0x0000000107ffffff]",
            "acpi \\_SB_.MHPC.MP00: ejected",
            "memory check: 100 pages (0 pinned)",
            ": ok;",
        ]
        .map(String::from)
        .to_vec(),
    });
    out.push(Check {
        name: "nvdimm".into(),
        steps: vec![
            Step::Monitor(format!(
                "object_add memory-backend-file,id=nv1,share=on,mem-path={},size=256M",
                nv1.display()
            )),
            mon("device_add nvdimm,id=nvdimm1,memdev=nv1"),
            wait("device_add nvdimm1 -> pmem", "added at run time"),
            typed("sections 32"),
            typed("pmem"),
        ],
        expect: [
            "acpi \\_SB_.NVDR: NFIT update (Notify 0x80): evaluating _FIT",
            "nfit: _FIT: spa 2: flags 0x3 proximity 0 type pmem [mem 0x0000000100000000-0x000000010fffffff]",
            "pmem: region0: [mem 0x0000000100000000-0x000000010fffffff] 256 MiB (firmware NFIT spa 2) namespace0.0",
            "pmem: region0 [mem 0x0000000100000000-0x000000010fffffff] added: 128 sub-sections in 2 sections, raw",
            "section 32: flags=present|has_mem_map",
            "subsection_map=0xffffffffffffffff",
            "PPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPP",
            "region0: [mem 0x0000000100000000-0x000000010fffffff] 256 MiB (firmware NFIT spa 2) namespace0.0 raw added",
        ]
        .map(String::from)
        .to_vec(),
    });
    out.push(Check {
        name: "hostile-crs".into(),
        steps: vec![
            typed("acpi notify \\_SB.HMEM 1"),
            typed("acpi eval \\_SB.HMEM.OSTS"),
            typed("acpi notify \\_SB.HMEM 3"),
            typed("acpi eval \\_SB.HMEM.OSTS"),
            typed("iomem"),
        ],
        expect: [
            "acpi \\_SB_.HMEM: device check (Notify 0x1)",
            "error: acpi \\_SB_.HMEM: add_memory [mem 0x0000000010000000-0x0000000017ffffff]: EEXIST",
            "\\_SB.HMEM.OSTS = Integer(1)",
            "acpi \\_SB_.HMEM: eject request (Notify 0x3)",
            "acpi \\_SB_.HMEM: Eject incomplete - status 0xf",
            "\\_SB.HMEM.OSTS = Integer(130)",
            "00100000-7ffdefff : System RAM",
        ]
        .map(String::from)
        .to_vec(),
    });
    out.push(Check {
        name: "no-device".into(),
        steps: vec![typed("acpi notify \\_SB.NOPE 1")],
        expect: vec!["ACPI: Notify(\\_SB_.NOPE, 0x1): no such device (no _HID); ignored".into()],
    });
    out.push(Check {
        name: "empty-slot".into(),
        steps: vec![typed("acpi notify \\_SB.MHPC.MP03 1"), typed("acpi notify \\_SB.MHPC.MP03 3")],
        expect: [
            "acpi \\_SB_.MHPC.MP03: nothing to add (_STA 0x0)",
            "acpi \\_SB_.MHPC.MP03: eject request for a device that is not present; ignored",
        ]
        .map(String::from)
        .to_vec(),
    });
    out
}

/// The boot's machine.
fn machine(kernel: &Path, tag: &str, timeout: Duration) -> Result<Machine, String> {
    let p = profile::find("bios")?;
    let shape = Shape {
        mem: crate::hotplug::MEM,
        cmdline: "nopmem memhp_default_state=online_movable memory_hotplug.memmap_on_memory=1",
        nvdimm: None,
        qemu_args: "-machine pc,nvdimm=on",
    };
    let mut m = Machine::new(p, kernel, tag).shape(&shape).timeout(timeout);
    m.qemu_args.extend([
        "-acpitable".to_string(),
        format!("file={}", profile::escape(&hostile_ssdt().to_string_lossy())),
    ]);
    Ok(m)
}

/// Where each check's lines were found: `Ok(())` or what is missing.
pub fn verify(log: &str, checks: &[Check]) -> Vec<(String, Result<(), String>)> {
    let mut at = 0;
    let mut out = Vec::new();
    for c in checks {
        let mut here = at;
        let mut result = Ok(());
        for e in &c.expect {
            match log[here..].find(e.as_str()) {
                Some(i) => here += i + e.len(),
                None => {
                    result = Err(format!("expected {e:?} (after what the check found before it)"));
                    break;
                }
            }
        }
        if result.is_ok() {
            at = here;
        }
        out.push((c.name.clone(), result));
    }
    out
}

/// Boots, runs every check, and reports each as a test line.
pub fn run(kernel: &Path, timeout: Duration) -> Vec<(String, Result<(), String>, String)> {
    let tag = "hotplug-events";
    let nv1 = PathBuf::from(format!("target/qemu/{tag}-nv1.img"));
    let _ = std::fs::remove_file(&nv1);
    let checks = checks(&nv1);
    let mut steps: Vec<Step> = checks.iter().flat_map(|c| c.steps.clone()).collect();
    steps.push(typed("poweroff"));
    let m = match machine(kernel, tag, timeout) {
        Ok(m) => m,
        Err(e) => return vec![("hotplug::events".into(), Err(e), String::new())],
    };
    let boot = machine::boot_captured(&m, false, &steps);
    let _ = std::fs::remove_file(&nv1);
    let b = match boot {
        Ok(b) => b,
        Err(e) => return vec![("hotplug::events".into(), Err(e), String::new())],
    };
    let waits: Vec<String> = b.steps.waits.iter().map(|w| w.line()).collect();
    let mut out: Vec<(String, Result<(), String>, String)> = verify(&b.log, &checks)
        .into_iter()
        .map(|(name, r)| {
            let note = waits
                .iter()
                .filter(|w| {
                    checks.iter().find(|c| c.name == name).is_some_and(|c| {
                        c.steps
                            .iter()
                            .any(|s| matches!(s, Step::Await(a) if w.starts_with(&a.name)))
                    })
                })
                .cloned()
                .collect::<Vec<_>>()
                .join(", ");
            let r = r.map_err(|e| match &b.steps.failed {
                Some(f) => format!("{e}; {f}"),
                None => e,
            });
            (format!("hotplug::events::{name}"), r, note)
        })
        .collect();
    if b.log.contains("panicked") {
        out.push((
            "hotplug::events::no-panic".into(),
            Err("the kernel panicked".into()),
            String::new(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_finds_lines_in_order_and_after_the_previous_check() {
        let c = |name: &str, e: &[&str]| Check {
            name: name.into(),
            steps: vec![],
            expect: e.iter().map(|s| s.to_string()).collect(),
        };
        let checks = [c("a", &["one", "two"]), c("b", &["three"]), c("c", &["one"])];
        let r = verify("one two three", &checks);
        assert!(r[0].1.is_ok() && r[1].1.is_ok());
        // "one" is before what check b found: check c fails.
        assert!(r[2].1.as_ref().unwrap_err().contains("\"one\""));
        let r = verify("two one", &checks);
        assert!(r[0].1.is_err());
    }

    #[test]
    fn the_hostile_ssdt_is_there_and_is_an_ssdt() {
        let b = std::fs::read(hostile_ssdt()).unwrap();
        assert_eq!(&b[..4], b"SSDT");
        assert_eq!(u32::from_le_bytes(b[4..8].try_into().unwrap()) as usize, b.len());
        assert_eq!(b.iter().fold(0u8, |s, x| s.wrapping_add(*x)), 0, "checksum");
    }

    #[test]
    fn every_check_expects_something_and_waits_are_named_uniquely() {
        let cs = checks(Path::new("nv.img"));
        assert!(cs.iter().all(|c| !c.expect.is_empty()));
        let mut names: Vec<String> = cs
            .iter()
            .flat_map(|c| c.steps.iter())
            .filter_map(|s| if let Step::Await(a) = s { Some(a.name.clone()) } else { None })
            .collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n);
    }
}

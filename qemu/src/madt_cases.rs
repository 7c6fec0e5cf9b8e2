//! Hostile MADTs for QEMU's `-acpitable file=T` (issue 16): each case is a
//! whole checksummed table that QEMU appends after its own MADT, so the
//! kernel is told `acpi_apic_instance=2` to use it, as Linux is.
//!
//! Every table keeps what QEMU 7.2's own `pc` MADT has besides its
//! processors (the I/O APIC, the ISA overrides, the LINT1 NMI), so only the
//! processor entries differ from a real boot. The cases are meant for a
//! machine with [`MadtCase::smp`] vCPUs and QEMU 7.2's default TCG CPU (no
//! x2APIC). `expect` holds lines the MADT code prints (the entry lines at
//! `loglevel=8`, problems, and `acpi::possible_cpus`' lines); the lines of
//! the start-up of CPUs that do not exist are the SMP code's to add.
//!
//! Linux 6.1 on the same tables (DESIGN.md §4c): 8 entries on 4 vCPUs →
//! `smpboot: Allowing 8 CPUs` and `do_boot_cpu failed(-1) to wakeup CPU#4`
//! (..#7) after 10 s each; the zero-length entry makes Linux drop ACPI
//! altogether (`ACPI: Invalid BIOS MADT, disabling ACPI`) where Tessera
//! keeps the entries before it.

use std::path::{Path, PathBuf};

use acpi::madt::{self, Entry};

/// One hostile MADT.
pub struct MadtCase {
    /// Short name, used in test names and file names.
    pub name: &'static str,
    /// The kernel command line for the boot.
    pub cmdline: &'static str,
    /// vCPUs the machine gets (`-smp N`).
    pub smp: u32,
    /// The whole table, checksummed.
    pub table: fn() -> Vec<u8>,
    /// Lines the boot log must contain.
    pub expect: &'static [&'static str],
}

/// Every case needs the second MADT, and `loglevel=8` shows the entry
/// lines Linux prints with `pr_debug`.
const CMDLINE: &str = "acpi_apic_instance=2 loglevel=8";

fn lapic(id: u8, flags: u32) -> Entry {
    Entry::LocalApic { acpi_id: id, apic_id: id, flags }
}

/// Processor entries, then QEMU's own I/O APIC, overrides and NMI.
fn with_qemu_tail(cpus: impl IntoIterator<Item = Entry>) -> Vec<Vec<u8>> {
    cpus.into_iter().chain(madt::qemu_tail()).map(|e| e.to_bytes()).collect()
}

fn more_entries_than_cpus() -> Vec<u8> {
    madt::build(&with_qemu_tail((0..8).map(|i| lapic(i, madt::ENABLED))))
}

fn disabled_entries() -> Vec<u8> {
    let flags = [madt::ENABLED, madt::ENABLED, 0, 0];
    madt::build(&with_qemu_tail((0..4).map(|i| lapic(i, flags[usize::from(i)]))))
}

fn duplicate_apic_ids() -> Vec<u8> {
    let ids = [0, 1, 1, 2, 3];
    let cpus = (0..5).map(|i| Entry::LocalApic {
        acpi_id: i,
        apic_id: ids[usize::from(i)],
        flags: madt::ENABLED,
    });
    madt::build(&with_qemu_tail(cpus))
}

fn x2apic_above_255() -> Vec<u8> {
    let x2 = |id, uid| Entry::LocalX2Apic { x2apic_id: id, flags: madt::ENABLED, acpi_uid: uid };
    let cpus = (0..4).map(|i| lapic(i, madt::ENABLED)).chain([x2(0x100, 4), x2(0x101, 5)]);
    madt::build(&with_qemu_tail(cpus))
}

/// A zero-length entry after all of QEMU's (at offset 0x90): parsing stops
/// there and everything before it is kept.
fn garbage_entry() -> Vec<u8> {
    let mut entries = with_qemu_tail((0..4).map(|i| lapic(i, madt::ENABLED)));
    entries.push(vec![0, 0, 0, 0]);
    madt::build(&entries)
}

/// The cases.
pub const MADT_CASES: &[MadtCase] = &[
    MadtCase {
        name: "more-entries-than-cpus",
        cmdline: CMDLINE,
        smp: 4,
        table: more_entries_than_cpus,
        expect: &[
            "ACPI: Shall use APIC/MADT table 2",
            "ACPI: BIOS bug: multiple APIC/MADT found, using 2",
            "ACPI: LAPIC (acpi_id[0x07] lapic_id[0x07] enabled)",
            "ACPI: IOAPIC (id[0x00] address[0xfec00000] gsi_base[0])",
            "ACPI: INT_SRC_OVR (bus 0 bus_irq 0 global_irq 2 dfl dfl)",
            "ACPI: Using ACPI (MADT) for SMP configuration information",
            "smpboot: Allowing 8 CPUs, 0 hotplug CPUs",
        ],
    },
    MadtCase {
        name: "disabled-entries",
        cmdline: CMDLINE,
        smp: 4,
        table: disabled_entries,
        expect: &[
            "ACPI: LAPIC (acpi_id[0x02] lapic_id[0x02] disabled)",
            "ACPI: LAPIC (acpi_id[0x03] lapic_id[0x03] disabled)",
            "smpboot: Allowing 2 CPUs, 0 hotplug CPUs",
        ],
    },
    MadtCase {
        name: "duplicate-apic-ids",
        cmdline: CMDLINE,
        smp: 4,
        table: duplicate_apic_ids,
        expect: &[
            "ACPI: LAPIC (acpi_id[0x02] lapic_id[0x01] enabled)",
            "APIC: duplicate APIC ID 0x1 (acpi_id 0x02) ignored",
            "smpboot: Allowing 4 CPUs, 0 hotplug CPUs",
        ],
    },
    MadtCase {
        name: "x2apic-above-255",
        cmdline: CMDLINE,
        smp: 4,
        table: x2apic_above_255,
        expect: &[
            "ACPI: X2APIC (apic_id[0x100] uid[0x04] enabled)",
            "ACPI: X2APIC (apic_id[0x101] uid[0x05] enabled)",
            "ACPI: x2apic entry ignored (apic_id[0x100]: no x2APIC mode)",
            "ACPI: x2apic entry ignored (apic_id[0x101]: no x2APIC mode)",
            "smpboot: Allowing 4 CPUs, 0 hotplug CPUs",
        ],
    },
    MadtCase {
        name: "garbage-entry",
        cmdline: CMDLINE,
        smp: 4,
        table: garbage_entry,
        expect: &[
            "ACPI: MADT offset 0x90: type 0 length 0 below 2, rest of the table ignored",
            "ACPI: LAPIC_NMI (acpi_id[0xff] dfl dfl lint[0x1])",
            "smpboot: Allowing 4 CPUs, 0 hotplug CPUs",
        ],
    },
];

/// Writes the case's table to `dir/madt-NAME.bin` for `-acpitable file=`.
pub fn write(case: &MadtCase, dir: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join(format!("madt-{}.bin", case.name));
    std::fs::write(&path, (case.table)()).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// QEMU's arguments for the case's table written at `path`.
pub fn qemu_args(case: &MadtCase, path: &Path) -> Vec<String> {
    vec![
        "-smp".into(),
        case.smp.to_string(),
        "-acpitable".into(),
        format!("file={}", crate::profile::escape(&path.to_string_lossy())),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the kernel prints for `table` at `loglevel=8` with two MADTs
    /// and `acpi_apic_instance=2`, booted on APIC ID 0 without x2APIC:
    /// the same calls, in the same order, as `kernel/src/acpi.rs` and
    /// `acpi::possible_cpus`.
    fn kernel_lines(table: &[u8]) -> Vec<String> {
        let mut out = vec!["ACPI: Shall use APIC/MADT table 2".to_string()];
        let i = madt::select_instance(2, 2, &mut |l| out.push(format!("ACPI: {l}")));
        assert_eq!(i, Some(1));
        let (m, errors) = madt::parse(table).expect("the table parses");
        out.extend(m.entries.iter().map(|e| format!("ACPI: {e}")));
        out.extend(errors.iter().map(|e| format!("ACPI: {e}")));
        if m.io_apics().next().is_some() {
            out.push("ACPI: Using ACPI (MADT) for SMP configuration information".into());
        }
        madt::possible_cpus(&m, 0, false, 64, &mut |l| out.push(l.to_string()));
        out
    }

    #[test]
    fn tables_are_checksummed_and_print_what_they_expect() {
        let mut names = std::collections::HashSet::new();
        for case in MADT_CASES {
            assert!(names.insert(case.name), "{}: duplicate name", case.name);
            let t = (case.table)();
            assert!(acpi::sdt::checksum_ok(&t), "{}: checksum", case.name);
            let h = acpi::sdt::SdtHeader::parse(&t).unwrap();
            assert_eq!((h.signature, h.length as usize), (*b"APIC", t.len()), "{}", case.name);
            let lines = kernel_lines(&t);
            for want in case.expect {
                assert!(
                    lines.iter().any(|l| l == want),
                    "{}: no {want:?} in {lines:#?}",
                    case.name
                );
            }
            assert!(case.cmdline.contains("acpi_apic_instance=2"));
            assert_eq!(options::validate(case.cmdline), Ok(()));
            // QEMU's own devices are still there after the processors.
            let (m, _) = madt::parse(&t).unwrap();
            assert_eq!(m.io_apics().count(), 1, "{}", case.name);
            assert!(m.pcat_compat() && m.local_apic_address() == 0xfee0_0000);
        }
    }

    #[test]
    fn each_case_has_its_problem() {
        let cpus = |name: &str| {
            let case = MADT_CASES.iter().find(|c| c.name == name).unwrap();
            let (m, errors) = madt::parse(&(case.table)()).unwrap();
            let mut lines = Vec::new();
            let c = madt::possible_cpus(&m, 0, false, 64, &mut |l| lines.push(l.to_string()));
            (c.iter().map(|c| c.apic_id).collect::<Vec<_>>(), errors, lines.len())
        };
        assert_eq!(cpus("more-entries-than-cpus").0, (0..8).collect::<Vec<_>>());
        assert_eq!(cpus("disabled-entries").0, [0, 1]);
        assert_eq!(cpus("duplicate-apic-ids").0, [0, 1, 2, 3]);
        let (ids, errors, lines) = cpus("x2apic-above-255");
        assert_eq!((ids, errors, lines), (vec![0, 1, 2, 3], vec![], 3));
        let (ids, errors, _) = cpus("garbage-entry");
        assert_eq!(ids, [0, 1, 2, 3]);
        assert_eq!(errors, [madt::MadtError::EntryTooSmall { offset: 0x90, kind: 0, len: 0 }]);
        // The fuzz seeds hold the same tables.
        for case in MADT_CASES {
            let seed = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../kernel/fuzz/seeds/madt")
                .join(format!("case-{}", case.name));
            let bytes = std::fs::read(&seed).unwrap_or_default();
            assert_eq!(bytes, crate::fuzz::madt_seed(&(case.table)()), "{}", seed.display());
        }
        let dir = std::env::temp_dir().join(format!("tessera-madt-{}", std::process::id()));
        let path = write(&MADT_CASES[0], &dir).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), (MADT_CASES[0].table)());
        let args = qemu_args(&MADT_CASES[0], &path);
        assert_eq!(&args[..3], ["-smp", "4", "-acpitable"]);
        let _ = std::fs::remove_dir_all(dir);
    }
}

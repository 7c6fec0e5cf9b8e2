//! Hostile MADTs for QEMU's `-acpitable file=T` (issue 16): each case is a
//! whole checksummed table that QEMU appends after its own MADT, so the
//! kernel is told `acpi_apic_instance=2` to use it, as Linux is.
//!
//! Every table keeps what QEMU 7.2's own `pc` MADT has besides its
//! processors (the I/O APIC, the ISA overrides, the LINT1 NMI), so only the
//! processor entries differ from a real boot. The cases are meant for a
//! machine with 4 vCPUs (the multi-CPU profiles) and QEMU 7.2's default
//! TCG CPU (no x2APIC). `expect` holds lines the MADT code prints (the
//! entry lines at `loglevel=8`, problems, and `acpi::possible_cpus`'
//! lines) and the SMP bring-up's verdict.
//!
//! Linux 6.1 on the same tables (DESIGN.md §4c): 8 entries on 4 vCPUs →
//! `smpboot: Allowing 8 CPUs` and `do_boot_cpu failed(-1) to wakeup CPU#4`
//! (..#7) after 10 s each; the zero-length entry makes Linux drop ACPI
//! altogether (`ACPI: Invalid BIOS MADT, disabling ACPI`) where Tessera
//! keeps the entries before it.

use acpi::madt::{self, Entry};

/// One hostile MADT.
pub struct MadtCase {
    /// Short name, used in test names and file names.
    pub name: &'static str,
    /// The kernel command line for the boot.
    pub cmdline: &'static str,
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
        table: more_entries_than_cpus,
        expect: &[
            "ACPI: Shall use APIC/MADT table 2",
            "ACPI: BIOS bug: multiple APIC/MADT found, using 2",
            "ACPI: LAPIC (acpi_id[0x07] lapic_id[0x07] enabled)",
            "ACPI: IOAPIC (id[0x00] address[0xfec00000] gsi_base[0])",
            "ACPI: INT_SRC_OVR (bus 0 bus_irq 0 global_irq 2 dfl dfl)",
            "ACPI: Using ACPI (MADT) for SMP configuration information",
            "smpboot: Allowing 8 CPUs, 0 hotplug CPUs",
            "smpboot: do_boot_cpu failed(-1) to wakeup CPU#4",
            "smpboot: do_boot_cpu failed(-1) to wakeup CPU#7",
            "smp: Brought up 1 node, 4 CPUs",
        ],
    },
    MadtCase {
        name: "disabled-entries",
        cmdline: CMDLINE,
        table: disabled_entries,
        expect: &[
            "ACPI: LAPIC (acpi_id[0x02] lapic_id[0x02] disabled)",
            "ACPI: LAPIC (acpi_id[0x03] lapic_id[0x03] disabled)",
            "smpboot: Allowing 2 CPUs, 0 hotplug CPUs",
            "smp: Brought up 1 node, 2 CPUs",
        ],
    },
    MadtCase {
        name: "duplicate-apic-ids",
        cmdline: CMDLINE,
        table: duplicate_apic_ids,
        expect: &[
            "ACPI: LAPIC (acpi_id[0x02] lapic_id[0x01] enabled)",
            "APIC: duplicate APIC ID 0x1 (acpi_id 0x02) ignored",
            "smpboot: Allowing 4 CPUs, 0 hotplug CPUs",
            "smp: Brought up 1 node, 4 CPUs",
        ],
    },
    MadtCase {
        name: "x2apic-above-255",
        cmdline: CMDLINE,
        table: x2apic_above_255,
        expect: &[
            "ACPI: X2APIC (apic_id[0x100] uid[0x04] enabled)",
            "ACPI: X2APIC (apic_id[0x101] uid[0x05] enabled)",
            "ACPI: x2apic entry ignored (apic_id[0x100]: no x2APIC mode)",
            "ACPI: x2apic entry ignored (apic_id[0x101]: no x2APIC mode)",
            "smpboot: Allowing 4 CPUs, 0 hotplug CPUs",
            "smp: Brought up 1 node, 4 CPUs",
        ],
    },
    MadtCase {
        name: "garbage-entry",
        cmdline: CMDLINE,
        table: garbage_entry,
        expect: &[
            "ACPI: MADT offset 0x90: type 0 length 0 below 2, rest of the table ignored",
            "ACPI: LAPIC_NMI (acpi_id[0xff] dfl dfl lint[0x1])",
            "smpboot: Allowing 4 CPUs, 0 hotplug CPUs",
            "smp: Brought up 1 node, 4 CPUs",
        ],
    },
    // No MADT at all: the third of two, as on Linux (QEMU always gives its
    // own, so "none" is asked for this way). The boot CPU runs alone.
    MadtCase {
        name: "no-madt",
        cmdline: "acpi_apic_instance=3 loglevel=8",
        table: more_entries_than_cpus,
        expect: &["APIC: ACPI MADT or MP tables are not detected", "smp: Brought up 1 node, 1 CPU"],
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    /// What the kernel prints for `table` at `loglevel=8` with two MADTs
    /// and `acpi_apic_instance=2`, booted on APIC ID 0 without x2APIC:
    /// the same calls, in the same order, as `kernel/src/acpi.rs` and
    /// `acpi::possible_cpus` (the SMP bring-up's own lines are checked by
    /// the boots).
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
            let bring_up = |l: &str| l.starts_with("smp") || l.starts_with("APIC: ACPI MADT");
            for want in case.expect.iter().filter(|l| !bring_up(l)) {
                assert!(
                    lines.iter().any(|l| l == want),
                    "{}: no {want:?} in {lines:#?}",
                    case.name
                );
            }
            assert!(case.cmdline.contains("acpi_apic_instance="));
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
        // The fuzz seeds hold the same tables (no-madt reuses one).
        for case in MADT_CASES.iter().filter(|c| c.name != "no-madt") {
            let seed = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../kernel/fuzz/seeds/madt")
                .join(format!("case-{}", case.name));
            let bytes = std::fs::read(&seed).unwrap_or_default();
            assert_eq!(bytes, crate::fuzz::madt_seed(&(case.table)()), "{}", seed.display());
        }
        // Two MADTs and a third asked for: none, as on Linux.
        assert_eq!(madt::select_instance(2, 3, &mut |_| {}), None);
    }
}

//! Hostile MADTs (ACPI `APIC` tables), each handed to QEMU with
//! `-acpitable` on the `smp` test binary's `bios-smp` boots
//! ([`crate::plan::Boots::HostileMadt`], boot `smp@hostile-madt-NAME`).
//!
//! A placeholder: the cases themselves (more entries than CPUs, disabled
//! entries, duplicate APIC IDs, x2APIC IDs above 255, ...) replace this
//! file together with the kernel's MADT parser.

/// One hostile MADT boot.
#[derive(Debug, Clone, Copy)]
pub struct MadtCase {
    /// Names the boot `smp@hostile-madt-NAME` and its table file.
    pub name: &'static str,
    /// Kernel options for the boot, through fw_cfg.
    pub cmdline: &'static str,
    /// The table's bytes, header and checksum included.
    pub table: fn() -> Vec<u8>,
    /// A piece of each line the kernel must print; each is a test.
    pub expect: &'static [&'static str],
}

/// Every hostile MADT boot, in order.
pub const MADT_CASES: &[MadtCase] = &[];

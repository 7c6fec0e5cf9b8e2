//! The firmware memory map in E820 terms, normalized and printed the way
//! Linux does (`arch/x86/kernel/e820.c`).
//!
//! A map is a list of [`Entry`]s. [`normalize`] sorts it, resolves overlaps
//! (the higher type value wins, Linux's rule: reserved beats usable,
//! persistent beats both) and merges adjacent entries of the same type,
//! except persistent (type 12) and soft-reserved entries, which Linux never
//! merges because each is a device of its own.

use alloc::vec::Vec;
use core::fmt;

/// An E820 memory type (the numeric value the BIOS reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct E820Type(pub u32);

impl E820Type {
    pub const RAM: Self = Self(1);
    pub const RESERVED: Self = Self(2);
    pub const ACPI: Self = Self(3);
    pub const NVS: Self = Self(4);
    pub const UNUSABLE: Self = Self(5);
    /// ACPI 6 persistent memory.
    pub const PMEM: Self = Self(7);
    /// Legacy persistent memory (Linux's `memmap=nn!ss` emulation).
    pub const PRAM: Self = Self(12);
    pub const SOFT_RESERVED: Self = Self(0xefff_ffff);

    /// Linux's `e820_nomerge`: each such entry is a distinct device.
    pub fn nomerge(self) -> bool {
        self == Self::PRAM || self == Self::SOFT_RESERVED
    }

    /// Persistent memory of either kind.
    pub fn is_persistent(self) -> bool {
        self == Self::PMEM || self == Self::PRAM
    }
}

impl fmt::Display for E820Type {
    /// Linux's `e820_print_type`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::RAM => write!(f, "usable"),
            Self::RESERVED => write!(f, "reserved"),
            Self::SOFT_RESERVED => write!(f, "soft reserved"),
            Self::ACPI => write!(f, "ACPI data"),
            Self::NVS => write!(f, "ACPI NVS"),
            Self::UNUSABLE => write!(f, "unusable"),
            Self::PMEM | Self::PRAM => write!(f, "persistent (type {})", self.0),
            Self(n) => write!(f, "type {n}"),
        }
    }
}

/// UEFI memory types, as numbered by the UEFI specification.
pub mod efi {
    pub const RESERVED: u32 = 0;
    pub const LOADER_CODE: u32 = 1;
    pub const LOADER_DATA: u32 = 2;
    pub const BOOT_SERVICES_CODE: u32 = 3;
    pub const BOOT_SERVICES_DATA: u32 = 4;
    pub const RUNTIME_SERVICES_CODE: u32 = 5;
    pub const RUNTIME_SERVICES_DATA: u32 = 6;
    pub const CONVENTIONAL: u32 = 7;
    pub const UNUSABLE: u32 = 8;
    pub const ACPI_RECLAIM: u32 = 9;
    pub const ACPI_NVS: u32 = 10;
    pub const MMIO: u32 = 11;
    pub const MMIO_PORT_SPACE: u32 = 12;
    pub const PAL_CODE: u32 = 13;
    pub const PERSISTENT: u32 = 14;
}

/// Converts a UEFI memory type to E820 the way Linux 6.1's EFI stub does
/// (`setup_e820`): conventional, loader and boot-services memory are usable,
/// ACPI reclaim is ACPI data, ACPI NVS stays NVS, persistent is type 7,
/// unusable stays unusable, reserved, runtime services, MMIO and PAL code
/// are reserved, and any other type (unaccepted memory, OEM and OS types)
/// is left out of the map (`None`).
pub fn from_efi(efi_type: u32) -> Option<E820Type> {
    Some(match efi_type {
        efi::LOADER_CODE
        | efi::LOADER_DATA
        | efi::BOOT_SERVICES_CODE
        | efi::BOOT_SERVICES_DATA
        | efi::CONVENTIONAL => E820Type::RAM,
        efi::UNUSABLE => E820Type::UNUSABLE,
        efi::ACPI_RECLAIM => E820Type::ACPI,
        efi::ACPI_NVS => E820Type::NVS,
        efi::PERSISTENT => E820Type::PMEM,
        efi::RESERVED
        | efi::RUNTIME_SERVICES_CODE
        | efi::RUNTIME_SERVICES_DATA
        | efi::MMIO
        | efi::MMIO_PORT_SPACE
        | efi::PAL_CODE => E820Type::RESERVED,
        _ => return None,
    })
}

/// One range of the map: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub start: u64,
    /// Exclusive end.
    pub end: u64,
    pub ty: E820Type,
}

impl Entry {
    pub const fn new(start: u64, end: u64, ty: E820Type) -> Self {
        Self { start, end, ty }
    }

    pub const fn size(&self) -> u64 {
        self.end - self.start
    }
}

/// Linux's range notation: `[mem 0x0000000000100000-0x000000007ffdffff]`,
/// the end inclusive, 16 lowercase hex digits.
pub struct MemRange(pub u64, pub u64);

impl fmt::Display for MemRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[mem {:#018x}-{:#018x}]", self.0, self.1.wrapping_sub(1))
    }
}

/// One printed line of a map: `<who>: [mem ...] <type>`, e.g.
/// `BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable`.
pub struct Line<'a>(pub &'a str, pub &'a Entry);

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} {}", self.0, MemRange(self.1.start, self.1.end), self.1.ty)
    }
}

/// Sorts, resolves overlaps (the highest type value wins) and merges
/// adjacent entries of one type (never [`E820Type::nomerge`] ones), as
/// Linux's `e820__update_table` does. Empty entries are dropped.
pub fn normalize(entries: &[Entry]) -> Vec<Entry> {
    // Change points: every start and end, each visited once in order.
    let mut points: Vec<u64> =
        entries.iter().filter(|e| e.end > e.start).flat_map(|e| [e.start, e.end]).collect();
    points.sort_unstable();
    points.dedup();
    let mut out: Vec<Entry> = Vec::new();
    for w in points.windows(2) {
        let (lo, hi) = (w[0], w[1]);
        let ty = entries.iter().filter(|e| e.start <= lo && hi <= e.end).map(|e| e.ty).max();
        let Some(ty) = ty else { continue };
        match out.last_mut() {
            Some(last) if last.end == lo && last.ty == ty && !ty.nomerge() => last.end = hi,
            _ => out.push(Entry::new(lo, hi, ty)),
        }
    }
    out
}

/// Total bytes of `ty` in a normalized map.
pub fn total(map: &[Entry], ty: E820Type) -> u64 {
    map.iter().filter(|e| e.ty == ty).map(Entry::size).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::ToString;

    const RAM: E820Type = E820Type::RAM;
    const RES: E820Type = E820Type::RESERVED;
    const PRAM: E820Type = E820Type::PRAM;

    fn e(start: u64, end: u64, ty: E820Type) -> Entry {
        Entry::new(start, end, ty)
    }

    #[test]
    fn prints_like_linux() {
        let l = Line("BIOS-e820", &e(0x100000, 0x7ffe0000, RAM)).to_string();
        assert_eq!(l, "BIOS-e820: [mem 0x0000000000100000-0x000000007ffdffff] usable");
        let l = Line("user", &e(0x3a000000, 0x3c000000, PRAM)).to_string();
        assert_eq!(l, "user: [mem 0x000000003a000000-0x000000003bffffff] persistent (type 12)");
        let names: Vec<_> = [1, 2, 3, 4, 5, 7, 12, 20, 0xefff_ffff]
            .into_iter()
            .map(|t| E820Type(t).to_string())
            .collect();
        assert_eq!(
            names,
            [
                "usable",
                "reserved",
                "ACPI data",
                "ACPI NVS",
                "unusable",
                "persistent (type 7)",
                "persistent (type 12)",
                "type 20",
                "soft reserved"
            ]
        );
    }

    #[test]
    fn efi_types_convert_like_the_efi_stub() {
        let table = [
            (0, RES),
            (1, RAM),
            (2, RAM),
            (3, RAM),
            (4, RAM),
            (5, RES),
            (6, RES),
            (7, RAM),
            (8, E820Type::UNUSABLE),
            (9, E820Type::ACPI),
            (10, E820Type::NVS),
            (11, RES),
            (12, RES),
            (13, RES),
            (14, E820Type::PMEM),
        ];
        for (efi, want) in table {
            assert_eq!(from_efi(efi), Some(want), "EFI type {efi}");
        }
        // Unaccepted memory (15, unknown to 6.1), OEM and OS types: skipped.
        for efi in [15, 16, 0x7000_0000, 0x8000_0000, u32::MAX] {
            assert_eq!(from_efi(efi), None, "EFI type {efi:#x}");
        }
    }

    #[test]
    fn table_of_normalizations() {
        let cases: &[(&[Entry], &[Entry])] = &[
            // Unsorted, adjacent same type: merged.
            (&[e(10, 20, RAM), e(0, 10, RAM)], &[e(0, 20, RAM)]),
            // A reserved range punched into RAM splits it.
            (&[e(0, 100, RAM), e(40, 60, RES)], &[e(0, 40, RAM), e(40, 60, RES), e(60, 100, RAM)]),
            // Overlap: the higher type wins on the overlap only.
            (&[e(0, 50, RES), e(30, 80, RAM)], &[e(0, 50, RES), e(50, 80, RAM)]),
            // Gaps stay gaps.
            (&[e(0, 10, RAM), e(20, 30, RAM)], &[e(0, 10, RAM), e(20, 30, RAM)]),
            // Duplicates collapse; empty entries vanish.
            (&[e(5, 9, RAM), e(5, 9, RAM), e(7, 7, RES)], &[e(5, 9, RAM)]),
            // Type 12 next to type 12 keeps two entries.
            (&[e(0, 10, PRAM), e(10, 20, PRAM)], &[e(0, 10, PRAM), e(10, 20, PRAM)]),
            // ... but two abutting type-7 ranges merge, as in Linux.
            (&[e(0, 10, E820Type::PMEM), e(10, 20, E820Type::PMEM)], &[e(0, 20, E820Type::PMEM)]),
            // Nothing in, nothing out.
            (&[], &[]),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input), *want, "input {input:?}");
        }
    }

    /// A small deterministic generator for the property tests.
    use rng::Rng;

    /// The naive model: the winning type of every unit, or none.
    fn model(entries: &[Entry], units: u64) -> Vec<Option<E820Type>> {
        (0..units)
            .map(|u| entries.iter().filter(|e| e.start <= u && u < e.end).map(|e| e.ty).max())
            .collect()
    }

    #[test]
    fn random_maps_normalize_like_the_model() {
        const UNITS: u64 = 64;
        let types = [RAM, RES, E820Type::ACPI, E820Type::NVS, E820Type::PMEM, PRAM];
        let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
        for case in 0..2000 {
            let n = rng.below(8) as usize;
            let input: Vec<Entry> = (0..n)
                .map(|_| {
                    let a = rng.below(UNITS);
                    let b = rng.below(UNITS + 1);
                    e(a.min(b), a.max(b), types[rng.below(types.len() as u64) as usize])
                })
                .collect();
            let out = normalize(&input);
            // Sorted, non-empty, non-overlapping.
            assert!(out.iter().all(|x| x.start < x.end), "case {case}: {out:?}");
            assert!(out.windows(2).all(|w| w[0].end <= w[1].start), "case {case}: {out:?}");
            // Mergeable neighbours are merged.
            assert!(
                out.windows(2)
                    .all(|w| !(w[0].end == w[1].start && w[0].ty == w[1].ty) || w[0].ty.nomerge()),
                "case {case}: {out:?}"
            );
            // Coverage and types kept, unit by unit.
            assert_eq!(model(&out, UNITS), model(&input, UNITS), "case {case}: {input:?}");
            // Idempotent.
            assert_eq!(normalize(&out), out, "case {case}");
        }
    }

    #[test]
    fn totals_count_one_type() {
        let map = normalize(&[e(0, 0x1000, RAM), e(0x2000, 0x5000, RAM), e(0x1000, 0x2000, RES)]);
        assert_eq!(total(&map, RAM), 0x4000);
        assert_eq!(
            format!("{}", MemRange(0, 0x1000)),
            "[mem 0x0000000000000000-0x0000000000000fff]"
        );
    }
}

//! Hostile firmware and options for QEMU: NFITs handed in with
//! `-acpitable` that get one thing wrong each, and memory options that make
//! no sense. Every case must boot to the end, say what was wrong in one
//! line, and leave a model that passes the normal checks.

use acpi::nfit::{Guid, build_nfit};

/// The default emulated range of a 2 GiB QEMU machine (RAM, so a firmware
/// NFIT that describes it has real memory behind it).
const BASE: u64 = 0x7200_0000;
const LEN: u64 = 32 << 20;
/// Offset of the first structure in an NFIT.
const S: usize = 40;

/// One hostile case: a name, the NFIT (if any), kernel options, and a piece
/// of each line the kernel must print about it.
pub struct Case {
    pub name: &'static str,
    pub nfit: Option<fn() -> Vec<u8>>,
    pub cmdline: &'static str,
    pub expect: &'static [&'static str],
}

fn nfit(ranges: &[(u64, u64)]) -> Vec<u8> {
    build_nfit(ranges, *b"BADFW ", *b"MALFORM ", 1, 1)
}

/// Sets a little-endian field of the structure starting at `at`.
fn put(t: &mut [u8], at: usize, bytes: &[u8]) {
    t[at..at + bytes.len()].copy_from_slice(bytes);
}

/// A structure appended to a good table.
fn with_structure(body: &[u8]) -> Vec<u8> {
    let mut t = nfit(&[(BASE, LEN)]);
    t.extend_from_slice(body);
    t
}

/// A flush-hint structure: handle 1, `count` declared, `addrs` present.
fn flush_hint(count: u16, addrs: &[u64]) -> Vec<u8> {
    let mut s = vec![0u8; 16];
    put(&mut s, 0, &6u16.to_le_bytes());
    put(&mut s, 2, &((16 + 8 * addrs.len()) as u16).to_le_bytes());
    put(&mut s, 4, &1u32.to_le_bytes());
    put(&mut s, 8, &count.to_le_bytes());
    addrs.iter().for_each(|a| s.extend_from_slice(&a.to_le_bytes()));
    s
}

pub const CASES: &[Case] = &[
    Case {
        name: "spa-length-40",
        nfit: Some(|| {
            let mut t = nfit(&[(BASE, LEN)]);
            put(&mut t, S + 2, &40u16.to_le_bytes());
            t
        }),
        cmdline: "",
        expect: &["type 0 length 40, expected 56 or 64, skipped"],
    },
    Case {
        name: "truncated",
        // Cut inside the structure.
        nfit: Some(|| nfit(&[(BASE, LEN)])[..S + 30].to_vec()),
        cmdline: "",
        expect: &["structure needs 56 bytes, 30 left"],
    },
    Case {
        name: "struct-length-0",
        nfit: Some(|| with_structure(&[7, 0, 0, 0, 0, 0, 0, 0])),
        cmdline: "",
        expect: &["length 0 below 4"],
    },
    Case {
        name: "overlaps-ram",
        nfit: Some(|| nfit(&[(0x100_0000, LEN)])),
        cmdline: "",
        expect: &["overlaps System RAM"],
    },
    Case {
        name: "overlaps-each-other",
        nfit: Some(|| nfit(&[(BASE, LEN), (BASE + (16 << 20), 16 << 20)])),
        cmdline: "",
        expect: &["overlaps spa 1, refused"],
    },
    Case {
        name: "beyond-limit",
        nfit: Some(|| nfit(&[(1 << 47, LEN)])),
        cmdline: "",
        expect: &["beyond 46 physical address bits"],
    },
    Case {
        name: "misaligned",
        nfit: Some(|| nfit(&[(BASE + 0x1000, LEN)])),
        cmdline: "",
        expect: &["not 2 MiB aligned"],
    },
    Case {
        name: "length-wraps",
        nfit: Some(|| nfit(&[(0xffff_ffff_ffe0_0000, 4 << 20)])),
        cmdline: "",
        expect: &["wraps past 2^64"],
    },
    Case {
        name: "zero-length",
        nfit: Some(|| nfit(&[(BASE, 0)])),
        cmdline: "",
        expect: &["has length 0, refused"],
    },
    Case {
        name: "index-0",
        nfit: Some(|| {
            let mut t = nfit(&[(BASE, LEN)]);
            put(&mut t, S + 4, &0u16.to_le_bytes());
            t
        }),
        cmdline: "",
        expect: &["spa index 0 is reserved"],
    },
    Case {
        name: "duplicate-index",
        nfit: Some(|| {
            let mut t = nfit(&[(BASE, 16 << 20), (BASE + (16 << 20), 16 << 20)]);
            put(&mut t, S + 56 + 4, &1u16.to_le_bytes());
            t
        }),
        cmdline: "",
        expect: &["spa index 1 already used"],
    },
    Case {
        name: "unknown-guid",
        nfit: Some(|| {
            let mut t = nfit(&[(BASE, LEN)]);
            let g = Guid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
            put(&mut t, S + 16, &g.0);
            t
        }),
        cmdline: "",
        // Not persistent memory, so the emulated range inside it is refused.
        expect: &["01234567-89AB-CDEF-0123-456789ABCDEF", "overlaps spa 1, refused"],
    },
    Case {
        name: "huge-count",
        nfit: Some(|| with_structure(&flush_hint(0xffff, &[0x1000]))),
        cmdline: "",
        expect: &["type 6 length 24, expected 524296, skipped"],
    },
    Case {
        name: "flush-hints-anywhere",
        nfit: Some(|| with_structure(&flush_hint(3, &[0, 0xffff_ffff_ffff_f000, 0x100_0000]))),
        cmdline: "",
        expect: &["flush-hint handle 0x1: 3 addresses"],
    },
    Case {
        name: "memmap-overlapping",
        nfit: None,
        cmdline: "memmap=64M!0x40000000 memmap=32M!0x42000000",
        // As in Linux: one entry per piece between change points.
        expect: &[
            "user: [mem 0x0000000040000000-0x0000000041ffffff] persistent (type 12)",
            "user: [mem 0x0000000042000000-0x0000000043ffffff] persistent (type 12)",
        ],
    },
    Case {
        name: "memmap-outside-ram",
        nfit: None,
        cmdline: "memmap=32M!0x200000000",
        // As in Linux, the range is claimed though nothing is there; the
        // driver adds it raw and never writes it.
        expect: &[
            "user: [mem 0x0000000200000000-0x0000000201ffffff] persistent (type 12)",
            "EPERM: region0: [mem 0x0000000200000000-0x0000000201ffffff] is not RAM or persistent memory in the firmware map (or holds the kernel's boot memory): raw only, nothing is written there",
        ],
    },
    Case {
        name: "memmap-absurd",
        nfit: None,
        cmdline: "memmap=8E!0x1000 memmap=16E!0",
        expect: &[
            "the memory options leave 4 KiB of RAM, below the 64 MiB the kernel needs; none of them applied",
            "cmdline: option 'memmap=16E!0'",
        ],
    },
    Case {
        name: "mem-absurd",
        nfit: None,
        cmdline: "mem=4K mem=0x7fffffffffffffff",
        expect: &["mem=0x1000: would leave 4 KiB of RAM, below the 64 MiB the kernel needs"],
    },
];

impl Case {
    /// The table as handed to QEMU: the header's length is the file's (as
    /// QEMU sets it) and the checksum is right, so only the named problem
    /// is wrong.
    pub fn table(&self) -> Option<Vec<u8>> {
        let mut t = (self.nfit?)();
        let len = t.len() as u32;
        put(&mut t, 4, &len.to_le_bytes());
        t[9] = 0;
        t[9] = 0u8.wrapping_sub(t.iter().fold(0u8, |a, &b| a.wrapping_add(b)));
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each table parses to exactly the problem its case names (so the
    /// QEMU test really exercises that path).
    #[test]
    fn each_table_has_its_problem() {
        let ram = [(0, 0x7200_0000), (0x7400_0000, 0x8000_0000)];
        for c in CASES {
            let Some(t) = c.table() else { continue };
            assert!(acpi::sdt::checksum_ok(&t), "{}", c.name);
            let mut lines: Vec<String> = Vec::new();
            match acpi::nfit::parse(&t) {
                Ok((n, errs)) => {
                    lines.extend(errs.iter().map(|e| e.to_string()));
                    lines.extend(n.structures.iter().map(|s| s.to_string()));
                    let (_, refused) = acpi::nfit::validate(n.spa_ranges(), &ram, 46);
                    lines.extend(refused.iter().map(|e| e.to_string()));
                }
                Err(e) => lines.push(e.to_string()),
            }
            // The table's own problem (later lines, like a refused emulated
            // range, need the whole kernel and are checked in QEMU).
            let want = c.expect[0];
            assert!(lines.iter().any(|l| l.contains(want)), "{}: {lines:#?}", c.name);
        }
    }
}

//! The memory-map normalizer fed arbitrary region lists, then the user map
//! (`memmap=`, `mem=`) and Linux's BIOS-range trim on the result: never a
//! panic, and every map that comes out is sorted, disjoint, merged and keeps
//! each byte's winning type.
//!
//! Input: 17-byte records (start u64, size u64, type selector u8); a
//! trailing partial record becomes options.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mm::e820::{self, E820Type, Entry};
use mm::usermap;
use options::{Memmap, MemmapKind, Opt};

const TYPES: [E820Type; 8] = [
    E820Type::RAM,
    E820Type::RESERVED,
    E820Type::ACPI,
    E820Type::NVS,
    E820Type::UNUSABLE,
    E820Type::PMEM,
    E820Type::PRAM,
    E820Type::SOFT_RESERVED,
];

fn check_normalized(map: &[Entry]) {
    assert!(map.iter().all(|e| e.start < e.end), "{map:?}");
    for w in map.windows(2) {
        assert!(w[0].end <= w[1].start, "overlap: {map:?}");
        let mergeable = w[0].end == w[1].start && w[0].ty == w[1].ty && !w[0].ty.nomerge();
        assert!(!mergeable, "unmerged neighbours: {map:?}");
    }
}

/// The type the input gives address `a` (the highest type covering it).
fn winner(entries: &[Entry], a: u64) -> Option<E820Type> {
    entries.iter().filter(|e| e.start <= a && a < e.end).map(|e| e.ty).max()
}

fuzz_target!(|data: &[u8]| {
    let (records, tail) = data.as_chunks::<17>();
    let entries: Vec<Entry> = records
        .iter()
        .map(|r| {
            let start = u64::from_le_bytes(r[0..8].try_into().unwrap());
            let size = u64::from_le_bytes(r[8..16].try_into().unwrap());
            let ty = TYPES[usize::from(r[16]) % TYPES.len()];
            Entry::new(start, start.saturating_add(size), ty)
        })
        .take(64)
        .collect();
    let map = e820::normalize(&entries);
    check_normalized(&map);
    // Every change point keeps the input's winning type.
    for p in entries.iter().flat_map(|e| [e.start, e.end.saturating_sub(1)]) {
        let got = map.iter().find(|e| e.start <= p && p < e.end).map(|e| e.ty);
        assert_eq!(got, winner(&entries, p), "at {p:#x}");
    }
    assert_eq!(e820::normalize(&map), map, "not idempotent");
    // Options from the tail: every kind of memmap= piece and mem=.
    let kinds = [MemmapKind::Ram, MemmapKind::Acpi, MemmapKind::Reserved, MemmapKind::Persistent];
    let opts: Vec<Opt> = tail
        .chunks(2)
        .map(|c| {
            let v = u64::from(c[0]) << 20;
            let Some(&s) = c.get(1) else { return Opt::NoPmem };
            let size = u64::from(s | 1) << 20;
            match s & 7 {
                0 => Opt::Mem(v.max(1)),
                1 => Opt::Memmap(Memmap::Limit(v.max(1))),
                2 => Opt::Memmap(Memmap::Exactmap),
                7 => Opt::Memmap(Memmap::Update {
                    size,
                    start: v,
                    from: u32::from(s >> 3 & 3),
                    to: [0, 1, 2, 12][usize::from(s >> 5 & 3)],
                }),
                k => Opt::Memmap(Memmap::Add { size, start: v, kind: kinds[usize::from(k - 3)] }),
            }
        })
        .collect();
    let user = usermap::apply(&map, opts, |e| {
        let _ = e.to_string();
    });
    let (trimmed, _) = usermap::trim_bios_range(&user.map);
    // Persistent ranges keep their own entries, so only order and overlap hold.
    for m in [&user.map, &trimmed] {
        assert!(m.iter().all(|e| e.start < e.end), "{m:?}");
        assert!(m.windows(2).all(|w| w[0].end <= w[1].start), "{m:?}");
    }
    let _ = usermap::default_pmem_range(&map, &[]);
});

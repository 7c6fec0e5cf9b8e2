//! The NFIT parser, validation and synthesis on arbitrary bytes: never a
//! panic, and what validation keeps is really safe to use.
#![no_main]

use acpi::nfit::{self, PMEM_ALIGN};
use libfuzzer_sys::fuzz_target;

/// System RAM as QEMU's 2 GiB machine has it.
const RAM: [(u64, u64); 2] = [(0, 0xa0000), (0x10_0000, 0x8000_0000)];

fuzz_target!(|data: &[u8]| {
    let Ok((table, problems)) = nfit::parse(data) else { return };
    for s in &table.structures {
        let _ = s.to_string();
    }
    for p in &problems {
        let _ = p.to_string();
    }
    let (kept, refused) = nfit::validate(table.spa_ranges(), &RAM, 46);
    for r in &refused {
        let _ = r.to_string();
    }
    let pmem: Vec<(u64, u64)> =
        kept.iter().filter(|s| s.is_pmem()).map(|s| (s.base, s.length)).collect();
    for (i, &(base, len)) in pmem.iter().enumerate() {
        let end = base.checked_add(len).expect("kept ranges do not overflow");
        assert!(len > 0 && base % PMEM_ALIGN == 0 && len % PMEM_ALIGN == 0);
        assert!(end <= 1 << 46, "{base:#x}+{len:#x} beyond 46 bits");
        assert!(RAM.iter().all(|&(s, e)| end <= s || e <= base), "{base:#x} overlaps RAM");
        for &(b2, l2) in &pmem[..i] {
            assert!(end <= b2 || b2 + l2 <= base, "{base:#x} overlaps {b2:#x}");
        }
    }
    // What Tessera would synthesize for the kept ranges parses back to them.
    let own = nfit::build_nfit(&pmem, *b"TESSRA", *b"TESSERA ", 1, 1);
    let (back, errs) = nfit::parse(&own).expect("a built NFIT parses");
    assert!(errs.is_empty(), "{errs:?}");
    let again: Vec<(u64, u64)> = back.spa_ranges().map(|s| (s.base, s.length)).collect();
    assert_eq!(again, pmem);
    // Combining the table with itself keeps the first copy only.
    let (both, _) = nfit::combine(&[data, data]);
    assert_eq!(both.spa_ranges().count(), table.spa_ranges().count());
});

//! The MADT parser, its lines, instance selection and the possible-CPU
//! policy on arbitrary bytes: never a panic, and the CPU list keeps its
//! promises (boot CPU first, no repeated APIC ID, at most the limit).
#![no_main]

use acpi::madt;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the policy's inputs; the rest is the table.
    let Some((&knobs, table)) = data.split_first() else { return };
    let _ = madt::select_instance(usize::from(knobs & 3), u32::from(knobs >> 6), &mut |l| {
        let _ = l.to_string();
    });
    let Ok((m, problems)) = madt::parse(table) else { return };
    for e in &m.entries {
        let _ = e.to_string();
        let _ = e.reserved_flags();
    }
    for p in &problems {
        let _ = p.to_string();
    }
    let _ = m.local_apic_address();
    let boot = u32::from(knobs & 7);
    let max = usize::from((knobs >> 3) & 7);
    let x2apic = knobs & 0x40 != 0;
    let cpus = madt::possible_cpus(&m, boot, x2apic, max, &mut |l| {
        let _ = l.to_string();
    });
    assert_eq!(cpus[0].apic_id, boot, "boot CPU first");
    assert!(cpus.len() <= max.max(1), "{} CPUs over the limit {max}", cpus.len());
    for (i, c) in cpus.iter().enumerate() {
        assert!(cpus[..i].iter().all(|o| o.apic_id != c.apic_id), "APIC ID {:#x} twice", c.apic_id);
        assert!(c.apic_id < madt::MAX_LOCAL_APIC);
        assert!(x2apic || c.apic_id < 0xff || c.apic_id == boot, "x2APIC ID without x2APIC mode");
    }
    // What the builder makes of the parsed entries parses back to them.
    let raw: Vec<Vec<u8>> = m.entries.iter().map(|e| e.to_bytes()).collect();
    let (back, errs) = madt::parse(&madt::build(&raw)).expect("a built MADT parses");
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(back.entries, m.entries);
});

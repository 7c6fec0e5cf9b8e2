//! Booted by the harness with `-m 2G` and
//! `memmap=32M!0x3a000000 memmap=32M!0x3c000000`: two persistent ranges in
//! one 128 MiB section (section 7), with System RAM on both sides.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

extern crate alloc;

use alloc::string::ToString;
use kernel::boot;
use kernel::mm::firmware::maps;
use mm::e820::{E820Type, Entry, normalize, total};

kernel::test_binary_entry!();

const M: u64 = 1 << 20;

#[test_case]
fn the_options_reached_the_kernel() {
    assert_eq!(boot::cmdline(), "memmap=32M!0x3a000000 memmap=32M!0x3c000000");
}

#[test_case]
fn firmware_map_is_normalized() {
    let bios = &maps().expect("built at boot").bios;
    // Exactly the table Linux 6.1 prints on this machine (QEMU pc, -m 2G,
    // SeaBIOS or OVMF; OVMF's depends on the CPU count), from the
    // bootloader's unsorted, unmerged regions.
    let lines: alloc::vec::Vec<_> =
        bios.iter().map(|e| mm::e820::Line("BIOS-e820", e).to_string()).collect();
    let uefi = maps().unwrap().firmware == kernel::mm::firmware::Firmware::Uefi;
    let want: &[&str] = match (uefi, madt_cpus()) {
        (false, _) => &SEABIOS_2G,
        (true, 1) => &OVMF_2G,
        (true, 4) => &OVMF_2G_4_CPUS,
        (true, n) => panic!("no OVMF table for {n} CPUs"),
    };
    assert_eq!(lines, want);
    // Sorted, disjoint, merged: normalizing again changes nothing.
    assert_eq!(&normalize(bios), bios);
}

/// Linux 6.1's `BIOS-e820:` lines on QEMU pc -m 2G under SeaBIOS.
const SEABIOS_2G: [&str; 7] = [
    "BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable",
    "BIOS-e820: [mem 0x000000000009fc00-0x000000000009ffff] reserved",
    "BIOS-e820: [mem 0x00000000000f0000-0x00000000000fffff] reserved",
    "BIOS-e820: [mem 0x0000000000100000-0x000000007ffdffff] usable",
    "BIOS-e820: [mem 0x000000007ffe0000-0x000000007fffffff] reserved",
    "BIOS-e820: [mem 0x00000000fffc0000-0x00000000ffffffff] reserved",
    "BIOS-e820: [mem 0x000000fd00000000-0x000000ffffffffff] reserved",
];

/// Linux 6.1's `BIOS-e820:` lines (its EFI stub's conversion) on QEMU pc
/// -m 2G under OVMF 2022.11: runtime ranges reserved, boot-services and
/// loader memory usable, unknown types left out.
const OVMF_2G: [&str; 15] = [
    "BIOS-e820: [mem 0x0000000000000000-0x000000000009ffff] usable",
    "BIOS-e820: [mem 0x0000000000100000-0x0000000000805fff] usable",
    "BIOS-e820: [mem 0x0000000000806000-0x0000000000807fff] ACPI NVS",
    "BIOS-e820: [mem 0x0000000000808000-0x000000000080ffff] usable",
    "BIOS-e820: [mem 0x0000000000810000-0x00000000008fffff] ACPI NVS",
    "BIOS-e820: [mem 0x0000000000900000-0x000000007ea9ffff] usable",
    "BIOS-e820: [mem 0x000000007eaa0000-0x000000007eba1fff] reserved",
    "BIOS-e820: [mem 0x000000007eba2000-0x000000007f4ebfff] usable",
    "BIOS-e820: [mem 0x000000007f4ec000-0x000000007f76bfff] reserved",
    "BIOS-e820: [mem 0x000000007f76c000-0x000000007f77dfff] ACPI data",
    "BIOS-e820: [mem 0x000000007f77e000-0x000000007f7fdfff] ACPI NVS",
    "BIOS-e820: [mem 0x000000007f7fe000-0x000000007fef3fff] usable",
    "BIOS-e820: [mem 0x000000007fef4000-0x000000007ff77fff] reserved",
    "BIOS-e820: [mem 0x000000007ff78000-0x000000007fffffff] ACPI NVS",
    "BIOS-e820: [mem 0x00000000ffc00000-0x00000000ffffffff] reserved",
];

/// Linux 6.1's lines on the same machine with `-smp 4`: OVMF reserves
/// 88 KiB more below its runtime data and 96 KiB more at the top of RAM.
const OVMF_2G_4_CPUS: [&str; 15] = [
    "BIOS-e820: [mem 0x0000000000000000-0x000000000009ffff] usable",
    "BIOS-e820: [mem 0x0000000000100000-0x0000000000805fff] usable",
    "BIOS-e820: [mem 0x0000000000806000-0x0000000000807fff] ACPI NVS",
    "BIOS-e820: [mem 0x0000000000808000-0x000000000080ffff] usable",
    "BIOS-e820: [mem 0x0000000000810000-0x00000000008fffff] ACPI NVS",
    "BIOS-e820: [mem 0x0000000000900000-0x000000007ea89fff] usable",
    "BIOS-e820: [mem 0x000000007ea8a000-0x000000007eb8bfff] reserved",
    "BIOS-e820: [mem 0x000000007eb8c000-0x000000007f4ebfff] usable",
    "BIOS-e820: [mem 0x000000007f4ec000-0x000000007f76bfff] reserved",
    "BIOS-e820: [mem 0x000000007f76c000-0x000000007f77dfff] ACPI data",
    "BIOS-e820: [mem 0x000000007f77e000-0x000000007f7fdfff] ACPI NVS",
    "BIOS-e820: [mem 0x000000007f7fe000-0x000000007fedbfff] usable",
    "BIOS-e820: [mem 0x000000007fedc000-0x000000007ff5ffff] reserved",
    "BIOS-e820: [mem 0x000000007ff60000-0x000000007fffffff] ACPI NVS",
    "BIOS-e820: [mem 0x00000000ffc00000-0x00000000ffffffff] reserved",
];

/// The enabled processor entries of the firmware's first MADT (QEMU's
/// own): the machine's CPU count, which changes OVMF's map.
fn madt_cpus() -> usize {
    let t = kernel::acpi::get().and_then(|a| a.tables.as_ref()).expect("ACPI tables");
    let (m, _) = acpi::madt::parse(&t.find(*b"APIC").expect("a MADT").bytes).expect("parses");
    m.entries
        .iter()
        .filter(|e| match e {
            acpi::madt::Entry::LocalApic { flags, .. } => flags & acpi::madt::ENABLED != 0,
            _ => false,
        })
        .count()
}

#[test_case]
fn both_ranges_keep_their_own_entries_with_ram_around() {
    let m = maps().unwrap();
    assert!(m.user.userdef);
    let user = &m.user.map;
    let a = Entry::new(0x3a00_0000, 0x3c00_0000, E820Type::PRAM);
    let b = Entry::new(0x3c00_0000, 0x3e00_0000, E820Type::PRAM);
    let i = user.iter().position(|e| *e == a).expect("first range");
    assert_eq!(user[i + 1], b);
    assert_eq!(user[i - 1].ty, E820Type::RAM);
    assert_eq!(user[i - 1].end, a.start);
    assert_eq!(user[i + 2].ty, E820Type::RAM);
    assert_eq!(user[i + 2].start, b.end);
}

#[test_case]
fn ram_lost_is_exactly_the_persistent_ranges() {
    let m = maps().unwrap();
    let lost = total(&m.bios, E820Type::RAM) - total(&m.user.map, E820Type::RAM);
    assert_eq!(lost, 64 * M);
    assert_eq!(total(&m.user.map, E820Type::PRAM), 64 * M);
}

#[test_case]
fn memblock_has_no_persistent_memory() {
    let mb = kernel::mm::memblock::MEMBLOCK.lock();
    assert!(!mb.memory.overlaps(0x3a00_0000, 64 * M));
    assert!(mb.memory.overlaps(0x3a00_0000 - 4096, 4096));
    assert!(mb.memory.overlaps(0x3e00_0000, 4096));
}

#[test_case]
fn section_7_holds_ram_and_both_persistent_ranges_once_added() {
    // At boot section 7 is RAM around a 64 MiB hole (0xffff00000000ffff);
    // the driver then hot-adds both ranges into ZONE_DEVICE.
    let s = kernel::mm::sparse::SPARSE.lock();
    let line = s.section_line(7).to_string();
    assert_eq!(
        line,
        "section 7: flags=present|has_mem_map|online|early|zone_device subsection_map=0xffffffffffffffff"
    );
}

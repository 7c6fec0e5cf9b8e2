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
use kernel::init;
use kernel::mm::firmware::maps;
use mm::e820::{E820Type, Entry, normalize, total};

kernel::test_binary_entry!();

const M: u64 = 1 << 20;

#[test_case]
fn the_options_reached_the_kernel() {
    assert_eq!(init::cmdline(), "memmap=32M!0x3a000000 memmap=32M!0x3c000000");
}

#[test_case]
fn firmware_map_is_normalized() {
    let bios = &maps().expect("built at boot").bios;
    assert_eq!(&normalize(bios), bios);
    assert!(bios.windows(2).all(|w| w[0].end <= w[1].start));
    // About 2 GiB of usable RAM, all of it below 4 GiB on this machine.
    let ram = total(bios, E820Type::RAM);
    assert!((1900 * M..2048 * M).contains(&ram), "{ram:#x}");
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
    let line = mm::sparse::SectionLine(7, s.section(7).expect("present")).to_string();
    assert_eq!(
        line,
        "section 7: flags=present|has_mem_map|online|early|zone_device subsection_map=0xffffffffffffffff"
    );
}

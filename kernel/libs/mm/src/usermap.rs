//! The user-defined memory map: `memmap=` and `mem=` applied to the
//! firmware map with Linux's grammar and semantics
//! (arch/x86/kernel/e820.c: `parse_memmap_one`, `parse_memopt`,
//! `e820__range_add/remove/update`, `e820__finish_early_params`).
//!
//! As in Linux the options edit a raw table in command-line order, and the
//! table is sanitized ([`normalize`]) once at the end, so the result is
//! Linux's entry for entry: a `memmap=nn!ss` claims its range whatever was
//! there (RAM, a firmware range or nothing), overlapping persistent ranges
//! stay separate entries, and `mem=` removes only RAM.

use alloc::vec::Vec;
use core::fmt;
use options::{Memmap, Opt};

use crate::addr::PhysRange;
use crate::e820::{E820Type, Entry, normalize, total};

/// Why a memory option was ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserMapError {
    /// A `mem=` limit (or bare `memmap=nn`) that would leave less than
    /// [`MIN_MEM`] of RAM.
    MemTooSmall { limit: u64, left: u64 },
    /// The options together (e.g. `exactmap`) leave less than [`MIN_MEM`]
    /// of RAM: none of them is applied.
    TooLittleRam { left: u64 },
}

/// The least System RAM a `mem=` limit may leave: the kernel's boot
/// structures (memmap, usage maps, heap) need room.
pub const MIN_MEM: u64 = 64 << 20;

impl fmt::Display for UserMapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MemTooSmall { limit, left } => write!(
                f,
                "mem={limit:#x}: would leave {} KiB of RAM, below the {} MiB the kernel needs",
                left >> 10,
                MIN_MEM >> 20
            ),
            Self::TooLittleRam { left } => write!(
                f,
                "the memory options leave {} KiB of RAM, below the {} MiB the kernel needs; \
                 none of them applied",
                left >> 10,
                MIN_MEM >> 20
            ),
        }
    }
}

/// Whether `[start, end)` lies entirely in usable RAM of a normalized map.
pub fn is_ram(map: &[Entry], start: u64, end: u64) -> bool {
    let mut at = start;
    for e in map.iter().filter(|e| e.ty == E820Type::RAM) {
        if e.end <= at {
            continue;
        }
        if e.start > at {
            return false;
        }
        at = e.end;
        if at >= end {
            return true;
        }
    }
    at >= end
}

/// Whether the driver may write `[start, end)`: every byte is RAM or
/// persistent memory in the firmware's map (`firmware`, normalized), and
/// none of it holds one of the boot loader's pieces (`in_use`: the kernel,
/// its page tables, stack, boot info). Linux's `memmap=nn!ss` claims any
/// range (firmware tables, a hole, its own image); the PMEM driver then
/// keeps such a range raw and writes nothing there.
pub fn is_backed(firmware: &[Entry], in_use: &[PhysRange], range: PhysRange) -> bool {
    let PhysRange { start, end } = range;
    let mut at = start;
    for e in firmware.iter().filter(|e| e.end > start && e.start < end) {
        if e.start > at || !(e.ty == E820Type::RAM || e.ty.is_persistent()) {
            return false;
        }
        at = e.end;
    }
    at >= end && !in_use.iter().any(|u| u.overlaps(&range))
}

/// Removes the parts of `[start, end)` whose type is `only` (Linux's
/// `e820__range_remove` with a type check).
pub fn remove_range(map: &[Entry], start: u64, end: u64, only: E820Type) -> Vec<Entry> {
    let mut out = Vec::new();
    for e in map {
        if e.ty != only || e.end <= start || e.start >= end {
            out.push(*e);
            continue;
        }
        if e.start < start {
            out.push(Entry::new(e.start, start, e.ty));
        }
        if e.end > end {
            out.push(Entry::new(end, e.end, e.ty));
        }
    }
    out
}

/// Start and end of the legacy PC BIOS area (640 KiB - 1 MiB).
pub const BIOS_BEGIN: u64 = 0xa0000;
pub const BIOS_END: u64 = 0x100000;
use crate::page::PAGE_SIZE;

/// A change to the table, for Linux's debug lines (`trim_bios_range` and
/// the memory options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trim {
    /// `e820: update [mem 0x00000000-0x00000fff] usable ==> reserved`
    Update { start: u64, end: u64, from: E820Type, to: E820Type },
    /// `e820: remove [mem 0x000a0000-0x000fffff] usable`
    Remove { start: u64, end: u64, ty: E820Type },
    /// `e820: remove [mem 0x30000000-0x301fffff] ` (any type)
    RemoveAll { start: u64, end: u64 },
}

impl fmt::Display for Trim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Update { start, end, from, to } => {
                write!(f, "e820: update [mem {start:#010x}-{:#010x}] {from} ==> {to}", end - 1)
            }
            Self::Remove { start, end, ty } => {
                write!(f, "e820: remove [mem {start:#010x}-{:#010x}] {ty}", end - 1)
            }
            Self::RemoveAll { start, end } => {
                write!(f, "e820: remove [mem {start:#010x}-{:#010x}] ", end - 1)
            }
        }
    }
}

/// Linux's `trim_bios_range`: the first page is firmware's, not RAM
/// (usable ==> reserved), and RAM claimed in the BIOS area is removed.
/// Returns the new map and what changed (Linux prints both lines at debug
/// level whether or not anything matched).
pub fn trim_bios_range(map: &[Entry]) -> (Vec<Entry>, [Trim; 2]) {
    let mut out = remove_range(map, 0, PAGE_SIZE, E820Type::RAM);
    // Only the RAM parts of the first page change type.
    out.extend(
        map.iter()
            .filter(|e| e.ty == E820Type::RAM && e.start < PAGE_SIZE)
            .map(|e| Entry::new(e.start, e.end.min(PAGE_SIZE), E820Type::RESERVED)),
    );
    let out = remove_range(&normalize(&out), BIOS_BEGIN, BIOS_END, E820Type::RAM);
    let trims = [
        Trim::Update { start: 0, end: PAGE_SIZE, from: E820Type::RAM, to: E820Type::RESERVED },
        Trim::Remove { start: BIOS_BEGIN, end: BIOS_END, ty: E820Type::RAM },
    ];
    (normalize(&out), trims)
}

/// The result of applying the memory options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserMap {
    pub map: Vec<Entry>,
    /// A memory option was accepted: Linux then prints the
    /// `user-defined physical RAM map:` (its `userdef`).
    pub userdef: bool,
    /// Linux's `e820: remove`/`e820: update` debug lines, in order.
    pub changes: Vec<Trim>,
}

/// Linux's `e820__range_remove` on a raw table: the parts of entries in
/// `[start, end)` (of type `only`, or of any type) go.
fn range_remove(table: &mut Vec<Entry>, start: u64, end: u64, only: Option<E820Type>) {
    let mut out = Vec::with_capacity(table.len() + 1);
    for e in table.drain(..) {
        if only.is_some_and(|t| t != e.ty) || e.end <= start || e.start >= end {
            out.push(e);
            continue;
        }
        if e.start < start {
            out.push(Entry::new(e.start, start, e.ty));
        }
        if e.end > end {
            out.push(Entry::new(end, e.end, e.ty));
        }
    }
    *table = out;
}

/// Linux's `__e820__range_update`: the parts of `from` entries in
/// `[start, end)` become `to`.
fn range_update(table: &mut Vec<Entry>, start: u64, end: u64, from: E820Type, to: E820Type) {
    let mut out = Vec::with_capacity(table.len() + 2);
    for e in table.drain(..) {
        if e.ty != from || e.end <= start || e.start >= end {
            out.push(e);
            continue;
        }
        let (lo, hi) = (e.start.max(start), e.end.min(end));
        out.push(Entry::new(lo, hi, to));
        if e.start < lo {
            out.push(Entry::new(e.start, lo, e.ty));
        }
        if e.end > hi {
            out.push(Entry::new(hi, e.end, e.ty));
        }
    }
    *table = out;
}

/// `[start, start + size)` clamped to the address space, as Linux clamps
/// `size` to `ULLONG_MAX - start`.
fn span(start: u64, size: u64) -> (u64, u64) {
    (start, start.saturating_add(size))
}

/// Applies every `memmap=` piece and `mem=` option, in command-line order,
/// to a normalized firmware map, as Linux's early parameters do, then
/// sanitizes the table once. Refused options are passed to `report`.
///
/// Two refusals are Tessera's own (Linux boots into a panic instead): a
/// `mem=` (or bare `memmap=nn`) that would leave less than [`MIN_MEM`] of
/// RAM is skipped, and options that together leave less than that (e.g.
/// `exactmap` with too little `@`) are all dropped.
pub fn apply(
    firmware: &[Entry],
    opts: impl IntoIterator<Item = Opt>,
    mut report: impl FnMut(UserMapError),
) -> UserMap {
    let mut table: Vec<Entry> = firmware.to_vec();
    let mut userdef = false;
    let mut changes = Vec::new();
    for opt in opts {
        let limit = match opt {
            Opt::Mem(limit) | Opt::Memmap(Memmap::Limit(limit)) => limit,
            Opt::Memmap(Memmap::Exactmap) => {
                table.clear();
                userdef = true;
                continue;
            }
            Opt::Memmap(Memmap::Add { size, start, kind }) => {
                let (start, end) = span(start, size);
                table.push(Entry::new(start, end, E820Type(kind.e820_type())));
                userdef = true;
                continue;
            }
            Opt::Memmap(Memmap::Update { size, start, from, to }) => {
                let (start, end) = span(start, size);
                let (from, to) = (E820Type(from), E820Type(to));
                match (from.0, to.0) {
                    (0, 0) => {
                        changes.push(Trim::RemoveAll { start, end });
                        range_remove(&mut table, start, end, None);
                    }
                    (0, _) => table.push(Entry::new(start, end, to)),
                    (_, 0) => {
                        changes.push(Trim::Remove { start, end, ty: from });
                        range_remove(&mut table, start, end, Some(from));
                    }
                    _ => {
                        changes.push(Trim::Update { start, end, from, to });
                        range_update(&mut table, start, end, from, to);
                    }
                }
                userdef = true;
                continue;
            }
            _ => continue,
        };
        let mut kept = table.clone();
        range_remove(&mut kept, limit, u64::MAX, Some(E820Type::RAM));
        let left = total(&normalize(&kept), E820Type::RAM);
        if left < MIN_MEM {
            report(UserMapError::MemTooSmall { limit, left });
            continue;
        }
        changes.push(Trim::Remove { start: limit, end: u64::MAX, ty: E820Type::RAM });
        table = kept;
        userdef = true;
    }
    let map = normalize(&table);
    let left = total(&map, E820Type::RAM);
    if userdef && left < MIN_MEM {
        report(UserMapError::TooLittleRam { left });
        return UserMap { map: firmware.to_vec(), userdef: false, changes: Vec::new() };
    }
    UserMap { map, userdef, changes }
}

/// Size of the persistent range emulated when no `memmap=` option asks
/// for one: 16 sub-sections.
pub const DEFAULT_PMEM_SIZE: u64 = 32 << 20;
const SECTION: u64 = 128 << 20;

/// The range Tessera emulates as persistent memory when no `memmap=...!...`
/// option is given (and `nopmem` is not): sub-sections 16..31 (32 MiB at
/// offset 32 MiB) of the highest 128 MiB section that is entirely usable RAM
/// in `map` and holds nothing in use (`in_use`: the kernel image, the
/// bootloader's page tables, boot info, stack and ramdisk), preferring
/// sections below 4 GiB. The range is 2 MiB aligned, and System RAM stays on
/// both sides of it inside its section, so it always shares a section with
/// RAM. `None` when no section qualifies.
///
/// `map` must be normalized (one entry per run of RAM). The search walks
/// down from the top of each RAM entry and jumps over what is in use, so it
/// costs O(entries × in_use), whatever the size of the address space.
pub fn default_pmem_range(map: &[Entry], in_use: &[PhysRange]) -> Option<PhysRange> {
    // The highest free whole section ending at or below `limit`.
    let highest_below = |limit: u64| {
        map.iter()
            .filter(|e| e.ty == E820Type::RAM)
            .filter_map(|e| {
                let mut top = e.end.min(limit).checked_sub(SECTION)? & !(SECTION - 1);
                while top >= e.start {
                    let end = top + SECTION;
                    let busy =
                        in_use.iter().filter(|u| u.start < end && top < u.end).map(|r| r.start);
                    match busy.min() {
                        None => return Some(top),
                        // The next candidate ends at or below the busy range.
                        Some(s) => top = (s & !(SECTION - 1)).checked_sub(SECTION)?,
                    }
                }
                None
            })
            .max()
    };
    let best = highest_below(1 << 32).or_else(|| highest_below(u64::MAX))?;
    PhysRange::from_size(best + DEFAULT_PMEM_SIZE, DEFAULT_PMEM_SIZE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use options::MemmapKind;

    #[test]
    fn default_pmem_is_mid_section_in_the_highest_free_low_section() {
        let map = [
            Entry::new(0, 0x9fc00, RAM),
            Entry::new(0x10_0000, 0x7ffe_0000, RAM),
            Entry::new(0x1_0000_0000, 0x1_8000_0000, RAM),
        ];
        // Section 15 is not whole RAM (ends at 0x7ffe0000): section 14.
        assert_eq!(default_pmem_range(&map, &[]), PhysRange::from_size(0x7200_0000, 32 << 20));
        // Something in use there moves it down a section.
        let used = [PhysRange::new(0x7400_0000, 0x7400_1000)];
        assert_eq!(default_pmem_range(&map, &used), PhysRange::from_size(0x6a00_0000, 32 << 20));
        // Only high memory qualifies: use it.
        let high = [Entry::new(0x1_0000_0000, 0x1_1000_0000, RAM)];
        assert_eq!(default_pmem_range(&high, &[]), PhysRange::from_size(0x1_0a00_0000, 32 << 20));
        // No whole section of RAM: nothing.
        assert_eq!(default_pmem_range(&[Entry::new(0, 0x7ff_0000, RAM)], &[]), None);
        assert_eq!(default_pmem_range(&[], &[]), None);
    }

    const RAM: E820Type = E820Type::RAM;
    const RES: E820Type = E820Type::RESERVED;
    const PRAM: E820Type = E820Type::PRAM;
    const M: u64 = 1 << 20;
    const G: u64 = 1 << 30;

    /// QEMU `pc -m 2G` under SeaBIOS.
    fn qemu_2g() -> Vec<Entry> {
        alloc::vec![
            Entry::new(0, 0x9fc00, RAM),
            Entry::new(0x9fc00, 0xa0000, RES),
            Entry::new(0xf0000, 0x100000, RES),
            Entry::new(0x100000, 0x7ffe0000, RAM),
            Entry::new(0x7ffe0000, 0x80000000, RES),
            Entry::new(0xfffc0000, 0x1_0000_0000, RES),
        ]
    }

    fn memmap(size: u64, start: u64) -> Opt {
        Opt::Memmap(Memmap::Add { size, start, kind: MemmapKind::Persistent })
    }

    /// The options of a command line, as the kernel reads them.
    fn opts(line: &str) -> Vec<Opt> {
        options::parse(line).map(|r| r.unwrap()).collect()
    }

    fn user_lines(u: &UserMap) -> Vec<alloc::string::String> {
        u.map.iter().map(|e| crate::e820::Line("user", e).to_string()).collect()
    }

    /// Linux 6.1's `user:` lines on QEMU `pc -m 2G` (SeaBIOS), taken from
    /// its boot log, without the `0xfd00000000` reserved entry Tessera's
    /// bootloader does not pass on.
    fn linux_says(u: &UserMap, want: &[&str]) {
        assert!(u.userdef);
        assert_eq!(user_lines(u), want);
    }

    const LOW: [&str; 3] = [
        "user: [mem 0x0000000000000000-0x000000000009fbff] usable",
        "user: [mem 0x000000000009fc00-0x000000000009ffff] reserved",
        "user: [mem 0x00000000000f0000-0x00000000000fffff] reserved",
    ];
    const HIGH: [&str; 2] = [
        "user: [mem 0x000000007ffe0000-0x000000007fffffff] reserved",
        "user: [mem 0x00000000fffc0000-0x00000000ffffffff] reserved",
    ];

    #[test]
    fn two_pmem_ranges_in_one_section_keep_their_entries() {
        let opts = [memmap(32 * M, 0x3a00_0000), memmap(32 * M, 0x3c00_0000)];
        let u = apply(&qemu_2g(), opts, |e| panic!("{e}"));
        let mid = [
            "user: [mem 0x0000000000100000-0x0000000039ffffff] usable",
            "user: [mem 0x000000003a000000-0x000000003bffffff] persistent (type 12)",
            "user: [mem 0x000000003c000000-0x000000003dffffff] persistent (type 12)",
            "user: [mem 0x000000003e000000-0x000000007ffdffff] usable",
        ];
        linux_says(&u, &[&LOW[..], &mid, &HIGH].concat());
    }

    #[test]
    fn a_range_past_the_end_of_ram_splits_where_the_firmware_map_does() {
        let u = apply(&qemu_2g(), opts("memmap=32M!0x7ff00000"), |e| panic!("{e}"));
        let want = [
            "user: [mem 0x0000000000100000-0x000000007fefffff] usable",
            "user: [mem 0x000000007ff00000-0x000000007ffdffff] persistent (type 12)",
            "user: [mem 0x000000007ffe0000-0x000000007fffffff] persistent (type 12)",
            "user: [mem 0x0000000080000000-0x0000000081efffff] persistent (type 12)",
            "user: [mem 0x00000000fffc0000-0x00000000ffffffff] reserved",
        ];
        linux_says(&u, &[&LOW[..], &want].concat());
    }

    #[test]
    fn overlapping_persistent_ranges_give_one_entry_per_piece() {
        let u = apply(&qemu_2g(), opts("memmap=4M!64M memmap=2M!65M"), |e| panic!("{e}"));
        let want = [
            "user: [mem 0x0000000000100000-0x0000000003ffffff] usable",
            "user: [mem 0x0000000004000000-0x00000000040fffff] persistent (type 12)",
            "user: [mem 0x0000000004100000-0x00000000042fffff] persistent (type 12)",
            "user: [mem 0x0000000004300000-0x00000000043fffff] persistent (type 12)",
            "user: [mem 0x0000000004400000-0x000000007ffdffff] usable",
        ];
        linux_says(&u, &[&LOW[..], &want, &HIGH].concat());
    }

    #[test]
    fn a_comma_list_applies_every_piece() {
        let line = "memmap=64M!0x20000000,16M$0x30000000";
        let u = apply(&qemu_2g(), opts(line), |e| panic!("{e}"));
        let want = [
            "user: [mem 0x0000000000100000-0x000000001fffffff] usable",
            "user: [mem 0x0000000020000000-0x0000000023ffffff] persistent (type 12)",
            "user: [mem 0x0000000024000000-0x000000002fffffff] usable",
            "user: [mem 0x0000000030000000-0x0000000030ffffff] reserved",
            "user: [mem 0x0000000031000000-0x000000007ffdffff] usable",
        ];
        linux_says(&u, &[&LOW[..], &want, &HIGH].concat());
    }

    #[test]
    fn limits_acpi_and_type_updates_in_order() {
        let line = "memmap=1G mem=1536M memmap=16M#0x30000000 memmap=2M%0x31000000-1+12";
        let u = apply(&qemu_2g(), opts(line), |e| panic!("{e}"));
        let want = [
            "user: [mem 0x0000000000100000-0x000000002fffffff] usable",
            "user: [mem 0x0000000030000000-0x0000000030ffffff] ACPI data",
            "user: [mem 0x0000000031000000-0x00000000311fffff] persistent (type 12)",
            "user: [mem 0x0000000031200000-0x000000003fffffff] usable",
        ];
        linux_says(&u, &[&LOW[..], &want, &HIGH].concat());
        let changes: Vec<_> = u.changes.iter().map(ToString::to_string).collect();
        assert_eq!(
            changes,
            [
                "e820: remove [mem 0x40000000-0xfffffffffffffffe] usable",
                "e820: remove [mem 0x60000000-0xfffffffffffffffe] usable",
                "e820: update [mem 0x31000000-0x311fffff] usable ==> persistent (type 12)",
            ]
        );
    }

    #[test]
    fn exactmap_builds_the_map_from_nothing() {
        let line =
            "memmap=exactmap memmap=0x9f000@0 memmap=0x7fee0000@0x100000 memmap=32M!0x3a000000";
        let u = apply(&qemu_2g(), opts(line), |e| panic!("{e}"));
        let want = [
            "user: [mem 0x0000000000000000-0x000000000009efff] usable",
            "user: [mem 0x0000000000100000-0x0000000039ffffff] usable",
            "user: [mem 0x000000003a000000-0x000000003bffffff] persistent (type 12)",
            "user: [mem 0x000000003c000000-0x000000007ffdffff] usable",
        ];
        linux_says(&u, &want);
        // Too little RAM left: nothing applies, one error.
        let mut errs = Vec::new();
        let u = apply(&qemu_2g(), opts("memmap=exactmap memmap=1M@0"), |e| errs.push(e));
        assert_eq!(errs, [UserMapError::TooLittleRam { left: M }]);
        assert_eq!((u.map, u.userdef), (qemu_2g(), false));
    }

    #[test]
    fn mem_and_memmap_commute_for_persistent_ranges() {
        let a = apply(&qemu_2g(), opts("mem=1G memmap=32M!0x3ff00000"), |e| panic!("{e}"));
        let b = apply(&qemu_2g(), opts("memmap=32M!0x3ff00000 mem=1G"), |e| panic!("{e}"));
        assert_eq!(a.map, b.map);
        // The range beyond the limit is still claimed, split where the
        // RAM it overlapped now ends.
        assert!(a.map.contains(&Entry::new(0x3ff0_0000, 0x4000_0000, PRAM)));
        assert!(a.map.contains(&Entry::new(0x4000_0000, 0x41f0_0000, PRAM)));
    }

    #[test]
    fn remove_and_add_through_percent() {
        // -t only: remove that type; neither: remove everything; +n only: add.
        let u =
            apply(&qemu_2g(), opts("memmap=1M%0xf0000-2 memmap=4M%0x1000000+7"), |e| panic!("{e}"));
        assert!(!u.map.iter().any(|e| e.start == 0xf0000));
        assert!(u.map.contains(&Entry::new(0x100_0000, 0x140_0000, E820Type::PMEM)));
        let u = apply(&qemu_2g(), opts("memmap=0x200000%0x7ff00000"), |e| panic!("{e}"));
        assert!(u.map.iter().all(|e| e.end <= 0x7ff0_0000 || e.start >= 0x8010_0000));
    }

    #[test]
    fn mem_limit_removes_only_ram_above_it() {
        let u = apply(&qemu_2g(), [Opt::Mem(G)], |e| panic!("{e}"));
        assert_eq!(crate::e820::total(&u.map, RAM), 0x9fc00 + (G - 0x100000));
        assert!(u.map.contains(&Entry::new(0x7ffe0000, 0x80000000, RES)));
        assert!(u.map.contains(&Entry::new(0xfffc0000, 0x1_0000_0000, RES)));
        // A limit above the end of RAM changes nothing but still counts as
        // a user map, as in Linux.
        let u = apply(&qemu_2g(), [Opt::Mem(8 * G)], |e| panic!("{e}"));
        assert_eq!(u.map, normalize(&qemu_2g()));
        assert!(u.userdef);
        let u = apply(&qemu_2g(), [Opt::Poweroff], |e| panic!("{e}"));
        assert!(!u.userdef);
    }

    #[test]
    fn mem_limit_that_leaves_too_little_ram_is_refused() {
        let mut errors = Vec::new();
        let u = apply(&qemu_2g(), [Opt::Mem(4096), Opt::Mem(2 * MIN_MEM)], |e| errors.push(e));
        assert_eq!(errors, [UserMapError::MemTooSmall { limit: 4096, left: 4096 }]);
        assert!(errors[0].to_string().contains("would leave 4 KiB of RAM, below the 64 MiB"));
        // The second limit leaves enough and applies.
        assert_eq!(total(&u.map, RAM), 0x9fc00 + (2 * MIN_MEM - 0x100000));
        // A refused limit leaves the map untouched.
        let u = apply(&qemu_2g(), [Opt::Mem(MIN_MEM)], |_| {});
        assert_eq!(u.map, normalize(&qemu_2g()));
    }

    #[test]
    fn bios_range_trim_follows_linux() {
        let (map, trims) = trim_bios_range(&qemu_2g());
        assert_eq!(map[0], Entry::new(0, 0x1000, RES));
        assert_eq!(map[1], Entry::new(0x1000, 0x9fc00, RAM));
        assert_eq!(
            trims.map(|t| t.to_string()),
            [
                "e820: update [mem 0x00000000-0x00000fff] usable ==> reserved",
                "e820: remove [mem 0x000a0000-0x000fffff] usable",
            ]
        );
        // RAM reported inside the BIOS area goes; other types stay.
        let odd = [Entry::new(0x1000, 0x100000, RAM), Entry::new(0xf0000, 0x100000, RES)];
        let (map, _) = trim_bios_range(&odd);
        assert_eq!(map, [Entry::new(0x1000, 0xa0000, RAM), Entry::new(0xf0000, 0x100000, RES)]);
        // Page 0 that is not RAM is left as the firmware said.
        let (map, _) = trim_bios_range(&[Entry::new(0, 0x1000, E820Type::NVS)]);
        assert_eq!(map, [Entry::new(0, 0x1000, E820Type::NVS)]);
    }

    /// Found by the `e820` fuzz target: a RAM entry spanning most of the
    /// 64-bit space made the search visit every section (2^37 of them).
    #[test]
    fn default_pmem_search_does_not_walk_the_address_space() {
        let huge = [Entry::new(0x1000, u64::MAX, RAM)];
        let top = !(SECTION - 1) - SECTION;
        assert_eq!(
            default_pmem_range(&huge, &[]),
            PhysRange::from_size(0xf800_0000 + DEFAULT_PMEM_SIZE, DEFAULT_PMEM_SIZE)
        );
        // Everything below 4 GiB and the top section in use: the next one down.
        let busy = [PhysRange::new(0, 1 << 32), PhysRange::new(top, u64::MAX)];
        let want = top - SECTION + DEFAULT_PMEM_SIZE;
        assert_eq!(default_pmem_range(&huge, &busy), PhysRange::from_size(want, DEFAULT_PMEM_SIZE));
        // All of it in use: none.
        assert_eq!(default_pmem_range(&huge, &[PhysRange::new(0, u64::MAX)]), None);
    }

    #[test]
    fn only_firmware_ram_or_pmem_outside_the_boot_pieces_is_backed() {
        let fw = qemu_2g();
        assert!(is_backed(&fw, &[], PhysRange::new(0x3a00_0000, 0x3c00_0000)));
        // Across the end of RAM into the firmware's reserved tail, or a hole.
        assert!(!is_backed(&fw, &[], PhysRange::new(0x7ff0_0000, 0x81f0_0000)));
        assert!(!is_backed(&fw, &[], PhysRange::new(0x7ffe_0000, 0x8000_0000)));
        assert!(!is_backed(&fw, &[], PhysRange::new(0x2_0000_0000, 0x2_0400_0000)));
        assert!(!is_backed(&fw, &[], PhysRange::new(0x9f000, 0x10_0000)));
        // The kernel's own pieces.
        assert!(!is_backed(
            &fw,
            &[PhysRange::new(0x3b00_0000, 0x3b00_1000)],
            PhysRange::new(0x3a00_0000, 0x3c00_0000)
        ));
        assert!(is_backed(
            &fw,
            &[PhysRange::new(0x3c00_0000, 0x3c00_1000)],
            PhysRange::new(0x3a00_0000, 0x3c00_0000)
        ));
        // Firmware persistent memory (type 7) is the device itself.
        let pm = [Entry::new(0x1_0000_0000, 0x1_1000_0000, E820Type::PMEM)];
        assert!(is_backed(&pm, &[], PhysRange::new(0x1_0000_0000, 0x1_1000_0000)));
    }

    #[test]
    fn is_ram_spans_adjacent_entries() {
        let map = [Entry::new(0, 10, RAM), Entry::new(10, 20, RAM), Entry::new(30, 40, RAM)];
        assert!(is_ram(&map, 5, 15));
        assert!(is_ram(&map, 0, 20));
        assert!(!is_ram(&map, 15, 35));
        assert!(!is_ram(&map, 35, 45));
        assert!(is_ram(&map, 30, 40));
    }
}

//! The user-defined memory map: `memmap=` and `mem=` applied to the
//! firmware map, with Linux's semantics (`parse_memmap_one`,
//! `parse_memopt`), plus a refusal of ranges that are not System RAM.

use alloc::vec::Vec;
use core::fmt;
use options::{MemmapKind, Opt};

use crate::e820::{E820Type, Entry, MemRange, normalize, total};

/// Why a memory option was ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserMapError {
    /// A `memmap=` range that is not entirely usable RAM.
    NotRam { opt: Opt },
    /// A `mem=` limit that would leave less than [`MIN_MEM`] of RAM.
    MemTooSmall { limit: u64, left: u64 },
}

/// The least System RAM a `mem=` limit may leave: the kernel's boot
/// structures (memmap, usage maps, heap) need room.
pub const MIN_MEM: u64 = 64 << 20;

impl fmt::Display for UserMapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotRam { opt: Opt::Memmap { size, start, kind } } => {
                let c = if *kind == MemmapKind::Persistent { '!' } else { '$' };
                write!(
                    f,
                    "memmap={size:#x}{c}{start:#x}: {} is not entirely usable RAM",
                    MemRange(*start, start + size)
                )
            }
            Self::NotRam { opt } => write!(f, "{opt:?}: not usable RAM"),
            Self::MemTooSmall { limit, left } => write!(
                f,
                "mem={limit:#x}: would leave {} KiB of RAM, below the {} MiB the kernel needs",
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
const PAGE_SIZE: u64 = 4096;

/// Changes made by [`trim_bios_range`], for Linux's debug lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trim {
    /// `e820: update [mem 0x00000000-0x00000fff] usable ==> reserved`
    Update { start: u64, end: u64, from: E820Type, to: E820Type },
    /// `e820: remove [mem 0x000a0000-0x000fffff] usable`
    Remove { start: u64, end: u64, ty: E820Type },
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
}

/// Applies every `memmap=` and `mem=` option, in command-line order, to a
/// normalized firmware map. Refused options are passed to `report`.
pub fn apply(
    firmware: &[Entry],
    opts: impl IntoIterator<Item = Opt>,
    mut report: impl FnMut(UserMapError),
) -> UserMap {
    let mut map: Vec<Entry> = firmware.to_vec();
    let mut userdef = false;
    for opt in opts {
        match opt {
            Opt::Memmap { size, start, kind } => {
                let end = start + size;
                if !is_ram(&map, start, end) {
                    report(UserMapError::NotRam { opt });
                    continue;
                }
                let ty = match kind {
                    MemmapKind::Persistent => E820Type::PRAM,
                    MemmapKind::Reserved => E820Type::RESERVED,
                };
                map.push(Entry::new(start, end, ty));
                map = normalize(&map);
                userdef = true;
            }
            Opt::Mem(limit) => {
                let kept = remove_range(&map, limit, u64::MAX, E820Type::RAM);
                let left = total(&kept, E820Type::RAM);
                if left < MIN_MEM {
                    report(UserMapError::MemTooSmall { limit, left });
                    continue;
                }
                map = kept;
                userdef = true;
            }
            _ => {}
        }
    }
    UserMap { map: normalize(&map), userdef }
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
pub fn default_pmem_range(map: &[Entry], in_use: &[(u64, u64)]) -> Option<(u64, u64)> {
    // The highest free whole section ending at or below `limit`.
    let highest_below = |limit: u64| {
        map.iter()
            .filter(|e| e.ty == E820Type::RAM)
            .filter_map(|e| {
                let mut top = e.end.min(limit).checked_sub(SECTION)? & !(SECTION - 1);
                while top >= e.start {
                    let end = top + SECTION;
                    let busy = in_use.iter().filter(|&&(s, u)| s < end && top < u).map(|r| r.0);
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
    Some((best + DEFAULT_PMEM_SIZE, DEFAULT_PMEM_SIZE))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn default_pmem_is_mid_section_in_the_highest_free_low_section() {
        let map = [
            Entry::new(0, 0x9fc00, RAM),
            Entry::new(0x10_0000, 0x7ffe_0000, RAM),
            Entry::new(0x1_0000_0000, 0x1_8000_0000, RAM),
        ];
        // Section 15 is not whole RAM (ends at 0x7ffe0000): section 14.
        assert_eq!(default_pmem_range(&map, &[]), Some((0x7200_0000, 32 << 20)));
        // Something in use there moves it down a section.
        let used = [(0x7400_0000, 0x7400_1000)];
        assert_eq!(default_pmem_range(&map, &used), Some((0x6a00_0000, 32 << 20)));
        // Only high memory qualifies: use it.
        let high = [Entry::new(0x1_0000_0000, 0x1_1000_0000, RAM)];
        assert_eq!(default_pmem_range(&high, &[]), Some((0x1_0a00_0000, 32 << 20)));
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
        Opt::Memmap { size, start, kind: MemmapKind::Persistent }
    }

    #[test]
    fn two_pmem_ranges_in_one_section_keep_their_entries() {
        let opts = [memmap(32 * M, 0x3a00_0000), memmap(32 * M, 0x3c00_0000)];
        let u = apply(&qemu_2g(), opts, |e| panic!("{e}"));
        assert!(u.userdef);
        let lines: Vec<_> =
            u.map.iter().map(|e| crate::e820::Line("user", e).to_string()).collect();
        assert_eq!(
            lines,
            [
                "user: [mem 0x0000000000000000-0x000000000009fbff] usable",
                "user: [mem 0x000000000009fc00-0x000000000009ffff] reserved",
                "user: [mem 0x00000000000f0000-0x00000000000fffff] reserved",
                "user: [mem 0x0000000000100000-0x0000000039ffffff] usable",
                "user: [mem 0x000000003a000000-0x000000003bffffff] persistent (type 12)",
                "user: [mem 0x000000003c000000-0x000000003dffffff] persistent (type 12)",
                "user: [mem 0x000000003e000000-0x000000007ffdffff] usable",
                "user: [mem 0x000000007ffe0000-0x000000007fffffff] reserved",
                "user: [mem 0x00000000fffc0000-0x00000000ffffffff] reserved",
            ]
        );
    }

    #[test]
    fn ranges_outside_ram_are_refused_and_the_rest_applies() {
        let mut errs = Vec::new();
        let opts = [
            memmap(32 * M, 0x7ff0_0000), // runs into the reserved tail
            memmap(32 * M, 3 * G),       // the PCI hole
            memmap(2 * M, 0x9f000),      // across the EBDA
            Opt::Memmap { size: 2 * M, start: 64 * M, kind: MemmapKind::Reserved },
        ];
        let u = apply(&qemu_2g(), opts, |e| errs.push(e.to_string()));
        assert_eq!(errs.len(), 3);
        assert_eq!(
            errs[0],
            "memmap=0x2000000!0x7ff00000: [mem 0x000000007ff00000-0x0000000081efffff] is not entirely usable RAM"
        );
        assert!(u.map.contains(&Entry::new(64 * M, 66 * M, RES)));
        assert!(u.userdef);
    }

    #[test]
    fn a_range_can_be_claimed_only_once() {
        let mut errs = 0;
        let u = apply(&qemu_2g(), [memmap(4 * M, 64 * M), memmap(2 * M, 65 * M)], |_| errs += 1);
        assert_eq!(errs, 1);
        assert!(u.map.contains(&Entry::new(64 * M, 68 * M, PRAM)));
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
            Some((0xf800_0000 + DEFAULT_PMEM_SIZE, DEFAULT_PMEM_SIZE))
        );
        // Everything below 4 GiB and the top section in use: the next one down.
        let busy = [(0, 1 << 32), (top, u64::MAX)];
        let want = top - SECTION + DEFAULT_PMEM_SIZE;
        assert_eq!(default_pmem_range(&huge, &busy), Some((want, DEFAULT_PMEM_SIZE)));
        // All of it in use: none.
        assert_eq!(default_pmem_range(&huge, &[(0, u64::MAX)]), None);
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

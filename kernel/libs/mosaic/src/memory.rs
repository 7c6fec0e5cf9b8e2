//! What a tile is: one 2 MiB sub-section's state, from the section table
//! (its bit in `subsection_map`, the section's ONLINE flag) and the ranges
//! the kernel knows (System RAM, RAM it does not have, persistent memory).

use alloc::vec::Vec;

use mm::sparse::{SECTION_SIZE_BITS, SUBSECTION_SIZE, SUBSECTIONS_PER_SECTION};

/// Tiles in a row: the sub-sections of a section.
pub const TILES: usize = SUBSECTIONS_PER_SECTION as usize;

/// The state of one 2 MiB sub-section, as the mosaic colours it. A tile's
/// life follows its sub-section's:
///
/// ```text
/// absent ─boot─▶ RAM online | hole        RAM withheld ─probe─▶ RAM offline ─online─▶ RAM online
/// PMEM not added ─add─▶ PMEM added ─remove─▶ PMEM not added    RAM online ─offline─▶ RAM offline
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tile {
    /// Active System RAM in an online section.
    RamOnline,
    /// System RAM the page allocator does not have: active in a section
    /// that is not online (a probed block before `memory online`, or after
    /// `memory offline`), or not active at all but RAM in the firmware map
    /// that the kernel was not given (`mem=`) or gave back (`memory
    /// remove`), which `memory probe` can add.
    RamOffline,
    /// Active, in a persistent-memory region (ZONE_DEVICE).
    PmemAdded,
    /// Not active, in a persistent-memory region: not added, or removed.
    PmemNotAdded,
    /// Active but not all System RAM: a boot section's sub-section that a
    /// hole or a reserved range cuts.
    Hole,
    /// Not active, and nothing that could be added.
    Absent,
}

impl Tile {
    /// Every state, in the legend's order (which also breaks ties when
    /// sections share a row).
    pub const ALL: [Tile; 6] = [
        Tile::RamOnline,
        Tile::RamOffline,
        Tile::PmemAdded,
        Tile::PmemNotAdded,
        Tile::Hole,
        Tile::Absent,
    ];

    /// Its colour (red, green, blue), on the black of the console.
    pub const fn rgb(self) -> [u8; 3] {
        match self {
            Tile::RamOnline => [0x3c, 0xb0, 0x4a],
            Tile::RamOffline => [0x3a, 0x6e, 0xa8],
            Tile::PmemAdded => [0xc0, 0x50, 0xe0],
            Tile::PmemNotAdded => [0x5a, 0x2a, 0x6e],
            Tile::Hole => [0xd0, 0x90, 0x30],
            Tile::Absent => [0x38, 0x38, 0x38],
        }
    }

    /// Its name in the legend.
    pub const fn name(self) -> &'static str {
        match self {
            Tile::RamOnline => "RAM online",
            Tile::RamOffline => "RAM offline or withheld",
            Tile::PmemAdded => "PMEM added",
            Tile::PmemNotAdded => "PMEM not added",
            Tile::Hole => "hole",
            Tile::Absent => "absent",
        }
    }

    /// One letter, as the shell's `sections` picture writes it (`o`, RAM
    /// not online, is the mosaic's own).
    pub const fn letter(self) -> char {
        match self {
            Tile::RamOnline => 'R',
            Tile::RamOffline => 'o',
            Tile::PmemAdded => 'P',
            Tile::PmemNotAdded => 'p',
            Tile::Hole => 'h',
            Tile::Absent => '.',
        }
    }

    /// The state a [`Tile::letter`] stands for.
    pub fn from_letter(c: char) -> Option<Tile> {
        Tile::ALL.into_iter().find(|t| t.letter() == c)
    }
}

/// The ranges besides the section table that decide the tiles, each a
/// sorted list of disjoint byte ranges `[start, end)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Memory {
    /// System RAM the kernel has (memblock's memory).
    pub ram: Vec<(u64, u64)>,
    /// RAM in the firmware map the kernel does not have: withheld at boot
    /// (`mem=`) or removed since.
    pub withheld: Vec<(u64, u64)>,
    /// The persistent-memory regions.
    pub pmem: Vec<(u64, u64)>,
}

/// `ranges` sorted, empty ones dropped, overlapping and adjacent ones
/// merged.
fn normalize(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    ranges.retain(|&(s, e)| s < e);
    ranges.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (s, e) in ranges {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// `from` without `minus` (both normalized).
fn subtract(from: &[(u64, u64)], minus: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for &(mut s, e) in from {
        for &(ms, me) in minus {
            if me <= s || e <= ms {
                continue;
            }
            if ms > s {
                out.push((s, ms));
            }
            s = me;
            if s >= e {
                break;
            }
        }
        if s < e {
            out.push((s, e));
        }
    }
    out
}

/// Whether one range of normalized `ranges` holds all of `[start, end)`.
fn covers(ranges: &[(u64, u64)], start: u64, end: u64) -> bool {
    let i = ranges.partition_point(|&(_, e)| e <= start);
    ranges.get(i).is_some_and(|&(s, e)| s <= start && end <= e)
}

/// Whether a range of normalized `ranges` holds `addr`.
fn holds(ranges: &[(u64, u64)], addr: u64) -> bool {
    covers(ranges, addr, addr + 1)
}

impl Memory {
    /// The ranges from what the kernel knows: `ram`, memblock's memory;
    /// `firmware_ram`, the RAM of the firmware's map; `claimed`, what the
    /// user map (`memmap=`) gave another type; `pmem`, the persistent
    /// regions. Withheld RAM is firmware RAM that is none of the others.
    pub fn new(
        ram: Vec<(u64, u64)>,
        firmware_ram: Vec<(u64, u64)>,
        claimed: Vec<(u64, u64)>,
        pmem: Vec<(u64, u64)>,
    ) -> Memory {
        let (ram, pmem) = (normalize(ram), normalize(pmem));
        let mut taken = claimed;
        taken.extend_from_slice(&ram);
        taken.extend_from_slice(&pmem);
        let withheld = subtract(&normalize(firmware_ram), &normalize(taken));
        Memory { ram, withheld, pmem }
    }

    /// The sub-section at `start`: `active` is its bit in the section's
    /// `subsection_map`, `online` the section's ONLINE flag. As the shell's
    /// `sections` picture: persistent memory when a region holds its first
    /// byte, RAM when one RAM range holds all of it.
    pub fn tile(&self, start: u64, active: bool, online: bool) -> Tile {
        let end = start + SUBSECTION_SIZE;
        match (active, holds(&self.pmem, start)) {
            (true, true) => Tile::PmemAdded,
            (false, true) => Tile::PmemNotAdded,
            (true, false) if covers(&self.ram, start, end) => {
                if online {
                    Tile::RamOnline
                } else {
                    Tile::RamOffline
                }
            }
            (true, false) => Tile::Hole,
            (false, false) if covers(&self.withheld, start, end) => Tile::RamOffline,
            (false, false) => Tile::Absent,
        }
    }

    /// Section `nr`'s tiles, from its `subsection_map` and ONLINE flag.
    pub fn section_tiles(&self, nr: u64, subsection_map: u64, online: bool) -> [Tile; TILES] {
        let base = nr << SECTION_SIZE_BITS;
        core::array::from_fn(|i| {
            let active = subsection_map & (1 << i) != 0;
            self.tile(base + i as u64 * SUBSECTION_SIZE, active, online)
        })
    }

    /// The sections that get a row, sorted: the `present` ones, and every
    /// other whose tiles are not all absent (withheld RAM, persistent
    /// memory not added), so that a row stays while its memory comes and
    /// goes.
    pub fn sections(&self, present: &[u64]) -> Vec<u64> {
        let mut out: Vec<u64> = present.to_vec();
        let size = SUBSECTION_SIZE;
        // Whole sub-sections of withheld RAM; sub-sections whose first
        // byte is persistent memory.
        let withheld =
            self.withheld.iter().map(|&(s, e)| (s.next_multiple_of(size), e & !(size - 1)));
        let pmem = self.pmem.iter().map(|&(s, e)| (s.next_multiple_of(size), e));
        for (s, e) in withheld.chain(pmem).filter(|&(s, e)| s < e) {
            out.extend((s >> SECTION_SIZE_BITS)..=((e - 1) >> SECTION_SIZE_BITS));
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

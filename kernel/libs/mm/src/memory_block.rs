//! Memory blocks, the unit in which System RAM is hot-added, onlined,
//! offlined and removed (Linux's `drivers/base/memory.c`): their size, and
//! which ranges may be probed.

use core::fmt;

use crate::e820::{E820Type, Entry, MemRange};
use crate::sparse::{PAGES_PER_SUBSECTION, SECTION_SIZE_BITS};

/// The smallest block: one section (`MIN_MEMORY_BLOCK_SIZE`).
pub const MIN_MEMORY_BLOCK_SIZE: u64 = 1 << SECTION_SIZE_BITS;
/// Boot memory from which x86 uses larger blocks (`MEM_SIZE_FOR_LARGE_BLOCK`).
pub const MEM_SIZE_FOR_LARGE_BLOCK: u64 = 64 << 30;
/// The largest block x86 uses (`MAX_BLOCK_SIZE`).
pub const MAX_BLOCK_SIZE: u64 = 2 << 30;
/// Smallest piece of RAM the memory model hot-adds: a sub-section.
pub const SUBSECTION_SIZE: u64 = PAGES_PER_SUBSECTION << crate::page::PAGE_SHIFT;

/// x86's `probe_memory_block_size` for a machine whose boot memory ends at
/// `boot_mem_end`: one section below 64 GiB; above, the largest power of
/// two up to 2 GiB that the end of boot memory is aligned to (so the last
/// boot block is whole), as under a hypervisor.
pub fn memory_block_size(boot_mem_end: u64) -> u64 {
    if boot_mem_end < MEM_SIZE_FOR_LARGE_BLOCK {
        return MIN_MEMORY_BLOCK_SIZE;
    }
    let mut bz = MAX_BLOCK_SIZE;
    while bz > MIN_MEMORY_BLOCK_SIZE && !boot_mem_end.is_multiple_of(bz) {
        bz >>= 1;
    }
    bz
}

/// Why a range may not be hot-added as System RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeError {
    /// Not aligned to `align` bytes, empty, or past the end of the
    /// address space.
    Misaligned { start: u64, size: u64, align: u64 },
    /// Some of it is not RAM in the firmware's map (`at` is the first such
    /// address).
    NotRam { start: u64, size: u64, at: u64 },
    /// Some of it is System RAM the kernel has already.
    InUse { start: u64, size: u64 },
    /// Some of it holds the kernel or the bootloader's data.
    Bootloader { start: u64, size: u64, piece: (u64, u64) },
}

impl ProbeError {
    /// The Linux errno name.
    pub fn errno(&self) -> &'static str {
        match self {
            Self::InUse { .. } => "EEXIST",
            Self::Bootloader { .. } => "EBUSY",
            _ => "EINVAL",
        }
    }
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.errno();
        match *self {
            Self::Misaligned { start, size, align } => write!(
                f,
                "{e}: {start:#x} size {size:#x} is not a whole number of {} MiB units",
                align >> 20
            ),
            Self::NotRam { start, size, at } => write!(
                f,
                "{e}: {} is not all System RAM in the firmware map (not from {at:#x})",
                MemRange(start, start.saturating_add(size))
            ),
            Self::InUse { start, size } => write!(
                f,
                "{e}: {} is (partly) System RAM the kernel already has",
                MemRange(start, start + size)
            ),
            Self::Bootloader { start, size, piece } => write!(
                f,
                "{e}: {} holds the kernel or bootloader data at {}",
                MemRange(start, start + size),
                MemRange(piece.0, piece.1)
            ),
        }
    }
}

/// Whether `[start, start + size)` may be hot-added as System RAM: aligned
/// to `align`, wholly RAM in the firmware map `firmware`, none of it given
/// another type by the user map `user` (`memmap=`; what `mem=` dropped has
/// no entry there), none of it in `present` (the kernel's RAM ranges,
/// `(start, end)`) and none of it in `in_use` (the bootloader's pieces).
pub fn check_withheld(
    firmware: &[Entry],
    user: &[Entry],
    present: &[(u64, u64)],
    in_use: &[(u64, u64)],
    start: u64,
    size: u64,
    align: u64,
) -> Result<(), ProbeError> {
    let end = start.checked_add(size).filter(|_| size > 0 && (start | size).is_multiple_of(align));
    let end = end.ok_or(ProbeError::Misaligned { start, size, align })?;
    if present.iter().any(|&(s, e)| s < end && start < e) {
        return Err(ProbeError::InUse { start, size });
    }
    // The firmware map is sorted and disjoint: walk the RAM entries.
    let mut at = start;
    for e in firmware.iter().filter(|e| e.ty == E820Type::RAM) {
        if e.start <= at && at < e.end {
            at = e.end;
        }
    }
    if at < end {
        return Err(ProbeError::NotRam { start, size, at });
    }
    let claimed = user.iter().find(|e| e.ty != E820Type::RAM && e.start < end && start < e.end);
    if let Some(e) = claimed {
        return Err(ProbeError::NotRam { start, size, at: e.start.max(start) });
    }
    if let Some(&piece) = in_use.iter().find(|&&(s, e)| s < end && start < e) {
        return Err(ProbeError::Bootloader { start, size, piece });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: u64 = 1 << 20;
    const G: u64 = 1 << 30;

    #[test]
    fn block_size_follows_x86() {
        assert_eq!(memory_block_size(2 * G), 128 * M);
        assert_eq!(memory_block_size(64 * G - 1), 128 * M);
        assert_eq!(memory_block_size(64 * G), 2 * G);
        assert_eq!(memory_block_size(65 * G), G);
        assert_eq!(memory_block_size(64 * G + 128 * M), 128 * M);
        assert_eq!(memory_block_size(64 * G + 512 * M), 512 * M);
    }

    #[test]
    fn only_withheld_firmware_ram_may_be_probed() {
        // RAM 0-3 GiB and 4-5 GiB; mem=3G kept the first; the bootloader
        // sits at 4 GiB + 900 MiB.
        let fw = [
            Entry::new(0, 3 * G, E820Type::RAM),
            Entry::new(3 * G, 4 * G, E820Type::RESERVED),
            Entry::new(4 * G, 4 * G + 512 * M, E820Type::RAM),
            Entry::new(4 * G + 512 * M, 5 * G, E820Type::RAM),
        ];
        let present = [(M, 3 * G)];
        let used = [(4 * G + 900 * M, 4 * G + 901 * M)];
        // memmap=64M!4G+768M in the user map; mem=3G dropped the rest.
        let user = [
            Entry::new(0, 3 * G, E820Type::RAM),
            Entry::new(3 * G, 4 * G, E820Type::RESERVED),
            Entry::new(4 * G + 768 * M, 4 * G + 832 * M, E820Type::PRAM),
        ];
        let check = |s, n| check_withheld(&fw, &user, &present, &used, s, n, 128 * M);
        assert_eq!(check(4 * G, 128 * M), Ok(()));
        assert_eq!(check(4 * G + 384 * M, 256 * M), Ok(()), "across two adjacent RAM entries");
        assert_eq!(check(4 * G, 64 * M).unwrap_err().errno(), "EINVAL");
        assert_eq!(check(4 * G + M, 128 * M).unwrap_err().errno(), "EINVAL");
        assert_eq!(check(u64::MAX - 128 * M + 1, 128 * M).unwrap_err().errno(), "EINVAL");
        assert_eq!(check(4 * G, 0).unwrap_err().errno(), "EINVAL");
        assert_eq!(
            check(3 * G - 128 * M, 256 * M),
            Err(ProbeError::InUse { start: 3 * G - 128 * M, size: 256 * M })
        );
        assert_eq!(
            check(3 * G, 128 * M),
            Err(ProbeError::NotRam { start: 3 * G, size: 128 * M, at: 3 * G })
        );
        assert_eq!(
            check(5 * G - 128 * M, 256 * M),
            Err(ProbeError::NotRam { start: 5 * G - 128 * M, size: 256 * M, at: 5 * G })
        );
        let e = check(4 * G + 896 * M, 128 * M).unwrap_err();
        assert_eq!(e.errno(), "EBUSY");
        assert!(format!("{e}").contains("[mem 0x0000000138400000-0x00000001384fffff]"), "{e}");
        assert_eq!(
            check_withheld(&fw, &user, &present, &used, 4 * G, 2 * M, SUBSECTION_SIZE),
            Ok(())
        );
        assert_eq!(
            check(4 * G + 640 * M, 256 * M),
            Err(ProbeError::NotRam { start: 4 * G + 640 * M, size: 256 * M, at: 4 * G + 768 * M }),
            "persistent memory from memmap= is not RAM to probe"
        );
    }
}

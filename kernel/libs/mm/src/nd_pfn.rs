//! The on-media layout of an fsdax or devdax namespace: Linux's info block
//! (`struct nd_pfn_sb`, drivers/nvdimm/pfn.h) at namespace offset 4 KiB,
//! written as `nd_pfn_init` writes it and checked as `nd_pfn_validate`
//! checks it, so that Linux and Tessera give the same device the same
//! layout.
//!
//! ```text
//! namespace start                                                 end
//! | 4 KiB | info block | memmap (map=dev) ... | data ............ | end_trunc |
//! 0       4K           8K                     dataoff
//! ```
//!
//! A namespace without an info block is `raw`: the kernel keeps its memmap
//! in System RAM and writes nothing to the device.

use core::fmt;

use crate::page::{PAGE_SHIFT, PAGE_SIZE, phys_pfn};
use crate::sparse::{Altmap, PAGES_PER_SECTION, PAGES_PER_SUBSECTION};

/// Where the info block lives in the namespace (`SZ_4K`).
pub const INFO_OFFSET: u64 = 4096;
/// The info block's size (`sizeof(struct nd_pfn_sb)`).
pub const INFO_SIZE: usize = 4096;
/// `info_block_reserve()`: the bytes before the memmap (`SZ_8K`).
pub const INFO_RESERVE: u64 = 8192;
/// `PFN_SIG`.
pub const PFN_SIG: &[u8; 16] = b"NVDIMM_PFN_INFO\0";
/// `DAX_SIG`.
pub const DAX_SIG: &[u8; 16] = b"NVDIMM_DAX_INFO\0";
/// `MAX_STRUCT_PAGE_SIZE`: the descriptor size the layout reserves for.
pub const MAX_STRUCT_PAGE_SIZE: u64 = 64;
/// `memremap_compat_align()` on x86_64: a sub-section.
pub const COMPAT_ALIGN: u64 = crate::sparse::SUBSECTION_SIZE;
/// The alignments x86_64 Linux supports (`nd_pfn_supported_alignments`).
pub const SUPPORTED_ALIGNS: [u64; 3] = [PAGE_SIZE, 2 << 20, 1 << 30];
/// The descriptor size of this kernel (`sizeof(struct page)`).
pub use crate::page::STRUCT_PAGE_SIZE;

/// Byte offsets of `struct nd_pfn_sb`'s fields.
mod off {
    pub const UUID: usize = 16;
    pub const PARENT_UUID: usize = 32;
    pub const FLAGS: usize = 48;
    pub const VERSION_MAJOR: usize = 52;
    pub const VERSION_MINOR: usize = 54;
    pub const DATAOFF: usize = 56;
    pub const NPFNS: usize = 64;
    pub const MODE: usize = 72;
    pub const START_PAD: usize = 76;
    pub const END_TRUNC: usize = 80;
    pub const ALIGN: usize = 84;
    pub const PAGE_SIZE: usize = 88;
    pub const PAGE_STRUCT_SIZE: usize = 92;
    pub const CHECKSUM: usize = 4088;
}

/// The namespace personality an info block gives (ndctl's mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `NVDIMM_PFN_INFO`: a block device with struct pages (fsdax).
    Fsdax,
    /// `NVDIMM_DAX_INFO`: a device-dax character device (devdax).
    Devdax,
}

impl Kind {
    pub fn signature(self) -> &'static [u8; 16] {
        match self {
            Kind::Fsdax => PFN_SIG,
            Kind::Devdax => DAX_SIG,
        }
    }

    /// ndctl's name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Fsdax => "fsdax",
            Kind::Devdax => "devdax",
        }
    }
}

/// `enum nd_pfn_mode`: where the memmap lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PfnMode {
    /// `PFN_MODE_RAM` (ndctl `--map=mem`): in System RAM.
    Ram = 1,
    /// `PFN_MODE_PMEM` (ndctl `--map=dev`): on the device, below `dataoff`.
    Pmem = 2,
}

impl PfnMode {
    /// ndctl's `map` name.
    pub fn map_name(self) -> &'static str {
        match self {
            PfnMode::Ram => "mem",
            PfnMode::Pmem => "dev",
        }
    }
}

/// The fields of an info block (little-endian on the media).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PfnSb {
    pub kind: Kind,
    pub uuid: [u8; 16],
    pub parent_uuid: [u8; 16],
    pub flags: u32,
    pub version_major: u16,
    pub version_minor: u16,
    /// Relative to the namespace start plus `start_pad`.
    pub dataoff: u64,
    pub npfns: u64,
    pub mode: u32,
    pub start_pad: u32,
    pub end_trunc: u32,
    pub align: u32,
    pub page_size: u32,
    pub page_struct_size: u16,
}

/// `nd_fletcher64` over little-endian 32-bit words.
pub fn fletcher64(bytes: &[u8]) -> u64 {
    let (mut lo, mut hi) = (0u32, 0u64);
    for w in bytes.as_chunks::<4>().0 {
        lo = lo.wrapping_add(u32::from_le_bytes(*w));
        hi = hi.wrapping_add(u64::from(lo));
    }
    (hi << 32) | u64::from(lo)
}

/// `nd_sb_checksum`: fletcher64 of the block with its checksum field zeroed.
pub fn checksum(block: &[u8; INFO_SIZE]) -> u64 {
    let mut copy = *block;
    copy[off::CHECKSUM..].fill(0);
    fletcher64(&copy)
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

impl PfnSb {
    /// The block as Linux writes it: zero padding, checksum last.
    pub fn to_bytes(&self) -> [u8; INFO_SIZE] {
        let mut b = [0u8; INFO_SIZE];
        b[..16].copy_from_slice(self.kind.signature());
        b[off::UUID..off::UUID + 16].copy_from_slice(&self.uuid);
        b[off::PARENT_UUID..off::PARENT_UUID + 16].copy_from_slice(&self.parent_uuid);
        b[off::FLAGS..off::FLAGS + 4].copy_from_slice(&self.flags.to_le_bytes());
        b[off::VERSION_MAJOR..off::VERSION_MAJOR + 2]
            .copy_from_slice(&self.version_major.to_le_bytes());
        b[off::VERSION_MINOR..off::VERSION_MINOR + 2]
            .copy_from_slice(&self.version_minor.to_le_bytes());
        b[off::DATAOFF..off::DATAOFF + 8].copy_from_slice(&self.dataoff.to_le_bytes());
        b[off::NPFNS..off::NPFNS + 8].copy_from_slice(&self.npfns.to_le_bytes());
        b[off::MODE..off::MODE + 4].copy_from_slice(&self.mode.to_le_bytes());
        b[off::START_PAD..off::START_PAD + 4].copy_from_slice(&self.start_pad.to_le_bytes());
        b[off::END_TRUNC..off::END_TRUNC + 4].copy_from_slice(&self.end_trunc.to_le_bytes());
        b[off::ALIGN..off::ALIGN + 4].copy_from_slice(&self.align.to_le_bytes());
        b[off::PAGE_SIZE..off::PAGE_SIZE + 4].copy_from_slice(&self.page_size.to_le_bytes());
        b[off::PAGE_STRUCT_SIZE..off::PAGE_STRUCT_SIZE + 2]
            .copy_from_slice(&self.page_struct_size.to_le_bytes());
        let sum = checksum(&b);
        b[off::CHECKSUM..].copy_from_slice(&sum.to_le_bytes());
        b
    }

    /// The fields of `block`, without any check beyond the signature.
    fn read(kind: Kind, b: &[u8; INFO_SIZE]) -> Self {
        let mut uuid = [0; 16];
        uuid.copy_from_slice(&b[off::UUID..off::UUID + 16]);
        let mut parent_uuid = [0; 16];
        parent_uuid.copy_from_slice(&b[off::PARENT_UUID..off::PARENT_UUID + 16]);
        PfnSb {
            kind,
            uuid,
            parent_uuid,
            flags: le32(b, off::FLAGS),
            version_major: le16(b, off::VERSION_MAJOR),
            version_minor: le16(b, off::VERSION_MINOR),
            dataoff: le64(b, off::DATAOFF),
            npfns: le64(b, off::NPFNS),
            mode: le32(b, off::MODE),
            start_pad: le32(b, off::START_PAD),
            end_trunc: le32(b, off::END_TRUNC),
            align: le32(b, off::ALIGN),
            page_size: le32(b, off::PAGE_SIZE),
            page_struct_size: le16(b, off::PAGE_STRUCT_SIZE),
        }
    }
}

/// Why an info block is not honoured (the namespace stays raw).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// The first bytes name an NVDIMM info block this kernel does not know.
    Signature([u8; 16]),
    /// A BTT (sector mode) arena: not supported.
    Btt,
    Checksum {
        stored: u64,
        computed: u64,
    },
    /// Not an io namespace's (all-zero) parent uuid.
    ParentUuid,
    /// A major version other than 1.
    Version {
        major: u16,
        minor: u16,
    },
    /// Neither `PFN_MODE_RAM` nor `PFN_MODE_PMEM`.
    Mode(u32),
    PageSize(u32),
    PageStructSize(u16),
    /// Not a supported power of two, or larger than the namespace.
    Align(u64),
    /// `dataoff` at or beyond the end of the namespace's usable part.
    DataOff {
        dataoff: u64,
        size: u64,
    },
    /// `dataoff` not page aligned, or the data not aligned to `align`.
    DataAlign {
        dataoff: u64,
        align: u64,
    },
    /// Start or end of the mapped range not sub-section aligned.
    Pad {
        start_pad: u32,
        end_trunc: u32,
    },
    /// More pages than the data area holds.
    Npfns {
        npfns: u64,
        max: u64,
    },
    /// The memmap of the range does not fit between the info block and
    /// `dataoff`.
    MemmapFit {
        need: u64,
        room: u64,
    },
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Signature(s) => {
                f.write_str("unknown signature \"")?;
                for &c in s.iter().take_while(|&&c| c != 0) {
                    let c = if c.is_ascii_graphic() { c as char } else { '?' };
                    write!(f, "{c}")?;
                }
                f.write_str("\"")
            }
            Self::Btt => f.write_str("a BTT (sector mode) info block, not supported"),
            Self::Checksum { stored, computed } => {
                write!(f, "bad checksum {stored:#018x} (computed {computed:#018x})")
            }
            Self::ParentUuid => f.write_str("parent uuid is not this namespace's (all zero)"),
            Self::Version { major, minor } => {
                write!(f, "version {major}.{minor}: only major version 1 is known")
            }
            Self::Mode(m) => write!(f, "mode {m} is neither 1 (map=mem) nor 2 (map=dev)"),
            Self::PageSize(s) => write!(f, "page_size {s} is larger than this kernel's 4096"),
            Self::PageStructSize(s) => {
                write!(f, "page_struct_size {s} is smaller than this kernel's {STRUCT_PAGE_SIZE}")
            }
            Self::Align(a) => {
                write!(f, "align {a:#x} is not a supported power of two within the namespace")
            }
            Self::DataOff { dataoff, size } => {
                write!(f, "dataoff {dataoff:#x} is beyond the namespace's usable {size:#x} bytes")
            }
            Self::DataAlign { dataoff, align } => {
                write!(f, "dataoff {dataoff:#x} does not put the data on a {align:#x} boundary")
            }
            Self::Pad { start_pad, end_trunc } => write!(
                f,
                "start_pad {start_pad:#x} / end_trunc {end_trunc:#x} leave the range not 2 MiB aligned"
            ),
            Self::Npfns { npfns, max } => {
                write!(f, "npfns {npfns} is more than the {max} pages of the data area")
            }
            Self::MemmapFit { need, room } => {
                write!(f, "the memmap needs {need:#x} bytes below dataoff, there are {room:#x}")
            }
        }
    }
}

/// Why a layout cannot be made (`nd_pfn_init`'s refusals).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutError {
    /// `EINVAL`: the namespace start is not 2 MiB aligned.
    StartMisaligned { start: u64 },
    /// `EINVAL`: an alignment x86_64 does not support.
    Align { align: u64 },
    /// `ENXIO`: nothing would be left for data.
    TooSmall { size: u64, align: u64 },
}

impl LayoutError {
    pub fn errno(&self) -> &'static str {
        match self {
            Self::StartMisaligned { .. } | Self::Align { .. } => "EINVAL",
            Self::TooSmall { .. } => "ENXIO",
        }
    }
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.errno();
        match *self {
            Self::StartMisaligned { start } => {
                write!(f, "{e}: namespace start {start:#x} is not 2 MiB aligned")
            }
            Self::Align { align } => write!(f, "{e}: align {align:#x} is not 4K, 2M or 1G"),
            Self::TooSmall { size, align } => {
                write!(f, "{e}: a {size:#x}-byte namespace leaves no data at align {align:#x}")
            }
        }
    }
}

/// An honoured info block, placed on its namespace `[start, start + size)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub start: u64,
    pub size: u64,
    pub sb: PfnSb,
}

impl Layout {
    pub fn kind(&self) -> Kind {
        self.sb.kind
    }

    pub fn mode(&self) -> PfnMode {
        if self.sb.mode == PfnMode::Ram as u32 { PfnMode::Ram } else { PfnMode::Pmem }
    }

    /// The effective alignment (`1 << ilog2(dataoff)` when the block has none).
    pub fn align(&self) -> u64 {
        effective_align(&self.sb)
    }

    /// The range handed to `memremap_pages`: the namespace less
    /// `start_pad` and `end_trunc`.
    pub fn range(&self) -> (u64, u64) {
        let s = self.start + u64::from(self.sb.start_pad);
        (s, self.start + self.size - u64::from(self.sb.end_trunc))
    }

    /// The data area `[base + start_pad + dataoff, end - end_trunc)`.
    pub fn data(&self) -> (u64, u64) {
        let (s, e) = self.range();
        (s + self.sb.dataoff, e)
    }

    /// Where the memmap may live: `[start + start_pad + 8K, data start)`
    /// for `map=dev`, nothing for `map=mem`.
    pub fn memmap_area(&self) -> Option<(u64, u64)> {
        let (s, _) = self.range();
        (self.mode() == PfnMode::Pmem).then(|| (s + INFO_RESERVE, s + self.sb.dataoff))
    }

    /// `__nvdimm_setup_pfn`'s altmap (`map=dev` only): based at the
    /// sub-section below the range, `reserve` covering the info-block area,
    /// `free` the pages up to `dataoff`.
    pub fn altmap(&self) -> Option<Altmap> {
        self.memmap_area()?;
        let (s, _) = self.range();
        let pfn = phys_pfn(s);
        let base_pfn = pfn.align_down(PAGES_PER_SUBSECTION);
        Some(Altmap {
            base_pfn,
            reserve: (INFO_RESERVE >> PAGE_SHIFT) + (pfn - base_pfn),
            free: (self.sb.dataoff - INFO_RESERVE) >> PAGE_SHIFT,
            alloc: 0,
        })
    }
}

fn effective_align(sb: &PfnSb) -> u64 {
    match sb.align {
        0 if sb.dataoff == 0 => 0,
        0 => 1 << sb.dataoff.ilog2(),
        a => u64::from(a),
    }
}

/// The memmap bytes a `map=dev` range needs from its altmap, as Tessera's
/// vmemmap populates it: one 2 MiB block per section the range touches
/// (whole sections), 4 KiB pages otherwise. `None` for partial sections,
/// whose memmap lives in System RAM (as x86_64 Linux's `vmemmap_populate`
/// does for less than a section).
pub fn altmap_need(range: (u64, u64)) -> Option<u64> {
    let section = PAGES_PER_SECTION << PAGE_SHIFT;
    let (s, e) = range;
    if !s.is_multiple_of(section) || !e.is_multiple_of(section) {
        return None;
    }
    Some((e - s) / section * (2 << 20))
}

/// A version 4 (random) uuid made from `seed`, for a new info block.
pub fn uuid_v4(seed: u64) -> [u8; 16] {
    let mut u = [0u8; 16];
    u[..8].copy_from_slice(&crate::splitmix64(seed).to_le_bytes());
    u[8..].copy_from_slice(&crate::splitmix64(seed ^ 0x5555_5555_5555_5555).to_le_bytes());
    u[6] = (u[6] & 0x0f) | 0x40;
    u[8] = (u[8] & 0x3f) | 0x80;
    u
}

/// `nd_pfn_init` for a namespace `[start, start + size)` with no info
/// block: the layout Linux writes for `kind`, `mode` and `align`.
pub fn init(
    kind: Kind,
    mode: PfnMode,
    start: u64,
    size: u64,
    align: u64,
    uuid: [u8; 16],
) -> Result<Layout, LayoutError> {
    if !SUPPORTED_ALIGNS.contains(&align) {
        return Err(LayoutError::Align { align });
    }
    let align_eff = align.max(COMPAT_ALIGN);
    if !start.is_multiple_of(COMPAT_ALIGN) {
        return Err(LayoutError::StartMisaligned { start });
    }
    let too_small = LayoutError::TooSmall { size, align };
    if size <= INFO_RESERVE {
        return Err(too_small);
    }
    let end = start.checked_add(size).ok_or(too_small)?;
    let npfns = (size - INFO_RESERVE) >> PAGE_SHIFT;
    let end_trunc = end - end / align_eff * align_eff;
    let offset = match mode {
        PfnMode::Pmem => {
            let map = MAX_STRUCT_PAGE_SIZE * npfns;
            (start + INFO_RESERVE + map).next_multiple_of(align_eff) - start
        }
        PfnMode::Ram => (start + INFO_RESERVE).next_multiple_of(align_eff) - start,
    };
    // Linux's unsigned `size - end_trunc` wraps when the alignment is larger
    // than the namespace; here that is a namespace too small for it.
    if size.checked_sub(end_trunc).is_none_or(|usable| offset >= usable) {
        return Err(too_small);
    }
    let sb = PfnSb {
        kind,
        uuid,
        parent_uuid: [0; 16],
        flags: 0,
        version_major: 1,
        version_minor: 4,
        dataoff: offset,
        npfns: (size - offset - end_trunc) >> PAGE_SHIFT,
        mode: mode as u32,
        start_pad: 0,
        end_trunc: end_trunc as u32,
        align: align as u32,
        page_size: PAGE_SIZE as u32,
        page_struct_size: MAX_STRUCT_PAGE_SIZE as u16,
    };
    Ok(Layout { start, size, sb })
}

/// `nd_pfn_validate` on the 4 KiB at namespace offset [`INFO_OFFSET`]:
/// `Ok(None)` when there is no info block (raw), `Ok(Some)` for one this
/// kernel honours, `Err` naming what is wrong with the rest. Stricter than
/// Linux where Linux would go on with a damaged block: an unknown major
/// version, more pages than the data area holds, or a memmap that does not
/// fit below `dataoff` are refused rather than truncated or retried.
pub fn validate(block: &[u8; INFO_SIZE], start: u64, size: u64) -> Result<Option<Layout>, Invalid> {
    let sig = &block[..16];
    let kind = if sig == PFN_SIG {
        Kind::Fsdax
    } else if sig == DAX_SIG {
        Kind::Devdax
    } else if sig.starts_with(b"BTT_ARENA_INFO") {
        return Err(Invalid::Btt);
    } else if sig.starts_with(b"NVDIMM_") {
        return Err(Invalid::Signature(sig.try_into().expect("16 bytes")));
    } else {
        return Ok(None);
    };
    let stored = le64(block, off::CHECKSUM);
    let computed = checksum(block);
    if stored != computed {
        return Err(Invalid::Checksum { stored, computed });
    }
    let mut sb = PfnSb::read(kind, block);
    if sb.parent_uuid != [0; 16] {
        return Err(Invalid::ParentUuid);
    }
    if sb.version_major != 1 {
        return Err(Invalid::Version { major: sb.version_major, minor: sb.version_minor });
    }
    // Fields added by later minor versions read as their defaults.
    if sb.version_minor < 1 {
        (sb.start_pad, sb.end_trunc) = (0, 0);
    }
    if sb.version_minor < 2 {
        sb.align = 0;
    }
    if sb.version_minor < 4 {
        (sb.page_struct_size, sb.page_size) = (64, PAGE_SIZE as u32);
    }
    let mode = match sb.mode {
        1 => PfnMode::Ram,
        2 => PfnMode::Pmem,
        m => return Err(Invalid::Mode(m)),
    };
    if u64::from(sb.page_size) > PAGE_SIZE && mode == PfnMode::Pmem {
        return Err(Invalid::PageSize(sb.page_size));
    }
    if u64::from(sb.page_struct_size) < STRUCT_PAGE_SIZE && mode == PfnMode::Pmem {
        return Err(Invalid::PageStructSize(sb.page_struct_size));
    }
    let align = effective_align(&sb);
    // Linux holds only device-dax to the supported sizes; any power of two
    // will do for fsdax.
    let supported = match kind {
        Kind::Devdax => SUPPORTED_ALIGNS.contains(&align),
        Kind::Fsdax => align.is_power_of_two(),
    };
    if !supported || align > size {
        return Err(Invalid::Align(align));
    }
    let (dataoff, start_pad, end_trunc) =
        (sb.dataoff, u64::from(sb.start_pad), u64::from(sb.end_trunc));
    let usable = size.saturating_sub(start_pad + end_trunc);
    if dataoff >= usable {
        return Err(Invalid::DataOff { dataoff, size: usable });
    }
    if !(start + start_pad + dataoff).is_multiple_of(align) || !dataoff.is_multiple_of(PAGE_SIZE) {
        return Err(Invalid::DataAlign { dataoff, align });
    }
    if !(start + start_pad).is_multiple_of(COMPAT_ALIGN)
        || !(start + size - end_trunc).is_multiple_of(COMPAT_ALIGN)
    {
        return Err(Invalid::Pad { start_pad: sb.start_pad, end_trunc: sb.end_trunc });
    }
    let max = (usable - dataoff) >> PAGE_SHIFT;
    if sb.npfns > max {
        return Err(Invalid::Npfns { npfns: sb.npfns, max });
    }
    if mode == PfnMode::Ram && dataoff < INFO_RESERVE {
        return Err(Invalid::DataOff { dataoff, size: usable });
    }
    let layout = Layout { start, size, sb };
    if mode == PfnMode::Pmem {
        let room = dataoff.saturating_sub(INFO_RESERVE);
        let (s, e) = layout.range();
        // The altmap's first block starts on a 2 MiB boundary after the
        // reserve: what precedes it is lost to alignment.
        let lost = (s + INFO_RESERVE).next_multiple_of(2 << 20) - (s + INFO_RESERVE);
        if let Some(need) = altmap_need((s, e))
            && need + lost > room
        {
            return Err(Invalid::MemmapFit { need: need + lost, room });
        }
        if dataoff < INFO_RESERVE {
            return Err(Invalid::MemmapFit { need: 0, room: 0 });
        }
    }
    Ok(Some(layout))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::page::Pfn;

    const G: u64 = 1 << 30;
    const M: u64 = 1 << 20;

    fn fsdax(start: u64, size: u64) -> Layout {
        init(Kind::Fsdax, PfnMode::Pmem, start, size, 2 * M, [7; 16]).unwrap()
    }

    #[test]
    fn linux_layout_of_a_256m_nvdimm() {
        // What Linux 6.1 wrote on QEMU's 256 MiB NVDIMM at 4 GiB.
        let l = fsdax(4 * G, 256 * M);
        assert_eq!(l.sb.dataoff, 6 * M);
        assert_eq!(l.sb.npfns, 64000);
        assert_eq!((l.sb.start_pad, l.sb.end_trunc), (0, 0));
        assert_eq!((l.sb.version_major, l.sb.version_minor), (1, 4));
        assert_eq!((l.sb.page_size, l.sb.page_struct_size, l.sb.mode), (4096, 64, 2));
        assert_eq!(l.data(), (0x1_0060_0000, 0x1_1000_0000));
        assert_eq!(l.data().1 - l.data().0, 262_144_000);
        assert_eq!(l.memmap_area(), Some((4 * G + 8192, 4 * G + 6 * M)));
        let a = l.altmap().unwrap();
        assert_eq!((a.base_pfn, a.reserve, a.free), (Pfn(0x100000), 2, 1534));
    }

    #[test]
    fn layout_of_a_64g_nvdimm() {
        let l = fsdax(256 * G, 64 * G);
        // 64 bytes for each of (64 GiB - 8 KiB) / 4 KiB pages, after 8 KiB,
        // rounded up to 2 MiB.
        assert_eq!(l.sb.dataoff, G + 2 * M);
        assert_eq!(l.sb.npfns, (64 * G - G - 2 * M) / 4096);
        assert!(validate(&l.sb.to_bytes(), 256 * G, 64 * G).unwrap().is_some());
    }

    #[test]
    fn map_mem_and_1g_align() {
        let l = init(Kind::Devdax, PfnMode::Ram, 4 * G, 256 * M, 2 * M, [1; 16]).unwrap();
        assert_eq!(l.sb.dataoff, 2 * M);
        assert_eq!(l.memmap_area(), None);
        assert_eq!(l.altmap(), None);
        // 1 GiB alignment on a 4 GiB-aligned 2 GiB namespace.
        let l = init(Kind::Fsdax, PfnMode::Pmem, 4 * G, 2 * G, G, [1; 16]).unwrap();
        assert_eq!(l.sb.dataoff, G);
        assert_eq!(l.sb.end_trunc, 0);
        // ... and nothing left on a 1 GiB one.
        assert_eq!(
            init(Kind::Fsdax, PfnMode::Pmem, 4 * G, G, G, [1; 16]),
            Err(LayoutError::TooSmall { size: G, align: G })
        );
        // An end that is not aligned is truncated.
        let l = init(Kind::Fsdax, PfnMode::Pmem, 4 * G, 2 * G + 4 * M, G, [1; 16]).unwrap();
        assert_eq!(u64::from(l.sb.end_trunc), 4 * M);
    }

    #[test]
    fn init_refusals() {
        let r = |start, align| init(Kind::Fsdax, PfnMode::Pmem, start, 256 * M, align, [0; 16]);
        assert_eq!(
            r(4 * G + 4096, 2 * M),
            Err(LayoutError::StartMisaligned { start: 4 * G + 4096 })
        );
        assert_eq!(r(4 * G, 3 * M), Err(LayoutError::Align { align: 3 * M }));
        assert!(init(Kind::Fsdax, PfnMode::Pmem, 4 * G, 2 * M, 2 * M, [0; 16]).is_err());
        // 1 GiB alignment on 32 MiB that ends 0x34000000 past a 1 GiB
        // boundary: end_trunc is larger than the namespace.
        assert_eq!(
            init(Kind::Fsdax, PfnMode::Pmem, 0x7200_0000, 32 * M, G, [0; 16]),
            Err(LayoutError::TooSmall { size: 32 * M, align: G })
        );
        // A 32 MiB legacy range inside a RAM section: 2 MiB of metadata.
        let l = init(Kind::Devdax, PfnMode::Pmem, 0x7200_0000, 32 * M, 2 * M, [0; 16]).unwrap();
        assert_eq!((l.sb.dataoff, l.sb.npfns), (2 * M, 7680));
        assert_eq!(altmap_need(l.range()), None, "less than a section: memmap in RAM");
    }

    #[test]
    fn uuids_are_version_4_and_differ_by_seed() {
        let (a, b) = (uuid_v4(1), uuid_v4(2));
        assert_ne!(a, b);
        assert_eq!((a[6] >> 4, a[8] >> 6), (4, 0b10));
    }

    #[test]
    fn round_trip_and_checksum() {
        let l = fsdax(4 * G, 256 * M);
        let b = l.sb.to_bytes();
        assert_eq!(&b[..16], PFN_SIG);
        assert_eq!(le64(&b, off::CHECKSUM), checksum(&b));
        assert_eq!(validate(&b, 4 * G, 256 * M), Ok(Some(l)));
        // fletcher64 of known words: lo = 1 + 2 = 3, hi = 1 + 3 = 4.
        assert_eq!(fletcher64(&[1, 0, 0, 0, 2, 0, 0, 0]), (4 << 32) | 3);
    }

    #[test]
    fn raw_devices_have_no_block() {
        assert_eq!(validate(&[0; INFO_SIZE], 4 * G, 256 * M), Ok(None));
        assert_eq!(validate(&[0xa5; INFO_SIZE], 4 * G, 256 * M), Ok(None));
    }

    /// One corrupt block per rule, each refused with its own reason.
    #[test]
    fn corrupt_blocks_are_refused() {
        let good = fsdax(4 * G, 256 * M);
        let check = |edit: &dyn Fn(&mut PfnSb), want: &dyn Fn(Invalid) -> bool| {
            let mut sb = good.sb;
            edit(&mut sb);
            let e = validate(&sb.to_bytes(), 4 * G, 256 * M).unwrap_err();
            assert!(want(e), "{e:?}");
            // Every reason prints as one line.
            assert!(!alloc::format!("{e}").contains('\n'));
        };
        check(&|s| s.parent_uuid = [1; 16], &|e| e == Invalid::ParentUuid);
        check(&|s| s.version_major = 2, &|e| matches!(e, Invalid::Version { major: 2, .. }));
        check(&|s| s.mode = 3, &|e| e == Invalid::Mode(3));
        check(&|s| s.page_size = 8192, &|e| e == Invalid::PageSize(8192));
        check(&|s| s.page_struct_size = 56, &|e| e == Invalid::PageStructSize(56));
        check(&|s| s.align = 3 * M as u32, &|e| e == Invalid::Align(3 * M));
        check(&|s| s.align = 2 * G as u32, &|e| e == Invalid::Align(2 * G));
        check(&|s| s.dataoff = 256 * M, &|e| matches!(e, Invalid::DataOff { .. }));
        check(&|s| s.dataoff = 6 * M + 4096, &|e| matches!(e, Invalid::DataAlign { .. }));
        check(&|s| s.end_trunc = 4096, &|e| matches!(e, Invalid::Pad { .. }));
        check(&|s| s.npfns = 64001, &|e| e == Invalid::Npfns { npfns: 64001, max: 64000 });
        check(&|s| s.dataoff = 4 * M, &|e| matches!(e, Invalid::MemmapFit { .. }));
        // The checksum and the signature are checked on the bytes.
        let mut b = good.sb.to_bytes();
        b[200] ^= 1;
        assert!(matches!(validate(&b, 4 * G, 256 * M), Err(Invalid::Checksum { .. })));
        let mut b = good.sb.to_bytes();
        b[14] = b'X';
        assert!(matches!(validate(&b, 4 * G, 256 * M), Err(Invalid::Signature(_))));
        let mut b = [0; INFO_SIZE];
        b[..16].copy_from_slice(b"BTT_ARENA_INFO\0\0");
        assert_eq!(validate(&b, 4 * G, 256 * M), Err(Invalid::Btt));
    }

    #[test]
    fn older_minor_versions_read_defaults() {
        let mut sb = fsdax(4 * G, 256 * M).sb;
        sb.version_minor = 0;
        sb.align = 12345;
        sb.end_trunc = 4096;
        // align falls back to 1 << ilog2(dataoff) = 4 MiB, which 6 MiB is
        // not aligned to: refused, as Linux refuses it.
        assert!(matches!(
            validate(&sb.to_bytes(), 4 * G, 256 * M),
            Err(Invalid::DataAlign { align, .. }) if align == 4 * M
        ));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = rng::Rng::new(0x9e37_79b9_7f4a_7c15);
        for i in 0..2000 {
            let mut sb = fsdax(4 * G, 256 * M).sb;
            let mut b = sb.to_bytes();
            for _ in 0..(i % 8) {
                let at = rng.below(96) as usize;
                b[at] = rng.next_u64() as u8;
            }
            let sum = checksum(&b);
            b[off::CHECKSUM..].copy_from_slice(&sum.to_le_bytes());
            if let Ok(Some(l)) = validate(&b, 4 * G, 256 * M) {
                let (s, e) = l.data();
                assert!(4 * G <= s && s < e && e <= 4 * G + 256 * M);
                sb = l.sb;
                assert!(sb.npfns <= (e - s) >> PAGE_SHIFT);
            }
        }
    }
}

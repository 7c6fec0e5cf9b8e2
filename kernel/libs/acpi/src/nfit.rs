//! The NVDIMM Firmware Interface Table (ACPI 6.4 §5.2.26): parser,
//! validation of persistent-memory ranges, and synthesis.
//!
//! Layout: the 36-byte table header, 4 reserved bytes, then structures from
//! offset 40, each starting with `type: u16, length: u16` and followed at
//! `length` bytes by the next.
//!
//! Refusals (each one [`NfitError`], one line), keeping the rest of the table
//! whenever it can still be located:
//! - a structure whose length is wrong for its type (SPA not 56/64, memdev
//!   not 48, control region not 32/80, interleave or flush hint not matching
//!   their counts, ...) is skipped and parsing continues at `length`;
//! - a length below 4 (zero included) or running past the table end stops
//!   parsing: the rest cannot be located;
//! - an SPA range with index 0 (reserved) is refused, and so is a later SPA
//!   range reusing an index already taken.
//!
//! Several NFITs: Linux reads only the first. [`combine`] uses all of them,
//! in order, as one list of structures: SPA indexes must be unique across
//! all tables and the first one wins (a later duplicate is refused), and an
//! overlapping persistent range is refused by [`validate`], again keeping the
//! first.
//!
//! [`validate`] decides which persistent-memory SPA ranges become PMEM: 2 MiB
//! aligned base and length, non-empty, below `1 << max_phys_bits`, outside
//! System RAM, and overlapping no other SPA range kept. Other SPA ranges
//! (volatile, control, block data window, unknown GUIDs) are kept for
//! display but never become PMEM.
//!
//! Structure lines (printed without the `nfit: ` prefix, see the crate docs):
//!
//! ```text
//! spa 1: flags 0x0 proximity 0 type pmem [mem 0x000000003a000000-0x000000003bffffff] attributes 0x8008
//! memdev handle 0x1 spa 2 control 3 size 0x10000000 offset 0x0
//! ```

use alloc::vec::Vec;
use core::fmt;

use crate::sdt::{Fixed, HEADER_LEN};
use crate::{bytes_at, u16_at, u32_at, u64_at};

/// The NFIT signature.
pub const SIGNATURE: [u8; 4] = *b"NFIT";
/// Offset of the first structure (header + 4 reserved bytes).
pub const STRUCTURES_OFFSET: usize = HEADER_LEN + 4;
/// Alignment required of a persistent range's base and length: the memory
/// model's sub-section, the unit ranges are hot-added in.
pub const PMEM_ALIGN: u64 = mm::sparse::SUBSECTION_SIZE;
/// OEM ID of tables built by Tessera.
pub const TESSERA_OEM_ID: [u8; 6] = *b"TESSRA";
/// Creator ID of tables built by [`build_nfit`].
pub const TESSERA_CREATOR_ID: [u8; 4] = *b"TSRA";
/// `EFI_MEMORY_WB | EFI_MEMORY_NV`, the attributes QEMU gives its NVDIMMs.
pub const ATTR_WB_NV: u64 = 0x8008;
/// SPA range flag: the proximity domain is valid.
pub const SPA_FLAG_PROXIMITY_VALID: u16 = 0x2;
/// Length of an SPA range structure without the location cookie.
const SPA_LEN: usize = 56;

/// A GUID as stored in ACPI tables (first three fields little-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// Builds the stored form from the GUID written as one number, e.g.
    /// `0x66F0D379_B4F3_4074_AC43_0D3318B78CDB`.
    pub const fn from_u128(v: u128) -> Self {
        let [a0, a1, a2, a3] = ((v >> 96) as u32).to_le_bytes();
        let [b0, b1] = ((v >> 80) as u16).to_le_bytes();
        let [c0, c1] = ((v >> 64) as u16).to_le_bytes();
        let [e0, e1, e2, e3, e4, e5, e6, e7] = (v as u64).to_be_bytes();
        Self([a0, a1, a2, a3, b0, b1, c0, c1, e0, e1, e2, e3, e4, e5, e6, e7])
    }

    /// Volatile memory.
    pub const VOLATILE: Self = Self::from_u128(0x7305944F_FDDA_44E3_B16C_3F22D252E5D0);
    /// Byte-addressable persistent memory.
    pub const PERSISTENT: Self = Self::from_u128(0x66F0D379_B4F3_4074_AC43_0D3318B78CDB);
    /// NVDIMM control region.
    pub const CONTROL_REGION: Self = Self::from_u128(0x92F701F6_13B4_405D_910B_299367E8234C);
    /// NVDIMM block data window region.
    pub const BLOCK_DATA_WINDOW: Self = Self::from_u128(0x91AF0530_5D86_470E_A6B0_0A2DB9408249);

    /// Short name of a known range type.
    pub fn name(&self) -> Option<&'static str> {
        match *self {
            Self::PERSISTENT => Some("pmem"),
            Self::VOLATILE => Some("volatile"),
            Self::CONTROL_REGION => Some("control"),
            Self::BLOCK_DATA_WINDOW => Some("block-data-window"),
            _ => None,
        }
    }
}

impl fmt::Display for Guid {
    /// `66F0D379-B4F3-4074-AC43-0D3318B78CDB`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = &self.0;
        let d1 = u32::from_le_bytes([g[0], g[1], g[2], g[3]]);
        let d2 = u16::from_le_bytes([g[4], g[5]]);
        let d3 = u16::from_le_bytes([g[6], g[7]]);
        write!(f, "{d1:08X}-{d2:04X}-{d3:04X}-{:02X}{:02X}-", g[8], g[9])?;
        g[10..].iter().try_for_each(|b| write!(f, "{b:02X}"))
    }
}

/// Type 0: System Physical Address range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaRange {
    /// SPA range index (1..; 0 is reserved).
    pub index: u16,
    /// Flags (bit 0: control region for hot add only, bit 1: proximity valid).
    pub flags: u16,
    /// Proximity domain.
    pub proximity_domain: u32,
    /// Address range type.
    pub range_type: Guid,
    /// Base physical address.
    pub base: u64,
    /// Length in bytes.
    pub length: u64,
    /// EFI memory attributes.
    pub memory_attributes: u64,
    /// ACPI 6.4 location cookie (64-byte form only).
    pub location_cookie: Option<u64>,
}

impl SpaRange {
    /// Whether the range is byte-addressable persistent memory.
    pub fn is_pmem(&self) -> bool {
        self.range_type == Guid::PERSISTENT
    }

    /// Exclusive end, or `None` when empty or past `u64::MAX`.
    pub fn end(&self) -> Option<u64> {
        self.base.checked_add(self.length).filter(|_| self.length != 0)
    }

    /// The structure's bytes (56, or 64 with a location cookie).
    pub fn to_bytes(&self) -> Vec<u8> {
        let len: u16 = if self.location_cookie.is_some() { 64 } else { 56 };
        let mut b = Vec::with_capacity(len.into());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&len.to_le_bytes());
        b.extend_from_slice(&self.index.to_le_bytes());
        b.extend_from_slice(&self.flags.to_le_bytes());
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(&self.proximity_domain.to_le_bytes());
        b.extend_from_slice(&self.range_type.0);
        b.extend_from_slice(&self.base.to_le_bytes());
        b.extend_from_slice(&self.length.to_le_bytes());
        b.extend_from_slice(&self.memory_attributes.to_le_bytes());
        if let Some(cookie) = self.location_cookie {
            b.extend_from_slice(&cookie.to_le_bytes());
        }
        b
    }
}

/// Type 1: memory device to SPA range map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemDevice {
    /// NFIT device handle.
    pub handle: u32,
    /// NVDIMM physical ID.
    pub physical_id: u16,
    /// Region ID.
    pub region_id: u16,
    /// SPA range index (0: none).
    pub spa_index: u16,
    /// Control region index.
    pub control_region_index: u16,
    /// Region size.
    pub region_size: u64,
    /// Region offset.
    pub region_offset: u64,
    /// Physical address region base (DPA).
    pub region_dpa: u64,
    /// Interleave structure index.
    pub interleave_index: u16,
    /// Interleave ways.
    pub interleave_ways: u16,
    /// State flags (save/restore/flush failed, not armed, ...).
    pub flags: u16,
}

/// Type 2: interleave description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interleave {
    /// Interleave structure index.
    pub index: u16,
    /// Line size in bytes.
    pub line_size: u32,
    /// Line offsets, one per line.
    pub offsets: Vec<u32>,
}

/// Type 4: NVDIMM control region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlRegion {
    /// Control region index.
    pub index: u16,
    /// Vendor ID.
    pub vendor_id: u16,
    /// Device ID.
    pub device_id: u16,
    /// Revision ID.
    pub revision_id: u16,
    /// Subsystem vendor ID.
    pub subsystem_vendor_id: u16,
    /// Subsystem device ID.
    pub subsystem_device_id: u16,
    /// Subsystem revision ID.
    pub subsystem_revision_id: u16,
    /// Valid fields.
    pub valid_fields: u8,
    /// Manufacturing location.
    pub manufacturing_location: u8,
    /// Manufacturing date.
    pub manufacturing_date: u16,
    /// Serial number.
    pub serial_number: u32,
    /// Region format interface code.
    pub format_code: u16,
    /// Number of block control windows.
    pub windows: u16,
    /// Block control window fields (80-byte form only).
    pub block: Option<BlockControl>,
}

/// The block control window part of an 80-byte control region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockControl {
    /// Size of a block control window.
    pub window_size: u64,
    /// Command register offset.
    pub command_offset: u64,
    /// Command register size.
    pub command_size: u64,
    /// Status register offset.
    pub status_offset: u64,
    /// Status register size.
    pub status_size: u64,
    /// Control region flags.
    pub flags: u16,
}

/// Type 5: NVDIMM block data window region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockDataWindow {
    /// Control region index.
    pub control_region_index: u16,
    /// Number of block data windows.
    pub windows: u16,
    /// Block data window start offset.
    pub offset: u64,
    /// Size of a block data window.
    pub size: u64,
    /// Block accessible memory capacity.
    pub capacity: u64,
    /// Start address of the first block in block accessible memory.
    pub start_address: u64,
}

/// Type 6: flush hint addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlushHint {
    /// NFIT device handle.
    pub handle: u32,
    /// Flush hint addresses.
    pub addresses: Vec<u64>,
}

/// Type 7: platform capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Highest valid capability bit.
    pub highest_valid: u8,
    /// Capability bits (0: CPU cache flush on power loss, 1: memory
    /// controller flush, 2: hardware mirroring).
    pub capabilities: u32,
}

/// One NFIT structure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Structure {
    /// Type 0.
    Spa(SpaRange),
    /// Type 1.
    MemDevice(MemDevice),
    /// Type 2.
    Interleave(Interleave),
    /// Type 3: SMBIOS management information (the data after 8 bytes).
    Smbios(Vec<u8>),
    /// Type 4.
    ControlRegion(ControlRegion),
    /// Type 5.
    BlockDataWindow(BlockDataWindow),
    /// Type 6.
    FlushHint(FlushHint),
    /// Type 7.
    Capabilities(Capabilities),
    /// Any other type, skipped by its length.
    Unknown {
        /// Structure type.
        ty: u16,
        /// Structure length.
        len: u16,
    },
}

impl fmt::Display for Structure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Spa(s) => {
                write!(
                    f,
                    "spa {}: flags 0x{:x} proximity {} type ",
                    s.index, s.flags, s.proximity_domain
                )?;
                match s.range_type.name() {
                    Some(name) => f.write_str(name)?,
                    None => write!(f, "{}", s.range_type)?,
                }
                match s.end() {
                    Some(end) => write!(f, " [mem 0x{:016x}-0x{:016x}]", s.base, end - 1)?,
                    None => write!(f, " [mem 0x{:016x} length 0x{:x}]", s.base, s.length)?,
                }
                write!(f, " attributes 0x{:x}", s.memory_attributes)
            }
            Self::MemDevice(m) => {
                write!(
                    f,
                    "memdev handle 0x{:x} spa {} control {} size 0x{:x} offset 0x{:x}",
                    m.handle, m.spa_index, m.control_region_index, m.region_size, m.region_offset
                )?;
                match m.flags {
                    0 => Ok(()),
                    flags => write!(f, " flags 0x{flags:x}"),
                }
            }
            Self::Interleave(i) => {
                write!(
                    f,
                    "interleave {}: lines {} line-size {}",
                    i.index,
                    i.offsets.len(),
                    i.line_size
                )
            }
            Self::Smbios(data) => write!(f, "smbios: {} bytes", data.len()),
            Self::ControlRegion(c) => write!(
                f,
                "control {}: vendor 0x{:04x} device 0x{:04x} revision 0x{:x} serial 0x{:08x} \
                 format 0x{:x} windows {}",
                c.index,
                c.vendor_id,
                c.device_id,
                c.revision_id,
                c.serial_number,
                c.format_code,
                c.windows
            ),
            Self::BlockDataWindow(b) => write!(
                f,
                "block-data-window control {}: windows {} offset 0x{:x} size 0x{:x} \
                 capacity 0x{:x} start 0x{:x}",
                b.control_region_index, b.windows, b.offset, b.size, b.capacity, b.start_address
            ),
            Self::FlushHint(h) => {
                write!(f, "flush-hint handle 0x{:x}: {} addresses", h.handle, h.addresses.len())
            }
            Self::Capabilities(c) => write!(
                f,
                "platform-capabilities: highest-valid {} capabilities 0x{:x}",
                c.highest_valid, c.capabilities
            ),
            Self::Unknown { ty, len } => write!(f, "unknown type {ty} length {len}"),
        }
    }
}

impl Structure {
    /// The structure's type number.
    pub fn ty(&self) -> u16 {
        match self {
            Self::Spa(_) => 0,
            Self::MemDevice(_) => 1,
            Self::Interleave(_) => 2,
            Self::Smbios(_) => 3,
            Self::ControlRegion(_) => 4,
            Self::BlockDataWindow(_) => 5,
            Self::FlushHint(_) => 6,
            Self::Capabilities(_) => 7,
            Self::Unknown { ty, .. } => *ty,
        }
    }

    /// The structure as `nfit --json` shows it: `type` (the number) and
    /// `structure` (ACPICA's name for the type, `ACPI_NFIT_TYPE_*` in
    /// lower case), then every field parsed, under ACPICA's names for
    /// `struct acpi_nfit_*`: a superset of its text line. GUIDs are
    /// strings as the text writes them; `range_type` is the text's short
    /// name of a known GUID (`null` for another).
    pub fn write_json(&self, o: &mut json::Object<'_>) {
        let name = match self {
            Self::Spa(_) => "system_address",
            Self::MemDevice(_) => "memory_map",
            Self::Interleave(_) => "interleave",
            Self::Smbios(_) => "smbios",
            Self::ControlRegion(_) => "control_region",
            Self::BlockDataWindow(_) => "data_region",
            Self::FlushHint(_) => "flush_address",
            Self::Capabilities(_) => "capabilities",
            Self::Unknown { .. } => "unknown",
        };
        o.field("type", self.ty()).field("structure", name);
        match self {
            Self::Spa(s) => {
                o.field("range_index", s.index)
                    .field("flags", s.flags)
                    .field("proximity_domain", s.proximity_domain)
                    .field("range_guid", alloc::format!("{}", s.range_type))
                    .field("range_type", s.range_type.name())
                    .field("address", s.base)
                    .field("length", s.length)
                    .field("memory_mapping", s.memory_attributes)
                    .field("location_cookie", s.location_cookie);
            }
            Self::MemDevice(m) => {
                o.field("device_handle", m.handle)
                    .field("physical_id", m.physical_id)
                    .field("region_id", m.region_id)
                    .field("range_index", m.spa_index)
                    .field("region_index", m.control_region_index)
                    .field("region_size", m.region_size)
                    .field("region_offset", m.region_offset)
                    .field("address", m.region_dpa)
                    .field("interleave_index", m.interleave_index)
                    .field("interleave_ways", m.interleave_ways)
                    .field("flags", m.flags);
            }
            Self::Interleave(i) => {
                o.field("interleave_index", i.index)
                    .field("line_count", i.offsets.len())
                    .field("line_size", i.line_size)
                    .field("line_offset", &i.offsets[..]);
            }
            Self::Smbios(data) => {
                o.field("data_length", data.len());
            }
            Self::ControlRegion(c) => {
                o.field("region_index", c.index)
                    .field("vendor_id", c.vendor_id)
                    .field("device_id", c.device_id)
                    .field("revision_id", c.revision_id)
                    .field("subsystem_vendor_id", c.subsystem_vendor_id)
                    .field("subsystem_device_id", c.subsystem_device_id)
                    .field("subsystem_revision_id", c.subsystem_revision_id)
                    .field("valid_fields", c.valid_fields)
                    .field("manufacturing_location", c.manufacturing_location)
                    .field("manufacturing_date", c.manufacturing_date)
                    .field("serial_number", c.serial_number)
                    .field("code", c.format_code)
                    .field("windows", c.windows);
                match c.block {
                    Some(b) => {
                        o.field("window_size", b.window_size)
                            .field("command_offset", b.command_offset)
                            .field("command_size", b.command_size)
                            .field("status_offset", b.status_offset)
                            .field("status_size", b.status_size)
                            .field("flags", b.flags);
                    }
                    None => {
                        o.field("window_size", None::<u64>);
                    }
                }
            }
            Self::BlockDataWindow(b) => {
                o.field("region_index", b.control_region_index)
                    .field("windows", b.windows)
                    .field("offset", b.offset)
                    .field("size", b.size)
                    .field("capacity", b.capacity)
                    .field("start_address", b.start_address);
            }
            Self::FlushHint(h) => {
                o.field("device_handle", h.handle)
                    .field("hint_count", h.addresses.len())
                    .field("hint_address", &h.addresses[..]);
            }
            Self::Capabilities(c) => {
                o.field("highest_capability", c.highest_valid)
                    .field("capabilities", c.capabilities);
            }
            Self::Unknown { len, .. } => {
                o.field("length", *len);
            }
        }
    }
}

/// The length a structure type requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LenRule {
    /// Exactly this many bytes.
    Exactly(u64),
    /// Either of two lengths.
    OneOf(u64, u64),
    /// At least this many bytes.
    AtLeast(u64),
}

impl LenRule {
    fn allows(self, len: u64) -> bool {
        match self {
            Self::Exactly(n) => len == n,
            Self::OneOf(a, b) => len == a || len == b,
            Self::AtLeast(n) => len >= n,
        }
    }
}

impl fmt::Display for LenRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Exactly(n) => write!(f, "{n}"),
            Self::OneOf(a, b) => write!(f, "{a} or {b}"),
            Self::AtLeast(n) => write!(f, "at least {n}"),
        }
    }
}

/// Why (part of) an NFIT was refused. `table` numbers the tables given to
/// [`combine`] from 0; `offset` is the structure's byte offset in its table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NfitError {
    /// Fewer than 40 bytes given.
    TableTooShort {
        /// Table number.
        table: usize,
        /// Bytes given.
        len: usize,
    },
    /// The signature is not `NFIT`.
    NotNfit {
        /// Table number.
        table: usize,
        /// Signature found.
        signature: [u8; 4],
    },
    /// The header `Length` is below 40 or beyond the bytes given.
    BadTableLength {
        /// Table number.
        table: usize,
        /// The header's `Length`.
        header_len: u32,
        /// Bytes given.
        available: usize,
    },
    /// A structure length below 4 (zero included): parsing stopped.
    StructTooSmall {
        /// Table number.
        table: usize,
        /// Structure offset.
        offset: usize,
        /// Structure type.
        ty: u16,
        /// Structure length.
        len: u16,
    },
    /// A structure runs past the table end: parsing stopped.
    Truncated {
        /// Table number.
        table: usize,
        /// Structure offset.
        offset: usize,
        /// Bytes the structure (or its 4-byte header) needs.
        need: usize,
        /// Bytes left in the table.
        left: usize,
    },
    /// A structure's length is wrong for its type: skipped.
    BadStructLength {
        /// Table number.
        table: usize,
        /// Structure offset.
        offset: usize,
        /// Structure type.
        ty: u16,
        /// Structure length.
        len: u16,
        /// The length its type requires.
        expected: LenRule,
    },
    /// An SPA range with the reserved index 0: skipped.
    SpaIndexZero {
        /// Table number.
        table: usize,
        /// Structure offset.
        offset: usize,
    },
    /// An SPA range reusing an index already taken: skipped.
    DuplicateSpaIndex {
        /// Table number.
        table: usize,
        /// Structure offset.
        offset: usize,
        /// The index.
        index: u16,
    },
    /// A persistent range of length 0.
    EmptyRange {
        /// SPA index.
        index: u16,
        /// Base address.
        base: u64,
    },
    /// A persistent range whose end is past `u64::MAX`.
    RangeOverflow {
        /// SPA index.
        index: u16,
        /// Base address.
        base: u64,
        /// Length.
        length: u64,
    },
    /// A persistent range whose base or length is not 2 MiB aligned.
    Misaligned {
        /// SPA index.
        index: u16,
        /// Base address.
        base: u64,
        /// Length.
        length: u64,
    },
    /// A persistent range ending beyond `1 << max_phys_bits`.
    BeyondPhysBits {
        /// SPA index.
        index: u16,
        /// Exclusive end.
        end: u64,
        /// Physical address bits.
        max_phys_bits: u32,
    },
    /// A persistent range overlapping System RAM.
    OverlapsRam {
        /// SPA index.
        index: u16,
        /// Base address.
        base: u64,
        /// Exclusive end.
        end: u64,
        /// The RAM range (half-open).
        ram: (u64, u64),
    },
    /// A persistent range overlapping another SPA range kept.
    OverlapsSpa {
        /// SPA index.
        index: u16,
        /// Base address.
        base: u64,
        /// Exclusive end.
        end: u64,
        /// The other range's index.
        other: u16,
    },
}

impl fmt::Display for NfitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const STOP: &str = "rest of the table ignored";
        match *self {
            Self::TableTooShort { table, len } => {
                write!(f, "table {table}: only {len} bytes, need 40, table ignored")
            }
            Self::NotNfit { table, signature } => {
                write!(
                    f,
                    "table {table}: signature {} is not NFIT, table ignored",
                    Fixed(&signature)
                )
            }
            Self::BadTableLength { table, header_len, available } => write!(
                f,
                "table {table}: header length {header_len} outside 40..={available}, table ignored"
            ),
            Self::StructTooSmall { table, offset, ty, len } => write!(
                f,
                "table {table} offset 0x{offset:x}: type {ty} length {len} below 4, {STOP}"
            ),
            Self::Truncated { table, offset, need, left } => write!(
                f,
                "table {table} offset 0x{offset:x}: structure needs {need} bytes, \
                 {left} left, {STOP}"
            ),
            Self::BadStructLength { table, offset, ty, len, expected } => write!(
                f,
                "table {table} offset 0x{offset:x}: type {ty} length {len}, \
                 expected {expected}, skipped"
            ),
            Self::SpaIndexZero { table, offset } => {
                write!(f, "table {table} offset 0x{offset:x}: spa index 0 is reserved, skipped")
            }
            Self::DuplicateSpaIndex { table, offset, index } => write!(
                f,
                "table {table} offset 0x{offset:x}: spa index {index} already used, skipped"
            ),
            Self::EmptyRange { index, base } => {
                write!(f, "spa {index}: pmem at 0x{base:016x} has length 0, refused")
            }
            Self::RangeOverflow { index, base, length } => write!(
                f,
                "spa {index}: pmem 0x{base:016x} length 0x{length:x} wraps past 2^64, refused"
            ),
            Self::Misaligned { index, base, length } => write!(
                f,
                "spa {index}: pmem 0x{base:016x} length 0x{length:x} not 2 MiB aligned, refused"
            ),
            Self::BeyondPhysBits { index, end, max_phys_bits } => write!(
                f,
                "spa {index}: pmem ends at 0x{end:x}, beyond {max_phys_bits} physical address \
                 bits, refused"
            ),
            Self::OverlapsRam { index, base, end, ram: (start, ram_end) } => write!(
                f,
                "spa {index}: pmem [mem 0x{base:016x}-0x{:016x}] overlaps System RAM \
                 [mem 0x{start:016x}-0x{:016x}], refused",
                end.wrapping_sub(1),
                ram_end.wrapping_sub(1)
            ),
            Self::OverlapsSpa { index, base, end, other } => write!(
                f,
                "spa {index}: pmem [mem 0x{base:016x}-0x{:016x}] overlaps spa {other}, refused",
                end.wrapping_sub(1)
            ),
        }
    }
}

/// The structures of one or more NFITs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Nfit {
    /// Structures accepted by the parser, in table order.
    pub structures: Vec<Structure>,
}

impl Nfit {
    /// `nfit --json`: `{"nfit":[..]}`, the structures in table order
    /// ([`Structure::write_json`]), as the text lists them.
    pub fn json(&self) -> alloc::string::String {
        json::object(|o| {
            o.array("nfit", |a| {
                for s in &self.structures {
                    a.object(|o| s.write_json(o));
                }
            });
        })
    }

    /// Linux's `acpi_desc->platform_cap`: the last platform capabilities
    /// structure's bits, masked to `highest_capability` (0 without one).
    pub fn platform_cap(&self) -> u32 {
        self.structures.iter().fold(0, |cap, s| match s {
            Structure::Capabilities(c) => {
                c.capabilities
                    & 1u32.checked_shl(u32::from(c.highest_valid) + 1).map_or(u32::MAX, |b| b - 1)
            }
            _ => cap,
        })
    }

    /// The SPA ranges among the structures.
    pub fn spa_ranges(&self) -> impl Iterator<Item = &SpaRange> {
        self.structures.iter().filter_map(|s| match s {
            Structure::Spa(spa) => Some(spa),
            _ => None,
        })
    }
}

/// Parses one whole NFIT (header included). Table-level problems are the
/// `Err`; structure refusals come back with the structures kept. The
/// checksum is not verified here: the table walk does that.
pub fn parse(table: &[u8]) -> Result<(Nfit, Vec<NfitError>), NfitError> {
    let mut nfit = Nfit::default();
    let mut errors = Vec::new();
    parse_into(0, table, &mut nfit, &mut errors)?;
    Ok((nfit, errors))
}

/// Parses what an NVDIMM root device's `_FIT` returns (ACPI 6.5,
/// 6.5.9): the NFIT's structures without its header, as one NFIT would
/// hold them (same refusals, same errors). A `_FIT` too long for an
/// NFIT's 32-bit length is refused as a whole.
pub fn parse_fit(fit: &[u8]) -> Result<(Nfit, Vec<NfitError>), NfitError> {
    let len = STRUCTURES_OFFSET + fit.len();
    let header_len = u32::try_from(len).map_err(|_| NfitError::BadTableLength {
        table: 0,
        header_len: u32::MAX,
        available: len,
    })?;
    let mut table = Vec::with_capacity(len);
    table.extend_from_slice(&SIGNATURE);
    table.extend_from_slice(&header_len.to_le_bytes());
    table.resize(STRUCTURES_OFFSET, 0);
    table.extend_from_slice(fit);
    parse(&table)
}

/// Parses several NFITs as one (see the module docs): a table refused as a
/// whole adds its error and nothing else.
pub fn combine(tables: &[&[u8]]) -> (Nfit, Vec<NfitError>) {
    let mut nfit = Nfit::default();
    let mut errors = Vec::new();
    for (i, table) in tables.iter().enumerate() {
        if let Err(e) = parse_into(i, table, &mut nfit, &mut errors) {
            errors.push(e);
        }
    }
    (nfit, errors)
}

fn parse_into(
    table: usize,
    bytes: &[u8],
    nfit: &mut Nfit,
    errors: &mut Vec<NfitError>,
) -> Result<(), NfitError> {
    if bytes.len() < STRUCTURES_OFFSET {
        return Err(NfitError::TableTooShort { table, len: bytes.len() });
    }
    let signature = bytes_at(bytes, 0).unwrap_or_default();
    if signature != SIGNATURE {
        return Err(NfitError::NotNfit { table, signature });
    }
    let header_len = u32_at(bytes, 4).unwrap_or_default();
    let bytes = usize::try_from(header_len)
        .ok()
        .filter(|&n| n >= STRUCTURES_OFFSET)
        .and_then(|n| bytes.get(..n))
        .ok_or(NfitError::BadTableLength { table, header_len, available: bytes.len() })?;
    let mut offset = STRUCTURES_OFFSET;
    while offset < bytes.len() {
        let left = bytes.len() - offset;
        let (Some(ty), Some(len)) = (u16_at(bytes, offset), u16_at(bytes, offset + 2)) else {
            errors.push(NfitError::Truncated { table, offset, need: 4, left });
            return Ok(());
        };
        if len < 4 {
            errors.push(NfitError::StructTooSmall { table, offset, ty, len });
            return Ok(());
        }
        let Some(s) = bytes.get(offset..offset + usize::from(len)) else {
            errors.push(NfitError::Truncated { table, offset, need: len.into(), left });
            return Ok(());
        };
        match parse_structure(ty, s) {
            Err(expected) => {
                errors.push(NfitError::BadStructLength { table, offset, ty, len, expected })
            }
            Ok(Structure::Spa(spa)) if spa.index == 0 => {
                errors.push(NfitError::SpaIndexZero { table, offset })
            }
            Ok(Structure::Spa(spa)) if nfit.spa_ranges().any(|s| s.index == spa.index) => {
                errors.push(NfitError::DuplicateSpaIndex { table, offset, index: spa.index })
            }
            Ok(structure) => nfit.structures.push(structure),
        }
        offset += usize::from(len);
    }
    Ok(())
}

/// Decodes one structure (`s` is exactly its `length` bytes); `Err` gives
/// the length its type requires.
fn parse_structure(ty: u16, s: &[u8]) -> Result<Structure, LenRule> {
    let counted = |count: Option<u64>, each: u64| match count {
        Some(n) if s.len() >= 16 => LenRule::Exactly(16 + each * n),
        _ => LenRule::AtLeast(16),
    };
    let rule = match ty {
        0 => LenRule::OneOf(56, 64),
        1 => LenRule::Exactly(48),
        2 => counted(u32_at(s, 8).map(u64::from), 4),
        3 => LenRule::AtLeast(8),
        4 => LenRule::OneOf(32, 80),
        5 => LenRule::Exactly(40),
        6 => counted(u16_at(s, 8).map(u64::from), 8),
        7 => LenRule::Exactly(16),
        _ => LenRule::AtLeast(4),
    };
    if !rule.allows(s.len() as u64) {
        return Err(rule);
    }
    decode(ty, s).ok_or(rule)
}

/// Reads the fields of a structure whose length has been checked.
fn decode(ty: u16, s: &[u8]) -> Option<Structure> {
    let u16_ = |off| u16_at(s, off);
    let u32_ = |off| u32_at(s, off);
    let u64_ = |off| u64_at(s, off);
    Some(match ty {
        0 => Structure::Spa(SpaRange {
            index: u16_(4)?,
            flags: u16_(6)?,
            proximity_domain: u32_(12)?,
            range_type: Guid(bytes_at(s, 16)?),
            base: u64_(32)?,
            length: u64_(40)?,
            memory_attributes: u64_(48)?,
            location_cookie: if s.len() > SPA_LEN { Some(u64_(56)?) } else { None },
        }),
        1 => Structure::MemDevice(MemDevice {
            handle: u32_(4)?,
            physical_id: u16_(8)?,
            region_id: u16_(10)?,
            spa_index: u16_(12)?,
            control_region_index: u16_(14)?,
            region_size: u64_(16)?,
            region_offset: u64_(24)?,
            region_dpa: u64_(32)?,
            interleave_index: u16_(40)?,
            interleave_ways: u16_(42)?,
            flags: u16_(44)?,
        }),
        2 => Structure::Interleave(Interleave {
            index: u16_(4)?,
            line_size: u32_(12)?,
            offsets: s.get(16..)?.as_chunks().0.iter().map(|&c| u32::from_le_bytes(c)).collect(),
        }),
        3 => Structure::Smbios(s.get(8..)?.to_vec()),
        4 => Structure::ControlRegion(ControlRegion {
            index: u16_(4)?,
            vendor_id: u16_(6)?,
            device_id: u16_(8)?,
            revision_id: u16_(10)?,
            subsystem_vendor_id: u16_(12)?,
            subsystem_device_id: u16_(14)?,
            subsystem_revision_id: u16_(16)?,
            valid_fields: *s.get(18)?,
            manufacturing_location: *s.get(19)?,
            manufacturing_date: u16_(20)?,
            serial_number: u32_(24)?,
            format_code: u16_(28)?,
            windows: u16_(30)?,
            block: match s.len() {
                80 => Some(BlockControl {
                    window_size: u64_(32)?,
                    command_offset: u64_(40)?,
                    command_size: u64_(48)?,
                    status_offset: u64_(56)?,
                    status_size: u64_(64)?,
                    flags: u16_(72)?,
                }),
                _ => None,
            },
        }),
        5 => Structure::BlockDataWindow(BlockDataWindow {
            control_region_index: u16_(4)?,
            windows: u16_(6)?,
            offset: u64_(8)?,
            size: u64_(16)?,
            capacity: u64_(24)?,
            start_address: u64_(32)?,
        }),
        6 => Structure::FlushHint(FlushHint {
            handle: u32_(4)?,
            addresses: s.get(16..)?.as_chunks().0.iter().map(|&c| u64::from_le_bytes(c)).collect(),
        }),
        7 => Structure::Capabilities(Capabilities {
            highest_valid: *s.get(4)?,
            capabilities: u32_(8)?,
        }),
        _ => Structure::Unknown { ty, len: u16_(2)? },
    })
}

/// Decides which persistent-memory SPA ranges become PMEM (see the module
/// docs). `ram` lists System RAM as half-open `(start, end)` ranges.
///
/// Returns the SPA ranges kept, in order (every non-PMEM range and each
/// PMEM range accepted), and one error per PMEM range refused.
pub fn validate<'a>(
    spas: impl IntoIterator<Item = &'a SpaRange>,
    ram: &[(u64, u64)],
    max_phys_bits: u32,
) -> (Vec<SpaRange>, Vec<NfitError>) {
    let spas: Vec<&SpaRange> = spas.into_iter().collect();
    let others: Vec<(u16, u64, u64)> = spas
        .iter()
        .filter(|s| !s.is_pmem())
        .filter_map(|s| Some((s.index, s.base, s.end()?)))
        .collect();
    let mut pmem: Vec<(u16, u64, u64)> = Vec::new();
    let mut kept = Vec::new();
    let mut errors = Vec::new();
    for spa in spas {
        if !spa.is_pmem() {
            kept.push(spa.clone());
            continue;
        }
        match check_pmem(spa, ram, max_phys_bits, others.iter().chain(&pmem)) {
            Ok(end) => {
                pmem.push((spa.index, spa.base, end));
                kept.push(spa.clone());
            }
            Err(e) => errors.push(e),
        }
    }
    (kept, errors)
}

/// Checks one PMEM range; returns its exclusive end.
fn check_pmem<'a>(
    spa: &SpaRange,
    ram: &[(u64, u64)],
    max_phys_bits: u32,
    mut kept: impl Iterator<Item = &'a (u16, u64, u64)>,
) -> Result<u64, NfitError> {
    let (index, base, length) = (spa.index, spa.base, spa.length);
    if length == 0 {
        return Err(NfitError::EmptyRange { index, base });
    }
    let end = base.checked_add(length).ok_or(NfitError::RangeOverflow { index, base, length })?;
    if base % PMEM_ALIGN != 0 || length % PMEM_ALIGN != 0 {
        return Err(NfitError::Misaligned { index, base, length });
    }
    if max_phys_bits < 64 && end > 1u64 << max_phys_bits {
        return Err(NfitError::BeyondPhysBits { index, end, max_phys_bits });
    }
    if let Some(&ram) = ram.iter().find(|&&(start, ram_end)| start < end && base < ram_end) {
        return Err(NfitError::OverlapsRam { index, base, end, ram });
    }
    if let Some(&(other, ..)) = kept.find(|&&(_, b, e)| b < end && base < e) {
        return Err(NfitError::OverlapsSpa { index, base, end, other });
    }
    Ok(end)
}

/// Builds a whole NFIT describing `ranges` (`(base, length)`) as persistent
/// memory: one 56-byte SPA range each, indexes `first_index`.. (so they
/// can follow a firmware NFIT's; as many ranges as indexes remain are used), flags 0, proximity domain 0, attributes [`ATTR_WB_NV`];
/// revision 1, creator [`TESSERA_CREATOR_ID`] revision 1, checksummed.
pub fn build_nfit(
    ranges: &[(u64, u64)],
    oem_id: [u8; 6],
    oem_table_id: [u8; 8],
    oem_revision: u32,
    first_index: u16,
) -> Vec<u8> {
    let first_index = first_index.max(1);
    let room = usize::from(u16::MAX - first_index) + 1;
    let ranges = &ranges[..ranges.len().min(room)];
    let mut body = alloc::vec![0; STRUCTURES_OFFSET - HEADER_LEN];
    for (index, &(base, length)) in (first_index..).zip(ranges) {
        let spa = SpaRange {
            index,
            flags: 0,
            proximity_domain: 0,
            range_type: Guid::PERSISTENT,
            base,
            length,
            memory_attributes: ATTR_WB_NV,
            location_cookie: None,
        };
        body.extend_from_slice(&spa.to_bytes());
    }
    let header = crate::sdt::SdtHeader {
        signature: SIGNATURE,
        length: 0,
        revision: 1,
        checksum: 0,
        oem_id,
        oem_table_id,
        oem_revision,
        creator_id: TESSERA_CREATOR_ID,
        creator_revision: 1,
    };
    header.table(&body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdt::checksum;
    use crate::sdt::{SdtHeader, checksum_ok};
    use alloc::string::{String, ToString};
    use alloc::vec;
    use rng::Rng;

    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;

    fn spa(index: u16, ty: Guid, base: u64, length: u64) -> SpaRange {
        SpaRange {
            index,
            flags: 0x3,
            proximity_domain: 0,
            range_type: ty,
            base,
            length,
            memory_attributes: ATTR_WB_NV,
            location_cookie: None,
        }
    }

    /// A structure of type `ty` and `len` bytes, fields set by `(offset, bytes)`.
    fn raw(ty: u16, len: u16, fields: &[(usize, &[u8])]) -> Vec<u8> {
        let mut s = vec![0u8; len.into()];
        s[0..2].copy_from_slice(&ty.to_le_bytes());
        s[2..4].copy_from_slice(&len.to_le_bytes());
        for &(off, b) in fields {
            s[off..off + b.len()].copy_from_slice(b);
        }
        s
    }

    fn memdev() -> Vec<u8> {
        raw(
            1,
            48,
            &[
                (4, &1u32.to_le_bytes()),
                (12, &2u16.to_le_bytes()),
                (14, &3u16.to_le_bytes()),
                (16, &(256 * MIB).to_le_bytes()),
                (42, &1u16.to_le_bytes()),
            ],
        )
    }

    fn control80() -> Vec<u8> {
        let f: &[(usize, &[u8])] = &[
            (4, &3u16.to_le_bytes()),
            (6, &0x8086u16.to_le_bytes()),
            (8, &1u16.to_le_bytes()),
            (10, &1u16.to_le_bytes()),
            (24, &0x12345678u32.to_le_bytes()),
            (28, &0x301u16.to_le_bytes()),
        ];
        raw(4, 80, f)
    }

    fn caps() -> Vec<u8> {
        raw(7, 16, &[(4, &[2]), (8, &7u32.to_le_bytes())])
    }

    /// QEMU's NVDIMM at 4 GiB, 256 MiB: SPA index 2, flags 0x3, WB|NV.
    fn qemu_structs() -> Vec<Vec<u8>> {
        vec![spa(2, Guid::PERSISTENT, 4 * GIB, 256 * MIB).to_bytes(), memdev(), control80(), caps()]
    }

    fn table(structs: &[Vec<u8>]) -> Vec<u8> {
        let mut t = build_nfit(&[], *b"BOCHS ", *b"BXPC    ", 1, 1);
        structs.iter().for_each(|s| t.extend_from_slice(s));
        let len = t.len() as u32;
        t[4..8].copy_from_slice(&len.to_le_bytes());
        t[9] = 0;
        t[9] = 0u8.wrapping_sub(checksum(&t));
        t
    }

    fn strings<T: ToString>(v: &[T]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn guid_constants_and_display() {
        let stored = [
            0x79, 0xD3, 0xF0, 0x66, 0xF3, 0xB4, 0x74, 0x40, 0xAC, 0x43, 0x0D, 0x33, 0x18, 0xB7,
            0x8C, 0xDB,
        ];
        assert_eq!(Guid::PERSISTENT.0, stored);
        assert_eq!(Guid::PERSISTENT.to_string(), "66F0D379-B4F3-4074-AC43-0D3318B78CDB");
        assert_eq!(Guid::VOLATILE.to_string(), "7305944F-FDDA-44E3-B16C-3F22D252E5D0");
    }

    #[test]
    fn qemu_nfit_parses_fully() {
        let t = table(&qemu_structs());
        assert!(checksum_ok(&t));
        let (nfit, errors) = parse(&t).unwrap();
        assert_eq!(errors, []);
        assert_eq!(
            strings(&nfit.structures),
            [
                "spa 2: flags 0x3 proximity 0 type pmem \
                 [mem 0x0000000100000000-0x000000010fffffff] attributes 0x8008",
                "memdev handle 0x1 spa 2 control 3 size 0x10000000 offset 0x0",
                "control 3: vendor 0x8086 device 0x0001 revision 0x1 serial 0x12345678 \
                 format 0x301 windows 0",
                "platform-capabilities: highest-valid 2 capabilities 0x7",
            ]
        );
        let Structure::ControlRegion(c) = &nfit.structures[2] else { panic!() };
        assert_eq!(c.block.map(|b| b.window_size), Some(0));
        let (kept, errors) = validate(nfit.spa_ranges(), &[(0, 2 * GIB)], 46);
        assert_eq!((kept.len(), errors), (1, vec![]));
    }

    /// The JSON lists the structures the text lists, in the same order,
    /// with every field; an SPA range's text line comes back from its
    /// object.
    #[test]
    fn json_has_every_structure_and_field() {
        let (nfit, _) = parse(&table(&qemu_structs())).unwrap();
        let v: serde_json::Value = serde_json::from_str(&nfit.json()).unwrap();
        let got = v["nfit"].as_array().unwrap();
        assert_eq!(got.len(), nfit.structures.len());
        let types: Vec<_> = got.iter().map(|s| s["structure"].as_str().unwrap()).collect();
        assert_eq!(types, ["system_address", "memory_map", "control_region", "capabilities"]);
        let spa = &got[0];
        let line = format!(
            "spa {}: flags 0x{:x} proximity {} type {} [mem 0x{:016x}-0x{:016x}] attributes 0x{:x}",
            spa["range_index"],
            spa["flags"].as_u64().unwrap(),
            spa["proximity_domain"],
            spa["range_type"].as_str().unwrap(),
            spa["address"].as_u64().unwrap(),
            spa["address"].as_u64().unwrap() + spa["length"].as_u64().unwrap() - 1,
            spa["memory_mapping"].as_u64().unwrap(),
        );
        assert_eq!(line, nfit.structures[0].to_string());
        assert_eq!(spa["range_guid"], "66F0D379-B4F3-4074-AC43-0D3318B78CDB");
        assert_eq!(spa["location_cookie"], serde_json::Value::Null);
        assert_eq!(got[1]["region_size"], 256 * MIB);
        assert_eq!((&got[1]["range_index"], &got[1]["region_index"]), (&2.into(), &3.into()));
        assert_eq!(
            (&got[2]["vendor_id"], &got[2]["serial_number"]),
            (&0x8086.into(), &0x12345678.into())
        );
        assert_eq!(got[2]["window_size"], 0);
        assert_eq!(
            got[3],
            serde_json::json!({"type": 7, "structure": "capabilities", "highest_capability": 2, "capabilities": 7})
        );
        // Capabilities 0x7 with bits up to 2 valid; none without the structure.
        assert_eq!(nfit.platform_cap(), 7);
        let (short, _) =
            parse(&table(&[raw(7, 16, &[(4, &[0]), (8, &7u32.to_le_bytes())])])).unwrap();
        assert_eq!(short.platform_cap(), 1);
        let (wide, _) =
            parse(&table(&[raw(7, 16, &[(4, &[255]), (8, &u32::MAX.to_le_bytes())])])).unwrap();
        assert_eq!(wide.platform_cap(), u32::MAX);
        assert_eq!(Nfit::default().platform_cap(), 0);
        assert_eq!(Nfit::default().json(), r#"{"nfit":[]}"#);
    }

    #[test]
    fn other_structures_parse() {
        let interleave =
            raw(2, 24, &[(4, &1u16.to_le_bytes()), (8, &2u32.to_le_bytes()), (12, &[0, 1])]);
        let flush = raw(6, 32, &[(4, &1u32.to_le_bytes()), (8, &2u16.to_le_bytes())]);
        let structs = [
            interleave,
            raw(3, 12, &[]),
            raw(4, 32, &[]),
            raw(5, 40, &[(6, &1u16.to_le_bytes())]),
            flush,
            raw(0x99, 12, &[]),
            spa(1, Guid([7; 16]), 0x1000, 0x1000).to_bytes(),
        ];
        let (nfit, errors) = parse(&table(&structs)).unwrap();
        assert_eq!(errors, []);
        let v: serde_json::Value = serde_json::from_str(&nfit.json()).unwrap();
        let tys: Vec<_> =
            v["nfit"].as_array().unwrap().iter().map(|s| s["type"].as_u64().unwrap()).collect();
        assert_eq!(tys, [2, 3, 4, 5, 6, 0x99, 0]);
        assert_eq!(v["nfit"][0]["line_offset"].as_array().unwrap().len(), 2);
        assert_eq!(v["nfit"][4]["hint_address"].as_array().unwrap().len(), 2);
        assert_eq!(v["nfit"][5]["length"], 12);
        assert_eq!(v["nfit"][6]["range_type"], serde_json::Value::Null);
        assert_eq!(v["nfit"][2]["window_size"], serde_json::Value::Null);
        assert_eq!(
            strings(&nfit.structures),
            [
                "interleave 1: lines 2 line-size 256",
                "smbios: 4 bytes",
                "control 0: vendor 0x0000 device 0x0000 revision 0x0 serial 0x00000000 \
                 format 0x0 windows 0",
                "block-data-window control 0: windows 1 offset 0x0 size 0x0 capacity 0x0 \
                 start 0x0",
                "flush-hint handle 0x1: 2 addresses",
                "unknown type 153 length 12",
                "spa 1: flags 0x3 proximity 0 type 07070707-0707-0707-0707-070707070707 \
                 [mem 0x0000000000001000-0x0000000000001fff] attributes 0x8008",
            ]
        );
    }

    #[test]
    fn structure_refusals() {
        let mut long_spa = spa(5, Guid::PERSISTENT, 8 * GIB, GIB).to_bytes();
        long_spa[2] = 60;
        long_spa.extend_from_slice(&[0; 4]);
        let bad_interleave = raw(2, 24, &[(8, &3u32.to_le_bytes())]);
        let bad_flush = raw(6, 24, &[(8, &2u16.to_le_bytes())]);
        let index0 = spa(0, Guid::PERSISTENT, 8 * GIB, GIB).to_bytes();
        let dup = spa(2, Guid::PERSISTENT, 8 * GIB, GIB).to_bytes();
        let cut = memdev()[..20].to_vec();
        let e = |ty, len, expected| NfitError::BadStructLength {
            table: 0,
            offset: 40 + 56,
            ty,
            len,
            expected,
        };
        // (extra structure inserted after the SPA, or appended when last, error).
        let cases: Vec<(&str, Vec<u8>, bool, NfitError)> = vec![
            ("spa length 60", long_spa, false, e(0, 60, LenRule::OneOf(56, 64))),
            ("memdev length 40", raw(1, 40, &[]), false, e(1, 40, LenRule::Exactly(48))),
            ("interleave count", bad_interleave, false, e(2, 24, LenRule::Exactly(28))),
            ("flush hint count", bad_flush, false, e(6, 24, LenRule::Exactly(32))),
            ("control 48", raw(4, 48, &[]), false, e(4, 48, LenRule::OneOf(32, 80))),
            ("index 0", index0, false, NfitError::SpaIndexZero { table: 0, offset: 96 }),
            (
                "duplicate index",
                dup,
                false,
                NfitError::DuplicateSpaIndex { table: 0, offset: 96, index: 2 },
            ),
            (
                "zero length",
                raw(1, 48, &[(2, &[0, 0])]),
                true,
                NfitError::StructTooSmall { table: 0, offset: 240, ty: 1, len: 0 },
            ),
            (
                "truncated mid-structure",
                cut,
                true,
                NfitError::Truncated { table: 0, offset: 240, need: 48, left: 20 },
            ),
            (
                "trailing bytes",
                vec![1, 0],
                true,
                NfitError::Truncated { table: 0, offset: 240, need: 4, left: 2 },
            ),
        ];
        let want = parse(&table(&qemu_structs())).unwrap().0;
        for (name, extra, at_end, error) in cases {
            let mut structs = qemu_structs();
            structs.insert(if at_end { structs.len() } else { 1 }, extra);
            let (nfit, errors) = parse(&table(&structs)).unwrap();
            assert_eq!(errors, [error], "{name}");
            assert_eq!(nfit, want, "{name}");
        }
    }

    #[test]
    fn zero_length_stops_parsing() {
        let mut structs = qemu_structs();
        structs.insert(1, raw(3, 8, &[(2, &[0, 0])]));
        let (nfit, errors) = parse(&table(&structs)).unwrap();
        assert_eq!(nfit.structures.len(), 1);
        assert_eq!(
            strings(&errors),
            ["table 0 offset 0x60: type 3 length 0 below 4, rest of the table ignored"]
        );
    }

    #[test]
    fn table_refusals() {
        let t = table(&qemu_structs());
        assert_eq!(parse(&t[..39]), Err(NfitError::TableTooShort { table: 0, len: 39 }));
        let mut t2 = t.clone();
        t2[4..8].copy_from_slice(&39u32.to_le_bytes());
        let err = NfitError::BadTableLength { table: 0, header_len: 39, available: t.len() };
        assert_eq!(parse(&t2), Err(err));
        assert_eq!(
            parse(&t[..100]).unwrap_err().to_string(),
            "table 0: header length 240 outside 40..=100, table ignored"
        );
        // Bytes beyond the header length are ignored.
        let mut longer = t.clone();
        longer.extend_from_slice(&[0xFF; 10]);
        assert_eq!(parse(&longer).unwrap().1, []);
        let mut t3 = t.clone();
        t3[0] = b'S';
        assert!(matches!(parse(&t3), Err(NfitError::NotNfit { .. })));
    }

    #[test]
    fn validation_refusals() {
        let good = spa(2, Guid::PERSISTENT, 4 * GIB, 256 * MIB);
        let control = spa(3, Guid::CONTROL_REGION, 0xFE00_0000, 0x1000);
        let ram = [(0, 0x8000_0000), (0x1_0000_0000 + GIB, 0x1_0000_0000 + 2 * GIB)];
        let pm = |base, len| spa(9, Guid::PERSISTENT, base, len);
        let top = 1u64 << 46;
        let cases = [
            (
                pm(4 * GIB + 256 * MIB + MIB, 2 * MIB),
                NfitError::Misaligned { index: 9, base: 4 * GIB + 257 * MIB, length: 2 * MIB },
            ),
            (
                pm(8 * GIB, 3 * MIB),
                NfitError::Misaligned { index: 9, base: 8 * GIB, length: 3 * MIB },
            ),
            (pm(8 * GIB, 0), NfitError::EmptyRange { index: 9, base: 8 * GIB }),
            (
                pm(0x7000_0000, 0x2000_0000),
                NfitError::OverlapsRam {
                    index: 9,
                    base: 0x7000_0000,
                    end: 0x9000_0000,
                    ram: ram[0],
                },
            ),
            (
                pm(5 * GIB, GIB),
                NfitError::OverlapsRam { index: 9, base: 5 * GIB, end: 6 * GIB, ram: ram[1] },
            ),
            (
                pm(4 * GIB + 128 * MIB, 256 * MIB),
                NfitError::OverlapsSpa {
                    index: 9,
                    base: 4 * GIB + 128 * MIB,
                    end: 4 * GIB + 384 * MIB,
                    other: 2,
                },
            ),
            (
                pm(0xFE00_0000, 2 * MIB),
                NfitError::OverlapsSpa { index: 9, base: 0xFE00_0000, end: 0xFE20_0000, other: 3 },
            ),
            (
                pm(top - 2 * MIB, 4 * MIB),
                NfitError::BeyondPhysBits { index: 9, end: top + 2 * MIB, max_phys_bits: 46 },
            ),
            (
                pm(u64::MAX - 2 * MIB + 1, 4 * MIB),
                NfitError::RangeOverflow {
                    index: 9,
                    base: u64::MAX - 2 * MIB + 1,
                    length: 4 * MIB,
                },
            ),
        ];
        for (bad, error) in cases {
            let (kept, errors) = validate([&good, &control, &bad], &ram, 46);
            assert_eq!(errors, core::slice::from_ref(&error), "{error}");
            assert_eq!(kept, [good.clone(), control.clone()], "{error}");
        }
        // Accepted edge cases: ending exactly at 2^46, and volatile over RAM.
        let edge = pm(top - 2 * MIB, 2 * MIB);
        let volatile = spa(4, Guid::VOLATILE, 0, 0x8000_0000);
        let (kept, errors) = validate([&good, &edge, &volatile], &ram, 46);
        assert_eq!((kept.len(), errors), (3, vec![]));
        assert_eq!(kept.iter().filter(|s| s.is_pmem()).count(), 2);
    }

    #[test]
    fn error_lines() {
        let lines = strings(&[
            NfitError::BadStructLength {
                table: 1,
                offset: 0x28,
                ty: 0,
                len: 60,
                expected: LenRule::OneOf(56, 64),
            },
            NfitError::DuplicateSpaIndex { table: 1, offset: 0x60, index: 2 },
            NfitError::OverlapsRam { index: 2, base: 0x7000_0000, end: 0x9000_0000, ram: (0, GIB) },
            NfitError::Misaligned { index: 3, base: 0x10_0000, length: 0x20_0000 },
        ]);
        assert_eq!(
            lines,
            [
                "table 1 offset 0x28: type 0 length 60, expected 56 or 64, skipped",
                "table 1 offset 0x60: spa index 2 already used, skipped",
                "spa 2: pmem [mem 0x0000000070000000-0x000000008fffffff] overlaps System RAM \
                 [mem 0x0000000000000000-0x000000003fffffff], refused",
                "spa 3: pmem 0x0000000000100000 length 0x200000 not 2 MiB aligned, refused",
            ]
        );
    }

    #[test]
    fn combine_tables() {
        let a = spa(1, Guid::PERSISTENT, 4 * GIB, GIB);
        let b = spa(1, Guid::PERSISTENT, 8 * GIB, GIB);
        let c = spa(3, Guid::PERSISTENT, 4 * GIB + 512 * MIB, GIB);
        let first = table(&[a.to_bytes(), memdev()]);
        let second = table(&[b.to_bytes(), c.to_bytes()]);
        let junk = [0u8; 16];
        let (nfit, errors) = combine(&[&first, &second, &junk]);
        assert_eq!(
            errors,
            [
                NfitError::DuplicateSpaIndex { table: 1, offset: 40, index: 1 },
                NfitError::TableTooShort { table: 2, len: 16 },
            ]
        );
        assert_eq!(nfit.structures.len(), 3);
        let (kept, errors) = validate(nfit.spa_ranges(), &[], 46);
        assert_eq!(kept, [a]);
        assert!(matches!(errors[..], [NfitError::OverlapsSpa { index: 3, other: 1, .. }]));
    }

    #[test]
    fn build_round_trip() {
        let ranges = [(0x3a00_0000, 32 * MIB), (4 * GIB, 256 * MIB)];
        let t = build_nfit(&ranges, TESSERA_OEM_ID, *b"TESSERA ", 7, 1);
        assert!(checksum_ok(&t));
        let h = SdtHeader::parse(&t).unwrap();
        assert_eq!((h.signature, h.length, h.revision), (*b"NFIT", 40 + 2 * 56, 1));
        assert_eq!((h.oem_id, h.oem_table_id, h.oem_revision), (*b"TESSRA", *b"TESSERA ", 7));
        assert_eq!((h.creator_id, h.creator_revision), (TESSERA_CREATOR_ID, 1));
        let (nfit, errors) = parse(&t).unwrap();
        assert_eq!(errors, []);
        let got: Vec<_> = nfit.spa_ranges().map(|s| (s.index, s.base, s.length)).collect();
        assert_eq!(got, [(1, 0x3a00_0000, 32 * MIB), (2, 4 * GIB, 256 * MIB)]);
        assert_eq!(
            nfit.structures[0].to_string(),
            "spa 1: flags 0x0 proximity 0 type pmem \
             [mem 0x000000003a000000-0x000000003bffffff] attributes 0x8008"
        );
        let (kept, errors) = validate(nfit.spa_ranges(), &[(0, 0x3a00_0000)], 46);
        assert_eq!((kept.len(), errors), (2, vec![]));
        assert!(checksum_ok(&build_nfit(&[], TESSERA_OEM_ID, [b' '; 8], 1, 1)));
    }

    /// Parses, validates and prints `t`; must never panic.
    fn exercise(t: &[u8], rng: &mut Rng) {
        let (nfit, errors) = match parse(t) {
            Ok(r) => r,
            Err(e) => {
                let _ = e.to_string();
                return;
            }
        };
        errors.iter().for_each(|e| drop(e.to_string()));
        nfit.structures.iter().for_each(|s| drop(s.to_string()));
        let (a, b) = (rng.next_u64(), rng.next_u64());
        let ram = [(a.min(b), a.max(b)), (0, rng.below(1 << 33))];
        let (kept, errors) = validate(nfit.spa_ranges(), &ram, rng.below(70) as u32);
        assert!(kept.len() + errors.len() <= nfit.spa_ranges().count());
        errors.iter().for_each(|e| drop(e.to_string()));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15);
        let valid = table(&qemu_structs());
        let lens = [0u16, 1, 4, 8, 12, 16, 24, 32, 40, 48, 56, 60, 64, 80, 0xFFFF];
        for i in 0..100_000 {
            let t = match i % 3 {
                // Entirely random bytes, sometimes with a valid signature.
                0 => {
                    let n = rng.below(300) as usize;
                    let mut t: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                    if n >= 8 && rng.below(2) == 0 {
                        t[..4].copy_from_slice(b"NFIT");
                        let len = if rng.below(4) == 0 { rng.next_u64() as u32 } else { n as u32 };
                        t[4..8].copy_from_slice(&len.to_le_bytes());
                    }
                    t
                }
                // Random structures with plausible lengths and random fields.
                1 => {
                    let structs: Vec<Vec<u8>> = (0..rng.below(6))
                        .map(|_| {
                            let len = lens[rng.below(lens.len() as u64) as usize];
                            let n = usize::from(len).min(96) + rng.below(3) as usize;
                            let mut s: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                            s.resize(s.len().max(4), 0);
                            s[0..2].copy_from_slice(&(rng.below(9) as u16).to_le_bytes());
                            s[2..4].copy_from_slice(&len.to_le_bytes());
                            s
                        })
                        .collect();
                    table(&structs)
                }
                // Mutations of a valid table.
                _ => {
                    let mut t = valid.clone();
                    for _ in 0..1 + rng.below(8) {
                        let at = rng.below(t.len() as u64) as usize;
                        t[at] = rng.next_u64() as u8;
                    }
                    t.truncate(rng.below(t.len() as u64 + 40) as usize);
                    t
                }
            };
            exercise(&t, &mut rng);
            if i % 1000 == 0 {
                let (nfit, _) = combine(&[&t, &valid, &t]);
                assert!(nfit.spa_ranges().count() >= 1);
            }
        }
    }

    #[test]
    fn fit_is_parsed_as_the_structures_of_one_nfit() {
        let whole = build_nfit(&[(0x1_0000_0000, 256 << 20)], *b"BOCHS ", *b"NVDIMM  ", 1, 2);
        let fit = &whole[STRUCTURES_OFFSET..];
        let (from_fit, errors) = parse_fit(fit).unwrap();
        assert!(errors.is_empty());
        let (from_table, _) = parse(&whole).unwrap();
        assert_eq!(from_fit.structures, from_table.structures);
        let spa: Vec<_> = from_fit.spa_ranges().map(|s| (s.index, s.base, s.length)).collect();
        assert_eq!(spa, [(2, 0x1_0000_0000, 256 << 20)]);
        // An empty _FIT is an NFIT without structures; a cut one says so.
        assert!(parse_fit(&[]).unwrap().0.structures.is_empty());
        let (cut, errors) = parse_fit(&fit[..fit.len() - 3]).unwrap();
        assert!(cut.spa_ranges().next().is_none() || !errors.is_empty());
        assert!(!errors.is_empty());
    }
}

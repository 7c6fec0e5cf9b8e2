//! The Multiple APIC Description Table (ACPI 6.4 §5.2.12, signature
//! `APIC`): parser, Linux's lines for its entries, and the policy that turns
//! its processor entries into the list of possible CPUs.
//!
//! Layout: the 36-byte table header, the local APIC address (`u32` @36),
//! flags (`u32` @40, bit 0 `PCAT_COMPAT`), then entries from offset 44, each
//! starting with `type: u8, length: u8` and followed at `length` bytes by
//! the next.
//!
//! Refusals (each one [`MadtError`], one line), keeping the rest of the table
//! whenever it can still be located:
//! - an entry shorter than its type's structure is skipped and parsing
//!   continues at `length` (Linux's `BAD_MADT_ENTRY` refuses it too; longer
//!   entries are accepted, as later ACPI revisions may add fields);
//! - a length below 2 (zero included) or running past the table end stops
//!   parsing: the rest cannot be located.
//!
//! Entry lines are Linux 6.1's `acpi_table_print_madt_entry` lines, printed
//! without the `ACPI: ` prefix (see the crate docs):
//!
//! ```text
//! LAPIC (acpi_id[0x00] lapic_id[0x00] enabled)
//! IOAPIC (id[0x00] address[0xfec00000] gsi_base[0])
//! INT_SRC_OVR (bus 0 bus_irq 0 global_irq 2 dfl dfl)
//! LAPIC_NMI (acpi_id[0xff] dfl dfl lint[0x1])
//! ```
//!
//! Linux prints `LAPIC`, `X2APIC` and `IOAPIC` with `pr_debug` (compiled in
//! but off that early in Debian's kernel, even with `loglevel=8`) and the
//! others with `pr_info`: [`Entry::linux_debug`] says which.

use alloc::vec::Vec;
use core::fmt;

use crate::sdt::{Fixed, HEADER_LEN};
use crate::{bytes_at, u16_at, u32_at, u64_at};

/// The MADT signature.
pub const SIGNATURE: [u8; 4] = *b"APIC";
/// Offset of the first entry (header, local APIC address, flags).
pub const ENTRIES_OFFSET: usize = HEADER_LEN + 8;
/// MADT flag: the machine also has dual 8259 PICs (mask them before using
/// the I/O APIC).
pub const PCAT_COMPAT: u32 = 1;
/// Processor entry flag: the processor is usable now.
pub const ENABLED: u32 = 1;
/// Processor entry flag (ACPI 6.3): a disabled processor can be brought
/// online later.
pub const ONLINE_CAPABLE: u32 = 2;
/// Linux's `MAX_LOCAL_APIC` on x86_64: larger APIC IDs are skipped.
pub const MAX_LOCAL_APIC: u32 = 32768;

/// Entry type numbers.
pub mod kind {
    pub const LOCAL_APIC: u8 = 0;
    pub const IO_APIC: u8 = 1;
    pub const INTERRUPT_OVERRIDE: u8 = 2;
    pub const NMI_SOURCE: u8 = 3;
    pub const LOCAL_APIC_NMI: u8 = 4;
    pub const LOCAL_APIC_OVERRIDE: u8 = 5;
    pub const LOCAL_X2APIC: u8 = 9;
    pub const LOCAL_X2APIC_NMI: u8 = 10;
}

/// The smallest length of an entry of type `kind` (the size of its ACPICA
/// structure), or `None` for types this parser does not read.
pub fn min_len(kind: u8) -> Option<u8> {
    Some(match kind {
        kind::LOCAL_APIC => 8,
        kind::IO_APIC => 12,
        kind::INTERRUPT_OVERRIDE => 10,
        kind::NMI_SOURCE => 8,
        kind::LOCAL_APIC_NMI => 6,
        kind::LOCAL_APIC_OVERRIDE => 12,
        kind::LOCAL_X2APIC => 16,
        kind::LOCAL_X2APIC_NMI => 12,
        _ => return None,
    })
}

/// One MADT entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// Type 0: processor local APIC.
    LocalApic {
        /// ACPI processor UID.
        acpi_id: u8,
        /// Local APIC ID.
        apic_id: u8,
        /// [`ENABLED`], [`ONLINE_CAPABLE`].
        flags: u32,
    },
    /// Type 1: I/O APIC.
    IoApic {
        /// I/O APIC ID.
        id: u8,
        /// Physical address of its registers.
        address: u32,
        /// First global system interrupt it handles.
        gsi_base: u32,
    },
    /// Type 2: interrupt source override (an ISA IRQ on another GSI).
    InterruptOverride {
        /// Bus (0: ISA).
        bus: u8,
        /// Bus-relative IRQ.
        source: u8,
        /// Global system interrupt.
        gsi: u32,
        /// MPS INTI flags (polarity bits 0-1, trigger mode bits 2-3).
        flags: u16,
    },
    /// Type 3: non-maskable interrupt source.
    NmiSource {
        /// MPS INTI flags.
        flags: u16,
        /// Global system interrupt.
        gsi: u32,
    },
    /// Type 4: local APIC NMI (which LINT pin of which processor).
    LocalApicNmi {
        /// ACPI processor UID (0xff: all).
        acpi_id: u8,
        /// MPS INTI flags.
        flags: u16,
        /// LINT pin (0 or 1).
        lint: u8,
    },
    /// Type 5: a 64-bit local APIC address, replacing the header's.
    LocalApicOverride {
        /// Physical address.
        address: u64,
    },
    /// Type 9: processor local x2APIC.
    LocalX2Apic {
        /// x2APIC ID.
        x2apic_id: u32,
        /// [`ENABLED`], [`ONLINE_CAPABLE`].
        flags: u32,
        /// ACPI processor UID.
        acpi_uid: u32,
    },
    /// Type 10: local x2APIC NMI.
    LocalX2ApicNmi {
        /// MPS INTI flags.
        flags: u16,
        /// ACPI processor UID (0xffffffff: all).
        acpi_uid: u32,
        /// LINT pin.
        lint: u8,
    },
    /// Any other type, skipped by its length.
    Other {
        /// Entry type.
        kind: u8,
        /// Entry length.
        len: u8,
    },
}

const POLARITY: [&str; 4] = ["dfl", "high", "res", "low"];
const TRIGGER: [&str; 4] = ["dfl", "edge", "res", "level"];

/// MPS INTI flags as Linux prints them: polarity, then trigger mode.
struct Inti(u16);

impl fmt::Display for Inti {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = POLARITY[usize::from(self.0 & 3)];
        let t = TRIGGER[usize::from((self.0 >> 2) & 3)];
        write!(f, "{p} {t}")
    }
}

fn state(flags: u32) -> &'static str {
    if flags & ENABLED != 0 { "enabled" } else { "disabled" }
}

impl fmt::Display for Entry {
    /// Linux 6.1's line (`%d` fields are C ints, so they print signed).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::LocalApic { acpi_id, apic_id, flags } => write!(
                f,
                "LAPIC (acpi_id[0x{acpi_id:02x}] lapic_id[0x{apic_id:02x}] {})",
                state(flags)
            ),
            Self::IoApic { id, address, gsi_base } => write!(
                f,
                "IOAPIC (id[0x{id:02x}] address[0x{address:08x}] gsi_base[{}])",
                gsi_base as i32
            ),
            Self::InterruptOverride { bus, source, gsi, flags } => write!(
                f,
                "INT_SRC_OVR (bus {bus} bus_irq {source} global_irq {} {})",
                gsi as i32,
                Inti(flags)
            ),
            Self::NmiSource { flags, gsi } => {
                write!(f, "NMI_SRC ({} global_irq {})", Inti(flags), gsi as i32)
            }
            Self::LocalApicNmi { acpi_id, flags, lint } => {
                write!(f, "LAPIC_NMI (acpi_id[0x{acpi_id:02x}] {} lint[0x{lint:x}])", Inti(flags))
            }
            // Linux prints the address with `%p` (hashed); the value is
            // more use here.
            Self::LocalApicOverride { address } => {
                write!(f, "LAPIC_ADDR_OVR (address[0x{address:x}])")
            }
            Self::LocalX2Apic { x2apic_id, flags, acpi_uid } => write!(
                f,
                "X2APIC (apic_id[0x{x2apic_id:02x}] uid[0x{acpi_uid:02x}] {})",
                state(flags)
            ),
            Self::LocalX2ApicNmi { flags, acpi_uid, lint } => {
                write!(f, "X2APIC_NMI (uid[0x{acpi_uid:02x}] {} lint[0x{lint:x}])", Inti(flags))
            }
            Self::Other { kind, .. } => {
                write!(f, "Found unsupported MADT entry (type = 0x{kind:x})")
            }
        }
    }
}

impl Entry {
    /// Whether Linux 6.1 prints this entry's line with `pr_debug` (local
    /// APIC, x2APIC, I/O APIC, and the types it does not know) rather than
    /// `pr_info`.
    pub fn linux_debug(&self) -> bool {
        matches!(
            self,
            Self::LocalApic { .. }
                | Self::LocalX2Apic { .. }
                | Self::IoApic { .. }
                | Self::Other { .. }
        )
    }

    /// Reserved bits set in an interrupt source override's flags: Linux
    /// prints `INT_SRC_OVR unexpected reserved flags: 0x{bits:x}` after the
    /// entry's line.
    pub fn reserved_flags(&self) -> Option<u16> {
        match *self {
            Self::InterruptOverride { flags, .. } if flags & !0xf != 0 => Some(flags & !0xf),
            _ => None,
        }
    }

    /// The entry's bytes (the structure's own length).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::new();
        match *self {
            Self::LocalApic { acpi_id, apic_id, flags } => {
                b.extend_from_slice(&[kind::LOCAL_APIC, 8, acpi_id, apic_id]);
                b.extend_from_slice(&flags.to_le_bytes());
            }
            Self::IoApic { id, address, gsi_base } => {
                b.extend_from_slice(&[kind::IO_APIC, 12, id, 0]);
                b.extend_from_slice(&address.to_le_bytes());
                b.extend_from_slice(&gsi_base.to_le_bytes());
            }
            Self::InterruptOverride { bus, source, gsi, flags } => {
                b.extend_from_slice(&[kind::INTERRUPT_OVERRIDE, 10, bus, source]);
                b.extend_from_slice(&gsi.to_le_bytes());
                b.extend_from_slice(&flags.to_le_bytes());
            }
            Self::NmiSource { flags, gsi } => {
                b.extend_from_slice(&[kind::NMI_SOURCE, 8]);
                b.extend_from_slice(&flags.to_le_bytes());
                b.extend_from_slice(&gsi.to_le_bytes());
            }
            Self::LocalApicNmi { acpi_id, flags, lint } => {
                b.extend_from_slice(&[kind::LOCAL_APIC_NMI, 6, acpi_id]);
                b.extend_from_slice(&flags.to_le_bytes());
                b.push(lint);
            }
            Self::LocalApicOverride { address } => {
                b.extend_from_slice(&[kind::LOCAL_APIC_OVERRIDE, 12, 0, 0]);
                b.extend_from_slice(&address.to_le_bytes());
            }
            Self::LocalX2Apic { x2apic_id, flags, acpi_uid } => {
                b.extend_from_slice(&[kind::LOCAL_X2APIC, 16, 0, 0]);
                b.extend_from_slice(&x2apic_id.to_le_bytes());
                b.extend_from_slice(&flags.to_le_bytes());
                b.extend_from_slice(&acpi_uid.to_le_bytes());
            }
            Self::LocalX2ApicNmi { flags, acpi_uid, lint } => {
                b.extend_from_slice(&[kind::LOCAL_X2APIC_NMI, 12]);
                b.extend_from_slice(&flags.to_le_bytes());
                b.extend_from_slice(&acpi_uid.to_le_bytes());
                b.extend_from_slice(&[lint, 0, 0, 0]);
            }
            Self::Other { kind, len } => {
                b.extend_from_slice(&[kind, len]);
                b.resize(usize::from(len).max(2), 0);
            }
        }
        b
    }
}

/// Why (part of) a MADT was refused; `offset` is an entry's byte offset in
/// the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MadtError {
    /// Fewer than 44 bytes given.
    TableTooShort {
        /// Bytes given.
        len: usize,
    },
    /// The signature is not `APIC`.
    NotMadt {
        /// Signature found.
        signature: [u8; 4],
    },
    /// The header `Length` is below 44 or beyond the bytes given.
    BadTableLength {
        /// The header's `Length`.
        header_len: u32,
        /// Bytes given.
        available: usize,
    },
    /// An entry length below 2 (zero included): parsing stopped.
    EntryTooSmall {
        /// Entry offset.
        offset: usize,
        /// Entry type.
        kind: u8,
        /// Entry length.
        len: u8,
    },
    /// An entry (or its 2-byte header) runs past the table end: parsing
    /// stopped.
    Truncated {
        /// Entry offset.
        offset: usize,
        /// Bytes the entry needs.
        need: usize,
        /// Bytes left in the table.
        left: usize,
    },
    /// An entry shorter than its type's structure: skipped.
    ShortEntry {
        /// Entry offset.
        offset: usize,
        /// Entry type.
        kind: u8,
        /// Entry length.
        len: u8,
        /// The type's length.
        need: u8,
    },
}

impl fmt::Display for MadtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const STOP: &str = "rest of the table ignored";
        match *self {
            Self::TableTooShort { len } => {
                write!(f, "MADT: only {len} bytes, need {ENTRIES_OFFSET}, table ignored")
            }
            Self::NotMadt { signature } => {
                write!(f, "MADT: signature {} is not APIC, table ignored", Fixed(&signature))
            }
            Self::BadTableLength { header_len, available } => write!(
                f,
                "MADT: header length {header_len} outside {ENTRIES_OFFSET}..={available}, \
                 table ignored"
            ),
            Self::EntryTooSmall { offset, kind, len } => {
                write!(f, "MADT offset 0x{offset:x}: type {kind} length {len} below 2, {STOP}")
            }
            Self::Truncated { offset, need, left } => {
                write!(f, "MADT offset 0x{offset:x}: entry needs {need} bytes, {left} left, {STOP}")
            }
            Self::ShortEntry { offset, kind, len, need } => write!(
                f,
                "MADT offset 0x{offset:x}: type {kind} length {len}, expected at least {need}, \
                 skipped"
            ),
        }
    }
}

/// A parsed MADT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Madt {
    /// Table revision (from the header).
    pub revision: u8,
    /// The 32-bit local APIC address from the table.
    pub local_apic_address: u32,
    /// Flags ([`PCAT_COMPAT`]).
    pub flags: u32,
    /// Entries accepted, in table order.
    pub entries: Vec<Entry>,
}

impl Madt {
    /// The local APIC's physical address: the last type 5 override, else
    /// the header's (Linux's `acpi_parse_lapic_addr_ovr` replaces it).
    pub fn local_apic_address(&self) -> u64 {
        self.entries
            .iter()
            .filter_map(|e| match *e {
                Entry::LocalApicOverride { address } => Some(address),
                _ => None,
            })
            .next_back()
            .unwrap_or(self.local_apic_address.into())
    }

    /// Whether the machine also has the legacy 8259 PICs.
    pub fn pcat_compat(&self) -> bool {
        self.flags & PCAT_COMPAT != 0
    }

    /// The I/O APICs: (id, address, gsi_base).
    pub fn io_apics(&self) -> impl Iterator<Item = (u8, u32, u32)> + '_ {
        self.entries.iter().filter_map(|e| match *e {
            Entry::IoApic { id, address, gsi_base } => Some((id, address, gsi_base)),
            _ => None,
        })
    }
}

/// Parses one whole MADT (header included). Table-level problems are the
/// `Err`; entry refusals come back with the entries kept. The checksum is
/// not verified here: the table walk does that.
pub fn parse(table: &[u8]) -> Result<(Madt, Vec<MadtError>), MadtError> {
    if table.len() < ENTRIES_OFFSET {
        return Err(MadtError::TableTooShort { len: table.len() });
    }
    let signature = bytes_at(table, 0).unwrap_or_default();
    if signature != SIGNATURE {
        return Err(MadtError::NotMadt { signature });
    }
    let header_len = u32_at(table, 4).unwrap_or_default();
    let bytes = usize::try_from(header_len)
        .ok()
        .filter(|&n| n >= ENTRIES_OFFSET)
        .and_then(|n| table.get(..n))
        .ok_or(MadtError::BadTableLength { header_len, available: table.len() })?;
    let mut madt = Madt {
        revision: bytes[8],
        local_apic_address: u32_at(bytes, HEADER_LEN).unwrap_or_default(),
        flags: u32_at(bytes, HEADER_LEN + 4).unwrap_or_default(),
        entries: Vec::new(),
    };
    let mut errors = Vec::new();
    let mut offset = ENTRIES_OFFSET;
    while offset < bytes.len() {
        let left = bytes.len() - offset;
        let (Some(&kind), Some(&len)) = (bytes.get(offset), bytes.get(offset + 1)) else {
            errors.push(MadtError::Truncated { offset, need: 2, left });
            break;
        };
        if len < 2 {
            errors.push(MadtError::EntryTooSmall { offset, kind, len });
            break;
        }
        let Some(e) = bytes.get(offset..offset + usize::from(len)) else {
            errors.push(MadtError::Truncated { offset, need: len.into(), left });
            break;
        };
        match parse_entry(kind, e) {
            Some(entry) => madt.entries.push(entry),
            None => errors.push(MadtError::ShortEntry {
                offset,
                kind,
                len,
                need: min_len(kind).unwrap_or(2),
            }),
        }
        offset += usize::from(len);
    }
    Ok((madt, errors))
}

/// One entry from its bytes (`e.len()` is its length); `None` when too
/// short for its type.
fn parse_entry(kind: u8, e: &[u8]) -> Option<Entry> {
    if let Some(need) = min_len(kind)
        && e.len() < usize::from(need)
    {
        return None;
    }
    Some(match kind {
        kind::LOCAL_APIC => Entry::LocalApic { acpi_id: e[2], apic_id: e[3], flags: u32_at(e, 4)? },
        kind::IO_APIC => {
            Entry::IoApic { id: e[2], address: u32_at(e, 4)?, gsi_base: u32_at(e, 8)? }
        }
        kind::INTERRUPT_OVERRIDE => Entry::InterruptOverride {
            bus: e[2],
            source: e[3],
            gsi: u32_at(e, 4)?,
            flags: u16_at(e, 8)?,
        },
        kind::NMI_SOURCE => Entry::NmiSource { flags: u16_at(e, 2)?, gsi: u32_at(e, 4)? },
        kind::LOCAL_APIC_NMI => {
            Entry::LocalApicNmi { acpi_id: e[2], flags: u16_at(e, 3)?, lint: e[5] }
        }
        kind::LOCAL_APIC_OVERRIDE => Entry::LocalApicOverride { address: u64_at(e, 4)? },
        kind::LOCAL_X2APIC => Entry::LocalX2Apic {
            x2apic_id: u32_at(e, 4)?,
            flags: u32_at(e, 8)?,
            acpi_uid: u32_at(e, 12)?,
        },
        kind::LOCAL_X2APIC_NMI => {
            Entry::LocalX2ApicNmi { flags: u16_at(e, 2)?, acpi_uid: u32_at(e, 4)?, lint: e[8] }
        }
        _ => Entry::Other { kind, len: e.len() as u8 },
    })
}

/// Builds a checksummed MADT with QEMU's header (OEM `BOCHS `, table
/// `BXPC    `, revision 1), `PCAT_COMPAT` set and the local APIC at
/// 0xfee00000, from the entries' bytes (which may be deliberately broken).
pub fn build(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut body = Vec::with_capacity(ENTRIES_OFFSET - crate::sdt::HEADER_LEN);
    body.extend_from_slice(&0xfee0_0000u32.to_le_bytes());
    body.extend_from_slice(&PCAT_COMPAT.to_le_bytes());
    body.extend(entries.concat());
    let header = crate::sdt::SdtHeader {
        signature: SIGNATURE,
        length: 0,
        revision: 1,
        checksum: 0,
        oem_id: *b"BOCHS ",
        oem_table_id: *b"BXPC    ",
        oem_revision: 1,
        creator_id: *b"BXPC",
        creator_revision: 1,
    };
    header.table(&body)
}

/// The entries after the processors in QEMU 7.2's own `pc` MADT: one I/O
/// APIC at 0xfec00000, the ISA overrides (IRQ 0 on GSI 2, the PCI
/// interrupts 5, 9, 10, 11 active-high level) and the LINT1 NMI of every
/// processor.
pub fn qemu_tail() -> Vec<Entry> {
    let mut v = alloc::vec![
        Entry::IoApic { id: 0, address: 0xfec0_0000, gsi_base: 0 },
        Entry::InterruptOverride { bus: 0, source: 0, gsi: 2, flags: 0 },
    ];
    for irq in [5, 9, 10, 11] {
        v.push(Entry::InterruptOverride { bus: 0, source: irq, gsi: irq.into(), flags: 0xd });
    }
    v.push(Entry::LocalApicNmi { acpi_id: 0xff, flags: 0, lint: 1 });
    v
}

/// Which MADT to use when the firmware lists `count` of them, as Linux's
/// `check_multiple_madt` and ACPICA's `acpi_get_table` decide:
/// `acpi_apic_instance=N` (0 when not given) picks the N-th; 0 and 1 both
/// mean the first. With a single MADT the option is ignored (Linux resets
/// it to 0); with several, the warnings below are reported and an instance
/// beyond the count means no MADT at all, as on Linux. Returns the index
/// into the MADTs in table order.
pub fn select_instance(
    count: usize,
    instance: u32,
    report: &mut dyn FnMut(fmt::Arguments<'_>),
) -> Option<usize> {
    match count {
        0 => None,
        1 => Some(0),
        _ => {
            report(format_args!("BIOS bug: multiple APIC/MADT found, using {instance}"));
            report(format_args!(
                "If \"acpi_apic_instance={}\" works better, notify linux-acpi@vger.kernel.org",
                if instance != 0 { 0 } else { 2 }
            ));
            let index = usize::try_from(instance.max(1) - 1).ok()?;
            (index < count).then_some(index)
        }
    }
}

/// A possible CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cpu {
    /// Local APIC (or x2APIC) ID.
    pub apic_id: u32,
    /// ACPI processor UID.
    pub acpi_id: u32,
    /// Usable now: start it. A CPU not enabled is online-capable only (a
    /// hot-plug slot) and must not be started.
    pub enabled: bool,
    /// The entry's online-capable flag.
    pub online_capable: bool,
}

/// The possible CPUs of a MADT, boot CPU first, then in the order Linux
/// 6.1 numbers them. `report` gets whole lines, prefixes included (they
/// mirror lines of different Linux subsystems: `ACPI: `, `APIC: `,
/// `smpboot: `).
///
/// The rules, from Linux 6.1 (`arch/x86/kernel/acpi/boot.c`
/// `acpi_parse_lapic`, `acpi_parse_x2apic`, `acpi_register_lapic`;
/// `arch/x86/kernel/apic/apic.c` `generic_processor_info`):
/// - Local APIC entries are read first, then x2APIC entries, each pass in
///   table order (Linux parses them in two passes since "x86/acpi/boot:
///   Ignore invalid x2APIC entries", in 6.1.y).
/// - A local APIC entry with APIC ID 0xff, and an x2APIC entry with ID
///   0xffffffff, is invalid and ignored without a line.
/// - An entry neither enabled nor online-capable is no CPU: its line shows
///   `disabled` and nothing else is said (Linux's
///   `acpi_is_processor_usable`; Linux 6.1 still counts such entries as
///   hot-plug slots in a MADT before revision 5, Tessera never does). An
///   online-capable disabled entry is a possible CPU with `enabled: false`.
/// - An x2APIC entry with an ID below 255 is ignored when a usable local
///   APIC entry exists: firmware lists the same processors twice that way.
/// - Without x2APIC mode (`x2apic` false) an x2APIC ID above 254 cannot be
///   addressed: an enabled one gets Linux's `ACPI: x2apic entry ignored`
///   line (with the ID added), a disabled one is dropped silently, as
///   `acpi_parse_x2apic` does when `apic_id_valid` fails.
/// - An ID of [`MAX_LOCAL_APIC`] or more: `ACPI: skipped apicid that is too
///   big` (Linux's line, with the ID added).
/// - A repeated APIC ID is left out after the first with one line (Linux
///   silently gives both entries the same logical CPU).
/// - At most `max_cpus` (at least 1): while the boot CPU is not yet seen the
///   last slot is kept for it; entries past the limit get Linux's
///   `APIC: NR_CPUS/possible_cpus limit of N ... Processor M/0xID ignored.`
///   lines, where M counts the CPUs left out so far as Linux's
///   `disabled_cpus` does.
/// - The boot CPU (`boot_apic_id`, read from its own APIC) is always in the
///   list, first; if no usable entry names it, it is added with Linux's
///   `smpboot: Boot CPU (id N) not listed by BIOS` line (measured on Linux
///   6.1 left without a MADT).
///
/// Finally one summary line as Linux's `prefill_possible_map` prints it:
/// `smpboot: Allowing N CPUs, M hotplug CPUs`.
pub fn possible_cpus(
    madt: &Madt,
    boot_apic_id: u32,
    x2apic: bool,
    max_cpus: usize,
    report: &mut dyn FnMut(fmt::Arguments<'_>),
) -> Vec<Cpu> {
    let max = max_cpus.max(1);
    let mut p = Possible { boot: None, others: Vec::new(), ignored: 0, boot_apic_id, max };
    let mut has_lapic = false;
    for e in &madt.entries {
        let Entry::LocalApic { acpi_id, apic_id, flags } = *e else { continue };
        if apic_id == 0xff || !usable(flags) {
            continue;
        }
        has_lapic = true;
        p.register(apic_id.into(), acpi_id.into(), flags, report);
    }
    for e in &madt.entries {
        let Entry::LocalX2Apic { x2apic_id, flags, acpi_uid } = *e else { continue };
        if x2apic_id == u32::MAX || !usable(flags) || (has_lapic && x2apic_id < 0xff) {
            continue;
        }
        if !x2apic && x2apic_id > 0xfe {
            if flags & ENABLED != 0 {
                report(format_args!(
                    "ACPI: x2apic entry ignored (apic_id[0x{x2apic_id:02x}]: no x2APIC mode)"
                ));
            }
            continue;
        }
        p.register(x2apic_id, acpi_uid, flags, report);
    }
    let boot = match p.boot {
        Some(cpu) => cpu,
        None => {
            report(format_args!("smpboot: Boot CPU (id {boot_apic_id}) not listed by BIOS"));
            if p.others.len() >= max {
                p.others.truncate(max - 1);
            }
            Cpu { apic_id: boot_apic_id, acpi_id: 0, enabled: true, online_capable: false }
        }
    };
    let mut cpus = alloc::vec![boot];
    cpus.extend(p.others);
    let hotplug = cpus.iter().filter(|c| !c.enabled).count();
    report(format_args!("smpboot: Allowing {} CPUs, {hotplug} hotplug CPUs", cpus.len()));
    cpus
}

/// Enabled, or online-capable (Linux's `acpi_is_processor_usable`).
fn usable(flags: u32) -> bool {
    flags & (ENABLED | ONLINE_CAPABLE) != 0
}

/// [`possible_cpus`]'s state: Linux's `num_processors` is `others.len()`
/// plus the boot CPU, `disabled_cpus` is `ignored`.
struct Possible {
    boot: Option<Cpu>,
    others: Vec<Cpu>,
    ignored: usize,
    boot_apic_id: u32,
    max: usize,
}

impl Possible {
    fn register(
        &mut self,
        apic_id: u32,
        acpi_id: u32,
        flags: u32,
        report: &mut dyn FnMut(fmt::Arguments<'_>),
    ) {
        if apic_id >= MAX_LOCAL_APIC {
            report(format_args!("ACPI: skipped apicid that is too big (0x{apic_id:x})"));
            return;
        }
        let cpu = Cpu {
            apic_id,
            acpi_id,
            enabled: flags & ENABLED != 0,
            online_capable: flags & ONLINE_CAPABLE != 0,
        };
        let seen = self.boot.iter().chain(&self.others).any(|c| c.apic_id == apic_id);
        if seen {
            report(format_args!(
                "APIC: duplicate APIC ID 0x{apic_id:x} (acpi_id 0x{acpi_id:02x}) ignored"
            ));
            self.ignored += 1;
            return;
        }
        let count = self.others.len() + usize::from(self.boot.is_some());
        let is_boot = apic_id == self.boot_apic_id;
        if self.boot.is_none() && !is_boot && count + 1 >= self.max {
            report(format_args!(
                "APIC: NR_CPUS/possible_cpus limit of {} almost reached. Keeping one slot for \
                 boot cpu.  Processor {}/0x{apic_id:x} ignored.",
                self.max,
                self.max + self.ignored - 1
            ));
            self.ignored += 1;
            return;
        }
        if count >= self.max {
            report(format_args!(
                "APIC: NR_CPUS/possible_cpus limit of {} reached. Processor {}/0x{apic_id:x} \
                 ignored.",
                self.max,
                self.max + self.ignored
            ));
            self.ignored += 1;
            return;
        }
        if is_boot {
            self.boot = Some(cpu);
        } else {
            self.others.push(cpu);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::{String, ToString};
    use alloc::vec;
    use rng::Rng;

    /// QEMU 7.2's own MADT for `-machine pc -smp 4` (SeaBIOS), as Linux 6.1
    /// read it from /sys/firmware/acpi/tables/APIC.
    const QEMU_SMP4: [u8; 0x90] = [
        0x41, 0x50, 0x49, 0x43, 0x90, 0x00, 0x00, 0x00, 0x01, 0x4b, 0x42, 0x4f, 0x43, 0x48, 0x53,
        0x20, 0x42, 0x58, 0x50, 0x43, 0x20, 0x20, 0x20, 0x20, 0x01, 0x00, 0x00, 0x00, 0x42, 0x58,
        0x50, 0x43, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0xe0, 0xfe, 0x01, 0x00, 0x00, 0x00, 0x00,
        0x08, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x08, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00,
        0x00, 0x08, 0x02, 0x02, 0x01, 0x00, 0x00, 0x00, 0x00, 0x08, 0x03, 0x03, 0x01, 0x00, 0x00,
        0x00, 0x01, 0x0c, 0x00, 0x00, 0x00, 0x00, 0xc0, 0xfe, 0x00, 0x00, 0x00, 0x00, 0x02, 0x0a,
        0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x0a, 0x00, 0x05, 0x05, 0x00, 0x00,
        0x00, 0x0d, 0x00, 0x02, 0x0a, 0x00, 0x09, 0x09, 0x00, 0x00, 0x00, 0x0d, 0x00, 0x02, 0x0a,
        0x00, 0x0a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x00, 0x02, 0x0a, 0x00, 0x0b, 0x0b, 0x00, 0x00,
        0x00, 0x0d, 0x00, 0x04, 0x06, 0xff, 0x00, 0x00, 0x01,
    ];

    fn lapic(acpi_id: u8, apic_id: u8, flags: u32) -> Entry {
        Entry::LocalApic { acpi_id, apic_id, flags }
    }

    fn x2(x2apic_id: u32, acpi_uid: u32, flags: u32) -> Entry {
        Entry::LocalX2Apic { x2apic_id, flags, acpi_uid }
    }

    fn madt(entries: &[Entry]) -> Madt {
        Madt { revision: 1, local_apic_address: 0xfee0_0000, flags: 1, entries: entries.to_vec() }
    }

    fn table(entries: &[Entry]) -> Vec<u8> {
        build(&entries.iter().map(Entry::to_bytes).collect::<Vec<_>>())
    }

    /// `possible_cpus` with the lines it reports.
    fn cpus(m: &Madt, boot: u32, x2apic: bool, max: usize) -> (Vec<(u32, bool)>, Vec<String>) {
        let mut lines = Vec::new();
        let c = possible_cpus(m, boot, x2apic, max, &mut |a| lines.push(a.to_string()));
        (c.iter().map(|c| (c.apic_id, c.enabled)).collect(), lines)
    }

    fn on(ids: &[u32]) -> Vec<(u32, bool)> {
        ids.iter().map(|&i| (i, true)).collect()
    }

    #[test]
    fn qemu_table_prints_like_linux() {
        assert!(crate::sdt::checksum_ok(&QEMU_SMP4));
        let (m, errors) = parse(&QEMU_SMP4).unwrap();
        assert_eq!(errors, []);
        assert_eq!((m.revision, m.local_apic_address(), m.pcat_compat()), (1, 0xfee0_0000, true));
        let lines: Vec<String> = m.entries.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            lines,
            [
                "LAPIC (acpi_id[0x00] lapic_id[0x00] enabled)",
                "LAPIC (acpi_id[0x01] lapic_id[0x01] enabled)",
                "LAPIC (acpi_id[0x02] lapic_id[0x02] enabled)",
                "LAPIC (acpi_id[0x03] lapic_id[0x03] enabled)",
                "IOAPIC (id[0x00] address[0xfec00000] gsi_base[0])",
                // The pr_info lines below are the ones Linux 6.1 printed.
                "INT_SRC_OVR (bus 0 bus_irq 0 global_irq 2 dfl dfl)",
                "INT_SRC_OVR (bus 0 bus_irq 5 global_irq 5 high level)",
                "INT_SRC_OVR (bus 0 bus_irq 9 global_irq 9 high level)",
                "INT_SRC_OVR (bus 0 bus_irq 10 global_irq 10 high level)",
                "INT_SRC_OVR (bus 0 bus_irq 11 global_irq 11 high level)",
                "LAPIC_NMI (acpi_id[0xff] dfl dfl lint[0x1])",
            ]
        );
        let debug: Vec<bool> = m.entries.iter().map(Entry::linux_debug).collect();
        assert_eq!(debug, [true, true, true, true, true, false, false, false, false, false, false]);
        assert_eq!(m.io_apics().collect::<Vec<_>>(), [(0, 0xfec0_0000, 0)]);
        // Round trip: the builder and `to_bytes` give QEMU's bytes back.
        let mut qemu: Vec<Entry> = (0..4).map(|i| lapic(i, i, 1)).collect();
        qemu.extend(qemu_tail());
        assert_eq!(m.entries, qemu);
        assert_eq!(table(&qemu), QEMU_SMP4);
        let (c, lines) = cpus(&m, 0, false, 64);
        assert_eq!(c, on(&[0, 1, 2, 3]));
        assert_eq!(lines, ["smpboot: Allowing 4 CPUs, 0 hotplug CPUs"]);
    }

    #[test]
    fn other_entries_print_like_linux() {
        let cases = [
            (x2(0x100, 4, 1), "X2APIC (apic_id[0x100] uid[0x04] enabled)"),
            (x2(7, 0x1234, 0), "X2APIC (apic_id[0x07] uid[0x1234] disabled)"),
            (
                Entry::NmiSource { flags: 0xf, gsi: 0xffff_fffe },
                "NMI_SRC (low level global_irq -2)",
            ),
            (
                Entry::LocalX2ApicNmi { flags: 5, acpi_uid: 0xffff_ffff, lint: 1 },
                "X2APIC_NMI (uid[0xffffffff] high edge lint[0x1])",
            ),
            (
                Entry::LocalApicOverride { address: 0xfee0_0000 },
                "LAPIC_ADDR_OVR (address[0xfee00000])",
            ),
            (Entry::Other { kind: 0x7f, len: 4 }, "Found unsupported MADT entry (type = 0x7f)"),
            (
                Entry::InterruptOverride { bus: 0, source: 9, gsi: 9, flags: 0x2a },
                "INT_SRC_OVR (bus 0 bus_irq 9 global_irq 9 res res)",
            ),
        ];
        let entries: Vec<Entry> = cases.iter().map(|c| c.0).collect();
        let (m, errors) = parse(&table(&entries)).unwrap();
        assert_eq!(errors, []);
        assert_eq!(m.entries, entries, "to_bytes and parse agree");
        for (e, line) in cases {
            assert_eq!(e.to_string(), line);
        }
        assert_eq!(entries[6].reserved_flags(), Some(0x20));
        assert_eq!(entries[0].reserved_flags(), None);
        let o = madt(&[Entry::LocalApicOverride { address: 0x1_0000_0000 }]);
        assert_eq!(o.local_apic_address(), 0x1_0000_0000);
    }

    #[test]
    fn entry_refusals() {
        let good: Vec<Entry> = (0..2).map(|i| lapic(i, i, 1)).collect();
        let short_lapic = vec![0u8, 6, 2, 2, 1, 0];
        let short_x2 = vec![9u8, 12, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0];
        let cases: Vec<(&str, Vec<u8>, MadtError, usize)> = vec![
            (
                "short LAPIC",
                short_lapic,
                MadtError::ShortEntry { offset: 60, kind: 0, len: 6, need: 8 },
                3,
            ),
            (
                "short x2APIC",
                short_x2,
                MadtError::ShortEntry { offset: 60, kind: 9, len: 12, need: 16 },
                3,
            ),
            (
                "zero length",
                vec![0, 0, 0, 0],
                MadtError::EntryTooSmall { offset: 60, kind: 0, len: 0 },
                2,
            ),
            ("length 1", vec![4, 1], MadtError::EntryTooSmall { offset: 60, kind: 4, len: 1 }, 2),
            (
                "past the end",
                vec![1, 12, 0, 0, 0],
                MadtError::Truncated { offset: 60, need: 12, left: 5 },
                2,
            ),
            ("one byte left", vec![1], MadtError::Truncated { offset: 60, need: 2, left: 1 }, 2),
        ];
        for (name, bad, error, kept) in cases {
            let mut raw: Vec<Vec<u8>> = good.iter().map(Entry::to_bytes).collect();
            raw.push(bad);
            // A good entry after the bad one (unless the bad one is cut off
            // by the table end): kept unless parsing stopped.
            if !matches!(error, MadtError::Truncated { .. }) {
                raw.push(lapic(9, 9, 1).to_bytes());
            }
            let (m, errors) = parse(&build(&raw)).unwrap();
            assert_eq!(errors, [error], "{name}");
            assert_eq!(m.entries.len(), kept, "{name}");
            assert_eq!(&m.entries[..2], &good[..], "{name}");
        }
        assert_eq!(
            MadtError::EntryTooSmall { offset: 0x74, kind: 0, len: 0 }.to_string(),
            "MADT offset 0x74: type 0 length 0 below 2, rest of the table ignored"
        );
        assert_eq!(
            MadtError::ShortEntry { offset: 0x3c, kind: 0, len: 6, need: 8 }.to_string(),
            "MADT offset 0x3c: type 0 length 6, expected at least 8, skipped"
        );
        // Longer than the structure is accepted, as Linux accepts it.
        let mut long = lapic(1, 1, 1).to_bytes();
        long[1] = 10;
        long.extend_from_slice(&[0, 0]);
        let (m, errors) = parse(&build(&[long])).unwrap();
        assert_eq!((m.entries, errors), (vec![lapic(1, 1, 1)], vec![]));
    }

    #[test]
    fn table_refusals() {
        let t = QEMU_SMP4.to_vec();
        assert_eq!(parse(&t[..43]), Err(MadtError::TableTooShort { len: 43 }));
        let mut bad = t.clone();
        bad[0] = b'X';
        assert_eq!(parse(&bad), Err(MadtError::NotMadt { signature: *b"XPIC" }));
        assert_eq!(
            parse(&t[..100]).unwrap_err().to_string(),
            "MADT: header length 144 outside 44..=100, table ignored"
        );
        let mut small = t.clone();
        small[4] = 40;
        assert_eq!(
            parse(&small),
            Err(MadtError::BadTableLength { header_len: 40, available: 144 })
        );
        // Only the header's length counts: the entries end there.
        let mut cut = t.clone();
        cut[4] = 44;
        assert_eq!(parse(&cut).unwrap().0.entries, []);
    }

    #[test]
    fn disabled_and_online_capable() {
        let m =
            madt(&[lapic(0, 0, 1), lapic(1, 1, 1), lapic(2, 2, 0), lapic(3, 3, 0), lapic(4, 4, 2)]);
        let (c, lines) = cpus(&m, 0, false, 64);
        assert_eq!(c, [(0, true), (1, true), (4, false)]);
        assert_eq!(lines, ["smpboot: Allowing 3 CPUs, 1 hotplug CPUs"]);
        assert_eq!(m.entries[2].to_string(), "LAPIC (acpi_id[0x02] lapic_id[0x02] disabled)");
        let all = possible_cpus(&m, 0, false, 64, &mut |_| {});
        assert_eq!(all[2], Cpu { apic_id: 4, acpi_id: 4, enabled: false, online_capable: true });
    }

    #[test]
    fn invalid_ids_are_ignored() {
        let m = madt(&[lapic(0, 0, 1), lapic(1, 0xff, 1), x2(u32::MAX, 9, 1)]);
        assert_eq!(cpus(&m, 0, true, 64).0, on(&[0]));
    }

    #[test]
    fn x2apic_entries_below_255_are_ignored_beside_lapic_entries() {
        // Firmware listing CPU 1 twice, as LAPIC and as x2APIC.
        let m = madt(&[x2(1, 1, 1), x2(5, 5, 1), lapic(0, 0, 1), lapic(1, 1, 1), x2(0x100, 2, 1)]);
        assert_eq!(cpus(&m, 0, true, 64).0, on(&[0, 1, 0x100]));
        // Without any usable LAPIC entry they count, boot CPU first.
        let m = madt(&[x2(1, 1, 1), x2(0, 0, 1), lapic(2, 2, 0)]);
        assert_eq!(cpus(&m, 0, false, 64).0, on(&[0, 1]));
    }

    #[test]
    fn x2apic_ids_above_254_need_x2apic_mode() {
        let mut e: Vec<Entry> = (0..4).map(|i| lapic(i, i, 1)).collect();
        e.extend([x2(0x100, 4, 1), x2(0x101, 5, 1), x2(0x102, 6, 0)]);
        let m = madt(&e);
        let (c, lines) = cpus(&m, 0, false, 64);
        assert_eq!(c, on(&[0, 1, 2, 3]));
        assert_eq!(
            lines,
            [
                "ACPI: x2apic entry ignored (apic_id[0x100]: no x2APIC mode)",
                "ACPI: x2apic entry ignored (apic_id[0x101]: no x2APIC mode)",
                "smpboot: Allowing 4 CPUs, 0 hotplug CPUs",
            ]
        );
        let (c, lines) = cpus(&m, 0, true, 64);
        assert_eq!(c, on(&[0, 1, 2, 3, 0x100, 0x101]));
        assert_eq!(lines.len(), 1);
        let big = madt(&[lapic(0, 0, 1), x2(MAX_LOCAL_APIC, 1, 1)]);
        let (c, lines) = cpus(&big, 0, true, 64);
        assert_eq!(c, on(&[0]));
        assert_eq!(lines[0], "ACPI: skipped apicid that is too big (0x8000)");
    }

    #[test]
    fn duplicates_are_left_out_after_the_first() {
        let m =
            madt(&[lapic(0, 0, 1), lapic(1, 1, 1), lapic(2, 1, 1), lapic(3, 2, 1), lapic(4, 3, 1)]);
        let (c, lines) = cpus(&m, 0, false, 64);
        assert_eq!(c, on(&[0, 1, 2, 3]));
        assert_eq!(
            lines,
            [
                "APIC: duplicate APIC ID 0x1 (acpi_id 0x02) ignored",
                "smpboot: Allowing 4 CPUs, 0 hotplug CPUs"
            ]
        );
        let all = possible_cpus(&m, 0, false, 64, &mut |_| {});
        assert_eq!(all[1].acpi_id, 1, "the first entry wins");
    }

    #[test]
    fn limit_keeps_a_slot_for_the_boot_cpu() {
        let m = madt(&(0..8).map(|i| lapic(i, i, 1)).collect::<Vec<_>>());
        let (c, lines) = cpus(&m, 0, false, 4);
        assert_eq!(c, on(&[0, 1, 2, 3]));
        assert_eq!(
            lines,
            [
                "APIC: NR_CPUS/possible_cpus limit of 4 reached. Processor 4/0x4 ignored.",
                "APIC: NR_CPUS/possible_cpus limit of 4 reached. Processor 5/0x5 ignored.",
                "APIC: NR_CPUS/possible_cpus limit of 4 reached. Processor 6/0x6 ignored.",
                "APIC: NR_CPUS/possible_cpus limit of 4 reached. Processor 7/0x7 ignored.",
                "smpboot: Allowing 4 CPUs, 0 hotplug CPUs",
            ]
        );
        // Booted on APIC ID 6: the last slot waits for it.
        let (c, lines) = cpus(&m, 6, false, 4);
        assert_eq!(c, on(&[6, 0, 1, 2]));
        assert_eq!(
            lines[0],
            "APIC: NR_CPUS/possible_cpus limit of 4 almost reached. Keeping one slot for boot \
             cpu.  Processor 3/0x3 ignored."
        );
        assert!(lines[2].ends_with("Processor 5/0x5 ignored."), "{}", lines[2]);
        assert_eq!(
            lines[3],
            "APIC: NR_CPUS/possible_cpus limit of 4 reached. Processor 7/0x7 ignored."
        );
        assert_eq!(cpus(&m, 0, false, 0).0, on(&[0]), "max 0 still keeps the boot CPU");
    }

    #[test]
    fn boot_cpu_is_always_there() {
        let m = madt(&[lapic(0, 0, 1), lapic(1, 1, 1)]);
        let (c, lines) = cpus(&m, 7, false, 64);
        assert_eq!(c, on(&[7, 0, 1]));
        assert_eq!(
            lines,
            [
                "smpboot: Boot CPU (id 7) not listed by BIOS",
                "smpboot: Allowing 3 CPUs, 0 hotplug CPUs"
            ]
        );
        let (c, _) = cpus(&madt(&[]), 3, false, 64);
        assert_eq!(c, on(&[3]));
        // A disabled entry for the boot CPU does not make it disappear.
        let (c, lines) = cpus(&madt(&[lapic(0, 0, 0), lapic(1, 1, 1)]), 0, false, 64);
        assert_eq!((c, lines.len()), (on(&[0, 1]), 2));
    }

    #[test]
    fn instance_selection_follows_linux() {
        let pick = |count, instance| {
            let mut lines = Vec::new();
            let r = select_instance(count, instance, &mut |a| lines.push(a.to_string()));
            (r, lines)
        };
        assert_eq!(pick(0, 2), (None, vec![]));
        assert_eq!(pick(1, 2), (Some(0), vec![]), "without a second MADT: the first");
        let (r, lines) = pick(2, 2);
        assert_eq!(r, Some(1));
        assert_eq!(
            lines,
            [
                "BIOS bug: multiple APIC/MADT found, using 2",
                "If \"acpi_apic_instance=0\" works better, notify linux-acpi@vger.kernel.org",
            ]
        );
        let (r, lines) = pick(2, 0);
        assert_eq!(r, Some(0));
        assert_eq!(lines[0], "BIOS bug: multiple APIC/MADT found, using 0");
        assert!(lines[1].contains("acpi_apic_instance=2"));
        assert_eq!(pick(2, 1).0, Some(0));
        assert_eq!(pick(2, 3).0, None, "Linux then uses no MADT at all");
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = Rng::new(0x5DEE_CE66_D1CE_4E5B);
        let kinds = [0u8, 1, 2, 3, 4, 5, 9, 10, 11, 0x7f];
        for i in 0..50_000 {
            let t = match i % 3 {
                0 => {
                    let n = rng.below(200) as usize;
                    let mut t: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                    if n >= 8 {
                        t[..4].copy_from_slice(b"APIC");
                        let len = if rng.below(4) == 0 { rng.next_u64() as u32 } else { n as u32 };
                        t[4..8].copy_from_slice(&len.to_le_bytes());
                    }
                    t
                }
                1 => {
                    let raw: Vec<Vec<u8>> = (0..rng.below(12))
                        .map(|_| {
                            let kind = kinds[rng.below(kinds.len() as u64) as usize];
                            let len = rng.below(20) as u8;
                            let mut e: Vec<u8> =
                                (0..usize::from(len)).map(|_| rng.next_u64() as u8).collect();
                            e.resize(e.len().max(2), 0);
                            e[0] = kind;
                            e[1] = len;
                            e
                        })
                        .collect();
                    build(&raw)
                }
                _ => {
                    let mut t = QEMU_SMP4.to_vec();
                    for _ in 0..1 + rng.below(6) {
                        let at = 44 + rng.below(100) as usize;
                        t[at] = rng.next_u64() as u8;
                    }
                    t.truncate(rng.below(t.len() as u64 + 10) as usize);
                    t
                }
            };
            let Ok((m, errors)) = parse(&t) else { continue };
            errors.iter().for_each(|e| drop(e.to_string()));
            m.entries.iter().for_each(|e| drop(e.to_string()));
            let boot = rng.below(300) as u32;
            let max = rng.below(10) as usize;
            let c = possible_cpus(&m, boot, rng.below(2) == 0, max, &mut |a| drop(a.to_string()));
            assert_eq!(c[0].apic_id, boot);
            assert!(c.len() <= max.max(1));
            for (i, a) in c.iter().enumerate() {
                assert!(c[..i].iter().all(|b| b.apic_id != a.apic_id));
            }
        }
    }
}

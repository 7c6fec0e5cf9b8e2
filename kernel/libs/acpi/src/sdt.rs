//! The RSDP, the system description table headers and the walk over the
//! RSDT/XSDT, with the list Linux prints at boot (ACPICA's
//! `acpi_tb_print_table_header`).
//!
//! [`walk`] reads everything through [`PhysMem`] into owned buffers. The
//! root table (XSDT when the RSDP revision is >= 2 and gives one, else the
//! RSDT; the RSDT as a fallback when the XSDT is unusable) must be sound.
//! Every other table is listed in firmware order, with the FADT's DSDT and
//! FACS right after the FADT, as Linux lists them; a table that cannot be
//! trusted (unreadable, impossible length, bad checksum, wrong signature) is
//! kept with its [`TableProblem`] so the kernel can report it, and
//! [`Tables::find_all`] skips it.
//!
//! Lines are printed without the `ACPI: ` prefix (see the crate docs):
//!
//! ```text
//! RSDP 0x00000000000F59D0 000014 (v00 BOCHS )
//! NFIT 0x000000007FFE1605 0000E0 (v01 BOCHS  BXPC     00000001 BXPC 00000001)
//! FACS 0x000000007FFE0000 000040
//! NFIT 0x000000007FFE1605 0000E0 bad checksum (sum 0x12), skipped
//! ```
//!
//! Strings follow ACPICA's `acpi_tb_fix_string`: a NUL ends the string (the
//! rest is padded with spaces) and other non-printable bytes show as `?`.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::{self, Write};

use crate::{bytes_at, u32_at, u64_at};

/// The RSDP signature.
pub const RSDP_SIGNATURE: [u8; 8] = *b"RSD PTR ";
/// Size of the common system description table header.
pub const HEADER_LEN: usize = 36;
/// Largest table length the walker accepts (anything longer is refused).
pub const MAX_TABLE_LEN: u32 = 16 << 20;
/// Largest RSDP `Length` field accepted (the ACPI 2.0+ RSDP is 36 bytes).
pub const MAX_RSDP_LEN: u32 = 4096;
/// Bytes covered by the RSDP's first checksum.
const RSDP_V1_LEN: usize = 20;
/// Size of the ACPI 2.0+ RSDP.
const RSDP_V2_LEN: usize = 36;
/// The FACS is at least this long (ACPI 6.4 §5.2.10).
const FACS_MIN_LEN: u32 = 64;

/// Byte sum of `bytes`, wrapping (a valid table sums to 0).
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |sum, &b| sum.wrapping_add(b))
}

/// Whether `table_bytes` (exactly the table's `Length` bytes) sum to 0.
pub fn checksum_ok(table_bytes: &[u8]) -> bool {
    checksum(table_bytes) == 0
}

/// Why the RSDP or the root table could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcpiError {
    /// The byte slice is shorter than the structure needs.
    TooShort {
        /// Bytes needed.
        need: usize,
        /// Bytes given.
        got: usize,
    },
    /// The RSDP's first 20 bytes could not be read.
    RsdpUnreadable {
        /// Physical address of the RSDP.
        addr: u64,
    },
    /// The RSDP does not start with `"RSD PTR "`.
    RsdpSignature {
        /// The eight bytes found instead.
        found: [u8; 8],
    },
    /// The RSDP's first 20 bytes do not sum to 0.
    RsdpChecksum {
        /// Their byte sum.
        sum: u8,
    },
    /// The revision >= 2 RSDP's `Length` is below 36 or above [`MAX_RSDP_LEN`].
    RsdpLength {
        /// The `Length` field.
        len: u32,
    },
    /// The revision >= 2 RSDP's `Length` bytes do not sum to 0.
    RsdpExtChecksum {
        /// Their byte sum.
        sum: u8,
    },
    /// The RSDP gives neither an RSDT nor an XSDT address.
    NoRootTable,
    /// The RSDT or XSDT cannot be trusted.
    Root {
        /// `RSDT` or `XSDT`.
        signature: [u8; 4],
        /// Its physical address.
        addr: u64,
        /// Its `Length` field, when the header was readable.
        len: Option<u32>,
        /// What is wrong.
        problem: TableProblem,
    },
}

impl fmt::Display for AcpiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::TooShort { need, got } => write!(f, "need {need} bytes, got {got}"),
            Self::RsdpUnreadable { addr } => write!(f, "RSDP 0x{addr:016X} unreadable"),
            Self::RsdpSignature { found } => write!(f, "RSDP bad signature \"{}\"", Fixed(&found)),
            Self::RsdpChecksum { sum } => write!(f, "RSDP bad checksum (sum 0x{sum:02X})"),
            Self::RsdpLength { len } => {
                write!(f, "RSDP impossible length 0x{len:X} (allowed 0x24..=0x{MAX_RSDP_LEN:X})")
            }
            Self::RsdpExtChecksum { sum } => {
                write!(f, "RSDP bad extended checksum (sum 0x{sum:02X})")
            }
            Self::NoRootTable => write!(f, "RSDP gives neither an RSDT nor an XSDT address"),
            Self::Root { signature, addr, len, problem } => {
                problem_line(f, Some(&signature), addr, len, &problem)
            }
        }
    }
}

/// Why a table in the list cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableProblem {
    /// Its 36-byte header could not be read.
    HeaderUnreadable,
    /// Its `Length` is below `min` or above [`MAX_TABLE_LEN`].
    BadLength {
        /// Smallest length allowed for this table.
        min: u32,
    },
    /// The header was read but not the whole `Length` bytes.
    BodyUnreadable,
    /// Its bytes do not sum to 0.
    BadChecksum {
        /// Their byte sum.
        sum: u8,
    },
    /// A table reached from the FADT (or the RSDP) has the wrong signature.
    WrongSignature {
        /// The signature it should have.
        expected: [u8; 4],
    },
}

impl fmt::Display for TableProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::HeaderUnreadable => write!(f, "header unreadable"),
            Self::BadLength { min } => {
                write!(f, "impossible length (allowed 0x{min:X}..=0x{MAX_TABLE_LEN:X})")
            }
            Self::BodyUnreadable => write!(f, "unreadable"),
            Self::BadChecksum { sum } => write!(f, "bad checksum (sum 0x{sum:02X})"),
            Self::WrongSignature { expected } => {
                write!(f, "wrong signature (expected {})", Fixed(&expected))
            }
        }
    }
}

/// A parsed RSDP (ACPI 6.4 §5.2.5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rsdp {
    /// Checksum byte over the first 20 bytes.
    pub checksum: u8,
    /// OEM ID.
    pub oem_id: [u8; 6],
    /// Revision: 0 for ACPI 1.0, 2 for ACPI 2.0+.
    pub revision: u8,
    /// Physical address of the RSDT.
    pub rsdt_addr: u32,
    /// Length of the structure: the `Length` field for revision >= 2, else 20.
    pub length: u32,
    /// Physical address of the XSDT (revision >= 2, else 0).
    pub xsdt_addr: u64,
    /// Checksum byte over the whole structure (revision >= 2, else 0).
    pub ext_checksum: u8,
}

/// Parses and checks an RSDP: signature, checksum over the first 20 bytes
/// and, for revision >= 2, `Length` and the extended checksum over `Length`
/// bytes.
pub fn parse_rsdp(b: &[u8]) -> Result<Rsdp, AcpiError> {
    let head: [u8; RSDP_V1_LEN] =
        bytes_at(b, 0).ok_or(AcpiError::TooShort { need: RSDP_V1_LEN, got: b.len() })?;
    let signature: [u8; 8] = bytes_at(&head, 0).unwrap_or_default();
    if signature != RSDP_SIGNATURE {
        return Err(AcpiError::RsdpSignature { found: signature });
    }
    let sum = checksum(&head);
    if sum != 0 {
        return Err(AcpiError::RsdpChecksum { sum });
    }
    let mut rsdp = Rsdp {
        checksum: head[8],
        oem_id: bytes_at(&head, 9).unwrap_or_default(),
        revision: head[15],
        rsdt_addr: u32_at(&head, 16).unwrap_or_default(),
        length: RSDP_V1_LEN as u32,
        xsdt_addr: 0,
        ext_checksum: 0,
    };
    if rsdp.revision < 2 {
        return Ok(rsdp);
    }
    let too_short = |need| AcpiError::TooShort { need, got: b.len() };
    let len = u32_at(b, 20).ok_or(too_short(RSDP_V2_LEN))?;
    if !(RSDP_V2_LEN as u32..=MAX_RSDP_LEN).contains(&len) {
        return Err(AcpiError::RsdpLength { len });
    }
    let all = b.get(..len as usize).ok_or(too_short(len as usize))?;
    let sum = checksum(all);
    if sum != 0 {
        return Err(AcpiError::RsdpExtChecksum { sum });
    }
    rsdp.length = len;
    rsdp.xsdt_addr = u64_at(all, 24).unwrap_or_default();
    rsdp.ext_checksum = all[32];
    Ok(rsdp)
}

/// The common 36-byte header of a system description table (ACPI 6.4
/// §5.2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdtHeader {
    /// Table signature, e.g. `NFIT`.
    pub signature: [u8; 4],
    /// Length of the whole table, header included.
    pub length: u32,
    /// Table revision.
    pub revision: u8,
    /// Checksum byte.
    pub checksum: u8,
    /// OEM ID.
    pub oem_id: [u8; 6],
    /// OEM table ID.
    pub oem_table_id: [u8; 8],
    /// OEM revision.
    pub oem_revision: u32,
    /// Creator (ASL compiler) ID.
    pub creator_id: [u8; 4],
    /// Creator (ASL compiler) revision.
    pub creator_revision: u32,
}

impl SdtHeader {
    /// Parses the header from the first 36 bytes of `b`.
    pub fn parse(b: &[u8]) -> Result<Self, AcpiError> {
        let h: [u8; HEADER_LEN] =
            bytes_at(b, 0).ok_or(AcpiError::TooShort { need: HEADER_LEN, got: b.len() })?;
        Ok(Self {
            signature: bytes_at(&h, 0).unwrap_or_default(),
            length: u32_at(&h, 4).unwrap_or_default(),
            revision: h[8],
            checksum: h[9],
            oem_id: bytes_at(&h, 10).unwrap_or_default(),
            oem_table_id: bytes_at(&h, 16).unwrap_or_default(),
            oem_revision: u32_at(&h, 24).unwrap_or_default(),
            creator_id: bytes_at(&h, 28).unwrap_or_default(),
            creator_revision: u32_at(&h, 32).unwrap_or_default(),
        })
    }

    /// A whole table: this header (its `length` and `checksum` ignored:
    /// both are computed) followed by `body`, checksummed.
    pub fn table(&self, body: &[u8]) -> Vec<u8> {
        let mut t = Vec::with_capacity(HEADER_LEN + body.len());
        t.extend_from_slice(&self.signature);
        t.extend_from_slice(&((HEADER_LEN + body.len()) as u32).to_le_bytes());
        t.extend_from_slice(&[self.revision, 0]);
        t.extend_from_slice(&self.oem_id);
        t.extend_from_slice(&self.oem_table_id);
        t.extend_from_slice(&self.oem_revision.to_le_bytes());
        t.extend_from_slice(&self.creator_id);
        t.extend_from_slice(&self.creator_revision.to_le_bytes());
        t.extend_from_slice(body);
        t[9] = 0u8.wrapping_sub(checksum(&t));
        t
    }
}

/// Reads physical memory for [`walk`].
pub trait PhysMem {
    /// Fills `buf` from physical address `phys`; false if any of it cannot
    /// be read.
    fn read(&self, phys: u64, buf: &mut [u8]) -> bool;
}

/// One table found by [`walk`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableEntry {
    /// Physical address.
    pub addr: u64,
    /// The header, when readable.
    pub header: Option<SdtHeader>,
    /// The whole table (`Length` bytes) when readable, else empty.
    pub bytes: Vec<u8>,
    /// Why the table must not be used, if it must not.
    pub problem: Option<TableProblem>,
}

impl TableEntry {
    /// The table's signature, when its header was readable.
    pub fn signature(&self) -> Option<[u8; 4]> {
        self.header.map(|h| h.signature)
    }
}

impl fmt::Display for TableEntry {
    /// Linux's line for the table, or a problem line ending in `, skipped`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sig = self.header.as_ref().map(|h| &h.signature);
        let len = self.header.map(|h| h.length);
        if let Some(p) = self.problem {
            problem_line(f, sig, self.addr, len, &p)?;
            return f.write_str(", skipped");
        }
        let Some(h) = &self.header else {
            return problem_line(f, None, self.addr, None, &TableProblem::HeaderUnreadable);
        };
        write!(f, "{} 0x{:016X} {:06X}", Fixed(&h.signature), self.addr, h.length)?;
        if h.signature == *b"FACS" {
            return Ok(());
        }
        write!(
            f,
            " (v{:02} {} {} {:08X} {} {:08X})",
            h.revision,
            Fixed(&h.oem_id),
            Fixed(&h.oem_table_id),
            h.oem_revision,
            Fixed(&h.creator_id),
            h.creator_revision
        )
    }
}

/// One line of Linux's table list, see [`Tables::lines`].
#[derive(Debug, Clone, Copy)]
pub enum Line<'a> {
    /// The RSDP and its physical address.
    Rsdp(u64, &'a Rsdp),
    /// Any other table.
    Table(&'a TableEntry),
}

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            // ACPICA prints the length field for revision > 0; we only read
            // it for revision >= 2 (revision 1 does not exist in practice).
            Self::Rsdp(addr, r) => write!(
                f,
                "RSDP 0x{addr:016X} {:06X} (v{:02} {})",
                r.length,
                r.revision,
                Fixed(&r.oem_id)
            ),
            Self::Table(t) => t.fmt(f),
        }
    }
}

/// Everything [`walk`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    /// The RSDP's physical address and contents.
    pub rsdp: (u64, Rsdp),
    /// The root table used (XSDT or RSDT); always without a problem.
    pub root: TableEntry,
    /// Tables in Linux's order, including those with a problem.
    pub entries: Vec<TableEntry>,
    /// Why the XSDT was not used when the walk fell back to the RSDT.
    pub xsdt_error: Option<AcpiError>,
}

impl Tables {
    /// Tables with signature `sig` and no problem, in list order.
    pub fn find_all(&self, sig: [u8; 4]) -> impl Iterator<Item = &TableEntry> + '_ {
        self.entries.iter().filter(move |e| e.problem.is_none() && e.signature() == Some(sig))
    }

    /// The first table with signature `sig` and no problem.
    pub fn find(&self, sig: [u8; 4]) -> Option<&TableEntry> {
        self.find_all(sig).next()
    }

    /// Linux's list: the RSDP, the root table, then every entry.
    pub fn lines(&self) -> impl Iterator<Item = Line<'_>> {
        let rsdp = Line::Rsdp(self.rsdp.0, &self.rsdp.1);
        core::iter::once(rsdp)
            .chain(core::iter::once(Line::Table(&self.root)))
            .chain(self.entries.iter().map(Line::Table))
    }
}

/// Reads the RSDP at `rsdp_addr`, the root table and every table it lists.
///
/// Fails only when the RSDP or the root table cannot be trusted; problems
/// with other tables are recorded in their [`TableEntry`].
pub fn walk(mem: &impl PhysMem, rsdp_addr: u64) -> Result<Tables, AcpiError> {
    let rsdp = read_rsdp(mem, rsdp_addr)?;
    let rsdt = u64::from(rsdp.rsdt_addr);
    let mut xsdt_error = None;
    let root = if rsdp.revision >= 2 && rsdp.xsdt_addr != 0 {
        match read_root(mem, rsdp.xsdt_addr, *b"XSDT") {
            Ok(root) => root,
            Err(e) if rsdt != 0 => {
                xsdt_error = Some(e);
                read_root(mem, rsdt, *b"RSDT")?
            }
            Err(e) => return Err(e),
        }
    } else if rsdt != 0 {
        read_root(mem, rsdt, *b"RSDT")?
    } else {
        return Err(AcpiError::NoRootTable);
    };
    let width = if root.signature() == Some(*b"XSDT") { 8 } else { 4 };
    let mut entries = Vec::new();
    let list = root.bytes.get(HEADER_LEN..).unwrap_or_default();
    for raw in list.chunks_exact(width) {
        // XSDT entries are only 4-byte aligned: always read from bytes.
        let addr = match width {
            8 => u64_at(raw, 0),
            _ => u32_at(raw, 0).map(u64::from),
        };
        let Some(addr) = addr.filter(|&a| a != 0) else { continue };
        let entry = read_table(mem, addr, None);
        let is_fadt = entry.problem.is_none() && entry.signature() == Some(*b"FACP");
        let links = if is_fadt { fadt_links(&entry.bytes) } else { [None, None] };
        entries.push(entry);
        for (addr, sig) in links.into_iter().flatten() {
            entries.push(read_table(mem, addr, Some(sig)));
        }
    }
    Ok(Tables { rsdp: (rsdp_addr, rsdp), root, entries, xsdt_error })
}

/// The DSDT and FACS addresses a FADT gives (64-bit field preferred when
/// present and non-zero).
fn fadt_links(fadt: &[u8]) -> [Option<(u64, [u8; 4])>; 2] {
    let link = |x_off, off| {
        let x = u64_at(fadt, x_off).filter(|&a| a != 0);
        x.or_else(|| u32_at(fadt, off).map(u64::from).filter(|&a| a != 0))
    };
    [link(140, 40).map(|a| (a, *b"DSDT")), link(132, 36).map(|a| (a, *b"FACS"))]
}

fn read_rsdp(mem: &impl PhysMem, addr: u64) -> Result<Rsdp, AcpiError> {
    let mut head = [0u8; RSDP_V1_LEN];
    if !mem.read(addr, &mut head) {
        return Err(AcpiError::RsdpUnreadable { addr });
    }
    let mut buf = head.to_vec();
    if head[15] >= 2 {
        let mut v2 = [0u8; RSDP_V2_LEN];
        if mem.read(addr, &mut v2) {
            buf = v2.to_vec();
            let len = u32_at(&v2, 20).unwrap_or_default();
            if len as usize > RSDP_V2_LEN && len <= MAX_RSDP_LEN {
                let mut all = vec![0u8; len as usize];
                if mem.read(addr, &mut all) {
                    buf = all;
                }
            }
        }
    }
    parse_rsdp(&buf)
}

fn read_root(mem: &impl PhysMem, addr: u64, sig: [u8; 4]) -> Result<TableEntry, AcpiError> {
    let e = read_table(mem, addr, Some(sig));
    match e.problem {
        None => Ok(e),
        Some(problem) => {
            Err(AcpiError::Root { signature: sig, addr, len: e.header.map(|h| h.length), problem })
        }
    }
}

/// Reads one table; `expect` is the signature it must have, if known.
fn read_table(mem: &impl PhysMem, addr: u64, expect: Option<[u8; 4]>) -> TableEntry {
    let mut e = TableEntry { addr, header: None, bytes: Vec::new(), problem: None };
    let mut head = [0u8; HEADER_LEN];
    if !mem.read(addr, &mut head) {
        e.problem = Some(TableProblem::HeaderUnreadable);
        return e;
    }
    let Ok(h) = SdtHeader::parse(&head) else {
        e.problem = Some(TableProblem::HeaderUnreadable);
        return e;
    };
    e.header = Some(h);
    if let Some(expected) = expect
        && h.signature != expected
    {
        e.problem = Some(TableProblem::WrongSignature { expected });
        return e;
    }
    // The FACS has only a signature and a length, and no checksum.
    let facs = h.signature == *b"FACS";
    let min = if facs { FACS_MIN_LEN } else { HEADER_LEN as u32 };
    if !(min..=MAX_TABLE_LEN).contains(&h.length) {
        e.problem = Some(TableProblem::BadLength { min });
        return e;
    }
    let mut bytes = vec![0u8; h.length as usize];
    if !mem.read(addr, &mut bytes) {
        e.problem = Some(TableProblem::BodyUnreadable);
        return e;
    }
    let sum = checksum(&bytes);
    if !facs && sum != 0 {
        e.problem = Some(TableProblem::BadChecksum { sum });
    }
    e.bytes = bytes;
    e
}

/// `SIG 0xADDRESS LENGTH problem` (signature `????` and no length when the
/// header is unknown).
fn problem_line(
    f: &mut fmt::Formatter<'_>,
    sig: Option<&[u8; 4]>,
    addr: u64,
    len: Option<u32>,
    problem: &TableProblem,
) -> fmt::Result {
    match sig {
        Some(sig) => write!(f, "{} 0x{addr:016X}", Fixed(sig))?,
        None => write!(f, "???? 0x{addr:016X}")?,
    }
    if let Some(len) = len {
        write!(f, " {len:06X}")?;
    }
    write!(f, " {problem}")
}

/// A fixed-width firmware string printed like ACPICA's
/// `acpi_tb_fix_string` + `%-N.Ns`: a NUL ends it, non-printable bytes show
/// as `?`, and it is padded with spaces to its full width.
pub(crate) struct Fixed<'a>(pub(crate) &'a [u8]);

impl fmt::Display for Fixed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.iter().position(|&b| b == 0).unwrap_or(self.0.len());
        for &b in &self.0[..n] {
            f.write_char(if (0x20..0x7f).contains(&b) { char::from(b) } else { '?' })?;
        }
        for _ in n..self.0.len() {
            f.write_char(' ')?;
        }
        Ok(())
    }
}

/// Linux `acpidump`'s text for one table: a `SIG @ 0xADDR` line, then 16
/// bytes per line (`    0000: 4E 46 49 54 ...  NFIT....`), then a blank line.
pub fn dump_lines<'a>(
    sig: &'a str,
    addr: u64,
    bytes: &'a [u8],
) -> impl Iterator<Item = String> + 'a {
    let head = core::iter::once(format!("{sig} @ 0x{addr:016X}"));
    let rows = bytes.chunks(16).enumerate().map(|(i, row)| {
        let mut line = format!("    {:04X}:", i * 16);
        for b in row {
            line.push_str(&format!(" {b:02X}"));
        }
        line.push_str(&" ".repeat(3 * (16 - row.len()) + 2));
        line.extend(
            row.iter().map(|&b| if b.is_ascii_graphic() || b == b' ' { b as char } else { '.' }),
        );
        line
    });
    head.chain(rows).chain(core::iter::once(String::new()))
}

/// Reads [`dump_lines`] text back into `(signature, address, bytes)` per
/// table; lines that are neither headers nor hex rows are skipped.
pub fn parse_dump(text: &str) -> Vec<(String, u64, Vec<u8>)> {
    let mut out: Vec<(String, u64, Vec<u8>)> = Vec::new();
    for line in text.lines() {
        let line = line.trim_end();
        if let Some((sig, addr)) = line.split_once(" @ 0x")
            && sig.len() == 4
            && let Ok(a) = u64::from_str_radix(addr, 16)
        {
            out.push((sig.into(), a, Vec::new()));
        } else if let Some((off, rest)) = line.trim_start().split_once(": ")
            && off.len() == 4
            && let (Ok(off), Some(last)) = (usize::from_str_radix(off, 16), out.last_mut())
            && off == last.2.len()
        {
            let hex = rest.split("  ").next().unwrap_or("");
            last.2.extend(hex.split_whitespace().filter_map(|h| u8::from_str_radix(h, 16).ok()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;
    use alloc::string::ToString;

    /// Physical memory made of separate readable regions.
    #[derive(Default)]
    struct FakeMem(BTreeMap<u64, Vec<u8>>);

    impl FakeMem {
        fn put(&mut self, addr: u64, bytes: Vec<u8>) {
            self.0.insert(addr, bytes);
        }
    }

    impl PhysMem for FakeMem {
        fn read(&self, phys: u64, buf: &mut [u8]) -> bool {
            let Some((&start, region)) = self.0.range(..=phys).next_back() else { return false };
            let off = (phys - start) as usize;
            match region.get(off..off + buf.len()) {
                Some(src) => {
                    buf.copy_from_slice(src);
                    true
                }
                None => false,
            }
        }
    }

    fn fix_checksum(t: &mut [u8], at: usize, len: usize) {
        t[at] = 0;
        t[at] = 0u8.wrapping_sub(checksum(&t[..len]));
    }

    /// A QEMU-style table: OEM "BOCHS ", table ID "BXPC    ", revisions 1.
    fn table(sig: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut t = Vec::new();
        t.extend_from_slice(sig);
        t.extend_from_slice(&((HEADER_LEN + body.len()) as u32).to_le_bytes());
        t.extend_from_slice(&[1, 0]);
        t.extend_from_slice(b"BOCHS BXPC    ");
        t.extend_from_slice(&1u32.to_le_bytes());
        t.extend_from_slice(b"BXPC");
        t.extend_from_slice(&1u32.to_le_bytes());
        t.extend_from_slice(body);
        let len = t.len();
        fix_checksum(&mut t, 9, len);
        t
    }

    fn sized(sig: &[u8; 4], len: usize) -> Vec<u8> {
        table(sig, &vec![0; len - HEADER_LEN])
    }

    fn rsdp(revision: u8, rsdt: u32, xsdt: u64) -> Vec<u8> {
        let mut r = Vec::new();
        r.extend_from_slice(b"RSD PTR \0BOCHS ");
        r.push(revision);
        r.extend_from_slice(&rsdt.to_le_bytes());
        if revision >= 2 {
            r.extend_from_slice(&36u32.to_le_bytes());
            r.extend_from_slice(&xsdt.to_le_bytes());
            r.extend_from_slice(&[0; 4]);
        }
        fix_checksum(&mut r, 8, 20);
        if revision >= 2 {
            fix_checksum(&mut r, 32, 36);
        }
        r
    }

    fn fadt(len: usize, facs: u32, dsdt: u32, x_facs: u64, x_dsdt: u64) -> Vec<u8> {
        let mut body = vec![0u8; len - HEADER_LEN];
        body[0..4].copy_from_slice(&facs.to_le_bytes());
        body[4..8].copy_from_slice(&dsdt.to_le_bytes());
        if len >= 148 {
            body[96..104].copy_from_slice(&x_facs.to_le_bytes());
            body[104..112].copy_from_slice(&x_dsdt.to_le_bytes());
        }
        table(b"FACP", &body)
    }

    fn facs() -> Vec<u8> {
        let mut f = vec![0u8; 64];
        f[0..4].copy_from_slice(b"FACS");
        f[4..8].copy_from_slice(&64u32.to_le_bytes());
        f
    }

    fn lines(t: &Tables) -> Vec<alloc::string::String> {
        t.lines().map(|l| l.to_string()).collect()
    }

    /// SeaBIOS-like: RSDP revision 0, RSDT with u32 entries.
    fn seabios() -> FakeMem {
        let mut m = FakeMem::default();
        m.put(0xF59D0, rsdp(0, 0x7FFE1A0B, 0));
        let entries: Vec<u8> = [0x7FFE18BFu32, 0, 0x7FFE1933, 0x7FFE1605]
            .iter()
            .flat_map(|a| a.to_le_bytes())
            .collect();
        m.put(0x7FFE1A0B, table(b"RSDT", &entries));
        m.put(0x7FFE18BF, fadt(0x74, 0x7FFE0000, 0x7FFE0040, 0, 0));
        m.put(0x7FFE0000, facs());
        m.put(0x7FFE0040, sized(b"DSDT", 0x187F));
        m.put(0x7FFE1933, sized(b"APIC", 0x78));
        m.put(0x7FFE1605, sized(b"NFIT", 0xE0));
        m
    }

    #[test]
    fn rsdt_walk_prints_like_linux() {
        let t = walk(&seabios(), 0xF59D0).unwrap();
        assert_eq!(t.xsdt_error, None);
        let row = |s: &str, a: u64, l: u32| {
            alloc::format!("{s} 0x{a:016X} {l:06X} (v01 BOCHS  BXPC     00000001 BXPC 00000001)")
        };
        assert_eq!(
            lines(&t),
            [
                "RSDP 0x00000000000F59D0 000014 (v00 BOCHS )".to_string(),
                row("RSDT", 0x7FFE1A0B, 0x34),
                row("FACP", 0x7FFE18BF, 0x74),
                row("DSDT", 0x7FFE0040, 0x187F),
                "FACS 0x000000007FFE0000 000040".to_string(),
                row("APIC", 0x7FFE1933, 0x78),
                "NFIT 0x000000007FFE1605 0000E0 (v01 BOCHS  BXPC     00000001 BXPC 00000001)"
                    .to_string(),
            ]
        );
        let nfit = t.find(*b"NFIT").unwrap();
        assert_eq!(nfit.bytes.len(), 0xE0);
        assert!(checksum_ok(&nfit.bytes));
    }

    #[test]
    fn xsdt_walk_with_unaligned_entries() {
        let mut m = FakeMem::default();
        m.put(0xE0000, rsdp(2, 0x7000_0000, 0x7F00_0000));
        // Entries start at 0x7F000024: 4- but not 8-byte aligned.
        let entries: Vec<u8> =
            [0x1_0000_0000u64, 0x7F00_1000].iter().flat_map(|a| a.to_le_bytes()).collect();
        m.put(0x7F00_0000, table(b"XSDT", &entries));
        m.put(0x1_0000_0000, fadt(0x114, 0x1234, 0x5678, 0x7F00_2000, 0x7F00_3000));
        m.put(0x7F00_1000, sized(b"NFIT", 0x50));
        m.put(0x7F00_2000, facs());
        m.put(0x7F00_3000, sized(b"DSDT", 0x100));
        let t = walk(&m, 0xE0000).unwrap();
        assert_eq!(t.root.signature(), Some(*b"XSDT"));
        assert_eq!(t.rsdp.1.xsdt_addr, 0x7F00_0000);
        let l = lines(&t);
        assert_eq!(l[0], "RSDP 0x00000000000E0000 000024 (v02 BOCHS )");
        let sigs: Vec<_> = t.entries.iter().map(|e| (e.signature().unwrap(), e.addr)).collect();
        assert_eq!(
            sigs,
            [
                (*b"FACP", 0x1_0000_0000),
                (*b"DSDT", 0x7F00_3000),
                (*b"FACS", 0x7F00_2000),
                (*b"NFIT", 0x7F00_1000),
            ]
        );
        assert!(t.entries.iter().all(|e| e.problem.is_none()));
    }

    #[test]
    fn bad_tables_are_listed_and_skipped() {
        let mut m = FakeMem::default();
        m.put(0xF0000, rsdp(0, 0x1000, 0));
        let addrs = [0x2000u32, 0x3000, 0x4000, 0x5000, 0x6000, 0x7000, 0x8000];
        let entries: Vec<u8> = addrs.iter().flat_map(|a| a.to_le_bytes()).collect();
        m.put(0x1000, table(b"RSDT", &entries));
        let mut bad = sized(b"NFIT", 0xE0);
        bad[50] = bad[50].wrapping_add(0x12);
        m.put(0x2000, bad);
        let mut short = sized(b"SSDT", 0x40);
        short[4..8].copy_from_slice(&8u32.to_le_bytes());
        m.put(0x3000, short);
        let mut huge = sized(b"SSDT", 0x40);
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        m.put(0x4000, huge);
        m.put(0x5000, sized(b"NFIT", 0x40));
        let mut cut = sized(b"APIC", 0x80);
        cut.truncate(0x60); // header readable, body not
        m.put(0x6000, cut);
        // 0x7000: nothing there. 0x8000: a FADT whose DSDT is not a DSDT.
        m.put(0x8000, fadt(0x74, 0, 0x9000, 0, 0));
        m.put(0x9000, sized(b"SSDT", 0x40));
        let t = walk(&m, 0xF0000).unwrap();
        let l = lines(&t);
        assert_eq!(l[2], "NFIT 0x0000000000002000 0000E0 bad checksum (sum 0x12), skipped");
        let length = "impossible length (allowed 0x24..=0x1000000), skipped";
        assert_eq!(l[3], alloc::format!("SSDT 0x0000000000003000 000008 {length}"));
        assert_eq!(l[4], alloc::format!("SSDT 0x0000000000004000 FFFFFFFF {length}"));
        assert!(l[5].ends_with("(v01 BOCHS  BXPC     00000001 BXPC 00000001)"));
        assert_eq!(l[6], "APIC 0x0000000000006000 000080 unreadable, skipped");
        assert_eq!(l[7], "???? 0x0000000000007000 header unreadable, skipped");
        assert_eq!(l[9], "SSDT 0x0000000000009000 000040 wrong signature (expected DSDT), skipped");
        assert_eq!(l.len(), 10);
        let nfits: Vec<u64> = t.find_all(*b"NFIT").map(|e| e.addr).collect();
        assert_eq!(nfits, [0x5000]);
        assert_eq!(t.find_all(*b"SSDT").count(), 0);
        assert_eq!(t.entries[0].bytes.len(), 0xE0, "bad-checksum bytes kept for reporting");
    }

    #[test]
    fn xsdt_falls_back_to_rsdt() {
        let mut m = seabios();
        m.put(0xF59D0, rsdp(2, 0x7FFE1A0B, 0x7FFF_0000));
        let mut x = table(b"XSDT", &[0; 8]);
        x[20] ^= 1;
        m.put(0x7FFF_0000, x);
        let t = walk(&m, 0xF59D0).unwrap();
        assert_eq!(t.root.signature(), Some(*b"RSDT"));
        assert_eq!(t.entries.len(), 5);
        let e = t.xsdt_error.unwrap();
        assert_eq!(e.to_string(), "XSDT 0x000000007FFF0000 00002C bad checksum (sum 0x01)");
    }

    #[test]
    fn root_errors() {
        let mut m = seabios();
        m.0.get_mut(&0x7FFE1A0B).unwrap()[12] ^= 0xFF;
        assert!(matches!(
            walk(&m, 0xF59D0),
            Err(AcpiError::Root { signature: [b'R', b'S', b'D', b'T'], .. })
        ));
        m.0.remove(&0x7FFE1A0B);
        let e = walk(&m, 0xF59D0).unwrap_err();
        assert_eq!(e.to_string(), "RSDT 0x000000007FFE1A0B header unreadable");
        m.put(0xF59D0, rsdp(0, 0, 0));
        assert_eq!(walk(&m, 0xF59D0), Err(AcpiError::NoRootTable));
        assert_eq!(walk(&m, 0x1234), Err(AcpiError::RsdpUnreadable { addr: 0x1234 }));
    }

    #[test]
    fn rsdp_errors() {
        let good = rsdp(2, 0x1000, 0x2000);
        assert_eq!(parse_rsdp(&good).unwrap().xsdt_addr, 0x2000);
        assert_eq!(parse_rsdp(&good[..19]), Err(AcpiError::TooShort { need: 20, got: 19 }));
        assert_eq!(parse_rsdp(&good[..20]), Err(AcpiError::TooShort { need: 36, got: 20 }));
        let mut b = good.clone();
        b[0] = b'X';
        assert_eq!(parse_rsdp(&b), Err(AcpiError::RsdpSignature { found: *b"XSD PTR " }));
        let mut b = good.clone();
        b[16] ^= 4;
        assert_eq!(parse_rsdp(&b), Err(AcpiError::RsdpChecksum { sum: 4 }));
        let mut b = good.clone();
        b[30] = 1;
        assert_eq!(parse_rsdp(&b), Err(AcpiError::RsdpExtChecksum { sum: 1 }));
        let mut b = good.clone();
        b[20] = 8;
        assert_eq!(parse_rsdp(&b), Err(AcpiError::RsdpLength { len: 8 }));
        let v0 = parse_rsdp(&rsdp(0, 0x1000, 0)).unwrap();
        assert_eq!((v0.length, v0.xsdt_addr), (20, 0));
        assert_eq!(AcpiError::RsdpChecksum { sum: 4 }.to_string(), "RSDP bad checksum (sum 0x04)");
    }

    #[test]
    fn strings_are_fixed_like_acpica() {
        let mut t = sized(b"SSDT", 0x30);
        t[10..16].copy_from_slice(b"AB\x01C\0Z");
        t[16..24].copy_from_slice(b"\xFFTBL\0\0\0\0");
        let h = SdtHeader::parse(&t).unwrap();
        let e = TableEntry { addr: 0x10, header: Some(h), bytes: t, problem: None };
        assert_eq!(
            e.to_string(),
            "SSDT 0x0000000000000010 000030 (v01 AB?C   ?TBL     00000001 BXPC 00000001)"
        );
        assert_eq!(SdtHeader::parse(&[0; 35]), Err(AcpiError::TooShort { need: 36, got: 35 }));
    }

    #[test]
    fn random_memory_never_panics() {
        let mut rng = rng::Rng::new(0x2545_F491_4F6C_DD1D);
        for _ in 0..20_000 {
            let n = rng.below(64) as usize;
            let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            let _ = parse_rsdp(&bytes).map_err(|e| e.to_string());
            let _ = SdtHeader::parse(&bytes);
        }
        let base = seabios();
        for _ in 0..3000 {
            let mut m = FakeMem(base.0.clone());
            for _ in 0..1 + rng.below(6) {
                let keys: Vec<u64> = m.0.keys().copied().collect();
                let key = keys[rng.below(keys.len() as u64) as usize];
                let region = m.0.get_mut(&key).unwrap();
                if region.is_empty() {
                    continue;
                }
                // Mostly hit headers and the RSDP, where the decisions are.
                let span = if rng.below(4) == 0 { region.len() } else { region.len().min(48) };
                let at = rng.below(span as u64) as usize;
                region[at] = rng.next_u64() as u8;
                if rng.below(16) == 0 {
                    region.truncate(at);
                }
            }
            match walk(&m, 0xF59D0) {
                Ok(t) => t.lines().for_each(|l| drop(l.to_string())),
                Err(e) => drop(e.to_string()),
            }
        }
    }

    #[test]
    fn dump_reads_back() {
        let bytes: Vec<u8> = (0..=40u8).map(|b| b.wrapping_mul(37)).collect();
        let text: Vec<String> = dump_lines("NFIT", 0x7ffe_1605, &bytes).collect();
        assert_eq!(text[0], "NFIT @ 0x000000007FFE1605");
        assert!(text[1].starts_with("    0000: 00 25 4A 6F"), "{}", text[1]);
        assert_eq!(text.len(), 1 + 3 + 1);
        let mut all = text.join("\n");
        all.push_str("\nnoise line\nDSDT @ 0x0000000000001000\n    0000: 44 53\n");
        let back = parse_dump(&all);
        assert_eq!(back[0], ("NFIT".into(), 0x7ffe_1605, bytes));
        assert_eq!(back[1], ("DSDT".into(), 0x1000, alloc::vec![0x44, 0x53]));
    }
}

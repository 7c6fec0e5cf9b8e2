//! Soft-off (S5): what `acpi_enter_sleep_state(ACPI_STATE_S5)` needs from
//! the tables. The FADT gives the PM1 control blocks and the SMI command
//! that switches the machine to ACPI mode; the DSDT's `\_S5_` package gives
//! the sleep type to write.
//!
//! Only a `Name (_S5, Package () { a, b, ... })` at any depth of the DSDT
//! is understood (what firmware writes in practice), not an `_S5` computed
//! by a method.

use core::fmt;

use crate::{bytes_at, u32_at, u64_at};

/// The FADT's power-management registers (I/O ports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pm1Control {
    /// SMI command port (0: the machine is always in ACPI mode).
    pub smi_cmd: u32,
    /// Value that, written to `smi_cmd`, enables ACPI mode.
    pub acpi_enable: u8,
    /// PM1a control block port (never 0).
    pub pm1a_cnt: u16,
    /// PM1b control block port, if there is one.
    pub pm1b_cnt: Option<u16>,
}

/// `SCI_EN` in PM1 control: the machine is in ACPI mode.
pub const SCI_EN: u16 = 1 << 0;
/// `SLP_EN` in PM1 control: enter the sleep state in `SLP_TYP`.
pub const SLP_EN: u16 = 1 << 13;
/// `SLP_TYP` occupies bits 10..13 of PM1 control.
pub const SLP_TYP_SHIFT: u16 = 10;

/// An I/O-space generic address structure's port, if the GAS at `off` is
/// one (address space 1).
fn gas_port(fadt: &[u8], off: usize) -> Option<u16> {
    let [space] = bytes_at::<1>(fadt, off)?;
    let addr = u64_at(fadt, off + 4)?;
    (space == 1 && addr != 0).then_some(addr).and_then(|a| u16::try_from(a).ok())
}

impl Pm1Control {
    /// Reads the registers from a FADT (legacy 32-bit block addresses, or
    /// the X_ generic addresses when those are 0). `None` without PM1a.
    pub fn from_fadt(fadt: &[u8]) -> Option<Self> {
        let port = |off: usize, x_off: usize| {
            u32_at(fadt, off)
                .filter(|&p| p != 0)
                .and_then(|p| u16::try_from(p).ok())
                .or_else(|| gas_port(fadt, x_off))
        };
        Some(Self {
            smi_cmd: u32_at(fadt, 48)?,
            acpi_enable: bytes_at::<1>(fadt, 52)?[0],
            pm1a_cnt: port(64, 172)?,
            pm1b_cnt: port(68, 184),
        })
    }
}

/// The two `SLP_TYP` values of `\_S5_` (for PM1a and PM1b).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SleepType {
    pub a: u8,
    pub b: u8,
}

impl SleepType {
    /// The PM1 control value that enters this state, keeping the other
    /// bits of `current`.
    pub fn control(typ: u8, current: u16) -> u16 {
        let typ_mask = 0b111 << SLP_TYP_SHIFT;
        (current & !(typ_mask | SLP_EN)) | (u16::from(typ & 0b111) << SLP_TYP_SHIFT) | SLP_EN
    }
}

/// Why no S5 sleep type was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S5Error {
    /// No `Name (_S5_, ...)` in the DSDT.
    Missing,
    /// `_S5_` is there but not a package of at least two integers.
    Malformed { offset: usize },
}

impl fmt::Display for S5Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => write!(f, "no \\_S5_ object in the DSDT"),
            Self::Malformed { offset } => {
                write!(f, "\\_S5_ at DSDT offset {offset:#x} is not a package of integers")
            }
        }
    }
}

/// AML opcodes used here.
const NAME_OP: u8 = 0x08;
const PACKAGE_OP: u8 = 0x12;
const ROOT_CHAR: u8 = b'\\';

/// One AML integer (`Zero`, `One`, `Ones`, or a byte/word/dword/qword
/// constant) at `b[i..]`: its value's low byte and its encoded length.
fn aml_integer(b: &[u8], i: usize) -> Option<(u8, usize)> {
    match *b.get(i)? {
        0x00 => Some((0, 1)),
        0x01 => Some((1, 1)),
        0xff => Some((0xff, 1)),
        0x0a => Some((*b.get(i + 1)?, 2)),
        0x0b => Some((*b.get(i + 1)?, 3)),
        0x0c => Some((*b.get(i + 1)?, 5)),
        0x0e => Some((*b.get(i + 1)?, 9)),
        _ => None,
    }
}

/// The `\_S5_` sleep types in a whole DSDT (header included).
pub fn s5_sleep_type(dsdt: &[u8]) -> Result<SleepType, S5Error> {
    let body = dsdt.get(36..).unwrap_or_default();
    let mut found = None;
    for i in 0..body.len().saturating_sub(4) {
        if &body[i..i + 4] != b"_S5_" {
            continue;
        }
        // NameOp, optionally with the root prefix, right before the name.
        let named = match i.checked_sub(1).map(|j| body[j]) {
            Some(NAME_OP) => true,
            Some(ROOT_CHAR) => i.checked_sub(2).map(|j| body[j]) == Some(NAME_OP),
            _ => false,
        };
        if !named {
            continue;
        }
        let offset = 36 + i;
        let parse = || {
            let mut p = i + 4;
            if *body.get(p)? != PACKAGE_OP {
                return None;
            }
            // PkgLength: the lead byte's top two bits count the bytes after it.
            let lead = *body.get(p + 1)?;
            p += 2 + usize::from(lead >> 6);
            let elements = *body.get(p)?;
            if elements < 2 {
                return None;
            }
            let (a, n) = aml_integer(body, p + 1)?;
            let (b, _) = aml_integer(body, p + 1 + n)?;
            Some(SleepType { a, b })
        };
        match parse() {
            Some(t) => return Ok(t),
            None => found = Some(S5Error::Malformed { offset }),
        }
    }
    Err(found.unwrap_or(S5Error::Missing))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn dsdt(aml: &[u8]) -> Vec<u8> {
        let mut t = alloc::vec![0u8; 36];
        t[0..4].copy_from_slice(b"DSDT");
        t.extend_from_slice(aml);
        t
    }

    #[test]
    fn finds_s5_in_the_forms_firmware_writes() {
        // QEMU: Name (_S5, Package (0x04) { Zero, Zero, Zero, Zero })
        let qemu = [0x08, b'_', b'S', b'5', b'_', 0x12, 0x06, 0x04, 0, 0, 0, 0];
        assert_eq!(s5_sleep_type(&dsdt(&qemu)), Ok(SleepType { a: 0, b: 0 }));
        // Name (\_S5, Package () { 0x07, 0x07, Zero, Zero }) inside a scope.
        let pc = [
            0x10, 0x0b, b'\\', b'_', b'S', b'B', b'_', 0x08, b'\\', b'_', b'S', b'5', b'_', 0x12,
            0x08, 0x04, 0x0a, 0x07, 0x0a, 0x07, 0, 0,
        ];
        assert_eq!(s5_sleep_type(&dsdt(&pc)), Ok(SleepType { a: 7, b: 7 }));
        // A two-byte PkgLength and word constants.
        let long = [0x08, b'_', b'S', b'5', b'_', 0x12, 0x40, 0x00, 0x02, 0x0b, 5, 0, 0x01];
        assert_eq!(s5_sleep_type(&dsdt(&long)), Ok(SleepType { a: 5, b: 1 }));
    }

    #[test]
    fn refuses_what_is_not_an_s5_package() {
        assert_eq!(s5_sleep_type(&dsdt(b"no sleep states")), Err(S5Error::Missing));
        assert_eq!(s5_sleep_type(&[]), Err(S5Error::Missing));
        // A string mentioning _S5_ is not a Name.
        assert_eq!(s5_sleep_type(&dsdt(b"\x0d_S5_\x00")), Err(S5Error::Missing));
        // Truncated after PackageOp, one element only, a method call.
        for aml in [&[0x08, b'_', b'S', b'5', b'_', 0x12][..], &[8, 95, 83, 53, 95, 18, 4, 1, 0]] {
            assert_eq!(s5_sleep_type(&dsdt(aml)), Err(S5Error::Malformed { offset: 37 }));
        }
        let call = [0x08, b'_', b'S', b'5', b'_', 0x12, 0x06, 0x02, 0x70, 0x71, 0, 0];
        assert!(s5_sleep_type(&dsdt(&call)).unwrap_err().to_string().contains("0x25"));
        // Every truncation of a good table is refused or parsed, never a panic.
        let qemu = dsdt(&[0x08, b'_', b'S', b'5', b'_', 0x12, 0x06, 0x04, 0, 0, 0, 0]);
        for n in 0..qemu.len() {
            let _ = s5_sleep_type(&qemu[..n]);
        }
    }

    #[test]
    fn pm1_registers_from_legacy_and_extended_fields() {
        let mut fadt = alloc::vec![0u8; 244];
        fadt[48..52].copy_from_slice(&0xb2u32.to_le_bytes());
        fadt[52] = 0xf1;
        fadt[64..68].copy_from_slice(&0x604u32.to_le_bytes());
        let pm = Pm1Control::from_fadt(&fadt).unwrap();
        assert_eq!(
            pm,
            Pm1Control { smi_cmd: 0xb2, acpi_enable: 0xf1, pm1a_cnt: 0x604, pm1b_cnt: None }
        );
        // Hardware-reduced style: legacy fields 0, X_PM1a in I/O space.
        fadt[64..68].fill(0);
        fadt[172] = 1;
        fadt[176..184].copy_from_slice(&0x1804u64.to_le_bytes());
        assert_eq!(Pm1Control::from_fadt(&fadt).unwrap().pm1a_cnt, 0x1804);
        // Memory space, or nothing at all: no PM1a, no S5.
        fadt[172] = 0;
        assert_eq!(Pm1Control::from_fadt(&fadt), None);
        assert_eq!(Pm1Control::from_fadt(&fadt[..60]), None);
    }

    #[test]
    fn control_value_sets_type_and_enable_and_keeps_the_rest() {
        assert_eq!(SleepType::control(0, SCI_EN), SCI_EN | SLP_EN);
        assert_eq!(SleepType::control(7, 0), (7 << 10) | SLP_EN);
        assert_eq!(SleepType::control(0x0d, (7 << 10) | 0x3), (5 << 10) | SLP_EN | 0x3);
    }
}

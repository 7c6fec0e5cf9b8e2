//! ACPI events, the portable half: what the FADT says about the SCI and the
//! general-purpose event (GPE) block, how the SCI reaches the I/O APIC
//! (the MADT's interrupt source overrides), the names of GPE methods
//! (`\_GPE._Lxx` / `_Exx`), EISA IDs (`_HID` as an integer), the `Notify`
//! values and the `_OST` status codes Linux uses (ACPI 6.5, 5.6.6 and
//! 6.3.5).

use alloc::string::String;
use core::fmt;

use crate::madt::{Entry, Madt};
use crate::{u16_at, u32_at};

/// The FADT's event fields (ACPI 6.5, table 5.9; the fixed 32-bit blocks,
/// which QEMU and every PC firmware fill in).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FadtEvents {
    /// `SCI_INT`: the SCI's ISA IRQ (8259 mode) or GSI.
    pub sci_int: u16,
    /// `SMI_CMD`: the port that hands the hardware to the OS.
    pub smi_cmd: u32,
    /// `ACPI_ENABLE`: the value written to `SMI_CMD` to do so.
    pub acpi_enable: u8,
    /// `PM1a_CNT_BLK` (for `SCI_EN`).
    pub pm1a_cnt: u32,
    /// `GPE0_BLK`: the GPE0 block's port (0: none).
    pub gpe0_blk: u32,
    /// `GPE0_BLK_LEN`: its length in bytes, status half then enable half.
    pub gpe0_blk_len: u8,
}

impl FadtEvents {
    /// Reads the fields from a whole FADT (header included); `None` when it
    /// is too short to hold them (a revision 1 FADT already does).
    pub fn from_fadt(fadt: &[u8]) -> Option<Self> {
        Some(Self {
            sci_int: u16_at(fadt, 46)?,
            smi_cmd: u32_at(fadt, 48)?,
            acpi_enable: *fadt.get(52)?,
            pm1a_cnt: u32_at(fadt, 64)?,
            gpe0_blk: u32_at(fadt, 80)?,
            gpe0_blk_len: *fadt.get(92)?,
        })
    }

    /// The GPE0 block as `(status port, enable port, registers)`: each half
    /// is `GPE0_BLK_LEN / 2` byte registers of 8 GPEs each. `None` without
    /// a usable block (no port, an odd or zero length, or one that does not
    /// fit in the I/O space).
    pub fn gpe0(&self) -> Option<Gpe0> {
        let len = self.gpe0_blk_len;
        if self.gpe0_blk == 0 || len == 0 || !len.is_multiple_of(2) {
            return None;
        }
        let status = u16::try_from(self.gpe0_blk).ok()?;
        let half = u16::from(len / 2);
        let enable = status.checked_add(half)?;
        enable.checked_add(half - 1)?;
        Some(Gpe0 { status, enable, registers: len / 2 })
    }
}

/// A GPE block's registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gpe0 {
    /// The first status register's port.
    pub status: u16,
    /// The first enable register's port.
    pub enable: u16,
    /// Registers per half (8 GPEs each).
    pub registers: u8,
}

impl Gpe0 {
    /// GPEs in the block.
    pub fn count(&self) -> u32 {
        u32::from(self.registers) * 8
    }
}

/// How a GPE is triggered: its method's name says (`_Lxx` level, `_Exx`
/// edge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpeTrigger {
    Level,
    Edge,
}

/// The name of GPE `n`'s method, `_L1F` or `_E03` (two upper-case hex
/// digits, as ACPI 5.6.4.1 requires); `None` above 0xff.
pub fn gpe_method_name(n: u32, trigger: GpeTrigger) -> Option<String> {
    let n = u8::try_from(n).ok()?;
    let t = match trigger {
        GpeTrigger::Level => 'L',
        GpeTrigger::Edge => 'E',
    };
    Some(alloc::format!("_{t}{n:02X}"))
}

/// Which GPE a method name serves: `_L03` is GPE 3, level; `None` for any
/// other name (lower-case hex is not a GPE method).
pub fn parse_gpe_method(name: &str) -> Option<(u32, GpeTrigger)> {
    let b = name.as_bytes();
    if b.len() != 4 || b[0] != b'_' {
        return None;
    }
    let trigger = match b[1] {
        b'L' => GpeTrigger::Level,
        b'E' => GpeTrigger::Edge,
        _ => return None,
    };
    let hex = |c: u8| match c {
        b'0'..=b'9' => Some(u32::from(c - b'0')),
        b'A'..=b'F' => Some(u32::from(c - b'A' + 10)),
        _ => None,
    };
    Some((hex(b[2])? * 16 + hex(b[3])?, trigger))
}

/// How the SCI is wired to the I/O APIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SciRoute {
    /// The GSI.
    pub gsi: u32,
    /// Active low (else active high).
    pub active_low: bool,
    /// Level-triggered (else edge).
    pub level: bool,
}

/// The SCI's route: an interrupt source override for ISA IRQ `sci_int`
/// gives the GSI and may set polarity and trigger; "conforms to the bus"
/// (or no override) means the SCI's own default, level and active low
/// (ACPI 6.5, 5.2.12.5), as Linux's `acpi_sci_ioapic_setup` does.
pub fn sci_route(madt: Option<&Madt>, sci_int: u16) -> SciRoute {
    let mut r = SciRoute { gsi: u32::from(sci_int), active_low: true, level: true };
    let Some(madt) = madt else { return r };
    for e in &madt.entries {
        if let Entry::InterruptOverride { bus: 0, source, gsi, flags } = *e
            && u16::from(source) == sci_int
        {
            r.gsi = gsi;
            match flags & 3 {
                1 => r.active_low = false,
                3 => r.active_low = true,
                _ => {}
            }
            match (flags >> 2) & 3 {
                1 => r.level = false,
                3 => r.level = true,
                _ => {}
            }
        }
    }
    r
}

/// A `_HID`/`_CID` given as an integer: the compressed EISA ID
/// (`EisaId("PNP0C80")` is 0x800cd041) as its seven characters; `None` if
/// a letter is out of range.
pub fn eisa_id(id: u32) -> Option<String> {
    let v = id.swap_bytes();
    let letter = |shift: u32| {
        let c = ((v >> shift) & 0x1f) as u8;
        (1..=26).contains(&c).then_some(char::from(b'@' + c))
    };
    let hex = |shift: u32| char::from_digit((v >> shift) & 0xf, 16).map(|c| c.to_ascii_uppercase());
    let mut s = String::new();
    for c in [letter(26), letter(21), letter(16), hex(12), hex(8), hex(4), hex(0)] {
        s.push(c?);
    }
    Some(s)
}

/// `Notify` values for devices (ACPI 6.5, table 5.166).
pub mod notify {
    pub const BUS_CHECK: u64 = 0;
    pub const DEVICE_CHECK: u64 = 1;
    pub const EJECT_REQUEST: u64 = 3;
    /// Device-specific: the NVDIMM root's "NFIT changed" (ACPI 6.5, 9.20.2).
    pub const NFIT_UPDATE: u64 = 0x80;
}

/// A `Notify` value as Linux names it in its messages.
pub struct NotifyName(pub u64);

impl fmt::Display for NotifyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            notify::BUS_CHECK => f.write_str("bus check"),
            notify::DEVICE_CHECK => f.write_str("device check"),
            2 => f.write_str("device wake"),
            notify::EJECT_REQUEST => f.write_str("eject request"),
            v => write!(f, "{v:#x}"),
        }
    }
}

/// `_OST` status codes (Linux's `ACPI_OST_SC_*`).
pub mod ost {
    pub const SUCCESS: u64 = 0;
    pub const NON_SPECIFIC_FAILURE: u64 = 1;
    pub const UNRECOGNIZED_NOTIFY: u64 = 2;
    pub const INSERT_NOT_SUPPORTED: u64 = 0x80;
    pub const EJECT_NOT_SUPPORTED: u64 = 0x80;
    pub const DEVICE_IN_USE: u64 = 0x81;
    pub const DEVICE_BUSY: u64 = 0x82;
    pub const EJECT_IN_PROGRESS: u64 = 0x84;
}

/// `_STA` bits (ACPI 6.5, 6.3.7): present, enabled, functioning.
pub mod sta {
    pub const PRESENT: u64 = 1;
    pub const ENABLED: u64 = 2;
    pub const FUNCTIONING: u64 = 8;
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    /// QEMU 7.2's pc FADT (revision 1, 116 bytes) as far as the fields go.
    fn qemu_fadt() -> [u8; 116] {
        let mut f = [0u8; 116];
        f[..4].copy_from_slice(b"FACP");
        f[4..8].copy_from_slice(&116u32.to_le_bytes());
        f[46..48].copy_from_slice(&9u16.to_le_bytes());
        f[48..52].copy_from_slice(&0xb2u32.to_le_bytes());
        f[52] = 0xf1;
        f[64..68].copy_from_slice(&0x604u32.to_le_bytes());
        f[80..84].copy_from_slice(&0xafe0u32.to_le_bytes());
        f[92] = 4;
        f
    }

    #[test]
    fn fadt_fields_and_gpe_block() {
        let e = FadtEvents::from_fadt(&qemu_fadt()).unwrap();
        assert_eq!(e.sci_int, 9);
        assert_eq!((e.smi_cmd, e.acpi_enable, e.pm1a_cnt), (0xb2, 0xf1, 0x604));
        let g = e.gpe0().unwrap();
        assert_eq!(g, Gpe0 { status: 0xafe0, enable: 0xafe2, registers: 2 });
        assert_eq!(g.count(), 16);
        assert_eq!(FadtEvents::from_fadt(&qemu_fadt()[..92]), None);
    }

    #[test]
    fn bad_gpe_blocks_are_none() {
        let with = |blk: u32, len: u8| FadtEvents {
            gpe0_blk: blk,
            gpe0_blk_len: len,
            ..FadtEvents::from_fadt(&qemu_fadt()).unwrap()
        };
        assert_eq!(with(0, 4).gpe0(), None);
        assert_eq!(with(0xafe0, 0).gpe0(), None);
        assert_eq!(with(0xafe0, 3).gpe0(), None);
        assert_eq!(with(0x1_0000, 4).gpe0(), None);
        assert_eq!(with(0xfffe, 4).gpe0(), None);
        assert_eq!(
            with(0xfffc, 4).gpe0(),
            Some(Gpe0 { status: 0xfffc, enable: 0xfffe, registers: 2 })
        );
    }

    #[test]
    fn gpe_method_names_round_trip() {
        for n in 0..=255 {
            for t in [GpeTrigger::Level, GpeTrigger::Edge] {
                let name = gpe_method_name(n, t).unwrap();
                assert_eq!(parse_gpe_method(&name), Some((n, t)), "{name}");
            }
        }
        assert_eq!(gpe_method_name(3, GpeTrigger::Edge).unwrap(), "_E03");
        assert_eq!(gpe_method_name(0x1f, GpeTrigger::Level).unwrap(), "_L1F");
        assert_eq!(gpe_method_name(256, GpeTrigger::Level), None);
        for bad in ["_e03", "_L0g", "_X03", "L03", "_L003", "_L0"] {
            assert_eq!(parse_gpe_method(bad), None, "{bad}");
        }
    }

    #[test]
    fn sci_route_follows_the_override() {
        let madt = |flags: u16| Madt {
            revision: 1,
            local_apic_address: 0xfee0_0000,
            flags: 1,
            entries: vec![
                Entry::InterruptOverride { bus: 0, source: 0, gsi: 2, flags: 0 },
                Entry::InterruptOverride { bus: 0, source: 9, gsi: 9, flags },
            ],
        };
        // QEMU: IRQ 9, active high, level.
        let r = sci_route(Some(&madt(0xd)), 9);
        assert_eq!(r, SciRoute { gsi: 9, active_low: false, level: true });
        // Conforming flags keep the SCI's default, level and active low.
        assert_eq!(
            sci_route(Some(&madt(0)), 9),
            SciRoute { gsi: 9, active_low: true, level: true }
        );
        assert_eq!(
            sci_route(Some(&madt(0x5)), 9),
            SciRoute { gsi: 9, active_low: false, level: false }
        );
        assert_eq!(sci_route(None, 11), SciRoute { gsi: 11, active_low: true, level: true });
        // Another IRQ's override does not apply.
        assert_eq!(sci_route(Some(&madt(0xd)), 10).gsi, 10);
    }

    #[test]
    fn eisa_ids() {
        assert_eq!(eisa_id(0x800c_d041).as_deref(), Some("PNP0C80"));
        assert_eq!(eisa_id(0x030a_d041).as_deref(), Some("PNP0A03"));
        assert_eq!(eisa_id(0x0c0c_d041).as_deref(), Some("PNP0C0C"));
        assert_eq!(eisa_id(0), None);
    }

    #[test]
    fn notify_names() {
        assert_eq!(alloc::format!("{}", NotifyName(1)), "device check");
        assert_eq!(alloc::format!("{}", NotifyName(3)), "eject request");
        assert_eq!(alloc::format!("{}", NotifyName(0x80)), "0x80");
    }
}

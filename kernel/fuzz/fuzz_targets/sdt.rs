//! The RSDP/RSDT/XSDT walk (and the FADT/DSDT readers behind power-off) on
//! an arbitrary physical memory: never a panic, and every table it accepts
//! is whole and checksummed.
//!
//! Input: 8 bytes of base address (little endian), then the memory image at
//! that base; the RSDP is at the base.
#![no_main]

use acpi::sdt::{self, PhysMem};
use acpi::sleep::{Pm1Control, s5_sleep_type};
use libfuzzer_sys::fuzz_target;

struct Image<'a> {
    base: u64,
    bytes: &'a [u8],
}

impl PhysMem for Image<'_> {
    fn read(&self, phys: u64, buf: &mut [u8]) -> bool {
        let Some(off) = phys.checked_sub(self.base) else { return false };
        let Ok(off) = usize::try_from(off) else { return false };
        match self.bytes.get(off..off.saturating_add(buf.len())) {
            Some(src) if src.len() == buf.len() => {
                buf.copy_from_slice(src);
                true
            }
            _ => false,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((base, bytes)) = data.split_first_chunk::<8>() else { return };
    let mem = Image { base: u64::from_le_bytes(*base), bytes };
    let _ = sdt::parse_rsdp(bytes);
    let tables = match sdt::walk(&mem, mem.base) {
        Ok(t) => t,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    for line in tables.lines() {
        let _ = line.to_string();
    }
    for e in &tables.entries {
        let _ = e.to_string();
        if e.problem.is_none() {
            let h = e.header.expect("an accepted table has a header");
            assert_eq!(e.bytes.len(), h.length as usize);
            assert!(sdt::checksum_ok(&e.bytes), "accepted table with a bad checksum");
        }
    }
    let fadt = tables.find_all(*b"FACP").find(|e| e.problem.is_none());
    if let Some(f) = fadt {
        let _ = Pm1Control::from_fadt(&f.bytes);
    }
    if let Some(d) = tables.find_all(*b"DSDT").find(|e| e.problem.is_none()) {
        let _ = s5_sleep_type(&d.bytes).map_err(|e| e.to_string());
    }
});

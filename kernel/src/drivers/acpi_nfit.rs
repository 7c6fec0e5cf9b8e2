//! The NVDIMM root device (`ACPI0012`, Linux's `acpi_nfit_notify` in
//! `drivers/acpi/nfit/core.c`): when the firmware notifies it (0x80, "NFIT
//! update", after QEMU's `device_add nvdimm`), `_FIT` returns the NFIT's
//! structures as they are now. Each persistent-memory SPA range not known
//! yet is checked as the boot NFIT's are ([`acpi::nfit::validate`]: not
//! over System RAM, within MAX_PHYSMEM_BITS, no overlap), becomes a
//! region and namespace, is probed for an info block and hot-added
//! sub-section by sub-section, exactly as boot-time ranges are.

use alloc::vec::Vec;

use acpi::events::notify;
use acpi::nfit::{self, SpaRange};
use mm::e820::MemRange;
use mm::sparse::MAX_PHYSMEM_BITS;

use super::acpi_events::evaluate;
use super::pmem;
use crate::acpi::{Described, PmemRange};
use crate::mm::memblock::MEMBLOCK;

/// A `Notify` on the NVDIMM root device `path`.
pub fn notify(path: &str, value: u64) {
    if value != notify::NFIT_UPDATE {
        log::info!("acpi {path}: NVDIMM root: notify {value:#x} not handled");
        return;
    }
    log::info!("acpi {path}: NFIT update (Notify 0x80): evaluating _FIT");
    let fit = match evaluate(&alloc::format!("{path}._FIT"), Vec::new()) {
        Ok(v) => match v.as_buffer() {
            Ok(b) => b.to_vec(),
            Err(e) => {
                log::error!("acpi {path}: _FIT is not a buffer ({e:?}); nothing added");
                return;
            }
        },
        Err(e) => {
            log::error!("acpi {path}: {e}; nothing added");
            return;
        }
    };
    let (table, errors) = match nfit::parse_fit(&fit) {
        Ok(t) => t,
        Err(e) => {
            log::error!("nfit: _FIT: {e}; nothing added");
            return;
        }
    };
    for e in &errors {
        log::warn!("nfit: _FIT: {e}");
    }
    let known: Vec<(u64, u64)> = pmem::regions().iter().map(|r| (r.start, r.end())).collect();
    let new: Vec<&SpaRange> = table
        .spa_ranges()
        .filter(|s| s.is_pmem())
        .filter(|s| !known.iter().any(|&(a, z)| a == s.base && z == s.base.wrapping_add(s.length)))
        .collect();
    if new.is_empty() {
        log::info!("acpi {path}: _FIT: {} bytes, no new persistent-memory range", fit.len());
        return;
    }
    let ram: Vec<(u64, u64)> =
        MEMBLOCK.lock().memory.regions().iter().map(|r| (r.base, r.end())).collect();
    let (accepted, refused) = nfit::validate(new.iter().copied(), &ram, MAX_PHYSMEM_BITS);
    for e in &refused {
        log::warn!("nfit: _FIT: {e}");
    }
    for s in accepted.iter().filter(|s| s.is_pmem()) {
        let Some(end) = s.end() else { continue };
        if let Some(&(a, z)) = known.iter().find(|&&(a, z)| a < end && s.base < z) {
            log::warn!(
                "nfit: _FIT: SPA range {} {} overlaps a region already there {}; not added",
                s.index,
                MemRange(s.base, end),
                MemRange(a, z)
            );
            continue;
        }
        log::info!("nfit: _FIT: {}", nfit::Structure::Spa(s.clone()));
        hot_add(PmemRange {
            start: s.base,
            size: s.length,
            spa: s.index,
            described: Described::Firmware,
        });
    }
}

/// Registers the range as a region and adds it as at boot.
fn hot_add(r: PmemRange) {
    pmem::register(&[r]);
    let Some(region) = pmem::regions().into_iter().find(|x| x.start == r.start) else { return };
    let id = region.id;
    if let Err(e) = pmem::probe(id) {
        log::error!("pmem: {}: {e}", region.name());
        return;
    }
    match pmem::add(id, &mut |_, line| log::info!("{line}")) {
        Ok(added) => log::info!(
            "pmem: {} {} added at run time",
            added.name(),
            MemRange(r.start, r.start + r.size)
        ),
        Err(e) => log::error!("pmem: {}: {e}", region.name()),
    }
}

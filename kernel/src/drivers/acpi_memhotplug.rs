//! ACPI memory devices (`PNP0C80`, Linux's `drivers/acpi/acpi_memhotplug.c`
//! with the hotplug half of `scan.c`): a DIMM the firmware reports, at boot
//! or through a `Notify`, becomes memory blocks; an eject request offlines
//! and removes them, then ejects the DIMM with `_EJ0`.
//!
//! - Device check (`Notify(dev, 1)`) or bus check (0): if `_STA` says
//!   present and enabled and the DIMM is not added yet, its `_CRS` memory
//!   ranges are added ([`super::memory::add_memory_dimm`], which onlines
//!   them per `memhp_default_state`), then `_OST(1, 0)`; a failure gives
//!   `_OST(1, 1)` and adds nothing.
//! - Eject request (3): `_OST(3, 0x84)` (in progress), then every block of
//!   the DIMM is offlined and removed
//!   ([`super::memory::offline_and_remove_memory`]; all or nothing), then
//!   `_EJ0(1)` and `_OST(3, 0)`. If a block cannot be offlined (a page in
//!   use that cannot move) the DIMM stays, every block as it was, and the
//!   firmware hears `_OST(3, 0x82)` (device busy), as Linux reports
//!   `-EBUSY`.
//!
//! A `_CRS` whose range overlaps memory the kernel has is refused by
//! `add_memory` (EEXIST, the `/proc/iomem` conflict), nothing is added,
//! and `_OST` reports the failure.

use alloc::string::String;
use alloc::vec::Vec;

use acpi::events::{NotifyName, notify, ost, sta};
use aml::aml::resource::{AddressSpaceResourceType, MemoryRangeDescriptor, Resource};
use mm::e820::MemRange;
use spin::Mutex;

use super::acpi_events::{self, evaluate, evaluate_integer, int};

/// A memory device the kernel knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dimm {
    /// Its ACPI path, e.g. `\_SB.PCI0.MHPD.MP00`.
    pub path: String,
    /// Its name, the path's last segment (`MP00`).
    pub name: String,
    /// Its `_CRS` memory ranges, `(start, size)`.
    pub ranges: Vec<(u64, u64)>,
}

/// DIMMs whose memory was added.
static DIMMS: Mutex<Vec<Dimm>> = Mutex::new(Vec::new());

/// The DIMMs whose memory the kernel has.
pub fn dimms() -> Vec<Dimm> {
    DIMMS.lock().clone()
}

fn name_of(path: &str) -> String {
    path.rsplit('.').next().unwrap_or(path).trim_start_matches('\\').into()
}

/// `_CRS`'s memory ranges (`acpi_memory_get_resource`): 32-bit fixed and
/// 64-bit address-space descriptors of type memory, zero lengths skipped.
fn memory_ranges(path: &str) -> Result<Vec<(u64, u64)>, String> {
    let crs = evaluate(&alloc::format!("{path}._CRS"), Vec::new())?;
    if let Ok(b) = crs.as_buffer() {
        log::debug!("acpi {path}: _CRS {b:02x?}");
    }
    let list = aml::aml::resource::resource_descriptor_list(crs)
        .map_err(|e| alloc::format!("{path}._CRS: {e:?}"))?;
    let mut out = Vec::new();
    for r in list {
        match r {
            Resource::AddressSpace(a)
                if a.resource_type == AddressSpaceResourceType::MemoryRange && a.length != 0 =>
            {
                out.push((a.address_range.0, a.length));
            }
            Resource::MemoryRange(MemoryRangeDescriptor::FixedLocation {
                base_address,
                range_length,
                ..
            }) if range_length != 0 => out.push((base_address.into(), range_length.into())),
            _ => {}
        }
    }
    if out.is_empty() {
        return Err(alloc::format!("{path}._CRS: no memory range"));
    }
    Ok(out)
}

fn status(path: &str) -> u64 {
    // No _STA: present and working (ACPI 6.5, 6.3.7).
    match evaluate_integer(&alloc::format!("{path}._STA"), Vec::new()) {
        Ok(v) => v,
        Err(e) if e.contains("ObjectDoesNotExist") => 0xf,
        Err(e) => {
            log::warn!("acpi {path}: {e}");
            0
        }
    }
}

/// Adds the DIMM at `path` if the firmware says it is there and it is not
/// added yet (`acpi_memory_device_add`). Returns whether it was added.
fn add(path: &str) -> Result<bool, String> {
    if DIMMS.lock().iter().any(|d| d.path == path) {
        return Ok(false);
    }
    let st = status(path);
    if st & (sta::PRESENT | sta::ENABLED) != (sta::PRESENT | sta::ENABLED) {
        return Ok(false);
    }
    let ranges = memory_ranges(path)?;
    let name = name_of(path);
    let mut added: Vec<(u64, u64)> = Vec::new();
    for &(start, size) in &ranges {
        match super::memory::add_memory_dimm(start, size, &name) {
            Ok(_) => added.push((start, size)),
            Err(e) => {
                // All or nothing, as Linux's acpi_memory_enable_device
                // removes what it added when a range fails.
                for &(s, n) in added.iter().rev() {
                    if let Err(e) = super::memory::offline_and_remove_memory(s, n) {
                        log::error!("acpi {path}: undo {}: {e}", MemRange(s, s + n));
                    }
                }
                return Err(alloc::format!("add_memory {}: {e}", MemRange(start, start + size)));
            }
        }
    }
    DIMMS.lock().push(Dimm { path: path.into(), name, ranges });
    Ok(true)
}

/// At boot: every memory device present (`-device pc-dimm` on QEMU's
/// command line) is added, as Linux's `acpi_memory_device_add` does at
/// its bus scan.
pub fn scan() {
    if !acpi_events::ready() {
        return;
    }
    let mut found = 0;
    for path in acpi_events::devices() {
        if acpi_events::hid(&path).as_deref() != Some("PNP0C80") {
            continue;
        }
        found += 1;
        match add(&path) {
            Ok(true) => log_added(&path),
            Ok(false) => {}
            Err(e) => log::error!("acpi {path}: {e}"),
        }
    }
    log::info!("ACPI: {found} memory device slots (PNP0C80)");
}

fn log_added(path: &str) {
    if let Some(d) = DIMMS.lock().iter().find(|d| d.path == path) {
        for &(s, n) in &d.ranges {
            log::info!(
                "acpi {path}: DIMM {} {} added ({} MiB)",
                d.name,
                MemRange(s, s + n),
                n >> 20
            );
        }
    }
}

/// A `Notify` on memory device `path`.
pub fn notify(path: &str, value: u64) {
    log::info!("acpi {path}: {} (Notify {value:#x})", NotifyName(value));
    match value {
        notify::BUS_CHECK | notify::DEVICE_CHECK => match add(path) {
            Ok(true) => {
                log_added(path);
                acpi_events::ost(path, value, ost::SUCCESS);
            }
            Ok(false) => {
                log::info!(
                    "acpi {path}: nothing to add (_STA {:#x}{})",
                    status(path),
                    if DIMMS.lock().iter().any(|d| d.path == path) {
                        ", already added"
                    } else {
                        ""
                    }
                );
                acpi_events::ost(path, value, ost::SUCCESS);
            }
            Err(e) => {
                log::error!("acpi {path}: {e}; DIMM not added");
                acpi_events::ost(path, value, ost::NON_SPECIFIC_FAILURE);
            }
        },
        notify::EJECT_REQUEST => eject(path),
        _ => {
            log::info!("acpi {path}: unsupported notify {value:#x}");
            acpi_events::ost(path, value, ost::UNRECOGNIZED_NOTIFY);
        }
    }
}

/// An eject request: offline and remove, then `_EJ0`.
fn eject(path: &str) {
    let ev = notify::EJECT_REQUEST;
    let Some(d) = DIMMS.lock().iter().find(|d| d.path == path).cloned() else {
        if status(path) & sta::PRESENT == 0 {
            // Linux has no device for it: the notify fails.
            log::warn!("acpi {path}: eject request for a device that is not present; ignored");
            acpi_events::ost(path, ev, ost::NON_SPECIFIC_FAILURE);
            return;
        }
        let name = name_of(path);
        if super::memory::blocks()
            .iter()
            .any(|b| b.dimm.as_ref().is_some_and(|n| n.as_str() == name))
        {
            // Never eject memory the kernel still has.
            log::error!("acpi {path}: memory blocks of DIMM {name} are still here; not ejected");
            acpi_events::ost(path, ev, ost::DEVICE_BUSY);
            return;
        }
        // Present but without memory here (its add failed): nothing to
        // offline; let the firmware eject it.
        log::info!("acpi {path}: eject of a DIMM without memory here");
        eject_now(path);
        return;
    };
    acpi_events::ost(path, ev, ost::EJECT_IN_PROGRESS);
    let mut done: Vec<(u64, u64)> = Vec::new();
    for &(s, n) in &d.ranges {
        if let Err(e) = super::memory::offline_and_remove_memory(s, n) {
            log::error!(
                "acpi {path}: Offline failed: {} {e}; DIMM {} stays",
                MemRange(s, s + n),
                d.name
            );
            for &(s, n) in &done {
                if let Err(e) = super::memory::add_memory_dimm(s, n, &d.name) {
                    log::error!("acpi {path}: re-add {}: {e}", MemRange(s, s + n));
                }
            }
            acpi_events::ost(path, ev, ost::DEVICE_BUSY);
            return;
        }
        done.push((s, n));
    }
    DIMMS.lock().retain(|x| x.path != path);
    for &(s, n) in &d.ranges {
        log::info!("acpi {path}: DIMM {} {} removed", d.name, MemRange(s, s + n));
    }
    eject_now(path);
}

/// `_EJ0(1)`, then `_STA` says whether the firmware let it go.
fn eject_now(path: &str) {
    let ev = notify::EJECT_REQUEST;
    if let Err(e) = evaluate(&alloc::format!("{path}._EJ0"), alloc::vec![int(1)]) {
        log::error!("acpi {path}: _EJ0: {e}");
        acpi_events::ost(path, ev, ost::NON_SPECIFIC_FAILURE);
        return;
    }
    let st = status(path);
    if st & sta::PRESENT != 0 {
        log::warn!("acpi {path}: Eject incomplete - status {st:#x}");
        acpi_events::ost(path, ev, ost::DEVICE_BUSY);
        return;
    }
    log::info!("acpi {path}: ejected");
    acpi_events::ost(path, ev, ost::SUCCESS);
}

/// The `_CRS` ranges of a DIMM path, for the shell (`acpi dimms`).
pub fn describe(d: &Dimm) -> String {
    let ranges: Vec<String> =
        d.ranges.iter().map(|&(s, n)| alloc::format!("{}", MemRange(s, s + n))).collect();
    alloc::format!("{} {} {}", d.name, d.path, ranges.join(" "))
}

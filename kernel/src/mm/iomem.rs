//! The `/proc/iomem` view: the firmware map's ranges at the top, System
//! RAM that hotplug added or removed, NFIT persistent ranges, and each
//! region's namespace as a child.

use mm::iomem::IoMem;

use crate::mm::firmware::maps;
use crate::mm::pmem;

/// The resource tree as it stands now: RAM hotplug's "System RAM" added
/// and released as `add_memory` and `remove_memory` do it.
pub fn tree() -> IoMem {
    let mut t = maps().map_or_else(IoMem::new, |m| IoMem::from_e820(&m.e820));
    crate::mm::memory_hotplug::apply_to_iomem(&mut t);
    for r in pmem::regions() {
        let end = r.end() - 1;
        let legacy = t.find(r.start, end, "Persistent Memory (legacy)").is_some();
        if let Err(e) = if legacy { Ok(()) } else { t.insert(r.start, end, "Persistent Memory") } {
            log::warn!("iomem: {e}");
        }
        if let Err(e) = t.insert(r.start, end, &r.namespace()) {
            log::warn!("iomem: {e}");
        }
    }
    t
}

/// Prints the tree, a line per resource.
pub fn print() {
    for line in tree().lines() {
        log::info!("{line}");
    }
}

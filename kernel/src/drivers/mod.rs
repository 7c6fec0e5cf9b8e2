//! Drivers: what the memory model serves. Persistent-memory regions and
//! their namespaces ([`pmem`]), System RAM in memory blocks ([`memory`]),
//! and switching the machine off ([`power`]). They sit above `mm` and
//! `acpi` and below the shell; their decisions are `tessera-mm`'s, and
//! this layer maps, locks and logs.

pub mod acpi_events;
pub mod acpi_memhotplug;
pub mod acpi_nfit;
pub mod memory;
pub mod pmem;
pub mod power;

/// Told that memory changed: `Some(section)` after each sub-section (each
/// section, with an altmap) a persistent-memory operation adds or removes,
/// `None` at the end of every hotplug operation.
pub type ChangeHook = fn(Option<u64>);

static CHANGED: spin::Once<ChangeHook> = spin::Once::new();

/// Registers the one change hook (the mosaic; later calls are ignored).
/// It runs on the CPU of the operation with none of the memory model's
/// locks held (`MEM_HOTPLUG` and the driver's own may be), so it may read
/// the model and draw, but must not start a hotplug operation.
pub fn set_change_hook(hook: ChangeHook) {
    CHANGED.call_once(|| hook);
}

/// Calls the change hook, if one is registered.
fn changed(section: Option<u64>) {
    if let Some(hook) = CHANGED.get() {
        hook(section);
    }
}

//! Drivers: what the memory model serves. Persistent-memory regions and
//! their namespaces ([`pmem`]), System RAM in memory blocks ([`memory`]),
//! and switching the machine off ([`power`]). They sit above `mm` and
//! `acpi` and below the shell; their decisions are `tessera-mm`'s, and
//! this layer maps, locks and logs.

pub mod memory;
pub mod pmem;
pub mod power;

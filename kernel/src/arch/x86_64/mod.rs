//! x86_64 specifics: descriptor tables, exceptions, port I/O devices
//! (serial, PS/2 keyboard, PIT, fw_cfg, the QEMU exit device), the TSC
//! clock, the local APIC and the I/O APIC, per-CPU data, AP start-up and interprocessor
//! interrupts.

pub mod apic;
pub mod cpu;
pub mod extable;
pub mod gdt;
pub mod idt;
pub mod ioapic;
pub mod ipi;
pub mod keyboard;
pub mod paging;
pub mod parallel;
pub mod percpu;
pub mod qemu;
pub mod serial;
pub mod smpboot;
pub mod time;

//! x86_64 specifics: descriptor tables, exceptions, port I/O devices
//! (serial, PS/2 keyboard, PIT, fw_cfg, the QEMU exit device), the TSC clock.

pub mod cpu;
pub mod gdt;
pub mod idt;
pub mod keyboard;
pub mod paging;
pub mod qemu;
pub mod serial;
pub mod time;

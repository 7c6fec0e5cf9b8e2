//! ACPI tables from byte slices: the RSDP/RSDT/XSDT walk with checksums,
//! Linux's table list, the NFIT (parser, validation, synthesis) and the
//! MADT (parser, the possible CPUs).
//!
//! Everything here parses copies of firmware memory handed in as `&[u8]`
//! (or read through [`sdt::PhysMem`]); nothing dereferences a pointer.
//!
//! Output convention: every `Display` impl in this crate prints one line
//! *without* a subsystem prefix. The kernel adds it, the way Linux does:
//! `log::info!("ACPI: {line}")` for [`sdt`] lines and errors,
//! `log::info!("nfit: {s}")` for [`nfit`] structures and errors.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod events;
pub mod madt;
pub mod nfit;
pub mod sdt;
pub mod sleep;

/// `N` bytes at `off`, or `None` when the slice is too short.
fn bytes_at<const N: usize>(b: &[u8], off: usize) -> Option<[u8; N]> {
    b.get(off..off.checked_add(N)?)?.try_into().ok()
}

/// Little-endian `u16` at `off`.
fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    bytes_at(b, off).map(u16::from_le_bytes)
}

/// Little-endian `u32` at `off`.
fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    bytes_at(b, off).map(u32::from_le_bytes)
}

/// Little-endian `u64` at `off` (no alignment needed).
fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    bytes_at(b, off).map(u64::from_le_bytes)
}

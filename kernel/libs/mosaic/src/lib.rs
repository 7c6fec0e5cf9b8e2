//! The mosaic: every section of memory drawn as a row of its 64 tesserae,
//! the 2 MiB sub-sections, one colour per state, with the section's
//! number and address in front and a legend above.
//!
//! This crate is the whole of the mosaic but the pixels: which state each
//! tile is in ([`Memory::section_tiles`]), which sections get a row
//! ([`Memory::sections`]), where the panel, its rows, tiles, labels and
//! legend go on a screen of a given size and how many sections share a row
//! when they do not all fit ([`Layout`]), the colours ([`Tile::rgb`]) and
//! the line the shell answers with ([`Layout::status`], read back by
//! [`parse_status`]). The kernel draws what a [`Layout`] says; the test
//! harness reads a `screendump` back through the same [`Layout`] and checks
//! the colours of a section's tiles, so neither side hard-codes a pixel.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod layout;
mod memory;

pub use layout::{
    GAP, LABEL_CHARS, LayoutError, LegendItem, MARGIN, Rect, Screen, View, label, parse_status,
};
pub use layout::{Layout, format_sections, parse_sections};
pub use memory::{Memory, TILES, Tile};

#[cfg(test)]
mod tests;

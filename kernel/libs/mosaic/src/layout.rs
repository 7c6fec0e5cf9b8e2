//! Where the mosaic goes on the screen. The panel takes the top of the
//! screen, at most half of it; the log scrolls below. From the top: a
//! title line, the legend (one line, more on a narrow screen), then one
//! row per section (or per group of sections), each a label (`    14
//! 0x000070000000`, the section's number and address) and 64 tiles, then a
//! separator line.
//!
//! When the rows do not fit in half the screen, `2^k` consecutive sections
//! share a row ([`View::All`]): the row is their `2^k × 128 MiB`, left to
//! right, and a tile is `2^k` sub-sections, coloured by the state most of
//! them are in (ties go to the state the legend lists first). A row is
//! drawn only for a group that holds a section with a row. [`View::From`]
//! shows one section a row again, from a given section on (the shell's
//! `mosaic N`), as many as fit.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use mm::sparse::{SECTION_SIZE_BITS, SUBSECTION_SHIFT};

use crate::memory::{TILES, Tile};

/// Pixels around the panel's edges (the console's margin).
pub const MARGIN: usize = 4;
/// Pixels between the legend and the rows, and below the rows.
pub const GAP: usize = 4;
/// Characters of a row's label: `{nr:>6} {addr:#014x}`.
pub const LABEL_CHARS: usize = 21;
/// The widest a tile (with its one-pixel gap) gets.
const MAX_PITCH: usize = 16;
/// The narrowest a tile (with its gap) may be.
const MIN_PITCH: usize = 3;

/// The screen, and the console font's cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Screen {
    pub width: usize,
    pub height: usize,
    pub char_w: usize,
    pub char_h: usize,
}

/// A rectangle of pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: usize,
    pub y: usize,
    pub w: usize,
    pub h: usize,
}

/// Which rows the panel shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Every section with a row, sections grouped when they do not fit.
    All,
    /// One section a row, from this section on (or from the first section
    /// with a row after it), as many as fit; when fewer remain, the rows
    /// before it fill the panel.
    From(u64),
}

/// Why there is no layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutError {
    /// No section has a row.
    NoSections,
    /// [`View::From`] past the last section with a row.
    NothingFrom { nr: u64, last: u64 },
    /// The screen cannot hold 64 tiles and a label in a row, or a row.
    TooSmall { width: usize, height: usize },
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NoSections => write!(f, "no section has memory"),
            Self::NothingFrom { nr, last } => {
                write!(f, "no section from {nr} on has memory (the last is {last})")
            }
            Self::TooSmall { width, height } => {
                write!(f, "a {width}x{height} screen is too small for a row of 64 tiles")
            }
        }
    }
}

/// One entry of the legend: a swatch of the colour, then the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegendItem {
    pub tile: Tile,
    pub swatch: Rect,
    /// Where the name's text starts (top left).
    pub text: (usize, usize),
}

/// The panel on a given screen for a given list of sections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub screen: Screen,
    pub view: View,
    /// Every section with a row, sorted.
    pub sections: Vec<u64>,
    /// Sections a row: a power of two.
    pub group: u64,
    /// The first section of each row shown (a multiple of `group`).
    pub rows: Vec<u64>,
    /// Left edge of the first tile.
    pub tiles_x: usize,
    /// Distance from one tile to the next (a tile is one pixel narrower).
    pub pitch: usize,
    /// Tile size.
    pub tile_w: usize,
    pub tile_h: usize,
    /// Top of the first row.
    pub rows_y: usize,
    /// Lines the legend takes.
    pub legend_lines: usize,
    /// The panel's height: the log scrolls below it.
    pub height: usize,
}

/// A row's label: `{nr:>6} {addr:#014x}` ([`LABEL_CHARS`] long).
pub fn label(nr: u64) -> String {
    format!("{nr:>6} {:#014x}", nr << SECTION_SIZE_BITS)
}

/// `bytes` as `N MiB` or `N GiB`.
fn size_text(bytes: u64) -> String {
    if bytes >= 1 << 30 && bytes.is_multiple_of(1 << 30) {
        format!("{} GiB", bytes >> 30)
    } else {
        format!("{} MiB", bytes >> 20)
    }
}

/// Sorted section numbers as runs: `0-15,2048-2559`.
pub fn format_sections(sections: &[u64]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < sections.len() {
        let start = sections[i];
        let mut j = i;
        while j + 1 < sections.len() && sections[j + 1] == sections[j] + 1 {
            j += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        out += &if j > i { format!("{start}-{}", sections[j]) } else { format!("{start}") };
        i = j + 1;
    }
    out
}

/// The sections of [`format_sections`]'s text.
pub fn parse_sections(text: &str) -> Option<Vec<u64>> {
    let mut out: Vec<u64> = Vec::new();
    for run in text.split(',') {
        let (a, b) = run.split_once('-').unwrap_or((run, run));
        let (a, b) = (a.parse::<u64>().ok()?, b.parse::<u64>().ok()?);
        if a > b || out.last().is_some_and(|&l| l >= a) || b - a > 1 << 24 {
            return None;
        }
        out.extend(a..=b);
    }
    Some(out)
}

/// The sections and the view of a [`Layout::status`] line, so that a
/// reader of the screen can build the same layout.
pub fn parse_status(line: &str) -> Option<(Vec<u64>, View)> {
    let rest = line.split_once("mosaic: on: sections ")?.1;
    let (list, rest) = rest.split_once(" (")?;
    let sections = parse_sections(list)?;
    let view = match rest.split_once("from section ") {
        Some((_, n)) => View::From(n.split(':').next()?.parse().ok()?),
        None => View::All,
    };
    Some((sections, view))
}

impl Layout {
    /// The panel for `sections` (sorted, each with a row) on `screen`.
    pub fn new(screen: Screen, sections: &[u64], view: View) -> Result<Layout, LayoutError> {
        let Screen { width, height, char_w, char_h } = screen;
        let small = LayoutError::TooSmall { width, height };
        let last = *sections.last().ok_or(LayoutError::NoSections)?;
        let tiles_x = MARGIN + (LABEL_CHARS + 1) * char_w;
        let pitch = (width.saturating_sub(tiles_x + MARGIN) / TILES).min(MAX_PITCH);
        if pitch < MIN_PITCH || char_h < 4 {
            return Err(small);
        }
        let legend_lines = legend(screen, 0).last().map_or(1, |l| 1 + (l.text.1 / char_h));
        let rows_y = MARGIN + (1 + legend_lines) * char_h + GAP;
        let max_rows = (height / 2).saturating_sub(rows_y + GAP) / char_h;
        if max_rows == 0 {
            return Err(small);
        }
        let (group, rows) = match view {
            View::All => {
                let mut group = 1u64;
                loop {
                    let mut rows: Vec<u64> = sections.iter().map(|&s| s / group * group).collect();
                    rows.dedup();
                    if rows.len() <= max_rows {
                        break (group, rows);
                    }
                    group *= 2;
                }
            }
            View::From(nr) => {
                let at = sections.partition_point(|&s| s < nr);
                if at == sections.len() {
                    return Err(LayoutError::NothingFrom { nr, last });
                }
                let start = at.min(sections.len().saturating_sub(max_rows));
                (1, sections[start..(start + max_rows).min(sections.len())].to_vec())
            }
        };
        let height = rows_y + rows.len() * char_h + GAP;
        Ok(Layout {
            screen,
            view,
            sections: sections.to_vec(),
            group,
            rows,
            tiles_x,
            pitch,
            tile_w: pitch - 1,
            tile_h: char_h - 4,
            rows_y,
            legend_lines,
            height,
        })
    }

    /// The top of row `row`.
    pub fn row_y(&self, row: usize) -> usize {
        self.rows_y + row * self.screen.char_h
    }

    /// Where row `row`'s label starts (top left).
    pub fn label_at(&self, row: usize) -> (usize, usize) {
        (MARGIN, self.row_y(row))
    }

    /// Tile `i` of row `row`.
    pub fn tile_rect(&self, row: usize, i: usize) -> Rect {
        Rect {
            x: self.tiles_x + i * self.pitch,
            y: self.row_y(row) + (self.screen.char_h - self.tile_h) / 2,
            w: self.tile_w,
            h: self.tile_h,
        }
    }

    /// The row showing section `nr`, if one does.
    pub fn row_of(&self, nr: u64) -> Option<usize> {
        let first = nr / self.group * self.group;
        self.rows.binary_search(&first).ok()
    }

    /// The row and tile that show sub-section `sub` of section `nr`.
    pub fn tile_of(&self, nr: u64, sub: usize) -> Option<(usize, usize)> {
        let row = self.row_of(nr)?;
        let index = (nr - self.rows[row]) * TILES as u64 + sub as u64;
        Some((row, (index / self.group) as usize))
    }

    /// Whether row `row` is the one [`View::From`] asked for.
    pub fn focused(&self, row: usize) -> bool {
        match self.view {
            View::From(nr) => {
                let at = self.sections.partition_point(|&s| s < nr);
                self.sections.get(at) == self.rows.get(row)
            }
            View::All => false,
        }
    }

    /// Row `row`'s tiles, from each of its sections' tiles (`section`
    /// gives them): with one section a row, that section's; with more, each
    /// tile the state most of its sub-sections are in, ties to the state
    /// [`Tile::ALL`] lists first.
    pub fn row_tiles(
        &self,
        row: usize,
        mut section: impl FnMut(u64) -> [Tile; TILES],
    ) -> [Tile; TILES] {
        let first = self.rows[row];
        if self.group == 1 {
            return section(first);
        }
        let mut counts = [[0u32; Tile::ALL.len()]; TILES];
        for k in 0..self.group {
            for (sub, t) in section(first + k).into_iter().enumerate() {
                let tile = ((k * TILES as u64 + sub as u64) / self.group) as usize;
                counts[tile][t as usize] += 1;
            }
        }
        counts.map(|c| {
            let most = *c.iter().max().expect("six states");
            Tile::ALL[c.iter().position(|&n| n == most).expect("a maximum")]
        })
    }

    /// The title line: what the rows show and how to change it, cut to
    /// the screen's width.
    pub fn title(&self) -> String {
        let n = self.sections.len();
        let tile = size_text(self.group << SUBSECTION_SHIFT);
        let text = match self.view {
            View::All if self.group == 1 => format!(
                "Tessera mosaic: {n} sections, one a row, a tile is 2 MiB \
                 (mosaic N: from section N, mosaic off: hide)"
            ),
            View::All => format!(
                "Tessera mosaic: {n} sections, {} a row, a tile is {tile}: the state of most of it \
                 (mosaic N: one a row from section N)",
                self.group
            ),
            View::From(_) => format!(
                "Tessera mosaic: sections {}-{} ({} of {n}), one a row, a tile is 2 MiB \
                 (mosaic all: all)",
                self.rows[0],
                self.rows[self.rows.len() - 1],
                self.rows.len()
            ),
        };
        let fit = self.screen.width.saturating_sub(2 * MARGIN) / self.screen.char_w;
        text.chars().take(fit).collect()
    }

    /// The legend's entries, one per state.
    pub fn legend(&self) -> Vec<LegendItem> {
        legend(self.screen, MARGIN + self.screen.char_h)
    }

    /// The line between the panel and the log.
    pub fn separator(&self) -> Rect {
        Rect { x: 0, y: self.height - 2, w: self.screen.width, h: 1 }
    }

    /// The shell's answer: `mosaic: on: sections 0-15 (16), 16 rows of 1
    /// section, a tile 2 MiB; the log scrolls below` (with `from section
    /// N:` for [`View::From`]); [`parse_status`] reads it back.
    pub fn status(&self) -> String {
        let from = match self.view {
            View::From(nr) => format!(" from section {nr}:"),
            View::All => String::new(),
        };
        format!(
            "mosaic: on: sections {} ({}),{from} {} rows of {} section{}, a tile {}; the log scrolls below",
            format_sections(&self.sections),
            self.sections.len(),
            self.rows.len(),
            self.group,
            if self.group == 1 { "" } else { "s" },
            size_text(self.group << SUBSECTION_SHIFT)
        )
    }
}

/// The legend's entries from `y` down, flowing onto further lines when
/// the screen is narrow.
fn legend(screen: Screen, y: usize) -> Vec<LegendItem> {
    let Screen { width, char_w, char_h, .. } = screen;
    let tile_h = char_h.saturating_sub(4);
    let (mut x, mut y) = (MARGIN, y);
    let mut out = Vec::new();
    for tile in Tile::ALL {
        let w = (3 + tile.name().len()) * char_w;
        if x > MARGIN && x + w > width.saturating_sub(MARGIN) {
            (x, y) = (MARGIN, y + char_h);
        }
        let swatch = Rect { x, y: y + (char_h - tile_h) / 2, w: 2 * char_w, h: tile_h };
        out.push(LegendItem { tile, swatch, text: (x + 3 * char_w, y) });
        x += w + 2 * char_w;
    }
    out
}

//! The mosaic on the framebuffer: every section with memory as a row of
//! its 64 tiles, above the log, kept up to date as sub-sections come and
//! go. Which state a tile is in, where everything goes and the colours are
//! `tessera-mosaic`'s ([`::mosaic::Layout`], [`::mosaic::Memory`]); this
//! module gathers the memory model's state and draws.
//!
//! Shown when the shell starts (after `initialization complete`, so boot
//! takes no longer) and toggled by the shell's `mosaic`. The drivers call
//! [`changed`] (registered by `init`) after each sub-section a hotplug
//! operation adds or removes and at the end of every operation; only the
//! tiles whose state changed are drawn again.
//!
//! Locks, in this order: `MOSAIC`; then, one at a time and never while
//! drawing, `SPARSE` (a section's map and flags), `MEMBLOCK` and the
//! published PMEM regions; then the console's, for drawing only (nothing
//! is allocated or logged under it). [`changed`] is called with none of
//! the memory model's locks held (`MEM_HOTPLUG` and a driver's own may
//! be), so it may take them.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

use ::mosaic::{Layout, LayoutError, MARGIN, Memory, Screen, TILES, Tile, View, label};
use mm::e820::E820Type;
use mm::sparse::flags;
use shell::command::MosaicArg;
use spin::Mutex;

use crate::console::framebuffer::{self, CHAR_H, CHAR_W, Painter};
use crate::drivers::pmem;
use crate::mm::memblock::MEMBLOCK;
use crate::mm::sparse::SPARSE;

const TITLE: [u8; 3] = [0xe0, 0xe0, 0xe0];
const TEXT: [u8; 3] = [0xa0, 0xa0, 0xa0];
const FOCUS: [u8; 3] = [0xff, 0xff, 0xff];
const SEPARATOR: [u8; 3] = [0x60, 0x60, 0x60];

/// What is on the screen.
struct Shown {
    layout: Layout,
    memory: Memory,
    /// The tiles of every section of the rows shown, as last read: a
    /// change to one section reads only that one again, even when 2^k
    /// sections share its row.
    sections: BTreeMap<u64, [Tile; TILES]>,
    /// Each row's tiles as drawn.
    tiles: Vec<[Tile; TILES]>,
}

struct State {
    /// The view to show again after `mosaic off`, `mosaic`.
    view: View,
    shown: Option<Shown>,
}

static MOSAIC: Mutex<State> = Mutex::new(State { view: View::All, shown: None });
/// Whether the panel is shown: [`changed`] returns at once when it is not.
static VISIBLE: AtomicBool = AtomicBool::new(false);

/// Why `mosaic` changed nothing.
#[derive(Debug)]
pub enum Error {
    /// `console=` left the framebuffer out, or the machine has none.
    NoFramebuffer,
    Layout(LayoutError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoFramebuffer => write!(f, "no framebuffer console (console=ttyS0, or none)"),
            Self::Layout(e) => write!(f, "{e}"),
        }
    }
}

/// The ranges that decide the tiles, as the kernel knows them now.
fn memory() -> Memory {
    let ram = MEMBLOCK.lock().memory.regions().iter().map(|r| (r.base, r.end())).collect();
    let (firmware, claimed) = match crate::mm::firmware::maps() {
        Some(m) => (
            m.bios.iter().filter(|e| e.ty == E820Type::RAM).map(|e| (e.start, e.end)).collect(),
            m.user.map.iter().filter(|e| e.ty != E820Type::RAM).map(|e| (e.start, e.end)).collect(),
        ),
        None => (Vec::new(), Vec::new()),
    };
    let pmem = pmem::regions().iter().map(|r| (r.start, r.end())).collect();
    Memory::new(ram, firmware, claimed, pmem)
}

/// The sections with a row.
fn sections(memory: &Memory) -> Vec<u64> {
    // Room first, copies under the lock: nothing allocates under SPARSE.
    let n = SPARSE.lock().present_sections().count() + 16;
    let mut present = Vec::with_capacity(n);
    present.extend(SPARSE.lock().present_sections().map(|(nr, _)| nr).take(n));
    memory.sections(&present)
}

/// Section `nr`'s tiles now.
fn section_tiles(memory: &Memory, nr: u64) -> [Tile; TILES] {
    let line = SPARSE.lock().section_line(nr);
    memory.section_tiles(nr, line.subsection_map, line.flags & flags::ONLINE != 0)
}

/// Row `row`'s tiles from the sections' as last read.
fn row_tiles(
    layout: &Layout,
    sections: &BTreeMap<u64, [Tile; TILES]>,
    row: usize,
) -> [Tile; TILES] {
    layout.row_tiles(row, |nr| sections.get(&nr).copied().unwrap_or([Tile::Absent; TILES]))
}

/// Every section of the rows of `layout`, read now.
fn read_sections(layout: &Layout, memory: &Memory) -> BTreeMap<u64, [Tile; TILES]> {
    let all = layout.rows.iter().flat_map(|&first| first..first + layout.group);
    all.map(|nr| (nr, section_tiles(memory, nr))).collect()
}

/// The screen, if there is a framebuffer.
fn screen() -> Option<Screen> {
    let (width, height) = framebuffer::paint(|p| p.size())?;
    Some(Screen { width, height, char_w: CHAR_W, char_h: CHAR_H })
}

/// Lays out and reads the whole mosaic for `view`.
fn build(view: View) -> Result<Shown, Error> {
    let screen = screen().ok_or(Error::NoFramebuffer)?;
    let memory = memory();
    let layout = Layout::new(screen, &sections(&memory), view).map_err(Error::Layout)?;
    let sections = read_sections(&layout, &memory);
    let tiles = (0..layout.rows.len()).map(|r| row_tiles(&layout, &sections, r)).collect();
    Ok(Shown { layout, memory, sections, tiles })
}

/// Draws all of `s`: the log moves below the panel, then the panel.
fn draw(s: &Shown) {
    let l = &s.layout;
    // Text first: nothing is formatted under the console's lock.
    let title = l.title();
    let labels: Vec<String> = l.rows.iter().map(|&nr| label(nr)).collect();
    let legend = l.legend();
    framebuffer::paint(|p| {
        p.set_log_top(l.height);
        p.fill(0, 0, l.screen.width, l.height, [0; 3]);
        p.text(MARGIN, MARGIN, &title, TITLE);
        for item in &legend {
            let r = item.swatch;
            p.fill(r.x, r.y, r.w, r.h, item.tile.rgb());
            p.text(item.text.0, item.text.1, item.tile.name(), TEXT);
        }
        for (row, (tiles, label)) in s.tiles.iter().zip(&labels).enumerate() {
            let (x, y) = l.label_at(row);
            p.text(x, y, label, if l.focused(row) { FOCUS } else { TEXT });
            draw_row(p, l, row, tiles);
        }
        let r = l.separator();
        p.fill(r.x, r.y, r.w, r.h, SEPARATOR);
    });
}

fn draw_row(p: &mut Painter<'_>, l: &Layout, row: usize, tiles: &[Tile; TILES]) {
    let r = l.tile_rect(row, 0);
    p.tiles(r.x, r.y, l.pitch, l.tile_w, l.tile_h, &tiles.map(Tile::rgb));
}

/// Makes row `row` again from its sections' tiles and draws the tiles
/// that changed.
fn update_row(s: &mut Shown, row: usize) {
    let now = row_tiles(&s.layout, &s.sections, row);
    let before = &mut s.tiles[row];
    if now == *before {
        return;
    }
    let l = &s.layout;
    framebuffer::paint(|p| {
        for (i, (&b, &n)) in before.iter().zip(&now).enumerate() {
            if b != n {
                let r = l.tile_rect(row, i);
                p.fill(r.x, r.y, r.w, r.h, n.rgb());
            }
        }
    });
    *before = now;
}

/// Shows the mosaic for `view` (drawn whole); its status line.
fn show(st: &mut State, view: View) -> Result<String, Error> {
    let t0 = crate::arch::time::uptime_us();
    let s = build(view)?;
    let t1 = crate::arch::time::uptime_us();
    draw(&s);
    let t2 = crate::arch::time::uptime_us();
    log::debug!("mosaic: {} rows read in {} us, drawn in {} us", s.tiles.len(), t1 - t0, t2 - t1);
    let status = s.layout.status();
    st.view = view;
    st.shown = Some(s);
    VISIBLE.store(true, Ordering::Release);
    Ok(status)
}

fn hide(st: &mut State) -> String {
    if st.shown.take().is_some() {
        VISIBLE.store(false, Ordering::Release);
        // The log takes the whole screen again, its lines moved up.
        framebuffer::paint(|p| p.set_log_top(0));
    }
    String::from("mosaic: off")
}

/// Shows the mosaic as the shell starts, when there is a framebuffer.
pub fn start() {
    let mut st = MOSAIC.lock();
    if st.shown.is_none() {
        let _ = show(&mut st, View::All);
    }
}

/// The shell's `mosaic`: its answer, or why nothing changed.
pub fn command(arg: MosaicArg) -> Result<String, Error> {
    let mut st = MOSAIC.lock();
    let view = st.view;
    match arg {
        MosaicArg::Toggle if st.shown.is_some() => Ok(hide(&mut st)),
        MosaicArg::Off => Ok(hide(&mut st)),
        MosaicArg::Toggle | MosaicArg::On => show(&mut st, view),
        MosaicArg::All => show(&mut st, View::All),
        MosaicArg::From(nr) => show(&mut st, View::From(nr)),
    }
}

/// The drivers' change hook: section `nr` changed (its tiles are read
/// again), or with `None` anything may have (the rows too: the layout is
/// made again when the sections with a row changed).
pub fn changed(nr: Option<u64>) {
    if !VISIBLE.load(Ordering::Acquire) {
        return;
    }
    let mut st = MOSAIC.lock();
    let view = st.view;
    let Some(s) = st.shown.as_mut() else { return };
    match nr {
        Some(nr) => {
            if let Some(row) = s.layout.row_of(nr) {
                let tiles = section_tiles(&s.memory, nr);
                s.sections.insert(nr, tiles);
                update_row(s, row);
            }
        }
        None => {
            s.memory = memory();
            if sections(&s.memory) != s.layout.sections {
                // Rows came or went: lay out again (all of it if the view
                // no longer works) and draw everything.
                if let Ok(s) = build(view).or_else(|_| build(View::All)) {
                    draw(&s);
                    st.view = s.layout.view;
                    st.shown = Some(s);
                }
                return;
            }
            s.sections = read_sections(&s.layout, &s.memory);
            for row in 0..s.layout.rows.len() {
                update_row(s, row);
            }
        }
    }
}

//! A text console on the bootloader's framebuffer (BIOS VESA or UEFI GOP),
//! drawn with the Noto Sans Mono bitmap font. It shows the log on machines
//! without a serial port, and the panic message on real hardware.
//!
//! The log may leave the top of the screen to a panel (the mosaic): it
//! then scrolls in the rows below [`Painter::set_log_top`] only, and the
//! panel is drawn through [`paint`], under the same lock as the log.

use bootloader_api::info::{FrameBuffer, FrameBufferInfo, PixelFormat};
use core::fmt::{self, Write};
use log::Level;
use noto_sans_mono_bitmap::{FontWeight, RasterHeight, get_raster, get_raster_width};
use spin::Mutex;

const WEIGHT: FontWeight = FontWeight::Regular;
const HEIGHT: RasterHeight = RasterHeight::Size16;
/// The font's cell, in pixels.
pub const CHAR_W: usize = get_raster_width(WEIGHT, HEIGHT);
pub const CHAR_H: usize = HEIGHT.val();
const MARGIN: usize = 4;

struct Console {
    buf: &'static mut [u8],
    info: FrameBufferInfo,
    x: usize,
    y: usize,
    color: [u8; 3],
    /// The log's first pixel row: above it is the panel's.
    top: usize,
}

static CONSOLE: Mutex<Option<Console>> = Mutex::new(None);

/// Takes over the framebuffer and clears it.
pub fn init(fb: FrameBuffer) {
    let info = fb.info();
    let buf = fb.into_buffer();
    buf.fill(0);
    *CONSOLE.lock() = Some(Console { buf, info, x: MARGIN, y: MARGIN, color: [0xc0; 3], top: 0 });
}

/// Writes text in the colour for `level` (dropped without a framebuffer).
pub fn write_fmt(level: Level, args: fmt::Arguments<'_>) {
    x86_64::instructions::interrupts::without_interrupts(|| {
        if let Some(c) = CONSOLE.lock().as_mut() {
            c.color = match level {
                Level::Error => [0xff, 0x50, 0x50],
                Level::Warn => [0xff, 0xd0, 0x40],
                Level::Info => [0xc8, 0xc8, 0xc8],
                Level::Debug | Level::Trace => [0x80, 0x80, 0x80],
            };
            let _ = c.write_fmt(args);
        }
    });
}

/// Releases the console lock whoever holds it (the panic path).
///
/// # Safety
/// The caller must ensure the interrupted lock holder never runs again.
pub unsafe fn force_unlock() {
    // SAFETY: per this function's contract there is no other writer.
    unsafe { CONSOLE.force_unlock() };
}

impl Console {
    /// Bytes of one pixel row.
    fn line(&self) -> usize {
        self.info.stride * self.info.bytes_per_pixel
    }

    fn newline(&mut self) {
        self.x = MARGIN;
        self.y += CHAR_H;
        if self.y + CHAR_H + MARGIN > self.info.height {
            // Jump scroll: a quarter of the log area at a time, so a burst
            // of log lines moves it once per quarter instead of once per
            // line. Only the log's rows move, never a panel above them.
            let rows = (self.y - self.top - MARGIN) / CHAR_H;
            let jump = (rows / 4).max(1) * CHAR_H;
            let line = self.line();
            let (top, shift, end) = (self.top * line, jump * line, self.info.height * line);
            self.buf.copy_within(top + shift..end, top);
            self.buf[end - shift..end].fill(0);
            // The margin above the first line: it received the bottom rows
            // of the line scrolled away.
            self.buf[top..top + MARGIN * line].fill(0);
            self.y -= jump;
        }
    }

    /// Moves the log's top to pixel row `top`, keeping as many of its last
    /// lines (the cursor's included) as fit below, and clears the rest of
    /// the log area. The rows above `top` are left to the caller.
    fn set_top(&mut self, top: usize) {
        let height = self.info.height;
        let top = top.min(height.saturating_sub(2 * MARGIN + CHAR_H));
        if top == self.top {
            return;
        }
        let line = self.line();
        let (first, end) = (self.top + MARGIN, self.y + CHAR_H);
        let room = (height - MARGIN - (top + MARGIN)) / CHAR_H * CHAR_H;
        let keep = (end - first).min(room);
        let dst = top + MARGIN;
        self.buf.copy_within((end - keep) * line..end * line, dst * line);
        self.buf[top * line..dst * line].fill(0);
        self.buf[(dst + keep) * line..height * line].fill(0);
        self.y = dst + keep - CHAR_H;
        self.top = top;
    }

    /// The bytes of one pixel of colour `rgb`.
    fn rgb_pixel(&self, [r, g, b]: [u8; 3]) -> [u8; 4] {
        match self.info.pixel_format {
            PixelFormat::Rgb => [r, g, b, 0],
            PixelFormat::Bgr => [b, g, r, 0],
            PixelFormat::U8 => {
                [if r as u16 + g as u16 + b as u16 > 384 { 0xff } else { 0 }, 0, 0, 0]
            }
            _ => [g, g, g, 0],
        }
    }

    /// Fills `rows` pixel rows from `y` with the pixel row `pixels`
    /// (`bytes_per_pixel` bytes each) starting at column `x`, clipped to
    /// the screen: one copy per row.
    fn blit_rows(&mut self, x: usize, y: usize, rows: usize, pixels: &[u8]) {
        let bpp = self.info.bytes_per_pixel;
        let fit = self.info.width.saturating_sub(x) * bpp;
        let pixels = &pixels[..pixels.len().min(fit)];
        for yy in y..(y + rows).min(self.info.height) {
            let off = (yy * self.info.stride + x) * bpp;
            if let Some(dst) = self.buf.get_mut(off..off + pixels.len()) {
                dst.copy_from_slice(pixels);
            }
        }
    }

    /// The bytes of one pixel of the current colour at `intensity`.
    fn pixel(&self, intensity: u8) -> [u8; 4] {
        let scale = |c: u8| ((c as u16 * intensity as u16) / 255) as u8;
        let [r, g, b] = self.color.map(scale);
        match self.info.pixel_format {
            PixelFormat::Rgb => [r, g, b, 0],
            PixelFormat::Bgr => [b, g, r, 0],
            PixelFormat::U8 => [if intensity > 128 { 0xff } else { 0 }, 0, 0, 0],
            _ => [intensity, intensity, intensity, 0],
        }
    }

    /// Draws a glyph at the cursor. Each row is built in a local buffer and
    /// written with one copy: framebuffer stores are the expensive part.
    fn draw(&mut self, rows: &[[u8; CHAR_W]]) {
        self.draw_at(self.x, self.y, rows);
    }

    /// Draws a glyph with its top left at (`x`, `y`), in the current colour.
    fn draw_at(&mut self, x: usize, y: usize, rows: &[[u8; CHAR_W]]) {
        let bpp = self.info.bytes_per_pixel.min(4);
        if x + CHAR_W > self.info.width {
            return;
        }
        let mut line = [0u8; CHAR_W * 4];
        let line = &mut line[..CHAR_W * bpp];
        for (dy, row) in rows.iter().enumerate() {
            for (dst, &v) in line.chunks_exact_mut(bpp).zip(row) {
                dst.copy_from_slice(&self.pixel(v)[..bpp]);
            }
            let off = ((y + dy) * self.info.stride + x) * self.info.bytes_per_pixel;
            if let Some(dst) = self.buf.get_mut(off..off + line.len()) {
                dst.copy_from_slice(line);
            }
        }
    }

    /// The glyph of `c` (`?` for a character the font lacks).
    fn glyph(c: char) -> [[u8; CHAR_W]; CHAR_H] {
        let glyph = get_raster(c, WEIGHT, HEIGHT)
            .or_else(|| get_raster('?', WEIGHT, HEIGHT))
            .expect("the font has '?'");
        let mut rows = [[0u8; CHAR_W]; CHAR_H];
        for (dst, row) in rows.iter_mut().zip(glyph.rows()) {
            dst.iter_mut().zip(row).for_each(|(d, &v)| *d = v);
        }
        rows
    }

    fn put_char(&mut self, c: char) {
        match c {
            '\n' => self.newline(),
            '\r' => self.x = MARGIN,
            // Backspace moves back one cell (the shell erases with "\x08 \x08").
            '\x08' => self.x = self.x.saturating_sub(CHAR_W).max(MARGIN),
            // Bell and other control characters draw nothing.
            c if c.is_control() => {}
            c => {
                if self.x + CHAR_W + MARGIN > self.info.width {
                    self.newline();
                }
                self.draw(&Self::glyph(c));
                self.x += CHAR_W;
            }
        }
    }
}

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        s.chars().for_each(|c| self.put_char(c));
        Ok(())
    }
}

/// Draws outside the log, under the console's lock (see [`paint`]).
pub struct Painter<'a> {
    c: &'a mut Console,
}

/// The widest pixel row [`Painter`] builds at once, in pixels (on the
/// stack: 8 KiB).
const MAX_ROW: usize = 2048;

impl Painter<'_> {
    /// The screen's width and height in pixels.
    pub fn size(&self) -> (usize, usize) {
        (self.c.info.width, self.c.info.height)
    }

    /// Gives the log the rows from `top` down (0: the whole screen): its
    /// last lines, the cursor's included, move to the top of that area as
    /// far as they fit, and the rest of the area is cleared.
    pub fn set_log_top(&mut self, top: usize) {
        self.c.set_top(top);
    }

    /// Fills a `w` x `h` rectangle at (`x`, `y`) with `rgb`.
    pub fn fill(&mut self, x: usize, y: usize, w: usize, h: usize, rgb: [u8; 3]) {
        for at in (0..w).step_by(MAX_ROW) {
            let part = (w - at).min(MAX_ROW);
            self.tiles(x + at, y, part + 1, part, h, &[rgb]);
        }
    }

    /// A row of tiles: tile i, `w` x `h` pixels of `colors[i]`, at
    /// (`x + i * pitch`, `y`); the pixels between them are left black.
    /// The row's pixels are built once and copied `h` times.
    pub fn tiles(
        &mut self,
        x: usize,
        y: usize,
        pitch: usize,
        w: usize,
        h: usize,
        colors: &[[u8; 3]],
    ) {
        let bpp = self.c.info.bytes_per_pixel.min(4);
        if bpp == 0 || w == 0 {
            return;
        }
        let mut row = [0u8; MAX_ROW * 4];
        let span = (colors.len().saturating_sub(1) * pitch + w).min(MAX_ROW);
        for (i, &rgb) in colors.iter().enumerate() {
            let px = self.c.rgb_pixel(rgb);
            for p in (i * pitch..i * pitch + w).take_while(|&p| p < span) {
                row[p * bpp..(p + 1) * bpp].copy_from_slice(&px[..bpp]);
            }
        }
        if colors.len() > 1 {
            // Gaps: the background.
            for i in 0..colors.len() - 1 {
                for p in (i * pitch + w..(i + 1) * pitch).take_while(|&p| p < span) {
                    row[p * bpp..(p + 1) * bpp].fill(0);
                }
            }
        }
        self.c.blit_rows(x, y, h, &row[..span * bpp]);
    }

    /// Draws `text` from (`x`, `y`) in `rgb` on black, cut at the right
    /// edge; the log's cursor and colour are unchanged.
    pub fn text(&mut self, x: usize, y: usize, text: &str, rgb: [u8; 3]) {
        let color = core::mem::replace(&mut self.c.color, rgb);
        for (i, ch) in text.chars().enumerate() {
            self.c.draw_at(x + i * CHAR_W, y, &Console::glyph(ch));
        }
        self.c.color = color;
    }
}

/// Runs `f` with a [`Painter`] under the console's lock, interrupts off;
/// `None` without a framebuffer. `f` must not log: the log takes the same
/// lock.
pub fn paint<T>(f: impl FnOnce(&mut Painter<'_>) -> T) -> Option<T> {
    x86_64::instructions::interrupts::without_interrupts(|| {
        CONSOLE.lock().as_mut().map(|c| f(&mut Painter { c }))
    })
}

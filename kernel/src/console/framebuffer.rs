//! A text console on the bootloader's framebuffer (BIOS VESA or UEFI GOP),
//! drawn with the Noto Sans Mono bitmap font. It shows the log on machines
//! without a serial port, and the panic message on real hardware.

use bootloader_api::info::{FrameBuffer, FrameBufferInfo, PixelFormat};
use core::fmt::{self, Write};
use log::Level;
use noto_sans_mono_bitmap::{FontWeight, RasterHeight, get_raster, get_raster_width};
use spin::Mutex;

const WEIGHT: FontWeight = FontWeight::Regular;
const HEIGHT: RasterHeight = RasterHeight::Size16;
const CHAR_W: usize = get_raster_width(WEIGHT, HEIGHT);
const CHAR_H: usize = HEIGHT.val();
const MARGIN: usize = 4;

struct Console {
    buf: &'static mut [u8],
    info: FrameBufferInfo,
    x: usize,
    y: usize,
    color: [u8; 3],
}

static CONSOLE: Mutex<Option<Console>> = Mutex::new(None);

/// Takes over the framebuffer and clears it.
pub fn init(fb: FrameBuffer) {
    let info = fb.info();
    let buf = fb.into_buffer();
    buf.fill(0);
    *CONSOLE.lock() = Some(Console { buf, info, x: MARGIN, y: MARGIN, color: [0xc0; 3] });
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
    fn newline(&mut self) {
        self.x = MARGIN;
        self.y += CHAR_H;
        if self.y + CHAR_H + MARGIN > self.info.height {
            // Jump scroll: a quarter of the screen at a time, so a burst of
            // log lines moves the whole framebuffer once per quarter screen
            // instead of once per line.
            let rows = (self.y - MARGIN) / CHAR_H;
            let jump = (rows / 4).max(1) * CHAR_H;
            let line = self.info.stride * self.info.bytes_per_pixel;
            let (shift, end) = (jump * line, self.info.height * line);
            self.buf.copy_within(shift..end, 0);
            self.buf[end - shift..end].fill(0);
            self.y -= jump;
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
        let bpp = self.info.bytes_per_pixel.min(4);
        let mut line = [0u8; CHAR_W * 4];
        let line = &mut line[..CHAR_W * bpp];
        for (dy, row) in rows.iter().enumerate() {
            for (dst, &v) in line.chunks_exact_mut(bpp).zip(row) {
                dst.copy_from_slice(&self.pixel(v)[..bpp]);
            }
            let off = ((self.y + dy) * self.info.stride + self.x) * self.info.bytes_per_pixel;
            if let Some(dst) = self.buf.get_mut(off..off + line.len()) {
                dst.copy_from_slice(line);
            }
        }
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
                let glyph = get_raster(c, WEIGHT, HEIGHT)
                    .or_else(|| get_raster('?', WEIGHT, HEIGHT))
                    .expect("the font has '?'");
                let mut rows = [[0u8; CHAR_W]; CHAR_H];
                for (dst, row) in rows.iter_mut().zip(glyph.rows()) {
                    dst.iter_mut().zip(row).for_each(|(d, &v)| *d = v);
                }
                self.draw(&rows);
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

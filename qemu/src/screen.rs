//! Reading back the framebuffer: QEMU's `screendump` (PPM) parsed, and a
//! search for text drawn with the kernel console's font, so a test can tell
//! that the log really reached the screen.

use noto_sans_mono_bitmap::{FontWeight, RasterHeight, get_raster, get_raster_width};

const WEIGHT: FontWeight = FontWeight::Regular;
const HEIGHT: RasterHeight = RasterHeight::Size16;
/// The console font's cell, in pixels (the kernel's `framebuffer::CHAR_W`
/// and `CHAR_H`).
pub const CHAR_W: usize = get_raster_width(WEIGHT, HEIGHT);
pub const CHAR_H: usize = HEIGHT.val();

/// An RGB image.
pub struct Image {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
}

impl Image {
    /// Whether the pixel is lit (text, not the black background).
    fn lit(&self, x: usize, y: usize) -> bool {
        self.pixel(x, y).iter().map(|&c| u32::from(c)).sum::<u32>() > 3 * 64
    }

    /// The pixel's colour (red, green, blue); black outside the image.
    pub fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        if x >= self.width || y >= self.height {
            return [0; 3];
        }
        let i = (y * self.width + x) * 3;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }
}

/// Parses a binary PPM (`P6`, maxval 255), as QEMU's `screendump` writes.
pub fn parse_ppm(bytes: &[u8]) -> Result<Image, String> {
    let mut fields = Vec::new();
    let mut at = 0;
    while fields.len() < 4 {
        while at < bytes.len() && bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        if bytes.get(at) == Some(&b'#') {
            while at < bytes.len() && bytes[at] != b'\n' {
                at += 1;
            }
            continue;
        }
        let start = at;
        while at < bytes.len() && !bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        if start == at {
            return Err("PPM header truncated".into());
        }
        fields.push(String::from_utf8_lossy(&bytes[start..at]).into_owned());
    }
    let num = |i: usize| {
        fields[i].parse::<usize>().map_err(|_| format!("PPM: bad field '{}'", fields[i]))
    };
    if fields[0] != "P6" || num(3)? != 255 {
        return Err(format!("not a P6 PPM with maxval 255: {} {}", fields[0], fields[3]));
    }
    let (width, height) = (num(1)?, num(2)?);
    let rgb = bytes.get(at + 1..at + 1 + width * height * 3).ok_or("PPM pixels truncated")?;
    Ok(Image { width, height, rgb: rgb.to_vec() })
}

/// The font's bitmap of `text` (lit where the glyph's intensity is high).
fn render(text: &str) -> (usize, Vec<Vec<bool>>) {
    let w = get_raster_width(WEIGHT, HEIGHT);
    let mut rows = vec![vec![false; w * text.len()]; HEIGHT.val()];
    for (i, c) in text.chars().enumerate() {
        let glyph = get_raster(c, WEIGHT, HEIGHT).expect("basic Latin");
        for (y, row) in glyph.rows().enumerate() {
            for (x, &v) in row.iter().enumerate() {
                rows[y][i * w + x] = v > 128;
            }
        }
    }
    (w * text.len(), rows)
}

/// Whether the rendered text `(w, rows)` is drawn with its top left at
/// (`x`, `y`): every lit glyph pixel lit on screen, and the gaps mostly
/// dark.
fn drawn_at(img: &Image, x: usize, y: usize, (w, rows): &(usize, Vec<Vec<bool>>)) -> bool {
    let h = rows.len();
    let all_lit = (0..h)
        .flat_map(|gy| (0..*w).map(move |gx| (gx, gy)))
        .filter(|&(gx, gy)| rows[gy][gx])
        .all(|(gx, gy)| img.lit(x + gx, y + gy));
    let dark = (0..h)
        .flat_map(|gy| (0..*w).map(move |gx| (gx, gy)))
        .filter(|&(gx, gy)| !rows[gy][gx] && img.lit(x + gx, y + gy))
        .count();
    all_lit && dark * 10 < w * h
}

/// Whether `text` is drawn in the console font with its top left at
/// (`x`, `y`).
pub fn text_at(img: &Image, x: usize, y: usize, text: &str) -> bool {
    drawn_at(img, x, y, &render(text))
}

/// Where `text` appears on the screen (top-left pixel), if anywhere.
pub fn find_text(img: &Image, text: &str) -> Option<(usize, usize)> {
    let rendered = render(text);
    let (w, rows) = &rendered;
    let h = rows.len();
    let (fx, fy) = (0..h).flat_map(|y| (0..*w).map(move |x| (x, y))).find(|&(x, y)| rows[y][x])?;
    for y in 0..img.height.saturating_sub(h) {
        for x in 0..img.width.saturating_sub(*w) {
            if img.lit(x + fx, y + fy) && drawn_at(img, x, y, &rendered) {
                return Some((x, y));
            }
        }
    }
    None
}

#[cfg(test)]
pub mod tests {
    use super::*;

    pub fn draw(text: &str, at: (usize, usize), size: (usize, usize)) -> Image {
        let (w, rows) = render(text);
        let mut rgb = vec![0u8; size.0 * size.1 * 3];
        for (y, row) in rows.iter().enumerate() {
            for x in (0..w).filter(|&x| row[x]) {
                let i = ((at.1 + y) * size.0 + at.0 + x) * 3;
                rgb[i..i + 3].copy_from_slice(&[0xc8, 0xc8, 0xc8]);
            }
        }
        Image { width: size.0, height: size.1, rgb }
    }

    #[test]
    fn finds_drawn_text_and_only_that() {
        let img = draw("tessera> ", (37, 51), (320, 120));
        assert_eq!(find_text(&img, "tessera>"), Some((37, 51)));
        assert!(text_at(&img, 37, 51, "tessera>") && !text_at(&img, 38, 51, "tessera>"));
        assert_eq!(find_text(&img, "kernel"), None);
        let blank = Image { width: 100, height: 40, rgb: vec![0; 100 * 40 * 3] };
        assert_eq!(find_text(&blank, "tessera>"), None);
    }

    #[test]
    fn parses_ppm_and_refuses_others() {
        let mut ppm = b"P6\n# qemu\n2 1\n255\n".to_vec();
        ppm.extend([1, 2, 3, 4, 5, 6]);
        let img = parse_ppm(&ppm).unwrap();
        assert_eq!((img.width, img.height, img.rgb.len()), (2, 1, 6));
        assert!(parse_ppm(b"P3\n2 1\n255\n1 2 3").is_err());
        assert!(parse_ppm(b"P6\n2 1\n255\n\x01").is_err());
        assert!(parse_ppm(b"P6\n").is_err());
    }
}

//! The mosaic read back from a `screendump`: where a section's tiles are
//! comes from `tessera-mosaic`'s [`Layout`] (the kernel draws with the
//! same one), built for the screen's size and for the sections and view
//! the shell's last `mosaic: on: ...` line names; each tile must be the
//! colour of its expected state in every pixel, and the row's label must
//! be drawn in front of it.

use ::mosaic::{Layout, Screen, TILES, Tile, label, parse_status};

use crate::screen::{self, CHAR_H, CHAR_W, Image};

/// What a golden-script `@ mosaic N STATES` line expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    pub section: u64,
    pub tiles: [Tile; TILES],
}

impl Expect {
    /// Reads `N STATES`: a section number, then 64 of [`Tile::letter`]'s
    /// letters (`R` RAM online, `o` RAM offline or withheld, `P` PMEM
    /// added, `p` PMEM not added, `h` hole, `.` absent).
    pub fn parse(args: &str) -> Result<Expect, String> {
        let bad = || format!("'@ mosaic {args}': expected a section number and {TILES} of RoPph.");
        let (nr, states) = args.split_once(' ').ok_or_else(bad)?;
        let section = nr.parse().map_err(|_| bad())?;
        let tiles: Vec<Tile> =
            states.chars().map(Tile::from_letter).collect::<Option<_>>().ok_or_else(bad)?;
        Ok(Expect { section, tiles: tiles.try_into().map_err(|_| bad())? })
    }

    /// Checks `img` against this, with `status` the shell's last line about
    /// the mosaic; what differs, if anything.
    pub fn check(&self, img: &Image, status: &str) -> Result<(), String> {
        let (sections, view) = parse_status(status)
            .ok_or_else(|| format!("the mosaic is not on (last said: {status:?})"))?;
        let screen =
            Screen { width: img.width, height: img.height, char_w: CHAR_W, char_h: CHAR_H };
        let layout = Layout::new(screen, &sections, view).map_err(|e| e.to_string())?;
        if layout.group != 1 {
            return Err(format!(
                "{} sections a row: a section's own tiles are not shown",
                layout.group
            ));
        }
        let nr = self.section;
        let row = layout.row_of(nr).ok_or_else(|| format!("section {nr} has no row"))?;
        let mut wrong = Vec::new();
        for (i, want) in self.tiles.iter().enumerate() {
            let r = layout.tile_rect(row, i);
            let pixels = (r.y..r.y + r.h).flat_map(|y| (r.x..r.x + r.w).map(move |x| (x, y)));
            let off: Vec<[u8; 3]> =
                pixels.map(|(x, y)| img.pixel(x, y)).filter(|&p| p != want.rgb()).collect();
            if let Some(seen) = off.first() {
                let what = Tile::ALL.iter().find(|t| t.rgb() == *seen);
                wrong.push(format!(
                    "tile {i} ({} px at {},{}): want {} {:?}, {} px are {seen:?} ({})",
                    r.w * r.h,
                    r.x,
                    r.y,
                    want.name(),
                    want.rgb(),
                    off.len(),
                    what.map_or("no state's colour", |t| t.name())
                ));
            }
        }
        let (x, y) = layout.label_at(row);
        if !screen::text_at(img, x, y, &label(nr)) {
            wrong.push(format!("no label {:?} at {x},{y}", label(nr)));
        }
        if wrong.is_empty() { Ok(()) } else { Err(wrong.join("\n  ")) }
    }
}

/// The shell's last line in `answers` (latest last) that turned the
/// mosaic on or off; refusals (`mosaic: bad argument ...`) changed nothing.
pub fn last_status<'a>(answers: &[&'a str]) -> Option<&'a str> {
    let said = |l: &&str| l.starts_with("mosaic: on: ") || l.trim_end() == "mosaic: off";
    answers.iter().rev().find_map(|a| a.lines().rev().find(said))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A screen with the mosaic of `sections` drawn as the kernel draws
    /// it: labels and tiles where the layout says.
    fn drawn(sections: &[u64], tiles: impl Fn(u64) -> [Tile; TILES]) -> (Image, String) {
        let screen = Screen { width: 1280, height: 720, char_w: CHAR_W, char_h: CHAR_H };
        let l = Layout::new(screen, sections, ::mosaic::View::All).unwrap();
        let mut img = Image { width: 1280, height: 720, rgb: vec![0; 1280 * 720 * 3] };
        for (row, &nr) in l.rows.iter().enumerate() {
            let (x, y) = l.label_at(row);
            let text = screen::tests::draw(&label(nr), (x, y), (1280, 720));
            for (d, s) in img.rgb.iter_mut().zip(&text.rgb) {
                *d |= s;
            }
            for (i, t) in tiles(nr).iter().enumerate() {
                let r = l.tile_rect(row, i);
                for y in r.y..r.y + r.h {
                    for x in r.x..r.x + r.w {
                        let at = (y * 1280 + x) * 3;
                        img.rgb[at..at + 3].copy_from_slice(&t.rgb());
                    }
                }
            }
        }
        (img, l.status())
    }

    fn section_14(middle: char) -> String {
        format!("14 {}{}{}", "R".repeat(16), middle.to_string().repeat(16), "R".repeat(32))
    }

    #[test]
    fn finds_a_sections_tiles_and_tells_a_wrong_one() {
        let sections: Vec<u64> = (0..16).collect();
        let state = |nr: u64| {
            let mut t = [Tile::RamOnline; TILES];
            if nr == 14 {
                t[16..32].fill(Tile::PmemNotAdded);
            }
            t
        };
        let (img, status) = drawn(&sections, state);
        assert_eq!(Expect::parse(&section_14('p')).unwrap().check(&img, &status), Ok(()));
        let err = Expect::parse(&section_14('P')).unwrap().check(&img, &status).unwrap_err();
        assert_eq!(err.lines().count(), 16, "{err}");
        assert!(err.contains("tile 16 (180 px at 414,266): want PMEM added"), "{err}");
        assert!(err.contains("are [90, 42, 110] (PMEM not added)"), "{err}");
        // Another section's row, or the label missing, is noticed too.
        let e = Expect::parse(&section_14('p').replacen("14", "13", 1)).unwrap();
        assert!(e.check(&img, &status).is_err());
        let (blank, _) = drawn(&[99], |_| [Tile::Absent; TILES]);
        let err = Expect::parse(&section_14('p')).unwrap().check(&blank, &status).unwrap_err();
        assert!(err.contains("no label \"    14 0x000070000000\""), "{err}");
        assert!(Expect::parse(&section_14('p')).unwrap().check(&img, "mosaic: off").is_err());
    }

    #[test]
    fn directives_parse() {
        assert_eq!(Expect::parse(&section_14('P')).unwrap().tiles[16], Tile::PmemAdded);
        for bad in ["14", "x RRR", "14 RRRR", &section_14('X'), &format!("{}R", section_14('p'))] {
            assert!(Expect::parse(bad).is_err(), "{bad}");
        }
        let answers =
            ["mosaic: on: sections 0-15 (16), ...\nmore", "mosaic: bad argument 'x'", "x"];
        assert_eq!(last_status(&answers), Some("mosaic: on: sections 0-15 (16), ..."));
        assert_eq!(last_status(&["mosaic: on: a", "mosaic: off"]), Some("mosaic: off"));
        assert_eq!(last_status(&["nothing"]), None);
    }
}

use super::*;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

fn picture(tiles: &[Tile]) -> String {
    tiles.iter().map(|t| t.letter()).collect()
}

/// The default QEMU machine (2 GiB, SeaBIOS) with the emulated region0 at
/// 0x72000000-0x73ffffff, as the kernel sees it.
fn default_machine() -> Memory {
    let pmem = (0x7200_0000, 0x7400_0000);
    Memory::new(
        vec![(0x1000, 0x9f000), (0x10_0000, pmem.0), (pmem.1, 0x7ffe_0000)],
        vec![(0, 0x9fc00), (0x10_0000, 0x7ffe_0000)],
        vec![pmem],
        vec![pmem],
    )
}

#[test]
fn states_have_distinct_colours_letters_and_names() {
    for (i, a) in Tile::ALL.iter().enumerate() {
        assert_eq!(Tile::from_letter(a.letter()), Some(*a));
        for b in &Tile::ALL[i + 1..] {
            assert_ne!(a.rgb(), b.rgb(), "{a:?} and {b:?}");
            assert_ne!(a.letter(), b.letter());
            assert_ne!(a.name(), b.name());
        }
        // Visible on the console's black, and not mistaken for it.
        assert!(a.rgb().iter().map(|&c| u32::from(c)).sum::<u32>() >= 0x90, "{a:?}");
    }
    assert_eq!(Tile::from_letter('x'), None);
}

#[test]
fn section_14_of_the_default_machine_before_and_after_a_remove() {
    let m = default_machine();
    let before = m.section_tiles(14, u64::MAX, true);
    assert_eq!(picture(&before), format!("{}{}{}", "R".repeat(16), "P".repeat(16), "R".repeat(32)));
    let after = m.section_tiles(14, 0xffff_ffff_0000_ffff, true);
    assert_eq!(picture(&after), format!("{}{}{}", "R".repeat(16), "p".repeat(16), "R".repeat(32)));
    // Mid-add (`pmem add --step`): one sub-section back.
    let one = m.section_tiles(14, 0xffff_ffff_0001_ffff, true);
    assert_eq!(&picture(&one)[15..18], "RPp");
}

#[test]
fn holes_absent_offline_and_withheld() {
    let m = default_machine();
    // Section 0: the first 2 MiB is not all RAM (page 0, 640 KiB - 1 MiB).
    assert_eq!(picture(&m.section_tiles(0, u64::MAX, true))[..2], *"hR");
    // Section 15: RAM ends at 0x7ffe0000, inside the last sub-section.
    assert!(picture(&m.section_tiles(15, u64::MAX, true)).ends_with("RRh"));
    // An offline section's RAM.
    assert_eq!(picture(&m.section_tiles(3, u64::MAX, false)), "o".repeat(64));
    // Nothing there.
    assert_eq!(picture(&m.section_tiles(99, 0, false)), ".".repeat(64));
    // 4 GiB, mem=3G: the firmware's RAM above 3 GiB is withheld, and
    // gets rows even where no section is present.
    let fw = vec![(0x10_0000, 0xc000_0000), (0x1_0000_0000, 0x1_4000_0000)];
    let m = Memory::new(vec![(0x10_0000, 0xc000_0000)], fw, vec![], vec![]);
    assert_eq!(m.withheld, [(0x1_0000_0000, 0x1_4000_0000)]);
    assert_eq!(picture(&m.section_tiles(32, 0, false)), "o".repeat(64));
    // Active but not in memblock: not RAM the kernel has.
    assert_eq!(picture(&m.section_tiles(32, u64::MAX, true)), "h".repeat(64));
    // Probed (memblock has it; active, not online), then onlined.
    let fw = vec![(0x10_0000, 0xc000_0000), (0x1_0000_0000, 0x1_4000_0000)];
    let probed = vec![(0x10_0000, 0xc000_0000), (0x1_0000_0000, 0x1_0800_0000)];
    let p = Memory::new(probed, fw, vec![], vec![]);
    assert_eq!(p.withheld, [(0x1_0800_0000, 0x1_4000_0000)]);
    assert_eq!(picture(&p.section_tiles(32, u64::MAX, false)), "o".repeat(64));
    assert_eq!(picture(&p.section_tiles(32, u64::MAX, true)), "R".repeat(64));
    let present: Vec<u64> = (0..24).collect();
    let rows = m.sections(&present);
    assert_eq!(rows, (0..24).chain(32..40).collect::<Vec<u64>>());
}

#[test]
fn persistent_memory_not_added_gets_rows() {
    // A 64 GiB NVDIMM at 256 GiB, not added, beside 2 GiB of RAM.
    let nv = (256 << 30, 320 << 30);
    let m = Memory::new(
        vec![(0x10_0000, 0x8000_0000)],
        vec![(0x10_0000, 0x8000_0000)],
        vec![],
        vec![nv],
    );
    let rows = m.sections(&(0..16).collect::<Vec<u64>>());
    assert_eq!(rows.len(), 16 + 512);
    assert_eq!(rows[16], 2048);
    assert_eq!(*rows.last().unwrap(), 2559);
    assert_eq!(picture(&m.section_tiles(2048, 0, false)), "p".repeat(64));
    assert_eq!(picture(&m.section_tiles(2048, 1, false))[..2], *"Pp");
}

/// Withheld RAM against a naive model: an address is withheld when it is
/// firmware RAM and in none of the other lists.
#[test]
fn withheld_is_firmware_ram_minus_the_rest() {
    let mut rng = rng::Rng::new(7);
    for _ in 0..500 {
        let mut list = |n: u64| -> Vec<(u64, u64)> {
            (0..rng.below(n))
                .map(|_| {
                    let s = rng.below(64);
                    (s, s + rng.below(16))
                })
                .collect()
        };
        let (ram, fw, claimed, pmem) = (list(4), list(5), list(3), list(3));
        let m = Memory::new(ram.clone(), fw.clone(), claimed.clone(), pmem.clone());
        let inside = |l: &[(u64, u64)], a: u64| l.iter().any(|&(s, e)| s <= a && a < e);
        for a in 0..90 {
            let want =
                inside(&fw, a) && !inside(&ram, a) && !inside(&claimed, a) && !inside(&pmem, a);
            assert_eq!(
                inside(&m.withheld, a),
                want,
                "{a} in {fw:?} - {ram:?} {claimed:?} {pmem:?}"
            );
        }
        for l in [&m.ram, &m.withheld, &m.pmem] {
            assert!(l.windows(2).all(|w| w[0].1 < w[1].0), "sorted, disjoint, merged: {l:?}");
        }
    }
}

const SCREEN: Screen = Screen { width: 1280, height: 720, char_w: 7, char_h: 16 };

#[test]
fn sixteen_sections_one_a_row() {
    let sections: Vec<u64> = (0..16).collect();
    let l = Layout::new(SCREEN, &sections, View::All).unwrap();
    assert_eq!((l.group, l.rows.len()), (1, 16));
    assert!(l.height <= SCREEN.height / 2, "the log keeps half the screen");
    assert_eq!(l.legend_lines, 1);
    let (row, tile) = l.tile_of(14, 16).unwrap();
    assert_eq!((row, tile), (14, 16));
    let r = l.tile_rect(row, tile);
    let first = l.tile_rect(row, 0);
    assert_eq!(r.x, first.x + 16 * l.pitch);
    assert_eq!((l.pitch, r.w, r.h), (16, 15, 12));
    // The tiles lie right of the label and inside the screen and the panel.
    let last = l.tile_rect(15, 63);
    assert!(first.x >= MARGIN + LABEL_CHARS * SCREEN.char_w);
    assert!(last.x + last.w <= SCREEN.width - MARGIN);
    assert!(last.y + last.h < l.separator().y);
    assert!(l.legend().iter().all(|i| i.swatch.y + i.swatch.h <= l.rows_y));
    assert_eq!(label(14), "    14 0x000070000000");
    assert_eq!(label(14).len(), LABEL_CHARS);
    assert_eq!(l.label_at(14), (MARGIN, l.tile_rect(14, 0).y - 2));
    assert!(l.title().starts_with("Tessera mosaic: 16 sections, one a row"));
}

#[test]
fn many_sections_share_rows() {
    let sections: Vec<u64> = (0..16).chain(2048..2560).collect();
    let l = Layout::new(SCREEN, &sections, View::All).unwrap();
    assert_eq!(l.group, 32);
    assert_eq!(l.rows, [0].into_iter().chain((2048..2560).step_by(32)).collect::<Vec<u64>>());
    assert_eq!(l.tile_of(2048, 0), Some((1, 0)));
    assert_eq!(l.tile_of(2048, 63), Some((1, 1)));
    assert_eq!(l.tile_of(2559, 63), Some((16, 63)));
    assert_eq!(l.tile_of(15, 32), Some((0, 31)));
    assert_eq!(l.tile_of(100, 0), None);
    assert!(l.status().contains("17 rows of 32 sections, a tile 64 MiB"));
    // A tile is two 64 MiB halves of a section: what most of it is.
    let tiles = l.row_tiles(1, |nr| {
        let mut t = [Tile::PmemNotAdded; TILES];
        if nr == 2048 {
            t[..20].fill(Tile::PmemAdded);
        }
        t
    });
    assert_eq!(picture(&tiles[..3]), "Ppp");
    // Ties go to the state listed first.
    let tied = l.row_tiles(0, |_| {
        core::array::from_fn(|i| if i % 2 == 0 { Tile::Absent } else { Tile::Hole })
    });
    assert_eq!(tied[0], Tile::Hole);
}

#[test]
fn from_a_section_one_a_row() {
    let sections: Vec<u64> = (0..16).chain(2048..2560).collect();
    let all = Layout::new(SCREEN, &sections, View::All).unwrap();
    let fit = (SCREEN.height / 2 - all.rows_y - GAP) / SCREEN.char_h;
    let l = Layout::new(SCREEN, &sections, View::From(2100)).unwrap();
    assert_eq!((l.group, l.rows.len(), l.rows[0]), (1, fit, 2100));
    assert!(l.focused(0) && !l.focused(1));
    // Near the end the panel stays full; between sections, the next one.
    let l = Layout::new(SCREEN, &sections, View::From(2559)).unwrap();
    assert_eq!(*l.rows.last().unwrap(), 2559);
    assert_eq!(l.rows.len(), fit);
    assert!(l.focused(fit - 1));
    let l = Layout::new(SCREEN, &sections, View::From(100)).unwrap();
    assert_eq!(l.rows[0], 2048);
    assert!(l.title().starts_with("Tessera mosaic: sections 2048-"));
    assert_eq!(
        Layout::new(SCREEN, &sections, View::From(2560)).unwrap_err().to_string(),
        "no section from 2560 on has memory (the last is 2559)"
    );
}

#[test]
fn status_lines_read_back() {
    let sections: Vec<u64> = (0..16).chain([20]).chain(2048..2560).collect();
    for view in [View::All, View::From(14), View::From(2050)] {
        let l = Layout::new(SCREEN, &sections, view).unwrap();
        let line = l.status();
        assert_eq!(parse_status(&line), Some((sections.clone(), view)), "{line}");
    }
    let l = Layout::new(SCREEN, &(0..16).collect::<Vec<u64>>(), View::All).unwrap();
    assert_eq!(
        l.status(),
        "mosaic: on: sections 0-15 (16), 16 rows of 1 section, a tile 2 MiB; the log scrolls below"
    );
    assert_eq!(format_sections(&[3]), "3");
    assert_eq!(parse_sections("0-15,20,2048-2559").unwrap().len(), 16 + 1 + 512);
    for bad in ["", "1-", "5-3", "3,3", "4,2", "x", "0-99999999999"] {
        assert_eq!(parse_sections(bad), None, "{bad}");
    }
    assert_eq!(parse_status("mosaic: off"), None);
}

#[test]
fn narrow_and_small_screens() {
    let sections: Vec<u64> = (0..16).collect();
    let narrow = Screen { width: 640, height: 480, ..SCREEN };
    let l = Layout::new(narrow, &sections, View::All).unwrap();
    assert!(l.legend_lines >= 2);
    for i in l.legend() {
        let end = i.text.0 + i.tile.name().len() * narrow.char_w;
        assert!(end <= narrow.width && i.text.1 + narrow.char_h <= l.rows_y, "{i:?}");
    }
    assert!(l.tile_rect(0, 63).x + l.tile_w <= narrow.width);
    assert!(l.height <= narrow.height / 2);
    assert!(l.group > 1, "16 rows do not fit in 240 pixels");
    assert!(l.title().len() * narrow.char_w <= narrow.width);
    let tiny = Screen { width: 300, height: 480, ..SCREEN };
    assert!(matches!(Layout::new(tiny, &sections, View::All), Err(LayoutError::TooSmall { .. })));
    let flat = Screen { width: 1280, height: 80, ..SCREEN };
    assert!(Layout::new(flat, &sections, View::All).is_err());
    assert_eq!(Layout::new(SCREEN, &[], View::All), Err(LayoutError::NoSections));
}

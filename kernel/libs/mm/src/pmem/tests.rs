use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use super::*;
use crate::nd_pfn::Invalid;
use crate::page::{MemMap, Page};
use crate::sparse::tests::{TestBackend, booted};
use rng::Rng;

const M: u64 = 1 << 20;
const G: u64 = 1 << 30;
const SUB: u64 = SUBSECTION;
const PAGE: u64 = 4096;

/// What a media byte that was never written reads as.
fn pattern(addr: u64) -> u8 {
    (crate::splitmix64(addr >> 3) >> ((addr & 7) * 8)) as u8
}

/// Media bytes: the pages written so far, over [`pattern`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Media(BTreeMap<u64, Box<[u8; PAGE as usize]>>);

impl Media {
    fn get(&self, addr: u64) -> u8 {
        let page = addr & !(PAGE - 1);
        self.0.get(&page).map_or_else(|| pattern(addr), |p| p[(addr - page) as usize])
    }

    /// The pieces of `[addr, addr + len)` in each page: (page, offset in
    /// it, offset in the range, length).
    fn pieces(addr: u64, len: u64) -> impl Iterator<Item = (u64, usize, usize, usize)> {
        let mut at = addr;
        core::iter::from_fn(move || {
            (at < addr + len).then(|| {
                let page = at & !(PAGE - 1);
                let n = (page + PAGE).min(addr + len) - at;
                let piece = (page, (at - page) as usize, (at - addr) as usize, n as usize);
                at += n;
                piece
            })
        })
    }

    fn bytes(&self, addr: u64, len: u64) -> Vec<u8> {
        let mut out = vec![0; len as usize];
        for (page, off, i, n) in Self::pieces(addr, len) {
            match self.0.get(&page) {
                Some(p) => out[i..i + n].copy_from_slice(&p[off..off + n]),
                None => {
                    for (j, b) in out[i..i + n].iter_mut().enumerate() {
                        *b = pattern(addr + (i + j) as u64);
                    }
                }
            }
        }
        out
    }

    fn write(&mut self, addr: u64, bytes: &[u8]) {
        for (page, off, i, n) in Self::pieces(addr, bytes.len() as u64) {
            let p = self.0.entry(page).or_insert_with(|| {
                let mut p = Box::new([0; PAGE as usize]);
                for (j, b) in p.iter_mut().enumerate() {
                    *b = pattern(page + j as u64);
                }
                p
            });
            p[off..off + n].copy_from_slice(&bytes[i..i + n]);
        }
    }
}

/// The machine of a host test: the real section table over vectors
/// ([`TestBackend`]), a physical-memory map of 2 MiB pieces, and media for
/// each region's range. Media may only be touched where mapped and inside
/// a region: anything else panics, as it would corrupt memory in a kernel.
struct Fake {
    sparse: Box<Sparse<TestBackend>>,
    ram: Vec<(u64, u64)>,
    /// Ranges the firmware map does not report as RAM or persistent memory.
    unbacked: Vec<(u64, u64)>,
    /// Where there is media (every region's range).
    media_ranges: Vec<(u64, u64)>,
    media: Media,
    /// 2 MiB pieces in the physical-memory map.
    mapped: BTreeSet<u64>,
    /// Pieces that were mapped at some time: their page tables stay.
    tables: BTreeSet<u64>,
    /// Fail the n-th mapping that needs page tables from now (1 = next).
    fail_map_in: Option<u32>,
    /// This operation's media writes: address and the bytes before.
    journal: Vec<(u64, Vec<u8>)>,
    /// ZONE_DEVICE's span, `[start_pfn, end_pfn)`.
    zone_device: Option<(Pfn, Pfn)>,
    clock: u64,
    log: Vec<(Level, String)>,
}

impl Fake {
    fn new(ram: &[(u64, u64)], unbacked: &[(u64, u64)], media_ranges: &[(u64, u64)]) -> Self {
        let pfns: Vec<(Pfn, Pfn)> = ram.iter().map(|&(s, e)| (phys_pfn(s), phys_pfn(e))).collect();
        Fake {
            sparse: booted(&pfns),
            ram: ram.to_vec(),
            unbacked: unbacked.to_vec(),
            media_ranges: media_ranges.to_vec(),
            media: Media::default(),
            mapped: BTreeSet::new(),
            tables: BTreeSet::new(),
            fail_map_in: None,
            journal: Vec::new(),
            zone_device: None,
            clock: 1000,
            log: Vec::new(),
        }
    }

    /// Panics unless `[phys, phys + len)` is media and mapped.
    fn check_access(&self, phys: u64, len: u64, what: &str) {
        let end = phys + len;
        assert!(
            self.media_ranges.iter().any(|&(s, e)| s <= phys && end <= e),
            "{what} of {phys:#x}+{len:#x}: not persistent memory"
        );
        let mut piece = phys & !(SUB - 1);
        while piece < end {
            assert!(
                self.mapped.contains(&piece),
                "{what} of {phys:#x}+{len:#x}: {piece:#x} unmapped"
            );
            piece += SUB;
        }
    }

    fn logged(&self, what: &str) -> bool {
        self.log.iter().any(|(_, l)| l.contains(what))
    }
}

impl PmemBackend for Fake {
    type Memmap = TestBackend;

    fn sparse<T>(&mut self, f: impl FnOnce(&mut Sparse<TestBackend>) -> T) -> T {
        f(&mut self.sparse)
    }

    fn system_ram(&self) -> Vec<(u64, u64)> {
        self.ram.clone()
    }

    fn is_backed(&self, start: u64, end: u64) -> bool {
        !self.unbacked.iter().any(|&(s, e)| s < end && start < e)
    }

    fn init_memory_mapping(&mut self, start: u64, size: u64) -> Result<(), u64> {
        assert!((start | size).is_multiple_of(SUB), "mapping {start:#x}+{size:#x}: not 2 MiB");
        for piece in (start..start + size).step_by(SUB as usize) {
            if self.mapped.contains(&piece) {
                continue;
            }
            if !self.tables.contains(&piece)
                && let Some(n) = self.fail_map_in.as_mut()
            {
                *n -= 1;
                if *n == 0 {
                    self.fail_map_in = None;
                    return Err(piece);
                }
            }
            self.tables.insert(piece);
            self.mapped.insert(piece);
        }
        Ok(())
    }

    fn kernel_physical_mapping_remove(&mut self, start: u64, size: u64) {
        let mut piece = start & !(SUB - 1);
        while piece < start + size {
            self.mapped.remove(&piece);
            piece += SUB;
        }
    }

    fn read_pmem(&mut self, phys: u64, buf: &mut [u8]) {
        self.check_access(phys, buf.len() as u64, "read");
        for (i, b) in buf.iter_mut().enumerate() {
            *b = self.media.get(phys + i as u64);
        }
    }

    fn write_pmem(&mut self, phys: u64, bytes: &[u8]) {
        self.check_access(phys, bytes.len() as u64, "write");
        self.journal.push((phys, self.media.bytes(phys, bytes.len() as u64)));
        self.media.write(phys, bytes);
    }

    fn move_pfn_range_to_zone(&mut self, start_pfn: Pfn, nr_pages: u64) {
        let (s, e) = self.zone_device.unwrap_or((start_pfn, start_pfn + nr_pages));
        self.zone_device = Some((s.min(start_pfn), e.max(start_pfn + nr_pages)));
    }

    fn remove_pfn_range_from_zone(&mut self, _start_pfn: Pfn, _nr_pages: u64) {}

    fn ktime_get_us(&mut self) -> u64 {
        self.clock += 7;
        self.clock
    }

    fn log(&mut self, level: Level, msg: fmt::Arguments<'_>) {
        self.log.push((level, msg.to_string()));
    }
}

/// System RAM: 48 MiB from 1 MiB, in early section 0 (sub-sections 0..=24).
const RAM: [(u64, u64); 1] = [(M, 49 * M)];

/// The regions of the test machine, in id order:
/// 0, 1: two legacy ranges sharing early section 0 with RAM;
/// 2: a 256 MiB NVDIMM of two whole sections (too large for a raw memmap in
///    48 MiB of RAM; fsdax `map=dev` puts it on the device);
/// 3: a legacy range the firmware map does not back (raw only);
/// 4: a legacy range over System RAM (`memremap_pages` refuses it);
/// 5: a 64 MiB NVDIMM in the second half of section 16;
/// 6: a 64 MiB NVDIMM across sections 23 and 24.
fn machine() -> Vec<(u64, u64, Origin)> {
    let legacy = |spa| Origin::Emulated { spa, legacy: true };
    let nvdimm = |spa| Origin::Firmware { spa };
    vec![
        (64 * M, 32 * M, legacy(1)),
        (96 * M, 32 * M, legacy(2)),
        (G, 256 * M, nvdimm(3)),
        (160 * M, 32 * M, legacy(4)),
        (32 * M, 8 * M, legacy(5)),
        (2 * G + 64 * M, 64 * M, nvdimm(6)),
        (3 * G - 32 * M, 64 * M, nvdimm(7)),
    ]
}

const UNBACKED: usize = 3;
const OVER_RAM: usize = 4;
const BIG: usize = 2;

fn booted_machine() -> (Pmem, Fake) {
    let ranges = machine();
    let media: Vec<(u64, u64)> = ranges.iter().map(|&(s, n, _)| (s, s + n)).collect();
    let unbacked = [media[UNBACKED]];
    let mut b = Fake::new(&RAM, &unbacked, &media);
    let mut p = Pmem::new();
    p.register(&mut b, &ranges);
    (p, b)
}

fn quiet(_: u64, _: &str) {}

/// Everything an operation may change, but the media (see
/// [`Fake::journal`]) and what stays by design (roots, page tables).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Snapshot {
    pmem: Pmem,
    mapped: BTreeSet<u64>,
    /// Each touched section's word, sub-section map and whether it has a
    /// usage; then the memmap and usage bytes.
    sections: Vec<(u64, u64, u64, bool)>,
    /// A descriptor of every sub-section of every region (or that it is
    /// not populated).
    pages: Vec<Option<Page>>,
    zone_device: Option<(Pfn, Pfn)>,
}

/// The sections the machine touches.
fn sections_of_interest() -> Vec<u64> {
    let mut nrs: Vec<u64> = machine()
        .iter()
        .flat_map(|&(s, n, _)| {
            pfn_to_section_nr(phys_pfn(s))..=pfn_to_section_nr(phys_pfn(s + n - 1))
        })
        .collect();
    nrs.sort_unstable();
    nrs.dedup();
    nrs
}

fn snapshot(p: &Pmem, b: &Fake) -> Snapshot {
    let s = &b.sparse;
    let mut sections: Vec<(u64, u64, u64, bool)> = sections_of_interest()
        .into_iter()
        .map(|nr| {
            let ms = s.section_or_empty(nr);
            (nr, ms.raw(), ms.subsection_map(&s.guard()), ms.usage(&s.guard()).is_some())
        })
        .collect();
    sections.push((u64::MAX, s.stats().memmap_bytes, s.stats().usage_bytes, false));
    let pages = p
        .regions()
        .iter()
        .flat_map(|r| (phys_pfn(r.start)..phys_pfn(r.end())).step_by(PAGES_PER_SUBSECTION as usize))
        .map(|pfn| s.backend.page(pfn + 7).copied())
        .collect();
    Snapshot {
        pmem: p.clone(),
        mapped: b.mapped.clone(),
        sections,
        pages,
        zone_device: b.zone_device,
    }
}

/// The media bytes written this operation are what they were before it.
fn media_unchanged(b: &Fake) -> bool {
    let mut first: BTreeMap<u64, u8> = BTreeMap::new();
    for (addr, before) in &b.journal {
        for (i, &v) in before.iter().enumerate() {
            first.entry(addr + i as u64).or_insert(v);
        }
    }
    first.iter().all(|(&a, &v)| b.media.get(a) == v)
}

// ---------------------------------------------------------------------------
// Table tests: each refusal with its errno and text, changing nothing.

#[test]
fn registered_regions_are_offline_raw_and_unmapped() {
    let (p, b) = booted_machine();
    assert_eq!(p.regions().len(), 7);
    for (r, &(start, size, origin)) in p.regions().iter().zip(machine().iter()) {
        assert_eq!(
            (r.start, r.size, r.origin, r.state, r.layout),
            (start, size, origin, State::Offline, None)
        );
    }
    assert!(b.mapped.is_empty());
    assert_eq!(
        b.log[0].1,
        "region0: [mem 0x0000000004000000-0x0000000005ffffff] 32 MiB (emulated NFIT spa 1, memmap=!) namespace0.0"
    );
    assert_eq!(
        b.log[2].1,
        "region2: [mem 0x0000000040000000-0x000000004fffffff] 256 MiB (firmware NFIT spa 3) namespace2.0"
    );
    // The unbacked range is listed with a warning after its heading.
    let warn = b.log.iter().find(|(l, _)| *l == Level::Warn).unwrap();
    assert_eq!(
        warn.1,
        "EPERM: region3: [mem 0x000000000a000000-0x000000000bffffff] is not RAM or persistent \
         memory in the firmware map (or holds the kernel's boot memory): raw only, nothing is \
         written there"
    );
    assert_eq!(
        p.regions()[0].to_string(),
        "region0: [mem 0x0000000004000000-0x0000000005ffffff] 32 MiB (emulated NFIT spa 1, memmap=!) namespace0.0 raw offline"
    );
}

/// Runs `op` on a machine with regions 0 and 5 added and checks that it
/// fails with `errno` and `text`, changing nothing (state, model, media).
fn refused(
    op: impl FnOnce(&mut Pmem, &mut Fake) -> Result<(), PmemError>,
    errno: &str,
    text: &str,
) {
    let (mut p, mut b) = booted_machine();
    p.add(&mut b, 0, &mut quiet).unwrap();
    p.add(&mut b, 5, &mut quiet).unwrap();
    let before = snapshot(&p, &b);
    b.journal.clear();
    let e = op(&mut p, &mut b).expect_err(text);
    assert_eq!((e.errno(), e.to_string().as_str()), (errno, text));
    assert_eq!(snapshot(&p, &b), before, "{text}: changed the state");
    assert!(b.journal.is_empty() || media_unchanged(&b), "{text}: changed the media");
}

#[test]
fn every_refusal_has_its_errno_and_text_and_changes_nothing() {
    let fsdax = |align| Some((Kind::Fsdax, PfnMode::Pmem, align));
    refused(|p, b| p.add(b, 9, &mut quiet).map(drop), "ENODEV", "ENODEV: no region9");
    refused(|p, b| p.remove(b, 9, &mut quiet).map(drop), "ENODEV", "ENODEV: no region9");
    refused(|p, b| p.probe(b, 9).map(drop), "ENODEV", "ENODEV: no region9");
    refused(|p, b| p.set_mode(b, 9, None, &mut quiet).map(drop), "ENODEV", "ENODEV: no region9");
    refused(|p, b| p.read(b, 9, 0, 1).map(drop), "ENODEV", "ENODEV: no region9");
    refused(|p, b| p.write(b, 9, 0, b"x"), "ENODEV", "ENODEV: no region9");
    let busy = "EBUSY: region0 is already added";
    refused(|p, b| p.add(b, 0, &mut quiet).map(drop), "EBUSY", busy);
    refused(|p, b| p.probe(b, 0).map(drop), "EBUSY", busy);
    let not_added = "EINVAL: region1 is not added";
    refused(|p, b| p.remove(b, 1, &mut quiet).map(drop), "EINVAL", not_added);
    refused(|p, b| p.read(b, 1, 0, 16).map(drop), "EINVAL", not_added);
    refused(|p, b| p.write(b, 1, 0, b"x"), "EINVAL", not_added);
    refused(
        |p, b| p.read(b, 0, 0x1ff_fff8, 16).map(drop),
        "EINVAL",
        "EINVAL: 0x1fffff8 + 0x10 is outside the 0x2000000-byte data area",
    );
    refused(
        |p, b| p.write(b, 0, u64::MAX, b"x"),
        "EINVAL",
        "EINVAL: 0xffffffffffffffff + 0x1 is outside the 0x2000000-byte data area",
    );
    let not_backed = "EPERM: region3: [mem 0x000000000a000000-0x000000000bffffff] is not RAM or \
                      persistent memory in the firmware map (or holds the kernel's boot memory): \
                      raw only, nothing is written there";
    refused(
        |p, b| p.set_mode(b, UNBACKED, fsdax(2 * M), &mut quiet).map(drop),
        "EPERM",
        not_backed,
    );
    refused(|p, b| p.read(b, UNBACKED, 0, 1).map(drop), "EPERM", not_backed);
    refused(|p, b| p.write(b, UNBACKED, 0, b"x"), "EPERM", not_backed);
    let over_ram =
        "ENXIO: memremap_pages attempted on ram region [mem 0x0000000002000000-0x00000000027fffff]";
    refused(|p, b| p.add(b, OVER_RAM, &mut quiet).map(drop), "ENXIO", over_ram);
    refused(|p, b| p.set_mode(b, OVER_RAM, None, &mut quiet).map(drop), "ENXIO", over_ram);
    let big = "ENOMEM: namespace2.0 would need 4 MiB of memmap in System RAM (48 MiB): not added; \
               make it fsdax or devdax (pmem mode region2 fsdax) to keep its memmap on the device";
    refused(|p, b| p.add(b, BIG, &mut quiet).map(drop), "ENOMEM", big);
    // fsdax, and devdax at 4 KiB, keep a descriptor per page in RAM; at
    // 2 MiB devdax shares its tails' vmemmap and needs an eighth.
    for map_mem in [(Kind::Fsdax, 2 * M), (Kind::Devdax, 4096)] {
        let map_mem = Some((map_mem.0, PfnMode::Ram, map_mem.1));
        refused(|p, b| p.set_mode(b, BIG, map_mem, &mut quiet).map(drop), "ENOMEM", big);
    }
    refused(
        |p, b| p.set_mode(b, 0, fsdax(G), &mut quiet).map(drop),
        "ENXIO",
        "ENXIO: a 0x2000000-byte namespace leaves no data at align 0x40000000",
    );
    refused(
        |p, b| p.set_mode(b, 5, fsdax(3 * M), &mut quiet).map(drop),
        "EINVAL",
        "EINVAL: align 0x300000 is not 4K, 2M or 1G",
    );
    // Allocation failures: the memory model's, and the kernel map's.
    refused(
        |p, b| {
            b.sparse.backend.fail_populate_in = Some(3);
            p.add(b, 6, &mut quiet).map(drop)
        },
        "ENOMEM",
        "ENOMEM: out of memory for memmap",
    );
    refused(
        |p, b| {
            b.fail_map_in = Some(2);
            p.add(b, 6, &mut quiet).map(drop)
        },
        "ENOMEM",
        "ENOMEM: cannot map 0xbe200000 in the kernel",
    );
    refused(
        |p, b| {
            b.fail_map_in = Some(1);
            p.probe(b, 6).map(drop)
        },
        "ENOMEM",
        "ENOMEM: cannot map 0xbe000000 in the kernel",
    );
    // set_mode on an added region: the info block cannot be mapped to be
    // read (region 1 is offline, never mapped), before anything changes.
    refused(
        |p, b| {
            b.fail_map_in = Some(1);
            p.set_mode(b, 1, fsdax(2 * M), &mut quiet).map(drop)
        },
        "ENOMEM",
        "ENOMEM: cannot map 0x6000000 in the kernel",
    );
    // A mode change whose add runs out of memory: the old info block and
    // mode come back (region 5 was added raw).
    refused(
        |p, b| {
            b.sparse.backend.fail_populate_in = Some(1);
            let r = p.set_mode(b, 5, fsdax(2 * M), &mut quiet).map(drop);
            assert!(b.logged(
                "namespace5.0: ENOMEM: out of memory for memmap; putting back its raw mode"
            ));
            assert!(b.journal.len() == 2, "the block written, then the old one back");
            r
        },
        "ENOMEM",
        "ENOMEM: out of memory for memmap",
    );
}

#[test]
fn memremap_refusals_come_in_linux_order() {
    let (mut p, mut b) = booted_machine();
    p.add(&mut b, 0, &mut quiet).unwrap();
    let check = |p: &Pmem, b: &mut Fake, s, n| match p.check_range(b, s, n) {
        Err(PmemError::Memremap(m)) => Err(m.errno()),
        Err(e) => panic!("not a memremap refusal: {e}"),
        Ok(()) => Ok(()),
    };
    // Inside an added region (even partly RAM): ENOMEM first.
    assert_eq!(check(&p, &mut b, 64 * M + PAGE, PAGE), Err("ENOMEM"));
    assert_eq!(check(&p, &mut b, 40 * M, 25 * M), Err("ENOMEM"));
    assert_eq!(check(&p, &mut b, 2 * M, 2 * M), Err("ENXIO"));
    assert_eq!(check(&p, &mut b, 1 << 46, SUB), Err("EINVAL"));
    assert_eq!(check(&p, &mut b, 4 * G + PAGE, SUB), Err("EINVAL"));
    // Around region 0: its sub-sections are active.
    assert_eq!(check(&p, &mut b, 62 * M, 36 * M), Err("EEXIST"));
    assert_eq!(check(&p, &mut b, 4 * G, SUB), Ok(()));
}

#[test]
fn add_and_remove_step_through_sub_sections_and_log_like_linux() {
    let (mut p, mut b) = booted_machine();
    let mut lines = Vec::new();
    let r = p.add(&mut b, 0, &mut |nr, l| lines.push((nr, l.to_string()))).unwrap();
    assert_eq!(r.state, State::Added);
    assert_eq!(lines.len(), 16, "one step per sub-section");
    let flags = "section 0: flags=present|has_mem_map|online|early|zone_device";
    assert_eq!(lines[0], (0, alloc::format!("{flags} subsection_map=0x0000000101ffffff")));
    assert_eq!(lines[15], (0, alloc::format!("{flags} subsection_map=0x0000ffff01ffffff")));
    let added = b.log.last().unwrap().1.clone();
    assert!(
        added.starts_with(
            "region0 [mem 0x0000000004000000-0x0000000005ffffff] added: 16 sub-sections in 1 \
             section, raw, memmap in System RAM ("
        ),
        "{added}"
    );
    // Device pages with their pgmap; the RAM next to them stays RAM.
    let pfn = phys_pfn(64 * M);
    let page = *b.sparse.page(pfn).unwrap();
    assert_eq!((page.zone(), page.pgmap), (ZoneType::Device, 1));
    assert_eq!(b.sparse.page(pfn - 1).unwrap().zone(), ZoneType::Dma32);
    assert_eq!(b.zone_device, Some((pfn, phys_pfn(96 * M))));
    lines.clear();
    p.remove(&mut b, 0, &mut |nr, l| lines.push((nr, l.to_string()))).unwrap();
    assert_eq!(lines.len(), 16);
    assert_eq!(
        b.log.last().unwrap().1,
        "region0 [mem 0x0000000004000000-0x0000000005ffffff] removed"
    );
    // Back to reserved RAM holes of the early section.
    assert_eq!(b.sparse.page(pfn).unwrap().zone(), ZoneType::Dma32);
    assert!(b.mapped.is_empty());
}

#[test]
fn fsdax_on_whole_sections_puts_the_memmap_on_the_device() {
    let (mut p, mut b) = booted_machine();
    let mut steps = 0;
    let fsdax = Some((Kind::Fsdax, PfnMode::Pmem, 2 * M));
    let r = p.set_mode(&mut b, BIG, fsdax, &mut |_, _| steps += 1).unwrap();
    assert_eq!(steps, 2, "one step per section with an altmap");
    assert!(r.has_altmap() && r.state == State::Added, "{r}");
    assert_eq!(r.to_string(), alloc::format!("{} fsdax added, altmap", r.heading()));
    let l = r.layout.unwrap();
    assert_eq!((l.sb.dataoff, l.sb.npfns), (6 * M, 64000));
    assert!(b.logged(
        "namespace2.0: wrote fsdax info block v1.4: map dev, align 0x200000, dataoff 0x600000, \
         npfns 64000, data [mem 0x0000000040600000-0x000000004fffffff] (262144000 bytes)"
    ));
    assert!(b.logged("added: 128 sub-sections in 2 sections, fsdax, memmap on the device"));
    // The info block on the media is Linux's, and a probe finds it again.
    assert_eq!(b.media.bytes(G + INFO_OFFSET, INFO_SIZE as u64), l.sb.to_bytes());
    p.remove(&mut b, BIG, &mut quiet).unwrap();
    assert_eq!(p.probe(&mut b, BIG), Ok(Some(l)));
    assert!(b.logged("namespace2.0: fsdax info block v1.4: map dev"));
    // Whole sections of their own: fully deactivated, words back to 0.
    assert_eq!(b.sparse.section_or_empty(8).raw(), 0);
    p.add(&mut b, BIG, &mut quiet).unwrap();
    assert_eq!(b.sparse.subsection_map(9), u64::MAX);
}

#[test]
fn probe_reports_raw_and_damaged_blocks_and_writes_nothing() {
    let (mut p, mut b) = booted_machine();
    assert_eq!(p.probe(&mut b, 5), Ok(None));
    assert_eq!(b.log.last().unwrap().1, "namespace5.0: no info block at offset 0x1000: raw");
    // A block with a bad checksum: raw, and the block stays as it is.
    let l = nd_pfn::init(Kind::Devdax, PfnMode::Pmem, 2 * G + 64 * M, 64 * M, 2 * M, [3; 16]);
    let mut block = l.unwrap().sb.to_bytes();
    block[100] ^= 1;
    b.media.write(2 * G + 64 * M + INFO_OFFSET, &block);
    b.journal.clear();
    assert_eq!(p.probe(&mut b, 5), Ok(None));
    let (level, line) = b.log.last().unwrap();
    assert_eq!(*level, Level::Warn);
    assert!(
        line.starts_with("namespace5.0: bad info block at offset 0x1000: bad checksum"),
        "{line}"
    );
    assert!(line.ends_with("; raw, nothing written"));
    assert!(b.journal.is_empty() && b.mapped.is_empty());
    assert!(matches!(
        nd_pfn::validate(&block, 2 * G + 64 * M, 64 * M),
        Err(Invalid::Checksum { .. })
    ));
    // set_mode raw clears it; on a namespace without a block it writes
    // nothing at all.
    p.set_mode(&mut b, 5, None, &mut quiet).unwrap();
    assert!(b.logged("namespace5.0: cleared the info block at offset 0x1000: raw"));
    assert_eq!(b.media.bytes(2 * G + 64 * M + INFO_OFFSET, 16), [0; 16]);
    b.journal.clear();
    p.set_mode(&mut b, 0, None, &mut quiet).unwrap();
    assert!(b.logged("namespace0.0: no info block to clear: raw, nothing written"));
    assert!(b.journal.is_empty(), "raw on a raw namespace writes nothing");
}

#[test]
fn a_mode_change_that_cannot_add_back_leaves_the_region_offline_with_its_media() {
    let (mut p, mut b) = booted_machine();
    p.add(&mut b, 5, &mut quiet).unwrap();
    p.write(&mut b, 5, 0x1000, b"old data in raw mode").unwrap();
    let info = b.media.bytes(2 * G + 64 * M + INFO_OFFSET, INFO_SIZE as u64);
    // Every usage allocation fails: the new mode's add, then the old one's.
    b.sparse.backend.fail_usage = true;
    let e = p.set_mode(&mut b, 5, Some((Kind::Fsdax, PfnMode::Ram, 2 * M)), &mut quiet);
    assert_eq!(e.unwrap_err().to_string(), "ENOMEM: out of memory for usage");
    assert!(b.logged("region5: cannot add it back: ENOMEM: out of memory for usage; left offline"));
    let r = &p.regions()[5];
    assert_eq!((r.state, r.layout), (State::Offline, None));
    assert_eq!(b.media.bytes(2 * G + 64 * M + INFO_OFFSET, INFO_SIZE as u64), info);
    b.sparse.backend.fail_usage = false;
    p.add(&mut b, 5, &mut quiet).unwrap();
    assert_eq!(p.read(&mut b, 5, 0x1000, 20).unwrap(), b"old data in raw mode");
}

#[test]
fn fault_lookup_names_the_region_of_an_address() {
    let (mut p, mut b) = booted_machine();
    p.add(&mut b, 0, &mut quiet).unwrap();
    let f = p.fault_at(64 * M + 0x1238).unwrap();
    assert_eq!(f, PmemFault { id: 0, start: 64 * M, end: 96 * M, state: State::Added });
    assert_eq!(
        f.to_string(),
        "[mem 0x0000000004000000-0x0000000005ffffff] is persistent memory region0 (namespace0.0), \
         added (or being added or removed)"
    );
    assert_eq!(p.fault_at(96 * M).map(|f| f.id), Some(1));
    assert!(
        p.fault_at(96 * M).unwrap().to_string().ends_with("not added: removed ranges are unmapped")
    );
    assert_eq!(p.fault_at(63 * M), None);
}

// ---------------------------------------------------------------------------
// The model: random operations against a naive account of what each must
// do, with injected allocation failures.

/// What the model expects of the regions and the media.
struct Model {
    regions: Vec<Region>,
    media: Media,
    ram_total: u64,
}

impl Model {
    /// Whether `r`'s memmap is on the device: `map=dev` over whole sections.
    fn on_device(r: &Region) -> bool {
        let section = PAGES_PER_SECTION << PAGE_SHIFT;
        r.layout.is_some_and(|l| {
            let (s, e) = l.range();
            l.mode() == PfnMode::Pmem && s % section == 0 && e % section == 0
        })
    }

    fn range(r: &Region) -> (u64, u64) {
        r.layout.map_or((r.start, r.end()), |l| l.range())
    }

    fn data(r: &Region) -> (u64, u64) {
        r.layout.map_or((r.start, r.end()), |l| l.data())
    }

    /// Memmap bytes of `r`: a descriptor per page; for devdax at 2 MiB or
    /// more, one vmemmap page per compound page of the data (what lies
    /// before the data shares one page).
    fn memmap(r: &Region) -> u64 {
        match r.layout.filter(|l| l.kind() == Kind::Devdax && l.align() >= 2 * M) {
            Some(l) => {
                let (ds, de) = l.data();
                (de - ds).div_ceil(l.align()) * PAGE
            }
            None => r.size / PAGE * 64,
        }
    }

    /// The errno an add of `r` meets before allocating anything.
    fn add_refusal(&self, r: &Region) -> Option<&'static str> {
        if r.state == State::Added {
            return Some("EBUSY");
        }
        let (s, e) = Self::range(r);
        if RAM.iter().any(|&(rs, re)| rs < e && s < re) {
            return Some("ENXIO");
        }
        if !Self::on_device(r) && Self::memmap(r) > self.ram_total / 16 {
            return Some("ENOMEM");
        }
        None
    }

    /// Only the unbacked legacy range is refused writes.
    fn backed(r: &Region) -> bool {
        r.id != UNBACKED
    }

    fn data_refusal(&self, id: usize, offset: u64, len: u64) -> Result<u64, &'static str> {
        let r = self.regions.get(id).ok_or("ENODEV")?;
        if !Self::backed(r) {
            return Err("EPERM");
        }
        if r.state != State::Added {
            return Err("EINVAL");
        }
        let (ds, de) = Self::data(r);
        match offset.checked_add(len) {
            Some(end) if end <= de - ds => Ok(ds + offset),
            _ => Err("EINVAL"),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Add(usize),
    Remove(usize),
    Probe(usize),
    SetMode(usize, Mode),
    Write(usize, u64, u64),
    Read(usize, u64, u64),
    /// A raw namespace's data area gets a valid info block (by `write`).
    Forge(usize, Kind),
}

fn random_op(rng: &mut Rng, n: usize) -> Op {
    let id = rng.below(n as u64 + 1) as usize;
    let kind = if rng.below(2) == 0 { Kind::Fsdax } else { Kind::Devdax };
    match rng.below(20) {
        0..=3 => Op::Add(id),
        4..=6 => Op::Remove(id),
        7 => Op::Probe(id),
        8..=10 => {
            let map = if rng.below(3) == 0 { PfnMode::Ram } else { PfnMode::Pmem };
            let align = [PAGE, 2 * M, 2 * M, 2 * M, G, 3 * M][rng.below(6) as usize];
            let mode = if rng.below(4) == 0 { None } else { Some((kind, map, align)) };
            Op::SetMode(id, mode)
        }
        11..=14 => {
            let offset = match rng.below(8) {
                0 => 0x1000 + rng.below(0x1000),
                1 => rng.next_u64(),
                2 => 32 * M - rng.below(64),
                _ => rng.below(64 * M),
            };
            Op::Write(id, offset, 1 + rng.below(64))
        }
        15..=18 => Op::Read(id, rng.below(40 * M), 1 + rng.below(64)),
        _ => Op::Forge(id, kind),
    }
}

/// What the model expects an operation to return: `Ok` or the errno of
/// the refusal it must meet before allocating anything.
fn expected(m: &Model, op: Op) -> Result<(), &'static str> {
    let region = |id: usize| m.regions.get(id).ok_or("ENODEV");
    match op {
        Op::Add(id) => m.add_refusal(region(id)?).map_or(Ok(()), Err),
        Op::Remove(id) => match region(id)?.state {
            State::Added => Ok(()),
            State::Offline => Err("EINVAL"),
        },
        Op::Probe(id) => match region(id)?.state {
            State::Added => Err("EBUSY"),
            State::Offline => Ok(()),
        },
        Op::SetMode(id, mode) => {
            let r = region(id)?;
            if !Model::backed(r) {
                return Err("EPERM");
            }
            let layout = match mode {
                Some((k, map, align)) => Some(
                    nd_pfn::init(k, map, r.start, r.size, align, [0; 16]).map_err(|e| e.errno())?,
                ),
                None => None,
            };
            m.add_refusal(&Region { layout, state: State::Offline, ..r.clone() })
                .map_or(Ok(()), Err)
        }
        Op::Write(id, offset, len) | Op::Read(id, offset, len) => {
            m.data_refusal(id, offset, len).map(drop)
        }
        Op::Forge(id, kind) => match forged(m, id, kind) {
            Some(_) => m.data_refusal(id, INFO_OFFSET, INFO_SIZE as u64).map(drop),
            None => Ok(()),
        },
    }
}

/// The info block [`Op::Forge`] writes into raw region `id`'s data area.
fn forged(m: &Model, id: usize, kind: Kind) -> Option<Layout> {
    let r = m.regions.get(id).filter(|r| r.layout.is_none())?;
    nd_pfn::init(kind, PfnMode::Pmem, r.start, r.size, 2 * M, [9; 16]).ok()
}

/// Steps an add of `r` shows: one per sub-section, one per section with
/// the memmap on the device.
fn add_steps(r: &Region) -> u64 {
    let (s, e) = Model::range(r);
    let per = if Model::on_device(r) { PAGES_PER_SECTION } else { PAGES_PER_SUBSECTION };
    bytes_to_pages(e - s) / per
}

#[test]
fn random_operations_match_a_naive_model_and_never_lose_data() {
    let (mut p, mut b) = booted_machine();
    let boot_maps: BTreeMap<u64, u64> =
        sections_of_interest().into_iter().map(|nr| (nr, b.sparse.subsection_map(nr))).collect();
    let mut m = Model {
        regions: p.regions().to_vec(),
        media: Media::default(),
        ram_total: RAM.iter().map(|&(s, e)| e - s).sum(),
    };
    let n = m.regions.len();
    let mut rng = Rng::new(0x05ee_d0f7_e55e_7a11);
    let mut ok: BTreeMap<&str, u32> = BTreeMap::new();
    let mut failed: BTreeMap<&str, u32> = BTreeMap::new();
    let mut injected = 0;
    for step in 0..4000 {
        let op = random_op(&mut rng, n);
        let want = expected(&m, op);
        // Half of the operations run with an allocation that will fail.
        let (mut populate, mut map) = (false, false);
        match rng.below(6) {
            0 | 1 => {
                (b.sparse.backend.fail_populate_in, populate) =
                    (Some(1 + rng.below(3) as u32), true)
            }
            2 => (b.fail_map_in, map) = (Some(1 + rng.below(2) as u32), true),
            _ => {}
        }
        let before = snapshot(&p, &b);
        b.journal.clear();
        let mut steps = 0u64;
        let mut count = |_: u64, _: &str| steps += 1;
        // The bytes the model expects this operation to write.
        let mut expect_media: Vec<(u64, Vec<u8>)> = Vec::new();
        let (name, result) = match op {
            Op::Add(id) => ("add", p.add(&mut b, id, &mut count).map(drop)),
            Op::Remove(id) => ("remove", p.remove(&mut b, id, &mut count).map(drop)),
            Op::Probe(id) => ("probe", p.probe(&mut b, id).map(drop)),
            Op::SetMode(id, mode) => {
                ("set_mode", p.set_mode(&mut b, id, mode, &mut count).map(drop))
            }
            Op::Write(id, offset, len) => {
                let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
                if let Ok(phys) = m.data_refusal(id, offset, len) {
                    expect_media.push((phys, bytes.clone()));
                }
                ("write", p.write(&mut b, id, offset, &bytes))
            }
            Op::Read(id, offset, len) => {
                let got = p.read(&mut b, id, offset, len);
                if let (Ok(bytes), Ok(phys)) = (&got, m.data_refusal(id, offset, len)) {
                    assert_eq!(*bytes, m.media.bytes(phys, len), "step {step}: {op:?} read back");
                }
                ("read", got.map(drop))
            }
            Op::Forge(id, kind) => match forged(&m, id, kind) {
                Some(l) => {
                    let bytes = l.sb.to_bytes();
                    if let Ok(phys) = m.data_refusal(id, INFO_OFFSET, INFO_SIZE as u64) {
                        expect_media.push((phys, bytes.to_vec()));
                    }
                    ("forge", p.write(&mut b, id, INFO_OFFSET, &bytes))
                }
                None => ("forge", Ok(())),
            },
        };
        // An injected failure that was met must have failed the operation
        // (one the model lets through) with ENOMEM; one not met is dropped.
        let met = (populate && b.sparse.backend.fail_populate_in.take().is_none())
            | (map && b.fail_map_in.take().is_none());
        b.sparse.backend.fail_populate_in = None;
        b.fail_map_in = None;
        match (&result, want) {
            (Err(e), Ok(())) if met => {
                assert_eq!(e.errno(), "ENOMEM", "step {step}: {op:?}: {e}");
                injected += 1;
            }
            (Ok(()), Ok(())) => assert!(!met, "step {step}: {op:?}: an allocation failed"),
            (Err(e), Err(want)) => assert_eq!(e.errno(), want, "step {step}: {op:?}: {e}"),
            (r, want) => panic!("step {step}: {op:?}: got {r:?}, the model expects {want:?}"),
        }
        if result.is_err() {
            *failed.entry(name).or_default() += 1;
            assert_eq!(
                snapshot(&p, &b),
                before,
                "step {step}: {op:?} failed but changed the state"
            );
            assert!(media_unchanged(&b), "step {step}: {op:?} failed but changed the media");
            check_invariants(&p, &b, &m, &boot_maps, step);
            continue;
        }
        *ok.entry(name).or_default() += 1;
        match op {
            Op::Add(id) => {
                m.regions[id].state = State::Added;
                assert_eq!(steps, add_steps(&m.regions[id]), "step {step}: {op:?}: steps");
            }
            Op::Remove(id) => {
                assert_eq!(steps, add_steps(&m.regions[id]), "step {step}: {op:?}: steps");
                m.regions[id].state = State::Offline;
            }
            Op::Probe(id) => {
                let r = &m.regions[id];
                let block = m.media.bytes(r.start + INFO_OFFSET, INFO_SIZE as u64);
                let block: [u8; INFO_SIZE] = block.try_into().unwrap();
                m.regions[id].layout = nd_pfn::validate(&block, r.start, r.size).ok().flatten();
            }
            Op::SetMode(id, mode) => {
                let r = m.regions[id].clone();
                let uuid = p.regions()[id].layout.map(|l| l.sb.uuid);
                let layout = mode.map(|(k, map, align)| {
                    let uuid = uuid.expect("a layout was asked for");
                    nd_pfn::init(k, map, r.start, r.size, align, uuid).unwrap()
                });
                let at = r.start + INFO_OFFSET;
                let block: [u8; INFO_SIZE] =
                    m.media.bytes(at, INFO_SIZE as u64).try_into().unwrap();
                match layout {
                    Some(l) => expect_media.push((at, l.sb.to_bytes().to_vec())),
                    None if nd_pfn::validate(&block, r.start, r.size) != Ok(None) => {
                        expect_media.push((at, vec![0; INFO_SIZE]))
                    }
                    None => {}
                }
                let new = Region { layout, state: State::Added, ..r.clone() };
                let removed = if r.state == State::Added { add_steps(&r) } else { 0 };
                assert_eq!(steps, removed + add_steps(&new), "step {step}: {op:?}: steps");
                m.regions[id] = new;
            }
            _ => {}
        }
        for (at, bytes) in &expect_media {
            m.media.write(*at, bytes);
        }
        // The media changed exactly where the model says.
        let written = b.journal.iter().map(|(a, v)| (*a, v.len() as u64));
        let model: Vec<(u64, u64)> =
            expect_media.iter().map(|(a, v)| (*a, v.len() as u64)).collect();
        for (at, len) in written.chain(model) {
            let (got, want) = (b.media.bytes(at, len), m.media.bytes(at, len));
            assert!(got == want, "step {step}: {op:?}: media at {at:#x}+{len:#x} differs");
        }
        // Only write and set_mode write, and set_mode only the info block.
        match op {
            Op::Write(..) | Op::Forge(..) => {}
            Op::SetMode(id, _) => {
                let at = m.regions[id].start + INFO_OFFSET;
                assert!(
                    b.journal.iter().all(|(a, v)| *a == at && v.len() == INFO_SIZE),
                    "step {step}: {op:?} wrote outside the info block"
                );
            }
            _ => assert!(b.journal.is_empty(), "step {step}: {op:?} wrote the media"),
        }
        check_invariants(&p, &b, &m, &boot_maps, step);
    }
    // Every byte the model knows reads the same from the fake's media.
    let pages: BTreeSet<u64> = m.media.0.keys().chain(b.media.0.keys()).copied().collect();
    for page in pages {
        assert!(b.media.bytes(page, PAGE) == m.media.bytes(page, PAGE), "page {page:#x}");
    }
    for name in ["add", "remove", "set_mode", "write", "read", "probe", "forge"] {
        let (o, f) = (ok.get(name).copied().unwrap_or(0), failed.get(name).copied().unwrap_or(0));
        assert!(o > 20 && f > 10, "{name}: {o} succeeded, {f} failed");
    }
    assert!(injected > 50, "{injected} operations failed by injection");
}

/// After every step: the regions are the model's, each added region's
/// sub-sections (and only those, besides boot RAM) are active and mapped,
/// its pages are device pages, and shared sections are tainted.
fn check_invariants(p: &Pmem, b: &Fake, m: &Model, boot_maps: &BTreeMap<u64, u64>, step: u32) {
    assert_eq!(p.regions(), &m.regions[..], "step {step}: regions");
    let mut want = boot_maps.clone();
    let mut mapped = BTreeSet::new();
    for r in p.regions().iter().filter(|r| r.state == State::Added) {
        let (s, e) = r.mapped();
        for piece in (s..e).step_by(SUB as usize) {
            let pfn = phys_pfn(piece);
            *want.get_mut(&pfn_to_section_nr(pfn)).unwrap() |= 1 << subsection_index(pfn);
            mapped.insert(piece);
            // A tail's pgmap is its compound head's; before a compound
            // range's data, pages belong to no pgmap.
            let head = b.sparse.page(pfn + 7).map_or(pfn + 7, |pg| pg.compound_head(pfn + 7));
            let page = b.sparse.page(head).copied();
            let pre_data = r.compound().is_some_and(|c| pfn < c.start());
            assert_eq!(
                page.map(|pg| (pg.zone(), pg.pgmap)),
                Some((ZoneType::Device, if pre_data { 0 } else { r.pgmap() })),
                "step {step}: {r}: {piece:#x}"
            );
        }
        // A range that starts or ends inside a section taints that section.
        for (edge, at) in [(s, s), (e, e - 1)] {
            let nr = pfn_to_section_nr(phys_pfn(at));
            if edge % (128 * M) != 0 {
                let ms = b.sparse.section_or_empty(nr);
                assert!(
                    ms.flags() & flags::TAINT_ZONE_DEVICE != 0,
                    "step {step}: {r}: section {nr}"
                );
            }
        }
    }
    for (nr, want) in want {
        let map = b.sparse.subsection_map(nr);
        assert_eq!(map, want, "step {step}: section {nr}: sub-section bits");
    }
    assert_eq!(b.mapped, mapped, "step {step}: the kernel maps exactly the added ranges");
}

fn subsection_index(pfn: Pfn) -> u32 {
    crate::sparse::subsection_map_index(pfn)
}

/// `pmem --json` is `ndctl list -RN`'s shape with the same facts as the
/// `pmem` lines: raw added, fsdax on the device, devdax with its memmap in
/// System RAM, and an offline NVDIMM.
#[test]
fn json_is_ndctl_shaped_and_says_what_the_lines_say() {
    let (mut p, mut b) = booted_machine();
    p.add(&mut b, 0, &mut quiet).unwrap();
    p.set_mode(&mut b, BIG, Some((Kind::Fsdax, PfnMode::Pmem, 2 * M)), &mut quiet).unwrap();
    p.set_mode(&mut b, 1, Some((Kind::Devdax, PfnMode::Pmem, 2 * M)), &mut quiet).unwrap();
    let regions = p.regions();
    let v: serde_json::Value = serde_json::from_str(&pmem_json(regions, 0)).unwrap();
    let got = v["regions"].as_array().unwrap();
    assert_eq!(got.len(), regions.len());
    for (j, r) in got.iter().zip(regions) {
        let ns = &j["namespaces"][0];
        let lines = r.namespace_lines();
        // The head line has the mode and size; the last line the data range.
        assert!(lines[0].starts_with(&alloc::format!(
            "{}: mode {}",
            ns["dev"].as_str().unwrap(),
            ns["mode"].as_str().unwrap()
        )));
        assert!(lines[0].contains(&alloc::format!(", size {},", ns["size"])), "{}", lines[0]);
        let data = &ns["tessera"]["data"];
        let (ds, de) = (data["start"].as_u64().unwrap(), data["end"].as_u64().unwrap());
        assert_eq!(
            lines.last().unwrap(),
            &alloc::format!("data       {} ({} bytes)", MemRange(ds, de + 1), ns["size"])
        );
        assert_eq!(j["dev"], r.name());
        assert_eq!(j["size"], r.size);
        assert_eq!(j["tessera"]["start"], r.start);
        assert_eq!(j["persistence_domain"], "unknown");
        if let Some(uuid) = ns["uuid"].as_str() {
            assert!(lines[0].contains(&alloc::format!("uuid {uuid},")), "{}", lines[0]);
        }
    }
    let raw = &got[0];
    assert_eq!(raw["align"], 16 * M);
    assert_eq!((&raw["available_size"], &raw["max_available_extent"]), (&0.into(), &0.into()));
    assert_eq!(raw["tessera"]["e820_type"], 12);
    assert_eq!(raw["tessera"]["subsections_added"], 16);
    assert_eq!(
        raw["namespaces"][0],
        serde_json::json!({
            "dev": "namespace0.0", "mode": "raw", "size": 32 * M, "sector_size": 512,
            "blockdev": "pmem0",
            "tessera": {
                "info_block": null, "memmap": {"location": "system_ram"},
                "data": {"start": 64 * M, "end": 96 * M - 1}, "device": "namespace0.0"
            }
        })
    );
    let fsdax = &got[BIG]["namespaces"][0];
    for (k, want) in [("mode", "fsdax"), ("map", "dev"), ("blockdev", "pmem2")] {
        assert_eq!(fsdax[k], want, "{k}");
    }
    assert_eq!(
        (&fsdax["align"], &fsdax["sector_size"], &fsdax["size"]),
        (&(2 * M).into(), &512.into(), &262144000.into())
    );
    assert_eq!(fsdax["tessera"]["memmap"]["location"], "device");
    assert_eq!(
        fsdax["tessera"]["info_block"],
        serde_json::json!({"start": G + 4096, "end": G + 8191})
    );
    assert_eq!(got[BIG]["tessera"]["nfit"], "firmware");
    assert_eq!(got[BIG]["tessera"]["e820_type"], serde_json::Value::Null);
    assert_eq!(got[BIG]["tessera"]["altmap"], true);
    let devdax = &got[1]["namespaces"][0];
    assert_eq!(devdax["chardev"], "dax1.0");
    assert!(devdax.get("sector_size").is_none() && devdax.get("blockdev").is_none());
    assert_eq!(devdax["tessera"]["memmap"]["location"], "system_ram");
    assert!(devdax["tessera"]["memmap"]["reserved"]["start"].is_u64());
    let offline = &got[5];
    assert_eq!(offline["tessera"]["state"], "offline");
    assert_eq!(offline["tessera"]["subsections_added"], 0);
    assert_eq!(offline["namespaces"][0]["state"], "disabled");
    assert!(offline["namespaces"][0].get("blockdev").is_none());
    // The platform capabilities set a firmware region's persistence domain.
    let domains = |cap| -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(&pmem_json(regions, cap)).unwrap();
        v["regions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["persistence_domain"].as_str().unwrap().into())
            .collect()
    };
    assert_eq!(domains(1)[BIG], "cpu_cache");
    assert_eq!(domains(3)[BIG], "cpu_cache");
    assert_eq!(domains(2)[BIG], "memory_controller");
    assert_eq!(domains(2)[0], "unknown", "nd_e820 regions have no persistence domain");
    // An 8 MiB region's align is a page.
    assert_eq!(got[4]["align"], 4096);
}

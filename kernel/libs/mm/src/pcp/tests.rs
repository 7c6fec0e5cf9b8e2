use super::*;
use crate::buddy::{BuddyError, MAX_ORDER, Zone};
use crate::page::{MemMap, Page, Pfn, ZoneType};
use alloc::collections::BTreeSet;
use alloc::vec::Vec;
use rng::Rng;

/// One chunk of memmap from `base`; pfns outside are holes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Map(Pfn, Vec<Page>);

impl Map {
    fn new(start: Pfn, end: Pfn) -> Self {
        Map(start, (start..end).map(|p| Page::init(ZoneType::for_pfn(p), 0)).collect())
    }
}

impl MemMap for Map {
    fn page(&self, pfn: Pfn) -> Option<&Page> {
        self.1.get(pfn.checked_pages_since(self.0)? as usize)
    }
    fn page_mut(&mut self, pfn: Pfn) -> Option<&mut Page> {
        self.1.get_mut(pfn.checked_pages_since(self.0)? as usize)
    }
}

/// DMA32 pages `[0x1000, 0x1000 + n)`, all free in one zone.
fn dma32(n: u64) -> (Map, Zone) {
    let (start, end) = (Pfn::new(0x1000), Pfn::new(0x1000 + n));
    let (mut mm, mut zone) = (Map::new(start, end), Zone::new(ZoneType::Dma32));
    assert_eq!(zone.free_range(&mut mm, start, end), n);
    (mm, zone)
}

#[test]
fn batch_and_high_follow_linux_zone_batchsize() {
    // managed pages -> batch: DMA (3 975 pages), a 64 MiB zone, 2 GiB, 8 GiB.
    for (managed, batch) in
        [(0, 1), (3975, 1), (16384, 3), (65536, 15), (480_000, 63), (2 << 20, 63)]
    {
        assert_eq!(zone_batchsize(managed), batch, "{managed} pages");
        assert_eq!(pcp_high(batch), 6 * batch);
    }
}

#[test]
fn refill_and_give_back_in_batches() {
    let (mut mm, mut zone) = dma32(4096);
    let mut pcp = PerCpuPages::new(ZoneType::Dma32);
    let (batch, high) = (31, 186);
    let first = alloc_page(&mut pcp, &mut zone, &mut mm, batch).unwrap().unwrap();
    assert_eq!((pcp.count(), zone.nr_free_pages()), (30, 4096 - 31), "one batch taken");
    assert_eq!(mm.page(first).unwrap().refcount, 1);
    let mut got = alloc::vec![first];
    for _ in 0..30 {
        got.push(alloc_page(&mut pcp, &mut zone, &mut mm, batch).unwrap().unwrap());
    }
    assert_eq!((pcp.count(), zone.nr_free_pages()), (0, 4096 - 31), "served from the list");
    got.push(alloc_page(&mut pcp, &mut zone, &mut mm, batch).unwrap().unwrap());
    assert_eq!((pcp.count(), zone.nr_free_pages()), (30, 4096 - 62), "a second batch");
    let distinct: BTreeSet<_> = got.iter().collect();
    assert_eq!(distinct.len(), got.len());
    // Pages in the order the buddy handed them out (refills go to the tail).
    assert!(got[..31].windows(2).all(|w| w[0] + 1 == w[1]), "{got:x?}");
    for _ in 0..200 {
        got.push(alloc_page(&mut pcp, &mut zone, &mut mm, batch).unwrap().unwrap());
    }
    let before = zone.nr_free_pages() + pcp.count();
    let mut gave_back = 0;
    for (i, &p) in got.iter().enumerate() {
        let count = pcp.count();
        free_page(&mut pcp, &mut zone, &mut mm, p, batch, high).unwrap();
        if pcp.count() < count {
            gave_back += 1;
            assert_eq!((count + 1, pcp.count()), (high, high - batch), "free {i}");
        }
        assert!(pcp.count() < high);
    }
    assert!(gave_back > 0);
    assert_eq!(zone.nr_free_pages() + pcp.count(), before + got.len() as u64);
    pcp.check(&mm).unwrap();
    zone.check(&mm).unwrap();
}

#[test]
fn drained_lists_leave_the_zone_as_it_was() {
    let (mut mm, mut zone) = dma32(8192);
    let initial = (zone.free_counts(), zone.nr_free_pages());
    let mut cpus: Vec<_> = (0..4).map(|_| PerCpuPages::new(ZoneType::Dma32)).collect();
    let mut rng = Rng::new(7);
    let mut held: Vec<(Pfn, u32)> = Vec::new();
    for step in 0..20_000 {
        let cpu = rng.below(4) as usize;
        if held.is_empty() || rng.below(100) < 52 {
            let order =
                if rng.below(8) == 0 { rng.below(u64::from(MAX_ORDER) / 2) as u32 } else { 0 };
            let got = if order == 0 {
                alloc_page(&mut cpus[cpu], &mut zone, &mut mm, 31).unwrap()
            } else {
                zone.alloc_pages(&mut mm, order).ok()
            };
            if let Some(p) = got {
                held.push((p, order));
            }
        } else {
            let (p, order) = held.swap_remove(rng.below(held.len() as u64) as usize);
            if order == 0 {
                free_page(&mut cpus[cpu], &mut zone, &mut mm, p, 31, 186).unwrap();
            } else {
                zone.free_pages(&mut mm, p, order).unwrap();
            }
        }
        let on_lists: u64 = cpus.iter().map(PerCpuPages::count).sum();
        let used: u64 = held.iter().map(|&(_, o)| 1u64 << o).sum();
        assert_eq!(zone.nr_free_pages() + on_lists + used, 8192, "step {step}");
        if step % 500 == 0 {
            zone.check(&mm).unwrap();
            cpus.iter().try_for_each(|c| c.check(&mm)).unwrap();
            // No page twice: held blocks and listed pages are disjoint.
            let mut seen = BTreeSet::new();
            for &(p, o) in &held {
                assert!((p..p + (1 << o)).all(|q| seen.insert(q)), "{p:#x} handed out twice");
            }
            for c in &cpus {
                let mut q = c.head();
                while q != crate::page::NO_PFN {
                    assert!(seen.insert(q), "{q:#x} listed and held");
                    q = mm.page(q).unwrap().next;
                }
            }
        }
    }
    for (p, order) in held.drain(..) {
        if order == 0 {
            free_page(&mut cpus[0], &mut zone, &mut mm, p, 31, 186).unwrap();
        } else {
            zone.free_pages(&mut mm, p, order).unwrap();
        }
    }
    assert_ne!(zone.nr_free_pages(), initial.1, "pages wait on the lists");
    for c in &mut cpus {
        zone.free_pcppages_bulk(&mut mm, u64::MAX, c).unwrap();
        assert_eq!(c.count(), 0);
    }
    assert_eq!((zone.free_counts(), zone.nr_free_pages()), initial, "drained: as before");
    zone.check(&mm).unwrap();
}

#[test]
fn a_listed_page_is_not_free_for_offline_or_a_second_free() {
    let (mut mm, mut zone) = dma32(2048);
    let mut pcp = PerCpuPages::new(ZoneType::Dma32);
    let p = alloc_page(&mut pcp, &mut zone, &mut mm, 1).unwrap().unwrap();
    free_page(&mut pcp, &mut zone, &mut mm, p, 1, 6).unwrap();
    assert_eq!(pcp.count(), 1);
    let snapshot = (mm.clone(), zone.clone(), pcp.clone());
    assert_eq!(pcp.free(&mut mm, p), Err(BuddyError::NotAllocated { pfn: p }), "double free");
    assert_eq!(zone.free_pages(&mut mm, p, 0), Err(BuddyError::NotAllocated { pfn: p }));
    let (start, end) = (Pfn::new(0x1000), Pfn::new(0x1800));
    assert_eq!(zone.take_free_range(&mut mm, start, end), Err(BuddyError::Busy { pfn: p }));
    assert_eq!((&mm, &zone, &pcp), (&snapshot.0, &snapshot.1, &snapshot.2), "nothing changed");
    // drain_all_pages, then the range comes back whole.
    zone.free_pcppages_bulk(&mut mm, u64::MAX, &mut pcp).unwrap();
    assert_eq!(zone.take_free_range(&mut mm, start, end), Ok(0x800));
    assert_eq!(zone.managed_pages(), 0);
    zone.check(&mm).unwrap();
}

#[test]
fn lists_and_zones_do_not_mix() {
    let (mut mm, mut zone) = dma32(1024);
    let mut dma = PerCpuPages::new(ZoneType::Dma);
    let e = zone.rmqueue_bulk(&mut mm, 1, &mut dma).unwrap_err();
    assert!(matches!(e, BuddyError::Corrupt { .. }));
    let p = zone.alloc_pages(&mut mm, 0).unwrap();
    assert_eq!(dma.free(&mut mm, p), Err(BuddyError::WrongZone { pfn: p, zone: ZoneType::Dma }));
    let mut normal = Zone::new(ZoneType::Normal);
    let e = normal.free_pages(&mut mm, p, 0);
    assert_eq!(e, Err(BuddyError::WrongZone { pfn: p, zone: ZoneType::Normal }));
    zone.free_pages(&mut mm, p, 0).unwrap();
    zone.check(&mm).unwrap();
}

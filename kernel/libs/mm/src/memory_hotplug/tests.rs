use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec;
use alloc::vec::Vec;

use super::*;
use crate::buddy::BuddyAllocator;
use crate::e820::E820Type;
use crate::iomem::IoMem;
use crate::memblock::RegionList;
use crate::memory_block::DimmName;
use crate::migrate::{MigrateBackend, MovablePages};
use crate::page::{MemMap, Page};
use crate::sparse::tests::{TestBackend, booted};
use crate::sparse::{Sparse, SparseBackend, UsageSnapshot, flags};
use crate::zone::ZoneSpan;
use rng::Rng;

const M: u64 = 1 << 20;
const G: u64 = 1 << 30;
const BLOCK: u64 = 128 * M;
const SEC: u64 = PAGES_PER_SECTION;
const SUBSECTION: u64 = 2 * M;

/// The descriptors as the page allocator reaches them (the kernel's
/// vmemmap): every populated one, a section at a time in one slice.
struct Memmap<'a>(&'a mut TestBackend);

impl MemMap for Memmap<'_> {
    fn page(&self, pfn: Pfn) -> Option<&Page> {
        self.0.page(pfn)
    }

    fn page_mut(&mut self, pfn: Pfn) -> Option<&mut Page> {
        self.0.page_mut(pfn)
    }

    fn pages_mut(&mut self, pfn: Pfn, nr: u64) -> Option<&mut [Page]> {
        let one_section = nr > 0 && pfn_to_section_nr(pfn + nr - 1) == pfn_to_section_nr(pfn);
        if one_section { self.0.memmap_mut(pfn, nr) } else { None }
    }
}

/// A machine's memory facts: the firmware map, the user map after
/// `memmap=`/`mem=`, the bootloader's pieces and memblock.memory.
struct Machine {
    bios: Vec<Entry>,
    user: Vec<Entry>,
    in_use: Vec<PhysRange>,
    memory: Vec<(u64, u64)>,
}

/// Like the QEMU test machine, smaller: RAM below 640 KiB, from 1 MiB to
/// 1.5 GiB and from 4 GiB to 4.5 GiB; `memmap=64M!0x108000000` (persistent
/// memory at the start of memory33), then `mem=768M`, so memory6..11 and
/// memory32..35 are withheld; the bootloader left a piece in memory10.
fn machine() -> Machine {
    let low = [Entry::new(0, 0x9fc00, E820Type::RAM), Entry::new(0xf0000, M, E820Type::RESERVED)];
    let hole = Entry::new(0xfffc_0000, 4 * G, E820Type::RESERVED);
    let mut bios = low.to_vec();
    bios.extend([Entry::new(M, 1536 * M, E820Type::RAM), hole]);
    bios.push(Entry::new(4 * G, 4 * G + 512 * M, E820Type::RAM));
    let mut user = low.to_vec();
    user.extend([Entry::new(M, 768 * M, E820Type::RAM), hole]);
    user.push(Entry::new(4 * G + BLOCK, 4 * G + BLOCK + 64 * M, E820Type::PRAM));
    Machine {
        bios,
        user,
        in_use: vec![PhysRange::new(1280 * M + M, 1280 * M + 2 * M)],
        memory: vec![(0x1000, 0x9f000), (M, 768 * M)],
    }
}

/// The memory model under the blocks: the real sparse model, page
/// allocator, zones, memblock and resource tree, and a set of mapped
/// 2 MiB pieces for the physical-memory map.
struct Fake {
    sparse: Box<Sparse<TestBackend>>,
    buddy: BuddyAllocator,
    zones: NodeZones,
    memory: RegionList,
    bios: Vec<Entry>,
    user: Vec<Entry>,
    in_use: Vec<PhysRange>,
    iomem: IoMem,
    mapped: BTreeSet<u64>,
    /// Fail mapping the n-th piece from now (1 = the next).
    fail_map_in: Option<u32>,
    /// Pages of each memmap_on_memory range's altmap in use, by first pfn.
    altmap_used: BTreeMap<Pfn, u64>,
    /// Movable pages the test holds, and what each page holds.
    movable: MovablePages,
    contents: BTreeMap<Pfn, u64>,
}

/// The altmap of a memmap_on_memory range: its memmap's pages at its start.
impl MigrateBackend for Fake {
    fn alloc_target(&mut self, avoid: (Pfn, Pfn)) -> Option<Pfn> {
        let mut stash = Vec::new();
        let got = loop {
            match self.alloc(0, ZoneType::Movable) {
                Ok(p) if (avoid.0..avoid.1).contains(&p) => stash.push(p),
                Ok(p) => break Some(p),
                Err(_) => break None,
            }
        };
        stash.into_iter().for_each(|p| self.free(p, 0));
        got
    }

    fn copy_page(&mut self, from: Pfn, to: Pfn) {
        let v = self.contents[&from];
        self.contents.insert(to, v);
    }

    fn free_page(&mut self, pfn: Pfn) {
        self.contents.remove(&pfn);
        self.free(pfn, 0);
    }
}

/// Booted as the kernel boots: sparse and zones from memblock, all RAM to
/// the page allocator, `/proc/iomem` from the user map, boot blocks mapped,
/// then the blocks listed.
fn boot(m: Machine) -> (Fake, MemoryBlocks) {
    let pfns: Vec<(Pfn, Pfn)> = m.memory.iter().map(|&(s, e)| (phys_pfn(s), phys_pfn(e))).collect();
    let mut sparse = booted(&pfns);
    let mut buddy = BuddyAllocator::new();
    for &(s, e) in &pfns {
        buddy.free_range(&mut Memmap(&mut sparse.backend), s, e);
    }
    let mut memory = RegionList::new();
    m.memory.iter().for_each(|&(s, e)| memory.add(s, e - s));
    let mut mapped = BTreeSet::new();
    for &(s, e) in &m.memory {
        mapped.extend((s / BLOCK * BLOCK..e.next_multiple_of(BLOCK)).step_by(SUBSECTION as usize));
    }
    let mut fake = Fake {
        sparse,
        buddy,
        zones: NodeZones::boot(&pfns),
        memory,
        iomem: IoMem::from_e820(&m.user),
        bios: m.bios,
        user: m.user,
        in_use: m.in_use,
        mapped,
        fail_map_in: None,
        altmap_used: BTreeMap::new(),
        movable: MovablePages::new(),
        contents: BTreeMap::new(),
    };
    let mut blocks = MemoryBlocks::new();
    let end = blocks.init(&mut fake);
    assert_eq!(end, m.memory.last().unwrap().1);
    (fake, blocks)
}

impl HotplugBackend for Fake {
    fn memblock_memory(&self) -> Vec<PhysRange> {
        self.memory.regions().iter().map(|r| PhysRange::new(r.base, r.end())).collect()
    }

    fn firmware_maps(&self) -> Option<FirmwareMaps<'_>> {
        Some(FirmwareMaps { bios: &self.bios, user: &self.user, in_use: &self.in_use })
    }

    fn zones(&self) -> NodeZones {
        self.zones
    }

    fn request_conflict(&self, start: u64, end: u64) -> Option<(u64, u64, String)> {
        self.iomem.request_conflict(start, end).map(|r| (r.start, r.end, r.name.clone()))
    }

    fn add_pages(
        &mut self,
        pfn: Pfn,
        nr: u64,
        zone: ZoneType,
        memmap_on_memory: bool,
    ) -> Result<(), SparseError> {
        let mut altmap = memmap_on_memory.then(|| mhp_altmap(pfn, nr, 0));
        self.sparse.add_pages(0, pfn, nr, PAGES_PER_SECTION, altmap.as_mut())?;
        if let Some(a) = altmap {
            self.altmap_used.insert(pfn, a.alloc);
        }
        self.sparse.memmap_init_range(pfn, nr, zone, 0, 0);
        Ok(())
    }

    fn remove_pages(
        &mut self,
        pfn: Pfn,
        nr: u64,
        memmap_on_memory: bool,
    ) -> Result<(), SparseError> {
        let used = if memmap_on_memory { self.altmap_used.remove(&pfn).unwrap_or(0) } else { 0 };
        let mut altmap = memmap_on_memory.then(|| mhp_altmap(pfn, nr, used));
        self.sparse.remove_pages(pfn, nr, altmap.as_mut())
    }

    fn do_migrate_range(&mut self, start: Pfn, end: Pfn) -> Result<u64, Pfn> {
        let mut movable = core::mem::take(&mut self.movable);
        let r = movable.migrate_range(start, end, self).map_err(|e| e.pfn());
        self.movable = movable;
        r
    }

    fn init_memory_mapping(&mut self, start: u64, size: u64) -> Result<(), u64> {
        for at in (start..start + size).step_by(SUBSECTION as usize) {
            if self.mapped.contains(&at) {
                continue;
            }
            if let Some(n) = self.fail_map_in.as_mut() {
                *n -= 1;
                if *n == 0 {
                    self.fail_map_in = None;
                    return Err(at);
                }
            }
            self.mapped.insert(at);
        }
        Ok(())
    }

    fn kernel_physical_mapping_remove(&mut self, start: u64, size: u64) {
        self.mapped.retain(|&a| !(start..start + size).contains(&a));
    }

    fn memblock_add(&mut self, start: u64, size: u64) {
        self.memory.add(start, size);
    }

    fn memblock_remove(&mut self, start: u64, size: u64) {
        self.memory.remove(start, size);
    }

    fn register_memory_resource(&mut self, start: u64, size: u64) {
        self.iomem.request_region(start, start + size - 1, "System RAM").expect("checked");
    }

    fn release_mem_region_adjustable(&mut self, start: u64, size: u64) {
        self.iomem.release_adjustable(start, start + size - 1);
    }

    fn memmap_init_range(&mut self, pfn: Pfn, nr: u64, zone: ZoneType) {
        self.sparse.memmap_init_range(pfn, nr, zone, 0, 0);
    }

    fn set_pageblock_migratetype(&mut self, pfn: Pfn, nr: u64, mt: MigrateType) {
        self.sparse.set_pageblock_migratetype(pfn, nr, mt);
    }

    fn online_mem_sections(&mut self, start: Pfn, end: Pfn) {
        self.sparse.set_section_flags(start, end - start, flags::ONLINE, true);
    }

    fn offline_mem_sections(&mut self, start: Pfn, end: Pfn) {
        self.sparse.set_section_flags(start, end - start, flags::ONLINE, false);
    }

    fn free_range(&mut self, start: Pfn, end: Pfn) -> u64 {
        self.buddy.free_range(&mut Memmap(&mut self.sparse.backend), start, end)
    }

    fn take_free_range(&mut self, start: Pfn, end: Pfn) -> Result<u64, BuddyError> {
        self.buddy.take_free_range(&mut Memmap(&mut self.sparse.backend), start, end)
    }

    fn move_pfn_range_to_zone(&mut self, zone: ZoneType, pfn: Pfn, nr: u64) {
        self.zones.move_pfn_range_to_zone(zone, pfn, nr);
    }

    fn adjust_present_page_count(&mut self, zone: ZoneType, nr: i64) {
        self.zones.adjust_present_page_count(zone, nr);
    }

    fn remove_pfn_range_from_zone(&mut self, zone: ZoneType, pfn: Pfn, nr: u64) {
        self.zones.remove_pfn_range_from_zone(&self.sparse, zone, pfn, nr);
    }
}

impl Fake {
    fn alloc(&mut self, order: u32, zone: ZoneType) -> Result<Pfn, BuddyError> {
        self.buddy.alloc_pages(&mut Memmap(&mut self.sparse.backend), order, zone)
    }

    fn free(&mut self, pfn: Pfn, order: u32) {
        self.buddy.free_pages(&mut Memmap(&mut self.sparse.backend), pfn, order).unwrap();
    }

    fn check_buddy(&mut self) {
        self.buddy.check(&Memmap(&mut self.sparse.backend)).expect("free lists consistent");
    }

    fn section(&self, nr: u64) -> (u64, u64) {
        let ms = self.sparse.section_or_empty(nr);
        (ms.flags(), ms.subsection_map(&self.sparse.guard()))
    }

    /// Bytes of `[start, end)` in "System RAM" resources.
    fn iomem_ram(&self, start: u64, end: u64) -> u64 {
        let ram = self.iomem.iter().map(|(_, r)| r).filter(|r| r.name == "System RAM");
        ram.map(|r| (r.end + 1).min(end).saturating_sub(r.start.max(start))).sum()
    }
}

/// Everything an operation may change.
#[derive(Debug, Clone, PartialEq)]
struct Snapshot {
    blocks: MemoryBlocks,
    zones: NodeZones,
    sections: Vec<(u64, u64, Option<UsageSnapshot>)>,
    buddy: BuddyAllocator,
    memory: RegionList,
    iomem: IoMem,
    mapped: BTreeSet<u64>,
}

fn snapshot(f: &Fake, blocks: &MemoryBlocks) -> Snapshot {
    let sections = (0..40)
        .map(|nr| {
            let ms = f.sparse.section_or_empty(nr);
            (ms.raw(), f.sparse.subsection_map(nr), f.sparse.usage_snapshot(nr))
        })
        .collect();
    Snapshot {
        blocks: blocks.clone(),
        zones: f.zones,
        sections,
        buddy: f.buddy.clone(),
        memory: f.memory.clone(),
        iomem: f.iomem.clone(),
        mapped: f.mapped.clone(),
    }
}

/// Runs `op` and checks that it fails with `text` and changes nothing.
fn refused<T: fmt::Debug>(
    f: &mut Fake,
    blocks: &mut MemoryBlocks,
    text: &str,
    op: impl FnOnce(&mut Fake, &mut MemoryBlocks) -> Result<T, HotplugError>,
) -> HotplugError {
    let before = snapshot(f, blocks);
    let e = op(f, blocks).expect_err(text);
    assert_eq!(e.to_string(), text);
    assert!(e.to_string().starts_with(e.errno()), "{e}");
    assert!(snapshot(f, blocks) == before, "{e}: a refusal changed the model");
    e
}

#[test]
fn boot_memory_is_listed_in_blocks_with_their_zones() {
    let (f, blocks) = boot(machine());
    assert_eq!(blocks.block_size(), BLOCK);
    let ids: Vec<u64> = blocks.blocks().iter().map(|b| b.id).collect();
    assert_eq!(ids, [0, 1, 2, 3, 4, 5]);
    assert!(blocks.blocks().iter().all(|b| b.boot && b.state == BlockState::Online));
    let line =
        |id| BlockLine(blocks.block(id).unwrap(), blocks.block(id).unwrap().valid_zones(&f.zones));
    assert_eq!(
        line(0).to_string(),
        "memory0 online  [mem 0x0000000000000000-0x0000000007ffffff] none (boot) phys_index \
         00000000 memmap_on_memory 0 dimm -"
    );
    assert_eq!(
        line(5).to_string(),
        "memory5 online  [mem 0x0000000028000000-0x000000002fffffff] DMA32 (boot) phys_index \
         00000005 memmap_on_memory 0 dimm -"
    );
    assert_eq!(blocks.block(5).unwrap().zone, Some(ZoneType::Dma32));
    assert_eq!(MemoryBlocks::new().block_size(), 0);
    assert!(MemoryBlocks::new().blocks().is_empty());
}

#[test]
fn add_memory_refuses_in_linux_order_then_tessera_s() {
    let (mut f, mut b) = boot(machine());
    // Beyond MAX_PHYSMEM_BITS comes first, even unaligned and not RAM.
    refused(
        &mut f,
        &mut b,
        "E2BIG: Hotplug memory [0x400000000000-0x400000001000] exceeds maximum addressable range \
         [0x0-0x3fffffffffff]",
        |f, b| b.add_memory(f, 1 << 46, 4096),
    );
    // The "System RAM" resource conflicts before alignment is looked at.
    let e = refused(
        &mut f,
        &mut b,
        "EEXIST: System RAM resource [mem 0x0000000020100000-0x00000000202fffff] cannot be added: \
         it conflicts with \"System RAM\" [mem 0x0000000000100000-0x000000002fffffff]",
        |f, b| b.add_memory(f, 512 * M + M, 2 * M),
    );
    assert!(matches!(e, HotplugError::Add(AddError::Exist { .. })));
    refused(
        &mut f,
        &mut b,
        "EEXIST: System RAM resource [mem 0x0000000108000000-0x000000010fffffff] cannot be added: \
         it conflicts with \"Persistent Memory (legacy)\" [mem \
         0x0000000108000000-0x000000010bffffff]",
        |f, b| b.probe(f, 4 * G + BLOCK),
    );
    // Then whole blocks.
    refused(
        &mut f,
        &mut b,
        "EINVAL: Block size [0x8000000] unaligned hotplug range: start 0x110000000, size 0x4000000",
        |f, b| b.add_memory(f, 4 * G + 2 * BLOCK, 64 * M),
    );
    // Then Tessera's own: probe's alignment, firmware RAM, the bootloader.
    refused(
        &mut f,
        &mut b,
        "EINVAL: 0x100001000 size 0x8000000 is not a whole number of 128 MiB units",
        |f, b| b.probe(f, 4 * G + 4096),
    );
    refused(
        &mut f,
        &mut b,
        "EINVAL: [mem 0x00000000c0000000-0x00000000c7ffffff] is not all System RAM in the \
         firmware map (not from 0xc0000000)",
        |f, b| b.probe(f, 3 * G),
    );
    refused(
        &mut f,
        &mut b,
        "EINVAL: [mem 0x0000000058000000-0x0000000067ffffff] is not all System RAM in the \
         firmware map (not from 0x60000000)",
        |f, b| b.add_memory(f, 1408 * M, 2 * BLOCK),
    );
    refused(
        &mut f,
        &mut b,
        "EBUSY: [mem 0x0000000050000000-0x0000000057ffffff] holds the kernel or bootloader data \
         at [mem 0x0000000050100000-0x00000000501fffff]",
        |f, b| b.probe(f, 1280 * M),
    );
    // The memory model or the physical-memory map fails: all undone.
    f.sparse.backend.fail_populate_in = Some(1);
    refused(&mut f, &mut b, "ENOMEM: out of memory for memmap", |f, b| b.probe(f, 4 * G));
    f.fail_map_in = Some(5);
    refused(&mut f, &mut b, "ENOMEM: cannot map 0x100800000 in the kernel", |f, b| {
        b.probe(f, 4 * G)
    });
    // Several blocks at once.
    let added = b.add_memory(&mut f, 768 * M, 2 * BLOCK).unwrap();
    assert_eq!(added.iter().map(|x| x.id).collect::<Vec<_>>(), [6, 7]);
    refused(
        &mut f,
        &mut b,
        "EEXIST: System RAM resource [mem 0x0000000038000000-0x000000003fffffff] cannot be added: \
         it conflicts with \"System RAM\" [mem 0x0000000030000000-0x000000003fffffff]",
        |f, b| b.probe(f, 896 * M),
    );
}

#[test]
fn online_offline_and_remove_refuse_in_order() {
    let (mut f, mut b) = boot(machine());
    refused(&mut f, &mut b, "ENODEV: no memory32", |f, b| b.online(f, 32));
    refused(&mut f, &mut b, "ENODEV: no memory32", |f, b| b.offline(f, 32));
    refused(&mut f, &mut b, "ENODEV: no memory32", |f, b| b.remove(f, 32));
    refused(&mut f, &mut b, "EINVAL: memory3 is online", |f, b| b.online(f, 3));
    refused(
        &mut f,
        &mut b,
        "EBUSY: removing memory fails, because memory [0x0000000018000000-0x000000001fffffff] \
         is onlined",
        |f, b| b.remove(f, 3),
    );
    refused(&mut f, &mut b, "EINVAL: memory0 has holes (not all of it is RAM)", |f, b| {
        b.offline(f, 0)
    });
    b.probe(&mut f, 4 * G).unwrap();
    refused(&mut f, &mut b, "EINVAL: memory32 is offline", |f, b| b.offline(f, 32));
    // A page in use: EBUSY, naming the first one.
    let (on, freed) = b.online_type(&mut f, 32, OnlineType::OnlineKernel).unwrap();
    assert_eq!((on.state, on.zone, freed), (BlockState::Online, Some(ZoneType::Normal), SEC));
    let p = f.alloc(3, ZoneType::Normal).unwrap();
    let q = f.alloc(0, ZoneType::Normal).unwrap();
    let first = p.min(q);
    let text = alloc::format!(
        "EBUSY: memory32: pfn {first:#x} is in use and cannot be migrated (unmovable, pinned or \
         reserved); nothing taken"
    );
    let e = refused(&mut f, &mut b, &text, |f, b| b.offline(f, 32));
    assert_eq!(e, HotplugError::Busy { id: 32, pfn: first });
    f.free(p, 3);
    f.free(q, 0);
    assert_eq!(b.offline(&mut f, 32).unwrap().1, SEC);
    b.remove(&mut f, 32).unwrap();
    refused(&mut f, &mut b, "ENODEV: no memory32", |f, b| b.remove(f, 32));
}

#[test]
fn a_boot_block_spanning_zones_is_not_offlined_holes_first() {
    // RAM from 0: memory0 has no holes but spans DMA and DMA32.
    let ram = Entry::new(0, 256 * M, E820Type::RAM);
    let m =
        Machine { bios: vec![ram], user: vec![ram], in_use: vec![], memory: vec![(0, 256 * M)] };
    let (mut f, mut b) = boot(m);
    assert_eq!(b.block(0).unwrap().zone, None);
    // Pages in use do not come first: the block has no zone.
    let held: Vec<Pfn> = (0..2).map(|_| f.alloc(10, ZoneType::Dma).unwrap()).collect();
    refused(&mut f, &mut b, "EINVAL: memory0 spans zones DMA and DMA32", |f, b| b.offline(f, 0));
    held.into_iter().for_each(|p| f.free(p, 10));
    assert_eq!(b.offline(&mut f, 1).unwrap().0.state, BlockState::Offline);
}

#[test]
fn errors_print_as_before() {
    use crate::sparse::SparseError;
    let table: [(HotplugError, &str, &str); 9] = [
        (HotplugError::NoBlock { id: 7 }, "ENODEV", "ENODEV: no memory7"),
        (HotplugError::Exist { id: 7 }, "EEXIST", "EEXIST: memory7 exists already"),
        (
            HotplugError::Unaligned { id: 7 },
            "EINVAL",
            "EINVAL: memory7: online needs a pageblock-aligned start and a section-aligned end",
        ),
        (
            HotplugError::State { id: 7, state: BlockState::Offline },
            "EINVAL",
            "EINVAL: memory7 is offline",
        ),
        (
            HotplugError::SpansZones { id: 0, zones: (ZoneType::Dma, ZoneType::Dma32) },
            "EINVAL",
            "EINVAL: memory0 spans zones DMA and DMA32",
        ),
        (
            HotplugError::Sparse(SparseError::Exist { pfn: Pfn(0x100000), nr_pages: 0x8000 }),
            "EEXIST",
            "EEXIST: pfn 0x100000 + 0x8000 overlaps active sub-sections",
        ),
        (HotplugError::Map { addr: 0x1000 }, "ENOMEM", "ENOMEM: cannot map 0x1000 in the kernel"),
        (
            HotplugError::Buddy(BuddyError::Corrupt { pfn: Pfn(5), what: "bad buddy" }),
            "EFAULT",
            "EFAULT: buddy: corrupt at pfn 0x5: bad buddy",
        ),
        (
            HotplugError::Probe(ProbeError::InUse { start: 0, size: BLOCK }),
            "EEXIST",
            "EEXIST: [mem 0x0000000000000000-0x0000000007ffffff] is (partly) System RAM the \
             kernel already has",
        ),
    ];
    for (e, errno, text) in table {
        assert_eq!((e.errno(), e.to_string().as_str()), (errno, text));
    }
}

/// What the naive model expects of an operation.
#[derive(Debug, PartialEq, Eq)]
enum Want {
    Ok,
    Err(&'static str),
}

/// Node 0 and the blocks, the naive way: which blocks are present and in
/// which state and zone, the two zone spans hotplug can move, and the
/// pages the test holds.
struct Model {
    blocks: BTreeMap<u64, (BlockState, Option<ZoneType>, bool)>,
    /// ZONE_DMA32 spans `[16 MiB, dma32_end)`: memory0 keeps its start.
    dma32_end: Pfn,
    /// ZONE_NORMAL's `[start, end)`, `(0, 0)` when empty.
    normal: (Pfn, Pfn),
    /// ZONE_MOVABLE's `[start, end)`, `(0, 0)` when empty.
    movable: (Pfn, Pfn),
    /// Allocated blocks: first pfn -> (order, zone).
    held: BTreeMap<Pfn, (u32, ZoneType)>,
    /// memory0's pages in ZONE_DMA and ZONE_DMA32.
    boot0: (u64, u64),
    /// Blocks offlined (not onlined or removed since): their pageblocks
    /// are MIGRATE_ISOLATE.
    isolated: BTreeSet<u64>,
}

/// Pages of block `id`.
const fn pfns(id: u64) -> (Pfn, Pfn) {
    (Pfn::new(id * SEC), Pfn::new((id + 1) * SEC))
}

impl Model {
    fn online_in(&self, zone: ZoneType) -> impl Iterator<Item = u64> + '_ {
        self.blocks
            .iter()
            .filter(move |(_, s)| s.0 == BlockState::Online && s.1 == Some(zone))
            .map(|(&id, _)| id)
    }

    fn present(&self, zone: ZoneType) -> u64 {
        let boot = match zone {
            ZoneType::Dma => self.boot0.0,
            ZoneType::Dma32 => self.boot0.1,
            _ => 0,
        };
        boot + self.online_in(zone).count() as u64 * SEC
    }

    fn held_in(&self, zone: ZoneType) -> u64 {
        self.held.values().filter(|h| h.1 == zone).map(|h| 1 << h.0).sum()
    }

    /// What probing block `id` does on this machine.
    fn probe(&self, id: u64) -> Want {
        // memory33 starts with persistent memory, memory31 ends in the
        // firmware's reserved range below 4 GiB: the resource conflicts.
        if self.blocks.contains_key(&id) || id == 33 || id == 31 {
            Want::Err("EEXIST")
        } else if id == 10 {
            Want::Err("EBUSY")
        } else if (1..12).contains(&id) || [32, 34, 35].contains(&id) {
            Want::Ok
        } else {
            Want::Err("EINVAL")
        }
    }

    /// `zone_for_pfn_range`: the kernel zone is DMA32 while its span
    /// meets the block, else Normal; `online` picks ZONE_MOVABLE only when
    /// its span meets the block and the kernel zone's does not.
    fn zone_for(&self, id: u64, t: OnlineType) -> ZoneType {
        let (s, e) = pfns(id);
        let meets = |z: (Pfn, Pfn)| z.0 < z.1 && s < z.1 && z.0 < e;
        let kernel = if s < self.dma32_end { ZoneType::Dma32 } else { ZoneType::Normal };
        let in_kernel = kernel == ZoneType::Dma32 || meets(self.normal);
        match t {
            OnlineType::OnlineKernel => kernel,
            OnlineType::OnlineMovable => ZoneType::Movable,
            OnlineType::Online if meets(self.movable) && !in_kernel => ZoneType::Movable,
            OnlineType::Online => kernel,
        }
    }

    fn span_mut(&mut self, zone: ZoneType) -> Option<&mut (Pfn, Pfn)> {
        match zone {
            ZoneType::Normal => Some(&mut self.normal),
            ZoneType::Movable => Some(&mut self.movable),
            _ => None,
        }
    }

    fn online(&mut self, id: u64, zone: ZoneType) {
        self.blocks.insert(id, (BlockState::Online, Some(zone), self.blocks[&id].2));
        let (s, e) = pfns(id);
        if let Some(n) = self.span_mut(zone) {
            *n = if n.0 == n.1 { (s, e) } else { (n.0.min(s), n.1.max(e)) };
        }
    }

    fn offline(&mut self, id: u64) {
        let zone = self.blocks[&id].1.unwrap();
        self.blocks.insert(id, (BlockState::Offline, None, self.blocks[&id].2));
        let (s, e) = pfns(id);
        if zone == ZoneType::Dma32 {
            if e == self.dma32_end {
                let ends = self.online_in(zone).map(|i| pfns(i).1);
                self.dma32_end = ends.max().unwrap_or(Pfn(SEC));
            }
            return;
        }
        let above = self.online_in(zone).map(|i| pfns(i).0).filter(|&a| a >= e).min();
        let below = self.online_in(zone).map(|i| pfns(i).1).filter(|&z| z <= s).max();
        let span = self.span_mut(zone).expect("Normal or Movable");
        if s == span.0 {
            *span = above.map_or((Pfn(0), Pfn(0)), |a| (a, span.1));
        } else if e == span.1 {
            *span = below.map_or((Pfn(0), Pfn(0)), |z| (span.0, z));
        }
    }

    /// Checks the fake against the model.
    fn check(&self, f: &mut Fake, blocks: &MemoryBlocks, step: u32) {
        let got: BTreeMap<u64, (BlockState, Option<ZoneType>, bool)> =
            blocks.blocks().iter().map(|b| (b.id, (b.state, b.zone, b.boot))).collect();
        assert_eq!(got, self.blocks, "step {step}: blocks");
        for b in blocks.blocks() {
            assert_eq!((b.start, b.size), (b.id * BLOCK, BLOCK), "step {step}");
        }
        let dma32 = ZoneSpan {
            zone_start_pfn: Pfn(4096),
            spanned_pages: self.dma32_end - Pfn(4096),
            present_pages: self.present(ZoneType::Dma32),
        };
        let normal = ZoneSpan {
            zone_start_pfn: self.normal.0,
            spanned_pages: self.normal.1 - self.normal.0,
            present_pages: self.present(ZoneType::Normal),
        };
        assert_eq!(*f.zones.zone(ZoneType::Dma32), dma32, "step {step}: DMA32");
        assert_eq!(*f.zones.zone(ZoneType::Normal), normal, "step {step}: Normal");
        let movable = ZoneSpan {
            zone_start_pfn: self.movable.0,
            spanned_pages: self.movable.1 - self.movable.0,
            present_pages: self.present(ZoneType::Movable),
        };
        assert_eq!(*f.zones.zone(ZoneType::Movable), movable, "step {step}: Movable");
        assert_eq!(f.zones.zone(ZoneType::Dma).present_pages, self.boot0.0, "step {step}");
        for z in [ZoneType::Dma, ZoneType::Dma32, ZoneType::Normal, ZoneType::Movable] {
            let managed = self.present(z);
            assert_eq!(f.buddy.managed(z), managed, "step {step}: {z} managed");
            assert_eq!(f.buddy.nr_free(z), managed - self.held_in(z), "step {step}: {z} free");
        }
        let mut memory = RegionList::new();
        memory.add(0x1000, 0x9e000);
        memory.add(M, BLOCK - M);
        for nr in 0..40 {
            let (flags_, map) = f.section(nr);
            let block = self.blocks.get(&nr);
            let want = if block.is_some() { u64::MAX } else { 0 };
            assert_eq!(map, want, "step {step}: sub-sections of section {nr}");
            let online = block.is_some_and(|b| b.0 == BlockState::Online);
            assert_eq!(flags_ & flags::ONLINE != 0, online, "step {step}: section {nr} online");
            let (start, end) = (nr * BLOCK, (nr + 1) * BLOCK);
            if nr > 0 && block.is_some() {
                memory.add(start, BLOCK);
            }
            let pieces = f.mapped.range(start..end).count() as u64;
            let ram = f.iomem_ram(start, end);
            if nr > 0 {
                let want = if block.is_some() { (BLOCK / SUBSECTION, BLOCK) } else { (0, 0) };
                assert_eq!((pieces, ram), want, "step {step}: memory{nr} mapped, in iomem");
            }
            let want = match block {
                Some(b) if b.0 == BlockState::Online => Some(MigrateType::Movable),
                _ if self.isolated.contains(&nr) => Some(MigrateType::Isolate),
                _ => None,
            };
            if want.is_some() {
                for pfn in (phys_pfn(start)..phys_pfn(end)).step_by(PAGEBLOCK_NR_PAGES as usize) {
                    let mt = f.sparse.pageblock_migratetype(pfn);
                    assert_eq!(mt, want, "step {step}: memory{nr} pageblock at {pfn:#x}");
                }
            }
        }
        assert_eq!(f.memory, memory, "step {step}: memblock.memory");
    }
}

/// Random probe, online (all three ways), offline and remove over
/// memory0..39, with pages allocated and freed in between (so offline
/// meets pages in use) and memmap and mapping failures injected; after
/// every step the blocks, the zones' spans and present pages, the
/// sub-section bits, online marks, pageblocks, memblock, `/proc/iomem`,
/// the physical-memory map and the free and managed pages match a naive
/// model, and a refused operation changed nothing.
#[test]
fn random_hotplug_matches_a_naive_model() {
    let (mut f, mut blocks) = boot(machine());
    let dma = f.zones.zone(ZoneType::Dma).present_pages;
    let mut model = Model {
        blocks: (0..6)
            .map(|id| (id, (BlockState::Online, blocks.block(id).unwrap().zone, true)))
            .collect(),
        dma32_end: Pfn(6 * SEC),
        normal: (Pfn(0), Pfn(0)),
        movable: (Pfn(0), Pfn(0)),
        held: BTreeMap::new(),
        isolated: BTreeSet::new(),
        boot0: (dma, f.zones.zone(ZoneType::Dma32).present_pages - 5 * SEC),
    };
    model.check(&mut f, &blocks, 0);
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    let mut seen: BTreeMap<(&str, &str), u32> = BTreeMap::new();
    for step in 1..=3000 {
        let id = match rng.below(4) {
            0 => 30 + rng.below(8),
            _ => rng.below(14),
        };
        let before = snapshot(&f, &blocks);
        let op = rng.below(100);
        let (name, want, got): (&str, Want, Result<(), HotplugError>) = match op {
            0..=21 => {
                // Half the time a block that is not there.
                let absent: Vec<u64> =
                    (1..14).chain(30..38).filter(|i| !model.blocks.contains_key(i)).collect();
                let id = if rng.below(2) == 0 {
                    absent[rng.below(absent.len() as u64) as usize]
                } else {
                    id
                };
                let mut want = model.probe(id);
                if want == Want::Ok && rng.below(6) == 0 {
                    f.sparse.backend.fail_populate_in = Some(1);
                    want = Want::Err("ENOMEM");
                } else if want == Want::Ok && rng.below(6) == 0 {
                    f.fail_map_in = Some(1 + rng.below(64) as u32);
                    want = Want::Err("ENOMEM");
                }
                let got = blocks.probe(&mut f, id * BLOCK);
                (f.sparse.backend.fail_populate_in, f.fail_map_in) = (None, None);
                if let Ok(b) = got {
                    assert_eq!(
                        (b.id, b.state, b.boot, b.zone),
                        (id, BlockState::Offline, false, None)
                    );
                    model.blocks.insert(id, (BlockState::Offline, None, false));
                }
                ("probe", want, got.map(drop))
            }
            22..=23 => {
                let addr = if rng.below(2) == 0 { 1 << 46 } else { id * BLOCK + 4096 };
                let want = Want::Err(if addr == 1 << 46 { "E2BIG" } else { "EINVAL" });
                ("probe", want, blocks.probe(&mut f, addr).map(drop))
            }
            24..=49 => {
                let t = match rng.below(8) {
                    0 => OnlineType::OnlineMovable,
                    1..=3 => OnlineType::OnlineKernel,
                    _ => OnlineType::Online,
                };
                let want = match model.blocks.get(&id) {
                    None => Want::Err("ENODEV"),
                    Some(b) if b.0 == BlockState::Online => Want::Err("EINVAL"),
                    Some(_) => Want::Ok,
                };
                let zone = model.zone_for(id, t);
                let got = blocks.online_type(&mut f, id, t);
                if let Ok((b, freed)) = got {
                    let got = (b.state, b.zone, freed);
                    assert_eq!(
                        got,
                        (BlockState::Online, Some(zone), SEC),
                        "step {step}: memory{id}"
                    );
                    model.online(id, zone);
                    model.isolated.remove(&id);
                }
                let name = if got.is_ok() && zone == ZoneType::Movable {
                    "online movable"
                } else {
                    "online"
                };
                (name, want, got.map(drop))
            }
            50..=71 => {
                let (s, e) = pfns(id);
                let busy = model.held.range(s..e).next().map(|(&p, _)| p);
                let want = match (model.blocks.get(&id), busy) {
                    (None, _) => Want::Err("ENODEV"),
                    (Some(b), _) if b.0 == BlockState::Offline => Want::Err("EINVAL"),
                    _ if id == 0 => Want::Err("EINVAL"),
                    (_, Some(_)) => Want::Err("EBUSY"),
                    _ => Want::Ok,
                };
                let got = blocks.offline(&mut f, id);
                match (&got, busy) {
                    (Ok((b, taken)), _) => {
                        let got = (b.state, b.zone, *taken);
                        assert_eq!(
                            got,
                            (BlockState::Offline, None, SEC),
                            "step {step}: memory{id}"
                        );
                        model.offline(id);
                        model.isolated.insert(id);
                    }
                    (Err(e @ HotplugError::Busy { .. }), Some(pfn)) => {
                        assert_eq!(*e, HotplugError::Busy { id, pfn }, "step {step}");
                    }
                    _ => {}
                }
                ("offline", want, got.map(drop))
            }
            72..=83 => {
                let want = match model.blocks.get(&id) {
                    None => Want::Err("ENODEV"),
                    Some(b) if b.0 == BlockState::Online => Want::Err("EBUSY"),
                    Some(_) => Want::Ok,
                };
                let got = blocks.remove(&mut f, id);
                if got.is_ok() {
                    model.blocks.remove(&id);
                    model.isolated.remove(&id);
                }
                ("remove", want, got.map(drop))
            }
            84..=91 if model.held.len() < 12 => {
                let order = rng.below(11) as u32;
                let zone = if rng.below(2) == 0 { ZoneType::Normal } else { ZoneType::Dma32 };
                if let Ok(p) = f.alloc(order, zone) {
                    let z = f.sparse.backend.page(p).unwrap().zone();
                    model.held.insert(p, (order, z));
                }
                ("alloc", Want::Ok, Ok(()))
            }
            _ => {
                if let Some((&p, &(order, _))) =
                    model.held.iter().nth(rng.below(model.held.len() as u64 + 1) as usize)
                {
                    f.free(p, order);
                    model.held.remove(&p);
                }
                ("free", Want::Ok, Ok(()))
            }
        };
        let errno = match &got {
            Ok(()) => "ok",
            Err(e) => e.errno(),
        };
        match want {
            Want::Ok => assert!(got.is_ok(), "step {step}: {name} memory{id}: {got:?}"),
            Want::Err(w) => {
                assert_eq!(errno, w, "step {step}: {name} memory{id}: {got:?}");
                assert!(snapshot(&f, &blocks) == before, "step {step}: {name} refused, changed");
            }
        }
        *seen.entry((name, errno)).or_default() += 1;
        model.check(&mut f, &blocks, step);
        if step % 500 == 0 {
            f.check_buddy();
        }
    }
    // Every outcome came up, most of them often.
    for (k, n) in [
        (("probe", "ok"), 50),
        (("probe", "EEXIST"), 50),
        (("probe", "EINVAL"), 50),
        (("probe", "EBUSY"), 10),
        (("probe", "ENOMEM"), 10),
        (("probe", "E2BIG"), 10),
        (("online", "ok"), 50),
        (("online movable", "ok"), 10),
        (("online", "EINVAL"), 50),
        (("online", "ENODEV"), 50),
        (("offline", "ok"), 50),
        (("offline", "EBUSY"), 10),
        (("offline", "EINVAL"), 50),
        (("remove", "ok"), 50),
        (("remove", "EBUSY"), 50),
    ] {
        assert!(seen.get(&k).is_some_and(|&c| c >= n), "{k:?}: {:?} (all: {seen:?})", seen.get(&k));
    }
    // DMA32's end came down (a boot block went) and Normal was populated.
    assert!(seen.contains_key(&("alloc", "ok")));
}

#[test]
fn lsmem_sizes() {
    for (bytes, want) in [
        (128 * M, "128M"),
        (2 * G, "2G"),
        (3 * G / 2, "1.5G"),
        (G + 100 * M, "1.1G"),
        (2 * G - 1, "2G"),
        (512, "512B"),
        (0, "0B"),
        (1 << 40, "1T"),
        (u64::MAX, "16E"),
    ] {
        assert_eq!(lsmem_size(bytes), want, "{bytes:#x}");
    }
}

/// Each block's JSON object says what its text line says: the line built
/// back from the object is the line; lsmem's fields are lsmem's.
#[test]
fn memory_json_matches_the_lines() {
    use crate::memory_block::OnlineZone;
    let block = |id: u64, state, boot, zone| MemoryBlock {
        id,
        start: id * BLOCK,
        size: BLOCK,
        state,
        boot,
        zone,
        dimm: (id == 40).then(|| DimmName::new("MP00").unwrap()),
        nr_vmemmap_pages: if id == 40 { 512 } else { 0 },
    };
    let kernel = |z| Some(OnlineZone::Kernel(z));
    let blocks = [
        (
            block(0, BlockState::Online, true, None),
            ValidZones { first: None, kernel: None, movable: None },
        ),
        (
            block(1, BlockState::Online, true, Some(ZoneType::Dma32)),
            ValidZones { first: kernel(ZoneType::Dma32), kernel: None, movable: None },
        ),
        (
            block(40, BlockState::Offline, false, None),
            ValidZones {
                first: kernel(ZoneType::Normal),
                kernel: None,
                movable: Some(OnlineZone::Movable),
            },
        ),
    ];
    let text = memory_json(BLOCK, &blocks);
    assert!(!text.contains('\n'));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["block_size_bytes"], BLOCK);
    let got = v["memory"].as_array().unwrap();
    assert_eq!(got.len(), blocks.len());
    for (j, (b, vz)) in got.iter().zip(&blocks) {
        let t = &j["tessera"];
        let line = format!(
            "memory{} {:<7} [mem {}] {}{} phys_index {} memmap_on_memory {} dimm {}",
            j["block"].as_str().unwrap(),
            j["state"].as_str().unwrap(),
            j["range"].as_str().unwrap(),
            t["valid_zones"].as_str().unwrap(),
            if t["boot"] == true { " (boot)" } else { "" },
            t["phys_index"].as_str().unwrap(),
            u8::from(t["memmap_on_memory"] == true),
            t["dimm"].as_str().unwrap_or("-"),
        );
        assert_eq!(line, BlockLine(b, *vz).to_string());
        assert_eq!(t["start"], b.start);
        assert_eq!(t["end"], b.end() - 1);
        assert_eq!(j["size"], "128M");
        assert_eq!(j["node"], 0);
        assert_eq!(j["removable"], b.state == BlockState::Online);
    }
    assert_eq!(got[0]["zones"], "None");
    assert_eq!(got[1]["zones"], "DMA32");
    assert_eq!(got[2]["zones"], "Normal/Movable");
    assert_eq!(got[2]["range"], "0x0000000140000000-0x0000000147ffffff");
    assert_eq!(got[2]["tessera"]["dimm"], "MP00");
    assert_eq!(got[2]["tessera"]["nr_vmemmap_pages"], 512);
    assert_eq!(got[1]["tessera"]["zone"], "DMA32");
    assert_eq!(got[0]["tessera"]["zone"], serde_json::Value::Null);
    assert_eq!(got[0]["tessera"]["dimm"], serde_json::Value::Null);
}

fn mp(name: &str) -> DimmName {
    DimmName::new(name).unwrap()
}

/// A DIMM's range is the device's: no `mem=` check (8 GiB is in no
/// firmware map), but Linux's own refusals, in its order, stay.
#[test]
fn a_dimm_adds_blocks_outside_any_firmware_map_with_linux_s_checks() {
    let (mut f, mut b) = boot(machine());
    refused(
        &mut f,
        &mut b,
        "EEXIST: System RAM resource [mem 0x0000000008000000-0x000000000fffffff] cannot be added: \
         it conflicts with \"System RAM\" [mem 0x0000000000100000-0x000000002fffffff]",
        |f, b| b.add_memory_dimm(f, BLOCK, BLOCK, mp("MP00"), false),
    );
    refused(
        &mut f,
        &mut b,
        "EINVAL: Block size [0x8000000] unaligned hotplug range: start 0x200000000, size 0x4000000",
        |f, b| b.add_memory_dimm(f, 8 * G, 64 * M, mp("MP00"), false),
    );
    let added = b.add_memory_dimm(&mut f, 8 * G, 2 * BLOCK, mp("MP01"), true).unwrap();
    assert_eq!(added.iter().map(|x| x.id).collect::<Vec<_>>(), [64, 65]);
    for x in &added {
        assert_eq!((x.state, x.dimm, x.boot), (BlockState::Offline, Some(mp("MP01")), false));
        // Linux 6.1: memmap on the memory only for a single block.
        assert_eq!(x.nr_vmemmap_pages, 0, "two blocks: the memmap lies elsewhere");
    }
    assert_eq!(f.iomem_ram(8 * G, 8 * G + 2 * BLOCK), 2 * BLOCK);
    let line = BlockLine(&added[1], added[1].valid_zones(&f.zones)).to_string();
    assert_eq!(
        line,
        "memory65 offline [mem 0x0000000208000000-0x000000020fffffff] Normal Movable phys_index \
         00000041 memmap_on_memory 0 dimm MP01"
    );
    refused(
        &mut f,
        &mut b,
        "EEXIST: System RAM resource [mem 0x0000000208000000-0x000000020fffffff] cannot be added: it conflicts with \"System RAM\" [mem 0x0000000200000000-0x000000020fffffff]",
        |f, b| b.add_memory_dimm(f, 8 * G + BLOCK, BLOCK, mp("MP02"), false),
    );
    let (removed, offlined) = b.offline_and_remove_memory(&mut f, 8 * G, 2 * BLOCK).unwrap();
    assert_eq!((removed.len(), offlined.len()), (2, 0), "both offline: removed, none offlined");
    assert_eq!(f.iomem_ram(8 * G, 8 * G + 2 * BLOCK), 0);
    assert_eq!(f.section(64), (0, 0));
}

/// `memory_hotplug.memmap_on_memory`: a one-block DIMM's memmap is its own
/// first 2 MiB (512 pages, one pageblock), which never reach the page
/// allocator but count as present; removing the block gives them back.
#[test]
fn memmap_on_memory_puts_a_block_s_memmap_in_its_first_pages() {
    let (mut f, mut b) = boot(machine());
    let before = snapshot(&f, &b);
    let x = b.add_memory_dimm(&mut f, 8 * G, BLOCK, mp("MP00"), true).unwrap()[0];
    assert_eq!(x.nr_vmemmap_pages, 512);
    assert_eq!(f.altmap_used[&phys_pfn(8 * G)], 512, "the whole memmap from the block");
    let (on, freed) = b.online_type(&mut f, 64, OnlineType::OnlineMovable).unwrap();
    assert_eq!((on.zone, freed), (Some(ZoneType::Movable), SEC - 512));
    let first = phys_pfn(8 * G);
    assert_eq!(f.sparse.pageblock_migratetype(first), Some(MigrateType::Unmovable));
    assert_eq!(f.sparse.pageblock_migratetype(first + 512), Some(MigrateType::Movable));
    assert!(f.sparse.backend.page(first).unwrap().is_reserved(), "vmemmap pages stay out");
    assert!(!f.sparse.backend.page(first + 512).unwrap().is_reserved());
    let mz = *f.zones.zone(ZoneType::Movable);
    assert_eq!((mz.zone_start_pfn, mz.spanned_pages, mz.present_pages), (first, SEC, SEC));
    assert_eq!(f.buddy.managed(ZoneType::Movable), SEC - 512);
    let line = BlockLine(&on, on.valid_zones(&f.zones)).to_string();
    assert!(line.ends_with("Movable phys_index 00000040 memmap_on_memory 1 dimm MP00"), "{line}");
    assert_eq!(b.offline(&mut f, 64).unwrap().1, SEC - 512);
    assert_eq!(*f.zones.zone(ZoneType::Movable), ZoneSpan::default());
    b.remove(&mut f, 64).unwrap();
    assert!(snapshot(&f, &b) == before, "nothing left behind");
    assert!(!memory_block::mhp_supports_memmap_on_memory(2 * BLOCK, BLOCK));
    assert!(memory_block::mhp_supports_memmap_on_memory(BLOCK, BLOCK));
}

/// Offline of a ZONE_MOVABLE block holding movable pages migrates them
/// out (contents and handles follow); a pinned one refuses it with EBUSY
/// before anything moves, and the block stays online.
#[test]
fn offline_migrates_movable_pages_and_a_pinned_one_refuses() {
    let (mut f, mut b) = boot(machine());
    b.add_memory_dimm(&mut f, 8 * G, 2 * BLOCK, mp("MP00"), false).unwrap();
    b.online_type(&mut f, 64, OnlineType::OnlineMovable).unwrap();
    // Kernel allocations never land in ZONE_MOVABLE.
    let k = f.alloc(0, ZoneType::Normal).unwrap();
    assert!(k < phys_pfn(8 * G), "{k:#x}");
    f.free(k, 0);
    let (s, e) = pfns(64);
    let mut handles = Vec::new();
    for i in 0..100 {
        let p = f.alloc(0, ZoneType::Movable).unwrap();
        assert!((s..e).contains(&p), "movable pages fill ZONE_MOVABLE first: {p:#x}");
        f.contents.insert(p, 7000 + i);
        handles.push(f.movable.insert(p));
    }
    // memory65 online in a kernel zone: where the pages go.
    b.online_type(&mut f, 65, OnlineType::OnlineKernel).unwrap();
    f.movable.set_pinned(handles[42], true);
    let pinned = f.movable.get(handles[42]).unwrap().pfn;
    let text = alloc::format!(
        "EBUSY: memory64: pfn {pinned:#x} is in use and cannot be migrated (unmovable, pinned or \
         reserved); nothing taken"
    );
    refused(&mut f, &mut b, &text, |f, b| b.offline(f, 64));
    assert_eq!(b.block(64).unwrap().state, BlockState::Online);
    f.movable.set_pinned(handles[42], false);
    let (off, taken) = b.offline(&mut f, 64).unwrap();
    assert_eq!((off.state, taken), (BlockState::Offline, SEC));
    for (i, h) in handles.iter().enumerate() {
        let p = f.movable.get(*h).unwrap().pfn;
        assert!(!(s..e).contains(&p), "page {i} left memory64");
        assert_eq!(f.contents[&p], 7000 + i as u64, "page {i}'s contents followed it");
    }
    f.check_buddy();
}

/// `offline_and_remove_memory`: when one block refuses, the blocks this
/// call offlined are onlined again in their zone, and nothing changes.
#[test]
fn offline_and_remove_memory_rolls_back_when_a_block_refuses() {
    let (mut f, mut b) = boot(machine());
    b.add_memory_dimm(&mut f, 8 * G, 2 * BLOCK, mp("MP00"), false).unwrap();
    b.online_type(&mut f, 64, OnlineType::OnlineMovable).unwrap();
    b.online_type(&mut f, 65, OnlineType::OnlineKernel).unwrap();
    let p = f.alloc(0, ZoneType::Normal).unwrap();
    assert!(pfns(65).0 <= p && p < pfns(65).1, "Normal is memory65 alone: {p:#x}");
    let blocks_before = b.clone();
    let e = b.offline_and_remove_memory(&mut f, 8 * G, 2 * BLOCK).unwrap_err();
    assert_eq!(e, HotplugError::Busy { id: 65, pfn: p });
    assert_eq!(b, blocks_before, "memory64 back online, in ZONE_MOVABLE");
    assert_eq!(f.zones.zone(ZoneType::Movable).present_pages, SEC);
    let e = b.offline_and_remove_memory(&mut f, 16 * G, BLOCK).unwrap_err();
    assert_eq!(e.errno(), "ENODEV");
    f.free(p, 0);
    let (removed, offlined) = b.offline_and_remove_memory(&mut f, 8 * G, 2 * BLOCK).unwrap();
    assert_eq!(removed.iter().map(|x| x.id).collect::<Vec<_>>(), [64, 65]);
    assert_eq!(offlined, [(64, SEC), (65, SEC)]);
    assert!(b.block(64).is_none() && b.block(65).is_none());
}

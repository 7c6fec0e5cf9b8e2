//! `hotplug_stress=N` and the shell's `stress N`: the memory model on every
//! CPU at once. One CPU (the caller) makes N hotplug operations: hot-add
//! and hot-remove of the 2 MiB sub-sections of every raw persistent-memory
//! region (in early sections, whose memmap is reused, and in sections of
//! their own, whose vmemmap is populated and depopulated), and, every 256th
//! operation, offline or online of a RAM block. Every other CPU meanwhile
//! loops over lock-free `pfn_valid` (then reads the descriptor it vouches
//! for, and the usage map, inside the same read-side section); one of them
//! also looks pages up with `pfn_to_online_page` through `get_online_mems`
//! (reading the descriptor through the guard) and allocates and frees
//! pages. (A guard holder waits for every hotplug operation, so the others
//! never take it: they read while the operations run.)
//!
//! A reader reads descriptors with a faulting probe: an unmapped memmap
//! is counted as a fault, not a crash. Freed usage maps and memmap pages
//! are poisoned (0x6b bytes), so a use after free is a poisoned read. At the
//! end every sub-section and block is as before, and the model (section
//! words, usage maps, free pages, memmap and usage bytes) must equal its
//! snapshot from before the stress:
//!
//! ```text
//! stress: N hotplug operations, M lookups on C CPUs, F faults, model unchanged
//! ```
//!
//! With `hotplug_stress_nogp` (test only) the grace periods end without
//! waiting for the readers: usage maps and memmap are freed under them,
//! and the stress must report faults.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use mm::memory_block::BlockState;
use mm::page::{Pfn, phys_pfn};
use mm::sparse::{PAGES_PER_SUBSECTION, USAGE_POISON, pfn_to_section_nr};
use rng::Rng;

use crate::arch::extable::probe_read_u64;
use crate::drivers::{memory, pmem};
use crate::mm::memory_hotplug::{get_online_mems, mem_hotplug_begin};
use crate::mm::page_alloc;
use crate::mm::sparse::{self, SECTIONS, SPARSE};
use crate::smp::{Worker, parallel};
use crate::testing::{ModelSnapshot, model_snapshot};

/// What one stress run did.
#[derive(Debug, Clone)]
pub struct Report {
    /// Hotplug operations made (refused ones included).
    pub ops: u64,
    /// Of those, refused (a block offline that found a page in use).
    pub refused: u64,
    /// Lookups by the readers: `pfn_valid` and `pfn_to_online_page`.
    pub lookups: u64,
    /// Page allocations by the readers.
    pub allocs: u64,
    /// CPUs that took part (the hotplug CPU included).
    pub cpus: usize,
    /// Descriptor reads that faulted.
    pub faults: u64,
    /// Reads that found poison (freed usage or memmap).
    pub poisoned: u64,
    /// Grace periods the operations waited for.
    pub grace_periods: u64,
    /// `None`: the model is as before; otherwise what differs.
    pub changed: Option<String>,
    /// How long the operations took, µs.
    pub us: u64,
    /// Of that, µs waiting for grace periods.
    pub grace_us: u64,
    /// TLB shootdowns the operations sent.
    pub shootdowns: u64,
    /// µs the shootdowns waited for the other CPUs.
    pub shootdown_us: u64,
    /// µs spent offlining and onlining the RAM block.
    pub block_us: u64,
}

impl core::fmt::Display for Report {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "stress: {} hotplug operations, {} lookups on {} CPUs, {} faults, ",
            self.ops,
            self.lookups,
            self.cpus,
            self.faults + self.poisoned
        )?;
        match &self.changed {
            None => write!(f, "model unchanged"),
            Some(d) => write!(f, "model CHANGED: {d}"),
        }
    }
}

impl Report {
    /// The details line.
    pub fn details(&self) -> String {
        alloc::format!(
            "stress: {} refused, {} page faults, {} poisoned reads, {} allocations, {} grace periods ({} ms waiting), {} shootdowns ({} ms waiting), block offline/online {} ms, {}.{:03} s",
            self.refused,
            self.faults,
            self.poisoned,
            self.allocs,
            self.grace_periods,
            self.grace_us / 1000,
            self.shootdowns,
            self.shootdown_us / 1000,
            self.block_us / 1000,
            self.us / 1_000_000,
            self.us / 1000 % 1000
        )
    }
}

/// Why the stress could not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StressError {
    /// No raw persistent-memory region to hot-plug.
    NoRegion,
    /// A region could not be taken out or put back.
    Region(&'static str),
}

impl core::fmt::Display for StressError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoRegion => {
                write!(f, "no raw persistent memory region (without an info block) to hot-plug")
            }
            Self::Region(e) => write!(f, "{e}"),
        }
    }
}

/// How long a reader halts between two read-side sections, µs.
const READER_SLEEP_US: u64 = 100;
/// How long a reader halts inside a read-side section, µs.
const READER_HOLD_US: u64 = 100;
/// Every this many operations, the RAM block goes offline or online.
const BLOCK_EVERY: u64 = 256;

static STOP: AtomicBool = AtomicBool::new(false);
static LOOKUPS: AtomicU64 = AtomicU64::new(0);
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static FAULTS: AtomicU64 = AtomicU64::new(0);
static POISONED: AtomicU64 = AtomicU64::new(0);

/// The stressed sub-sections, as first pfns.
fn sub_sections(regions: &[pmem::Region]) -> Vec<Pfn> {
    let mut subs = Vec::new();
    for r in regions {
        let (start, end) = (phys_pfn(r.start), phys_pfn(r.end()));
        subs.extend(
            (start.as_u64()..end.as_u64()).step_by(PAGES_PER_SUBSECTION as usize).map(Pfn::new),
        );
    }
    subs
}

fn add(pfn: Pfn) -> bool {
    let _op = mem_hotplug_begin();
    SPARSE.lock().add_pages(0, pfn, PAGES_PER_SUBSECTION, PAGES_PER_SUBSECTION, None).is_ok()
}

fn remove(pfn: Pfn) -> bool {
    let _op = mem_hotplug_begin();
    SPARSE.lock().remove_pages(pfn, PAGES_PER_SUBSECTION, None).is_ok()
}

/// Reads `pfn`'s descriptor word by word with the faulting probe, inside
/// the caller's read-side section; counts faults and poison.
fn probe_descriptor(pfn: Pfn) {
    let addr = sparse::pfn_to_page(pfn);
    for w in 0..8 {
        // SAFETY: the descriptor lies in the vmemmap (plain memory, no
        // device side effects); a page fault resumes at the probe's fixup.
        match unsafe { probe_read_u64(addr + w * 8) } {
            None => {
                FAULTS.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Some(USAGE_POISON) => {
                POISONED.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Some(_) => {}
        }
    }
}

/// One reader's loop, until [`STOP`]. `guarded`: also look pages up
/// through `get_online_mems` and allocate pages; such a reader waits for
/// each hotplug operation to end, so the lock-free readers are others.
fn reader(seed: u64, subs: &[Pfn], top: u64, guarded: bool) {
    let mut rng = Rng::new(seed);
    let (mut lookups, mut allocs) = (0u64, 0u64);
    let mut i = 0u64;
    while !STOP.load(Ordering::Relaxed) {
        i += 1;
        // Mostly the stressed sub-sections, sometimes anywhere.
        let pfn = if rng.below(4) != 0 {
            subs[rng.below(subs.len() as u64) as usize] + rng.below(PAGES_PER_SUBSECTION)
        } else {
            Pfn::new(rng.below(top))
        };
        {
            let g = sparse::rcu_read_lock();
            // 64 neighbours, each looked up and its descriptor read; then
            // a pause inside the section (a slow reader; an interrupt, such
            // as a shootdown, ends it early); then every descriptor read
            // again: all of it must stay valid until the section ends.
            let base = pfn.as_u64() & !63;
            let mut valid = 0u64;
            for k in 0..64 {
                lookups += 1;
                if SECTIONS.pfn_valid_in(&g, Pfn::new(base + k)) {
                    valid |= 1 << k;
                    probe_descriptor(Pfn::new(base + k));
                }
            }
            crate::arch::apic::sleep_us(READER_HOLD_US);
            for k in (0..64).filter(|k| valid & (1 << k) != 0) {
                probe_descriptor(Pfn::new(base + k));
            }
            if let Some(u) = SECTIONS.usage(&g, pfn_to_section_nr(pfn))
                && u.subsection_map() == USAGE_POISON
            {
                POISONED.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Time outside any read-side section, halted: the host's cores
        // go to the CPUs that work (4 CPUs share 2 cores under QEMU
        // here, and a CPU descheduled inside a section or with an
        // interrupt pending holds the hotplug CPU up).
        crate::arch::apic::sleep_us(READER_SLEEP_US);
        if guarded && i.is_multiple_of(16) {
            let online = get_online_mems();
            lookups += 1;
            if let Some(page) = online.pfn_to_online_page(pfn) {
                let d = page.read();
                if d.flags == USAGE_POISON || d.private == USAGE_POISON {
                    POISONED.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if guarded
            && i.is_multiple_of(64)
            && let Ok(p) = page_alloc::alloc_pages(0)
        {
            allocs += 1;
            if let Some(v) = crate::boot::phys_to_virt(mm::page::pfn_phys(p)) {
                let word = v as *mut u64;
                // SAFETY: the page was just allocated for this reader alone
                // and is mapped in the physical-memory map.
                unsafe {
                    word.write_volatile(seed ^ i);
                    assert_eq!(word.read_volatile(), seed ^ i, "a page shared with another user");
                }
            }
            page_alloc::free_pages(p, 0).expect("freeing a page just allocated");
        }
    }
    LOOKUPS.fetch_add(lookups, Ordering::Relaxed);
    ALLOCS.fetch_add(allocs, Ordering::Relaxed);
}

/// The RAM block the stress offlines and onlines: the highest online block
/// that holds no persistent memory.
fn stress_block(regions: &[pmem::Region]) -> Option<u64> {
    let blocks = memory::blocks();
    let free_of_pmem = |b: &mm::memory_hotplug::MemoryBlock| {
        !regions.iter().any(|r| r.start < b.start + b.size && b.start < r.end())
    };
    blocks.iter().filter(|b| b.state == BlockState::Online && free_of_pmem(b)).map(|b| b.id).max()
}

fn diff(before: &ModelSnapshot, after: &ModelSnapshot) -> Option<String> {
    if before == after {
        return None;
    }
    let mut d = String::new();
    if before.free != after.free {
        let _ = write!(d, "free pages {:?} -> {:?}; ", before.free, after.free);
    }
    if before.memmap_bytes != after.memmap_bytes || before.usage_bytes != after.usage_bytes {
        let _ = write!(
            d,
            "memmap {} -> {} bytes, usage {} -> {} bytes; ",
            before.memmap_bytes, after.memmap_bytes, before.usage_bytes, after.usage_bytes
        );
    }
    let changed = before.sections.iter().zip(&after.sections).filter(|(a, b)| a != b);
    for (a, b) in changed.take(3) {
        let _ = write!(d, "section {}: {:#x} -> {:#x}; ", a.0, a.1, b.1);
    }
    if before.sections.len() != after.sections.len() {
        let _ = write!(d, "{} -> {} present sections", before.sections.len(), after.sections.len());
    }
    Some(String::from(d.trim_end_matches("; ")))
}

/// Runs the stress with `ops` hotplug operations on this CPU and readers
/// on every other online CPU. `no_grace`: test only, see the module doc.
pub fn run(ops: u64, no_grace: bool) -> Result<Report, StressError> {
    let regions: Vec<pmem::Region> =
        pmem::regions().into_iter().filter(|r| !r.has_altmap()).collect();
    let added: Vec<bool> = regions.iter().map(|r| r.state == mm::pmem::State::Added).collect();
    if regions.is_empty() {
        return Err(StressError::NoRegion);
    }
    for (r, &on) in regions.iter().zip(&added) {
        if on {
            pmem::remove(r.id, &mut |_, _| {})
                .map_err(|_| StressError::Region("a region could not be removed"))?;
        }
    }
    let subs = sub_sections(&regions);
    let block = stress_block(&regions);
    let top = SPARSE.lock().present_sections().last().map_or(1, |(nr, _)| nr + 1)
        * mm::sparse::PAGES_PER_SECTION;
    // One clean cycle of each first, so that the usage pool and the
    // vmemmap's bookkeeping have their pages before the snapshot.
    for &p in &subs {
        if add(p) {
            remove(p);
        }
    }
    let before = model_snapshot();
    STOP.store(false, Ordering::Relaxed);
    for c in [&LOOKUPS, &ALLOCS, &FAULTS, &POISONED] {
        c.store(0, Ordering::Relaxed);
    }
    let (gp0, gus0, sd0) =
        (sparse::grace_periods(), sparse::grace_period_us(), crate::arch::ipi::shootdowns());
    let sdus0 = crate::arch::ipi::shootdown_us();
    let block_us = AtomicU64::new(0);
    sparse::set_no_grace_period(no_grace);
    let (refused, cpus, us) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let job = |w: Worker| {
        cpus.fetch_add(1, Ordering::Relaxed);
        if w.index != 0 {
            // With three CPUs or more, worker 1 takes the guard and
            // allocates; the others only read without locks, never
            // waiting for an operation.
            let guarded = w.index == 1 || w.count == 2;
            reader(0x5eed_0000 + w.cpu as u64, &subs, top, guarded);
            return;
        }
        let start = crate::arch::time::uptime_us();
        let mut rng = Rng::new(0x7e55_e7a5_0017_0001);
        let mut active = alloc::vec![false; subs.len()];
        let mut block_offline = false;
        for op in 0..ops {
            if op % BLOCK_EVERY == BLOCK_EVERY - 1
                && let Some(id) = block
            {
                let t0 = crate::arch::time::uptime_us();
                let r = if block_offline {
                    memory::online(id).map(|_| ())
                } else {
                    memory::offline(id).map(|_| ())
                };
                block_us.fetch_add(crate::arch::time::uptime_us() - t0, Ordering::Relaxed);
                match r {
                    Ok(()) => block_offline = !block_offline,
                    Err(_) => {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
                continue;
            }
            let i = rng.below(subs.len() as u64) as usize;
            active[i] = if active[i] { !remove(subs[i]) } else { add(subs[i]) };
        }
        // Everything back as it was.
        for (i, on) in active.iter().enumerate() {
            if *on {
                remove(subs[i]);
            }
        }
        if block_offline && let Some(id) = block {
            let _ = memory::online(id);
        }
        us.store(crate::arch::time::uptime_us() - start, Ordering::Relaxed);
        STOP.store(true, Ordering::Relaxed);
    };
    let started = parallel(u64::MAX, &job);
    sparse::set_no_grace_period(false);
    let after = model_snapshot();
    let changed = diff(&before, &after);
    for (r, &on) in regions.iter().zip(&added) {
        if on {
            pmem::add(r.id, &mut |_, _| {})
                .map_err(|_| StressError::Region("a region could not be added back"))?;
        }
    }
    if let Err(e) = started {
        log::warn!("stress: {e:?}");
    }
    Ok(Report {
        ops,
        refused: refused.load(Ordering::Relaxed),
        lookups: LOOKUPS.load(Ordering::Relaxed),
        allocs: ALLOCS.load(Ordering::Relaxed),
        cpus: cpus.load(Ordering::Relaxed) as usize,
        faults: FAULTS.load(Ordering::Relaxed),
        poisoned: POISONED.load(Ordering::Relaxed),
        grace_periods: sparse::grace_periods() - gp0,
        grace_us: sparse::grace_period_us() - gus0,
        shootdowns: crate::arch::ipi::shootdowns() - sd0,
        shootdown_us: crate::arch::ipi::shootdown_us() - sdus0,
        block_us: block_us.load(Ordering::Relaxed),
        changed,
        us: us.load(Ordering::Relaxed),
    })
}

/// Runs the stress and prints its two lines.
pub fn run_and_print(ops: u64, no_grace: bool) -> Option<Report> {
    match run(ops, no_grace) {
        Ok(r) => {
            log::info!("{r}");
            log::info!("{}", r.details());
            Some(r)
        }
        Err(e) => {
            log::error!("stress: {e}");
            None
        }
    }
}

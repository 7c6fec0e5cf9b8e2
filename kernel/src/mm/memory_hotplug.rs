//! `mem_hotplug_begin` / `mem_hotplug_done` (Linux's `mem_hotplug_lock`):
//! every operation that changes which memory exists or is online — a PMEM
//! region's add, remove or mode change, a memory block's add, online,
//! offline or remove — holds this one lock from its range check to its
//! last state change, so that it is one step for every other operation.
//! Inside it the operation updates the section table, the vmemmap and the
//! page allocator (under `SPARSE`), the zones, memblock and the resource
//! tree.
//!
//! The lock order, everywhere in the kernel (DESIGN.md §4a):
//!
//! ```text
//! MEM_HOTPLUG → PMEM | BLOCKS → SPARSE → ZONES, MEMBLOCK, IOMEM, PAGING (one at a time)
//!                PMEM → PUBLISHED   (the regions as the last finished operation left them)
//! SPARSE → per-CPU page list → zone lock (DMA, DMA32, Normal)   (the model's own pages)
//! SPARSE → HEAP → zone lock         (the heap grows from the page allocator)
//! ```
//!
//! The page allocator takes neither `SPARSE` nor this lock: each zone has
//! its own (`page_alloc`), and nothing allocates from the heap while it
//! holds one (the heap counts it), so the heap can grow in the middle of a
//! hot-add, from under `SPARSE` too.
//!
//! Readers of online memory ([`get_online_mems`], Linux's
//! `get_online_mems`/`put_online_mems`) hold the read side of a per-CPU
//! reader-writer lock whose write side every hotplug operation takes after
//! `MEM_HOTPLUG`: an operation waits for the readers inside, and new
//! readers wait for the operation. A reader never starts a hotplug
//! operation (that would wait for itself: it panics with a message).
//! Unlike Linux, a descriptor found through the guard
//! ([`OnlineMems::pfn_to_online_page`]) is a [`PageRef`] that borrows the
//! guard, so the compiler, not a comment, keeps it from outliving it.

use core::ptr::NonNull;
use core::sync::atomic::Ordering;

use mm::page::{Page, Pfn, ZoneType};
use mm::sparse::NR_CPUS;
use rcu::{GuardedPtr, PercpuRwsem, RwsemRead, RwsemWrite};
use spin::{Mutex, MutexGuard};

use crate::arch::percpu;
use crate::mm::sparse::{self, SECTIONS};

static MEM_HOTPLUG: Mutex<()> = Mutex::new(());
/// Linux's `mem_hotplug_lock` read side (`get_online_mems`).
static ONLINE_MEMS: PercpuRwsem<NR_CPUS> = PercpuRwsem::new();

/// Held for one hotplug operation; [`mem_hotplug_done`] or drop ends it.
#[must_use = "the operation is serialized only while the guard lives"]
pub struct MemHotplug {
    // Dropped in this order: readers may come back before the next writer.
    _readers: RwsemWrite<'static, NR_CPUS>,
    _writers: MutexGuard<'static, ()>,
}

/// Starts a hotplug operation: waits for the one in progress to finish,
/// then for the readers of online memory to leave.
///
/// # Panics
/// When this CPU holds [`get_online_mems`]: it would wait for itself.
pub fn mem_hotplug_begin() -> MemHotplug {
    let cpu = percpu::current() as usize;
    assert!(
        !ONLINE_MEMS.held_for_reading(cpu),
        "mem_hotplug_begin on CPU {cpu} inside get_online_mems: it would wait for itself"
    );
    let writers = MEM_HOTPLUG.lock();
    let readers = ONLINE_MEMS
        .write(cpu, core::hint::spin_loop)
        .expect("MEM_HOTPLUG serializes the writers; this CPU holds no read side");
    MemHotplug { _readers: readers, _writers: writers }
}

/// Ends the operation `guard` started.
pub fn mem_hotplug_done(guard: MemHotplug) {
    drop(guard);
}

/// Whether a hotplug operation is in progress (for checks and tests).
pub fn in_progress() -> bool {
    MEM_HOTPLUG.is_locked()
}

/// Held while online memory is used (`get_online_mems` to
/// `put_online_mems`, which is its drop): no hotplug operation runs, so no
/// online page goes offline and no memmap is unmapped. Short-lived; never
/// start a hotplug operation while holding it.
#[must_use = "online memory is held only while the guard lives"]
pub struct OnlineMems {
    _read: RwsemRead<'static, NR_CPUS>,
}

/// `get_online_mems`: waits for a hotplug operation in progress to end.
pub fn get_online_mems() -> OnlineMems {
    OnlineMems { _read: ONLINE_MEMS.read(percpu::current() as usize, core::hint::spin_loop) }
}

/// `put_online_mems`.
pub fn put_online_mems(guard: OnlineMems) {
    drop(guard);
}

impl OnlineMems {
    /// `pfn_to_online_page` without a lock: the descriptor of an online
    /// System RAM page (never ZONE_DEVICE memory), valid while `self` is.
    pub fn pfn_to_online_page(&self, pfn: Pfn) -> Option<PageRef<'_>> {
        let g = sparse::rcu_read_lock();
        let device = SECTIONS.online_pfn(&g, pfn)?;
        let ptr = NonNull::new(sparse::pfn_to_page(pfn) as *mut Page)?;
        // SAFETY: the pfn's section is online with its sub-section valid,
        // so its descriptor is mapped; it stays mapped while `self` lives,
        // because a memmap is unmapped only inside a hotplug operation,
        // which waits for every holder of the read side `self` is.
        let page = PageRef { ptr: unsafe { GuardedPtr::new(self, ptr) }, pfn };
        if device && page.read().zone() == ZoneType::Device {
            return None;
        }
        Some(page)
    }
}

/// A page descriptor found through [`OnlineMems`]; it borrows the guard, so
/// it cannot outlive it:
///
/// ```compile_fail
/// let page = {
///     let online = kernel::mm::memory_hotplug::get_online_mems();
///     online.pfn_to_online_page(mm::page::Pfn::new(0x1000))
/// }; // error: `online` does not live long enough
/// ```
#[derive(Clone, Copy)]
pub struct PageRef<'g> {
    ptr: GuardedPtr<'g, Page>,
    pfn: Pfn,
}

impl PageRef<'_> {
    /// The page's frame number.
    pub fn pfn(&self) -> Pfn {
        self.pfn
    }

    /// The descriptor's address in the vmemmap.
    pub fn addr(&self) -> u64 {
        self.ptr.as_ptr() as u64
    }

    /// A copy of the descriptor, read word by word with atomic loads: the
    /// page allocator may change it meanwhile under its own lock (Linux
    /// reads it with `READ_ONCE` the same way), so each word is whole but
    /// the words may come from different moments.
    pub fn read(&self) -> Page {
        let base = self.ptr.as_ptr().cast::<u64>();
        let words: [u64; 8] = core::array::from_fn(|i| {
            // SAFETY: the descriptor is 64 bytes, 64-byte aligned and mapped
            // while the guard lives (see `pfn_to_online_page`); atomic loads
            // of its aligned words race with nothing that is not atomic at
            // the instruction level on x86-64.
            unsafe { core::sync::atomic::AtomicU64::from_ptr(base.add(i).cast_mut()) }
                .load(Ordering::Relaxed)
        });
        Page::from_words(words)
    }
}

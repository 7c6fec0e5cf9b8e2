//! The kernel heap: `linked_list_allocator` behind a `spin` lock, over a
//! static 1 MiB arena in the kernel image, grown with blocks from the page
//! allocator once it runs (up to [`MAX_ARENAS`] arenas).

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{NonNull, addr_of_mut};
use linked_list_allocator::Heap;
use spin::Mutex;

/// Size of the boot heap arena.
pub const HEAP_SIZE: usize = 1 << 20;

#[repr(align(4096))]
struct Arena(#[expect(dead_code, reason = "only reached through raw pointers")] [u8; HEAP_SIZE]);

/// Handed to the allocator once, in [`init`]; never referenced otherwise.
static mut ARENA: Arena = Arena([0; HEAP_SIZE]);

/// Arenas the heap may have: the static one and blocks from the page
/// allocator.
pub const MAX_ARENAS: usize = 16;
/// Smallest block the heap grows by (order 8: 1 MiB).
const GROW_ORDER: u32 = 8;

/// Linked-list heaps, one per arena.
pub struct Arenas {
    heaps: [Heap; MAX_ARENAS],
    len: usize,
}

/// The global allocator: linked-list heaps under a spin lock.
pub struct KernelHeap(Mutex<Arenas>);

#[global_allocator]
static HEAP: KernelHeap =
    KernelHeap(Mutex::new(Arenas { heaps: [const { Heap::empty() }; MAX_ARENAS], len: 0 }));

static UNDER_ZONE_LOCK: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Heap allocations made while this CPU held one of the page allocator's
/// zone locks, since the page allocator started. The kernel makes none (a
/// grow there would fail rather than wait for itself): a test reads this
/// before and after an operation.
pub fn allocs_under_zone_lock() -> u64 {
    UNDER_ZONE_LOCK.load(core::sync::atomic::Ordering::Relaxed)
}

/// Gives the static arena to the allocator. Call once, before any allocation.
pub fn init() {
    let mut a = HEAP.0.lock();
    if a.len != 0 {
        return;
    }
    // SAFETY: ARENA is a static of HEAP_SIZE bytes that nothing else
    // references; the length check above ensures it is handed over only once.
    unsafe { a.heaps[0].init(addr_of_mut!(ARENA).cast::<u8>(), HEAP_SIZE) };
    a.len = 1;
}

/// Bytes in use, bytes free, and the number of arenas.
pub fn usage() -> (usize, usize, usize) {
    let a = HEAP.0.lock();
    let heaps = &a.heaps[..a.len];
    (heaps.iter().map(Heap::used).sum(), heaps.iter().map(Heap::free).sum(), a.len)
}

impl Arenas {
    fn alloc(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        self.heaps[..self.len].iter_mut().find_map(|h| h.allocate_first_fit(layout).ok())
    }

    /// Adds a block from the page allocator big enough for `layout`, which
    /// takes only zone locks (never `SPARSE` or the hotplug lock, so the
    /// heap grows also in the middle of a hot-add). Fails when this CPU is
    /// inside the page allocator (holds a zone lock), when it does not run
    /// yet, or when all arenas are used.
    fn grow(&mut self, layout: Layout) -> bool {
        if self.len == MAX_ARENAS {
            return false;
        }
        let need = (layout.size() + layout.align()).div_ceil(4096).next_power_of_two();
        let order = need.ilog2().max(GROW_ORDER);
        let Some(addr) = crate::mm::page_alloc::alloc_for_heap(order) else { return false };
        let n = self.len;
        // SAFETY: the page allocator handed these 2^order pages, mapped at
        // `addr`, to the heap for good; nothing else references them.
        unsafe { self.heaps[n].init(addr as *mut u8, 4096 << order) };
        self.len += 1;
        true
    }
}

// SAFETY: allocation and deallocation are serialized by the spin lock, and
// linked_list_allocator returns blocks that satisfy the requested layout.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // The lock order (DESIGN.md §4a): the heap comes before the zone
        // locks, so nothing allocates from the heap while holding one (a
        // grow there would fail); counted, and tests hold the kernel's
        // operations to zero. SPARSE comes before the heap: growth needs
        // only zone locks.
        if crate::mm::page_alloc::heap_use_under_zone_lock() {
            UNDER_ZONE_LOCK.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        }
        x86_64::instructions::interrupts::without_interrupts(|| {
            let mut a = self.0.lock();
            let p = match a.alloc(layout) {
                Some(p) => Some(p),
                None if a.grow(layout) => a.alloc(layout),
                None => None,
            };
            p.map_or(core::ptr::null_mut(), NonNull::as_ptr)
        })
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(p) = NonNull::new(ptr) {
            x86_64::instructions::interrupts::without_interrupts(|| {
                let mut a = self.0.lock();
                let addr = p.as_ptr() as usize;
                let len = a.len;
                let Some(heap) = a.heaps[..len]
                    .iter_mut()
                    .find(|h| (h.bottom() as usize..h.top() as usize).contains(&addr))
                else {
                    panic!("heap: freeing {addr:#x}, which no arena holds");
                };
                // SAFETY: GlobalAlloc's contract: `ptr` came from `alloc`
                // with this same `layout`, hence from this arena.
                unsafe { heap.deallocate(p, layout) }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use alloc::boxed::Box;
    use alloc::vec::Vec;

    #[test_case]
    fn box_holds_its_value() {
        let b = Box::new(0x1234_5678_u64);
        assert_eq!(*b, 0x1234_5678);
    }

    #[test_case]
    fn large_vec_is_contiguous_and_intact() {
        let n = 64 * 1024;
        let v: Vec<u32> = (0..n).collect();
        assert_eq!(v.len(), n as usize);
        assert_eq!(v.iter().map(|&x| x as u64).sum::<u64>(), (n as u64) * (n as u64 - 1) / 2);
    }

    #[test_case]
    fn freed_memory_is_reused() {
        let (used_before, ..) = super::usage();
        for i in 0..10_000u64 {
            let b = Box::new([i; 16]);
            assert_eq!(b[15], i);
        }
        assert_eq!(super::usage().0, used_before);
    }

    #[test_case]
    fn grows_from_the_page_allocator() {
        let (_, _, arenas) = super::usage();
        let free = crate::mm::page_alloc::nr_free(mm::page::ZoneType::Dma32);
        // Twice the static arena: only a block from the page allocator fits.
        let v: Vec<u64> = (0..(2 * super::HEAP_SIZE as u64 / 8)).collect();
        assert_eq!(v[v.len() - 1], v.len() as u64 - 1);
        assert_eq!(super::usage().2, arenas + 1);
        let took = free - crate::mm::page_alloc::nr_free(mm::page::ZoneType::Dma32);
        assert_eq!(took, 1024, "one order-10 block (4 MiB) for a 2 MiB vector");
        drop(v);
        // The new arena is reused, not grown again.
        let v: Vec<u64> = (0..(2 * super::HEAP_SIZE as u64 / 8)).collect();
        assert_eq!(super::usage().2, arenas + 1);
        drop(v);
    }

    #[test_case]
    fn exhaustion_returns_null() {
        use core::alloc::{GlobalAlloc, Layout};
        // Larger than the largest block the page allocator has (4 MiB).
        let layout = Layout::from_size_align(8 << 20, 8).unwrap();
        // SAFETY: a non-zero-size layout; a null result is expected.
        let p = unsafe { super::HEAP.alloc(layout) };
        assert!(p.is_null());
    }
}

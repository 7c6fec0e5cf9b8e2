//! The kernel heap: `linked_list_allocator` behind a `spin` lock, over a
//! static 1 MiB arena in the kernel image.

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

/// The global allocator: a linked-list heap under a spin lock.
pub struct KernelHeap(Mutex<Heap>);

#[global_allocator]
static HEAP: KernelHeap = KernelHeap(Mutex::new(Heap::empty()));

/// Gives the arena to the allocator. Call once, before any allocation.
pub fn init() {
    let mut heap = HEAP.0.lock();
    if heap.size() != 0 {
        return;
    }
    // SAFETY: ARENA is a static of HEAP_SIZE bytes that nothing else
    // references; the size check above ensures it is handed over only once.
    unsafe { heap.init(addr_of_mut!(ARENA).cast::<u8>(), HEAP_SIZE) };
}

/// Bytes in use and bytes free.
pub fn usage() -> (usize, usize) {
    let heap = HEAP.0.lock();
    (heap.used(), heap.free())
}

// SAFETY: allocation and deallocation are serialized by the spin lock, and
// linked_list_allocator returns blocks that satisfy the requested layout.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        x86_64::instructions::interrupts::without_interrupts(|| {
            self.0.lock().allocate_first_fit(layout).map_or(core::ptr::null_mut(), |p| p.as_ptr())
        })
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(p) = NonNull::new(ptr) {
            x86_64::instructions::interrupts::without_interrupts(|| {
                // SAFETY: GlobalAlloc's contract: `ptr` came from `alloc`
                // with this same `layout`.
                unsafe { self.0.lock().deallocate(p, layout) }
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
        let (used_before, _) = super::usage();
        for i in 0..10_000u64 {
            let b = Box::new([i; 16]);
            assert_eq!(b[15], i);
        }
        assert_eq!(super::usage().0, used_before);
    }

    #[test_case]
    fn exhaustion_returns_null() {
        use core::alloc::{GlobalAlloc, Layout};
        let layout = Layout::from_size_align(2 * super::HEAP_SIZE, 8).unwrap();
        // SAFETY: a non-zero-size layout; a null result is expected.
        let p = unsafe { super::HEAP.alloc(layout) };
        assert!(p.is_null());
    }
}

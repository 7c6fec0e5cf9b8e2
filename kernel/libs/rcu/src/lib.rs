//! Read-side synchronization for the memory model on many CPUs, without
//! locks on the read side:
//!
//! - [`Rcu`]: an epoch-based grace period (Linux's RCU, reduced to what a
//!   kernel without a scheduler needs). A reader marks its CPU's slot with
//!   the epoch it entered in; [`Rcu::synchronize`] advances the epoch and
//!   waits until no CPU is still inside a read-side section that began
//!   before. [`RcuPtr`] publishes a pointer that readers may follow while
//!   they hold a [`ReadGuard`], and that a writer takes back, for freeing,
//!   only with proof of a grace period after it unpublished it.
//! - [`PercpuRwsem`]: a reader-writer lock whose readers touch only their
//!   own CPU's counter (Linux's `percpu_rw_semaphore`), the base of
//!   `get_online_mems`/`mem_hotplug_begin`.
//! - [`GuardedPtr`]: the address of data that stays mapped only while a
//!   guard lives; the borrow checker ties it to the guard.
//!
//! Why a scheme of our own: the `no_std` epoch crates (crossbeam-epoch)
//! defer frees through heap-allocated bags and per-thread handles; the
//! memory model must free without the heap (it runs under the lock the heap
//! grows through) and has CPUs, not threads.
//!
//! Orderings (the proof is Dekker's, with sequentially consistent fences):
//!
//! ```text
//! reader                                writer
//! slot = epoch|1         (store)        ptr = null              (store)
//! fence(SeqCst)                         fence(SeqCst); epoch += 1
//! p = ptr                (Acquire)      wait for each slot: 0 or >= new epoch
//! ... use *p ...                        free *old
//! slot = 0               (Release)
//! ```
//!
//! Either the writer sees the reader's slot (and waits for it to clear), or
//! the reader's fence came after the writer's, and its load sees null. A
//! reader whose slot shows the new epoch read the epoch after the writer's
//! increment, which the null store happens-before.
//!
//! Interrupts: a CPU's slot is written only by that CPU, and an interrupt
//! that nests a read-side section leaves the slot as it found it, so a
//! section may be entered from an interrupt at any point of another.

#![cfg_attr(not(test), no_std)]

use core::marker::PhantomData;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering, fence};

/// Low bits of a slot that count nested read-side sections.
const NEST_BITS: u32 = 16;
const NEST_MASK: u64 = (1 << NEST_BITS) - 1;

/// One CPU's read-side state, alone on its cache line.
#[repr(align(64))]
struct Slot(AtomicU64);

/// An epoch-based RCU for `N` CPUs.
pub struct Rcu<const N: usize> {
    /// The current epoch, starting at 1 (a slot of 0 means "not reading").
    epoch: AtomicU64,
    slots: [Slot; N],
    /// Grace periods completed.
    completed: AtomicU64,
    /// Test only: grace periods end at once, without waiting for readers.
    no_wait: AtomicBool,
}

/// A read-side critical section on one CPU; ends on drop. Not `Send`: it
/// belongs to the CPU that entered it.
#[must_use = "the section ends when the guard drops"]
pub struct ReadGuard<'r, const N: usize> {
    rcu: &'r Rcu<N>,
    cpu: usize,
    _not_send: PhantomData<*const ()>,
}

/// Proof that a grace period ended at epoch `0`: every read-side section
/// that began before that epoch has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GracePeriod(u64);

/// Why [`Rcu::synchronize`] could not end a grace period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncError {
    /// The caller is itself inside a read-side section: waiting would wait
    /// for itself.
    InsideReadSection,
    /// A CPU stayed in one read-side section longer than the caller's
    /// patience (the `relax` callback returned false).
    Stalled { cpu: usize },
}

impl<const N: usize> Default for Rcu<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Rcu<N> {
    pub const fn new() -> Self {
        Self {
            epoch: AtomicU64::new(1),
            slots: [const { Slot(AtomicU64::new(0)) }; N],
            completed: AtomicU64::new(0),
            no_wait: AtomicBool::new(false),
        }
    }

    /// Enters a read-side section on `cpu` (`rcu_read_lock`). Sections nest.
    ///
    /// # Panics
    /// When `cpu >= N`, or sections nest 65535 deep.
    pub fn read_lock(&self, cpu: usize) -> ReadGuard<'_, N> {
        let slot = &self.slots[cpu].0;
        // Compare-and-swap rather than a plain store, so that the slot
        // stays right even if two threads share it (host tests); on one
        // CPU only nested interrupts could interleave, and they restore it.
        let mut v = slot.load(Ordering::Relaxed);
        loop {
            let new = if v & NEST_MASK == 0 {
                self.epoch.load(Ordering::SeqCst) << NEST_BITS | 1
            } else {
                assert!(v & NEST_MASK != NEST_MASK, "read-side sections nested too deep");
                v + 1
            };
            match slot.compare_exchange_weak(v, new, Ordering::SeqCst, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => v = now,
            }
        }
        fence(Ordering::SeqCst);
        ReadGuard { rcu: self, cpu, _not_send: PhantomData }
    }

    /// Whether `cpu` is inside a read-side section.
    pub fn in_read_section(&self, cpu: usize) -> bool {
        self.slots[cpu].0.load(Ordering::Relaxed) & NEST_MASK != 0
    }

    /// Ends a grace period (`synchronize_rcu`): advances the epoch and
    /// waits until every CPU has left the sections it was in. `cpu` is the
    /// caller's; `relax` runs while waiting for `cpu_waited` and returns
    /// false to give up.
    pub fn synchronize(
        &self,
        cpu: usize,
        mut relax: impl FnMut(usize) -> bool,
    ) -> Result<GracePeriod, SyncError> {
        if self.in_read_section(cpu) {
            return Err(SyncError::InsideReadSection);
        }
        fence(Ordering::SeqCst);
        let target = self.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        fence(Ordering::SeqCst);
        if !self.no_wait.load(Ordering::Relaxed) {
            for (i, slot) in self.slots.iter().enumerate() {
                loop {
                    let v = slot.0.load(Ordering::Acquire);
                    if v & NEST_MASK == 0 || v >> NEST_BITS >= target {
                        break;
                    }
                    if !relax(i) {
                        return Err(SyncError::Stalled { cpu: i });
                    }
                }
            }
        }
        fence(Ordering::SeqCst);
        self.completed.fetch_add(1, Ordering::Relaxed);
        Ok(GracePeriod(target))
    }

    /// The epoch now: a pointer unpublished now is safe to free after a
    /// grace period of a later epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Grace periods completed so far.
    pub fn completed(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
    }

    /// Test only: makes grace periods end without waiting for readers, so
    /// that a test can show use-after-free being caught. Never set it
    /// outside such a test: frees then race with readers.
    pub fn set_no_wait(&self, on: bool) {
        self.no_wait.store(on, Ordering::Relaxed);
    }

    /// Whether [`Rcu::set_no_wait`] is on.
    pub fn no_wait(&self) -> bool {
        self.no_wait.load(Ordering::Relaxed)
    }
}

impl<const N: usize> ReadGuard<'_, N> {
    /// The CPU the section runs on.
    pub fn cpu(&self) -> usize {
        self.cpu
    }

    /// Whether this is a section of `rcu` (a guard of another scheme
    /// protects nothing here).
    pub fn is_of(&self, rcu: &Rcu<N>) -> bool {
        core::ptr::eq(self.rcu, rcu)
    }
}

impl<const N: usize> Drop for ReadGuard<'_, N> {
    fn drop(&mut self) {
        // The section's reads happen before the slot says it is over; the
        // epoch bits may stay behind once the count is 0.
        self.rcu.slots[self.cpu].0.fetch_sub(1, Ordering::Release);
    }
}

/// A pointer published to readers: null or a `&'static T` that stays valid
/// until it is unpublished and a grace period has passed.
pub struct RcuPtr<T> {
    ptr: AtomicPtr<T>,
}

/// A pointer taken out of an [`RcuPtr`] at an epoch; readers may still hold
/// it until a grace period of a later epoch ends.
#[must_use = "free it after a grace period, or publish it again"]
pub struct Retired<T: 'static> {
    /// From the `&'static mut T` given to `publish` (mutable provenance).
    ptr: core::ptr::NonNull<T>,
    epoch: u64,
}

impl<T: 'static> Default for RcuPtr<T> {
    fn default() -> Self {
        Self::null()
    }
}

impl<T> core::fmt::Debug for RcuPtr<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "RcuPtr({:p})", self.ptr.load(Ordering::Relaxed))
    }
}

impl<T: 'static> RcuPtr<T> {
    pub const fn null() -> Self {
        Self { ptr: AtomicPtr::new(core::ptr::null_mut()) }
    }

    /// Whether a pointer is published (a racy answer for readers outside a
    /// section; exact for the writer).
    pub fn is_some(&self) -> bool {
        !self.ptr.load(Ordering::Acquire).is_null()
    }

    /// Follows the pointer inside a read-side section (`rcu_dereference`)
    /// of the scheme whose grace periods free it: the caller checks that
    /// with [`ReadGuard::is_of`].
    pub fn load<'g, const N: usize>(&self, _guard: &'g ReadGuard<'_, N>) -> Option<&'g T> {
        let p = self.ptr.load(Ordering::Acquire);
        // SAFETY: a non-null pointer here was published by `publish` from a
        // `&'static T`; it is turned back into an exclusive reference only
        // by `Retired::into_mut`, after unpublishing and a grace period
        // that began after this section did, which therefore waits for
        // `_guard` (and so for every `&'g T`) to be gone.
        unsafe { p.as_ref() }
    }

    /// Publishes `value` (`rcu_assign_pointer`): everything written to it
    /// before is visible to a reader that sees the pointer. Returns false,
    /// changing nothing, when a pointer is already published.
    pub fn publish(&self, value: &'static mut T) -> bool {
        let p = core::ptr::from_mut(value);
        self.ptr
            .compare_exchange(core::ptr::null_mut(), p, Ordering::Release, Ordering::Relaxed)
            .is_ok()
    }

    /// Unpublishes the pointer (publishes null). The caller frees it after
    /// a grace period: [`Retired::into_mut`].
    pub fn unpublish<const N: usize>(&self, rcu: &Rcu<N>) -> Option<Retired<T>> {
        let ptr = core::ptr::NonNull::new(self.ptr.swap(core::ptr::null_mut(), Ordering::AcqRel))?;
        Some(Retired { ptr, epoch: rcu.epoch() })
    }
}

impl<T: 'static> Retired<T> {
    /// The retired value, shared (readers may hold it too).
    pub fn get(&self) -> &T {
        // SAFETY: published from a `&'static mut T`; until `into_mut` only
        // shared references to it exist (readers' and this one).
        unsafe { self.ptr.as_ref() }
    }

    /// The value, exclusive again, for freeing: `gp` must be a grace period
    /// that began after the unpublish. `Err(self)` otherwise.
    pub fn into_mut(self, gp: GracePeriod) -> Result<&'static mut T, Self> {
        if gp.0 <= self.epoch {
            return Err(self);
        }
        let mut p = self.ptr;
        // SAFETY: the pointer was published from a `&'static mut T` and
        // unpublished by the one swap that produced this `Retired`, before
        // epoch `self.epoch`; the grace period `gp` of a later epoch waited
        // for every read-side section that could have loaded it. No other
        // reference is left.
        Ok(unsafe { p.as_mut() })
    }
}

/// A pointer set once to a `&'static T` and never cleared: what a
/// lock-free reader may follow without a guard (the section table's roots,
/// which are never freed).
pub struct StaticPtr<T> {
    ptr: AtomicPtr<T>,
}

impl<T: 'static> StaticPtr<T> {
    pub const fn null() -> Self {
        Self { ptr: AtomicPtr::new(core::ptr::null_mut()) }
    }

    /// The value, once set.
    pub fn get(&self) -> Option<&'static T> {
        // SAFETY: a non-null pointer was stored by `set` from a
        // `&'static T` and is never changed again.
        unsafe { self.ptr.load(Ordering::Acquire).as_ref() }
    }

    /// Sets it (everything written to `value` before is visible to a
    /// reader that sees it); false, changing nothing, when already set.
    pub fn set(&self, value: &'static T) -> bool {
        let p = core::ptr::from_ref(value).cast_mut();
        let null = core::ptr::null_mut();
        self.ptr.compare_exchange(null, p, Ordering::Release, Ordering::Relaxed).is_ok()
    }
}

impl<T: 'static> Default for StaticPtr<T> {
    fn default() -> Self {
        Self::null()
    }
}

/// A reader-writer lock whose readers only touch their own CPU's counter
/// (Linux's `percpu_rw_semaphore`): cheap for readers, and a writer waits
/// until every reader has left. Readers wait while a writer holds it.
pub struct PercpuRwsem<const N: usize> {
    readers: [Slot; N],
    writer: AtomicBool,
}

/// The read side of a [`PercpuRwsem`], held on one CPU.
#[must_use = "the lock is held only while the guard lives"]
pub struct RwsemRead<'l, const N: usize> {
    lock: &'l PercpuRwsem<N>,
    cpu: usize,
    _not_send: PhantomData<*const ()>,
}

/// The write side of a [`PercpuRwsem`].
#[must_use = "the lock is held only while the guard lives"]
pub struct RwsemWrite<'l, const N: usize> {
    lock: &'l PercpuRwsem<N>,
}

/// Why a [`PercpuRwsem`] could not be taken for writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RwsemError {
    /// The caller's CPU holds the read side: the writer would wait for itself.
    HeldForReading,
    /// Another writer holds it.
    Busy,
}

impl<const N: usize> Default for PercpuRwsem<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> PercpuRwsem<N> {
    pub const fn new() -> Self {
        Self { readers: [const { Slot(AtomicU64::new(0)) }; N], writer: AtomicBool::new(false) }
    }

    /// Takes the read side on `cpu` (`percpu_down_read`), waiting (with
    /// `relax`) while a writer holds the lock. Nests on one CPU.
    pub fn read(&self, cpu: usize, mut relax: impl FnMut()) -> RwsemRead<'_, N> {
        let count = &self.readers[cpu].0;
        loop {
            count.fetch_add(1, Ordering::SeqCst);
            // Dekker again: either the writer sees this count, or this
            // sees the writer.
            if !self.writer.load(Ordering::SeqCst) || count.load(Ordering::Relaxed) > 1 {
                // A nested read on a CPU that already holds it never waits:
                // the writer is waiting for this CPU.
                return RwsemRead { lock: self, cpu, _not_send: PhantomData };
            }
            count.fetch_sub(1, Ordering::SeqCst);
            while self.writer.load(Ordering::Acquire) {
                relax();
            }
        }
    }

    /// Whether `cpu` holds the read side.
    pub fn held_for_reading(&self, cpu: usize) -> bool {
        self.readers[cpu].0.load(Ordering::Relaxed) != 0
    }

    /// Whether a writer holds the lock.
    pub fn write_locked(&self) -> bool {
        self.writer.load(Ordering::Acquire)
    }

    /// Takes the write side (`percpu_down_write`) from `cpu`: new readers
    /// wait from now on; waits (with `relax`) for the readers inside.
    pub fn write(
        &self,
        cpu: usize,
        mut relax: impl FnMut(),
    ) -> Result<RwsemWrite<'_, N>, RwsemError> {
        if self.held_for_reading(cpu) {
            return Err(RwsemError::HeldForReading);
        }
        if self.writer.compare_exchange(false, true, Ordering::SeqCst, Ordering::Relaxed).is_err() {
            return Err(RwsemError::Busy);
        }
        fence(Ordering::SeqCst);
        for slot in &self.readers {
            while slot.0.load(Ordering::SeqCst) != 0 {
                relax();
            }
        }
        Ok(RwsemWrite { lock: self })
    }
}

impl<const N: usize> RwsemRead<'_, N> {
    /// The CPU holding it.
    pub fn cpu(&self) -> usize {
        self.cpu
    }
}

impl<const N: usize> Drop for RwsemRead<'_, N> {
    fn drop(&mut self) {
        self.lock.readers[self.cpu].0.fetch_sub(1, Ordering::Release);
    }
}

impl<const N: usize> Drop for RwsemWrite<'_, N> {
    fn drop(&mut self) {
        self.lock.writer.store(false, Ordering::Release);
    }
}

/// The address of a `T` that stays mapped only while a guard `G` lives
/// (memory a writer may unmap once no guard is held). The borrow checker
/// keeps it from outliving the guard:
///
/// ```compile_fail
/// use tessera_rcu::{GuardedPtr, PercpuRwsem};
/// static LOCK: PercpuRwsem<1> = PercpuRwsem::new();
/// static VALUE: u64 = 7;
/// let escaped = {
///     let guard = LOCK.read(0, || {});
///     // SAFETY: VALUE is mapped for ever.
///     unsafe { GuardedPtr::new(&guard, core::ptr::NonNull::from(&VALUE)) }
/// }; // error: `guard` does not live long enough
/// let _ = escaped.as_ptr();
/// ```
///
/// It gives out an address, not a `&T`: other CPUs may change the `T`
/// (under their own locks) while the guard is held, so the holder reads it
/// word by word with atomic loads.
pub struct GuardedPtr<'g, T> {
    ptr: core::ptr::NonNull<T>,
    _guard: PhantomData<&'g ()>,
}

impl<'g, T> GuardedPtr<'g, T> {
    /// Ties `ptr` to `guard`'s lifetime.
    ///
    /// # Safety
    /// `ptr` must stay mapped, readable and aligned for a `T` while
    /// `guard` lives.
    pub unsafe fn new<G>(_guard: &'g G, ptr: core::ptr::NonNull<T>) -> Self {
        Self { ptr, _guard: PhantomData }
    }

    /// The address, valid for reads while the guard lives.
    pub fn as_ptr(&self) -> *const T {
        self.ptr.as_ptr()
    }
}

impl<T> Clone for GuardedPtr<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for GuardedPtr<'_, T> {}

#[cfg(test)]
mod tests;

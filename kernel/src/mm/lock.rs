//! A spin lock that knows which CPU holds it. The heap asks the page
//! allocator's zone locks whether an allocation would come from inside one
//! of them on this CPU (a broken lock order: growing would wait for
//! itself) or must simply wait for another CPU to finish, which a plain
//! `is_locked` cannot tell apart. `SPARSE` is one too, so that code can
//! assert who holds it.

use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU32, Ordering};

use spin::{Mutex, MutexGuard};

use crate::arch::percpu;

/// A [`spin::Mutex`] that records its holder's CPU number.
pub struct CpuMutex<T> {
    inner: Mutex<T>,
    /// The holder's CPU number plus one; 0 when free.
    owner: AtomicU32,
}

/// Holds a [`CpuMutex`]; releases it (and forgets the owner) on drop.
pub struct CpuMutexGuard<'a, T> {
    guard: MutexGuard<'a, T>,
    owner: &'a AtomicU32,
}

impl<T> CpuMutex<T> {
    pub const fn new(value: T) -> Self {
        Self { inner: Mutex::new(value), owner: AtomicU32::new(0) }
    }

    fn guard<'a>(&'a self, guard: MutexGuard<'a, T>) -> CpuMutexGuard<'a, T> {
        self.owner.store(percpu::current() + 1, Ordering::Release);
        CpuMutexGuard { guard, owner: &self.owner }
    }

    /// Waits for the lock.
    pub fn lock(&self) -> CpuMutexGuard<'_, T> {
        self.guard(self.inner.lock())
    }

    /// The lock, if free now.
    pub fn try_lock(&self) -> Option<CpuMutexGuard<'_, T>> {
        self.inner.try_lock().map(|g| self.guard(g))
    }

    /// Whether any CPU holds it.
    pub fn is_locked(&self) -> bool {
        self.inner.is_locked()
    }

    /// Whether the CPU asking holds it (only this CPU stores its own
    /// number, and clears it before releasing, so the answer is exact).
    pub fn held_by_this_cpu(&self) -> bool {
        self.owner.load(Ordering::Acquire) == percpu::current() + 1
    }
}

impl<T> Deref for CpuMutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> DerefMut for CpuMutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

impl<T> Drop for CpuMutexGuard<'_, T> {
    fn drop(&mut self) {
        // Before `guard` releases the lock (fields drop after this).
        self.owner.store(0, Ordering::Release);
    }
}

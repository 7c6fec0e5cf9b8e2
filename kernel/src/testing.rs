//! The in-kernel test framework (`custom_test_frameworks`).
//!
//! Every test prints one line over serial, `test <path> ... ok` or
//! `test <path> ... FAILED`, the format the host harness counts. A panic
//! inside a test prints that test's FAILED line before the panic message.
//! A test that must panic runs in its own binary through [`should_panic`].
//! The harness may hand a name filter over fw_cfg (`opt/tessera/test_filter`):
//! only tests whose path contains it run.

use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use spin::Mutex;

use crate::arch::{cpu, qemu};
use crate::println;

/// The test now running, for the panic handler.
static CURRENT: Mutex<Option<&'static str>> = Mutex::new(None);
static PANIC_EXPECTED: AtomicBool = AtomicBool::new(false);
/// The CPU the expected panic must happen on (`u32::MAX`: any).
static PANIC_CPU: AtomicU32 = AtomicU32::new(u32::MAX);

/// A test case: anything callable without arguments.
pub trait Testable {
    /// Runs the test and prints its line.
    fn run(&self);
    /// The test's path.
    fn name(&self) -> &'static str;
}

impl<T: Fn()> Testable for T {
    fn run(&self) {
        let name = self.name();
        *CURRENT.lock() = Some(name);
        self();
        *CURRENT.lock() = None;
        println!("test {name} ... ok");
    }

    fn name(&self) -> &'static str {
        core::any::type_name::<T>()
    }
}

fn filter() -> Option<&'static str> {
    static FILTER: spin::Once<Option<([u8; 128], usize)>> = spin::Once::new();
    let f = FILTER.call_once(|| {
        let mut buf = [0u8; 128];
        qemu::fw_cfg_file(options::contract::FW_CFG_TEST_FILTER, &mut buf)
            .map(|n| (buf, n.min(128)))
    });
    f.as_ref().and_then(|(b, n)| core::str::from_utf8(&b[..*n]).ok())
}

/// Whether the test `name` passes the harness's name filter.
pub fn selected(name: &str) -> bool {
    filter().is_none_or(|f| name.contains(f))
}

/// The test runner: runs every test whose name matches the filter.
pub fn run_tests(tests: &[&dyn Testable]) {
    let selected = || tests.iter().filter(|t| selected(t.name()));
    let n = selected().count();
    println!("running {n} test{}", if n == 1 { "" } else { "s" });
    for t in selected() {
        t.run();
    }
}

/// Ends a test binary whose tests all passed.
pub fn finish() -> ! {
    qemu::exit(qemu::ExitCode::Success);
    println!("tests done; halting (not under QEMU)");
    cpu::halt_loop()
}

/// Ends a test binary with a failure.
pub fn fail() -> ! {
    qemu::exit(qemu::ExitCode::Failure);
    cpu::halt_loop()
}

/// Starts a binary of one test (`harness = false`) named `name`: when the
/// harness's filter leaves it out, the binary ends at once, passing;
/// otherwise the one test is announced.
pub fn single_test(name: &str) {
    if !selected(name) {
        println!("running 0 tests");
        finish();
    }
    println!("running 1 test");
}

/// Ends a binary of one test: `ok` when every check holds, otherwise
/// FAILED with a note naming the first that does not, and `detail`.
pub fn conclude(name: &str, checks: &[(bool, &str)], detail: core::fmt::Arguments<'_>) -> ! {
    if let Some((_, what)) = checks.iter().find(|(ok, _)| !ok) {
        println!("test {name} ... FAILED");
        println!("note: {what} does not hold: {detail}");
        fail()
    }
    println!("test {name} ... ok");
    finish()
}

/// Runs `f`, which must panic: the binary passes when it does, fails when
/// `f` returns. Use in a binary of its own (`harness = false`).
pub fn should_panic(name: &'static str, f: impl FnOnce()) -> ! {
    should_panic_on(name, u32::MAX, f)
}

/// Like [`should_panic`], but the panic must happen on CPU `cpu` and stop
/// every other online CPU.
pub fn should_panic_on(name: &'static str, cpu: u32, f: impl FnOnce()) -> ! {
    PANIC_CPU.store(cpu, Ordering::SeqCst);
    single_test(name);
    *CURRENT.lock() = Some(name);
    PANIC_EXPECTED.store(true, Ordering::SeqCst);
    f();
    PANIC_EXPECTED.store(false, Ordering::SeqCst);
    println!("test {name} ... FAILED");
    println!("note: test did not panic as expected");
    fail()
}

pub(crate) fn panic_expected() -> bool {
    PANIC_EXPECTED.load(Ordering::SeqCst)
}

/// Called by the panic handler when [`should_panic`] armed it, with the
/// CPU that panicked and how many of its `others` online CPUs it stopped.
pub(crate) fn expected_panic_happened(cpu: u32, others: u32, stopped: u32) -> ! {
    // SAFETY: only the panic handler calls this; the interrupted holder
    // never runs again.
    unsafe { CURRENT.force_unlock() };
    let name = CURRENT.lock().unwrap_or("?");
    let want = PANIC_CPU.load(Ordering::SeqCst);
    if want != u32::MAX && (cpu != want || stopped != others) {
        println!("test {name} ... FAILED");
        println!(
            "note: the panic happened on CPU {cpu} (expected {want}) and stopped {stopped} of {others} other CPUs"
        );
        fail()
    }
    println!("test {name} ... ok");
    finish()
}

/// Called by the panic handler: completes the running test's line.
pub(crate) fn report_panic_in_test() {
    // SAFETY: only the panic handler calls this; the interrupted holder
    // never runs again.
    unsafe { CURRENT.force_unlock() };
    if let Some(name) = CURRENT.lock().take() {
        println!("test {name} ... FAILED");
    }
}

/// A step callback for `pmem::add` and `pmem::remove` that shows nothing.
pub fn quiet(_: u64, _: &str) {}

/// A copy of `pfn`'s descriptor read where `pfn_to_page` says it is, in a
/// read-side section; panics unless the pfn is valid and `page_to_pfn`
/// of that address gives the pfn back.
pub fn read_page_via_vmemmap(pfn: mm::page::Pfn) -> mm::page::Page {
    use crate::mm::sparse::{page_to_pfn, pfn_to_page, pfn_valid, rcu_read_lock};
    let _g = rcu_read_lock();
    assert!(pfn_valid(pfn), "{pfn:#x} is not valid");
    let addr = pfn_to_page(pfn);
    assert_eq!(page_to_pfn(addr), pfn);
    // SAFETY: the pfn is valid inside this read-side section, so its
    // memmap stays mapped until the section ends (a remove waits for a
    // grace period before it unmaps); a copy, read only.
    unsafe { core::ptr::read(addr as *const mm::page::Page) }
}

/// Everything the memory model holds that an operation may change: each
/// present section's word and usage (sub-section map and pageblock flags),
/// the free pages of every zone, and the bytes of memmap and usage maps.
/// Tests compare two of them to prove an operation was undone exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSnapshot {
    pub sections: alloc::vec::Vec<(u64, u64, Option<mm::sparse::UsageSnapshot>)>,
    pub free: alloc::vec::Vec<u64>,
    pub memmap_bytes: u64,
    pub usage_bytes: u64,
}

/// Takes a [`ModelSnapshot`] of the kernel's section table and allocator.
/// Every CPU's per-CPU page lists are drained first
/// ([`crate::mm::page_alloc::drain_all_pages`], from this CPU under the
/// lists' locks), so that the free counts do not depend on which pages
/// wait on a list; a CPU allocating meanwhile refills its list, so take
/// snapshots while the other CPUs leave the page allocator alone.
pub fn model_snapshot() -> ModelSnapshot {
    use crate::mm::page_alloc::{self, ZONES};
    page_alloc::drain_all_pages(None);
    // Room first, copies under the lock (no heap use while it is held).
    let n = crate::mm::sparse::SPARSE.lock().present_sections().count();
    let mut sections = alloc::vec::Vec::with_capacity(n);
    let mut free = alloc::vec::Vec::with_capacity(ZONES.len());
    let s = crate::mm::sparse::SPARSE.lock();
    sections
        .extend(s.present_sections().take(n).map(|(nr, ms)| (nr, ms.raw(), s.usage_snapshot(nr))));
    free.extend(ZONES.iter().map(|&z| page_alloc::nr_free(z)));
    let st = s.stats();
    ModelSnapshot { sections, free, memmap_bytes: st.memmap_bytes, usage_bytes: st.usage_bytes }
}

//! Work on several CPUs at once, in thread context: [`parallel`] runs one
//! job on a set of online CPUs, the caller being one of the workers, and
//! returns when every worker has finished (Linux's
//! `padata_do_multithreaded` shape: one job, shares taken by helpers,
//! the caller waits for all).
//!
//! How it runs: the caller publishes the job and the CPUs that should
//! take it, then wakes them with an empty call-function request. An AP
//! picks the job up in its idle loop ([`super::smpboot::idle`]), runs it
//! with interrupts enabled and reports done; meanwhile the caller runs
//! its own share and then waits. A worker is therefore an ordinary thread
//! of the kernel: it keeps answering TLB shootdowns and call-function
//! requests while it works, may take locks (with the usual order), may
//! allocate, and may itself send shootdowns (unmap) and call-function
//! requests.
//!
//! Rules:
//!
//! - One job at a time, system-wide: a second caller on another CPU waits
//!   for the first job to end (spinning with interrupts enabled). A job
//!   must not call [`parallel`] (nested): that would wait for itself, so
//!   it panics.
//! - A job must not wait for something only one particular worker (or the
//!   caller's code outside the job) provides: the workers start at
//!   different times, and a CPU that never picks the job up is left out.
//!   Jobs that share out work should take it from a common counter
//!   ([`Chunks`]), so that whoever runs does all of it.
//! - The caller must have interrupts enabled (it waits for the others and
//!   answers their requests meanwhile), and must not hold a lock a worker
//!   takes for longer than the worker can wait.
//! - A job may run for seconds; only a worker that does not finish within
//!   the timeout ([`DEFAULT_TIMEOUT_US`], or [`parallel_timeout`]'s) is an
//!   error, and since the job lives on the caller's stack and that worker
//!   may still use it, that is a panic naming the CPUs.
//!
//! ```text
//! caller: publish -> kick -> own share -> wait DONE -> withdraw
//! AP:     idle --job pending--> run (interrupts on) -> DONE -> idle
//! ```

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use spin::Mutex;

use super::ipi;
use super::percpu::{self, Doing};
use super::time;

/// How long [`parallel`] waits for the workers to finish, µs.
pub const DEFAULT_TIMEOUT_US: u64 = 120_000_000;

/// How long a CPU may take to pick the job up after the kick, µs. One
/// that does not is left out (and told so by [`NotStarted`]).
pub const PICKUP_TIMEOUT_US: u64 = 1_000_000;

/// Who a worker is, handed to each run of the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Worker {
    /// 0 for the caller, then 1.. for the other CPUs in CPU-number order.
    pub index: usize,
    /// How many workers were asked (the caller included).
    pub count: usize,
    /// The CPU number this worker runs on.
    pub cpu: u32,
}

impl Worker {
    /// This worker's part `[start, end)` of `0..total` when shared out
    /// evenly by index (the first `total % count` parts one larger). Only
    /// for jobs that can afford a missing worker's part not being done;
    /// others take work from [`Chunks`].
    pub fn share(&self, total: u64) -> (u64, u64) {
        let (n, i) = (self.count.max(1) as u64, self.index as u64);
        let (base, extra) = (total / n, total % n);
        let start = i * base + i.min(extra);
        (start, start + base + u64::from(i < extra))
    }
}

/// Work items `0..total` handed out `step` at a time to whoever asks
/// first: every item goes to exactly one worker, and the workers that run
/// do all of them between them.
#[derive(Debug)]
pub struct Chunks {
    next: AtomicU64,
    total: u64,
    step: u64,
}

impl Chunks {
    /// `total` items in pieces of `step` (at least 1).
    pub const fn new(total: u64, step: u64) -> Self {
        Self { next: AtomicU64::new(0), total, step: if step == 0 { 1 } else { step } }
    }

    /// The next piece `[start, end)`, `None` when all are handed out.
    pub fn next(&self) -> Option<(u64, u64)> {
        let start = self.next.fetch_add(self.step, Ordering::Relaxed);
        (start < self.total).then(|| (start, (start + self.step).min(self.total)))
    }
}

/// CPUs that were asked to take part but never picked the job up within
/// [`PICKUP_TIMEOUT_US`]; the job ran without them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotStarted {
    pub cpus: u64,
}

impl core::fmt::Display for NotStarted {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "parallel: CPUs {:#x} did not pick the job up; it ran without them", self.cpus)
    }
}

/// The job on the caller's stack; only dereferenced by a CPU between
/// winning its PENDING bit and setting its DONE bit, which the caller
/// waits for before the job goes away.
#[derive(Clone, Copy)]
struct Job {
    f: *const (dyn Fn(Worker) + Sync),
    /// Every worker asked, the caller's bit included.
    workers: u64,
    caller: u32,
}

// SAFETY: the pointee is `Sync`, and the caller keeps it alive until
// every CPU that took it has reported done (see `parallel_timeout`).
unsafe impl Send for Job {}

/// Serializes callers; holds the caller's CPU number plus one.
static OWNER: AtomicU32 = AtomicU32::new(0);
/// The job now published.
static JOB: Mutex<Option<Job>> = Mutex::new(None);
/// CPUs asked to take the job that have not yet taken it.
static PENDING: AtomicU64 = AtomicU64::new(0);
/// CPUs that took the job and finished it.
static DONE: AtomicU64 = AtomicU64::new(0);
/// CPUs running a share of a job now (the caller included).
static IN_JOB: AtomicU64 = AtomicU64::new(0);

/// Runs `job` on every online CPU of `cpus` and on this CPU (worker 0),
/// in thread context with interrupts enabled, and returns when all of
/// them have finished. See the module's rules. `Err` names the CPUs that
/// never started (the others did their parts); a worker that started but
/// does not finish within [`DEFAULT_TIMEOUT_US`] is a panic.
pub fn parallel(cpus: u64, job: &(dyn Fn(Worker) + Sync)) -> Result<(), NotStarted> {
    parallel_timeout(cpus, DEFAULT_TIMEOUT_US, job)
}

/// [`parallel`] with the time the workers have to finish, µs.
pub fn parallel_timeout(
    cpus: u64,
    timeout_us: u64,
    job: &(dyn Fn(Worker) + Sync),
) -> Result<(), NotStarted> {
    let me = percpu::this();
    let my_bit = me.mask();
    assert!(
        IN_JOB.load(Ordering::Acquire) & my_bit == 0,
        "parallel: called from inside a parallel job (nested) on CPU {}",
        me.cpu
    );
    let others = cpus & percpu::online_mask() & !my_bit;
    if others != 0 {
        assert!(
            x86_64::instructions::interrupts::are_enabled(),
            "parallel: the caller must have interrupts enabled"
        );
    }
    // One job at a time; wait (interrupts on) for another caller's.
    while OWNER.compare_exchange(0, me.cpu + 1, Ordering::Acquire, Ordering::Relaxed).is_err() {
        core::hint::spin_loop();
    }
    let workers = others | my_bit;
    let count = workers.count_ones() as usize;
    let erased: *const (dyn Fn(Worker) + Sync) = job;
    // SAFETY: only the lifetime is erased: the pointer is withdrawn and
    // every CPU that took it has finished before this function returns.
    let erased: *const (dyn Fn(Worker) + Sync + 'static) = unsafe { core::mem::transmute(erased) };
    DONE.store(0, Ordering::Release);
    // Interrupts off while JOB is held: a CPU's idle loop takes it with
    // interrupts off too, so neither can be interrupted into waiting on it.
    x86_64::instructions::interrupts::without_interrupts(|| {
        *JOB.lock() = Some(Job { f: erased, workers, caller: me.cpu });
    });
    PENDING.store(others, Ordering::Release);
    let mut not_started = 0;
    if others != 0 {
        // The kick: any interrupt ends an idle CPU's halt, and it then
        // finds its PENDING bit. A CPU that does not answer never will.
        if let Err(missing) = ipi::call_function(others, &|| {}) {
            not_started |= withdraw(missing);
        }
    }
    run_share(job, Worker { index: 0, count, cpu: me.cpu });
    let start = time::uptime_us();
    loop {
        let waited = time::uptime_us().saturating_sub(start);
        if waited > PICKUP_TIMEOUT_US && PENDING.load(Ordering::Acquire) != 0 {
            not_started |= withdraw(others);
        }
        let started = others & !not_started;
        if DONE.load(Ordering::Acquire) & started == started {
            break;
        }
        if waited > timeout_us {
            panic!(
                "parallel: CPUs {:#x} did not finish the job within {} s",
                started & !DONE.load(Ordering::Acquire),
                timeout_us / 1_000_000
            );
        }
        core::hint::spin_loop();
    }
    x86_64::instructions::interrupts::without_interrupts(|| *JOB.lock() = None);
    OWNER.store(0, Ordering::Release);
    if not_started == 0 { Ok(()) } else { Err(NotStarted { cpus: not_started }) }
}

/// Takes back the PENDING bits of `cpus`; returns those that were still
/// pending (their CPUs will not run the job). Each bit goes to exactly
/// one side: the CPU's own take or this.
fn withdraw(cpus: u64) -> u64 {
    PENDING.fetch_and(!cpus, Ordering::AcqRel) & cpus
}

fn run_share(job: &(dyn Fn(Worker) + Sync), w: Worker) {
    let me = percpu::this();
    let before = me.doing();
    me.set_doing(Doing::Working);
    IN_JOB.fetch_or(me.mask(), Ordering::AcqRel);
    job(w);
    IN_JOB.fetch_and(!me.mask(), Ordering::AcqRel);
    me.set_doing(before);
}

/// Called by an idle CPU with interrupts disabled: whether a job waits
/// for it.
pub fn pending_here() -> bool {
    PENDING.load(Ordering::Acquire) & percpu::this().mask() != 0
}

/// Called by an idle CPU with interrupts enabled: takes its share of the
/// published job, if it is still its own to take, runs it and reports done.
pub fn run_pending() {
    let me = percpu::this();
    let bit = me.mask();
    if PENDING.fetch_and(!bit, Ordering::AcqRel) & bit == 0 {
        return; // withdrawn meanwhile
    }
    let job = x86_64::instructions::interrupts::without_interrupts(|| *JOB.lock());
    let Some(job) = job else {
        // A bit is only set while a job is published.
        DONE.fetch_or(bit, Ordering::AcqRel);
        return;
    };
    let index = 1 + (job.workers & !(1 << job.caller) & (bit - 1)).count_ones() as usize;
    let w = Worker { index, count: job.workers.count_ones() as usize, cpu: me.cpu };
    // SAFETY: the caller keeps the job alive until our DONE bit is set,
    // which happens only after this call returns.
    let f = unsafe { &*job.f };
    run_share(f, w);
    DONE.fetch_or(bit, Ordering::AcqRel);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test_case]
    fn shares_cover_everything_once() {
        for count in 1..6 {
            let mut next = 0;
            for index in 0..count {
                let (s, e) = Worker { index, count, cpu: 0 }.share(17);
                assert_eq!(s, next);
                next = e;
            }
            assert_eq!(next, 17);
        }
    }
}

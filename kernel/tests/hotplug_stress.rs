//! The memory model on every CPU at once (`kernel::stress`): hotplug
//! operations on this CPU while every other CPU looks pfns up without
//! locks, reads descriptors through `get_online_mems` and allocates pages.
//! No read may fault or find poison, and the model must end as it began.
//! The harness boots this with `memmap=64M!0x3e000000 mem=1G` on 4 CPUs:
//! half the persistent sub-sections share an early section with RAM, half
//! have a section (and a vmemmap) of their own. A second boot adds
//! `hotplug_stress_nogp`: grace periods that do not wait must be caught.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

extern crate alloc;

use kernel::arch::percpu;
use kernel::println;

kernel::test_binary_entry!();

/// Operations per boot (`make stress` runs more).
const OPS: u64 = 20_000;
/// Operations of the broken variant: enough to be caught.
const NOGP_OPS: u64 = 2_000;

#[test_case]
fn hotplug_on_one_cpu_while_the_others_read_loses_nothing() {
    if kernel::boot::options().hotplug_stress_nogp {
        return;
    }
    let cpus = percpu::num_online() as usize;
    assert!(cpus > 2, "the harness boots this with 4 CPUs");
    let r = kernel::stress::run(OPS, false).expect("raw persistent memory to hot-plug");
    println!("{r}");
    println!("{}", r.details());
    assert_eq!(r.cpus, cpus, "every CPU took part");
    assert_eq!(r.ops, OPS);
    assert!(r.lookups > 0 && r.grace_periods > 0, "readers read and removes waited");
    assert_eq!((r.faults, r.poisoned), (0, 0), "a reader used freed memory");
    assert_eq!(r.changed, None, "the model changed");
}

#[test_case]
fn without_grace_periods_readers_are_caught_using_freed_memory() {
    if !kernel::boot::options().hotplug_stress_nogp {
        return;
    }
    let r = kernel::stress::run(NOGP_OPS, true).expect("raw persistent memory to hot-plug");
    println!("{r}");
    println!("{}", r.details());
    assert!(r.faults + r.poisoned > 0, "frees under readers went unseen");
}

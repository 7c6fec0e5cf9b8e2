//! The memory model on every CPU at once (`kernel::stress`): hotplug
//! operations on this CPU while every other CPU looks pfns up without
//! locks, reads descriptors through `get_online_mems` and allocates pages.
//! No read may fault or find poison, and the model must end as it began.
//! The harness boots this with `memmap=64M!0x3e000000 mem=1G` on the
//! multi-CPU profiles: half the persistent sub-sections share an early
//! section with RAM, half have a section (and a vmemmap) of their own.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

extern crate alloc;

use kernel::arch::percpu;
use kernel::println;

kernel::test_binary_entry!();

/// Operations per boot: about 30 ms each with 4 vCPUs on 2 host cores
/// (`make stress` runs more).
const OPS: u64 = 400;

#[test_case]
fn hotplug_on_one_cpu_while_the_others_read_loses_nothing() {
    let cpus = percpu::num_online() as usize;
    assert!(cpus > 1, "the harness boots this on a multi-CPU profile");
    let r = kernel::stress::run(OPS, false).expect("raw persistent memory to hot-plug");
    println!("{r}");
    println!("{}", r.details());
    assert_eq!(r.cpus, cpus, "every CPU took part");
    assert_eq!(r.ops, OPS);
    assert!(r.lookups > 0 && r.grace_periods > 0, "readers read and removes waited");
    assert_eq!((r.faults, r.poisoned), (0, 0), "a reader used freed memory");
    assert_eq!(r.changed, None, "the model changed");
}

//! Several CPUs. The harness boots this binary on the default machine on
//! every profile (one CPU on `bios` and `uefi`, four on `bios-smp` and
//! `uefi-smp`) and with hostile MADTs on `bios-smp`. A placeholder until
//! the kernel brings up its application processors: for now it checks
//! what holds on any CPU count.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

use x86_64::registers::model_specific::{ApicBase, ApicBaseFlags};

kernel::test_binary_entry!();

/// The tests run on the bootstrap processor, which has a local APIC with
/// ID 0 (QEMU numbers its CPUs from 0).
#[test_case]
fn tests_run_on_the_boot_cpu() {
    let (_, flags) = ApicBase::read();
    assert!(flags.contains(ApicBaseFlags::BSP), "IA32_APIC_BASE {flags:?}");
    let cpuid = raw_cpuid::CpuId::new();
    let info = cpuid.get_feature_info().expect("CPUID leaf 1");
    assert!(info.has_apic());
    assert_eq!(info.initial_local_apic_id(), 0);
}

//! A large, sparse physical address space: 2 GiB of RAM at the bottom and
//! a 64 GiB NVDIMM at 256 GiB (`addr=0x4000000000`). The model must grow
//! with what is present, not with the address space, and the NVDIMM's
//! memmap must live in the NVDIMM itself (altmap).
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

extern crate alloc;

use alloc::collections::BTreeSet;

use kernel::arch::{paging, time};
use kernel::boot::layout::VMEMMAP_START;
use kernel::drivers::pmem::{self, Region};
use kernel::mm::sparse::SPARSE;
use kernel::println;
use kernel::testing::{model_snapshot, quiet};
use mm::page::{memmap_offset, phys_pfn};
use mm::sparse::{
    SECTION_MEMMAP_BYTES, SECTIONS_PER_ROOT, USAGE_SIZE, pfn_to_section_nr, section_nr_to_pfn,
};

kernel::test_binary_entry!();

const G: u64 = 1 << 30;
const NVDIMM: u64 = 0x40_0000_0000;

fn nvdimm() -> Region {
    let r = pmem::regions().into_iter().next().expect("the NVDIMM region");
    assert_eq!((r.start, r.size), (NVDIMM, 64 * G), "{r}");
    r
}

#[test_case]
fn the_model_grows_with_what_is_present_not_the_address_space() {
    let r = nvdimm();
    assert!(r.has_altmap() && r.state == pmem::State::Added, "{r}");
    let s = SPARSE.lock();
    let present: alloc::vec::Vec<u64> = s.present_sections().map(|(nr, _)| nr).collect();
    let nv = (NVDIMM >> 27..(NVDIMM + 64 * G) >> 27).count() as u64;
    assert_eq!(nv, 512);
    assert_eq!(present.len() as u64, 16 + nv, "2 GiB of RAM and 64 GiB of NVDIMM");
    let roots: BTreeSet<u64> = present.iter().map(|nr| nr / SECTIONS_PER_ROOT as u64).collect();
    let st = s.stats();
    println!(
        "scale: {} present sections up to {:#x}: {} roots, usage {} bytes, memmap {} MiB",
        present.len(),
        (present.last().unwrap() + 1) << 27,
        st.roots,
        st.usage_bytes,
        st.memmap_bytes >> 20
    );
    // Roots only where sections are (root 0 for RAM, two for the NVDIMM),
    // not the 10 up to 320 GiB; one usage and one memmap per section.
    assert_eq!(st.roots, roots.len() as u64);
    assert_eq!(st.roots, 3);
    assert_eq!(st.usage_bytes, present.len() as u64 * USAGE_SIZE);
    assert_eq!(st.memmap_bytes, present.len() as u64 * SECTION_MEMMAP_BYTES);
}

#[test_case]
fn the_nvdimm_memmap_is_in_the_nvdimm_and_re_adding_uses_no_ram() {
    let r = nvdimm();
    // The harness formatted the device fsdax (map=dev) before this boot:
    // the memmap lies between the info block and dataoff.
    let (ms, me) = r.layout.and_then(|l| l.memmap_area()).expect("an fsdax info block");
    assert_eq!((ms, me), (NVDIMM + 8192, NVDIMM + G + (2 << 20)), "Linux's layout");
    for nr in [pfn_to_section_nr(phys_pfn(NVDIMM)), pfn_to_section_nr(phys_pfn(r.end() - 1))] {
        let virt = VMEMMAP_START + memmap_offset(section_nr_to_pfn(nr));
        let (phys, _) = paging::mapping(x86_64::VirtAddr::new(virt)).expect("memmap mapped");
        let phys = phys.as_u64();
        assert!((ms..me).contains(&phys), "section {nr}: memmap at {phys:#x}");
    }
    // Page tables made by the first add stay; after that a remove and an
    // add take nothing from System RAM.
    let before = model_snapshot().free;
    let t0 = time::uptime_us();
    pmem::remove(r.id, &mut quiet).unwrap();
    let removed = time::uptime_us() - t0;
    assert_eq!(model_snapshot().free, before, "remove gives nothing back: nothing was taken");
    let t0 = time::uptime_us();
    pmem::add(r.id, &mut quiet).unwrap();
    let added = time::uptime_us() - t0;
    assert_eq!(model_snapshot().free, before, "the add used no System RAM");
    println!(
        "scale: 64 GiB NVDIMM with altmap: remove {}.{:03} ms, add {}.{:03} ms",
        removed / 1000,
        removed % 1000,
        added / 1000,
        added % 1000
    );
    let last = phys_pfn(r.end() - 1);
    assert!(kernel::mm::sparse::pfn_valid(last));
    assert_eq!(kernel::mm::sparse::page(last).unwrap().zone(), mm::page::ZoneType::Device);
}

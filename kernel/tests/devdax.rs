//! A 64 GiB NVDIMM at 256 GiB formatted device-dax (map=dev, 2 MiB
//! alignment) by the harness, as Linux's `ndctl create-namespace -m
//! devdax` lays it out. Its pages are 2 MiB compound pages whose tails
//! share one read-only vmemmap page: one page of memmap per 2 MiB (2 MiB
//! per GiB; a descriptor per page would take 16, Linux 6.1 takes 4 and
//! only with the memmap in RAM), and every lookup stays right.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

extern crate alloc;

use kernel::arch::{paging, time};
use kernel::drivers::pmem::{self, Region};
use kernel::mm::sparse::{self, SPARSE};
use kernel::println;
use kernel::testing::{model_snapshot, quiet, read_page_via_vmemmap};
use mm::page::{Page, Pfn, phys_pfn};
use mm::sparse::{Compound, SHARED_RESERVED, shared_tails};
use x86_64::VirtAddr;

kernel::test_binary_entry!();

const G: u64 = 1 << 30;

fn devdax() -> (Region, Compound) {
    let r = pmem::regions().into_iter().next().expect("the NVDIMM region");
    assert_eq!((r.start, r.size, r.mode()), (0x40_0000_0000, 64 * G, "devdax"), "{r}");
    assert!(r.has_altmap() && r.state == pmem::State::Added, "{r}");
    let c = r.compound().expect("devdax at 2 MiB has compound pages");
    assert_eq!(c.shift(), 9);
    (r, c)
}

/// RAM pages nobody uses.
fn free() -> u64 {
    model_snapshot().free.iter().sum()
}

#[test_case]
fn one_vmemmap_page_per_compound_page() {
    let (r, _) = devdax();
    let (ds, de) = r.data();
    let st = SPARSE.lock().stats();
    // 16 boot sections of RAM, a 2 MiB page each; the NVDIMM: one 4 KiB
    // page per 2 MiB of data, the info block and the memmap area sharing
    // one page of reserved descriptors.
    let nv = st.memmap_bytes - 16 * mm::sparse::SECTION_MEMMAP_BYTES;
    assert_eq!(nv, r.memmap_bytes());
    assert_eq!(nv, (de - ds) / (2 << 20) * 4096);
    let per_gib = nv * G / r.size;
    assert!(per_gib <= 2 << 20, "{per_gib} bytes per GiB");
    println!(
        "devdax: 64 GiB, align 2 MiB, map dev: memmap {} KiB on the device ({per_gib} bytes per GiB)",
        nv >> 10
    );
}

#[test_case]
fn every_pfn_of_the_first_gib_is_found_and_right() {
    let (r, c) = devdax();
    let (start, _) = r.mapped();
    let first = phys_pfn(r.data().0);
    // Before the data: reserved pages of no pgmap.
    for pfn in [phys_pfn(start), phys_pfn(start) + 64, first - 1] {
        assert_eq!(read_page_via_vmemmap(pfn), c.descriptor(pfn, 0, r.pgmap()), "{pfn:#x}");
        assert_eq!(read_page_via_vmemmap(pfn).pgmap, 0);
    }
    for pfn in (first.as_u64()..first.as_u64() + G / 4096).map(Pfn::new) {
        let page = read_page_via_vmemmap(pfn);
        assert_eq!(page, c.descriptor(pfn, 0, r.pgmap()), "{pfn:#x}");
        let head = page.compound_head(pfn);
        assert_eq!(head, pfn.align_down(512));
        assert_eq!(read_page_via_vmemmap(head).pgmap, r.pgmap(), "head of {pfn:#x}");
    }
}

#[test_case]
fn shared_pages_are_read_only_and_never_written() {
    let (r, _) = devdax();
    let first = phys_pfn(r.data().0);
    let tails = shared_tails(9).unwrap();
    let tail_phys = paging::translate(VirtAddr::from_ptr(tails)).unwrap();
    for pfn in [first + 64, first + 511, first + 1024 + 448] {
        let va = VirtAddr::new(sparse::pfn_to_page(pfn));
        assert_eq!(
            paging::mapping(va).map(|m| m.0),
            Some(tail_phys.align_down(4096u64) + (va.as_u64() & 0xfff))
        );
        assert!(!paging::is_writable(va), "{pfn:#x}: the shared page is read-only");
    }
    // A head's page is its own and writable.
    assert!(paging::is_writable(VirtAddr::new(sparse::pfn_to_page(first))));
    assert!(tails.0.iter().all(|p| *p == Page::compound_tail(0, 9)));
    assert!(SHARED_RESERVED.0.iter().all(|p| *p == Page::init(mm::page::ZoneType::Device, 0)));
}

#[test_case]
fn remove_and_add_take_nothing_more() {
    let (r, c) = devdax();
    // Page tables of the first add stay (as for fsdax); after that a
    // remove and an add use no System RAM, and the model is the same.
    let (free0, bytes0) = (free(), SPARSE.lock().stats().memmap_bytes);
    let t0 = time::uptime_us();
    pmem::remove(r.id, &mut quiet).unwrap();
    let removed = time::uptime_us() - t0;
    assert_eq!(SPARSE.lock().stats().memmap_bytes, 16 * mm::sparse::SECTION_MEMMAP_BYTES);
    let t0 = time::uptime_us();
    pmem::add(r.id, &mut quiet).unwrap();
    let added = time::uptime_us() - t0;
    assert_eq!((free(), SPARSE.lock().stats().memmap_bytes), (free0, bytes0));
    let first = phys_pfn(r.data().0);
    assert_eq!(read_page_via_vmemmap(first + 5), c.descriptor(first + 5, 0, r.pgmap()));
    println!("devdax: 64 GiB remove {} ms, add {} ms", removed / 1000, added / 1000);
}

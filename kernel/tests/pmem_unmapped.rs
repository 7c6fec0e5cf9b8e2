//! A removed persistent-memory range is not in the kernel's map: adding a
//! region maps it (2 MiB at a time), removing it unmaps it, data written
//! before a remove reads back after the next add, and an access to a
//! removed range page-faults with a report that names the region.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use bootloader_api::{BootInfo, entry_point};
use kernel::arch::{idt, paging};
use kernel::drivers::pmem::{self, PmemFault, Region, State};
use kernel::testing::{self, quiet};
use kernel::{BOOTLOADER_CONFIG, boot, init, println};
use mm::e820::MemRange;
use spin::Once;

entry_point!(main, config = &BOOTLOADER_CONFIG);

const NAME: &str = "pmem_unmapped::a_removed_range_is_unmapped_and_the_fault_names_it";
const SUB: u64 = 2 << 20;

/// The region and the address the final access touches.
static TARGET: Once<(Region, u64)> = Once::new();

fn offset() -> u64 {
    boot::mappings().unwrap().physical_memory_offset
}

/// Each 2 MiB piece of the region: mapped to itself, or not mapped.
fn check_mapped(r: &Region, mapped: bool) -> Result<(), alloc::string::String> {
    let off = offset();
    for a in (r.start..r.end()).step_by(SUB as usize) {
        let m = paging::mapping(x86_64::VirtAddr::new(off + a + 0x1000)).map(|(p, _)| p.as_u64());
        let want = mapped.then_some(a + 0x1000);
        if m != want {
            return Err(format!("{r}: {a:#x} maps to {m:x?}, expected {want:x?}"));
        }
    }
    Ok(())
}

fn fail(why: &str) -> ! {
    println!("test {NAME} ... FAILED");
    println!("note: {why}");
    testing::fail()
}

fn main(boot_info: &'static mut BootInfo) -> ! {
    init::init(boot_info);
    testing::single_test(NAME);
    let off = offset();
    let Some(r) = pmem::regions().into_iter().next() else { fail("no PMEM region") };
    if r.state != State::Added {
        fail(&format!("{r}: not added at boot"));
    }
    check_mapped(&r, true).unwrap_or_else(|e| fail(&e));
    // A word near the end (with an altmap the start holds the memmap).
    let word = r.end() - SUB + 0x1238;
    // SAFETY: the region is added and mapped at `off`; it is device memory
    // this test owns, and nothing else uses it.
    let old = unsafe { ((off + word) as *const u64).read_volatile() };
    // SAFETY: as above.
    unsafe { ((off + word) as *mut u64).write_volatile(0x7e55_e7a5_0000_0001) };
    pmem::remove(r.id, &mut quiet).unwrap_or_else(|e| fail(&format!("remove: {e}")));
    check_mapped(&r, false).unwrap_or_else(|e| fail(&e));
    let want = PmemFault { id: r.id, start: r.start, end: r.end(), state: State::Offline };
    if pmem::fault_at(off + word) != Some(want) || pmem::fault_at(off + r.end()).is_some() {
        fail("fault_at does not name exactly the region's range");
    }
    pmem::add(r.id, &mut quiet).unwrap_or_else(|e| fail(&format!("add: {e}")));
    check_mapped(&r, true).unwrap_or_else(|e| fail(&e));
    // SAFETY: as above: added again, mapped again, still this test's.
    let v = unsafe { ((off + word) as *const u64).read_volatile() };
    if v != 0x7e55_e7a5_0000_0001 {
        fail(&format!("{word:#x} reads {v:#x} after remove and add"));
    }
    // The device gets its data back.
    // SAFETY: as above.
    unsafe {
        ((off + word) as *mut u64).write_volatile(old);
        kernel::arch::cpu::flush_cache_range(off + word, 8);
    }
    pmem::remove(r.id, &mut quiet).unwrap_or_else(|e| fail(&format!("remove: {e}")));
    TARGET.call_once(|| (r, off + word));
    idt::set_fault_hook(on_fault);
    // SAFETY: not safe on purpose: the range was just unmapped and the read
    // must fault; the hook never returns here.
    let v = unsafe { ((off + word) as *const u64).read_volatile() };
    fail(&format!("reading a removed range gave {v:#x} instead of a fault"))
}

fn on_fault(info: &idt::ExceptionInfo) -> ! {
    let (r, addr) = TARGET.get().unwrap();
    println!("{info}");
    let text = format!("{info}");
    let range = format!("{}", MemRange(r.start, r.end()));
    let want = PmemFault { id: r.id, start: r.start, end: r.end(), state: State::Offline };
    // Error code: bits 0-2 clear = not present, read, supervisor.
    let ok = info.vector == 14
        && info.cr2 == Some(*addr)
        && info.error_code.is_some_and(|e| e & 0b111 == 0)
        && info.note == Some(idt::FaultNote::new(format_args!("{want}")))
        && text.contains(&format!("CR2={addr:#018x}: {range} is persistent memory region{}", r.id))
        && text.ends_with("not added: removed ranges are unmapped");
    println!("test {NAME} ... {}", if ok { "ok" } else { "FAILED" });
    if ok { testing::finish() } else { testing::fail() }
}

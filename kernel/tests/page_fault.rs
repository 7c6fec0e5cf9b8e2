//! A write to an unmapped address raises a page fault whose report names
//! the vector, the error code (write, not present) and CR2.
#![no_std]
#![no_main]

use bootloader_api::{BootInfo, entry_point};
use kernel::arch::idt;
use kernel::{BOOTLOADER_CONFIG, init, println, testing};

entry_point!(main, config = &BOOTLOADER_CONFIG);

const NAME: &str = "page_fault::unmapped_write_is_reported";
/// In the kernel's own, never-mapped part of the upper half.
const UNMAPPED: u64 = 0xffff_d000_0000_1238;

fn main(boot_info: &'static mut BootInfo) -> ! {
    init::init(boot_info);
    testing::single_test(NAME);
    idt::set_fault_hook(on_fault);
    // SAFETY: not safe at all on purpose: the address is unmapped and the
    // write must fault; the hook never returns here.
    unsafe { core::ptr::write_volatile(UNMAPPED as *mut u64, 42) };
    println!("test {NAME} ... FAILED");
    println!("note: the write did not fault");
    testing::fail()
}

fn on_fault(info: &idt::ExceptionInfo) -> ! {
    let text = alloc_free_format(info);
    // Error code bit 1 = write access, bit 0 = 0: page not present.
    let ok = info.vector == 14
        && info.cr2 == Some(UNMAPPED)
        && info.error_code.is_some_and(|e| e & 0b11 == 0b10)
        && text;
    println!("{info}");
    println!("test {NAME} ... {}", if ok { "ok" } else { "FAILED" });
    if ok { testing::finish() } else { testing::fail() }
}

/// The report's text names the fault and CR2.
fn alloc_free_format(info: &idt::ExceptionInfo) -> bool {
    use core::fmt::Write;
    struct Buf([u8; 256], usize);
    impl Write for Buf {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            let end = (self.1 + s.len()).min(self.0.len());
            self.0[self.1..end].copy_from_slice(&s.as_bytes()[..end - self.1]);
            self.1 = end;
            Ok(())
        }
    }
    let mut b = Buf([0; 256], 0);
    let _ = write!(b, "{info}");
    let s = core::str::from_utf8(&b.0[..b.1]).unwrap_or("");
    s.starts_with("EXCEPTION: page fault (vector 14) error_code=0x2")
        && s.ends_with("CR2=0xffffd00000001238")
}

//! GDT and TSS. The TSS carries an interrupt stack table entry for double
//! faults, so a kernel stack overflow (which faults on the guard page and
//! then cannot push an exception frame) still lands on a good stack.

use core::ptr::addr_of;
use spin::Once;
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;

/// IST slot used by the double-fault handler.
pub const DOUBLE_FAULT_IST_INDEX: u16 = 0;
/// Size of the double-fault stack.
pub const DOUBLE_FAULT_STACK_SIZE: usize = 5 * 4096;

/// The unmapped page below the double-fault stack.
const GUARD: usize = 4096;

#[repr(align(4096))]
struct Stack(
    #[expect(dead_code, reason = "only reached through raw pointers")]
    [u8; GUARD + DOUBLE_FAULT_STACK_SIZE],
);

/// Only the CPU writes this stack (when it switches to IST 0); Rust code
/// never takes a reference to its contents. Its first page is the guard.
static mut DOUBLE_FAULT_STACK: Stack = Stack([0; GUARD + DOUBLE_FAULT_STACK_SIZE]);

/// The double-fault stack's address range `[start, end)`, without its
/// guard page.
pub fn double_fault_stack() -> (u64, u64) {
    let start = addr_of!(DOUBLE_FAULT_STACK) as u64 + GUARD as u64;
    (start, start + DOUBLE_FAULT_STACK_SIZE as u64)
}

/// The guard page's address: unmapped by [`guard_double_fault_stack`], so
/// running off the bottom of the double-fault stack faults instead of
/// overwriting the kernel's data below it.
pub fn double_fault_guard() -> u64 {
    addr_of!(DOUBLE_FAULT_STACK) as u64
}

/// Unmaps the double-fault stack's guard page (the bootloader maps the
/// kernel image in 4 KiB pages; the page's frame is simply not used).
pub fn guard_double_fault_stack() {
    use super::paging::{self, MapSize};
    let guard = VirtAddr::new(double_fault_guard());
    if !matches!(paging::mapping(guard), Some((_, MapSize::Size4K))) {
        log::warn!("gdt: the double-fault stack's guard page is not a 4 KiB page; left mapped");
        return;
    }
    // SAFETY: the guard page is the first, page-aligned 4 KiB page of a
    // static nothing references (`double_fault_stack` starts above it), so
    // no access depends on it staying mapped.
    unsafe { paging::unmap(guard) };
}

static TSS: Once<TaskStateSegment> = Once::new();
static GDT: Once<(GlobalDescriptorTable, Selectors)> = Once::new();

struct Selectors {
    code: SegmentSelector,
    data: SegmentSelector,
    tss: SegmentSelector,
}

/// Gives an application processor a GDT and a TSS of its own (a TSS
/// cannot be shared: loading it marks its descriptor busy), with its own
/// double-fault stack ending at `df_stack_top`, and loads them.
pub fn init_ap(df_stack_top: u64) {
    let mut tss = TaskStateSegment::new();
    tss.interrupt_stack_table[DOUBLE_FAULT_IST_INDEX as usize] = VirtAddr::new(df_stack_top);
    let tss: &'static TaskStateSegment = alloc::boxed::Box::leak(alloc::boxed::Box::new(tss));
    let mut gdt = GlobalDescriptorTable::new();
    let code = gdt.append(Descriptor::kernel_code_segment());
    let data = gdt.append(Descriptor::kernel_data_segment());
    let tss_sel = gdt.append(Descriptor::tss_segment(tss));
    let gdt: &'static GlobalDescriptorTable = alloc::boxed::Box::leak(alloc::boxed::Box::new(gdt));
    gdt.load();
    // SAFETY: the selectors come from the GDT just loaded, which (like the
    // TSS) is leaked: it lives as long as the kernel.
    unsafe {
        CS::set_reg(code);
        SS::set_reg(data);
        DS::set_reg(data);
        ES::set_reg(data);
        load_tss(tss_sel);
    }
}

/// Loads the GDT and the TSS and reloads the segment registers.
pub fn init() {
    let tss = TSS.call_once(|| {
        let mut tss = TaskStateSegment::new();
        tss.interrupt_stack_table[DOUBLE_FAULT_IST_INDEX as usize] =
            VirtAddr::new(double_fault_stack().1);
        tss
    });
    let (gdt, sel) = GDT.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let code = gdt.append(Descriptor::kernel_code_segment());
        let data = gdt.append(Descriptor::kernel_data_segment());
        let tss = gdt.append(Descriptor::tss_segment(tss));
        (gdt, Selectors { code, data, tss })
    });
    gdt.load();
    // SAFETY: the selectors come from the GDT just loaded, which lives in a
    // static for the rest of the kernel's life; the TSS is likewise static.
    unsafe {
        CS::set_reg(sel.code);
        SS::set_reg(sel.data);
        DS::set_reg(sel.data);
        ES::set_reg(sel.data);
        load_tss(sel.tss);
    }
}

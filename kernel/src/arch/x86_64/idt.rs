//! The IDT: a handler for every CPU exception. Each prints the vector, the
//! error code, RIP and (for page faults) CR2, then fails the kernel.
//! Tests can take over the failure path with [`set_fault_hook`].
//!
//! This is hardware only: what a faulting address belongs to is told by a
//! describer the layers above register ([`set_fault_describer`]), and the
//! console's locks are released by a hook they register
//! ([`set_unlock_hook`]), so `arch` imports no driver and no console.

use core::fmt;
use spin::{Mutex, Once};
use x86_64::registers::control::Cr2;
use x86_64::structures::idt::{InterruptDescriptorTable, InterruptStackFrame, PageFaultErrorCode};

use super::gdt::DOUBLE_FAULT_IST_INDEX;

/// A short text naming what a faulting address belongs to (e.g. a
/// persistent-memory region), written by a registered describer. A fixed
/// buffer: the fault path must not allocate.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct FaultNote {
    buf: [u8; 160],
    len: usize,
}

impl FaultNote {
    /// The note `args` formats to, cut at 160 bytes.
    pub fn new(args: fmt::Arguments<'_>) -> Self {
        let mut n = Self { buf: [0; 160], len: 0 };
        let _ = fmt::write(&mut n, args);
        n
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Only whole `&str`s are copied in (`write_str` stops before a
        // piece that does not fit), so the bytes are UTF-8.
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl fmt::Write for FaultNote {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl fmt::Display for FaultNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for FaultNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Tells what a faulting virtual address belongs to, if the describer
/// knows it; it must never wait for a lock (it runs in the fault path).
pub type FaultDescriber = fn(u64) -> Option<FaultNote>;

static DESCRIBER: Once<FaultDescriber> = Once::new();

/// Registers the one describer of faulting addresses (later calls are
/// ignored).
pub fn set_fault_describer(describe: FaultDescriber) {
    DESCRIBER.call_once(|| describe);
}

/// The registered describer's note for `addr`.
pub fn describe_fault(addr: u64) -> Option<FaultNote> {
    DESCRIBER.get().and_then(|d| d(addr))
}

/// Releases locks an interrupted context may hold on the way out (the
/// framebuffer console's).
///
/// # Safety
///
/// Only called on a path that never returns to the interrupted context.
pub type UnlockHook = unsafe fn();

static UNLOCK: Once<UnlockHook> = Once::new();

/// Registers the hook the fault path calls before it prints.
pub fn set_unlock_hook(hook: UnlockHook) {
    UNLOCK.call_once(|| hook);
}

/// What the CPU reported for one exception.
#[derive(Debug, Clone, Copy)]
pub struct ExceptionInfo {
    pub vector: u8,
    pub name: &'static str,
    pub error_code: Option<u64>,
    pub rip: u64,
    pub rsp: u64,
    /// The faulting address, for page faults.
    pub cr2: Option<u64>,
    /// The stack pointer inside the handler (shows which stack it runs on).
    pub handler_rsp: u64,
    /// For a page fault: what the address belongs to, as the registered
    /// describer tells it (e.g. a persistent-memory region).
    pub note: Option<FaultNote>,
}

impl ExceptionInfo {
    /// Linux's page-fault oops header (`BUG: unable to handle page fault
    /// ...`, `#PF: ...`), plus a line naming the persistent-memory region
    /// when the address is in one.
    pub fn log_page_fault(&self) {
        let (Some(addr), Some(code)) = (self.cr2, self.error_code) else {
            return;
        };
        let code = PageFaultErrorCode::from_bits_truncate(code);
        log::error!("BUG: unable to handle page fault for address: {addr:016x}");
        log::error!(
            "#PF: {} {} access in {} mode",
            if code.contains(PageFaultErrorCode::USER_MODE) { "user" } else { "supervisor" },
            if code.contains(PageFaultErrorCode::INSTRUCTION_FETCH) {
                "instruction fetch"
            } else if code.contains(PageFaultErrorCode::CAUSED_BY_WRITE) {
                "write"
            } else {
                "read"
            },
            if code.contains(PageFaultErrorCode::USER_MODE) { "user" } else { "kernel" },
        );
        log::error!(
            "#PF: error_code({:#06x}) - {}",
            code.bits(),
            if code.contains(PageFaultErrorCode::PROTECTION_VIOLATION) {
                "permissions violation"
            } else {
                "not-present page"
            }
        );
        if let Some(p) = self.note {
            log::error!("#PF: {p}");
        }
    }
}

impl fmt::Display for ExceptionInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EXCEPTION: {} (vector {})", self.name, self.vector)?;
        if let Some(e) = self.error_code {
            write!(f, " error_code={e:#x}")?;
        }
        write!(f, " RIP={:#018x} RSP={:#018x}", self.rip, self.rsp)?;
        if let Some(a) = self.cr2 {
            write!(f, " CR2={a:#018x}")?;
        }
        if let Some(p) = self.note {
            write!(f, ": {p}")?;
        }
        Ok(())
    }
}

/// Called instead of the default failure path; never returns.
pub type FaultHook = fn(&ExceptionInfo) -> !;

static FAULT_HOOK: Mutex<Option<FaultHook>> = Mutex::new(None);

/// Replaces the default failure path for exceptions (used by tests that
/// provoke a fault on purpose).
pub fn set_fault_hook(hook: FaultHook) {
    *FAULT_HOOK.lock() = Some(hook);
}

fn current_rsp() -> u64 {
    let rsp: u64;
    // SAFETY: reads RSP into a register; no memory access, no side effects.
    unsafe { core::arch::asm!("mov {}, rsp", out(reg) rsp, options(nomem, nostack)) };
    rsp
}

fn fault(
    vector: u8,
    name: &'static str,
    frame: &InterruptStackFrame,
    error_code: Option<u64>,
    cr2: Option<u64>,
) -> ! {
    x86_64::instructions::interrupts::disable();
    // SAFETY: interrupts are off and this path never returns (the hook and
    // the panic both end the kernel or the test), so whatever context held
    // the console locks will never run again.
    unsafe {
        super::serial::force_unlock();
        if let Some(unlock) = UNLOCK.get() {
            unlock();
        }
    }
    let info = ExceptionInfo {
        vector,
        name,
        error_code,
        rip: frame.instruction_pointer.as_u64(),
        rsp: frame.stack_pointer.as_u64(),
        cr2,
        handler_rsp: current_rsp(),
        note: cr2.and_then(describe_fault),
    };
    info.log_page_fault();
    // An exception may have interrupted code holding the hook lock only if
    // that code faulted inside set_fault_hook, which does nothing that faults.
    let hook = *FAULT_HOOK.lock();
    if let Some(hook) = hook {
        hook(&info);
    }
    panic!("{info}");
}

macro_rules! handlers {
    ($($field:ident: $fn:ident, $vector:expr, $name:expr;)*) => {
        $(extern "x86-interrupt" fn $fn(frame: InterruptStackFrame) {
            fault($vector, $name, &frame, None, None)
        })*
    };
}
macro_rules! handlers_with_code {
    ($($field:ident: $fn:ident, $vector:expr, $name:expr;)*) => {
        $(extern "x86-interrupt" fn $fn(frame: InterruptStackFrame, code: u64) {
            fault($vector, $name, &frame, Some(code), None)
        })*
    };
}

macro_rules! exception_table {
    ($mac:ident) => {
        $mac! {
            divide_error: divide_error, 0, "divide error";
            debug: debug, 1, "debug";
            breakpoint: breakpoint, 3, "breakpoint";
            overflow: overflow, 4, "overflow";
            bound_range_exceeded: bound_range, 5, "bound range exceeded";
            invalid_opcode: invalid_opcode, 6, "invalid opcode";
            device_not_available: device_not_available, 7, "device not available";
            x87_floating_point: x87_floating_point, 16, "x87 floating point";
            simd_floating_point: simd_floating_point, 19, "SIMD floating point";
            virtualization: virtualization, 20, "virtualization";
            hv_injection_exception: hv_injection, 28, "hypervisor injection";
        }
    };
}
macro_rules! exception_table_with_code {
    ($mac:ident) => {
        $mac! {
            invalid_tss: invalid_tss, 10, "invalid TSS";
            segment_not_present: segment_not_present, 11, "segment not present";
            stack_segment_fault: stack_segment_fault, 12, "stack-segment fault";
            general_protection_fault: general_protection, 13, "general protection fault";
            alignment_check: alignment_check, 17, "alignment check";
            cp_protection_exception: cp_protection, 21, "control protection";
            vmm_communication_exception: vmm_communication, 29, "VMM communication";
            security_exception: security_exception, 30, "security exception";
        }
    };
}

exception_table!(handlers);
exception_table_with_code!(handlers_with_code);

extern "x86-interrupt" fn double_fault(frame: InterruptStackFrame, code: u64) -> ! {
    fault(8, "double fault", &frame, Some(code), None)
}

extern "x86-interrupt" fn machine_check(frame: InterruptStackFrame) -> ! {
    fault(18, "machine check", &frame, None, None)
}

extern "x86-interrupt" fn page_fault(mut frame: InterruptStackFrame, code: PageFaultErrorCode) {
    let cr2 = Cr2::read_raw();
    if let Some(fixup) = super::extable::fixup(frame.instruction_pointer.as_u64()) {
        // SAFETY: the faulting instruction is one of `extable`'s probes,
        // whose fixup address continues the same function with the same
        // stack; only RIP changes.
        unsafe {
            frame.as_mut().update(|f| f.instruction_pointer = x86_64::VirtAddr::new(fixup));
        }
        super::extable::record_fault(cr2);
        return;
    }
    fault(14, "page fault", &frame, Some(code.bits()), Some(cr2))
}

/// An NMI: another CPU's stop request (its panic), or a real one.
extern "x86-interrupt" fn nmi(frame: InterruptStackFrame) {
    if super::ipi::stop_requested() {
        super::ipi::stop_self();
    }
    fault(2, "non-maskable interrupt", &frame, None, None)
}

extern "x86-interrupt" fn call_function(_frame: InterruptStackFrame) {
    super::ipi::handle_call_function();
    super::apic::eoi();
}

extern "x86-interrupt" fn sci(_frame: InterruptStackFrame) {
    super::ioapic::sci();
}

extern "x86-interrupt" fn apic_error(_frame: InterruptStackFrame) {
    APIC_ERRORS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    super::apic::eoi();
}

/// The local timer's one-shot from `apic::sleep_us`: nothing to do but
/// wake the CPU.
extern "x86-interrupt" fn apic_timer(_frame: InterruptStackFrame) {
    super::apic::eoi();
}

/// Spurious interrupts take no EOI (SDM 11.9); the legacy PIC's lines are
/// masked, but one latched before the mask still arrives once.
extern "x86-interrupt" fn spurious(_frame: InterruptStackFrame) {}

static APIC_ERRORS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// APIC error interrupts since boot.
pub fn apic_errors() -> u64 {
    APIC_ERRORS.load(core::sync::atomic::Ordering::Relaxed)
}

static IDT: Once<InterruptDescriptorTable> = Once::new();

/// Builds and loads the IDT. Call after [`super::gdt::init`].
pub fn init() {
    let idt = IDT.call_once(|| {
        let mut idt = InterruptDescriptorTable::new();
        macro_rules! install {
            ($($field:ident: $fn:ident, $vector:expr, $name:expr;)*) => {
                $(idt.$field.set_handler_fn($fn);)*
            };
        }
        exception_table!(install);
        exception_table_with_code!(install);
        idt.page_fault.set_handler_fn(page_fault);
        idt.non_maskable_interrupt.set_handler_fn(nmi);
        idt.machine_check.set_handler_fn(machine_check);
        for v in 0x20..0x30 {
            idt[v].set_handler_fn(spurious);
        }
        idt[super::ipi::CALL_FUNCTION_VECTOR].set_handler_fn(call_function);
        idt[super::apic::ERROR_VECTOR].set_handler_fn(apic_error);
        idt[super::ioapic::SCI_VECTOR].set_handler_fn(sci);
        idt[super::apic::TIMER_VECTOR].set_handler_fn(apic_timer);
        idt[super::apic::SPURIOUS_VECTOR].set_handler_fn(spurious);
        // SAFETY: DOUBLE_FAULT_IST_INDEX names the IST slot that gdt::init
        // filled with a dedicated, otherwise unused static stack.
        unsafe {
            idt.double_fault.set_handler_fn(double_fault).set_stack_index(DOUBLE_FAULT_IST_INDEX);
        }
        idt
    });
    idt.load();
}

/// Loads the IDT [`init`] built on this CPU (an application processor
/// shares the boot CPU's).
pub fn load() {
    IDT.get().expect("idt::init ran on the boot CPU").load();
}

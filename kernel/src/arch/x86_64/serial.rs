//! The first 16550 UART (COM1, I/O port 0x3f8).

use core::fmt::{self, Write};
use spin::Mutex;
use uart_16550::SerialPort;
use x86_64::instructions::port::Port;

/// COM1's base I/O port.
const COM1: u16 = 0x3f8;

static PORT: Mutex<Option<SerialPort>> = Mutex::new(None);

/// Whether a UART answers at COM1 (its scratch register keeps a value).
fn present() -> bool {
    let mut scratch = Port::<u8>::new(COM1 + 7);
    // SAFETY: the scratch register of a 16550 has no effect on the UART;
    // where no UART exists the port reads back 0xff and writes go nowhere.
    unsafe {
        scratch.write(0x5a);
        scratch.read() == 0x5a
    }
}

/// Initializes COM1. Until this runs, serial output is dropped; on a
/// machine without COM1 it stays dropped.
pub fn init() {
    if !present() {
        return;
    }
    // SAFETY: 0x3f8 is COM1 on every PC and in QEMU's `pc` machine; nothing
    // else in the kernel drives these ports (all access goes through PORT).
    let mut port = unsafe { SerialPort::new(COM1) };
    port.init();
    *PORT.lock() = Some(port);
}

/// Writes formatted text to COM1 (dropped before [`init`]).
pub fn write_fmt(args: fmt::Arguments<'_>) {
    x86_64::instructions::interrupts::without_interrupts(|| {
        if let Some(port) = PORT.lock().as_mut() {
            let _ = port.write_fmt(args);
        }
    });
}

/// A received byte, if one is waiting (never blocks; `None` without COM1).
pub fn try_read() -> Option<u8> {
    x86_64::instructions::interrupts::without_interrupts(|| {
        PORT.lock().as_mut().and_then(|p| p.try_receive().ok())
    })
}

/// Releases the port lock whoever holds it (the panic path, which may have
/// interrupted a writer).
///
/// # Safety
/// The caller must ensure the interrupted lock holder never runs again.
pub unsafe fn force_unlock() {
    // SAFETY: per this function's contract there is no other writer.
    unsafe { PORT.force_unlock() };
}

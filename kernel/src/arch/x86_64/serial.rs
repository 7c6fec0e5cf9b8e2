//! The first 16550 UART (COM1, I/O port 0x3f8).

use core::fmt::{self, Write};
use spin::Mutex;
use uart_16550::backend::PioBackend;
use uart_16550::{BaudRate, Config, Uart16550, Uart16550Tty};

/// COM1's base I/O port.
const COM1: u16 = 0x3f8;

/// COM1 behind the crate's terminal layer, which turns `\n` into `\r\n`
/// and a backspace or delete into "back, blank, back".
static PORT: Mutex<Option<Uart16550Tty<PioBackend>>> = Mutex::new(None);

/// Initializes COM1: 38400 baud, 8N1, FIFOs on, UART interrupts off (the
/// kernel polls). Until this runs, serial output is dropped; on a machine
/// without COM1 (its scratch register does not keep a value) it stays
/// dropped.
pub fn init() {
    // SAFETY: 0x3f8 is COM1 on every PC and in QEMU's `pc` machine; nothing
    // else in the kernel drives these ports (all access goes through PORT).
    // Where no UART exists the ports read back 0xff and writes go nowhere,
    // which `init` detects.
    let Ok(mut uart) = (unsafe { Uart16550::new_port(COM1) }) else {
        return;
    };
    let config = Config { baud_rate: BaudRate::Baud38400, ..Config::DEFAULT };
    if uart.init(config).is_err() {
        return;
    }
    // `from_inner`, not `Uart16550Tty::new_port`: that one also runs a
    // loopback self-test, which a working but quirky UART may fail and
    // which would cost the log on it.
    *PORT.lock() = Some(Uart16550Tty::from_inner(uart));
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
        PORT.lock().as_mut().and_then(|p| p.inner_mut().try_receive_byte().ok())
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

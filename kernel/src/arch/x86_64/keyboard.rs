//! The PS/2 keyboard, polled through the i8042 controller (USB keyboards
//! usually arrive here through the firmware's legacy emulation), decoded
//! with `pc-keyboard` (scancode set 1, as the i8042 translates by default,
//! US layout) into the bytes a terminal would send.

use pc_keyboard::layouts::Us104Key;
use pc_keyboard::{DecodedKey, HandleControl, KeyCode, PS2Keyboard, ScancodeSet1};
use spin::Mutex;
use x86_64::instructions::port::Port;

const DATA: u16 = 0x60;
const STATUS: u16 = 0x64;
/// Output buffer full.
const OBF: u8 = 1 << 0;
/// The byte is from the auxiliary (mouse) port.
const AUX: u8 = 1 << 5;

static KEYBOARD: Mutex<PS2Keyboard<Us104Key, ScancodeSet1>> =
    Mutex::new(PS2Keyboard::new(ScancodeSet1::new(), Us104Key, HandleControl::MapLettersToUnicode));

/// The next byte typed, if a key was pressed (never blocks). Arrow keys up
/// and down become Ctrl-P and Ctrl-N; a machine without an i8042 (status
/// reads 0xff) gives nothing.
pub fn try_read() -> Option<u8> {
    let mut status = Port::<u8>::new(STATUS);
    let mut data = Port::<u8>::new(DATA);
    // SAFETY: 0x60/0x64 are the i8042's data and status ports on PCs;
    // reading status has no side effect, and data is read only when the
    // controller says a byte is waiting. Nothing else drives the i8042.
    let byte = unsafe {
        let s = status.read();
        if s == 0xff || s & OBF == 0 {
            return None;
        }
        let b = data.read();
        if s & AUX != 0 {
            return None;
        }
        b
    };
    let mut kb = KEYBOARD.lock();
    let event = kb.add_byte(byte).ok()??;
    match kb.process_keyevent(event)? {
        DecodedKey::Unicode(c) if c.is_ascii() => Some(c as u8),
        DecodedKey::RawKey(KeyCode::ArrowUp) => Some(0x10),
        DecodedKey::RawKey(KeyCode::ArrowDown) => Some(0x0e),
        _ => None,
    }
}

/// Resets the machine through the i8042 (pulse of the CPU reset line).
pub fn reset_cpu() {
    let mut status = Port::<u8>::new(STATUS);
    // SAFETY: command 0xfe to the i8042 pulses the reset line; the caller
    // wants the machine to restart.
    unsafe { status.write(0xfe) };
}

//! The console: the `log` facade, writing every record to the serial port
//! and the framebuffer, with a Linux-style timestamp (`[    0.012345] `).

pub mod framebuffer;

use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};
use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::arch::{serial, time};

/// Writes raw text (no timestamp) to the serial port and the framebuffer.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::write_raw(format_args!($($arg)*)) };
}

/// [`print!`] with a newline.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::print!("{}\n", format_args!($($arg)*)) };
}

/// Whether output goes to the serial port (`console=` may turn it off).
static SERIAL: AtomicBool = AtomicBool::new(true);

/// Sends console output to the serial port or not. The framebuffer is a
/// console once [`framebuffer::init`] has taken it over.
pub fn set_serial(on: bool) {
    SERIAL.store(on, Ordering::Relaxed);
}

fn serial_write(args: fmt::Arguments<'_>) {
    if SERIAL.load(Ordering::Relaxed) {
        serial::write_fmt(args);
    }
}

#[doc(hidden)]
pub fn write_raw(args: fmt::Arguments<'_>) {
    serial_write(args);
    framebuffer::write_fmt(Level::Info, args);
}

/// The Linux priority of a log level (3 error, 4 warning, 6 info, 7 debug).
pub const fn priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug => 7,
        Level::Trace => 8,
    }
}

/// The `log` filter for a Linux console log level: records whose priority
/// is below `loglevel` are printed.
pub fn filter_for(loglevel: u8) -> LevelFilter {
    [Level::Trace, Level::Debug, Level::Info, Level::Warn, Level::Error]
        .into_iter()
        .find(|&l| priority(l) < loglevel)
        .map_or(LevelFilter::Off, |l| l.to_level_filter())
}

/// Formats the timestamp prefix for `us` microseconds since boot.
pub struct Timestamp(pub u64);

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:5}.{:06}] ", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

struct Console;

impl Log for Console {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        // Info and debug lines print bare, as Linux's console does, so
        // they compare line by line; problems are tagged.
        let tag = match record.level() {
            Level::Error => "error: ",
            Level::Warn => "warning: ",
            Level::Info | Level::Debug | Level::Trace => "",
        };
        let line = format_args!("{}{}{}\n", Timestamp(time::uptime_us()), tag, record.args());
        serial_write(line);
        framebuffer::write_fmt(record.level(), line);
    }

    fn flush(&self) {}
}

static CONSOLE: Console = Console;

/// Installs the console as the `log` logger (idempotent).
pub fn init(loglevel: u8) {
    let _ = log::set_logger(&CONSOLE);
    log::set_max_level(filter_for(loglevel));
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test_case]
    fn timestamp_looks_like_linux() {
        assert_eq!(format!("{}", Timestamp(0)), "[    0.000000] ");
        assert_eq!(format!("{}", Timestamp(12_345)), "[    0.012345] ");
        assert_eq!(format!("{}", Timestamp(98_765_432_101)), "[98765.432101] ");
    }

    #[test_case]
    fn loglevel_maps_to_filters() {
        assert_eq!(filter_for(7), LevelFilter::Info);
        assert_eq!(filter_for(8), LevelFilter::Debug);
        assert_eq!(filter_for(10), LevelFilter::Trace);
        assert_eq!(filter_for(4), LevelFilter::Error);
        assert_eq!(filter_for(5), LevelFilter::Warn);
        assert_eq!(filter_for(3), LevelFilter::Off);
        assert_eq!(filter_for(0), LevelFilter::Off);
    }

    #[test_case]
    fn clock_is_monotonic_and_running() {
        let a = time::uptime_us();
        let mut b = a;
        let mut spins = 0u64;
        while b == a && spins < 100_000_000 {
            b = time::uptime_us();
            spins += 1;
        }
        assert!(b > a, "uptime did not advance");
    }
}

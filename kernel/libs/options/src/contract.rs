//! What the kernel and the host tools (`boot`, `qemu`) must spell the same
//! way, defined once: how options reach the kernel (the image's ramdisk,
//! QEMU's fw_cfg), how the kernel ends a QEMU run (`isa-debug-exit`), and
//! the lines of the kernel's output the harness waits for or reads.

/// First line of a ramdisk that carries kernel options: `boot` writes it
/// before the options it builds into an image, the kernel reads the
/// options after it.
pub const RAMDISK_CMDLINE_MAGIC: &str = "tessera-cmdline\n";

/// fw_cfg file that carries the options from the QEMU runner
/// (`-fw_cfg name=opt/tessera/cmdline,string=...`).
pub const FW_CFG_CMDLINE: &str = "opt/tessera/cmdline";

/// fw_cfg file that carries the harness's test-name filter to an in-kernel
/// test binary: only tests whose name contains it run.
pub const FW_CFG_TEST_FILTER: &str = "opt/tessera/test_filter";

/// I/O base of QEMU's `isa-debug-exit` device, as the runner attaches it.
pub const DEBUG_EXIT_IOBASE: u16 = 0xf4;
/// Its I/O size in bytes (the kernel writes one `u32`).
pub const DEBUG_EXIT_IOSIZE: u16 = 4;
/// What the kernel writes to the exit device when everything passed.
pub const EXIT_SUCCESS: u32 = 0x10;
/// What the kernel writes to the exit device on a failure (or a panic).
pub const EXIT_FAILURE: u32 = 0x11;

/// QEMU's exit status after the kernel wrote `code` to `isa-debug-exit`:
/// `(code << 1) | 1`, so 33 for [`EXIT_SUCCESS`] and 35 for
/// [`EXIT_FAILURE`].
pub const fn qemu_exit_status(code: u32) -> i32 {
    ((code << 1) | 1) as i32
}

/// The kernel shell's prompt; the harness types a command after each one.
pub const SHELL_PROMPT: &str = "tessera> ";

/// What the shell prints while `pmem add REGION --step` waits for a key
/// after each sub-section; the harness presses one each time it appears.
pub const STEP_PROMPT: &str = "-- press a key --";

/// Starts the debug line (`loglevel=8`) that says where the bootloader
/// relocated the kernel, as Linux's `Kernel Offset:` line does:
/// `Kernel Offset: 0xffff800000000000 from 0x0 (relocation range: ...)`.
/// A debugger loads the ELF's symbols at that offset (`make debug`).
pub const KERNEL_OFFSET: &str = "Kernel Offset: ";

/// The log line that ends the kernel's initialization.
pub const INIT_COMPLETE: &str = "tessera: initialization complete";

// QEMU's documented statuses (DESIGN.md 3), checked at compile time.
const _: () = assert!(qemu_exit_status(EXIT_SUCCESS) == 33 && qemu_exit_status(EXIT_FAILURE) == 35);

//! QEMU's paravirtual devices: detection, the `isa-debug-exit` device and
//! fw_cfg. None of them is touched unless CPUID names a QEMU accelerator
//! (TCG or KVM) and fw_cfg answers with its signature, so real hardware never
//! sees these port writes.

use spin::Once;
use x86_64::instructions::port::Port;

use super::cpu::Hypervisor;

/// `isa-debug-exit` I/O base, as the runner configures it
/// (`-device isa-debug-exit,iobase=0xf4,iosize=0x04`).
const DEBUG_EXIT_PORT: u16 = options::contract::DEBUG_EXIT_IOBASE;
/// fw_cfg selector (16-bit) and data (8-bit) ports.
const FW_CFG_SELECTOR: u16 = 0x510;
const FW_CFG_DATA: u16 = 0x511;
/// fw_cfg items with fixed selectors.
const FW_CFG_SIGNATURE: u16 = 0x0000;
const FW_CFG_FILE_DIR: u16 = 0x0019;

/// Exit codes as seen by the host: QEMU exits with `(code << 1) | 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitCode {
    /// QEMU exits with 33.
    Success = options::contract::EXIT_SUCCESS,
    /// QEMU exits with 35.
    Failure = options::contract::EXIT_FAILURE,
}

static UNDER_QEMU: Once<bool> = Once::new();

/// Whether the kernel runs under QEMU: a TCG or KVM CPUID vendor and the
/// fw_cfg signature "QEMU". Computed once.
pub fn under_qemu() -> bool {
    *UNDER_QEMU.call_once(|| {
        // raw-cpuid calls TCG's vendor "TCGTCGTCGTCG" QEMU.
        if !matches!(super::cpu::hypervisor(), Some(Hypervisor::QEMU | Hypervisor::KVM)) {
            return false;
        }
        let mut sig = [0u8; 4];
        // SAFETY: a QEMU accelerator is present, so 0x510/0x511 are fw_cfg.
        unsafe { fw_cfg_read(FW_CFG_SIGNATURE, &mut sig) };
        &sig == b"QEMU"
    })
}

/// Exits QEMU with `code`. Returns (does nothing) when not under QEMU.
pub fn exit(code: ExitCode) {
    if !under_qemu() {
        return;
    }
    let mut port = Port::<u32>::new(DEBUG_EXIT_PORT);
    // SAFETY: under QEMU the runner always attaches isa-debug-exit at 0xf4;
    // writing it terminates the machine, which is the intent.
    unsafe { port.write(code as u32) };
}

/// Reads `buf.len()` bytes of fw_cfg item `selector` from its start.
///
/// # Safety
/// The caller must have established that fw_cfg exists (QEMU's CPUID
/// vendor), and no other code may use the fw_cfg ports concurrently.
unsafe fn fw_cfg_read(selector: u16, buf: &mut [u8]) {
    let mut sel = Port::<u16>::new(FW_CFG_SELECTOR);
    let mut data = Port::<u8>::new(FW_CFG_DATA);
    // SAFETY: fw_cfg presence and exclusive use are the caller's contract.
    unsafe {
        sel.write(selector);
        for b in buf.iter_mut() {
            *b = data.read();
        }
    }
}

/// Reads the fw_cfg file `name` into `buf`; returns its size (which may
/// exceed `buf.len()`; only the first `buf.len()` bytes are read), or `None`
/// when not under QEMU or no such file exists.
pub fn fw_cfg_file(name: &str, buf: &mut [u8]) -> Option<usize> {
    if !under_qemu() {
        return None;
    }
    let mut count = [0u8; 4];
    // SAFETY: under_qemu() checked fw_cfg is present; boot is single-threaded.
    unsafe { fw_cfg_read(FW_CFG_FILE_DIR, &mut count) };
    let count = u32::from_be_bytes(count);
    let mut data = Port::<u8>::new(FW_CFG_DATA);
    let mut found = None;
    // The directory is read as one stream: 64-byte entries after the count.
    for _ in 0..count {
        let mut entry = [0u8; 64];
        for b in entry.iter_mut() {
            // SAFETY: continues the directory read started above.
            *b = unsafe { data.read() };
        }
        let size = u32::from_be_bytes([entry[0], entry[1], entry[2], entry[3]]) as usize;
        let select = u16::from_be_bytes([entry[4], entry[5]]);
        let ename = &entry[8..];
        let len = ename.iter().position(|&b| b == 0).unwrap_or(ename.len());
        if &ename[..len] == name.as_bytes() && found.is_none() {
            found = Some((select, size));
        }
    }
    let (select, size) = found?;
    let n = size.min(buf.len());
    // SAFETY: as above; `select` came from fw_cfg's own directory.
    unsafe { fw_cfg_read(select, &mut buf[..n]) };
    Some(size)
}

//! Turns a Tessera kernel ELF into bootable BIOS (MBR) and UEFI (GPT) disk
//! images with the `bootloader` crate, optionally carrying kernel options in
//! the image (the bootloader has no command line: they travel as the
//! ramdisk, which the kernel recognises by its first line).
#![forbid(unsafe_code)]

use std::fmt;
use std::path::{Path, PathBuf};

use bootloader::{BootConfig, DiskImageBuilder};
use options::contract::RAMDISK_CMDLINE_MAGIC;

pub mod usb;

/// The two firmware types an image can be made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    Bios,
    Uefi,
}

impl Firmware {
    pub const ALL: [Firmware; 2] = [Firmware::Bios, Firmware::Uefi];

    pub fn name(self) -> &'static str {
        match self {
            Firmware::Bios => "bios",
            Firmware::Uefi => "uefi",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == s)
    }
}

/// Why an image could not be made.
#[derive(Debug)]
pub enum ImageError {
    /// The kernel file is missing or unreadable.
    Kernel { path: PathBuf, source: std::io::Error },
    /// The options are not a valid command line.
    Cmdline(String),
    /// Writing the image failed.
    Write { path: PathBuf, source: String },
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Kernel { path, source } => {
                write!(f, "cannot read kernel {}: {source}", path.display())
            }
            Self::Cmdline(e) => write!(f, "bad kernel options: {e}"),
            Self::Write { path, source } => write!(f, "cannot write {}: {source}", path.display()),
        }
    }
}

impl std::error::Error for ImageError {}

/// The ramdisk bytes that carry `cmdline`, after checking it with the
/// kernel's own option parser.
pub fn cmdline_ramdisk(cmdline: &str) -> Result<Vec<u8>, ImageError> {
    options::validate(cmdline).map_err(|e| ImageError::Cmdline(e.to_string()))?;
    Ok(format!("{RAMDISK_CMDLINE_MAGIC}{cmdline}").into_bytes())
}

/// Writes a `firmware` image of `kernel` to `out`, with `cmdline` built in
/// when it is not empty.
pub fn build_image(
    kernel: &Path,
    firmware: Firmware,
    cmdline: &str,
    out: &Path,
) -> Result<(), ImageError> {
    std::fs::metadata(kernel)
        .map_err(|source| ImageError::Kernel { path: kernel.into(), source })?;
    let mut builder = DiskImageBuilder::new(kernel.to_path_buf());
    // The bootloader's own log stays on serial and screen for warnings and
    // errors only: its info lines at trace level slow a TCG boot for nothing.
    let mut config = BootConfig::default();
    config.log_level = bootloader_boot_config::LevelFilter::Warn;
    builder.set_boot_config(&config);
    if !cmdline.trim().is_empty() {
        builder.set_file_contents("ramdisk".into(), cmdline_ramdisk(cmdline.trim())?);
    }
    let result = match firmware {
        Firmware::Bios => builder.create_bios_image(out),
        Firmware::Uefi => builder.create_uefi_image(out),
    };
    result.map_err(|e| ImageError::Write { path: out.into(), source: format!("{e:#}") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firmware_names_round_trip() {
        for f in Firmware::ALL {
            assert_eq!(Firmware::parse(f.name()), Some(f));
        }
        assert_eq!(Firmware::parse("coreboot"), None);
    }

    #[test]
    fn cmdline_ramdisk_is_checked_and_tagged() {
        assert_eq!(cmdline_ramdisk("poweroff").unwrap(), b"tessera-cmdline\npoweroff");
        let e = cmdline_ramdisk("poweroff frobnicate").unwrap_err().to_string();
        assert!(e.contains("unknown option 'frobnicate'"), "{e}");
    }

    #[test]
    fn missing_kernel_is_a_clear_error() {
        let e = build_image(
            Path::new("/nonexistent/kernel"),
            Firmware::Bios,
            "",
            Path::new("/tmp/x.img"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("cannot read kernel /nonexistent/kernel"), "{e}");
    }
}

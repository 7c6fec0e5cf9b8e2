//! Machine profiles: which firmware, and how the disk is attached. The
//! profiles themselves are data, in [`crate::plan::PROFILES`].

use boot::Firmware;

use crate::plan::PROFILES;

/// OVMF firmware from Debian's `ovmf` package.
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// A firmware and a way to attach the boot disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    pub name: &'static str,
    pub firmware: Firmware,
    /// Boot the image as a USB stick on an xHCI controller.
    pub usb: bool,
    pub about: &'static str,
    /// Whether `qemu test` boots the kernel test binaries and the
    /// persistence checks here; every profile boots the real kernel (the
    /// boot check and the shell script).
    pub test_binaries: bool,
}

/// Looks a profile up by name.
pub fn find(name: &str) -> Result<&'static Profile, String> {
    PROFILES.iter().find(|p| p.name == name).ok_or_else(|| {
        let names: Vec<_> = PROFILES.iter().map(|p| p.name).collect();
        format!("unknown profile '{name}': use one of {}", names.join(", "))
    })
}

/// The profile for a firmware name and the USB switch (`make run`'s
/// `FIRMWARE=` and `USB=`).
pub fn for_firmware(firmware: &str, usb: bool) -> Result<&'static Profile, String> {
    let fw = Firmware::parse(firmware).ok_or_else(|| {
        format!("unknown FIRMWARE '{firmware}': use FIRMWARE=bios or FIRMWARE=uefi")
    })?;
    Ok(PROFILES.iter().find(|p| p.firmware == fw && p.usb == usb).expect("every firmware has both"))
}

/// Escapes a value for a QEMU option list (a comma is written twice).
pub fn escape(value: &str) -> String {
    value.replace(',', ",,")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_names_and_errors() {
        assert_eq!(find("usb-uefi").unwrap().firmware, Firmware::Uefi);
        assert!(find("usb-uefi").unwrap().usb);
        let e = find("arm").unwrap_err();
        assert_eq!(e, "unknown profile 'arm': use one of bios, uefi, usb-bios, usb-uefi");
        assert_eq!(for_firmware("bios", true).unwrap().name, "usb-bios");
        assert!(for_firmware("coreboot", false).unwrap_err().starts_with("unknown FIRMWARE"));
    }
}

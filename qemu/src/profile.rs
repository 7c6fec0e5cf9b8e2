//! Machine profiles: which firmware, how the disk is attached, and how
//! many CPUs. The profiles themselves are data, in
//! [`crate::plan::PROFILES`].

use boot::Firmware;

use crate::plan::PROFILES;

/// OVMF firmware from Debian's `ovmf` package.
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// The most CPUs QEMU 7.2's `pc` machine takes (`-smp 256` is refused:
/// "Invalid SMP CPUs 256. The max CPUs supported by machine
/// 'pc-i440fx-7.2' is 255").
pub const MAX_CPUS: u32 = 255;

/// A firmware, a way to attach the boot disk, and a CPU count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    pub name: &'static str,
    pub firmware: Firmware,
    /// Boot the image as a USB stick on an xHCI controller.
    pub usb: bool,
    /// QEMU `-smp`; more than one runs the vCPUs on parallel threads
    /// (`-accel tcg,thread=multi`), see [`crate::machine::Machine::args`].
    pub cpus: u32,
    pub about: &'static str,
    /// Whether `qemu test` boots the kernel test binaries here; every
    /// profile boots the real kernel (the boot check and the shell script).
    pub test_binaries: bool,
    /// Of a test binary's plain boots ([`crate::plan::Boots::One`]) only
    /// the first that applies here; families naming this profile still
    /// expand in full.
    pub first_boot_only: bool,
    /// Whether `qemu test` runs the persistence checks here (Tessera and
    /// Linux on one NVDIMM file).
    pub persist: bool,
}

impl Profile {
    /// `N CPU(s)`, for the run banner and `qemu plan`.
    pub fn cpus_text(cpus: u32) -> String {
        format!("{cpus} CPU{}", if cpus == 1 { "" } else { "s" })
    }
}

/// Looks a profile up by name.
pub fn find(name: &str) -> Result<&'static Profile, String> {
    PROFILES.iter().find(|p| p.name == name).ok_or_else(|| {
        let names: Vec<_> = PROFILES.iter().map(|p| p.name).collect();
        format!("unknown profile '{name}': use one of {}", names.join(", "))
    })
}

/// The one-CPU profile for a firmware name and the USB switch (`make
/// run`'s `FIRMWARE=` and `USB=`; `SMP=` sets the CPU count of the boot).
pub fn for_firmware(firmware: &str, usb: bool) -> Result<&'static Profile, String> {
    let fw = Firmware::parse(firmware).ok_or_else(|| {
        format!("unknown FIRMWARE '{firmware}': use FIRMWARE=bios or FIRMWARE=uefi")
    })?;
    Ok(PROFILES
        .iter()
        .find(|p| p.firmware == fw && p.usb == usb && p.cpus == 1)
        .expect("every firmware has both"))
}

/// Reads a CPU count (`--smp`, `make run SMP=`): 1 to [`MAX_CPUS`].
pub fn parse_cpus(value: &str) -> Result<u32, String> {
    value.trim().parse().ok().filter(|n| (1..=MAX_CPUS).contains(n)).ok_or_else(|| {
        format!(
            "SMP='{value}': give a number of CPUs from 1 to {MAX_CPUS} (the most QEMU's pc machine takes)"
        )
    })
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
        assert_eq!(
            e,
            "unknown profile 'arm': use one of bios, uefi, bios-smp, uefi-smp, usb-bios, usb-uefi"
        );
        assert_eq!(for_firmware("bios", true).unwrap().name, "usb-bios");
        assert_eq!(for_firmware("uefi", false).unwrap().name, "uefi");
        assert_eq!(find("uefi-smp").unwrap().cpus, 4);
        assert!(for_firmware("coreboot", false).unwrap_err().starts_with("unknown FIRMWARE"));
    }

    #[test]
    fn cpu_counts_from_1_to_255() {
        assert_eq!(parse_cpus("1"), Ok(1));
        assert_eq!(parse_cpus("255"), Ok(255));
        for bad in ["0", "abc", "300", "256", "-1", ""] {
            let e = parse_cpus(bad).unwrap_err();
            assert!(e.starts_with(&format!("SMP='{bad}': give a number of CPUs")), "{e}");
            assert!(!e.contains('\n'));
        }
    }
}

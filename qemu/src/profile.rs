//! Named machine profiles: which firmware, how the disk is attached, and
//! the QEMU arguments that build the machine.

use boot::Firmware;
use std::path::{Path, PathBuf};

/// OVMF firmware from Debian's `ovmf` package.
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// A machine the kernel can boot on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    pub name: &'static str,
    pub firmware: Firmware,
    /// Boot the image as a USB stick on an xHCI controller.
    pub usb: bool,
    pub about: &'static str,
}

/// Every profile, in the order `make test` runs them.
pub const PROFILES: &[Profile] = &[
    Profile { name: "bios", firmware: Firmware::Bios, usb: false, about: "SeaBIOS, IDE disk" },
    Profile { name: "uefi", firmware: Firmware::Uefi, usb: false, about: "OVMF, IDE disk" },
    Profile {
        name: "usb-bios",
        firmware: Firmware::Bios,
        usb: true,
        about: "SeaBIOS, USB stick on xHCI",
    },
    Profile {
        name: "usb-uefi",
        firmware: Firmware::Uefi,
        usb: true,
        about: "OVMF, USB stick on xHCI",
    },
];

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

/// What one boot needs besides the profile.
#[derive(Debug, Clone, Default)]
pub struct Machine {
    pub image: PathBuf,
    /// Passed verbatim to `-m`.
    pub mem: String,
    pub cmdline: String,
    pub test_filter: Option<String>,
    /// Appended verbatim; a `-machine`/`-M` here replaces the default `pc`.
    pub extra: Vec<String>,
    /// Writable copy of the OVMF variable store (UEFI only).
    pub ovmf_vars: PathBuf,
    /// Leave out `isa-debug-exit`, as on a real PC: the kernel must power
    /// off through ACPI (QEMU then exits 0).
    pub no_exit_device: bool,
}

impl Profile {
    /// QEMU's arguments for this profile, except the serial set-up.
    pub fn args(&self, m: &Machine) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        let mut push = |items: &[&str]| a.extend(items.iter().map(|s| s.to_string()));
        if !m.extra.iter().any(|x| x == "-machine" || x == "-M") {
            push(&["-machine", "pc"]);
        }
        push(&["-m", &m.mem, "-no-reboot"]);
        if !m.no_exit_device {
            push(&["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
        }
        if self.firmware == Firmware::Uefi {
            let code =
                format!("if=pflash,format=raw,unit=0,readonly=on,file={}", escape(OVMF_CODE));
            let vars =
                format!("if=pflash,format=raw,unit=1,file={}", escape(&path_str(&m.ovmf_vars)));
            push(&["-drive", &code, "-drive", &vars]);
        }
        let img = escape(&path_str(&m.image));
        if self.usb {
            let drive = format!("if=none,id=stick,format=raw,snapshot=on,file={img}");
            push(&["-device", "qemu-xhci", "-drive", &drive]);
            push(&["-device", "usb-storage,drive=stick,bootindex=0"]);
        } else {
            push(&["-drive", &format!("format=raw,snapshot=on,file={img}")]);
        }
        if !m.cmdline.is_empty() {
            push(&["-fw_cfg", &format!("name=opt/tessera/cmdline,string={}", escape(&m.cmdline))]);
        }
        if let Some(f) = &m.test_filter {
            push(&["-fw_cfg", &format!("name=opt/tessera/test_filter,string={}", escape(f))]);
        }
        a.extend(m.extra.iter().cloned());
        a
    }
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> Machine {
        Machine { image: "/t/k.img".into(), mem: "2G".into(), ..Default::default() }
    }

    #[test]
    fn profile_names_and_errors() {
        assert_eq!(find("usb-uefi").unwrap().firmware, Firmware::Uefi);
        assert!(find("usb-uefi").unwrap().usb);
        let e = find("arm").unwrap_err();
        assert_eq!(e, "unknown profile 'arm': use one of bios, uefi, usb-bios, usb-uefi");
        assert_eq!(for_firmware("bios", true).unwrap().name, "usb-bios");
        assert!(for_firmware("coreboot", false).unwrap_err().starts_with("unknown FIRMWARE"));
    }

    #[test]
    fn default_machine_is_pc_unless_overridden() {
        let a = find("bios").unwrap().args(&machine());
        assert_eq!(&a[..2], ["-machine", "pc"]);
        let mut m = machine();
        m.extra = vec!["-machine".into(), "pc,nvdimm=on".into()];
        let a = find("bios").unwrap().args(&m);
        assert_eq!(a.iter().filter(|x| *x == "-machine").count(), 1);
        assert_eq!(a.last().unwrap(), "pc,nvdimm=on");
    }

    #[test]
    fn usb_profiles_attach_a_stick() {
        let a = find("usb-bios").unwrap().args(&machine()).join(" ");
        assert!(a.contains("-device qemu-xhci"));
        assert!(a.contains("-device usb-storage,drive=stick,bootindex=0"));
        let a = find("uefi").unwrap().args(&machine()).join(" ");
        assert!(a.contains(OVMF_CODE));
        assert!(!a.contains("usb-storage"));
    }

    #[test]
    fn options_travel_through_fw_cfg_escaped() {
        let mut m = machine();
        m.cmdline = "memmap=1,2 poweroff".into();
        let a = find("bios").unwrap().args(&m);
        assert!(a.contains(&"name=opt/tessera/cmdline,string=memmap=1,,2 poweroff".to_string()));
        assert!(!find("bios").unwrap().args(&machine()).iter().any(|x| x.contains("cmdline")));
    }
}

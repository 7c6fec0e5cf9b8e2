//! Writing an image to a USB stick, carefully: only a whole, removable (or
//! USB-attached) disk that nothing has mounted, after the user confirms.
//! The checks read sysfs and `/proc/mounts` through parameters, so they are
//! tested on a fake tree.

use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// What the checks found out about a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// `/dev/NAME`.
    pub dev: PathBuf,
    /// Kernel name, e.g. `sdb`.
    pub name: String,
    pub size_bytes: u64,
    /// Vendor and model, as sysfs has them.
    pub model: String,
    /// `removable` is 1, or the disk hangs off a USB bus.
    pub removable: bool,
}

/// Why a device is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsbError {
    /// No `DEV=` given.
    NoDevice,
    /// Not a `/dev/...` path.
    NotDev { dev: String },
    /// A partition (`/dev/sdb1`): the whole disk is needed.
    Partition { dev: String, disk: String },
    /// Not a block device the kernel knows.
    NoSuchDisk { dev: String },
    /// A fixed, non-USB disk.
    NotRemovable { dev: String, model: String },
    /// The disk or one of its partitions is mounted.
    Mounted { dev: String, at: String },
    /// The image does not fit.
    TooSmall { dev: String, size: u64, image: u64 },
    /// The user did not confirm.
    NotConfirmed,
    /// Reading the image or writing the device failed.
    Io { what: String, error: String },
}

impl fmt::Display for UsbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoDevice => write!(f, "no device: give DEV=/dev/sdX (find it with lsblk)"),
            Self::NotDev { dev } => write!(f, "{dev}: not a /dev/ path"),
            Self::Partition { dev, disk } => {
                write!(f, "{dev} is a partition; give the whole disk /dev/{disk}")
            }
            Self::NoSuchDisk { dev } => write!(f, "{dev}: no such disk"),
            Self::NotRemovable { dev, model } => {
                write!(f, "{dev} ({model}) is neither removable nor on USB; refusing")
            }
            Self::Mounted { dev, at } => write!(f, "{dev} is mounted at {at}; unmount it first"),
            Self::TooSmall { dev, size, image } => {
                write!(f, "{dev} holds {size} bytes, the image needs {image}")
            }
            Self::NotConfirmed => write!(f, "not confirmed; nothing written"),
            Self::Io { what, error } => write!(f, "{what}: {error}"),
        }
    }
}

fn read_trim(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

/// Checks `dev` against sysfs at `sys` (normally `/sys`) and the mount
/// table `mounts` (the text of `/proc/mounts`).
pub fn inspect(sys: &Path, mounts: &str, dev: &str) -> Result<Disk, UsbError> {
    if dev.is_empty() {
        return Err(UsbError::NoDevice);
    }
    let name = dev.strip_prefix("/dev/").ok_or(UsbError::NotDev { dev: dev.into() })?;
    let class = sys.join("class/block").join(name);
    if class.join("partition").exists() {
        let disk = std::fs::canonicalize(&class)
            .ok()
            .and_then(|p| p.parent()?.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "?".into());
        return Err(UsbError::Partition { dev: dev.into(), disk });
    }
    let block = sys.join("block").join(name);
    if !block.exists() {
        return Err(UsbError::NoSuchDisk { dev: dev.into() });
    }
    let sectors: u64 = read_trim(&block.join("size")).and_then(|s| s.parse().ok()).unwrap_or(0);
    let vendor = read_trim(&block.join("device/vendor")).unwrap_or_default();
    let model = read_trim(&block.join("device/model")).unwrap_or_default();
    let model = match format!("{vendor} {model}").trim() {
        "" => "unknown model".to_string(),
        m => m.to_string(),
    };
    let on_usb = std::fs::canonicalize(&block)
        .is_ok_and(|p| p.components().any(|c| c.as_os_str().to_string_lossy().starts_with("usb")));
    let removable = read_trim(&block.join("removable")).as_deref() == Some("1") || on_usb;
    if !removable {
        return Err(UsbError::NotRemovable { dev: dev.into(), model });
    }
    for line in mounts.lines() {
        let mut w = line.split_whitespace();
        if let (Some(src), Some(at)) = (w.next(), w.next())
            && src
                .strip_prefix(dev)
                .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit() || c == 'p'))
        {
            return Err(UsbError::Mounted { dev: src.into(), at: at.into() });
        }
    }
    Ok(Disk { dev: dev.into(), name: name.into(), size_bytes: sectors * 512, model, removable })
}

/// Asks on `input`/`output` for the word `yes`, naming the disk.
pub fn confirm(disk: &Disk, image: &Path, input: &mut impl Read, output: &mut impl Write) -> bool {
    let _ = write!(
        output,
        "Write {} to {} ({}, {} MB)? Everything on it is lost. Type yes: ",
        image.display(),
        disk.dev.display(),
        disk.model,
        disk.size_bytes / 1_000_000
    );
    let _ = output.flush();
    let mut answer = [0u8; 16];
    let n = input.read(&mut answer).unwrap_or(0);
    String::from_utf8_lossy(&answer[..n]).trim() == "yes"
}

/// Writes `image` to the start of `disk` and waits until it is on the
/// device (`fsync`). Returns the bytes written.
pub fn write(disk: &Disk, image: &Path) -> Result<u64, UsbError> {
    let io = |what: &Path| {
        let what = what.display().to_string();
        move |e: std::io::Error| UsbError::Io { what: what.clone(), error: e.to_string() }
    };
    let data = std::fs::read(image).map_err(io(image))?;
    if disk.size_bytes != 0 && (data.len() as u64) > disk.size_bytes {
        return Err(UsbError::TooSmall {
            dev: disk.dev.display().to_string(),
            size: disk.size_bytes,
            image: data.len() as u64,
        });
    }
    let mut f = std::fs::OpenOptions::new().write(true).open(&disk.dev).map_err(io(&disk.dev))?;
    f.write_all(&data).map_err(io(&disk.dev))?;
    f.sync_all().map_err(io(&disk.dev))?;
    Ok(data.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake sysfs: `sdb` a USB stick with partition `sdb1`, `sda` a fixed
    /// disk, `sdc` removable.
    fn fake_sys() -> PathBuf {
        let root = std::env::temp_dir().join(format!("tessera-usb-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let mk = |p: &str, content: &str| {
            let path = root.join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        };
        let usb = "devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host6/block/sdb";
        mk(&format!("{usb}/size"), "31260672\n");
        mk(&format!("{usb}/removable"), "0\n");
        mk(&format!("{usb}/device/vendor"), "SanDisk\n");
        mk(&format!("{usb}/device/model"), "Ultra\n");
        mk(&format!("{usb}/sdb1/partition"), "1\n");
        mk("devices/pci0000:00/ata1/host0/block/sda/size", "1000000\n");
        mk("devices/pci0000:00/ata1/host0/block/sda/removable", "0\n");
        mk("devices/virtual/block/sdc/size", "2048\n");
        mk("devices/virtual/block/sdc/removable", "1\n");
        std::fs::create_dir_all(root.join("block")).unwrap();
        std::fs::create_dir_all(root.join("class/block")).unwrap();
        let link = |target: &str, at: &str| {
            std::os::unix::fs::symlink(root.join(target), root.join(at)).unwrap();
        };
        link(usb, "block/sdb");
        link(usb, "class/block/sdb");
        link(&format!("{usb}/sdb1"), "class/block/sdb1");
        link("devices/pci0000:00/ata1/host0/block/sda", "block/sda");
        link("devices/virtual/block/sdc", "block/sdc");
        root
    }

    #[test]
    fn only_whole_removable_unmounted_disks_pass() {
        let sys = fake_sys();
        let none = "";
        let disk = inspect(&sys, none, "/dev/sdb").expect("a USB stick");
        assert_eq!((disk.size_bytes, disk.model.as_str()), (31260672 * 512, "SanDisk Ultra"));
        assert!(inspect(&sys, none, "/dev/sdc").is_ok(), "removable flag");
        assert_eq!(inspect(&sys, none, ""), Err(UsbError::NoDevice));
        assert_eq!(inspect(&sys, none, "sdb"), Err(UsbError::NotDev { dev: "sdb".into() }));
        assert_eq!(
            inspect(&sys, none, "/dev/sdb1"),
            Err(UsbError::Partition { dev: "/dev/sdb1".into(), disk: "sdb".into() })
        );
        assert!(matches!(inspect(&sys, none, "/dev/sda"), Err(UsbError::NotRemovable { .. })));
        assert!(matches!(inspect(&sys, none, "/dev/nvme9n1"), Err(UsbError::NoSuchDisk { .. })));
        let mounts = "/dev/sda1 / ext4 rw 0 0\n/dev/sdb1 /media/stick vfat rw 0 0\n";
        assert_eq!(
            inspect(&sys, mounts, "/dev/sdb"),
            Err(UsbError::Mounted { dev: "/dev/sdb1".into(), at: "/media/stick".into() })
        );
        // /dev/sdbb is another disk, not a partition of sdb.
        assert!(inspect(&sys, "/dev/sdbb1 /x vfat rw 0 0\n", "/dev/sdb").is_ok());
        let _ = std::fs::remove_dir_all(sys);
    }

    #[test]
    fn confirmation_needs_the_word_yes_and_writing_checks_the_size() {
        let disk = Disk {
            dev: std::env::temp_dir().join(format!("tessera-usb-dev-{}", std::process::id())),
            name: "sdz".into(),
            size_bytes: 4096,
            model: String::new(),
            removable: true,
        };
        let img = Path::new("x.img");
        let mut out = Vec::new();
        assert!(confirm(&disk, img, &mut &b"yes\n"[..], &mut out));
        assert!(String::from_utf8(out).unwrap().contains("Everything on it is lost"));
        for no in [&b"y\n"[..], b"no\n", b"", b"YES please\n"] {
            assert!(!confirm(&disk, img, &mut &no[..], &mut Vec::new()));
        }
        let image = disk.dev.with_extension("img");
        std::fs::write(&image, [7u8; 1024]).unwrap();
        std::fs::write(&disk.dev, [0u8; 4096]).unwrap();
        assert_eq!(write(&disk, &image), Ok(1024));
        let on_dev = std::fs::read(&disk.dev).unwrap();
        assert!(on_dev[..1024].iter().all(|&b| b == 7) && on_dev[1024..].iter().all(|&b| b == 0));
        std::fs::write(&image, [7u8; 8192]).unwrap();
        assert!(matches!(write(&disk, &image), Err(UsbError::TooSmall { .. })));
        let _ = std::fs::remove_file(image);
        let _ = std::fs::remove_file(&disk.dev);
    }
}

//! NVDIMM backing files for test boots: the host fills a file with a known
//! pattern (and, when asked, formats it with an fsdax or devdax info block,
//! as `ndctl create-namespace` would) before QEMU starts, and afterwards
//! compares every byte the kernel had no business writing.
//!
//! Large devices (64 GiB) are sparse: the pattern covers a few windows
//! (the start, the info block, both sides of `dataoff`, the end), which are
//! all that is compared.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use mm::nd_pfn::{self, INFO_OFFSET, INFO_SIZE, Kind, Layout, PfnMode};

use crate::report;

/// Where QEMU puts the first NVDIMM on the machines the tests use: the
/// device-memory base, 4 GiB when all RAM is below 4 GiB.
pub const NVDIMM_BASE: u64 = 1 << 32;
const WINDOW: u64 = 4 << 20;
const CHUNK: usize = 1 << 20;

/// The pattern's 64-bit word number `word` of a device.
pub fn pattern_word(word: u64) -> u64 {
    mm::splitmix64(word)
}

/// The pattern of `[offset, offset + len)` (offset a multiple of 8).
fn pattern(offset: u64, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    for w in 0..len.div_ceil(8) as u64 {
        v.extend_from_slice(&pattern_word(offset / 8 + w).to_le_bytes());
    }
    v.truncate(len);
    v
}

/// How the host prepares a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Pattern only: a raw namespace.
    Raw,
    /// Pattern, then Linux's info block for `kind` with `map=dev`, 2 MiB
    /// alignment.
    Pfn(Kind),
    /// Pattern, then a valid fsdax block damaged by `corrupt`.
    Corrupt(Corruption),
}

/// The damaged info blocks the kernel must refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corruption {
    Checksum,
    Signature,
    DataoffBeyond,
    NpfnsTooLarge,
    Align,
    MajorVersion,
}

impl Corruption {
    pub const ALL: [Corruption; 6] = [
        Corruption::Checksum,
        Corruption::Signature,
        Corruption::DataoffBeyond,
        Corruption::NpfnsTooLarge,
        Corruption::Align,
        Corruption::MajorVersion,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Corruption::Checksum => "bad-checksum",
            Corruption::Signature => "bad-signature",
            Corruption::DataoffBeyond => "dataoff-beyond",
            Corruption::NpfnsTooLarge => "npfns-too-large",
            Corruption::Align => "bad-align",
            Corruption::MajorVersion => "major-version-2",
        }
    }

    /// What the kernel's one line must say.
    pub fn reason(self) -> &'static str {
        match self {
            Corruption::Checksum => "bad checksum",
            Corruption::Signature => "unknown signature \"NVDIMM_PFN_INFX\"",
            Corruption::DataoffBeyond => "dataoff 0x10200000 is beyond the namespace",
            Corruption::NpfnsTooLarge => "npfns 64001 is more than the 64000 pages",
            Corruption::Align => "align 0x300000 is not a supported power of two",
            Corruption::MajorVersion => "version 2.4: only major version 1 is known",
        }
    }

    fn block(self, l: &Layout) -> [u8; INFO_SIZE] {
        let mut sb = l.sb;
        match self {
            Corruption::Checksum => {
                let mut b = sb.to_bytes();
                b[200] ^= 0x40;
                return b;
            }
            Corruption::Signature => {
                let mut b = sb.to_bytes();
                b[14] = b'X';
                let sum = nd_pfn::checksum(&b);
                b[4088..].copy_from_slice(&sum.to_le_bytes());
                return b;
            }
            Corruption::DataoffBeyond => sb.dataoff = l.size + (2 << 20),
            Corruption::NpfnsTooLarge => sb.npfns += 1,
            Corruption::Align => sb.align = 3 << 20,
            Corruption::MajorVersion => sb.version_major = 2,
        }
        sb.to_bytes()
    }
}

/// The fsdax/devdax layout the host writes for a device at `base`.
pub fn layout(kind: Kind, base: u64, size: u64) -> Layout {
    nd_pfn::init(kind, PfnMode::Pmem, base, size, 2 << 20, *b"tessera-harness!")
        .expect("the test devices are 2 MiB aligned and large enough")
}

/// A device file the host prepared, and what it holds.
pub struct Device {
    pub size: u64,
    pub base: u64,
    /// Bytes over the pattern (device offset, bytes): the info block the
    /// host wrote, and what a boot was seen to write.
    pub overlays: Vec<(u64, Vec<u8>)>,
    /// Whether only the windows hold the pattern (the rest is a hole).
    pub sparse: bool,
}

impl Device {
    /// The windows compared on a sparse device.
    fn windows(&self) -> Vec<(u64, u64)> {
        let mut w = vec![(0, WINDOW), (self.size - WINDOW, self.size)];
        if let Some(l) = self.layout() {
            let d = l.sb.dataoff;
            w.push((d.saturating_sub(WINDOW).max(WINDOW), d + WINDOW));
        }
        w.sort();
        w
    }

    /// The valid layout of the info block over the pattern, if any.
    pub fn layout(&self) -> Option<Layout> {
        let b = self.expected(INFO_OFFSET, INFO_SIZE).try_into().expect("INFO_SIZE bytes");
        nd_pfn::validate(&b, self.base, self.size).ok().flatten()
    }

    /// What the device should hold at `[offset, offset + len)`.
    pub fn expected(&self, offset: u64, len: usize) -> Vec<u8> {
        let mut v = pattern(offset - offset % 8, len + (offset % 8) as usize);
        v.drain(..(offset % 8) as usize);
        let end = offset + len as u64;
        for (at, bytes) in &self.overlays {
            let (s, e) = (*at, at + bytes.len() as u64);
            for o in s.max(offset)..e.min(end) {
                v[(o - offset) as usize] = bytes[(o - s) as usize];
            }
        }
        v
    }
}

/// Creates `path` for a device of `size` bytes at `base` in `format`.
pub fn create(path: &Path, base: u64, size: u64, format: Format) -> Result<Device, String> {
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    let _ = std::fs::remove_file(path);
    let mut f = File::create(path).map_err(err)?;
    let sparse = size > (1 << 30);
    let block = match format {
        Format::Raw => None,
        Format::Pfn(kind) => Some(layout(kind, base, size).sb.to_bytes()),
        Format::Corrupt(c) => Some(c.block(&layout(Kind::Fsdax, base, size))),
    };
    let overlays = block.map(|b| (INFO_OFFSET, b.to_vec())).into_iter().collect();
    let dev = Device { size, base, overlays, sparse };
    f.set_len(size).map_err(err)?;
    let ranges = if sparse { dev.windows() } else { vec![(0, size)] };
    for (s, e) in ranges {
        f.seek(SeekFrom::Start(s)).map_err(err)?;
        let mut at = s;
        while at < e {
            let n = (e - at).min(CHUNK as u64) as usize;
            f.write_all(&dev.expected(at, n)).map_err(err)?;
            at += n as u64;
        }
    }
    f.sync_all().map_err(err)?;
    Ok(dev)
}

/// Every byte of `path` that differs from what the host wrote, outside
/// `allowed` (device offsets, end exclusive): how many, and the first.
pub struct Diff {
    pub changed: u64,
    pub first: Option<u64>,
    /// Bytes that changed inside `allowed`.
    pub allowed_changed: u64,
    pub compared: u64,
}

/// Compares `path` with what [`create`] wrote.
pub fn compare(path: &Path, dev: &Device, allowed: &[(u64, u64)]) -> Result<Diff, String> {
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut f = OpenOptions::new().read(true).open(path).map_err(err)?;
    let ranges = if dev.sparse { dev.windows() } else { vec![(0, dev.size)] };
    let mut d = Diff { changed: 0, first: None, allowed_changed: 0, compared: 0 };
    let mut buf = vec![0u8; CHUNK];
    for (s, e) in ranges {
        f.seek(SeekFrom::Start(s)).map_err(err)?;
        let mut at = s;
        while at < e {
            let n = (e - at).min(CHUNK as u64) as usize;
            f.read_exact(&mut buf[..n]).map_err(err)?;
            let want = dev.expected(at, n);
            if buf[..n] != want[..] {
                for i in 0..n {
                    if buf[i] != want[i] {
                        let o = at + i as u64;
                        if allowed.iter().any(|&(a, b)| (a..b).contains(&o)) {
                            d.allowed_changed += 1;
                        } else {
                            d.changed += 1;
                            d.first.get_or_insert(o);
                        }
                    }
                }
            }
            d.compared += n as u64;
            at += n as u64;
        }
    }
    Ok(d)
}

/// `len` bytes of `path` at `offset`.
pub fn read_at(path: &Path, offset: u64, len: usize) -> Result<Vec<u8>, String> {
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut f = File::open(path).map_err(err)?;
    f.seek(SeekFrom::Start(offset)).map_err(err)?;
    let mut v = vec![0; len];
    f.read_exact(&mut v).map_err(err)?;
    Ok(v)
}

/// The info block of `path` as the kernel would read it.
pub fn info_block(path: &Path) -> Result<[u8; INFO_SIZE], String> {
    let v = read_at(path, INFO_OFFSET, INFO_SIZE)?;
    Ok(v.try_into().expect("read INFO_SIZE bytes"))
}

/// The line the kernel prints when it probes a device prepared in `format`.
pub fn probe_line(format: Format) -> String {
    match format {
        Format::Raw => "pmem: namespace0.0: no info block at offset 0x1000: raw".into(),
        Format::Pfn(kind) => {
            format!("pmem: namespace0.0: {} info block v1.4: map dev", kind.name())
        }
        Format::Corrupt(c) => {
            format!("pmem: namespace0.0: bad info block at offset 0x1000: {}", c.reason())
        }
    }
}

/// Device offsets the kernel may write on `dev`: the memmap area of a
/// `map=dev` info block, nothing otherwise.
pub fn writable(dev: &Device) -> Vec<(u64, u64)> {
    dev.layout()
        .and_then(|l| l.memmap_area())
        .map(|(s, e)| (s - dev.base, e - dev.base))
        .into_iter()
        .collect()
}

/// The test line for a device after a boot: every byte outside what the
/// kernel may write equals what the host wrote.
pub fn check_line(name: &str, path: &Path, dev: &Device) -> bool {
    match compare(path, dev, &writable(dev)) {
        Ok(d) => {
            let ok = d.changed == 0;
            println!(
                "test {name}::device_keeps_its_data ... {} ({} bytes compared{}, {} changed outside the memmap area{}, {} inside)",
                report::outcome(&format!("{name}::device_keeps_its_data"), ok),
                d.compared,
                if dev.sparse { " in windows" } else { "" },
                d.changed,
                d.first.map_or(String::new(), |o| format!(", first at {o:#x}")),
                d.allowed_changed
            );
            ok
        }
        Err(e) => {
            let what = format!("{name}::device_keeps_its_data ({e})");
            println!("test {what} ... {}", report::outcome(&what, false));
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_compares_equal_until_a_byte_changes() {
        let dir = std::env::temp_dir().join(format!("tessera-device-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("nv.img");
        let dev = create(&path, NVDIMM_BASE, 8 << 20, Format::Pfn(Kind::Fsdax)).unwrap();
        let d = compare(&path, &dev, &[]).unwrap();
        assert_eq!((d.changed, d.compared), (0, 8 << 20));
        assert_eq!(&info_block(&path).unwrap()[..16], nd_pfn::PFN_SIG);
        // One byte changed outside and one inside the allowed range.
        let mut f = OpenOptions::new().write(true).open(&path).unwrap();
        f.seek(SeekFrom::Start(5 << 20)).unwrap();
        f.write_all(&[!dev.expected(5 << 20, 1)[0]]).unwrap();
        f.seek(SeekFrom::Start(9000)).unwrap();
        f.write_all(&[!dev.expected(9000, 1)[0]]).unwrap();
        drop(f);
        let d = compare(&path, &dev, &[(8192, 2 << 20)]).unwrap();
        assert_eq!((d.changed, d.first, d.allowed_changed), (1, Some(5 << 20), 1));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn corruptions_are_refused_by_the_kernel_rules() {
        for c in Corruption::ALL {
            let l = layout(Kind::Fsdax, NVDIMM_BASE, 256 << 20);
            let e = nd_pfn::validate(&c.block(&l), NVDIMM_BASE, 256 << 20).unwrap_err();
            assert!(e.to_string().starts_with(c.reason()), "{}: {e}", c.name());
        }
    }
}

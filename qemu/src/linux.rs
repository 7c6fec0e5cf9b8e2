//! Debian's Linux 6.1 on the same QEMU machines as Tessera, so tests can
//! compare what Linux does (e.g. with an NVDIMM's fsdax info block) with
//! what our kernel does.
//!
//! [`kit`] fetches Debian's `linux-image-6.1.0-*-amd64` and `busybox-static`
//! with `apt-get download` once and unpacks them under `target/linux/`
//! (delete that directory to fetch again). [`boot()`] builds an initramfs for
//! one boot (busybox, the NVDIMM/DAX modules, `/init`, the caller's script)
//! and boots it under TCG with the serial console captured.
//!
//! The kernel runs with `quiet`: only errors reach the console while it
//! boots, so a script that wants the kernel's messages runs `dmesg`.

use crate::machine::{self, Machine, Step, StepLog};
use crate::report::Ending;
use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

/// Where [`kit`] keeps the packages and what they unpack to.
const DIR: &str = "target/linux";
/// Debian's metapackage for its current 6.1 kernel.
const META: &str = "linux-image-amd64";
const BUSYBOX: &str = "busybox-static";
/// The modules `/init` loads (after what each depends on), in this order.
/// Those built into the kernel are skipped.
const MODULES: &[&str] =
    &["libnvdimm", "nd_btt", "nd_pmem", "nd_e820", "nfit", "dax_pmem", "device_dax", "kmem"];
/// Printed by `/init` around the script; [`boot()`] fails without the end.
pub const BEGIN: &str = "== linux script begin";
/// Followed by ` rc=N`, the script's exit status.
pub const END: &str = "== linux script end";

/// Debian's Linux, unpacked under `target/linux/`.
#[derive(Debug, Clone)]
pub struct Kit {
    /// The kernel, `boot/vmlinuz-<version>`.
    pub vmlinuz: PathBuf,
    /// What `uname -r` says, e.g. `6.1.0-57-amd64`.
    pub version: String,
    /// The static busybox.
    pub busybox: PathBuf,
    /// The modules `/init` loads, dependencies first (`.ko`, or `.ko.xz`
    /// that the initramfs gets decompressed).
    pub modules: Vec<PathBuf>,
}

/// Serializes [`kit`]'s fetching within this process.
static FETCH: Mutex<()> = Mutex::new(());

/// Fetches (once) and unpacks Debian's linux-image-6.1 and busybox-static.
/// One-line error strings.
pub fn kit() -> Result<Kit, String> {
    let _guard = FETCH.lock().unwrap_or_else(|e| e.into_inner());
    let root = Path::new(DIR).join("root");
    if !root.join(".complete").exists() {
        fetch(&root)?;
    }
    let boot = root.join("boot");
    let vmlinuz = std::fs::read_dir(&boot)
        .map_err(|e| format!("cannot read {}: {e}", boot.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-")))
        .ok_or(format!("no vmlinuz-* in {}", boot.display()))?;
    let name = vmlinuz.file_name().expect("has a name").to_string_lossy();
    let version = name.trim_start_matches("vmlinuz-").to_string();
    let modules_dir = root.join("lib/modules").join(&version);
    let modules = resolve(&modules_dir, MODULES)?;
    Ok(Kit { vmlinuz, version, busybox: root.join("bin/busybox"), modules })
}

/// Runs a command; its last line of error output on failure.
fn run(cmd: &mut Command) -> Result<String, String> {
    let what = format!("{cmd:?}").replace('"', "");
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| format!("cannot run {what}: {e}"))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no error output");
    Err(format!("{what} failed ({}): {}", out.status, last.trim()))
}

/// `apt-get update`, through `sudo -n` unless we are root.
fn apt_update() -> Result<(), String> {
    let root = run(Command::new("id").arg("-u")).is_ok_and(|u| u.trim() == "0");
    let mut cmd = if root { Command::new("apt-get") } else { Command::new("sudo") };
    if !root {
        cmd.args(["-n", "apt-get"]);
    }
    run(cmd.args(["update", "-q"])).map(drop)
}

/// Runs `f`; when it fails, updates the package lists and runs it again.
fn with_update<T>(f: impl Fn() -> Result<T, String>) -> Result<T, String> {
    f().or_else(|first| {
        apt_update().map_err(|e| format!("{first}; then {e}"))?;
        f()
    })
}

/// The `linux-image-6.1.0-*-amd64` package the metapackage depends on.
fn image_package() -> Result<String, String> {
    let out = run(Command::new("apt-cache").args(["depends", META]))?;
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends:"))
        .map(str::trim)
        .find(|p| p.starts_with("linux-image-") && p.ends_with("-amd64"))
        .map(String::from)
        .ok_or(format!("apt-cache depends {META}: no linux-image-*-amd64 dependency"))
}

/// Downloads what is missing from `target/linux/debs` and unpacks both
/// packages into `root`.
fn fetch(root: &Path) -> Result<(), String> {
    let debs = Path::new(DIR).join("debs");
    std::fs::create_dir_all(&debs).map_err(|e| format!("cannot create {}: {e}", debs.display()))?;
    let find = |prefix: &str| -> Option<PathBuf> {
        std::fs::read_dir(&debs).ok()?.filter_map(|e| e.ok().map(|e| e.path())).find(|p| {
            let n = p.file_name().unwrap_or_default().to_string_lossy();
            n.starts_with(prefix) && n.ends_with(".deb")
        })
    };
    let mut wanted = Vec::new();
    if find("linux-image-").is_none() {
        wanted.push(with_update(image_package)?);
    }
    if find(&format!("{BUSYBOX}_")).is_none() {
        wanted.push(BUSYBOX.to_string());
    }
    if !wanted.is_empty() {
        with_update(|| {
            run(Command::new("apt-get").arg("download").arg("-q").args(&wanted).current_dir(&debs))
        })?;
    }
    let tmp = root.with_file_name(format!("root.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    for prefix in ["linux-image-", &format!("{BUSYBOX}_")] {
        let deb = find(prefix).ok_or(format!("no {prefix}*.deb in {}", debs.display()))?;
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tmp))?;
    }
    std::fs::write(tmp.join(".complete"), "")
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    let _ = std::fs::remove_dir_all(root);
    if let Err(e) = std::fs::rename(&tmp, root) {
        // Another process may have unpacked it meanwhile.
        let _ = std::fs::remove_dir_all(&tmp);
        if !root.join(".complete").exists() {
            return Err(format!("cannot rename {} to {}: {e}", tmp.display(), root.display()));
        }
    }
    Ok(())
}

/// A module's name as the kernel spells it, from its file name.
fn module_name(path: &Path) -> Option<String> {
    let n = path.file_name()?.to_str()?;
    let stem = n.strip_suffix(".ko").or_else(|| n.strip_suffix(".ko.xz"))?;
    Some(stem.replace('-', "_"))
}

/// Every module file under `dir`, recursively.
fn module_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    for e in std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))? {
        let p = e.map_err(|e| format!("cannot read {}: {e}", dir.display()))?.path();
        if p.is_dir() {
            module_files(&p, out)?;
        } else if module_name(&p).is_some() {
            out.push(p);
        }
    }
    Ok(())
}

/// A module's contents, decompressed on the host (busybox insmod may not
/// read `.ko.xz`).
fn module_bytes(path: &Path) -> Result<Vec<u8>, String> {
    if path.extension().is_some_and(|e| e == "xz") {
        let out = Command::new("xz")
            .arg("-dc")
            .arg(path)
            .output()
            .map_err(|e| format!("cannot run xz for {}: {e}", path.display()))?;
        if !out.status.success() {
            return Err(format!("xz -dc {} failed ({})", path.display(), out.status));
        }
        return Ok(out.stdout);
    }
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// The `depends=` entry of a module's `.modinfo`.
fn depends(ko: &[u8]) -> Vec<String> {
    let key = b"\0depends=";
    let Some(at) = ko.windows(key.len()).position(|w| w == key) else {
        return Vec::new();
    };
    let rest = &ko[at + key.len()..];
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end])
        .split(',')
        .filter(|d| !d.is_empty())
        .map(|d| d.replace('-', "_"))
        .collect()
}

/// The module files for `wanted`, each after the modules it depends on
/// (read from its `.modinfo`: Debian's package has no `modules.dep`), without
/// those built into the kernel.
fn resolve(modules_dir: &Path, wanted: &[&str]) -> Result<Vec<PathBuf>, String> {
    let builtin_list = modules_dir.join("modules.builtin");
    let builtin: HashSet<String> = std::fs::read_to_string(&builtin_list)
        .map_err(|e| format!("cannot read {}: {e}", builtin_list.display()))?
        .lines()
        .filter_map(|l| module_name(Path::new(l)))
        .collect();
    let mut files = Vec::new();
    module_files(&modules_dir.join("kernel"), &mut files)?;
    let path_of = |name: &str| files.iter().find(|p| module_name(p).as_deref() == Some(name));
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    // Depth first; `stack` holds (module, its dependencies pushed yet).
    for &top in wanted {
        let mut stack = vec![(top.to_string(), false)];
        while let Some((name, expanded)) = stack.pop() {
            if builtin.contains(&name) || (seen.contains(&name) && !expanded) {
                continue;
            }
            let path = path_of(&name)
                .ok_or(format!("module {name} not found under {}", modules_dir.display()))?;
            if expanded {
                if !order.contains(path) {
                    order.push(path.clone());
                }
                continue;
            }
            seen.insert(name.clone());
            stack.push((name, true));
            for d in depends(&module_bytes(path)?) {
                if !seen.contains(&d) {
                    stack.push((d, false));
                }
            }
        }
    }
    Ok(order)
}

/// A writer of "newc" cpio archives, the initramfs format Linux unpacks.
pub struct Cpio {
    out: Vec<u8>,
    ino: u32,
}

impl Default for Cpio {
    fn default() -> Self {
        Self::new()
    }
}

impl Cpio {
    pub fn new() -> Self {
        Cpio { out: Vec::new(), ino: 1 }
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    /// One entry: a 110-byte header, the name, the data, each padded to 4.
    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
        let name = name.trim_start_matches('/');
        let nlink = if mode & 0o170000 == 0o040000 { 2 } else { 1 };
        let fields = [
            self.ino,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime
            u32::try_from(data.len()).expect("cpio entries are < 4 GiB"),
            0, // devmajor
            0, // devminor
            rdev.0,
            rdev.1,
            u32::try_from(name.len() + 1).expect("short name"),
            0, // check
        ];
        self.ino += 1;
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    /// A directory; its parent must come first.
    pub fn dir(&mut self, name: &str) {
        self.entry(name, 0o040755, (0, 0), &[]);
    }

    /// A regular file with permission bits `perm` (e.g. `0o755`).
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.entry(name, 0o100000 | (perm & 0o7777), (0, 0), data);
    }

    /// A symbolic link to `target`.
    pub fn symlink(&mut self, name: &str, target: &str) {
        self.entry(name, 0o120777, (0, 0), target.as_bytes());
    }

    /// A character device node.
    pub fn char_dev(&mut self, name: &str, perm: u32, major: u32, minor: u32) {
        self.entry(name, 0o020000 | (perm & 0o7777), (major, minor), &[]);
    }

    /// The archive, ended by its trailer.
    pub fn finish(mut self) -> Vec<u8> {
        self.ino = 0;
        self.entry("TRAILER!!!", 0, (0, 0), &[]);
        self.out
    }
}

/// Applets linked in the archive itself; `/init` installs the rest.
const APPLETS: &[&str] = &[
    "sh", "mount", "insmod", "cat", "echo", "ls", "dd", "hexdump", "od", "xxd", "poweroff",
    "sleep", "mkdir", "dmesg", "sync", "grep",
];

/// The `/init` script: mounts, modules, the caller's script between
/// markers, power off.
fn init_script(modules: &[String]) -> String {
    format!(
        "#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in {}; do
    insmod /lib/modules/$m.ko || echo \"== insmod $m failed\"
done
echo '{BEGIN}'
sh /script.sh
echo \"{END} rc=$?\"
sync
poweroff -f
",
        modules.join(" ")
    )
}

/// The initramfs for one boot: busybox, the kit's modules, `/init` and
/// `/script.sh`.
fn initramfs(kit: &Kit, script: &str) -> Result<Vec<u8>, String> {
    let mut c = Cpio::new();
    for d in ["bin", "dev", "proc", "sys", "tmp", "lib", "lib/modules"] {
        c.dir(d);
    }
    // The console /init's output goes to (before devtmpfs is mounted).
    c.char_dev("dev/console", 0o600, 5, 1);
    let busybox = std::fs::read(&kit.busybox)
        .map_err(|e| format!("cannot read {}: {e}", kit.busybox.display()))?;
    c.file("bin/busybox", 0o755, &busybox);
    for a in APPLETS {
        c.symlink(&format!("bin/{a}"), "busybox");
    }
    let mut names = Vec::new();
    for m in &kit.modules {
        let name = module_name(m).ok_or(format!("{} is not a module", m.display()))?;
        c.file(&format!("lib/modules/{name}.ko"), 0o644, &module_bytes(m)?);
        names.push(name);
    }
    c.file("init", 0o755, init_script(&names).as_bytes());
    c.file("script.sh", 0o755, script.as_bytes());
    Ok(c.finish())
}

/// A kernel-log line `[   12.345678] text`: its timestamp in µs and its
/// text.
pub fn stamped(line: &str) -> Option<(u64, &str)> {
    let (t, text) = line.strip_prefix('[')?.split_once("] ")?;
    let (s, frac) = t.trim().split_once('.')?;
    if frac.len() != 6 {
        return None;
    }
    Some((s.parse::<u64>().ok()? * 1_000_000 + frac.parse::<u64>().ok()?, text))
}

/// Boots Linux on the QEMU `pc` machine `m` (TCG): its firmware, `-m`, CPUs,
/// devices and QEMU arguments, and its `cmdline` after `console=ttyS0
/// panic=-1 quiet` (the machine's kernel, image and exit device are
/// Tessera's and not used). Under UEFI, OVMF loads the kernel from fw_cfg
/// (`-kernel`) and Linux's EFI stub builds its E820 table from the UEFI
/// memory map, as on a UEFI PC. The initramfs mounts proc, sysfs and
/// devtmpfs, loads the modules, runs `script` with `/bin/sh` between the
/// lines [`BEGIN`] and `END rc=N`, and powers off.
///
/// Writes the serial log to `target/qemu/<tag>.log` (and the initramfs to
/// `target/qemu/<tag>-initrd.cpio`) and returns the serial output, with
/// `\r\n` made `\n`. Fails with one line when QEMU cannot start or fails,
/// at the machine's timeout (QEMU killed), or when the script's end never
/// appears.
pub fn boot(kit: &Kit, m: &Machine, script: &str) -> Result<String, String> {
    boot_steps(kit, m, script, &[]).map(|(out, _)| out)
}

/// [`boot()`], with `steps` run against the serial output as it comes
/// ([`machine::drive`]; QEMU's monitor on `target/qemu/<tag>.mon`), e.g.
/// waiting for the script's marker lines and sending `device_add`. The
/// boot fails when a step does (QEMU is stopped then).
pub fn boot_steps(
    kit: &Kit,
    m: &Machine,
    script: &str,
    steps: &[Step],
) -> Result<(String, StepLog), String> {
    let (tag, cmdline, mem) = (&m.tag, &m.cmdline, &m.mem);
    let dir = Path::new("target/qemu");
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let log_path = dir.join(format!("{tag}.log"));
    let initrd = dir.join(format!("{tag}-initrd.cpio"));
    std::fs::write(&initrd, initramfs(kit, script)?)
        .map_err(|e| format!("cannot write {}: {e}", initrd.display()))?;
    let append = format!("console=ttyS0 panic=-1 quiet rdinit=/init {cmdline}");
    let mut pflash = Vec::new();
    if m.profile.firmware == boot::Firmware::Uefi {
        let vars = dir.join(format!("{tag}-vars.fd"));
        std::fs::copy(crate::profile::OVMF_VARS, &vars)
            .map_err(|e| format!("cannot copy {}: {e}", crate::profile::OVMF_VARS))?;
        let esc = |p: &str| crate::profile::escape(p);
        pflash = vec![
            "-drive".to_string(),
            format!(
                "if=pflash,format=raw,unit=0,readonly=on,file={}",
                esc(crate::profile::OVMF_CODE)
            ),
            "-drive".to_string(),
            format!("if=pflash,format=raw,unit=1,file={}", esc(&vars.to_string_lossy())),
        ];
    }
    let socket = log_path.with_extension("mon");
    let mut monitor = Vec::new();
    if !steps.is_empty() {
        let _ = std::fs::remove_file(&socket);
        monitor =
            vec!["-monitor".to_string(), format!("unix:{},server=on,wait=off", socket.display())];
    }
    // A `-machine` among the devices' arguments (`pc,nvdimm=on`) replaces
    // the default.
    let extra = m.device_args();
    let machine = if extra.iter().any(|x| x == "-machine" || x == "-M") {
        vec![]
    } else {
        vec!["-machine", "pc"]
    };
    let mut child = Command::new(crate::machine::QEMU)
        .args(m.accel.args(m.cpus))
        .args(machine)
        .args(["-nodefaults", "-display", "none"])
        .args(["-serial", "stdio", "-no-reboot", "-m", mem])
        .args(&pflash)
        .args(&monitor)
        .args(extra)
        .arg("-kernel")
        .arg(&kit.vmlinuz)
        .arg("-initrd")
        .arg(&initrd)
        .args(["-append", append.trim_end()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", crate::machine::QEMU))?;
    let mut file = std::fs::File::create(&log_path)
        .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let serial = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&serial);
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            let _ = file.write_all(&buf[..n]);
            sink.lock().expect("serial lock").push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let err_reader = machine::collect(child.stderr.take().expect("piped"));
    let log = Arc::new(Mutex::new(StepLog::default()));
    if !steps.is_empty() {
        let (steps, seen, out) = (steps.to_vec(), Arc::clone(&serial), Arc::clone(&log));
        std::thread::spawn(move || machine::drive(&steps, &seen, &socket, None, &out));
    }
    let stop = || log.lock().expect("step lock").failed.is_some();
    let ending = machine::wait(&mut child, m.timeout, stop)?;
    let _ = reader.join();
    let qemu_err = err_reader.join().unwrap_or_default();
    let out = serial.lock().expect("serial lock").replace("\r\n", "\n");
    let steps = log.lock().expect("step lock").clone();
    let log = log_path.display();
    if let Some(why) = &steps.failed {
        return Err(format!("Linux ({tag}): {why}; serial log in {log}"));
    }
    match ending {
        Ending::Timeout(secs) => {
            return Err(format!("Linux ({tag}) timed out after {secs} s; serial log in {log}"));
        }
        Ending::Code(0) => {}
        e => {
            let how = match e {
                Ending::Code(c) => format!("exit status: {c}"),
                Ending::Signal(s) => format!("signal: {s}"),
                Ending::Timeout(_) => unreachable!("handled above"),
            };
            let why = qemu_err.lines().find(|l| !l.trim().is_empty()).unwrap_or("no error output");
            return Err(format!("QEMU ({tag}) failed ({how}): {}", why.trim()));
        }
    }
    if !out.lines().any(|l| l.starts_with(END)) {
        let mut lines = out.lines().map(str::trim).filter(|l| !l.is_empty());
        let last = lines.clone().find(|l| l.contains("Kernel panic"));
        let last = last.or_else(|| lines.next_back()).unwrap_or("no output");
        return Err(format!(
            "Linux ({tag}) stopped before the script ended ({last}); serial log in {log}"
        ));
    }
    Ok((out, steps))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One entry read back from an archive.
    struct Entry {
        ino: u32,
        mode: u32,
        rdev: (u32, u32),
        name: String,
        data: Vec<u8>,
    }

    /// Parses a newc archive back, checking the magic, the name's NUL, the
    /// padding and that the trailer ends it.
    fn parse(mut a: &[u8]) -> Vec<Entry> {
        let mut entries = Vec::new();
        loop {
            assert_eq!(&a[..6], b"070701", "magic");
            let field = |i: usize| {
                let s = std::str::from_utf8(&a[6 + 8 * i..14 + 8 * i]).unwrap();
                u32::from_str_radix(s, 16).unwrap()
            };
            let (size, namesize) = (field(6) as usize, field(11) as usize);
            assert_eq!(a[110 + namesize - 1], 0, "name ends with NUL");
            let name = String::from_utf8(a[110..110 + namesize - 1].to_vec()).unwrap();
            let data_at = (110 + namesize).next_multiple_of(4);
            let next = (data_at + size).next_multiple_of(4);
            assert!(a[110 + namesize..data_at].iter().all(|&b| b == 0), "name padding");
            assert!(a[data_at + size..next].iter().all(|&b| b == 0), "data padding");
            let data = a[data_at..data_at + size].to_vec();
            let e =
                Entry { ino: field(0), mode: field(1), rdev: (field(9), field(10)), name, data };
            a = &a[next..];
            if e.name == "TRAILER!!!" {
                assert!(a.is_empty(), "nothing after the trailer");
                return entries;
            }
            entries.push(e);
        }
    }

    #[test]
    fn cpio_round_trip() {
        let mut c = Cpio::new();
        c.dir("bin");
        c.file("/bin/busybox", 0o755, b"\x7fELF and so on");
        c.symlink("bin/sh", "busybox");
        c.char_dev("dev/console", 0o600, 5, 1);
        c.file("empty", 0o644, b"");
        let archive = c.finish();
        assert_eq!(archive.len() % 4, 0);
        let e = parse(&archive);
        let names: Vec<&str> = e.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["bin", "bin/busybox", "bin/sh", "dev/console", "empty"]);
        assert_eq!(e[0].mode, 0o040755);
        assert_eq!((e[1].mode, e[1].data.as_slice()), (0o100755, &b"\x7fELF and so on"[..]));
        assert_eq!((e[2].mode, e[2].data.as_slice()), (0o120777, &b"busybox"[..]));
        assert_eq!((e[3].mode, e[3].rdev), (0o020600, (5, 1)));
        assert_eq!((e[4].mode, e[4].data.len()), (0o100644, 0));
        // Distinct inode numbers (Linux links files that share one).
        let inos: HashSet<u32> = e.iter().map(|e| e.ino).collect();
        assert_eq!(inos.len(), e.len());
    }

    #[test]
    fn several_cpus_as_for_tessera() {}

    #[test]
    fn modinfo_depends() {
        let ko = b"\x7fELF\0\0license=GPL\0depends=libnvdimm,nd-btt\0name=nd_pmem\0";
        assert_eq!(depends(ko), ["libnvdimm", "nd_btt"]);
        assert!(depends(b"\0depends=\0name=kmem\0").is_empty());
        assert!(depends(b"no modinfo").is_empty());
    }
}

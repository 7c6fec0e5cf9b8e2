//! One boot of a Tessera kernel in QEMU: its description ([`Machine`],
//! shared by every command that boots Tessera), the disk image, the serial
//! console captured to a log file under `target/` and echoed, a hard
//! timeout, and the exit status.

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use options::contract::{self, SHELL_PROMPT};

use crate::accel::{self, Accel};
use crate::device::{self, Device};
use crate::plan::{self, Nvdimm, Shape};
use crate::profile::{self, Profile};
use crate::report::Ending;

pub const QEMU: &str = "qemu-system-x86_64";

/// Everything one boot needs: `qemu run`, `test`, `runner`, `bench`,
/// `screenshot`, `fuzz-seeds`, the persistence checks and linux-diff all
/// describe their boots with it (Linux's boots use the machine part: the
/// firmware, `mem`, `cmdline`, the devices and QEMU arguments).
#[derive(Debug, Clone)]
pub struct Machine {
    /// Firmware and how the disk is attached.
    pub profile: &'static Profile,
    /// The kernel ELF put into the disk image.
    pub kernel: PathBuf,
    /// Names the boot's files under `target/qemu/`: `<tag>.log`, the
    /// image, the OVMF variables, the NVDIMM's backing file.
    pub tag: String,
    /// QEMU `-m`, verbatim.
    pub mem: String,
    /// QEMU `-smp`: the profile's count unless the boot says otherwise
    /// (`qemu run --smp N`).
    pub cpus: u32,
    /// Options handed over through fw_cfg.
    pub cmdline: String,
    /// Options built into the image, as on a real PC.
    pub image_cmdline: String,
    /// Appended verbatim; a `-machine`/`-M` here replaces the default `pc`.
    pub qemu_args: Vec<String>,
    /// An NVDIMM and its backing file.
    pub nvdimm: Option<(Nvdimm, PathBuf)>,
    /// The in-kernel tests' name filter, through fw_cfg.
    pub test_filter: Option<String>,
    /// Leave out `isa-debug-exit`, as on a real PC: the kernel must power
    /// off through ACPI (QEMU then exits 0).
    pub no_exit_device: bool,
    /// QEMU is killed after this long (`None`: never).
    pub timeout: Option<Duration>,
    /// KVM or TCG: [`accel::current`] unless the boot says otherwise.
    pub accel: Accel,
    /// QEMU is killed as soon as this says yes to the serial output so
    /// far (captured boots only): for a probe that needs only the start
    /// of a boot.
    pub stop_when: Option<fn(&str) -> bool>,
}

impl Machine {
    /// `kernel` on `profile` on the [`plan::DEFAULT`] machine, its files
    /// named by `tag`, without a timeout.
    pub fn new(profile: &'static Profile, kernel: &Path, tag: &str) -> Self {
        Machine {
            profile,
            kernel: kernel.to_path_buf(),
            tag: tag.to_string(),
            mem: String::new(),
            cpus: profile.cpus,
            cmdline: String::new(),
            image_cmdline: String::new(),
            qemu_args: Vec::new(),
            nvdimm: None,
            test_filter: None,
            no_exit_device: false,
            timeout: None,
            accel: accel::current(),
            stop_when: None,
        }
        .shape(&plan::DEFAULT)
    }

    /// The memory, options, devices and QEMU arguments of `shape`; an
    /// NVDIMM gets the file [`nvdimm_file`] of this boot's tag.
    pub fn shape(mut self, shape: &Shape) -> Self {
        self.mem = shape.mem.into();
        self.cmdline = shape.cmdline.into();
        self.qemu_args = shape.qemu_args.split_whitespace().map(String::from).collect();
        self.nvdimm = shape.nvdimm.map(|n| (n, nvdimm_file(&self.tag)));
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Prepares the NVDIMM's backing file as its format says (see
    /// [`Nvdimm::format`]) and returns what the host wrote, to compare
    /// after the boot.
    pub fn prepare_nvdimm(&self) -> Result<Option<Device>, String> {
        let Some((nv, file)) = &self.nvdimm else { return Ok(None) };
        match nv.format {
            Some(format) => device::create(file, nv.base(), nv.size, format).map(Some),
            None => {
                let _ = std::fs::remove_file(file);
                Ok(None)
            }
        }
    }

    /// The QEMU arguments of the devices and the extra arguments: what a
    /// Linux boot on the same machine gets too.
    pub fn device_args(&self) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        if let Some((nv, file)) = &self.nvdimm {
            let backend = format!(
                "memory-backend-file,id=nv0,share=on,mem-path={},size={}",
                file.display(),
                size_arg(nv.size)
            );
            let addr = nv.addr.map_or(String::new(), |a| format!(",addr={a:#x}"));
            let dev = format!("nvdimm,id=nvdimm0,memdev=nv0{addr}");
            a.extend(
                ["-machine", "pc,nvdimm=on", "-object", &backend, "-device", &dev]
                    .map(String::from),
            );
        }
        a.extend(self.qemu_args.iter().cloned());
        a
    }

    /// QEMU's arguments for booting `image`, except the serial set-up;
    /// `vars` is the writable OVMF variable store (UEFI only).
    pub fn args(&self, image: &Path, vars: &Path) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        let mut push = |items: &[&str]| a.extend(items.iter().map(|s| s.to_string()));
        let extra = self.device_args();
        if !extra.iter().any(|x| x == "-machine" || x == "-M") {
            push(&["-machine", "pc"]);
        }
        push(&["-m", &self.mem, "-no-reboot"]);
        let accel = self.accel.args(self.cpus);
        push(&accel.iter().map(String::as_str).collect::<Vec<_>>());
        if !self.no_exit_device {
            let exit = format!(
                "isa-debug-exit,iobase={:#x},iosize={:#04x}",
                contract::DEBUG_EXIT_IOBASE,
                contract::DEBUG_EXIT_IOSIZE
            );
            push(&["-device", &exit]);
        }
        if self.profile.firmware == boot::Firmware::Uefi {
            let code = format!(
                "if=pflash,format=raw,unit=0,readonly=on,file={}",
                profile::escape(profile::OVMF_CODE)
            );
            let vars =
                format!("if=pflash,format=raw,unit=1,file={}", profile::escape(&path_str(vars)));
            push(&["-drive", &code, "-drive", &vars]);
        }
        let img = profile::escape(&path_str(image));
        if self.profile.usb {
            let drive = format!("if=none,id=stick,format=raw,snapshot=on,file={img}");
            push(&["-device", "qemu-xhci", "-drive", &drive]);
            push(&["-device", "usb-storage,drive=stick,bootindex=0"]);
        } else {
            push(&["-drive", &format!("format=raw,snapshot=on,file={img}")]);
        }
        let fw_cfg =
            |name: &str, value: &str| format!("name={name},string={}", profile::escape(value));
        if !self.cmdline.is_empty() {
            push(&["-fw_cfg", &fw_cfg(contract::FW_CFG_CMDLINE, &self.cmdline)]);
        }
        if let Some(f) = &self.test_filter {
            push(&["-fw_cfg", &fw_cfg(contract::FW_CFG_TEST_FILTER, f)]);
        }
        a.extend(extra);
        a
    }

    /// The serial log of this boot.
    pub fn log_path(&self) -> PathBuf {
        paths(&self.tag).0
    }

    /// Builds the disk image: the kernel without its debug sections (see
    /// [`strip_debug`]), [`Machine::image_cmdline`] built in.
    fn image(&self) -> Result<PathBuf, String> {
        let dir = PathBuf::from("target/qemu/images");
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let out = dir.join(format!("{}-{}.img", self.tag, self.profile.firmware.name()));
        let elf = strip_debug(&self.kernel, &dir.join(format!("{}.elf", self.tag)));
        boot::build_image(&elf, self.profile.firmware, &self.image_cmdline, &out)
            .map_err(|e| e.to_string())?;
        Ok(out)
    }
}

impl Nvdimm {
    /// Its guest-physical address.
    pub fn base(&self) -> u64 {
        self.addr.unwrap_or(device::NVDIMM_BASE)
    }
}

/// A size as QEMU's `size=` reads it: `256M`, `64G`.
fn size_arg(bytes: u64) -> String {
    if bytes.is_multiple_of(1 << 30) {
        format!("{}G", bytes >> 30)
    } else {
        format!("{}M", bytes >> 20)
    }
}

/// The NVDIMM backing file of the boot `tag`.
pub fn nvdimm_file(tag: &str) -> PathBuf {
    PathBuf::from(format!("target/qemu/{tag}-nvdimm.img"))
}

/// The toolchain's `llvm-objcopy` (rustup's `llvm-tools`, which the
/// bootloader's build needs anyway), if it is there.
fn objcopy() -> Option<&'static Path> {
    static OBJCOPY: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    OBJCOPY
        .get_or_init(|| {
            let out = Command::new("rustc").args(["--print", "sysroot"]).output().ok()?;
            let sysroot = String::from_utf8(out.stdout).ok()?;
            let host = Command::new("rustc").args(["-vV"]).output().ok()?;
            let host = String::from_utf8(host.stdout).ok()?;
            let triple = host.lines().find_map(|l| l.strip_prefix("host: "))?.to_string();
            let p =
                Path::new(sysroot.trim()).join("lib/rustlib").join(triple).join("bin/llvm-objcopy");
            p.exists().then_some(p)
        })
        .as_deref()
}

/// A copy of `kernel` without debug sections at `out`: the BIOS and UEFI
/// loaders read the whole file from the disk image, and a debug build's
/// 10 MiB of DWARF costs about 7 s per boot under TCG (measured: 9.6 s
/// against 2.2 s to power off). The code is the same. Without
/// `llvm-objcopy` the kernel is used as it is.
fn strip_debug(kernel: &Path, out: &Path) -> PathBuf {
    let Some(objcopy) = objcopy() else { return kernel.to_path_buf() };
    let ok = Command::new(objcopy)
        .arg("--strip-debug")
        .arg(kernel)
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok { out.to_path_buf() } else { kernel.to_path_buf() }
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Fails with a one-line instruction when QEMU or (for UEFI) OVMF is missing.
pub fn check_host(profile: &Profile) -> Result<(), String> {
    let found = Command::new(QEMU)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        return Err(format!(
            "{QEMU} not found: run `make setup` (as root: apt-get install -y qemu-system-x86 ovmf)"
        ));
    }
    if profile.firmware == boot::Firmware::Uefi && !Path::new(profile::OVMF_CODE).exists() {
        return Err(format!(
            "{} not found: run `make setup` (as root: apt-get install -y ovmf)",
            profile::OVMF_CODE
        ));
    }
    Ok(())
}

/// Where a boot's files go: `target/qemu/<tag>.{log,vars.fd}`.
pub fn paths(tag: &str) -> (PathBuf, PathBuf) {
    let dir = PathBuf::from("target/qemu");
    (dir.join(format!("{tag}.log")), dir.join(format!("{tag}-vars.fd")))
}

/// The result of one boot.
pub struct Boot {
    pub ending: Ending,
    /// The serial output.
    pub log: String,
    /// QEMU's own error output.
    pub stderr: String,
    pub elapsed: Duration,
    /// How the scripted steps went.
    pub steps: StepLog,
}

fn ending(status: ExitStatus) -> Ending {
    match (status.code(), status.signal()) {
        (Some(c), _) => Ending::Code(c),
        (None, Some(s)) => Ending::Signal(s),
        (None, None) => Ending::Code(-1),
    }
}

/// Checks the host, creates `target/qemu/` and the OVMF variable store;
/// returns the log path and the variable store.
fn prepare(m: &Machine) -> Result<(PathBuf, PathBuf), String> {
    check_host(m.profile)?;
    let (log, vars) = paths(&m.tag);
    std::fs::create_dir_all(log.parent().expect("has a parent"))
        .map_err(|e| format!("cannot create target/qemu: {e}"))?;
    if m.profile.firmware == boot::Firmware::Uefi {
        std::fs::copy(profile::OVMF_VARS, &vars).map_err(|e| {
            format!("cannot copy {} to {}: {e}", profile::OVMF_VARS, vars.display())
        })?;
    }
    Ok((log, vars))
}

/// Waits for a child (QEMU, GDB) to exit; kills it after `timeout`, or as
/// soon as `stop` says so.
pub fn wait(
    child: &mut std::process::Child,
    timeout: Option<Duration>,
    stop: impl Fn() -> bool,
) -> Result<Ending, String> {
    let start = Instant::now();
    let id = child.id();
    let failed = |e| format!("waiting for process {id}: {e}");
    loop {
        if let Some(status) = child.try_wait().map_err(failed)? {
            return Ok(ending(status));
        }
        if stop() {
            let _ = child.kill();
            return Ok(ending(child.wait().map_err(failed)?));
        }
        if let Some(t) = timeout
            && start.elapsed() >= t
        {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(Ending::Timeout(t.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Collects a child's output (QEMU's errors, GDB's answers) on a thread,
/// so a full pipe never blocks it.
pub fn collect(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = pipe.read_to_string(&mut s);
        s
    })
}

/// One step of a scripted boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Typed on serial (then Enter) once the next shell prompt appears.
    Type(String),
    /// Sent to QEMU's monitor once the next shell prompt appears, e.g.
    /// `screendump -f png FILE`; the next step waits for it to finish.
    Monitor(String),
    /// Sent to QEMU's monitor at once, without waiting for a prompt: for
    /// a guest without a shell (Linux's scripts), or the second of two
    /// commands (`object_add`, then `device_add`).
    MonitorNow(String),
    /// Waits until a pattern appears in the serial output after what the
    /// previous `Await` matched (from the start for the first), and
    /// records how long that took since the last command was sent or
    /// typed (`device_add -> online: 0.42 s`); see [`Await`].
    Await(Await),
    /// Typed on the PS/2 keyboard (QEMU's `sendkey`), then Enter, once the
    /// next shell prompt appears.
    Keys(String),
    /// While the command typed last runs: a space on the PS/2 keyboard each
    /// time `pattern` appears in its answer, until the next prompt.
    PressWhile(String),
}

/// A [`Step::Await`]: what to wait for, for how long, and the name its
/// time is reported under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Await {
    /// How the wait is reported, e.g. `device_add dimm1 -> online`.
    pub name: String,
    /// A piece of one line of serial output.
    pub pattern: String,
    /// After this long the wait fails, the remaining steps are dropped and
    /// QEMU is stopped.
    pub timeout: Duration,
}

impl Step {
    fn needs_monitor(&self) -> bool {
        !matches!(self, Step::Type(_) | Step::Await(_))
    }

    /// A [`Step::Await`] for `pattern`, reported as `name`.
    pub fn wait_for(name: &str, pattern: &str, timeout: Duration) -> Step {
        Step::Await(Await { name: name.into(), pattern: pattern.into(), timeout })
    }
}

/// One [`Step::Await`] of a boot, as it went.
#[derive(Debug, Clone, PartialEq)]
pub struct Waited {
    pub name: String,
    pub pattern: String,
    /// From sending (or typing) the command before it to the pattern;
    /// `None`: not seen within the timeout (`Err` holds the timeout).
    pub elapsed: Result<Duration, Duration>,
}

impl Waited {
    /// `device_add -> online: 0.42 s`, or `device_add -> online: "PATTERN"
    /// not seen within 10 s`.
    pub fn line(&self) -> String {
        match self.elapsed {
            Ok(d) => format!("{}: {:.2} s", self.name, d.as_secs_f64()),
            Err(t) => {
                format!("{}: {:?} not seen within {} s", self.name, self.pattern, t.as_secs_f64())
            }
        }
    }
}

/// How a boot's steps went.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepLog {
    /// Every [`Step::Await`] that ran, in order.
    pub waits: Vec<Waited>,
    /// Every monitor command but `sendkey`, with what QEMU answered after
    /// echoing it (mostly nothing; `info memory-devices` lists devices).
    pub monitor: Vec<(String, String)>,
    /// Why the steps stopped early, in one line.
    pub failed: Option<String>,
}

/// QEMU's `sendkey` name for a character (a US keyboard).
pub fn qcode(c: char) -> Option<String> {
    let shifted = |k: &str| Some(format!("shift-{k}"));
    match c {
        'a'..='z' | '0'..='9' => Some(c.to_string()),
        'A'..='Z' => shifted(&c.to_ascii_lowercase().to_string()),
        ' ' => Some("spc".into()),
        '-' => Some("minus".into()),
        '_' => shifted("minus"),
        '=' => Some("equal".into()),
        '.' => Some("dot".into()),
        ',' => Some("comma".into()),
        '/' => Some("slash".into()),
        '#' => shifted("3"),
        '!' => shifted("1"),
        '$' => shifted("4"),
        _ => None,
    }
}

/// Sends one command to the monitor at `socket` and waits for its answer.
fn monitor(socket: &Path, cmd: &str) -> Result<String, String> {
    use std::os::unix::net::UnixStream;
    let mut s =
        UnixStream::connect(socket).map_err(|e| format!("monitor {}: {e}", socket.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(20))).map_err(|e| e.to_string())?;
    let mut seen = String::new();
    let until_prompt = |s: &mut UnixStream, seen: &mut String| -> Result<(), String> {
        let mut buf = [0u8; 1024];
        while !seen.ends_with("(qemu) ") {
            let n = s.read(&mut buf).map_err(|e| format!("monitor: {e}"))?;
            if n == 0 {
                return Err("monitor closed".into());
            }
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        Ok(())
    };
    until_prompt(&mut s, &mut seen)?;
    seen.clear();
    s.write_all(format!("{cmd}\n").as_bytes()).map_err(|e| format!("monitor: {e}"))?;
    until_prompt(&mut s, &mut seen)?;
    Ok(crate::report::strip_ansi(&seen))
}

/// Boots `m` with the serial port piped through the runner: all output
/// goes to the log file and, when `echo`, to stdout. The `input` steps run
/// in order, each after the next shell prompt appears; without input,
/// stdin is closed.
pub fn boot_captured(m: &Machine, echo: bool, input: &[Step]) -> Result<Boot, String> {
    let (log_path, vars) = prepare(m)?;
    let image = m.image()?;
    let mut args = vec!["-display".into(), "none".into(), "-serial".into(), "stdio".into()];
    args.extend(m.args(&image, &vars));
    let socket = log_path.with_extension("mon");
    if input.iter().any(Step::needs_monitor) {
        let _ = std::fs::remove_file(&socket);
        let arg = format!("unix:{},server=on,wait=off", socket.display());
        args.extend(["-monitor".to_string(), arg]);
    }
    let start = Instant::now();
    let stdin = if input.is_empty() { Stdio::null() } else { Stdio::piped() };
    let mut child = Command::new(QEMU)
        .args(&args)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {QEMU}: {e}"))?;
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let mut file = std::fs::File::create(&log_path)
        .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let shared = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&shared);
    // Raw chunks, not lines: a prompt has no newline after it.
    let reader = std::thread::spawn(move || {
        let mut r = stdout;
        let mut buf = [0u8; 4096];
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 {
                break;
            }
            let _ = file.write_all(&buf[..n]);
            let text = String::from_utf8_lossy(&buf[..n]);
            if echo {
                print!("{}", crate::report::strip_ansi(&text));
                let _ = std::io::stdout().flush();
            }
            sink.lock().expect("log lock").push_str(&text);
        }
    });
    let steps = Arc::new(Mutex::new(StepLog::default()));
    let stdin = child.stdin.take();
    if !input.is_empty() {
        let (input, seen, out) = (input.to_vec(), Arc::clone(&shared), Arc::clone(&steps));
        std::thread::spawn(move || drive(&input, &seen, &socket, stdin, &out));
    }
    let err_reader = collect(stderr);
    let stop = || {
        m.stop_when.is_some_and(|f| f(&shared.lock().expect("log lock")))
            || steps.lock().expect("step lock").failed.is_some()
    };
    let ending = wait(&mut child, m.timeout, stop)?;
    let _ = reader.join();
    let log = crate::report::strip_ansi(&shared.lock().expect("log lock"));
    let stderr = err_reader.join().unwrap_or_default();
    if echo && !log.is_empty() && !log.ends_with('\n') {
        println!();
    }
    let steps = steps.lock().expect("step lock").clone();
    Ok(Boot { ending, log, stderr, elapsed: start.elapsed(), steps })
}

/// Runs `steps` against a boot whose serial output so far is `seen`:
/// types on `stdin`, sends to the monitor at `socket`, waits; records
/// into `out`. Stops at the first failure (an [`Await`] that timed out,
/// a line to type without serial input), which it records in `out`.
pub fn drive(
    steps: &[Step],
    seen: &Mutex<String>,
    socket: &Path,
    mut stdin: Option<std::process::ChildStdin>,
    out: &Mutex<StepLog>,
) {
    let fail = |why: String| out.lock().expect("step lock").failed = Some(why);
    let mut typed = 0;
    // When the last command was sent or typed: an `Await` times from it.
    let mut since = Instant::now();
    // Where the last `Await` matched: the next one looks after it.
    let mut from = 0;
    let send = |cmd: &str| match monitor(socket, cmd) {
        // The monitor answers nothing but its echo on success.
        Ok(answer) => {
            // What follows the monitor's echo of the command.
            let said = answer.rsplit(cmd).next().unwrap_or("");
            let said = said.replace("(qemu) ", "");
            let said = said.trim();
            if !cmd.starts_with("sendkey ") {
                out.lock().expect("step lock").monitor.push((cmd.into(), said.into()));
            }
            // An `info` command's answer is what it was sent for.
            if !said.is_empty() && !cmd.starts_with("info ") {
                eprintln!("qemu monitor: {cmd}: {said}");
            }
        }
        Err(e) => eprintln!("qemu: {e}"),
    };
    // The steps that start a command wait for the next prompt.
    let wait_prompt = |typed: usize| {
        while seen.lock().expect("log lock").matches(SHELL_PROMPT).count() <= typed {
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    for step in steps {
        match step {
            Step::PressWhile(pattern) => {
                let mut pressed = 0;
                loop {
                    let (done, due) = {
                        let log = seen.lock().expect("log lock");
                        let mut answers = log.split(SHELL_PROMPT).skip(typed);
                        let answer = answers.next().unwrap_or("");
                        let due = answer.matches(pattern.as_str()).count();
                        (answers.next().is_some(), due)
                    };
                    if done {
                        break;
                    }
                    if due > pressed {
                        send("sendkey spc");
                        pressed += 1;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            Step::Monitor(cmd) => {
                wait_prompt(typed);
                since = Instant::now();
                send(cmd);
            }
            Step::MonitorNow(cmd) => {
                since = Instant::now();
                send(cmd);
            }
            Step::Await(w) => {
                let elapsed = loop {
                    let found = seen.lock().expect("log lock")[from..].find(w.pattern.as_str());
                    if let Some(at) = found {
                        from += at + w.pattern.len();
                        break Ok(since.elapsed());
                    }
                    if since.elapsed() >= w.timeout {
                        break Err(w.timeout);
                    }
                    std::thread::sleep(Duration::from_millis(5));
                };
                let waited = Waited { name: w.name.clone(), pattern: w.pattern.clone(), elapsed };
                let line = waited.line();
                out.lock().expect("step lock").waits.push(waited);
                if elapsed.is_err() {
                    return fail(line);
                }
            }
            Step::Keys(line) => {
                wait_prompt(typed);
                typed += 1;
                since = Instant::now();
                for c in line.chars() {
                    match qcode(c) {
                        Some(key) => send(&format!("sendkey {key}")),
                        None => eprintln!("qemu: no key for {c:?}"),
                    }
                }
                send("sendkey ret");
            }
            Step::Type(line) => {
                let Some(stdin) = stdin.as_mut() else {
                    return fail(format!("cannot type {line:?}: this boot has no serial input"));
                };
                wait_prompt(typed);
                typed += 1;
                since = Instant::now();
                // A byte at a time, as a person (or a slow UART) would.
                for b in line.bytes().chain(*b"\r") {
                    if stdin.write_all(&[b]).and_then(|()| stdin.flush()).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        }
    }
}

/// Boots `m` with the serial port and QEMU's monitor on this terminal
/// (Ctrl-A X quits, Ctrl-A C switches to the monitor); QEMU itself writes
/// the serial log file.
pub fn boot_interactive(m: &Machine, display: bool) -> Result<Boot, String> {
    let (log_path, vars) = prepare(m)?;
    let image = m.image()?;
    let chardev =
        format!("stdio,id=con0,mux=on,logfile={}", profile::escape(&log_path.to_string_lossy()));
    let mut args: Vec<String> =
        vec!["-chardev".into(), chardev, "-serial".into(), "chardev:con0".into()];
    args.extend(["-mon".into(), "chardev=con0,mode=readline".into()]);
    if !display {
        args.extend(["-display".into(), "none".into()]);
    }
    args.extend(m.args(&image, &vars));
    let start = Instant::now();
    let mut child = Command::new(QEMU)
        .args(&args)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {QEMU}: {e}"))?;
    let stderr = child.stderr.take().expect("piped");
    let err_reader = collect(stderr);
    let ending = wait(&mut child, m.timeout, || false)?;
    let stderr = err_reader.join().unwrap_or_default();
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    Ok(Boot { ending, log, stderr, elapsed: start.elapsed(), steps: StepLog::default() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::find;

    fn machine(profile: &str) -> Machine {
        Machine::new(find(profile).unwrap(), Path::new("k"), "t")
    }

    fn args(m: &Machine) -> Vec<String> {
        m.args(Path::new("/t/k.img"), Path::new("/t/vars.fd"))
    }

    #[test]
    fn default_machine_is_pc_unless_overridden() {
        let a = args(&machine("bios"));
        assert_eq!(&a[..2], ["-machine", "pc"]);
        assert!(a.join(" ").contains("-device isa-debug-exit,iobase=0xf4,iosize=0x04"));
        let mut m = machine("bios");
        m.qemu_args = vec!["-machine".into(), "pc,nvdimm=on".into()];
        let a = args(&m);
        assert_eq!(a.iter().filter(|x| *x == "-machine").count(), 1);
        assert_eq!(a.last().unwrap(), "pc,nvdimm=on");
    }

    #[test]
    fn several_cpus_run_on_parallel_threads() {
        let a = args(&machine("bios"));
        assert!(a.join(" ").contains("-accel tcg"), "{a:?}");
        assert!(!a.iter().any(|x| x == "-smp"), "{a:?}");
        let a = args(&machine("uefi-smp")).join(" ");
        assert!(a.contains("-accel tcg,thread=multi -smp 4"), "{a}");
        let mut m = machine("bios");
        m.cpus = 2;
        assert!(args(&m).join(" ").contains("-accel tcg,thread=multi -smp 2"));
        m.accel = Accel::Kvm;
        assert!(args(&m).join(" ").contains("-accel kvm -cpu host -smp 2"));
    }

    #[test]
    fn usb_profiles_attach_a_stick() {
        let a = args(&machine("usb-bios")).join(" ");
        assert!(a.contains("-device qemu-xhci"));
        assert!(a.contains("-device usb-storage,drive=stick,bootindex=0"));
        let a = args(&machine("uefi")).join(" ");
        assert!(a.contains(profile::OVMF_CODE));
        assert!(!a.contains("usb-storage"));
    }

    #[test]
    fn options_travel_through_fw_cfg_escaped() {
        let mut m = machine("bios");
        m.cmdline = "memmap=1,2 poweroff".into();
        let a = args(&m);
        assert!(a.contains(&"name=opt/tessera/cmdline,string=memmap=1,,2 poweroff".to_string()));
        assert!(!args(&machine("bios")).iter().any(|x| x.contains("cmdline")));
    }

    /// `Await` finds its pattern only after what the previous one
    /// matched, times from the last command, and a pattern that never
    /// comes stops the steps with a one-line reason.
    #[test]
    fn await_steps_wait_time_and_fail_clearly() {
        // A line like the one awaited, but from before the ready line.
        let seen = Arc::new(Mutex::new(String::from("[ 0.5] memory32 online\n== ready a\n")));
        let out = Mutex::new(StepLog::default());
        let writer = {
            let seen = Arc::clone(&seen);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(150));
                seen.lock().unwrap().push_str("[ 1.0] memory32 online\n");
            })
        };
        let t = Duration::from_secs(5);
        let steps = [
            Step::wait_for("ready", "== ready a", t),
            Step::wait_for("device_add -> online", "memory32 online", t),
            Step::wait_for("never", "memory33 online", Duration::from_millis(100)),
            Step::Type("memory".into()),
        ];
        drive(&steps, &seen, Path::new("/nonexistent"), None, &out);
        writer.join().unwrap();
        let log = out.into_inner().unwrap();
        let times: Vec<_> = log.waits.iter().map(|w| w.elapsed).collect();
        assert_eq!(times.len(), 3, "{log:?}");
        assert!(times[0].unwrap() < Duration::from_millis(100), "{times:?}");
        // Not the old line: the one written after the ready line.
        assert!(times[1].unwrap() >= Duration::from_millis(150), "{times:?}");
        assert_eq!(times[2], Err(Duration::from_millis(100)));
        assert_eq!(log.failed.as_deref(), Some("never: \"memory33 online\" not seen within 0.1 s"));
        assert!(log.waits[1].line().starts_with("device_add -> online: 0.1"), "{log:?}");
        // Typing needs serial input.
        let out = Mutex::new(StepLog::default());
        drive(&[Step::Type("memory".into())], &seen, Path::new("/nonexistent"), None, &out);
        let failed = out.into_inner().unwrap().failed.unwrap();
        assert_eq!(failed, "cannot type \"memory\": this boot has no serial input");
    }

    /// The arguments the harness gave its NVDIMMs before they were data.
    #[test]
    fn nvdimm_shapes_give_qemu_arguments() {
        let m = machine("bios").shape(&plan::NVDIMM);
        assert_eq!(
            m.device_args().join(" "),
            "-machine pc,nvdimm=on -object memory-backend-file,id=nv0,share=on,mem-path=target/qemu/t-nvdimm.img,size=256M -device nvdimm,id=nvdimm0,memdev=nv0"
        );
        let m = machine("bios").shape(&plan::BIG_NVDIMM);
        assert_eq!(
            m.device_args().join(" "),
            "-machine pc,nvdimm=on -object memory-backend-file,id=nv0,share=on,mem-path=target/qemu/t-nvdimm.img,size=64G -device nvdimm,id=nvdimm0,memdev=nv0,addr=0x4000000000"
        );
        assert_eq!(m.mem, "2G,slots=4,maxmem=512G");
        assert_eq!(args(&m).iter().filter(|x| *x == "-machine").count(), 1);
    }
}

//! Booting one image in QEMU: the serial console captured to a log file
//! under `target/` and echoed, a hard timeout, and the exit status.

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::profile::{self, Machine, Profile};
use crate::report::Ending;

pub const QEMU: &str = "qemu-system-x86_64";

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
}

fn ending(status: ExitStatus) -> Ending {
    match (status.code(), status.signal()) {
        (Some(c), _) => Ending::Code(c),
        (None, Some(s)) => Ending::Signal(s),
        (None, None) => Ending::Code(-1),
    }
}

fn prepare(profile: &Profile, m: &mut Machine, tag: &str) -> Result<PathBuf, String> {
    check_host(profile)?;
    let (log, vars) = paths(tag);
    std::fs::create_dir_all(log.parent().expect("has a parent"))
        .map_err(|e| format!("cannot create target/qemu: {e}"))?;
    if profile.firmware == boot::Firmware::Uefi {
        std::fs::copy(profile::OVMF_VARS, &vars).map_err(|e| {
            format!("cannot copy {} to {}: {e}", profile::OVMF_VARS, vars.display())
        })?;
        m.ovmf_vars = vars;
    }
    Ok(log)
}

fn wait(child: &mut std::process::Child, timeout: Option<Duration>) -> Result<Ending, String> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().map_err(|e| format!("waiting for QEMU: {e}"))? {
            return Ok(ending(status));
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

/// Collects QEMU's error output on a thread (so a full pipe never blocks it).
fn collect_stderr(mut stderr: std::process::ChildStderr) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    })
}

/// The kernel shell's prompt: the harness types a line after each one.
pub const PROMPT: &str = "tessera> ";

/// One step of a scripted boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Typed on serial (then Enter) once the next shell prompt appears.
    Type(String),
    /// Sent to QEMU's monitor once the next shell prompt appears, e.g.
    /// `screendump -f png FILE`; the next step waits for it to finish.
    Monitor(String),
    /// Typed on the PS/2 keyboard (QEMU's `sendkey`), then Enter, once the
    /// next shell prompt appears.
    Keys(String),
    /// While the command typed last runs: a space on the PS/2 keyboard each
    /// time `pattern` appears in its answer, until the next prompt.
    PressWhile(String),
}

impl Step {
    fn needs_monitor(&self) -> bool {
        !matches!(self, Step::Type(_))
    }
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

/// Boots with the serial port piped through the runner: all output goes to
/// the log file and, when `echo`, to stdout. The `input` steps run in
/// order, each after the next shell prompt appears; without input, stdin is
/// closed.
pub fn boot_captured(
    profile: &Profile,
    mut m: Machine,
    tag: &str,
    timeout: Duration,
    echo: bool,
    input: &[Step],
) -> Result<Boot, String> {
    let log_path = prepare(profile, &mut m, tag)?;
    let socket = log_path.with_extension("mon");
    if input.iter().any(Step::needs_monitor) {
        let _ = std::fs::remove_file(&socket);
        let arg = format!("unix:{},server=on,wait=off", socket.display());
        m.extra.extend(["-monitor".to_string(), arg]);
    }
    let mut args = vec!["-display".into(), "none".into(), "-serial".into(), "stdio".into()];
    args.extend(profile.args(&m));
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
    if let Some(mut stdin) = child.stdin.take() {
        let steps = input.to_vec();
        let seen = Arc::clone(&shared);
        std::thread::spawn(move || {
            let mut typed = 0;
            let send = |cmd: &str| match monitor(&socket, cmd) {
                // The monitor answers nothing but its echo on success.
                Ok(answer) => {
                    // What follows the monitor's echo of the command.
                    let said = answer.rsplit(cmd).next().unwrap_or("");
                    let said = said.replace("(qemu) ", "");
                    let said = said.trim();
                    if !said.is_empty() {
                        eprintln!("qemu monitor: {cmd}: {said}");
                    }
                }
                Err(e) => eprintln!("qemu: {e}"),
            };
            // The steps that start a command wait for the next prompt.
            let wait_prompt = |typed: usize| {
                while seen.lock().expect("log lock").matches(PROMPT).count() <= typed {
                    std::thread::sleep(Duration::from_millis(20));
                }
            };
            for step in &steps {
                match step {
                    Step::PressWhile(pattern) => {
                        let mut pressed = 0;
                        loop {
                            let (done, due) = {
                                let log = seen.lock().expect("log lock");
                                let mut answers = log.split(PROMPT).skip(typed);
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
                        send(cmd);
                    }
                    Step::Keys(line) => {
                        wait_prompt(typed);
                        typed += 1;
                        for c in line.chars() {
                            match qcode(c) {
                                Some(key) => send(&format!("sendkey {key}")),
                                None => eprintln!("qemu: no key for {c:?}"),
                            }
                        }
                        send("sendkey ret");
                    }
                    Step::Type(line) => {
                        wait_prompt(typed);
                        typed += 1;
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
        });
    }
    let err_reader = collect_stderr(stderr);
    let ending = wait(&mut child, Some(timeout))?;
    let _ = reader.join();
    let log = crate::report::strip_ansi(&shared.lock().expect("log lock"));
    let stderr = err_reader.join().unwrap_or_default();
    if echo && !log.is_empty() && !log.ends_with('\n') {
        println!();
    }
    Ok(Boot { ending, log, stderr, elapsed: start.elapsed() })
}

/// Boots with the serial port and QEMU's monitor on this terminal
/// (Ctrl-A X quits, Ctrl-A C switches to the monitor); QEMU itself writes the
/// serial log file.
pub fn boot_interactive(
    profile: &Profile,
    mut m: Machine,
    tag: &str,
    timeout: Option<Duration>,
    display: bool,
) -> Result<Boot, String> {
    let log_path = prepare(profile, &mut m, tag)?;
    let chardev =
        format!("stdio,id=con0,mux=on,logfile={}", profile::escape(&log_path.to_string_lossy()));
    let mut args: Vec<String> =
        vec!["-chardev".into(), chardev, "-serial".into(), "chardev:con0".into()];
    args.extend(["-mon".into(), "chardev=con0,mode=readline".into()]);
    if !display {
        args.extend(["-display".into(), "none".into()]);
    }
    args.extend(profile.args(&m));
    let start = Instant::now();
    let mut child = Command::new(QEMU)
        .args(&args)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {QEMU}: {e}"))?;
    let stderr = child.stderr.take().expect("piped");
    let err_reader = collect_stderr(stderr);
    let ending = wait(&mut child, timeout)?;
    let stderr = err_reader.join().unwrap_or_default();
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    Ok(Boot { ending, log, stderr, elapsed: start.elapsed() })
}

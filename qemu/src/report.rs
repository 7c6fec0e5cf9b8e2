//! Reading a boot's result: the exit status mapped to pass/fail with a
//! reason, and the test lines counted from the serial log.

use std::fmt;
use std::sync::Mutex;

use options::contract::{self, qemu_exit_status};

/// How QEMU ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// QEMU exited with this code.
    Code(i32),
    /// QEMU was killed by this signal.
    Signal(i32),
    /// The runner killed QEMU after this many seconds.
    Timeout(u64),
}

/// The verdict on one boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail(String),
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Pass => write!(f, "ok"),
            Verdict::Fail(why) => write!(f, "FAILED: {why}"),
        }
    }
}

/// QEMU's exit code when the kernel wrote its success code to
/// isa-debug-exit (33).
pub const EXIT_PASS: i32 = qemu_exit_status(contract::EXIT_SUCCESS);
/// ... and when it wrote its failure code (35).
pub const EXIT_FAIL: i32 = qemu_exit_status(contract::EXIT_FAILURE);

/// The first panic message in the log, without its timestamp.
pub fn panic_message(log: &str) -> Option<&str> {
    log.lines().find_map(|l| l.split_once("panic: ").map(|(_, m)| m.trim_end()))
}

/// Maps how QEMU ended to a verdict; `stderr` is QEMU's own error output.
pub fn verdict(ending: Ending, log: &str, stderr: &str) -> Verdict {
    let fail = |s: String| Verdict::Fail(s);
    match ending {
        Ending::Code(EXIT_PASS) => Verdict::Pass,
        Ending::Code(EXIT_FAIL) => match panic_message(log) {
            Some(m) => fail(format!("panic: {m}")),
            None => fail("kernel reported failure (exit code 35)".into()),
        },
        Ending::Code(0) => {
            fail("triple fault / reset (QEMU exited 0 without the exit device)".into())
        }
        Ending::Code(1) => {
            let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message");
            fail(format!("QEMU failed to start or crashed (exit 1): {}", last.trim()))
        }
        Ending::Code(c) => fail(format!("unexpected QEMU exit code {c}")),
        Ending::Signal(s) => fail(format!("QEMU killed by signal {s}")),
        Ending::Timeout(secs) => match log.lines().rev().find(|l| !l.trim().is_empty()) {
            Some(last) => {
                fail(format!("timeout after {secs} s; last serial line: {}", last.trim()))
            }
            None => fail(format!("timeout after {secs} s; no serial output")),
        },
    }
}

/// The number announced by the kernel's `running N test(s)` line.
pub fn announced(log: &str) -> Option<usize> {
    log.lines().find_map(|l| l.strip_prefix("running ")?.split(' ').next()?.parse().ok())
}

/// Removes terminal control sequences (ESC [ ... final byte, ESC c, ...)
/// that firmware writes to the serial console.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        if chars.next_if_eq(&'[').is_some() {
            // Parameter and intermediate bytes, then one final byte.
            while chars.next_if(|c| ('\x20'..='\x3f').contains(c)).is_some() {}
            chars.next();
        } else {
            chars.next();
        }
    }
    out
}

/// One `test <path> ... ok|FAILED` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestLine {
    pub name: String,
    pub ok: bool,
}

/// The test lines of a serial log, in order.
pub fn test_lines(log: &str) -> Vec<TestLine> {
    log.lines()
        .filter_map(|l| {
            let rest = l.trim_end().strip_prefix("test ")?;
            let (name, result) = rest.rsplit_once(" ... ")?;
            let ok = match result {
                "ok" => true,
                "FAILED" => false,
                _ => return None,
            };
            (!name.is_empty() && !name.contains(' ')).then(|| TestLine { name: name.into(), ok })
        })
        .collect()
}

/// Passed and failed counts for one boot of a test binary: the test lines,
/// plus one failure when the boot itself failed without a FAILED line
/// (timeout, triple fault, a panic outside any test).
pub fn count(lines: &[TestLine], verdict: &Verdict) -> (usize, usize) {
    let passed = lines.iter().filter(|t| t.ok).count();
    let mut failed = lines.len() - passed;
    if matches!(verdict, Verdict::Fail(_)) && failed == 0 {
        failed = 1;
    }
    (passed, failed)
}

/// The `test result: ok. N passed; M failed; ...` lines of `cargo test`.
pub fn cargo_test_counts(output: &str) -> (usize, usize) {
    let num = |s: &str, word: &str| -> usize {
        s.split(';')
            .find_map(|part| {
                part.trim().strip_suffix(word)?.trim().rsplit(' ').next()?.parse().ok()
            })
            .unwrap_or(0)
    };
    output
        .lines()
        .filter(|l| l.starts_with("test result: "))
        .fold((0, 0), |(p, f), l| (p + num(l, "passed"), f + num(l, "failed")))
}

/// What failed so far in this run, one line each, in order: `qemu test`
/// lists them again just above its totals, so the end of a long log
/// names them.
static FAILURES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The longest a remembered failure line gets.
const FAILURE_LINE_MAX: usize = 200;

/// Remembers one failure (a test's name, and why when known) for
/// [`failures`].
pub fn note_failure(what: String) {
    let mut line: String = what.lines().next().unwrap_or("").into();
    if line.len() > FAILURE_LINE_MAX {
        let cut = (0..=FAILURE_LINE_MAX).rev().find(|&i| line.is_char_boundary(i)).unwrap_or(0);
        line.truncate(cut);
        line.push_str("...");
    }
    FAILURES.lock().unwrap_or_else(|e| e.into_inner()).push(line);
}

/// `ok` or `FAILED` for a test line; on a failure `what` (the test's
/// name, and why when known) is remembered.
pub fn outcome(what: &str, ok: bool) -> &'static str {
    if ok {
        return "ok";
    }
    note_failure(what.into());
    "FAILED"
}

/// The failures remembered so far, in order.
pub fn failures() -> Vec<String> {
    FAILURES.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Remembers the failures of one boot of a kernel test binary: each
/// FAILED test line, or the boot's own verdict when no test line failed.
pub fn note_boot_failures(boot: &str, lines: &[TestLine], verdict: &Verdict) {
    let mut any = false;
    for t in lines.iter().filter(|t| !t.ok) {
        any = true;
        note_failure(format!("{boot}: {}", t.name));
    }
    if let (false, Verdict::Fail(why)) = (any, verdict) {
        note_failure(format!("{boot}: {why}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_map_to_verdicts() {
        assert_eq!(verdict(Ending::Code(33), "", ""), Verdict::Pass);
        let log = "[    0.1] hello\n[    0.2] panic: oh no (at kernel/src/x.rs:1:2)\n";
        assert_eq!(
            verdict(Ending::Code(35), log, ""),
            Verdict::Fail("panic: oh no (at kernel/src/x.rs:1:2)".into())
        );
        assert_eq!(
            verdict(Ending::Code(35), "", ""),
            Verdict::Fail("kernel reported failure (exit code 35)".into())
        );
        assert!(verdict(Ending::Code(0), "", "").to_string().contains("triple fault / reset"));
        assert_eq!(
            verdict(Ending::Code(1), "", "qemu: -drive x: Could not open 'x'\n\n"),
            Verdict::Fail(
                "QEMU failed to start or crashed (exit 1): qemu: -drive x: Could not open 'x'"
                    .into()
            )
        );
        assert_eq!(
            verdict(Ending::Code(7), "", "").to_string(),
            "FAILED: unexpected QEMU exit code 7"
        );
        assert_eq!(
            verdict(Ending::Signal(9), "", "").to_string(),
            "FAILED: QEMU killed by signal 9"
        );
        assert_eq!(
            verdict(Ending::Timeout(60), "", "").to_string(),
            "FAILED: timeout after 60 s; no serial output"
        );
        assert_eq!(
            verdict(Ending::Timeout(9), "running 2 tests\ntest a ... ok\n\n", "").to_string(),
            "FAILED: timeout after 9 s; last serial line: test a ... ok"
        );
    }

    #[test]
    fn test_lines_are_parsed_strictly() {
        let log = "running 3 tests\ntest a::b ... ok\ntest a::c ... FAILED\n[ 0.1] test x ... ok\ntest  ... ok\ntest d ... okay\ntest e::f ... ok\r\n";
        let lines = test_lines(log);
        assert_eq!(
            lines,
            vec![
                TestLine { name: "a::b".into(), ok: true },
                TestLine { name: "a::c".into(), ok: false },
                TestLine { name: "e::f".into(), ok: true },
            ]
        );
        assert_eq!(count(&lines, &Verdict::Fail("panic".into())), (2, 1));
    }

    #[test]
    fn announced_count_and_escapes() {
        assert_eq!(announced("x\nrunning 7 tests\n"), Some(7));
        assert_eq!(announced("running 1 test\n"), Some(1));
        assert_eq!(announced("nothing"), None);
        assert_eq!(strip_ansi("\x1b[2J\x1b[01;01H\x1b[=3hBdsDxe: x\x1bc!"), "BdsDxe: x!");
        assert_eq!(strip_ansi("plain [text]"), "plain [text]");
    }

    #[test]
    fn a_failed_boot_without_test_lines_counts_once() {
        let lines = test_lines("test a ... ok\n");
        assert_eq!(count(&lines, &Verdict::Fail("timeout after 60 s".into())), (1, 1));
        assert_eq!(count(&lines, &Verdict::Pass), (1, 0));
    }

    #[test]
    fn failures_are_remembered_with_their_boot() {
        assert_eq!(outcome("t::kept-ok", true), "ok");
        assert_eq!(outcome("t::first", false), "FAILED");
        let lines = test_lines("test a::b ... ok\ntest a::c ... FAILED\n");
        note_boot_failures("bios t-lines", &lines, &Verdict::Fail("panic: x".into()));
        note_boot_failures("bios t-hang", &[], &Verdict::Fail("timeout after 60 s".into()));
        note_boot_failures("bios t-fine", &lines[..1], &Verdict::Pass);
        note_failure(format!("t::long {}", "x".repeat(500)));
        let all = failures();
        let mine: Vec<&String> =
            all.iter().filter(|l| l.contains("t::") || l.contains(" t-")).collect();
        assert_eq!(
            mine[..3],
            ["t::first", "bios t-lines: a::c", "bios t-hang: timeout after 60 s"]
        );
        assert!(mine[3].starts_with("t::long xx") && mine[3].ends_with("..."));
        assert_eq!(mine[3].len(), FAILURE_LINE_MAX + 3);
        assert_eq!(mine.len(), 4, "{mine:?}");
    }

    #[test]
    fn cargo_summaries_are_summed() {
        let out = "test result: ok. 5 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s\n\
                   test result: FAILED. 2 passed; 1 failed; 0 ignored\nnoise 3 passed\n";
        assert_eq!(cargo_test_counts(out), (7, 1));
    }
}

//! The real kernel's checks on every profile: it boots to the end of
//! initialization and powers off ([`boot_check`]), and its shell answers
//! the golden script `qemu/golden-shell.txt` ([`shell_check`]): every
//! command, good and bad, typed over serial or the PS/2 keyboard, each
//! answer compared with what it must contain, and the console and the
//! mosaic read back from the framebuffer.

use std::path::Path;
use std::time::Duration;

use options::contract::{INIT_COMPLETE, SHELL_PROMPT, STEP_PROMPT};

use crate::golden_json;
use crate::machine::{self, Machine, Step};
use crate::mosaic::{self, Expect};
use crate::profile::Profile;
use crate::report::{self, Ending, Verdict};
use crate::screen;

/// The golden shell script (its format is described at its top).
const SCRIPT: &str = include_str!("../golden-shell.txt");

/// One command of the script and what its answer must contain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command<'a> {
    /// As written after `> `; the test's name.
    pub text: &'a str,
    pub want: Vec<&'a str>,
    /// `@ mosaic` lines: the screen after the answer, read back.
    pub mosaic: Vec<Expect>,
}

impl Command<'_> {
    /// How the command is typed, and what follows it.
    fn steps(&self) -> Vec<Step> {
        let mut steps = vec![match self.text.strip_prefix("ps2: ") {
            Some(keys) => Step::Keys(keys.into()),
            None => Step::Type(self.text.into()),
        }];
        if self.text.ends_with("--step") {
            steps.push(Step::PressWhile(STEP_PROMPT.into()));
        }
        steps
    }
}

/// Reads a script: `> COMMAND` lines, each followed by the lines its answer
/// must contain (or, starting with `/`, the checks of its JSON, which
/// must parse) and `@ mosaic N STATES` lines; `#` comments and empty
/// lines are skipped.
pub fn parse(script: &str) -> Result<Vec<Command<'_>>, String> {
    let mut commands: Vec<Command> = Vec::new();
    for (n, line) in script.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(text) = line.strip_prefix("> ") {
            if text.trim().is_empty() {
                return Err(format!("line {}: a command is missing after '> '", n + 1));
            }
            commands.push(Command { text, want: Vec::new(), mosaic: Vec::new() });
        } else if let Some(args) = line.strip_prefix("@ mosaic ") {
            let c = commands.last_mut().ok_or(format!("line {}: @ before any command", n + 1))?;
            c.mosaic.push(Expect::parse(args).map_err(|e| format!("line {}: {e}", n + 1))?);
        } else {
            let Some(c) = commands.last_mut() else {
                return Err(format!("line {}: {line:?} comes before any command", n + 1));
            };
            if golden_json::is_check(line) {
                golden_json::Check::parse(line).map_err(|e| format!("line {}: {e}", n + 1))?;
            }
            c.want.push(line);
        }
    }
    Ok(commands)
}

/// Boots the real kernel without options and drives its shell with the
/// golden script, then checks the console on the framebuffer.
pub fn shell_check(
    kernel: &Path,
    p: &'static Profile,
    timeout: Duration,
) -> Result<(usize, usize), String> {
    let script = parse(SCRIPT)?;
    let tag = format!("{}-shell", p.name);
    let m = Machine::new(p, kernel, &tag).timeout(timeout);
    println!("== {} shell: typing {} commands", p.name, script.len());
    // After a command with `@ mosaic` lines, a screendump of its own.
    let dump = |i: usize| format!("target/qemu/{tag}-{i}.ppm");
    let mut input: Vec<Step> = Vec::new();
    for (i, c) in script.iter().enumerate() {
        input.extend(c.steps());
        if !c.mosaic.is_empty() {
            let _ = std::fs::remove_file(dump(i));
            input.push(Step::Monitor(format!("screendump {}", dump(i))));
        }
    }
    // After `help` has answered, read the framebuffer back.
    let ppm = format!("target/qemu/{tag}.ppm");
    let _ = std::fs::remove_file(&ppm);
    input.insert(1, Step::Monitor(format!("screendump {ppm}")));
    let b = machine::boot_captured(&m, false, &input)?;
    let v = report::verdict(b.ending, &b.log, &b.stderr);
    // Answer i lies between prompt i+1 and the next one.
    let answers: Vec<&str> = b.log.split(SHELL_PROMPT).skip(1).collect();
    let (mut passed, mut failed) = (0, 0);
    for (i, c) in script.iter().enumerate() {
        let answer = answers.get(i).copied().unwrap_or("");
        let (checks, texts): (Vec<&str>, Vec<&str>) =
            c.want.iter().partition(|w| golden_json::is_check(w));
        let missing: Vec<&str> = texts.into_iter().filter(|w| !answer.contains(*w)).collect();
        let mut problems: Vec<String> = missing.iter().map(|m| format!("missing {m:?}")).collect();
        if !checks.is_empty() {
            // The same listing's text answer, when it came just before.
            let text = i
                .checked_sub(1)
                .filter(|&j| script[j].text == golden_json::text_form(c.text))
                .and_then(|j| answers.get(j).copied());
            problems.extend(golden_json::verify(c.text, &checks, answer, text));
        }
        // The last command powers off: its boot must have passed.
        let ok = problems.is_empty() && (i + 1 < script.len() || v == Verdict::Pass);
        let name = format!("shell::{}::{:?}", p.name, c.text);
        println!("test {name} ... {}", report::outcome(&name, ok));
        if !ok {
            let why = if problems.is_empty() { format!("boot: {v}") } else { problems.join("; ") };
            println!("  {why} in answer:\n{answer}");
            failed += 1;
        } else {
            passed += 1;
        }
        // The mosaic's tiles after this answer, where the last status line
        // says they are.
        for e in &c.mosaic {
            let status = mosaic::last_status(&answers[..(i + 1).min(answers.len())]).unwrap_or("");
            let seen = read_screen(&dump(i)).and_then(|img| e.check(&img, status));
            let name = format!("shell::{}::mosaic {} after {:?}", p.name, e.section, c.text);
            println!("test {name} ... {}", report::outcome(&name, seen.is_ok()));
            match seen {
                Ok(()) => passed += 1,
                Err(why) => {
                    println!("  {why} (screendump {})", dump(i));
                    failed += 1;
                }
            }
        }
    }
    // The prompt and help's answer are drawn on the screen in the console font.
    let screen = read_screen(&ppm);
    let drawn = screen.map(|img| {
        // (help's last line: the mosaic above leaves the log part of the screen)
        [SHELL_PROMPT.trim_end(), "power the machine off"]
            .iter()
            .all(|t| screen::find_text(&img, t).is_some())
    });
    let ok = drawn == Ok(true);
    println!(
        "test shell::{}::screen ... {}",
        p.name,
        report::outcome(&format!("shell::{}::screen", p.name), ok)
    );
    if ok {
        passed += 1;
    } else {
        println!("  framebuffer read-back: {drawn:?} (screendump {ppm})");
        failed += 1;
    }
    println!(
        "== {} shell: {passed} passed, {failed} failed ({:.1} s) {v}",
        p.name,
        b.elapsed.as_secs_f64()
    );
    Ok((passed, failed))
}

/// A screendump, parsed.
fn read_screen(ppm: &str) -> Result<screen::Image, String> {
    std::fs::read(ppm).map_err(|e| format!("{ppm}: {e}")).and_then(|b| screen::parse_ppm(&b))
}

/// Boots the real kernel with `poweroff` and checks it got to the end.
/// USB sticks carry the option inside the image, as on a real PC, and boot
/// without QEMU's exit device, so the kernel must switch off through ACPI
/// S5 (QEMU exits 0); the other profiles hand the option over through
/// fw_cfg and exit through the device.
pub fn boot_check(
    kernel: &Path,
    p: &'static Profile,
    timeout: Duration,
) -> Result<(usize, usize), String> {
    const S5: &str = "ACPI: Preparing to enter system sleep state S5";
    let mut m = Machine::new(p, kernel, &format!("{}-boot", p.name)).timeout(timeout);
    if p.usb {
        m.image_cmdline = "poweroff".into();
        m.no_exit_device = true;
    } else {
        m.cmdline = "poweroff".into();
    }
    let via = if p.usb { "built into the image, no exit device" } else { "through fw_cfg" };
    println!("== {} boot: booting the kernel with poweroff {via}", p.name);
    let b = machine::boot_captured(&m, true, &[])?;
    let mut v = match (p.usb, b.ending) {
        (true, Ending::Code(0)) if b.log.contains(S5) => Verdict::Pass,
        (true, Ending::Code(0)) => Verdict::Fail(format!("QEMU exited 0 without '{S5}'")),
        (true, e) => Verdict::Fail(format!(
            "expected an ACPI power-off (QEMU exit 0), got {e:?}: {}",
            report::verdict(e, &b.log, &b.stderr)
        )),
        (false, e) => report::verdict(e, &b.log, &b.stderr),
    };
    for want in ["Command line: poweroff", INIT_COMPLETE] {
        if v == Verdict::Pass && !b.log.contains(want) {
            v = Verdict::Fail(format!("exited without '{want}' in the log"));
        }
    }
    let ok = v == Verdict::Pass;
    println!(
        "test boot::{} ... {}",
        p.name,
        report::outcome(&format!("boot::{}: {v}", p.name), ok)
    );
    println!("== {} boot: {v} ({:.1} s)", p.name, b.elapsed.as_secs_f64());
    Ok(if ok { (1, 0) } else { (0, 1) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_golden_script_parses_and_ends_in_poweroff() {
        let script = parse(SCRIPT).unwrap();
        assert_eq!(script.len(), 68);
        // Every listing answers in JSON somewhere, checked, and right after
        // its text answer (so the two are compared).
        for name in ["sections", "pmem", "memory", "zoneinfo", "iomem", "nfit", "cpus"] {
            let i = script
                .iter()
                .position(|c| c.text.starts_with(name) && c.text.ends_with("--json"))
                .unwrap_or_else(|| panic!("no {name} --json"));
            assert!(script[i].want.iter().all(|w| golden_json::is_check(w)), "{name}");
            assert_eq!(script[i - 1].text, golden_json::text_form(script[i].text));
        }
        assert!(parse("> x --json\n/a = nope").unwrap_err().starts_with("line 2: "));
        assert_eq!(script[0].text, "help");
        assert_eq!(script[0].want, ["sections [N|all]", "pmem add REGION [--step]", "poweroff"]);
        assert_eq!(script.last().unwrap().text, "poweroff");
        assert!(script.iter().all(|c| !c.want.is_empty()), "every answer is checked");
        // Leading spaces of an expected line count.
        let iomem = script.iter().find(|c| c.text == "iomem").unwrap();
        assert_eq!(iomem.want[1], "  72000000-73ffffff : namespace0.0");
        let step = script.iter().find(|c| c.text.ends_with("--step")).unwrap();
        assert_eq!(
            step.steps(),
            [Step::Keys("pmem add region0 --step".into()), Step::PressWhile(STEP_PROMPT.into())]
        );
        assert_eq!(parse("oops\n> help").unwrap_err(), "line 1: \"oops\" comes before any command");
        // The mosaic is read back after the remove and after the add.
        let checked: Vec<(&str, char)> = script
            .iter()
            .flat_map(|c| c.mosaic.iter().map(move |e| (c.text, e.tiles[16].letter())))
            .collect();
        assert_eq!(
            checked,
            [
                ("mosaic on", 'P'),
                ("pmem remove region0", 'p'),
                ("ps2: pmem add region0 --step", 'P')
            ]
        );
        assert!(parse("@ mosaic 14 RR").is_err() && parse("> help\n@ mosaic 14 RR").is_err());
        assert!(parse("> \n").is_err());
    }
}

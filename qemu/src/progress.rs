//! `[k/N]` before each boot of `qemu test`, with an estimate of the time
//! left: each step's duration is kept in `target/qemu/test-times.txt`
//! (one `SECONDS NAME` line per step) and the next run sums the durations
//! of the steps still to come; a step never timed counts as the mean of
//! those that were.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

pub const TIMES: &str = "target/qemu/test-times.txt";

pub struct Progress {
    names: Vec<String>,
    next: usize,
    /// Durations of the last run, by step name.
    before: HashMap<String, f64>,
    /// Durations of this run.
    now: Vec<(String, f64)>,
    started: Option<Instant>,
}

/// Reads `SECONDS NAME` lines; anything else is skipped.
pub fn parse_times(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter_map(|l| {
            let (secs, name) = l.split_once(' ')?;
            Some((name.to_string(), secs.parse::<f64>().ok().filter(|s| s.is_finite())?))
        })
        .collect()
}

/// `1 h 02 min`, `14 min`, `40 s`.
pub fn human(secs: f64) -> String {
    let s = secs.round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", (s + 30) / 60),
        _ => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
    }
}

impl Progress {
    /// The steps of this run, in order; the last run's times from `times`.
    pub fn new(names: Vec<String>, times: &Path) -> Self {
        let before = std::fs::read_to_string(times).map(|t| parse_times(&t)).unwrap_or_default();
        Progress { names, next: 0, before, now: Vec::new(), started: None }
    }

    /// Seconds the steps from `from` on should take, if anything is known.
    pub fn left(&self, from: usize) -> Option<f64> {
        let known: Vec<f64> = self.now.iter().map(|(_, s)| *s).collect();
        let mean = if known.is_empty() {
            let b: Vec<f64> = self.before.values().copied().collect();
            (!b.is_empty()).then(|| b.iter().sum::<f64>() / b.len() as f64)?
        } else {
            known.iter().sum::<f64>() / known.len() as f64
        };
        Some(
            self.names[from.min(self.names.len())..]
                .iter()
                .map(|n| self.before.get(n).copied().unwrap_or(mean))
                .sum(),
        )
    }

    /// Starts step `name` (which must be the next one of the plan) and
    /// prints `[k/N] name (about T left)`; ends the step before it.
    pub fn step(&mut self, name: &str) {
        self.finish();
        let k = self.names.iter().skip(self.next).position(|n| n == name).map(|i| self.next + i);
        let Some(k) = k else {
            println!("[?/{}] {name}", self.names.len());
            return;
        };
        self.next = k + 1;
        let left = self.left(k).map_or(String::new(), |s| format!(" (about {} left)", human(s)));
        println!("[{}/{}] {name}{left}", k + 1, self.names.len());
        self.started = Some(Instant::now());
    }

    /// Ends the step running, if any, and records its time.
    pub fn finish(&mut self) {
        let name = self.next.checked_sub(1).and_then(|k| self.names.get(k));
        if let (Some(t), Some(name)) = (self.started.take(), name) {
            self.now.push((name.clone(), t.elapsed().as_secs_f64()));
        }
    }

    /// Writes this run's times over the last run's (steps not run this
    /// time keep their old time).
    pub fn save(&mut self, path: &Path) -> Result<(), String> {
        self.finish();
        let mut all = self.before.clone();
        all.extend(self.now.iter().cloned());
        let mut lines: Vec<String> = all.iter().map(|(n, s)| format!("{s:.1} {n}")).collect();
        lines.sort_by(|a, b| a.split_once(' ').map(|x| x.1).cmp(&b.split_once(' ').map(|x| x.1)));
        std::fs::write(path, lines.join("\n") + "\n")
            .map_err(|e| format!("{}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(names: &[&str], before: &str) -> Progress {
        Progress {
            names: names.iter().map(|s| s.to_string()).collect(),
            next: 0,
            before: parse_times(before),
            now: Vec::new(),
            started: None,
        }
    }

    #[test]
    fn the_estimate_sums_the_last_run_and_fills_in_with_the_mean() {
        let p = progress(&["a", "b", "c"], "10.0 a\n20.0 b\njunk\n");
        assert_eq!(p.left(0), Some(45.0));
        assert_eq!(p.left(2), Some(15.0));
        assert_eq!(p.left(3), Some(0.0));
        assert_eq!(progress(&["a"], "").left(0), None);
        let mut p = progress(&["x", "y"], "");
        p.now.push(("x".into(), 4.0));
        assert_eq!(p.left(1), Some(4.0));
    }

    #[test]
    fn steps_are_numbered_in_plan_order() {
        let mut p = progress(&["a", "b", "c"], "");
        p.step("a");
        assert_eq!(p.next, 1);
        p.step("c");
        assert_eq!(p.next, 3);
        assert_eq!(p.now.len(), 1);
        p.finish();
        assert_eq!(p.now.iter().map(|x| x.0.as_str()).collect::<Vec<_>>(), ["a", "c"]);
    }

    #[test]
    fn durations_read_humanly() {
        assert_eq!(human(40.2), "40 s");
        assert_eq!(human(14.0 * 60.0 + 10.0), "14 min");
        assert_eq!(human(3720.0), "1 h 02 min");
    }
}

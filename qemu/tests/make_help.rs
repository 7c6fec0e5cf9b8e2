//! `make help` prints the first line of the comment above each target and
//! variable of the Makefile: every target named in `.PHONY` and every
//! `VAR ?=` must have one, or `make help` would leave it out.

fn makefile() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Makefile")).unwrap()
}

/// `NAME ?= value` (`make help`'s awk: `^[A-Z_]+ *\?=`).
fn variable(l: &str) -> Option<(&str, &str)> {
    l.split_once("?=").filter(|(v, _)| {
        let v = v.trim_end();
        !v.is_empty() && v.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
    })
}

/// The names `make help` finds: rules (`name:`) and variables (`NAME ?=`)
/// right below a `# ` comment line.
fn documented(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let name = if let Some((v, _)) = variable(l) {
            v.trim()
        } else if let Some((t, _)) = l.split_once(':').filter(|_| !l.starts_with(['\t', '#', '.']))
        {
            t.trim()
        } else {
            continue;
        };
        if i > 0 && lines[i - 1].starts_with("# ") {
            out.push(name.to_string());
        }
    }
    out
}

#[test]
fn every_target_and_variable_has_a_line_in_make_help() {
    let text = makefile();
    let documented = documented(&text);
    let phony = text.lines().find_map(|l| l.strip_prefix(".PHONY:")).expect(".PHONY line");
    let variables = text.lines().filter_map(|l| variable(l).map(|(v, _)| v.trim()));
    let mut missing: Vec<&str> = phony
        .split_whitespace()
        .chain(variables)
        .filter(|n| !documented.iter().any(|d| d == n))
        .collect();
    missing.sort();
    assert!(missing.is_empty(), "no comment line above {missing:?} in the Makefile");
    assert!(documented.iter().any(|d| d == "help") && documented.iter().any(|d| d == "ACCEL"));
}

#[test]
fn a_target_without_a_comment_is_found() {
    let text = ".PHONY: a b\n# A.\na:\n\nb: a\n# V.\nV ?= 1\nW ?=\n";
    assert_eq!(documented(text), ["a", "V"]);
}

//! The kernel's layering, checked from its source (DESIGN.md §4a):
//!
//! ```text
//! arch ← boot facts, console ← mm ← acpi ← drivers ← shell, mosaic, testing ← init, panic
//! ```
//!
//! Every `crate::` path in `kernel/src` (imports, qualified calls, macro
//! bodies' `$crate::`; comments excluded) is an edge from its file to the
//! file that defines the module or macro it names. An edge may not point to
//! a higher layer, and the files may not import each other in a circle.
//! `make check` runs this test.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layer of a file (path relative to `kernel/src`), bottom first.
fn layer(file: &str) -> Option<(usize, &'static str)> {
    let l = match file {
        f if f.starts_with("arch/") => (0, "arch"),
        "boot.rs" => (1, "boot facts"),
        f if f.starts_with("console/") => (1, "console"),
        f if f.starts_with("mm/") => (2, "mm"),
        "acpi.rs" => (3, "acpi"),
        f if f.starts_with("drivers/") => (4, "drivers"),
        "smp.rs" => (4, "smp"),
        "shell.rs" | "mosaic.rs" | "testing.rs" | "stress.rs" => (5, "shell and tests"),
        "init.rs" | "panic.rs" => (6, "init"),
        _ => return None,
    };
    Some(l)
}

/// `kernel/src`, or another tree named by `TESSERA_KERNEL_SRC` (to show
/// the check failing on an older tree).
fn src_dir() -> PathBuf {
    std::env::var_os("TESSERA_KERNEL_SRC")
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernel/src"), PathBuf::from)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("kernel/src is readable") {
        let p = e.expect("a directory entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a file: `arch/x86_64/idt.rs` → `arch::x86_64::idt`.
fn module_of(rel: &str) -> Vec<String> {
    let rel = rel.trim_end_matches(".rs");
    let mut parts: Vec<String> = rel.split('/').map(String::from).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        parts.pop();
    }
    parts
}

/// Source without comments (line comments and doc comments), so that doc
/// links do not count as imports.
fn code_of(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            // A `//` inside a string literal is rare here; lines that
            // start a comment are what matters.
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every path that follows `crate::` / `$crate::` / `super::`, expanded
/// over one level of `{a, b::c}` groups, as segment lists (`super`
/// resolved against `module`).
fn paths(code: &str, module: &[String], is_mod_file: bool) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes: Vec<char> = code.chars().collect();
    let text: String = bytes.iter().collect();
    for (prefix, base) in [
        ("crate::", Vec::new()),
        ("super::", {
            // `super` of a file module is its parent; of a `mod.rs`, the
            // parent of the directory's module.
            let mut m = module.to_vec();
            if !is_mod_file || !m.is_empty() {
                m.pop();
            }
            m
        }),
    ] {
        let mut from = 0;
        while let Some(i) = text[from..].find(prefix) {
            let at = from + i;
            from = at + prefix.len();
            let before = text[..at].chars().next_back();
            if before.is_some_and(|c| is_ident(c) || c == ':') {
                continue;
            }
            let rest = &text[from..];
            let mut segs = base.clone();
            let mut j = 0;
            let chars: Vec<char> = rest.chars().collect();
            loop {
                let start = j;
                while j < chars.len() && is_ident(chars[j]) {
                    j += 1;
                }
                if j > start {
                    segs.push(chars[start..j].iter().collect());
                }
                let group_here = j == 0 && chars.first() == Some(&'{');
                if group_here || (j + 1 < chars.len() && chars[j] == ':' && chars[j + 1] == ':') {
                    if !group_here {
                        j += 2;
                    }
                    if chars.get(j) == Some(&'{') {
                        let close = chars[j..]
                            .iter()
                            .position(|&c| c == '}')
                            .map_or(chars.len(), |p| j + p);
                        let group: String = chars[j + 1..close].iter().collect();
                        for item in group.split(',') {
                            let mut p = segs.clone();
                            p.extend(
                                item.split("::")
                                    .map(|s| s.split_whitespace().next().unwrap_or("").to_string())
                                    .filter(|s| !s.is_empty() && s != "self"),
                            );
                            out.push(p);
                        }
                        segs.clear();
                        break;
                    }
                    continue;
                }
                break;
            }
            if !segs.is_empty() {
                out.push(segs);
            }
        }
    }
    out
}

struct Tree {
    /// Module path → file (relative to kernel/src).
    modules: BTreeMap<Vec<String>, String>,
    /// `#[macro_export]` macro name → defining file.
    macros: BTreeMap<String, String>,
}

impl Tree {
    /// The file a path names: the longest module prefix, where `arch::X`
    /// also finds `arch::x86_64::X` (arch re-exports it), and a root-level
    /// name may be an exported macro.
    fn resolve(&self, path: &[String]) -> Option<String> {
        if let [name, ..] = path
            && let Some(f) = self.macros.get(name)
            && !self.modules.contains_key(&vec![name.clone()])
        {
            return Some(f.clone());
        }
        for n in (1..=path.len()).rev() {
            let p = &path[..n];
            if let Some(f) = self.modules.get(p) {
                return Some(f.clone());
            }
            if p.first().is_some_and(|s| s == "arch") && p.len() >= 2 {
                let mut q = vec!["arch".to_string(), "x86_64".to_string()];
                q.extend_from_slice(&p[1..]);
                if let Some(f) = self.modules.get(&q) {
                    return Some(f.clone());
                }
            }
        }
        None
    }
}

/// The file-level import graph of `kernel/src` (the crate roots left out).
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let root = src_dir();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let rel = |p: &Path| p.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/");
    let mut tree = Tree { modules: BTreeMap::new(), macros: BTreeMap::new() };
    let mut texts = Vec::new();
    for f in &files {
        let r = rel(f);
        let text = std::fs::read_to_string(f).expect("readable source");
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            if let Some(rest) = l.trim().strip_prefix("macro_rules! ")
                && i > 0
                && lines[i - 1].contains("#[macro_export]")
            {
                let name: String = rest.chars().take_while(|&c| is_ident(c)).collect();
                tree.macros.insert(name, r.clone());
            }
        }
        tree.modules.insert(module_of(&r), r.clone());
        texts.push((r, text));
    }
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (r, text) in &texts {
        if r == "lib.rs" || r == "main.rs" {
            continue;
        }
        let module = module_of(r);
        let is_mod = r.ends_with("mod.rs");
        let edges = g.entry(r.clone()).or_default();
        for p in paths(&code_of(text), &module, is_mod) {
            if let Some(to) = tree.resolve(&p)
                && &to != r
                && to != "lib.rs"
                && !(is_mod && to.starts_with(r.trim_end_matches("mod.rs")))
            {
                edges.insert(to);
            }
        }
    }
    g
}

#[test]
fn no_import_points_to_a_higher_layer() {
    let g = graph();
    assert!(g.len() > 20, "found only {} files under kernel/src", g.len());
    let mut bad = Vec::new();
    for (from, tos) in &g {
        let Some((lf, nf)) = layer(from) else {
            bad.push(format!("{from}: in no layer (add it to qemu/tests/layers.rs)"));
            continue;
        };
        for to in tos {
            match layer(to) {
                Some((lt, nt)) if lt > lf => bad.push(format!("{from} ({nf}) imports {to} ({nt})")),
                _ => {}
            }
        }
    }
    assert!(bad.is_empty(), "upward dependencies:\n  {}", bad.join("\n  "));
}

#[test]
fn no_import_cycle() {
    let g = graph();
    // Depth-first search; a back edge closes a cycle.
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
        cycles: &mut Vec<String>,
    ) {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            match state.get(m.as_str()).copied().unwrap_or(0) {
                0 => visit(m, g, state, stack, cycles),
                1 => {
                    let i = stack.iter().position(|s| s == m).unwrap();
                    cycles.push(format!("{} -> {m}", stack[i..].join(" -> ")));
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
    }
    let mut state = BTreeMap::new();
    let mut cycles = Vec::new();
    for n in g.keys() {
        if state.get(n.as_str()).copied().unwrap_or(0) == 0 {
            visit(n, &g, &mut state, &mut Vec::new(), &mut cycles);
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n  {}", cycles.join("\n  "));
}

/// Prints the graph by layer (`cargo test -p qemu --test layers -- --nocapture`).
#[test]
fn print_the_graph() {
    for (from, tos) in graph() {
        let tos: Vec<_> = tos.into_iter().collect();
        println!("{from:24} -> {}", tos.join(", "));
    }
}

#[test]
fn init_is_imported_by_nothing() {
    let g = graph();
    let users: Vec<_> =
        g.iter().filter(|(_, tos)| tos.contains("init.rs")).map(|(f, _)| f).collect();
    assert!(users.is_empty(), "init.rs imported by {users:?}");
}

/// The checker itself finds what it must: an upward edge, a cycle, a
/// grouped import, a macro path, an `arch` re-export, `super::`.
#[test]
fn the_parser_finds_every_kind_of_reference() {
    let m = |s: &str| s.split("::").map(String::from).collect::<Vec<_>>();
    let code = "use crate::{console, mm::heap};\nuse super::gdt::X;\nlet a = $crate::init::init(b);\n// crate::shell::run()\nfoo::crate::x();\n";
    let found = paths(&code_of(code), &m("arch::x86_64::idt"), false);
    assert!(found.contains(&m("console")), "{found:?}");
    assert!(found.contains(&m("mm::heap")), "{found:?}");
    assert!(found.contains(&m("arch::x86_64::gdt::X")), "{found:?}");
    assert!(found.contains(&m("init::init")), "{found:?}");
    assert!(
        !found.iter().any(|p| p.first().is_some_and(|s| s == "shell")),
        "comments are not imports"
    );
    assert!(!found.iter().any(|p| p.first().is_some_and(|s| s == "x")), "foo::crate is not crate");
    let tree = Tree {
        modules: [("arch::x86_64::paging", "arch/x86_64/paging.rs"), ("console", "console/mod.rs")]
            .into_iter()
            .map(|(k, v)| (m(k), v.to_string()))
            .collect(),
        macros: [("println".to_string(), "console/mod.rs".to_string())].into_iter().collect(),
    };
    assert_eq!(tree.resolve(&m("arch::paging::map")).as_deref(), Some("arch/x86_64/paging.rs"));
    assert_eq!(tree.resolve(&m("println")).as_deref(), Some("console/mod.rs"));
    assert_eq!(layer("arch/x86_64/idt.rs").map(|l| l.0), Some(0));
    assert!(layer("drivers/pmem.rs").unwrap().0 > layer("mm/sparse.rs").unwrap().0);
}

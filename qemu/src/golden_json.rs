//! The golden script's `--json` answers: each must be one line that parses
//! as JSON, hold what the script's check lines say (`POINTER = JSON`,
//! `POINTER ~ JSON`, `POINTER len N`, see `qemu/golden-shell.txt`), and,
//! when the command just before it is the same listing without `--json`,
//! say what that text answer says ([`agrees`]): the same boot's two
//! formatters of one set of data.

use serde_json::Value;

/// What a check asks of the value at its pointer.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Equal to this value.
    Eq(Value),
    /// Contains this value ([`contains`]).
    Contains(Value),
    /// An array or object of this many elements.
    Len(usize),
}

/// One check line: a JSON pointer (RFC 6901) and what its value must be.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub pointer: String,
    pub op: Op,
}

/// Whether a script line is a JSON check (a text check never starts with
/// `/`).
pub fn is_check(line: &str) -> bool {
    line.starts_with('/')
}

impl Check {
    /// Reads `POINTER = JSON`, `POINTER ~ JSON` or `POINTER len N`.
    pub fn parse(line: &str) -> Result<Self, String> {
        let (pointer, rest) =
            line.split_once(' ').ok_or_else(|| format!("{line:?}: expected POINTER OP VALUE"))?;
        let (op, value) =
            rest.split_once(' ').ok_or_else(|| format!("{line:?}: expected POINTER OP VALUE"))?;
        let json = |v: &str| {
            serde_json::from_str(v).map_err(|e| format!("{line:?}: {v:?} is not JSON: {e}"))
        };
        let op = match op {
            "=" => Op::Eq(json(value)?),
            "~" => Op::Contains(json(value)?),
            "len" => Op::Len(value.parse().map_err(|_| format!("{line:?}: len takes a count"))?),
            _ => return Err(format!("{line:?}: the operator is =, ~ or len, not {op:?}")),
        };
        Ok(Self { pointer: pointer.into(), op })
    }

    /// Whether `doc` passes; the reason when it does not.
    pub fn eval(&self, doc: &Value) -> Result<(), String> {
        let p = &self.pointer;
        let got = doc.pointer(p).ok_or_else(|| format!("{p}: not in the answer"))?;
        match &self.op {
            Op::Eq(want) if got == want => Ok(()),
            Op::Eq(want) => Err(format!("{p}: {got} is not {want}")),
            Op::Contains(want) if contains(got, want) => Ok(()),
            Op::Contains(want) => Err(format!("{p}: {got} does not contain {want}")),
            Op::Len(n) => {
                let len = got.as_array().map(Vec::len).or(got.as_object().map(|o| o.len()));
                match len {
                    Some(l) if l == *n => Ok(()),
                    Some(l) => Err(format!("{p}: {l} elements, not {n}")),
                    None => Err(format!("{p}: {got} has no length")),
                }
            }
        }
    }
}

/// `got` contains `want`: an object has each of `want`'s keys with a value
/// that contains `want`'s; an array has, for each element of `want`, an
/// element that contains it; anything else is equal.
pub fn contains(got: &Value, want: &Value) -> bool {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => {
            w.iter().all(|(k, wv)| g.get(k).is_some_and(|gv| contains(gv, wv)))
        }
        (Value::Array(g), Value::Array(w)) => {
            w.iter().all(|wv| g.iter().any(|gv| contains(gv, wv)))
        }
        _ => got == want,
    }
}

/// The lines a command printed: its answer without the echo of the
/// command line (the first line), carriage returns dropped.
pub fn output_lines(answer: &str) -> Vec<&str> {
    answer.lines().skip(1).map(|l| l.trim_end_matches('\r')).filter(|l| !l.is_empty()).collect()
}

/// The one line of JSON a `--json` command printed.
pub fn json_line(answer: &str) -> Result<Value, String> {
    match output_lines(answer)[..] {
        [line] => serde_json::from_str(line).map_err(|e| format!("not JSON ({e}): {line}")),
        ref lines => Err(format!("{} lines, not one line of JSON", lines.len())),
    }
}

/// The command a `--json` command is the JSON form of: the same words
/// without `--json`.
pub fn text_form(command: &str) -> String {
    command.split_whitespace().filter(|&w| w != "--json").collect::<Vec<_>>().join(" ")
}

/// Every problem with a JSON answer: it is not one line of JSON, a check
/// fails, or (with `text`, the answer of the same listing without
/// `--json` just before) it disagrees with the text.
pub fn verify(command: &str, checks: &[&str], answer: &str, text: Option<&str>) -> Vec<String> {
    let doc = match json_line(answer) {
        Ok(doc) => doc,
        Err(e) => return vec![e],
    };
    let mut problems: Vec<String> = checks
        .iter()
        .map(|c| Check::parse(c).and_then(|c| c.eval(&doc)))
        .filter_map(Result::err)
        .collect();
    if let Some(text) = text
        && let Err(e) = agrees(command, &doc, &output_lines(text))
    {
        problems.push(format!("disagrees with the text answer: {e}"));
    }
    problems
}

fn str_of<'a>(v: &'a Value, what: &str) -> Result<&'a str, String> {
    v.as_str().ok_or_else(|| format!("{what}: {v} is not a string"))
}

fn u64_of(v: &Value, what: &str) -> Result<u64, String> {
    v.as_u64().ok_or_else(|| format!("{what}: {v} is not a number"))
}

fn array_of<'a>(v: &'a Value, what: &str) -> Result<&'a Vec<Value>, String> {
    v.as_array().ok_or_else(|| format!("{what}: {v} is not an array"))
}

/// `want` equals `got`, line by line.
fn same_lines(got: &[&str], want: &[String]) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{} text lines, the JSON makes {}: {want:?}", got.len(), want.len()));
    }
    match got.iter().zip(want).find(|(g, w)| *g != *w) {
        Some((g, w)) => Err(format!("text {g:?}, JSON {w:?}")),
        None => Ok(()),
    }
}

/// Whether the JSON of listing `command` says what its text `lines` say:
/// the text's lines are rebuilt from the JSON and compared, but for
/// counters that may move between the two commands (free pages, IPIs,
/// TLB flushes) and what the CPUs are doing.
pub fn agrees(command: &str, doc: &Value, lines: &[&str]) -> Result<(), String> {
    let name = command.split_whitespace().next().unwrap_or_default();
    match name {
        "iomem" => {
            fn flatten(v: &Value, depth: usize, out: &mut Vec<String>) -> Result<(), String> {
                for r in array_of(v, "iomem")? {
                    let (s, e) = (u64_of(&r["start"], "start")?, u64_of(&r["end"], "end")?);
                    let name = str_of(&r["name"], "name")?;
                    out.push(format!("{:indent$}{s:08x}-{e:08x} : {name}", "", indent = depth * 2));
                    flatten(&r["children"], depth + 1, out)?;
                }
                Ok(())
            }
            let mut want = Vec::new();
            flatten(&doc["iomem"], 0, &mut want)?;
            same_lines(lines, &want)
        }
        "memory" => {
            let mut want = vec![format!(
                "block size {} MiB",
                u64_of(&doc["block_size_bytes"], "block size")? >> 20
            )];
            for b in array_of(&doc["memory"], "memory")? {
                let t = &b["tessera"];
                want.push(format!(
                    "memory{} {:<7} [mem {}] {}{} phys_index {} memmap_on_memory {} dimm {}",
                    str_of(&b["block"], "block")?,
                    str_of(&b["state"], "state")?,
                    str_of(&b["range"], "range")?,
                    str_of(&t["valid_zones"], "valid_zones")?,
                    if t["boot"] == true { " (boot)" } else { "" },
                    str_of(&t["phys_index"], "phys_index")?,
                    u8::from(t["memmap_on_memory"] == true),
                    t["dimm"].as_str().unwrap_or("-"),
                ));
            }
            same_lines(lines, &want)
        }
        "sections" => {
            let sections = array_of(&doc["sections"], "sections")?;
            let mut want = Vec::new();
            for s in sections {
                let flags: Vec<&str> =
                    array_of(&s["flags"], "flags")?.iter().filter_map(Value::as_str).collect();
                let flags = if flags.is_empty() { "none".into() } else { flags.join("|") };
                want.push(format!(
                    "section {}: flags={flags} subsection_map={}",
                    u64_of(&s["section"], "section")?,
                    str_of(&s["subsection_map"], "subsection_map")?
                ));
                want.push(format!("  {}", str_of(&s["subsections"], "subsections")?));
            }
            if sections.is_empty() {
                want.push("every present section is full (sections all: list them)".into());
            }
            let (legend, text) = lines.split_last().ok_or("no text")?;
            for (c, meaning) in doc["legend"].as_object().ok_or("no legend")? {
                let entry = format!("{c} {}", str_of(meaning, "legend")?);
                if !legend.contains(&entry) {
                    return Err(format!("the legend {legend:?} has no {entry:?}"));
                }
            }
            same_lines(text, &want)
        }
        "zoneinfo" => {
            // Free pages may move between the two commands.
            let mut want = Vec::new();
            for node in array_of(&doc["nodes"], "nodes")? {
                for z in array_of(&node["zones"], "zones")? {
                    want.push(format!("Node 0, zone {:>8}", str_of(&z["zone"], "zone")?));
                    for f in ["spanned", "present", "managed"] {
                        want.push(format!("        {f:<8} {}", u64_of(&z[f], f)?));
                    }
                    if let Some(pfn) = z["start_pfn"].as_u64() {
                        want.push(format!("  start_pfn:           {pfn}"));
                    }
                }
            }
            let got: Vec<&str> =
                lines.iter().copied().filter(|l| !l.starts_with("  pages free")).collect();
            same_lines(&got, &want)
        }
        "nfit" => {
            let structures = array_of(&doc["nfit"], "nfit")?;
            if structures.len() != lines.len() {
                return Err(format!("{} structures, {} lines", structures.len(), lines.len()));
            }
            for (s, line) in structures.iter().zip(lines) {
                if s["structure"] != "system_address" {
                    continue;
                }
                let base = u64_of(&s["address"], "address")?;
                let want = format!(
                    "nfit: spa {}: flags 0x{:x} proximity {} type {} [mem 0x{base:016x}-0x{:016x}] \
                     attributes 0x{:x}",
                    u64_of(&s["range_index"], "range_index")?,
                    u64_of(&s["flags"], "flags")?,
                    u64_of(&s["proximity_domain"], "proximity_domain")?,
                    s["range_type"]
                        .as_str()
                        .unwrap_or_else(|| s["range_guid"].as_str().unwrap_or("")),
                    base + u64_of(&s["length"], "length")? - 1,
                    u64_of(&s["memory_mapping"], "memory_mapping")?,
                );
                if *line != want {
                    return Err(format!("text {line:?}, JSON {want:?}"));
                }
            }
            Ok(())
        }
        "cpus" => {
            let cpus = array_of(&doc["cpus"], "cpus")?;
            let rows = lines.get(1..=cpus.len()).ok_or("fewer text lines than CPUs")?;
            for (c, row) in cpus.iter().zip(rows) {
                let (s, e) =
                    (str_of(&c["stack"]["start"], "stack")?, str_of(&c["stack"]["end"], "stack")?);
                let head = format!(
                    "{:>3}  {:#7x}  {:#7x}  {:<7}  ",
                    u64_of(&c["cpu"], "cpu")?,
                    u64_of(&c["apicid"], "apicid")?,
                    u64_of(&c["acpi_id"], "acpi_id")?,
                    if c["online"] == true { "online" } else { "offline" },
                );
                if !row.starts_with(&head) || !row.ends_with(&format!("[{s}-{e}]")) {
                    return Err(format!("text {row:?}, JSON {c}"));
                }
            }
            let total = format!(
                "{} of {} CPUs online ({});",
                u64_of(&doc["online"], "online")?,
                u64_of(&doc["possible"], "possible")?,
                str_of(&doc["apic_mode"], "apic_mode")?
            );
            match lines.get(cpus.len() + 1) {
                Some(l) if l.starts_with(&total) => Ok(()),
                l => Err(format!("text {l:?}, JSON {total:?}")),
            }
        }
        "pmem" => {
            let regions = array_of(&doc["regions"], "regions")?;
            let heads: Vec<&&str> = lines.iter().filter(|l| l.starts_with("region")).collect();
            if heads.len() != regions.len() {
                return Err(format!(
                    "{} regions in the text, {} in the JSON",
                    heads.len(),
                    regions.len()
                ));
            }
            for (r, head) in regions.iter().zip(heads) {
                let t = &r["tessera"];
                let (start, end) = (u64_of(&t["start"], "start")?, u64_of(&t["end"], "end")?);
                let want = format!(
                    "{}: [mem 0x{start:016x}-0x{end:016x}] {} MiB",
                    str_of(&r["dev"], "dev")?,
                    u64_of(&r["size"], "size")? >> 20
                );
                let ns = &r["namespaces"][0];
                let mode = str_of(&ns["mode"], "mode")?;
                let state = format!(" {mode} {}", str_of(&t["state"], "state")?);
                if !head.starts_with(&want) || !head.contains(&state) {
                    return Err(format!("text {head:?}, JSON {want:?} ...{state:?}"));
                }
                let size = u64_of(&ns["size"], "size")?;
                let ns_head = format!("  {}: mode {mode}", str_of(&ns["dev"], "dev")?);
                let data = &ns["tessera"]["data"];
                let data = format!(
                    "  data       [mem 0x{:016x}-0x{:016x}] ({size} bytes)",
                    u64_of(&data["start"], "data")?,
                    u64_of(&data["end"], "data")?
                );
                for want in [&ns_head, &format!(", size {size}"), &data] {
                    if !lines.iter().any(|l| l.contains(want.as_str())) {
                        return Err(format!("no text line has {want:?}"));
                    }
                }
            }
            Ok(())
        }
        _ => Err(format!("no text form to compare for {command:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_parse_and_evaluate() {
        let doc: Value = serde_json::from_str(
            r#"{"a":[{"n":"x","c":[{"n":"y","k":1}]},{"n":"z"}],"b":7,"s":"q"}"#,
        )
        .unwrap();
        let ok = |l: &str| Check::parse(l).unwrap().eval(&doc);
        assert_eq!(ok("/b = 7"), Ok(()));
        assert_eq!(ok("/s = \"q\""), Ok(()));
        assert_eq!(ok("/a len 2"), Ok(()));
        assert_eq!(ok("/a/0/c/0 len 2"), Ok(()));
        assert_eq!(ok(r#"/a ~ [{"n":"z"},{"c":[{"n":"y"}]}]"#), Ok(()));
        assert_eq!(ok("/b = 8"), Err("/b: 7 is not 8".into()));
        assert_eq!(
            ok(r#"/a ~ [{"n":"w"}]"#).unwrap_err(),
            r#"/a: [{"c":[{"k":1,"n":"y"}],"n":"x"},{"n":"z"}] does not contain [{"n":"w"}]"#
        );
        assert_eq!(ok("/c = 1"), Err("/c: not in the answer".into()));
        assert_eq!(ok("/b len 1"), Err("/b: 7 has no length".into()));
        assert!(Check::parse("/b").is_err());
        assert!(Check::parse("/b == 1").is_err());
        assert!(Check::parse("/b = nope").is_err());
        assert!(Check::parse("/b len x").is_err());
        assert!(is_check("/a = 1") && !is_check("a /b"));
    }

    #[test]
    fn answers_are_one_line_of_json() {
        assert_eq!(json_line("cpus --json\r\n{\"a\":1}\r\n"), Ok(serde_json::json!({"a": 1})));
        assert!(json_line("cpus --json\n{\"a\":1}\n{}\n").unwrap_err().starts_with("2 lines"));
        assert!(
            json_line("cpus --json\ncpus: takes no arguments\n")
                .unwrap_err()
                .starts_with("not JSON")
        );
        assert_eq!(text_form("sections  14 --json"), "sections 14");
        assert_eq!(text_form("sections --json all"), "sections all");
    }

    /// A JSON answer is compared with the text answer the same boot gave,
    /// and a changed field is found.
    #[test]
    fn json_and_text_agree_or_not() {
        let text = "iomem\n00000000-00000fff : Reserved\n72000000-73ffffff : Persistent Memory (legacy)\n  72000000-73ffffff : namespace0.0\n";
        let json = r#"iomem --json
{"iomem":[{"start":0,"end":4095,"name":"Reserved","children":[]},{"start":1912602624,"end":1946157055,"name":"Persistent Memory (legacy)","children":[{"start":1912602624,"end":1946157055,"name":"namespace0.0","children":[]}]}]}"#;
        assert_eq!(verify("iomem --json", &[], json, Some(text)), Vec::<String>::new());
        let off =
            json.replace("1946157055,\"name\":\"namespace", "1946157054,\"name\":\"namespace");
        let p = verify("iomem --json", &["/iomem len 2"], &off, Some(text));
        assert_eq!(p.len(), 1);
        assert!(p[0].contains("73fffffe"), "{p:?}");
        let p = verify("iomem --json", &["/iomem len 3"], json, None);
        assert_eq!(p, ["/iomem: 2 elements, not 3"]);
    }
}

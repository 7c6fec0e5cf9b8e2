//! The physical resource tree behind `/proc/iomem`, modelled on Linux's
//! `kernel/resource.c`. The top level comes from the E820 map the way
//! `e820__reserve_resources` builds it; drivers then insert ranges below
//! (a pmem region, its namespaces), and the tree prints like `/proc/iomem`.
//!
//! Invariants kept by every operation: each resource has `start <= end`
//! (inclusive, as in Linux), children lie inside their parent, and siblings
//! are disjoint and sorted by start.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::e820::{E820Type, Entry};

/// One node of the tree: `[start, end]` (inclusive) with a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub start: u64,
    /// Inclusive end, as Linux's `struct resource`.
    pub end: u64,
    pub name: String,
    /// Sorted, disjoint ranges inside this one.
    pub children: Vec<Resource>,
}

impl Resource {
    /// A resource without children.
    pub fn new(start: u64, end: u64, name: &str) -> Self {
        Self { start, end, name: String::from(name), children: Vec::new() }
    }

    fn is(&self, start: u64, end: u64, name: &str) -> bool {
        self.start == start && self.end == end && self.name == name
    }

    fn contains(&self, start: u64, end: u64) -> bool {
        self.start <= start && end <= self.end
    }

    /// `{"start":..,"end":..,"name":..,"children":[..]}`: what its line
    /// in [`IoMem::lines`] shows, `end` inclusive, the nesting as an array.
    pub fn write_json(&self, o: &mut json::Object<'_>) {
        o.field("start", self.start).field("end", self.end).field("name", &self.name);
        o.array("children", |a| {
            for c in &self.children {
                a.object(|o| c.write_json(o));
            }
        });
    }
}

/// Why an [`IoMem`] operation failed. The tree is unchanged in every case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IoMemError {
    /// The new range partially overlaps an existing one.
    Conflict {
        start: u64,
        end: u64,
        name: String,
        with_start: u64,
        with_end: u64,
        with_name: String,
    },
    /// No resource with this range and name exists.
    NotFound { start: u64, end: u64, name: String },
    /// `start > end`.
    Invalid { start: u64, end: u64 },
}

impl IoMemError {
    /// `[start, end]` named `name` conflicts with `with`.
    fn conflict(start: u64, end: u64, name: &str, with: &Resource) -> Self {
        Self::Conflict {
            start,
            end,
            name: String::from(name),
            with_start: with.start,
            with_end: with.end,
            with_name: with.name.clone(),
        }
    }
}

impl fmt::Display for IoMemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Conflict { start, end, name, with_start, with_end, with_name } => write!(
                f,
                "resource [mem {start:#010x}-{end:#010x}] \"{name}\" conflicts with \
                 \"{with_name}\" [mem {with_start:#010x}-{with_end:#010x}]"
            ),
            Self::NotFound { start, end, name } => {
                write!(f, "resource [mem {start:#010x}-{end:#010x}] \"{name}\" not found")
            }
            Self::Invalid { start, end } => {
                write!(f, "invalid resource [mem {start:#010x}-{end:#010x}]")
            }
        }
    }
}

/// Linux's `e820_type_to_string`. Linux prints `Unknown E820 type` for
/// unknown types; Tessera reports them as `Reserved`.
pub fn e820_name(ty: E820Type) -> &'static str {
    match ty {
        E820Type::RAM => "System RAM",
        E820Type::ACPI => "ACPI Tables",
        E820Type::NVS => "ACPI Non-volatile Storage",
        E820Type::UNUSABLE => "Unusable memory",
        E820Type::PRAM => "Persistent Memory (legacy)",
        E820Type::PMEM => "Persistent Memory",
        E820Type::SOFT_RESERVED => "Soft Reserved",
        _ => "Reserved",
    }
}

/// Whether Linux marks the resource `IORESOURCE_BUSY`: everything below
/// 1 MiB and every E820 range but reserved, soft-reserved and persistent
/// memory (`do_mark_busy`), and what drivers request (namespaces, hot-added
/// System RAM). Requests go down into resources that are not busy.
fn is_busy(r: &Resource) -> bool {
    let open = ["Reserved", "Soft Reserved", "Persistent Memory", "Persistent Memory (legacy)"];
    r.start < 1 << 20 || !open.contains(&r.name.as_str())
}

/// The root of the tree (Linux's `iomem_resource`, which spans all of the
/// address space and is not printed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IoMem {
    children: Vec<Resource>,
}

impl IoMem {
    /// An empty tree.
    pub const fn new() -> Self {
        Self { children: Vec::new() }
    }

    /// The top-level resources, sorted by start.
    pub fn children(&self) -> &[Resource] {
        &self.children
    }

    /// The top level from an E820 map, as `e820__reserve_resources` does:
    /// one resource per non-empty entry, named by [`e820_name`]. Entries
    /// that conflict with earlier ones are skipped (Linux ignores the
    /// `insert_resource` failure); nested ones nest.
    pub fn from_e820(map: &[Entry]) -> Self {
        let mut iomem = Self::new();
        for e in map.iter().filter(|e| e.end > e.start) {
            let _ = iomem.insert(e.start, e.end - 1, e820_name(e.ty));
        }
        iomem
    }

    /// Linux's `insert_resource`: a range inside an existing resource
    /// becomes a child of the deepest one containing it (an equal range
    /// counts as inside, as with `request_region`); a range spanning
    /// existing siblings entirely becomes their parent. A partial overlap
    /// is a [`IoMemError::Conflict`] naming the first resource it crosses.
    pub fn insert(&mut self, start: u64, end: u64, name: &str) -> Result<(), IoMemError> {
        if start > end {
            return Err(IoMemError::Invalid { start, end });
        }
        let mut level = &mut self.children;
        loop {
            // The siblings overlapping [start, end] are level[lo..hi].
            let lo = level.partition_point(|r| r.end < start);
            let hi = level.partition_point(|r| r.start <= end);
            if hi == lo + 1 && level[lo].contains(start, end) {
                level = &mut level[lo].children;
                continue;
            }
            if let Some(r) = level[lo..hi].iter().find(|r| !(start <= r.start && r.end <= end)) {
                return Err(IoMemError::conflict(start, end, name, r));
            }
            let mut new = Resource::new(start, end, name);
            new.children = level.drain(lo..hi).collect();
            level.insert(lo, new);
            return Ok(());
        }
    }

    /// Linux's `remove_resource`: removes the resource with exactly this
    /// range and name; its children move up to its parent in its place.
    pub fn remove(&mut self, start: u64, end: u64, name: &str) -> Result<(), IoMemError> {
        let mut level = &mut self.children;
        loop {
            // Siblings are disjoint: at most one contains the range.
            let Some(i) = level.iter().position(|r| r.contains(start, end)) else {
                return Err(IoMemError::NotFound { start, end, name: String::from(name) });
            };
            if level[i].is(start, end, name) {
                let old = level.remove(i);
                level.splice(i..i, old.children);
                return Ok(());
            }
            level = &mut level[i].children;
        }
    }

    /// The resource `__request_region` would fail on for `[start, end]`
    /// (inclusive), or `None` if the request would succeed. As in Linux,
    /// the request goes down into a resource that is not busy when it
    /// overlaps one, and fails on a busy one, on one it only partly
    /// overlaps, or on one it would have to contain.
    pub fn request_conflict(&self, start: u64, end: u64) -> Option<&Resource> {
        let mut parent: Option<&Resource> = None;
        let mut level = &self.children;
        loop {
            if let Some(p) = parent.filter(|p| !p.contains(start, end)) {
                return Some(p);
            }
            // `__request_resource`: the first child ending at or after start.
            let c = level.iter().find(|r| r.end >= start).filter(|r| r.start <= end)?;
            if is_busy(c) {
                return Some(c);
            }
            (parent, level) = (Some(c), &c.children);
        }
    }

    /// `__request_region`: inserts `[start, end]` (inclusive) as a busy
    /// resource, where [`Self::request_conflict`] allows it.
    pub fn request_region(&mut self, start: u64, end: u64, name: &str) -> Result<(), IoMemError> {
        if start > end {
            return Err(IoMemError::Invalid { start, end });
        }
        if let Some(r) = self.request_conflict(start, end) {
            return Err(IoMemError::conflict(start, end, name, r));
        }
        self.insert(start, end, name)
    }

    /// `release_mem_region_adjustable`: takes `[start, end]` (inclusive)
    /// out of the busy "System RAM" resource that contains it, trimming it
    /// or splitting it in two; the whole resource goes when the range is
    /// all of it. Returns whether such a resource was found (Linux backs
    /// off silently otherwise).
    pub fn release_adjustable(&mut self, start: u64, end: u64) -> bool {
        let mut level = &mut self.children;
        loop {
            let Some(i) = level.iter().position(|r| r.contains(start, end)) else {
                return false;
            };
            let r = &level[i];
            if r.name != "System RAM" {
                return false;
            }
            if !is_busy(r) {
                level = &mut level[i].children;
                continue;
            }
            let (rs, re) = (r.start, r.end);
            if r.children.iter().any(|c| c.start <= end && start <= c.end) {
                // `__adjust_resource` would leave a child outside.
                return false;
            }
            let mut keep = Vec::new();
            if rs < start {
                keep.push(Resource::new(rs, start - 1, &r.name));
            }
            if end < re {
                keep.push(Resource::new(end + 1, re, &r.name));
            }
            let old = level.remove(i);
            for (k, mut piece) in keep.into_iter().enumerate() {
                piece.children = old
                    .children
                    .iter()
                    .filter(|c| piece.contains(c.start, c.end))
                    .cloned()
                    .collect();
                level.insert(i + k, piece);
            }
            return true;
        }
    }

    /// The resource with exactly this range and name, at any depth.
    pub fn find(&self, start: u64, end: u64, name: &str) -> Option<&Resource> {
        self.iter().map(|(_, r)| r).find(|r| r.is(start, end, name))
    }

    /// Every resource with its depth (0 for the top level), in printing
    /// order: depth first, siblings by start.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &Resource)> {
        let mut stack = alloc::vec![self.children.iter()];
        core::iter::from_fn(move || {
            loop {
                let depth = stack.len().checked_sub(1)?;
                match stack[depth].next() {
                    Some(r) => {
                        stack.push(r.children.iter());
                        return Some((depth, r));
                    }
                    None => {
                        stack.pop();
                    }
                }
            }
        })
    }

    /// The lines of `/proc/iomem`: `%08x-%08x : name`, lowercase hex,
    /// indented two spaces per level.
    pub fn lines(&self) -> impl Iterator<Item = String> + '_ {
        self.iter().map(|(depth, r)| {
            alloc::format!(
                "{:indent$}{:08x}-{:08x} : {}",
                "",
                r.start,
                r.end,
                r.name,
                indent = depth * 2
            )
        })
    }
}

impl IoMem {
    /// `iomem --json`: `{"iomem":[..]}`, the top-level resources, each
    /// with its children ([`Resource::write_json`]).
    pub fn json(&self) -> String {
        json::object(|o| {
            o.array("iomem", |a| {
                for r in &self.children {
                    a.object(|o| r.write_json(o));
                }
            });
        })
    }
}

impl fmt::Display for IoMem {
    /// The [`IoMem::lines`] joined by newlines (no trailing newline).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, line) in self.lines().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            f.write_str(&line)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn sample() -> IoMem {
        IoMem::from_e820(&[
            Entry::new(0, 0x1000, E820Type::RESERVED),
            Entry::new(0x1000, 0x9fc00, E820Type::RAM),
            Entry::new(0x3a00_0000, 0x3c00_0000, E820Type::PRAM),
            Entry::new(0x1_0000_0000, 0x1_1000_0000, E820Type::PMEM),
        ])
    }

    #[test]
    fn format_pads_to_eight_digits_and_indents() {
        let mut io = sample();
        io.insert(0x3a00_0000, 0x3bff_ffff, "namespace0.0").unwrap();
        let want = "00000000-00000fff : Reserved\n\
                    00001000-0009fbff : System RAM\n\
                    3a000000-3bffffff : Persistent Memory (legacy)\n  \
                    3a000000-3bffffff : namespace0.0\n\
                    100000000-10fffffff : Persistent Memory";
        assert_eq!(io.to_string(), want);
        assert_eq!(io.lines().count(), 5);
    }

    /// The JSON is the same tree as the text: flattened depth first, each
    /// resource gives back its line.
    #[test]
    fn json_is_the_tree_of_the_lines() {
        fn flatten(v: &serde_json::Value, depth: usize, out: &mut Vec<String>) {
            for r in v.as_array().unwrap() {
                let (start, end) = (r["start"].as_u64().unwrap(), r["end"].as_u64().unwrap());
                let name = r["name"].as_str().unwrap();
                out.push(alloc::format!(
                    "{:indent$}{start:08x}-{end:08x} : {name}",
                    "",
                    indent = depth * 2
                ));
                flatten(&r["children"], depth + 1, out);
            }
        }
        let mut io = sample();
        io.insert(0x3a00_0000, 0x3bff_ffff, "namespace0.0").unwrap();
        io.insert(0x3a00_0000, 0x3a00_0fff, "a \"quoted\" name").unwrap();
        let v: serde_json::Value = serde_json::from_str(&io.json()).unwrap();
        let mut lines = Vec::new();
        flatten(&v["iomem"], 0, &mut lines);
        assert_eq!(lines, io.lines().collect::<Vec<_>>());
        assert_eq!(v["iomem"][2]["children"][0]["children"][0]["end"], 0x3a00_0fff);
        assert_eq!(IoMem::new().json(), r#"{"iomem":[]}"#);
    }

    #[test]
    fn request_region_follows_busy_and_partial_overlap() {
        let mut io = sample();
        // Boot RAM is busy: any overlap fails on it.
        let c = io.request_conflict(0x9f000, 0xa0fff).unwrap();
        assert_eq!((c.start, c.name.as_str()), (0x1000, "System RAM"));
        // Persistent memory is not busy: a request inside goes below it; one
        // that sticks out fails on it (Linux: EBUSY, add_memory: EEXIST).
        assert_eq!(io.request_conflict(0x3a00_0000, 0x3aff_ffff), None);
        let c = io.request_conflict(0x3a00_0000, 0x3fff_ffff).unwrap();
        assert_eq!(c.name, "Persistent Memory (legacy)");
        io.request_region(0x3a00_0000, 0x3bff_ffff, "namespace0.0").unwrap();
        let c = io.request_conflict(0x3b00_0000, 0x3bff_ffff).unwrap();
        assert_eq!(c.name, "namespace0.0", "a driver's claim is busy");
        // Free space: inserted; then it is busy itself.
        let before = io.clone();
        io.request_region(0x4000_0000, 0x47ff_ffff, "System RAM").unwrap();
        assert!(io.request_region(0x4000_0000, 0x4fff_ffff, "System RAM").is_err());
        assert_eq!(io.children().len(), before.children().len() + 1);
        // A request may not swallow an existing resource.
        let c = io.request_conflict(0x3800_0000, 0x3fff_ffff).unwrap();
        assert_eq!(c.start, 0x3a00_0000);
        assert!(matches!(io.request_region(5, 4, "x"), Err(IoMemError::Invalid { .. })));
    }

    #[test]
    fn release_adjustable_trims_splits_and_removes_system_ram() {
        let mut io = IoMem::from_e820(&[
            Entry::new(0x10_0000, 0xc000_0000, E820Type::RAM),
            Entry::new(0xc000_0000, 0xd000_0000, E820Type::RESERVED),
        ]);
        io.request_region(0x1_0000_0000, 0x1_07ff_ffff, "System RAM").unwrap();
        // The middle of boot RAM: split in two.
        assert!(io.release_adjustable(0x5000_0000, 0x57ff_ffff));
        // Its end: trimmed.
        assert!(io.release_adjustable(0xb800_0000, 0xbfff_ffff));
        // A hot-added resource: gone whole.
        assert!(io.release_adjustable(0x1_0000_0000, 0x1_07ff_ffff));
        // Not System RAM, or not inside one resource: nothing happens.
        assert!(!io.release_adjustable(0xc000_0000, 0xc7ff_ffff));
        assert!(!io.release_adjustable(0x4fff_0000, 0x5800_ffff));
        let want = "00100000-4fffffff : System RAM\n\
                    58000000-b7ffffff : System RAM\n\
                    c0000000-cfffffff : Reserved";
        assert_eq!(io.to_string(), want);
        // Released space can be requested again, as its own resource.
        io.request_region(0x5000_0000, 0x57ff_ffff, "System RAM").unwrap();
        assert_eq!(io.children()[1].start, 0x5000_0000);
    }

    #[test]
    fn from_e820_names_every_type() {
        let types = [
            (E820Type::RAM, "System RAM"),
            (E820Type::RESERVED, "Reserved"),
            (E820Type::ACPI, "ACPI Tables"),
            (E820Type::NVS, "ACPI Non-volatile Storage"),
            (E820Type::UNUSABLE, "Unusable memory"),
            (E820Type::PMEM, "Persistent Memory"),
            (E820Type::PRAM, "Persistent Memory (legacy)"),
            (E820Type::SOFT_RESERVED, "Soft Reserved"),
            (E820Type(99), "Reserved"),
        ];
        let map: Vec<Entry> = (0..types.len() as u64)
            .map(|i| Entry::new(i * 0x1000, (i + 1) * 0x1000, types[i as usize].0))
            .collect();
        let io = IoMem::from_e820(&map);
        assert_eq!(io.children().len(), types.len());
        for (i, (r, (_, name))) in io.children().iter().zip(types).enumerate() {
            let i = i as u64;
            assert_eq!((r.start, r.end, r.name.as_str()), (i * 0x1000, i * 0x1000 + 0xfff, name));
        }
    }

    #[test]
    fn nested_insert_goes_deepest() {
        let mut io = sample();
        io.insert(0x1_0000_0000, 0x1_07ff_ffff, "region0").unwrap();
        io.insert(0x1_0100_0000, 0x1_01ff_ffff, "namespace0.0").unwrap();
        let pmem = &io.children()[3];
        assert_eq!(pmem.children.len(), 1);
        assert_eq!(pmem.children[0].name, "region0");
        assert_eq!(pmem.children[0].children[0].name, "namespace0.0");
        assert!(io.find(0x1_0100_0000, 0x1_01ff_ffff, "namespace0.0").is_some());
        assert!(io.find(0x1_0100_0000, 0x1_01ff_ffff, "other").is_none());
    }

    #[test]
    fn spanning_resource_becomes_parent() {
        let mut io = IoMem::new();
        io.insert(0x2000, 0x2fff, "b").unwrap();
        io.insert(0x1000, 0x1fff, "a").unwrap();
        io.insert(0x8000, 0x8fff, "c").unwrap();
        io.insert(0x0, 0x3fff, "bridge").unwrap();
        let want = "00000000-00003fff : bridge\n  00001000-00001fff : a\n  \
                    00002000-00002fff : b\n00008000-00008fff : c";
        assert_eq!(io.to_string(), want);
    }

    #[test]
    fn conflict_is_reported_and_tree_unchanged() {
        let mut io = sample();
        let before = io.clone();
        let err = io.insert(0x9f000, 0x3a00_0fff, "bad").unwrap_err();
        assert_eq!(
            err.to_string(),
            "resource [mem 0x0009f000-0x3a000fff] \"bad\" conflicts with \"System RAM\" \
             [mem 0x00001000-0x0009fbff]"
        );
        assert_eq!(io, before);
        assert_eq!(io.insert(2, 1, "x"), Err(IoMemError::Invalid { start: 2, end: 1 }));
        assert_eq!(io, before);
    }

    #[test]
    fn remove_reattaches_children() {
        let mut io = sample();
        io.insert(0x3a00_0000, 0x3aff_ffff, "region0").unwrap();
        io.insert(0x3a00_0000, 0x3a0f_ffff, "ns0").unwrap();
        io.insert(0x3a10_0000, 0x3a1f_ffff, "ns1").unwrap();
        io.remove(0x3a00_0000, 0x3aff_ffff, "region0").unwrap();
        let names: Vec<&str> = io.children()[2].children.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["ns0", "ns1"]);
        assert!(matches!(
            io.remove(0x3a00_0000, 0x3aff_ffff, "region0"),
            Err(IoMemError::NotFound { .. })
        ));
        io.remove(0, 0xfff, "Reserved").unwrap();
        assert_eq!(io.children()[0].name, "System RAM");
    }

    #[test]
    fn output_is_sorted_regardless_of_order() {
        let mut a = IoMem::new();
        let mut b = IoMem::new();
        let ranges = [(0x5000, 0x5fff), (0x1000, 0x1fff), (0x9000, 0x9fff), (0x1100, 0x11ff)];
        for &(s, e) in &ranges {
            a.insert(s, e, "r").unwrap();
        }
        for &(s, e) in ranges.iter().rev() {
            b.insert(s, e, "r").unwrap();
        }
        assert_eq!(a, b);
        let starts: Vec<u64> = a.iter().map(|(_, r)| r.start).collect();
        assert_eq!(starts, [0x1000, 0x1100, 0x5000, 0x9000]);
    }

    fn check_level(rs: &[Resource], lo: u64, hi: u64) {
        for (i, r) in rs.iter().enumerate() {
            assert!(lo <= r.start && r.start <= r.end && r.end <= hi, "{r:?} outside parent");
            if i > 0 {
                assert!(rs[i - 1].end < r.start, "siblings unsorted or overlapping");
            }
            check_level(&r.children, r.start, r.end);
        }
    }

    #[test]
    fn random_inserts_keep_tree_well_formed() {
        let mut rng = rng::Rng::new(0x2545_f491_4f6c_dd1d);
        let mut rand = move || rng.next_u64();
        let mut io = IoMem::new();
        let (mut inserted, mut conflicts) = (Vec::new(), 0);
        for i in 0..2000 {
            // Sizes from 1 to 16 KiB on a 64 KiB space: nesting, spanning and conflicts.
            let start = rand() % 0x1_0000;
            let end = start + rand() % (1 << (rand() % 15));
            let name = alloc::format!("r{i}");
            let before = io.clone();
            match io.insert(start, end, &name) {
                Ok(()) => inserted.push((start, end, name)),
                Err(IoMemError::Conflict { .. }) => {
                    assert_eq!(io, before);
                    conflicts += 1;
                }
                Err(e) => panic!("unexpected {e}"),
            }
            check_level(io.children(), 0, u64::MAX);
            if i % 7 == 6 && !inserted.is_empty() {
                let (s, e, n) = inserted.swap_remove(rand() as usize % inserted.len());
                io.remove(s, e, &n).unwrap();
                check_level(io.children(), 0, u64::MAX);
            }
        }
        assert!(conflicts > 100 && inserted.len() > 100, "{conflicts} {}", inserted.len());
        assert!(io.iter().any(|(depth, _)| depth >= 2));
        assert_eq!(io.iter().count(), inserted.len());
        assert!(inserted.iter().all(|(s, e, n)| io.find(*s, *e, n).is_some()));
    }
}

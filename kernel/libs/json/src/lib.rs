//! A JSON writer for the shell's `--json` answers: one line, objects and
//! arrays built by closures, strings escaped as RFC 8259 requires, numbers
//! written as integers.
//!
//! ```
//! let line = tessera_json::object(|o| {
//!     o.field("dev", "region0").field("size", 33554432u64);
//!     o.array("namespaces", |a| {
//!         a.object(|ns| {
//!             ns.field("mode", "raw");
//!         });
//!     });
//! });
//! assert_eq!(line, r#"{"dev":"region0","size":33554432,"namespaces":[{"mode":"raw"}]}"#);
//! ```
//!
//! Only what the shell needs: no parser, no floats (every figure the kernel
//! prints is an integer; a `u64` is written in full, which JSON allows and
//! `serde_json` reads back exactly, though JavaScript's numbers lose digits
//! above 2^53: bitmaps are better given as hex strings). Keys are written
//! in the order given; nothing checks that a key is not repeated.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use core::fmt::Write;

/// Something that can be a JSON value.
pub trait Value {
    /// Appends the value's JSON text to `out`.
    fn write_json(&self, out: &mut String);
}

/// Appends `s` as a JSON string: quoted, with `"`, `\` and the control
/// characters U+0000 to U+001F escaped (the short forms where JSON has
/// them, `\u00XX` otherwise). Everything else is copied as UTF-8.
pub fn write_str(out: &mut String, s: &str) {
    out.push('"');
    let mut rest = s;
    while let Some(i) = rest.find(|c: char| c == '"' || c == '\\' || c < ' ') {
        out.push_str(&rest[..i]);
        let c = rest.as_bytes()[i];
        match c {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            _ => {
                let _ = write!(out, "\\u{c:04x}");
            }
        }
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
    out.push('"');
}

impl Value for str {
    fn write_json(&self, out: &mut String) {
        write_str(out, self);
    }
}

impl Value for String {
    fn write_json(&self, out: &mut String) {
        write_str(out, self);
    }
}

impl Value for bool {
    fn write_json(&self, out: &mut String) {
        out.push_str(if *self { "true" } else { "false" });
    }
}

macro_rules! integers {
    ($($t:ty)*) => {$(
        impl Value for $t {
            fn write_json(&self, out: &mut String) {
                let _ = write!(out, "{self}");
            }
        }
    )*};
}
integers!(u8 u16 u32 u64 usize i8 i16 i32 i64 isize);

/// `None` is `null`.
impl<T: Value> Value for Option<T> {
    fn write_json(&self, out: &mut String) {
        match self {
            Some(v) => v.write_json(out),
            None => out.push_str("null"),
        }
    }
}

impl<T: Value + ?Sized> Value for &T {
    fn write_json(&self, out: &mut String) {
        (**self).write_json(out);
    }
}

/// An array of values.
impl<T: Value> Value for [T] {
    fn write_json(&self, out: &mut String) {
        array_into(out, |a| {
            for v in self {
                a.item(v);
            }
        });
    }
}

/// The members of an object being written.
#[derive(Debug)]
pub struct Object<'a> {
    out: &'a mut String,
    empty: bool,
}

impl Object<'_> {
    fn key(&mut self, key: &str) {
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        write_str(self.out, key);
        self.out.push(':');
    }

    /// `"key":value`.
    pub fn field(&mut self, key: &str, value: impl Value) -> &mut Self {
        self.key(key);
        value.write_json(self.out);
        self
    }

    /// `"key":{...}`, the members written by `f`.
    pub fn object(&mut self, key: &str, f: impl FnOnce(&mut Object<'_>)) -> &mut Self {
        self.key(key);
        object_into(self.out, f);
        self
    }

    /// `"key":[...]`, the elements written by `f`.
    pub fn array(&mut self, key: &str, f: impl FnOnce(&mut Array<'_>)) -> &mut Self {
        self.key(key);
        array_into(self.out, f);
        self
    }
}

/// The elements of an array being written.
#[derive(Debug)]
pub struct Array<'a> {
    out: &'a mut String,
    empty: bool,
}

impl Array<'_> {
    fn next(&mut self) {
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
    }

    /// One element.
    pub fn item(&mut self, value: impl Value) -> &mut Self {
        self.next();
        value.write_json(self.out);
        self
    }

    /// An object element, its members written by `f`.
    pub fn object(&mut self, f: impl FnOnce(&mut Object<'_>)) -> &mut Self {
        self.next();
        object_into(self.out, f);
        self
    }

    /// An array element, its elements written by `f`.
    pub fn array(&mut self, f: impl FnOnce(&mut Array<'_>)) -> &mut Self {
        self.next();
        array_into(self.out, f);
        self
    }
}

/// Appends an object, its members written by `f`, to `out`.
pub fn object_into(out: &mut String, f: impl FnOnce(&mut Object<'_>)) {
    out.push('{');
    f(&mut Object { out, empty: true });
    out.push('}');
}

/// Appends an array, its elements written by `f`, to `out`.
pub fn array_into(out: &mut String, f: impl FnOnce(&mut Array<'_>)) {
    out.push('[');
    f(&mut Array { out, empty: true });
    out.push(']');
}

/// An object, its members written by `f`, as one line of text.
pub fn object(f: impl FnOnce(&mut Object<'_>)) -> String {
    let mut out = String::new();
    object_into(&mut out, f);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, Number, Value as J};

    fn parse(s: &str) -> J {
        serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
    }

    #[test]
    fn shapes() {
        let line = object(|o| {
            o.field("a", 1u8).field("b", "x").field("c", true).field("d", None::<u64>);
            o.object("e", |_| {});
            o.array("f", |_| {});
            o.array("g", |a| {
                a.item(1u64).item("two").object(|o| {
                    o.field("three", 3i64);
                });
                a.array(|a| {
                    a.item(false);
                });
            });
            o.field("h", &[1u32, 2, 3][..]);
            o.field("i", Some(-5i32));
        });
        assert_eq!(
            line,
            r#"{"a":1,"b":"x","c":true,"d":null,"e":{},"f":[],"g":[1,"two",{"three":3},[false]],"h":[1,2,3],"i":-5}"#
        );
        assert_eq!(object(|_| {}), "{}");
    }

    #[test]
    fn escapes() {
        let mut out = String::new();
        write_str(&mut out, "a\"b\\c\nd\re\tf\u{8}g\u{c}h\u{0}i\u{1f}j\u{7f}k é €😀");
        assert_eq!(out, r#""a\"b\\c\nd\re\tf\bg\fh\u0000i\u001fj"#.to_owned() + "\u{7f}k é €😀\"");
        assert_eq!(
            parse(&out),
            J::String("a\"b\\c\nd\re\tf\u{8}g\u{c}h\u{0}i\u{1f}j\u{7f}k é €😀".into())
        );
        // Keys are escaped as strings are.
        let line = object(|o| {
            o.field("k\"ey\n", 1u8);
        });
        assert_eq!(parse(&line)["k\"ey\n"], 1);
    }

    #[test]
    fn integers_at_their_limits() {
        let line = object(|o| {
            o.field("max", u64::MAX).field("min", i64::MIN).field("zero", 0usize);
            o.field("addr", 1u64 << 46);
        });
        let v = parse(&line);
        assert_eq!(v["max"].as_u64(), Some(u64::MAX));
        assert_eq!(v["min"].as_i64(), Some(i64::MIN));
        assert_eq!(v["zero"].as_u64(), Some(0));
        assert_eq!(v["addr"].as_u64(), Some(1 << 46));
    }

    /// Writes `v` through the writer (the test's one way in).
    fn write_value(v: &J, out: &mut String) {
        match v {
            J::Null => None::<u8>.write_json(out),
            J::Bool(b) => b.write_json(out),
            J::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => u.write_json(out),
                (None, Some(i)) => i.write_json(out),
                _ => unreachable!("the generator makes integers only"),
            },
            J::String(s) => s.write_json(out),
            J::Array(items) => array_into(out, |a| {
                for item in items {
                    a.next();
                    write_value(item, a.out);
                }
            }),
            J::Object(members) => object_into(out, |o| {
                for (k, item) in members {
                    o.key(k);
                    write_value(item, o.out);
                }
            }),
        }
    }

    /// A random string: ASCII (control characters, quotes and backslashes
    /// included) and some multi-byte characters.
    fn random_string(rng: &mut rng::Rng) -> String {
        const EXTRA: &[char] = &['é', '€', '😀', '\u{7f}', '\u{2028}', '"', '\\', '/'];
        (0..rng.below(12))
            .map(|_| match rng.below(4) {
                0 => EXTRA[rng.below(EXTRA.len() as u64) as usize],
                _ => char::from(rng.below(0x80) as u8),
            })
            .collect()
    }

    fn random_value(rng: &mut rng::Rng, depth: u32) -> J {
        match rng.below(if depth == 0 { 5 } else { 7 }) {
            0 => J::Null,
            1 => J::Bool(rng.below(2) == 1),
            2 => J::Number(Number::from(rng.next_u64() >> rng.below(64))),
            3 => J::Number(Number::from(-((rng.next_u64() >> 1) as i64))),
            4 => J::String(random_string(rng)),
            5 => J::Array((0..rng.below(5)).map(|_| random_value(rng, depth - 1)).collect()),
            _ => {
                let mut m = Map::new();
                for _ in 0..rng.below(5) {
                    m.insert(random_string(rng), random_value(rng, depth - 1));
                }
                J::Object(m)
            }
        }
    }

    /// Whatever the writer writes, serde_json reads back as the same value,
    /// and the text is one line.
    #[test]
    fn round_trip_through_serde_json() {
        let mut rng = rng::Rng::new(0x5eed_150a);
        for _ in 0..5000 {
            let v = random_value(&mut rng, 4);
            let mut out = String::new();
            write_value(&v, &mut out);
            assert!(!out.contains('\n'), "{out}");
            assert_eq!(parse(&out), v, "{out}");
        }
    }
}

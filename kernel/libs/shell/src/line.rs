//! A line editor fed one byte at a time, from a serial port or a decoded
//! PS/2 keyboard, with a small history walked by the arrow keys.
//!
//! History browsing: Up (`ESC [ A`, `ESC O A` or Ctrl-P) recalls the
//! previous line, Down (`ESC [ B`, `ESC O B` or Ctrl-N) the next one, and
//! Down past the newest entry brings back what was being typed before the
//! first Up (as in bash). Up past the oldest entry, or Down when not
//! browsing, rings the bell. Editing a recalled line ends browsing: the
//! edited text becomes the line being typed.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

/// Longest line accepted, in characters.
pub const MAX_LINE: usize = 256;

const BEL: u8 = 0x07;
const ERASE: &[u8] = b"\x08 \x08";

/// What the caller does after feeding a byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Nothing to show.
    None,
    /// Write these bytes to the terminal to show the edit.
    Echo(Vec<u8>),
    /// Enter: the finished line (possibly empty). The caller prints the
    /// newline.
    Line(String),
    /// Ctrl-C: the line was abandoned. The caller prints `^C`, a newline and
    /// a new prompt.
    Cancel,
}

/// Where the escape-sequence parser is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Esc {
    Ground,
    /// After `ESC`.
    Escape,
    /// After `ESC [`, in the parameter and intermediate bytes.
    Csi,
    /// After `ESC O`: one final byte follows.
    Ss3,
}

/// A line being typed, plus the history of entered lines.
#[derive(Debug, Clone)]
pub struct LineEditor {
    line: String,
    history: VecDeque<String>,
    history_len: usize,
    /// Index into `history` of the recalled line, while browsing.
    browse: Option<usize>,
    /// The line being typed when browsing started.
    saved: String,
    esc: Esc,
    after_cr: bool,
}

impl LineEditor {
    /// An empty editor keeping the last `history_len` distinct lines.
    pub fn new(history_len: usize) -> Self {
        Self {
            line: String::new(),
            history: VecDeque::new(),
            history_len,
            browse: None,
            saved: String::new(),
            esc: Esc::Ground,
            after_cr: false,
        }
    }

    /// The line typed so far.
    pub fn current(&self) -> &str {
        &self.line
    }

    /// The history, oldest first.
    pub fn history(&self) -> impl Iterator<Item = &str> {
        self.history.iter().map(String::as_str)
    }

    /// Feeds one input byte.
    pub fn feed(&mut self, byte: u8) -> Edit {
        let after_cr = core::mem::replace(&mut self.after_cr, byte == b'\r');
        match self.esc {
            Esc::Ground => {}
            Esc::Escape => {
                self.esc = match byte {
                    b'[' => Esc::Csi,
                    b'O' => Esc::Ss3,
                    _ => Esc::Ground,
                };
                if self.esc != Esc::Ground {
                    return Edit::None;
                }
                // A lone ESC is dropped; the byte after it counts as usual.
            }
            Esc::Csi | Esc::Ss3 => match byte {
                0x20..=0x3f if self.esc == Esc::Csi => return Edit::None,
                0x40..=0x7e => {
                    self.esc = Esc::Ground;
                    return match byte {
                        b'A' => self.recall_older(),
                        b'B' => self.recall_newer(),
                        _ => Edit::None,
                    };
                }
                // A malformed sequence ends; the byte counts as usual.
                _ => self.esc = Esc::Ground,
            },
        }
        match byte {
            0x20..=0x7e if self.line.len() < MAX_LINE => {
                self.stop_browsing();
                self.line.push(byte as char);
                Edit::Echo(alloc::vec![byte])
            }
            0x20..=0x7e => Edit::Echo(alloc::vec![BEL]),
            b'\n' if after_cr => Edit::None,
            b'\r' | b'\n' => {
                let line = core::mem::take(&mut self.line);
                self.stop_browsing();
                self.record(&line);
                Edit::Line(line)
            }
            0x08 | 0x7f => {
                self.stop_browsing();
                match self.line.pop() {
                    Some(_) => Edit::Echo(ERASE.to_vec()),
                    None => Edit::None,
                }
            }
            0x15 => {
                self.stop_browsing();
                self.replace_line(String::new())
            }
            0x03 => {
                self.line.clear();
                self.stop_browsing();
                Edit::Cancel
            }
            0x10 => self.recall_older(),
            0x0e => self.recall_newer(),
            0x1b => {
                self.esc = Esc::Escape;
                Edit::None
            }
            _ => Edit::None,
        }
    }

    fn stop_browsing(&mut self) {
        self.browse = None;
        self.saved.clear();
    }

    fn record(&mut self, line: &str) {
        if line.is_empty()
            || self.history_len == 0
            || self.history.back().is_some_and(|l| l == line)
        {
            return;
        }
        if self.history.len() == self.history_len {
            self.history.pop_front();
        }
        self.history.push_back(line.into());
    }

    fn recall_older(&mut self) -> Edit {
        let index = match self.browse {
            None if !self.history.is_empty() => {
                self.saved = self.line.clone();
                self.history.len() - 1
            }
            Some(i) if i > 0 => i - 1,
            _ => return Edit::Echo(alloc::vec![BEL]),
        };
        self.browse = Some(index);
        self.replace_line(self.history[index].clone())
    }

    fn recall_newer(&mut self) -> Edit {
        let line = match self.browse {
            None => return Edit::Echo(alloc::vec![BEL]),
            Some(i) if i + 1 < self.history.len() => {
                self.browse = Some(i + 1);
                self.history[i + 1].clone()
            }
            Some(_) => {
                self.browse = None;
                core::mem::take(&mut self.saved)
            }
        };
        self.replace_line(line)
    }

    /// Replaces the line, echoing one erase per old character then the new
    /// text.
    fn replace_line(&mut self, new: String) -> Edit {
        let mut echo = ERASE.repeat(self.line.len());
        echo.extend_from_slice(new.as_bytes());
        self.line = new;
        if echo.is_empty() { Edit::None } else { Edit::Echo(echo) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(ed: &mut LineEditor, bytes: &[u8]) -> Vec<Edit> {
        bytes.iter().map(|&b| ed.feed(b)).collect()
    }

    fn echo(bytes: &[u8]) -> Edit {
        Edit::Echo(bytes.to_vec())
    }

    fn enter_lines(ed: &mut LineEditor, lines: &[&str]) {
        for l in lines {
            feed_all(ed, l.as_bytes());
            assert_eq!(ed.feed(b'\r'), Edit::Line(String::from(*l)));
        }
    }

    #[test]
    fn typing_and_enter() {
        let mut ed = LineEditor::new(8);
        assert_eq!(feed_all(&mut ed, b"mem"), [echo(b"m"), echo(b"e"), echo(b"m")]);
        assert_eq!(ed.current(), "mem");
        assert_eq!(ed.feed(b'\n'), Edit::Line("mem".into()));
        assert_eq!(ed.current(), "");
        assert_eq!(ed.feed(b'\r'), Edit::Line(String::new()));
        assert_eq!(ed.history().collect::<Vec<_>>(), ["mem"]);
    }

    #[test]
    fn backspace() {
        let mut ed = LineEditor::new(8);
        assert_eq!(ed.feed(0x08), Edit::None);
        assert_eq!(ed.feed(0x7f), Edit::None);
        feed_all(&mut ed, b"ab");
        assert_eq!(ed.feed(0x7f), echo(b"\x08 \x08"));
        assert_eq!(ed.current(), "a");
        assert_eq!(ed.feed(0x08), echo(b"\x08 \x08"));
        assert_eq!(ed.feed(0x08), Edit::None);
        assert_eq!(ed.current(), "");
    }

    #[test]
    fn crlf_is_one_enter() {
        let mut ed = LineEditor::new(8);
        assert_eq!(feed_all(&mut ed, b"a\r\n"), [echo(b"a"), Edit::Line("a".into()), Edit::None]);
        // `\n\r`, `\r\r` and `\n\n` are two Enters each.
        let two = [Edit::Line(String::new()), Edit::Line(String::new())];
        assert_eq!(feed_all(&mut ed, b"\n\r"), two);
        assert_eq!(ed.feed(b'\r'), Edit::Line(String::new()));
        assert_eq!(feed_all(&mut ed, b"\n\n"), [Edit::None, Edit::Line(String::new())]);
    }

    #[test]
    fn line_length_limit() {
        let mut ed = LineEditor::new(8);
        for _ in 0..MAX_LINE {
            assert_eq!(ed.feed(b'x'), echo(b"x"));
        }
        assert_eq!(ed.feed(b'y'), echo(&[BEL]));
        assert_eq!(ed.current().len(), MAX_LINE);
        assert_eq!(ed.feed(0x7f), echo(ERASE));
        assert_eq!(ed.feed(b'y'), echo(b"y"));
        assert!(ed.current().ends_with("xy"));
    }

    #[test]
    fn history_up_and_down() {
        let mut ed = LineEditor::new(8);
        enter_lines(&mut ed, &["one", "two"]);
        feed_all(&mut ed, b"th");
        // Up: erase "th", write "two"; Ctrl-P works the same.
        assert_eq!(
            feed_all(&mut ed, b"\x1b[A"),
            [Edit::None, Edit::None, echo(b"\x08 \x08\x08 \x08two")]
        );
        assert_eq!(ed.feed(0x10), echo(b"\x08 \x08\x08 \x08\x08 \x08one"));
        assert_eq!(ed.feed(0x10), echo(&[BEL]));
        assert_eq!(ed.current(), "one");
        assert_eq!(feed_all(&mut ed, b"\x1b[B")[2], echo(b"\x08 \x08\x08 \x08\x08 \x08two"));
        // Down past the newest: back to what was typed before Up.
        assert_eq!(ed.feed(0x0e), echo(b"\x08 \x08\x08 \x08\x08 \x08th"));
        assert_eq!(ed.current(), "th");
        assert_eq!(ed.feed(0x0e), echo(&[BEL]));
        // SS3 arrows too; an edit ends browsing.
        feed_all(&mut ed, b"\x1bOA\x7f");
        assert_eq!(ed.current(), "tw");
        assert_eq!(ed.feed(0x0e), echo(&[BEL]));
        assert_eq!(ed.feed(b'\r'), Edit::Line("tw".into()));
        assert_eq!(ed.history().collect::<Vec<_>>(), ["one", "two", "tw"]);
    }

    #[test]
    fn history_empty_and_disabled() {
        let mut ed = LineEditor::new(0);
        assert_eq!(ed.feed(0x10), echo(&[BEL]));
        assert_eq!(ed.feed(0x0e), echo(&[BEL]));
        enter_lines(&mut ed, &["a"]);
        assert_eq!(ed.history().count(), 0);
        assert_eq!(ed.feed(0x10), echo(&[BEL]));
    }

    #[test]
    fn history_duplicates_and_bound() {
        let mut ed = LineEditor::new(3);
        enter_lines(&mut ed, &["a", "a", "", "b", "a", "c", "c", "d"]);
        assert_eq!(ed.history().collect::<Vec<_>>(), ["a", "c", "d"]);
        enter_lines(&mut ed, &["e"]);
        assert_eq!(ed.history().collect::<Vec<_>>(), ["c", "d", "e"]);
    }

    #[test]
    fn ctrl_u_and_ctrl_c() {
        let mut ed = LineEditor::new(8);
        assert_eq!(ed.feed(0x15), Edit::None);
        feed_all(&mut ed, b"abc");
        assert_eq!(ed.feed(0x15), echo(&ERASE.repeat(3)));
        assert_eq!(ed.current(), "");
        feed_all(&mut ed, b"xy");
        assert_eq!(ed.feed(0x03), Edit::Cancel);
        assert_eq!(ed.current(), "");
        assert_eq!(ed.history().count(), 0);
        // Ctrl-C while browsing forgets the saved line too.
        enter_lines(&mut ed, &["one"]);
        feed_all(&mut ed, b"zz\x10\x03");
        assert_eq!(ed.feed(0x0e), echo(&[BEL]));
        assert_eq!(ed.current(), "");
    }

    #[test]
    fn escape_sequences_ignored() {
        let mut ed = LineEditor::new(8);
        // Right, Left, Delete, F5, Ctrl-Right, SS3 F1, then other controls.
        let edits =
            feed_all(&mut ed, b"a\x1b[C\x1b[D\x1b[3~\x1b[15~\x1b[1;5C\x1bOPb\x01\x02\x1f\x00\x09");
        assert!(edits[1..edits.len() - 6].iter().all(|e| *e == Edit::None));
        assert_eq!(ed.current(), "ab");
        // A lone ESC is dropped; a control byte ends a sequence and counts.
        feed_all(&mut ed, b"\x1bc\x1b[1\x08");
        assert_eq!(ed.current(), "ab");
    }

    #[test]
    fn random_bytes() {
        let mut ed = LineEditor::new(4);
        let mut rng = rng::Rng::new(0x2545_f491_4f6c_dd1d);
        for _ in 0..100_000 {
            let x = rng.next_u64();
            // Bias towards the interesting bytes so that every path runs.
            let byte = match x % 4 {
                0 => b"\r\n\x08\x7f\x15\x03\x10\x0e\x1b[AB~1O"[(x >> 8) as usize % 15],
                _ => (x >> 16) as u8,
            };
            if let Edit::Line(l) = ed.feed(byte) {
                assert!(l.len() <= MAX_LINE);
            }
            let cur = ed.current();
            assert!(cur.len() <= MAX_LINE && cur.bytes().all(|b| (0x20..=0x7e).contains(&b)));
        }
        assert!(ed.history().count() <= 4);
    }
}

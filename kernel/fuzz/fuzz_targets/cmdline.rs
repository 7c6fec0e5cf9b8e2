//! The command-line option parser on arbitrary bytes: never a panic, every
//! refusal prints, and the whole-line parse agrees with word-by-word parsing
//! (a `memmap=` comma list gives one result per piece).
#![no_main]

use libfuzzer_sys::fuzz_target;
use options::{Options, check_line, parse, parse_word, validate};

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    let mut refused = 0;
    let opts = Options::from_line(&line, |e| {
        let _ = e.to_string();
        refused += 1;
    });
    match check_line(&line) {
        Err(_) => {
            assert_eq!(opts, Options::default(), "a refused line must not set options");
            assert!(validate(&line).is_err());
        }
        Ok(()) => {
            let words: Vec<&str> = line.split_ascii_whitespace().collect();
            let results: Vec<_> = parse(&line).collect();
            // Word by word: one result each, a `memmap=` comma list one
            // per piece.
            let mut by_word = Vec::new();
            for w in &words {
                let r: Vec<_> = parse(w).collect();
                match w.strip_prefix("memmap=") {
                    Some(v) if v.contains(',') => assert_eq!(r.len(), v.split(',').count()),
                    _ => assert_eq!(r, [parse_word(w)]),
                }
                by_word.extend(r);
            }
            assert_eq!(by_word, results);
            assert_eq!(refused, results.iter().filter(|r| r.is_err()).count());
            assert_eq!(validate(&line).is_ok(), refused == 0);
            let mut again = Options::default();
            results.into_iter().flatten().for_each(|o| again.apply(o));
            assert_eq!(again, opts);
        }
    }
});

//! The command-line option parser on arbitrary bytes: never a panic, every
//! refusal prints, and the whole-line parse agrees with word-by-word parsing.
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
            assert_eq!(results.len(), words.len());
            for (w, r) in words.iter().zip(&results) {
                assert_eq!(&parse_word(w), r);
            }
            assert_eq!(refused, results.iter().filter(|r| r.is_err()).count());
            assert_eq!(validate(&line).is_ok(), refused == 0);
            let mut again = Options::default();
            results.into_iter().flatten().for_each(|o| again.apply(o));
            assert_eq!(again, opts);
        }
    }
});

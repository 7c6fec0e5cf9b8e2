//! The one pseudo-random generator of Tessera's randomized tests and
//! measurements: xorshift64 (Marsaglia 2003, shifts 13, 7, 17). A fixed
//! seed gives the same sequence on the host and in the kernel, on every
//! run, so a failing step can be replayed.
//!
//! It is `no_std`, has no dependencies and needs no allocation, so host
//! property tests, in-kernel tests and the kernel's own measurements all
//! use this one type. It is not for anything that must be unpredictable.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

/// An xorshift64 generator. Its period is 2^64 - 1: every non-zero state
/// comes back, zero never appears.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator whose first value follows `seed`.
    ///
    /// # Panics
    ///
    /// If `seed` is 0, the one state xorshift never leaves.
    pub const fn new(seed: u64) -> Self {
        assert!(seed != 0, "xorshift64 needs a non-zero seed");
        Rng(seed)
    }

    /// The next value; every bit is used.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// The next value reduced to `0..n` (`n > 0`), by remainder: the bias
    /// is below `n / 2^64`, which tests do not notice.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn xorshift64_sequence() {
        let mut r = Rng::new(1);
        // 1 ^ 1 << 13 = 0x2001; ^ >> 7 = 0x2041; ^ << 17 = 0x4082_2041.
        assert_eq!(r.next_u64(), 0x4082_2041);
        let mut again = Rng::new(1);
        again.next_u64();
        assert_eq!(again.next_u64(), r.next_u64());
    }

    #[test]
    fn below_stays_below_and_reaches_every_value() {
        let mut r = Rng::new(0x9e37_79b9_7f4a_7c15);
        let mut seen = [0u32; 7];
        for _ in 0..7000 {
            seen[r.below(7) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 800), "{seen:?}");
    }

    #[test]
    #[should_panic(expected = "non-zero seed")]
    fn zero_seed_is_refused() {
        let _ = Rng::new(0);
    }
}

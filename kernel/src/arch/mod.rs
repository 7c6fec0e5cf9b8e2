//! Hardware access. The portable logic never imports this module.

pub mod x86_64;

pub use self::x86_64::*;

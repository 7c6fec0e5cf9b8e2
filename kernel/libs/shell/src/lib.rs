//! The kernel shell's portable half: line editing with history, and
//! command parsing with one-line help and clear errors.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod command;
pub mod cpus;
pub mod line;

pub use command::{
    COMMANDS, Command, CommandError, CommandInfo, JSON_COMMANDS, Listing, MosaicArg, PfnArg,
    SectionsArg, help_lines, parse,
};
pub use line::{Edit, LineEditor, MAX_LINE};

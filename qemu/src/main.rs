//! The Tessera QEMU runner and test harness.
//!
//! ```text
//! qemu run [--profile P | --firmware bios|uefi [--usb]] [--mem M] [--smp N] [--cmdline S]
//!          [--qemu-args S] [--timeout SECS] [--kernel ELF] [--release]
//! qemu debug [same as run] [--gdb-port N]   (halted, GDB stub; writes target/tessera.gdb)
//! qemu test [--filter F] [--timeout SECS] [--profiles P,P,..] [--no-host]
//! qemu runner ELF [FILTER]     (cargo's runner; TESSERA_PROFILE picks the profile)
//! qemu bench [--timeout SECS]
//! qemu screenshot [--firmware bios|uefi [--usb]] [--mem M] [--smp N] [--cmdline S] [--type 'CMD; CMD']
//! qemu fuzz [--time SECS]      (every fuzz target; new inputs kept in kernel/fuzz/corpus)
//! qemu fuzz-seeds              (corpus seeds from what the kernel reads in QEMU)
//! qemu profiles
//! qemu plan                    (what `qemu test` boots where, without booting)
//! qemu linux [--firmware bios|uefi] [--mem M] [--cmdline S] [--qemu-args S]
//! qemu linux-diff [--firmware bios|uefi] [--mem M] [--cmdline S] [--qemu-args S]
//! qemu linux-devdax [--mem GIB] [--timeout SECS]  (Linux's device-dax memmap cost)
//! qemu linux-hotplug [VARIANT..] [--timeout SECS]  (Linux through the monitor's hotplug sequence)
//! qemu hotplug-diff [--kernel ELF] [--timeout SECS]  (Tessera and Linux through it, compared)
//! ```
//!
//! `ACCEL=auto|kvm|tcg` in the environment picks the accelerator of every
//! boot ([`accel`]).
//!
//! What boots where is data, in [`plan`]; one boot is described by
//! [`machine::Machine`]. Each command lives in its own module: [`run`]
//! (`run`, `screenshot`), [`debug`] (`debug`), [`test`](mod@test) (`test`, `runner`), [`bench`](mod@bench),
//! [`fuzz`] (`fuzz`, `fuzz-seeds`), [`linuxdiff`] (`linux`, `linux-diff`);
//! [`cli`] reads the flags.
#![forbid(unsafe_code)]

mod accel;
mod bench;
mod cargo;
mod cli;
mod debug;
mod device;
mod fuzz;
mod golden;
mod golden_json;
mod hotplug;
mod hotplug_events;
mod linux;
mod linux_devdax;
mod linuxdiff;
mod machine;
mod madt_cases;
mod malformed;
mod mosaic;
mod persist;
mod plan;
mod profile;
mod progress;
mod report;
mod run;
mod screen;
mod test;

use std::process::ExitCode;

use cli::USAGE;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let cmd = args.next().unwrap_or_default();
    // Every command that boots a guest runs on the accelerator ACCEL picks.
    let boots = !matches!(cmd.as_str(), "" | "plan" | "profiles" | "fuzz");
    let result = cli::parse_flags(args)
        .and_then(|f| if boots { accel::resolve().map(|_| f) } else { Ok(f) })
        .and_then(|f| match cmd.as_str() {
            "run" => run::cmd_run(f),
            "debug" => debug::cmd_debug(f),
            "test" => test::cmd_test(f),
            "runner" => test::cmd_runner(f),
            "bench" => f.timeout().and_then(bench::run),
            "screenshot" => run::cmd_screenshot(f),
            "linux" => linuxdiff::cmd_linux(f),
            "linux-diff" => linuxdiff::cmd_linux_diff(f),
            "linux-devdax" => linux_devdax::cmd(f),
            "linux-hotplug" => hotplug::cmd_linux_hotplug(f),
            "hotplug-diff" => hotplug::cmd_hotplug_diff(f),
            "fuzz" => fuzz::cmd_fuzz(f.fuzz_time.unwrap_or(60)),
            "fuzz-seeds" => f.timeout().and_then(fuzz::cmd_seeds),
            "plan" => plan::cmd_plan(),
            "profiles" => {
                for p in plan::PROFILES {
                    println!("{:10} {}, {}", p.name, p.about, profile::Profile::cpus_text(p.cpus));
                }
                Ok(true)
            }
            "" => Err(USAGE.into()),
            c => Err(format!("unknown command '{c}'; {USAGE}")),
        });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("qemu: error: {e}");
            ExitCode::from(2)
        }
    }
}

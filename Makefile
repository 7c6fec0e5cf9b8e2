# Tessera: `make run` boots the kernel in QEMU, `make test` runs every test.
# Both install what is missing first (see `setup`).

FIRMWARE ?= bios
USB      ?=
MEM      ?= 2G
# CPUs of make run and make screenshot (QEMU -smp, parallel vCPU threads).
SMP      ?= 2
QEMU_ARGS ?=
CMDLINE  ?=
TIMEOUT  ?=
FILTER   ?=
PROFILES ?=
DEV      ?=
FUZZ_TIME ?=
# The GDB stub's port of make debug (make gdb reads it from target/tessera.gdb).
GDB_PORT ?= 1234
# Hotplug operations of make stress.
STRESS_OPS ?= 200000

TOOLCHAIN := $(shell sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
HARNESS   := target/debug/qemu
OVMF_CODE := /usr/share/OVMF/OVMF_CODE_4M.fd
APT_CMD   := apt-get update && apt-get install -y qemu-system-x86 ovmf gdb
KERNEL_TARGET := x86_64-unknown-none

# Only the runner's own flags, with values quoted for the shell.
RUN_FLAGS = --firmware '$(FIRMWARE)' $(if $(filter 1 yes true,$(USB)),--usb) \
	--mem '$(MEM)' --cmdline '$(CMDLINE)' --qemu-args '$(QEMU_ARGS)' \
	$(if $(TIMEOUT),--timeout '$(TIMEOUT)')
TEST_FLAGS = $(if $(FILTER),--filter '$(FILTER)') $(if $(TIMEOUT),--timeout '$(TIMEOUT)') \
	$(if $(PROFILES),--profiles '$(PROFILES)')

.PHONY: all setup toolchain host-packages fuzz-tools harness run debug gdb test stress linux-diff bench fuzz fuzz-seeds screenshot check doc image usb clean

all: image

setup: toolchain host-packages fuzz-tools

# The pinned nightly with rust-src, llvm-tools, rustfmt, clippy and the
# kernel target, read from rust-toolchain.toml (RUSTUP_AUTO_INSTALL=0 here).
toolchain:
	@command -v rustup >/dev/null || { echo "error: rustup not found: install rustup (https://rustup.rs), then run make again" >&2; exit 1; }
	@rustup toolchain list | grep -q '^$(TOOLCHAIN)' && [ "$$(rustup component list --installed 2>/dev/null | grep -cE '^(rust-src|llvm-tools|rustfmt|clippy)')" -ge 4 ] \
		&& rustup target list --installed 2>/dev/null | grep -q '^$(KERNEL_TARGET)' \
		|| rustup toolchain install

# QEMU, OVMF and GDB from the distribution (Debian/Ubuntu).
host-packages:
	@if command -v qemu-system-x86_64 >/dev/null && [ -f $(OVMF_CODE) ] && command -v gdb >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then echo "installing QEMU, OVMF and GDB: $(APT_CMD)"; $(APT_CMD); \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo sh -c '$(APT_CMD)'; \
	else echo "error: QEMU, OVMF or GDB is missing; run as root: $(APT_CMD)" >&2; exit 1; fi

# cargo-fuzz (libFuzzer) from crates.io, for make fuzz and make test.
fuzz-tools: toolchain
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

# The harness; a cold build takes minutes (the bootloader's BIOS and UEFI
# stages): qemu/cargo-progress shows cargo's progress, or a line every 15 s.
harness: toolchain
	@qemu/cargo-progress build -p qemu

run: setup harness
	@$(HARNESS) run $(RUN_FLAGS) --smp '$(SMP)'

# make run's machine halted before the firmware with QEMU's GDB stub on
# GDB_PORT; writes target/tessera.gdb, which make gdb (another terminal) runs.
debug: setup harness
	@$(HARNESS) debug $(RUN_FLAGS) --smp '$(SMP)' --gdb-port '$(GDB_PORT)'

gdb: host-packages
	@[ -f target/tessera.gdb ] || { echo "error: no target/tessera.gdb: run make debug first (it writes it and starts QEMU)" >&2; exit 1; }
	@gdb -q -x target/tessera.gdb

test: setup harness
	@$(HARNESS) test $(TEST_FLAGS)

# The multi-CPU stress at length (make test runs 20,000 operations):
# STRESS_OPS hotplug operations on one CPU of 4 while the others read the
# memory model; fails unless the kernel reports 0 faults and an unchanged
# model. The log is target/stress.log.
stress: setup harness
	@$(HARNESS) run --firmware bios --mem 2G --smp 4 --timeout $(or $(TIMEOUT),3600) \
		--cmdline 'memmap=64M!0x3e000000 mem=1G hotplug_stress=$(STRESS_OPS) poweroff' | tee target/stress.log
	@grep -q ', 0 faults, model unchanged' target/stress.log || { echo "stress: FAILED (see target/stress.log)" >&2; exit 1; }

# Tessera and Debian's Linux 6.1 on the same machine (same variables as
# run), their memory views compared; fails on an unintended difference.
linux-diff: setup harness
	@$(HARNESS) linux-diff $(RUN_FLAGS)

# The console after boot, as target/screenshot.png.
screenshot: setup harness
	@$(HARNESS) screenshot --firmware '$(FIRMWARE)' $(if $(filter 1 yes true,$(USB)),--usb) --mem '$(MEM)' --smp '$(SMP)' --cmdline '$(CMDLINE)'

# Measurements in QEMU (bios; 2G and 8G machines), one table.
bench: setup harness
	@$(HARNESS) bench $(if $(TIMEOUT),--timeout '$(TIMEOUT)')

# Every fuzz target for FUZZ_TIME seconds (default 60); new inputs are kept
# in kernel/fuzz/corpus (minimized). make test runs each for 10 s without keeping.
fuzz: setup harness
	@$(HARNESS) fuzz $(if $(FUZZ_TIME),--time '$(FUZZ_TIME)')

# Corpus seeds from QEMU: ACPI tables (acpidump), memory maps, options.
fuzz-seeds: setup harness
	@$(HARNESS) fuzz-seeds

check: toolchain
	cargo fmt --all -- --check
	cargo clippy --workspace --exclude kernel --all-targets -- -D warnings
	cargo clippy -p kernel --target $(KERNEL_TARGET) --all-targets -- -D warnings
	cargo fmt --manifest-path kernel/fuzz/Cargo.toml -- --check
	cargo clippy --manifest-path kernel/fuzz/Cargo.toml -- -D warnings
	cargo test --quiet -p qemu --test layers

# API documentation of the workspace in target/doc (host crates) and
# target/$(KERNEL_TARGET)/doc (the kernel, which builds only for its
# target); rustdoc warnings such as broken intra-doc links are errors.
doc: toolchain
	RUSTDOCFLAGS='-D warnings' cargo doc --workspace --exclude kernel --no-deps
	RUSTDOCFLAGS='-D warnings' cargo doc -p kernel --target $(KERNEL_TARGET) --no-deps

# Release kernel in BIOS and UEFI disk images, with CMDLINE built in.
image: toolchain
	cargo build -p kernel --bin kernel --target $(KERNEL_TARGET) --release
	cargo run --quiet -p boot -- target/$(KERNEL_TARGET)/release/kernel --out-dir target --cmdline '$(CMDLINE)'

# Writes the FIRMWARE image (with CMDLINE inside) to the USB stick DEV,
# after checking it is a whole removable disk, not mounted, and asking.
usb: toolchain
	@case '$(FIRMWARE)' in bios|uefi) ;; *) echo "error: FIRMWARE must be bios or uefi" >&2; exit 2;; esac
	@cargo run --quiet -p boot -- usb --dev '$(DEV)'
	@$(MAKE) --no-print-directory image CMDLINE='$(CMDLINE)'
	@cargo run --quiet -p boot -- usb --dev '$(DEV)' target/tessera-$(FIRMWARE).img

clean:
	cargo clean

# Tessera: `make run` boots the kernel in QEMU, `make test` runs every test.
# Both install what is missing first (see `setup`).

# Firmware of the boot: bios (SeaBIOS) or uefi (OVMF).
FIRMWARE ?= bios
# USB=1: boot from a USB stick on xHCI, as on a real PC.
USB      ?=
# Guest RAM (QEMU -m), e.g. 2G, 8G.
MEM      ?= 2G
# CPUs of make run, debug and screenshot (QEMU -smp).
SMP      ?= 2
# Accelerator: auto (KVM when it runs guests faster than TCG), kvm or tcg.
ACCEL    ?= auto
# Extra QEMU arguments, verbatim (e.g. an NVDIMM).
QEMU_ARGS ?=
# Kernel options, as Linux's (e.g. memmap=64M!0x3e000000 loglevel=8).
CMDLINE  ?=
# Seconds one boot may take before it is killed.
TIMEOUT  ?=
# make test: only the tests whose names contain this.
FILTER   ?=
# make test: only these profiles (comma-separated; target/debug/qemu profiles).
PROFILES ?=
# make usb: the USB stick to write (a whole removable disk, e.g. /dev/sdb).
DEV      ?=
# make fuzz: seconds per fuzz target (default 60).
FUZZ_TIME ?=
# make debug: the GDB stub's port (make gdb reads it from target/tessera.gdb).
GDB_PORT ?= 1234
# make stress: hotplug operations.
STRESS_OPS ?= 200000
# make screenshot: shell commands typed before the screendump, ';' between.
SHELL_CMDS ?=
# make linux-hotplug: which variants (movable, online, dimm-only; all by default).
VARIANTS ?=

export ACCEL

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

.PHONY: help all setup toolchain host-packages fuzz-tools harness run debug gdb test stress linux-diff linux-hotplug hotplug-diff bench fuzz fuzz-seeds screenshot check doc image usb clean

# The disk images (as make image).
all: image

# Installs what is missing: the toolchain, QEMU, OVMF, cargo-fuzz.
setup: toolchain host-packages fuzz-tools

# Installs the pinned Rust toolchain (rust-toolchain.toml).
# The pinned nightly with rust-src, llvm-tools, rustfmt, clippy and the
# kernel target (RUSTUP_AUTO_INSTALL=0 here).
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

# Builds the QEMU harness (target/debug/qemu).
# A cold build takes minutes (the bootloader's BIOS and UEFI stages):
# qemu/cargo-progress shows cargo's progress, or a line every 15 s.
harness: toolchain
	@qemu/cargo-progress build -p qemu

# Builds and boots the kernel in QEMU; serial and monitor on this terminal.
run: setup harness
	@$(HARNESS) run $(RUN_FLAGS) --smp '$(SMP)'

# Boots make run's machine halted, with QEMU's GDB stub on GDB_PORT.
# It halts before the firmware and writes target/tessera.gdb, which make
# gdb (another terminal) runs.
debug: setup harness
	@$(HARNESS) debug $(RUN_FLAGS) --smp '$(SMP)' --gdb-port '$(GDB_PORT)'

# Attaches GDB to make debug's QEMU (target/tessera.gdb).
gdb: host-packages
	@[ -f target/tessera.gdb ] || { echo "error: no target/tessera.gdb: run make debug first (it writes it and starts QEMU)" >&2; exit 1; }
	@gdb -q -x target/tessera.gdb

# Every test: host, fuzz, QEMU on every profile, Linux side by side.
test: setup harness
	@$(HARNESS) test $(TEST_FLAGS)

# The multi-CPU hotplug stress at length (STRESS_OPS operations).
# make test runs 20,000; this runs STRESS_OPS on one CPU of 4 while the
# others read the memory model; fails unless the kernel reports 0 faults
# and an unchanged model. The log is target/stress.log.
stress: setup harness
	@$(HARNESS) run --firmware bios --mem 2G --smp 4 --timeout $(or $(TIMEOUT),3600) \
		--cmdline 'memmap=64M!0x3e000000 mem=1G hotplug_stress=$(STRESS_OPS) poweroff' | tee target/stress.log
	@grep -q ', 0 faults, model unchanged' target/stress.log || { echo "stress: FAILED (see target/stress.log)" >&2; exit 1; }

# Tessera and Debian's Linux 6.1 on the same machine, views compared.
# Same variables as run; fails on an unintended difference.
linux-diff: setup harness
	@$(HARNESS) linux-diff $(RUN_FLAGS)

# Linux 6.1 through QEMU monitor hotplug (DIMMs, NVDIMM): the reference.
# Plugs a 128 MiB and a 1 GiB DIMM, unplugs the 128 MiB one, plugs an
# NVDIMM, on each variant (online_movable, online, no nvdimm=on; VARIANTS
# picks some); prints and saves target/qemu/linux-hotplug-VARIANT.txt.
linux-hotplug: setup harness
	@$(HARNESS) linux-hotplug $(VARIANTS) $(if $(TIMEOUT),--timeout '$(TIMEOUT)')

# Tessera and Linux through the same hotplug sequence, compared per step.
hotplug-diff: setup harness
	@$(HARNESS) hotplug-diff $(if $(TIMEOUT),--timeout '$(TIMEOUT)')

# The console after boot (and SHELL_CMDS), as target/screenshot.png.
screenshot: setup harness
	@$(HARNESS) screenshot --firmware '$(FIRMWARE)' $(if $(filter 1 yes true,$(USB)),--usb) --mem '$(MEM)' --smp '$(SMP)' --cmdline '$(CMDLINE)' --type '$(SHELL_CMDS)'

# Measurements in QEMU beside Linux: one table and target/bench.json.
bench: setup harness
	@$(HARNESS) bench $(if $(TIMEOUT),--timeout '$(TIMEOUT)')

# Runs every fuzz target for FUZZ_TIME seconds.
# Default 60 s; new inputs are kept in kernel/fuzz/corpus (minimized).
# make test runs each for 10 s without keeping.
fuzz: setup harness
	@$(HARNESS) fuzz $(if $(FUZZ_TIME),--time '$(FUZZ_TIME)')

# Corpus seeds from QEMU: ACPI tables (acpidump), memory maps, options.
fuzz-seeds: setup harness
	@$(HARNESS) fuzz-seeds

# Format and lint (rustfmt, clippy -D warnings, the layering test).
check: toolchain
	cargo fmt --all -- --check
	cargo clippy --workspace --exclude kernel --all-targets -- -D warnings
	cargo clippy -p kernel --target $(KERNEL_TARGET) --all-targets -- -D warnings
	cargo fmt --manifest-path kernel/fuzz/Cargo.toml -- --check
	cargo clippy --manifest-path kernel/fuzz/Cargo.toml -- -D warnings
	cargo test --quiet -p qemu --test layers

# API documentation (target/doc, target/x86_64-unknown-none/doc).
# The host crates in target/doc and the kernel in
# target/$(KERNEL_TARGET)/doc (the kernel, which builds only for its
# target); rustdoc warnings such as broken intra-doc links are errors.
doc: toolchain
	RUSTDOCFLAGS='-D warnings' cargo doc --workspace --exclude kernel --no-deps
	RUSTDOCFLAGS='-D warnings' cargo doc -p kernel --target $(KERNEL_TARGET) --no-deps

# Release kernel in BIOS and UEFI disk images, with CMDLINE built in.
image: toolchain
	cargo build -p kernel --bin kernel --target $(KERNEL_TARGET) --release
	@qemu/cargo-progress build -p boot
	target/debug/boot target/$(KERNEL_TARGET)/release/kernel --out-dir target --cmdline '$(CMDLINE)'

# Writes the FIRMWARE image (with CMDLINE inside) to the USB stick DEV.
# It checks first that DEV is a whole removable disk, not mounted, and asks.
usb: toolchain
	@case '$(FIRMWARE)' in bios|uefi) ;; *) echo "error: FIRMWARE must be bios or uefi" >&2; exit 2;; esac
	@qemu/cargo-progress build -p boot
	@target/debug/boot usb --dev '$(DEV)'
	@$(MAKE) --no-print-directory image CMDLINE='$(CMDLINE)'
	@target/debug/boot usb --dev '$(DEV)' target/tessera-$(FIRMWARE).img

# Removes target/.
clean:
	cargo clean

# This list, from the comments above each target and variable.
help:
	@echo "Targets:"
	@awk '/^# /{ if (!c) c = substr($$0, 3); next } /^[a-z-]+:/ && c { split($$0, t, ":"); printf "  make %-13s %s\n", t[1], c } { c = "" }' Makefile
	@echo "Variables (make VAR=value target):"
	@awk '/^# /{ if (!c) c = substr($$0, 3); next } /^[A-Z_]+ *\?=/ && c { split($$0, v, " *[?]="); d = $$0; sub(/^[^=]*= */, "", d); printf "  %-10s %s%s\n", v[1], c, (d == "" ? "" : " [" d "]") } { c = "" }' Makefile

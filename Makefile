# SPDX-License-Identifier: GPL-2.0
#
# minimm: the two commands are `make run` and `make check` (see README.md).
#
#   make run      build everything (toolchain and test kernel too, when missing), boot the test
#                 kernel in QEMU, load minimm.ko, run the demo, show debugfs
#   make shell    the same VM with an interactive shell
#   make check    every test: host unit tests, KUnit, selftests in the VM, kernel-log check
#   make build    minimm.ko and the user programs only
#   make fuzz     the fuzzer on the debug kernel: FUZZ_OPS operations (default 1000000) from
#                 4 processes; FUZZ_SEED=N replays a run
#   make bench    minimm's allocator against the host's, in one VM run of the non-debug
#                 `bench` kernel flavour: alloc+free pairs of orders 0-3 and 9, bulk 64,
#                 scaling on one and two CPUs, slab objects of 64/256/1024 bytes from a
#                 cache and through kmalloc, slab bulk 16; each row in 5 interleaved rounds
#   make bench-host
#                 minimm's buddy allocator and page path against published Rust frame
#                 allocators, natively on the host (no VM): ns (and instructions) per operation
#   make kernel   rebuild the cached test kernel (FLAVOUR=debug|bench)
#   make fmt      format the Rust sources as the kernel does
#   make KDIR=/path/to/linux/build module
#                 build minimm.ko against your own Rust-enabled kernel build tree

MINIMM_CACHE ?= $(HOME)/.cache/minimm
export MINIMM_CACHE
export CARGO_TARGET_DIR ?= $(MINIMM_CACHE)/target
FLAVOUR ?= debug
KDIR ?=

SETUP := $(CURDIR)/qemu/setup
TARGET := x86_64-unknown-linux-gnu
# The toolchain environment (the rustc qemu/setup picks, RUST_LIB_SRC, libclang, bindgen on PATH).
TOOLENV = eval "$$($(SETUP) env)"

.PHONY: all build module user host-test run shell check fuzz bench bench-host kernel toolchain \
	fmt clean

all: build

build: module user

toolchain:
	@$(SETUP) toolchain

kernel:
	@$(SETUP) kernel $(FLAVOUR) force

# The module is rebuilt from scratch when the kernel it is built against changes
# (rust/.kdir records which one it was built for).
module:
ifneq ($(KDIR),)
	$(MAKE) -C $(KDIR) M=$(CURDIR) modules
else
	@kdir=$$($(SETUP) kdir $(FLAVOUR)) && $(TOOLENV) && \
	if [ "$$(cat rust/.kdir 2>/dev/null)" != "$$kdir" ]; then \
		$(MAKE) -s -C $$kdir M=$(CURDIR) clean; echo "$$kdir" > rust/.kdir; fi && \
	$(MAKE) -s -C $$kdir M=$(CURDIR) modules
endif

user:
	@$(SETUP) toolchain && $(TOOLENV) && \
	RUSTFLAGS="-C target-feature=+crt-static" cargo build -q --release --target $(TARGET) \
		-p minimm-selftests -p minimm-samples

host-test:
	@$(SETUP) toolchain && $(TOOLENV) && cargo test -q -p minimm-host -p minimm-uapi

run: build
	@qemu/run --no-build --flavour $(FLAVOUR) --exec 'minimm-info && echo && minimm-buddy && echo && minimm-vm 8 && echo && minimm-cache && echo && \
		cd /sys/kernel/debug/minimm && for f in buddyinfo zoneinfo vmstat; do echo "== $$f"; cat $$f; done'

shell: build
	@qemu/run --no-build --flavour $(FLAVOUR) --shell

check:
	@qemu/check

FUZZ_OPS ?= 1000000
FUZZ_SEED ?=
FUZZ_TIMEOUT ?= 10800
fuzz:
	@$(MAKE) -s build FLAVOUR=debug
	@qemu/run --no-build --flavour debug --timeout $(FUZZ_TIMEOUT) --exec 'minimm-fuzz \
		--ops $(FUZZ_OPS) --procs 4 --threads 3 $(if $(FUZZ_SEED),--seed $(FUZZ_SEED))'

BENCH_ITERATIONS ?= 20000
bench:
	@$(MAKE) -s build FLAVOUR=bench
	@qemu/run --no-build --flavour bench --exec 'cd /sys/kernel/debug/minimm && \
		echo "run $(BENCH_ITERATIONS)" > bench && cat bench && echo && minimm-vm 64'

# Not part of `make check` (which only runs its quick self-check, through `cargo test`).
# BENCH_HOST_ARGS: e.g. `--ops 400000 --runs 11`; `--instructions` needs valgrind.
BENCH_HOST_ARGS ?= --instructions
bench-host:
	@$(SETUP) toolchain && $(TOOLENV) && \
	cargo bench -q -p minimm-host --bench pages -- $(BENCH_HOST_ARGS)

# rustfmt with the kernel's configuration, over the module (through its `mod` items) and the
# user-space crates.
RUSTFMT_FILES = rust/minimm.rs rust/host/src/lib.rs rust/host/benches/pages/main.rs \
	selftests/src/main.rs selftests/src/fuzz/main.rs samples/src/bin/*.rs \
	include/uapi/rust/src/lib.rs include/uapi/rust/build.rs
fmt:
	@rustfmt --edition 2021 --config-path qemu/rustfmt.toml $(RUSTFMT_FILES)

clean:
	-@kdir=$$($(SETUP) kdir $(FLAVOUR) 2>/dev/null) && $(TOOLENV) && $(MAKE) -s -C $$kdir M=$(CURDIR) clean
	rm -f rust/.kdir
	cargo clean -q 2>/dev/null || true

# warren — build, test, demo and benchmark.
#
#   make demo    a whole cluster in namespaces: control plane, a relay worker behind a
#                home NAT, a direct worker in a VPC; warren nodes, mesh, ping, status
#   make test    everything CI runs: setup, fmt, clippy, unit/property and netns tests
#   make bench   data-plane benchmark against wireguard-go and boringtun-cli
#
# The lab (demo, netns tests, bench) needs root, /dev/net/tun and network
# namespaces; scripts/setup installs the packages it uses.

CARGO ?= cargo
export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: all build release setup fmt-check clippy test unit-test netns-test demo bench clean

all: build

build:
	$(CARGO) build --workspace --bins

release:
	$(CARGO) build --release -p warren

setup:
	scripts/setup

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Unit and property tests of the pure crates, then the end-to-end tests on
# network namespaces (which run the debug `warren` binary built by `build`).
unit-test:
	$(CARGO) test --workspace --exclude warren-netns-tests

netns-test: build
	$(CARGO) test -p warren-netns-tests

test: setup fmt-check clippy unit-test netns-test

demo: setup build
	scripts/demo

bench: setup release
	$(CARGO) run --release -p warren-bench -- --write docs/benchmarks.md

clean:
	$(CARGO) clean

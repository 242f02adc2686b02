# warren — build, test, demo and benchmark.
#
#   make demo    a whole cluster in namespaces: control plane, a relay worker behind a
#                home NAT, a direct worker in a VPC, each with its own dockerd; warren
#                nodes, mesh, ping, status, then a service deployed on both and answering
#   make test    everything CI runs: setup, fmt, clippy, unit/property and netns tests
#   make bench   every benchmark: data plane against wireguard-go and boringtun-cli,
#                relay and traversal, scheduler, deploy to healthy, agent footprint,
#                the ingress proxy against nginx, haproxy and caddy (--only proxy),
#                failover: a worker killed under load (--only failover),
#                rolling updates and drains under load (--only rollout)
#   make bench-baseline BASE=REV [BENCH_ARGS=...]
#                the same, with warren at git revision REV measured beside this
#                tree's warren, interleaved run by run (warren-bench --baseline)
#
# The lab (demo, netns tests, bench) needs root, /dev/net/tun and network
# namespaces; scripts/setup installs the packages it uses.

CARGO ?= cargo
export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: all build release setup fmt-check clippy test unit-test netns-test demo bench bench-baseline clean

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

# bench-baseline: warren at BASE (default: where this branch left main) is
# built by bench/build-baseline in a temporary git worktree, into
# $(CARGO_TARGET_DIR or target)/baseline/COMMIT (kept: a second run reuses
# it), then the benchmark runs with --baseline that binary. BENCH_ARGS go to
# warren-bench, e.g. BENCH_ARGS="--quick --only warren" or
# BENCH_ARGS="--write docs/benchmarks.md"; nothing is written by default.
BASE ?= $(shell git merge-base HEAD main 2>/dev/null)
BENCH_ARGS ?=

bench-baseline: setup release
	@test -n "$(BASE)" || { echo "make bench-baseline: name the revision to compare with, e.g. BASE=main~1" >&2; exit 2; }
	bin=$$(bench/build-baseline '$(BASE)') && \
	$(CARGO) run --release -p warren-bench -- --baseline "$$bin" $(BENCH_ARGS)

clean:
	$(CARGO) clean

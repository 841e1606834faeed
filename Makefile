# hwheal - make help lists the targets.
SHELL := /bin/bash
GO    ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
BIN   := bin
BINARIES := hwheal-agent hwheal-collector hwhealctl
# Go test flags for make test; CI runs it as root so privileged tests run.
TESTFLAGS ?= -race -count=1 -timeout 20m
FUZZTIME ?= 30s

.PHONY: help build test test-unit test-e2e generate check-generated lint bench fuzz run deps clean

help: ## list the targets
	@awk 'BEGIN{FS=":.*## "} /^[a-z-]+:.*## /{printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build the three binaries into bin/
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ $(addprefix ./cmd/,$(BINARIES))

deps: ## install what the tests need from Debian (CI and fresh machines)
	bash scripts/install-test-deps.sh

test: deps lint check-generated ## every test: unit, fuzz seed corpora, e2e (as root), generated code fresh
	$(GO) test $(TESTFLAGS) ./...

test-unit: ## unit tests only (skips test/e2e)
	$(GO) test $(TESTFLAGS) $$($(GO) list ./... | grep -v /test/e2e)

test-e2e: build ## whole-system tests: real processes, sockets and /dev/kmsg (root)
	$(GO) test -count=1 -v -timeout 15m ./test/e2e/...

# Generated code: protobuf (buf) and the eBPF objects with their Go loaders
# (bpf2go; needs clang and libbpf-dev, which make deps installs).
generate: ## regenerate protobuf code and eBPF objects (buf, bpf2go as go tools; clang)
	$(GO) tool buf generate
	$(GO) generate ./agent/...

check-generated: ## fail if generated code is stale (or a generated file is not committed, on a clean clone)
	@bash scripts/check-generated.sh

lint: ## go vet, gofmt, buf lint
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); test -z "$$out" || { echo "gofmt needed:"; echo "$$out"; exit 1; }
	$(GO) tool buf lint

bench: ## benchmarks: ingest throughput, kmsg-to-query latency, parsers, store
	$(GO) test -run '^$$' -bench . -benchmem -timeout 30m ./...

fuzz: ## run every fuzz target for FUZZTIME each
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

run: build ## run a collector (SQLite) and an agent on this host; remediation off
	bash scripts/run-local.sh

clean: ## remove build output and local state
	rm -rf $(BIN) .state

# Cost benchmarks (root): the agent against node_exporter + rasdaemon + smartd,
# and the agent under a /dev/kmsg flood. Figures, not pass/fail.
.PHONY: bench-agent bench-flood
BENCH_FLOOD_DURATION ?= 60s

bench-agent: ## agent vs node_exporter+rasdaemon+smartd: CPU s and peak RSS (root; BENCH_DURATION=10m)
	bash scripts/bench-agent.sh

bench-flood: build ## agent under a 10k records/s /dev/kmsg flood: CPU, RSS, shed, mid-flood fault latency (root)
	$(GO) run ./test/bench/flood --bin $(BIN) --duration $(BENCH_FLOOD_DURATION)

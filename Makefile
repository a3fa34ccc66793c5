# kubevirt-violin. Every target installs what it needs (hack/deps.sh), idempotently.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Node 24 comes from the `node` npm package; npm puts it first on PATH for
# `npm run`/`npx`, and so do we for every recipe here.
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)
export VIOLIN_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/kubevirt-violin

.PHONY: help deps build lint typecheck test test-unit test-integration test-e2e demo bench fuzz chaos clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

deps: ## install Debian packages, npm dependencies and Go-built binaries (idempotent)
	@hack/deps.sh all

build: ## compile TypeScript to dist/
	@hack/deps.sh npm
	tsc -p tsconfig.json

typecheck:
	@hack/deps.sh npm
	tsc -p tsconfig.test.json

lint: ## eslint, import rules (no cycles; src/ never imports lab/, bench/, test/), prettier, shellcheck
	@hack/deps.sh npm apt
	eslint .
	depcruise src lab bench test --config .dependency-cruiser.mjs --output-type err
	prettier --check .
	shellcheck -x hack/*.sh .ci/run

test: deps typecheck lint ## every test: unit, integration (real API server, OVS, QEMU), e2e on the lab
	@mkdir -p out
	vitest run --reporter=default --reporter=json --outputFile.json=out/test-results.json; \
	  status=$$?; node hack/test-summary.mjs out/test-results.json; exit $$status

test-unit:
	@hack/deps.sh npm
	vitest run --project unit

test-integration: deps
	vitest run --project integration

test-e2e: deps
	vitest run --project e2e

demo: deps ## run the whole system on the local lab: snapshot to S3, crash, restore in a second cluster, check
	tsx lab/cli/main.ts demo

bench: deps build ## benchmarks side by side with their baselines; writes out/bench and docs/benchmarks.md
	tsx bench/main.ts

fuzz: deps ## fuzz the OpenFlow, OVSDB and bundle-manifest decoders (FUZZ_DURATION seconds, default 3600)
	tsx test/fuzz/run.ts --duration $(or $(FUZZ_DURATION),3600) --target $(or $(FUZZ_TARGET),all) $(if $(FUZZ_SEED),--seed $(FUZZ_SEED))

chaos: deps ## kill components during snapshots and restores on the lab (CHAOS_RUNS, default 30; CHAOS_SEED); writes out/chaos.{json,md}
	tsx lab/chaos/main.ts --runs $(or $(CHAOS_RUNS),30) $(if $(CHAOS_SEED),--seed $(CHAOS_SEED))

clean:
	rm -rf dist out

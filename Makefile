# salve: every entry point a developer or CI needs.
CARGO ?= cargo
# Benchmarks run pinned to one core when taskset (util-linux) is there.
PIN := $(shell command -v taskset >/dev/null 2>&1 && echo taskset -c 0)

.PHONY: all build test test-setup lint fmt schema crd bench bench-restart bench-lb demo mutants clean

all: build

build:
	$(CARGO) build --release

# Everything CI runs: formatting, lints, unit, property, golden, CLI, crash, lab and
# end-to-end tests. Installs what it needs first (Debian packages, rustfmt, clippy).
test: test-setup lint
	$(CARGO) test --workspace --all-targets
	$(CARGO) test --workspace --doc

test-setup:
	scripts/setup-test.sh

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

# Regenerate the committed JSON Schema after changing the policy model.
schema:
	$(CARGO) run --quiet -- schema > deploy/schema/remediationpolicy.schema.json

# Regenerate the committed CustomResourceDefinition after changing the policy model.
crd:
	$(CARGO) run --quiet -- crd > deploy/kubernetes/remediationpolicy.crd.json
	cp deploy/kubernetes/remediationpolicy.crd.json charts/salve/crds/remediationpolicy.crd.json

# The log benchmark compares against fail2ban-regex and grep: install them first
# (without letting apt start a fail2ban server on the host). The operator benchmark is
# not pinned: the operator runs on two workers, as in a cluster; nor is the scrape
# benchmark, whose client stands for a Prometheus on a core of its own.
bench:
	-scripts/install-bench-packages.sh
	$(CARGO) bench --bench engine --no-run
	$(PIN) $(CARGO) bench --bench engine
	$(CARGO) bench --bench logmatch --no-run
	$(PIN) $(CARGO) bench --bench logmatch
	$(CARGO) bench --bench operator --no-run
	$(CARGO) bench --bench operator
	$(CARGO) bench --bench scrape --no-run
	$(CARGO) bench --bench scrape

# Restart times after a crash of the whole PHP-FPM pool, salve next to systemd's own
# Restart= and Monit, and the agent's idle RSS and CPU, all in one lab (needs root;
# takes a few minutes). Not pinned: the restarters, the lab and the probe need both cores.
bench-restart:
	scripts/install-lab-packages.sh
	$(CARGO) bench --bench restart -- --bench

# Client-visible 5xx while a node's pool is SIGKILLed under 200 requests/s through
# haproxy: haproxy alone with its best health-check settings next to salve draining the
# node on systemd's D-Bus push, in one lab of two nodes (needs root; about two minutes).
bench-lb:
	scripts/install-lab-packages.sh
	$(CARGO) bench --bench lb -- --bench

# Mutation testing of the engine and the policy validation pass: every mutant of
# crates/salve-core/src/engine/ and policy/{validate,rules}.rs must be caught by
# salve-core's own tests (unit, properties, the reference model, the rule table). Survivors
# and why they cannot be caught: crates/salve-core/mutants-survivors.md. Not part of
# `make test` (about an hour on 2 cores).
MUTANTS_VERSION := 27.1.0
mutants:
	command -v cargo-mutants >/dev/null 2>&1 || $(CARGO) install --locked cargo-mutants@$(MUTANTS_VERSION)
	$(CARGO) mutants --package salve-core --profile mutants --jobs 1 --timeout 30 \
		--file 'crates/salve-core/src/engine/**' \
		--file 'crates/salve-core/src/policy/validate.rs' \
		--file 'crates/salve-core/src/policy/rules.rs' \
		--exclude 'crates/salve-core/src/engine/tests/**' \
		--exclude 'crates/salve-core/src/engine/properties.rs' \
		--output target

# Boots the lab, breaks PHP-FPM, shows salve healing it and the journal (needs root).
demo:
	scripts/demo.sh

clean:
	$(CARGO) clean

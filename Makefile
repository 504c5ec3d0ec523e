# salve: every entry point a developer or CI needs.
CARGO ?= cargo
# Benchmarks run pinned to one core when taskset (util-linux) is there.
PIN := $(shell command -v taskset >/dev/null 2>&1 && echo taskset -c 0)

.PHONY: all build test lint fmt schema bench demo clean

all: build

build:
	$(CARGO) build --release

# Everything CI runs: formatting, lints, unit, property, golden, CLI and crash tests.
test: lint
	$(CARGO) test --all-targets
	$(CARGO) test --doc

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt

# Regenerate the committed JSON Schema after changing the policy model.
schema:
	$(CARGO) run --quiet -- schema > deploy/schema/remediationpolicy.schema.json

bench:
	$(CARGO) bench --bench engine --no-run
	$(PIN) $(CARGO) bench --bench engine

demo:
	@echo "== salve demo"
	@echo "The live demo (a lab with systemd, nginx and PHP-FPM, salve healing a real crash)"
	@echo "is coming with the systemd agent. Meanwhile, here is the same engine replaying a"
	@echo "PHP-FPM crash loop on a virtual clock: restart, back off, open the circuit, escalate."
	@echo
	$(CARGO) build --quiet
	target/debug/salve check policies
	@echo
	@rm -f target/demo-journal.jsonl
	target/debug/salve simulate --policies tests/fixtures/simulate/crash-loop/policies \
		--events tests/fixtures/simulate/crash-loop/events.jsonl --journal target/demo-journal.jsonl
	@echo
	target/debug/salve history --journal target/demo-journal.jsonl

clean:
	$(CARGO) clean

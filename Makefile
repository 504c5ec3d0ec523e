# salve — every entry point a developer or CI needs.
CARGO ?= cargo
SALVE := target/release/salve

.PHONY: all build test lint fmt schema bench demo deps clean

all: build

build:
	$(CARGO) build --release

# Everything CI runs: formatting, lints, unit, property, golden and end-to-end tests.
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
	$(CARGO) bench --bench engine

demo:
	@echo "make demo: the live demo (lab + agent healing PHP-FPM) is coming with the systemd agent."
	@echo "Meanwhile, the same engine replays a PHP-FPM crash loop on a virtual clock:"
	$(CARGO) run --quiet -- simulate --policies tests/fixtures/crash-loop/policies --events tests/fixtures/crash-loop/events.jsonl

clean:
	$(CARGO) clean

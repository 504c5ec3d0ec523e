#!/usr/bin/env bash
# `make demo`: boot the lab, break PHP-FPM, show the 502, start salve and watch it heal,
# break it again while salve runs, print the journal, tear everything down.
# Needs root (the lab boots systemd in a PID namespace); touches nothing outside the
# project's target/ folder (see README, "The lab").
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "make demo needs root: the lab runs systemd in a PID namespace. Run: sudo make demo" >&2
    exit 1
fi

if [ -t 1 ]; then
    step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
    step() { printf '\n== %s\n' "$*"; }
fi

step "installing the lab's Debian packages (nginx, php8.2-fpm) if missing"
scripts/install-lab-packages.sh

step "building salve"
cargo build --release --quiet
SALVE=target/release/salve
DEMO=$PWD/target/demo
LAB=$DEMO/lab
rm -rf "$DEMO"
mkdir -p "$DEMO"

AGENT_PID=
cleanup() {
    if [ -n "$AGENT_PID" ] && kill -0 "$AGENT_PID" 2>/dev/null; then
        kill -TERM "$AGENT_PID"
        wait "$AGENT_PID" 2>/dev/null || true
    fi
    "$SALVE" lab down --dir "$LAB" >/dev/null 2>&1 || true
}
trap cleanup EXIT

step "booting the lab: systemd + nginx (127.0.0.1:8480) + php8.2-fpm, all inside a sandbox"
"$SALVE" lab up --dir "$LAB" --port 8480

step "breaking it with nobody watching: SIGKILL of the whole PHP-FPM pool"
"$SALVE" lab break crash --dir "$LAB"
echo "ping.php now answers a 502 Bad Gateway, and nothing will fix it:"
"$SALVE" lab status --dir "$LAB"

step "starting salve agent with the PHP-FPM policies from policies/ (it reads the state at start and heals)"
BUS=$("$SALVE" lab bus --dir "$LAB")
# Only the policies for this failure: the others (an edge watcher among them) would act
# on the same 502 and crowd the journal.
rm -rf "$DEMO/policies"
mkdir -p "$DEMO/policies"
cp policies/php-fpm-down.yaml policies/php-fpm-not-enabled.yaml "$DEMO/policies/"
"$SALVE" agent --policies "$DEMO/policies" --bus "$BUS" --journal "$DEMO/journal.jsonl" \
    >"$DEMO/agent.log" 2>&1 &
AGENT_PID=$!
for _ in $(seq 1 100); do
    if grep -q '"policies reloaded"\|attempt finished' "$DEMO/agent.log" 2>/dev/null; then break; fi
    sleep 0.1
done
"$SALVE" lab status --dir "$LAB"

step "breaking it again at once, while salve watches"
"$SALVE" lab break crash --dir "$LAB"
echo "The policy's guard allows one attempt per 10 s (cooldown), doubling after failures,"
echo "and at most 3 per 10 min before it stops and escalates: salve waits, then heals."
healed=no
for _ in $(seq 1 30); do
    if "$SALVE" lab status --dir "$LAB" | grep -q 'HTTP 200'; then healed=yes; break; fi
    sleep 0.5
done
"$SALVE" lab status --dir "$LAB"
[ "$healed" = yes ] || { echo "salve did not heal the lab within 15 s; see $DEMO/agent.log" >&2; exit 1; }

step "what salve decided and did (salve history)"
"$SALVE" history --journal "$DEMO/journal.jsonl"

step "the agent's log"
cat "$DEMO/agent.log"

step "a config fault salve diagnoses: nginx's fastcgi_pass pointing where no pool listens"
"$SALVE" lab break fastcgi-mismatch --dir "$LAB"
# Exit code 1 means "findings": expected here.
"$SALVE" diagnose --nginx-conf "$LAB/nginx.conf" --fpm-conf "$LAB/php-fpm.conf" --bus "$BUS" || true
"$SALVE" lab repair --dir "$LAB"

step "tearing the lab down"

#!/usr/bin/env bash
# Installs the Debian packages `salve lab` needs: nginx, php8.2-fpm (+ cli), dbus, systemd,
# and monit, which `make bench-restart` runs inside the lab to compare restart times.
#
# Debian's postinst scripts start every installed service through invoke-rc.d. On a
# shared machine that would start a host nginx on port 80, a host PHP-FPM pool and a
# host monit, which the lab must never do: the lab runs its own copies inside a sandbox.
# A policy-rc.d that exits 101 ("action forbidden") makes invoke-rc.d skip those
# starts. We create it only when none exists (a container image may ship its own) and
# remove only the one we made.
#
# Idempotent: when every package is already installed, apt is not touched at all.
set -euo pipefail

PACKAGES=(nginx php8.2-fpm php8.2-cli dbus systemd monit)
POLICY=/usr/sbin/policy-rc.d

missing=()
for p in "${PACKAGES[@]}"; do
    if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)" != installed ]; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "lab packages present: ${PACKAGES[*]}"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages: ${missing[*]}; run this script as root: sudo $0" >&2
    exit 1
fi

created_policy=no
cleanup() {
    if [ "$created_policy" = yes ]; then
        rm -f "$POLICY"
    fi
}
trap cleanup EXIT
# An interrupted install still removes the policy file, through the EXIT trap.
trap 'exit 130' INT TERM
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\n# salve: keep apt from starting services on this host\nexit 101\n' > "$POLICY"
    chmod 0755 "$POLICY"
    created_policy=yes
fi

export DEBIAN_FRONTEND=noninteractive
echo "installing: ${missing[*]}"
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"

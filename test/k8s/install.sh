#!/bin/sh
# Installs the Kubernetes schema validator's npm packages (pinned by
# package-lock.json) into test/k8s/node_modules, for `make test`.
# Node.js comes from Debian (scripts/debian-packages-test lists nodejs);
# Debian ships npm as its own package, which cannot be installed next to a
# Node.js build that bundles npm, so it is installed only when missing.
set -eu
cd "$(dirname "$0")"
if ! command -v npm >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ]; then
                apt-get install -y --no-install-recommends npm
        else
                echo "test/k8s/install.sh: npm not found (apt-get install npm)" >&2
                exit 1
        fi
fi
echo "test/k8s: node $(node --version), npm $(npm --version)"
npm ci --no-audit --no-fund

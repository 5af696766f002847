#!/usr/bin/env bash
# Installs the real components the tests run against into .venv:
# sglang-router (PyPI), pinned. Idempotent and quick when already done.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUTER_VERSION=0.3.2
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
if ! .venv/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('sglang-router') != '$ROUTER_VERSION')" 2>/dev/null; then
    .venv/bin/pip install --quiet --disable-pip-version-check "sglang-router==$ROUTER_VERSION" >&2
fi

#!/usr/bin/env bash
# System packages the tests use: Debian's chromium (the report test renders
# report.html headless). Installed with apt-get when missing and possible.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || [ -n "${SGLAB_CHROMIUM:-}" ]; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing chromium (Debian package) for the report test" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
elif command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    sudo apt-get update -qq >&2
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
else
    echo "chromium is missing: install Debian's chromium package, or set SGLAB_CHROMIUM to a Chromium binary" >&2
    exit 1
fi

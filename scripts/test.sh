#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this script):
# formatting, lints, then every unit and end-to-end test in release mode
# (the end-to-end tests spawn sglab, sim nodes, hostile plugins and the real
# sglang-router, which scripts/python-deps.sh installs into .venv, and headless
# Chromium for the report test, which scripts/system-deps.sh installs).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/toolchain.sh
scripts/python-deps.sh
scripts/system-deps.sh
echo "== cargo fmt --check" >&2
cargo fmt --all --check
echo "== cargo clippy" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test" >&2
cargo test --workspace --release --locked

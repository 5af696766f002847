#!/usr/bin/env bash
# Quick start: build sglab (with its built-in plugins), install it on PATH
# (cargo's bin directory, ~/.cargo/bin, reusing this build), and run
# examples/quickstart.toml: two simulated SGLang nodes, round-robin routing.
# Prints a summary table and where the results went.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/toolchain.sh
cargo build --release --locked -p sglab
# --target-dir reuses the build above instead of compiling everything again.
cargo install --path host/sglab --locked --target-dir target --quiet
echo "installed $(command -v sglab || echo "sglab into cargo's bin directory (add ~/.cargo/bin to PATH)")" >&2
target/release/sglab run examples/quickstart.toml "$@"

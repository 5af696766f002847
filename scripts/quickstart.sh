#!/usr/bin/env bash
# Quick start: build sglab (with its built-in plugins) and run
# examples/quickstart.toml: two simulated SGLang nodes, round-robin routing.
# Prints a summary table and where the results went.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/toolchain.sh
cargo run --release --locked -- run examples/quickstart.toml "$@"

#!/usr/bin/env bash
# The Python plugin benchmark (docs/performance.md): builds the Python
# least-inflight example with `sglab plugin build` (componentize-py from
# .venv, as scripts/python-deps.sh installs it), then runs
# `cargo bench -p sglab --bench python_plugin` against it.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p sglab --locked
out=target/python-plugins/bench-least-inflight.wasm
SGLAB_PYTHON=${SGLAB_PYTHON:-.venv/bin/python} target/release/sglab plugin build examples/python/least-inflight --out "$out" >/dev/null
SGLAB_BENCH_PY_ROUTER=$(realpath "$out") cargo bench -p sglab --bench python_plugin --locked

#!/usr/bin/env bash
# Makes sure the pinned toolchain (rust-toolchain.toml) has what sglab needs.
# These machines set RUSTUP_AUTO_INSTALL=0, so rustup adds nothing by itself.
# Every step is idempotent and fast when already done.
set -euo pipefail
cd "$(dirname "$0")/.."
channel=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
if command -v rustup >/dev/null 2>&1; then
    rustup toolchain install "$channel" --profile minimal --component rustfmt,clippy --target wasm32-wasip2 >&2
    rustup target add --toolchain "$channel" wasm32-wasip2 >&2
    rustup component add --toolchain "$channel" rustfmt clippy >&2
else
    echo "rustup not found: make sure Rust $channel with the wasm32-wasip2 target, rustfmt and clippy is installed" >&2
fi

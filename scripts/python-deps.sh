#!/usr/bin/env bash
# Installs the real components the tests run against into .venv, pinned:
# sglang-router (PyPI), componentize-py (for the Python plugins), llama.cpp's OpenAI server (llama-cpp-python[server],
# built from source by pip: a few minutes on a fresh machine, then pip's
# wheel cache) with gguf to write its test model, and SGLang's benchmark
# client. Idempotent and quick when already done.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUTER_VERSION=0.3.2
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
if ! .venv/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('sglang-router') != '$ROUTER_VERSION')" 2>/dev/null; then
    .venv/bin/pip install --quiet --disable-pip-version-check "sglang-router==$ROUTER_VERSION" >&2
fi

# componentize-py builds the Python plugins (examples/python/, the hostile
# Python test plugin) into components; its wheel is self-contained.
COMPONENTIZE_PY_VERSION=0.25.1
if ! .venv/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('componentize-py') != '$COMPONENTIZE_PY_VERSION')" 2>/dev/null; then
    .venv/bin/pip install --quiet --disable-pip-version-check "componentize-py==$COMPONENTIZE_PY_VERSION" >&2
fi

LLAMA_CPP_VERSION=0.3.36
GGUF_VERSION=0.19.0
if ! .venv/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('llama-cpp-python') != '$LLAMA_CPP_VERSION' or m.version('gguf') != '$GGUF_VERSION')" 2>/dev/null \
    || ! .venv/bin/python -c "import llama_cpp.server.app" 2>/dev/null; then
    echo "installing llama-cpp-python[server]==$LLAMA_CPP_VERSION (compiles llama.cpp: a few minutes the first time)" >&2
    .venv/bin/pip install --quiet --disable-pip-version-check \
        "llama-cpp-python[server]==$LLAMA_CPP_VERSION" "gguf==$GGUF_VERSION" >&2
fi

# SGLang's Rust benchmark client, from the sglang wheel (no dependencies are
# installed: only the extension module is extracted and loaded on its own).
SGLANG_VERSION=0.5.23
BENCH_DIR=.venv/sglang-bench
if ! ls "$BENCH_DIR"/sglang/srt/rust_extensions/_bench*.so >/dev/null 2>&1; then
    rm -rf .venv/wheels && mkdir -p .venv/wheels
    .venv/bin/pip download --quiet --disable-pip-version-check --no-deps -d .venv/wheels "sglang==$SGLANG_VERSION" >&2
    .venv/bin/python - "$BENCH_DIR" .venv/wheels/sglang-"$SGLANG_VERSION"-*.whl <<'PY'
import sys, zipfile
dest, wheel = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.startswith("sglang/srt/rust_extensions/_bench")]
    if not names:
        sys.exit(f"{wheel} has no sglang/srt/rust_extensions/_bench module")
    for n in names:
        z.extract(n, dest)
PY
    rm -rf .venv/wheels
fi

#!/usr/bin/env python3
"""Run SGLang's own Rust benchmark client (`sglang-bench`) on its own.

The client ships inside the PyPI `sglang==0.5.23` wheel as the extension
module `sglang/srt/rust_extensions/_bench*.so`. scripts/python-deps.sh
extracts it into .venv/sglang-bench/; this loads that module directly (not
the rest of SGLang) and forwards the command line to it:

    .venv/bin/python scripts/sglang_bench.py --backend sglang --base-url URL \
        --dataset-name random-ids --tokenizer /tmp/sglab-sim-model ...
"""

import glob
import importlib.util
import os
import sys

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".venv", "sglang-bench")
found = glob.glob(os.path.join(root, "sglang", "srt", "rust_extensions", "_bench*.so"))
if not found:
    sys.exit(f"sglang-bench is not installed under {root}: run scripts/python-deps.sh")
spec = importlib.util.spec_from_file_location("sglang.srt.rust_extensions._bench", found[0])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
module.run_argv(["sglang-bench"] + sys.argv[1:])

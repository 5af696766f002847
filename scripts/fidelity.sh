#!/usr/bin/env bash
# Virtual vs real time on the simulator (docs/virtual-time.md): runs
# examples/quickstart.toml and the plugin points of
# examples/routing-compare.toml in both clocks and prints, per point, the
# means and p99s of TTFT, TPOT and E2E (ms), the counts by status and the
# prefix-cache hit rate.   scripts/fidelity.sh [sglab binary] [--set ...]
set -euo pipefail
bin=$(realpath "${1:-target/release/sglab}"); shift || true
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
# routing-compare without its sglang-router points (not available in virtual time).
python3 - "$root/examples/routing-compare.toml" > routing.toml <<'P'
import sys
blocks = open(sys.argv[1]).read().split("[[sweep.points]]")
print("[[sweep.points]]".join(b for b in blocks if "sglang-router\"\n" not in b or b is blocks[0]))
P
for clock in real virtual; do
  "$bin" run "$root/examples/quickstart.toml" --clock $clock -q --resume "q-$clock" --point 0 "$@" > /dev/null
  "$bin" run routing.toml --clock $clock -q --resume "r-$clock" "$@" > /dev/null
done
python3 - <<'P'
import json, glob, os
def load(d):
    s = json.load(open(d + "/summary.json"))["metrics"]
    row = {k: (s[k]["mean"] * 1e3, s[k]["p99"] * 1e3) for k in ("ttft", "tpot", "total_latency")}
    return row, s["requests"], s.get("prefix_cache_hit_rate") or 0.0
print("| point | clock | TTFT mean | TTFT p99 | TPOT mean | TPOT p99 | E2E mean | E2E p99 | ok/err/cancel | hit rate |")
print("|---|---|---|---|---|---|---|---|---|---|")
for prefix in ("q", "r"):
    for real in sorted(glob.glob(f"{prefix}-real/0*")):
        name = os.path.basename(real)
        for clock, d in (("real", real), ("virtual", f"{prefix}-virtual/{name}")):
            m, n, h = load(d)
            print(f"| {name[4:] or 'quickstart'} | {clock} | " + " | ".join(f"{m[k][0]:.2f} | {m[k][1]:.2f}" for k in ("ttft", "tpot", "total_latency"))
                  + f" | {n['ok']}/{n['error']}/{n['cancelled']} | {h:.3f} |")
P

#!/usr/bin/env bash
# Virtual-time benchmark (docs/performance.md): three experiments on one
# core (taskset -c 0), each reported from its summary.json (simulated time,
# speed-up, forward passes, tokens) and /usr/bin/time (peak RSS, total wall).
#   scripts/bench-virtual.sh [sglab binary]
set -euo pipefail
bin=$(realpath "${1:-target/release/sglab}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
common() { printf '[experiment]\nname = "%s"\nclock = "virtual"\nseed = 1\n[results]\ntimeline_interval_s = 1.0\n' "$1"; }
cat > a.toml <<T
$(common a)
[workload]
dataset = "random"
num_requests = 10000
input_len = 512
output_len = 128
range_ratio = 1.0
[arrival]
process = "poisson"
rate = 40.0
[[nodes]]
launch = "sim"
args = ["--profile", "llama-3.1-8b-h100"]
T
cat > b.toml <<T
$(common b)
[workload]
dataset = "shared-prefix"
num_groups = 40
prompts_per_group = 250
system_prompt_len = 2048
question_len = 256
output_len = 128
[arrival]
process = "poisson"
rate = 140.0
[[nodes]]
launch = "sim"
replicas = 4
args = ["--profile", "llama-3.1-8b-h100"]
[routing]
plugin = "cache-aware"
T
sed -e 's/name = "a"/name = "c"/' -e 's/num_requests = 10000/num_requests = 100000/' a.toml > c.toml
printf '%-4s %9s %9s %9s %9s %12s %12s %9s %9s\n' case wall_s loop_s sim_s speedup passes/s tokens/s after_s rss_mib
for c in a b c; do
  /usr/bin/time -f '%e %M' -o "$c.time" taskset -c 0 "$bin" run "$c.toml" -q > "$c.out" 2> "$c.err" || { cat "$c.err"; exit 1; }
  s=$(ls -d results/$c/*/summary.json)
  read -r total rss < "$c.time"
  python3 - "$s" "$total" "$rss" "$c" <<'P'
import json, sys
s = json.load(open(sys.argv[1])); total = float(sys.argv[2]); rss = int(sys.argv[3]) / 1024
v = s["virtual_time"]; h = s["host"]; loop = h["wall_s"]
print(f'{sys.argv[4]:<4} {total:9.2f} {loop:9.3f} {v["simulated_s"]:9.1f} {h["speedup"]:9.0f} '
      f'{v["forward_passes"]/loop:12.0f} {v["simulated_tokens"]/loop:12.3e} {total-loop:9.2f} {rss:9.1f}')
P
done

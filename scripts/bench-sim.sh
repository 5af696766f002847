#!/usr/bin/env bash
# Benchmark (not a test): how many concurrent streams one `sglab sim` process
# sustains with its engine waking up less than 1 ms late, and how exact
# --time-scale is. Prints a table; numbers go to docs/performance.md.
#
#   scripts/bench-sim.sh [CONCURRENCY...]     (default: 500 1000 2000 5000)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q
SGLAB=target/release/sglab
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT

SIM_CPU=()
# shellcheck source=scripts/sim-lib.sh
source scripts/sim-lib.sh

lag() { # prints "count mean_ms max_ms over_1ms"
    curl -s "$URL/server_info" | python3 -c 'import json,sys; l=json.load(sys.stdin)["sglab_sim_step_lag"]; print(l["count"], "%.3f" % (l["mean_s"]*1e3), "%.3f" % (l["max_s"]*1e3), l["over_1ms"])'
}

echo "== streams vs engine wake-up lag (profile llama-3.1-8b-h100, 128 output tokens, closed loop)"
printf "%-8s %-8s %-10s %-10s %-10s %-10s %-10s\n" streams wakeups lag_mean lag_max over_1ms req/s tok/s
for n in "${@:-500 1000 2000 5000}"; do
    start_sim --profile llama-3.1-8b-h100
    cat > "$work/exp.toml" <<TOML
[experiment]
name = "bench-sim"
output_dir = "$work/results"
[workload]
num_requests = $((n * 2))
input_len = 256
output_len = 128
[arrival]
process = "closed-loop"
concurrency = $n
TOML
    "$SGLAB" run "$work/exp.toml" --url "$URL" -q > "$work/run.out"
    read -r count mean max over < <(lag)
    rps=$(sed -n 's/^throughput *\([0-9.]*\) req\/s.*/\1/p' "$work/run.out")
    tps=$(sed -n 's/^throughput .*, \([0-9.]*\) output tok\/s.*/\1/p' "$work/run.out")
    printf "%-8s %-8s %-10s %-10s %-10s %-10s %-10s\n" "$n" "$count" "${mean}ms" "${max}ms" "$over" "$rps" "$tps"
    stop_sim
done

echo
echo "== --time-scale accuracy (fixed profile, ttft 200 ms, itl 20 ms, 50 tokens; reported in simulated units)"
printf "%-8s %-14s %-14s %-12s\n" scale e2e_sim_s wall_s wall/e2e
for scale in 1 0.1; do
    start_sim --profile fixed --ttft-ms 200 --itl-ms 20 --time-scale "$scale"
    t0=$(date +%s.%N)
    e2e=$(curl -s "$URL/generate" -d '{"input_ids":[1,2,3],"sampling_params":{"max_new_tokens":50}}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["meta_info"]["e2e_latency"])')
    t1=$(date +%s.%N)
    python3 -c "print('%-8s %-14.4f %-14.4f %-12.4f' % ($scale, $e2e, $t1-$t0, ($t1-$t0)/$e2e))"
    stop_sim
done

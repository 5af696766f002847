#!/usr/bin/env bash
# Measurement accuracy and throughput, sglab vs SGLang's own Rust client
# (sglang-bench, from the sglang 0.5.23 wheel), against the same
# `sglab sim --profile fixed` server in the same script.
#
#   scripts/compare-sglang-bench.sh [CONCURRENCY...]    (default: 100 500 1000)
#   PIN=1 scripts/compare-sglang-bench.sh ...           (server on CPU 0, clients on CPU 1)
#   SIM_ARGS="--incremental-streaming-output" ...       (extra server flags)
#
# Exact answers: TTFT 50 ms, ITL/TPOT 10 ms (100 output tokens). Prints a
# markdown table (errors = measured - exact) for docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/python-deps.sh
cargo build --release --locked -q
SGLAB=target/release/sglab
PY=.venv/bin/python
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT

SIM_CPU=(); CLIENT_CPU=()
if [ "${PIN:-0}" = 1 ]; then SIM_CPU=(taskset -c 0); CLIENT_CPU=(taskset -c 1); fi

# shellcheck source=scripts/sim-lib.sh
source scripts/sim-lib.sh

sglab_run() { # concurrency num output_len -> prints "mean_ttft p99_ttft mean_tpot req_s"
    cat > "$work/exp.toml" <<TOML
[experiment]
name = "compare"
output_dir = "$work/results"
[workload]
num_requests = $2
input_len = 128
output_len = $3
[arrival]
process = "closed-loop"
concurrency = $1
TOML
    "${CLIENT_CPU[@]}" "$SGLAB" run "$work/exp.toml" --url "$URL" -q > /dev/null
    local sum; sum=$(ls -td "$work"/results/compare/* | head -1)/summary.json
    python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["metrics"]; t=m["ttft"]; p=m["tpot"]; print("%.3f %.3f %.4f %.1f" % (t["mean"]*1e3, t["p99"]*1e3, (p or {"mean":float("nan")})["mean"]*1e3, m["request_throughput"]))' "$sum"
}

bench_run() { # concurrency num output_len -> same fields
    rm -f "$work/bench.jsonl"
    HF_HUB_OFFLINE=1 "${CLIENT_CPU[@]}" "$PY" scripts/sglang_bench.py --backend sglang --base-url "$URL" --dataset-name random-ids \
        --tokenizer "${TMPDIR:-/tmp}/sglab-sim-model" --tokenize-prompt --vocab-size 6 --disable-retokenize \
        --num-prompts "$2" --random-input-len 128 --random-output-len "$3" --random-range-ratio 1 \
        --max-concurrency "$1" --warmup-requests 1 --disable-tqdm --output-file "$work/bench.jsonl" > "$work/bench.log" 2>&1
    python3 -c 'import json,sys; r=json.loads(open(sys.argv[1]).read().splitlines()[-1]); print("%.3f %.3f %.4f %.1f" % (r["mean_ttft_ms"], r["p99_ttft_ms"], r.get("mean_tpot_ms", float("nan")), r["request_throughput"]))' "$work/bench.jsonl"
}

echo "| streams | client | mean TTFT error (ms) | p99 TTFT error (ms) | mean TPOT error (ms) | req/s |"
echo "|---|---|---|---|---|---|"
for n in "${@:-100 500 1000}"; do
    for client in sglab sglang-bench; do
        # shellcheck disable=SC2086
        start_sim --profile fixed ${SIM_ARGS:-} --ttft-ms 50 --itl-ms 10
        if [ "$client" = sglab ]; then read -r mt pt tp rps < <(sglab_run "$n" $((n * 2)) 100)
        else read -r mt pt tp rps < <(bench_run "$n" $((n * 2)) 100); fi
        stop_sim
        python3 -c "print('| $n | $client | %+.3f | %+.3f | %+.4f | %s |' % ($mt-50, $pt-50, $tp-10, '$rps'))"
    done
done
echo
echo "1-token responses (ttft 0, 200 streams, 20000 requests): requests per second"
for client in sglab sglang-bench; do
    # shellcheck disable=SC2086
    start_sim --profile fixed ${SIM_ARGS:-} --ttft-ms 0 --itl-ms 0
    if [ "$client" = sglab ]; then read -r _ _ _ rps < <(sglab_run 200 20000 1)
    else read -r _ _ _ rps < <(bench_run 200 20000 1); fi
    stop_sim
    echo "| $client | $rps req/s |"
done

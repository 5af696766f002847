# Shared by the benchmark scripts (source it): start and stop one `sglab sim`.
# Needs $SGLAB (the binary) and $work (a scratch directory); set SIM_CPU=(taskset -c N)
# to pin it. start_sim ARGS... sets $URL and $SIM_PID.

start_sim() {
    "${SIM_CPU[@]}" "$SGLAB" sim --port 0 "$@" > "$work/sim.out" 2> "$work/sim.err" &
    SIM_PID=$!
    for _ in $(seq 1 100); do
        URL=$(sed -n 's/^listening on //p' "$work/sim.out")
        [ -n "$URL" ] && return 0
        sleep 0.05
    done
    echo "sim did not start: $(cat "$work/sim.err")" >&2
    exit 1
}

stop_sim() {
    kill "$SIM_PID"
    wait "$SIM_PID" 2>/dev/null || true
}

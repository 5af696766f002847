#!/usr/bin/env python3
"""Concurrency analysis of one sglab run directory (docs/metrics.md).

Prints, from the run's own files:
- the exact time-average and maximum of requests in flight (timeline.csv)
  next to SGLang's benchmark-client definitions computed on the same
  requests: `concurrency` = sum(E2E)/duration and `max_concurrent_requests`
  from 1-second buckets;
- per node, the client-derived running(t), prefill_waiting(t) and
  decoding(t) at each server scrape, against the server's own
  num_running_reqs and num_queue_reqs (server_metrics.csv).

Usage: scripts/concurrency_analysis.py RUN_DIR
"""

import bisect
import csv
import json
import sys
from pathlib import Path


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def main(run):
    run = Path(run)
    reqs = [r for r in rows(run / "requests.csv") if r["status"] == "ok"]
    summary = json.loads((run / "summary.json").read_text())["metrics"]
    duration = summary["duration_s"]
    timeline = rows(run / "timeline.csv")
    times = [float(r["time"]) for r in timeline]

    exact_max = max(int(r["running"]) for r in timeline)
    starts = [float(r["to_server_time"]) for r in reqs]
    ends = [float(r["finish_time"]) for r in reqs]
    # SGLang: concurrency = sum(latency) / duration over the benchmark's span.
    span = max(ends) - min(starts)
    sglang_concurrency = sum(e - s for s, e in zip(starts, ends)) / span
    # SGLang: every request counts in each integer second it touches.
    base = min(starts)
    buckets = {}
    for s, e in zip(starts, ends):
        for b in range(int(s - base), int(e - base) + 1):
            buckets[b] = buckets.get(b, 0) + 1
    print(f"requests ok                         {len(reqs)}")
    print(f"sglab mean in flight (exact)        {summary['mean_concurrency']:.2f}  (over {duration:.3f} s)")
    print(f"SGLang concurrency = sum(E2E)/span  {sglang_concurrency:.2f}  (over {span:.3f} s)")
    print(f"sglab max in flight (exact)         {exact_max}")
    print(f"SGLang max_concurrent_requests      {max(buckets.values())}  (1-second buckets)")

    def at(t, col):
        i = bisect.bisect_right(times, t) - 1
        return int(timeline[i][col]) if i >= 0 else 0

    scrapes = [r for r in rows(run / "server_metrics.csv") if r["source"] == "metrics"]
    nodes = sorted({r["node"] for r in scrapes})
    print()
    print("per node, at each /metrics scrape while busy (mean over scrapes):")
    print("node scrapes  client_running  server_running  server_queued  client-(srv_run+srv_queued)  |diff|  client_decoding  client_prefill_waiting")
    for n in nodes:
        pts = []
        for r in scrapes:
            if r["node"] != n or not r["num_running_reqs"]:
                continue
            t = float(r["time"])
            c = at(t, f"running_{n}")
            if c == 0 and float(r["num_running_reqs"]) == 0:
                continue
            pts.append((c, float(r["num_running_reqs"]), float(r["num_queue_reqs"] or 0),
                        at(t, f"decoding_{n}"), at(t, f"prefill_waiting_{n}")))
        if not pts:
            continue
        k = len(pts)
        mean = lambda i: sum(p[i] for p in pts) / k
        diff = [p[0] - (p[1] + p[2]) for p in pts]
        print(f"{n:>4} {k:>7}  {mean(0):>14.2f}  {mean(1):>14.2f}  {mean(2):>13.2f}  {sum(diff) / k:>27.2f}  "
              f"{sum(abs(d) for d in diff) / k:>6.2f}  {mean(3):>15.2f}  {mean(4):>22.2f}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])

"""`least-inflight` routing in Python: the healthy node with the fewest
requests in flight; ties broken at random (the run's seeded generator),
optionally capped per node. Makes the same decisions as the built-in
`least-inflight` (plugins/least-inflight/src/lib.rs)."""

from sglab_plugin import ConfigError, RejectReason, Router, defer, dispatch, export, host, option, reject, u32


class LeastInflight(Router):
    NAME = "least-inflight-py"
    DESCRIPTION = (
        "Sends each request to the healthy node with the fewest requests in flight (random tie-break); "
        "with max_in_flight, waits while every node is full. Python."
    )
    OPTIONS = [
        option(
            "max_in_flight",
            u32,
            default=None,
            help="per-node cap; requests wait in the client queue while every node is at it",
        )
    ]

    def __init__(self, config):
        if config.max_in_flight == 0:
            raise ConfigError("max_in_flight: must be at least 1")
        self.cap = config.max_in_flight if config.max_in_flight is not None else 2**32 - 1

    def route(self, request, nodes):
        healthy = [n for n in nodes if n.healthy]
        if not healthy:
            return reject(RejectReason.NO_HEALTHY_NODE)
        least = min(n.in_flight for n in healthy)
        if least >= self.cap:
            return defer()
        best = [n.index for n in healthy if n.in_flight == least]
        return dispatch(best[host.random_u64() % len(best)])


export(LeastInflight)

"""`least-inflight` routing in Python: the healthy node with the fewest
requests in flight; ties broken at random (the run's seeded generator),
optionally capped per node. Makes the same decisions as the built-in
`least-inflight` (plugins/least-inflight/src/lib.rs)."""

from sglab_plugin import ConfigError, RejectReason, Router, defer, dispatch, export, host, option, reject, u32

#: The load of an unhealthy node: above any u32 in-flight count.
_DOWN = 1 << 32


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
        # One pass: the least in-flight count among healthy nodes and the
        # nodes that have it, in index order (as the Rust built-in lists them).
        least = _DOWN
        best = []
        for n in nodes:
            if n.healthy:
                f = n.in_flight
                if f < least:
                    least = f
                    best = [n.index]
                elif f == least:
                    best.append(n.index)
        if least == _DOWN:
            return reject(RejectReason.NO_HEALTHY_NODE)
        if least >= self.cap:
            return defer()
        # Always one draw, even for one candidate: the Rust built-in does,
        # and the seeded stream must stay in step with it.
        return dispatch(best[host.random_u64() % len(best)])


export(LeastInflight)

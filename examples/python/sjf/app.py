"""`sjf` batching in Python: shortest prompt first under a concurrency cap,
with an ageing bound so long prompts cannot starve. Makes the same
decisions as the built-in `sjf` (plugins/sjf/src/lib.rs)."""

import heapq
from collections import deque

from sglab_plugin import Batcher, ConfigError, PollResult, export, option, u32, u64


class Sjf(Batcher):
    NAME = "sjf-py"
    DESCRIPTION = (
        "Shortest job first: while fewer than `cap` requests are in flight, releases the queued request with the "
        "shortest prompt (ties in arrival order); a request that has waited `max_wait_ms` goes first, oldest "
        "first, so nothing starves. Python."
    )
    OPTIONS = [
        option("cap", u32, help="requests in flight at most, all nodes together (required)"),
        option("max_wait_ms", u64, default=10000, help="aging bound: a request queued this long goes before shorter ones"),
    ]

    def __init__(self, config):
        if config.cap == 0:
            raise ConfigError("cap: must be at least 1")
        if config.max_wait_ms == 0:
            raise ConfigError("max_wait_ms: must be at least 1 (0 would make this FIFO; use max-concurrency)")
        self.cap = config.cap
        self.max_wait_ns = min(config.max_wait_ms * 1_000_000, 2**64 - 1)
        self.by_length = []  # heap of (prompt tokens, arrival sequence, id)
        self.queued = set()  # arrival sequences not yet released
        self.by_age = deque()  # (arrival ns, arrival sequence), oldest first
        self.ids = {}  # arrival sequence -> request id
        self.next_seq = 0

    def on_arrival(self, request, nodes):
        seq = self.next_seq
        self.next_seq += 1
        heapq.heappush(self.by_length, (request.input_tokens, seq, request.id))
        self.queued.add(seq)
        self.by_age.append((request.arrival_ns, seq))
        self.ids[seq] = request.id

    def _pop_aged(self, now):
        while self.by_age:
            arrival, seq = self.by_age[0]
            if seq not in self.queued:
                self.by_age.popleft()
                continue
            if now < min(arrival + self.max_wait_ns, 2**64 - 1):
                return None
            self.by_age.popleft()
            self.queued.discard(seq)
            return self.ids.pop(seq)
        return None

    def _pop_shortest(self):
        while self.by_length:
            _, seq, rid = heapq.heappop(self.by_length)
            if seq in self.queued:
                self.queued.discard(seq)
                del self.ids[seq]
                return rid
        return None

    def poll(self, now, nodes):
        in_flight = sum(n.in_flight for n in nodes)
        release = []
        for _ in range(max(self.cap - in_flight, 0)):
            rid = self._pop_aged(now)
            if rid is None:
                rid = self._pop_shortest()
            if rid is None:
                break
            release.append(rid)
        return PollResult(release, None)


export(Sjf)

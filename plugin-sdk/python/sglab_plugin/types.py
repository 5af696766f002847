"""The plain data of the sglab plugin contract (`wit/strategy.wit`).

Inside a built component these are the classes componentize-py generates
from the WIT, so values cross the boundary without conversion. Outside
WebAssembly (your unit tests, plain CPython) they are the identical
dataclasses and enums defined below.
"""

from dataclasses import dataclass
from enum import Enum
from typing import Dict, List, Optional, Union

try:  # Inside a component build: the generated bindings.
    from wit_world.imports.types import (  # type: ignore[import-not-found]
        Capability,
        Completion,
        NodeState,
        OptionDoc,
        Outcome,
        PluginError_Internal,
        PluginError_InvalidConfig,
        PluginInfo,
        PluginKind,
        PollResult,
        RejectReason,
        RequestInfo,
        RouteDecision_Defer as Defer,
        RouteDecision_Dispatch as Dispatch,
        RouteDecision_Reject as Reject,
        ServerSnapshot,
    )

    IN_COMPONENT = True
except ImportError:
    IN_COMPONENT = False

    class PluginKind(Enum):  # type: ignore[no-redef]
        """What a plugin is."""

        ROUTER = 0
        BATCHER = 1

    class Capability(Enum):  # type: ignore[no-redef]
        """Optional powers a plugin asks for."""

        PROMPT_TEXT = 0
        PREFIX_HASHES = 1

    @dataclass
    class OptionDoc:  # type: ignore[no-redef]
        """One option a plugin accepts in its config table."""

        name: str
        value_type: str
        default_value: Optional[str]
        help: str

    @dataclass
    class PluginInfo:  # type: ignore[no-redef]
        """Static description of a plugin."""

        name: str
        version: str
        kind: PluginKind
        description: str
        options: List[OptionDoc]
        capabilities: List[Capability]

    @dataclass
    class PluginError_InvalidConfig:  # type: ignore[no-redef]
        """The config was rejected."""

        value: str

    @dataclass
    class PluginError_Internal:  # type: ignore[no-redef]
        """Anything else that makes the plugin unusable."""

        value: str

    @dataclass
    class RequestInfo:  # type: ignore[no-redef]
        """What a plugin knows about a request."""

        id: int
        arrival_ns: int
        input_tokens: int
        max_new_tokens: int
        prefix_hashes: List[int]
        prefix_block_tokens: int
        priority: int
        session: Optional[int]

    @dataclass
    class ServerSnapshot:  # type: ignore[no-redef]
        """What the serving engine itself last reported."""

        running: int
        queued: int
        kv_usage: float
        cache_hit_rate: float
        age_ns: int

    @dataclass
    class NodeState:  # type: ignore[no-redef]
        """Host-side view of one node."""

        index: int
        healthy: bool
        in_flight: int
        waiting_first_token: int
        in_flight_input_tokens: int
        remaining_output_tokens: int
        completed: int
        failed: int
        ewma_ttft_ns: int
        ewma_itl_ns: int
        server: Optional[ServerSnapshot]

    class RejectReason(Enum):  # type: ignore[no-redef]
        """Why a request is refused."""

        NO_HEALTHY_NODE = 0
        OVER_CAPACITY = 1
        POLICY = 2

    @dataclass
    class Dispatch:  # type: ignore[no-redef]
        """Send the request to node `value` now."""

        value: int

    @dataclass
    class Defer:  # type: ignore[no-redef]
        """Keep it queued; ask again at the next event, or by `value` (ns)."""

        value: Optional[int]

    @dataclass
    class Reject:  # type: ignore[no-redef]
        """Refuse it for `value` (a RejectReason)."""

        value: RejectReason

    @dataclass
    class PollResult:  # type: ignore[no-redef]
        """Queued requests to release now, and when to poll again."""

        release: List[int]
        wake_at: Optional[int]

    class Outcome(Enum):  # type: ignore[no-redef]
        """How a request ended."""

        OK = 0
        ERROR = 1
        CANCELLED = 2

    @dataclass
    class Completion:  # type: ignore[no-redef]
        """A finished request."""

        id: int
        node: int
        outcome: Outcome
        ttft_ns: Optional[int]
        latency_ns: int
        input_tokens: int
        output_tokens: int


RouteDecision = Union[Dispatch, Defer, Reject]


_DISPATCH: Dict[int, "Dispatch"] = {}


def dispatch(node: int) -> "Dispatch":
    """Send the request to `node` now. (The answer for each node is made
    once and shared: treat it as read-only.)"""
    d = _DISPATCH.get(node)
    if d is None:
        d = Dispatch(node)
        if type(node) is int and 0 <= node < 1 << 16:
            _DISPATCH[node] = d
    return d


def defer(until_ns: Optional[int] = None) -> "Defer":
    """Keep the request queued; ask again at the next event, or by `until_ns`."""
    return Defer(until_ns)


def reject(reason: "RejectReason") -> "Reject":
    """Refuse the request; it is recorded as rejected."""
    return Reject(reason)


def idle_node(index: int) -> "NodeState":
    """A fresh, healthy, idle node (what the table holds before any update)."""
    return NodeState(index, True, 0, 0, 0, 0, 0, 0, 0, 0, None)


class NodeTable:
    """Every node of the run, as of the last update the host sent.

    The SDK keeps it current from the host's deltas and passes it to your
    hooks; in tests build one with `NodeTable.from_states([...])`.
    """

    __slots__ = ("_nodes", "generation")

    def __init__(self) -> None:
        self._nodes: List[NodeState] = []
        self.generation = 0

    @classmethod
    def from_states(cls, nodes: List["NodeState"]) -> "NodeTable":
        """A table holding these states."""
        t = cls()
        t._nodes = list(nodes)
        return t

    def apply(self, changed: List["NodeState"]) -> None:
        """Applies a delta from the host: the full state of each node that
        changed (the first lists every node). An index past the end grows
        the table (the nodes in between start idle); an empty delta is a
        no-op. `generation` counts the non-empty deltas applied."""
        if not changed:
            return
        nodes = self._nodes
        for state in changed:
            i = state.index
            if i >= len(nodes):
                nodes.extend(idle_node(j) for j in range(len(nodes), i + 1))
            nodes[i] = state
        self.generation += 1

    def __len__(self) -> int:
        return len(self._nodes)

    def __iter__(self):
        return iter(self._nodes)

    def __getitem__(self, index: int) -> "NodeState":
        return self._nodes[index]

    def get(self, index: int) -> Optional["NodeState"]:
        """One node's state, or None past the end."""
        return self._nodes[index] if 0 <= index < len(self._nodes) else None

    def healthy(self) -> List["NodeState"]:
        """Healthy nodes, in index order."""
        return [n for n in self._nodes if n.healthy]

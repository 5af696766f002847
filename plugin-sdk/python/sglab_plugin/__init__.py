"""sglab plugin SDK for Python.

Write a batching or routing strategy as a Python class, test it with plain
`python -m unittest`, and build it to a WebAssembly component with
`sglab plugin build DIR` (componentize-py). The component runs in the same
sandbox as a Rust plugin and is shared as one `.wasm` file.

A router::

    from sglab_plugin import Router, dispatch, export

    class RoundRobin(Router):
        NAME = "round-robin"
        DESCRIPTION = "Cycles through the nodes in order."

        def __init__(self, config):
            self.next = 0

        def route(self, request, nodes):
            node = self.next % len(nodes)
            self.next += 1
            return dispatch(node)

    export(RoundRobin)

The SDK keeps the node table current from the host's deltas, parses the
config against `OPTIONS` (errors name the key), and fills in `info()`.
This SDK speaks `sglab:strategy@0.2.x`.
"""

from typing import ClassVar, List, Optional, Type

from . import host
from .config import REQUIRED, ConfigError, Option, boolean, f64, i32, i64, option, parse_config, string, u32, u64
from .types import (
    Capability,
    Completion,
    Defer,
    Dispatch,
    NodeState,
    NodeTable,
    Outcome,
    PollResult,
    Reject,
    RejectReason,
    RequestInfo,
    ServerSnapshot,
    defer,
    dispatch,
    idle_node,
    reject,
)

#: The WIT package version this SDK speaks.
WIT_VERSION = "0.2.1"

__all__ = [
    "Batcher", "Capability", "Completion", "ConfigError", "Defer", "Dispatch", "NodeState", "NodeTable",
    "Option", "Outcome", "PollResult", "REQUIRED", "Reject", "RejectReason", "RequestInfo", "Router",
    "ServerSnapshot", "WIT_VERSION", "boolean", "default_hooks", "defer", "dispatch", "export", "f64", "host",
    "i32", "i64", "idle_node", "option", "parse_config", "reject", "string", "u32", "u64",
]


class _Strategy:
    #: Short name shown by `sglab plugin list`/`inspect`.
    NAME: ClassVar[str] = ""
    #: The plugin's own version (semver).
    VERSION: ClassVar[str] = "0.1.0"
    #: One paragraph describing the strategy.
    DESCRIPTION: ClassVar[str] = ""
    #: Capabilities to ask the host for, e.g. `[Capability.PROMPT_TEXT]`.
    CAPABILITIES: ClassVar[List[Capability]] = []
    #: The options of the config table (`option(...)`); any other key is an error.
    OPTIONS: ClassVar[List[Option]] = []

    def __init__(self, config) -> None:
        """Builds the strategy from its parsed config (one attribute per
        option). Raise `ConfigError` to reject it."""

    @classmethod
    def build(cls, config_json: str):
        """Parses the host's JSON config and constructs the strategy (what
        the component does in `create`; handy in tests)."""
        return cls(parse_config(config_json, cls.OPTIONS))


class Router(_Strategy):
    """A routing strategy: picks the node for each released request.

    Only `NAME`, `DESCRIPTION` and `route` are required; every lifecycle
    hook does nothing by default, and a hook left at its default is never
    called (the component tells the host to skip it, `host.skip-hook`).
    """

    def route(self, request: RequestInfo, nodes: NodeTable):
        """Picks a node: return `dispatch(i)`, `defer(until_ns=None)` or
        `reject(RejectReason.X)`. The hot path: keep it cheap."""
        raise NotImplementedError("route")

    def on_dispatched(self, id: int, node: int, now: int) -> None:
        """The request was sent to `node` at `now`."""

    def on_first_token(self, id: int, node: int, now: int) -> None:
        """The request's first token arrived at `now`."""

    def on_complete(self, done: Completion, nodes: NodeTable) -> None:
        """The request finished (any outcome)."""

    def on_tick(self, now: int, nodes: NodeTable) -> None:
        """The wake-up this router asked for (through `defer`) arrived."""


class Batcher(_Strategy):
    """A batching strategy: decides when queued requests are released.

    Only `NAME`, `DESCRIPTION`, `on_arrival` and `poll` are required; an
    `on_complete` left at its default is never called.
    """

    def on_arrival(self, request: RequestInfo, nodes: NodeTable) -> None:
        """A request entered the client queue."""
        raise NotImplementedError("on_arrival")

    def poll(self, now: int, nodes: NodeTable) -> PollResult:
        """Which queued requests to release now (`PollResult(ids, wake_at)`)."""
        raise NotImplementedError("poll")

    def on_complete(self, done: Completion, nodes: NodeTable) -> None:
        """A released request finished (any outcome)."""


_exported: Optional[Type[_Strategy]] = None


def export(cls):
    """Makes `cls` (a `Router` or `Batcher` subclass) this plugin's strategy.
    Call it once, at the bottom of `app.py`; returns `cls`."""
    global _exported
    if not (isinstance(cls, type) and issubclass(cls, (Router, Batcher))):
        raise TypeError(f"export({cls!r}): pass a subclass of sglab_plugin.Router or sglab_plugin.Batcher")
    if not cls.NAME:
        raise TypeError(f"export({cls.__name__}): set NAME (the plugin's short name)")
    if _exported is not None and _exported is not cls:
        raise TypeError(f"export({cls.__name__}): {_exported.__name__} is already exported; a plugin has one strategy")
    _exported = cls
    return cls


def exported() -> Type[_Strategy]:
    """The class given to `export` (raises if none was)."""
    if _exported is None:
        raise RuntimeError("app.py exported no strategy: end it with `export(YourRouter)` or `export(YourBatcher)`")
    return _exported


#: The lifecycle hooks with a do-nothing default, by base class.
_HOOKS = {
    Router: ("on_dispatched", "on_first_token", "on_complete", "on_tick"),
    Batcher: ("on_complete",),
}


def default_hooks(cls: Type[_Strategy]) -> List[str]:
    """The lifecycle hooks `cls` leaves at their do-nothing default: the
    component asks the host not to call them."""
    base = Router if issubclass(cls, Router) else Batcher
    return [h for h in _HOOKS[base] if getattr(cls, h) is getattr(base, h)]


def kind_of(cls: Type[_Strategy]) -> str:
    """`routing` or `batching`."""
    return "routing" if issubclass(cls, Router) else "batching"

"""The `router` resource (componentize-py looks it up in a module named
after the interface): the plugin's Router and its node table."""

import wit_world.exports.router as wit  # type: ignore[import-not-found]
from sglab_plugin import NodeTable
from wit_world.imports import types  # type: ignore[import-not-found]

import _glue

_DECISIONS = (types.RouteDecision_Dispatch, types.RouteDecision_Defer, types.RouteDecision_Reject)


class Router(wit.Router):
    @classmethod
    def create(cls, config: str) -> "Router":
        r = cls()
        r.p = _glue.build(config)
        r.nodes = NodeTable()
        return r

    def route(self, changed, request):
        if changed:
            self.nodes.apply(changed)
        d = self.p.route(request, self.nodes)
        if type(d) not in _DECISIONS:
            raise TypeError(f"route() returned {d!r}: return dispatch(node), defer(until_ns) or reject(reason)")
        return d

    def on_dispatched(self, id: int, node: int, now: int) -> None:
        self.p.on_dispatched(id, node, now)

    def on_first_token(self, id: int, node: int, now: int) -> None:
        self.p.on_first_token(id, node, now)

    def on_complete(self, done) -> None:
        self.p.on_complete(done, self.nodes)

    def on_tick(self, now: int) -> None:
        self.p.on_tick(now, self.nodes)

"""The `batcher` resource (componentize-py looks it up in a module named
after the interface): the plugin's Batcher and its node table."""

import wit_world.exports.batcher as wit  # type: ignore[import-not-found]
from sglab_plugin import NodeTable
from wit_world.imports import types  # type: ignore[import-not-found]

import _glue


class Batcher(wit.Batcher):
    @classmethod
    def create(cls, config: str) -> "Batcher":
        b = cls()
        b.p = _glue.build(config)
        b.nodes = NodeTable()
        return b

    def on_arrival(self, request) -> None:
        self.p.on_arrival(request, self.nodes)

    def on_complete(self, done) -> None:
        self.p.on_complete(done, self.nodes)

    def poll(self, now: int, changed):
        if changed:
            self.nodes.apply(changed)
        r = self.p.poll(now, self.nodes)
        if type(r) is not types.PollResult:
            raise TypeError(f"poll() returned {r!r}: return PollResult(release_ids, wake_at)")
        return r

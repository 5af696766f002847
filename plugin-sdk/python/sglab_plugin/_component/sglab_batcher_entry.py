"""componentize-py entry module of a batching plugin (world `batcher-plugin`)."""

import wit_world.exports  # type: ignore[import-not-found]
from wit_world.imports import types  # type: ignore[import-not-found]

import _glue


class Batcher(wit_world.exports.Batcher):
    def info(self) -> types.PluginInfo:
        return _glue.info(types.PluginKind.BATCHER)

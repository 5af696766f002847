"""componentize-py entry module of a routing plugin (world `router-plugin`)."""

import wit_world.exports  # type: ignore[import-not-found]
from wit_world.imports import types  # type: ignore[import-not-found]

import _glue


class Router(wit_world.exports.Router):
    def info(self) -> types.PluginInfo:
        return _glue.info(types.PluginKind.ROUTER)

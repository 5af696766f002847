"""Shared by the component's entry modules: the strategy class, its info
and its construction (errors become the WIT `plugin-error`)."""

import app  # noqa: F401  (the plugin's module: it calls sglab_plugin.export)
import sglab_plugin
from componentize_py_types import Err  # type: ignore[import-not-found]
from wit_world.imports import host, types  # type: ignore[import-not-found]

STRATEGY = sglab_plugin.exported()


def info(kind):
    s = STRATEGY
    return types.PluginInfo(
        s.NAME, s.VERSION, kind, s.DESCRIPTION, [o.doc() for o in s.OPTIONS], list(s.CAPABILITIES)
    )


def build(config: str):
    try:
        strategy = STRATEGY.build(config)
    except sglab_plugin.ConfigError as e:
        raise Err(types.PluginError_InvalidConfig(str(e))) from None
    except ValueError as e:  # malformed JSON from a hand-made config
        raise Err(types.PluginError_InvalidConfig(f"{type(e).__name__}: {e}")) from None
    except Exception as e:  # noqa: BLE001 - reported to the host, not swallowed
        raise Err(types.PluginError_Internal(f"{type(e).__name__}: {e}")) from None
    # A hook left at its default does nothing: the host need not call it
    # (each call into Python costs a few microseconds).
    for name in sglab_plugin.default_hooks(STRATEGY):
        host.skip_hook(getattr(host.Hook, name.upper()))
    return strategy

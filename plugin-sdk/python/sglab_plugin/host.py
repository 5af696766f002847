"""The host's functions: the run clock, logging, seeded randomness and
(with the `PROMPT_TEXT` capability) prompt text.

Inside a component they call the host. Outside WebAssembly (unit tests)
they use `sglab_plugin.testing`'s clock, generator and prompts.

Python's own `time` and `random` modules also read the run clock and the
run's seed inside a component (the host virtualises WASI's clocks and
random source), but these functions are cheaper and are what the Rust SDK
offers.
"""

from enum import Enum
from typing import Optional

try:
    from wit_world.imports import host as _h  # type: ignore[import-not-found]

    LogLevel = _h.LogLevel
    #: The run's clock: nanoseconds since the run started (virtual in a
    #: simulated run). Prefer the `now` arguments where a hook has one.
    now_ns = _h.now_ns
    #: A number from the run's seeded generator (reproducible).
    random_u64 = _h.random_u64
    #: The prompt text of a request the plugin has seen (capability needed).
    prompt_text = _h.prompt_text

    def log(level: "LogLevel", message: str) -> None:
        """Writes a line to the host's log under the plugin's name."""
        _h.log(level, message)

except ImportError:
    from . import testing as _t

    class LogLevel(Enum):  # type: ignore[no-redef]
        """Log severity."""

        TRACE = 0
        DEBUG = 1
        INFO = 2
        WARN = 3
        ERROR = 4

    def now_ns() -> int:
        """The test clock (`testing.set_now`)."""
        return _t.state.now

    def random_u64() -> int:
        """The test generator (`testing.seed`)."""
        return _t.state.next_u64()

    def prompt_text(id: int) -> Optional[str]:
        """The test prompts (`testing.set_prompts`)."""
        return _t.state.prompts.get(id)

    def log(level: "LogLevel", message: str) -> None:
        """Kept in `testing.state.logs`."""
        _t.state.logs.append((level, message))

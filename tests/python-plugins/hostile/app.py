"""A hostile Python router for the sandbox tests. `mode` picks what it does
on the first `route`: raise, loop forever, allocate without bound, or try
to read files, the environment and the network (logging what it got) and
then route normally."""

import os

from sglab_plugin import ConfigError, Router, dispatch, export, host, option, string

MODES = ("raise", "loop", "alloc", "snoop")


def attempt(what, f):
    try:
        got = f()
        return f"{what}: GOT {got!r}"[:200]
    except Exception as e:  # noqa: BLE001 - what the sandbox answered is the point
        return f"{what}: denied ({type(e).__name__})"


class Hostile(Router):
    NAME = "hostile-py"
    DESCRIPTION = "Misbehaves on purpose (tests only)."
    OPTIONS = [option("mode", string, help="raise | loop | alloc | snoop")]

    def __init__(self, config):
        if config.mode not in MODES:
            raise ConfigError(f"mode: must be one of {', '.join(MODES)}")
        self.mode = config.mode
        self.done = False

    def route(self, request, nodes):
        if not self.done:
            self.done = True
            if self.mode == "raise":
                raise RuntimeError("hostile plugin raised on purpose")
            if self.mode == "loop":
                n = 0
                while True:
                    n += 1
            if self.mode == "alloc":
                hog = []
                while True:
                    hog.append(bytearray(8 << 20))
            if self.mode == "snoop":
                for line in (
                    attempt("open /etc/passwd", lambda: open("/etc/passwd").read(64)),
                    attempt("listdir /", lambda: os.listdir("/")),
                    attempt("environ", lambda: dict(os.environ)),
                    attempt("socket", lambda: __import__("socket").create_connection(("127.0.0.1", 9), 1)),
                ):
                    host.log(host.LogLevel.WARN, line)
        return dispatch(request.id % len(nodes))


export(Hostile)

"""Typed config parsing from the JSON object the host passes to `create`.

Options are declared with `option(name, kind, default, help)`; the parser
checks every key and value and raises `ConfigError` with the same messages
as the Rust SDK (serde), e.g. `cap: invalid type: string "x", expected u32`
or `capp: unknown field `capp`, expected `cap` or `max_wait_ms``.
"""

import json
import math
from types import SimpleNamespace
from typing import Any, List, Optional, Sequence

from .types import OptionDoc


class ConfigError(Exception):
    """The plugin's config was rejected; the message names the key and value.

    Raise it from your constructor for checks of your own (`cap: must be at
    least 1`); the host reports it as an invalid config, naming the table.
    """


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


#: The default of an option that must be given.
REQUIRED: Any = _Required()


def _unexpected(v: Any) -> str:
    # serde's `Unexpected` wording, so messages match the Rust SDK's.
    if isinstance(v, bool):
        return f"boolean `{'true' if v else 'false'}`"
    if isinstance(v, int):
        return f"integer `{v}`"
    if isinstance(v, float):
        text = repr(v)
        if math.isfinite(v) and "." not in text and "e" not in text:
            text += ".0"
        return f"floating point `{text}`"
    if isinstance(v, str):
        return "string " + json.dumps(v, ensure_ascii=False)
    if v is None:
        return "null"
    if isinstance(v, list):
        return "sequence"
    return "map"


class Kind:
    """A value type: how it is documented and checked."""

    def __init__(self, doc: str, expect: str) -> None:
        self.doc = doc
        self.expect = expect

    def check(self, v: Any) -> Any:
        raise NotImplementedError

    def _type_error(self, v: Any) -> ConfigError:
        return ConfigError(f"invalid type: {_unexpected(v)}, expected {self.expect}")


class _Int(Kind):
    def __init__(self, expect: str, lo: int, hi: int) -> None:
        super().__init__("integer", expect)
        self.lo, self.hi = lo, hi

    def check(self, v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise self._type_error(v)
        if not self.lo <= v <= self.hi:
            raise ConfigError(f"invalid value: integer `{v}`, expected {self.expect}")
        return v


class _Float(Kind):
    def check(self, v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self._type_error(v)
        return float(v)


class _Bool(Kind):
    def check(self, v: Any) -> bool:
        if not isinstance(v, bool):
            raise self._type_error(v)
        return v


class _Str(Kind):
    def check(self, v: Any) -> str:
        if not isinstance(v, str):
            raise self._type_error(v)
        return v


u32: Kind = _Int("u32", 0, 2**32 - 1)
u64: Kind = _Int("u64", 0, 2**64 - 1)
i32: Kind = _Int("i32", -(2**31), 2**31 - 1)
i64: Kind = _Int("i64", -(2**63), 2**63 - 1)
f64: Kind = _Float("float", "f64")
boolean: Kind = _Bool("bool", "a boolean")
string: Kind = _Str("string", "a string")


class Option:
    """One config option: its key, type, default and help line."""

    def __init__(self, name: str, kind: Kind, default: Any = REQUIRED, help: str = "") -> None:
        self.name = name
        self.kind = kind
        self.default = default
        self.help = help

    def doc(self) -> OptionDoc:
        """What `sglab plugin inspect` shows."""
        shown: Optional[str] = None
        if self.default is not REQUIRED and self.default is not None:
            shown = json.dumps(self.default)
        return OptionDoc(self.name, self.kind.doc, shown, self.help)


def option(name: str, kind: Kind, default: Any = REQUIRED, help: str = "") -> Option:
    """Declares an option. `default=None` makes it optional with no value;
    leaving `default` out makes it required."""
    return Option(name, kind, default, help)


def _expected(names: Sequence[str]) -> str:
    quoted = [f"`{n}`" for n in names]
    if not quoted:
        return "there are no fields"
    if len(quoted) == 1:
        return f"expected {quoted[0]}"
    if len(quoted) == 2:
        return f"expected {quoted[0]} or {quoted[1]}"
    return "expected one of " + ", ".join(quoted)


def parse_config(text: str, options: List[Option]) -> SimpleNamespace:
    """Parses the host's JSON into an object with one attribute per option.
    An empty string means `{}`."""
    raw = json.loads(text) if text.strip() else {}
    if not isinstance(raw, dict):
        raise ConfigError(f"invalid type: {_unexpected(raw)}, expected a config table")
    by_name = {o.name: o for o in options}
    values = {}
    for key, v in raw.items():
        o = by_name.get(key)
        if o is None:
            raise ConfigError(f"{key}: unknown field `{key}`, {_expected([x.name for x in options])}")
        if v is None and o.default is None:
            values[key] = None
            continue
        try:
            values[key] = o.kind.check(v)
        except ConfigError as e:
            raise ConfigError(f"{key}: {e}") from None
    for o in options:
        if o.name not in values:
            if o.default is REQUIRED:
                raise ConfigError(f"missing field `{o.name}`")
            values[o.name] = o.default
    return SimpleNamespace(**values)

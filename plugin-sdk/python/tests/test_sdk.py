"""Unit tests of the Python SDK in plain CPython: the node table, config
parsing (messages as serde's), decisions, the test host."""

import unittest

from sglab_plugin import (
    REQUIRED,
    Batcher,
    ConfigError,
    Defer,
    Dispatch,
    NodeTable,
    Router,
    boolean,
    default_hooks,
    defer,
    dispatch,
    export,
    f64,
    host,
    idle_node,
    option,
    parse_config,
    string,
    testing,
    u32,
)

OPTIONS = [
    option("cap", u32),
    option("wait", u32, default=10),
    option("rate", f64, default=1.5),
    option("on", boolean, default=False),
    option("name", string, default=None),
]


def error(text, options=OPTIONS):
    """The ConfigError message parsing `text` gives."""
    try:
        parse_config(text, options)
    except ConfigError as e:
        return str(e)
    raise AssertionError(f"{text} was accepted")


class NodeTableTest(unittest.TestCase):
    def test_deltas_replace_only_changed_nodes(self):
        t = NodeTable()
        t.apply([idle_node(i) for i in range(3)])
        self.assertEqual(len(t), 3)
        t.apply([])
        busy = idle_node(1)
        busy.in_flight = 7
        t.apply([busy])
        self.assertEqual([n.in_flight for n in t], [0, 7, 0])
        self.assertEqual(t.get(2).index, 2)
        self.assertIsNone(t.get(3))
        self.assertEqual(t.generation, 2)
        down = idle_node(0)
        down.healthy = False
        t.apply([down])
        self.assertEqual([n.index for n in t.healthy()], [1, 2])
        late = idle_node(4)
        t.apply([late])
        self.assertEqual([n.index for n in t], [0, 1, 2, 3, 4])


class ConfigTest(unittest.TestCase):
    def test_defaults_and_values(self):
        c = parse_config('{"cap": 3}', OPTIONS)
        self.assertEqual((c.cap, c.wait, c.rate, c.on, c.name), (3, 10, 1.5, False, None))
        c = parse_config('{"cap": 1, "rate": 2, "name": "x", "on": true}', OPTIONS)
        self.assertEqual((c.rate, c.name, c.on), (2.0, "x", True))
        self.assertEqual(parse_config("", [option("a", u32, default=1)]).a, 1)

    def test_errors_read_like_serde(self):
        self.assertEqual(error("{}"), "missing field `cap`")
        self.assertEqual(error('{"cap": "x"}'), 'cap: invalid type: string "x", expected u32')
        self.assertEqual(error('{"cap": -1}'), "cap: invalid value: integer `-1`, expected u32")
        self.assertEqual(error('{"cap": 4294967296}'), "cap: invalid value: integer `4294967296`, expected u32")
        self.assertEqual(error('{"cap": 1.0}'), "cap: invalid type: floating point `1.0`, expected u32")
        self.assertEqual(error('{"cap": true}'), "cap: invalid type: boolean `true`, expected u32")
        self.assertEqual(error('{"cap": 1, "on": 1}'), "on: invalid type: integer `1`, expected a boolean")
        self.assertEqual(error('{"cap": 1, "rate": "f"}'), 'rate: invalid type: string "f", expected f64')
        self.assertEqual(error('{"cap": [1]}'), "cap: invalid type: sequence, expected u32")
        self.assertEqual(
            error('{"capp": 1}'), "capp: unknown field `capp`, expected one of `cap`, `wait`, `rate`, `on`, `name`"
        )
        self.assertEqual(error('{"x": 1}', []), "x: unknown field `x`, there are no fields")
        self.assertEqual(error('{"x": 1}', [option("a", u32)]), "x: unknown field `x`, expected `a`")
        two = [option("a", u32), option("b", u32)]
        self.assertEqual(error('{"x": 1}', two), "x: unknown field `x`, expected `a` or `b`")

    def test_docs(self):
        docs = [o.doc() for o in OPTIONS]
        self.assertEqual([d.default_value for d in docs], [None, "10", "1.5", "false", None])
        self.assertEqual([d.value_type for d in docs], ["integer", "integer", "float", "bool", "string"])
        self.assertIs(OPTIONS[0].default, REQUIRED)


class StrategyTest(unittest.TestCase):
    def test_build_parses_against_options_and_decisions_compare(self):
        class Capped(Router):
            NAME = "capped"
            OPTIONS = [option("cap", u32)]

            def __init__(self, config):
                if config.cap == 0:
                    raise ConfigError("cap: must be at least 1")
                self.cap = config.cap

            def route(self, request, nodes):
                return dispatch(0) if len(nodes) < self.cap else defer(5)

        self.assertIs(export(Capped), Capped)
        with self.assertRaisesRegex(TypeError, "already exported"):

            class Other(Router):
                NAME = "other"

            export(Other)
        r = Capped.build('{"cap": 2}')
        self.assertEqual(r.route(None, NodeTable.from_states([idle_node(0)])), Dispatch(0))
        self.assertEqual(r.route(None, NodeTable.from_states([idle_node(0), idle_node(1)])), Defer(5))
        with self.assertRaisesRegex(ConfigError, "cap: must be at least 1"):
            Capped.build('{"cap": 0}')

    def test_default_hooks_are_the_ones_left_alone(self):
        class Quiet(Router):
            NAME = "quiet"

        class Counting(Router):
            NAME = "counting"

            def on_complete(self, done, nodes):
                pass

        class Eager(Batcher):
            NAME = "eager"

            def on_complete(self, done, nodes):
                pass

        self.assertEqual(default_hooks(Quiet), ["on_dispatched", "on_first_token", "on_complete", "on_tick"])
        self.assertEqual(default_hooks(Counting), ["on_dispatched", "on_first_token", "on_tick"])
        self.assertEqual(default_hooks(Batcher), ["on_complete"])
        self.assertEqual(default_hooks(Eager), [])

    def test_the_test_host_is_seeded_and_settable(self):
        testing.seed(3)
        a = [host.random_u64() for _ in range(3)]
        testing.seed(3)
        self.assertEqual(a, [host.random_u64() for _ in range(3)])
        testing.set_now(42)
        self.assertEqual(host.now_ns(), 42)
        testing.set_prompts({1: "hi"})
        self.assertEqual((host.prompt_text(1), host.prompt_text(2)), ("hi", None))
        host.log(host.LogLevel.INFO, "x")
        self.assertEqual(testing.state.logs[-1][1], "x")


if __name__ == "__main__":
    unittest.main()

"""What the host functions read outside WebAssembly, for unit tests."""

from typing import Dict, List, Tuple


class _State:
    def __init__(self) -> None:
        self.reset()

    def reset(self, seed: int = 0) -> None:
        self.now = 0
        self._s = seed & 0xFFFF_FFFF_FFFF_FFFF
        self.prompts: Dict[int, str] = {}
        self.logs: List[Tuple[object, str]] = []

    def next_u64(self) -> int:
        # SplitMix64: a fixed, seedable stream (not the host's generator).
        self._s = (self._s + 0x9E37_79B9_7F4A_7C15) & 0xFFFF_FFFF_FFFF_FFFF
        z = self._s
        z = ((z ^ (z >> 30)) * 0xBF58_476D_1CE4_E5B9) & 0xFFFF_FFFF_FFFF_FFFF
        z = ((z ^ (z >> 27)) * 0x94D0_49BB_1331_11EB) & 0xFFFF_FFFF_FFFF_FFFF
        return z ^ (z >> 31)


state = _State()


def set_now(ns: int) -> None:
    """Sets what `host.now_ns()` returns."""
    state.now = ns


def seed(s: int) -> None:
    """Restarts `host.random_u64()`'s stream (and clears prompts and logs)."""
    state.reset(s)


def set_prompts(prompts: Dict[int, str]) -> None:
    """What `host.prompt_text(id)` returns."""
    state.prompts = dict(prompts)

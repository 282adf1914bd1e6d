"""How a core names its stream ports: `s`/`m` for one, `s0`, `s1`, ... for several."""
from __future__ import annotations


def input_names(count: int) -> list[str]:
    return ["s"] if count == 1 else [f"s{i}" for i in range(count)]


def output_names(count: int) -> list[str]:
    return ["m"] if count == 1 else [f"m{i}" for i in range(count)]


def input_ports(core, count: int) -> list:
    return [getattr(core, name) for name in input_names(count)]


def output_ports(core, count: int) -> list:
    return [getattr(core, name) for name in output_names(count)]

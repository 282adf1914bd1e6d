"""A layer's memories as its spec describes them (`LayerSpec.memories`), with the spec's memory
style as the Verilog attribute that Vivado and Yosys obey."""
from __future__ import annotations

from amaranth import unsigned
from amaranth.lib.memory import Memory

from ..graph.memory import verilog_attrs


def layer_memory(m, spec, name: str, init=()) -> Memory:
    """The memory `name` of `spec`, added to `m` under that name."""
    shape = spec.memories()[name]
    memory = Memory(shape=unsigned(shape.width), depth=shape.depth, init=list(init),
                    attrs=verilog_attrs(spec.memory_style(name), shape))
    m.submodules[name] = memory
    return memory

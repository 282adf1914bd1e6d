"""A layer's memories as its spec describes them (`LayerSpec.memories`), with the spec's memory
style as the Verilog attribute that Vivado and Yosys obey."""
from __future__ import annotations

from amaranth import unsigned
from amaranth.lib.memory import Memory

from ..graph.memory import MemoryShape, verilog_attrs

# Distributed ROMs up to this depth are whole LUT truth tables (one LUT6 per bit column).
LUT_TABLE_DEPTH = 64


def rom_words(shape: MemoryShape, style: str, init) -> list[int]:
    """A ROM's contents as the core stores them. A distributed ROM of up to 64 words whose depth
    is not a power of two is filled up to one by repeating its words: the added words are never
    addressed, and a fully defined table is one LUT per bit column, where Yosys turns the
    undefined tail into flip-flop set/reset logic (measured on random 64-bit ROMs: 9 words 110
    LUTs as they are, 88 padded with zeros, 59 repeated; 18 words 93 vs 64; 36 words 76 vs 64).
    For Vivado a column of up to 64 words is one LUT6 function either way."""
    words = list(init) + [0] * (shape.depth - len(init))
    padded = 1 << (shape.depth - 1).bit_length()
    if style == "distributed" and shape.rom and padded != shape.depth and shape.depth <= LUT_TABLE_DEPTH:
        words = [words[i % shape.depth] for i in range(padded)]
    return words


def layer_memory(m, spec, name: str, init=()) -> Memory:
    """The memory `name` of `spec`, added to `m` under that name."""
    shape = spec.memories()[name]
    style = spec.memory_style(name)
    words = rom_words(shape, style, init) if shape.rom else list(init)
    memory = Memory(shape=unsigned(shape.width), depth=max(shape.depth, len(words)), init=words,
                    attrs=verilog_attrs(style, shape))
    m.submodules[name] = memory
    return memory

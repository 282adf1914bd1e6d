"""The weight port: memories written at run time (FINN's `runtime_writeable_weights`).

The accelerator takes 32-bit register writes (`weight_port_signature`: a register index, its
value, a valid) into the weight address space that `graph.weight_map` lays out. The top level
registers each write once, decodes which memory's window it falls in and hands the write,
registered again, to that layer's core with the index inside the window; the core assembles the
word's pieces (`write_words`) and writes the word into its memory (or the bank of it that holds
the word) with the last piece.

Written memories have no initial contents: UltraRAM cannot have any, and a design whose weights
are loaded is simulated and deployed the same way in every memory style. The driver loads the
build's weights before the first run; rtlsim writes them through the same port.
"""
from __future__ import annotations

import numpy as np
from amaranth import Cat, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from ..graph.weight_map import REGISTER_BITS, WritableMemory


def weight_port_signature(address_bits: int) -> wiring.Signature:
    return wiring.Signature({"addr": Out(max(1, address_bits)), "data": Out(REGISTER_BITS), "valid": Out(1)})


def window_bits(memory: WritableMemory) -> int:
    return max(1, (memory.window - 1).bit_length())


def memory_words(spec, name: str) -> list[int]:
    """The words of memory `name` of `spec` as its core stores them: what a weight load writes."""
    from .accelerator import CORES

    return CORES[type(spec)].memory_words(spec, name)


def write_words(m, port, memory: WritableMemory, targets) -> None:
    """Words of `memory` assembled from the register writes on `port` (indices inside its window)
    and written into `targets`, [(Memory, first word, words)]: the memory, or its banks."""
    piece_bits = (memory.stride - 1).bit_length()
    piece, index = port.addr[:piece_bits], port.addr[piece_bits:]
    last = memory.pieces - 1
    if memory.pieces > 1:
        staging = Signal(REGISTER_BITS * last, name=f"{memory.memory}_staging")
        with m.If(port.valid & (piece != last)):
            with m.Switch(piece):
                for number in range(last):
                    with m.Case(number):
                        m.d.sync += staging[REGISTER_BITS * number:REGISTER_BITS * (number + 1)].eq(port.data)
        word = Cat(staging, port.data)[:memory.width]
    else:
        word = port.data[:memory.width]
    complete = port.valid & (piece == last) if piece_bits else port.valid
    for target, first, count in targets:
        write = target.write_port()
        inside = (index >= first) & (index < first + count) if len(targets) > 1 else 1
        m.d.comb += [write.addr.eq(index - first), write.data.eq(word), write.en.eq(complete & inside)]


def register_writes(network, loaded=None) -> np.ndarray:
    """[writes, 2] (register index, value) uint32 that load every written memory of `network`
    with the words of `loaded` (default: its own), the used pieces of each word, lowest first."""
    from ..graph.weight_map import WeightMap

    source = loaded or network
    writes = []
    for memory in WeightMap.of(network).memories:
        image = memory.register_image(memory_words(source.layer(memory.layer), memory.memory))
        index = np.arange(memory.depth * memory.stride, dtype=np.int64)
        used = index % memory.stride < memory.pieces
        writes.append(np.stack([memory.base + index[used], image[used]], axis=1))
    return np.concatenate(writes).astype(np.uint32) if writes else np.zeros((0, 2), dtype=np.uint32)

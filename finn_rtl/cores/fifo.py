"""Stream FIFO between layers (amaranth.lib.fifo behind lib.stream interfaces)."""
from __future__ import annotations

from amaranth import Module, unsigned
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out


class StreamFIFO(wiring.Component):
    def __init__(self, width: int, depth: int):
        if depth < 1:
            raise ValueError(f"FIFO depth must be at least 1, got {depth}")
        self.width, self.depth = width, depth
        super().__init__({
            "s": In(stream.Signature(unsigned(width))),
            "m": Out(stream.Signature(unsigned(width))),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = buffer = fifo.SyncFIFOBuffered(width=self.width, depth=self.depth)
        wiring.connect(m, wiring.flipped(self.s), buffer.w_stream)
        wiring.connect(m, buffer.r_stream, wiring.flipped(self.m))
        return m

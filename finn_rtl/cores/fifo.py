"""Stream FIFO between layers (amaranth.lib.fifo behind lib.stream interfaces)."""
from __future__ import annotations

from amaranth import Module, Mux, unsigned
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

PEAK_BITS = 16  # width of a monitored FIFO's peak level


class StreamFIFO(wiring.Component):
    """With `monitor`, outputs `level` (the fill level) and `peak` (the highest level seen), for
    FIFO sizing runs and stall diagnosis."""

    def __init__(self, width: int, depth: int, monitor: bool = False):
        if depth < 1:
            raise ValueError(f"FIFO depth must be at least 1, got {depth}")
        if monitor and depth >= 1 << PEAK_BITS:
            raise ValueError(f"a monitored FIFO must be shallower than {1 << PEAK_BITS} beats")
        self.width, self.depth, self.monitor = width, depth, monitor
        ports = {
            "s": In(stream.Signature(unsigned(width))),
            "m": Out(stream.Signature(unsigned(width))),
        }
        if monitor:
            ports["peak"] = Out(PEAK_BITS)
            ports["level"] = Out(PEAK_BITS)
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = buffer = fifo.SyncFIFOBuffered(width=self.width, depth=self.depth)
        wiring.connect(m, wiring.flipped(self.s), buffer.w_stream)
        wiring.connect(m, buffer.r_stream, wiring.flipped(self.m))
        if self.monitor:
            m.d.sync += self.peak.eq(Mux(buffer.level > self.peak, buffer.level, self.peak))
            m.d.comb += self.level.eq(buffer.level)
        return m

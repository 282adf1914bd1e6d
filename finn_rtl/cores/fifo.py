"""Stream FIFO between layers, in the memory style its edge chose.

Amaranth's SyncFIFOBuffered reads its storage asynchronously, which no block RAM can do, so a
deep FIFO would always become LUT RAM. This FIFO reads its memory through a registered port
(the block RAM's own output latch) that is also the output register: `depth - 1` beats in the
memory plus one at the output. It takes a beat per cycle from depth 3 on (at depth 2 its ready,
from the registered count, lets every other beat through), like SyncFIFOBuffered.
"""
from __future__ import annotations

from amaranth import Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..graph.memory import auto_style, fifo_memory, verilog_attrs
from .arith import counter_bits

PEAK_BITS = 16  # width of a monitored FIFO's peak level


class StreamFIFO(wiring.Component):
    """With `monitor`, outputs `level` (the fill level) and `peak` (the highest level seen), for
    FIFO sizing runs and stall diagnosis. `style`: the storage's memory style (default: the
    automatic choice for its shape)."""

    def __init__(self, width: int, depth: int, monitor: bool = False, style: str | None = None):
        if depth < 1:
            raise ValueError(f"FIFO depth must be at least 1, got {depth}")
        if monitor and depth >= 1 << PEAK_BITS:
            raise ValueError(f"a monitored FIFO must be shallower than {1 << PEAK_BITS} beats")
        self.width, self.depth, self.monitor = width, depth, monitor
        self.memory = fifo_memory(width, depth)
        self.style = style or auto_style(self.memory)
        ports = {
            "s": In(stream.Signature(unsigned(width))),
            "m": Out(stream.Signature(unsigned(width))),
        }
        if monitor:
            ports["peak"] = Out(PEAK_BITS)
            ports["level"] = Out(PEAK_BITS)
        super().__init__(ports)

    @staticmethod
    def resource_features(depth: int) -> dict[str, float]:
        """For the calibrated resource estimate (its storage apart): the three counters."""
        return {"const": 1, "counter_bits": 3 * counter_bits(depth)}

    def elaborate(self, platform):
        m = Module()
        out_valid = Signal()
        advance = ~out_valid | self.m.ready
        m.d.comb += self.m.valid.eq(out_valid)
        if self.depth == 1:  # the output register alone: a beat every other cycle
            level = out_valid
            m.d.comb += self.s.ready.eq(~out_valid)
            with m.If(self.s.valid & ~out_valid):
                m.d.sync += [out_valid.eq(1), self.m.payload.eq(self.s.payload)]
            with m.Elif(self.m.ready):
                m.d.sync += out_valid.eq(0)
        else:
            level = self._memory_fifo(m, out_valid, advance)
        if self.monitor:
            m.d.sync += self.peak.eq(Mux(level > self.peak, level, self.peak))
            m.d.comb += self.level.eq(level)
        return m

    def _memory_fifo(self, m, out_valid, advance):
        words = self.memory.depth
        m.submodules.storage = storage = Memory(shape=unsigned(self.width), depth=words, init=[],
                                                attrs=verilog_attrs(self.style, self.memory))
        write, read = storage.write_port(), storage.read_port()
        count = Signal(range(words + 1))  # beats in the memory
        produce, consume = Signal(range(words)), Signal(range(words))
        take = self.s.valid & self.s.ready
        fetch = advance & (count != 0)  # the read port register is the output register
        m.d.comb += [
            self.s.ready.eq(count != words),
            write.addr.eq(produce), write.data.eq(self.s.payload), write.en.eq(take),
            read.addr.eq(consume), read.en.eq(advance),
            self.m.payload.eq(read.data),
        ]
        with m.If(advance):
            m.d.sync += out_valid.eq(count != 0)
        with m.If(take):
            m.d.sync += produce.eq(Mux(produce == words - 1, 0, produce + 1))
        with m.If(fetch):
            m.d.sync += consume.eq(Mux(consume == words - 1, 0, consume + 1))
        m.d.sync += count.eq(count + take - fetch)
        level = Signal(range(words + 2))
        m.d.comb += level.eq(count + out_valid)
        return level

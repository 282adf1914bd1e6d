"""AXI-stream register slice: every output (ready, valid, data) is driven by a flip-flop.

At the accelerator's boundary this cuts the combinational paths between the
outside world's tvalid/tready and the cores, which Vivado's timing closure
wants, and it keeps Verilator from re-evaluating the whole design whenever a
top-level input changes. Full throughput: one beat per cycle, never a lost or
repeated beat, two cycles of latency.

It is amaranth's buffered FIFO with three entries (two in a small RAM, one in
the output register); two would halve the throughput, because its ready comes
from the fill level of the cycle before. Why not a two-register skid buffer:
the same flip-flops, but a simulator copies a register's whole next-state word
every cycle, while the RAM is written only when a beat moves. With a first
layer that takes a whole image per beat (1568 bits for TFC at II 64) that was
a fifth of Verilator's work per cycle.
"""
from __future__ import annotations

from amaranth import Module, unsigned
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

DEPTH = 3


class RegisterSlice(wiring.Component):
    def __init__(self, width: int):
        self.width = width
        super().__init__({
            "s": In(stream.Signature(unsigned(width))),
            "m": Out(stream.Signature(unsigned(width))),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.buffer = buffer = fifo.SyncFIFOBuffered(width=self.width, depth=DEPTH)
        wiring.connect(m, wiring.flipped(self.s), buffer.w_stream)
        wiring.connect(m, buffer.r_stream, wiring.flipped(self.m))
        return m

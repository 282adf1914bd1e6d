"""AXI-stream register slice: every output (ready, valid, data) is driven by a flip-flop.

At the accelerator's boundary this cuts the combinational paths between the
outside world's tvalid/tready and the cores, which Vivado's timing closure
wants, and it keeps Verilator from re-evaluating the whole design whenever a
top-level input changes. Full throughput: one beat per cycle, never a lost or
repeated beat.

Two structures keep that contract, and the width picks the one that simulates
faster (the hardware costs about the same):

* up to one machine word: a skid buffer, an output register and a skid register
  (one cycle of latency);
* wider: amaranth's buffered FIFO with three entries, two in a small RAM and one
  in the output register (two cycles of latency; two entries would halve the
  throughput, because its ready comes from the fill level of the cycle before).
  A simulator copies a register's whole next-state word every cycle, while the
  RAM is written only when a beat moves: with a first layer that takes a whole
  image per beat (1568 bits for TFC at II 64) the skid buffer was a fifth of
  Verilator's work per cycle.
"""
from __future__ import annotations

from amaranth import Module, Signal, unsigned
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

SKID_MAX_BITS = 64
FIFO_DEPTH = 3


class RegisterSlice(wiring.Component):
    def __init__(self, width: int):
        self.width = width
        super().__init__({
            "s": In(stream.Signature(unsigned(width))),
            "m": Out(stream.Signature(unsigned(width))),
        })

    def elaborate(self, platform):
        m = Module()
        if self.width > SKID_MAX_BITS:
            m.submodules.buffer = buffer = fifo.SyncFIFOBuffered(width=self.width, depth=FIFO_DEPTH)
            wiring.connect(m, wiring.flipped(self.s), buffer.w_stream)
            wiring.connect(m, buffer.r_stream, wiring.flipped(self.m))
            return m
        out_valid, out_data = Signal(), Signal(self.width)
        # The skid register catches the beat accepted in the cycle the consumer stalls, because
        # s.ready, being registered, can only fall one cycle later.
        skid_valid, skid_data = Signal(), Signal(self.width)
        m.d.comb += [
            self.s.ready.eq(~skid_valid),
            self.m.valid.eq(out_valid),
            self.m.payload.eq(out_data),
        ]
        accepted = self.s.valid & ~skid_valid
        with m.If(~out_valid | self.m.ready):
            with m.If(skid_valid):
                m.d.sync += [out_valid.eq(1), out_data.eq(skid_data), skid_valid.eq(0)]
            with m.Else():
                m.d.sync += [out_valid.eq(self.s.valid), out_data.eq(self.s.payload)]
        with m.Elif(accepted):
            m.d.sync += [skid_valid.eq(1), skid_data.eq(self.s.payload)]
        return m

"""AXI-stream register slice (skid buffer): every output is driven by a flip-flop.

At the accelerator's boundary this cuts the combinational paths between the
outside world's tvalid/tready and the cores, which Vivado's timing closure
wants, and it keeps Verilator from re-evaluating the whole design whenever a
top-level input changes. Full throughput: one beat per cycle, two cycles of
latency at most, never a lost or repeated beat.
"""
from __future__ import annotations

from amaranth import Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out


class RegisterSlice(wiring.Component):
    def __init__(self, width: int):
        self.width = width
        super().__init__({
            "s": In(stream.Signature(unsigned(width))),
            "m": Out(stream.Signature(unsigned(width))),
        })

    def elaborate(self, platform):
        m = Module()
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

"""Element-granular stream width converter: `in_elems` per input beat -> `out_elems` per output beat.

Elements keep their order (element 0 in the LSBs of a beat). The buffer holds
in_elems + out_elems elements, enough to accept and emit in the same cycle, so
the converter sustains one beat per cycle on the wider side.
"""
from __future__ import annotations

from amaranth import Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out


class WidthConverter(wiring.Component):
    def __init__(self, element_bits: int, in_elems: int, out_elems: int):
        self.element_bits, self.in_elems, self.out_elems = element_bits, in_elems, out_elems
        super().__init__({
            "s": In(stream.Signature(unsigned(element_bits * in_elems))),
            "m": Out(stream.Signature(unsigned(element_bits * out_elems))),
        })

    def elaborate(self, platform):
        m = Module()
        eb, a, b = self.element_bits, self.in_elems, self.out_elems
        if a == b:
            wiring.connect(m, wiring.flipped(self.s), wiring.flipped(self.m))
            return m
        capacity = 2 * (a + b)
        buf = Signal(eb * capacity)
        count = Signal(range(capacity + 1))
        m.d.comb += [
            self.m.valid.eq(count >= b),
            self.m.payload.eq(buf[:eb * b]),
            self.s.ready.eq(count + a <= capacity),
        ]
        take_out = self.m.valid & self.m.ready
        take_in = self.s.valid & self.s.ready
        remaining = Signal.like(count)
        shifted = Signal.like(buf)
        with m.If(take_out):
            m.d.comb += [remaining.eq(count - b), shifted.eq(buf >> (eb * b))]
        with m.Else():
            m.d.comb += [remaining.eq(count), shifted.eq(buf)]
        with m.If(take_in):
            m.d.sync += [
                buf.eq(shifted | (self.s.payload << (remaining * eb))),
                count.eq(remaining + a),
            ]
        with m.Else():
            m.d.sync += [buf.eq(shifted), count.eq(remaining)]
        return m

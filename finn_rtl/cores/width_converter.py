"""Element-granular stream width converter: `in_elems` per input beat -> `out_elems` per output beat.

Elements keep their order (element 0 in the LSBs of a beat), and the converter
sustains one beat per cycle on the narrower side. When one width divides the
other (every folding FINN allows), beats are shifted in or out of a register by
a constant amount; otherwise a buffer of 2*(in+out) elements inserts each beat
at its fill level, which costs a variable shifter.
"""
from __future__ import annotations

from amaranth import Cat, Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .arith import counter_bits, nested_counters
from .pipelining import counter_ns, lut_level_ns, mux_levels


class WidthConverter(wiring.Component):
    def __init__(self, element_bits: int, in_elems: int, out_elems: int):
        self.element_bits, self.in_elems, self.out_elems = element_bits, in_elems, out_elems
        super().__init__({
            "s": In(stream.Signature(unsigned(element_bits * in_elems))),
            "m": Out(stream.Signature(unsigned(element_bits * out_elems))),
        })

    @staticmethod
    def path_ns(a: int, b: int) -> float:
        """By the delay model (`pipelining`): the beat counter and the load-or-shift choice, or
        the buffer's variable shifter where neither width divides the other."""
        if b % a == 0 or a % b == 0:
            return counter_ns(max(a, b) // min(a, b)) + lut_level_ns()
        capacity = 2 * (a + b)
        return counter_ns(capacity) + lut_level_ns(mux_levels(capacity))

    @staticmethod
    def resource_features(element_bits: int, a: int, b: int) -> dict[str, float]:
        """For the calibrated resource estimate: a converter of `a` to `b` elements per beat."""
        # Gathering shifts narrow beats into a wide register and copies it to the output register
        # (two registers, no logic: both load with an enable); scattering shifts a wide register
        # down, each bit a choice between loading and shifting (a LUT per bit).
        if b % a == 0:
            return {"const": 1, "gather_bits": element_bits * b, "counter_bits": counter_bits(b // a)}
        if a % b == 0:
            return {"const": 1, "scatter_bits": element_bits * a, "counter_bits": counter_bits(a // b)}
        return {"const": 1, "buffer_bits": element_bits * 2 * (a + b), "counter_bits": counter_bits(2 * (a + b))}

    def elaborate(self, platform):
        m = Module()
        eb, a, b = self.element_bits, self.in_elems, self.out_elems
        if a == b:
            wiring.connect(m, wiring.flipped(self.s), wiring.flipped(self.m))
            return m
        if b % a == 0:
            return self._gather(m, b // a)
        if a % b == 0:
            return self._scatter(m, a // b)
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

    def _gather(self, m, beats: int):
        """`beats` input beats per output beat: shift each in at the top; the last one completes
        the output register, which may be taken in the same cycle."""
        eb, a = self.element_bits, self.in_elems
        fill = Signal(len(self.m.payload))
        filled, = nested_counters(m, self.s.valid & self.s.ready, (beats,), ("filled",))
        out_valid = Signal()
        completing = filled == beats - 1
        m.d.comb += [self.s.ready.eq(~completing | ~out_valid | self.m.ready),
                     self.m.valid.eq(out_valid)]
        with m.If(self.m.ready):
            m.d.sync += out_valid.eq(0)
        with m.If(self.s.valid & self.s.ready):
            shifted_in = Cat(fill[a * eb:], self.s.payload)
            m.d.sync += fill.eq(shifted_in)
            with m.If(completing):
                m.d.sync += [self.m.payload.eq(shifted_in), out_valid.eq(1)]
        return m

    def _scatter(self, m, beats: int):
        """One input beat gives `beats` output beats, shifted out of a register from the bottom."""
        eb, b = self.element_bits, self.out_elems
        hold = Signal(len(self.s.payload))
        left = Signal(range(beats + 1))
        taken = self.m.valid & self.m.ready
        m.d.comb += [self.m.valid.eq(left != 0), self.m.payload.eq(hold[:b * eb]),
                     self.s.ready.eq((left == 0) | ((left == 1) & self.m.ready))]
        with m.If(self.s.valid & self.s.ready):
            m.d.sync += [hold.eq(self.s.payload), left.eq(beats)]
        with m.Elif(taken):
            m.d.sync += [hold.eq(hold[b * eb:]), left.eq(left - 1)]
        return m

"""Constant padding of an image stream (channels last, SIMD channels per beat).

Walks the padded frame; inside the original image it forwards input beats,
on the border it emits the pad value without consuming input.
"""
from __future__ import annotations

from amaranth import Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..graph.specs import PadSpec
from .arith import pack_ints


class Padding(wiring.Component):
    def __init__(self, spec: PadSpec):
        self.spec = spec
        width = spec.simd * spec.dtype.bits
        super().__init__({
            "s": In(stream.Signature(unsigned(width))),
            "m": Out(stream.Signature(unsigned(width))),
        })

    def elaborate(self, platform):
        spec = self.spec
        m = Module()
        top, left, _, _ = spec.pads
        beats = spec.channels // spec.simd
        y = Signal(range(max(spec.out_h, 2)))
        x = Signal(range(max(spec.out_w, 2)))
        beat = Signal(range(max(beats, 2)))
        inside = (y >= top) & (y < top + spec.in_h) & (x >= left) & (x < left + spec.in_w)
        pad_word = pack_ints([int(spec.dtype.encode([spec.value])[0])] * spec.simd, spec.dtype.bits)
        m.d.comb += [
            self.m.valid.eq(Mux(inside, self.s.valid, 1)),
            self.m.payload.eq(Mux(inside, self.s.payload, pad_word)),
            self.s.ready.eq(inside & self.m.ready),
        ]
        with m.If(self.m.valid & self.m.ready):
            last_beat, last_x = beat == beats - 1, x == spec.out_w - 1
            m.d.sync += beat.eq(Mux(last_beat, 0, beat + 1))
            with m.If(last_beat):
                m.d.sync += x.eq(Mux(last_x, 0, x + 1))
                with m.If(last_x):
                    m.d.sync += y.eq(Mux(y == spec.out_h - 1, 0, y + 1))
        return m

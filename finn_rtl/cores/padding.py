"""Constant padding of an image stream (channels last, SIMD channels per beat).

Walks the padded frame; inside the original image it forwards input beats,
on the border it emits the pad value without consuming input.
"""
from __future__ import annotations

from amaranth import Module, Mux, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..graph.specs import PadSpec
from .arith import counter_bits, nested_counters, pack_ints
from .pipelining import adder_ns, counter_ns, lut_level_ns


class Padding(wiring.Component):
    def __init__(self, spec: PadSpec):
        self.spec = spec
        width = spec.simd * spec.dtype.bits
        super().__init__({
            "s": In(stream.Signature(unsigned(width))),
            "m": Out(stream.Signature(unsigned(width))),
        })

    @staticmethod
    def path_ns(spec: PadSpec) -> float:
        """By the delay model (`pipelining`): the position compared with the image's edges and
        the choice of beat, or the counters."""
        return max(adder_ns(max(spec.out_h, spec.out_w).bit_length()) + lut_level_ns(2), counter_ns(spec.out_w))

    @staticmethod
    def resource_features(spec: PadSpec) -> dict[str, float]:
        return {"const": 1, "mux_bits": spec.simd * spec.dtype.bits,
                "counter_bits": counter_bits(spec.out_h, spec.out_w, spec.channels // spec.simd)}

    def elaborate(self, platform):
        spec = self.spec
        m = Module()
        top, left, _, _ = spec.pads
        beats = spec.channels // spec.simd
        y, x, _ = nested_counters(m, self.m.valid & self.m.ready, (spec.out_h, spec.out_w, beats),
                                  ("y", "x", "beat"))
        inside = (y >= top) & (y < top + spec.in_h) & (x >= left) & (x < left + spec.in_w)
        pad_word = pack_ints([int(spec.dtype.encode([spec.value])[0])] * spec.simd, spec.dtype.bits)
        m.d.comb += [
            self.m.valid.eq(Mux(inside, self.s.valid, 1)),
            self.m.payload.eq(Mux(inside, self.s.payload, pad_word)),
            self.s.ready.eq(inside & self.m.ready),
        ]
        return m

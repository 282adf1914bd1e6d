"""Standalone thresholding core: PE channels per beat, each mapped through its thresholds."""
from __future__ import annotations

from amaranth import Module, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..graph.specs import ThresholdSpec
from .arith import element_value, lanes, nested_counters
from .threshold import register_thresholded


class Thresholding(wiring.Component):
    def __init__(self, spec: ThresholdSpec):
        self.spec = spec
        super().__init__({
            "s": In(stream.Signature(unsigned(spec.pe * spec.input_type.bits))),
            "m": Out(stream.Signature(unsigned(spec.pe * spec.output_type.bits))),
        })

    def elaborate(self, platform):
        spec = self.spec
        m = Module()
        groups = spec.channels // spec.pe
        value_shape = signed(spec.value_type.bits)
        out_valid, out_data = Signal(), Signal(spec.pe * spec.output_type.bits)
        advance = ~out_valid | self.m.ready
        accept = self.s.valid & advance
        group, = nested_counters(m, accept, (groups,), ("group",))
        m.d.comb += [self.s.ready.eq(advance), self.m.valid.eq(out_valid), self.m.payload.eq(out_data)]

        # Stage 1 holds the beat while its channel group's thresholds are read.
        held_valid = Signal()
        held = [Signal(value_shape, name=f"held{i}") for i in range(spec.pe)]
        with m.If(advance):
            m.d.sync += held_valid.eq(accept)
            m.d.sync += [h.eq(element_value(x, spec.input_type))
                         for h, x in zip(held, lanes(self.s.payload, spec.input_type.bits, spec.pe))]
        register_thresholded(m, spec, held, held_valid, group, advance, value_shape, out_valid, out_data)
        return m
